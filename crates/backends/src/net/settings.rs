//! Connection settings every server backend reads the same way, from the system's settings
//! table or `DEDUP_<SYS>_<KEY>` environment variables (see [`BackendConfig`]).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host` | `localhost` | host name or address |
//! | `port` | per system | TCP port |
//! | `user` | per system (or required) | who to log in as |
//! | `database` | per system | database to connect to |
//! | `password` | — | secret: `$<PREFIX>_PASSWORD`, or `password_env` / `password_file` |
//! | `connect_timeout` | 10 | seconds for the whole connect (TCP, TLS, authentication) |
//! | `statement_timeout` | none | seconds one statement or request may take |
//! | `sslmode` | per system | `disable`, `prefer`, `require`, `verify-full` |
//! | `sslrootcert` | — | CA file (PEM) for `verify-full`; setting it makes `verify-full` the default |
//! | `tls_server_name` | `host` | the name the server's certificate must be valid for |
//!
//! The TLS keys keep libpq's names (`sslmode`, `sslrootcert`): they are the ones users of
//! database servers already know. [`KEYS`] lists every key read here, so the registry can
//! refuse unknown keys and redact secrets.

use crate::{BackendConfig, Secret};
use dedup_lab_core::{BackendError, ErrorClass};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The keys [`ServerSettings::from_config`] reads (they live in the registry, the one table
/// of every system's settings).
pub use crate::registry::{SERVER_KEYS as KEYS, SettingKey};

/// How (and whether) the connection is encrypted and the server verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without verifying the certificate (libpq's default).
    Prefer,
    /// TLS or fail; the certificate is not verified (the handshake signatures are).
    Require,
    /// TLS or fail; the certificate must chain to `sslrootcert` and name the server.
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

    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-full" | "verify_full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// How a user points the certificate check at another name than the one connected to; named
/// in the hint when the certificate does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameOverride {
    /// `host` is the name checked, and a system-specific key holds the address to connect to
    /// (PostgreSQL: `hostaddr`).
    AddressKey(&'static str),
    /// `tls_server_name` holds the name checked.
    ServerName,
}

/// What differs between systems in reading the shared settings.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// The system's name in messages (`postgresql`).
    pub system: &'static str,
    pub port: u16,
    /// The user when none is configured; `None`: a user must be configured.
    pub user: Option<&'static str>,
    /// The database when none is configured; `None`: the user's name (as libpq does).
    pub database: Option<&'static str>,
    /// The TLS mode when neither `sslmode` nor `sslrootcert` is set.
    pub sslmode: SslMode,
    pub name_override: NameOverride,
}

/// Where the password came from, for hints that name the place to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// The default variable, `$DEDUP_PG_PASSWORD`.
    Env(String),
    /// The variable named by `password_env`.
    PasswordEnv(String),
    /// The file named by `password_file`.
    File(PathBuf),
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Env(v) | PasswordSource::PasswordEnv(v) => write!(f, "${v}"),
            PasswordSource::File(p) => write!(f, "the password in password_file {}", p.display()),
        }
    }
}

/// TLS settings: the mode, the CA file and the name the certificate must be valid for.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub ca_file: Option<PathBuf>,
    /// `tls_server_name`, when set.
    pub server_name: Option<String>,
}

/// The connection settings shared by every server backend. `Debug` shows no secret.
#[derive(Debug)]
pub struct ServerSettings {
    pub system: &'static str,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password: Option<Secret>,
    pub password_source: PasswordSource,
    pub connect_timeout: Duration,
    /// `None`: no limit beyond the server's own.
    pub statement_timeout: Option<Duration>,
    pub tls: TlsSettings,
    pub name_override: NameOverride,
    /// `DEDUP_PG`: for hints naming environment variables.
    pub env_prefix: String,
}

impl ServerSettings {
    /// Reads the shared settings; every error is of class [`ErrorClass::Config`] and names the
    /// key, its environment variable and what is expected.
    pub fn from_config(cfg: &BackendConfig, d: &Defaults) -> Result<ServerSettings, BackendError> {
        Self::read(cfg, d).map_err(|e| e.classed(ErrorClass::Config))
    }

