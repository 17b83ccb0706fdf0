//! The `merklogd` command line: the settings of [`ServerConfig`] plus what only a
//! command line says (the configuration file's path, `--print-config`, the
//! maintenance commands), resolved in the precedence [`ServerConfig`] documents.

use std::path::PathBuf;

use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _, Parser};

use crate::ServerError;
use crate::config::ServerConfig;
use crate::token_cli::TokenCommand;

/// `merklogd` command line: the settings plus what only a command line says.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "merklogd",
    version,
    about = "merklog transparency log server: gRPC append/proof API and C2SP tlog-tiles HTTP read API",
    long_about = "merklog transparency log server.\n\n\
        With no arguments it starts on the embedded defaults: data in ./merklog-data, \
        gRPC on 127.0.0.1:7800, tlog-tiles HTTP on 127.0.0.1:7801, Prometheus metrics on \
        127.0.0.1:7802. On first start it fixes the log's origin and generates the log key \
        (<data-dir>/log.key, mode 0600, and <data-dir>/log.vkey, also printed to stdout).\n\n\
        Every setting can also come from the environment variable shown, or from the \
        --config TOML file under the flag's name. Durations take units: 500ms, 5s, 2m, 1h30m.\n\n\
        Precedence: flag > environment variable > --config TOML file > default."
)]
pub struct Cli {
    /// TOML configuration file using the flags' names as keys
    #[arg(long, env = "MERKLOGD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the resolved configuration (and the parsed policy) as JSON and exit
    #[arg(long)]
    pub print_config: bool,

    /// The settings.
    #[command(flatten)]
    pub settings: ServerConfig,

    /// A maintenance command instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `merklogd`'s maintenance commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage the bearer tokens of the tokens file
    #[command(subcommand)]
    Token(TokenCommand),
    /// Copy the data directory (database, log key, configuration files) into a new
    /// directory, consistently, while merklogd may be running
    Backup(BackupArgs),
    /// Check the data directory offline: recompute every hash tile from the entry
    /// bundles and check the signed root; the first bad tile is named and the exit
    /// status is 1
    Fsck(FsckArgs),
}

/// `merklogd backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// The data directory to copy [default: the data-dir setting]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A directory that does not exist yet; it becomes a data directory that
    /// merklogd can start on (restore: copy it back in place of the data directory)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// `merklogd fsck`.
#[derive(Debug, Clone, clap::Args)]
pub struct FsckArgs {
    /// The data directory to check [default: the data-dir setting]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl Cli {
    /// Parses this process's command line and environment (printing help, or a
    /// usage error and exiting, as clap does) and resolves the settings.
    pub fn load() -> Result<Self, ServerError> {
        Self::resolve(&Self::command().get_matches())
    }

    /// Like [`Cli::load`] for the given arguments (the first is the program
    /// name); a usage error is returned, not printed.
    pub fn try_load_from<I, T>(args: I) -> Result<Self, ServerError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command()
            .try_get_matches_from(args)
            .map_err(|e| ServerError::Config(e.to_string()))?;
        Self::resolve(&matches)
    }

    /// Layers the file and defaults under what `matches` took from flags and
    /// the environment, then checks the result.
    fn resolve(matches: &ArgMatches) -> Result<Self, ServerError> {
        let mut cli =
            Self::from_arg_matches(matches).map_err(|e| ServerError::Config(e.to_string()))?;
        cli.settings = merklog_daemon::layered(&cli.settings, matches, cli.config.as_deref())
            .map_err(|e| ServerError::Config(e.to_string()))?;
        // Backup and fsck serve nothing: the serving settings (such as a container's
        // 0.0.0.0 listen addresses without TLS) need not be valid for them.
        if !matches!(cli.command, Some(Command::Backup(_) | Command::Fsck(_))) {
            cli.settings.validate()?;
        }
        Ok(cli)
    }
}
