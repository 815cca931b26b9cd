//! The storage-layer dedup simulation through the binary: its ground truth on the `files`
//! store (whose layout is known: one file per record, each starting at offset 0), the
//! standalone `storage-sim` command, bad input, the reports' three figures, and what the
//! layouts of SQLite and PostgreSQL EXTERNAL do to duplicates (measured and printed, not
//! asserted: the README explains the figures).

use crate::support::{journal, ok, run, run_dir, stages};
use dedup_lab_core::{Measurement, Stage, StorageSim};
use std::path::Path;

/// Duplicates of grade U`pct` among `n` records: round(pct/100 × n), half up, in integers
/// (the generator's rule).
fn duplicates(n: u64, pct: u64) -> u64 {
    (pct * n + 50) / 100
}

/// A run of one system, payload random_binary, bulk_insert only; returns its measurement.
fn bulk_run(tmp: &Path, system: &str, grade: &str, records: u64, record_size: &str, extra: &[&str]) -> Measurement {
    let results = tmp.join("results");
    let n = records.to_string();
    let mut args = vec![
        "run",
        "--systems",
        system,
        "--payload-types",
        "random_binary",
        "--grades",
        grade,
        "--records",
        &n,
        "--record-size",
        record_size,
        "--stages",
        "bulk_insert",
        "--results",
        results.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    let lines = journal(&results);
    let m = stages(&lines).into_iter().find(|m| m.stage == Stage::BulkInsert).expect("a bulk_insert line");
    m.clone()
}

fn sim(m: &Measurement) -> &StorageSim {
    m.storage_sim.as_ref().unwrap_or_else(|| panic!("no storage simulation; notes: {:?}", m.notes))
}

/// `files`, random_binary U90, 512 KiB records, 4 KiB blocks: each original's copies are
/// byte-identical files, so a deduplicating volume keeps the N − D originals once and
/// random bytes do not compress: storage EDR = N ÷ (N − D) exactly, 10 for N = 20 and
/// 8 for N = 16 (where the grade rounds 14.4 duplicates to 14).
#[test]
fn files_random_u90_storage_edr_is_the_record_dedup() {
    for (n, expected) in [(20u64, 10.0), (16, 8.0)] {
        let tmp = tempfile::tempdir().unwrap();
        let m = bulk_run(tmp.path(), "files", "U90", n, "512KiB", &["--export", "md"]);
        let s = sim(&m);
        let originals = n - duplicates(n, 90);
        assert_eq!(n as f64 / originals as f64, expected);
        assert_eq!(s.report_block_size, 4096);
        assert_eq!(s.logical_bytes, n * 512 * 1024);
        assert_eq!(s.files, n);
        for b in &s.blocks {
            let per_record = (512 * 1024 / b.block_size).max(1);
            assert_eq!(b.referenced_blocks, n * per_record, "{}", b.block_size);
            assert_eq!(b.distinct_blocks, originals * per_record);
            assert_eq!(b.zero_blocks, 0);
            assert_eq!(b.lz4_bytes, Some(originals * 512 * 1024), "random bytes are stored as they are");
            assert_eq!(b.storage_edr, Some(expected), "block size {}", b.block_size);
            assert_eq!(b.storage_edr_zstd, Some(expected));
        }
        assert_eq!(s.storage_edr(), Some(expected));
        // The report shows it beside the system's EDR and the ideal.
        let md = std::fs::read_to_string(run_dir(&tmp.path().join("results")).join("report.md")).unwrap();
        assert!(md.contains("## Storage-layer simulation"), "{md}");
        let row = md.lines().find(|l| l.starts_with("| files | random_binary | U90 | bulk_insert")).expect("a row");
        assert!(row.contains(&format!("{expected:.2}")), "{row}");
    }
}

/// Records of 5000 bytes at 4 KiB blocks. The offsets predict: every file starts at offset
/// 0, so a copy's blocks still line up with its original's (block dedup = N ÷ (N − D)
/// exactly), but each record takes two blocks: one full and one with its 904-byte tail
/// padded by 3192 zeros. The full block is incompressible; the tail block compresses to its
/// 904 bytes plus lz4's few bytes of framing. So the storage EDR is below the record dedup,
/// by the share of a tail block's framing, and a volume without compression would store
/// two whole blocks per original. (The padding is a block device's view; ZFS would keep a
/// file smaller than its recordsize in one block of the file's size.)
#[test]
fn a_record_size_off_the_block_size_costs_what_the_offsets_predict() {
    let (n, record) = (20u64, 5000u64);
    let tmp = tempfile::tempdir().unwrap();
    let m = bulk_run(tmp.path(), "files", "U90", n, "5000", &["--export", "none"]);
    let s = sim(&m);
    let originals = n - duplicates(n, 90);
    let b = s.at(4096).unwrap();
    assert_eq!((b.referenced_blocks, b.distinct_blocks), (2 * n, 2 * originals));
    assert_eq!(b.dedup_ratio, Some(n as f64 / originals as f64));
    let tail = record % 4096;
    // lz4 framing of a 904-byte literal run followed by zeros: a token, length bytes and one
    // match: more than 0, far less than 64 bytes.
    let stored = b.lz4_bytes.unwrap() as f64 / originals as f64;
    assert!(stored > (4096 + tail) as f64 && stored < (4096 + tail + 64) as f64, "per original: {stored}");
    let edr = b.storage_edr.unwrap();
    let (low, high) = (
        (n * record) as f64 / (originals * (4096 + tail + 64)) as f64,
        (n * record) as f64 / (originals * (4096 + tail)) as f64,
    );
    assert!(edr > low && edr < high && edr < 10.0, "storage EDR {edr} not in ({low}, {high})");
    // Without compression the same volume would keep 2 × 4 KiB per original: EDR 6.1.
    let dedup_only = (n * record) as f64 / (b.distinct_blocks * 4096) as f64;
    assert!((dedup_only - 100_000.0 / 16_384.0).abs() < 1e-9);
    assert!(dedup_only < edr);
    // At 128 KiB one block per record, the same dedup, and 126,072 bytes of zero padding:
    // lz4 encodes that run as one match whose length takes a byte per 255, ~494 bytes.
    let big = s.at(128 << 10).unwrap();
    assert_eq!(big.dedup_ratio, Some(10.0));
    let padding_cost = ((128 << 10) - record) / 255;
    let stored = big.lz4_bytes.unwrap() as f64 / originals as f64;
    assert!(
        stored > (record + padding_cost) as f64 && stored < (record + padding_cost + 64) as f64,
        "per original at 128 KiB: {stored}"
    );
}

/// Random bytes without duplicates: nothing to deduplicate or compress, storage EDR 1.
#[test]
fn files_random_u0_storage_edr_is_one() {
    let tmp = tempfile::tempdir().unwrap();
    let m = bulk_run(tmp.path(), "files", "U0", 12, "64KiB", &["--export", "none"]);
    let s = sim(&m);
    for b in s.blocks.iter().filter(|b| b.block_size <= 64 << 10) {
        assert_eq!(b.distinct_blocks, b.referenced_blocks);
        assert_eq!(b.storage_edr, Some(1.0), "{}", b.block_size);
    }
}

#[test]
fn storage_sim_can_be_switched_off_and_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let m = bulk_run(tmp.path(), "files", "U50", 4, "8KiB", &["--export", "none", "--no-storage-sim"]);
    assert!(m.storage_sim.is_none());
    let tmp = tempfile::tempdir().unwrap();
    let m = bulk_run(
        tmp.path(),
        "sqlite",
        "U50",
        4,
        "8KiB",
        &["--export", "none", "--storage-sim-block-sizes", "512,64KiB", "--storage-sim-report-block-size", "64KiB"],
    );
    let s = sim(&m);
    assert_eq!(s.blocks.iter().map(|b| b.block_size).collect::<Vec<_>>(), [512, 65536]);
    assert_eq!(s.report_block_size, 65536);
}

