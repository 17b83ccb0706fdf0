//! Witnessed checkpoints: from the `policy` setting to the log's
//! [`Witnessing`] configuration.
//!
//! The policy is a C2SP tlog-policy file. Its `log` line must carry this log's
//! verifier key (so the policy the server enforces is the one clients verify
//! against), every `witness` line with a URL gets an [`HttpWitness`], and the
//! quorum must be reachable with those witnesses alone.

use std::path::Path;
use std::sync::Arc;

use merklog_log::{WitnessClient, Witnessing};
use merklog_note::Policy;
use tracing::{info, warn};

use crate::witness_client::HttpWitness;
use crate::{ServerConfig, ServerError};

/// Reads and parses a tlog-policy file.
pub fn read_policy(path: &Path) -> Result<Policy, ServerError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServerError::Io {
        context: format!("reading the policy file {}", path.display()),
        source,
    })?;
    Policy::parse(&text)
        .map_err(|e| ServerError::Config(format!("policy file {}: {e}", path.display())))
}

/// The log's witnessing settings for `config`, or `None` without a policy.
///
/// Refuses a policy whose `log` lines do not include this log's verifier key
/// `vkey` (which also fixes its origin), and one whose quorum the witnesses
/// that have a URL cannot meet.
pub fn witnessing(
    config: &ServerConfig,
    origin: &str,
    vkey: &str,
) -> Result<Option<Witnessing>, ServerError> {
    let Some(path) = &config.policy else {
        return Ok(None);
    };
    let policy = read_policy(path)?;
    check_log_line(&policy, path, origin, vkey)?;

    let timeout = config.witness_timeout.get();
    let ca_certs = witness_ca_certs(config)?;
    let mut witnesses: Vec<Arc<dyn WitnessClient>> = Vec::new();
    for witness in policy.witnesses() {
        match &witness.url {
            Some(url) => {
                let client = HttpWitness::with_ca_certs(&witness.name, url, timeout, &ca_certs)
                    .map_err(|e| {
                        ServerError::Config(format!("policy file {}: {e}", path.display()))
                    })?;
                info!(witness = %witness.name, endpoint = client.endpoint(), "witness configured");
                witnesses.push(Arc::new(client));
            }
            None => warn!(
                witness = %witness.name,
                "the policy gives this witness no URL: its cosignatures are not requested"
            ),
        }
    }
    let reachable: Vec<&str> = witnesses.iter().map(|w| w.name()).collect();
    if !policy.satisfied_by(reachable.iter().copied()) {
        return Err(ServerError::Config(format!(
            "policy file {}: the quorum {:?} cannot be met by the witnesses that have a URL \
             ({}); the log would never publish",
            path.display(),
            policy.quorum(),
            if reachable.is_empty() {
                "none".to_owned()
            } else {
                reachable.join(", ")
            }
        )));
    }
    info!(
        policy = %path.display(),
        quorum = policy.quorum(),
        witnesses = witnesses.len(),
        fail_open_after = ?config.fail_open_after.map(|d| d.get()),
        "checkpoints are published once the witness quorum cosigned them"
    );
    Ok(Some(Witnessing {
        policy,
        witnesses,
        request_timeout: timeout,
        fail_open_after: config.fail_open_after.map(|d| d.get()),
        resend_interval: config.witness_resend_interval.get(),
        refusal_limit: config.witness_refusal_limit,
        // A node that may open as a standby checks the witnesses when it takes over.
        deferred: crate::cluster::elects(config),
    }))
}

