//! The event stream (`events.jsonl`) and the metrics trace (`trace.jsonl`) of real runs on
//! the embedded systems: every event in order with its reasons, samples with progress that
//! ends at the stage's row count, settings validated before anything runs. (The Kafka
//! copies and a failing Kafka sink are in `kafka.rs`.)

use serde_json::Value;
use std::path::Path;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {l}: {e}", path.display())))
        .collect()
}

fn run_with(config: &str, args: &[&str]) -> (tempfile::TempDir, std::process::Output) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, config).unwrap();
    let results = tmp.path().join("r");
    let mut all = vec!["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = crate::support::run(&all);
    (tmp, out)
}

#[test]
fn events_tell_the_run_systems_cells_and_stages_in_order_with_reasons() {
    let (tmp, out) = run_with(
        "lab = \"dedup_t_events\"\n[systems.postgresql]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\nconnect_timeout = 1\n",
        &[
            "--systems",
            "files,postgresql",
            "--payload-types",
            "random_binary",
            "--grades",
            "U0,U50",
            "--records",
            "50",
            "--record-size",
            "8KiB",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "the postgresql cells fail: {}", crate::support::text_of(&out));
    let run = crate::support::run_dir(&tmp.path().join("r"));
    let ev = lines(&run.join("events.jsonl"));
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_start"));
    assert_eq!(kinds.last(), Some(&"run_end"));
    let run_id = run.file_name().unwrap().to_str().unwrap();
    assert!(ev.iter().all(|e| e["run"] == run_id && e["ts"].as_str().is_some_and(|t| t.ends_with('Z'))));
    // One system_start/system_end pair per system, around its cells.
    let systems: Vec<(&str, &str)> = ev
        .iter()
        .filter(|e| e["event"].as_str().unwrap().starts_with("system_"))
        .map(|e| (e["event"].as_str().unwrap(), e["system"].as_str().unwrap()))
        .collect();
    assert_eq!(
        systems,
        [
            ("system_start", "files"),
            ("system_end", "files"),
            ("system_start", "postgresql"),
            ("system_end", "postgresql")
        ]
    );
    // files: every stage starts and ends ok, with its figures.
    let files_stages: Vec<&Value> = ev.iter().filter(|e| e["event"] == "stage_end" && e["system"] == "files").collect();
    assert_eq!(files_stages.len(), 2 * 4, "4 stages × 2 grades");
    for s in &files_stages {
        assert_eq!(s["status"], "ok", "{s}");
        assert!(s["duration_ms"].as_f64().is_some() && s["phys_delta_bytes"].is_i64(), "{s}");
    }
    let bulk = files_stages.iter().find(|s| s["stage"] == "bulk_insert").unwrap();
    assert!(bulk["edr"].as_f64().is_some_and(|e| e > 0.5), "{bulk}");
    let starts = ev.iter().filter(|e| e["event"] == "stage_start" && e["system"] == "files").count();
    assert_eq!(starts, files_stages.len());
    // postgresql: the cells fail before any stage; the reason is in cell_end.
    let pg_end: Vec<&Value> = ev.iter().filter(|e| e["event"] == "cell_end" && e["system"] == "postgresql").collect();
    let pg_cells = pg_end.len() as u64;
    assert!(pg_cells >= 2, "one per grade and variant: {pg_cells}");
    for e in pg_end {
        assert_eq!(e["status"], "failed");
        assert!(e["reason"].as_str().unwrap().contains("127.0.0.1:1"), "{e}");
    }
    let end = ev.last().unwrap();
    assert_eq!(
        (end["status"].as_str(), end["failed"].as_u64(), end["ran"].as_u64()),
        (Some("finished"), Some(pg_cells), Some(2 + pg_cells))
    );
}

#[test]
fn the_trace_samples_every_stage_and_ends_at_its_row_count() {
    let (tmp, out) = run_with(
        "lab = \"dedup_t_trace\"\n[trace]\ninterval = \"20ms\"\nprobe_interval = \"40ms\"\n",
        &[
            "--systems",
            "files",
            "--payload-types",
            "random_binary",
            "--grades",
            "U0",
            "--records",
            "800",
            "--record-size",
            "8KiB",
        ],
    );
    assert!(out.status.success(), "{}", crate::support::text_of(&out));
    let run = crate::support::run_dir(&tmp.path().join("r"));
    let tr = lines(&run.join("trace.jsonl"));
    let finals: Vec<&Value> = tr.iter().filter(|s| s["final"] == true).collect();
    let stages: Vec<&str> = finals.iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["bulk_insert", "perfile_insert", "perfile_delete", "maintenance"]);
    for f in &finals {
        let want = if f["stage"] == "maintenance" { 0 } else { 800 };
        assert_eq!(f["ops"].as_u64(), Some(want), "{f}");
        assert!(f["rss_bytes"].as_u64().is_some_and(|r| r > 1 << 20), "{f}");
        assert!(f["phys_bytes"].as_u64().is_some(), "the last sample reads the fs probe: {f}");
    }
    let bulk_final = finals[0];
    assert_eq!(bulk_final["bytes"].as_u64(), Some(800 * 8192));
    // The per-record stages have latency windows; progress grows monotonically.
    let perfile: Vec<&Value> = tr.iter().filter(|s| s["stage"] == "perfile_insert").collect();
    assert!(perfile.len() >= 3, "a 20 ms interval over the per-record stage: {}", perfile.len());
    assert!(perfile.iter().any(|s| s["latency_p99_us"].as_f64().is_some_and(|p| p > 0.0)), "{perfile:?}");
    assert!(perfile.windows(2).all(|w| w[0]["ops"].as_u64() <= w[1]["ops"].as_u64()));
    assert!(perfile.iter().all(|s| s["system"] == "files" && s["cell"].as_str().unwrap().starts_with("files ")));
}

