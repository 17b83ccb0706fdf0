//! The `merklogd` binary: flags, environment, TOML precedence, first start, and
//! graceful shutdown on SIGTERM.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_merklogd");

fn merklogd() -> Command {
    let mut command = Command::new(BIN);
    // Only what the test sets: no MERKLOGD_* from the developer's shell.
    command.env_clear();
    command
}

#[test]
fn help_documents_every_flag_and_its_environment_variable() {
    let output = merklogd().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, env) in [
        ("--data-dir", "MERKLOGD_DATA_DIR"),
        ("--listen", "MERKLOGD_LISTEN"),
        ("--http-listen", "MERKLOGD_HTTP_LISTEN"),
        ("--metrics-listen", "MERKLOGD_METRICS_LISTEN"),
        ("--origin", "MERKLOGD_ORIGIN"),
        ("--config", "MERKLOGD_CONFIG"),
        ("--log-format", "MERKLOGD_LOG_FORMAT"),
        ("--max-batch-entries", "MERKLOGD_MAX_BATCH_ENTRIES"),
        ("--max-batch-wait-ms", "MERKLOGD_MAX_BATCH_WAIT_MS"),
        ("--max-entry-bytes", "MERKLOGD_MAX_ENTRY_BYTES"),
        ("--max-entries-per-call", "MERKLOGD_MAX_ENTRIES_PER_CALL"),
        ("--policy", "MERKLOGD_POLICY"),
        ("--witness-timeout", "MERKLOGD_WITNESS_TIMEOUT"),
        ("--fail-open-after", "MERKLOGD_FAIL_OPEN_AFTER"),
        (
            "--witness-resend-interval",
            "MERKLOGD_WITNESS_RESEND_INTERVAL",
        ),
        ("--append-timeout", "MERKLOGD_APPEND_TIMEOUT"),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
        assert!(help.contains(env), "--help lacks {env}");
    }
    assert!(help.contains("./merklog-data") && help.contains("127.0.0.1:7800"));
}

#[test]
fn flag_beats_env_beats_toml_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("merklogd.toml");
    std::fs::write(
        &toml,
        "data-dir = \"/from/toml\"\n\
         listen = \"127.0.0.1:1111\"\n\
         http-listen = \"127.0.0.1:2222\"\n\
         metrics-listen = \"127.0.0.1:3333\"\n\
         max-batch-wait-ms = 4\n",
    )
    .unwrap();
    let output = merklogd()
        .env("MERKLOGD_CONFIG", &toml)
        .env("MERKLOGD_LISTEN", "127.0.0.1:5555")
        .env("MERKLOGD_HTTP_LISTEN", "127.0.0.1:4444")
        .args(["--listen", "127.0.0.1:6666", "--print-config"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(config["listen"], "127.0.0.1:6666", "flag > env");
    assert_eq!(config["http_listen"], "127.0.0.1:4444", "env > toml");
    assert_eq!(config["metrics_listen"], "127.0.0.1:3333", "toml > default");
    assert_eq!(config["data_dir"], "/from/toml");
    assert_eq!(config["max_batch_wait_ms"], 4);
    assert_eq!(config["log_format"], "text", "default");

    // A typo in the file is an error, not silently ignored.
    std::fs::write(&toml, "data_dir = \"/x\"\n").unwrap();
    let output = merklogd()
        .args(["--config", toml.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown field"));
}

#[test]
fn witness_settings_in_print_config() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("merklogd.toml");
    std::fs::write(
        &toml,
        "policy = \"/etc/merklog/policy.txt\"\n\
         witness-timeout = \"2500ms\"\n\
         fail-open-after = \"2m\"\n",
    )
    .unwrap();
    let output = merklogd()
        .env("MERKLOGD_WITNESS_RESEND_INTERVAL", "30s")
        .args(["--config", toml.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(config["policy"], "/etc/merklog/policy.txt");
    assert_eq!(config["witness_timeout"], "2500ms");
    assert_eq!(config["fail_open_after"], "2m");
    assert_eq!(config["witness_resend_interval"], "30s");
    assert_eq!(config["append_timeout"], "10s", "default");

    // Without a policy nothing fails open; a bad duration is refused with its form.
    let output = merklogd().arg("--print-config").output().unwrap();
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(config["policy"], serde_json::Value::Null);
    assert_eq!(config["fail_open_after"], serde_json::Value::Null);
    assert_eq!(config["witness_timeout"], "5s");
    let output = merklogd()
        .args(["--witness-timeout", "5", "--print-config"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("500ms, 5s"));
}

#[test]
fn a_policy_for_another_log_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (_, other_log) = merklog_note::generate_ed25519("other.example/log").unwrap();
    let (_, witness) = merklog_note::generate_cosigner("w.example/w").unwrap();
    let policy = dir.path().join("policy.txt");
    std::fs::write(
        &policy,
        format!("log {other_log}\nwitness w {witness} http://127.0.0.1:1\nquorum w\n"),
    )
    .unwrap();
    let output = merklogd()
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--origin", "this.example/log", "--policy"])
        .arg(&policy)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let vkey = std::fs::read_to_string(data_dir.join("log.vkey")).unwrap();
    assert!(stderr.contains("no `log` line"), "{stderr}");
    assert!(stderr.contains(vkey.trim_end()), "{stderr}");
}

/// Starts `merklogd` on port 0 with an address file; waits until it serves.
/// The caller reaps the returned child (`terminate`).
#[allow(clippy::zombie_processes)]
fn start(data_dir: &Path, extra: &[&str]) -> (Child, serde_json::Value) {
    let addr_file = data_dir.with_extension("addrs");
    let _ = std::fs::remove_file(&addr_file);
    let mut child = merklogd()
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--addr-file",
        ])
        .arg(&addr_file)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            return (child, serde_json::from_str(&text).unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("merklogd did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then the exit status and the captured output.
fn terminate(mut child: Child) -> (bool, String, String) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("merklogd did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.success(), stdout, stderr)
}

#[test]
fn first_start_prints_the_vkey_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (child, addrs) = start(&data_dir, &["--origin", "cli.example/log"]);
    let grpc = addrs["grpc"].as_str().unwrap().to_owned();
    assert!(grpc.starts_with("127.0.0.1:") && !grpc.ends_with(":0"));
    let (ok, stdout, stderr) = terminate(child);
    assert!(ok, "exit status; stderr:\n{stderr}");

    // stdout holds exactly the verifier key, which is also in log.vkey.
    let vkey = std::fs::read_to_string(data_dir.join("log.vkey")).unwrap();
    assert_eq!(stdout, vkey);
    assert!(vkey.starts_with("cli.example/log+"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(data_dir.join("log.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // JSON logs name the bound addresses, and never the private key.
    let serving = stderr
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|v| v["message"] == "merklogd serving")
        .expect("a 'merklogd serving' log line");
    assert_eq!(serving["grpc"], grpc.as_str());
    assert!(!stderr.contains("PRIVATE+KEY"));
    assert!(stderr.contains("merklogd stopped"));

    // A later start keeps the origin without --origin and prints nothing.
    let (child, _) = start(&data_dir, &[]);
    let (ok, stdout, _) = terminate(child);
    assert!(ok);
    assert_eq!(stdout, "");

    // A conflicting origin stops the process with a clear error.
    let output = merklogd()
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--origin", "else.example/log", "--listen", "127.0.0.1:0"])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cli.example/log") && stderr.contains("else.example/log"),
        "{stderr}"
    );
}
