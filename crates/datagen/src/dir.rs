//! Dataset directories: what `dedup-lab generate` writes and `dedup-lab verify` checks.
//!
//! Layout:
//! ```text
//! <root>/dedup-lab-datasets.json          marker + index of the datasets in this directory
//! <root>/<payload>/<grade>/manifest.jsonl header line, one line per record, totals line
//! <root>/<payload>/<grade>/records/r00000000.<ext>
//! ```
//! The manifest is JSON Lines so it can be written and read while streaming.

use crate::spec::{DatasetError, DatasetSpec};
use crate::{Dataset, par};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub const MARKER: &str = "dedup-lab-datasets.json";
const MARKER_FORMAT: &str = "dedup-lab-datasets/1";
const MANIFEST_FORMAT: &str = "dedup-lab-manifest/1";

/// The marker file: which datasets a directory holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DirIndex {
    pub format: String,
    pub datasets: Vec<IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Relative path of the dataset directory, e.g. `random_binary/U50`.
    pub path: String,
    pub spec: DatasetSpec,
}

/// One line of `manifest.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ManifestLine {
    Header { format: String, spec: DatasetSpec },
    Record(ManifestRecord),
    Totals(Totals),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub index: u64,
    pub key: String,
    /// Path relative to the dataset directory.
    pub file: String,
    pub size: u64,
    pub sha256: String,
    /// Index of the earlier record this one copies, if it is a duplicate.
    pub duplicate_of: Option<u64>,
    /// Where a real-world record's bytes come from (for a copy: its original's place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RecordSource>,
}

/// The place in a real-world source a record was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordSource {
    /// The source file.
    pub file: String,
    /// The entry inside it, for archives (`outer.zip!/inner.xlsx!/xl/sheet1.xml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Byte offset in the file, or in the (decompressed) entry.
    pub offset: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub records: u64,
    pub unique_records: u64,
    pub duplicate_records: u64,
    pub logical_bytes: u64,
    pub unique_bytes: u64,
    /// SHA-256 over the records' SHA-256s in order: one fingerprint of the whole dataset.
    pub dataset_sha256: String,
}

/// Relative directory of a dataset inside a dataset directory.
pub fn dataset_rel_path(spec: &DatasetSpec) -> String {
    format!("{}/{}", spec.payload_name(), spec.grade)
}

/// Checks that `root` may be used as an output directory, creating it if needed.
///
/// A directory that exists, is not empty and is not a dataset directory is refused unless
/// `force` is set, so a mistyped `--output` never scatters files into someone's data.
pub fn prepare_output(root: &Path, force: bool) -> Result<(), DatasetError> {
    if root.exists() {
        if !root.is_dir() {
            return Err(DatasetError::Invalid(format!(
                "output {} exists and is not a directory; choose another --output",
                root.display()
            )));
        }
        let is_dataset_dir = root.join(MARKER).is_file();
        let empty = fs::read_dir(root)
            .map_err(|e| {
                DatasetError::Invalid(format!(
                    "cannot read output directory {}: {e}; choose another --output",
                    root.display()
                ))
            })?
            .next()
            .is_none();
        if !is_dataset_dir && !empty && !force {
            return Err(DatasetError::Invalid(format!(
                "output {} exists and is not a dataset directory (it has no {MARKER}); \
                 choose an empty or new --output, or pass --force to write into it anyway",
                root.display()
            )));
        }
    } else {
        fs::create_dir_all(root).map_err(|e| {
            // Name the culprit when a part of the path is a file (ENOTDIR says only "Not a
            // directory", not which one).
            let file = root.ancestors().skip(1).find(|a| a.exists()).filter(|a| !a.is_dir());
            let why = match file {
                Some(f) => format!("{} is a file, not a directory", f.display()),
                None => e.to_string(),
            };
            DatasetError::Invalid(format!(
                "cannot create output directory {}: {why}; choose another --output",
                root.display()
            ))
        })?;
    }
    // Prove we can write here before generating anything.
    let probe = root.join(".dedup-lab-write-test");
    File::create(&probe).map_err(|e| {
        DatasetError::Invalid(format!("output {} is not writable: {e}; choose another --output", root.display()))
    })?;
    fs::remove_file(&probe).map_err(|e| DatasetError::io(&probe, e))?;
    Ok(())
}

/// Checks that the dataset of `spec` may be written into `root`: its directory must not
/// exist yet, or be one that dedup-lab wrote (listed in the root's index), which is then
/// replaced. `--force` lets `generate` write into a directory it did not create; it never
/// lets it delete what someone else put there.
pub fn check_target(root: &Path, spec: &DatasetSpec) -> Result<(), DatasetError> {
    let rel = dataset_rel_path(spec);
    let dir = root.join(&rel);
    if fs::symlink_metadata(&dir).is_err() {
        return Ok(());
    }
    let ours = root.join(MARKER).is_file() && read_index(root)?.datasets.iter().any(|d| d.path == rel);
    if ours {
        return Ok(());
    }
    Err(DatasetError::Invalid(format!(
        "{} exists but dedup-lab did not write it (it is not listed in {}), so it is left alone; \
         move it away (or delete it, if an interrupted generate left it) or choose another --output",
        dir.display(),
        root.join(MARKER).display()
    )))
}

