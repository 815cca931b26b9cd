//! MariaDB through the whole tool, against the real server started by `scripts/services.sh
//! up` (settings from `scripts/services.sh env`): `preflight`, a full run in the study's
//! variants with its ground truth, every axis (placement across, refill, native mode, byte
//! budgets), a wrong password that fails only its own cells, and cold cells whose
//! `cold_command` restarts a throwaway server.
//!
//! Without the server these tests print why and pass; under `scripts/test.sh`
//! (`DEDUP_LAB_REQUIRE_SERVERS=1`) a missing server fails them.

use crate::mariadb_server::{MariaServer, ServerOptions, SharedServer};
use crate::support::{journal, run, stages};
use dedup_lab_core::{CellStatus, JournalLine, Measurement, Stage, SystemKind};
use std::path::Path;
use std::process::{Command, Stdio};

const VARS: &[&str] = &[
    "DEDUP_MARIADB_HOST",
    "DEDUP_MARIADB_PORT",
    "DEDUP_MARIADB_USER",
    "DEDUP_MARIADB_PASSWORD",
    "DEDUP_MARIADB_DATA_DIR",
    "DEDUP_MARIADB_SOCKET",
    "DEDUP_MARIADB_ROOT_PASSWORD",
];

fn server() -> Option<SharedServer> {
    crate::support::server_env("mariadb", VARS)?;
    crate::mariadb_server::shared_env()
}

