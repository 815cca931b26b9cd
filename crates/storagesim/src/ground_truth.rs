//! Ground truth for the simulation: inputs whose block structure is known by construction,
//! with the expected figures worked out here from offsets, not from the implementation.

use crate::{Options, Request, StorageSim, simulate};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Incompressible bytes, distinct for every `seed` (xorshift64*; lz4 and zstd find nothing).
fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn run(paths: &[PathBuf], opts: &Options, threads: usize) -> StorageSim {
    let req = Request { threads, ..Request::new(paths) };
    simulate(&req, opts).unwrap()
}

fn only(sizes: &[u64]) -> Options {
    Options { block_sizes: sizes.to_vec(), report_block_size: sizes[0], sample: 1 }
}

/// Which original each of `n` records copies: the first `originals` are themselves, the
/// rest cycle through them in a scrambled order.
fn plan(n: usize, originals: usize) -> Vec<usize> {
    (0..n).map(|i| if i < originals { i } else { (i * 7 + 3) % originals }).collect()
}

#[test]
fn zeros_are_only_zero_blocks() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a"), vec![0u8; 100_000]).unwrap();
    std::fs::write(d.path().join("b"), vec![0u8; 4096]).unwrap();
    // A sparse file reads as zeros too.
    std::fs::File::create(d.path().join("sparse")).unwrap().set_len(1 << 20).unwrap();
    let sim = run(&[d.path().to_path_buf()], &Options::default(), 2);
    assert_eq!((sim.files, sim.file_bytes), (3, 100_000 + 4096 + (1 << 20)));
    for b in &sim.blocks {
        let blocks = [100_000u64, 4096, 1 << 20].iter().map(|len| len.div_ceil(b.block_size)).sum::<u64>();
        assert_eq!(b.zero_blocks, blocks, "{}: every block is a zero block", b.block_size);
        assert_eq!((b.referenced_blocks, b.distinct_blocks, b.lz4_bytes), (0, 0, Some(0)));
        assert!(b.histogram.is_empty());
        assert_eq!((b.dedup_ratio, b.storage_edr), (None, None), "nothing stored: no ratio, not infinity");
    }
}

#[test]
fn random_u0_is_one() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..12 {
        std::fs::write(d.path().join(format!("r{i}")), random(i, 64 << 10)).unwrap();
    }
    let sim = run(&[d.path().to_path_buf()], &Options::default(), 2);
    for b in &sim.blocks {
        assert_eq!(b.referenced_blocks, 12 * (64 << 10) / b.block_size.min(64 << 10));
        assert_eq!(b.distinct_blocks, b.referenced_blocks, "no block repeats");
        assert_eq!(b.zero_blocks, 0);
        if b.block_size <= 64 << 10 {
            // Random bytes do not compress: every block is stored as it is.
            assert_eq!(b.lz4_bytes, Some(12 * (64 << 10)));
            assert_eq!(b.zstd_bytes, Some(12 * (64 << 10)));
            assert_eq!(b.storage_edr, Some(1.0), "{}", b.block_size);
            assert_eq!(b.storage_edr_zstd, Some(1.0));
        } else {
            // A 64 KiB file in a 128 KiB block: the zero padding compresses away, the rest not.
            assert!(b.storage_edr.unwrap() > 0.99 && b.storage_edr.unwrap() <= 1.0, "{:?}", b.storage_edr);
        }
        assert_eq!(b.histogram.len(), 1);
        assert_eq!(b.histogram[0].refs_max, 1);
    }
}

