//! `merklog-witness`: parses the configuration, opens the witness (generating its key
//! on first start and printing its vkey), binds, and serves until SIGINT/SIGTERM.

use anyhow::Context as _;
use clap::Parser as _;
use merklog_witness::{Cli, LogFormat, Witness};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Cli::parse().resolve()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    match settings.log_format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }

    let witness = Witness::open(&settings.witness)?;
    println!("{}", witness.vkey());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    if let Some(path) = &settings.addr_file {
        // Written under a temporary name and renamed, so readers never see half of it.
        let mut temp = path.clone().into_os_string();
        temp.push(".tmp");
        std::fs::write(&temp, format!("{addr}\n"))
            .and_then(|()| std::fs::rename(&temp, path))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    merklog_witness::serve(witness, listener, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::warn!(%err, "cannot watch SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
