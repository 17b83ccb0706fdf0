//! `merklog`: parses the command line and runs it (see `merklog --help`).

use std::process::ExitCode;

use clap::Parser as _;
use merklog_client::cli::{Cli, run};

fn main() -> ExitCode {
    run(Cli::parse())
}