/// `run --config <cfg> --results <results> <args>`; asserts success; returns stdout.
fn run_ok(cfg: &Path, results: &Path, args: &[&str]) -> String {
    let mut a = vec!["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()];
    a.extend_from_slice(args);
    crate::support::succeeded(&a, run(&a))
}

/// The EDR over the internal sizes (InnoDB's pages in use) of an insert stage.
fn internal_edr(m: &Measurement) -> f64 {
    let before = m.internal_before.total_bytes.unwrap() as f64;
    let after = m.internal_after.total_bytes.unwrap() as f64;
    m.logical_bytes as f64 / (after - before)
}

#[test]
fn preflight_succeeds_in_every_variant() {
    if server().is_none() {
        return;
    }
    let out = run(&["preflight", "--systems", "mariadb"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for v in ["dynamic", "compressed", "page-compressed"] {
        assert!(stdout.contains(&format!("ok      mariadb/{v}")), "{v}: {stdout}");
    }
    assert!(stdout.contains("MariaDB") && stdout.contains("fresh connections saw the marker row"), "{stdout}");
}

/// Ground truth: incompressible bytes under DYNAMIC cost their own size in InnoDB's pages
/// (internal EDR within 10 % of 1.0), text under COMPRESSED is compressed (EDR > 1.5); every
/// stage of every variant is valid, and the notes say which bulk path ran and why fs and
/// internal sizes differ.
#[test]
fn a_full_run_has_the_expected_ground_truth() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let lab = "dedup_lab_e2e_m_truth";
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, format!("lab = \"{lab}\"\n[systems.mariadb]\nvariants = [\"dynamic\", \"compressed\"]\n"))
        .unwrap();
    let results = tmp.path().join("r");
    let out = run_ok(
        &cfg,
        &results,
        &[
            "--systems",
            "mariadb",
            "--payload-types",
            "random_binary,text_document",
            "--grades",
            "U0,U90",
            "--records",
            "32",
            "--record-size",
            "512KiB",
        ],
    );
    assert!(out.contains("mariadb/dynamic") && out.contains("mariadb/compressed"), "{out}");
    let lines = journal(&results);
    let mut checked = 0;
    for l in &lines {
        match l {
            JournalLine::Cell { status, reason, .. } => assert_eq!(*status, CellStatus::Ok, "{reason:?}"),
            JournalLine::Stage(m) => {
                assert!(m.valid, "{}: {:?}", m.cell, m.invalid_reasons);
                assert_eq!(m.physical.method, "fs", "the .ibd files are probed");
                let notes = m.notes.join(" | ");
                assert!(notes.contains("sizes: internal = InnoDB's pages in use"), "{notes}");
                if m.stage == Stage::BulkInsert {
                    assert_eq!(m.rows_reported, Some(32));
                    assert!(notes.contains("bulk path: LOAD DATA LOCAL INFILE streamed"), "{notes}");
                    match (m.cell.variant.as_str(), m.cell.payload.as_str()) {
                        ("dynamic", "random_binary") => {
                            let edr = internal_edr(m);
                            eprintln!("DYNAMIC random_binary {}: internal EDR {edr:.3}", m.cell.grade);
                            assert!((edr - 1.0).abs() <= 0.1, "DYNAMIC random bytes: internal EDR {edr}");
                            checked += 1;
                        }
                        ("compressed", "text_document") => {
                            let edr = m.edr_replica.unwrap();
                            eprintln!("COMPRESSED text_document {}: EDR {edr:.3}", m.cell.grade);
                            assert!(edr > 1.5, "COMPRESSED text: EDR {edr}");
                            assert!(internal_edr(m) > 1.5, "COMPRESSED text: internal EDR {}", internal_edr(m));
                            checked += 1;
                        }
                        _ => {}
                    }
                }
                if m.stage == Stage::Maintenance {
                    assert!(notes.contains("OPTIMIZE TABLE"), "{notes}");
                }
            }
        }
    }
    assert_eq!(checked, 4, "two grades × the two ground-truth cells");
    assert!(!srv.database_exists(lab), "the lab database is torn down after the run");
}

/// Placement `across` writes two tables, `refill` runs, native mode uses typed tables, and a
/// byte budget skips the cells that would not fit.
#[test]
fn every_axis_runs() {
    let Some(srv) = server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let lab = "dedup_lab_e2e_m_axes";
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, format!("lab = \"{lab}\"\n[systems.mariadb]\nvariants = [\"page-compressed\"]\n")).unwrap();
    let results = tmp.path().join("r");
    run_ok(
        &cfg,
        &results,
        &[
            "--systems",
            "mariadb",
            "--payload-types",
            "structured_json,uuid_keys",
            "--grades",
            "U50",
            "--records",
            "8",
            "--record-size",
            "16KiB",
            "--placements",
            "within,across",
            "--insertion-mode",
            "both",
            "--stages",
            "bulk_insert,perfile_insert,perfile_delete,maintenance,refill",
            "--keep",
        ],
    );
    let lines = journal(&results);
    let ms = stages(&lines);
    assert_eq!(ms.len(), 2 * 2 * 2 * 5, "2 payloads × 2 placements × 2 modes × 5 stages");
    for m in &ms {
        assert!(m.valid, "{} {}: {:?}", m.cell, m.stage.name(), m.invalid_reasons);
        assert!(m.unsupported.is_none());
    }
    let refills: Vec<_> = ms.iter().filter(|m| m.stage == Stage::Refill).collect();
    assert_eq!(refills.len(), 8);
    assert!(refills.iter().all(|m| m.rows_reported == Some(m.rows_sent) && m.rows_sent > 0));
    let native: Vec<_> = ms.iter().filter(|m| m.cell.mode.to_string() == "native").collect();
    assert!(native.iter().any(|m| m.notes.iter().any(|n| n.contains("native storage: one typed InnoDB table"))));
    // --keep left the last cell's lab: with placement across, both tables hold rows.
    let counts = srv.root_sql(&format!("SELECT (SELECT COUNT(*) FROM {lab}.c0), (SELECT COUNT(*) FROM {lab}.c1)"));
    let (c0, c1): (u64, u64) = (counts[0][0].parse().unwrap(), counts[0][1].parse().unwrap());
    assert!(c0 > 0 && c1 > 0, "placement across fills two tables: {counts:?}");
    srv.root_sql(&format!("DROP DATABASE {lab}"));

    // A byte budget below the dataset: every mariadb cell is skipped, nothing is written.
    let cfg2 = tmp.path().join("budget.toml");
    std::fs::write(
        &cfg2,
        format!("lab = \"{lab}\"\n[systems.mariadb]\nvariants = [\"dynamic\"]\nmax_bytes = \"64KiB\"\n"),
    )
    .unwrap();
    let results2 = tmp.path().join("r2");
    run_ok(
        &cfg2,
        &results2,
        &["--systems", "mariadb,sqlite", "--payload-types", "random_binary", "--grades", "U0", "--records", "8"],
    );
    for l in journal(&results2) {
        match l {
            JournalLine::Cell { cell, status, reason, .. } if cell.system == SystemKind::Mariadb => {
                assert_eq!(status, CellStatus::Skipped);
                assert!(reason.unwrap().contains("max_bytes"));
            }
            JournalLine::Cell { status, .. } => assert_eq!(status, CellStatus::Ok),
            JournalLine::Stage(m) => assert_eq!(m.cell.system, SystemKind::Sqlite, "a skipped cell wrote nothing"),
        }
    }
    assert!(!srv.database_exists(lab));
}

