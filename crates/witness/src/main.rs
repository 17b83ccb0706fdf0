//! `merklog-witness`: resolves the settings, opens the witness (generating its key
//! on first start and printing its vkey), binds, and serves until SIGINT or SIGTERM.

use std::process::ExitCode;

use merklog_witness::{Cli, WitnessError};

#[tokio::main]
async fn main() -> ExitCode {
    match start().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => merklog_daemon::report_fatal("merklog-witness", &error),
    }
}

async fn start() -> Result<(), WitnessError> {
    let cli = Cli::load()?;
    let settings = &cli.settings;
    if cli.print_config {
        let json = serde_json::to_string_pretty(settings)
            .map_err(|e| WitnessError::Config(format!("encoding the settings: {e}")))?;
        println!("{json}");
        return Ok(());
    }
    merklog_daemon::init_tracing(settings.log_format, &settings.log_level)
        .map_err(|e| WitnessError::Config(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| WitnessError::Config(format!("cannot listen on {}: {e}", settings.listen)))?;
    merklog_witness::run(
        cli.witness_config(),
        listener,
        settings.addr_file.clone(),
        merklog_daemon::shutdown_signal(),
    )
    .await
}
