//! Reading result directories (the only I/O of the report besides writing its files):
//! a run directory (`results/<run-id>` with `run.json`) or a results root holding several.

use crate::aggregate::Source;
use dedup_lab_core::JournalLine;
use dedup_lab_runner::journal::{JOURNAL_FILE, RUN_FILE, RunDir};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A path that cannot be read as results.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// The run directories a path stands for: itself when it holds `run.json`, else its
/// subdirectories that do (sorted by name, i.e. by start time).
pub fn run_dirs(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let expected = format!(
        "expected a run directory (results/<run-id>, holding {RUN_FILE} and {JOURNAL_FILE}) \
         or a results directory that holds run directories"
    );
    let meta = std::fs::metadata(path)
        .map_err(|e| LoadError(format!("{} is not a dedup-lab results directory ({e}): {expected}", path.display())))?;
    if !meta.is_dir() {
        return Err(LoadError(format!(
            "{} is not a dedup-lab results directory (not a directory): {expected}",
            path.display()
        )));
    }
    if path.join(RUN_FILE).is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let rd = std::fs::read_dir(path).map_err(|e| LoadError(format!("cannot list {}: {e}", path.display())))?;
    // Hidden entries are run directories still being created (`.<id>.creating`).
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.join(RUN_FILE).is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(LoadError(format!(
            "{} is not a dedup-lab results directory: it has no {RUN_FILE} and no subdirectory with one; {expected}",
            path.display()
        )));
    }
    Ok(dirs)
}

/// Reads a journal. Lines that cannot be used — blank, not UTF-8, not a journal line, or
/// half-written at the end of the file (a killed run) — are skipped, each with a warning
/// that names its line number.
pub fn read_journal(path: &Path) -> Result<(Vec<JournalLine>, Vec<String>), LoadError> {
    let mut bytes = Vec::new();
    match std::fs::File::open(path) {
        Ok(mut f) => f.read_to_end(&mut bytes).map(|_| ()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), vec![format!("{JOURNAL_FILE} does not exist yet: no stage has finished")]));
        }
        Err(e) => Err(e),
    }
    .map_err(|e| LoadError(format!("cannot read {}: {e}", path.display())))?;
    let (mut lines, mut warnings) = (Vec::new(), Vec::new());
    if bytes.is_empty() {
        warnings.push(format!("{JOURNAL_FILE} is empty: no stage has finished yet"));
        return Ok((lines, warnings));
    }
    let ends_with_newline = bytes.last() == Some(&b'\n');
    let parts: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // `split` yields an empty piece after a final newline; it is not a line.
    let count = if ends_with_newline { parts.len() - 1 } else { parts.len() };
    for (i, raw) in parts.iter().take(count).enumerate() {
        let n = i + 1;
        let last_unterminated = !ends_with_newline && n == count;
        let Ok(text) = std::str::from_utf8(raw) else {
            warnings.push(format!("{JOURNAL_FILE} line {n} is not UTF-8 text (corrupt); skipped"));
            continue;
        };
        if text.trim().is_empty() {
            warnings.push(format!("{JOURNAL_FILE} line {n} is empty; skipped"));
            continue;
        }
        match serde_json::from_str::<JournalLine>(text) {
            Ok(l) if !last_unterminated => lines.push(l),
            Ok(l) => {
                // Complete JSON without its newline: the write finished, the newline did not.
                warnings.push(format!("{JOURNAL_FILE} line {n} has no final newline; it reads completely and is used"));
                lines.push(l);
            }
            Err(e) if last_unterminated || e.is_eof() => warnings
                .push(format!("{JOURNAL_FILE} line {n} is half-written (the tail of a killed run?); skipped: {e}")),
            Err(e) => warnings.push(format!("{JOURNAL_FILE} line {n} is not a valid journal line; skipped: {e}")),
        }
    }
    Ok((lines, warnings))
}

/// Loads one run directory.
pub fn load_run(dir: &Path) -> Result<Source, LoadError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let info = RunDir::new(parent, &name).read_info().map_err(|e| LoadError(e.to_string()))?;
    let (lines, warnings) = read_journal(&dir.join(JOURNAL_FILE))?;
    Ok(Source { path: dir.display().to_string(), info, lines, warnings })
}

/// Loads every run under the given paths, each once (by canonical path), in order.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Source>, LoadError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for p in paths {
        for d in run_dirs(p)? {
            let canon = d.canonicalize().unwrap_or_else(|_| d.clone());
            if seen.insert(canon) {
                out.push(load_run(&d)?);
            }
        }
    }
    Ok(out)
}
