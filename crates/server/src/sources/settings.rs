//! The sources settings that are plain values (no I/O): which entries the log
//! accepts.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which entries the log accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EntriesMode {
    /// Signed source events (checked against the sources registry) and unsigned
    /// entries alike.
    #[default]
    Mixed,
    /// Only signed events of registered sources; an unsigned entry refuses its call.
    SourcesOnly,
}

impl fmt::Display for EntriesMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntriesMode::Mixed => "mixed",
            EntriesMode::SourcesOnly => "sources-only",
        })
    }
}
