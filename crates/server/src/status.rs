//! How the log's errors reach gRPC clients.

use merklog_log::LogError;
use tonic::{Code, Status};

/// Maps a log error to the status code a client can act on.
///
/// `SigningRefused` is FAILED_PRECONDITION, not UNAVAILABLE: it means the stored
/// tree does not re-derive the signed root, or the witnesses have cosigned a
/// larger tree than the log holds (its data directory was restored from an old
/// copy), or witnesses the quorum needs refuse the log (one froze it after seeing
/// a fork, or keeps answering the same 4xx; the message names them and their
/// answers), states that retrying cannot fix and an operator must investigate,
/// whereas UNAVAILABLE tells clients to retry.
///
/// `DataLoss` (the store found stored bytes damaged) is DATA_LOSS, not
/// UNAVAILABLE: a retry cannot bring the bytes back.
///
/// `QuorumTimeout` is UNAVAILABLE: the entries are durable and will be published
/// once the witnesses cosign, and retrying the same append is safe (dedup returns
/// the same indexes), which is what UNAVAILABLE invites. DEADLINE_EXCEEDED would
/// read as the client's own deadline, which it was not.
pub fn log_error_code(error: &LogError) -> Code {
    match error {
        LogError::QueueFull => Code::ResourceExhausted,
        LogError::InvalidEntry { .. }
        | LogError::TooManyEntries { .. }
        | LogError::CallTooLarge { .. } => Code::InvalidArgument,
        LogError::OutOfRange { .. } => Code::OutOfRange,
        LogError::NotFound => Code::NotFound,
        LogError::Unavailable(_)
        | LogError::ShuttingDown
        | LogError::Storage(_)
        | LogError::QuorumTimeout(_) => Code::Unavailable,
        LogError::SigningRefused(_) => Code::FailedPrecondition,
        LogError::DataLoss(_) => Code::DataLoss,
        LogError::KeyConflict { .. } => Code::AlreadyExists,
        // Start-up errors (`Recovery`, `InvalidConfig`) and future variants never
        // describe a client mistake.
        _ => Code::Internal,
    }
}

/// The status for a log error; the message is the error's text, which never
/// contains key material (for `QuorumTimeout` it already says that the entries
/// are durable and that a retry returns their indexes).
pub fn log_status(error: LogError) -> Status {
    Status::new(log_error_code(&error), error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_log_error_has_its_code() {
        let cases = [
            (LogError::QueueFull, Code::ResourceExhausted),
            (
                LogError::InvalidEntry {
                    index: 3,
                    reason: "entry is empty".into(),
                },
                Code::InvalidArgument,
            ),
            (
                LogError::TooManyEntries { count: 9, limit: 8 },
                Code::InvalidArgument,
            ),
            (
                LogError::OutOfRange {
                    reason: "index 9 is not below tree size 3".into(),
                },
                Code::OutOfRange,
            ),
            (LogError::NotFound, Code::NotFound),
            (
                LogError::Unavailable("sync failed".into()),
                Code::Unavailable,
            ),
            (LogError::ShuttingDown, Code::Unavailable),
            (LogError::Storage("bad tile".into()), Code::Unavailable),
            (
                LogError::SigningRefused("root mismatch".into()),
                Code::FailedPrecondition,
            ),
            (
                LogError::SigningRefused(
                    "the witness quorum cannot be met while these witnesses refuse this log: \
                     witness w1 answered \"422: log is frozen\""
                        .into(),
                ),
                Code::FailedPrecondition,
            ),
            (LogError::Recovery("bad signature".into()), Code::Internal),
            (
                LogError::DataLoss("Corruption: block checksum mismatch".into()),
                Code::DataLoss,
            ),
            (
                LogError::CallTooLarge {
                    bytes: 10,
                    limit: 5,
                },
                Code::InvalidArgument,
            ),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            let status = log_status(error);
            assert_eq!(status.code(), code, "{text}");
            assert_eq!(status.message(), text);
        }
    }

    #[test]
    fn a_quorum_timeout_is_unavailable() {
        let error = LogError::QuorumTimeout("no published checkpoint covered the entries".into());
        let text = error.to_string();
        let status = log_status(error);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), text);
        assert!(text.starts_with("waiting for witness quorum: "), "{text}");
    }
}