    fn read(cfg: &BackendConfig, d: &Defaults) -> Result<ServerSettings, BackendError> {
        let sys = d.system;
        let env = |key: &str| env_var(&cfg.env_prefix, key);
        let host = cfg.string("host").unwrap_or_else(|| "localhost".to_string());
        let port = match cfg.string("port") {
            None => d.port,
            Some(s) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(sys, &cfg.env_prefix, "port", &s, "a TCP port"))?,
        };
        let user = match (cfg.string("user"), d.user) {
            (Some(u), _) => u,
            (None, Some(u)) => u.to_string(),
            (None, None) => {
                return Err(BackendError::msg(format!(
                    "{sys}: no user configured; set `user` in [systems.{}] or {}",
                    cfg.system,
                    env("user")
                )));
            }
        };
        let database = cfg.string("database").unwrap_or_else(|| d.database.map(str::to_string).unwrap_or(user.clone()));
        let password = cfg.secret("password")?;
        let password_source = if let Some(f) = cfg.settings.get("password_file").and_then(|v| v.as_str()) {
            PasswordSource::File(PathBuf::from(f))
        } else if let Some(v) = cfg.settings.get("password_env").and_then(|v| v.as_str()) {
            PasswordSource::PasswordEnv(v.to_string())
        } else {
            PasswordSource::Env(format!("{}_PASSWORD", cfg.env_prefix))
        };
        let connect_timeout = Duration::from_secs(cfg.u64("connect_timeout")?.unwrap_or(10).max(1));
        let statement_timeout = cfg.u64("statement_timeout")?.filter(|s| *s > 0).map(Duration::from_secs);

        let ca_file = cfg.string("sslrootcert").map(PathBuf::from);
        let mode = match cfg.string("sslmode") {
            Some(s) => SslMode::parse(&s)
                .ok_or_else(|| bad(sys, &cfg.env_prefix, "sslmode", &s, "disable, prefer, require or verify-full"))?,
            None if ca_file.is_some() => SslMode::VerifyFull,
            None => d.sslmode,
        };
        if mode == SslMode::VerifyFull && ca_file.is_none() {
            return Err(BackendError::msg(format!(
                "{sys}: sslmode=verify-full needs the CA certificate that signed the server's certificate; \
                 set `sslrootcert` or {} to a PEM file",
                env("sslrootcert")
            )));
        }
        let server_name = cfg.string("tls_server_name").filter(|n| !n.trim().is_empty());
        Ok(ServerSettings {
            system: sys,
            host,
            port,
            user,
            database,
            password,
            password_source,
            connect_timeout,
            statement_timeout,
            tls: TlsSettings { mode, ca_file, server_name },
            name_override: d.name_override,
            env_prefix: cfg.env_prefix.clone(),
        })
    }

    /// `$DEDUP_PG_HOST`-style name of an environment variable, for hints.
    pub fn env(&self, key: &str) -> String {
        env_var(&self.env_prefix, key)
    }

    /// The name the server's certificate must be valid for: `tls_server_name`, else `host`.
    pub fn tls_name(&self) -> &str {
        self.tls.server_name.as_deref().unwrap_or(&self.host)
    }

    /// `db.example:5432/dedup as dedup` — never contains a secret.
    pub fn endpoint(&self) -> String {
        format!("{}:{}/{} as {}", self.host, self.port, self.database, self.user)
    }
}

/// `$DEDUP_PG_HOST` for prefix `DEDUP_PG` and key `host`.
pub fn env_var(prefix: &str, key: &str) -> String {
    format!("${prefix}_{}", key.to_ascii_uppercase())
}

