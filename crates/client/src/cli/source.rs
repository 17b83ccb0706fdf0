//! `merklog source status` and `merklog source audit`, and the connection settings
//! the signed-source commands share.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use merklog_event::SourceKey;
use merklog_proto::v1;
use serde_json::{Value, json};

use super::output::{print_json, print_line};
use super::parse_duration;
use crate::encoding::b64;
use crate::evidence::model::ranges_text;
use crate::{Client, ClientError, ClientOptions, SourceAudit, StateFile, TrustedLog};

/// Largest source verifier key file read.
const MAX_VKEY_FILE_LEN: u64 = 4096;

/// `merklog source ...`
#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Source key management.
    #[command(subcommand)]
    Key(SourceKeyCommand),
    /// Show the registered sources and their status (ListSources).
    Status(SourceStatusArgs),
    /// Verify a source's events in the log and report what is missing.
    Audit(SourceAuditArgs),
}

/// `merklog source key ...`
#[derive(Debug, Subcommand)]
pub enum SourceKeyCommand {
    /// Generate a source signing key (mode 0600) and print its verifier key.
    Generate(SourceKeyGenerateArgs),
}

/// `merklog source key generate`
#[derive(Debug, Args)]
pub struct SourceKeyGenerateArgs {
    /// The source's name, which is also the key's name (e.g.
    /// `agents.example.com/agent-7`).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The signing key file to create (never overwritten); the verifier key goes
    /// next to it with the extension `.vkey` [default: ./NAME.key, with characters
    /// other than letters, digits, `.`, `-`, `_` replaced by `_`].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `merklog source status`
#[derive(Debug, Args)]
pub struct SourceStatusArgs {
    /// Only this source.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

/// `merklog source audit`
#[derive(Debug, Args)]
#[command(after_help = "\
Pages through GetSourceEvents and verifies every event's signature with the source's key, \
every inclusion proof against the page's checkpoint (itself verified with the log key) and \
the consistency of all checkpoints used. It then computes, from the verified events only, \
which numbers are neither in the log nor declared unused by a verified unused-sequence \
declaration, which numbers carry two different signed envelopes (equivocation), and which \
consecutive events are further apart than the heartbeat interval (silence).

Exit codes: 0 complete; 1 something missing, equivocated or silent, or an event, proof or \
checkpoint that does not verify; 2 usage or network error.")]
pub struct SourceAuditArgs {
    /// The source's name.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The first number to audit.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub from: u64,
    /// The last number to audit [default: the highest number the log reports].
    #[arg(long, value_name = "M")]
    pub to: Option<u64>,
    /// The source's verifier key (text or file), as the auditor knows it. Without
    /// it the key the log's registry reports is used, and the report says so: the
    /// signatures then prove only that the server's key signed.
    #[arg(long, value_name = "VKEY|FILE")]
    pub source_vkey: Option<String>,
    /// Report consecutive events further apart than this [default: the source's
    /// registered heartbeat interval].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub silence_after: Option<Duration>,
}

/// What a signed-source command needs to reach the log.
pub(super) struct Session {
    pub(super) server: String,
    pub(super) trust: TrustedLog,
    pub(super) options: ClientOptions,
    pub(super) state: Option<StateFile>,
    pub(super) json: bool,
}

impl Session {
    pub(super) async fn connect(&self) -> Result<Client, ClientError> {
        Client::connect(
            &self.server,
            self.trust.clone(),
            self.state.clone(),
            self.options.clone(),
        )
        .await
    }
}

/// A Unix time in milliseconds for people (UTC, RFC 3339).
fn time_text(unix_ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(time).to_string()
}

fn ranges_json(ranges: &[(u64, u64)]) -> Value {
    Value::Array(
        ranges
            .iter()
            .map(|(first, last)| json!({"first": first, "last": last}))
            .collect(),
    )
}

fn status_json(status: &v1::SourceStatus) -> Value {
    let gaps: Vec<(u64, u64)> = status.gaps.iter().map(|g| (g.first, g.last)).collect();
    json!({
        "name": status.name,
        "vkey": status.vkey,
        "principals": status.principals,
        "heartbeat_interval_ms": status.heartbeat_interval_ms,
        "has_events": status.has_events,
        "contiguous_until": status.contiguous_until,
        "highest_sequence": status.has_events.then_some(status.highest_sequence),
        "gaps": ranges_json(&gaps),
        "gap_count": status.gap_count,
        "last_seen_unix_ms": status.last_seen_unix_ms,
        "silent": status.silent,
        "equivocations": status.equivocations,
    })
}

fn status_text(status: &v1::SourceStatus) -> String {
    let gaps: Vec<(u64, u64)> = status.gaps.iter().map(|g| (g.first, g.last)).collect();
    let events = if status.has_events {
        format!(
            "numbers complete below {}, highest {}",
            status.contiguous_until, status.highest_sequence
        )
    } else {
        "no events".to_owned()
    };
    let gaps = if status.gap_count == 0 {
        "no gaps".to_owned()
    } else {
        format!("{} gaps: {}", status.gap_count, ranges_text(&gaps))
    };
    let seen = if status.last_seen_unix_ms == 0 {
        "never seen".to_owned()
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        format!(
            "last seen {} ({}s ago)",
            time_text(status.last_seen_unix_ms),
            now.saturating_sub(status.last_seen_unix_ms) / 1000
        )
    };
    let heartbeat = if status.heartbeat_interval_ms == 0 {
        String::new()
    } else {
        format!(
            ", heartbeat every {}",
            crate::error::human_duration(Duration::from_millis(status.heartbeat_interval_ms))
        )
    };
    format!(
        "{}\n  key {}\n  {events}; {gaps}; {seen}{heartbeat}{}{}",
        status.name,
        status.vkey,
        if status.silent { "; SILENT" } else { "" },
        if status.equivocations > 0 {
            format!("; {} EQUIVOCATIONS", status.equivocations)
        } else {
            String::new()
        },
    )
}

/// `merklog source status [NAME]`
pub(super) async fn status(session: Session, args: SourceStatusArgs) -> Result<(), ClientError> {
    let mut client = session.connect().await?;
    let mut sources = client.list_sources().await?;
    if let Some(name) = &args.name {
        sources.retain(|s| s.name == *name);
        if sources.is_empty() {
            return Err(ClientError::Input(format!(
                "the log has no registered source {name:?}"
            )));
        }
    }
    if session.json {
        match (&args.name, sources.first()) {
            (Some(_), Some(one)) => print_json(&status_json(one)),
            _ => print_json(&json!({
                "sources": sources.iter().map(status_json).collect::<Vec<_>>()
            })),
        }
    } else if sources.is_empty() {
        print_line("no sources are registered");
    } else {
        for status in &sources {
            print_line(&status_text(status));
        }
    }
    Ok(())
}

/// Reads a source verifier key given as its text or as a file holding it.
pub(super) fn source_key(value: &str) -> Result<SourceKey, ClientError> {
    if let Ok(key) = SourceKey::parse(value) {
        return Ok(key);
    }
    let path = PathBuf::from(value);
    let bytes = super::input::read_file(&path, MAX_VKEY_FILE_LEN)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ClientError::Input(format!("{} is not UTF-8", path.display())))?;
    SourceKey::parse(&text).map_err(|e| {
        ClientError::Input(format!(
            "{} does not hold a source verifier key: {e}",
            path.display()
        ))
    })
}

fn audit_json(report: &SourceAudit) -> Value {
    json!({
        "ok": report.is_complete(),
        "complete": report.is_complete(),
        "source": report.source,
        "from": report.from,
        "to": report.to,
        "vkey": report.vkey,
        "key_from_server": report.key_from_server,
        "heartbeat_interval_ms": report.heartbeat_interval.map(|d| d.as_millis() as u64),
        "events": report.events,
        "heartbeats": report.heartbeats,
        "declared_unused": ranges_json(&report.declared_unused),
        "missing": ranges_json(&report.missing),
        "equivocations": report.equivocations.iter().map(|e| json!({
            "sequence": e.sequence,
            "logged_index": e.logged_index,
            "logged_envelope_base64": b64(&e.logged),
            "other_envelope_base64": b64(&e.other),
        })).collect::<Vec<_>>(),
        "silent_periods": report.silent_periods.iter().map(|s| json!({
            "after_sequence": s.after_sequence,
            "before_sequence": s.before_sequence,
            "from_unix_ms": s.from_ms,
            "to_unix_ms": s.to_ms,
        })).collect::<Vec<_>>(),
        "unverified_claims": report.unverified_claims,
        "checkpoint_sizes": report.checkpoint_sizes,
    })
}

fn print_audit(report: &SourceAudit) {
    print_line(&format!(
        "source {} numbers {}..={}: {} events verified ({} heartbeats); every signature and \
         inclusion proof verified against checkpoints of sizes {:?}, all consistent",
        report.source,
        report.from,
        report.to,
        report.events,
        report.heartbeats,
        report.checkpoint_sizes
    ));
    if report.key_from_server {
        print_line(&format!(
            "NOTE: the source key {} is the one the log's registry reports; it was not \
             independently supplied (--source-vkey)",
            report.vkey
        ));
    } else {
        print_line(&format!("source key (given): {}", report.vkey));
    }
    if !report.declared_unused.is_empty() {
        print_line(&format!(
            "declared unused (signed by the source): {}",
            ranges_text(&report.declared_unused)
        ));
    }
    if !report.missing.is_empty() {
        print_line(&format!("MISSING: {}", ranges_text(&report.missing)));
    }
    for e in &report.equivocations {
        print_line(&format!(
            "EQUIVOCATION at number {}: two different envelopes signed by the source{} \
             (logged: base64:{}, other: base64:{})",
            e.sequence,
            e.logged_index
                .map(|i| format!(", the logged one at index {i}"))
                .unwrap_or_default(),
            b64(&e.logged),
            b64(&e.other)
        ));
    }
    for s in &report.silent_periods {
        print_line(&format!(
            "SILENT from {} (after number {}) to {} (number {}): {} without an event or \
             heartbeat",
            time_text(s.from_ms),
            s.after_sequence,
            time_text(s.to_ms),
            s.before_sequence,
            crate::error::human_duration(Duration::from_millis(s.to_ms - s.from_ms))
        ));
    }
    for claim in &report.unverified_claims {
        print_line(&format!("ignored (not verifiable): {claim}"));
    }
    print_line(if report.is_complete() {
        "COMPLETE"
    } else {
        "INCOMPLETE"
    });
}

/// `merklog source audit NAME`
pub(super) async fn audit(session: Session, args: SourceAuditArgs) -> Result<(), ClientError> {
    let key = args.source_vkey.as_deref().map(source_key).transpose()?;
    let mut client = session.connect().await?;
    let result = client
        .audit_source(&args.name, args.from, args.to, key, args.silence_after)
        .await;
    let saved = client.save_state();
    let report = result?;
    saved?;
    if session.json {
        print_json(&audit_json(&report));
    } else {
        print_audit(&report);
    }
    if report.is_complete() {
        return Ok(());
    }
    let mut findings = Vec::new();
    if !report.missing.is_empty() {
        findings.push(format!("missing {}", ranges_text(&report.missing)));
    }
    if !report.equivocations.is_empty() {
        findings.push(format!(
            "equivocation at {}",
            report
                .equivocations
                .iter()
                .map(|e| e.sequence.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !report.silent_periods.is_empty() {
        findings.push(format!("{} silent periods", report.silent_periods.len()));
    }
    Err(ClientError::Incomplete {
        source_name: report.source,
        findings: findings.join("; "),
    })
}
