//! A pack's files, built from its contents: the same contents always give the same
//! bytes, so the verifier rebuilds every file (the manifest and the report too) and
//! compares.

use std::collections::BTreeMap;

use merklog_note::{Policy, TlogProof};

use merklog_merkle::{LeafIndex, hash_leaf};
use rayon::prelude::*;

use super::manifest::{
    CheckpointEntry, CompletenessEntry, CosignatureEntry, Counts, EarlierEntry, FORMAT, FileEntry,
    LogEntry, Manifest, QueryEntry, Range, ReceiptsEntry, SelectionEntry, SourceEntry, hex,
    sha256_hex,
};
use super::model::{Findings, Pack, PackEvent, Role};
use super::report;
use crate::SequenceRange;
use crate::encoding::b64;

/// The manifest's path.
pub const MANIFEST: &str = "manifest.json";
/// The report's path.
pub const REPORT: &str = "report.html";
/// The log's verifier key.
pub const LOG_VKEY: &str = "keys/log.vkey";
/// The source's verifier key.
pub const SOURCE_VKEY: &str = "keys/source.vkey";
/// The witness policy.
pub const POLICY: &str = "keys/policy.txt";
/// The receipt key, as merklogd's `receipt.pub`.
pub const RECEIPT_KEY: &str = "keys/receipt.pub";

/// An event's COSE receipt file.
pub fn receipt_path(sequence: u64) -> String {
    format!("receipts/{sequence:020}.cose")
}

/// An event's envelope file.
pub fn event_path(sequence: u64) -> String {
    format!("events/{sequence:020}.mlev")
}

/// An event's tlog-proof file.
pub fn proof_path(sequence: u64) -> String {
    format!("proofs/{sequence:020}.tlog-proof")
}

/// A checkpoint's note file.
pub fn checkpoint_path(size: u64) -> String {
    format!("checkpoints/{size:020}.checkpoint")
}

/// A consistency proof's file.
pub fn consistency_path(old: u64, new: u64) -> String {
    format!("consistency/{old:020}-{new:020}.proof")
}

/// The `k`-th second envelope for a number.
pub fn equivocation_path(sequence: u64, k: usize) -> String {
    format!("equivocations/{sequence:020}-{k}.mlev")
}

/// A consistency proof as a file: one base64 hash per line.
pub fn consistency_bytes(proof: &[merklog_merkle::Hash]) -> Vec<u8> {
    proof
        .iter()
        .map(|h| format!("{}\n", b64(h.as_bytes())))
        .collect::<String>()
        .into_bytes()
}

fn ranges(ranges: &[SequenceRange]) -> Vec<Range> {
    ranges
        .iter()
        .map(|(first, last)| Range {
            first: *first,
            last: *last,
        })
        .collect()
}

/// Every file of the pack, by path, the manifest last built.
pub fn build(pack: &Pack, findings: &Findings) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert(
        LOG_VKEY.into(),
        format!("{}\n", pack.log_key_vkey()).into_bytes(),
    );
    files.insert(
        SOURCE_VKEY.into(),
        format!("{}\n", pack.source_key.to_vkey()).into_bytes(),
    );
    if let Some(policy) = &pack.policy_text {
        files.insert(POLICY.into(), policy.clone().into_bytes());
    }
    let size = pack.checkpoint.size().0;
    files.insert(checkpoint_path(size), pack.checkpoint.note().to_vec());
    for earlier in &pack.earlier {
        let old = earlier.checkpoint.size().0;
        files.insert(checkpoint_path(old), earlier.checkpoint.note().to_vec());
        files.insert(
            consistency_path(old, size),
            consistency_bytes(&earlier.consistency),
        );
    }
    if let Some(receipts) = &pack.receipts {
        files.insert(
            RECEIPT_KEY.into(),
            format!("{}\n", receipts.key.to_text()).into_bytes(),
        );
    }
    // Each event's files are independent of the others': built on every core.
    let per_event: Vec<Vec<(String, Vec<u8>)>> = pack
        .events
        .par_iter()
        .map(|(sequence, event)| event_files(pack, *sequence, event))
        .collect();
    files.extend(per_event.into_iter().flatten());
    let mut k = 0;
    let mut previous = None;
    for other in &pack.equivocations {
        k = if previous == Some(other.sequence()) {
            k + 1
        } else {
            0
        };
        previous = Some(other.sequence());
        files.insert(
            equivocation_path(other.sequence(), k),
            other.as_bytes().to_vec(),
        );
    }
    files.insert(REPORT.into(), report::render(pack, findings).into_bytes());
    let manifest = manifest(pack, findings, &files);
    files.insert(MANIFEST.into(), manifest.to_bytes());
    files
}

