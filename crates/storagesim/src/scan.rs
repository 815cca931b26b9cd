//! Reading the files and filling the dedup tables, on `threads` workers.
//!
//! Work is handed out in segments of 8 MiB of one file (so one large file keeps every
//! worker busy, and many small files cost one open each). A worker reads its segment in
//! chunks of the largest block size, zero-padding a file's last chunk.
//!
//! Fingerprints are computed once per byte, whatever the number of block sizes: every leaf
//! (a block of the smallest size) is hashed with BLAKE3, and a larger block's fingerprint is
//! the BLAKE3 of its leaves' 32-byte hashes. Two blocks of one size have the same
//! fingerprint exactly when their leaves' hashes are equal, so this is as collision-safe as
//! hashing the blocks themselves, at a fraction of the cost. An all-zero block is known by
//! its fingerprint (the zero fingerprint of its size, computed once).
//!
//! A distinct block is compressed (lz4 and zstd) when its fingerprint falls into the sample
//! (1 in `rate`, by fingerprint bytes 8–15, independent of the table's hash and shard); the
//! totals are then the sample mean × the distinct blocks, with their standard errors.

use crate::table::{Fp, NOT_SAMPLED, Table};
use crate::walk::FileEntry;
use crate::{BlockSim, Options, RefBucket, SimError, ZSTD_LEVEL};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

const SEGMENT: u64 = 8 << 20;

pub(crate) struct Scanned {
    pub(crate) blocks: Vec<BlockSim>,
    pub(crate) table_bytes: u64,
}

struct Geometry {
    leaf: usize,
    max: usize,
    sizes: Vec<usize>,
    zero_leaf: [u8; 32],
    zero_fp: Vec<Fp>,
}

impl Geometry {
    fn new(sizes: &[u64]) -> Geometry {
        let sizes: Vec<usize> = sizes.iter().map(|s| *s as usize).collect();
        let leaf = sizes[0];
        let max = *sizes.last().expect("validated: not empty");
        let zero_leaf = *blake3::hash(&vec![0u8; leaf]).as_bytes();
        let mut g = Geometry { leaf, max, sizes, zero_leaf, zero_fp: Vec::new() };
        g.zero_fp = g.sizes.iter().map(|s| g.fingerprint(&vec![zero_leaf; s / leaf])).collect();
        g
    }

    fn fingerprint(&self, leaves: &[[u8; 32]]) -> Fp {
        let digest = if leaves.len() == 1 {
            leaves[0]
        } else {
            let mut h = blake3::Hasher::new();
            for l in leaves {
                h.update(l);
            }
            *h.finalize().as_bytes()
        };
        digest[..16].try_into().expect("16 bytes")
    }
}

/// One worker's counts for one block size (the tables hold the rest).
#[derive(Default, Clone)]
struct Counts {
    referenced: u64,
    zero: u64,
    /// Distinct blocks this worker compressed, and their compressed sizes' sums and sums
    /// of squares (for the sampling error).
    sampled: u64,
    lz4_sum: u64,
    lz4_sumsq: u128,
    zstd_sum: u64,
    zstd_sumsq: u128,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.referenced += o.referenced;
        self.zero += o.zero;
        self.sampled += o.sampled;
        self.lz4_sum += o.lz4_sum;
        self.lz4_sumsq += o.lz4_sumsq;
        self.zstd_sum += o.zstd_sum;
        self.zstd_sumsq += o.zstd_sumsq;
    }
}

struct Shared<'a> {
    files: &'a [FileEntry],
    geometry: Geometry,
    tables: Vec<Table>,
    rate: u64,
    cursor: Mutex<(usize, u64)>,
    stop: AtomicBool,
}

impl Shared<'_> {
    /// The next segment to read: (file index, start, end).
    fn next_segment(&self) -> Option<(usize, u64, u64)> {
        let mut c = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        while c.0 < self.files.len() {
            let len = self.files[c.0].len;
            if c.1 < len {
                let start = c.1;
                c.1 = len.min(start + SEGMENT);
                return Some((c.0, start, c.1));
            }
            *c = (c.0 + 1, 0);
        }
        None
    }
}

