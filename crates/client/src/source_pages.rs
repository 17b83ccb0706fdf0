//! Reading a source's events page by page (`GetSourceEvents`), each page verified:
//! the checkpoint, every envelope's signature under the source key, every inclusion
//! proof. The next page is requested as soon as a page arrives, so the server reads
//! and proves while the client checks signatures; the checks of one page run on all
//! cores, off the async thread.

use merklog_event::{Event, SourceKey};
use merklog_merkle::{Hash, LeafIndex, hash_leaf};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1;
use rayon::prelude::*;
use tokio::task::JoinHandle;

use crate::client::call;
use crate::{Client, ClientError, SignedCheckpoint};

fn bad_event(sequence: u64, reason: impl std::fmt::Display) -> ClientError {
    ClientError::BadEvent {
        sequence,
        reason: reason.to_string(),
    }
}

/// Parses an envelope and checks it is the source's, numbered `sequence`, signed
/// by `key`.
pub(crate) fn verified_event(
    bytes: &[u8],
    sequence: u64,
    key: &SourceKey,
) -> Result<Event, ClientError> {
    let event = Event::parse(bytes).map_err(|e| bad_event(sequence, e))?;
    if event.sequence() != sequence {
        return Err(bad_event(
            sequence,
            format!("the envelope carries number {}", event.sequence()),
        ));
    }
    event.verify(key).map_err(|e| bad_event(sequence, e))?;
    Ok(event)
}

/// One page of GetSourceEvents, verified.
pub(crate) struct Page {
    pub(crate) checkpoint: SignedCheckpoint,
    /// Each event with its index.
    pub(crate) events: Vec<(Event, u64)>,
    /// The verified inclusion proof of each event (same order), against `checkpoint`.
    pub(crate) proofs: Vec<Vec<Hash>>,
    /// Inclusive ranges the server reports declared unused.
    pub(crate) declared_unused: Vec<(u64, u64)>,
    pub(crate) equivocations: Vec<v1::Equivocation>,
}

type Answer = Result<v1::GetSourceEventsResponse, ClientError>;

/// A request on its way, with what it asked for.
struct Pending {
    from: u64,
    tree_size: u64,
    answer: JoinHandle<Answer>,
}

/// The pages of one source's numbers `from..=to`, all against one tree size: the
/// one asked for, or (when 0) the latest, as the first page fixes it.
pub(crate) struct SourcePages {
    key: SourceKey,
    to: u64,
    tree_size: u64,
    pending: Option<Pending>,
}

impl Drop for SourcePages {
    fn drop(&mut self) {
        if let Some(pending) = &self.pending {
            pending.answer.abort();
        }
    }
}

impl Client {
    fn request_source_page(&self, key: &SourceKey, from: u64, to: u64, tree_size: u64) -> Pending {
        let mut sources = self.sources.clone();
        let server = self.server.clone();
        let limit = self.options.request_timeout;
        let request = v1::GetSourceEventsRequest {
            source: key.name().to_owned(),
            from_sequence: from,
            to_sequence: to,
            tree_size,
        };
        let answer = tokio::spawn(async move {
            call(
                "GetSourceEvents",
                &server,
                limit,
                sources.get_source_events(request),
            )
            .await
        });
        Pending {
            from,
            tree_size,
            answer,
        }
    }

    /// Starts reading `key`'s numbers `from..=to` against `tree_size` (0: the latest).
    pub(crate) fn source_pages(
        &self,
        key: &SourceKey,
        from: u64,
        to: u64,
        tree_size: u64,
    ) -> SourcePages {
        SourcePages {
            key: key.clone(),
            to,
            tree_size,
            pending: Some(self.request_source_page(key, from, to, tree_size)),
        }
    }

    /// The next verified page, or `None` after the last.
    pub(crate) async fn next_source_page(
        &mut self,
        pages: &mut SourcePages,
    ) -> Result<Option<Page>, ClientError> {
        let Some(pending) = pages.pending.take() else {
            return Ok(None);
        };
        let (from, to) = (pending.from, pages.to);
        let response = pending
            .answer
            .await
            .map_err(|e| ClientError::Malformed(format!("a page request failed: {e}")))??;
        let Some(wire) = response.checkpoint else {
            return Err(ClientError::Malformed(
                "GetSourceEvents answered without a checkpoint".into(),
            ));
        };
        let checkpoint = self.trust.open_wire(wire)?;
        if let Some(next) = response.next_sequence {
            if next <= from || next > to {
                return Err(ClientError::Malformed(format!(
                    "a page of {from}..={to} says to go on from {next}"
                )));
            }
            if pages.tree_size == 0 {
                pages.tree_size = checkpoint.size().0;
            }
            pages.pending = Some(self.request_source_page(&pages.key, next, to, pages.tree_size));
        }
        self.observe(&checkpoint, pending.tree_size == 0).await?;
        let served = response.events;
        if let Some(outside) = served.iter().find(|e| e.sequence < from || e.sequence > to) {
            return Err(ClientError::Malformed(format!(
                "asked for numbers {from}..={to}, got number {}",
                outside.sequence
            )));
        }
        let (key, page_checkpoint) = (pages.key.clone(), checkpoint.clone());
        let checked = tokio::task::spawn_blocking(move || {
            served
                .par_iter()
                .map(|served| {
                    let event = verified_event(&served.envelope, served.sequence, &key)?;
                    let proof = proof_from_wire("inclusion_proof", &served.inclusion_proof)
                        .map_err(|e| ClientError::Malformed(e.to_string()))?;
                    Client::check_inclusion(
                        &hash_leaf(&served.envelope),
                        LeafIndex(served.index),
                        &proof,
                        &page_checkpoint,
                    )?;
                    Ok(((event, served.index), proof))
                })
                .collect::<Result<Vec<_>, ClientError>>()
        })
        .await
        .map_err(|e| ClientError::Malformed(format!("checking a page failed: {e}")))??;
        let (events, proofs) = checked.into_iter().unzip();
        Ok(Some(Page {
            checkpoint,
            events,
            proofs,
            declared_unused: response
                .declared_unused
                .iter()
                .map(|r| (r.first, r.last))
                .collect(),
            equivocations: response.equivocations,
        }))
    }

    /// Fetches and verifies the one page that starts at `from`.
    pub(crate) async fn source_page(
        &mut self,
        key: &SourceKey,
        from: u64,
        to: u64,
        tree_size: u64,
    ) -> Result<Page, ClientError> {
        let mut pages = self.source_pages(key, from, to, tree_size);
        let page = self.next_source_page(&mut pages).await?;
        page.ok_or_else(|| ClientError::Malformed("no page was served".into()))
    }
}
