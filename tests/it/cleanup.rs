//! `dedup-lab cleanup` against every backend that exists: the embedded stores (real SQLite,
//! fjall, files) and the REAL local PostgreSQL and Redis (standalone and cluster) servers. It lists what is in the lab
//! namespace, `--dry-run` drops nothing, a real cleanup drops exactly that, and what lies
//! outside the lab (a file next to a store, a table in another schema, a schema of another
//! lab) survives. Each new backend joins this file.

use crate::support::{ok, run, run_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let Some(env) = crate::support::server_env("postgresql", PG) else { return };
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

// ----- Redis -----

const REDIS: &[&str] =
    &["DEDUP_REDIS_HOST", "DEDUP_REDIS_PORT", "DEDUP_REDIS_CLUSTER_PORT", "DEDUP_REDIS_ADMIN_PASSWORD"];

/// redis-cli as the admin (default user) on `port`; `-c` follows cluster redirections.
fn redis_admin(env: &[String], port: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .env("REDISCLI_AUTH", &env[3])
        .args(["--no-auth-warning", "-c", "-h", &env[0], "-p", port])
        .args(args)
        .output()
        .expect("redis-cli runs (installed by scripts/services.sh)");
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Cleanup on the standalone server and on the cluster: the lab's keys (under both
/// containers and a stray sub-prefix) are listed and unlinked; keys outside `dedup:`, and
/// keys of another lab whose name starts with this one's, survive.
#[test]
fn cleanup_unlinks_only_the_redis_lab_keys() {
    let Some(env) = crate::support::server_env("redis", REDIS) else { return };
    let lab = "dedup_t_cleanup_redis";
    for (port, cluster) in [(env[1].clone(), false), (env[2].clone(), true)] {
        let ours = [format!("dedup:{lab}:c0:r1"), format!("dedup:{lab}:c1:r2"), format!("dedup:{lab}:c7:r3")];
        let theirs = [format!("dedup:{lab}x:c0:r1"), "other:key".to_string(), format!("{lab}:c0:r1")];
        for k in ours.iter().chain(&theirs) {
            assert_eq!(redis_admin(&env, &port, &["SET", k, "v"]), "OK");
        }
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("c.toml");
        std::fs::write(&cfg, format!("lab = \"{lab}\"\n\n[systems.redis]\nport = {port}\n")).unwrap();
        let args = [
            "cleanup",
            "--config",
            cfg.to_str().unwrap(),
            "--results",
            tmp.path().to_str().unwrap(),
            "--systems",
            "redis",
        ];
        let listed = ok(&[&args[..], &["--dry-run"]].concat());
        assert!(listed.contains("found   redis"), "{listed}");
        for g in ["c0", "c1", "c7"] {
            assert!(listed.contains(&format!("dedup:{lab}:{g}:*")), "{g} listed (cluster {cluster}): {listed}");
        }
        assert!(!listed.contains(&format!("{lab}x")) && !listed.contains("other"), "{listed}");
        assert_eq!(redis_admin(&env, &port, &["EXISTS", &ours[0]]), "1", "--dry-run drops nothing");
        let dropped = ok(&args);
        assert!(dropped.contains("dropped redis"), "{dropped}");
        for k in &ours {
            assert_eq!(redis_admin(&env, &port, &["EXISTS", k]), "0", "{k} dropped (cluster {cluster})");
        }
        for k in &theirs {
            assert_eq!(redis_admin(&env, &port, &["EXISTS", k]), "1", "{k} survives (cluster {cluster})");
            redis_admin(&env, &port, &["DEL", k]);
        }
        let again = ok(&args);
        assert!(again.contains("clean   redis"), "{again}");
    }
}

const CH: &[&str] = &["DEDUP_CLICKHOUSE_HOST", "DEDUP_CLICKHOUSE_PORT", "DEDUP_CLICKHOUSE_ADMIN_PASSWORD"];

/// Runs SQL on the ClickHouse test server as its admin user (curl; the password in a
/// header); returns the TabSeparated answer.
fn clickhouse_admin(env: &[String], sql: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--data-binary", sql, "-H", "X-ClickHouse-User: default", "-H"])
        .arg(format!("X-ClickHouse-Key: {}", env[2]))
        .arg(format!("http://{}:{}/", env[0], env[1]))
        .output()
        .expect("curl runs (installed by scripts/services.sh)");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// ClickHouse: `cleanup` lists the lab database and its tables and drops only that
/// database; a database of another name survives.
#[test]
fn cleanup_drops_the_clickhouse_lab_database_and_leaves_other_databases_alone() {
    let Some(env) = crate::support::server_env("clickhouse", CH) else { return };
    let (lab, other) = ("dedup_t_ch_3", "dedup_t_ch_3x");
    for db in [lab, other] {
        clickhouse_admin(&env, &format!("DROP DATABASE IF EXISTS {db}"));
        clickhouse_admin(&env, &format!("CREATE DATABASE {db}"));
    }
    for t in ["c0", "c1", "c7"] {
        clickhouse_admin(&env, &format!("CREATE TABLE {lab}.{t} (k String) ENGINE = MergeTree ORDER BY k"));
    }
    clickhouse_admin(&env, &format!("INSERT INTO {lab}.c0 VALUES ('left behind')"));
    clickhouse_admin(&env, &format!("CREATE TABLE {other}.c0 (k String) ENGINE = TinyLog"));
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
        "clickhouse",
    ];
    let listed = ok(&[&args[..], &["--dry-run"]].concat());
    assert!(listed.contains("found   clickhouse") && listed.contains(&format!("database {lab}")), "{listed}");
    for t in ["c0", "c1", "c7"] {
        assert!(listed.contains(&format!("table {lab}.{t}")), "{t} is listed: {listed}");
    }
    assert!(!listed.contains(other), "only the lab is listed: {listed}");
    let count = |db: &str| clickhouse_admin(&env, &format!("SELECT count() FROM system.databases WHERE name = '{db}'"));
    assert_eq!(count(lab), "1", "--dry-run drops nothing");

    let dropped = ok(&args);
    assert!(dropped.contains("dropped clickhouse"), "{dropped}");
    assert_eq!(count(lab), "0", "the lab database is gone");
    assert_eq!(clickhouse_admin(&env, &format!("SELECT count() FROM system.tables WHERE database = '{other}'")), "1");
    let again = ok(&args);
    assert!(again.contains("clean   clickhouse"), "{again}");
    clickhouse_admin(&env, &format!("DROP DATABASE {other}"));
}

// ----- S3 (the real local SeaweedFS of `scripts/services.sh up s3`) -----

const S3: &[&str] = &["DEDUP_S3_ENDPOINT", "DEDUP_S3_ACCESS_KEY", "DEDUP_S3_SECRET_KEY"];

/// An S3 request signed by curl itself (credentials on stdin); returns (status, body).
fn s3_curl(env: &[String], method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::Write;
    let mut child = Command::new("curl")
        .args(["-s", "-K", "-", "-X", method, "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--data-binary", "@/dev/null"].iter().filter(|_| body.is_empty() && method == "PUT"))
        .arg(format!("{}{path}", env[0]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl runs");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "user = \"{}:{}\"", env[1], env[2]).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn s3_buckets(env: &[String]) -> Vec<String> {
    let (status, body) = s3_curl(env, "GET", "/", b"");
    assert_eq!(status, 200, "ListBuckets: {body}");
    let mut b: Vec<String> =
        body.split("<Name>").skip(1).filter_map(|s| s.split("</Name>").next()).map(str::to_string).collect();
    b.sort();
    b
}

/// `cleanup --systems minio` (the alias) lists the lab's buckets with their objects, drops
/// them (emptied first), and leaves buckets outside the lab alone: another lab's, and one
/// whose name merely starts like the lab's.
#[test]
fn cleanup_drops_the_s3_lab_buckets_and_leaves_other_buckets_alone() {
    let Some(env) = crate::support::server_env("s3", S3) else { return };
    let lab = "dedup_t_s3_cleanup";
    let ours = ["dedup-t-s3-cleanup-c0", "dedup-t-s3-cleanup-c7"];
    let foreign = ["dedup-t-s3-cleanup-c0-c0", "dedup-t-s3-cleanupx-c0", "photos-dedup-t-s3-cleanup-c1"];
    for b in ours.iter().chain(&foreign) {
        let (status, body) = s3_curl(&env, "PUT", &format!("/{b}"), b"");
        assert!(status == 200 || body.contains("BucketAlreadyOwnedByYou"), "create {b}: {status} {body}");
        let (status, body) = s3_curl(&env, "PUT", &format!("/{b}/left-behind"), b"");
        assert_eq!(status, 200, "put into {b}: {body}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, format!("lab = \"{lab}\"\n")).unwrap();
    let args =
        ["cleanup", "--config", cfg.to_str().unwrap(), "--results", tmp.path().to_str().unwrap(), "--systems", "minio"];

    let listed = ok(&[&args[..], &["--dry-run"]].concat());
    assert!(listed.contains("found   s3"), "{listed}");
    for b in ours {
        assert!(listed.contains(&format!("bucket {b} (1 objects")), "{b} is listed: {listed}");
    }
    for b in foreign {
        assert!(!listed.contains(&format!("bucket {b} ")), "only the lab is listed: {listed}");
    }
    let all = s3_buckets(&env);
    assert!(ours.iter().chain(&foreign).all(|b| all.contains(&b.to_string())), "--dry-run drops nothing: {all:?}");

    let dropped = ok(&args);
    assert!(dropped.contains("dropped s3"), "{dropped}");
    let all = s3_buckets(&env);
    assert!(ours.iter().all(|b| !all.contains(&b.to_string())), "the lab's buckets are gone: {all:?}");
    for b in foreign {
        assert!(all.contains(&b.to_string()), "{b} survives: {all:?}");
        assert_eq!(s3_curl(&env, "GET", &format!("/{b}/left-behind"), b"").0, 200, "{b} keeps its object");
    }
    let again = ok(&args);
    assert!(again.contains("clean   s3"), "{again}");
    for b in foreign {
        s3_curl(&env, "DELETE", &format!("/{b}/left-behind"), b"");
        s3_curl(&env, "DELETE", &format!("/{b}"), b"");
    }
}

const MARIADB: &[&str] = &["DEDUP_MARIADB_HOST", "DEDUP_MARIADB_SOCKET", "DEDUP_MARIADB_ROOT_PASSWORD"];

/// MariaDB: the lab database and everything in it is listed and dropped; a database of
/// another lab (whose name starts with the lab's) survives.
#[test]
fn cleanup_drops_the_mariadb_lab_database_and_leaves_other_databases_alone() {
    if crate::support::server_env("mariadb", MARIADB).is_none() {
        return;
    }
    let srv = crate::mariadb_server::shared_env().expect("checked above");
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