/// A directory of zeros (written and sparse): only zero blocks, nothing stored, no ratio.
#[test]
fn standalone_zeros_are_only_zero_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("z"), vec![0u8; 300_000]).unwrap();
    std::fs::File::create(tmp.path().join("sparse")).unwrap().set_len(5 << 20).unwrap();
    let out = ok(&["storage-sim", "--json", tmp.path().to_str().unwrap()]);
    let s: StorageSim = serde_json::from_str(&out).unwrap();
    for b in &s.blocks {
        let blocks = 300_000u64.div_ceil(b.block_size) + (5u64 << 20).div_ceil(b.block_size);
        assert_eq!((b.zero_blocks, b.referenced_blocks, b.distinct_blocks, b.lz4_bytes), (blocks, 0, 0, Some(0)));
        assert_eq!(b.storage_edr, None);
    }
    let text = ok(&["storage-sim", tmp.path().to_str().unwrap()]);
    assert!(text.contains("block size 4KiB: 0 referenced, 1354 zero, 0 distinct"), "{text}");
    assert!(text.contains("peak RSS"), "{text}");
}

/// A dataset directory written by `generate`: the same table, histogram included.
#[test]
fn standalone_prints_histogram_and_ratios() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&[
        "generate",
        "--output",
        data.to_str().unwrap(),
        "--payload-types",
        "random_binary",
        "--grades",
        "U90",
        "--records",
        "20",
        "--record-size",
        "64KiB",
    ]);
    let records = data.join("random_binary/U90/records");
    let text = ok(&["storage-sim", "--block-sizes", "4KiB,64KiB", records.to_str().unwrap()]);
    // 2 originals × 16 blocks, 320 references.
    assert!(text.contains("block size 4KiB: 320 referenced, 0 zero, 32 distinct"), "{text}");
    assert!(text.contains("refcnt") && text.contains("ref PSIZE"), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("4KiB") && l.contains("10.00")), "{text}");
    let json = ok(&["storage-sim", "--json", "--block-sizes", "4KiB,64KiB", records.to_str().unwrap()]);
    let s: StorageSim = serde_json::from_str(&json).unwrap();
    let b = s.at(4096).unwrap();
    let sum = |f: fn(&dedup_lab_core::RefBucket) -> u64| b.histogram.iter().map(f).sum::<u64>();
    assert_eq!((sum(|h| h.blocks), sum(|h| h.ref_blocks)), (32, 320));
    assert_eq!((sum(|h| h.lsize), sum(|h| h.ref_lsize)), (32 * 4096, 320 * 4096));
}

