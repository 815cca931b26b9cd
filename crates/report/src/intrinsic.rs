//! The intrinsic ("ideal store") analysis of datasets, computed once per dataset identity.
//!
//! A dataset is byte-identical from its spec on any machine (a real-world one from its spec
//! and its source files as they were planned), so its analysis is a function of that
//! identity and is computed at most once:
//! - within one invocation a [`Cache`] keeps every analysis in memory, so the summary and
//!   the exports of a run (and every cell, variant and repetition of a dataset) share one;
//! - across invocations it keeps them on disk, one small JSON file per identity in
//!   `$DEDUP_LAB_CACHE_DIR/analysis/` (default `~/.cache/dedup-lab/analysis/`; none without
//!   `HOME`). The file is named by the SHA-256 of its key — the spec as JSON (a real-world
//!   spec holds every source file's path, size, mtime and optional SHA-256),
//!   [`ANALYSIS_FORMAT`], the version and the running binary's size and mtime (so another
//!   build never reuses an analysis: a generator changed between commits cannot leave a
//!   stale ideal ratio behind) — holds that key, and is used only when the key matches (a
//!   stale format or a hash collision is a miss).
//! - Before a cached analysis of a real-world dataset is used, its source files are stat'ed
//!   again ([`realworld::check_files`], the check every read makes): a file gone or changed
//!   in size or mtime is a miss, and the analysis then fails as it would without the cache.
//! - `--no-cache` ([`Cache::in_memory`]) neither reads nor writes the disk.
//! - The disk is an optimisation only: an entry that cannot be read or written is computed
//!   as if there were no cache, and the first such problem is kept for the caller to print
//!   once ([`Cache::take_note`]).
//!
//! A cached analysis is the computed one bit for bit: serde_json writes every `f64` in the
//! shortest form that parses back to it, and parses it exactly with `float_roundtrip`.

use crate::aggregate::Source;
use dedup_lab_datagen::{ANALYSIS_FORMAT, Analysis, Analyzer, Dataset, DatasetError, DatasetSpec, realworld};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the cache root of the project (also used by
/// `scripts/services.sh` for the servers it builds).
pub const CACHE_DIR_ENV: &str = "DEDUP_LAB_CACHE_DIR";

/// Where the analyses of one invocation are kept: in memory, and on disk unless disabled.
#[derive(Debug, Default)]
pub struct Cache {
    memo: Mutex<HashMap<DatasetSpec, Analysis>>,
    dir: Option<PathBuf>,
    disk_hits: AtomicU64,
    /// Tells apart the temporary files of concurrent writers within this process.
    seq: AtomicU64,
    /// The first problem with the disk, until taken; `noted` makes it the only one.
    note: Mutex<(bool, Option<String>)>,
}

/// What the name of a cache file is the hash of.
#[derive(Serialize)]
struct Key<'a> {
    format: u32,
    version: &'static str,
    build: &'static str,
    spec: &'a DatasetSpec,
}

/// A cache file.
#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    analysis: Analysis,
}

impl Cache {
    /// Analyses kept for this invocation only (`--no-cache`).
    pub fn in_memory() -> Cache {
        Cache::default()
    }

