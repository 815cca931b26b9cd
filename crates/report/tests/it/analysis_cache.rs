//! The on-disk analysis cache (`intrinsic::Cache`): a warm analysis is the cold one bit for
//! bit and is read from its file, not recomputed; another key ignores that file; a changed
//! real-world source is a miss; a cache that cannot be written costs a note, never the
//! analysis. Every test has its own cache directory (never `~/.cache`).

use dedup_lab_core::{Grade, PayloadType};
use dedup_lab_datagen::realworld::{self, SourceDef};
use dedup_lab_datagen::{Analysis, Analyzer, Dataset, DatasetSpec, RecordSize};
use dedup_lab_report::Ideal;
use dedup_lab_report::intrinsic::Cache;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn spec(seed: u64) -> DatasetSpec {
    DatasetSpec {
        payload: PayloadType::TextDocument,
        grade: Grade::new(50).unwrap(),
        records: 12,
        record_size: RecordSize::Fixed(16 * 1024),
        seed,
        real_world: None,
    }
}

fn ds(spec: &DatasetSpec) -> Dataset {
    Dataset::new(spec.clone()).unwrap()
}

/// The analysis as it was computed before there was a cache: every record through the
/// Analyzer.
fn uncached(spec: &DatasetSpec) -> Analysis {
    let mut an = Analyzer::new();
    for h in ds(spec).try_par_records(2) {
        let h = h.unwrap();
        an.add(&h.record.data, h.sha256, h.record.is_duplicate());
    }
    an.finish()
}

/// Same bytes as JSON, and the same ideal ratios to the bit.
fn assert_identical(got: &Analysis, want: &Analysis) {
    assert_eq!(serde_json::to_vec(got).unwrap(), serde_json::to_vec(want).unwrap());
    let (g, w) = (Ideal::of(got), Ideal::of(want));
    assert_eq!((g.whole.to_bits(), g.across.to_bits()), (w.whole.to_bits(), w.across.to_bits()));
    assert_eq!(got, want);
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_warm_analysis_is_the_cold_one_bit_for_bit_and_is_not_recomputed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("analysis");
    let s = spec(7);
    let today = uncached(&s);
    assert!(today.ideal_ratio > 1.5 && today.across.ideal_ratio > 1.0, "a dataset worth caching: {today:?}");

    let cold = Cache::on_disk(&dir);
    let a = cold.analyze(&ds(&s), 2).unwrap();
    assert_eq!(cold.disk_hits(), 0);
    assert_eq!(entries(&dir).len(), 1, "one file per identity, no temporary left");
    assert!(entries(&dir)[0].extension().is_some_and(|e| e == "json"));

    let warm = Cache::on_disk(&dir);
    let b = warm.analyze(&ds(&s), 2).unwrap();
    assert_eq!(warm.disk_hits(), 1, "read from the disk, not computed");
    assert_identical(&a, &today);
    assert_identical(&b, &today);
    assert!(cold.take_note().is_none() && warm.take_note().is_none());

    // Within one invocation the memory serves: no second read.
    warm.analyze(&ds(&s), 2).unwrap();
    assert_eq!(warm.disk_hits(), 1);
}

#[test]
fn the_file_is_what_is_read_and_another_key_ignores_it() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("analysis");
    let s = spec(11);
    let today = Cache::on_disk(&dir).analyze(&ds(&s), 2).unwrap();
    let path = entries(&dir).pop().unwrap();

    // An edited figure comes back: the warm path reads the file instead of computing.
    let mut v = read_json(&path);
    assert!(v["key"].as_str().unwrap().contains("\"seed\":11"), "the key holds the spec: {}", v["key"]);
    v["analysis"]["ideal_ratio"] = serde_json::json!(12345.5);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let c = Cache::on_disk(&dir);
    assert_eq!(c.analyze(&ds(&s), 2).unwrap().ideal_ratio, 12345.5);
    assert_eq!(c.disk_hits(), 1);

    // The same file under another stored key (a stale format, a hash collision): ignored,
    // recomputed and overwritten.
    v["key"] = serde_json::json!(v["key"].as_str().unwrap().replace("\"format\":", "\"format\":9"));
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let c = Cache::on_disk(&dir);
    assert_identical(&c.analyze(&ds(&s), 2).unwrap(), &today);
    assert_eq!(c.disk_hits(), 0);
    assert_eq!(read_json(&path)["analysis"]["ideal_ratio"].as_f64(), Some(today.ideal_ratio));

    // Another spec is another identity: its own file, computed.
    let c = Cache::on_disk(&dir);
    let other = c.analyze(&ds(&spec(12)), 2).unwrap();
    assert_eq!(c.disk_hits(), 0);
    assert_eq!(entries(&dir).len(), 2);
    assert_ne!(other, today);

    // A file that is not an entry: computed, overwritten, noted once.
    std::fs::write(&path, b"{ torn").unwrap();
    let c = Cache::on_disk(&dir);
    assert_identical(&c.analyze(&ds(&s), 2).unwrap(), &today);
    assert!(c.take_note().is_some_and(|n| n.contains("is not a cached analysis")));
    assert!(c.take_note().is_none());
    assert_eq!(read_json(&path)["analysis"]["ideal_ratio"].as_f64(), Some(today.ideal_ratio));
}

