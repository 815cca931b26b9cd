//! `dedup-lab status`: what a running or stopped run has done, failed and has left, read
//! from its files only (never from the process), so it works for a run on another machine's
//! results directory and while the run is appending: the journal for cells and figures, the
//! event stream for the current cell and stage, the trace's last sample for live progress.
//! A line being written at that moment (no newline yet) is left for the next look.

use anyhow::{Result, bail};
use dedup_lab_core::{CellStatus, JournalLine, format_bytes};
use dedup_lab_runner::journal::{self, RunDir};
use dedup_lab_runner::telemetry::{EVENTS_FILE, TRACE_FILE};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

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

/// Whether the file's last byte is not a newline (a line is being appended right now).
fn unterminated(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else { return false };
    let mut b = [0u8];
    f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut b).is_ok() && b[0] != b'\n'
}

/// The complete JSON lines of a JSONL file (a last line still being written is skipped).
fn json_lines(path: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The last complete line of a JSONL file that may be large (reads its last 64 KiB).
fn last_json_line(path: &Path) -> Option<Value> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let complete = &text[..=text.rfind('\n')?];
    complete.lines().rev().find_map(|l| serde_json::from_str(l).ok())
}

fn ms(v: &Value) -> Option<i64> {
    v["ts"].as_str().and_then(dedup_lab_core::time::unix_ms_from_rfc3339)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The status of one run as text, and whether the run has ended.
fn render(dir: &RunDir, id: &str) -> Result<(String, bool)> {
    let info = dir.read_info()?;
    let (lines, mut bad) = journal::read_journal(&dir.journal_path())?;
    // A last line without its newline is being written: not a torn write, just early.
    if unterminated(&dir.journal_path()) {
        let last = bad.iter().map(|b| b.line).max().unwrap_or(0).max(lines.len());
        bad.retain(|b| b.line < last);
    }
    let cells = info.spec.cells();
    let mut status: BTreeMap<String, (CellStatus, Option<String>)> = BTreeMap::new();
    let mut stages_of_open = HashSet::new();
    let (mut bytes, mut busy_ns) = (0u64, 0u64);
    for l in &lines {
        match l {
            JournalLine::Cell { cell, status: s, reason, .. } => {
                status.insert(cell.to_string(), (*s, reason.clone()));
            }
            JournalLine::Stage(m) => {
                stages_of_open.insert(m.cell.to_string());
                bytes += m.logical_bytes;
                busy_ns += m.duration_ns;
            }
        }
    }
    let count = |want: CellStatus| status.values().filter(|(s, _)| *s == want).count();
    let ended = info.status != "running";
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {id}  ({}; started {}{})",
        info.status,
        info.started_at,
        info.finished_at.as_ref().map(|f| format!(", finished {f}")).unwrap_or_default()
    );
    let _ = writeln!(out, "  tool {} ({}) on {}", info.tool_version, info.git_commit, info.host);
    let left = cells.len().saturating_sub(status.len());
    let _ = writeln!(
        out,
        "  cells: {} total, {} ok, {} invalid, {} failed, {} skipped, {} pending",
        cells.len(),
        count(CellStatus::Ok),
        count(CellStatus::Invalid),
        count(CellStatus::Failed),
        count(CellStatus::Skipped),
        left
    );
    if busy_ns > 0 {
        let _ = writeln!(
            out,
            "  written so far: {} in {} of timed work ({:.1} MB/s)",
            format_bytes(bytes),
            human(Duration::from_nanos(busy_ns)),
            bytes as f64 / 1e6 / (busy_ns as f64 / 1e9)
        );
    }

    // The event stream: the current cell and stage, and the pace of this session (since the
    // last run_start: a resumed run counts from its resumption).
    let events = json_lines(&dir.path.join(EVENTS_FILE));
    let session = events.iter().rposition(|e| e["event"] == "run_start").unwrap_or(0);
    let session = &events[session.min(events.len())..];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
    if !ended {
        let open_cell = session.iter().rev().find(|e| e["event"] == "cell_start" || e["event"] == "cell_end");
        if let Some(c) = open_cell.filter(|c| c["event"] == "cell_start") {
            let _ = write!(out, "  current cell {} of {}: {}", c["index"], c["of"], c["cell"].as_str().unwrap_or("?"));
            let stage = session.iter().rev().find(|e| e["event"] == "stage_start" || e["event"] == "stage_end");
            match stage.filter(|s| s["event"] == "stage_start" && s["cell"] == c["cell"]) {
                Some(s) => {
                    let since =
                        ms(s).map(|t| human(Duration::from_millis((now - t).max(0) as u64))).unwrap_or_default();
                    let _ = writeln!(out, ", stage {} (for {since})", s["stage"].as_str().unwrap_or("?"));
                    if let Some(t) = last_json_line(&dir.path.join(TRACE_FILE))
                        .filter(|t| t["cell"] == c["cell"] && t["stage"] == s["stage"])
                    {
                        let _ = writeln!(
                            out,
                            "    last sample: {} ops, {} so far, {:.1} MB/s, {:.0} ops/s{}",
                            t["ops"],
                            format_bytes(t["bytes"].as_u64().unwrap_or(0)),
                            t["mb_per_s"].as_f64().unwrap_or(0.0),
                            t["ops_per_s"].as_f64().unwrap_or(0.0),
                            t["latency_p99_us"].as_f64().map(|p| format!(", p99 {p:.0} µs")).unwrap_or_default()
                        );
                    }
                }
                None => {
                    let _ = writeln!(out);
                }
            }
        }
        if let Some(last) = events.last().and_then(ms) {
            let _ = writeln!(out, "  last event {} ago", human(Duration::from_millis((now - last).max(0) as u64)));
        }
        // Estimate: this session's cells so far, their pace, for the cells pending.
        let done: Vec<i64> = session.iter().filter(|e| e["event"] == "cell_end").filter_map(ms).collect();
        match (session.first().and_then(ms), done.len()) {
            (Some(start), n) if n > 0 && left > 0 => {
                let per_cell = (now - start).max(0) as f64 / n as f64;
                let _ = writeln!(
                    out,
                    "  estimate: {} left ({} pending cells at this session's {:.1} s per cell)",
                    human(Duration::from_millis((per_cell * left as f64) as u64)),
                    left,
                    per_cell / 1e3
                );
            }
            (_, 0) if left > 0 => {
                let _ = writeln!(out, "  estimate: after the first cell of this session");
            }
            _ => {}
        }
    }
    let partial: Vec<&String> = stages_of_open.iter().filter(|c| !status.contains_key(*c)).collect();
    for p in partial {
        if ended {
            let _ = writeln!(out, "  partly run (redone on resume): {p}");
        }
    }
    for (cell, (s, reason)) in &status {
        if *s != CellStatus::Ok {
            let _ = writeln!(out, "  {s:?}: {cell}: {}", reason.as_deref().unwrap_or(""));
        }
    }
    for b in &bad {
        let _ = writeln!(
            out,
            "  warning: journal line {} is unreadable (a torn write?) and is ignored: {}",
            b.line, b.error
        );
    }
    if ended && status.len() < cells.len() {
        let _ = writeln!(out, "  continue with: dedup-lab run --resume {id}");
    }
    Ok((out, ended))
}

