//! `merklogd`: parses the configuration, binds the listeners and runs the server.

use clap::Parser as _;
use merklog_server::{Cli, Listeners, Server, ServerConfig, shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let print_config = cli.print_config;
    let config = ServerConfig::resolve(cli)?;
    if print_config {
        println!("{}", serde_json::to_string_pretty(&config)?);
        return Ok(());
    }
    telemetry::init_tracing(config.log_format, &config.log_level)?;
    let listeners = Listeners::bind(&config).await?;
    let server = Server::open(config).await?;
    if server.created() {
        // Auditors and clients need the public key: print it where scripts can read it.
        println!("{}", server.vkey());
    }
    server.serve(listeners, shutdown_signal()).await?;
    Ok(())
}
