//! The conformance suite on the three embedded backends (real SQLite, fjall, files).

mod conformance;

use dedup_lab_backends::BackendConfig;
use dedup_lab_core::SystemKind;

fn run(kind: SystemKind) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BackendConfig::new(
        "dedup_lab_conformance".parse().unwrap(),
        kind.name(),
        "DEDUP_CONFORMANCE_UNUSED",
        serde_json::json!({}),
        dir.path().to_path_buf(),
    );
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

#[test]
fn files_conforms() {
    run(SystemKind::Files);
}
