//! Shared helpers for tests that need a real server.

#![allow(dead_code)] // each test binary uses part of this module

/// Whether the test command requires every server (then a missing one is a failure).
pub fn servers_required() -> bool {
    std::env::var("DEDUP_LAB_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// The value of every variable in `vars`, or `None` (after printing why) when one is
/// missing and servers are not required. Panics when they are required.
pub fn server_env(system: &str, vars: &[&str]) -> Option<Vec<String>> {
    let missing: Vec<&str> = vars.iter().copied().filter(|v| std::env::var(v).map_or(true, |x| x.is_empty())).collect();
    if missing.is_empty() {
        return Some(vars.iter().map(|v| std::env::var(v).unwrap()).collect());
    }
    let why = format!(
        "{system} server not configured ({} unset); start it with `eval \"$(scripts/services.sh env)\"` after `scripts/services.sh up`",
        missing.join(", ")
    );
    if servers_required() {
        panic!("DEDUP_LAB_REQUIRE_SERVERS=1 but {why}");
    }
    eprintln!("skipping: {why}");
    None
}

// ----- running the binary and reading what a run wrote -----

use dedup_lab_core::{JournalLine, Measurement};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs `dedup-lab` with `args` (no stdin) and returns what it did.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dedup-lab")).args(args).stdin(Stdio::null()).output().expect("dedup-lab runs")
}

/// Runs `dedup-lab`, asserts success and returns its stdout.
pub fn ok(args: &[&str]) -> String {
    succeeded(args, run(args))
}

/// Asserts that the run of `args` succeeded (showing its output if not); returns its stdout.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The run directory of a results directory that holds exactly one run.
pub fn run_dir(results: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(results).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(dirs.len(), 1, "expected one run in {}: {dirs:?}", results.display());
    dirs.into_iter().next().unwrap()
}

/// The journal of the one run under `results`.
pub fn journal(results: &Path) -> Vec<JournalLine> {
    let text = std::fs::read_to_string(run_dir(results).join("measurements.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The stage measurements of a journal, in order.
pub fn stages(lines: &[JournalLine]) -> Vec<&Measurement> {
    lines
        .iter()
        .filter_map(|l| match l {
            JournalLine::Stage(m) => Some(m.as_ref()),
            _ => None,
        })
        .collect()
}
