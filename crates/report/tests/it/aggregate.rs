//! Statistics and merging, checked against values computed by hand.

use crate::common::*;
use dedup_lab_core::{Grade, Stage};
use dedup_lab_report::model::WarningKind;
use dedup_lab_report::stats::{Stats, t_quantile};
use dedup_lab_report::{Options, aggregate};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn group<'a>(
    r: &'a dedup_lab_report::Report,
    system: &str,
    payload: &str,
    grade: Grade,
) -> &'a dedup_lab_report::model::Group {
    r.groups
        .iter()
        .find(|g| g.key.system == system && g.key.payload == payload && g.key.grade == grade)
        .unwrap_or_else(|| panic!("no group {system} {payload} {grade}"))
}

#[test]
fn known_t_quantiles() {
    for (df, want) in [(1.0, 12.706), (2.0, 4.303), (4.0, 2.776), (10.0, 2.228), (30.0, 2.042)] {
        let t = t_quantile(0.975, df);
        assert!(close(t, want, 5e-4), "t(0.975, {df}) = {t}, published {want}");
    }
}

#[test]
fn confidence_interval_computed_by_hand() {
    let r = aggregate(&[source()], &intrinsic(42), &Options::default()).unwrap();
    // sqlite random_binary U0 bulk_insert: physical delta = 524288 + 4096·run for runs 1..3
    // = 528384, 532480, 536576 → mean 532480, sd 4096,
    // half-width = t(0.975, 2) · 4096 / √3 = 4.3026527 · 2364.8267 = 10175.028.
    let g = group(&r, "sqlite", "random_binary", Grade::U0);
    let s = g.stat(Stage::BulkInsert, "physical_delta").unwrap();
    assert_eq!(s.n, 3);
    assert_eq!(s.mean, 532_480.0);
    assert!(close(s.sd.unwrap(), 4096.0, 1e-9));
    assert!(close(s.ci_half.unwrap(), 10_175.028, 0.001), "{:?}", s.ci_half);
    assert!(close(s.ci_low.unwrap(), 522_304.972, 0.001));
    assert_eq!((s.min, s.max), (528_384.0, 536_576.0));
    assert!(close(s.cv.unwrap(), 4096.0 / 532_480.0, 1e-12));
    // EDR is averaged per repetition (mean of ratios): 524288/528384, /532480, /536576.
    let e = g.stat(Stage::BulkInsert, "edr_replica").unwrap();
    let want = [528_384.0, 532_480.0, 536_576.0].iter().map(|d| 524_288.0 / d).sum::<f64>() / 3.0;
    assert!(close(e.mean, want, 1e-12));
    assert_eq!(g.ideal, Some(1.0));
    // The same numbers straight from Stats.
    assert_eq!(Stats::of(&[528_384.0, 532_480.0, 536_576.0], 0.95).unwrap(), s.clone());
}

#[test]
fn invalid_failed_and_unfinished_repetitions_are_listed_never_averaged() {
    let r = aggregate(&[source()], &intrinsic(42), &Options::default()).unwrap();
    assert_eq!(r.totals.planned, 24);
    assert_eq!((r.totals.ok, r.totals.invalid, r.totals.failed, r.totals.unfinished), (21, 1, 1, 1));
    assert_eq!(r.totals.not_started, 0);

    let inv = group(&r, "sqlite", "text_document", Grade::U90);
    assert_eq!((inv.runs, inv.valid_runs, inv.status.as_str()), (3, 2, "2 of 3 ok"));
    // Only runs 1 and 3 are averaged: 524288 + 4096 and + 3·4096.
    let s = inv.stat(Stage::PerfileInsert, "physical_delta").unwrap();
    assert_eq!((s.n, s.mean), (2, 524_288.0 + 8192.0));
    assert!(inv.stage(Stage::PerfileInsert).unwrap().samples.iter().all(|x| x.run != 2));

    let failed = group(&r, "lsm", "random_binary", Grade::U0);
    assert_eq!(failed.valid_runs, 2);
    assert_eq!(failed.stat(Stage::BulkInsert, "edr_replica").unwrap().n, 2);

    let statuses: Vec<(String, u32, String)> = r
        .problem_cells
        .iter()
        .map(|c| (format!("{} {} {}", c.system, c.payload, c.grade), c.run, c.status.clone()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("lsm random_binary U0".to_string(), 3, "failed".to_string()),
            ("lsm text_document U90".to_string(), 3, "unfinished".to_string()),
            ("sqlite text_document U90".to_string(), 2, "invalid".to_string()),
        ]
    );
    assert!(r.problem_cells[0].reason.contains("disk full"));
    assert!(r.problem_cells[1].reason.contains("stopped after bulk_insert"));
    assert!(r.problem_cells[2].reason.contains("rows counted 7 ≠ 8 sent"));
}

#[test]
fn three_runs_of_ordinary_noise_flag_nothing() {
    // The fixture's lsm text U0 bulk load is ten times as fast in run 3 of 3. With three
    // values the median/MAD rule cannot tell which one is off (the MAD is the smaller of two
    // deviations), so nothing is flagged below five repetitions, and every value is kept.
    let r = aggregate(&[source()], &intrinsic(42), &Options::default()).unwrap();
    assert!(r.groups.iter().flat_map(|g| &g.stages).all(|s| s.outliers.is_empty()), "nothing flagged with 3 runs");
    assert!(!r.warnings.iter().any(|w| w.kind == WarningKind::Outlier));
    let st = group(&r, "lsm", "text_document", Grade::U0).stage(Stage::BulkInsert).unwrap();
    let mbs = st.metrics.get("mb_per_s").unwrap();
    assert_eq!(mbs.n, 3);
    let want = (LOGICAL as f64 / 1e6) * (1.0 / 0.11 + 1.0 / 0.12 + 1.0 / 0.013) / 3.0;
    assert!(close(mbs.mean, want, 1e-9), "{} vs {want}", mbs.mean);
}

