//! One module per subcommand; `run` dispatches.

mod analyze;
mod generate;
mod run;
mod verify;

use crate::args::{Cli, Command};
use anyhow::{Result, bail};
use std::process::ExitCode;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = crate::config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Generate(a) => generate::run(&a, &cfg),
        Command::Verify { dir } => verify::run(&dir),
        Command::Analyze(a) => analyze::run(&a, &cfg),
        Command::Run(a) => run::run(&a, &cfg),
        Command::Preflight(_) | Command::Status { .. } | Command::Cleanup(_) => {
            bail!("not implemented yet")
        }
    }
}