#[test]
fn trace_settings_are_checked_before_anything_runs_and_off_writes_events_only() {
    let (tmp, out) = run_with("[trace]\ninterval = \"fast\"\n", &["--systems", "files", "--records", "4"]);
    assert_eq!(out.status.code(), Some(2), "{}", crate::support::text_of(&out));
    let text = crate::support::text_of(&out);
    assert!(text.contains("[trace] interval = \"fast\"") && text.contains("\"100ms\""), "{text}");
    assert!(!tmp.path().join("r").exists(), "nothing was created");

    let (_, out) = run_with("[trace.kafka]\npassword = \"x\"\n", &["--systems", "files", "--records", "4"]);
    let text = crate::support::text_of(&out);
    assert!(text.contains("[trace.kafka] has `password`: secrets never go in the config file"), "{text}");
    assert!(!text.contains("\"x\""), "the secret is not echoed: {text}");

    let (tmp, out) = run_with(
        "[trace]\ninterval = \"off\"\n",
        &["--systems", "files", "--payload-types", "random_binary", "--grades", "U0", "--records", "4"],
    );
    assert!(out.status.success(), "{}", crate::support::text_of(&out));
    let run = crate::support::run_dir(&tmp.path().join("r"));
    assert!(!run.join("trace.jsonl").exists());
    assert!(lines(&run.join("events.jsonl")).len() > 5);
}

/// Every query of every panel and template variable of the Grafana dashboard in
/// `deploy/grafana/`, with the identifiers it uses outside string literals and `$variables`.
fn dashboard_queries() -> Vec<(String, Vec<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/dedup-lab.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    fn walk(panels: &Value, exprs: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if p["type"] != "row" {
                assert!(!targets.is_empty(), "panel {:?} is fed by nothing", p["title"]);
            }
            for t in targets {
                exprs.push(
                    t["expr"]
                        .as_str()
                        .unwrap_or_else(|| panic!("panel {:?}: a target without expr", p["title"]))
                        .to_string(),
                );
            }
            walk(&p["panels"], exprs);
        }
    }
    walk(&d["panels"], &mut exprs);
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            exprs.push(v["query"]["query"].as_str().unwrap().to_string());
        }
    }
    exprs
        .into_iter()
        .map(|e| {
            let mut ids = Vec::new();
            let (mut cur, mut in_str, mut in_var) = (String::new(), false, false);
            for c in e.chars().chain(std::iter::once(' ')) {
                if in_str {
                    in_str = c != '"';
                    continue;
                }
                if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                    cur.push(c);
                    continue;
                }
                if !cur.is_empty() && !in_var && !cur.chars().next().unwrap().is_ascii_digit() {
                    ids.push(std::mem::take(&mut cur));
                }
                cur.clear();
                in_var = c == '$';
                in_str = c == '"';
            }
            (e, ids)
        })
        .collect()
}

