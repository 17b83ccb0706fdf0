//! Witness collection settings and the seam to the transport: what the log sends a
//! witness (C2SP tlog-witness `add-checkpoint`), every answer it can get back, and the
//! trait a transport implements. The pipeline that uses them lives in `collector.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use merklog_merkle::Hash;
use merklog_note::{CosignatureVerifier, NoteSignature, Policy, Verifier as _};

/// One add-checkpoint request (C2SP tlog-witness) as the log sends it.
#[derive(Debug, Clone)]
pub struct WitnessRequest {
    /// The size the log believes the witness has (`old <size>`); 0 when unknown.
    pub old_size: u64,
    /// RFC 9162 consistency proof from `old_size` to the checkpoint's size (empty for
    /// `old 0` and for `old` equal to the size).
    pub consistency_proof: Vec<Hash>,
    /// The signed checkpoint note, exactly as signed by the log (text).
    pub checkpoint: bytes::Bytes,
}

/// Every outcome of one request, as data (no error type of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessReply {
    /// 200 OK: the response body, i.e. one or more note signature lines
    /// (`— <name> <base64>\n`), to be verified by the log before counting.
    Cosigned(Vec<u8>),
    /// 409 Conflict with a text/x.tlog.size body: the witness's stored size.
    SizeConflict(u64),
    /// Any other HTTP status (403, 404, 422, 400...) with the body text (truncated).
    Rejected {
        /// The HTTP status code.
        status: u16,
        /// The response body, possibly truncated.
        body: String,
    },
    /// Connection refused, TLS, timeout, malformed response...
    Unreachable(String),
}

/// A witness the log can ask for cosignatures. The server implements it over HTTP
/// (POST `<url>/add-checkpoint`); tests implement it in-process.
pub trait WitnessClient: Send + Sync + std::fmt::Debug + 'static {
    /// The witness's name: the key name of its vkey in the policy.
    fn name(&self) -> &str;
    /// Sends one add-checkpoint request. Must not panic; must finish (the pipeline also
    /// applies its own per-request timeout).
    fn add_checkpoint(
        &self,
        request: WitnessRequest,
    ) -> Pin<Box<dyn Future<Output = WitnessReply> + Send + '_>>;
}

/// Witness collection settings: present iff the operator configured a tlog-policy.
///
/// With it, the log publishes a durable checkpoint only once the policy's quorum of
/// witnesses has cosigned it (or, if `fail_open_after` is set, once it has waited that
/// long); appends are answered with the first published checkpoint covering them.
#[derive(Debug, Clone)]
pub struct Witnessing {
    /// The parsed C2SP tlog-policy (merklog_note::Policy): witnesses, groups, quorum.
    pub policy: Policy,
    /// One client per policy witness that has a URL (name = the witness's name).
    pub witnesses: Vec<Arc<dyn WitnessClient>>,
    /// Per-request timeout (default 5 s).
    pub request_timeout: Duration,
    /// Fail-open: publish without quorum once a durable checkpoint has waited this long.
    /// None = fail closed (default): never publish without quorum.
    pub fail_open_after: Option<Duration>,
    /// While idle, re-send the latest checkpoint (old N = N) this often (default 60 s).
    /// A witness taken as refusing is asked again only then or for a new checkpoint.
    pub resend_interval: Duration,
    /// Refusals in a row (a 4xx other than a 409 size conflict, 408 or 429) after which
    /// a witness is taken as refusing this log, not as briefly failing (default 3). An answer saying the log is frozen or forked
    /// counts at once. While the witnesses not refusing cannot meet the quorum, the
    /// log refuses to sign (appends fail at once) until a refusing witness cosigns.
    pub refusal_limit: u32,
    /// The start-up check waits for [`Log::lead`](crate::Log::lead) (default false). For
    /// a cluster node that opens as a standby: its store follows another node's, so
    /// the witnesses are asked for their sizes only when this node is about to sign,
    /// against the checkpoint it then signs from. Until then nothing is sent.
    pub deferred: bool,
}

/// Default per-request timeout.
pub const DEFAULT_WITNESS_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default idle re-send interval.
pub const DEFAULT_WITNESS_RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// Default [`Witnessing::refusal_limit`].
pub const DEFAULT_WITNESS_REFUSAL_LIMIT: u32 = 3;

impl Witnessing {
    /// Settings with the defaults: 5 s per request, fail closed, re-send every 60 s,
    /// a witness refusing 3 times in a row is taken as refusing.
    pub fn new(policy: Policy, witnesses: Vec<Arc<dyn WitnessClient>>) -> Self {
        Self {
            policy,
            witnesses,
            request_timeout: DEFAULT_WITNESS_REQUEST_TIMEOUT,
            fail_open_after: None,
            resend_interval: DEFAULT_WITNESS_RESEND_INTERVAL,
            refusal_limit: DEFAULT_WITNESS_REFUSAL_LIMIT,
            deferred: false,
        }
    }

