//! The storage-layer dedup simulation: would a deduplicating, compressing volume under a
//! database catch the duplicates the database was given?
//!
//! Like `zdb -S` simulates a ZFS pool's dedup table over existing blocks, this reads a set
//! of files (a lab's data files after a stage, or any directory), cuts every file into
//! fixed blocks at file offsets 0, B, 2B, … for each configured block size B, and counts:
//! - references and distinct blocks by a 16-byte BLAKE3 fingerprint, all-zero blocks apart
//!   (a volume stores none: zero-block elimination, holes);
//! - what each distinct block takes compressed on its own with lz4 and with zstd (kept
//!   uncompressed where that is not smaller), exactly or estimated from a sample of the
//!   distinct blocks with its standard error (see [`Options::sample`]);
//! - the storage EDR: logical bytes ÷ the lz4 (and zstd) bytes of the distinct blocks.
//!
//! It only reads: files are opened read-only (with `O_NOATIME` where permitted) and nothing
//! is created anywhere. Memory grows with the distinct blocks only (24 bytes of table entry
//! each, per block size; see [`table`]); files are streamed in chunks of the largest block
//! size by `threads` workers that share the fingerprint tables.
//!
//! Scope: alignment follows file offsets, not the extents a file system allocated on disk,
//! and nothing of a file system's own metadata or snapshots is seen.

mod scan;
mod table;
mod walk;

pub use dedup_lab_core::{BlockSim, RefBucket, StorageSim};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// VDO's block, two common database page sizes' multiples, and ZFS's default recordsize.
pub const DEFAULT_BLOCK_SIZES: [u64; 4] = [4 << 10, 8 << 10, 16 << 10, 128 << 10];
/// The block size whose storage EDR reports show unless configured: VDO's 4 KiB, the
/// finest granularity a volume deduplicates at.
pub const DEFAULT_REPORT_BLOCK_SIZE: u64 = 4 << 10;
/// zstd level of the per-block estimate (ZFS's `compression=zstd` default).
pub const ZSTD_LEVEL: i32 = 3;
/// Auto sampling compresses about this much of the input, whatever its size: per block size,
/// every compressor costs 10–60 ns per byte of a distinct block while hashing costs under one,
/// so compressing every block of gigabytes would take minutes. 16 MiB keep thousands of
/// blocks in every sample (errors well under 1 %, reported).
pub const AUTO_SAMPLE_BYTES: u64 = 16 << 20;
const MIN_BLOCK: u64 = 512;
const MAX_BLOCK: u64 = 1 << 20;

/// What to simulate. Part of a run's spec, so a resumed run simulates the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Block sizes, ascending, powers of two from 512 B to 1 MiB.
    pub block_sizes: Vec<u64>,
    /// The block size whose storage EDR reports show; one of `block_sizes`.
    pub report_block_size: u64,
    /// Compress 1 in `sample` distinct blocks (chosen by fingerprint, so the same blocks on
    /// every run) with lz4 and zstd and estimate the totals with their standard errors;
    /// 1 = every distinct block (exact); 0 = auto: exact up to [`AUTO_SAMPLE_BYTES`] of
    /// input, above that 1 in ⌈input ÷ that⌉. Fingerprints and dedup are always exact.
    pub sample: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { block_sizes: DEFAULT_BLOCK_SIZES.to_vec(), report_block_size: DEFAULT_REPORT_BLOCK_SIZE, sample: 0 }
    }
}

/// Errors of the simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid storage-sim block sizes {value:?}: {why}")]
    BlockSizes { value: String, why: String },
    #[error("invalid storage-sim report block size {value:?}: {why}")]
    ReportBlockSize { value: String, why: String },
    #[error("invalid storage-sim sample {value:?}: give auto, 1 (compress every distinct block) or N (1 in N)")]
    Sample { value: String },
    #[error("{}: no such file or directory; give an existing file or directory to simulate", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: {what}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn format_size(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{}KiB", n >> 10)
    } else {
        format!("{n}B")
    }
}

/// A block size for humans: `4KiB`, `128KiB`, `512B`.
pub fn block_label(n: u64) -> String {
    format_size(n)
}

fn check_block_size(n: u64) -> Result<(), String> {
    if !n.is_power_of_two() || !(MIN_BLOCK..=MAX_BLOCK).contains(&n) {
        return Err(format!(
            "{} is not a power of two from 512B to 1MiB (volumes cut blocks of such sizes: 4KiB for VDO, \
             a ZFS recordsize from 512B up)",
            format_size(n)
        ));
    }
    Ok(())
}

