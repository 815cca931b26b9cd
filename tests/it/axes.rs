//! The study's further axes on the embedded backends: placement, cache state, refill,
//! EDR_cluster / EDR_replica, byte budgets, dataset sizes and presets.

use crate::support::{journal, ok, run, run_dir, stages};
use dedup_lab_core::{CellStatus, JournalLine, Stage};
use std::path::Path;
use std::process::Output;

const SMALL: &[&str] =
    &["--payload-types", "random_binary", "--grades", "U50", "--records", "8", "--record-size", "16KiB"];

fn with_small<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend_from_slice(SMALL);
    v
}

/// `run --config <cfg> --results <results> <extra>` on the small dataset.
fn run_configured(cfg: &Path, results: &Path, extra: &[&str]) -> Output {
    let mut a = vec!["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()];
    a.extend_from_slice(extra);
    run(&with_small(&a))
}

/// [`run_configured`], asserting success; returns stdout.
fn ok_configured(cfg: &Path, results: &Path, extra: &[&str]) -> String {
    crate::support::succeeded(extra, run_configured(cfg, results, extra))
}

#[test]
fn across_placement_puts_every_copy_in_the_other_container() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    let r = results.to_str().unwrap();
    ok(&with_small(&[
        "run",
        "--results",
        r,
        "--systems",
        "files",
        "--placements",
        "across",
        "--stages",
        "bulk_insert",
        "--keep",
    ]));
    let ns = run_dir(&results).join("lab/files/dedup_lab");
    let read = |c: &str| -> Vec<Vec<u8>> {
        std::fs::read_dir(ns.join(c)).unwrap().flatten().map(|e| std::fs::read(e.path()).unwrap()).collect()
    };
    let (c0, c1) = (read("c0"), read("c1"));
    // U50 of 8: 4 originals in c0, 4 copies in c1, each copy equal to an original there.
    assert_eq!((c0.len(), c1.len()), (4, 4));
    for copy in &c1 {
        assert!(c0.contains(copy), "a copy in c1 has no original in c0");
    }
    for original in &c0 {
        assert_eq!(c0.iter().filter(|o| *o == original).count(), 1, "c0 holds no copies");
    }
    let lines = journal(&results);
    let ms = stages(&lines);
    assert_eq!(ms.len(), 1, "one cell, one stage");
    assert!(ms.iter().all(|m| m.cell.placement.to_string() == "across" && m.valid));
}

#[test]
fn cold_cells_reopen_and_warm_cells_read_first() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    ok(&with_small(&["run", "--results", results.to_str().unwrap(), "--systems", "sqlite", "--caches", "cold,warm"]));
    let lines = journal(&results);
    let ms = stages(&lines);
    assert_eq!(ms.len(), 8);
    for m in ms {
        let notes = m.notes.join(" | ");
        match m.cell.cache.to_string().as_str() {
            "cold" => {
                assert!(notes.contains("cold: closed the SQLite connection"), "{notes}");
                assert!(notes.contains("page cache"), "{notes}");
            }
            _ => assert!(notes.contains("warm: read"), "{notes}"),
        }
        assert!(m.valid, "{:?}", m.invalid_reasons);
    }
}

#[test]
fn analyze_and_the_summary_report_the_per_container_ideal_of_each_placement() {
    // analyze: with U50 every copy of a distinct source placed across sits beside at most a
    // few equal copies, so the per-container ideal is below the whole-namespace one.
    let json = ok(&with_small(&["analyze", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let a = &v["random_binary/U50"];
    let (whole, across) = (a["ideal_ratio"].as_f64().unwrap(), a["across"]["ideal_ratio"].as_f64().unwrap());
    assert!((whole - 2.0).abs() < 0.05 && across < whole - 0.2 && across > 1.0, "{a}");
    let text = ok(&with_small(&["analyze"]));
    assert!(text.lines().next().unwrap().ends_with("across"), "{text}");
    assert!(text.contains(&format!("{across:>8.2}\n")), "{text}");

    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    let r = results.to_str().unwrap();
    let out = ok(&with_small(&["run", "--results", r, "--systems", "files", "--placements", "within,across"]));
    let head = out.lines().find(|l| l.starts_with("system")).unwrap();
    assert!(head.contains("placement/cache") && head.contains("ideal/ctr"), "{out}");
    let row = |axes: &str| -> Vec<String> {
        let l = out.lines().find(|l| l.starts_with("files") && l.contains(axes)).unwrap();
        l.split_whitespace().map(String::from).collect()
    };
    // system payload grade mode axes bulk rec ideal ideal/ctr …
    let (within, across_row) = (row("within/warm"), row("across/warm"));
    assert_eq!(within[7], format!("{whole:.2}"));
    assert_eq!(within[8], format!("{whole:.2}"), "within: one container, the whole ideal");
    assert_eq!(across_row[7], format!("{whole:.2}"));
    assert_eq!(across_row[8], format!("{across:.2}"), "{out}");
    assert!(out.contains("ideal/ctr = the ideal of a store that deduplicates only inside one container"), "{out}");
    // The exported report carries it too.
    let run = run_dir(&results);
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("ideal/ctr") && md.contains(&format!("{across:.2}")), "{md}");
}

#[test]
fn a_configured_cold_command_runs_before_each_stage_of_cold_cells_only() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("cold.log");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[systems.files]\ncold_command = 'echo \"$DEDUP_LAB_STAGE $DEDUP_LAB_SYSTEM\" >> {}; echo evicted'\n",
            log.display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let plan = ok(&with_small(&["run", "--config", c, "--systems", "files", "--caches", "cold,warm", "--dry-run"]));
    assert!(plan.contains("cold files: runs `echo"), "{plan}");
    let results = tmp.path().join("r");
    ok_configured(&cfg, &results, &["--systems", "files", "--caches", "cold,warm"]);
    // One line per stage of the one cold cell, in stage order; none for the warm cell.
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        ran.lines().collect::<Vec<_>>(),
        ["bulk_insert files", "perfile_insert files", "perfile_delete files", "maintenance files"]
    );
    let lines = journal(&results);
    let ms = stages(&lines);
    assert_eq!(ms.len(), 8, "two cells of four stages");
    for m in ms {
        let notes = m.notes.join(" | ");
        let cold = m.cell.cache.to_string() == "cold";
        assert_eq!(notes.contains("exit status 0") && notes.contains("evicted"), cold, "{notes}");
        assert!(m.valid, "{:?}", m.invalid_reasons);
    }
}

