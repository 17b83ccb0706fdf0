//! The options every command shares and what they make: trust, client options,
//! connections, the state file.

use std::path::PathBuf;
use std::time::Duration;

use merklog_note::{MAX_NOTE_SIZE, Policy};

use super::input::read_file;
use super::source::Session;
use crate::error::human_duration;
use crate::{
    BearerToken, Client, ClientError, ClientOptions, ClientTls, RetryNotice, StateFile, TrustedLog,
    code_name, default_state_path, load_verifier_key,
};

/// Policy files larger than this are refused.
const MAX_POLICY_FILE_LEN: u64 = MAX_NOTE_SIZE as u64;

/// The environment variable holding the bearer token.
const TOKEN_ENV: &str = "MERKLOG_TOKEN";

/// Largest token file read.
const MAX_TOKEN_FILE_LEN: u64 = 4096;

/// The options every command shares.
pub(super) struct Context {
    pub(super) server: String,
    pub(super) log_key: Option<String>,
    pub(super) policy: Option<PathBuf>,
    pub(super) state_file: Option<PathBuf>,
    pub(super) no_state: bool,
    pub(super) json: bool,
    pub(super) tls: ClientTls,
    pub(super) token_file: Option<PathBuf>,
    pub(super) connect_timeout: Duration,
    pub(super) timeout: Duration,
    pub(super) retries: u32,
    pub(super) retry_for: Option<Duration>,
}

impl Context {
    pub(super) fn policy(&self) -> Result<Option<Policy>, ClientError> {
        let Some(path) = &self.policy else {
            return Ok(None);
        };
        let bytes = read_file(path, MAX_POLICY_FILE_LEN)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ClientError::Input(format!("{} is not UTF-8", path.display())))?;
        Policy::parse(&text)
            .map(Some)
            .map_err(|e| ClientError::Input(format!("policy {}: {e}", path.display())))
    }

    pub(super) fn log_key(&self) -> Result<Option<merklog_note::Ed25519Verifier>, ClientError> {
        self.log_key.as_deref().map(load_verifier_key).transpose()
    }

    pub(super) fn trust(&self) -> Result<TrustedLog, ClientError> {
        match (self.log_key()?, self.policy()?) {
            (Some(key), policy) => Ok(TrustedLog::new(key, policy)),
            (None, Some(policy)) => TrustedLog::from_policy(policy),
            (None, None) => Err(ClientError::Input(
                "the log's verifier key is needed: --log-key (or MERKLOG_LOG_KEY) with the key \
                 text or a file such as merklog-data/log.vkey"
                    .into(),
            )),
        }
    }

    pub(super) fn state(&self) -> Option<StateFile> {
        if self.no_state {
            return None;
        }
        let path = self.state_file.clone().or_else(default_state_path);
        if path.is_none() {
            eprintln!(
                "merklog: warning: no state file (HOME and XDG_STATE_HOME are unset); \
                 rollbacks across runs go unnoticed. Use --state-file."
            );
        }
        path.map(StateFile::new)
    }

    /// The bearer token: from `--token-file` / MERKLOG_TOKEN_FILE, or from the
    /// environment variable MERKLOG_TOKEN (never a flag: argv is public); both
    /// at once is an error.
    pub(super) fn token(&self) -> Result<Option<BearerToken>, ClientError> {
        let from_env = std::env::var_os(TOKEN_ENV).filter(|v| !v.is_empty());
        match (&self.token_file, from_env) {
            (Some(_), Some(_)) => Err(ClientError::Input(format!(
                "both --token-file and {TOKEN_ENV} are set; use one"
            ))),
            (Some(path), None) => {
                let bytes = read_file(path, MAX_TOKEN_FILE_LEN)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| ClientError::Input(format!("{} is not UTF-8", path.display())))?;
                BearerToken::new(&text).map(Some)
            }
            (None, Some(value)) => {
                let text = value
                    .into_string()
                    .map_err(|_| ClientError::Input(format!("{TOKEN_ENV} is not UTF-8")))?;
                BearerToken::new(&text).map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    /// The connection settings from the global flags.
    pub(super) fn client_options(&self) -> Result<ClientOptions, ClientError> {
        for (flag, value) in [
            ("--connect-timeout", self.connect_timeout),
            ("--timeout", self.timeout),
        ] {
            if value.is_zero() {
                return Err(ClientError::Input(format!(
                    "{flag} must be more than 0 (a call that may not take any time always fails)"
                )));
            }
        }
        Ok(ClientOptions {
            connect_timeout: self.connect_timeout,
            request_timeout: self.timeout,
            append_retries: self.retries,
            retry_for: self.retry_for,
            tls: self.tls.clone(),
            token: self.token()?,
            ..ClientOptions::default()
        })
    }

    /// What the signed-source commands need.
    pub(super) fn session(&self) -> Result<Session, ClientError> {
        Ok(Session {
            server: self.server.clone(),
            trust: self.trust()?,
            options: self.client_options()?,
            state: self.state(),
            json: self.json,
        })
    }

    pub(super) async fn connect(&self) -> Result<Client, ClientError> {
        let trust = self.trust()?;
        let options = self.client_options()?;
        Client::connect(&self.server, trust, self.state(), options).await
    }
}

/// The progress line of a retry, for people waiting on stderr.
pub(super) fn retry_line(notice: &RetryNotice) -> String {
    let budget = match (notice.max_attempts, notice.remaining) {
        (Some(max), _) => format!("attempt {} of {max}", notice.attempt),
        (None, Some(remaining)) => format!(
            "attempt {}, retrying for {} more",
            notice.attempt,
            human_duration(remaining)
        ),
        (None, None) => format!("attempt {}", notice.attempt),
    };
    format!(
        "merklog: {}: {} ({}); {budget} failed, next in {}",
        notice.rpc,
        notice.status.message(),
        code_name(notice.status.code()),
        human_duration(notice.delay)
    )
}

/// Saves what was verified (also after a failure: the state then holds the last
/// checkpoint that did verify), then returns the command's result.
pub(super) fn finish<T>(
    client: &mut Client,
    result: Result<T, ClientError>,
) -> Result<T, ClientError> {
    let saved = client.save_state();
    let value = result?;
    saved?;
    Ok(value)
}

/// "1 entry", "2 entries".
pub(super) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
