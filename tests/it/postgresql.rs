//! PostgreSQL through the whole tool, against the real server started by
//! `scripts/services.sh up` (settings from `scripts/services.sh env`): `preflight`, full runs with both TOAST variants and their ground
//! truth, and a wrong password that fails only its own cells.
//!
//! Without the server these tests print why and pass; under `scripts/test.sh`
//! (`DEDUP_LAB_REQUIRE_SERVERS=1`) a missing server fails them.

use crate::support::{files_with_content, journal, run};
use dedup_lab_core::{CellStatus, JournalLine, Stage, SystemKind};
use std::process::{Command, Stdio};

const VARS: &[&str] = &["DEDUP_PG_HOST", "DEDUP_PG_PORT", "DEDUP_PG_USER", "DEDUP_PG_PASSWORD", "DEDUP_PG_DATA_DIR"];

fn pg() -> Option<Vec<String>> {
    crate::support::server_env("postgresql", VARS)
}

/// Asks the server itself (through psql) whether a schema exists.
fn schema_exists(env: &[String], schema: &str) -> bool {
    schema_exists_in(env, "dedup", schema)
}

fn schema_exists_in(env: &[String], db: &str, schema: &str) -> bool {
    let out = Command::new("psql")
        .env("PGPASSWORD", &env[3])
        .args(["-X", "-h", &env[0], "-p", &env[1], "-U", &env[2], "-d", db, "-tAc"])
        .arg(format!("SELECT count(*) FROM information_schema.schemata WHERE schema_name = '{schema}'"))
        .output()
        .expect("psql runs (installed by scripts/services.sh)");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim() != "0"
}

#[test]
fn preflight_succeeds_against_the_local_server() {
    if pg().is_none() {
        return;
    }
    // A lab of its own: other tests run on the same server at the same time.
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "lab = \"dedup_t_preflight\"\n").unwrap();
    let out = run(&["preflight", "--config", cfg.to_str().unwrap(), "--systems", "postgresql"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("ok      postgresql/extended") && stdout.contains("ok      postgresql/external"),
        "{stdout}"
    );
    assert!(stdout.contains("PostgreSQL 15"), "{stdout}");
}

/// Ground truth: incompressible bytes stored EXTERNAL take about their own size (EDR ≈ 1),
/// text stored EXTENDED is compressed (EDR > 1.5); and every stage of both variants is valid.
#[test]
fn a_full_run_has_the_expected_ground_truth() {
    let Some(env) = pg() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // A lab of its own in a database of its own: transactions that other tests keep open in
    // the shared database would hold back VACUUM FULL's horizon (deleted rows stay "recently
    // dead"), and the reclaim check below would then depend on timing.
    let db = "dedup_t_truth";
    let out = Command::new("psql")
        .env("PGPASSWORD", &env[3])
        .args(["-X", "-h", &env[0], "-p", &env[1], "-U", &env[2], "-d", "dedup", "-tAc"])
        .arg(format!("CREATE DATABASE {db}"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || err.contains("already exists"), "creating {db}: {err}");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, format!("lab = \"dedup_lab_e2e_truth\"\n\n[systems.postgresql]\ndatabase = \"{db}\"\n"))
        .unwrap();
    let results = tmp.path().join("r");
    let out = run(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--systems",
        "postgresql",
        "--payload-types",
        "random_binary,text_document",
        "--grades",
        "U0,U90",
        "--records",
        "16",
        "--record-size",
        "256KiB",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("postgresql/external") && stdout.contains("postgresql/extended"), "{stdout}");
    let lines = journal(&results);
    let (mut checked, mut cells, mut measured, mut maintained) = (0, 0, 0, 0);
    for l in &lines {
        match l {
            JournalLine::Cell { status, reason, .. } => {
                assert_eq!(*status, CellStatus::Ok, "{reason:?}");
                cells += 1;
            }
            JournalLine::Stage(m) => {
                measured += 1;
                assert!(m.valid, "{}: {:?}", m.cell, m.invalid_reasons);
                assert_eq!(m.physical.method, "fs", "the local data directory is probed");
                if m.stage == Stage::BulkInsert {
                    // COPY reports its row count (the original harness read 0).
                    assert_eq!(m.rows_reported, Some(16));
                    let edr = m.edr_replica.unwrap();
                    match (m.cell.variant.as_str(), m.cell.payload.as_str()) {
                        ("external", "random_binary") => {
                            assert!((edr - 1.0).abs() <= 0.1, "EXTERNAL random bytes: EDR {edr}");
                            checked += 1;
                        }
                        ("extended", "text_document") => {
                            assert!(edr > 1.5, "EXTENDED text: EDR {edr}");
                            checked += 1;
                        }
                        _ => {}
                    }
                }
                if m.stage == Stage::Maintenance {
                    maintained += 1;
                    assert!(m.notes.iter().any(|n| n.contains("VACUUM (FULL")), "{:?}", m.notes);
                    assert!(m.reclaimed_share.unwrap() > 0.5, "VACUUM FULL gives back the deleted rows: {m:?}");
                }
            }
        }
    }
    assert_eq!(checked, 4, "two grades × the two ground-truth cells");
    // 2 variants × 2 payload types × 2 grades, four stages each.
    assert_eq!((cells, measured, maintained), (8, 32, 8), "every cell and stage is journaled");
    assert!(!schema_exists_in(&env, db, "dedup_lab_e2e_truth"), "the lab schema is torn down after the run");
}