#[test]
fn a_failing_cold_command_fails_its_cell_with_the_status_and_output() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[systems.files]\ncold_command = \"echo service unknown >&2; exit 7\"\n").unwrap();
    let results = tmp.path().join("r");
    let out = run_configured(&cfg, &results, &["--systems", "files", "--caches", "cold,warm"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let mut seen = 0;
    for l in journal(&results) {
        if let JournalLine::Cell { cell, status, reason, .. } = l {
            seen += 1;
            if cell.cache.to_string() == "cold" {
                assert_eq!(status, CellStatus::Failed);
                let r = reason.unwrap();
                assert!(
                    r.contains("cold_command") && r.contains("exit status: 7") && r.contains("service unknown"),
                    "{r}"
                );
            } else {
                assert_eq!(status, CellStatus::Ok, "the warm cell is measured: {reason:?}");
            }
        }
    }
    assert_eq!(seen, 2);
}

#[test]
fn lsm_memory_settings_are_checked_before_the_run_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[systems.lsm]\nmemtable_size = \"64KiB\"\n").unwrap();
    let results = tmp.path().join("r");
    let out = run_configured(&cfg, &results, &["--systems", "lsm"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("`memtable_size` is 65536 B; use at least 1.0 MiB"), "{err}");
    assert!(!results.exists(), "nothing is written before the settings are valid");
}

#[test]
fn cold_command_settings_are_checked_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    for (text, expect) in [
        ("[systems.sqlite]\ncold_timeout = 30\n", "cold_timeout but no cold_command"),
        ("[systems.sqlite]\ncold_command = 3\n", "expected a shell command"),
        ("[systems.sqlite]\ncold_command = \"true\"\ncold_timeout = \"soon\"\n", "expected whole seconds"),
        ("[systems.sqlite]\ncold_pass_env = [\"X\"]\n", "cold_pass_env but no cold_command"),
        ("[systems.sqlite]\ncold_command = \"true\"\ncold_pass_env = \"X\"\n", "list of environment variable"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = run(&["run", "--config", cfg.to_str().unwrap(), "--systems", "sqlite", "--dry-run"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expect) && err.contains("[systems.sqlite]"), "{text}: {err}");
    }
}

#[test]
fn refill_reinserts_and_compares_with_the_first_insert() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    ok(&with_small(&[
        "run",
        "--results",
        results.to_str().unwrap(),
        "--systems",
        "files",
        "--stages",
        "perfile_insert,perfile_delete,maintenance,refill",
    ]));
    let lines = journal(&results);
    let ms = stages(&lines);
    let by = |s: Stage| ms.iter().find(|m| m.stage == s).unwrap();
    let (first, refill) = (by(Stage::PerfileInsert), by(Stage::Refill));
    assert_eq!(refill.rows_sent, 8);
    assert_eq!(refill.rows_counted, Some(8));
    assert_eq!(refill.logical_bytes, first.logical_bytes);
    assert!(refill.latency.as_ref().unwrap().count == 8);
    // A plain directory reuses freed blocks: refill grows it as much as the first insert.
    assert_eq!(refill.physical.delta, first.physical.delta);
    assert!(refill.notes.iter().any(|n| n.contains("1.000 × the first perfile_insert")), "{:?}", refill.notes);
}

