//! The results directory of a run and its journal.
//!
//! `results/<run-id>/run.json` describes the run (tool version, commit, host, the validated
//! spec without secrets, server versions, start/end); `measurements.jsonl` gets one line per
//! finished stage and one per finished cell, each appended and fsynced as soon as it
//! exists. The journal doubles as the checkpoint: a cell is finished when its `cell` line
//! is there. On resume, the lines of a partly run cell (and a torn last line of a killed
//! process) are moved to `discarded.jsonl` and the cell is redone, so the journal never
//! holds a cell twice.

use crate::{RunError, RunSpec};
use dedup_lab_core::{CellKey, CellStatus, JournalLine};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub const RUN_FILE: &str = "run.json";
pub const JOURNAL_FILE: &str = "measurements.jsonl";
pub const DISCARDED_FILE: &str = "discarded.jsonl";
const RUN_FORMAT: &str = "dedup-lab-run/1";

/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub format: String,
    pub run_id: String,
    pub tool_version: String,
    pub git_commit: String,
    pub host: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `finished`, `interrupted`.
    pub status: String,
    /// `<system>/<variant>` → server version.
    pub server_versions: BTreeMap<String, String>,
    pub spec: RunSpec,
}

/// Replaces the value of every setting the registry marks as secret with `"***"`. Plans
/// refuse secrets in the config, so this is the second line of defence for runs built
/// through the library.
fn redact_secrets(spec: &RunSpec, info: &mut serde_json::Value) {
    let Some(systems) = info.pointer_mut("/spec/systems").and_then(|v| v.as_array_mut()) else { return };
    for (sys, value) in spec.systems.iter().zip(systems) {
        let Some(settings) = value.get_mut("settings").and_then(|s| s.as_object_mut()) else { continue };
        for key in dedup_lab_backends::entry(sys.kind).secret_keys() {
            if let Some(v) = settings.get_mut(key) {
                *v = serde_json::Value::String("***".into());
            }
        }
    }
}

/// A run's results directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

fn fsync_dir(dir: &Path) -> Result<(), RunError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| RunError::io(dir, e))
}

/// Writes a file atomically: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| RunError::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| RunError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| RunError::io(path, e))?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

impl RunDir {
    pub fn new(results: &Path, run_id: &str) -> RunDir {
        RunDir { path: results.join(run_id) }
    }

    /// Creates the directory of a new run with its `run.json` (refusing an existing one).
    ///
    /// The directory is built under a hidden temporary name and renamed into place, so a
    /// run directory always has its description: a process killed at any moment leaves
    /// either nothing or a resumable run.
    pub fn create(&self, info: &RunInfo) -> Result<(), RunError> {
        if self.path.exists() {
            return Err(RunError::Invalid(format!("results directory {} already exists", self.path.display())));
        }
        let parent = self.path.parent().unwrap_or(Path::new("."));
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = parent.join(format!(".{name}.creating"));
        fs::create_dir_all(&tmp).map_err(|e| RunError::io(&tmp, e))?;
        RunDir { path: tmp.clone() }.write_info(info)?;
        fs::rename(&tmp, &self.path).map_err(|e| RunError::io(&self.path, e))?;
        fsync_dir(parent)
    }

    pub fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL_FILE)
    }

    /// Where embedded backends keep their stores during the run.
    pub fn lab_dir(&self) -> PathBuf {
        self.path.join("lab")
    }

    pub fn write_info(&self, info: &RunInfo) -> Result<(), RunError> {
        let mut value = serde_json::to_value(info).expect("run info serialises");
        redact_secrets(&info.spec, &mut value);
        let text = serde_json::to_vec_pretty(&value).expect("run info serialises");
        write_atomic(&self.path.join(RUN_FILE), &text)
    }

    pub fn read_info(&self) -> Result<RunInfo, RunError> {
        let p = self.path.join(RUN_FILE);
        let text = fs::read(&p).map_err(|e| {
            RunError::Invalid(format!(
                "{} is not a dedup-lab run directory: cannot read {RUN_FILE}: {e}",
                self.path.display()
            ))
        })?;
        let info: RunInfo = serde_json::from_slice(&text)
            .map_err(|e| RunError::Invalid(format!("{}: not a valid run description: {e}", p.display())))?;
        if info.format != RUN_FORMAT {
            return Err(RunError::Invalid(format!("{}: unknown format {:?}", p.display(), info.format)));
        }
        Ok(info)
    }

    pub fn new_info(run_id: &str, spec: RunSpec, git_commit: &str) -> RunInfo {
        RunInfo {
            format: RUN_FORMAT.into(),
            run_id: run_id.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: git_commit.into(),
            host: hostname(),
            started_at: dedup_lab_core::time::now_rfc3339(),
            finished_at: None,
            status: "running".into(),
            server_versions: BTreeMap::new(),
            spec,
        }
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A journal line that could not be read, with its 1-based line number.
#[derive(Debug, Clone)]
pub struct BadLine {
    pub line: usize,
    pub text: String,
    pub error: String,
}

/// Reads every line of a journal; unreadable lines (a torn tail) are returned separately.
pub fn read_journal(path: &Path) -> Result<(Vec<JournalLine>, Vec<BadLine>), RunError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(RunError::io(path, e)),
    };
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
        let raw = line.map_err(|e| RunError::io(path, e))?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<JournalLine>(&text) {
            Ok(l) => good.push(l),
            Err(e) => bad.push(BadLine { line: i + 1, text, error: e.to_string() }),
        }
    }
    Ok((good, bad))
}