/// Faults through the whole tool: a wrong password, nothing listening, a user without
/// CREATE. Each fails its own cells with an error naming the system and endpoint, is
/// journaled, and the run goes on with the next system; no secret is printed or journaled.
#[test]
fn faults_fail_their_cells_and_the_run_goes_on() {
    let Some(srv) = server() else { return };
    let nocreate_pw = crate::mariadb_server::hex_token(8);
    srv.root_sql(&format!(
        "DROP USER IF EXISTS 'dedup_e2e_nocreate'@'%'; CREATE USER 'dedup_e2e_nocreate'@'%' IDENTIFIED BY \
         '{nocreate_pw}'; GRANT SELECT ON `dedup_lab`.* TO 'dedup_e2e_nocreate'@'%'"
    ));
    let free = crate::mariadb_server::free_port().unwrap().to_string();
    let wrong = "definitely-wrong-pw-4712";
    let endpoint = format!("{}:{}", srv.host, srv.port);
    let cases = [
        ("wrong password", vec![("DEDUP_MARIADB_PASSWORD", wrong)], "authentication failed", endpoint.clone()),
        (
            "unreachable",
            vec![("DEDUP_MARIADB_PORT", free.as_str())],
            "nothing accepts connections",
            format!("{}:{free}", srv.host),
        ),
        (
            "no CREATE",
            vec![("DEDUP_MARIADB_USER", "dedup_e2e_nocreate"), ("DEDUP_MARIADB_PASSWORD", nocreate_pw.as_str())],
            "may not create or drop the lab database",
            endpoint.clone(),
        ),
    ];
    for (what, env, want, endpoint) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let results = tmp.path().join("r");
        let out = Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
            .envs(env.iter().copied())
            .args(["run", "--results", results.to_str().unwrap(), "--systems", "mariadb,sqlite"])
            .args(["--payload-types", "uuid_keys", "--grades", "U50", "--records", "4", "--record-size", "4KiB"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(stderr.contains(want) && stderr.contains(&format!("mariadb {endpoint}")), "{what}: {stderr}");
        let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
        let text = std::fs::read_to_string(crate::support::run_dir(&results).join("measurements.jsonl")).unwrap();
        for secret in [wrong, nocreate_pw.as_str(), srv.password.as_str()] {
            assert!(!all.contains(secret) && !text.contains(secret), "{what}: a password was printed or journaled");
        }
        let mut failed = 0;
        for l in journal(&results) {
            if let JournalLine::Cell { cell, status, reason, .. } = l {
                if cell.system == SystemKind::Mariadb {
                    assert_eq!(status, CellStatus::Failed, "{what}: {cell}");
                    assert!(reason.unwrap_or_default().contains(want), "{what}");
                    failed += 1;
                } else {
                    assert_eq!(status, CellStatus::Ok, "{what}: the run goes on with {cell}");
                }
            }
        }
        assert_eq!(failed, 3, "{what}: one failed cell per variant");
    }
    srv.root_sql("DROP USER 'dedup_e2e_nocreate'@'%'");
}

/// Cold cells: the configured `cold_command` restarts a throwaway server before every stage
/// (restarting the shared one would break the tests beside), the run reconnects, and every
/// stage stays valid.
#[test]
fn a_cold_command_that_restarts_the_server_is_run_before_every_stage() {
    if let Some(why) = MariaServer::unavailable() {
        if crate::support::servers_required() {
            panic!("DEDUP_LAB_REQUIRE_SERVERS=1 but a throwaway MariaDB server cannot start: {why}");
        }
        eprintln!("skipping: {why}");
        return;
    }
    let srv = MariaServer::start(&ServerOptions::default()).expect("a throwaway server starts");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("restarts.log");
    let command = format!(
        "{} && cat '{}' >> '{}' && echo restarted",
        srv.restart_command(),
        srv.data_dir().parent().unwrap().join("m.pid").display(),
        log.display()
    );
    let settings = srv.settings(serde_json::json!({
        "variants": ["dynamic"],
        "cold_command": command,
        "cold_timeout": 120,
    }));
    let toml_text = format!(
        "lab = \"dedup_lab_cold_restart\"\n\n[systems.mariadb]\n{}",
        settings.as_object().unwrap().iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>()
    );
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, toml_text).unwrap();
    let results = tmp.path().join("r");
    run_ok(
        &cfg,
        &results,
        &[
            "--systems",
            "mariadb",
            "--caches",
            "cold",
            "--stages",
            "bulk_insert,perfile_insert",
            "--payload-types",
            "text_document",
            "--grades",
            "U50",
            "--records",
            "6",
            "--record-size",
            "16KiB",
        ],
    );
    let pids: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(String::from).collect();
    assert_eq!(pids.len(), 2, "one restart per stage: {pids:?}");
    assert_ne!(pids[0], pids[1], "the server was restarted between the stages");
    let lines = journal(&results);
    let ms = stages(&lines);
    assert_eq!(ms.len(), 2);
    for m in ms {
        let notes = m.notes.join(" | ");
        assert!(notes.contains("exit status 0") && notes.contains("restarted"), "{notes}");
        assert!(notes.contains("closed the connection"), "{notes}");
        assert!(m.valid, "after a restart the stage is still measured: {:?}", m.invalid_reasons);
        assert_eq!(m.rows_counted, Some(6));
    }
}

