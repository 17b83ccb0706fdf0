//! Verifying a pack, offline: only its files and the keys the auditor pins. No
//! network, no clock, no state. Every failure names the file and the check.

use std::collections::BTreeMap;

use merklog_event::{Event, SourceKey};
use merklog_merkle::{Hash, LeafIndex, TreeSize, empty_root, hash_leaf, verify_consistency};
use merklog_note::{
    Ed25519Verifier, Policy, SignedCheckpoint, TlogProof, Verifier as _, parse_verifier_key,
};

use merklog_receipt::{PublicKey, Receipt, SignedTreeHead};
use rayon::prelude::*;

use super::files::{
    self, LOG_VKEY, MANIFEST, POLICY, RECEIPT_KEY, SOURCE_VKEY, checkpoint_path, consistency_path,
    event_path, proof_path, receipt_path,
};
use super::manifest::{Manifest, sha256_hex};
use super::model::{
    EarlierCheckpoint, Findings, Pack, PackEvent, PackReceipts, QueryTerms, Selection, analyze,
};
use crate::ClientError;

/// The keys an auditor obtained independently and trusts more than the pack's.
#[derive(Debug, Clone, Default)]
pub struct Pins {
    /// The log's verifier key.
    pub log_key: Option<Ed25519Verifier>,
    /// A witness policy whose quorum the checkpoint must meet.
    pub policy: Option<Policy>,
    /// The source's verifier key.
    pub source_key: Option<SourceKey>,
    /// The log's receipt key.
    pub receipt_key: Option<PublicKey>,
}

/// A pack that verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its contents.
    pub pack: Pack,
    /// What follows from them.
    pub findings: Findings,
    /// The log key was pinned by the auditor (else taken from the pack).
    pub log_key_pinned: bool,
    /// A policy was pinned by the auditor.
    pub policy_pinned: bool,
    /// The witnesses of the pinned policy that cosigned.
    pub pinned_cosigners: Vec<String>,
    /// The source key was pinned by the auditor.
    pub source_key_pinned: bool,
    /// The receipt key was pinned by the auditor.
    pub receipt_key_pinned: bool,
    /// How many files were checked.
    pub files: usize,
}

fn fail(file: impl Into<String>, check: &'static str, reason: impl Into<String>) -> ClientError {
    ClientError::Evidence {
        file: file.into(),
        check,
        reason: reason.into(),
    }
}

fn text<'a>(files: &'a BTreeMap<String, Vec<u8>>, path: &str) -> Result<&'a str, ClientError> {
    let bytes = files
        .get(path)
        .ok_or_else(|| fail(path, "present", "the file is missing"))?;
    std::str::from_utf8(bytes).map_err(|_| fail(path, "format", "not UTF-8"))
}