fn content(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| ((i / 3) as u8).wrapping_mul(31).wrapping_add(salt) ^ (i % 7) as u8).collect()
}

fn scan_spec(src: &Path) -> DatasetSpec {
    let def = SourceDef { name: "data".into(), path: src.display().to_string(), expand_archives: true };
    let scan = realworld::scan(&def, RecordSize::Fixed(4096), false).unwrap();
    scan.dataset(Grade::new(50).unwrap(), RecordSize::Fixed(4096), 1).unwrap()
}

#[test]
fn a_changed_real_world_source_is_a_miss() {
    let t = tempfile::tempdir().unwrap();
    let (src, dir) = (t.path().join("src"), t.path().join("analysis"));
    std::fs::create_dir_all(&src).unwrap();
    let file = src.join("a.bin");
    std::fs::write(&file, content(40_000, 1)).unwrap();
    let planned = scan_spec(&src);
    let before = Cache::on_disk(&dir).analyze(&ds(&planned), 2).unwrap();
    assert_identical(&before, &uncached(&planned));
    let c = Cache::on_disk(&dir);
    assert_identical(&c.analyze(&ds(&planned), 2).unwrap(), &before);
    assert_eq!(c.disk_hits(), 1, "an unchanged source is a hit");

    // Same bytes, another mtime: the cached analysis of the planned spec is not used; the
    // analysis fails as every read of a changed source does.
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime + Duration::from_secs(10)).unwrap();
    let c = Cache::on_disk(&dir);
    let e = c.analyze(&ds(&planned), 2).unwrap_err().to_string();
    assert!(e.contains("changed since the dataset was planned"), "{e}");
    assert_eq!(c.disk_hits(), 0);

    // Other bytes and size: a miss again; planned anew, it is a new identity with the new
    // analysis.
    std::fs::write(&file, content(50_000, 2)).unwrap();
    let c = Cache::on_disk(&dir);
    assert!(c.analyze(&ds(&planned), 2).is_err());
    let replanned = scan_spec(&src);
    let after = c.analyze(&ds(&replanned), 2).unwrap();
    assert_eq!(c.disk_hits(), 0);
    assert_identical(&after, &uncached(&replanned));
    assert_ne!(after.logical_bytes, before.logical_bytes);
    assert_eq!(entries(&dir).len(), 2);

    // A file gone: a miss.
    std::fs::remove_file(&file).unwrap();
    let c = Cache::on_disk(&dir);
    assert!(c.analyze(&ds(&replanned), 2).is_err());
    assert_eq!(c.disk_hits(), 0);
}

#[test]
fn a_cache_that_cannot_be_written_costs_a_note_not_the_analysis() {
    let t = tempfile::tempdir().unwrap();
    let blocker = t.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let c = Cache::on_disk(blocker.join("analysis"));
    assert_identical(&c.analyze(&ds(&spec(3)), 2).unwrap(), &uncached(&spec(3)));
    // Reading and writing both fail here (a path component is a file): one note, the first.
    let note = c.take_note().expect("a note");
    assert!(note.contains(&blocker.display().to_string()) && note.contains("computed without the cache"), "{note}");
    eprintln!("{note}");
    c.analyze(&ds(&spec(4)), 2).unwrap();
    assert!(c.take_note().is_none(), "noted once per invocation");

    // --no-cache: nothing on disk at all.
    let c = Cache::in_memory();
    assert!(c.dir().is_none());
    c.analyze(&ds(&spec(3)), 2).unwrap();
    assert!(c.take_note().is_none());
}

#[test]
fn every_f64_survives_the_json_of_a_cache_file() {
    // Bit patterns spread over the whole range (xorshift64), plus ratios like the real ones.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut values: Vec<f64> = (1..2000u32).map(|n| 1.0 + f64::from(n) / 997.0).collect();
    values.extend([0.0, -0.0, f64::MIN_POSITIVE, f64::MAX, 5e-324, 1.0 / 3.0, 2.0f64.sqrt()]);
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let f = f64::from_bits(x);
        if f.is_finite() {
            values.push(f);
        }
    }
    for f in values {
        let back: f64 = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back.to_bits(), f.to_bits(), "{f:e}");
    }
}
