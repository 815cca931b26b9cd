//! Real-world datasets: files, directories, globs and archives the user points at, cut into
//! records of the configured size.
//!
//! How a real-world dataset plugs in:
//! - A source is defined by name and path ([`SourceDef`], from `[real_world]` in the config
//!   or `--real-world NAME=PATH`). [`scan`] resolves the path to its files (sorted), walks
//!   every file and archive entry once and counts the records it yields: each leaf (a plain
//!   file or an archive entry) is cut into records of the record size, the last one of each
//!   leaf shorter.
//! - [`Scan::dataset`] makes the [`DatasetSpec`](crate::DatasetSpec) of one grade:
//!   `payload = real_world`, `records = N` (the records the source yields), and a
//!   [`RealWorldSpec`] with the source's identity (every file's path, size, mtime and, with
//!   `--verify-sources`, SHA-256). The spec is what run.json and the manifests store, so a
//!   changed source is detected by [`check_unchanged`] (resume) and whenever a dataset is
//!   read (sizes and mtimes), instead of silently mixing data.
//! - The duplication plan is the synthetic one ([`DupPlan`]) over N records. **Choice:**
//!   every grade keeps the dataset as large as the source in records — N records, of which
//!   D = round(grade × N) are copies — by using the first N − D records of the source as the
//!   originals, in source order; the rest of the source is not read. So U0 is the source
//!   itself, and U90 is its first tenth, each record present ten times on average.
//! - [`Dataset::try_par_records`](crate::Dataset::try_par_records) streams the records:
//!   one reader thread walks the source (bounded buffers, never a whole file), originals
//!   come from the source in order, and a duplicate re-reads its original's content either
//!   in place (`pread` at the original's offset, when it lies uncompressed in a plain file,
//!   an uncompressed tar or a stored zip entry of a source file) or from a spool file in the
//!   scratch directory, where the reader saves exactly those originals that the plan says
//!   will be copied later and that cannot be re-read in place. Hashing runs on worker
//!   threads; records come out in order.
//!
//! Sources are never written: opened read-only, nothing is created beside them (see
//! [`scratch`]), archives are read entry by entry and never extracted to paths.

pub mod archive;
pub mod scratch;
pub mod source;
mod stream;

pub use scratch::{Session, SessionOptions};
pub use stream::Stream;

use crate::plan::DupPlan;
use crate::spec::{DatasetError, DatasetSpec, MAX_RECORDS, RecordSize};
use archive::{Flow, Leaf, Visitor, Walker};
use dedup_lab_core::{Grade, PayloadType, format_bytes};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the binary's signal handler (SIGINT/SIGTERM): readers, scans and copies stop at
/// the next piece, and their scratch files are removed as they unwind.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// A real-world source as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDef {
    /// The payload-type name it is selected by, e.g. `nasa_image`.
    pub name: String,
    /// A file, a directory (read recursively) or a glob pattern.
    pub path: String,
    /// Read archives entry by entry (default) instead of as opaque files.
    pub expand_archives: bool,
}

/// Checks a real-world payload name: `[a-z][a-z0-9_]*`, at most 64 characters, not a
/// synthetic payload type's name.
pub fn validate_name(name: &str) -> Result<(), DatasetError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_lowercase()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(DatasetError::Invalid(format!(
            "invalid real-world payload name {name:?}: use lower-case letters, digits and _, starting with a \
             letter (at most 64 characters), e.g. nasa_image"
        )));
    }
    if name.parse::<PayloadType>().is_ok() || name == PayloadType::RealWorld.name() {
        return Err(DatasetError::Invalid(format!(
            "real-world payload name {name:?} is taken by a synthetic payload type; choose another name"
        )));
    }
    Ok(())
}

/// One file of a real-world source, as it was when the dataset was planned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// SHA-256 of the file's bytes (with `--verify-sources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Records this file yields (its leaves cut into records).
    pub records: u64,
}

/// The real-world part of a dataset spec: the source and its identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RealWorldSpec {
    /// The payload-type name, e.g. `nasa_image`.
    pub name: String,
    /// The path as configured (file, directory or glob).
    pub source: String,
    pub expand_archives: bool,
    /// Every file the source resolved to, in reading order.
    pub files: Vec<SourceFile>,
    /// Bytes all the source's records hold.
    pub source_bytes: u64,
    /// Logical bytes of this dataset: its grade's plan over the source's records.
    pub bytes: u64,
    /// Why the source could not be read, if it could not: the dataset (and only it) fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RealWorldSpec {
    /// A short digest of the source's identity (paths, sizes, mtimes, hashes).
    pub fn identity(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&(&self.source, self.expand_archives, &self.files)).expect("serialises"));
        hex::encode(&h.finalize()[..6])
    }
}

/// What scanning a source found.
#[derive(Debug, Clone)]
pub struct Scan {
    pub def: SourceDef,
    pub files: Vec<SourceFile>,
    /// Sizes of the non-empty leaves, in order.
    leaf_sizes: Vec<u64>,
    pub records: u64,
    pub source_bytes: u64,
    pub leaves: u64,
    /// Entries skipped, with the reason.
    pub warnings: Vec<String>,
}