    /// Each client's policy name and cosignature verifier, in client order. A client
    /// matches a policy witness by the witness's policy name or its key name.
    pub(crate) fn resolve(&self) -> Result<Vec<(String, CosignatureVerifier)>, String> {
        let mut out: Vec<(String, CosignatureVerifier)> = Vec::new();
        for client in &self.witnesses {
            let name = client.name();
            let witness = self
                .policy
                .witnesses()
                .iter()
                .find(|w| w.name == name)
                .or_else(|| {
                    self.policy
                        .witnesses()
                        .iter()
                        .find(|w| w.verifier.name() == name)
                })
                .ok_or_else(|| format!("witness client {name:?} is not a witness of the policy"))?;
            if out.iter().any(|(n, _)| *n == witness.name) {
                return Err(format!("witness {:?} has two clients", witness.name));
            }
            out.push((witness.name.clone(), witness.verifier.clone()));
        }
        Ok(out)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.request_timeout.is_zero() {
            return Err("witness request_timeout must be positive".into());
        }
        if self.resend_interval.is_zero() {
            return Err("witness resend_interval must be positive".into());
        }
        if self.refusal_limit == 0 {
            return Err("witness refusal_limit must be at least 1".into());
        }
        self.resolve().map(|_| ())
    }
}

/// Equal when the policy, the witness names, every duration, the refusal limit and
/// the deferral are equal (clients are compared by name: a transport has no equality of its own).
impl PartialEq for Witnessing {
    fn eq(&self, other: &Self) -> bool {
        self.policy == other.policy
            && self.request_timeout == other.request_timeout
            && self.fail_open_after == other.fail_open_after
            && self.resend_interval == other.resend_interval
            && self.refusal_limit == other.refusal_limit
            && self.deferred == other.deferred
            && self.witnesses.len() == other.witnesses.len()
            && self
                .witnesses
                .iter()
                .zip(&other.witnesses)
                .all(|(a, b)| a.name() == b.name())
    }
}

impl Eq for Witnessing {}

/// The lines of a witness's 200 body made by `verifier`, each verified over the checkpoint
/// text; the error says why the body does not count (none from that key, or one fails).
pub(crate) fn verify_cosignatures(
    body: &[u8],
    checkpoint_text: &str,
    verifier: &CosignatureVerifier,
) -> Result<Vec<NoteSignature>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let mut mine = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let sig =
            NoteSignature::parse_line(line, i + 1).map_err(|e| format!("line {}: {e}", i + 1))?;
        if sig.name() != verifier.name() || sig.key_id() != verifier.key_id() {
            continue;
        }
        verifier
            .verify_cosignature(checkpoint_text, &sig)
            .map_err(|e| format!("cosignature does not verify: {e}"))?;
        mine.push(sig);
    }
    if mine.is_empty() {
        return Err(format!(
            "no cosignature line from key {} ({:08x})",
            verifier.name(),
            verifier.key_id()
        ));
    }
    Ok(mine)
}

/// What a refusal (any answer but a cosignature or a 409 size conflict) says about the
/// witness's part in the quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Worth retrying with a backoff: 5xx, 408, 425, 429 (and, handled before this,
    /// an unreachable witness).
    Transient,
    /// Repeats until someone changes the witness or the log: 400, 403 (no trusted log
    /// signature), 404 (unknown origin), 422 (the consistency proof does not verify
    /// against the tree the witness holds), any other status. Taken as refusing after
    /// [`Witnessing::refusal_limit`] in a row.
    Repeating,
    /// The witness holds another tree of this log (fork evidence) or has frozen it:
    /// nothing this log can send is cosigned until an operator acts. Taken as refusing
    /// at once.
    Frozen,
}

/// Classifies a non-200, non-size-conflict answer.
///
/// C2SP tlog-witness defines 400, 403, 404, 409 and 422, all of them answers to this
/// request that the same request gets again. It answers a checkpoint of the witness's
/// size with another root by 409 (handled by the caller: the 409 then names the size
/// that was sent); merklog-witness answers it by 422 with a body starting `fork:`,
/// and every later request by 422 with a body saying the log is frozen. Both bodies
/// are recognised; a witness that says neither still counts through the repeats.
pub(crate) fn classify_rejection(status: u16, body: &str) -> Refusal {
    if (500..600).contains(&status) || matches!(status, 408 | 425 | 429) {
        return Refusal::Transient;
    }
    let body = body.trim_start().to_ascii_lowercase();
    if (400..500).contains(&status) && (body.starts_with("fork") || body.contains("frozen")) {
        return Refusal::Frozen;
    }
    Refusal::Repeating
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_classified() {
        let frozen = "log \"example.com/log\" is frozen after a detected fork: fork at size 5\n";
        let fork =
            "fork: \"example.com/log\" signed size 5 with root aa (cosigned) and root bb (new)";
        assert_eq!(classify_rejection(422, frozen), Refusal::Frozen);
        assert_eq!(classify_rejection(422, fork), Refusal::Frozen);
        for status in [400, 403, 404, 409, 413, 422] {
            assert_eq!(
                classify_rejection(status, "consistency proof does not verify"),
                Refusal::Repeating,
                "{status}"
            );
        }
        assert_eq!(classify_rejection(403, "forbidden"), Refusal::Repeating);
        for status in [408, 425, 429, 500, 502, 503] {
            assert_eq!(
                classify_rejection(status, frozen),
                Refusal::Transient,
                "{status}"
            );
        }
        assert_eq!(classify_rejection(302, "moved"), Refusal::Repeating);
    }
}
