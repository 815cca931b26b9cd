//! Cold cells against a real PostgreSQL server that the configured `cold_command` restarts
//! before every stage: the run reconnects after each restart, every stage stays valid, and
//! the server really was restarted (its start time moves on).
//!
//! The server is a throwaway cluster (the backend tests' `pgcluster` helper), since
//! restarting the shared server of `scripts/services.sh` would break tests running beside.
//! Without PostgreSQL server binaries this prints why and passes; under `scripts/test.sh`
//! (`DEDUP_LAB_REQUIRE_SERVERS=1`) it fails.

use crate::pgcluster::{ClusterOptions, PgCluster};
use dedup_lab_core::{CellStatus, JournalLine};
use std::process::{Command, Stdio};

#[test]
fn a_cold_command_that_restarts_the_server_is_run_before_every_stage() {
    if let Some(why) = PgCluster::unavailable() {
        if crate::support::servers_required() {
            panic!("DEDUP_LAB_REQUIRE_SERVERS=1 but a throwaway PostgreSQL cluster cannot start: {why}");
        }
        eprintln!("skipping: {why}");
        return;
    }
    let cluster = PgCluster::start(&ClusterOptions::default()).expect("a throwaway cluster starts");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("restarts.log");
    let pid_file = cluster.data_dir().join("postmaster.pid");
    // The first line of postmaster.pid is the server's process id: a new one per restart.
    let command = format!(
        "{} >/dev/null && head -n 1 '{}' >> '{}' && echo restarted",
        cluster.restart_command(),
        pid_file.display(),
        log.display()
    );
    let cfg = tmp.path().join("c.toml");
    let settings = cluster.settings(serde_json::json!({
        "variants": ["extended"],
        "cold_command": command,
        "cold_timeout": 120,
        // Named here: the environment of scripts/services.sh names the shared server's.
        "data_dir": cluster.data_dir(),
    }));
    let toml_text = format!(
        "lab = \"dedup_lab_cold_restart\"\n\n[systems.postgresql]\n{}",
        settings.as_object().unwrap().iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>()
    );
    std::fs::write(&cfg, toml_text).unwrap();
    let results = tmp.path().join("r");
    let out = Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .args(["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .args(["--systems", "postgresql", "--caches", "cold", "--stages", "bulk_insert,perfile_insert"])
        .args(["--payload-types", "text_document", "--grades", "U50", "--records", "6", "--record-size", "16KiB"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    let pids: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(String::from).collect();
    assert_eq!(pids.len(), 2, "one restart per stage: {pids:?}");
    assert_ne!(pids[0], pids[1], "the server was restarted between the stages");
    let mut stages = 0;
    for line in crate::support::journal(&results) {
        match line {
            JournalLine::Stage(m) => {
                stages += 1;
                let notes = m.notes.join(" | ");
                assert!(notes.contains("exit status 0") && notes.contains("restarted"), "{notes}");
                assert!(notes.contains("closed the connection"), "{notes}");
                assert!(m.valid, "after a restart the stage is still measured: {:?}", m.invalid_reasons);
                assert_eq!(m.rows_counted, Some(6));
            }
            JournalLine::Cell { status, reason, .. } => assert_eq!(status, CellStatus::Ok, "{reason:?}"),
        }
    }
    assert_eq!(stages, 2);
}