#[test]
fn edr_cluster_and_edr_replica_follow_the_replicas() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[systems.files]\nreplicas = 3\n").unwrap();
    let results = tmp.path().join("r");
    ok_configured(&cfg, &results, &["--systems", "files", "--stages", "bulk_insert"]);
    let lines = journal(&results);
    let m = stages(&lines)[0];
    assert_eq!(m.replicas, 3);
    let (replica, cluster) = (m.edr_replica.unwrap(), m.edr_cluster.unwrap());
    assert!((replica - 3.0 * cluster).abs() < 1e-9, "{replica} vs {cluster}");
    assert!((cluster - m.logical_bytes as f64 / m.physical.delta as f64).abs() < 1e-9);
    assert!(m.latency.is_none(), "bulk stages have no per-record latency");
}

#[test]
fn byte_budgets_skip_the_cells_that_do_not_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    // 8 × 16 KiB = 128 KiB per dataset: over a 100 KiB budget.
    std::fs::write(&cfg, "[systems.sqlite]\nmax_bytes = \"100KiB\"\n").unwrap();
    let results = tmp.path().join("r");
    let c = cfg.to_str().unwrap();
    let plan = ok(&with_small(&["run", "--config", c, "--systems", "sqlite,files", "--dry-run"]));
    assert!(plan.contains("budget max_bytes 100.0 KiB") && plan.contains("1 of 1 cells would be skipped"), "{plan}");
    ok_configured(&cfg, &results, &["--systems", "sqlite,files"]);
    let lines = journal(&results);
    let (mut skipped, mut ok_cells, mut files_stages) = (0, 0, 0);
    for l in &lines {
        match l {
            JournalLine::Cell { cell, status, reason, .. } if cell.system.to_string() == "sqlite" => {
                assert_eq!(*status, CellStatus::Skipped);
                assert!(reason.as_deref().unwrap().contains("max_bytes"), "{reason:?}");
                skipped += 1;
            }
            JournalLine::Cell { status, .. } => {
                assert_eq!(*status, CellStatus::Ok);
                ok_cells += 1;
            }
            JournalLine::Stage(m) => {
                assert_eq!(m.cell.system.to_string(), "files", "a skipped cell wrote nothing");
                files_stages += 1;
            }
        }
    }
    assert_eq!((skipped, ok_cells, files_stages), (1, 1, 4), "the sqlite cell skipped, the files cell measured");
}

#[test]
fn dataset_size_and_presets_shape_the_plan() {
    let plan = ok(&["run", "--dry-run", "--systems", "sqlite", "--dataset-size", "1MiB", "--record-size", "64KiB"]);
    assert!(plan.contains("records per dataset: 16 × 65536 B"), "{plan}");
    let plan =
        ok(&["run", "--dry-run", "--systems", "sqlite", "--record-size", "4KiB..1MiB", "--dataset-size", "10MiB"]);
    assert!(plan.contains("records per dataset: 20 × 4096..1048576 B"), "{plan}");
    let plan = ok(&["run", "--dry-run", "--systems", "sqlite", "--preset", "method"]);
    assert!(plan.contains("grades: U0, U50, U90, U95, U99") && plan.contains("placements: within,across"), "{plan}");
    assert!(plan.contains("plan: 300 cells"), "5 types × 5 grades × 2 placements × 2 caches × 3 runs: {plan}");
    let plan = ok(&["run", "--dry-run", "--systems", "sqlite", "--preset", "original"]);
    assert!(plan.contains("plan: 45 cells") && plan.contains("500 × 524288 B"), "{plan}");
    let out = run(&["run", "--dry-run", "--preset", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("original"));
}

/// A cold command's output is journaled, so it never sees a variable that holds a secret
/// (an `env` in it would write the password into the results), unless the config passes
/// that one through by name.
#[test]
fn cold_commands_run_without_secret_variables_unless_passed_through() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    let secret = "pw-cold-7f3e9a1c";
    let passed = "pass-me-5b2d";
    std::fs::write(
        &cfg,
        // Only the variables in question: the stage notes keep the end of the output, and
        // under the test command the environment holds dozens of other DEDUP_ variables.
        "[systems.files]\ncold_command = \"env | grep -E '^DEDUP_(LAB_STAGE|FILES_TOKEN|PG_PASSWORD|S3_SECRET_KEY)='; \
         echo done\"\ncold_pass_env = [\"DEDUP_FILES_TOKEN\"]\n",
    )
    .unwrap();
    let results = tmp.path().join("r");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .env("DEDUP_PG_PASSWORD", secret)
        .env("DEDUP_S3_SECRET_KEY", secret)
        .env("DEDUP_FILES_TOKEN", passed)
        .args(with_small(&["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()]))
        .args(["--systems", "files", "--caches", "cold", "--stages", "bulk_insert"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = journal(&results);
    let ms = stages(&lines);
    assert_eq!(ms.len(), 1);
    let notes = ms[0].notes.join(" | ");
    assert!(notes.contains("done") && notes.contains("DEDUP_LAB_STAGE=bulk_insert"), "the command ran env: {notes}");
    assert!(notes.contains(&format!("DEDUP_FILES_TOKEN={passed}")), "passed through by name: {notes}");
    let text = std::fs::read_to_string(run_dir(&results).join("measurements.jsonl")).unwrap();
    assert!(!text.contains(secret), "a secret variable reached the cold command's journaled output");
}
