//! A fixture built in code (no clock, no I/O): one run of two systems × two payloads ×
//! two grades × three repetitions, with one invalid, one failed and one unfinished
//! repetition and one throughput outlier; plus a snapshot helper.

#![allow(dead_code)]

use dedup_lab_core::{
    CacheState, CellKey, CellStatus, Grade, InsertionMode, InternalSizes, JournalLine, LatencySummary, Measurement,
    Physical, Placement, Stage, SystemKind,
};
use dedup_lab_datagen::analyze::ChunkStats;
use dedup_lab_datagen::{Analysis, DatasetSpec};
use dedup_lab_report::Source;
use std::path::PathBuf;

pub const RECORDS: u64 = 8;
pub const RECORD_SIZE: u64 = 65_536;
pub const LOGICAL: u64 = RECORDS * RECORD_SIZE;

pub fn run_info(run_id: &str, tool_version: &str, seed: u64, status: &str) -> dedup_lab_runner::RunInfo {
    let datasets: Vec<serde_json::Value> = ["random_binary", "text_document"]
        .iter()
        .flat_map(|p| {
            ["U0", "U90"].iter().map(move |g| {
                serde_json::json!({"payload": p, "grade": g, "records": RECORDS, "record_size": RECORD_SIZE.to_string(), "seed": seed})
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "format": "dedup-lab-run/1",
        "run_id": run_id,
        "tool_version": tool_version,
        "git_commit": "0123456789ab",
        "host": "fixture-host",
        "started_at": "2026-01-02T03:04:05.000Z",
        "finished_at": if status == "finished" { serde_json::json!("2026-01-02T03:09:05.000Z") } else { serde_json::Value::Null },
        "status": status,
        "server_versions": {"lsm/default": "fjall 3 (LZ4)", "sqlite/default": "SQLite 3.50.2"},
        "spec": {
            "lab": "dedup_lab",
            "systems": [
                {"kind": "sqlite", "variants": ["default"], "replicas": 1, "probe": "auto",
                 "settings": {"dir": "/srv/lab", "password_env": "DEDUP_SQLITE_PASSWORD", "token": "s3cr3t"}},
                {"kind": "lsm", "variants": ["default"], "replicas": 1, "probe": "auto", "settings": {}}
            ],
            "datasets": datasets,
            "stages": ["bulk_insert", "perfile_insert", "perfile_delete", "maintenance"],
            "runs": 3,
            "placements": ["within"],
            "caches": ["warm"],
            "modes": ["blob"],
            "readback": 8,
            "keep": false
        }
    }))
    .expect("fixture run info")
}

pub fn key(system: SystemKind, payload: &str, grade: Grade, run: u32) -> CellKey {
    CellKey {
        system,
        variant: "default".into(),
        payload: payload.into(),
        grade,
        mode: InsertionMode::Blob,
        placement: Placement::Within,
        cache: CacheState::Warm,
        run,
    }
}

/// One stage with numbers that depend deterministically on the cell and the repetition.
pub fn stage(cell: &CellKey, stage: Stage) -> Measurement {
    let run = u64::from(cell.run);
    let compressible = cell.payload == "text_document";
    let lsm = cell.system == SystemKind::Lsm;
    // Growth of an insert stage: lsm halves text; a page per repetition of noise.
    let growth = if lsm && compressible { LOGICAL / 2 } else { LOGICAL } + 4096 * run;
    let base = 8192u64;
    let (before, after, logical, rows) = match stage {
        Stage::BulkInsert | Stage::PerfileInsert | Stage::Refill => (base, base + growth, LOGICAL, RECORDS),
        Stage::PerfileDelete if lsm => (base + growth, base + growth, 0, RECORDS),
        Stage::PerfileDelete => (base + growth, base + growth, 0, RECORDS),
        Stage::Maintenance if lsm => (base + growth, base, 0, 0),
        Stage::Maintenance => (base + growth, base + 4096, 0, 0),
    };
    let delta = after as i64 - before as i64;
    let (edr_replica, edr_cluster, edr_note) =
        if stage.is_insert() { Measurement::edr(logical, delta, 1) } else { (None, None, None) };
    let (reclaimed_bytes, reclaimed_share) =
        if stage.is_insert() { (None, None) } else { (Some(-delta), Some(-delta as f64 / growth as f64)) };
    let mut duration_ns = match stage {
        Stage::BulkInsert => 100_000_000 + 10_000_000 * run,
        Stage::PerfileInsert | Stage::Refill => 200_000_000 + 5_000_000 * run,
        Stage::PerfileDelete => 50_000_000 + 1_000_000 * run,
        Stage::Maintenance => 30_000_000 + 2_000_000 * run,
    };
    // The outlier: one bulk load ten times as fast as the other two.
    if lsm && compressible && cell.grade == Grade::U0 && cell.run == 3 && stage == Stage::BulkInsert {
        duration_ns /= 10;
    }
    let secs = duration_ns as f64 / 1e9;
    let latency = stage.is_per_record().then(|| {
        let p50 = 1_000_000 + 10_000 * run + if lsm { 500_000 } else { 0 };
        LatencySummary {
            count: RECORDS,
            min_ns: p50 / 2,
            mean_ns: p50 as f64 * 1.2,
            p50_ns: p50,
            p90_ns: p50 * 2,
            p95_ns: p50 * 3,
            p99_ns: p50 * 5,
            p999_ns: p50 * 5,
            max_ns: p50 * 5,
        }
    });
    let sized = |b: u64| InternalSizes { total_bytes: Some(b), details: Default::default() };
    Measurement {
        cell: cell.clone(),
        stage,
        started_at: "2026-01-02T03:04:06.000Z".into(),
        rows_sent: rows,
        rows_reported: Some(rows),
        rows_counted: Some(if stage.is_insert() { RECORDS } else { 0 }),
        logical_bytes: logical,
        physical: Physical { method: "fs".into(), before, after, delta },
        replicas: 1,
        edr_replica,
        edr_cluster,
        edr_note,
        reclaimed_bytes,
        reclaimed_share,
        duration_ns,
        mb_per_s: logical as f64 / 1e6 / secs,
        ops_per_s: rows as f64 / secs,
        latency,
        internal_before: sized(before),
        internal_after: sized(after),
        readback_sampled: if stage.is_insert() { 8 } else { 0 },
        readback_matched: if stage.is_insert() { 8 } else { 0 },
        notes: if stage == Stage::Maintenance {
            vec![if lsm { "major compaction".into() } else { "VACUUM".into() }]
        } else {
            vec![]
        },
        valid: true,
        invalid_reasons: vec![],
        unsupported: None,
        storage_sim: stage.is_insert().then(|| storage_sim(cell, logical)).flatten(),
        // The instrument's footprint: a tenth of the stage's wall time on one of two cores
        // (a 5 % share); the server's only for the systems with known processes (not lsm).
        footprint: Some(dedup_lab_core::Footprint {
            wall_ns: duration_ns,
            tool_user_ns: duration_ns * 3 / 40,
            tool_sys_ns: duration_ns / 40,
            cores: 2,
            server_cpu_ns: (!lsm).then_some(duration_ns / 2),
            server_note: (!lsm).then(|| "pid 4242, each with its process tree".to_string()),
        }),
    }
}

/// The storage simulation of an insert stage, on SQLite only (lsm shows none): U90 blocks
/// collapse tenfold, U0 ones not; text compresses 2:1; a page of noise per repetition.
fn storage_sim(cell: &CellKey, logical: u64) -> Option<dedup_lab_core::StorageSim> {
    if cell.system != SystemKind::Sqlite {
        return None;
    }
    let referenced = logical / 4096 + 2;
    let distinct = if cell.grade == Grade::U0 { referenced } else { referenced / 7 + 1 };
    let per_block = if cell.payload == "text_document" { 2048 } else { 4096 };
    let lz4 = distinct * per_block + 512 * u64::from(cell.run);
    let mut b = dedup_lab_core::BlockSim {
        block_size: 4096,
        referenced_blocks: referenced,
        zero_blocks: 1,
        distinct_blocks: distinct,
        sample_rate: 1,
        sampled: distinct,
        lz4_bytes: Some(lz4),
        lz4_rel_error: 0.0,
        zstd_bytes: Some(lz4 * 3 / 4),
        zstd_level: 3,
        zstd_rel_error: 0.0,
        histogram: Vec::new(),
        dedup_ratio: None,
        lz4_ratio: None,
        zstd_ratio: None,
        dedup_lz4: None,
        dedup_zstd: None,
        storage_edr: None,
        storage_edr_zstd: None,
    };
    b.derive(logical);
    Some(dedup_lab_core::StorageSim {
        files: 1,
        file_bytes: (referenced + 1) * 4096,
        logical_bytes: logical,
        report_block_size: 4096,
        blocks: vec![b],
        table_bytes: 4096,
        duration_ns: 1_000_000,
    })
}

pub fn end(cell: &CellKey, status: CellStatus, reason: Option<&str>) -> JournalLine {
    JournalLine::Cell {
        cell: cell.clone(),
        status,
        reason: reason.map(String::from),
        finished_at: "2026-01-02T03:04:07.000Z".into(),
    }
}

/// The journal of the fixture run.
pub fn journal() -> Vec<JournalLine> {
    let mut lines = Vec::new();
    for run in 1..=3 {
        for system in [SystemKind::Sqlite, SystemKind::Lsm] {
            for payload in ["random_binary", "text_document"] {
                for grade in [Grade::U0, Grade::U90] {
                    let k = key(system, payload, grade, run);
                    let failed =
                        system == SystemKind::Lsm && payload == "random_binary" && grade == Grade::U0 && run == 3;
                    let unfinished =
                        system == SystemKind::Lsm && payload == "text_document" && grade == Grade::U90 && run == 3;
                    let invalid =
                        system == SystemKind::Sqlite && payload == "text_document" && grade == Grade::U90 && run == 2;
                    for s in Stage::DEFAULT {
                        let mut m = stage(&k, s);
                        if invalid && s == Stage::PerfileInsert {
                            m.rows_counted = Some(7);
                            m.valid = false;
                            m.invalid_reasons = vec!["rows counted 7 ≠ 8 sent".into()];
                        }
                        lines.push(JournalLine::Stage(Box::new(m)));
                        if (failed || unfinished) && s == Stage::BulkInsert {
                            break;
                        }
                    }
                    if failed {
                        lines.push(end(&k, CellStatus::Failed, Some("perfile_insert: backend error: disk full")));
                    } else if invalid {
                        lines.push(end(&k, CellStatus::Invalid, Some("perfile_insert: rows counted 7 ≠ 8 sent")));
                    } else if !unfinished {
                        lines.push(end(&k, CellStatus::Ok, None));
                    }
                }
            }
        }
    }
    lines
}

pub fn source() -> Source {
    Source {
        path: "results/20260102-030405-000-fix".into(),
        info: run_info("20260102-030405-000-fix", "0.1.0", 42, "interrupted"),
        lines: journal(),
        warnings: vec!["measurements.jsonl line 118 is half-written (the tail of a killed run?); skipped: EOF while parsing an object at line 1 column 57".into()],
    }
}

/// Fixed intrinsic analyses (not computed, so the snapshots do not depend on the generators).
pub fn intrinsic(seed: u64) -> Vec<(DatasetSpec, Analysis)> {
    let mut out = Vec::new();
    for (payload, zstd) in [("random_binary", 1.0), ("text_document", 3.0)] {
        for (grade, unique) in [(Grade::U0, 8u64), (Grade::U90, 1)] {
            let spec = DatasetSpec {
                payload: payload.parse().unwrap(),
                grade,
                records: RECORDS,
                record_size: dedup_lab_datagen::RecordSize::Fixed(RECORD_SIZE),
                seed,
                real_world: None,
            };
            let unique_bytes = unique * RECORD_SIZE;
            let dedup = LOGICAL as f64 / unique_bytes as f64;
            let chunks = ChunkStats {
                chunks: LOGICAL / 4096,
                unique_chunks: unique_bytes / 4096,
                unique_bytes,
                dedup_ratio: dedup,
            };
            let a = Analysis {
                records: RECORDS,
                unique_records: unique,
                logical_bytes: LOGICAL,
                unique_record_bytes: unique_bytes,
                record_dedup_ratio: dedup,
                fixed_4k: chunks.clone(),
                fastcdc_8k: chunks,
                zstd_bytes: (LOGICAL as f64 / zstd) as u64,
                zstd_unique_bytes: (unique_bytes as f64 / zstd) as u64,
                compression_ratio: zstd,
                ideal_ratio: dedup * zstd,
                across: {
                    // Across, the copies repeat their originals once more in a second container.
                    let across_bytes = if unique < RECORDS { (unique_bytes * 2).min(LOGICAL) } else { unique_bytes };
                    dedup_lab_datagen::ContainerStats {
                        unique_record_bytes: across_bytes,
                        zstd_unique_bytes: (across_bytes as f64 / zstd) as u64,
                        record_dedup_ratio: LOGICAL as f64 / across_bytes as f64,
                        ideal_ratio: LOGICAL as f64 / across_bytes as f64 * zstd,
                    }
                },
            };
            out.push((spec, a));
        }
    }
    out
}

/// Compares `actual` with the committed snapshot `tests/snapshots/<name>`; with
/// `UPDATE_SNAPSHOTS=1` writes it instead.
pub fn assert_snapshot(name: &str, actual: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        // Under the test command a snapshot is checked, never rewritten: a CI run with
        // UPDATE_SNAPSHOTS set would otherwise pass whatever the exporters print.
        assert!(
            std::env::var_os("DEDUP_LAB_REQUIRE_SERVERS").is_none_or(|v| v != "1"),
            "UPDATE_SNAPSHOTS=1 is refused under the test command (DEDUP_LAB_REQUIRE_SERVERS=1); \
             rewrite snapshots with a plain `UPDATE_SNAPSHOTS=1 cargo test -p dedup-lab-report`"
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("snapshot {} is missing ({e}); create it with UPDATE_SNAPSHOTS=1 cargo test", path.display())
    });
    if expected != actual {
        let (e, a) = (String::from_utf8_lossy(&expected), String::from_utf8_lossy(actual));
        let line =
            e.lines().zip(a.lines()).position(|(x, y)| x != y).unwrap_or(e.lines().count().min(a.lines().count()));
        panic!(
            "snapshot {} differs from line {}:\n  expected: {}\n  actual:   {}\n(review the change; accept it with UPDATE_SNAPSHOTS=1 cargo test)",
            path.display(),
            line + 1,
            e.lines().nth(line).unwrap_or("<end of file>"),
            a.lines().nth(line).unwrap_or("<end of file>")
        );
    }
}

