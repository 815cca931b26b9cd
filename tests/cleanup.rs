//! `dedup-lab cleanup` against every backend that exists: the embedded stores (real SQLite,
//! fjall, files) and the REAL local PostgreSQL and MariaDB servers. It lists what is in the lab
//! namespace, `--dry-run` drops nothing, a real cleanup drops exactly that, and what lies
//! outside the lab (a file next to a store, a table in another schema, a schema of another
//! lab) survives. Each new backend joins this file.

#[path = "../crates/backends/tests/support/mariadb.rs"]
#[allow(dead_code)] // shared with the backend tests, which use all of it
mod mariadb;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{ok, run, run_dir};

/// Every file below `dir` (not directories).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn cleanup_drops_the_embedded_stores_of_interrupted_runs_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let dir = tmp.path().join("own-dir");
    let cfg = tmp.path().join("c.toml");
    // `files` keeps its store in a configured directory; sqlite and lsm in the run's `lab`.
    std::fs::write(&cfg, format!("[systems.files]\ndir = {:?}\n", dir.display().to_string())).unwrap();
    let c = cfg.to_str().unwrap();
    let r = results.to_str().unwrap();
    // --keep leaves the stores as an interrupted run would.
    ok(&[
        "run",
        "--config",
        c,
        "--results",
        r,
        "--keep",
        "--systems",
        "sqlite,lsm,files",
        "--payload-types",
        "random_binary",
        "--grades",
        "U0",
        "--records",
        "4",
        "--record-size",
        "4KiB",
        "--stages",
        "bulk_insert",
    ]);
    let lab_dir = run_dir(&results).join("lab");
    let sqlite_db = lab_dir.join("sqlite/dedup_lab.sqlite");
    let lsm_db = lab_dir.join("lsm/dedup_lab");
    let files_ns = dir.join("files/dedup_lab");
    for p in [&sqlite_db, &lsm_db, &files_ns] {
        assert!(p.exists(), "{} must be there after a --keep run", p.display());
    }
    // Things that are not the lab's, right next to its stores.
    let foreign = [lab_dir.join("sqlite/notes.txt"), lab_dir.join("mine.db"), dir.join("files/other_lab/x")];
    for f in &foreign {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"not the lab's").unwrap();
    }
    let before = files_below(tmp.path());

    let args = ["cleanup", "--config", c, "--results", r, "--systems", "sqlite,lsm,files"];
    let listed = ok(&[&args[..], &["--dry-run"]].concat());
    for (system, what) in [("sqlite", &sqlite_db), ("lsm", &lsm_db), ("files", &files_ns)] {
        assert!(listed.contains(&format!("found   {system}")), "{listed}");
        assert!(listed.contains(&what.display().to_string()), "{system}: {listed}");
    }
    assert_eq!(files_below(tmp.path()), before, "--dry-run must drop nothing");

    let dropped = ok(&args);
    assert!(dropped.contains("dropped sqlite") && dropped.contains("dropped lsm"), "{dropped}");
    assert!(dropped.contains("dropped files"), "{dropped}");
    for p in [&sqlite_db, &lsm_db, &files_ns] {
        assert!(!p.exists(), "{} must be gone", p.display());
    }
    assert!(!lab_dir.join("lsm").exists(), "an emptied store folder is removed");
    for f in &foreign {
        assert_eq!(std::fs::read(f).unwrap(), b"not the lab's", "{} must survive", f.display());
    }
    // Nothing is left of the lab: a second cleanup finds nothing.
    let again = ok(&args);
    assert!(!again.contains("dropped") && again.matches("clean ").count() >= 3, "{again}");
}

const PG: &[&str] = &["DEDUP_PG_HOST", "DEDUP_PG_PORT", "DEDUP_PG_USER", "DEDUP_PG_PASSWORD"];

