//! `merklogd`: resolves the settings, binds the listeners and runs the server
//! until SIGINT or SIGTERM.

use std::process::ExitCode;

use merklog_server::cli::Command;
use merklog_server::{Cli, Listeners, ServerError};

#[tokio::main]
async fn main() -> ExitCode {
    match start().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => merklog_daemon::report_fatal("merklogd", &error),
    }
}

async fn start() -> Result<(), ServerError> {
    let cli = Cli::load()?;
    let config = cli.settings;
    match &cli.command {
        Some(Command::Token(command)) => {
            let output = merklog_server::token_cli::run_token_command(
                command,
                config.tokens_file.as_deref(),
            )?;
            eprint!("{}", output.stderr);
            print!("{}", output.stdout);
            return Ok(());
        }
        Some(Command::Backup(args)) => {
            let data_dir = args.data_dir.as_ref().unwrap_or(&config.data_dir);
            let files: Vec<_> = [
                cli.config.clone(),
                config.policy.clone(),
                config.tokens_file.clone(),
            ]
            .into_iter()
            .flatten()
            .collect();
            let summary = merklog_server::backup::backup(data_dir, &args.to, &files)?;
            println!("{summary}");
            return Ok(());
        }
        Some(Command::Fsck(args)) => {
            let data_dir = args.data_dir.as_ref().unwrap_or(&config.data_dir);
            let store = merklog_store::RocksStore::open_read_only(
                data_dir.join(merklog_server::keys::DB_DIR),
            )?;
            let report = merklog_server::fsck::check_store(&store)
                .map_err(|finding| ServerError::Fsck(finding.to_string()))?;
            println!("{report}");
            return Ok(());
        }
        None => {}
    }
    if cli.print_config {
        let json = merklog_server::resolved_config(&config)?;
        println!("{json:#}");
        return Ok(());
    }
    merklog_daemon::init_tracing(config.log_format, &config.log_level)
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let listeners = Listeners::bind(&config).await?;
    merklog_server::run(config, listeners, merklog_daemon::shutdown_signal()).await
}
