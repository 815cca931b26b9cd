//! End-to-end tests of `dedup-lab run` on the embedded backends: journal, resume after
//! SIGKILL, cleanup on SIGTERM, dry run, failures, bad input.

use crate::support::{signal, wait_for_lines};
use dedup_lab_core::{CellStatus, JournalLine, Stage};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dedup-lab"));
    c.env("DEDUP_LAB_CACHE_DIR", crate::support::test_cache_dir());
    c
}

/// A small matrix that still takes a few seconds: 8 cells × 4 stages.
const SMALL: &[&str] = &[
    "--systems",
    "sqlite,files",
    "--payload-types",
    "random_binary,text_document",
    "--grades",
    "U0,U50",
    "--records",
    "8",
    "--record-size",
    "32KiB",
];

fn run_args(results: &Path) -> Vec<String> {
    let mut a = vec!["run".to_string(), "--results".into(), results.display().to_string()];
    a.extend(SMALL.iter().map(|s| s.to_string()));
    a
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("dedup-lab runs")
}

fn only_run_dir(results: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(results).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn journal(run: &Path) -> Vec<JournalLine> {
    let text = std::fs::read_to_string(run.join("measurements.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("corrupt journal line {l:?}: {e}")))
        .collect()
}

/// The identity of every journal line: (cell, stage or "cell").
fn keys(lines: &[JournalLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l {
            JournalLine::Stage(m) => format!("{} {}", m.cell, m.stage),
            JournalLine::Cell { cell, status, .. } => format!("{cell} cell {status:?}"),
        })
        .collect()
}

fn files_under(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn uninterrupted_run_journals_every_stage_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let out = output(bin().args(run_args(&results)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("EDR bulk") && stdout.contains("ideal"), "{stdout}");
    let run = only_run_dir(&results);
    let lines = journal(&run);
    let cells: Vec<_> = lines.iter().filter(|l| matches!(l, JournalLine::Cell { .. })).collect();
    assert_eq!(cells.len(), 8);
    assert_eq!(lines.len(), 8 * 5, "4 stage lines + 1 cell line per cell");
    for l in &lines {
        match l {
            JournalLine::Cell { status, reason, .. } => assert_eq!(*status, CellStatus::Ok, "{reason:?}"),
            JournalLine::Stage(m) => {
                assert!(m.valid, "{:?}", m.invalid_reasons);
                assert_eq!(m.rows_sent, if m.stage == Stage::Maintenance { 0 } else { 8 });
                if m.stage.is_insert() {
                    assert_eq!(m.logical_bytes, 8 * 32 * 1024);
                    assert_eq!(m.readback_sampled, 8);
                    assert!(m.physical.delta > 0, "{m:?}");
                    assert!(m.edr_replica.is_some());
                }
                if m.stage.is_per_record() {
                    let lat = m.latency.as_ref().expect("per-record stages have latencies");
                    assert_eq!(lat.count, 8);
                    assert!(lat.min_ns <= lat.p50_ns && lat.p50_ns <= lat.p99_ns && lat.p99_ns <= lat.max_ns);
                }
            }
        }
    }
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["status"], "finished");
    assert!(info["server_versions"]["sqlite/default"].as_str().unwrap().starts_with("SQLite"));
    assert!(files_under(&run.join("lab")).is_empty(), "lab namespaces must be torn down");
}

#[test]
fn resume_after_sigkill_gives_the_same_cells_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    // Reference: an uninterrupted run.
    let reference = tmp.path().join("reference");
    assert!(output(bin().args(run_args(&reference))).status.success());
    let mut want = keys(&journal(&only_run_dir(&reference)));
    want.sort();

    // Killed at several points (before the first line, mid-cell, later), resumed each time;
    // every finished line before a kill survives byte for byte, partial cells are discarded.
    let results = tmp.path().join("killed");
    let (run, kills) = crate::support::kill_and_resume(&results, &run_args(&results), &[3, 7, 12]);
    assert!(kills >= 3, "the run must have been killed mid-way several times (was {kills})");

    let lines = journal(&run); // panics on a corrupt line
    let mut got = keys(&lines);
    got.sort();
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no cell or stage is journaled twice");
    assert_eq!(got, want, "the resumed run has exactly the cells of an uninterrupted run");
    assert!(files_under(&run.join("lab")).is_empty());
}

#[test]
fn sigterm_tears_down_the_namespace_and_the_run_can_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let mut child = bin().args(run_args(&results)).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let run = wait_for_lines(&results, &mut child, 6).expect("the run reached the kill point");
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(files_under(&run.join("lab")).is_empty(), "the interrupted cell's namespace must be torn down");
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["status"], "interrupted");

    let status = output(bin().args(["status", "--results", &results.display().to_string()]));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("pending") && text.contains("--resume"), "{text}");

    let id = run.file_name().unwrap().to_string_lossy().into_owned();
    let out = output(bin().args(["run", "--results", &results.display().to_string(), "--resume", &id]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cells = journal(&run).iter().filter(|l| matches!(l, JournalLine::Cell { .. })).count();
    assert_eq!(cells, 8);
}

#[test]
fn dry_run_creates_nothing_and_connects_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    // A listener standing in for a PostgreSQL server: a dry run must never connect to it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out =
        output(bin().current_dir(tmp.path()).env("DEDUP_PG_HOST", "127.0.0.1").env("DEDUP_PG_PORT", &port).args([
            "run",
            "--dry-run",
            "--systems",
            "sqlite,lsm,files,postgresql",
        ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cells") && stdout.contains("writes") && stdout.contains("estimate"), "{stdout}");
    assert!(listener.accept().is_err(), "a dry run connected to the server");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "a dry run created {left:?}");
}

#[test]
fn the_example_config_is_valid_with_every_commented_key_switched_on() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dedup-lab.example.toml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, &example).unwrap();
    let out = output(bin().args(["run", "--dry-run", "--caches", "cold", "--config", cfg.to_str().unwrap()]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The commented settings of the embedded sections, switched on, must parse too.
    // Only inside the embedded sections: a commented server section (`# [systems.redis]`)
    // ends the switching, so its keys do not land in the section above it.
    let mut embedded = false;
    let on: String = example
        .lines()
        .map(|l| {
            if l.starts_with("[systems.") {
                embedded = ["[systems.sqlite]", "[systems.lsm]", "[systems.files]"].contains(&l.trim());
            } else if l.starts_with("# [systems.") || (l.starts_with('[') && !l.starts_with("[systems.")) {
                embedded = false;
            }
            match l.strip_prefix("# ") {
                Some(k)
                    if embedded
                        && [
                            "max_bytes",
                            "cold_command",
                            "cold_timeout",
                            "cold_pass_env",
                            "memtable_size",
                            "cache_size",
                            "batch_bytes",
                        ]
                        .iter()
                        .any(|p| k.starts_with(p)) =>
                {
                    k
                }
                _ => l,
            }
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cfg, on).unwrap();
    let out = output(bin().args(["run", "--dry-run", "--caches", "cold", "--systems", "sqlite", "--config"]).arg(&cfg));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("cold sqlite: runs `sync` (timeout 600 s)"), "{stdout}");
}

#[test]
fn a_failing_system_is_journaled_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(&cfg, format!("[systems.files]\ndir = \"{}\"\n", blocker.join("sub").display())).unwrap();
    let results = tmp.path().join("results");
    let mut args = run_args(&results);
    args.extend(["--config".into(), cfg.display().to_string()]);
    let out = output(bin().args(&args));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FAILED") && stderr.contains("files"), "{stderr}");
    let lines = journal(&only_run_dir(&results));
    let mut by_system = BTreeSet::new();
    for l in &lines {
        if let JournalLine::Cell { cell, status, reason, .. } = l {
            by_system.insert((cell.system.to_string(), *status));
            if *status == CellStatus::Failed {
                assert!(reason.as_deref().unwrap_or("").contains("not-a-dir"), "{reason:?}");
            }
        }
    }
    let want: BTreeSet<_> = [("files".to_string(), CellStatus::Failed), ("sqlite".to_string(), CellStatus::Ok)].into();
    assert_eq!(by_system, want);
}

#[test]
fn bad_run_input_is_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let r = results.display().to_string();
    let secret_cfg = tmp.path().join("secret.toml");
    std::fs::write(&secret_cfg, "[systems.postgresql]\npassword = \"hunter2\"\n").unwrap();
    let typo_cfg = tmp.path().join("typo.toml");
    std::fs::write(&typo_cfg, "[matrix]\ngrade = [\"U0\"]\n").unwrap();
    // A misspelt key of a system that is not even selected: refused, not ignored.
    let key_cfg = tmp.path().join("key.toml");
    std::fs::write(&key_cfg, "[systems.postgresql]\nhots = \"db.example\"\n").unwrap();
    let system_cfg = tmp.path().join("system.toml");
    std::fs::write(&system_cfg, "[systems.oracle]\nhost = \"db.example\"\n").unwrap();
    let pid_cfg = tmp.path().join("pid.toml");
    std::fs::write(&pid_cfg, "[systems.sqlite]\nserver_pids = [\"postgres\"]\n").unwrap();
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (vec!["run", "--results", &r, "--stages", "perfile_delete"], &["perfile_delete", "perfile_insert"]),
        (vec!["run", "--results", &r, "--systems", "oracle"], &["\"oracle\"", "sqlite"]),
        (vec!["run", "--results", &r, "--runs", "0"], &["--runs"]),
        (vec!["run", "--results", &r, "--grades=U100"], &["U100", "U<n>"]),
        (vec!["run", "--results", &r, "--placements", "sideways"], &["sideways", "across"]),
        (vec!["run", "--results", &r, "--resume", "no-such-run"], &["no-such-run"]),
        (vec!["run", "--results", &r, "--config", secret_cfg.to_str().unwrap()], &["environment", "password"]),
        (vec!["run", "--results", &r, "--config", typo_cfg.to_str().unwrap()], &["typo.toml", "grade"]),
        (
            vec!["run", "--results", &r, "--config", key_cfg.to_str().unwrap()],
            &["[systems.postgresql]", "unknown key `hots`", "did you mean `host`", "valid keys:", "sslmode"],
        ),
        (
            vec!["run", "--results", &r, "--config", system_cfg.to_str().unwrap()],
            &["[systems.oracle]", "unknown system", "valid systems:", "postgresql"],
        ),
        (
            vec!["run", "--results", &r, "--systems", "sqlite", "--config", pid_cfg.to_str().unwrap()],
            &["[systems.sqlite]", "server_pids", "\"postgres\"", "process ids"],
        ),
    ];
    for (args, needles) in cases {
        let out = output(bin().args(&args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: expected {n:?} in {stderr}");
        }
        assert!(!stderr.contains("hunter2"), "a secret was printed");
    }
    assert!(!results.exists(), "nothing may be created for refused input");
}
