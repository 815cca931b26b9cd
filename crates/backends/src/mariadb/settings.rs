//! Settings of the MariaDB backend, read from `[systems.mariadb]` or `DEDUP_MARIADB_*`
//! environment variables: the shared server settings ([`ServerSettings`], see
//! [`crate::net::settings`]) plus what only this backend reads.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host`, `port` | `localhost`, 3306 | where the server listens (TCP; never a unix socket) |
//! | `user` | required | who to log in as |
//! | `database` | none | database to connect to; the lab database is used by name whatever it is |
//! | `password` | — | secret: `$DEDUP_MARIADB_PASSWORD`, or `password_env` / `password_file` |
//! | `sslmode` | `prefer` | `disable`, `prefer` (TLS when the server offers it), `require`, `verify-full` |
//! | `sslrootcert`, `tls_server_name` | — | CA file (PEM) for `verify-full`; the name its certificate must carry |
//! | `connect_timeout`, `statement_timeout` | 10 s, none | the whole connect; one statement (`max_statement_time`) |
//! | `data_dir` | — | the server's data directory on this machine, for the `fs` probe |
//! | `preflight_connections` | 4 | fresh connections the preflight compares |
//! | `bulk` | `load` | `load`: streamed `LOAD DATA LOCAL INFILE` (batched `INSERT` when the server forbids it); `insert`: always batched `INSERT` |
//! | `batch_rows`, `batch_bytes` | 1000, 4 MiB | batch limits of the `INSERT` bulk path |
//! | `key_block_size` | 8 | KiB, for variant `compressed` (1, 2, 4, 8 or 16) |
//! | `page_compression_level` | server's | 1–9, for variant `page-compressed` |

use crate::BackendConfig;
pub use crate::net::settings::SslMode;
use crate::net::settings::{Defaults, NameOverride, ServerSettings, bad};
use dedup_lab_core::{BackendError, ErrorClass, LabName};
use std::ops::Deref;
use std::path::PathBuf;

/// The bulk path of `bulk_insert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkPath {
    /// `LOAD DATA LOCAL INFILE`, streamed; batched `INSERT` when the server forbids it.
    Load,
    /// Batched multi-row `INSERT`, always.
    Insert,
}

#[derive(Debug)]
pub struct Settings {
    pub net: ServerSettings,
    /// The lab: the database `<lab>` is the only one dedup-lab creates, writes and drops.
    pub lab: LabName,
    /// The database to connect to (`database`), when one is configured.
    pub connect_db: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub preflight_connections: u32,
    pub bulk: BulkPath,
    pub batch_rows: usize,
    pub batch_bytes: usize,
    pub key_block_size: u32,
    pub page_compression_level: Option<u32>,
}

impl Deref for Settings {
    type Target = ServerSettings;

    fn deref(&self) -> &ServerSettings {
        &self.net
    }
}

pub const SYSTEM: &str = "mariadb";

impl Settings {
    /// Reads the settings; every error is of class [`ErrorClass::Config`].
    pub fn from_config(cfg: &BackendConfig) -> Result<Settings, BackendError> {
        Self::read(cfg).map_err(|e| e.classed(ErrorClass::Config))
    }

