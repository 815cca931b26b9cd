//! One module per subcommand; `run` dispatches.

mod analyze;
mod generate;
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
        Command::Run(_) | Command::Preflight(_) | Command::Status { .. } | Command::Cleanup(_) => {
            bail!("not implemented yet")
        }
    }
}
