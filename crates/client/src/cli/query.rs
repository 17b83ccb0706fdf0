//! `merklog query`: verified queries over audit events.

use std::time::{Duration, UNIX_EPOCH};

use clap::Args;
use serde_json::{Value, json};

use super::output::{print_json, print_line};
use super::source::{Session, source_key};
use crate::evidence::model::ranges_text;
use crate::{ClientError, QueriedEvent, QueryFilter, SourceCompleteness};

/// The terms of an ai-audit/v1 audit event to select by; every one given must match.
#[derive(Debug, Clone, Default, Args)]
pub struct TermArgs {
    /// The audit event's actor id.
    #[arg(long, value_name = "ID")]
    pub actor: Option<String>,
    /// The audit event's model id.
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// The audit event's action.
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
}

/// `merklog query`
#[derive(Debug, Args)]
#[command(after_help = "\
Finds audit events (the ai-audit/v1 profile, also inside signed source events) by actor, \
model, action and source (every given filter must match) with event times in \
[--since, --until). Every returned entry is verified before anything is printed: the \
checkpoint (log key, witness policy if given, consistency with what was seen before), \
the entry's inclusion proof against it, and that the entry really is an audit event \
matching the query.

What a query proves: every event printed is in the log, at its index.
What it does not prove: that no matching event was left out. The server could omit \
some, and nothing in a query answer shows it. Only a source's sequence numbers make \
that checkable: with --source, the source's events between the first and last matched \
numbers are fetched and verified too (GetSourceEvents), and numbers missing from the \
log or matching events the query did not return are reported (exit 1).

Times are RFC 3339 (2026-03-01T12:00:00Z) or Unix milliseconds.")]
pub struct QueryArgs {
    /// The audit-event terms.
    #[command(flatten)]
    pub terms: TermArgs,
    /// The source of signed events; also checks completeness over its numbers.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Events at or after this time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<u64>,
    /// Events before this time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<u64>,
    /// At most this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// The source's verifier key (text or file) for the completeness check [default:
    /// the key the log's registry reports].
    #[arg(long, value_name = "VKEY|FILE", requires = "source")]
    pub source_vkey: Option<String>,
}

/// RFC 3339 or Unix milliseconds.
fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?}: neither RFC 3339 nor Unix milliseconds ({e})"))?;
    let since = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?;
    u64::try_from(since.as_millis()).map_err(|_| format!("{text:?} is too far ahead"))
}

fn time_text(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn event_json(event: &QueriedEvent) -> Value {
    json!({
        "index": event.index,
        "time": time_text(event.time_ms),
        "time_unix_ms": event.time_ms,
        "actor": event.event.actor.id,
        "action": event.event.action,
        "model": event.event.model.as_ref().and_then(|m| m.id.clone()),
        "source": event.signed.as_ref().map(|(s, _)| s.clone()),
        "sequence": event.signed.as_ref().map(|(_, n)| *n),
    })
}

fn event_text(event: &QueriedEvent) -> String {
    let model = event
        .event
        .model
        .as_ref()
        .and_then(|m| m.id.as_deref())
        .unwrap_or("-");
    let mut line = format!(
        "{}\t{}\t{}\t{}\t{model}",
        event.index,
        time_text(event.time_ms),
        event.event.actor.id,
        event.event.action
    );
    if let Some((source, sequence)) = &event.signed {
        line.push_str(&format!("\t{source}#{sequence}"));
    }
    line
}

fn completeness_json(report: &SourceCompleteness) -> Value {
    json!({
        "completeness": {
            "source": report.source,
            "complete": report.is_complete(),
            "first_sequence": report.range.map(|r| r.0),
            "last_sequence": report.range.map(|r| r.1),
            "events": report.events,
            "missing": report.missing.iter().map(|(a, b)| json!({"first": a, "last": b})).collect::<Vec<_>>(),
            "left_out": report.left_out,
        }
    })
}

/// `merklog query ...`
pub(super) async fn execute(session: Session, args: QueryArgs) -> Result<(), ClientError> {
    let filter = QueryFilter {
        actor: args.terms.actor,
        model: args.terms.model,
        action: args.terms.action,
        source: args.source.clone(),
        since_ms: args.since.unwrap_or(0),
        until_ms: args.until,
    };
    let key = args.source_vkey.as_deref().map(source_key).transpose()?;
    let mut client = session.connect().await?;
    let result = async {
        let answer = client.query_events(&filter, args.limit).await?;
        let completeness = match &args.source {
            Some(source) => Some(
                client
                    .query_completeness(&filter, &answer, source, key)
                    .await?,
            ),
            None => None,
        };
        Ok::<_, ClientError>((answer, completeness))
    }
    .await;
    let saved = client.save_state();
    let (answer, completeness) = result?;
    saved?;
    // Everything is verified by now: print.
    for event in &answer.events {
        if session.json {
            print_json(&event_json(event));
        } else {
            print_line(&event_text(event));
        }
    }
    if !session.json {
        print_line(&format!(
            "{} events, every inclusion proof verified against checkpoint of size {}; \
             a query does not prove that nothing matching was left out",
            answer.events.len(),
            answer.checkpoint.size()
        ));
    }
    let Some(report) = completeness else {
        return Ok(());
    };
    if session.json {
        print_json(&completeness_json(&report));
    } else {
        match report.range {
            None => print_line(&format!(
                "source {}: no signed event matched, nothing to check",
                report.source
            )),
            Some((first, last)) => print_line(&format!(
                "source {}: numbers {first}..={last}: {} events verified; {}; {}",
                report.source,
                report.events,
                if report.missing.is_empty() {
                    "none missing".to_owned()
                } else {
                    format!("MISSING {}", ranges_text(&report.missing))
                },
                if report.left_out.is_empty() {
                    "none left out by the query".to_owned()
                } else {
                    format!("LEFT OUT by the query: entries {:?}", report.left_out)
                }
            )),
        }
    }
    if report.is_complete() {
        return Ok(());
    }
    let mut findings = Vec::new();
    if !report.missing.is_empty() {
        findings.push(format!("missing {}", ranges_text(&report.missing)));
    }
    if !report.left_out.is_empty() {
        findings.push(format!(
            "{} matching events left out by the query",
            report.left_out.len()
        ));
    }
    Err(ClientError::Incomplete {
        source_name: report.source,
        findings: findings.join("; "),
    })
}
