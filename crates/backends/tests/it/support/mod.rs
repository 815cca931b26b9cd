//! Shared helpers of the server test binaries: skip-or-fail, configs, records, SQL; throwaway
//! PostgreSQL clusters (`pgcluster`) and MariaDB servers (`mariadb`).
#![allow(dead_code)] // each test binary uses a different subset

pub mod mariadb;
pub mod pgcluster;

use dedup_lab_backends::BackendConfig;
use dedup_lab_core::{BackendError, LabName, Namespace, Record, RecordId};
use std::path::PathBuf;

/// `DEDUP_LAB_REQUIRE_SERVERS=1`: a test whose server is missing fails instead of skipping.
pub fn servers_required() -> bool {
    std::env::var("DEDUP_LAB_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// Skips the calling test (prints why), or fails it when servers are required.
/// Use as `let Some(x) = … else { return skip("…") };`.
pub fn skip(reason: &str) {
    if servers_required() {
        panic!("DEDUP_LAB_REQUIRE_SERVERS=1 but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// A config for the local test server of `scripts/services.sh` (`DEDUP_PG_*` from the
/// environment), with `settings` on top; None when the environment does not name one.
pub fn env_pg_config(lab: &str, settings: serde_json::Value) -> Option<BackendConfig> {
    for key in ["DEDUP_PG_HOST", "DEDUP_PG_PORT", "DEDUP_PG_USER", "DEDUP_PG_PASSWORD"] {
        if std::env::var(key).map(|v| v.is_empty()).unwrap_or(true) {
            return None;
        }
    }
    Some(BackendConfig::new(lab.parse().expect("lab name"), "postgresql", "DEDUP_PG", settings, PathBuf::new()))
}

/// A config that reads nothing from the environment (for throwaway clusters).
pub fn isolated_config(lab: &str, system: &str, settings: serde_json::Value) -> BackendConfig {
    BackendConfig::new(lab.parse().expect("lab name"), system, "DEDUP_TEST_NO_SUCH_ENV", settings, PathBuf::new())
}

pub fn ns(lab: &str, containers: u8) -> Namespace {
    Namespace::new(&lab.parse::<LabName>().expect("lab name"), containers)
}

pub fn record(index: u64, container: u8, data: Vec<u8>) -> Record {
    Record::blob(RecordId { key: Record::key_for(index), container }, index, data)
}

/// Deterministic incompressible bytes (xorshift64*).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compressible text: words from a small vocabulary.
pub fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] =
        ["the", "storage", "of", "duplicated", "data", "is", "measured", "in", "bytes", "and", "pages", "again"];
    let r = random_bytes(seed, len / 2 + 16);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(WORDS[usize::from(r[i % r.len()]) % WORDS.len()].as_bytes());
        out.push(b' ');
        i += 1;
    }
    out.truncate(len);
    out
}

/// A record stream over a vector.
pub fn stream(records: Vec<Record>) -> impl Iterator<Item = Result<Record, BackendError>> {
    records.into_iter().map(Ok)
}

/// A file holding `content` (e.g. a password for `password_file`), kept alive with the
/// returned guard.
pub fn secret_file(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    std::fs::write(&path, format!("{content}\n")).expect("write secret");
    (dir, path)
}

/// Runs SQL on a plain (non-TLS) connection and returns the first column of every row as
/// text. For checks the backend does not offer.
impl pgcluster::PgCluster {
    /// Runs SQL as the superuser; returns the first column of each row.
    pub fn sql(&self, db: &str, sql: &str) -> Result<Vec<Option<String>>, String> {
        sql_rows("127.0.0.1", self.port, "postgres", &self.password, db, sql)
    }
}

pub fn sql_rows(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    db: &str,
    sql: &str,
) -> Result<Vec<Option<String>>, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(host).port(port).user(user).password(password).dbname(db);
        let (client, connection) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| format!("{e:?}"))?;
        let task = tokio::spawn(connection);
        let mut out = Vec::new();
        for msg in client.simple_query(sql).await.map_err(|e| format!("{e:?}"))? {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = msg {
                out.push(row.get(0).map(str::to_string));
            }
        }
        drop(client);
        let _ = task.await;
        Ok(out)
    })
}

/// `sql_rows` on the local test server (as `DEDUP_PG_USER`).
pub fn env_sql(sql: &str) -> Vec<Option<String>> {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    sql_rows(
        &var("DEDUP_PG_HOST"),
        var("DEDUP_PG_PORT").parse().expect("DEDUP_PG_PORT"),
        &var("DEDUP_PG_USER"),
        &var("DEDUP_PG_PASSWORD"),
        &std::env::var("DEDUP_PG_DATABASE").unwrap_or_else(|_| var("DEDUP_PG_USER")),
        sql,
    )
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The full error text (context and causes) of a result that must be an error.
pub fn err_text<T>(r: Result<T, BackendError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.chain(),
    }
}