/// The server is killed (SIGKILL) in the middle of a journaled run's bulk stage: the mariadb
/// cell is journaled as failed with an error naming the endpoint, the files cell after it
/// still runs, and once the server is back `cleanup --systems mariadb` drops the lab
/// database the dead stage left.
#[test]
fn a_server_killed_mid_run_fails_its_cell_the_run_goes_on_and_cleanup_drops_the_lab() {
    if let Some(why) = MariaServer::unavailable() {
        if crate::support::servers_required() {
            panic!("DEDUP_LAB_REQUIRE_SERVERS=1 but a throwaway MariaDB server cannot start: {why}");
        }
        eprintln!("skipping: {why}");
        return;
    }
    let mut srv = MariaServer::start(&ServerOptions::default()).expect("a throwaway server starts");
    let lab = "dedup_t_m_midrun";
    let settings = srv.settings(serde_json::json!({ "variants": ["dynamic"], "statement_timeout": 20 }));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    let table: String = settings.as_object().unwrap().iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    std::fs::write(&cfg, format!("lab = \"{lab}\"\n[systems.mariadb]\n{table}")).unwrap();
    let results = tmp.path().join("r");
    let child = Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .args(["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .args(["--systems", "mariadb,files", "--payload-types", "random_binary", "--grades", "U0"])
        .args(["--records", "4000", "--record-size", "64KiB", "--stages", "bulk_insert"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once the lab's table file holds 32 MiB: LOAD DATA is streaming.
    let ibd = srv.data_dir().join(lab).join("c0.ibd");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while std::fs::metadata(&ibd).map_or(0, |m| m.len()) <= 32 << 20 {
        assert!(std::time::Instant::now() < deadline, "the bulk stage never reached 32 MiB in {}", ibd.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    srv.kill();
    let out = child.wait_with_output().unwrap();
    let all = crate::support::text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let endpoint = format!("127.0.0.1:{}", srv.port);
    let mut seen = 0;
    for l in journal(&results) {
        if let JournalLine::Cell { cell, status, reason, .. } = l {
            if cell.system == SystemKind::Mariadb {
                assert_eq!(status, CellStatus::Failed, "{cell}");
                let reason = reason.unwrap_or_default();
                assert!(reason.contains(&endpoint), "names the server: {reason}");
            } else {
                assert_eq!(status, CellStatus::Ok, "{cell}: the run goes on");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 2, "one mariadb and one files cell journaled: {all}");

    srv.start_again().expect("the server starts again (crash recovery)");
    let args =
        ["cleanup", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap(), "--systems", "mariadb"];
    let listed = crate::support::ok(&[&args[..], &["--dry-run"]].concat());
    assert!(listed.contains(lab), "the dead stage's database is found: {listed}");
    let dropped = crate::support::ok(&args);
    assert!(dropped.contains("dropped mariadb"), "{dropped}");
    assert!(crate::support::ok(&args).contains("clean   mariadb"), "nothing is left");
    let left =
        srv.sql(&format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{lab}'")).unwrap();
    assert_eq!(left, vec![vec!["0".to_string()]], "the server itself has no lab database");
}
