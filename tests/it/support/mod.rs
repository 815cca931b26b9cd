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

/// The analysis cache of the tests' runs (`DEDUP_LAB_CACHE_DIR`), in the target directory:
/// tests never read or fill the user's `~/.cache`. Shared by the tests, as every invocation
/// of one user shares theirs.
pub fn test_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("dedup-lab-cache")
}

/// Runs `dedup-lab` with `args` (no stdin) and returns what it did.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .env("DEDUP_LAB_CACHE_DIR", test_cache_dir())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("dedup-lab runs")
}

/// Runs `dedup-lab` with `args` and extra environment variables `envs` (no stdin).
pub fn run_env(envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dedup-lab"));
    c.env("DEDUP_LAB_CACHE_DIR", test_cache_dir());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.args(args).stdin(Stdio::null()).output().expect("dedup-lab runs")
}

/// Everything a run printed, stdout then stderr.
pub fn text_of(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
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

// ----- killing a run and resuming it -----

use std::process::Child;
use std::time::{Duration, Instant};

/// Lines in the journal of `run` (0 before it exists).
pub fn journal_line_count(run: &Path) -> usize {
    std::fs::read_to_string(run.join("measurements.jsonl")).map(|t| t.matches('\n').count()).unwrap_or(0)
}

/// Waits (bounded) until the run directory exists and its journal has at least `n` lines;
/// `None` when the run finished first.
pub fn wait_for_lines(results: &Path, child: &mut Child, n: usize) -> Option<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None; // finished before reaching the kill point
        }
        // The run directory appears (renamed into place) with its run.json already written.
        if let Some(run) = std::fs::read_dir(results)
            .ok()
            .and_then(|d| d.flatten().find(|e| !e.file_name().to_string_lossy().starts_with('.')))
            .map(|e| e.path())
            && run.join("run.json").is_file()
            && journal_line_count(&run) >= n
        {
            return Some(run);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the run did not reach {n} journal lines within 120 s");
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} failed");
}

/// What a killed run's journal holds: the lines up to its last finished cell (kept, byte
/// for byte, by every resume) and the lines of the partly run cell after them (moved to
/// `discarded.jsonl` by the next resume; a torn last line without its newline included).
pub fn split_journal(text: &str) -> (String, Vec<String>) {
    let mut kept = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        at += line.len();
        if line.ends_with('\n') && line.contains("\"type\":\"cell\"") {
            kept = at;
        }
    }
    let partial = text[kept..].split_inclusive('\n').map(|l| l.trim_end_matches('\n').to_string()).collect();
    (text[..kept].to_string(), partial)
}

/// Starts `dedup-lab <args>` (a `run` writing under `results`), kills it with SIGKILL at
/// several points and resumes it each time, then lets a last resume finish. After every
/// kill it records the journal, and at the end checks that every line of a finished cell
/// written before a kill is still there byte for byte, and that the lines of each partly
/// run cell were moved to `discarded.jsonl`. Returns the run directory and the number of
/// kills that hit a running process.
pub fn kill_and_resume(results: &Path, args: &[String], extra_lines: &[usize]) -> (PathBuf, usize) {
    let quiet = |c: &mut Command| {
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    };
    let bin = env!("CARGO_BIN_EXE_dedup-lab");
    let mut cmd = Command::new(bin);
    cmd.env("DEDUP_LAB_CACHE_DIR", test_cache_dir()).args(args);
    quiet(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let run = wait_for_lines(results, &mut child, 0).expect("the run started");
    signal(&child, "-KILL");
    child.wait().unwrap();
    let run_id = run.file_name().unwrap().to_string_lossy().into_owned();
    let snapshot = |run: &Path| std::fs::read_to_string(run.join("measurements.jsonl")).unwrap_or_default();
    let mut snapshots = vec![snapshot(&run)];
    let mut kills = 1;
    let resume = || {
        let mut c = Command::new(bin);
        c.env("DEDUP_LAB_CACHE_DIR", test_cache_dir()).args([
            "run",
            "--results",
            &results.display().to_string(),
            "--resume",
            &run_id,
        ]);
        c
    };
    for extra in extra_lines {
        let before = journal_line_count(&run);
        let mut cmd = resume();
        quiet(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        if wait_for_lines(results, &mut child, before + extra).is_some() {
            signal(&child, "-KILL");
            kills += 1;
        }
        child.wait().unwrap();
        snapshots.push(snapshot(&run));
    }
    let out = resume().stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "the last resume: {}", String::from_utf8_lossy(&out.stderr));
    let last = snapshot(&run);
    let discarded = std::fs::read_to_string(run.join("discarded.jsonl")).unwrap_or_default();
    let mut partial_lines = 0;
    for (i, snap) in snapshots.iter().enumerate() {
        let (kept, partial) = split_journal(snap);
        assert!(last.starts_with(&kept), "kill {}: a line journaled before the kill changed or vanished", i + 1);
        for line in partial.iter().filter(|l| !l.is_empty()) {
            partial_lines += 1;
            assert!(
                discarded.contains(line.as_str()),
                "kill {}: a partly run cell's line is not in discarded.jsonl: {line}",
                i + 1
            );
        }
    }
    assert!(partial_lines > 0, "some kill must have hit a cell in the middle (else the test proves nothing)");
    (run, kills)
}

/// Every file below `dir`, with its content.
pub fn files_with_content(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let content = std::fs::read(&p).unwrap();
                out.push((p, content));
            }
        }
    }
    out
}
