//! `dedup-lab status`: what a running or stopped run has done, failed and has left.

use anyhow::{Result, bail};
use dedup_lab_core::{CellStatus, JournalLine};
use dedup_lab_runner::journal::{self, RunDir};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The newest run directory under `results` (run ids sort by time).
pub fn newest_run(results: &Path) -> Result<String> {
    let mut ids: Vec<String> = std::fs::read_dir(results)
        .map_err(|e| anyhow::anyhow!("cannot list results directory {}: {e}", results.display()))?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.') && e.path().join(journal::RUN_FILE).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    match ids.pop() {
        Some(id) => Ok(id),
        None => bail!("no runs in {}; start one with `dedup-lab run`", results.display()),
    }
}

pub fn run(run_id: Option<&str>, results: PathBuf) -> Result<ExitCode> {
    let id = match run_id {
        Some(id) => id.to_string(),
        None => newest_run(&results)?,
    };
    let dir = RunDir::new(&results, &id);
    let info = dir.read_info()?;
    let (lines, bad) = journal::read_journal(&dir.journal_path())?;
    let cells = info.spec.cells();
    let mut status: BTreeMap<String, (CellStatus, Option<String>)> = BTreeMap::new();
    let mut stages_of_open = HashSet::new();
    for l in &lines {
        match l {
            JournalLine::Cell { cell, status: s, reason, .. } => {
                status.insert(cell.to_string(), (*s, reason.clone()));
            }
            JournalLine::Stage(m) => {
                stages_of_open.insert(m.cell.to_string());
            }
        }
    }
    let count = |want: CellStatus| status.values().filter(|(s, _)| *s == want).count();
    println!(
        "run {id}  ({}; started {}{})",
        info.status,
        info.started_at,
        info.finished_at.as_ref().map(|f| format!(", finished {f}")).unwrap_or_default()
    );
    println!("  tool {} ({}) on {}", info.tool_version, info.git_commit, info.host);
    println!(
        "  cells: {} total, {} ok, {} invalid, {} failed, {} skipped, {} left",
        cells.len(),
        count(CellStatus::Ok),
        count(CellStatus::Invalid),
        count(CellStatus::Failed),
        count(CellStatus::Skipped),
        cells.len() - status.len()
    );
    let partial: Vec<&String> = stages_of_open.iter().filter(|c| !status.contains_key(*c)).collect();
    for p in partial {
        println!("  partly run (redone on resume): {p}");
    }
    for (cell, (s, reason)) in &status {
        if *s != CellStatus::Ok {
            println!("  {s:?}: {cell}: {}", reason.as_deref().unwrap_or(""));
        }
    }
    for b in &bad {
        println!("  warning: journal line {} is unreadable (a torn write?) and is ignored: {}", b.line, b.error);
    }
    if status.len() < cells.len() {
        println!("  continue with: dedup-lab run --resume {id}");
    }
    Ok(ExitCode::SUCCESS)
}
