//! merklog-auth: the formats of merklog's authentication, with no I/O.
//!
//! What it is:
//! - [`principal`]: who a caller is. A [`Principal`] is a name; one comes from a
//!   client certificate ([`principal_from_der`]: the SPIFFE ID in a URI SAN when
//!   present, else the first DNS SAN, else the subject common name) or from a
//!   bearer token's line in the tokens file;
//! - [`role`]: what a principal may do ([`Role::Append`], [`Role::Read`],
//!   [`Role::Admin`]);
//! - [`token`]: bearer tokens (`mlt_` and 32 random bytes, base64url), their
//!   SHA-256 hash (the only form the server stores), the `authorization: Bearer`
//!   header value;
//! - [`tokens_file`]: the tokens file, one line per token (hash, principal,
//!   roles, expiry), parsed strictly and looked up in constant time.
//!
//! What it is not: it reads no files, draws no random bytes and knows nothing of
//! gRPC or HTTP; the server (`merklog-server`) does the I/O, the reloading and
//! the enforcement. It verifies no certificate chain either: the TLS layer has
//! done that before a certificate reaches [`principal_from_der`].
#![warn(missing_docs)]

pub mod principal;
pub mod role;
pub mod token;
pub mod tokens_file;

#[doc(hidden)]
pub mod fuzzing;

pub use principal::{ANONYMOUS, MAX_PRINCIPAL_LEN, Principal, SpiffeId, principal_from_der};
pub use role::{Role, Roles};
pub use token::{TOKEN_PREFIX, Token, TokenHash, parse_bearer};
pub use tokens_file::{Expiry, FILE_HEADER, TokenRecord, TokensFile};

/// Everything that can be wrong with a principal, role, token or tokens file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A principal name breaks the naming rules.
    #[error("principal {name:?}: {reason}")]
    BadPrincipal {
        /// The name (cut to a printable prefix).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A SPIFFE ID breaks the SPIFFE ID rules.
    #[error("SPIFFE ID {id:?}: {reason}")]
    BadSpiffeId {
        /// The ID (cut to a printable prefix).
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The certificate does not parse or names no usable principal.
    #[error("client certificate: {0}")]
    BadCertificate(String),
    /// A presented credential is malformed (the message never quotes it).
    #[error("{0}")]
    BadCredential(String),
    /// An unknown role name.
    #[error("unknown role {0:?} (expected append, read or admin)")]
    UnknownRole(String),
    /// A line of the tokens file does not parse.
    #[error("tokens file line {line}: {reason}")]
    BadTokensLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A short, printable prefix of untrusted text for error messages.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
