//! `merklog evidence export` and `merklog evidence verify`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::context::Context;
use super::output::{print_json, print_line};
use super::query::TermArgs;
use crate::ClientError;
use crate::evidence::model::{QueryTerms, ranges_text, time_text};
use crate::evidence::{ExportRequest, Pins, archive, files, verify_files};

/// `merklog evidence ...`
#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// Export a source's events as an evidence pack an auditor verifies offline.
    Export(EvidenceExportArgs),
    /// Verify an evidence pack offline (no network): every file and every check.
    Verify(EvidenceVerifyArgs),
}

/// `merklog evidence export`
#[derive(Debug, Args)]
#[command(after_help = "\
The pack holds each selected event's exact envelope, one tlog-proof per event against the \
log's latest checkpoint (cosigned when the log has witnesses), the last checkpoint this \
client verified before (state file) with the consistency proof to it, the log key, the \
policy given with --policy, the source key, manifest.json and report.html. Everything is \
verified while it is exported.

--since/--until select by the event's SIGNED SOURCE TIMESTAMP (the source's own clock, \
not the log's), RFC 3339 such as 2026-12-03T10:00:00Z; the end is excluded. With a window, \
completeness is judged from the first to the last selected sequence number.

--actor/--model/--action select the source's events whose payload is an ai-audit/v1 audit \
event matching every given term, found through the log's query index (QueryEvents); they \
combine with --source (required: a pack is one source's), --from-seq/--to-seq and \
--since/--until (AND). The source's events between the first and the last match are \
exported too, as context, so completeness is judged over those numbers. A query proves each \
selected event is in the log, NOT that no matching event was left out: the report and \
manifest say so.

Every event also gets an RFC 9942 COSE receipt at the checkpoint's size, with the receipt \
key (pin it with --receipt-key).")]
pub struct EvidenceExportArgs {
    /// The source's name.
    #[arg(long, value_name = "NAME")]
    pub source: String,
    /// The first sequence number [default: 0].
    #[arg(long, value_name = "A")]
    pub from_seq: Option<u64>,
    /// The last sequence number [default: the highest the log reports].
    #[arg(long, value_name = "B")]
    pub to_seq: Option<u64>,
    /// Only events whose signed source timestamp is at or after this (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events whose signed source timestamp is before this (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only events whose audit event has these terms (a query selection).
    #[command(flatten)]
    pub terms: TermArgs,
    /// The source's verifier key (text or file) as you know it [default: the one the
    /// log's registry reports].
    #[arg(long, value_name = "VKEY|FILE")]
    pub source_vkey: Option<String>,
    /// The log's receipt key (`ed25519:<base64>`, `es256:<base64>` or a file such as
    /// the server's receipt.pub) [default: the one the server sends].
    #[arg(long, value_name = "KEY")]
    pub receipt_key: Option<String>,
    /// Where to write the pack: a new directory, or one archive if it ends in `.zip`.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

/// `merklog evidence verify`
#[derive(Debug, Args)]
#[command(after_help = "\
Fully offline: opens no network connection. Checks every file's SHA-256 against \
manifest.json, each event's signature under the source key, each inclusion proof, the \
checkpoint's signature and (with a policy in the pack or given with --policy) its witness \
quorum, the consistency proofs, and recomputes completeness; then rebuilds manifest.json \
and report.html from the verified contents and compares them byte for byte.

Keys: --log-key, --policy and --source-vkey pin what you obtained independently; without \
them the keys in the pack are used, and the output says so.

Exit codes: 0 verified; 1 a check failed (the file and the check are named); 2 usage or \
file error.")]
pub struct EvidenceVerifyArgs {
    /// The pack: a directory or a `.zip` archive.
    #[arg(value_name = "PACK")]
    pub pack: PathBuf,
    /// The source's verifier key (text or file) you trust.
    #[arg(long, value_name = "VKEY|FILE")]
    pub source_vkey: Option<String>,
    /// The log's receipt key (`ed25519:<base64>`, `es256:<base64>` or a file) you trust.
    #[arg(long, value_name = "KEY")]
    pub receipt_key: Option<String>,
}

fn parse_time(flag: &str, text: &str) -> Result<u64, ClientError> {
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
        ClientError::Input(format!(
            "{flag} {text:?} is not an RFC 3339 time ({e}), e.g. 2026-12-03T10:00:00Z"
        ))
    })?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| ClientError::Input(format!("{flag} {text:?} is before 1970")))?;
    Ok(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

/// `merklog evidence export`
pub(super) async fn export(context: &Context, args: EvidenceExportArgs) -> Result<(), ClientError> {
    let query = QueryTerms {
        actor: args.terms.actor.clone(),
        model: args.terms.model.clone(),
        action: args.terms.action.clone(),
    };
    let request = ExportRequest {
        query: (!query.is_empty()).then_some(query),
        receipt_key: args
            .receipt_key
            .as_deref()
            .map(super::receipt::pinned_key)
            .transpose()?,
        source: args.source.clone(),
        from_sequence: args.from_seq,
        to_sequence: args.to_seq,
        since_ms: args
            .since
            .as_deref()
            .map(|t| parse_time("--since", t))
            .transpose()?,
        until_ms: args
            .until
            .as_deref()
            .map(|t| parse_time("--until", t))
            .transpose()?,
        source_key: args
            .source_vkey
            .as_deref()
            .map(super::source::source_key)
            .transpose()?,
    };
    if args.out.exists() {
        return Err(ClientError::Input(format!(
            "{} already exists; not overwriting it",
            args.out.display()
        )));
    }
    let mut client = context.connect().await?;
    let result = client.export_evidence(&request).await;
    let (pack, findings) = super::context::finish(&mut client, result)?;
    let built = files::build(&pack, &findings);
    archive::write_pack(&args.out, &built)?;
    let bytes: usize = built.values().map(Vec::len).sum();
    if context.json {
        print_json(&json!({
            "ok": true,
            "out": args.out.display().to_string(),
            "files": built.len(),
            "bytes": bytes,
            "events": pack.events.len(),
            "checkpoint_size": pack.checkpoint.size().0,
            "complete": findings.is_complete(),
            "missing": ranges_text(&findings.missing),
            "receipts": pack.receipts.as_ref().map_or(0, |_| pack.events.len()),
            "caveat": pack.selection.caveat(),
        }));
    } else {
        print_line(&format!(
            "wrote {} ({} files, {bytes} bytes): {} events of {} against checkpoint size {}; \
             {}",
            args.out.display(),
            built.len(),
            pack.events.len(),
            pack.selection.source,
            pack.checkpoint.size().0,
            if findings.is_complete() {
                "COMPLETE".to_owned()
            } else {
                format!("INCOMPLETE, missing {}", ranges_text(&findings.missing))
            }
        ));
        if let Some(caveat) = pack.selection.caveat() {
            print_line(caveat);
        }
    }
    Ok(())
}

/// `merklog evidence verify PACK`: reads files, never connects.
pub(super) fn verify(context: &Context, args: EvidenceVerifyArgs) -> Result<(), ClientError> {
    let pins = Pins {
        log_key: context.log_key()?,
        policy: context.policy()?,
        source_key: args
            .source_vkey
            .as_deref()
            .map(super::source::source_key)
            .transpose()?,
        receipt_key: args
            .receipt_key
            .as_deref()
            .map(super::receipt::pinned_key)
            .transpose()?,
    };
    let pack_files = archive::read_pack(&args.pack)?;
    let verified = verify_files(&pack_files, &pins)?;
    let pack = &verified.pack;
    let findings = &verified.findings;
    let origin = |pinned: bool| {
        if pinned {
            "pinned by the auditor"
        } else {
            "taken from the pack (not independently pinned)"
        }
    };
    if context.json {
        print_json(&json!({
            "ok": true,
            "pack": args.pack.display().to_string(),
            "files": verified.files,
            "source": pack.selection.source,
            "log_origin": pack.checkpoint.origin(),
            "checkpoint_size": pack.checkpoint.size().0,
            "log_key": origin(verified.log_key_pinned),
            "source_key": origin(verified.source_key_pinned),
            "policy": if verified.policy_pinned { "pinned by the auditor" }
                else if pack.policy_text.is_some() { "taken from the pack (not independently pinned)" }
                else { "none" },
            "cosigners": findings.cosigners.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "pinned_policy_cosigners": verified.pinned_cosigners,
            "events": pack.events.len(),
            "complete": findings.is_complete(),
            "missing": findings.missing.iter().map(|(a, b)| json!({"first": a, "last": b})).collect::<Vec<_>>(),
            "missing_text": ranges_text(&findings.missing),
            "equivocations": findings.equivocations,
            "receipts": pack.receipts.as_ref().map_or(0, |_| pack.events.len()),
            "receipt_key": pack.receipts.as_ref().map(|r| r.key.to_text()),
            "receipt_key_origin": origin(verified.receipt_key_pinned),
            "caveat": pack.selection.caveat(),
        }));
        return Ok(());
    }
    print_line(&format!(
        "verified {} offline: {} files, each matching its SHA-256 in manifest.json; \
         manifest.json and report.html regenerated byte for byte",
        args.pack.display(),
        verified.files
    ));
    print_line(&format!(
        "log key {} ({})",
        pack.log_key_vkey(),
        origin(verified.log_key_pinned)
    ));
    print_line(&format!(
        "source key {} ({})",
        pack.source_key.to_vkey(),
        origin(verified.source_key_pinned)
    ));
    match (&pack.policy_text, verified.policy_pinned) {
        (_, true) => print_line(&format!(
            "witness quorum of the pinned policy met by {}",
            verified.pinned_cosigners.join(", ")
        )),
        (Some(_), false) => print_line(
            "witness quorum of the pack's policy met (policy taken from the pack, not \
             independently pinned)",
        ),
        (None, false) => print_line("no witness policy: cosignatures not checked"),
    }
    print_line(&format!(
        "checkpoint {} size {} signed by the log{}{}",
        pack.checkpoint.origin(),
        pack.checkpoint.size().0,
        if findings.cosigners.is_empty() {
            String::new()
        } else {
            format!(
                ", cosigned by {}",
                findings
                    .cosigners
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        findings
            .as_of()
            .map(|s| format!(", as of {}", time_text(s * 1000)))
            .unwrap_or_default()
    ));
    print_line(&format!(
        "{} events: every source signature and inclusion proof verified; {} earlier \
         checkpoints proven consistent",
        pack.events.len(),
        pack.earlier.len()
    ));
    if let Some(receipts) = &pack.receipts {
        print_line(&format!(
            "{} COSE receipts (RFC 9942) verified against the same root, receipt key {} ({})",
            pack.events.len(),
            receipts.key.to_text(),
            origin(verified.receipt_key_pinned)
        ));
    }
    print_line(&match findings.span {
        Some((a, b)) if findings.is_complete() => {
            format!("COMPLETE: every sequence number {a}..={b} is in the pack or declared unused")
        }
        Some((a, b)) => format!(
            "INCOMPLETE: of sequence numbers {a}..={b}, missing {} ({} numbers){}",
            ranges_text(&findings.missing),
            findings.missing_count(),
            if findings.equivocations.is_empty() {
                String::new()
            } else {
                format!("; equivocation at {:?}", findings.equivocations)
            }
        ),
        None => "nothing selected".to_owned(),
    });
    if let Some(caveat) = pack.selection.caveat() {
        print_line(caveat);
    }
    Ok(())
}
