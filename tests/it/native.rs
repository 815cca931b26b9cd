//! End-to-end tests of the insertion-mode axis: `dedup-lab run --insertion-mode both` on
//! the embedded backends and on the real PostgreSQL test server (skipped without
//! `DEDUP_PG_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`).

use crate::support::{journal, ok, run, run_dir, stages};
use dedup_lab_core::{CellStatus, InsertionMode, JournalLine, Measurement, Stage};
use std::collections::BTreeMap;
use std::path::Path;

const TYPES: &str = "random_binary,structured_json,text_document,uuid_keys,jsonb_documents";

/// Checks a finished `--insertion-mode both` run of `systems`: every cell valid, native
/// cells count native records, both modes measured side by side.
fn check_both_modes(results: &Path, systems: &[&str], stdout: &str, records: u64) {
    let lines = journal(results);
    for l in &lines {
        if let JournalLine::Cell { cell, status, reason, .. } = l {
            assert_eq!(*status, CellStatus::Ok, "{cell}: {reason:?}");
        }
    }
    let ms = stages(&lines);
    // (system, payload, mode) → bulk_insert measurement
    let mut bulk: BTreeMap<(String, String, InsertionMode), &Measurement> = BTreeMap::new();
    for m in &ms {
        assert!(m.valid, "{} {}: {:?}", m.cell, m.stage, m.invalid_reasons);
        if m.stage == Stage::BulkInsert {
            bulk.insert((m.cell.system_label(), m.cell.payload.clone(), m.cell.mode), m);
        }
        if m.cell.mode == InsertionMode::Native && m.stage.is_insert() {
            let notes = m.notes.join(" | ");
            assert!(notes.contains("native: ") && notes.contains("canonical encodings"), "{notes}");
            let storage = match m.cell.system.to_string().as_str() {
                "sqlite" => "native storage: one typed STRICT table per container (k TEXT PRIMARY KEY",
                "postgresql" => "native storage: one typed table per container (k text PRIMARY KEY",
                "lsm" => "native storage: one key per record",
                _ => "native storage: one file per record",
            };
            assert!(notes.contains(storage), "{notes}");
            assert!(m.readback_sampled >= 2 && m.readback_matched == m.readback_sampled, "{}", m.cell);
        }
    }
    for sys in systems {
        for payload in TYPES.split(',') {
            let blob = bulk[&(sys.to_string(), payload.to_string(), InsertionMode::Blob)];
            let native = bulk[&(sys.to_string(), payload.to_string(), InsertionMode::Native)];
            assert_eq!(blob.rows_sent, records, "{sys} {payload}: one blob per file");
            assert_eq!(native.rows_counted, Some(native.rows_sent), "{sys} {payload}");
            match payload {
                // One document per file.
                "jsonb_documents" => assert_eq!(native.rows_sent, records),
                // Many records per file.
                _ => assert!(native.rows_sent > 2 * records, "{sys} {payload}: {} records", native.rows_sent),
            }
            // Native logical bytes are the encodings: no padding, separators or newlines.
            assert!(native.logical_bytes <= blob.logical_bytes, "{sys} {payload}");
            if payload == "random_binary" {
                assert_eq!(native.logical_bytes, blob.logical_bytes, "4 KiB chunks of the same bytes");
            }
            assert!(native.physical.delta > 0 && blob.physical.delta > 0, "{sys} {payload}: both sizes measured");
            assert!(native.edr_replica.is_some() && blob.edr_replica.is_some());
        }
    }
    // The summary shows the mode of every row.
    assert!(stdout.contains(" mode "), "{stdout}");
    for sys in systems {
        for mode in ["blob", "native"] {
            let row = stdout
                .lines()
                .find(|l| l.starts_with(sys) && l.contains("uuid_keys") && l.contains(&format!(" {mode} ")));
            assert!(row.is_some_and(|r| r.ends_with("ok")), "{sys} {mode}: {stdout}");
        }
    }
}

#[test]
fn both_modes_on_the_embedded_backends() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    let systems = ["sqlite", "lsm", "files"];
    let out = ok(&[
        "run",
        "--results",
        results.to_str().unwrap(),
        "--systems",
        "sqlite,lsm,files",
        "--insertion-mode",
        "both",
        "--payload-types",
        TYPES,
        "--grades",
        "U50",
        "--records",
        "4",
        "--record-size",
        "12KiB",
        "--stages",
        "bulk_insert,perfile_insert,perfile_delete,maintenance,refill",
    ]);
    check_both_modes(&results, &systems, &out, 4);
    let lines = journal(&results);
    let ms = stages(&lines);
    // Per-record stages in native mode operate per native record, refill included.
    for m in ms.iter().filter(|m| m.cell.mode == InsertionMode::Native && m.cell.payload == "uuid_keys") {
        let insert =
            ms.iter().find(|x| x.cell == m.cell && x.stage == Stage::PerfileInsert).expect("perfile_insert measured");
        match m.stage {
            Stage::PerfileDelete => {
                assert_eq!(m.rows_sent, insert.rows_sent);
                assert_eq!(m.rows_counted, Some(0));
                assert_eq!(m.latency.as_ref().unwrap().count, insert.rows_sent);
            }
            Stage::Refill => assert_eq!(m.rows_counted, Some(insert.rows_sent)),
            _ => {}
        }
    }
}

