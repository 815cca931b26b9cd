//! The compatibility export `experiment_results.csv`: the original harness's 25 columns in
//! its order, one row per stage execution. The fixture (built here, from the common
//! helpers) has a normal cell, a bulk load with an undefined EDR, a stage the system does
//! not support, a failed cell whose error needs CSV quoting, an invalid stage in a cell of
//! non-default axes and a skipped cell. Snapshot: `tests/snapshots/compat/`.

use crate::common::*;
use dedup_lab_core::{CellStatus, Grade, InsertionMode, JournalLine, Placement, Stage, SystemKind};
use dedup_lab_report::export::compat;
use dedup_lab_report::{Format, Options, Report, Source, aggregate};

/// The header, as the original harness wrote it (typed out, not taken from the code).
const ORIGINAL_HEADER: &str = "system,payload_type,dup_grade,insertion_mode,stage,duration_ms,rows_affected,\
bytes_logical,logical_size_before,logical_size_after,phys_size_before,phys_size_after,phys_delta,edr,\
throughput_mbps,latency_p50_us,latency_p95_us,latency_p99_us,latency_min_us,latency_max_us,latency_mean_us,\
replica_count,volume_name,timestamp,error";

const NO_DELETE: &str = "an append-only log cannot delete one record";
const FAILURE: &str = "perfile_insert: backend error: table \"lab_0\" is full, 0 bytes left";

fn line(m: dedup_lab_core::Measurement) -> JournalLine {
    JournalLine::Stage(Box::new(m))
}

fn fixture() -> Source {
    let mut lines = Vec::new();

    // A: every stage ran and is valid; the system reports no total after maintenance.
    let a = key(SystemKind::Sqlite, "random_binary", Grade::U0, 1);
    for s in Stage::DEFAULT {
        let mut m = stage(&a, s);
        if s == Stage::Maintenance {
            m.internal_after.total_bytes = None;
            m.rows_reported = None;
        }
        lines.push(line(m));
    }
    lines.push(end(&a, CellStatus::Ok, None));

    // B: the bulk load left the files as they were (EDR undefined); no per-record delete.
    let b = key(SystemKind::Lsm, "text_document", Grade::U90, 1);
    for s in Stage::DEFAULT {
        let mut m = stage(&b, s);
        if s == Stage::BulkInsert {
            m.physical.after = m.physical.before;
            m.physical.delta = 0;
            (m.edr_replica, m.edr_cluster, m.edr_note) = dedup_lab_core::Measurement::edr(m.logical_bytes, 0, 1);
        }
        if s == Stage::PerfileDelete {
            m.rows_sent = 0;
            m.rows_reported = None;
            m.physical.after = m.physical.before;
            m.physical.delta = 0;
            m.duration_ns = 0;
            m.mb_per_s = 0.0;
            m.latency = None;
            m.valid = false;
            m.unsupported = Some(NO_DELETE.into());
        }
        lines.push(line(m));
    }
    lines.push(end(&b, CellStatus::Ok, None));

    // C: failed in perfile_insert, which journaled nothing; the error needs quoting.
    let c = key(SystemKind::Lsm, "random_binary", Grade::U0, 1);
    lines.push(line(stage(&c, Stage::BulkInsert)));
    lines.push(end(&c, CellStatus::Failed, Some(FAILURE)));

    // D: native records placed across containers; perfile_insert counted a row short.
    let mut d = key(SystemKind::Sqlite, "text_document", Grade::U90, 1);
    d.mode = InsertionMode::Native;
    d.placement = Placement::Across;
    for s in Stage::DEFAULT {
        let mut m = stage(&d, s);
        if s == Stage::PerfileInsert {
            m.rows_counted = Some(7);
            m.valid = false;
            m.invalid_reasons = vec!["rows counted 7 ≠ 8 sent".into()];
        }
        lines.push(line(m));
    }
    lines.push(end(&d, CellStatus::Invalid, Some("perfile_insert: rows counted 7 ≠ 8 sent")));

    // E: skipped before it started (nothing was executed: no row).
    let e = key(SystemKind::Sqlite, "text_document", Grade::U0, 1);
    lines.push(end(&e, CellStatus::Skipped, Some("over the byte budget")));

    Source {
        path: "results/20260102-030405-000-cmp".into(),
        info: run_info("20260102-030405-000-cmp", "0.1.0", 42, "finished"),
        lines,
        warnings: vec![],
    }
}