pub(crate) fn run(files: &[FileEntry], opts: &Options, rate: u64, threads: usize) -> Result<Scanned, SimError> {
    let geometry = Geometry::new(&opts.block_sizes);
    let shared = Shared {
        files,
        tables: geometry.sizes.iter().map(|_| Table::new()).collect(),
        geometry,
        rate,
        cursor: Mutex::new((0, 0)),
        stop: AtomicBool::new(false),
    };
    let results: Vec<Result<Vec<Counts>, SimError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| worker(&shared))).collect();
        handles.into_iter().map(|h| h.join().expect("a storage-sim worker panicked")).collect()
    });
    let mut totals = vec![Counts::default(); shared.geometry.sizes.len()];
    for r in results {
        for (t, c) in totals.iter_mut().zip(r?) {
            t.add(&c);
        }
    }
    let blocks = shared
        .geometry
        .sizes
        .iter()
        .zip(&shared.tables)
        .zip(&totals)
        .map(|((&size, table), c)| block_sim(size as u64, table, c, rate))
        .collect();
    Ok(Scanned { blocks, table_bytes: shared.tables.iter().map(Table::allocated_bytes).sum() })
}

/// Per refcount bucket: what the histogram needs, with the sampled blocks' lz4 sizes.
#[derive(Default, Clone)]
struct Bucket {
    blocks: u64,
    refs: u64,
    sampled: u64,
    sampled_refs: u64,
    sampled_lz4: u64,
    sampled_ref_lz4: u64,
}

fn block_sim(size: u64, table: &Table, c: &Counts, rate: u64) -> BlockSim {
    let distinct = table.len();
    let mut buckets: Vec<Bucket> = Vec::new();
    table.for_each(|e| {
        let i = (31 - e.refs.leading_zeros()) as usize;
        if buckets.len() <= i {
            buckets.resize(i + 1, Bucket::default());
        }
        let (refs, b) = (u64::from(e.refs), &mut buckets[i]);
        b.blocks += 1;
        b.refs += refs;
        if e.lz4 != NOT_SAMPLED {
            b.sampled += 1;
            b.sampled_refs += refs;
            b.sampled_lz4 += u64::from(e.lz4);
            b.sampled_ref_lz4 += refs * u64::from(e.lz4);
        }
    });
    let (lz4_bytes, lz4_rel_error) = estimate(c.sampled, c.lz4_sum, c.lz4_sumsq, distinct, rate);
    let (zstd_bytes, zstd_rel_error) = estimate(c.sampled, c.zstd_sum, c.zstd_sumsq, distinct, rate);
    // A bucket without a sampled block gets the overall mean lz4 size per block.
    let mean = if c.sampled > 0 { c.lz4_sum as f64 / c.sampled as f64 } else { 0.0 };
    let histogram = buckets
        .iter()
        .enumerate()
        .filter(|(_, b)| b.blocks > 0)
        .map(|(j, b)| {
            let scale = |sum: u64, n: u64, of: u64| {
                if n > 0 {
                    (sum as f64 * of as f64 / n as f64).round() as u64
                } else {
                    (mean * of as f64).round() as u64
                }
            };
            RefBucket {
                refs_min: 1 << j,
                refs_max: (1 << (j + 1)) - 1,
                blocks: b.blocks,
                lsize: b.blocks * size,
                psize: scale(b.sampled_lz4, b.sampled, b.blocks),
                ref_blocks: b.refs,
                ref_lsize: b.refs * size,
                ref_psize: scale(b.sampled_ref_lz4, b.sampled_refs, b.refs),
            }
        })
        .collect();
    BlockSim {
        block_size: size,
        referenced_blocks: c.referenced,
        zero_blocks: c.zero,
        distinct_blocks: distinct,
        sample_rate: rate,
        sampled: c.sampled,
        lz4_bytes,
        lz4_rel_error,
        zstd_bytes,
        zstd_level: ZSTD_LEVEL,
        zstd_rel_error,
        histogram,
        dedup_ratio: None,
        lz4_ratio: None,
        zstd_ratio: None,
        dedup_lz4: None,
        dedup_zstd: None,
        storage_edr: None,
        storage_edr_zstd: None,
    }
}