/// Prints the status once, or with `watch` every so many seconds until the run ends (or a
/// signal): on a terminal the screen is redrawn, elsewhere each look is appended.
pub fn run(run_id: Option<&str>, results: PathBuf, watch: Option<f64>) -> Result<ExitCode> {
    let id = match run_id {
        Some(id) => id.to_string(),
        None => newest_run(&results)?,
    };
    let dir = RunDir::new(&results, &id);
    let Some(every) = watch else {
        print!("{}", render(&dir, &id)?.0);
        return Ok(ExitCode::SUCCESS);
    };
    if !(every.is_finite() && (0.1..=3600.0).contains(&every)) {
        bail!("--watch {every}: expected seconds from 0.1 to 3600, e.g. --watch 2");
    }
    super::install_signal_handlers()?;
    let terminal = std::io::stdout().is_terminal();
    loop {
        let (text, ended) = render(&dir, &id)?;
        if terminal {
            print!("\x1b[2J\x1b[H");
        }
        print!("{text}");
        if !terminal {
            println!();
        }
        if ended || dedup_lab_runner::interrupted() {
            return Ok(ExitCode::SUCCESS);
        }
        let until = std::time::Instant::now() + Duration::from_secs_f64(every);
        while std::time::Instant::now() < until {
            if dedup_lab_runner::interrupted() {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
