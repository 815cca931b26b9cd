//! Real-world datasets: every archive format yields its files' bytes in order with their
//! origin, grades work exactly as for synthetic data, bad input fails with a clear message
//! naming the file (and entry), a changed source is detected, scratch files are removed.

use dedup_lab_core::Grade;
use dedup_lab_datagen::par::HashedRecord;
use dedup_lab_datagen::realworld::{self, Session, SessionOptions, SourceDef};
use dedup_lab_datagen::{Dataset, DatasetError, DatasetSpec, DupPlan, RecordSize};
use std::fs;
use std::path::Path;
use std::sync::Mutex;

/// Tests here share the process-wide scratch session: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const SEED: u64 = 7;

fn def(name: &str, path: &Path) -> SourceDef {
    SourceDef { name: name.into(), path: path.display().to_string(), expand_archives: true }
}

fn spec(path: &Path, grade: u8, rs: u64) -> DatasetSpec {
    let scan = realworld::scan(&def("corpus", path), RecordSize::Fixed(rs), false).unwrap();
    scan.dataset(Grade::new(grade).unwrap(), RecordSize::Fixed(rs), SEED).unwrap()
}

fn read(spec: &DatasetSpec, threads: usize) -> Result<Vec<HashedRecord>, DatasetError> {
    Dataset::new(spec.clone()).unwrap().try_par_records(threads).collect()
}

fn scan_err(path: &Path) -> String {
    realworld::scan(&def("bad", path), RecordSize::Fixed(4096), false).unwrap_err().to_string()
}

/// The error reading a dataset (scanned fine) gives.
fn read_err(path: &Path) -> String {
    read(&spec(path, 0, 4096), 2).unwrap_err().to_string()
}

#[test]
fn u0_yields_every_leaf_in_order_with_its_origin() {
    let _s = serial();
    let t = tempfile::tempdir().unwrap();
    let c = crate::corpus::build(t.path());
    let rs = 4096;
    let want = crate::corpus::expected_records(&c, rs);
    let spec = spec(&c.root, 0, rs as u64);
    assert_eq!(spec.records, want.len() as u64);
    let rw = spec.real_world.as_ref().unwrap();
    assert_eq!(rw.source_bytes, c.leaves.iter().map(|l| l.data.len() as u64).sum::<u64>());
    assert_eq!(rw.bytes, rw.source_bytes, "U0 is the source itself");
    assert_eq!(rw.files.len(), 9, "every file, the empty one included: {:?}", rw.files);
    for threads in [1, 3] {
        let got = read(&spec, threads).unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (h, (file, entry, offset, data))) in got.iter().zip(&want).enumerate() {
            let o = h.origin.as_ref().unwrap();
            let at = format!("record {i}: {file:?} {entry:?} @{offset}");
            assert_eq!(&*o.file, file.to_str().unwrap(), "{at}");
            assert_eq!(o.entry.as_deref(), entry.as_deref(), "{at}");
            assert_eq!(o.offset, *offset, "{at}");
            assert!(h.record.data == *data, "{at}: bytes differ");
            assert_eq!(h.sha256, Some(dedup_lab_datagen::sha256(data)), "{at}");
            assert!(!h.record.is_duplicate());
        }
    }
}

#[test]
fn grades_copy_earlier_originals_exactly_like_the_synthetic_plan() {
    let _s = serial();
    let t = tempfile::tempdir().unwrap();
    let c = crate::corpus::build(t.path());
    let rs = 4096;
    let source: Vec<Vec<u8>> = crate::corpus::expected_records(&c, rs).into_iter().map(|r| r.3).collect();
    for grade in [50, 90, 99] {
        let spec = spec(&c.root, grade, rs as u64);
        let n = source.len() as u64;
        assert_eq!(spec.records, n, "every grade keeps the source's record count");
        let plan: Vec<_> = DupPlan::new(&spec).collect();
        let dups = plan.iter().filter(|e| e.is_duplicate()).count() as u64;
        assert_eq!(dups, Grade::new(grade).unwrap().duplicates_of(n));
        let got = read(&spec, 2).unwrap();
        assert_eq!(got.len() as u64, n);
        let mut next_original = 0;
        let mut bytes = 0u64;
        for (h, e) in got.iter().zip(&plan) {
            let r = &h.record;
            assert_eq!((r.index, r.source), (e.index, e.source), "U{grade}: the synthetic plan");
            bytes += r.data.len() as u64;
            if e.is_duplicate() {
                let orig = &got[e.source as usize];
                assert!(r.data == orig.record.data, "U{grade} record {}: a copy of {}", r.index, e.source);
                assert_eq!(h.origin, orig.origin, "a copy names its original's place");
            } else {
                // Originals are the source's first N − D records, in order.
                assert!(r.data == source[next_original], "U{grade} original {next_original}");
                next_original += 1;
            }
        }
        assert_eq!(next_original as u64, n - dups);
        assert_eq!(bytes, spec.real_world.as_ref().unwrap().bytes, "U{grade}: planned bytes");
        assert_eq!(Dataset::new(spec.clone()).unwrap().total_bytes(), bytes);
    }
}