/// Parses a comma-separated block size list such as `4KiB,8KiB,16KiB,128KiB`.
pub fn parse_block_sizes(value: &str) -> Result<Vec<u64>, SimError> {
    let err = |why: String| SimError::BlockSizes {
        value: value.to_string(),
        why: format!("{why}; give a comma-separated list such as 4KiB,8KiB,16KiB,128KiB"),
    };
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(err("an entry is empty".into()));
        }
        let n = dedup_lab_core::parse_bytes("block size", part).map_err(|_| err(format!("{part:?} is not a size")))?;
        check_block_size(n).map_err(err)?;
        out.push(n);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Parses a sample setting: `auto` (0) or a whole number N ≥ 1 (1 in N).
pub fn parse_sample(value: &str) -> Result<u32, SimError> {
    match value.trim() {
        "auto" => Ok(0),
        v => v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| SimError::Sample { value: value.to_string() }),
    }
}

/// Parses the report block size (`4KiB`).
pub fn parse_report_block_size(value: &str) -> Result<u64, SimError> {
    let err = |why: String| SimError::ReportBlockSize { value: value.to_string(), why };
    let n = dedup_lab_core::parse_bytes("block size", value)
        .map_err(|_| err("not a size; give one of the simulated block sizes, e.g. 4KiB".into()))?;
    check_block_size(n).map_err(err)?;
    Ok(n)
}

impl Options {
    /// Checks the options; a block size list that is empty or unsorted, or a report block
    /// size that is not in it, is refused with the fix.
    pub fn validate(&self) -> Result<(), SimError> {
        let list = self.block_sizes.iter().map(|b| format_size(*b)).collect::<Vec<_>>().join(",");
        if self.block_sizes.is_empty() {
            return Err(SimError::BlockSizes {
                value: String::new(),
                why: "the list is empty; give at least one size, e.g. 4KiB".into(),
            });
        }
        for b in &self.block_sizes {
            check_block_size(*b).map_err(|why| SimError::BlockSizes { value: list.clone(), why })?;
        }
        if self.block_sizes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(SimError::BlockSizes { value: list, why: "sizes must be ascending and distinct".into() });
        }
        if !self.block_sizes.contains(&self.report_block_size) {
            return Err(SimError::ReportBlockSize {
                value: format_size(self.report_block_size),
                why: format!(
                    "it is not one of the simulated block sizes {list}; add it to the list or pick one of them"
                ),
            });
        }
        Ok(())
    }
}

/// One simulation to run.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Files and directories (read recursively; symbolic links are not followed).
    pub paths: &'a [PathBuf],
    /// The bytes the storage EDR divides; `None`: the files' own bytes.
    pub logical_bytes: Option<u64>,
    /// A missing path counts as empty (a lab relation not created yet) instead of failing.
    pub missing_ok: bool,
    /// Worker threads (at least 1).
    pub threads: usize,
}

impl<'a> Request<'a> {
    /// The files' own bytes as logical, missing paths refused, one worker per core.
    pub fn new(paths: &'a [PathBuf]) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Request { paths, logical_bytes: None, missing_ok: false, threads }
    }
}

/// Runs the simulation.
pub fn simulate(req: &Request<'_>, opts: &Options) -> Result<StorageSim, SimError> {
    opts.validate()?;
    let started = std::time::Instant::now();
    let files = walk::files(req.paths, req.missing_ok)?;
    let file_bytes: u64 = files.iter().map(|f| f.len).sum();
    let rate = match opts.sample {
        0 => file_bytes.div_ceil(AUTO_SAMPLE_BYTES).max(1),
        n => u64::from(n),
    };
    let scanned = scan::run(&files, opts, rate, req.threads.max(1))?;
    let logical_bytes = req.logical_bytes.unwrap_or(file_bytes);
    let mut blocks = scanned.blocks;
    for b in &mut blocks {
        b.derive(logical_bytes);
    }
    Ok(StorageSim {
        files: files.len() as u64,
        file_bytes,
        logical_bytes,
        report_block_size: opts.report_block_size,
        blocks,
        table_bytes: scanned.table_bytes,
        duration_ns: started.elapsed().as_nanos() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_size_lists() {
        assert_eq!(parse_block_sizes("128KiB, 4KiB,8KiB,16KiB,4KiB").unwrap(), DEFAULT_BLOCK_SIZES.to_vec());
        for bad in ["", "4KiB,,8KiB", "3000", "4KiB,2MiB", "256", "four"] {
            let e = parse_block_sizes(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")) && e.contains("such as 4KiB,8KiB"), "{bad}: {e}");
        }
        let e = Options { report_block_size: 64 << 10, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("64KiB") && e.contains("4KiB,8KiB,16KiB,128KiB"), "{e}");
        assert_eq!(parse_sample("auto").unwrap(), 0);
        assert_eq!(parse_sample("8").unwrap(), 8);
        for bad in ["0", "-1", "x", ""] {
            let e = parse_sample(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")) && e.contains("auto"), "{e}");
        }
        Options::default().validate().unwrap();
    }
}

#[cfg(test)]
mod ground_truth;