fn record_size_of(size: RecordSize) -> Result<u64, DatasetError> {
    match size {
        RecordSize::Fixed(s) => Ok(s),
        RecordSize::Range { .. } => Err(DatasetError::Invalid(format!(
            "real-world sources are cut into records of one fixed size; give a fixed --record-size (e.g. 512KiB), \
             not the range {size}"
        ))),
    }
}

/// Counts what a source yields: resolves the path, stats every file (hashes it with
/// `verify`), and walks every file and archive entry. Reads only; memory is one buffer
/// plus one size per leaf.
pub fn scan(def: &SourceDef, record_size: RecordSize, verify: bool) -> Result<Scan, DatasetError> {
    let rs = record_size_of(record_size)?;
    let (paths, mut warnings) = source::resolve(&def.path)?;
    scratch::check_outside(&def.name, &def.path, &paths)?;
    let mut scratch = scratch::Scratch::new();
    let mut files = Vec::with_capacity(paths.len());
    let mut counter = Counter {
        rs,
        file: PathBuf::new(),
        leaf_sizes: Vec::new(),
        records: 0,
        bytes: 0,
        leaves: 0,
        warnings: Vec::new(),
    };
    for path in &paths {
        counter.file = path.clone();
        let meta = source::metadata(path)?;
        let (size, mtime_ns) = (meta.len(), source::mtime_ns(&meta));
        let read_path = scratch.read_path(path, size, mtime_ns)?;
        let sha256 = if verify { Some(hash_file(&read_path)?) } else { None };
        let before = counter.records;
        Walker { file: path, read_path: &read_path, expand: def.expand_archives, scratch: &mut scratch }
            .walk(&mut counter)?;
        files.push(SourceFile {
            path: path.display().to_string(),
            size,
            mtime_ns,
            sha256,
            records: counter.records - before,
        });
    }
    warnings.append(&mut counter.warnings);
    if counter.records == 0 {
        return Err(DatasetError::Invalid(format!(
            "real-world source {} ({}) holds no data: {} file(s), {} non-empty leaves; point it at files with content",
            def.name,
            def.path,
            files.len(),
            counter.leaves
        )));
    }
    if counter.records > MAX_RECORDS {
        return Err(DatasetError::Invalid(format!(
            "real-world source {} yields {} records of {} (more than {MAX_RECORDS}); choose a larger --record-size",
            def.name,
            counter.records,
            format_bytes(rs)
        )));
    }
    Ok(Scan {
        def: def.clone(),
        files,
        leaf_sizes: counter.leaf_sizes,
        records: counter.records,
        source_bytes: counter.bytes,
        leaves: counter.leaves,
        warnings,
    })
}

struct Counter {
    rs: u64,
    file: PathBuf,
    leaf_sizes: Vec<u64>,
    records: u64,
    bytes: u64,
    leaves: u64,
    warnings: Vec<String>,
}

impl Visitor for Counter {
    fn leaf(&mut self, leaf: &Leaf<'_>, data: &mut dyn Read) -> Result<Flow, DatasetError> {
        // Declared sizes are checked when the records are read; a stream without one
        // (a .gz) is decompressed here to count it.
        let size = match leaf.declared {
            Some(d) => d,
            None => count(data).map_err(|e| match e.kind() {
                std::io::ErrorKind::Interrupted => DatasetError::Interrupted,
                _ => DatasetError::Invalid(format!(
                    "{}: entry {}: cannot be read: {e} (corrupt or truncated archive?)",
                    self.file.display(),
                    leaf.label.unwrap_or("?")
                )),
            })?,
        };
        if size > 0 {
            self.leaf_sizes.push(size);
            self.records += size.div_ceil(self.rs);
            self.bytes += size;
            self.leaves += 1;
        }
        Ok(Flow::Continue)
    }

    fn warning(&mut self, msg: String) {
        self.warnings.push(msg);
    }
}

fn count(r: &mut dyn Read) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        if interrupted() {
            return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted by a signal"));
        }
        match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn hash_file(path: &Path) -> Result<String, DatasetError> {
    let mut f = source::open_read(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if interrupted() {
            return Err(DatasetError::Interrupted);
        }
        match f.read(&mut buf) {
            Ok(0) => return Ok(hex::encode(h.finalize())),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(source::describe(path, e)),
        }
    }
}

