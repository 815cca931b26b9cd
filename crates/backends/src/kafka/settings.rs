//! The Kafka backend's settings: the shared server settings (`net::settings`) and its own.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `host`, `port` | `localhost`, 9092 | one bootstrap broker |
//! | `bootstrap` | — | more bootstrap brokers, `h1:p1,h2:p2` (tried in turn before `host:port`) |
//! | `user` | — | the SASL user; `password` from `$DEDUP_KAFKA_PASSWORD`, `password_env` or `password_file` |
//! | `sasl_mechanism` | `scram-sha-512` with a user, else `none` | `none`, `plain`, `scram-sha-256`, `scram-sha-512` |
//! | `sslmode` | `disable` | `disable`, `require`, `verify-full` (+ `sslrootcert`, the CA file) |
//! | `partitions`, `replication_factor` | 1, 1 | of every lab topic (the study: 4 and 3 on a cluster) |
//! | `batch_bytes` | 1 MiB | records per produce request and partition (a larger record goes alone) |
//! | `max_message_bytes` | 64 MiB | the topics' `max.message.bytes`; a larger record is refused before it is sent |
//! | `in_flight` | 4 | produce requests sent before the first acknowledgement is awaited |
//! | `segment_bytes` | 1 MiB | the compacted topics' `segment.bytes`: the cleaner only rewrites closed segments |
//! | `cleaner_timeout` | 120 | seconds maintenance waits for the cleaner on compacted topics |
//! | `bootstrap_only` | false | send every request to the bootstrap address, ignoring the addresses the metadata advertises (one broker behind a port-forward, or a broker that advertises one listener's address to every listener, as crabka-broker does) |
//! | `data_dir` | — | the broker's log directory on this machine, for the `fs` probe |
//!
//! `database` has no meaning for Kafka and must stay unset.

use crate::BackendConfig;
use crate::net::settings::{Defaults, NameOverride, ServerSettings, SslMode, bad};
use dedup_lab_core::{BackendError, ErrorClass};
use std::path::PathBuf;
use std::time::Duration;

const DEFAULTS: Defaults = Defaults {
    system: "kafka",
    port: 9092,
    user: Some(""),
    database: Some(""),
    sslmode: SslMode::Disable,
    name_override: NameOverride::ServerName,
};

/// The SASL mechanism of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    None,
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    /// The name Kafka uses in `SaslHandshake`.
    pub fn wire_name(self) -> &'static str {
        match self {
            Mechanism::None => "none",
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Debug)]
pub struct Settings {
    pub server: ServerSettings,
    /// Bootstrap brokers, `host:port`, in the order they are tried.
    pub bootstrap: Vec<(String, u16)>,
    pub mechanism: Mechanism,
    pub partitions: i32,
    pub replication_factor: i16,
    pub batch_bytes: usize,
    pub max_message_bytes: usize,
    pub in_flight: usize,
    pub segment_bytes: u64,
    pub cleaner_timeout: Duration,
    pub data_dir: Option<PathBuf>,
    pub bootstrap_only: bool,
}

