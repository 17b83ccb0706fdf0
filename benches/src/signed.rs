//! Signed-source entries: every entry a signed event envelope of one of the run's
//! sources (one per writer), so the log under test runs its ingest checks
//! (registry lookup, signature verification, the per-source key index) on each.
//!
//! Sequence numbers come from one counter per source shared by every step of the
//! run, so no number is ever used for two different events (which the log would
//! refuse as equivocation).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use merklog_event::{Event, EventDraft};
use merklog_note::{Ed25519Signer, Signer};
use serde::Serialize;

use crate::BenchError;

/// How many sources a run registers; writers beyond it share sources round robin.
pub const SOURCES: usize = 512;
/// The media type of the hammer's events.
pub const MEDIA_TYPE: &str = "application/octet-stream";

/// The run's sources: a key and a sequence counter each.
pub struct SignedSources {
    sources: Vec<(Ed25519Signer, AtomicU64)>,
}

impl std::fmt::Debug for SignedSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedSources")
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Registry<'a> {
    source: Vec<RegistryEntry<'a>>,
}

#[derive(Serialize)]
struct RegistryEntry<'a> {
    name: &'a str,
    vkey: String,
    principals: [&'a str; 1],
}

impl SignedSources {
    /// `count` sources named `hammer.example/source-N` with fresh keys.
    pub fn generate(count: usize) -> Result<Self, BenchError> {
        let sources = (0..count.max(1))
            .map(|i| {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)
                    .map_err(|e| BenchError::Setup(format!("random source key: {e}")))?;
                let signer =
                    Ed25519Signer::from_seed(&format!("hammer.example/source-{i}"), &seed)?;
                Ok((signer, AtomicU64::new(0)))
            })
            .collect::<Result<_, BenchError>>()?;
        Ok(Self { sources })
    }

    /// Writes merklogd's sources registry for these sources to `path`; any
    /// principal may write for them (the hammer's token, or anonymous on loopback).
    pub fn write_registry(&self, path: &Path) -> Result<(), BenchError> {
        let registry = Registry {
            source: self
                .sources
                .iter()
                .map(|(signer, _)| RegistryEntry {
                    name: signer.name(),
                    vkey: signer.verifier().to_vkey(),
                    principals: ["*"],
                })
                .collect(),
        };
        let text = toml::to_string(&registry)
            .map_err(|e| BenchError::Setup(format!("encoding the sources registry: {e}")))?;
        std::fs::write(path, text)
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))
    }

    /// The envelope of `payload` as the next event of the source writer `writer`
    /// uses.
    pub fn sign(&self, writer: u32, payload: &[u8]) -> Result<Vec<u8>, BenchError> {
        let index = usize::try_from(writer).unwrap_or(0) % self.sources.len();
        let (signer, next) = &self.sources[index];
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let draft = EventDraft {
            source: signer.name(),
            sequence: next.fetch_add(1, Ordering::Relaxed),
            timestamp_ms,
            media_type: MEDIA_TYPE,
            payload,
        };
        Event::sign(signer, &draft)
            .map(Event::into_bytes)
            .map_err(|e| BenchError::Setup(format!("signing an event: {e}")))
    }
}

/// Shared by the writers of a signed run.
pub type Signing = Option<Arc<SignedSources>>;

#[cfg(test)]
mod tests {
    use super::*;
    use merklog_event::SourceKey;

    #[test]
    fn events_verify_under_the_registry_and_never_reuse_a_number() {
        let sources = SignedSources::generate(2).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources.toml");
        sources.write_registry(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let registry: toml::Table = toml::from_str(&text).unwrap();
        let entries = registry["source"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        let keys: Vec<SourceKey> = entries
            .iter()
            .map(|e| SourceKey::parse(e["vkey"].as_str().unwrap()).unwrap())
            .collect();

        // Writers 0 and 2 share source 0: one counter, distinct numbers.
        let mut seen = std::collections::HashSet::new();
        for writer in [0u32, 2, 0, 1, u32::MAX] {
            let bytes = sources.sign(writer, b"payload").unwrap();
            let event = Event::parse(&bytes).unwrap();
            let key = keys.iter().find(|k| k.name() == event.source()).unwrap();
            event.verify(key).unwrap();
            assert_eq!(event.payload(), b"payload");
            assert!(seen.insert((event.source().to_owned(), event.sequence())));
        }
        assert_eq!(seen.len(), 5);
    }
}
