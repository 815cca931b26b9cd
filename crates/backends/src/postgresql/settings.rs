//! Connection settings of the PostgreSQL / CockroachDB backend, read from the system's
//! settings table or `DEDUP_PG_*` / `DEDUP_CRDB_*` environment variables.
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
//! | `data_dir` | — | the server's data directory on this machine, for [`data_paths`](super::PgBackend) |
//! | `preflight_connections` | 4 | fresh connections the preflight compares |
//! | `bulk` | `copy` / `unnest` | bulk path: binary `COPY`, or batched `INSERT … SELECT FROM unnest(…)` |
//! | `batch_rows`, `batch_bytes` | 1000, 4 MiB | batch limits of the `unnest` bulk path |

use crate::BackendConfig;
use dedup_lab_core::{BackendError, SystemKind};
use secrecy::SecretString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How (and whether) the connection is encrypted and the server verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without verifying the certificate (libpq's default).
    Prefer,
    /// TLS or fail; the certificate is not verified (channel binding still protects SCRAM).
    Require,
    /// TLS or fail; the certificate must chain to `sslrootcert` and name the host.
    VerifyFull,
}

impl SslMode {
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str) -> Option<SslMode> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-full" | "verify_full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// Which bulk path `bulk_insert` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkPath {
    /// `COPY … FROM STDIN (FORMAT binary)`; the row count comes from the `COPY n` tag.
    Copy,
    /// Batched `INSERT … SELECT * FROM unnest($1::text[], $2::bytea[])` (CockroachDB).
    Unnest,
}

#[derive(Debug)]
pub struct Settings {
    pub kind: SystemKind,
    pub host: String,
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: Option<SecretString>,
    /// Where the password comes from, for hints (`$DEDUP_PG_PASSWORD`, `password_file …`).
    pub password_source: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub data_dir: Option<PathBuf>,
    pub preflight_connections: u32,
    pub bulk: BulkPath,
    pub batch_rows: usize,
    pub batch_bytes: usize,
    /// `DEDUP_PG` / `DEDUP_CRDB`: for hints naming environment variables.
    pub env_prefix: String,
}

impl Settings {
    pub fn from_config(kind: SystemKind, cfg: &BackendConfig) -> Result<Settings, BackendError> {
        let sys = kind.name();
        let env = |key: &str| format!("${}_{}", cfg.env_prefix, key.to_ascii_uppercase());
        let bad = |key: &str, value: &str, want: &str| {
            BackendError::msg(format!("{sys}: setting `{key}` (or {}) is {value:?}; expected {want}", env(key)))
        };
        let is_crdb = kind == SystemKind::Cockroachdb;

        let host = cfg.string("host").unwrap_or_else(|| "localhost".to_string());
        let hostaddr = match cfg.string("hostaddr") {
            None => None,
            Some(s) => Some(s.trim().parse::<IpAddr>().map_err(|_| bad("hostaddr", &s, "a numeric IP address"))?),
        };
        let port = match cfg.string("port") {
            None => {
                if is_crdb {
                    26257
                } else {
                    5432
                }
            }
            Some(s) => s.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("port", &s, "a TCP port"))?,
        };
        let user = cfg.string("user").ok_or_else(|| {
            BackendError::msg(format!(
                "{sys}: no user configured; set `user` in [systems.{}] or {}",
                cfg.system,
                env("user")
            ))
        })?;
        let database =
            cfg.string("database").unwrap_or_else(|| if is_crdb { "defaultdb".into() } else { user.clone() });
        if is_crdb && database == cfg.lab.as_str() {
            return Err(BackendError::msg(format!(
                "{sys}: `database` is {database:?}, the lab database itself, which dedup-lab drops and recreates; \
                 connect to another database (e.g. defaultdb) via {}",
                env("database")
            )));
        }
        let password = cfg.secret("password")?;
        let password_source = if let Some(f) = cfg.settings.get("password_file").and_then(|v| v.as_str()) {
            format!("the password in password_file {f}")
        } else if let Some(v) = cfg.settings.get("password_env").and_then(|v| v.as_str()) {
            format!("${v}")
        } else {
            env("password")
        };

