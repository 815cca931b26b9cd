//! Stages a system does not support (journaled as `unsupported` by the engine, not run):
//! every exporter and the run summary show them as unsupported with the reason, no figure
//! includes them, and the cells they belong to stay ok. The fixture is the common one with
//! `perfile_delete` unsupported on lsm in every repetition, and `maintenance` unsupported
//! in one repetition of one sqlite cell. Snapshots: `tests/snapshots/unsupported/`.

use crate::common::*;
use dedup_lab_core::{Grade, JournalLine, Measurement, Stage, SystemKind};
use dedup_lab_report::{Format, Options, Report, Source, aggregate, summarize, summary_rows, summary_table};

const NO_DELETE: &str = "an append-only log cannot delete one record";
const NO_RECLAIM: &str = "no reclaim operation in this build";

/// The line the engine journals for a stage it did not run: rows 0, one physical reading.
fn unsupported(m: &Measurement, why: &str) -> Measurement {
    let mut u = m.clone();
    u.rows_sent = 0;
    u.rows_reported = None;
    u.rows_counted = None;
    u.logical_bytes = 0;
    u.physical.after = u.physical.before;
    u.physical.delta = 0;
    u.edr_replica = None;
    u.edr_cluster = None;
    u.edr_note = Some("undefined: the stage is unsupported".into());
    u.reclaimed_bytes = None;
    u.reclaimed_share = None;
    u.duration_ns = 0;
    u.mb_per_s = 0.0;
    u.ops_per_s = 0.0;
    u.latency = None;
    u.internal_after = u.internal_before.clone();
    u.readback_sampled = 0;
    u.readback_matched = 0;
    u.notes = vec![format!("unsupported: {why}")];
    u.valid = false;
    u.invalid_reasons = vec![];
    u.unsupported = Some(why.into());
    u
}

fn source_with_unsupported() -> Source {
    let mut s = source();
    for l in &mut s.lines {
        let JournalLine::Stage(m) = l else { continue };
        let k = &m.cell;
        if k.system == SystemKind::Lsm && m.stage == Stage::PerfileDelete {
            **m = unsupported(m, NO_DELETE);
        } else if k.system == SystemKind::Sqlite
            && k.payload == "random_binary"
            && k.grade == Grade::U0
            && k.run == 1
            && m.stage == Stage::Maintenance
        {
            **m = unsupported(m, NO_RECLAIM);
        }
    }
    s
}

fn report() -> Report {
    aggregate(&[source_with_unsupported()], &intrinsic(42), &Options::default()).unwrap()
}

fn group<'a>(r: &'a Report, system: &str, payload: &str, grade: Grade) -> &'a dedup_lab_report::model::Group {
    r.groups.iter().find(|g| g.key.system == system && g.key.payload == payload && g.key.grade == grade).unwrap()
}

#[test]
fn every_exporter_matches_its_snapshot_and_shows_the_unsupported_stages() {
    let r = report();
    for f in Format::ALL {
        let files = f.exporter().export(&r);
        assert_eq!(files, f.exporter().export(&r), "{f} is deterministic");
        let all: String = files.iter().map(|a| String::from_utf8_lossy(&a.bytes).into_owned()).collect();
        assert!(all.contains("unsupported"), "{f} shows unsupported stages");
        // Every format has room for the reason somewhere.
        assert!(all.contains(NO_DELETE) && all.contains(NO_RECLAIM), "{f} gives the reasons");
        for a in files {
            assert_snapshot(&format!("unsupported/{}", a.path), &a.bytes);
        }
    }
}

#[test]
fn unsupported_stages_make_no_cell_invalid_and_enter_no_figure() {
    let base = aggregate(&[source()], &intrinsic(42), &Options::default()).unwrap();
    let r = report();
    assert_eq!(r.totals, base.totals, "no repetition changed status");
    assert_eq!(r.problem_cells.len(), base.problem_cells.len());

    // lsm never ran perfile_delete: the stage has no figures, only its reason.
    let g = group(&r, "lsm", "random_binary", Grade::U90);
    assert_eq!(g.status, "ok");
    let del = g.stage(Stage::PerfileDelete).unwrap();
    assert_eq!((del.n, del.unsupported_runs), (0, 3));
    assert!(del.metrics.is_empty() && del.samples.is_empty() && del.outliers.is_empty() && del.undefined.is_empty());
    assert_eq!(del.unsupported, [NO_DELETE]);
    assert_eq!(g.unsupported(Stage::PerfileDelete).as_deref(), Some(NO_DELETE));
    assert_eq!(g.unsupported(Stage::Maintenance), None);

    // sqlite random_binary U0 ran maintenance in repetitions 2 and 3 only: the figures are
    // theirs alone (run r starts maintenance at 8192 + 524288 + 4096·r bytes).
    let g = group(&r, "sqlite", "random_binary", Grade::U0);
    assert_eq!(g.status, "ok");
    let m = g.stage(Stage::Maintenance).unwrap();
    assert_eq!((m.n, m.unsupported_runs), (2, 1));
    assert_eq!(m.samples.iter().map(|s| s.run).collect::<Vec<_>>(), [2, 3]);
    let before = m.metrics.get("physical_before").unwrap();
    assert_eq!((before.n, before.mean), (2, 8192.0 + 524_288.0 + 4096.0 * 2.5));
    let duration = m.metrics.get("duration_s").unwrap();
    assert_eq!(duration.min, 0.034, "the unsupported repetition's zero duration is not a sample");
    // A stage with figures is not shown as unsupported, but its reason is kept.
    assert_eq!(g.unsupported(Stage::Maintenance), None);
    assert_eq!(m.unsupported, [NO_RECLAIM]);
}

#[test]
fn the_run_summary_shows_unsupported_stages_with_their_reasons() {
    let lines = source_with_unsupported().lines;
    let rows = summarize(&lines);
    let lsm = rows.iter().find(|r| r.system == "lsm" && r.payload == "random_binary" && r.grade == "U90");
    let lsm = lsm.expect("an lsm row");
    assert_eq!(lsm.status, "ok");
    assert_eq!(lsm.delete_reclaimed, None);
    assert_eq!(lsm.unsupported.get(&Stage::PerfileDelete).map(String::as_str), Some(NO_DELETE));
    let table = summary_table(&rows, &Default::default());
    let line =
        table.lines().find(|l| l.starts_with("lsm ") && l.contains(" random_binary ") && l.contains(" U90 ")).unwrap();
    assert!(line.contains(" unsupported "), "{line}");
    assert!(table.contains(&format!("  lsm perfile_delete: {NO_DELETE}\n")), "{table}");
    assert!(table.contains(&format!("  sqlite maintenance: {NO_RECLAIM}\n")), "{table}");
    // The sqlite row still has a maintenance figure from its other repetitions.
    let sqlite = rows.iter().find(|r| r.system == "sqlite" && r.payload == "random_binary" && r.grade == "U0");
    assert!(sqlite.unwrap().maintenance_reclaimed.is_some());
    // Columns stay aligned: every row of the table is as wide up to the status column.
    let widths: Vec<usize> = table.lines().take(1 + rows.len()).map(|l| l.rfind("  ").unwrap()).collect();
    assert!(widths.windows(2).all(|w| w[0] == w[1]), "{table}");

    // The same from an aggregated report (`dedup-lab report`).
    let from_report = summary_table(&summary_rows(&report()), &Default::default());
    assert!(from_report.contains(" unsupported ") && from_report.contains(NO_DELETE), "{from_report}");
}

#[test]
fn the_latex_export_with_unsupported_stages_compiles() {
    latex_compiles(&report());
}
