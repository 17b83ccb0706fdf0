//! The access-control settings types of [`crate::ServerConfig`]: who may read,
//! the `[[principal]]` tables of the configuration file, and the limits a
//! principal gets.

use std::fmt;
use std::num::NonZeroU32;

use merklog_auth::{Principal, Role, Roles};
use serde::{Deserialize, Serialize};

use crate::ServerError;

/// Who may call the read API (proofs, entries, checkpoints, the watch, tiles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ReadAccess {
    /// Anyone, without credentials (what a transparency log usually is).
    #[default]
    Public,
    /// Only principals with the `read` role.
    Authenticated,
}

impl fmt::Display for ReadAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadAccess::Public => "public",
            ReadAccess::Authenticated => "authenticated",
        })
    }
}

/// One `[[principal]]` table of the configuration file: the roles of a
/// certificate principal, and limits that override the defaults for any
/// principal (certificate or token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PrincipalConfig {
    /// The principal: a SPIFFE ID, DNS name or common name of a client
    /// certificate, or the principal of tokens.
    pub name: String,
    /// Roles of the certificate principal of this name (`append`, `read`,
    /// `admin`). A token's roles are on its line of the tokens file.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Entries per second (overrides `principal-entries-per-second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries_per_second: Option<u32>,
    /// Entries allowed at once (overrides `principal-entries-burst`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries_burst: Option<u32>,
    /// Entry bytes per second (overrides `principal-bytes-per-second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u32>,
    /// Entry bytes allowed at once (overrides `principal-bytes-burst`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_burst: Option<u32>,
    /// Append streams open at once (overrides `principal-max-streams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<u32>,
}

impl PrincipalConfig {
    /// The validated name and roles.
    pub(crate) fn identity(&self) -> Result<(Principal, Roles), ServerError> {
        let principal = Principal::new(&self.name)
            .map_err(|e| ServerError::Config(format!("[[principal]]: {e}")))?;
        let roles = self
            .roles
            .iter()
            .map(|role| role.parse::<Role>())
            .collect::<Result<Roles, _>>()
            .map_err(|e| ServerError::Config(format!("[[principal]] {}: {e}", self.name)))?;
        Ok((principal, roles))
    }
}

/// A rate with its burst, as a GCRA quota takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Units per second.
    pub(crate) per_second: NonZeroU32,
    /// Units allowed at once.
    pub(crate) burst: NonZeroU32,
}

/// The limits of one principal; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PrincipalLimits {
    pub(crate) entries: Option<Rate>,
    pub(crate) bytes: Option<Rate>,
    pub(crate) max_streams: Option<NonZeroU32>,
}

/// Raw limit values, from the defaults or one `[[principal]]` table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LimitValues {
    pub(crate) entries_per_second: Option<u32>,
    pub(crate) entries_burst: Option<u32>,
    pub(crate) bytes_per_second: Option<u32>,
    pub(crate) bytes_burst: Option<u32>,
    pub(crate) max_streams: Option<u32>,
}

impl LimitValues {
    /// These values over `defaults` (each value set here wins).
    pub(crate) fn over(self, defaults: LimitValues) -> LimitValues {
        LimitValues {
            entries_per_second: self.entries_per_second.or(defaults.entries_per_second),
            entries_burst: self.entries_burst.or(defaults.entries_burst),
            bytes_per_second: self.bytes_per_second.or(defaults.bytes_per_second),
            bytes_burst: self.bytes_burst.or(defaults.bytes_burst),
            max_streams: self.max_streams.or(defaults.max_streams),
        }
    }

    /// Checks and resolves the values. A rate without a burst gets one
    /// second's worth; a burst without a rate, or a zero, is refused. `who`
    /// names the table in errors; the entries burst must hold the largest call
    /// and the bytes burst the largest entry, or such calls could never pass.
    pub(crate) fn resolve(
        self,
        who: &str,
        max_entries_per_call: usize,
        max_entry_bytes: usize,
    ) -> Result<PrincipalLimits, ServerError> {
        let rate = |name: &str, per_second: Option<u32>, burst: Option<u32>, floor: usize| {
            let bad = |reason: String| ServerError::Config(format!("{who}: {name}: {reason}"));
            match (per_second, burst) {
                (None, None) => Ok(None),
                (None, Some(_)) => Err(bad("a burst needs a rate per second".into())),
                (Some(per_second), burst) => {
                    let per_second = NonZeroU32::new(per_second)
                        .ok_or_else(|| bad("the rate must be positive".into()))?;
                    let burst = NonZeroU32::new(burst.unwrap_or(per_second.get()))
                        .ok_or_else(|| bad("the burst must be positive".into()))?;
                    if usize::try_from(burst.get()).unwrap_or(usize::MAX) < floor {
                        return Err(bad(format!(
                            "the burst ({burst}) must be at least {floor}, or the largest \
                             allowed call could never pass"
                        )));
                    }
                    Ok(Some(Rate { per_second, burst }))
                }
            }
        };
        let max_streams = match self.max_streams {
            None => None,
            Some(n) => Some(NonZeroU32::new(n).ok_or_else(|| {
                ServerError::Config(format!("{who}: max-streams must be positive"))
            })?),
        };
        Ok(PrincipalLimits {
            entries: rate(
                "entries",
                self.entries_per_second,
                self.entries_burst,
                max_entries_per_call,
            )?,
            bytes: rate(
                "bytes",
                self.bytes_per_second,
                self.bytes_burst,
                max_entry_bytes,
            )?,
            max_streams,
        })
    }
}

impl From<&PrincipalConfig> for LimitValues {
    fn from(table: &PrincipalConfig) -> Self {
        LimitValues {
            entries_per_second: table.entries_per_second,
            entries_burst: table.entries_burst,
            bytes_per_second: table.bytes_per_second,
            bytes_burst: table.bytes_burst,
            max_streams: table.max_streams,
        }
    }
}
