//! End-to-end tests of `dedup-lab report` and of the exports at the end of `dedup-lab run`,
//! on real runs of the embedded backends.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dedup-lab"));
    c.env("DEDUP_LAB_CACHE_DIR", crate::support::test_cache_dir());
    c
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("dedup-lab runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// 3 systems × 2 payloads × 2 grades × 3 repetitions of tiny datasets.
const SMALL: &[&str] = &[
    "--systems",
    "sqlite,lsm,files",
    "--payload-types",
    "random_binary,text_document",
    "--grades",
    "U0,U90",
    "--records",
    "4",
    "--record-size",
    "16KiB",
];

struct Shared {
    run: PathBuf,
    stdout: String,
}

/// One run shared by the tests that only read it (`--export csv,html`).
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep().join("results");
        let out =
            output(bin().args(["run", "--runs", "3", "--export", "csv,html", "--results"]).arg(&root).args(SMALL));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let run = std::fs::read_dir(&root).unwrap().next().unwrap().unwrap().path();
        Shared { run, stdout: text(&out.stdout) }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn run_writes_the_chosen_exports_and_keeps_the_summary() {
    let s = shared();
    assert!(s.stdout.contains("EDR bulk") && s.stdout.contains("ideal"), "{}", s.stdout);
    assert!(s.stdout.contains("exports: report.csv, report.html in"), "{}", s.stdout);
    assert!(s.run.join("report.csv").is_file() && s.run.join("report.html").is_file());
    for absent in ["report.json", "report.md", "tex"] {
        assert!(!s.run.join(absent).exists(), "{absent} was not asked for");
    }
    let csv = std::fs::read_to_string(s.run.join("report.csv")).unwrap();
    // 12 cells × 4 stages, each over 3 repetitions.
    assert_eq!(csv.lines().count(), 1 + 12 * 4);
    assert!(csv.lines().skip(1).all(|l| l.contains(",ok,3,3,")), "{csv}");
}

#[test]
fn report_accepts_run_dirs_and_results_roots() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("results").join(s.run.file_name().unwrap());
    copy_dir(&s.run, &run);
    // A run directory, default output = the directory itself, default formats = all.
    let out = output(bin().arg("report").arg(&run));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in [
        "report.csv",
        "report.json",
        "report.md",
        "report.html",
        "tex/edr_bulk_insert.tex",
        "tex/stages.csv",
        "experiment_results.csv",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // One row per stage execution: 12 cells × 3 repetitions × 4 stages, all valid.
    let compat = std::fs::read_to_string(run.join("experiment_results.csv")).unwrap();
    assert!(compat.starts_with("system,payload_type,dup_grade,insertion_mode,stage,duration_ms,"), "{compat}");
    assert_eq!(compat.lines().count(), 1 + 12 * 3 * 4);
    assert!(compat.lines().skip(1).all(|l| l.ends_with("Z,")), "no row has an error:\n{compat}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("EDR bulk") && stdout.contains("36 ok"), "{stdout}");
    // The results root, to another directory, two formats.
    let dest = tmp.path().join("out");
    let out = output(
        bin().arg("report").arg(tmp.path().join("results")).arg("--output").arg(&dest).args(["--format", "json,md"]),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dest.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["sources"].as_array().unwrap().len(), 1);
    assert_eq!(v["groups"].as_array().unwrap().len(), 12);
    assert!(v["groups"].as_array().unwrap().iter().all(|g| g["valid_runs"] == 3));
    let md = std::fs::read_to_string(dest.join("report.md")).unwrap();
    assert!(md.contains("## Effective dedup ratio") && md.contains("| sqlite | text_document | U90 | 3/3 |"), "{md}");
    assert!(!dest.join("report.csv").exists());
}

#[test]
fn report_on_an_unfinished_run_with_a_torn_journal_warns_and_goes_on() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join(s.run.file_name().unwrap());
    copy_dir(&s.run, &run);
    // Keep the first 20 lines (4 cells), then a blank line and half a line: a run killed mid-write.
    let journal = std::fs::read_to_string(run.join("measurements.jsonl")).unwrap();
    let lines: Vec<&str> = journal.lines().collect();
    let torn = &lines[20][..lines[20].len() / 2];
    std::fs::write(run.join("measurements.jsonl"), format!("{}\n\n{torn}", lines[..20].join("\n"))).unwrap();
    let out = output(bin().arg("report").arg(&run).args(["--format", "json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("measurements.jsonl line 21 is empty; skipped"), "{stderr}");
    assert!(stderr.contains("measurements.jsonl line 22 is half-written"), "{stderr}");
    assert!(stderr.contains("incomplete: 4 of 36 cells finished"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["totals"]["ok"], 4);
    assert_eq!(v["totals"]["not_started"], 32);
}

#[test]
fn report_refuses_what_is_not_a_results_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "x").unwrap();
    for p in [tmp.path().to_path_buf(), tmp.path().join("missing"), file] {
        let out = output(bin().arg("report").arg(&p));
        assert_eq!(out.status.code(), Some(2), "{p:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&p.display().to_string()), "{stderr}");
        assert!(
            stderr.contains("is not a dedup-lab results directory") && stderr.contains("expected a run directory"),
            "{stderr}"
        );
    }
    let out = output(bin().arg("report"));
    assert_eq!(out.status.code(), Some(2), "a directory is required");
}

#[test]
fn report_refuses_mixed_datasets_unless_allowed() {
    let s = shared();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("results");
    copy_dir(&s.run, &root.join(s.run.file_name().unwrap()));
    let out = output(
        bin().args(["run", "--runs", "1", "--seed", "7", "--export", "none", "--results"]).arg(&root).args(SMALL),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = output(bin().arg("report").arg(&root).args(["--format", "json"]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("measured on different datasets") && stderr.contains("--allow-mixed"), "{stderr}");
    assert!(!root.join("report.json").exists());
    let out = output(bin().arg("report").arg(&root).args(["--format", "json", "--allow-mixed"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("kept apart as separate groups"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["groups"].as_array().unwrap().len(), 24, "12 cells × 2 datasets, never averaged together");
}

#[test]
fn export_formats_are_checked_before_the_run_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let out = output(bin().args(["run", "--export", "csv,pdf", "--results"]).arg(&results).args(SMALL));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid export format \"pdf\""), "{}", text(&out.stderr));
    assert!(!results.exists(), "nothing was created");
    // `exports` in the config file.
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "exports = [\"md\"]\n").unwrap();
    let out = output(
        bin()
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--systems", "files", "--payload-types", "random_binary", "--grades", "U0", "--records", "2"])
            .args(["--record-size", "4KiB", "--results"])
            .arg(&results),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run = std::fs::read_dir(&results).unwrap().next().unwrap().unwrap().path();
    assert!(run.join("report.md").is_file() && !run.join("report.html").exists());
}

#[test]
fn html_report_of_a_real_run_renders_in_chromium() {
    let s = shared();
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-cli-browser");
    let Some(r) = crate::chromium::render(&s.run.join("report.html"), &work, "run.png") else { return };
    // EDR 2 stages × 2 payloads, physical 2, reclaim 2 × 2, throughput 3 × 2, latency 2 × 2.
    crate::chromium::assert_renders_well(&r, 20);
    assert!(r.dom.contains("sqlite/default (SQLite"), "server versions are shown");
    eprintln!("screenshot: {}", r.screenshot.display());
}

/// The datasets of the analysis-cache test: 2 payloads × 2 grades, tiny.
const TINY_DATASETS: &[&str] = &[
    "--payload-types",
    "random_binary,text_document",
    "--grades",
    "U0,U50",
    "--records",
    "4",
    "--record-size",
    "8KiB",
];

#[test]
fn no_cache_leaves_the_analysis_cache_alone_and_the_cache_serves_later_invocations() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("cache");
    let analysis = root.join("analysis");
    let res = t.path().join("results");
    let go = |args: &[&str], extra: &[&str]| {
        let out = output(bin().env("DEDUP_LAB_CACHE_DIR", &root).args(args).args(extra));
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let res_s = res.to_str().unwrap();
    let (rep_none, rep_cached) = (t.path().join("rep-none"), t.path().join("rep-cached"));
    let analyze = ["analyze", "--json"];

    // --no-cache on run (summary and exports), report and analyze: nothing written.
    go(
        &["run", "--systems", "files", "--runs", "1", "--export", "json", "--no-cache", "--results", res_s],
        TINY_DATASETS,
    );
    let run = std::fs::read_dir(&res).unwrap().next().unwrap().unwrap().path();
    let report_none = ["report", run.to_str().unwrap(), "--format", "json", "--no-cache", "-o"];
    go(&report_none, &[rep_none.to_str().unwrap()]);
    let uncached = go(&["analyze", "--json", "--no-cache"], TINY_DATASETS);
    assert!(!root.exists(), "--no-cache wrote into the cache: {:?}", std::fs::read_dir(&root).map(|d| d.count()));

    // Without it: one entry per dataset, which the next invocations read; same figures.
    let cold = go(&analyze, TINY_DATASETS);
    assert_eq!(std::fs::read_dir(&analysis).unwrap().count(), 4, "one file per dataset");
    let warm = go(&analyze, TINY_DATASETS);
    assert_eq!(cold, uncached);
    assert_eq!(warm, uncached);
    let report_cached = ["report", run.to_str().unwrap(), "--format", "json", "-o"];
    go(&report_cached, &[rep_cached.to_str().unwrap()]);
    assert_eq!(std::fs::read_dir(&analysis).unwrap().count(), 4, "the run's datasets are the analysed ones");
    let datasets = |dir: &Path| {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
        v["datasets"].clone()
    };
    let with_cache = datasets(&rep_cached);
    assert_eq!(with_cache.as_array().unwrap().len(), 4);
    assert!(with_cache.as_array().unwrap().iter().all(|d| d["intrinsic"]["ideal_ratio"].as_f64().is_some()));
    assert_eq!(with_cache, datasets(&rep_none), "the report's ideal figures from the cache are the computed ones");
}