/// The dashboard is built only on what dedup-lab pushes (the original's had panels fed by
/// nothing): every metric and label in its queries is one the push code emits, and every
/// emitted metric is shown somewhere.
#[test]
fn the_grafana_dashboard_uses_only_the_metrics_and_labels_dedup_lab_pushes() {
    use dedup_lab_runner::telemetry::push::{LABELS, METRICS};
    const PROMQL: &[&str] = &["avg", "sum", "min", "max", "count", "by", "without", "label_values"];
    let queries = dashboard_queries();
    assert!(queries.len() >= 6, "{queries:?}");
    let mut shown = std::collections::BTreeSet::new();
    for (expr, ids) in &queries {
        for id in ids {
            let known = METRICS.iter().any(|(m, _)| m == id)
                || LABELS.contains(&id.as_str())
                || ["job", "instance"].contains(&id.as_str())
                || PROMQL.contains(&id.as_str());
            assert!(known, "{expr}: `{id}` is neither a metric nor a label dedup-lab pushes");
            if id.starts_with("dedup_") {
                shown.insert(id.clone());
            }
        }
    }
    for (m, _) in METRICS {
        assert!(shown.contains(*m), "{m} is pushed but no panel shows it");
    }
}

/// `preflight` ends with one table: every system in every variant with its endpoint, auth,
/// namespace, consistency, probe reading and verdict; a system that cannot be reached fails
/// its rows (exit code 1) and the others still pass.
#[test]
fn preflight_prints_one_table_with_a_probe_reading_per_system_and_fails_on_any_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "lab = \"dedup_t_pftable\"\n[systems.postgresql]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\nconnect_timeout = 1\n",
    )
    .unwrap();
    let out =
        crate::support::run(&["preflight", "--config", cfg.to_str().unwrap(), "--systems", "files,sqlite,postgresql"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let table: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("target ")).collect();
    for col in ["endpoint", "auth", "namespace", "consistency", "probe reading", "verdict"] {
        assert!(table[0].contains(col), "{}", table[0]);
    }
    let row =
        |t: &str| *table.iter().find(|l| l.starts_with(&format!("{t} "))).unwrap_or_else(|| panic!("{t}: {stdout}"));
    for ok in ["files/default", "sqlite/default"] {
        let r = row(ok);
        assert!(r.contains("created, dropped") && r.contains("fs: ") && r.trim_end().ends_with("ok"), "{r}");
    }
    for failed in ["postgresql/extended", "postgresql/external"] {
        assert!(row(failed).contains("unreachable") && row(failed).trim_end().ends_with("FAILED"), "{}", row(failed));
        assert!(stdout.contains(&format!("FAILED  {failed}: postgresql")), "{stdout}");
    }
}