#[test]
fn copies_re_read_in_place_from_stored_zip_entries_and_plain_tars() {
    let _s = serial();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let a = crate::corpus::content(21, 41_000, false);
    let b = crate::corpus::content(22, 17_000, false);
    fs::write(d.join("stored.zip"), crate::corpus::zip_bytes(&[("a.bin", &a, false), ("b.bin", &b, false)])).unwrap();
    let inner = crate::corpus::tar_bytes(&[("t/b.bin", &b)]);
    fs::write(d.join("plain.tar"), crate::corpus::tar_bytes(&[("t/a.bin", &a), ("t/inner.tar", &inner)])).unwrap();
    let stored_in_zip = crate::corpus::zip_bytes(&[("nested.tar", &crate::corpus::tar_bytes(&[("x.bin", &a)]), false)]);
    fs::write(d.join("tar_in_stored_zip.zip"), stored_in_zip).unwrap();
    for name in ["stored.zip", "plain.tar", "tar_in_stored_zip.zip"] {
        let path = d.join(name);
        let u0 = read(&spec(&path, 0, 4096), 1).unwrap();
        for grade in [50, 90] {
            let got = read(&spec(&path, grade, 4096), 2).unwrap();
            assert_eq!(got.len(), u0.len());
            let mut k = 0;
            for h in &got {
                if h.record.is_duplicate() {
                    let orig = &got[h.record.source as usize].record.data;
                    assert!(&h.record.data == orig, "{name} U{grade}: record {} re-read in place", h.record.index);
                } else {
                    assert!(h.record.data == u0[k].record.data, "{name} U{grade}: original {k}");
                    k += 1;
                }
            }
        }
    }
}