/// Reads the marker of a dataset directory.
pub fn read_index(root: &Path) -> Result<DirIndex, DatasetError> {
    let path = root.join(MARKER);
    let text = fs::read_to_string(&path).map_err(|e| {
        DatasetError::Invalid(format!(
            "{} is not a dataset directory: cannot read {MARKER}: {e}; create one with `dedup-lab generate --output {}`",
            root.display(),
            root.display()
        ))
    })?;
    let index: DirIndex = serde_json::from_str(&text)
        .map_err(|e| DatasetError::Invalid(format!("{}: not a valid dataset index: {e}", path.display())))?;
    if index.format != MARKER_FORMAT {
        return Err(DatasetError::Invalid(format!(
            "{}: unknown format {:?} (expected {MARKER_FORMAT})",
            path.display(),
            index.format
        )));
    }
    Ok(index)
}

fn write_index(root: &Path, index: &DirIndex) -> Result<(), DatasetError> {
    let path = root.join(MARKER);
    let tmp = root.join(format!("{MARKER}.tmp"));
    let text = serde_json::to_string_pretty(index).expect("index serialises");
    fs::write(&tmp, text).map_err(|e| DatasetError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| DatasetError::io(&path, e))
}

/// Accumulates the totals line of a manifest, one record at a time.
#[derive(Default)]
pub struct TotalsBuilder {
    totals: Totals,
    fingerprint: Sha256,
}

impl TotalsBuilder {
    pub fn add(&mut self, h: &par::HashedRecord) {
        let (t, len) = (&mut self.totals, h.record.data.len() as u64);
        self.fingerprint.update(h.digest());
        t.records += 1;
        t.logical_bytes += len;
        if h.record.is_duplicate() {
            t.duplicate_records += 1;
        } else {
            t.unique_records += 1;
            t.unique_bytes += len;
        }
    }

    pub fn finish(self) -> Totals {
        Totals { dataset_sha256: hex::encode(self.fingerprint.finalize()), ..self.totals }
    }
}

/// Generates and hashes every record of `ds` and writes nothing: the totals (with the
/// fingerprint) that its manifest would carry. Calls `progress` with each record's bytes.
pub fn dataset_totals(ds: &Dataset, threads: usize, progress: &mut dyn FnMut(u64)) -> Result<Totals, DatasetError> {
    let mut totals = TotalsBuilder::default();
    for h in ds.try_par_records(threads) {
        let h = h?;
        if crate::realworld::interrupted() {
            return Err(DatasetError::Interrupted);
        }
        totals.add(&h);
        progress(h.record.data.len() as u64);
    }
    Ok(totals.finish())
}