#[test]
fn a_wrong_password_fails_its_cells_and_the_run_goes_on() {
    let Some(env) = pg() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    let out = Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .env("DEDUP_PG_PASSWORD", "definitely-wrong-pw-4711")
        .args(["run", "--results", results.to_str().unwrap(), "--systems", "postgresql,sqlite"])
        .args(["--payload-types", "uuid_keys", "--grades", "U50", "--records", "4", "--record-size", "4KiB"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let endpoint = format!("{}:{}", env[0], env[1]);
    assert!(stderr.contains("password") && stderr.contains(&endpoint), "names the endpoint and the cause: {stderr}");
    let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(!all.contains("definitely-wrong-pw-4711"), "the password was printed");
    let journal_text = std::fs::read_to_string(
        std::fs::read_dir(&results).unwrap().flatten().next().unwrap().path().join("measurements.jsonl"),
    )
    .unwrap();
    assert!(!journal_text.contains("definitely-wrong-pw-4711"), "the password was journaled");
    let mut cells = 0;
    for l in journal(&results) {
        if let JournalLine::Cell { cell, status, .. } = l {
            let want = if cell.system == SystemKind::Postgresql { CellStatus::Failed } else { CellStatus::Ok };
            assert_eq!(status, want, "{cell}");
            cells += 1;
        }
    }
    assert_eq!(cells, 3, "two PostgreSQL variants failed, the sqlite cell ran");
}

/// The server's real password, on a run that succeeds, appears in no output and no file
/// the run wrote: stdout, stderr, run.json, the journal, every export, the scratch space.
#[test]
fn the_real_password_is_written_nowhere_by_a_successful_run() {
    let Some(env) = pg() else { return };
    let password = &env[3];
    assert!(
        password.len() >= 16,
        "the test server's password is distinctive (scripts/services.sh makes 32 hex digits)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("r");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "lab = \"dedup_t_secret\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .env("DEDUP_LAB_SCRATCH", &scratch)
        .args(["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .args(["--systems", "postgresql,sqlite"])
        .args(["--payload-types", "uuid_keys", "--grades", "U50", "--records", "4", "--record-size", "4KiB"])
        .args(["--export", "csv,json,md,tex,html", "--caches", "warm,cold"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains(password.as_str()) && !stderr.contains(password.as_str()), "printed the password");
    let files = files_with_content(&results);
    let names: Vec<String> = files.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["run.json", "measurements.jsonl", "report.csv", "report.json", "report.md", "report.html"] {
        assert!(names.iter().any(|n| n == want), "{want} was written: {names:?}");
    }
    assert!(files.iter().any(|(p, _)| p.extension().is_some_and(|e| e == "tex")), "LaTeX export: {names:?}");
    for (path, content) in files.iter().chain(files_with_content(&scratch).iter()) {
        let hit = content.windows(password.len()).any(|w| w == password.as_bytes());
        assert!(!hit, "{} holds the password", path.display());
    }
}

/// Resume after SIGKILL on PostgreSQL: killed mid-cell several times and resumed, the run
/// keeps every finished line byte for byte, moves partial cells to `discarded.jsonl`, ends
/// with each cell exactly once, and leaves no lab schema behind.
#[test]
fn a_postgresql_run_killed_and_resumed_keeps_what_it_measured() {
    let Some(env) = pg() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "lab = \"dedup_t_resume\"\n").unwrap();
    let results = tmp.path().join("r");
    let args: Vec<String> = [
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--systems",
        "postgresql",
        "--payload-types",
        "random_binary,text_document",
        "--grades",
        "U0,U50",
        "--records",
        "24",
        "--record-size",
        "32KiB",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (run, kills) = crate::support::kill_and_resume(&results, &args, &[3, 9]);
    assert!(kills >= 2, "killed mid-way (was {kills})");
    let lines = journal(&results);
    let mut cells: Vec<String> = lines
        .iter()
        .filter_map(|l| match l {
            JournalLine::Cell { cell, status, .. } => {
                assert_eq!(*status, CellStatus::Ok, "{cell}");
                Some(cell.to_string())
            }
            _ => None,
        })
        .collect();
    cells.sort();
    let n = cells.len();
    cells.dedup();
    assert_eq!((n, cells.len()), (8, 8), "2 variants × 2 payloads × 2 grades, each once");
    assert!(run.join("discarded.jsonl").is_file());
    assert!(!schema_exists(&env, "dedup_t_resume"), "no lab schema is left behind");
}

/// Every measured stage records dedup-lab's own CPU time (and share of the machine) and,
/// with the test server's pid file in `DEDUP_PG_SERVER_PID_FILES`, the server's CPU time
/// read through the postmaster's process tree; the end-of-run summary says both. The
/// embedded store beside it has no server figure.
#[test]
fn each_stage_records_the_tools_and_the_servers_cpu_time() {
    let Some(_env) = pg() else { return };
    let Ok(pid_file) = std::env::var("DEDUP_PG_SERVER_PID_FILES") else {
        assert!(!crate::support::servers_required(), "scripts/services.sh env names the server's pid file");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "lab = \"dedup_t_footprint\"\n[systems.postgresql]\nvariants = [\"extended\"]\n").unwrap();
    let results = tmp.path().join("r");
    let stdout = crate::support::ok(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--systems",
        "postgresql,files",
        "--payload-types",
        "text_document",
        "--grades",
        "U50",
        "--records",
        "400",
        "--record-size",
        "64KiB",
    ]);
    assert!(stdout.contains("instrument: dedup-lab used"), "{stdout}");
    assert!(stdout.contains("the servers"), "{stdout}");
    let lines = journal(&results);
    let (mut pg_stages, mut server_ns, mut tool_ns) = (0, 0u64, 0u64);
    for m in crate::support::stages(&lines) {
        let f = m.footprint.as_ref().unwrap_or_else(|| panic!("{} {}: no footprint", m.cell, m.stage));
        assert!(f.wall_ns > 0 && f.cores >= 1, "{f:?}");
        let share = f.tool_share().unwrap();
        assert!((0.0..=1.0).contains(&share), "{} {}: share {share}", m.cell, m.stage);
        tool_ns += f.tool_cpu_ns();
        if m.cell.system == SystemKind::Postgresql {
            pg_stages += 1;
            server_ns += f.server_cpu_ns.unwrap_or_else(|| panic!("{} {}: {:?}", m.cell, m.stage, f.server_note));
            assert!(f.server_note.as_deref().unwrap_or_default().contains(&pid_file), "{f:?}");
        } else {
            assert_eq!((f.server_cpu_ns, f.server_note.as_deref()), (None, None), "{}: no server", m.cell);
        }
    }
    assert!(pg_stages >= 4, "every PostgreSQL stage measured ({pg_stages})");
    // 25 MiB of text through COPY and 400 single-row inserts cost the server measurable CPU
    // (the kernel counts in 10 ms ticks), and generating them costs dedup-lab some.
    assert!(server_ns >= 10_000_000, "server CPU {server_ns} ns");
    assert!(tool_ns > 0, "tool CPU {tool_ns} ns");
}