#[test]
fn bad_sources_fail_with_a_clear_error_naming_the_file_and_entry() {
    let _s = serial();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();

    let e = scan_err(&d.join("nowhere"));
    assert!(e.contains("nowhere: does not exist"), "{e}");

    fs::write(d.join("broken.zip"), b"PK\x03\x04 this is not really a zip archive at all").unwrap();
    let e = scan_err(&d.join("broken.zip"));
    assert!(e.contains("broken.zip: not a readable zip archive"), "{e}");

    let tgz = crate::corpus::gz(&crate::corpus::tar_bytes(&[("big.bin", &crate::corpus::content(1, 200_000, false))]));
    fs::write(d.join("cut.tar.gz"), &tgz[..tgz.len() / 2]).unwrap();
    let e = scan_err(&d.join("cut.tar.gz"));
    assert!(e.contains("cut.tar.gz") && e.contains("big.bin") && e.contains("truncated"), "{e}");

    let tbz = crate::corpus::bz2(&crate::corpus::tar_bytes(&[("a.txt", &crate::corpus::content(2, 300_000, true))]));
    fs::write(d.join("cut.tar.bz2"), &tbz[..tbz.len() - 40]).unwrap();
    let e = scan_err(&d.join("cut.tar.bz2"));
    assert!(e.contains("cut.tar.bz2") && (e.contains("truncated") || e.contains("corrupt")), "{e}");

    let g = crate::corpus::gz(&crate::corpus::content(3, 100_000, false));
    fs::write(d.join("cut.bin.gz"), &g[..g.len() - 100]).unwrap();
    let e = scan_err(&d.join("cut.bin.gz"));
    assert!(e.contains("cut.bin.gz: entry cut.bin: cannot be read"), "{e}");

    // Damaged deflate data inside a zip whose directory is intact: found when read, named.
    let data = crate::corpus::content(4, 50_000, false);
    let mut z = crate::corpus::zip_bytes(&[("ok.txt", b"fine", true), ("damaged.bin", &data, true)]);
    let pos = z.windows(11).position(|w| w == b"damaged.bin").unwrap() + 11 + 200;
    for b in &mut z[pos..pos + 64] {
        *b ^= 0x5a;
    }
    fs::write(d.join("damaged.zip"), &z).unwrap();
    let e = read_err(&d.join("damaged.zip"));
    assert!(e.contains("damaged.zip: entry damaged.bin: cannot be read"), "{e}");

    fs::create_dir_all(d.join("loop/real")).unwrap();
    fs::write(d.join("loop/real/f.txt"), b"x").unwrap();
    std::os::unix::fs::symlink(d.join("loop"), d.join("loop/real/back")).unwrap();
    let e = scan_err(&d.join("loop"));
    assert!(e.contains("loop/real/back: a symlink loop"), "{e}");
    std::os::unix::fs::symlink(d.join("self"), d.join("self")).unwrap();
    let e = scan_err(&d.join("self"));
    assert!(e.contains("self: a symlink loop"), "{e}");

    fs::create_dir_all(d.join("empty/deeper")).unwrap();
    let e = scan_err(&d.join("empty"));
    assert!(e.contains("holds no data"), "{e}");
    fs::write(d.join("empty/deeper/zero.txt"), b"").unwrap();
    let e = scan_err(&d.join("empty"));
    assert!(e.contains("holds no data") && e.contains("1 file(s)"), "{e}");

    let e = realworld::scan(&def("r", &d.join("damaged.zip")), RecordSize::Range { min: 64, max: 128 }, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("fixed --record-size"), "{e}");

    let bad = realworld::failed_dataset(&def("r", d), Grade::U0, RecordSize::Fixed(64), 1, "it broke".into());
    assert_eq!(Dataset::new(bad).unwrap_err().to_string(), "it broke");
}

#[test]
fn entries_with_absolute_or_parent_paths_are_skipped_with_a_warning() {
    let _s = serial();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let mut b = tar::Builder::new(Vec::new());
    crate::corpus::tar_raw_entry(&mut b, "../../evil.txt", b"never read");
    crate::corpus::tar_raw_entry(&mut b, "/etc/abs.txt", b"never read either");
    crate::corpus::tar_raw_entry(&mut b, "good.txt", b"good data");
    fs::write(d.join("e.tar"), b.into_inner().unwrap()).unwrap();
    fs::write(
        d.join("z.zip"),
        crate::corpus::zip_bytes(&[("../up.txt", b"no", true), ("fine.txt", b"fine data", true)]),
    )
    .unwrap();
    let scan = realworld::scan(&def("x", d), RecordSize::Fixed(4096), false).unwrap();
    let w = scan.warnings.join("\n");
    assert!(w.contains("e.tar: entry \"../../evil.txt\" skipped: its path has a `..` component"), "{w}");
    assert!(w.contains("e.tar: entry \"/etc/abs.txt\" skipped: it has an absolute path"), "{w}");
    assert!(w.contains("z.zip: entry \"../up.txt\" skipped"), "{w}");
    assert_eq!(scan.records, 2);
    let got = read(&scan.dataset(Grade::U0, RecordSize::Fixed(4096), 1).unwrap(), 1).unwrap();
    let data: Vec<&[u8]> = got.iter().map(|h| &h.record.data[..]).collect();
    assert_eq!(data, [&b"good data"[..], b"fine data"]);
    // Nothing was extracted anywhere.
    assert!(!d.join("evil.txt").exists() && !t.path().parent().unwrap().join("evil.txt").exists());
}