/// One event's envelope, tlog-proof and (with receipts) COSE receipt files.
fn event_files(pack: &Pack, sequence: u64, event: &PackEvent) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::with_capacity(3);
    out.push((event_path(sequence), event.event.as_bytes().to_vec()));
    let proof = TlogProof::new(
        event.index,
        event.proof.clone(),
        pack.checkpoint.note().to_vec(),
    );
    out.push((proof_path(sequence), proof.to_bytes()));
    if let Some(receipts) = &pack.receipts {
        // The proofs were checked against this root when the pack was made or
        // read, so assembling cannot fail; a receipt that would not verify is left
        // out, and the verifier then blames its absence.
        if let Ok(bytes) = receipts.head.receipt(
            &hash_leaf(event.event.as_bytes()),
            LeafIndex(event.index),
            &event.proof,
        ) {
            out.push((receipt_path(sequence), bytes));
        }
    }
    out
}

/// The manifest of a pack whose other files are `files`.
fn manifest(pack: &Pack, findings: &Findings, files: &BTreeMap<String, Vec<u8>>) -> Manifest {
    let selection = &pack.selection;
    let size = pack.checkpoint.size().0;
    Manifest {
        format: FORMAT.into(),
        selection: SelectionEntry {
            source: selection.source.clone(),
            from_sequence: selection.from_sequence,
            to_sequence: selection.to_sequence,
            since_unix_ms: selection.since_ms,
            until_unix_ms: selection.until_ms,
            query: selection.query.as_ref().map(|q| QueryEntry {
                actor: q.actor.clone(),
                model: q.model.clone(),
                action: q.action.clone(),
            }),
        },
        log: LogEntry {
            origin: pack.checkpoint.origin().to_owned(),
            vkey_file: LOG_VKEY.into(),
            policy_file: pack.policy_text.as_ref().map(|_| POLICY.into()),
        },
        source: SourceEntry {
            name: pack.source_key.name().to_owned(),
            vkey_file: SOURCE_VKEY.into(),
        },
        checkpoint: CheckpointEntry {
            file: checkpoint_path(size),
            size,
            root: hex(pack.checkpoint.root().as_bytes()),
            cosignatures: findings
                .cosigners
                .iter()
                .map(|c| CosignatureEntry {
                    witness: c.name.clone(),
                    timestamp: c.timestamp,
                })
                .collect(),
            unverified_signers: findings.unverified_signers.clone(),
            as_of: findings
                .as_of()
                .map(|s| super::model::time_text(s.saturating_mul(1000))),
        },
        earlier_checkpoints: pack
            .earlier
            .iter()
            .map(|e| EarlierEntry {
                file: checkpoint_path(e.checkpoint.size().0),
                size: e.checkpoint.size().0,
                root: hex(e.checkpoint.root().as_bytes()),
                consistency_file: consistency_path(e.checkpoint.size().0, size),
            })
            .collect(),
        receipts: pack.receipts.as_ref().map(|r| ReceiptsEntry {
            key_file: RECEIPT_KEY.into(),
            algorithm: r.key.algorithm().name().to_owned(),
            key_id: hex(&r.key.key_id()),
            tree_size: r.head.tree_size().0,
            count: pack.events.len() as u64,
        }),
        counts: Counts {
            events: pack.events.len() as u64,
            selected: findings.count(Role::Selected),
            context: findings.count(Role::Context),
            declarations: findings.count(Role::Declaration),
            heartbeats: findings.heartbeats,
            equivocation_envelopes: pack.equivocations.len() as u64,
        },
        completeness: CompletenessEntry {
            span: findings.span.map(|(first, last)| Range { first, last }),
            complete: findings.is_complete(),
            missing_count: findings.missing_count(),
            missing: ranges(&findings.missing),
            declared_unused: ranges(&findings.declared_unused),
            equivocations: findings.equivocations.clone(),
            caveat: selection.caveat().map(str::to_owned),
        },
        files: files
            .par_iter()
            .map(|(path, bytes)| FileEntry {
                path: path.clone(),
                bytes: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
        self_sha256: String::new(),
    }
}

impl Pack {
    /// The log key's vkey text.
    pub fn log_key_vkey(&self) -> String {
        self.log_key.to_vkey()
    }

    /// The pack's policy, parsed (it was checked when the pack was made or read).
    pub fn policy(&self) -> Option<Policy> {
        self.policy_text
            .as_deref()
            .and_then(|text| Policy::parse(text).ok())
    }
}