#[test]
fn standalone_bad_input_names_the_value_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-dir");
    let d = tmp.path().to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["storage-sim", missing.to_str().unwrap()], vec!["no-such-dir", "no such file or directory", "existing"]),
        (vec!["storage-sim", "--block-sizes", "4KiB,3000", d], vec!["\"4KiB,3000\"", "power of two", "such as 4KiB"]),
        (vec!["storage-sim", "--block-sizes", "4KiB,,8KiB", d], vec!["empty", "such as 4KiB"]),
        (vec!["storage-sim", "--report-block-size", "64KiB", d], vec!["64KiB", "not one of the simulated block sizes"]),
        (vec!["storage-sim", "--sample", "0", d], vec!["sample \"0\"", "auto", "1 in N"]),
        (
            vec!["run", "--dry-run", "--storage-sim-block-sizes", "4KiB,2MiB"],
            vec!["\"4KiB,2MiB\"", "2MiB", "512B to 1MiB"],
        ),
    ];
    for (args, want) in cases {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        for w in want {
            assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
        }
    }
}

fn print_sim(label: &str, m: &Measurement) {
    let s = sim(m);
    eprintln!(
        "{label}: logical {} B, files {} B in {} file(s), system EDR {:?}",
        s.logical_bytes, s.file_bytes, s.files, m.edr_replica
    );
    for b in &s.blocks {
        eprintln!(
            "  {:>6} B: referenced {}, zero {}, distinct {}, dedup {:?}, lz4 {:?}, storage EDR {:?} (zstd {:?})",
            b.block_size,
            b.referenced_blocks,
            b.zero_blocks,
            b.distinct_blocks,
            b.dedup_ratio,
            b.lz4_ratio,
            b.storage_edr,
            b.storage_edr_zstd
        );
    }
}

/// SQLite with random_binary U90: measured and printed for the README (see "Storage-layer
/// simulation" there); only what is certain is asserted.
#[test]
fn sqlite_layout_is_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let m = bulk_run(tmp.path(), "sqlite", "U90", 20, "512KiB", &["--export", "none"]);
    print_sim("sqlite random_binary U90 20 × 512 KiB", &m);
    let s = sim(&m);
    assert_eq!(s.files, 1, "the main database file (the WAL is checkpointed into it)");
    assert!(s.file_bytes >= s.logical_bytes, "SQLite stores blobs uncompressed");
}

/// PostgreSQL with TOAST storage EXTERNAL (uncompressed), random_binary U90: measured and
/// printed for the README. Needs the local server with its data directory.
#[test]
fn postgresql_external_layout_is_measured() {
    let vars = ["DEDUP_PG_HOST", "DEDUP_PG_PORT", "DEDUP_PG_USER", "DEDUP_PG_PASSWORD", "DEDUP_PG_DATA_DIR"];
    if crate::support::server_env("postgresql", &vars).is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "lab = \"dedup_t_storage_sim\"\n\n[systems.postgresql]\nvariants = [\"external\"]\n").unwrap();
    let m = bulk_run(
        tmp.path(),
        "postgresql",
        "U90",
        20,
        "512KiB",
        &["--export", "none", "--config", cfg.to_str().unwrap()],
    );
    print_sim("postgresql/external random_binary U90 20 × 512 KiB", &m);
    let s = sim(&m);
    assert!(s.files >= 3, "heap, TOAST table and its index, primary key: {} file(s)", s.files);
    assert!(s.file_bytes >= s.logical_bytes, "EXTERNAL stores the values uncompressed");
}
