//! The `dedup-lab` binary: parse, run, map the error chain to an exit code.

mod args;
mod cmd;
mod config;
mod logging;
mod plan;
mod telemetry;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    logging::init(cli.verbose, cli.quiet);
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("dedup-lab: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