#[test]
fn native_records_are_one_object_each_in_the_files_store() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    ok(&[
        "run",
        "--results",
        results.to_str().unwrap(),
        "--systems",
        "files",
        "--insertion-mode",
        "native",
        "--payload-types",
        "uuid_keys",
        "--grades",
        "U50",
        "--records",
        "4",
        "--record-size",
        "1KiB",
        "--placements",
        "across",
        "--stages",
        "bulk_insert",
        "--keep",
    ]);
    let ns = run_dir(&results).join("lab/files/dedup_lab");
    let list = |c: &str| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(ns.join(c))
            .unwrap()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect()
    };
    let (c0, c1) = (list("c0"), list("c1"));
    // U50 of 4: two originals (c0), two copies (c1); each file holds 1 KiB of
    // `<uuid>,<value>` lines (about 24), one object per line.
    assert!(c0.len() > 40 && c1.len() > 40, "{} {}", c0.len(), c1.len());
    for (k, v) in c0.iter().chain(&c1) {
        assert!(k.len() == 16 && k.starts_with('r') && k.as_bytes()[9] == b'n', "{k}");
        let line = std::str::from_utf8(v).unwrap();
        assert!(line.len() > 37 && line.as_bytes()[36] == b',' && !line.contains(['\n', ' ']), "{line:?}");
    }
    // A duplicated file yields the same records: every copy's values are among the originals'.
    let originals: std::collections::BTreeSet<&Vec<u8>> = c0.values().collect();
    assert!(c1.values().all(|v| originals.contains(v)));
    let m = stages(&journal(&results))[0].clone();
    assert_eq!(m.rows_sent, (c0.len() + c1.len()) as u64);
    assert_eq!(m.logical_bytes, c0.values().chain(c1.values()).map(|v| v.len() as u64).sum::<u64>());
}

#[test]
fn insertion_modes_come_from_the_flag_or_the_config_and_are_validated() {
    let plan = ok(&["run", "--dry-run", "--systems", "sqlite", "--insertion-mode", "both", "--grades", "U0"]);
    assert!(plan.contains("plan: 10 cells") && plan.contains("insertion modes: blob,native"), "{plan}");
    assert!(plan.contains("on_parse_error = fail"), "{plan}");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[matrix]\ninsertion_modes = [\"native\"]\non_parse_error = \"skip\"\n").unwrap();
    let c = cfg.to_str().unwrap();
    let plan = ok(&["run", "--dry-run", "--config", c, "--systems", "sqlite", "--grades", "U0"]);
    assert!(plan.contains("plan: 5 cells") && plan.contains("insertion modes: native"), "{plan}");
    assert!(plan.contains("on_parse_error = skip"), "{plan}");
    let plan = ok(&["run", "--dry-run", "--config", c, "--systems", "sqlite", "--insertion-mode", "blob"]);
    assert!(plan.contains("insertion modes: blob") && !plan.contains("on_parse_error"), "the flag wins: {plan}");
    for (args, want) in [
        (vec!["--insertion-mode", "typed"], "invalid insertion mode \"typed\": valid values: blob, native, both"),
        (vec!["--on-parse-error", "ignore"], "invalid on_parse_error \"ignore\": valid values: fail, skip"),
    ] {
        let mut a = vec!["run", "--dry-run", "--systems", "sqlite"];
        a.extend(args);
        let out = run(&a);
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn both_modes_on_postgresql() {
    let Some(_) = crate::support::server_env(
        "postgresql",
        &["DEDUP_PG_HOST", "DEDUP_PG_PORT", "DEDUP_PG_USER", "DEDUP_PG_PASSWORD"],
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    // Its own lab name: other tests may use the server at the same time.
    std::fs::write(&cfg, "lab = \"dedup_t_native_cli\"\n[systems.postgresql]\nvariants = [\"extended\"]\n").unwrap();
    let results = tmp.path().join("r");
    let out = ok(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--systems",
        "postgresql",
        "--insertion-mode",
        "both",
        "--payload-types",
        TYPES,
        "--grades",
        "U50",
        "--records",
        "4",
        "--record-size",
        "12KiB",
    ]);
    check_both_modes(&results, &["postgresql/extended"], &out, 4);
}

#[test]
fn records_too_small_for_one_line_are_stored_natively_too() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    ok(&[
        "run",
        "--results",
        results.to_str().unwrap(),
        "--systems",
        "sqlite",
        "--insertion-mode",
        "native",
        "--payload-types",
        "structured_json,jsonb_documents",
        "--grades",
        "U50",
        "--records",
        "12",
        "--record-size",
        "64..600",
    ]);
    let lines = journal(&results);
    for m in stages(&lines) {
        assert!(m.valid, "{} {}: {:?}", m.cell, m.stage, m.invalid_reasons);
        if m.stage == Stage::BulkInsert && m.cell.payload == "structured_json" {
            assert!(m.notes.iter().any(|n| n.contains("token text")), "{:?}", m.notes);
        }
    }
}