/// The compressed bytes of all distinct blocks and the relative standard error of that
/// figure. Sampled: the sample mean × the distinct blocks, with the standard error of a mean
/// of a simple random sample without replacement (the fingerprint picks the blocks, which is
/// as good as random and the same on every run).
fn estimate(n: u64, sum: u64, sumsq: u128, distinct: u64, rate: u64) -> (Option<u64>, f64) {
    if rate == 1 || n == distinct {
        return (Some(sum), 0.0);
    }
    if n < 2 {
        return (None, 0.0);
    }
    let nf = n as f64;
    let mean = sum as f64 / nf;
    let var = ((sumsq as f64 - nf * mean * mean) / (nf - 1.0)).max(0.0);
    let se_mean = (var / nf * (1.0 - nf / distinct as f64)).sqrt();
    let rel = if mean > 0.0 { se_mean / mean } else { 0.0 };
    (Some((mean * distinct as f64).round() as u64), rel)
}

fn open(path: &std::path::Path) -> std::io::Result<File> {
    // Read-only, and without touching the access time where the file's owner allows it.
    match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOATIME).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        r => r,
    }
}

fn read_full(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn worker(sh: &Shared<'_>) -> Result<Vec<Counts>, SimError> {
    let r = work(sh);
    if r.is_err() {
        sh.stop.store(true, Ordering::Relaxed);
    }
    r
}

fn work(sh: &Shared<'_>) -> Result<Vec<Counts>, SimError> {
    let g = &sh.geometry;
    let mut counts = vec![Counts::default(); g.sizes.len()];
    let mut buf = vec![0u8; g.max];
    let mut leaves = vec![[0u8; 32]; g.max / g.leaf];
    let mut lz4_out = vec![0u8; lz4_flex::block::get_maximum_output_size(g.max)];
    let mut zstd_out = vec![0u8; zstd::zstd_safe::compress_bound(g.max)];
    let mut zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| SimError::Io {
        path: "zstd".into(),
        what: "creating a compressor",
        source: e,
    })?;
    let mut current: Option<(usize, File)> = None;
    while let Some((fi, start, end)) = sh.next_segment() {
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let path = &sh.files[fi].path;
        if current.as_ref().is_none_or(|(i, _)| *i != fi) {
            let f = open(path).map_err(|e| SimError::Io { path: path.clone(), what: "opening", source: e })?;
            current = Some((fi, f));
        }
        let f = &current.as_ref().expect("opened above").1;
        let mut off = start;
        while off < end {
            let want = (end - off).min(g.max as u64) as usize;
            let n = read_full(f, &mut buf[..want], off).map_err(|e| SimError::Io {
                path: path.clone(),
                what: "reading",
                source: e,
            })?;
            if n == 0 {
                break; // shrank since it was listed
            }
            // The last chunk of a file: a block device holds zeros after the end.
            buf[n..].fill(0);
            let valid_leaves = n.div_ceil(g.leaf);
            for (i, l) in leaves.iter_mut().enumerate() {
                *l = if i < valid_leaves {
                    *blake3::hash(&buf[i * g.leaf..(i + 1) * g.leaf]).as_bytes()
                } else {
                    g.zero_leaf
                };
            }
            for (s, &size) in g.sizes.iter().enumerate() {
                let per = size / g.leaf;
                let c = &mut counts[s];
                for k in 0..n.div_ceil(size) {
                    let fp = g.fingerprint(&leaves[k * per..(k + 1) * per]);
                    if fp == g.zero_fp[s] {
                        c.zero += 1;
                        continue;
                    }
                    c.referenced += 1;
                    let block = &buf[k * size..(k + 1) * size];
                    let sampled =
                        sh.rate == 1 || u64::from_le_bytes(fp[8..16].try_into().expect("8 bytes")) % sh.rate == 0;
                    let new = sh.tables[s].reference(&fp, || {
                        if !sampled {
                            return (NOT_SAMPLED, None);
                        }
                        // A block that does not get smaller is stored as it is; a compressor
                        // error (none is expected with these buffers) counts the same way.
                        let lz4 = lz4_flex::block::compress_into(block, &mut lz4_out).map_or(size, |l| l.min(size));
                        let z = zstd.compress_to_buffer(block, &mut zstd_out).map_or(size, |l| l.min(size));
                        (lz4 as u32, Some(z as u64))
                    });
                    if let Some((lz4, Some(z))) = new {
                        let l = u64::from(lz4);
                        c.sampled += 1;
                        c.lz4_sum += l;
                        c.lz4_sumsq += u128::from(l) * u128::from(l);
                        c.zstd_sum += z;
                        c.zstd_sumsq += u128::from(z) * u128::from(z);
                    }
                }
            }
            off += n as u64;
            if n < want {
                break;
            }
        }
    }
    Ok(counts)
}
