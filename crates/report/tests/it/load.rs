//! Reading result directories: torn, empty and corrupt journal lines; directories that are
//! not results.

use dedup_lab_core::JournalLine;
use dedup_lab_report::load::{load, read_journal, run_dirs};
use std::path::Path;

fn write_run(dir: &Path, journal: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let info = crate::common::run_info(&dir.file_name().unwrap().to_string_lossy(), "0.1.0", 42, "running");
    std::fs::write(dir.join("run.json"), serde_json::to_vec_pretty(&info).unwrap()).unwrap();
    std::fs::write(dir.join("measurements.jsonl"), journal).unwrap();
}

fn lines(n: usize) -> Vec<String> {
    crate::common::journal().iter().take(n).map(|l| serde_json::to_string(l).unwrap()).collect()
}

#[test]
fn bad_lines_are_skipped_with_a_warning_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let good = lines(3);
    let torn = &good[2][..good[2].len() / 2];
    let text = format!("{}\n\n{}\nnot json at all\n{torn}", good[0], good[1]);
    let p = tmp.path().join("measurements.jsonl");
    std::fs::write(&p, text).unwrap();
    let (ok, warnings) = read_journal(&p).unwrap();
    assert_eq!(ok.len(), 2);
    assert!(matches!(ok[0], JournalLine::Stage(_)));
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[0].contains("line 2 is empty"), "{warnings:?}");
    assert!(warnings[1].contains("line 4 is not a valid journal line"), "{warnings:?}");
    assert!(warnings[2].contains("line 5 is half-written"), "{warnings:?}");

    std::fs::write(&p, "").unwrap();
    let (ok, warnings) = read_journal(&p).unwrap();
    assert!(ok.is_empty() && warnings[0].contains("is empty"));
    std::fs::write(&p, b"\xff\xfe{\n").unwrap();
    let (_, warnings) = read_journal(&p).unwrap();
    assert!(warnings[0].contains("line 1 is not UTF-8"), "{warnings:?}");
}

#[test]
fn run_dirs_and_results_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("results");
    write_run(&root.join("20260101-000000-000-a"), &(lines(5).join("\n") + "\n"));
    write_run(&root.join("20260102-000000-000-b"), "");
    std::fs::create_dir_all(root.join("tex")).unwrap(); // an export directory is not a run
    assert_eq!(run_dirs(&root).unwrap().len(), 2);
    assert_eq!(run_dirs(&root.join("20260101-000000-000-a")).unwrap().len(), 1);
    // A run given twice (itself and through its root) is loaded once.
    let sources = load(&[root.clone(), root.join("20260101-000000-000-a")]).unwrap();
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[0].lines.len(), 5);
    assert!(sources[1].warnings[0].contains("empty"));
}

#[test]
fn a_directory_that_is_not_results_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    for p in [tmp.path().to_path_buf(), tmp.path().join("missing")] {
        let e = run_dirs(&p).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()) && e.contains("is not a dedup-lab results directory"), "{e}");
        assert!(e.contains("expected a run directory"), "{e}");
    }
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("run.json"), "{ not json").unwrap();
    let e = load(std::slice::from_ref(&bad)).unwrap_err().to_string();
    assert!(e.contains("run.json") && e.contains("not a valid run description"), "{e}");
}