impl Scan {
    /// The dataset of one grade over this source.
    pub fn dataset(&self, grade: Grade, record_size: RecordSize, seed: u64) -> Result<DatasetSpec, DatasetError> {
        let rs = record_size_of(record_size)?;
        let mut spec = DatasetSpec {
            payload: PayloadType::RealWorld,
            grade,
            records: self.records,
            record_size,
            seed,
            real_world: Some(RealWorldSpec {
                name: self.def.name.clone(),
                source: self.def.path.clone(),
                expand_archives: self.def.expand_archives,
                files: self.files.clone(),
                source_bytes: self.source_bytes,
                bytes: 0,
                error: None,
            }),
        };
        // The plan's bytes: originals take the source's records in order, copies their
        // original's size.
        let mut chunks = self.leaf_sizes.iter().flat_map(|&s| {
            let full = s / rs;
            std::iter::repeat_n(rs, full as usize).chain((s % rs != 0).then_some(s % rs))
        });
        let mut originals: Vec<u64> = Vec::new();
        let mut sizes: Vec<u64> = Vec::new();
        let mut bytes = 0u64;
        for e in DupPlan::new(&spec) {
            if e.is_duplicate() {
                let k = originals.binary_search(&e.source).expect("a copy's source is an earlier original");
                bytes += sizes[k];
            } else {
                let s = chunks.next().expect("the plan has at most as many originals as the source has records");
                originals.push(e.index);
                sizes.push(s);
                bytes += s;
            }
        }
        spec.real_world.as_mut().expect("set above").bytes = bytes;
        Ok(spec)
    }
}

/// The spec of a dataset whose source could not be read: it fails on its own, with `error`.
pub fn failed_dataset(def: &SourceDef, grade: Grade, record_size: RecordSize, seed: u64, error: String) -> DatasetSpec {
    DatasetSpec {
        payload: PayloadType::RealWorld,
        grade,
        records: 0,
        record_size,
        seed,
        real_world: Some(RealWorldSpec {
            name: def.name.clone(),
            source: def.path.clone(),
            expand_archives: def.expand_archives,
            files: Vec::new(),
            source_bytes: 0,
            bytes: 0,
            error: Some(error),
        }),
    }
}

fn rfc3339(ns: i64) -> String {
    dedup_lab_core::time::rfc3339_from_unix_ms(ns.div_euclid(1_000_000))
}

/// How a file differs from what was planned, if it does (size and mtime only).
fn file_change(f: &SourceFile) -> Option<String> {
    let path = Path::new(&f.path);
    let meta = match source::metadata(path) {
        Ok(m) => m,
        Err(e) => return Some(format!("{e}")),
    };
    let (size, mtime) = (meta.len(), source::mtime_ns(&meta));
    if size != f.size || mtime != f.mtime_ns {
        return Some(format!(
            "{}: now {size} B modified {}, planned with {} B modified {}",
            f.path,
            rfc3339(mtime),
            f.size,
            rfc3339(f.mtime_ns)
        ));
    }
    None
}

/// Checks that the files of a dataset are still as planned (sizes and mtimes), before
/// reading them, and before reusing an analysis cached from them.
pub fn check_files(rw: &RealWorldSpec) -> Result<(), DatasetError> {
    for f in &rw.files {
        if let Some(change) = file_change(f) {
            return Err(DatasetError::Invalid(format!(
                "real-world source {} changed since the dataset was planned: {change}; \
                 its records would mix old and new data, so it is not read (plan it again: a new run or generate)",
                rw.name
            )));
        }
    }
    Ok(())
}

/// Checks that a source is still exactly what the dataset was planned from: the same
/// files (the path resolves to the same list), sizes and mtimes, and, when the spec holds
/// SHA-256s, the same content. For resume: a changed source must not mix into a run.
pub fn check_unchanged(rw: &RealWorldSpec) -> Result<(), String> {
    if rw.error.is_some() {
        return Ok(()); // nothing was read from it; its cells fail with the stored error
    }
    let fail =
        |what: String| format!("real-world source {} ({}) changed since the run started: {what}", rw.name, rw.source);
    let (paths, _) = source::resolve(&rw.source).map_err(|e| fail(e.to_string()))?;
    let now: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let planned: Vec<&String> = rw.files.iter().map(|f| &f.path).collect();
    if let Some(new) = now.iter().find(|p| !planned.contains(p)) {
        return Err(fail(format!("{new} is new")));
    }
    if let Some(gone) = planned.iter().find(|p| !now.contains(p)) {
        return Err(fail(format!("{gone} is gone")));
    }
    for f in &rw.files {
        if let Some(change) = file_change(f) {
            return Err(fail(change));
        }
        if let Some(want) = &f.sha256 {
            let got = hash_file(Path::new(&f.path)).map_err(|e| fail(e.to_string()))?;
            if &got != want {
                return Err(fail(format!("{}: its content (SHA-256) differs, with the same size and mtime", f.path)));
            }
        }
    }
    Ok(())
}

/// Where a record's bytes come from: a source file, the entry inside it (for archives) and
/// the offset in that file or entry (decompressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub entry: Option<Arc<str>>,
    pub offset: u64,
}

/// The source files' paths of a spec, for checks of the scratch location.
pub fn source_paths(rw: &RealWorldSpec) -> Vec<PathBuf> {
    rw.files.iter().map(|f| PathBuf::from(&f.path)).collect()
}