/// Records laid out one file each: every copy starts at offset 0, so its blocks line up with
/// its original's whatever the record size.
#[test]
fn one_file_per_record_dedups_at_any_record_size() {
    for record in [32u64 << 10, 5000] {
        let d = tempfile::tempdir().unwrap();
        let p = plan(40, 4);
        for (i, orig) in p.iter().enumerate() {
            std::fs::write(d.path().join(format!("r{i:03}")), random(*orig as u64, record as usize)).unwrap();
        }
        let sim = run(&[d.path().to_path_buf()], &only(&[4096]), 2);
        let b = &sim.blocks[0];
        let per_file = record.div_ceil(4096);
        assert_eq!(b.referenced_blocks, 40 * per_file);
        assert_eq!(b.distinct_blocks, 4 * per_file);
        assert_eq!(b.dedup_ratio, Some(10.0), "record size {record}");
        let hist: Vec<_> = b.histogram.iter().map(|h| (h.refs_min, h.blocks, h.ref_blocks)).collect();
        // 40 copies of 4 originals with the plan above: 10 each (bucket 8..15).
        assert_eq!(hist, [(8, 4 * per_file, 40 * per_file)]);
    }
}

/// The identity of every block of a file holding records back to back: the pieces of
/// records (original, offset in the record, length) it covers. Two blocks of random records
/// are equal exactly when these are equal; a partial last block is padded with zeros.
fn expected_distinct(p: &[usize], record: u64, block: u64) -> (u64, u64) {
    let total = p.len() as u64 * record;
    let mut seen = HashSet::new();
    let blocks = total.div_ceil(block);
    for k in 0..blocks {
        let (start, end) = (k * block, ((k + 1) * block).min(total));
        let mut pieces = Vec::new();
        let mut at = start;
        while at < end {
            let (r, off) = ((at / record) as usize, at % record);
            let len = (record - off).min(end - at);
            pieces.push((p[r], off, len));
            at += len;
        }
        seen.insert(pieces);
    }
    (blocks, seen.len() as u64)
}

/// Records back to back in one file (a heap without headers): a copy lines up with its
/// original only when the record size is a multiple of the block size; otherwise a copy
/// sits at another offset within the blocks and most of its blocks straddle two records.
#[test]
fn back_to_back_records_dedup_as_their_offsets_predict() {
    let p = plan(60, 6);
    let mut results = Vec::new();
    for record in [16u64 << 10, 5000, 12 << 10, 6144] {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("heap");
        let mut data = Vec::new();
        for orig in &p {
            data.extend(random(*orig as u64, record as usize));
        }
        std::fs::write(&path, &data).unwrap();
        let sizes = [4096u64, 8192, 16384];
        let sim = run(std::slice::from_ref(&path), &only(&sizes), 2);
        for b in &sim.blocks {
            let (blocks, distinct) = expected_distinct(&p, record, b.block_size);
            assert_eq!(
                (b.referenced_blocks, b.distinct_blocks),
                (blocks, distinct),
                "record {record}, block {}",
                b.block_size
            );
            results.push((record, b.block_size, b.dedup_ratio.unwrap()));
        }
    }
    let ratio = |r: u64, b: u64| results.iter().find(|x| x.0 == r && x.1 == b).unwrap().2;
    // Aligned: every block is a block of one record, each original's 10 copies collapse.
    assert_eq!(ratio(16 << 10, 4096), 10.0);
    // 5000 bytes is no multiple of any block size: far less is caught.
    for b in [4096, 8192, 16384] {
        assert!(ratio(5000, b) < 2.0, "5000 B records at {b}: {}", ratio(5000, b));
    }
    // 12 KiB records: 4 KiB blocks line up, 8 KiB ones only every other record.
    assert_eq!(ratio(12 << 10, 4096), 10.0);
    assert!(ratio(12 << 10, 8192) < ratio(12 << 10, 4096));
    // 6 KiB records: 4 KiB blocks repeat their phase every 2 records (12 KiB).
    assert!(ratio(6144, 4096) > 1.0 && ratio(6144, 4096) < 10.0);
}