/// Writes one dataset into `root` (prepared with [`prepare_output`]), calling `progress`
/// with the bytes of every record written. Returns the totals. A dataset that fails
/// half-way (a real-world source that cannot be read, a signal) leaves nothing behind.
pub fn write_dataset(
    root: &Path,
    ds: &Dataset,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Totals, DatasetError> {
    let spec = ds.spec();
    let rel = dataset_rel_path(spec);
    let dir = root.join(&rel);
    check_target(root, spec)?;
    if dir.exists() {
        // A dataset this tool wrote before: remove its old records so no stale file survives.
        fs::remove_dir_all(&dir).map_err(|e| DatasetError::io(&dir, e))?;
        remove_from_index(root, &rel)?;
    }
    let written = write_records(&dir, ds, threads, progress);
    if written.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    let totals = written?;
    let mut index = if root.join(MARKER).is_file() { read_index(root)? } else { DirIndex::default() };
    index.format = MARKER_FORMAT.into();
    index.datasets.retain(|d| d.path != rel);
    index.datasets.push(IndexEntry { path: rel, spec: spec.clone() });
    index.datasets.sort_by(|a, b| a.path.cmp(&b.path));
    write_index(root, &index)?;
    Ok(totals)
}

/// Drops a dataset from the index (its directory is gone).
fn remove_from_index(root: &Path, rel: &str) -> Result<(), DatasetError> {
    if !root.join(MARKER).is_file() {
        return Ok(());
    }
    let mut index = read_index(root)?;
    let before = index.datasets.len();
    index.datasets.retain(|d| d.path != rel);
    if index.datasets.len() != before { write_index(root, &index) } else { Ok(()) }
}

fn write_records(
    dir: &Path,
    ds: &Dataset,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Totals, DatasetError> {
    let spec = ds.spec();
    let records_dir = dir.join("records");
    fs::create_dir_all(&records_dir).map_err(|e| DatasetError::io(&records_dir, e))?;
    let manifest_tmp = dir.join("manifest.jsonl.tmp");
    let mut out = BufWriter::new(File::create(&manifest_tmp).map_err(|e| DatasetError::io(&manifest_tmp, e))?);
    let io = |e| DatasetError::io(&manifest_tmp, e);
    let line = |out: &mut BufWriter<File>, l: &ManifestLine| -> Result<(), DatasetError> {
        serde_json::to_writer(&mut *out, l).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)
    };
    line(&mut out, &ManifestLine::Header { format: MANIFEST_FORMAT.into(), spec: spec.clone() })?;
    let mut totals = TotalsBuilder::default();
    let ext = spec.extension();
    for h in ds.try_par_records(threads) {
        let h = h?;
        if crate::realworld::interrupted() {
            return Err(DatasetError::Interrupted);
        }
        let r = &h.record;
        let file = format!("records/{}.{ext}", r.key());
        let path = dir.join(&file);
        fs::write(&path, &r.data).map_err(|e| DatasetError::io(&path, e))?;
        totals.add(&h);
        line(
            &mut out,
            &ManifestLine::Record(ManifestRecord {
                index: r.index,
                key: r.key(),
                file,
                size: r.data.len() as u64,
                sha256: hex::encode(h.digest()),
                duplicate_of: r.is_duplicate().then_some(r.source),
                source: h.origin.as_ref().map(|o| RecordSource {
                    file: o.file.to_string(),
                    entry: o.entry.as_ref().map(|e| e.to_string()),
                    offset: o.offset,
                }),
            }),
        )?;
        progress(r.data.len() as u64);
    }
    let totals = totals.finish();
    line(&mut out, &ManifestLine::Totals(totals.clone()))?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let manifest = dir.join("manifest.jsonl");
    fs::rename(&manifest_tmp, &manifest).map_err(|e| DatasetError::io(&manifest, e))?;
    Ok(totals)
}

/// Streams the lines of a manifest.
pub fn read_manifest(path: &Path) -> Result<impl Iterator<Item = Result<ManifestLine, DatasetError>>, DatasetError> {
    let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let p = path.to_path_buf();
    Ok(BufReader::new(file).lines().enumerate().map(move |(n, l)| {
        let l = l.map_err(|e| DatasetError::io(&p, e))?;
        serde_json::from_str(&l).map_err(|e| DatasetError::Invalid(format!("{} line {}: {e}", p.display(), n + 1)))
    }))
}

/// The outcome of verifying one dataset.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub dataset: String,
    pub records_checked: u64,
    pub problems: Vec<String>,
}

/// Re-hashes every record file of every dataset in `root` against its manifest.
pub fn verify(root: &Path) -> Result<Vec<VerifyReport>, DatasetError> {
    let index = read_index(root)?;
    let mut reports = Vec::new();
    for entry in &index.datasets {
        let dir = root.join(&entry.path);
        let mut report = VerifyReport { dataset: entry.path.clone(), ..Default::default() };
        let mut saw_totals = false;
        let mut fingerprint = Sha256::new();
        let mut counted = Totals::default();
        for line in read_manifest(&dir.join("manifest.jsonl"))? {
            match line? {
                ManifestLine::Header { spec, .. } => {
                    if spec != entry.spec {
                        report.problems.push("manifest header does not match the directory index".into());
                    }
                }
                ManifestLine::Record(r) => {
                    report.records_checked += 1;
                    counted.records += 1;
                    let path = safe_join(&dir, &r.file)?;
                    match hash_file(&path) {
                        Ok((size, hash)) => {
                            fingerprint.update(hash);
                            if size != r.size {
                                report.problems.push(format!("{}: size {size}, manifest says {}", r.file, r.size));
                            }
                            if hex::encode(hash) != r.sha256 {
                                report.problems.push(format!("{}: SHA-256 differs from the manifest", r.file));
                            }
                        }
                        Err(e) => report.problems.push(format!("{}: {e}", r.file)),
                    }
                }
                ManifestLine::Totals(t) => {
                    saw_totals = true;
                    if t.records != counted.records {
                        report
                            .problems
                            .push(format!("totals say {} records, manifest lists {}", t.records, counted.records));
                    }
                    let fp = hex::encode(fingerprint.clone().finalize());
                    if report.problems.is_empty() && t.dataset_sha256 != fp {
                        report.problems.push("dataset fingerprint differs from the manifest".into());
                    }
                }
            }
        }
        if !saw_totals {
            report.problems.push("manifest has no totals line (interrupted generate?)".into());
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Joins a manifest-relative path, refusing anything that would leave the dataset directory.
fn safe_join(dir: &Path, rel: &str) -> Result<PathBuf, DatasetError> {
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(DatasetError::Invalid(format!("manifest names a file outside the dataset: {rel:?}")));
    }
    Ok(dir.join(p))
}

fn hash_file(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, h.finalize().into()))
}

/// Default number of generator threads.
pub fn default_threads() -> usize {
    par::default_threads()
}
