//! Who may call what: authentication of callers, their roles, and their
//! per-principal limits.
//!
//! A caller proves who it is with a bearer token (`authorization: Bearer
//! mlt_…`, checked against the tokens file, see [`tokens`]) or with a client
//! certificate verified by the TLS layer (its principal is read from the
//! certificate, see `merklog_auth::principal`). When a request carries an
//! `authorization` header, the token decides, whatever certificate the
//! connection has. The roles of a token are on its line of the tokens file; the
//! roles of a certificate principal are in the server configuration's
//! `[[principal]]` tables.
//!
//! What needs what: Append and AppendStream need `append`; with
//! `read-access = "authenticated"`, the read calls (checkpoints, proofs,
//! entries, the watch) and the tlog-tiles HTTP API need `read`; health and
//! reflection are always open. A missing, malformed, unknown, expired or
//! revoked credential is UNAUTHENTICATED (HTTP 401); a valid one without the
//! role is PERMISSION_DENIED (HTTP 403). The `admin` role opens the admin
//! API (`admin_http`: token management over HTTP). No answer, log line or metric holds a
//! credential.
//!
//! Without a tokens file and without `[[principal]]` tables authentication is
//! off: every caller is the principal `anonymous` with every role (the
//! loopback default), still subject to the default limits.

pub(crate) mod admin_http;
pub(crate) mod grpc_layer;
pub(crate) mod http_layer;
pub(crate) mod limits;
pub mod settings;
pub mod tokens;

use std::collections::HashMap;
use std::time::SystemTime;

use merklog_auth::{Principal, Role, Roles, TokenHash, parse_bearer, principal_from_der};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::limits::Limiter;
use crate::auth::settings::ReadAccess;
use crate::auth::tokens::LiveTokens;
use crate::{ServerConfig, ServerError, telemetry};

/// An authenticated caller, put into the request's extensions for the handler.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Who it is.
    pub(crate) principal: Principal,
}

/// Why a call was refused before reaching its handler.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// No credential at all.
    Missing,
    /// An `authorization` header that is not `Bearer <token>`.
    Malformed,
    /// A token that is not (or no longer) in the tokens file.
    UnknownToken,
    /// A token past its expiry.
    ExpiredToken,
    /// A client certificate naming no usable principal.
    BadCertificate(String),
    /// A valid principal without the role.
    MissingRole {
        /// Who.
        principal: Principal,
        /// What it lacks.
        role: Role,
    },
}

impl Rejection {
    /// The `reason` label of `merklog_auth_rejections_total`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Rejection::Missing => "missing_credential",
            Rejection::Malformed => "malformed_credential",
            Rejection::UnknownToken => "unknown_token",
            Rejection::ExpiredToken => "expired_token",
            Rejection::BadCertificate(_) => "bad_certificate",
            Rejection::MissingRole { .. } => "missing_role",
        }
    }

    /// True for PERMISSION_DENIED (403), false for UNAUTHENTICATED (401).
    pub(crate) fn is_denial(&self) -> bool {
        matches!(self, Rejection::MissingRole { .. })
    }

    /// The message sent back; it never holds the credential.
    pub(crate) fn message(&self) -> String {
        match self {
            Rejection::Missing => {
                "no credential: send `authorization: Bearer <token>` or a client certificate".into()
            }
            Rejection::Malformed => "the authorization header is not `Bearer <token>`".into(),
            Rejection::UnknownToken => "the bearer token is not valid (unknown or revoked)".into(),
            Rejection::ExpiredToken => "the bearer token has expired".into(),
            Rejection::BadCertificate(reason) => {
                format!("the client certificate names no usable principal: {reason}")
            }
            Rejection::MissingRole { principal, role } => {
                format!("principal {principal} does not have the {role} role")
            }
        }
    }

    /// The gRPC status, counted in the rejection metric.
    pub(crate) fn into_status(self) -> tonic::Status {
        telemetry::record_auth_rejection(self.reason());
        if self.is_denial() {
            tonic::Status::permission_denied(self.message())
        } else {
            tonic::Status::unauthenticated(self.message())
        }
    }
}

