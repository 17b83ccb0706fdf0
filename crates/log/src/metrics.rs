//! Metric names recorded through the `metrics` facade (the server installs the
//! Prometheus recorder; without one, recording is a no-op).

/// Counter: entries answered, labelled `result` = `new` | `duplicate`.
pub const APPEND_ENTRIES: &str = "merklog_append_entries_total";
/// Counter: append calls refused before sequencing, labelled `reason`.
pub const APPEND_REFUSED: &str = "merklog_append_refused_total";
/// Counter: integration rounds, labelled `result` = `ok` | `failed`.
pub const ROUNDS: &str = "merklog_rounds_total";
/// Histogram: entries per round (new and duplicate).
pub const BATCH_ENTRIES: &str = "merklog_round_batch_entries";
/// Histogram: seconds from taking a batch to the round being durable and published.
pub const ROUND_SECONDS: &str = "merklog_round_seconds";
/// Histogram: seconds of the synced write of one round.
pub const COMMIT_SECONDS: &str = "merklog_round_commit_seconds";
/// Histogram: seconds from an append call being queued to its answer (integration
/// latency as a caller sees it).
pub const INTEGRATION_SECONDS: &str = "merklog_append_integration_seconds";
/// Gauge: entries waiting in the queue.
pub const QUEUE_ENTRIES: &str = "merklog_queue_entries";
/// Gauge: size of the latest published checkpoint.
pub const TREE_SIZE: &str = "merklog_tree_size";
/// Gauge: Unix time (seconds) at which the latest checkpoint was published.
pub const CHECKPOINT_PUBLISHED_TIME: &str = "merklog_checkpoint_published_timestamp_seconds";
/// Gauge: 1 while the log refuses to sign (recovery found a mismatch, a witness is
/// ahead of the log, or refusing witnesses leave no quorum), else 0.
pub const SIGNING_REFUSED: &str = "merklog_signing_refused";
/// Gauge: size of the latest published checkpoint (with a witness policy, the latest
/// one that met the quorum or was published fail-open).
pub const PUBLISHED_SIZE: &str = "merklog_published_size";
/// Gauge: size of the latest durable (signed and synced) checkpoint, published or not.
pub const DURABLE_SIZE: &str = "merklog_durable_size";
/// Histogram: seconds of one witness add-checkpoint request, labelled `witness` and
/// `outcome` = `cosigned` | `conflict` | `rejected` | `unreachable` | `bad_cosignature`.
pub const WITNESS_REQUEST_SECONDS: &str = "merklog_witness_request_seconds";
/// Counter: witness add-checkpoint requests, labelled `witness` and `outcome` (as in
/// [`WITNESS_REQUEST_SECONDS`]).
pub const WITNESS_REQUESTS: &str = "merklog_witness_requests_total";
/// Histogram: seconds from a checkpoint being durable to its publication (quorum met,
/// or fail-open).
pub const QUORUM_SECONDS: &str = "merklog_witness_quorum_seconds";
/// Counter: checkpoints published without a quorum because `fail_open_after` passed.
pub const FAIL_OPEN_PUBLISHED: &str = "merklog_witness_fail_open_total";
/// Gauge: 1 while a witness refuses this log (it said the log is frozen, or refused
/// `refusal_limit` requests in a row), else 0; labelled `witness`.
pub const WITNESS_REFUSING: &str = "merklog_witness_refusing";
/// Counter: times a witness began refusing this log, labelled `witness` and `reason` =
/// `frozen` | `repeated`.
pub const WITNESS_REFUSALS: &str = "merklog_witness_refusals_total";
