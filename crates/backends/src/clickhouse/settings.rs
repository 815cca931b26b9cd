//! The settings of the ClickHouse backend: the shared server settings ([`crate::net::settings`])
//! plus what only ClickHouse reads (its keys are listed in the registry, `CLICKHOUSE_KEYS`).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `port` | 8123 | the HTTP interface (8443 for HTTPS) |
//! | `user` | `default` | sent in `X-ClickHouse-User`; the password in `X-ClickHouse-Key` |
//! | `sslmode` | `disable` | `require` / `verify-full` (+ `sslrootcert`) for HTTPS |
//! | `data_dir` | — | the server's `<path>` when local: enables the `fs` probe on the table directories |
//! | `batch_bytes` | 16 MiB | RowBinary bytes per bulk INSERT request |
//! | `mutation_timeout` | 600 | seconds to wait for a DELETE mutation to be done |
//! | `settle_timeout` | 120 | seconds `settle` waits for merges, mutations and old parts |
//! | `preflight_connections` | 4 | fresh connections of the preflight consistency check |

use crate::BackendConfig;
use crate::net::settings::{Defaults, NameOverride, ServerSettings, SslMode};
use dedup_lab_core::{BackendError, ErrorClass};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULTS: Defaults = Defaults {
    system: "clickhouse",
    port: 8123,
    user: Some("default"),
    database: Some("default"),
    sslmode: SslMode::Disable,
    name_override: NameOverride::ServerName,
};

#[derive(Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub data_dir: Option<PathBuf>,
    pub batch_bytes: usize,
    pub mutation_timeout: Duration,
    pub settle_timeout: Duration,
    pub preflight_connections: u32,
}

impl Settings {
    pub fn from_config(cfg: &BackendConfig) -> Result<Settings, BackendError> {
        let server = ServerSettings::from_config(cfg, &DEFAULTS)?;
        let config = |e: BackendError| e.classed(ErrorClass::Config);
        let batch_bytes = cfg.bytes("batch_bytes").map_err(config)?.unwrap_or(16 << 20).clamp(1 << 10, 1 << 30);
        Ok(Settings {
            server,
            data_dir: cfg.string("data_dir").filter(|d| !d.trim().is_empty()).map(PathBuf::from),
            batch_bytes: batch_bytes as usize,
            mutation_timeout: Duration::from_secs(cfg.u64("mutation_timeout").map_err(config)?.unwrap_or(600).max(1)),
            settle_timeout: Duration::from_secs(cfg.u64("settle_timeout").map_err(config)?.unwrap_or(120).max(1)),
            preflight_connections: cfg.u64("preflight_connections").map_err(config)?.unwrap_or(4).clamp(1, 64) as u32,
        })
    }

    /// `127.0.0.1:8123/default as dedup`, never a secret.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }
}