#[test]
fn a_genuine_outlier_among_six_runs_is_flagged_and_kept() {
    use dedup_lab_core::{CellStatus, JournalLine, SystemKind};
    let mut src = source();
    src.lines.clear();
    for run in 1..=6 {
        let k = key(SystemKind::Sqlite, "random_binary", Grade::U0, run);
        for s in Stage::DEFAULT {
            let mut m = stage(&k, s);
            if run == 6 && s == Stage::BulkInsert {
                // Ten times as fast as the five others, which differ by 10 % between them.
                m.duration_ns /= 10;
                m.mb_per_s *= 10.0;
                m.ops_per_s *= 10.0;
            }
            src.lines.push(JournalLine::Stage(Box::new(m)));
        }
        src.lines.push(end(&k, CellStatus::Ok, None));
    }
    let r = aggregate(&[src], &intrinsic(42), &Options::default()).unwrap();
    let st = group(&r, "sqlite", "random_binary", Grade::U0).stage(Stage::BulkInsert).unwrap();
    let flagged: Vec<(&str, u32)> = st.outliers.iter().map(|o| (o.metric.as_str(), o.run)).collect();
    assert_eq!(flagged, vec![("mb_per_s", 6), ("ops_per_s", 6)]);
    assert_eq!(st.metrics.get("mb_per_s").unwrap().n, 6, "the outlier is kept in the figures");
    let msgs: Vec<&str> =
        r.warnings.iter().filter(|w| w.kind == WarningKind::Outlier).map(|w| w.message.as_str()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs[0].contains("mb_per_s of run 20260102-030405-000-fix #6") && msgs[0].contains("kept in the figures"));
    // Only that stage: the other stages' values grow steadily with the repetition.
    assert_eq!(r.groups.iter().flat_map(|g| &g.stages).filter(|s| !s.outliers.is_empty()).count(), 1);
}

#[test]
fn loading_warnings_and_secrets() {
    let r = aggregate(&[source()], &intrinsic(42), &Options::default()).unwrap();
    assert!(
        r.warnings.iter().any(|w| w.kind == WarningKind::Journal && w.message.contains("line 118 is half-written"))
    );
    assert!(r.warnings.iter().any(|w| w.message.contains("incomplete: 23 of 24 cells finished")));
    let cfg = r.sources[0].config.to_string();
    assert!(!cfg.contains("s3cr3t"), "{cfg}");
    assert!(cfg.contains("\"token\":\"***\"") && cfg.contains("DEDUP_SQLITE_PASSWORD"));
}

#[test]
fn shards_of_one_spec_merge_into_the_same_cells() {
    let mut b = source();
    b.info.run_id = "20260102-030405-000-two".into();
    b.info.host = "other-host".into();
    b.warnings.clear();
    let r = aggregate(&[source(), b], &intrinsic(42), &Options::default()).unwrap();
    let g = group(&r, "sqlite", "random_binary", Grade::U0);
    assert_eq!((g.runs, g.valid_runs), (6, 6));
    assert_eq!(g.stat(Stage::BulkInsert, "physical_delta").unwrap().n, 6);
    assert_eq!(r.totals.planned, 48);
}

#[test]
fn the_same_run_twice_counts_once() {
    let r = aggregate(&[source(), source()], &intrinsic(42), &Options::default()).unwrap();
    assert_eq!(r.sources.len(), 1);
    assert_eq!(group(&r, "sqlite", "random_binary", Grade::U0).runs, 3);
    assert!(r.warnings.iter().any(|w| w.kind == WarningKind::Duplicate));
}

#[test]
fn different_datasets_are_refused_or_kept_apart() {
    let mut b = source();
    b.info = run_info("20260102-030405-000-sd7", "0.1.0", 7, "finished");
    let err = aggregate(&[source(), b.clone()], &intrinsic(42), &Options::default()).unwrap_err();
    assert!(err.0.contains("random_binary U0 was measured on different datasets"), "{err}");
    assert!(err.0.contains("seed 42") && err.0.contains("seed 7") && err.0.contains("--allow-mixed"), "{err}");

    let r = aggregate(&[source(), b], &intrinsic(42), &Options { allow_mixed: true, ..Options::default() }).unwrap();
    assert!(r.mixed_datasets);
    let apart: Vec<_> = r
        .groups
        .iter()
        .filter(|g| g.key.system == "sqlite" && g.key.payload == "random_binary" && g.key.grade == Grade::U0)
        .collect();
    assert_eq!(apart.len(), 2, "one group per dataset, never averaged together");
    assert!(apart.iter().all(|g| g.runs == 3));
    assert!(r.warnings.iter().any(|w| w.kind == WarningKind::Mixed && w.message.contains("kept apart")));
}

#[test]
fn different_tool_versions_are_refused_or_flagged() {
    let mut b = source();
    b.info.run_id = "20260102-030405-000-new".into();
    b.info.tool_version = "0.2.0".into();
    let err = aggregate(&[source(), b.clone()], &intrinsic(42), &Options::default()).unwrap_err();
    assert!(err.0.contains("different dedup-lab versions: 0.1.0 (20260102-030405-000-fix); 0.2.0"), "{err}");
    let r = aggregate(&[source(), b], &intrinsic(42), &Options { allow_mixed: true, ..Options::default() }).unwrap();
    assert!(r.warnings.iter().any(|w| w.kind == WarningKind::Mixed && w.message.contains("0.2.0")));
}
