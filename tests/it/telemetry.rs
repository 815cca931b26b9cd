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
            "3000",
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
        let want = if f["stage"] == "maintenance" { 0 } else { 3000 };
        assert_eq!(f["ops"].as_u64(), Some(want), "{f}");
        assert!(f["rss_bytes"].as_u64().is_some_and(|r| r > 1 << 20), "{f}");
        assert!(f["phys_bytes"].as_u64().is_some(), "the last sample reads the fs probe: {f}");
    }
    let bulk_final = finals[0];
    assert_eq!(bulk_final["bytes"].as_u64(), Some(3000 * 8192));
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
