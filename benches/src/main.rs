//! `merklog-hammer`: parses the options and runs the suite (see the `merklog_bench`
//! crate documentation), or serves the echo baseline for a parent hammer.

use std::process::ExitCode;

use clap::Parser as _;
use merklog_bench::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("merklog-hammer: starting the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("merklog-hammer: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::EchoServer { addr_file }) = cli.command {
        serve_echo(&addr_file).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let args = cli.run;
    let (json, markdown) = (args.json.clone(), args.markdown.clone());
    let report = merklog_bench::run_suite(args, std::env::args().collect()).await?;
    let table = report.markdown();
    println!("{table}");
    println!("{}", report.summary());
    if let Some(path) = markdown {
        std::fs::write(&path, format!("{table}\n{}", report.summary()))?;
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    }
    let failures = report.failures();
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for reason in &failures {
            eprintln!("FAILED: {reason}");
        }
        Ok(ExitCode::from(1))
    }
}

/// Serves the echo on a loopback port until SIGTERM or Ctrl-C, after writing its
/// address (atomically: write, then rename).
async fn serve_echo(addr_file: &std::path::Path) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let temp = addr_file.with_extension("tmp");
    std::fs::write(&temp, format!("{{\"grpc\":\"{addr}\"}}\n"))?;
    std::fs::rename(&temp, addr_file)?;
    merklog_bench::echo::serve(listener, merklog_server::shutdown_signal()).await?;
    Ok(())
}
