//! Connection settings of the PostgreSQL / CockroachDB backend, read from the system's
//! settings table or `DEDUP_PG_*` / `DEDUP_CRDB_*` environment variables: the shared server
//! settings ([`ServerSettings`], see [`crate::net::settings`]) plus what only this backend
//! reads, and the CockroachDB rules.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host` | `localhost` | host name (or a unix socket directory starting with `/`) |
//! | `hostaddr` | — | numeric IP to connect to; `host` is then only used for TLS name checks |
//! | `port` | 5432 / 26257 | TCP port |
//! | `user` | required | role to log in as |
//! | `database` | `user` / `defaultdb` | database to connect to (PostgreSQL: the lab schema lives in it) |
//! | `password` | — | secret: `$<PREFIX>_PASSWORD`, or `password_env` / `password_file` |
//! | `sslmode` | `prefer` / `require` | `disable`, `prefer`, `require`, `verify-full` |
//! | `sslrootcert` | — | CA file (PEM) for `verify-full`; setting it makes `verify-full` the default |
//! | `connect_timeout` | 10 | seconds for the whole connect (TCP, TLS, authentication) |
//! | `statement_timeout` | none | seconds a statement may run (the server's `statement_timeout`) |
//! | `data_dir` | — | the server's data directory on this machine, for [`data_paths`](super::PgBackend) |
//! | `preflight_connections` | 4 | fresh connections the preflight compares |
//! | `bulk` | `copy` / `unnest` | bulk path: binary `COPY`, or batched `INSERT … SELECT FROM unnest(…)` |
//! | `batch_rows`, `batch_bytes` | 1000, 4 MiB | batch limits of the `unnest` bulk path |

use crate::BackendConfig;
use crate::net::settings::{Defaults, NameOverride, ServerSettings, bad};
use dedup_lab_core::{BackendError, ErrorClass, SystemKind};
use std::net::IpAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::net::settings::SslMode;

/// Which bulk path `bulk_insert` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkPath {
    /// `COPY … FROM STDIN (FORMAT binary)`; the row count comes from the `COPY n` tag.
    Copy,
    /// Batched `INSERT … SELECT * FROM unnest($1::text[], $2::bytea[])` (CockroachDB).
    Unnest,
}

/// The shared settings (reachable through `Deref`: `s.host`, `s.user`, …) and this backend's own.
#[derive(Debug)]
pub struct Settings {
    pub kind: SystemKind,
    pub net: ServerSettings,
    pub hostaddr: Option<IpAddr>,
    pub data_dir: Option<PathBuf>,
    pub preflight_connections: u32,
    pub bulk: BulkPath,
    pub batch_rows: usize,
    pub batch_bytes: usize,
}

impl Deref for Settings {
    type Target = ServerSettings;

    fn deref(&self) -> &ServerSettings {
        &self.net
    }
}

impl Settings {
    /// Reads the settings of `kind`; every error is of class [`ErrorClass::Config`].
    pub fn from_config(kind: SystemKind, cfg: &BackendConfig) -> Result<Settings, BackendError> {
        Self::read(kind, cfg).map_err(|e| e.classed(ErrorClass::Config))
    }

