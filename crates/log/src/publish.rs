//! Durability steps 8 and 9: publication of a durable checkpoint and the answers to the
//! callers it covers. There is one [`publish`]; the two publishers differ only in when
//! they call it: [`PublishNow`] as soon as a round is durable, the witness stage
//! (`collector.rs`) once the policy's quorum cosigned.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::round::DurableRound;
use crate::state::Shared;
use crate::{SignedCheckpoint, metrics as m};

/// Step 8: makes `checkpoint` the published one, unless a larger one already is (latest
/// wins; a watch never shows a smaller size) or it is exactly the one published. A
/// checkpoint of the published size with other signature lines (fresh cosignatures)
/// replaces it. Returns whether it was published.
pub(crate) fn publish(shared: &Shared, checkpoint: Arc<SignedCheckpoint>) -> bool {
    let current = shared.latest();
    if checkpoint.size() < current.size() || *checkpoint == *current {
        return false;
    }
    let size = checkpoint.size().0;
    shared.published.send_replace(checkpoint);
    metrics::gauge!(m::TREE_SIZE).set(size as f64);
    metrics::gauge!(m::PUBLISHED_SIZE).set(size as f64);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!(m::CHECKPOINT_PUBLISHED_TIME).set(now.as_secs_f64());
    true
}

/// What happens to a round between "durable" and "answered".
///
/// `durable` must never block on anything but memory: it runs on the thread that
/// makes rounds durable, and a slow publisher would hold back the next round's write.
pub(crate) trait Publisher: Send {
    fn durable(&mut self, round: DurableRound);
}

/// Without a witness policy: publishes every durable checkpoint at once and answers the
/// round.
pub(crate) struct PublishNow {
    pub(crate) shared: Arc<Shared>,
}

impl Publisher for PublishNow {
    fn durable(&mut self, round: DurableRound) {
        // Step 8: publish.
        publish(&self.shared, round.checkpoint);
        // Step 9: answer. A caller that went away is not an error.
        for (reply, answer) in round.answers {
            let _ = reply.send(answer);
        }
    }
}
