//! One module per subcommand; `run` dispatches.

mod analyze;
mod generate;
mod preflight;
mod report;
mod run;
mod status;
mod verify;

use crate::args::{Cli, Command};
use anyhow::Result;
use std::process::ExitCode;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = crate::config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Generate(a) => generate::run(&a, &cfg),
        Command::Verify { dir } => verify::run(&dir),
        Command::Analyze(a) => analyze::run(&a, &cfg),
        Command::Run(a) => run::run(&a, &cfg),
        Command::Preflight(a) => preflight::preflight(&a, &cfg),
        Command::Cleanup(a) => preflight::cleanup(&a, &cfg),
        Command::Report(a) => report::run(&a, &cfg),
        Command::Status { run_id, results } => {
            let results = results.or(cfg.results_dir.clone()).unwrap_or_else(|| "results".into());
            status::run(run_id.as_deref(), results)
        }
    }
}