/// Compiles the LaTeX tables (and, when pgfplots is installed, the chart) of `report` in a
/// wrapper document. Runs only where pdflatex is installed (Debian: texlive-latex-base,
/// texlive-latex-recommended; texlive-pictures for pgfplots); under the test command
/// (`DEDUP_LAB_REQUIRE_SERVERS=1`, which installs them) a missing one fails.
pub fn latex_compiles(report: &dedup_lab_report::Report) {
    use std::process::Command;
    let required = std::env::var("DEDUP_LAB_REQUIRE_SERVERS").is_ok_and(|v| v == "1");
    if Command::new("pdflatex").arg("--version").output().is_err() {
        assert!(
            !required,
            "DEDUP_LAB_REQUIRE_SERVERS=1 but pdflatex is missing: apt-get install texlive-latex-base \
             texlive-latex-recommended texlive-pictures"
        );
        eprintln!("skipped: pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = dedup_lab_report::Format::Latex.exporter().export(report);
    dedup_lab_report::write_artifacts(dir.path(), &files).unwrap();
    let pgfplots = Command::new("kpsewhich").arg("pgfplots.sty").output().is_ok_and(|o| o.status.success());
    assert!(
        pgfplots || !required,
        "DEDUP_LAB_REQUIRE_SERVERS=1 but pgfplots is missing: apt-get install texlive-pictures"
    );
    let mut doc = String::from("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n");
    if pgfplots {
        doc.push_str("\\usepackage{pgfplots}\n\\pgfplotsset{compat=1.16}\n");
    }
    doc.push_str("\\begin{document}\n");
    for f in files.iter().filter(|f| f.path.ends_with(".tex")) {
        if f.path.ends_with("edr_plot.tex") && !pgfplots {
            continue;
        }
        doc.push_str(&format!("\\input{{{}}}\n\\clearpage\n", f.path));
    }
    doc.push_str("\\end{document}\n");
    std::fs::write(dir.path().join("main.tex"), doc).unwrap();
    let out = Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "main.tex"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("main.log")).unwrap_or_default();
    assert!(out.status.success(), "pdflatex failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), log);
    assert!(dir.path().join("main.pdf").is_file());
    assert!(!log.contains("Missing character"), "a character the font lacks:\n{log}");
}
