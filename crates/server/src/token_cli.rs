//! `merklogd token create|list|revoke`: managing the tokens file from the
//! command line (the file's format is `merklog_auth::tokens_file`'s).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use merklog_auth::{Expiry, Principal, Role, Roles};
use merklog_daemon::ConfigDuration;

use crate::ServerError;
use crate::auth::tokens::{self, Revoke};

/// `merklogd token ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token: print it once on stdout and add its SHA-256 hash,
    /// principal, roles and expiry to the tokens file (mode 0600, synced)
    Create(TokenCreateArgs),
    /// List the tokens of the tokens file (ids, principals, roles, expiry; no
    /// secrets: the file holds none)
    List(TokenFileArg),
    /// Revoke tokens by deleting their lines (a running server drops them at its
    /// next reload, within tokens-reload-interval, or at once on SIGHUP)
    Revoke(TokenRevokeArgs),
}

/// Where the tokens file is.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenFileArg {
    /// The tokens file [default: the server's tokens-file setting]
    #[arg(long = "tokens-file", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

/// `merklogd token create`
#[derive(Debug, Clone, clap::Args)]
pub struct TokenCreateArgs {
    /// Who the token speaks for (no spaces; e.g. `ci-writer` or a SPIFFE ID)
    #[arg(long, value_name = "NAME")]
    pub principal: String,
    /// A role of the token: append, read or admin (repeatable)
    #[arg(long = "role", value_name = "ROLE", required = true)]
    pub roles: Vec<String>,
    /// How long the token is valid (e.g. 90d, 12h) [default: until revoked]
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<ConfigDuration>,
    /// The tokens file.
    #[command(flatten)]
    pub file: TokenFileArg,
}

/// `merklogd token revoke`
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct TokenRevokeArgs {
    /// The token's id, as `token list` shows it (at least 8 hex digits)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Revoke every token of this principal
    #[arg(long, value_name = "NAME")]
    pub principal: Option<String>,
    /// The tokens file.
    #[command(flatten)]
    pub file: TokenFileArg,
}

fn resolve_path(arg: &TokenFileArg, configured: Option<&Path>) -> Result<PathBuf, ServerError> {
    arg.path
        .clone()
        .or_else(|| configured.map(Path::to_path_buf))
        .ok_or_else(|| {
            ServerError::Config(
                "no tokens file: give --tokens-file, or set tokens-file in the configuration"
                    .into(),
            )
        })
}

fn principal(name: &str) -> Result<Principal, ServerError> {
    Principal::new(name).map_err(|e| ServerError::Config(e.to_string()))
}

/// What a token command printed: `stdout` (for `create`, the token and only
/// it) and a note for stderr.
#[derive(Debug)]
pub struct TokenOutput {
    /// For stdout.
    pub stdout: String,
    /// For stderr.
    pub stderr: String,
}

/// Runs a token command against `command`'s file or `configured`.
pub fn run_token_command(
    command: &TokenCommand,
    configured: Option<&Path>,
) -> Result<TokenOutput, ServerError> {
    match command {
        TokenCommand::Create(args) => {
            let path = resolve_path(&args.file, configured)?;
            let roles = args
                .roles
                .iter()
                .map(|r| r.parse::<Role>())
                .collect::<Result<Roles, _>>()
                .map_err(|e| ServerError::Config(e.to_string()))?;
            let expires = args.expires.map_or(Expiry::Never, |valid_for| {
                Expiry::after(SystemTime::now(), valid_for.get())
            });
            let (token, record) =
                tokens::create_token(&path, principal(&args.principal)?, roles, expires)?;
            Ok(TokenOutput {
                stdout: format!("{}\n", token.expose()),
                stderr: format!(
                    "created token {} for principal {} (roles {}, expires {}) in {}; \
                     it is shown only this once\n",
                    record.id(),
                    record.principal,
                    record.roles,
                    record.expires,
                    path.display()
                ),
            })
        }
        TokenCommand::List(file) => {
            let path = resolve_path(file, configured)?;
            let now = SystemTime::now();
            let mut stdout = String::from("ID            PRINCIPAL  ROLES  EXPIRES\n");
            for record in tokens::read_tokens(&path)?.records() {
                let expired = if record.expires.has_passed(now) {
                    " (expired)"
                } else {
                    ""
                };
                stdout.push_str(&format!(
                    "{}  {}  {}  {}{expired}\n",
                    record.id(),
                    record.principal,
                    record.roles,
                    record.expires
                ));
            }
            Ok(TokenOutput {
                stdout,
                stderr: String::new(),
            })
        }
        TokenCommand::Revoke(args) => {
            let path = resolve_path(&args.file, configured)?;
            let which = match (&args.id, &args.principal) {
                (Some(id), _) => Revoke::Id(id.clone()),
                (None, Some(name)) => Revoke::Principal(principal(name)?),
                (None, None) => {
                    return Err(ServerError::Config("give --id or --principal".into()));
                }
            };
            let revoked = tokens::revoke_tokens(&path, &which)?;
            let stderr = revoked
                .iter()
                .map(|r| format!("revoked token {} of principal {}\n", r.id(), r.principal))
                .collect();
            Ok(TokenOutput {
                stdout: String::new(),
                stderr,
            })
        }
    }
}