/// The server's access control: credentials, roles and limits.
pub(crate) struct Authenticator {
    enabled: bool,
    read_access: ReadAccess,
    tokens: Option<LiveTokens>,
    certificate_roles: HashMap<Principal, Roles>,
    /// Per-principal append limits.
    pub(crate) limiter: Limiter,
}

impl Authenticator {
    /// Access control as configured (reads the tokens file once).
    pub(crate) fn from_config(config: &ServerConfig) -> Result<Self, ServerError> {
        let tokens = config
            .tokens_file
            .as_deref()
            .map(LiveTokens::load)
            .transpose()?;
        let mut certificate_roles = HashMap::new();
        let mut overrides = HashMap::new();
        for table in &config.principal {
            let (principal, roles) = table.identity()?;
            overrides.insert(principal.clone(), config.limits_of(table)?);
            certificate_roles.insert(principal, roles);
        }
        Ok(Self {
            enabled: config.auth_enabled(),
            read_access: config.read_access,
            tokens,
            certificate_roles,
            limiter: Limiter::new(config.default_limits()?, overrides),
        })
    }

    /// Starts reloading the tokens file on change and on SIGHUP (if there is one).
    pub(crate) fn spawn_reloader(
        &self,
        config: &ServerConfig,
        stop: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        let (tokens, path) = (self.tokens.as_ref()?, config.tokens_file.clone()?);
        Some(tokens.spawn_reloader(path, config.tokens_reload_interval.get(), stop))
    }

    /// Whether callers are authenticated at all (a tokens file or principal
    /// tables are configured).
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Takes a new set of tokens at once (after a change made by the server
    /// itself), instead of at the next reload.
    pub(crate) fn replace_tokens(&self, file: merklog_auth::TokensFile) {
        if let Some(tokens) = &self.tokens {
            tokens.replace(file);
        }
    }

    /// The role a read call needs, if any.
    pub(crate) fn read_role(&self) -> Option<Role> {
        match self.read_access {
            ReadAccess::Public => None,
            ReadAccess::Authenticated => Some(Role::Read),
        }
    }

    /// Authenticates the caller and checks it has `role`. `authorization` is
    /// the header's value; `peer_certs` the verified client chain (leaf first)
    /// of a TLS connection.
    pub(crate) fn authorize<C: AsRef<[u8]>>(
        &self,
        authorization: Option<&[u8]>,
        peer_certs: Option<&[C]>,
        role: Role,
    ) -> Result<Caller, Rejection> {
        if !self.enabled {
            return Ok(Caller {
                principal: Principal::anonymous(),
            });
        }
        let (principal, roles) = match (authorization, peer_certs.and_then(<[C]>::first)) {
            (Some(header), _) => self.token_principal(header)?,
            (None, Some(leaf)) => {
                let principal = principal_from_der(leaf.as_ref())
                    .map_err(|e| Rejection::BadCertificate(e.to_string()))?;
                let roles = self
                    .certificate_roles
                    .get(&principal)
                    .copied()
                    .unwrap_or_default();
                (principal, roles)
            }
            (None, None) => return Err(Rejection::Missing),
        };
        if !roles.contains(role) {
            return Err(Rejection::MissingRole { principal, role });
        }
        Ok(Caller { principal })
    }

    fn token_principal(&self, header: &[u8]) -> Result<(Principal, Roles), Rejection> {
        let credential = parse_bearer(header).map_err(|_| Rejection::Malformed)?;
        let tokens = self.tokens.as_ref().ok_or(Rejection::UnknownToken)?.get();
        let record = tokens
            .find(&TokenHash::of(credential))
            .ok_or(Rejection::UnknownToken)?;
        if record.expires.has_passed(SystemTime::now()) {
            return Err(Rejection::ExpiredToken);
        }
        Ok((record.principal.clone(), record.roles))
    }
}
