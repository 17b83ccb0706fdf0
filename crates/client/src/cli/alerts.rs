//! `merklog alerts`: the alerts raised by the log's rules.

use clap::{Args, Subcommand};
use serde_json::json;

use super::context::Context;
use super::output::{print_json, print_line};
use crate::ClientError;
use crate::alerts::{Alert, watch_alerts};

/// `merklog alerts ...`
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Print each alert as it is raised, one line each (JSON lines with --json).
    Watch(AlertsWatchArgs),
}

/// `merklog alerts watch`
#[derive(Debug, Args)]
#[command(after_help = "\
Prints the alerts raised from the moment it connects on (no replay); it needs no log key, \
as the stream is a notification. Each alert is also an alert entry in the log, a signed \
event of the source merklog.alerts (its key is <data-dir>/alert.vkey): that entry is the \
evidence. Text lines are tab-separated: time matched, rule, leaf index, actor, action, \
event time, and for a windowed rule the count (and its key). Ends with exit 0 when the \
server stops, after --count alerts, or with exit 2 when the connection fails.")]
pub struct AlertsWatchArgs {
    /// Only this rule's alerts.
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,
    /// Exit after this many alerts.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

fn alert_json(alert: &Alert) -> serde_json::Value {
    json!({
        "rule": alert.rule,
        "leaf_index": alert.leaf_index,
        "leaf_hash": alert.leaf_hash.map(|h| h.to_string()),
        "actor": alert.actor,
        "action": alert.action,
        "time": alert.time,
        "window_count": alert.window_count,
        "key": alert.key,
        "matched_unix_ms": alert.matched_unix_ms,
    })
}

fn alert_text(alert: &Alert) -> String {
    let matched = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(alert.matched_unix_ms),
    );
    let mut line = format!(
        "{matched}\t{}\tleaf {}\t{}\t{}\t{}",
        alert.rule, alert.leaf_index, alert.actor, alert.action, alert.time
    );
    if alert.window_count > 0 {
        line.push_str(&format!("\tcount {}", alert.window_count));
        if let Some(key) = &alert.key {
            line.push_str(&format!(" for {key}"));
        }
    }
    line
}

/// `merklog alerts watch`
pub(super) async fn watch(context: &Context, args: AlertsWatchArgs) -> Result<(), ClientError> {
    let options = context.client_options()?;
    let mut alerts = watch_alerts(&context.server, &options, args.rule.as_deref()).await?;
    let mut seen = 0u64;
    while args.count.is_none_or(|count| seen < count) {
        let Some(alert) = alerts.next().await? else {
            return Ok(());
        };
        if context.json {
            print_json(&alert_json(&alert));
        } else {
            print_line(&alert_text(&alert));
        }
        seen += 1;
    }
    Ok(())
}