    fn read(cfg: &BackendConfig) -> Result<Settings, BackendError> {
        let bad = |key: &str, value: &str, want: &str| bad(SYSTEM, &cfg.env_prefix, key, value, want);
        let defaults = Defaults {
            system: SYSTEM,
            port: 3306,
            user: None,
            // No database is needed to connect; an empty name means none.
            database: Some(""),
            sslmode: SslMode::Prefer,
            name_override: NameOverride::ServerName,
        };
        let net = ServerSettings::from_config(cfg, &defaults)?;
        let connect_db = Some(net.database.clone()).filter(|d| !d.is_empty());
        if connect_db.as_deref() == Some(cfg.lab.as_str()) {
            return Err(BackendError::msg(format!(
                "{SYSTEM}: `database` is {:?}, the lab database itself, which dedup-lab drops and recreates; leave \
                 `database` unset (MariaDB needs none) or name another one via {}",
                net.database,
                net.env("database")
            )));
        }
        if net.host.starts_with('/') {
            return Err(bad("host", &net.host, "a host name or address (dedup-lab connects over TCP only)"));
        }
        let data_dir = cfg.string("data_dir").map(PathBuf::from);
        let preflight_connections = cfg.u64("preflight_connections")?.unwrap_or(4).clamp(1, 64) as u32;
        let bulk = match cfg.string("bulk") {
            None => BulkPath::Load,
            Some(s) => match s.trim().to_ascii_lowercase().as_str() {
                "load" => BulkPath::Load,
                "insert" => BulkPath::Insert,
                _ => return Err(bad("bulk", &s, "load or insert")),
            },
        };
        let batch_rows = cfg.u64("batch_rows")?.unwrap_or(1000).max(1) as usize;
        let batch_bytes = cfg.bytes("batch_bytes")?.unwrap_or(4 << 20).max(1) as usize;
        let key_block_size = match cfg.u64("key_block_size")? {
            None => 8,
            Some(k) if [1, 2, 4, 8, 16].contains(&k) => k as u32,
            Some(k) => return Err(bad("key_block_size", &k.to_string(), "1, 2, 4, 8 or 16 (KiB)")),
        };
        let page_compression_level = match cfg.u64("page_compression_level")? {
            None => None,
            Some(l) if (1..=9).contains(&l) => Some(l as u32),
            Some(l) => return Err(bad("page_compression_level", &l.to_string(), "1 to 9")),
        };
        Ok(Settings {
            net,
            lab: cfg.lab.clone(),
            connect_db,
            data_dir,
            preflight_connections,
            bulk,
            batch_rows,
            batch_bytes,
            key_block_size,
            page_compression_level,
        })
    }

    /// `127.0.0.1:3306 as dedup` (`…:3306/db as dedup` with a database) — never a secret.
    pub fn endpoint(&self) -> String {
        match &self.connect_db {
            Some(db) => format!("{}:{}/{db} as {}", self.host, self.port, self.user),
            None => format!("{}:{} as {}", self.host, self.port, self.user),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(settings: serde_json::Value) -> BackendConfig {
        BackendConfig::new("dedup_lab".parse().unwrap(), "mariadb", "DEDUP_UNIT_NO_ENV", settings, PathBuf::new())
    }

    fn err(settings: serde_json::Value) -> String {
        Settings::from_config(&cfg(settings)).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let s = Settings::from_config(&cfg(json!({"user": "dedup"}))).unwrap();
        assert_eq!((s.host.as_str(), s.port, s.connect_db.as_deref()), ("localhost", 3306, None));
        assert_eq!((s.tls.mode, s.bulk, s.key_block_size), (SslMode::Prefer, BulkPath::Load, 8));
        assert_eq!(s.endpoint(), "localhost:3306 as dedup");
        let s =
            Settings::from_config(&cfg(json!({"user": "u", "database": "app", "bulk": "insert", "key_block_size": 4})))
                .unwrap();
        assert_eq!((s.endpoint().as_str(), s.bulk, s.key_block_size), ("localhost:3306/app as u", BulkPath::Insert, 4));
    }

    #[test]
    fn bad_settings_are_explained() {
        assert!(err(json!({})).contains("no user configured"));
        assert!(err(json!({"user": "u", "database": "dedup_lab"})).contains("the lab database itself"));
        assert!(err(json!({"user": "u", "bulk": "copy"})).contains("load or insert"));
        assert!(err(json!({"user": "u", "key_block_size": 3})).contains("1, 2, 4, 8 or 16"));
        assert!(err(json!({"user": "u", "page_compression_level": 10})).contains("1 to 9"));
        assert!(err(json!({"user": "u", "host": "/run/mysqld"})).contains("TCP only"));
        assert!(err(json!({"user": "u", "password": "x"})).contains("must not be written in the config file"));
        let e = Settings::from_config(&cfg(json!({"user": "u", "bulk": "x"}))).unwrap_err();
        assert_eq!(e.class(), Some(ErrorClass::Config));
    }
}