    /// Analyses also kept in `dir` (the `analysis` directory itself), created when first
    /// written.
    pub fn on_disk(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: Some(dir.into()), ..Cache::default() }
    }

    /// The project's cache: [`default_dir`] from the environment, or memory only.
    pub fn from_env() -> Cache {
        match default_dir(std::env::var_os(CACHE_DIR_ENV), std::env::var_os("HOME")) {
            Some(dir) => Cache::on_disk(dir),
            None => Cache::in_memory(),
        }
    }

    /// The directory of the disk cache, if there is one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Analyses read from the disk (not computed) so far.
    pub fn disk_hits(&self) -> u64 {
        self.disk_hits.load(Ordering::Relaxed)
    }

    /// The first problem the disk cache met (it was then computed without it), once.
    pub fn take_note(&self) -> Option<String> {
        self.note.lock().expect("analysis cache note").1.take()
    }

    /// Analyses a dataset, hashing on worker threads, or takes its analysis from the cache.
    /// A real-world dataset whose source cannot be read (or changed) gives its error.
    pub fn analyze(&self, ds: &Dataset, threads: usize) -> Result<Analysis, DatasetError> {
        let spec = ds.spec();
        if let Some(a) = self.memo.lock().expect("analysis cache").get(spec) {
            return Ok(a.clone());
        }
        // A real-world spec recording why its source could not be read fails on every read:
        // there is nothing to keep.
        let failed = spec.real_world.as_ref().is_some_and(|rw| rw.error.is_some());
        let disk = self.dir.as_deref().filter(|_| !failed).map(|dir| (dir, key(spec)));
        let a = match disk.as_ref().and_then(|(dir, key)| self.load(dir, key, spec)) {
            Some(a) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                a
            }
            None => {
                let a = compute(ds, threads)?;
                if let Some((dir, key)) = &disk {
                    self.store(dir, key, &a);
                }
                a
            }
        };
        self.memo.lock().expect("analysis cache").insert(spec.clone(), a.clone());
        Ok(a)
    }

    /// The analysis of every distinct dataset of the sources. A spec that no longer builds
    /// (e.g. written by a newer version) or whose real-world source cannot be read any more
    /// is left out, and its ideal ratio stays empty.
    pub fn analyses(&self, sources: &[Source], threads: usize) -> Vec<(DatasetSpec, Analysis)> {
        let mut out: Vec<(DatasetSpec, Analysis)> = Vec::new();
        for s in sources {
            for spec in &s.info.spec.datasets {
                if out.iter().any(|(d, _)| d == spec) {
                    continue;
                }
                if let Ok(a) = Dataset::new(spec.clone()).and_then(|ds| self.analyze(&ds, threads)) {
                    out.push((spec.clone(), a));
                }
            }
        }
        out
    }

    /// The cached analysis of `key`, if there is a usable one.
    fn load(&self, dir: &Path, key: &str, spec: &DatasetSpec) -> Option<Analysis> {
        let path = entry_path(dir, key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.note(format!("cannot read the cached analysis {}: {e}", path.display()));
                return None;
            }
        };
        let entry: Entry = match serde_json::from_slice(&bytes) {
            Ok(entry) => entry,
            Err(e) => {
                self.note(format!("{} is not a cached analysis ({e})", path.display()));
                return None;
            }
        };
        if entry.key != key {
            return None; // another identity with the same hash: computed and overwritten
        }
        if let Some(rw) = &spec.real_world
            && realworld::check_files(rw).is_err()
        {
            return None; // the source changed: computing gives the error every read gives
        }
        Some(entry.analysis)
    }

    /// Writes the analysis of `key`: a temporary file renamed over the entry, so that a
    /// reader (another process too) sees the whole entry or none.
    fn store(&self, dir: &Path, key: &str, a: &Analysis) {
        let path = entry_path(dir, key);
        let entry = Entry { key: key.to_string(), analysis: a.clone() };
        let bytes = serde_json::to_vec_pretty(&entry).expect("an analysis serialises");
        let tmp = dir.join(format!(
            ".{}.{}-{}.tmp",
            path.file_name().expect("a file name").to_string_lossy(),
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp); // may not exist; nothing else to do
            self.note(format!("cannot write the analysis cache in {}: {e}", dir.display()));
        }
    }

    fn note(&self, what: String) {
        let mut note = self.note.lock().expect("analysis cache note");
        if !note.0 {
            *note = (true, Some(format!("{what}; the analysis was computed without the cache")));
        }
    }
}

/// The disk cache's directory from the values of `DEDUP_LAB_CACHE_DIR` and `HOME` (empty
/// counts as unset, as `${VAR:-default}` does in the scripts): `<cache root>/analysis`,
/// the root defaulting to `$HOME/.cache/dedup-lab`; none without either.
pub fn default_dir(cache_root: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let root = match cache_root.filter(|v| !v.is_empty()) {
        Some(root) => PathBuf::from(root),
        None => PathBuf::from(home.filter(|v| !v.is_empty())?).join(".cache").join("dedup-lab"),
    };
    Some(root.join("analysis"))
}

/// The running binary's identity: its size and modification time. Every rebuild changes it,
/// so an analysis cached by another build is never reused, even where a change to a
/// generator forgot to bump [`ANALYSIS_FORMAT`] (the version stays the same between
/// commits). One build reuses its own analyses, which is what the cache is for.
fn build_identity() -> &'static str {
    static BUILD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILD.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        std::env::current_exe()
            .and_then(std::fs::metadata)
            .map(|m| format!("{}-{}.{}", m.len(), m.mtime(), m.mtime_nsec()))
            .unwrap_or_else(|_| "unknown".into())
    })
}

/// The canonical key of a dataset's analysis: the spec as JSON (struct fields in their
/// declared order: deterministic), the analysis format, the version and the build.
fn key(spec: &DatasetSpec) -> String {
    let key = Key { format: ANALYSIS_FORMAT, version: env!("CARGO_PKG_VERSION"), build: build_identity(), spec };
    serde_json::to_string(&key).expect("a dataset spec serialises")
}

fn entry_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{}.json", dedup_lab_datagen::sha256_hex(key.as_bytes())))
}

/// The analysis computed from the dataset's records.
fn compute(ds: &Dataset, threads: usize) -> Result<Analysis, DatasetError> {
    let mut an = Analyzer::new();
    for h in ds.try_par_records(threads) {
        let h = h?;
        an.add(&h.record.data, h.sha256, h.record.is_duplicate());
    }
    Ok(an.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_root_is_the_env_then_home_then_none() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(default_dir(s("/c"), s("/h")), Some(PathBuf::from("/c/analysis")));
        assert_eq!(default_dir(s(""), s("/h")), Some(PathBuf::from("/h/.cache/dedup-lab/analysis")));
        assert_eq!(default_dir(None, s("/h")), Some(PathBuf::from("/h/.cache/dedup-lab/analysis")));
        assert_eq!(default_dir(None, None), None);
        assert_eq!(default_dir(None, s("")), None);
    }
}
