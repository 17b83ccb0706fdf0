//! `merklogd`: resolves the settings, binds the listeners and runs the server
//! until SIGINT or SIGTERM.

use std::process::ExitCode;

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
    if let Some(merklog_server::config::Command::Token(command)) = &cli.command {
        let output =
            merklog_server::token_cli::run_token_command(command, config.tokens_file.as_deref())?;
        eprint!("{}", output.stderr);
        print!("{}", output.stdout);
        return Ok(());
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