#[test]
fn compressible_blocks_and_zstd_sampling() {
    let d = tempfile::tempdir().unwrap();
    // Text-like, compressible, every 4 KiB block different: numbered lines.
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < 4 << 20 {
        text.push_str(&format!("line {i:08} of a compressible file, value {}\n", (i * 2654435761) % 1000));
        i += 1;
    }
    std::fs::write(d.path().join("t"), &text).unwrap();
    let paths = [d.path().to_path_buf()];
    let exact = run(&paths, &Options { sample: 1, ..Default::default() }, 2);
    let sampled = run(&paths, &Options { sample: 8, ..Default::default() }, 2);
    for (e, s) in exact.blocks.iter().zip(&sampled.blocks) {
        assert!(e.lz4_ratio.unwrap() > 2.0, "{}: {:?}", e.block_size, e.lz4_ratio);
        assert!(e.zstd_ratio.unwrap() > e.lz4_ratio.unwrap());
        assert_eq!((e.sample_rate, e.sampled, e.lz4_rel_error, e.zstd_rel_error), (1, e.distinct_blocks, 0.0, 0.0));
        assert_eq!(
            (s.sample_rate, s.distinct_blocks, s.referenced_blocks),
            (8, e.distinct_blocks, e.referenced_blocks)
        );
        // A standard error estimated from a handful of blocks is itself rough: judge samples
        // of 30 blocks or more (128 KiB has 32 distinct blocks here, 4 sampled).
        if s.sampled < s.distinct_blocks && s.sampled >= 30 {
            for (est, truth, rel) in [
                (s.lz4_bytes.unwrap(), e.lz4_bytes.unwrap(), s.lz4_rel_error),
                (s.zstd_bytes.unwrap(), e.zstd_bytes.unwrap(), s.zstd_rel_error),
            ] {
                let (est, truth) = (est as f64, truth as f64);
                assert!(rel > 0.0);
                // The fingerprints pick the sample, so this outcome is fixed, not a coin toss.
                assert!(
                    (est - truth).abs() <= 4.0 * rel * est + 1.0,
                    "{}: estimate {est} vs {truth} (±{rel:.4})",
                    s.block_size
                );
            }
            // The histogram's lz4 bytes are estimated from the same sample.
            let psize: u64 = s.histogram.iter().map(|h| h.psize).sum();
            assert!((psize as f64 - s.lz4_bytes.unwrap() as f64).abs() <= 0.01 * psize as f64, "{psize}");
        }
    }
    assert!(sampled.blocks[0].sampled < sampled.blocks[0].distinct_blocks / 4);
    // Auto: 4 MiB of input is below the budget, so every block is compressed.
    let auto = run(&paths, &Options::default(), 2);
    assert_eq!(auto.blocks[0].sample_rate, 1);
    assert_eq!(auto.blocks[0].lz4_bytes, exact.blocks[0].lz4_bytes);
}

#[test]
fn same_result_with_any_number_of_workers() {
    let d = tempfile::tempdir().unwrap();
    let p = plan(30, 5);
    let mut data = Vec::new();
    for orig in &p {
        data.extend(random(*orig as u64, 300_000));
    }
    // Larger than one 8 MiB segment, so workers share the file.
    std::fs::write(d.path().join("big"), &data).unwrap();
    std::fs::write(d.path().join("small"), b"tail").unwrap();
    let paths = [d.path().to_path_buf()];
    let opts = Options { sample: 3, ..Default::default() };
    let strip = |mut s: StorageSim| {
        s.duration_ns = 0;
        s.table_bytes = 0;
        s
    };
    assert_eq!(strip(run(&paths, &opts, 1)), strip(run(&paths, &opts, 2)));
    assert_eq!(strip(run(&paths, &opts, 2)), strip(run(&paths, &opts, 5)));
}

#[test]
fn only_reads() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("x");
    std::fs::write(&f, random(1, 10_000)).unwrap();
    let before = std::fs::metadata(&f).unwrap().modified().unwrap();
    let listing = |p: &Path| std::fs::read_dir(p).unwrap().count();
    run(&[d.path().to_path_buf()], &Options::default(), 2);
    assert_eq!(listing(d.path()), 1, "nothing created beside the file");
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), before);
}