/// The file's number: `events/00000000000000000042.mlev` is 42.
fn number_of(path: &str, dir: &str, suffix: &str) -> Option<u64> {
    let digits = path.strip_prefix(dir)?.strip_suffix(suffix)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Verifies a pack given as its files (path inside the pack -> bytes).
pub fn verify_files(
    files: &BTreeMap<String, Vec<u8>>,
    pins: &Pins,
) -> Result<Verified, ClientError> {
    // 1. The manifest: strict syntax, format, its own digest.
    let manifest_bytes = files
        .get(MANIFEST)
        .ok_or_else(|| fail(MANIFEST, "present", "the pack has no manifest"))?;
    let manifest = Manifest::parse(manifest_bytes)?;

    // 2. Exactly the listed files, each with its digest.
    let listed: BTreeMap<&str, &super::manifest::FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    if listed.len() != manifest.files.len() {
        return Err(fail(MANIFEST, "file list", "a file is listed twice"));
    }
    for path in files.keys() {
        if path != MANIFEST && !listed.contains_key(path.as_str()) {
            return Err(fail(path, "listed", "the file is not in the manifest"));
        }
    }
    // Digests on every core; the first mismatch in path order is the one named.
    let digests: Vec<Result<(), ClientError>> = listed
        .par_iter()
        .map(|(path, entry)| {
            let bytes = files
                .get(*path)
                .ok_or_else(|| fail(*path, "present", "listed in the manifest but missing"))?;
            let digest = sha256_hex(bytes);
            if bytes.len() as u64 != entry.bytes || digest != entry.sha256 {
                return Err(fail(
                    *path,
                    "sha256",
                    format!(
                        "{} bytes with SHA-256 {digest}, the manifest says {} bytes with \
                         SHA-256 {}",
                        bytes.len(),
                        entry.bytes,
                        entry.sha256
                    ),
                ));
            }
            Ok(())
        })
        .collect();
    digests.into_iter().collect::<Result<(), ClientError>>()?;

    // 3. Keys: the auditor's pins first, the pack's as a fallback.
    let pack_log_key = parse_verifier_key(text(files, LOG_VKEY)?.trim())
        .map_err(|e| fail(LOG_VKEY, "log key", e.to_string()))?;
    if let Some(pinned) = &pins.log_key
        && pinned.to_vkey() != pack_log_key.to_vkey()
    {
        return Err(fail(
            LOG_VKEY,
            "pinned log key",
            format!(
                "the pack's log key {} is not the pinned {}",
                pack_log_key.to_vkey(),
                pinned.to_vkey()
            ),
        ));
    }
    let policy_text = match &manifest.log.policy_file {
        Some(path) if path == POLICY => Some(text(files, POLICY)?.to_owned()),
        Some(path) => {
            return Err(fail(
                MANIFEST,
                "policy file",
                format!("{path:?} is not {POLICY}"),
            ));
        }
        None => None,
    };
    let policy = policy_text
        .as_deref()
        .map(Policy::parse)
        .transpose()
        .map_err(|e| fail(POLICY, "policy", e.to_string()))?;
    let pack_source_key = SourceKey::parse(text(files, SOURCE_VKEY)?)
        .map_err(|e| fail(SOURCE_VKEY, "source key", e.to_string()))?;
    if let Some(pinned) = &pins.source_key
        && pinned.to_vkey() != pack_source_key.to_vkey()
    {
        return Err(fail(
            SOURCE_VKEY,
            "pinned source key",
            format!(
                "the pack's source key is not the pinned {}",
                pinned.to_vkey()
            ),
        ));
    }
    let selection = Selection {
        source: manifest.selection.source.clone(),
        from_sequence: manifest.selection.from_sequence,
        to_sequence: manifest.selection.to_sequence,
        since_ms: manifest.selection.since_unix_ms,
        until_ms: manifest.selection.until_unix_ms,
        query: manifest.selection.query.as_ref().map(|q| QueryTerms {
            actor: q.actor.clone(),
            model: q.model.clone(),
            action: q.action.clone(),
        }),
    };
    if selection.query.as_ref().is_some_and(QueryTerms::is_empty) {
        return Err(fail(MANIFEST, "selection", "a query without terms"));
    }
    if pack_source_key.name() != selection.source {
        return Err(fail(
            SOURCE_VKEY,
            "source key",
            format!(
                "the key is for {:?}, the selection is of {:?}",
                pack_source_key.name(),
                selection.source
            ),
        ));
    }

    // 4. The checkpoint: the log's signature, the policies' quorums.
    let checkpoint_file = checkpoint_path(manifest.checkpoint.size);
    if manifest.checkpoint.file != checkpoint_file {
        return Err(fail(
            MANIFEST,
            "checkpoint",
            "the checkpoint file is misnamed",
        ));
    }
    let open = |path: &str| -> Result<SignedCheckpoint, ClientError> {
        let note = files
            .get(path)
            .ok_or_else(|| fail(path, "present", "the checkpoint file is missing"))?;
        let signed = SignedCheckpoint::open(
            bytes::Bytes::copy_from_slice(note),
            &pack_log_key,
            Some(pack_log_key.name()),
        )
        .map_err(|e| fail(path, "log signature", e.to_string()))?;
        if let Some(policy) = &policy {
            policy
                .check_witnesses(signed.clone())
                .map_err(|e| fail(path, "witness quorum (pack policy)", e.to_string()))?;
        }
        if signed.size().0 == 0 && signed.root() != empty_root() {
            return Err(fail(path, "empty tree", "size 0 with a non-empty root"));
        }
        Ok(signed)
    };
    let checkpoint = open(&checkpoint_file)?;
    if checkpoint.size().0 != manifest.checkpoint.size {
        return Err(fail(
            &checkpoint_file,
            "size",
            "not the size the manifest names",
        ));
    }
    let mut pinned_cosigners = Vec::new();
    if let Some(pinned) = &pins.policy {
        let checked = pinned.check_witnesses(checkpoint.clone()).map_err(|e| {
            fail(
                &checkpoint_file,
                "witness quorum (pinned policy)",
                e.to_string(),
            )
        })?;
        pinned_cosigners = checked.cosigners().to_vec();
    }

    // 5. Earlier checkpoints and their consistency proofs.
    let mut earlier = Vec::new();
    for entry in &manifest.earlier_checkpoints {
        let path = checkpoint_path(entry.size);
        let proof_file = consistency_path(entry.size, checkpoint.size().0);
        if entry.file != path || entry.consistency_file != proof_file {
            return Err(fail(
                MANIFEST,
                "earlier checkpoint",
                "its files are misnamed",
            ));
        }
        let old = open(&path)?;
        if old.size().0 != entry.size || old.size() >= checkpoint.size() {
            return Err(fail(
                &path,
                "size",
                "not an earlier, smaller tree as the manifest says",
            ));
        }
        let proof = hashes(text(files, &proof_file)?)
            .map_err(|reason| fail(&proof_file, "format", reason))?;
        if old.size().0 > 0 {
            verify_consistency(
                old.size(),
                checkpoint.size(),
                &proof,
                &old.root(),
                &checkpoint.root(),
            )
            .map_err(|e| fail(&proof_file, "consistency proof", e.to_string()))?;
        }
        earlier.push(EarlierCheckpoint {
            checkpoint: old,
            consistency: proof,
        });
    }

    // 6. Events: signature under the source key, inclusion in the checkpoint.
    // Checked on every core; the first failure in number order is the one named.
    let event_files: Vec<(&String, &Vec<u8>)> = files
        .range("events/".to_owned()..)
        .take_while(|(path, _)| path.starts_with("events/"))
        .collect();
    let checked: Vec<Result<(u64, PackEvent), ClientError>> = event_files
        .par_iter()
        .map(|(path, bytes)| verified_pack_event(path, bytes, files, &pack_source_key, &checkpoint))
        .collect();
    let events = checked
        .into_iter()
        .collect::<Result<BTreeMap<u64, PackEvent>, ClientError>>()?;

    // 7. Receipts: one per event, against the checkpoint's root.
    let receipts = receipts(files, &manifest, pins, &checkpoint, &events)?;

    // 8. Equivocation evidence: a second envelope, signed, for a number in the pack.
    let mut equivocations = Vec::new();
    for (path, bytes) in files.range("equivocations/".to_owned()..) {
        if !path.starts_with("equivocations/") {
            break;
        }
        let event = Event::parse(bytes).map_err(|e| fail(path, "envelope", e.to_string()))?;
        event
            .verify(&pack_source_key)
            .map_err(|e| fail(path, "source signature", e.to_string()))?;
        match events.get(&event.sequence()) {
            Some(logged) if logged.event.as_bytes() != event.as_bytes() => {}
            _ => {
                return Err(fail(
                    path,
                    "equivocation",
                    "no different envelope with this number is in the pack",
                ));
            }
        }
        equivocations.push(event);
    }
    equivocations.sort_by(|a, b| {
        a.sequence()
            .cmp(&b.sequence())
            .then_with(|| a.as_bytes().cmp(b.as_bytes()))
    });

    let pack = Pack {
        selection,
        log_key: pack_log_key,
        policy_text,
        source_key: pack_source_key,
        checkpoint,
        earlier,
        events,
        equivocations,
        receipts,
    };

    // 9. Completeness and the rest, recomputed; then every file rebuilt and compared
    // (the manifest's and the report's claims included).
    let findings =
        analyze(&pack, policy.as_ref()).map_err(|(sequence, reason)| match sequence {
            Some(n) => fail(event_path(n), "selection", reason),
            None => fail(&checkpoint_file, "cosignatures", reason),
        })?;
    let rebuilt = files::build(&pack, &findings);
    for (path, bytes) in files {
        if rebuilt.get(path) != Some(bytes) {
            return Err(fail(
                path,
                "regenerated",
                "differs from what the verified contents produce",
            ));
        }
    }
    if let Some(path) = rebuilt.keys().find(|p| !files.contains_key(*p)) {
        return Err(fail(
            path,
            "present",
            "the verified contents call for this file",
        ));
    }
    Ok(Verified {
        pack,
        findings,
        log_key_pinned: pins.log_key.is_some(),
        policy_pinned: pins.policy.is_some(),
        pinned_cosigners,
        source_key_pinned: pins.source_key.is_some(),
        receipt_key_pinned: pins.receipt_key.is_some(),
        files: files.len(),
    })
}

/// One event file: its name, envelope and source signature, and its tlog-proof
/// against the pack's checkpoint.
fn verified_pack_event(
    path: &str,
    bytes: &[u8],
    files: &BTreeMap<String, Vec<u8>>,
    source_key: &SourceKey,
    checkpoint: &SignedCheckpoint,
) -> Result<(u64, PackEvent), ClientError> {
    let sequence = number_of(path, "events/", ".mlev")
        .ok_or_else(|| fail(path, "name", "not events/<20-digit number>.mlev"))?;
    let event = Event::parse(bytes).map_err(|e| fail(path, "envelope", e.to_string()))?;
    if event.sequence() != sequence {
        return Err(fail(
            path,
            "envelope",
            format!("carries number {}", event.sequence()),
        ));
    }
    event
        .verify(source_key)
        .map_err(|e| fail(path, "source signature", e.to_string()))?;
    let proof_file = proof_path(sequence);
    let proof_bytes = files
        .get(&proof_file)
        .ok_or_else(|| fail(&proof_file, "present", "the event's proof is missing"))?;
    let proof = TlogProof::parse(proof_bytes)
        .map_err(|e| fail(&proof_file, "tlog-proof", e.to_string()))?;
    if proof.checkpoint != checkpoint.note().as_ref() {
        return Err(fail(
            &proof_file,
            "checkpoint",
            "not against the pack's checkpoint",
        ));
    }
    merklog_merkle::verify_inclusion(
        &hash_leaf(bytes),
        LeafIndex(proof.index),
        TreeSize(checkpoint.size().0),
        &proof.proof,
        &checkpoint.root(),
    )
    .map_err(|e| fail(&proof_file, "inclusion proof", e.to_string()))?;
    Ok((
        sequence,
        PackEvent {
            event,
            index: proof.index,
            proof: proof.proof,
        },
    ))
}

/// Checks every event's COSE receipt with merklog-receipt: the first one's signature
/// under the receipt key, then every receipt's proof from its event to the
/// checkpoint's root at the checkpoint's size, carrying that same signature over the
/// same signed bytes (one signature per tree head, so checking it once suffices).
fn receipts(
    files: &BTreeMap<String, Vec<u8>>,
    manifest: &Manifest,
    pins: &Pins,
    checkpoint: &SignedCheckpoint,
    events: &BTreeMap<u64, PackEvent>,
) -> Result<Option<PackReceipts>, ClientError> {
    let Some(entry) = &manifest.receipts else {
        if events.is_empty() {
            return Ok(None);
        }
        return Err(fail(
            MANIFEST,
            "receipts",
            "the pack's events have no receipts",
        ));
    };
    if entry.key_file != RECEIPT_KEY
        || entry.tree_size != checkpoint.size().0
        || entry.count != events.len() as u64
    {
        return Err(fail(
            MANIFEST,
            "receipts",
            "not one receipt per event at the checkpoint's size with keys/receipt.pub",
        ));
    }
    let key = PublicKey::from_text(text(files, RECEIPT_KEY)?.trim())
        .map_err(|e| fail(RECEIPT_KEY, "receipt key", e.to_string()))?;
    if let Some(pinned) = &pins.receipt_key
        && *pinned != key
    {
        return Err(fail(
            RECEIPT_KEY,
            "pinned receipt key",
            format!(
                "the pack's receipt key {} is not the pinned {}",
                key.to_text(),
                pinned.to_text()
            ),
        ));
    }
    // The first receipt's signature is verified; the others must carry that same
    // signed tree head, and are checked on every core.
    let check = |sequence: u64, event: &PackEvent, head: Option<&SignedTreeHead>| {
        let path = receipt_path(sequence);
        let bytes = files
            .get(&path)
            .ok_or_else(|| fail(&path, "present", "the event's receipt is missing"))?;
        let receipt = Receipt::parse(bytes).map_err(|e| fail(&path, "receipt", e.to_string()))?;
        let leaf = hash_leaf(event.event.as_bytes());
        let (verified, first) = match head {
            Some(head) => (head.check(&receipt, &leaf), None),
            None => match receipt.verified_tree_head(&leaf, &key) {
                Ok((verified, first)) => (Ok(verified), Some(first)),
                Err(e) => (Err(e), None),
            },
        };
        let verified = verified.map_err(|e| fail(&path, "receipt", e.to_string()))?;
        if verified.tree_size != checkpoint.size()
            || verified.root != checkpoint.root()
            || verified.leaf_index.0 != event.index
        {
            return Err(fail(
                &path,
                "receipt",
                format!(
                    "proves entry {} at size {} with root {}, not the event's entry {} in the \
                     checkpoint",
                    verified.leaf_index.0, verified.tree_size.0, verified.root, event.index
                ),
            ));
        }
        Ok(first)
    };
    let mut all = events.iter();
    let Some((sequence, event)) = all.next() else {
        return Ok(None);
    };
    let Some(head) = check(*sequence, event, None)? else {
        return Err(fail(receipt_path(*sequence), "receipt", "no tree head"));
    };
    let rest: Vec<(&u64, &PackEvent)> = all.collect();
    let checked: Vec<Result<Option<SignedTreeHead>, ClientError>> = rest
        .par_iter()
        .map(|(sequence, event)| check(**sequence, event, Some(&head)))
        .collect();
    for result in checked {
        result?;
    }
    Ok(Some(PackReceipts { key, head }))
}

/// A consistency proof file: one base64 hash per line.
fn hashes(text: &str) -> Result<Vec<Hash>, String> {
    text.lines()
        .map(|line| {
            crate::encoding::parse_hash(line).map_err(|_| format!("{line:?} is not a base64 hash"))
        })
        .collect()
}
