//! One module per subcommand; `run` dispatches.

mod analyze;
mod generate;
mod preflight;
mod report;
mod run;
mod status;
mod storage_sim;
mod verify;

use crate::args::{Cli, Command};
use anyhow::{Context, Result};
use dedup_lab_datagen::realworld::{self, Session, SessionOptions};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = crate::config::load(cli.config.as_deref())?;
    let datasets = match &cli.command {
        Command::Generate(a) => Some(&a.dataset),
        Command::Analyze(a) => Some(&a.dataset),
        Command::Run(a) => Some(&a.dataset),
        _ => None,
    };
    // Commands that read datasets: scratch space for real-world sources, removed when this
    // guard drops (on return, on error and after Ctrl-C, which stops readers and unwinds).
    let _session = match datasets {
        Some(d) => {
            install_signal_handlers()?;
            Some(Session::start(SessionOptions { scratch: d.scratch.clone(), stage_to: d.stage_to.clone() })?)
        }
        None => None,
    };
    let result = match cli.command {
        Command::Generate(a) => generate::run(&a, &cfg),
        Command::Verify { dir } => verify::run(&dir),
        Command::Analyze(a) => analyze::run(&a, &cfg),
        Command::Run(a) => run::run(&a, &cfg),
        Command::Preflight(a) => preflight::preflight(&a, &cfg),
        Command::Cleanup(a) => preflight::cleanup(&a, &cfg),
        Command::Report(a) => report::run(&a, &cfg),
        Command::StorageSim(a) => storage_sim::run(&a, &cfg),
        Command::Status { run_id, results, watch } => {
            let results = results.or(cfg.results_dir.clone()).unwrap_or_else(|| "results".into());
            status::run(run_id.as_deref(), results, watch)
        }
    };
    if result.is_err() && realworld::interrupted() {
        eprintln!("dedup-lab: interrupted; scratch files removed");
        return Ok(ExitCode::from(130));
    }
    result
}

/// First SIGINT/SIGTERM: set the interrupt flags (the engine finishes the current operation
/// and tears the cell down; readers of real-world sources stop and remove their scratch
/// files), then exit 130. A second one while that happens: exit at once (the journal is
/// still consistent, since every line is written whole and a partial cell is redone on
/// resume; scratch directories left behind are removed by the next start).
pub fn install_signal_handlers() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, seen.clone())
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, seen.clone()).context("installing the signal handler")?;
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, || {
                dedup_lab_runner::INTERRUPTED.store(true, Ordering::SeqCst);
                realworld::INTERRUPTED.store(true, Ordering::SeqCst);
            })
        }
        .context("installing the signal handler")?;
    }
    let _ = INSTALLED.set(());
    Ok(())
}
