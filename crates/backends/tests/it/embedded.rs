//! The shared conformance suite on the three embedded backends (real SQLite, fjall, files),
//! run from this crate's own tests: blob and native mode, variants, preflight, cleanup.
//! Whether a lab is left behind is checked by walking the work directory, not by asking
//! the backend.

use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::SystemKind;
use std::path::{Path, PathBuf};

fn config(kind: SystemKind, settings: serde_json::Value, dir: &Path) -> BackendConfig {
    BackendConfig::new(
        "dedup_lab_conformance".parse().unwrap(),
        kind.name(),
        "DEDUP_CONFORMANCE_UNUSED",
        settings,
        dir.to_path_buf(),
    )
}

/// Every file (not directory) below `p`.
fn files_below(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_below(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn run(kind: SystemKind) {
    run_with(kind, serde_json::json!({}));
}

fn run_with(kind: SystemKind, settings: serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(kind, settings, dir.path());
    let variants = dedup_lab_backends::variants(kind, &cfg).unwrap();
    conformance::check_variants(&variants, &mut |v| dedup_lab_backends::open(kind, v, &cfg), "fastest");
    let mut b = dedup_lab_backends::open(kind, "default", &cfg).unwrap();
    let root = dir.path().to_path_buf();
    // A lab is left behind when any file is left under the work directory.
    let mut leftovers = move |_: &dedup_lab_core::Namespace| !files_below(&root).is_empty();
    conformance::run_suite(
        b.as_mut(),
        &mut conformance::Suite { lab: "dedup_lab_conformance", leftovers: &mut leftovers },
    );
    conformance::run_native_suite(b.as_mut(), "dedup_lab_conformance");
    // Nothing outside the work directory was created, and nothing is left inside it but
    // the (empty) per-system folder.
    let left = files_below(dir.path());
    assert!(left.is_empty(), "{kind}: left {left:?} behind");
}

#[test]
fn sqlite_conforms() {
    run(SystemKind::Sqlite);
}

#[test]
fn lsm_conforms() {
    run(SystemKind::Lsm);
}

/// The memory settings of the lsm backend: a batch per record and the smallest memtable and
/// cache still store and read back everything.
#[test]
fn lsm_conforms_with_the_smallest_memory_settings() {
    run_with(SystemKind::Lsm, serde_json::json!({"batch_bytes": 1, "memtable_size": "1MiB", "cache_size": "1MiB"}));
}

#[test]
fn lsm_memory_settings_that_are_not_sizes_or_too_small_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (settings, expect) in [
        (serde_json::json!({"memtable_size": "big"}), "setting `memtable_size`"),
        (serde_json::json!({"cache_size": "64KiB"}), "`cache_size` is 65536 B; use at least 1.0 MiB"),
        (serde_json::json!({"batch_bytes": "0"}), "`batch_bytes` is 0 B"),
    ] {
        let e = dedup_lab_backends::open(SystemKind::Lsm, "default", &config(SystemKind::Lsm, settings, dir.path()))
            .err()
            .expect("refused")
            .chain();
        assert!(e.contains(expect), "{e}");
    }
}

#[test]
fn files_conforms() {
    run(SystemKind::Files);
}