/// Runs SQL on the test server as the test user through psql; returns the output lines.
fn psql(env: &[String], sql: &str) -> Vec<String> {
    let out = Command::new("psql")
        .env("PGPASSWORD", &env[3])
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", &env[0], "-p", &env[1], "-U", &env[2], "-d", "dedup", "-tAc"])
        .arg(sql)
        .output()
        .expect("psql runs (installed by scripts/services.sh)");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn tables_of(env: &[String], schema: &str) -> Vec<String> {
    psql(env, &format!("SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1"))
}

/// The original bug: `cleanup --systems postgresql` failed with `postgresql has no variant
/// "default"`. Now it opens a variant PostgreSQL has, lists the lab schema and its tables,
/// and drops only those.
#[test]
fn cleanup_drops_the_postgresql_lab_schema_and_leaves_other_schemas_alone() {
    let Some(env) = support::server_env("postgresql", PG) else { return };
    let lab = "dedup_t_cleanup";
    psql(
        &env,
        &format!(
            "DROP SCHEMA IF EXISTS {lab} CASCADE; DROP SCHEMA IF EXISTS {lab}x CASCADE; \
             DROP TABLE IF EXISTS public.{lab}_c0; \
             CREATE SCHEMA {lab}; CREATE TABLE {lab}.c0 (k text); CREATE TABLE {lab}.c1 (k text); \
             CREATE TABLE {lab}.c7 (k text); INSERT INTO {lab}.c0 VALUES ('left behind'); \
             CREATE SCHEMA {lab}x; CREATE TABLE {lab}x.c0 (k text); CREATE TABLE public.{lab}_c0 (k text)"
        ),
    );
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, format!("lab = \"{lab}\"\n")).unwrap();
    let args =
        ["cleanup", "--config", cfg.to_str().unwrap(), "--results", tmp.path().to_str().unwrap(), "--systems", "pg"];

    let listed = ok(&[&args[..], &["--dry-run"]].concat());
    assert!(listed.contains("found   postgresql"), "{listed}");
    for t in ["c0", "c1", "c7"] {
        assert!(listed.contains(&format!("{lab}.{t}")), "{t} is listed: {listed}");
    }
    assert!(!listed.contains(&format!("{lab}x")) && !listed.contains("public"), "only the lab is listed: {listed}");
    assert_eq!(tables_of(&env, lab), ["c0", "c1", "c7"], "--dry-run drops nothing");

    let dropped = ok(&args);
    assert!(dropped.contains("dropped postgresql"), "{dropped}");
    assert!(psql(&env, &format!("SELECT 1 FROM pg_namespace WHERE nspname = '{lab}'")).is_empty(), "schema gone");
    assert_eq!(tables_of(&env, &format!("{lab}x")), ["c0"], "another lab's schema survives");
    assert_eq!(psql(&env, &format!("SELECT to_regclass('public.{lab}_c0') IS NOT NULL")), ["t"], "public survives");
    let again = ok(&args);
    assert!(again.contains("clean   postgresql"), "{again}");
    psql(&env, &format!("DROP SCHEMA {lab}x CASCADE; DROP TABLE public.{lab}_c0"));
}

const MARIADB: &[&str] = &["DEDUP_MARIADB_HOST", "DEDUP_MARIADB_SOCKET", "DEDUP_MARIADB_ROOT_PASSWORD"];

/// MariaDB: the lab database and everything in it is listed and dropped; a database of
/// another lab (whose name starts with the lab's) survives.
#[test]
fn cleanup_drops_the_mariadb_lab_database_and_leaves_other_databases_alone() {
    if support::server_env("mariadb", MARIADB).is_none() {
        return;
    }
    let srv = mariadb::shared_env().expect("checked above");
    let lab = "dedup_t_m_cleanup";
    srv.root_sql(&format!(
        "DROP DATABASE IF EXISTS {lab}; DROP DATABASE IF EXISTS {lab}x; CREATE DATABASE {lab}; \
         CREATE TABLE {lab}.c0 (k TEXT); CREATE TABLE {lab}.c1 (k TEXT); CREATE TABLE {lab}.c7 (k TEXT); \
         INSERT INTO {lab}.c0 VALUES ('left behind'); CREATE DATABASE {lab}x; CREATE TABLE {lab}x.c0 (k TEXT)"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, format!("lab = \"{lab}\"\n")).unwrap();
    let args = [
        "cleanup",
        "--config",
        cfg.to_str().unwrap(),
        "--results",
        tmp.path().to_str().unwrap(),
        "--systems",
        "mariadb",
    ];
    let listed = ok(&[&args[..], &["--dry-run"]].concat());
    assert!(listed.contains("found   mariadb") && listed.contains(&format!("database {lab}")), "{listed}");
    for t in ["c0", "c1", "c7"] {
        assert!(listed.contains(&format!("{lab}.{t}")), "{t} is listed: {listed}");
    }
    assert!(!listed.contains(&format!("{lab}x")), "only the lab is listed: {listed}");
    assert!(srv.database_exists(lab), "--dry-run drops nothing");

    let dropped = ok(&args);
    assert!(dropped.contains("dropped mariadb"), "{dropped}");
    assert!(!srv.database_exists(lab), "the lab database is gone");
    assert!(srv.database_exists(&format!("{lab}x")), "another lab's database survives");
    let again = ok(&args);
    assert!(again.contains("clean   mariadb"), "{again}");
    srv.root_sql(&format!("DROP DATABASE {lab}x"));
}

/// A system that cannot be reached fails its own line and the exit code, and the others are
/// still cleaned.
#[test]
fn cleanup_reports_an_unreachable_server_and_still_cleans_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[systems.postgresql]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"nobody\"\n\n[systems.files]\ndir = {:?}\n",
            tmp.path().join("d").display().to_string()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(tmp.path().join("d/files/dedup_lab/c0")).unwrap();
    let out = run(&[
        "cleanup",
        "--config",
        cfg.to_str().unwrap(),
        "--results",
        tmp.path().to_str().unwrap(),
        "--systems",
        "postgresql,files",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED  postgresql") && stdout.contains("127.0.0.1:1"), "{stdout}");
    assert!(stdout.contains("dropped files"), "{stdout}");
    assert!(!tmp.path().join("d/files/dedup_lab").exists());
}
