//! Nothing measured changes when the instrument gets lighter: the `quick` matrix on the
//! embedded stores and on PostgreSQL gives, stage by stage, the row counts (sent, reported,
//! counted), logical bytes, read-back, validity and — where the size is deterministic (the
//! internal sizes of SQLite and of the files store: page and byte counts) — the EDR of
//! `tests/it/golden/quick_matrix.tsv`, written by the release before the footprint work
//! (0f83fb9) and checked to be the same after it.
//!
//! `UPDATE_GOLDEN=1` rewrites the file (refused under the test command, like snapshots).

use crate::support::{journal, servers_required};
use dedup_lab_core::{JournalLine, SystemKind};
use std::fmt::Write as _;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/golden/quick_matrix.tsv");

/// One tab-separated line per stage, sorted: what must not change.
fn lines_of(journal_lines: &[JournalLine]) -> Vec<String> {
    let mut out = Vec::new();
    for l in journal_lines {
        let JournalLine::Stage(m) = l else { continue };
        let c = &m.cell;
        // EDR only where the size is deterministic; elsewhere the file system and the
        // server's background work decide the last bytes.
        let edr = match (c.system, m.edr_replica) {
            (SystemKind::Sqlite | SystemKind::Files, Some(e)) => format!("{e:.6}"),
            (SystemKind::Sqlite | SystemKind::Files, None) => "undefined".into(),
            _ => "-".into(),
        };
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let mut s = String::new();
        write!(
            s,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}/{}\t{}",
            c.system.name(),
            c.variant,
            c.payload,
            c.grade,
            m.stage,
            m.rows_sent,
            opt(m.rows_reported),
            opt(m.rows_counted),
            m.logical_bytes,
            if m.valid { "valid" } else { "INVALID" },
            m.readback_matched,
            m.readback_sampled,
            edr
        )
        .unwrap();
        out.push(s);
    }
    out.sort();
    out
}

#[test]
fn the_quick_matrix_measures_what_it_measured_before() {
    let systems = if crate::support::server_env("postgresql", &["DEDUP_PG_HOST", "DEDUP_PG_PASSWORD"]).is_some() {
        "sqlite,files,postgresql"
    } else {
        "sqlite,files"
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "lab = \"dedup_t_golden\"\n[systems.sqlite]\nprobe = \"internal\"\n[systems.files]\nprobe = \"internal\"\n",
    )
    .unwrap();
    let results = tmp.path().join("r");
    crate::support::ok(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--systems",
        systems,
        "--profile",
        "quick",
        "--runs",
        "1",
        "--no-storage-sim",
    ]);
    let got = lines_of(&journal(&results));
    assert!(got.len() >= 100, "the quick matrix ran ({} stage lines)", got.len());
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        assert!(!servers_required(), "UPDATE_GOLDEN=1 is refused under the test command");
        assert!(systems.contains("postgresql"), "the golden file covers PostgreSQL: start its server first");
        std::fs::create_dir_all(std::path::Path::new(GOLDEN).parent().unwrap()).unwrap();
        std::fs::write(GOLDEN, got.join("\n") + "\n").unwrap();
        return;
    }
    let want: Vec<String> = std::fs::read_to_string(GOLDEN)
        .unwrap_or_else(|e| panic!("{GOLDEN}: {e} (write it with UPDATE_GOLDEN=1)"))
        .lines()
        .filter(|l| systems.contains("postgresql") || !l.starts_with("postgresql\t"))
        .map(String::from)
        .collect();
    let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
    let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the quick matrix measured something else than before:\n  expected, not found:\n    {}\n  found instead:\n    {}",
        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n    "),
        extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n    ")
    );
}
