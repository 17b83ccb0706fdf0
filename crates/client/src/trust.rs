//! What the client trusts: the log's verifier key (whose name is the log's origin)
//! and, optionally, a witness policy; and the checks a checkpoint must pass before the
//! client holds it as a [`SignedCheckpoint`].

use std::path::Path;

use bytes::Bytes;
use merklog_merkle::empty_root;
use merklog_note::{
    Ed25519Verifier, Note, Policy, SignedCheckpoint, Verifier as _, parse_verifier_key,
};
use merklog_proto::convert::CheckpointParts;
use merklog_proto::v1;

use crate::ClientError;

/// Verifier key files larger than this are refused (a vkey is under 400 bytes).
const MAX_VKEY_FILE_LEN: u64 = 4096;

/// The trust anchor of one log: its Ed25519 verifier key and an optional
/// witness policy whose quorum every checkpoint must meet.
#[derive(Debug, Clone)]
pub struct TrustedLog {
    verifier: Ed25519Verifier,
    policy: Option<Policy>,
}

impl TrustedLog {
    /// Trusts checkpoints signed by `verifier`, whose key name is the log's origin
    /// (C2SP tlog-checkpoint: the log's key is named after its origin). With a
    /// `policy`, every checkpoint must also carry a cosignature quorum of its
    /// witnesses (the policy's `log` lines are not used).
    pub fn new(verifier: Ed25519Verifier, policy: Option<Policy>) -> Self {
        Self { verifier, policy }
    }

    /// Trusts the one log a policy lists, with the policy's witness quorum.
    pub fn from_policy(policy: Policy) -> Result<Self, ClientError> {
        match policy.logs() {
            [log] => Ok(Self {
                verifier: log.verifier.clone(),
                policy: Some(policy),
            }),
            logs => Err(ClientError::Input(format!(
                "the policy lists {} logs; name the one to use with --log-key",
                logs.len()
            ))),
        }
    }

    /// The log's origin (the verifier key's name).
    pub fn origin(&self) -> &str {
        self.verifier.name()
    }

    /// The verifier key.
    pub fn verifier(&self) -> &Ed25519Verifier {
        &self.verifier
    }

    /// The verifier key text.
    pub fn vkey(&self) -> String {
        self.verifier.to_vkey()
    }

    /// The witness policy, if any.
    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }

    /// Verifies a signed checkpoint note: the log's signature, the origin, the
    /// witness quorum (with a policy), and that a size-0 tree has the empty root.
    pub fn open(&self, note: &[u8]) -> Result<SignedCheckpoint, ClientError> {
        let rejected = |source| ClientError::Checkpoint {
            source: Box::new(source),
            note: Bytes::copy_from_slice(note),
        };
        let mut signed = match SignedCheckpoint::open(
            Bytes::copy_from_slice(note),
            &self.verifier,
            Some(self.origin()),
        ) {
            Ok(signed) => signed,
            Err(e) => return Err(other_log(note, &self.verifier).unwrap_or_else(|| rejected(e))),
        };
        if let Some(policy) = &self.policy {
            signed = policy.check_witnesses(signed).map_err(rejected)?;
        }
        let root = signed.root();
        if signed.size().0 == 0 && root != empty_root() {
            return Err(ClientError::CheckpointContradiction {
                reason: format!(
                    "a signed size-0 checkpoint has root {}, not SHA-256(\"\")",
                    root
                ),
                note: Bytes::copy_from_slice(note),
            });
        }
        Ok(signed)
    }

    /// Verifies a checkpoint message: the signed note as [`TrustedLog::open`]
    /// does, and that its unsigned `size` and `root` fields equal the signed text.
    pub fn open_wire(&self, wire: v1::Checkpoint) -> Result<SignedCheckpoint, ClientError> {
        let parts = CheckpointParts::from_wire(wire)
            .map_err(|e| ClientError::Malformed(format!("checkpoint: {e}")))?;
        let signed = self.open(&parts.note)?;
        if parts.size != signed.size() || parts.root != signed.root() {
            return Err(ClientError::CheckpointContradiction {
                reason: format!(
                    "its fields say size {} root {}, but the signed note says size {} root {}",
                    parts.size.0,
                    parts.root,
                    signed.size().0,
                    signed.root()
                ),
                note: signed.note().clone(),
            });
        }
        Ok(signed)
    }
}

/// When a note is not signed with `verifier` at all (no signature line carries
/// its name and key ID), the configuration names the wrong log: an error naming
/// both keys. `None` when the note does carry such a line (a bad signature there
/// is a verification failure) or cannot be parsed.
pub(crate) fn other_log(note: &[u8], verifier: &Ed25519Verifier) -> Option<ClientError> {
    let parsed = Note::parse(note).ok()?;
    let ours = (verifier.name(), verifier.key_id());
    if parsed
        .signatures()
        .iter()
        .any(|s| (s.name(), s.key_id()) == ours)
    {
        return None;
    }
    let origin = parsed.text().lines().next().unwrap_or_default();
    let signers: Vec<String> = parsed
        .signatures()
        .iter()
        .map(|s| format!("{}+{:08x}", s.name(), s.key_id()))
        .collect();
    Some(ClientError::WrongKey(format!(
        "the log key does not belong to this log: the checkpoint is of the log {origin:?}, signed \
         by {}; the configured key is {}+{:08x} (--log-key, MERKLOG_LOG_KEY or the policy's log \
         line). Use the log's own verifier key (its <data-dir>/log.vkey)",
        if signers.is_empty() {
            "no key".to_owned()
        } else {
            signers.join(", ")
        },
        ours.0,
        ours.1
    )))
}

/// Reads a log verifier key given as its text (`<origin>+<id>+<base64>`) or as the
/// path of a file holding it (such as `<data-dir>/log.vkey`).
pub fn load_verifier_key(value: &str) -> Result<Ed25519Verifier, ClientError> {
    let private = |what: String| {
        ClientError::Input(format!(
            "{what} holds a private signing key (PRIVATE+KEY+...), not a verifier key: give the \
             public key, the log.vkey next to log.key, and keep the private key on the server"
        ))
    };
    if value.trim_start().starts_with("PRIVATE+KEY+") {
        return Err(private("the log key given".to_owned()));
    }
    let text_error = match parse_verifier_key(value.trim()) {
        Ok(verifier) => return Ok(verifier),
        Err(e) => e,
    };
    let path = Path::new(value);
    if !path.is_file() {
        let looks_like_path =
            value.contains('/') || value.ends_with(".vkey") || value.ends_with(".key");
        if looks_like_path {
            return Err(ClientError::Read {
                path: path.to_owned(),
                source: std::fs::metadata(path).err().unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")
                }),
            });
        }
        return Err(ClientError::Input(format!(
            "log key {:?} is neither a verifier key ({text_error}) nor a readable file",
            value.chars().take(200).collect::<String>()
        )));
    }
    let io = |source| ClientError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_VKEY_FILE_LEN), &mut text)
        .map_err(io)?;
    if text.trim_start().starts_with("PRIVATE+KEY+") {
        return Err(private(path.display().to_string()));
    }
    parse_verifier_key(text.trim()).map_err(|e| {
        ClientError::Input(format!(
            "{} does not hold a log verifier key: {e}",
            path.display()
        ))
    })
}
