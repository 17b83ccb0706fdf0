//! Sending journaled events to the log until it acknowledges them.

use std::sync::Arc;

use bytes::Bytes;

use super::Source;
use crate::{Client, ClientError};

/// What [`Source::send_pending`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendSummary {
    /// Events acknowledged by the log (new and duplicates).
    pub acknowledged: u64,
    /// How many of them the log already held (re-sent after a crash or a lost
    /// answer: the log stores identical bytes once).
    pub duplicates: u64,
    /// Append calls made.
    pub calls: u64,
}

impl Source {
    /// Sends every journaled, unacknowledged event, lowest numbers first, in
    /// batches of one `Append` call each. A call answered UNAVAILABLE or
    /// RESOURCE_EXHAUSTED is retried with the same bytes within the client's retry
    /// settings; every acknowledgement (inclusion proof and checkpoint) is verified
    /// by the client, and each acknowledged batch is then marked done in the spool
    /// (synced). Returns when nothing is pending, or at the first error: what was
    /// not acknowledged stays journaled and is sent by the next call (or the next
    /// start).
    pub async fn send_pending(
        self: &Arc<Self>,
        client: &mut Client,
    ) -> Result<SendSummary, ClientError> {
        let mut summary = SendSummary::default();
        loop {
            let batch = self.unacknowledged()?;
            if batch.is_empty() {
                return Ok(summary);
            }
            let (numbers, entries): (Vec<u64>, Vec<Bytes>) = batch.into_iter().unzip();
            let receipts = client.append(entries).await?;
            summary.calls += 1;
            summary.acknowledged += receipts.len() as u64;
            summary.duplicates += receipts.iter().filter(|r| r.duplicate).count() as u64;
            let source = Arc::clone(self);
            tokio::task::spawn_blocking(move || source.acknowledge(&numbers))
                .await
                .map_err(|e| ClientError::Input(format!("the spool writer failed: {e}")))??;
        }
    }
}
