//! The Redis backend's settings: the shared server settings (`net::settings`) and its own.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host`, `port` | `localhost`, 6379 | the server, or any master of a cluster (a seed) |
//! | `user` | `default` | the ACL user; `password` from `$DEDUP_REDIS_PASSWORD`, `password_env` or `password_file` |
//! | `mode` | `auto` | `standalone`, `cluster`, or `auto` (asks the server with `HELLO`) |
//! | `sslmode` | `disable` | `disable`, `require`, `verify-full` (+ `sslrootcert`); Redis serves TLS on its own port, so `prefer` has no meaning |
//! | `batch_rows`, `batch_bytes` | 1000, 8 MiB | pipeline size of the bulk path (per container, then split per master) |
//! | `warmup_bytes` | 8 MiB | written and deleted once per opened backend before the first reset (see the module docs) |
//! | `preflight_connections` | 4 | fresh connections of the consistency check |
//!
//! `database` must stay `0` when set: dedup-lab never sends `SELECT` (a cluster has no other
//! database). The size probe follows the engine's `probe` key: `fs` means the RDB files.

use crate::BackendConfig;
use crate::net::settings::{Defaults, NameOverride, ServerSettings, SslMode, bad};
use dedup_lab_core::{BackendError, ErrorClass};

const DEFAULTS: Defaults = Defaults {
    system: "redis",
    port: 6379,
    user: Some("default"),
    database: Some("0"),
    sslmode: SslMode::Disable,
    name_override: NameOverride::ServerName,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Standalone,
    Cluster,
}

#[derive(Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub mode: Mode,
    pub batch_rows: usize,
    pub batch_bytes: usize,
    pub warmup_bytes: u64,
    pub preflight_connections: u32,
    /// The engine's `probe` is `fs`: physical size = the RDB files (settle runs `SAVE`).
    pub rdb_probe: bool,
}

impl Settings {
    pub fn from_config(cfg: &BackendConfig) -> Result<Settings, BackendError> {
        let server = ServerSettings::from_config(cfg, &DEFAULTS)?;
        let p = &cfg.env_prefix;
        if server.database.trim() != "0" {
            return Err(bad(
                "redis",
                p,
                "database",
                &server.database,
                "0 (dedup-lab never sends SELECT; a cluster has only database 0)",
            ));
        }
        if server.tls.mode == SslMode::Prefer {
            return Err(bad(
                "redis",
                p,
                "sslmode",
                "prefer",
                "disable, require or verify-full (Redis serves TLS on its own port: there is nothing to prefer)",
            ));
        }
        let mode = match cfg.string("mode").as_deref().map(str::trim) {
            None | Some("auto") => Mode::Auto,
            Some("standalone") => Mode::Standalone,
            Some("cluster") => Mode::Cluster,
            Some(other) => return Err(bad("redis", p, "mode", other, "auto, standalone or cluster")),
        };
        let cfg_err = |e: BackendError| e.classed(ErrorClass::Config);
        let batch_rows = cfg.u64("batch_rows").map_err(cfg_err)?.unwrap_or(1000).max(1) as usize;
        let batch_bytes = cfg.bytes("batch_bytes").map_err(cfg_err)?.unwrap_or(8 << 20).max(1) as usize;
        let warmup_bytes = cfg.bytes("warmup_bytes").map_err(cfg_err)?.unwrap_or(8 << 20);
        let preflight_connections = cfg.u64("preflight_connections").map_err(cfg_err)?.unwrap_or(4).clamp(1, 64) as u32;
        let rdb_probe = cfg.string("probe").is_some_and(|p| p.trim() == "fs");
        Ok(Settings { server, mode, batch_rows, batch_bytes, warmup_bytes, preflight_connections, rdb_probe })
    }

    /// `127.0.0.1:6379 as dedup` — never a secret.
    pub fn endpoint(&self) -> String {
        format!("{}:{} as {}", self.server.host, self.server.port, self.server.user)
    }

    /// Whether the server runs on this machine (so its RDB file can be read).
    pub fn is_local(&self) -> bool {
        let h = self.server.host.trim_start_matches('[').trim_end_matches(']');
        h == "localhost" || h == "::1" || h.starts_with("127.")
    }
}