#[test]
fn a_changed_source_is_detected_not_mixed() {
    let _s = serial();
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("a.bin"), crate::corpus::content(1, 20_000, false)).unwrap();
    fs::write(d.join("b.bin"), crate::corpus::content(2, 20_000, false)).unwrap();
    let scan = realworld::scan(&def("x", &d), RecordSize::Fixed(4096), true).unwrap();
    let spec = scan.dataset(Grade::U50, RecordSize::Fixed(4096), 1).unwrap();
    let rw = spec.real_world.clone().unwrap();
    assert!(rw.files.iter().all(|f| f.sha256.is_some()), "--verify-sources hashes every file");
    realworld::check_unchanged(&rw).unwrap();
    assert_eq!(read(&spec, 2).unwrap().len(), 10);

    // Same size, same mtime, other bytes: only the SHA-256 tells.
    let meta = fs::metadata(d.join("b.bin")).unwrap();
    fs::write(d.join("b.bin"), crate::corpus::content(3, 20_000, false)).unwrap();
    fs::File::options().write(true).open(d.join("b.bin")).unwrap().set_modified(meta.modified().unwrap()).unwrap();
    let e = realworld::check_unchanged(&rw).unwrap_err();
    assert!(e.contains("b.bin: its content (SHA-256) differs"), "{e}");

    fs::write(d.join("b.bin"), crate::corpus::content(2, 20_001, false)).unwrap();
    let e = realworld::check_unchanged(&rw).unwrap_err();
    assert!(e.contains("changed since the run started") && e.contains("b.bin: now 20001 B"), "{e}");
    let e = read(&spec, 2).unwrap_err().to_string();
    assert!(e.contains("changed since the dataset was planned") && e.contains("b.bin"), "{e}");

    fs::write(d.join("b.bin"), crate::corpus::content(2, 20_000, false)).unwrap();
    fs::write(d.join("c.bin"), b"new").unwrap();
    let e = realworld::check_unchanged(&rw).unwrap_err();
    assert!(e.contains("c.bin is new"), "{e}");
    fs::remove_file(d.join("c.bin")).unwrap();
    fs::remove_file(d.join("a.bin")).unwrap();
    let e = realworld::check_unchanged(&rw).unwrap_err();
    assert!(e.contains("a.bin is gone"), "{e}");
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn scratch_and_staged_copies_live_in_the_session_directories_and_are_removed() {
    let _s = serial();
    let t = tempfile::tempdir().unwrap();
    let c = crate::corpus::build(t.path());
    let scratch = t.path().join("scratch");
    let stage = t.path().join("stage");
    fs::create_dir_all(&scratch).unwrap();
    fs::create_dir_all(&stage).unwrap();

    // A directory of a process that no longer exists is removed when a session starts.
    fs::create_dir_all(scratch.join("dedup-lab-scratch-999999999-0-0/x")).unwrap();
    fs::create_dir_all(scratch.join("unrelated")).unwrap();
    let session =
        Session::start(SessionOptions { scratch: Some(scratch.clone()), stage_to: Some(stage.clone()) }).unwrap();
    assert_eq!(leftovers(&scratch), ["unrelated"]);
    fs::remove_dir(scratch.join("unrelated")).unwrap();

    // U50: the originals reach into the zip with the .xlsx, which is spooled.
    let spec = spec(&c.root, 50, 4096);
    assert_eq!(leftovers(&stage).len(), 1, "the staged copies' directory");
    let staged = stage.join(&leftovers(&stage)[0]);
    assert_eq!(leftovers(&staged).len(), 9, "every source file was copied once");
    let ds = Dataset::new(spec.clone()).unwrap();
    let mut seen_scratch = false;
    for r in ds.try_par_records(2) {
        r.unwrap();
        seen_scratch |= !leftovers(&scratch).is_empty();
    }
    assert!(seen_scratch, "spooled originals and nested zips live in the scratch directory");
    assert!(leftovers(&scratch).is_empty(), "a reader removes its scratch files: {:?}", leftovers(&scratch));
    // Stopped half-way: the same.
    ds.try_par_records(2).take(5).for_each(|r| drop(r.unwrap()));
    assert!(leftovers(&scratch).is_empty(), "{:?}", leftovers(&scratch));
    assert_eq!(read(&spec, 3).unwrap().len() as u64, spec.records);
    assert!(leftovers(&scratch).is_empty());

    // Scratch inside a source directory is refused: nothing may be created beside a source.
    drop(session);
    assert!(leftovers(&stage).is_empty(), "the session removes the staged copies");
    let inside = c.root.join("sub");
    let session = Session::start(SessionOptions { scratch: Some(inside), stage_to: None }).unwrap();
    let e = realworld::scan(&def("c", &c.root), RecordSize::Fixed(4096), false).unwrap_err().to_string();
    assert!(e.contains("never creates anything beside a source"), "{e}");
    drop(session);
}