impl Settings {
    pub fn from_config(cfg: &BackendConfig) -> Result<Settings, BackendError> {
        let server = ServerSettings::from_config(cfg, &DEFAULTS)?;
        let p = &cfg.env_prefix;
        if !server.database.trim().is_empty() {
            return Err(bad(
                "kafka",
                p,
                "database",
                &server.database,
                "nothing (Kafka has no databases; leave it unset)",
            ));
        }
        if server.tls.mode == SslMode::Prefer {
            return Err(bad(
                "kafka",
                p,
                "sslmode",
                "prefer",
                "disable, require or verify-full (a Kafka listener is either TLS or not: there is nothing to prefer)",
            ));
        }
        let mut bootstrap = Vec::new();
        if let Some(list) = cfg.string("bootstrap") {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let parsed = item.rsplit_once(':').and_then(|(h, port)| {
                    Some((h.trim_start_matches('[').trim_end_matches(']').to_string(), port.parse::<u16>().ok()?))
                });
                match parsed {
                    Some((h, port)) if !h.is_empty() && port > 0 => bootstrap.push((h, port)),
                    _ => return Err(bad("kafka", p, "bootstrap", &list, "a comma-separated list of host:port")),
                }
            }
        }
        bootstrap.push((server.host.clone(), server.port));
        let user = server.user.trim().to_string();
        let mechanism = match cfg.string("sasl_mechanism").map(|m| m.trim().to_ascii_lowercase()).as_deref() {
            None if user.is_empty() => Mechanism::None,
            None => Mechanism::ScramSha512,
            Some("none") => Mechanism::None,
            Some("plain") => Mechanism::Plain,
            Some("scram-sha-256") => Mechanism::ScramSha256,
            Some("scram-sha-512") => Mechanism::ScramSha512,
            Some(other) => {
                return Err(bad("kafka", p, "sasl_mechanism", other, "none, plain, scram-sha-256 or scram-sha-512"));
            }
        };
        if mechanism != Mechanism::None && user.is_empty() {
            return Err(BackendError::msg(format!(
                "kafka: sasl_mechanism {} needs a user; set `user` (or {}_USER) and the password",
                mechanism.wire_name(),
                p
            ))
            .classed(ErrorClass::Config));
        }
        if mechanism != Mechanism::None && server.password.is_none() {
            return Err(BackendError::msg(format!(
                "kafka: SASL {} as {user} needs a password; set {}_PASSWORD, `password_env` or `password_file`",
                mechanism.wire_name(),
                p
            ))
            .classed(ErrorClass::Config));
        }
        let cfg_err = |e: BackendError| e.classed(ErrorClass::Config);
        let partitions = cfg.u64("partitions").map_err(cfg_err)?.unwrap_or(1);
        if !(1..=10_000).contains(&partitions) {
            return Err(bad("kafka", p, "partitions", &partitions.to_string(), "1 to 10000"));
        }
        let replication_factor = cfg.u64("replication_factor").map_err(cfg_err)?.unwrap_or(1);
        if !(1..=32).contains(&replication_factor) {
            return Err(bad("kafka", p, "replication_factor", &replication_factor.to_string(), "1 to 32"));
        }
        let batch_bytes = cfg.bytes("batch_bytes").map_err(cfg_err)?.unwrap_or(1 << 20).clamp(1024, 64 << 20) as usize;
        let max_message_bytes = cfg.bytes("max_message_bytes").map_err(cfg_err)?.unwrap_or(64 << 20);
        // The broker's frame limit (socket.request.max.bytes) is 100 MiB by default.
        if !(1024..=(100 << 20) - 4096).contains(&max_message_bytes) {
            return Err(bad(
                "kafka",
                p,
                "max_message_bytes",
                &max_message_bytes.to_string(),
                "1 KiB to 100 MiB minus 4 KiB (a produce request must fit Kafka's 100 MiB request limit)",
            ));
        }
        let in_flight = cfg.u64("in_flight").map_err(cfg_err)?.unwrap_or(4).clamp(1, 64) as usize;
        let segment_bytes = cfg.bytes("segment_bytes").map_err(cfg_err)?.unwrap_or(1 << 20).max(1024);
        let cleaner_timeout = Duration::from_secs(cfg.u64("cleaner_timeout").map_err(cfg_err)?.unwrap_or(120).max(1));
        let bootstrap_only = match cfg.string("bootstrap_only").map(|b| b.trim().to_ascii_lowercase()).as_deref() {
            None | Some("false") | Some("0") | Some("no") => false,
            Some("true") | Some("1") | Some("yes") => true,
            Some(other) => return Err(bad("kafka", p, "bootstrap_only", other, "true or false")),
        };
        let data_dir = cfg.string("data_dir").filter(|d| !d.trim().is_empty()).map(PathBuf::from);
        Ok(Settings {
            server,
            bootstrap,
            mechanism,
            partitions: partitions as i32,
            replication_factor: replication_factor as i16,
            batch_bytes,
            max_message_bytes: max_message_bytes as usize,
            in_flight,
            segment_bytes,
            cleaner_timeout,
            data_dir,
            bootstrap_only,
        })
    }

    /// `127.0.0.1:9092 (SCRAM-SHA-512 as dedup)` — never a secret.
    pub fn endpoint(&self) -> String {
        let (h, p) = self.bootstrap.last().expect("host:port is always in the list");
        let tls = if self.server.tls.mode == SslMode::Disable { "" } else { ", TLS" };
        match self.mechanism {
            Mechanism::None => format!("{h}:{p}{}", if tls.is_empty() { "" } else { " (TLS)" }),
            m => format!("{h}:{p} ({} as {}{tls})", m.wire_name(), self.server.user),
        }
    }
}