        let sslrootcert = cfg.string("sslrootcert").map(PathBuf::from);
        let sslmode = match cfg.string("sslmode") {
            Some(s) => {
                SslMode::parse(&s).ok_or_else(|| bad("sslmode", &s, "disable, prefer, require or verify-full"))?
            }
            None if sslrootcert.is_some() => SslMode::VerifyFull,
            None if is_crdb => SslMode::Require,
            None => SslMode::Prefer,
        };
        if is_crdb && sslmode == SslMode::Prefer {
            return Err(BackendError::msg(format!(
                "{sys}: sslmode=prefer would fall back to plaintext; CockroachDB needs TLS: use require or verify-full \
                 (or disable, explicitly, for an insecure test cluster)"
            )));
        }
        if sslmode == SslMode::VerifyFull && sslrootcert.is_none() {
            return Err(BackendError::msg(format!(
                "{sys}: sslmode=verify-full needs the CA certificate that signed the server's certificate; \
                 set `sslrootcert` or {} to a PEM file",
                env("sslrootcert")
            )));
        }
        if host.starts_with('/') && matches!(sslmode, SslMode::Require | SslMode::VerifyFull) {
            return Err(BackendError::msg(format!(
                "{sys}: host {host} is a unix socket directory, which carries no TLS; sslmode={} cannot be met",
                sslmode.name()
            )));
        }

        let connect_timeout = Duration::from_secs(cfg.u64("connect_timeout")?.unwrap_or(10).max(1));
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

        Ok(Settings {
            kind,
            host,
            hostaddr,
            port,
            user,
            database,
            password,
            password_source,
            sslmode,
            sslrootcert,
            connect_timeout,
            data_dir,
            preflight_connections,
            bulk,
            batch_rows,
            batch_bytes,
            env_prefix: cfg.env_prefix.clone(),
        })
    }

    /// `127.0.0.1:54329/dedup as dedup` — never contains a secret.
    pub fn endpoint(&self) -> String {
        let addr = match self.hostaddr {
            Some(ip) => format!("{} ({ip})", self.host),
            None => self.host.clone(),
        };
        format!("{addr}:{}/{} as {}", self.port, self.database, self.user)
    }

    /// `$DEDUP_PG_HOST`-style name of an environment variable, for hints.
    pub fn env(&self, key: &str) -> String {
        format!("${}_{}", self.env_prefix, key.to_ascii_uppercase())
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
        c.connect_timeout(self.connect_timeout);
        // Notice a dead peer mid-stage instead of waiting forever.
        c.keepalives(true).keepalives_idle(Duration::from_secs(30));
        c.keepalives_interval(Duration::from_secs(10)).keepalives_retries(3);
        c.tcp_user_timeout(Duration::from_secs(120));
        c.ssl_mode(match self.sslmode {
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
        assert_eq!(s.sslmode, SslMode::Prefer);
        assert_eq!(s.bulk, BulkPath::Copy);
        assert_eq!(s.connect_timeout, Duration::from_secs(10));
        assert_eq!(s.preflight_connections, 4);
        assert_eq!(s.endpoint(), "localhost:5432/dedup as dedup");
        assert_eq!(s.password_source, "$DEDUP_UNIT_NO_ENV_PASSWORD");
        // sslrootcert alone means verify-full.
        let s = Settings::from_config(
            SystemKind::Postgresql,
            &cfg("postgresql", json!({"user": "u", "sslrootcert": "/ca.pem", "hostaddr": "10.1.2.3"})),
        )
        .unwrap();
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(s.endpoint(), "localhost (10.1.2.3):5432/u as u");
    }

    #[test]
    fn cockroach_defaults_require_tls() {
        let s = Settings::from_config(SystemKind::Cockroachdb, &cfg("cockroachdb", json!({"user": "root"}))).unwrap();
        assert_eq!(
            (s.port, s.database.as_str(), s.sslmode, s.bulk),
            (26257, "defaultdb", SslMode::Require, BulkPath::Unnest)
        );
        // Plaintext only when asked for explicitly.
        let s = Settings::from_config(
            SystemKind::Cockroachdb,
            &cfg("cockroachdb", json!({"user": "r", "sslmode": "disable"})),
        )
        .unwrap();
        assert_eq!(s.sslmode, SslMode::Disable);
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
        assert!(s.password_source.contains("password_file"));
    }
}