/// The append-only journal of a run.
pub struct Journal {
    path: PathBuf,
    file: File,
    finished: HashMap<CellKey, CellStatus>,
}

/// What a resume found.
#[derive(Debug, Default)]
pub struct ResumeReport {
    pub finished_cells: usize,
    pub discarded_lines: usize,
}

impl Journal {
    fn open_append(path: &Path) -> Result<File, RunError> {
        OpenOptions::new().create(true).append(true).open(path).map_err(|e| RunError::io(path, e))
    }

    /// A new, empty journal.
    pub fn create(dir: &RunDir) -> Result<Journal, RunError> {
        let path = dir.journal_path();
        let file = Self::open_append(&path)?;
        fsync_dir(&dir.path)?;
        Ok(Journal { path, file, finished: HashMap::new() })
    }

    /// Reopens a journal to resume: keeps the lines of finished cells, moves everything
    /// else (partial cells, torn lines) to `discarded.jsonl`, rewrites the journal atomically.
    pub fn resume(dir: &RunDir) -> Result<(Journal, ResumeReport), RunError> {
        let path = dir.journal_path();
        let (lines, bad) = read_journal(&path)?;
        let mut finished = HashMap::new();
        for l in &lines {
            if let JournalLine::Cell { cell, status, .. } = l {
                finished.insert(cell.clone(), *status);
            }
        }
        let mut keep = Vec::new();
        let mut discard: Vec<String> = bad.iter().map(|b| b.text.clone()).collect();
        let mut seen_stage = std::collections::HashSet::new();
        let mut seen_cell = std::collections::HashSet::new();
        for l in lines {
            let text = serde_json::to_string(&l).expect("journal line serialises");
            let keep_it = match &l {
                // A stage line is kept once, and only when its cell finished.
                JournalLine::Stage(m) => finished.contains_key(&m.cell) && seen_stage.insert((m.cell.clone(), m.stage)),
                JournalLine::Cell { cell, .. } => seen_cell.insert(cell.clone()),
            };
            if keep_it { keep.push(text) } else { discard.push(text) }
        }
        let report = ResumeReport { finished_cells: finished.len(), discarded_lines: discard.len() };
        if !discard.is_empty() {
            let dpath = dir.path.join(DISCARDED_FILE);
            let mut d = Self::open_append(&dpath)?;
            let mut buf = String::new();
            for t in &discard {
                buf.push_str(t);
                buf.push('\n');
            }
            d.write_all(buf.as_bytes()).and_then(|_| d.sync_data()).map_err(|e| RunError::io(&dpath, e))?;
        }
        let mut body = String::new();
        for t in &keep {
            body.push_str(t);
            body.push('\n');
        }
        write_atomic(&path, body.as_bytes())?;
        let file = Self::open_append(&path)?;
        Ok((Journal { path, file, finished }, report))
    }

    pub fn is_finished(&self, key: &CellKey) -> bool {
        self.finished.contains_key(key)
    }

    /// Appends one line and fsyncs it before returning.
    pub fn append(&mut self, line: &JournalLine) -> Result<(), RunError> {
        let mut text = serde_json::to_string(line).expect("journal line serialises");
        text.push('\n');
        // One write of the whole line: a kill can tear at most this line, which resume discards.
        self.file.write_all(text.as_bytes()).map_err(|e| RunError::io(&self.path, e))?;
        self.file.sync_data().map_err(|e| RunError::io(&self.path, e))?;
        if let JournalLine::Cell { cell, status, .. } = line {
            self.finished.insert(cell.clone(), *status);
        }
        Ok(())
    }
}
