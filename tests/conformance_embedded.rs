//! The conformance suite on the three embedded backends (real SQLite, fjall, files).

mod conformance;

use dedup_lab_backends::BackendConfig;
use dedup_lab_core::SystemKind;

fn run(kind: SystemKind) {
    run_with(kind, serde_json::json!({}));
}

fn config(kind: SystemKind, settings: serde_json::Value, dir: &std::path::Path) -> BackendConfig {
    BackendConfig::new(
        "dedup_lab_conformance".parse().unwrap(),
        kind.name(),
        "DEDUP_CONFORMANCE_UNUSED",
        settings,
        dir.to_path_buf(),
    )
}

fn run_with(kind: SystemKind, settings: serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(kind, settings, dir.path());
    let mut b = dedup_lab_backends::open(kind, "default", &cfg).unwrap();
    conformance::run_suite(b.as_mut(), &mut conformance::no_local_paths);
    conformance::run_native_suite(b.as_mut(), "dedup_lab_conformance");
    // Nothing outside the work directory was created, and nothing is left inside it but
    // the (empty) per-system folder.
    for e in walk(dir.path()) {
        assert!(e.is_dir(), "{kind}: left {} behind", e.display());
    }
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap().flatten() {
        out.push(e.path());
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
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