    fn read(kind: SystemKind, cfg: &BackendConfig) -> Result<Settings, BackendError> {
        let sys = kind.name();
        let env = |key: &str| crate::net::settings::env_var(&cfg.env_prefix, key);
        let bad = |key: &str, value: &str, want: &str| bad(sys, &cfg.env_prefix, key, value, want);
        let is_crdb = kind == SystemKind::Cockroachdb;

        let hostaddr = match cfg.string("hostaddr") {
            None => None,
            Some(s) => Some(s.trim().parse::<IpAddr>().map_err(|_| bad("hostaddr", &s, "a numeric IP address"))?),
        };
        let defaults = if is_crdb {
            Defaults {
                system: sys,
                port: 26257,
                user: None,
                database: Some("defaultdb"),
                sslmode: SslMode::Require,
                name_override: NameOverride::AddressKey("hostaddr"),
            }
        } else {
            Defaults {
                system: sys,
                port: 5432,
                user: None,
                database: None,
                sslmode: SslMode::Prefer,
                name_override: NameOverride::AddressKey("hostaddr"),
            }
        };
        let net = ServerSettings::from_config(cfg, &defaults)?;
        if is_crdb && net.database == cfg.lab.as_str() {
            return Err(BackendError::msg(format!(
                "{sys}: `database` is {:?}, the lab database itself, which dedup-lab drops and recreates; \
                 connect to another database (e.g. defaultdb) via {}",
                net.database,
                env("database")
            )));
        }
        if net.tls.server_name.is_some() {
            // tokio-postgres checks the certificate against `host`; the address to connect to
            // is `hostaddr`.
            return Err(BackendError::msg(format!(
                "{sys}: `tls_server_name` is not used on the PostgreSQL protocol: set `host` ({}) to the name the \
                 certificate lists and `hostaddr` ({}) to the address to connect to",
                env("host"),
                env("hostaddr")
            )));
        }
        let sslmode = net.tls.mode;
        if is_crdb && sslmode == SslMode::Prefer {
            return Err(BackendError::msg(format!(
                "{sys}: sslmode=prefer would fall back to plaintext; CockroachDB needs TLS: use require or verify-full \
                 (or disable, explicitly, for an insecure test cluster)"
            )));
        }
        if net.host.starts_with('/') && matches!(sslmode, SslMode::Require | SslMode::VerifyFull) {
            return Err(BackendError::msg(format!(
                "{sys}: host {} is a unix socket directory, which carries no TLS; sslmode={} cannot be met",
                net.host,
                sslmode.name()
            )));
        }

        let data_dir = cfg.string("data_dir").map(PathBuf::from);
        let preflight_connections = cfg.u64("preflight_connections")?.unwrap_or(4).clamp(1, 64) as u32;
        let bulk = match cfg.string("bulk") {
            None => {
                if is_crdb {
                    BulkPath::Unnest
                } else {
                    BulkPath::Copy
                }
            }
            Some(s) => match s.trim().to_ascii_lowercase().as_str() {
                "copy" if is_crdb => {
                    return Err(BackendError::msg(format!(
                        "{sys}: bulk=copy is not available: CockroachDB rejects binary COPY over the extended \
                         protocol; use bulk=unnest (the default)"
                    )));
                }
                "copy" => BulkPath::Copy,
                "unnest" => BulkPath::Unnest,
                _ => return Err(bad("bulk", &s, "copy or unnest")),
            },
        };
        let batch_rows = cfg.u64("batch_rows")?.unwrap_or(1000).max(1) as usize;
        let batch_bytes = cfg.bytes("batch_bytes")?.unwrap_or(4 << 20).max(1) as usize;

        Ok(Settings { kind, net, hostaddr, data_dir, preflight_connections, bulk, batch_rows, batch_bytes })
    }

    /// `127.0.0.1:54329/dedup as dedup` — never contains a secret.
    pub fn endpoint(&self) -> String {
        let addr = match self.hostaddr {
            Some(ip) => format!("{} ({ip})", self.host),
            None => self.host.clone(),
        };
        format!("{addr}:{}/{} as {}", self.port, self.database, self.user)
    }