/// The error for a setting whose value cannot be used.
pub fn bad(sys: &str, prefix: &str, key: &str, value: &str, want: &str) -> BackendError {
    BackendError::msg(format!("{sys}: setting `{key}` (or {}) is {value:?}; expected {want}", env_var(prefix, key)))
        .classed(ErrorClass::Config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D: Defaults = Defaults {
        system: "somedb",
        port: 9000,
        user: None,
        database: Some("main"),
        sslmode: SslMode::Prefer,
        name_override: NameOverride::ServerName,
    };

    fn cfg(settings: serde_json::Value) -> BackendConfig {
        BackendConfig::new("dedup_lab".parse().unwrap(), "somedb", "DEDUP_UNIT_NO_ENV", settings, PathBuf::new())
    }

    fn err(settings: serde_json::Value) -> BackendError {
        ServerSettings::from_config(&cfg(settings), &D).unwrap_err()
    }

    #[test]
    fn defaults_and_overrides() {
        let s = ServerSettings::from_config(&cfg(json!({"user": "u"})), &D).unwrap();
        assert_eq!((s.host.as_str(), s.port, s.database.as_str()), ("localhost", 9000, "main"));
        assert_eq!(
            (s.tls.mode, s.connect_timeout, s.statement_timeout),
            (SslMode::Prefer, Duration::from_secs(10), None)
        );
        assert_eq!(s.password_source.to_string(), "$DEDUP_UNIT_NO_ENV_PASSWORD");
        assert_eq!(s.tls_name(), "localhost");
        let s = ServerSettings::from_config(
            &cfg(json!({"user": "u", "port": 19000, "statement_timeout": 30, "sslrootcert": "/ca.pem",
                        "tls_server_name": "db.internal", "password_env": "MY_PW"})),
            &D,
        )
        .unwrap();
        assert_eq!((s.port, s.statement_timeout), (19000, Some(Duration::from_secs(30))));
        assert_eq!(s.tls.mode, SslMode::VerifyFull, "a CA file alone means verify-full");
        assert_eq!(s.tls_name(), "db.internal");
        assert_eq!(s.password_source.to_string(), "$MY_PW");
        // A default user, and the database defaulting to the user's name.
        let d = Defaults { user: Some("default"), database: None, ..D };
        let s = ServerSettings::from_config(&cfg(json!({})), &d).unwrap();
        assert_eq!((s.user.as_str(), s.database.as_str()), ("default", "default"));
    }

    #[test]
    fn bad_settings_name_the_key_and_are_config_errors() {
        for (settings, want) in [
            (json!({}), "no user configured; set `user` in [systems.somedb] or $DEDUP_UNIT_NO_ENV_USER"),
            (
                json!({"user": "u", "port": "0"}),
                "setting `port` (or $DEDUP_UNIT_NO_ENV_PORT) is \"0\"; expected a TCP port",
            ),
            (json!({"user": "u", "sslmode": "verify-ca"}), "expected disable, prefer, require or verify-full"),
            (json!({"user": "u", "sslmode": "verify-full"}), "set `sslrootcert` or $DEDUP_UNIT_NO_ENV_SSLROOTCERT"),
            (json!({"user": "u", "connect_timeout": "soon"}), "expected a whole number"),
            (json!({"user": "u", "password": "x"}), "must not be written in the config file"),
        ] {
            let e = err(settings);
            assert!(e.to_string().contains(want), "{e}");
            assert_eq!(e.class(), Some(ErrorClass::Config), "{e}");
        }
    }

    #[test]
    fn the_password_never_shows() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2-secret\n").unwrap();
        let s =
            ServerSettings::from_config(&cfg(json!({"user": "u", "password_file": f.to_str().unwrap()})), &D).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!s.endpoint().contains("hunter2"));
        assert!(s.password_source.to_string().starts_with("the password in password_file "));
        use secrecy::ExposeSecret;
        assert_eq!(s.password.as_ref().map(|p| p.expose_secret()), Some("hunter2-secret"));
    }

    #[test]
    fn keys_list_the_secret() {
        let secrets: Vec<_> = KEYS.iter().filter(|k| k.secret).map(|k| k.key).collect();
        assert_eq!(secrets, ["password"]);
        assert!(KEYS.iter().any(|k| k.key == "tls_server_name"));
    }
}