fn report_of(sources: &[Source], opts: &Options) -> Report {
    aggregate(sources, &intrinsic(42), opts).unwrap()
}

fn export(r: &Report) -> String {
    let files = Format::Compat.exporter().export(r);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, "experiment_results.csv");
    String::from_utf8(files[0].bytes.clone()).unwrap()
}

/// The fields of a CSV text (RFC 4180: quoted fields may hold commas, quotes and newlines).
fn parse(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut f) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                f.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => f.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut f)),
            (false, '\n') => {
                row.push(std::mem::take(&mut f));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => f.push(c),
        }
    }
    assert!(f.is_empty() && row.is_empty() && !quoted, "the text ends with a line end");
    rows
}

#[test]
fn header_is_exactly_the_originals_25_columns() {
    assert_eq!(compat::HEADER.len(), 25);
    assert_eq!(compat::HEADER.join(","), ORIGINAL_HEADER);
    let text = export(&report_of(&[fixture()], &Options::default()));
    assert_eq!(text.lines().next(), Some(ORIGINAL_HEADER));
    // Also with no execution at all.
    let empty = Source { lines: vec![], ..fixture() };
    assert_eq!(export(&report_of(&[empty], &Options::default())), format!("{ORIGINAL_HEADER}\n"));
}

#[test]
fn one_row_per_stage_execution_matches_the_snapshot() {
    let r = report_of(&[fixture()], &Options::default());
    let text = export(&r);
    assert_snapshot("compat/experiment_results.csv", text.as_bytes());
    let rows = parse(&text);
    assert!(rows.iter().all(|r| r.len() == 25), "every row has the 25 fields");
    let col = |name: &str| compat::HEADER.iter().position(|h| *h == name).unwrap();
    let find = |system: &str, stage: &str| {
        rows.iter().find(|r| r[col("system")] == system && r[col("stage")] == stage).unwrap_or_else(|| {
            panic!("no row {system} {stage}:\n{text}");
        })
    };
    // A 4 + B 4 + C 1 + the failure + D 4; the skipped cell E ran nothing.
    assert_eq!(rows.len(), 1 + 4 + 4 + 2 + 4);
    assert!(!text.contains("byte budget"));

    // A normal bulk load: 8 × 64 KiB in 110 ms, growth 528384 B (EDR 524288 / 528384).
    let bulk = find("sqlite", "bulk_insert");
    assert_eq!(&bulk[..5], ["sqlite", "random_binary", "U0", "bulk", "bulk_insert"]);
    assert_eq!(bulk[col("duration_ms")], "110");
    assert_eq!(bulk[col("rows_affected")], "8");
    assert_eq!(bulk[col("bytes_logical")], "524288");
    assert_eq!(bulk[col("phys_delta")], "528384");
    assert_eq!(bulk[col("edr")], (524_288.0f64 / 528_384.0).to_string());
    assert_eq!(bulk[col("latency_p50_us")], "", "no per-record latency in a bulk load");
    assert_eq!((bulk[col("volume_name")].as_str(), bulk[col("error")].as_str()), ("fs", ""));
    // Per-record latency in microseconds: p50 1.01 ms, mean 1.2 × p50.
    let ins = find("sqlite", "perfile_insert");
    assert_eq!(ins[col("insertion_mode")], "perfile");
    assert_eq!(ins[col("latency_p50_us")], "1010");
    assert_eq!(ins[col("latency_mean_us")], "1212");
    assert_eq!(ins[col("latency_min_us")], "505");
    // Maintenance: no EDR, rows from what was sent, no total reported after it.
    let maint = find("sqlite", "maintenance");
    assert_eq!(maint[col("insertion_mode")], "perfile");
    assert_eq!((maint[col("edr")].as_str(), maint[col("rows_affected")].as_str()), ("", "0"));
    assert_eq!(maint[col("logical_size_after")], "");
    assert_eq!(maint[col("phys_delta")], "-524288");

    // Undefined EDR is empty, never -1 or 0.
    let undefined = find("lsm", "bulk_insert");
    assert_eq!(undefined[col("payload_type")], "text_document");
    assert_eq!((undefined[col("phys_delta")].as_str(), undefined[col("edr")].as_str()), ("0", ""));

    // An unsupported stage: a row with the reason and no figures.
    let unsupported = find("lsm", "perfile_delete");
    assert_eq!(unsupported[col("error")], format!("unsupported: {NO_DELETE}"));
    assert!(unsupported[col("duration_ms")..=col("latency_mean_us")].iter().all(String::is_empty));
    assert_eq!(unsupported[col("replica_count")], "1");

    // The failed cell: its bulk load, then a row for perfile_insert with the error, quoted.
    let failed = rows.iter().find(|r| r[col("error")] == FAILURE).expect("the failure row");
    assert_eq!(&failed[..5], ["lsm", "random_binary", "U0", "perfile", "perfile_insert"]);
    assert!(failed[col("duration_ms")..=col("volume_name")].iter().all(String::is_empty));
    assert_eq!(failed[col("timestamp")], "2026-01-02T03:04:07.000Z");
    assert!(text.contains(",\"perfile_insert: backend error: table \"\"lab_0\"\" is full, 0 bytes left\"\n"), "{text}");

    // Axes the original never varied are named with the system; an invalid stage has its reason.
    let invalid = find("sqlite [across/warm/native]", "perfile_insert");
    assert_eq!(invalid[col("error")], "rows counted 7 ≠ 8 sent");
    assert_eq!(find("sqlite [across/warm/native]", "bulk_insert")[col("error")], "");
}