    /// The tokio-postgres configuration (the password is set here and nowhere else).
    pub fn pg_config(&self) -> tokio_postgres::Config {
        use secrecy::ExposeSecret;
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host).port(self.port).user(&self.user).dbname(&self.database);
        if let Some(ip) = self.hostaddr {
            c.hostaddr(ip);
        }
        if let Some(pw) = &self.password {
            c.password(pw.expose_secret());
        }
        c.application_name("dedup-lab");
        if let Some(t) = self.statement_timeout {
            c.options(format!("-c statement_timeout={}", t.as_millis()));
        }
        c.connect_timeout(self.connect_timeout);
        // Notice a dead peer mid-stage instead of waiting forever.
        c.keepalives(true).keepalives_idle(Duration::from_secs(30));
        c.keepalives_interval(Duration::from_secs(10)).keepalives_retries(3);
        c.tcp_user_timeout(Duration::from_secs(120));
        c.ssl_mode(match self.tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(system: &str, settings: serde_json::Value) -> BackendConfig {
        BackendConfig::new("dedup_lab".parse().unwrap(), system, "DEDUP_UNIT_NO_ENV", settings, PathBuf::new())
    }

    fn err(kind: SystemKind, settings: serde_json::Value) -> String {
        Settings::from_config(kind, &cfg(kind.name(), settings)).unwrap_err().to_string()
    }

    #[test]
    fn postgresql_defaults() {
        let s = Settings::from_config(SystemKind::Postgresql, &cfg("postgresql", json!({"user": "dedup"}))).unwrap();
        assert_eq!((s.host.as_str(), s.port, s.database.as_str()), ("localhost", 5432, "dedup"));
        assert_eq!(s.tls.mode, SslMode::Prefer);
        assert_eq!(s.bulk, BulkPath::Copy);
        assert_eq!(s.connect_timeout, Duration::from_secs(10));
        assert_eq!(s.preflight_connections, 4);
        assert_eq!(s.statement_timeout, None);
        assert_eq!(s.pg_config().get_options(), None);
        let s = Settings::from_config(
            SystemKind::Postgresql,
            &cfg("postgresql", json!({"user": "dedup", "statement_timeout": 30})),
        )
        .unwrap();
        assert_eq!(s.pg_config().get_options(), Some("-c statement_timeout=30000"));
        assert_eq!(s.endpoint(), "localhost:5432/dedup as dedup");
        assert_eq!(s.password_source.to_string(), "$DEDUP_UNIT_NO_ENV_PASSWORD");
        // sslrootcert alone means verify-full.
        let s = Settings::from_config(
            SystemKind::Postgresql,
            &cfg("postgresql", json!({"user": "u", "sslrootcert": "/ca.pem", "hostaddr": "10.1.2.3"})),
        )
        .unwrap();
        assert_eq!(s.tls.mode, SslMode::VerifyFull);
        assert_eq!(s.endpoint(), "localhost (10.1.2.3):5432/u as u");
    }

    #[test]
    fn cockroach_defaults_require_tls() {
        let s = Settings::from_config(SystemKind::Cockroachdb, &cfg("cockroachdb", json!({"user": "root"}))).unwrap();
        assert_eq!(
            (s.port, s.database.as_str(), s.tls.mode, s.bulk),
            (26257, "defaultdb", SslMode::Require, BulkPath::Unnest)
        );
        // Plaintext only when asked for explicitly.
        let s = Settings::from_config(
            SystemKind::Cockroachdb,
            &cfg("cockroachdb", json!({"user": "r", "sslmode": "disable"})),
        )
        .unwrap();
        assert_eq!(s.tls.mode, SslMode::Disable);
        assert!(err(SystemKind::Cockroachdb, json!({"user": "r", "sslmode": "prefer"})).contains("needs TLS"));
        assert!(err(SystemKind::Cockroachdb, json!({"user": "r", "bulk": "copy"})).contains("bulk=unnest"));
        assert!(
            err(SystemKind::Cockroachdb, json!({"user": "r", "database": "dedup_lab"})).contains("lab database itself")
        );
    }

    #[test]
    fn bad_settings_are_explained() {
        let pg = SystemKind::Postgresql;
        assert!(err(pg, json!({})).contains("no user configured"));
        assert!(err(pg, json!({"user": "u", "port": "54x"})).contains("expected a TCP port"));
        assert!(
            err(pg, json!({"user": "u", "sslmode": "verify-ca"})).contains("disable, prefer, require or verify-full")
        );
        assert!(err(pg, json!({"user": "u", "sslmode": "verify-full"})).contains("set `sslrootcert`"));
        assert!(err(pg, json!({"user": "u", "hostaddr": "db.example"})).contains("numeric IP"));
        assert!(err(pg, json!({"user": "u", "bulk": "insert"})).contains("copy or unnest"));
        assert!(err(pg, json!({"user": "u", "host": "/run/pg", "sslmode": "require"})).contains("unix socket"));
        assert!(err(pg, json!({"user": "u", "password": "x"})).contains("must not be written in the config file"));
        assert!(err(pg, json!({"user": "u", "tls_server_name": "db"})).contains("`hostaddr`"));
        let e = Settings::from_config(pg, &cfg("postgresql", json!({"user": "u", "bulk": "x"}))).unwrap_err();
        assert_eq!(e.class(), Some(ErrorClass::Config));
    }

    #[test]
    fn the_password_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2-secret\n").unwrap();
        let c = cfg("postgresql", json!({"user": "u", "password_file": f.to_str().unwrap()}));
        let s = Settings::from_config(SystemKind::Postgresql, &c).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!s.endpoint().contains("hunter2"));
        assert!(!format!("{:?}", s.pg_config()).contains("hunter2"));
        assert_eq!(s.pg_config().get_password(), Some(&b"hunter2-secret"[..]));
        assert!(s.password_source.to_string().contains("password_file"));
    }
}