/// The CA certificates of `witness-ca-cert`, if set.
fn witness_ca_certs(config: &ServerConfig) -> Result<Vec<reqwest::Certificate>, ServerError> {
    let Some(path) = &config.witness_ca_cert else {
        return Ok(Vec::new());
    };
    let pem = std::fs::read(path).map_err(|source| ServerError::Io {
        context: format!("reading witness-ca-cert {}", path.display()),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| ServerError::Config(format!("witness-ca-cert {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Config(format!(
            "witness-ca-cert {}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// What a parsed policy says, for `--print-config`: its logs, its witnesses
/// (name, key, URL), its groups and its quorum.
pub fn policy_summary(policy: &Policy) -> serde_json::Value {
    serde_json::json!({
        "logs": policy
            .logs()
            .iter()
            .map(|log| log.verifier.to_vkey())
            .collect::<Vec<_>>(),
        "witnesses": policy
            .witnesses()
            .iter()
            .map(|w| serde_json::json!({
                "name": w.name,
                "vkey": w.verifier.to_vkey(),
                "url": w.url,
            }))
            .collect::<Vec<_>>(),
        "groups": policy
            .groups()
            .iter()
            .map(|g| serde_json::json!({
                "name": g.name,
                "threshold": g.threshold.to_string(),
                "members": g.members,
            }))
            .collect::<Vec<_>>(),
        "quorum": policy.quorum(),
    })
}

/// The policy must list this log: a `log` line with exactly its verifier key.
fn check_log_line(
    policy: &Policy,
    path: &Path,
    origin: &str,
    vkey: &str,
) -> Result<(), ServerError> {
    if policy
        .logs()
        .iter()
        .any(|log| log.verifier.to_vkey() == vkey)
    {
        return Ok(());
    }
    let listed: Vec<String> = policy
        .logs()
        .iter()
        .map(|log| log.verifier.to_vkey())
        .collect();
    Err(ServerError::Config(format!(
        "policy file {}: no `log` line for this log (origin {origin:?}); expected \
         `log {vkey}` (the key in log.vkey of the data directory), found {}",
        path.display(),
        if listed.is_empty() {
            "no log lines".to_owned()
        } else {
            listed.join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use merklog_daemon::ConfigDuration;
    use std::time::Duration;

    fn setup(
        policy_text: impl FnOnce(&str, &str, &str) -> String,
    ) -> (tempfile::TempDir, ServerConfig, String) {
        let dir = tempfile::tempdir().unwrap();
        let (_, log_vkey) = merklog_note::generate_ed25519("test.example/log").unwrap();
        let (_, w1) = merklog_note::generate_cosigner("w1.example/witness").unwrap();
        let (_, w2) = merklog_note::generate_cosigner("w2.example/witness").unwrap();
        let path = dir.path().join("policy.txt");
        std::fs::write(&path, policy_text(&log_vkey, &w1, &w2)).unwrap();
        let config = ServerConfig {
            policy: Some(path),
            witness_timeout: ConfigDuration(Duration::from_millis(1500)),
            fail_open_after: Some(ConfigDuration(Duration::from_secs(30))),
            ..ServerConfig::default()
        };
        (dir, config, log_vkey)
    }

    #[test]
    fn a_policy_becomes_witness_clients() {
        let (_dir, config, vkey) = setup(|log, w1, w2| {
            format!(
                "# two witnesses, both needed\nlog {log}\n\
                 witness a {w1} http://127.0.0.1:1\nwitness b {w2} http://127.0.0.1:2/prefix\n\
                 group both all a b\nquorum both\n"
            )
        });
        let witnessing = witnessing(&config, "test.example/log", &vkey)
            .unwrap()
            .unwrap();
        let names: Vec<&str> = witnessing.witnesses.iter().map(|w| w.name()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(witnessing.policy.quorum(), "both");
        assert_eq!(witnessing.request_timeout, Duration::from_millis(1500));
        assert_eq!(witnessing.fail_open_after, Some(Duration::from_secs(30)));
        assert_eq!(witnessing.resend_interval, Duration::from_secs(60));
    }

    #[test]
    fn no_policy_means_no_witnessing() {
        assert!(
            witnessing(&ServerConfig::default(), "x", "x+00000000+AA")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_log_line_must_be_this_log() {
        let (_dir, config, _) =
            setup(|log, w1, _| format!("log {log}\nwitness a {w1} http://127.0.0.1:1\nquorum a\n"));
        let (_, other) = merklog_note::generate_ed25519("test.example/log").unwrap();
        let err = witnessing(&config, "test.example/log", &other).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no `log` line"), "{text}");
        assert!(text.contains(&other), "{text}");
    }

    #[test]
    fn an_unreachable_quorum_is_refused() {
        let (_dir, config, vkey) = setup(|log, w1, w2| {
            format!(
                "log {log}\nwitness a {w1} http://127.0.0.1:1\nwitness b {w2}\n\
                 group both all a b\nquorum both\n"
            )
        });
        let err = witnessing(&config, "test.example/log", &vkey).unwrap_err();
        assert!(err.to_string().contains("cannot be met"), "{err}");
    }

    #[test]
    fn bad_urls_and_bad_files_are_refused() {
        let (_dir, config, vkey) =
            setup(|log, w1, _| format!("log {log}\nwitness a {w1} ftp://127.0.0.1:1\nquorum a\n"));
        let err = witnessing(&config, "test.example/log", &vkey).unwrap_err();
        assert!(err.to_string().contains("http or https"), "{err}");

        let (_dir, config, vkey) = setup(|log, _, _| format!("log {log}\nquorum nobody\n"));
        let err = witnessing(&config, "test.example/log", &vkey).unwrap_err();
        assert!(err.to_string().contains("policy file"), "{err}");

        let missing = ServerConfig {
            policy: Some("/nonexistent/policy.txt".into()),
            ..ServerConfig::default()
        };
        let err = witnessing(&missing, "test.example/log", &vkey).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/policy.txt"), "{err}");
    }

    #[test]
    fn the_deploy_examples_parse() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/merklogd.toml");
        let config = crate::Cli::try_load_from(["merklogd", "--config", example])
            .unwrap()
            .settings;
        assert_eq!(
            config.policy.as_deref(),
            Some(Path::new("/etc/merklog/policy.txt"))
        );
        assert_eq!(config.fail_open_after, None);

        let policy = Policy::parse(include_str!("../../../deploy/policy.txt")).unwrap();
        let vkey = policy.logs()[0].verifier.to_vkey();
        check_log_line(
            &policy,
            Path::new("policy.txt"),
            "log.example.com/audit",
            &vkey,
        )
        .unwrap();
        for witness in policy.witnesses() {
            HttpWitness::new(
                &witness.name,
                witness.url.as_deref().unwrap(),
                Duration::from_secs(5),
            )
            .unwrap();
        }
        assert!(policy.satisfied_by(["w1", "w2"]));
        assert!(!policy.satisfied_by(["w1"]));
    }
}