#[test]
fn the_last_line_of_a_stage_counts_and_a_run_given_twice_counts_once() {
    let mut s = fixture();
    let JournalLine::Stage(first) = s.lines[0].clone() else { panic!("a stage line") };
    let mut again = first.clone();
    again.duration_ns = 90_000_000;
    s.lines.insert(4, JournalLine::Stage(again));
    let r = report_of(&[s.clone(), s], &Options::default());
    let rows = parse(&export(&r));
    let bulk: Vec<_> = rows.iter().filter(|r| r[0] == "sqlite" && r[4] == "bulk_insert").collect();
    assert_eq!(bulk.len(), 1, "{bulk:?}");
    assert_eq!(bulk[0][5], "90");
    assert_eq!(rows.len(), 1 + 4 + 4 + 2 + 4);
}

#[test]
fn merged_runs_on_different_datasets_name_their_dataset() {
    let mut other = fixture();
    other.info = run_info("20260103-030405-000-cmp", "0.1.0", 7, "finished");
    let r = report_of(&[fixture(), other], &Options { allow_mixed: true, ..Options::default() });
    let rows = parse(&export(&r));
    let systems: std::collections::BTreeSet<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert!(systems.contains("sqlite [8 × 64.0 KiB, seed 42]"), "{systems:?}");
    assert!(systems.contains("sqlite [8 × 64.0 KiB, seed 7]"), "{systems:?}");
    assert!(systems.contains("sqlite [across/warm/native; 8 × 64.0 KiB, seed 7]"), "{systems:?}");
    assert_eq!(rows.len(), 1 + 2 * 14);
}

#[test]
fn the_json_export_does_not_carry_the_executions() {
    let r = report_of(&[fixture()], &Options::default());
    assert!(!r.executions.is_empty());
    let json = String::from_utf8(Format::Json.exporter().export(&r).remove(0).bytes).unwrap();
    assert!(!json.contains("\"executions\""), "the JSON export is unchanged");
}