/// `-q`, the default, `-v` and `RUST_LOG`: how much goes to stderr. Results and the final
/// summary always print; progress bars never reach a stderr that is not a terminal.
#[test]
fn quiet_default_verbose_and_rust_log_set_what_stderr_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "lab = \"dedup_t_logs\"\n[systems.postgresql]\nvariants = [\"extended\"]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"u\"\nconnect_timeout = 1\n",
    )
    .unwrap();
    let run = |envs: &[(&str, &str)], flags: &[&str]| {
        let results = tmp.path().join(format!("r{}", flags.join("")));
        let mut args = vec!["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()];
        args.extend_from_slice(&[
            "--systems",
            "files,postgresql",
            "--payload-types",
            "random_binary",
            "--grades",
            "U0",
        ]);
        args.extend_from_slice(&["--records", "20", "--record-size", "4KiB", "--export", "none"]);
        args.extend_from_slice(flags);
        let out = crate::support::run_env(envs, &args);
        assert_eq!(out.status.code(), Some(1), "the postgresql cell fails: {}", crate::support::text_of(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("results: "), "results always print");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let default = run(&[], &[]);
    assert!(default.lines().any(|l| l.starts_with("run ") && l.contains("cells, results in")), "{default}");
    assert!(default.contains("warning: Failed: postgresql/extended"), "the failure as it happens: {default}");
    assert!(default.contains("FAILED  1 cells") || default.contains("FAILED  postgresql"), "{default}");
    assert!(!default.contains(" · bulk_insert"), "no debug lines by default: {default}");
    assert!(!default.contains('\r') && !default.contains("\u{1b}["), "no progress bar off a terminal: {default:?}");

    let quiet = run(&[], &["-q"]);
    assert!(!quiet.contains("warning:") && !quiet.lines().any(|l| l.starts_with("run ")), "{quiet}");
    assert!(quiet.contains("failed and 0 invalid of 2 cells"), "the summary stays: {quiet}");

    let verbose = run(&[], &["-v"]);
    assert!(verbose.contains(" · bulk_insert") && verbose.contains("ok: files"), "{verbose}");

    let rust_log = run(&[("RUST_LOG", "dedup_lab=debug,nonsense=loudest")], &["-q"]);
    assert!(rust_log.contains(" · perfile_delete"), "RUST_LOG wins over -q for what it names: {rust_log}");
    assert!(rust_log.contains("RUST_LOG: `nonsense=loudest` is not a level"), "{rust_log}");
}

/// `status` of a run that is still going: the current cell and stage from the event stream,
/// the last sample, the pace; a journal line being written is not a torn write; `--watch`
/// follows the run to its end.
#[test]
fn status_follows_a_running_run_and_watch_ends_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "lab = \"dedup_t_status\"\n[trace]\ninterval = \"20ms\"\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .args(["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .args(["--systems", "files", "--payload-types", "random_binary", "--grades", "U0,U50"])
        .args(["--records", "1500", "--record-size", "4KiB", "--stages", "bulk_insert,perfile_insert"])
        .args(["--export", "none"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = |extra: &[&str]| {
        let mut a = vec!["status", "--results", results.to_str().unwrap()];
        a.extend_from_slice(extra);
        let out = crate::support::run(&a);
        assert!(out.status.success(), "{}", crate::support::text_of(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Wait until the second cell's per-record stage is under way (one cell done: a pace).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let seen = loop {
        // Until the run has written its run.json, `status` rightly finds no run: look again.
        let has_run =
            std::fs::read_dir(&results).into_iter().flatten().flatten().any(|e| e.path().join("run.json").is_file());
        let text = if has_run { status(&[]) } else { String::new() };
        if text.contains("current cell 2 of 2")
            && text.contains("stage perfile_insert")
            && text.contains("last sample:")
        {
            break text;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before status saw its second cell: {text}");
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(seen.contains("(running;") && seen.contains("1 ok") && seen.contains("1 pending"), "{seen}");
    assert!(seen.contains("estimate: ") && seen.contains("written so far: "), "{seen}");
    assert!(!seen.contains("warning"), "{seen}");
    // --watch looks again until the run ends, then stops by itself.
    let t = std::time::Instant::now();
    let watched = status(&["--watch", "0.2"]);
    assert!(child.wait().unwrap().success());
    assert!(t.elapsed() < std::time::Duration::from_secs(120));
    assert!(watched.matches("run ").count() >= 2, "looked more than once: {watched}");
    assert!(watched.trim_end().lines().rev().any(|l| l.contains("(finished;")), "{watched}");
    // A journal line without its newline is being written: no warning. A complete line that
    // does not parse is one.
    let run = crate::support::run_dir(&results);
    let journal = run.join("measurements.jsonl");
    let mut f = std::fs::OpenOptions::new().append(true).open(&journal).unwrap();
    std::io::Write::write_all(&mut f, b"{\"type\":\"sta").unwrap();
    assert!(!status(&[]).contains("warning"));
    std::io::Write::write_all(&mut f, b"\n").unwrap();
    assert!(status(&[]).contains("warning: journal line"));
    let out = crate::support::run(&["status", "--results", results.to_str().unwrap(), "--watch", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::support::text_of(&out).contains("--watch 0: expected seconds from 0.1 to 3600"));
}
