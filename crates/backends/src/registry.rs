//! The registry: one table that describes every system dedup-lab knows.
//!
//! [`entry`] is the one `match` over [`SystemKind`]. Everything else reads it: the CLI's list
//! of systems, the "not built" message, plan validation (unknown and secret settings), the
//! redaction of `run.json`, the runner's environment lookup, `preflight` and `cleanup`.
//! Adding a system means one backend module, one entry here, one `scripts/services.sh`
//! section and one test file (see the README's "Adding a backend").

use crate::BackendConfig;
use dedup_lab_core::{Backend, BackendError, SystemKind};

/// A setting a system reads from `[systems.<name>]` (or `DEDUP_<SYS>_<KEY>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingKey {
    pub key: &'static str,
    /// A secret is never accepted in the config file itself: only `<key>_env` (the
    /// variable that holds it) and `<key>_file` (a file that holds it) are, and the default
    /// variable `DEDUP_<SYS>_<KEY>` is read when neither is set.
    pub secret: bool,
}

impl SettingKey {
    pub const fn plain(key: &'static str) -> SettingKey {
        SettingKey { key, secret: false }
    }

    pub const fn secret(key: &'static str) -> SettingKey {
        SettingKey { key, secret: true }
    }
}

const fn plain(key: &'static str) -> SettingKey {
    SettingKey::plain(key)
}

/// Settings every system accepts; the engine reads them, not the backend.
pub const ENGINE_KEYS: &[SettingKey] = &[
    plain("variants"),
    plain("replicas"),
    plain("probe"),
    // The remote size probes' tables, `[systems.<name>.prometheus]` / `.scrape]` (checked by
    // the runner's `ProbeKind::from_settings`).
    plain("prometheus"),
    plain("scrape"),
    plain("max_bytes"),
    plain("cold_command"),
    plain("cold_timeout"),
    plain("cold_pass_env"),
    // The server's processes, for the footprint's server CPU time (the runner's `footprint`).
    plain("server_pids"),
    plain("server_pid_files"),
    plain("server_cgroup"),
];

/// Where an embedded store lives (`dir`, default `<run>/lab`).
const EMBEDDED_KEYS: &[SettingKey] = &[plain("dir")];

const LSM_KEYS: &[SettingKey] = &[plain("dir"), plain("memtable_size"), plain("cache_size"), plain("batch_bytes")];

/// The connection settings every server backend reads through `net::settings` (host, port,
/// user, database, password, timeouts, TLS). `password_env` / `password_file` name where
/// the secret is; they are not secrets themselves.
pub const SERVER_KEYS: &[SettingKey] = &[
    plain("host"),
    plain("port"),
    plain("user"),
    plain("database"),
    SettingKey::secret("password"),
    plain("password_env"),
    plain("password_file"),
    plain("connect_timeout"),
    plain("statement_timeout"),
    plain("sslmode"),
    plain("sslrootcert"),
    plain("tls_server_name"),
];

/// What the PostgreSQL wire-protocol backend (PostgreSQL and CockroachDB) reads on top of
/// [`SERVER_KEYS`]; see `postgresql::settings` for what each means.
const PG_KEYS: &[SettingKey] = &[
    plain("hostaddr"),
    plain("data_dir"),
    plain("preflight_connections"),
    plain("bulk"),
    plain("batch_rows"),
    plain("batch_bytes"),
];

/// What the Redis backend reads on top of [`SERVER_KEYS`]; see `redis::settings`.
const REDIS_KEYS: &[SettingKey] =
    &[plain("mode"), plain("batch_rows"), plain("batch_bytes"), plain("warmup_bytes"), plain("preflight_connections")];
/// What the ClickHouse backend reads on top of [`SERVER_KEYS`]; see `clickhouse::settings`.
const CLICKHOUSE_KEYS: &[SettingKey] = &[
    plain("data_dir"),
    plain("batch_bytes"),
    plain("mutation_timeout"),
    plain("settle_timeout"),
    plain("preflight_connections"),
];

/// What the S3 backend reads (`s3::settings` says what each means); the access and secret
/// keys are secrets.
pub const S3_KEYS: &[SettingKey] = &[
    plain("endpoint"),
    plain("region"),
    SettingKey::secret("access_key"),
    SettingKey::secret("secret_key"),
    plain("flavour"),
    plain("master_url"),
    plain("maintenance_command"),
    plain("data_dir"),
    plain("concurrency"),
    plain("multipart_threshold"),
    plain("part_size"),
    plain("content_type"),
    plain("sslmode"),
    plain("sslrootcert"),
    plain("tls_server_name"),
    plain("connect_timeout"),
    plain("statement_timeout"),
];

/// What the Kafka backend reads on top of [`SERVER_KEYS`]; see `kafka::settings`.
const KAFKA_KEYS: &[SettingKey] = &[
    plain("bootstrap"),
    plain("sasl_mechanism"),
    plain("partitions"),
    plain("replication_factor"),
    plain("batch_bytes"),
    plain("max_message_bytes"),
    plain("in_flight"),
    plain("segment_bytes"),
    plain("cleaner_timeout"),
    plain("data_dir"),
    plain("bootstrap_only"),
    plain("broker"),
];

/// What the MariaDB backend reads on top of [`SERVER_KEYS`]; see `mariadb::settings`.
const MARIADB_KEYS: &[SettingKey] = &[
    plain("data_dir"),
    plain("preflight_connections"),
    plain("bulk"),
    plain("batch_rows"),
    plain("batch_bytes"),
    plain("key_block_size"),
    plain("page_compression_level"),
];

/// Opens a backend of `kind` in variant `variant`.
pub type OpenFn = fn(SystemKind, &BackendConfig, &str) -> Result<Box<dyn Backend>, BackendError>;

/// Lists (and validates, offline) the variants a system is measured in.
pub type VariantsFn = fn(SystemKind, &BackendConfig) -> Result<Vec<String>, BackendError>;

/// Whether a system can be opened in this build.
#[derive(Clone, Copy)]
pub enum Build {
    /// Built: how to open it.
    Open(OpenFn),
    /// Written, but its cargo feature is off in this build.
    FeatureOff,
    /// No backend written yet.
    NotWritten,
}

/// One row of the registry.
#[derive(Clone, Copy)]
pub struct SystemEntry {
    pub kind: SystemKind,
    /// The cargo feature of the `dedup-lab` binary that builds this backend.
    pub feature: &'static str,
    /// Prefix of the system's environment variables (`DEDUP_PG` → `DEDUP_PG_HOST`, …).
    pub env_prefix: &'static str,
    /// Runs without a server, in a directory of this machine.
    pub embedded: bool,
    /// The backend's own settings, as one or more lists (the shared [`SERVER_KEYS`] and the
    /// backend's own); the [`ENGINE_KEYS`] are accepted everywhere as well.
    pub keys: &'static [&'static [SettingKey]],
    pub variants: VariantsFn,
    pub build: Build,
}

/// `Build::Open(f)` when `feature` is on, `Build::FeatureOff` otherwise.
macro_rules! built {
    ($feature:literal, $open:expr) => {{
        #[cfg(feature = $feature)]
        let b = Build::Open($open);
        #[cfg(not(feature = $feature))]
        let b = Build::FeatureOff;
        b
    }};
}

/// The registry: the one `match` over every system.
pub fn entry(kind: SystemKind) -> SystemEntry {
    use SystemKind as K;
    match kind {
        K::Sqlite => SystemEntry {
            kind,
            feature: "sqlite",
            env_prefix: "DEDUP_SQLITE",
            embedded: true,
            keys: &[EMBEDDED_KEYS],
            variants: default_variant,
            build: built!("sqlite", |_, cfg, v| Ok(Box::new(crate::sqlite::SqliteBackend::open(cfg, v)?))),
        },
        K::Lsm => SystemEntry {
            kind,
            feature: "lsm",
            env_prefix: "DEDUP_LSM",
            embedded: true,
            keys: &[LSM_KEYS],
            variants: lsm_variants,
            build: built!("lsm", |_, cfg, v| Ok(Box::new(crate::lsm::LsmBackend::open(cfg, v)?))),
        },
        K::Files => SystemEntry {
            kind,
            feature: "files",
            env_prefix: "DEDUP_FILES",
            embedded: true,
            keys: &[EMBEDDED_KEYS],
            variants: default_variant,
            build: built!("files", |_, cfg, v| Ok(Box::new(crate::files::FilesBackend::open(cfg, v)?))),
        },
        K::Postgresql | K::Cockroachdb => SystemEntry {
            kind,
            feature: "postgresql",
            env_prefix: if kind == K::Postgresql { "DEDUP_PG" } else { "DEDUP_CRDB" },
            embedded: false,
            keys: &[SERVER_KEYS, PG_KEYS],
            variants: pg_variants,
            build: built!("postgresql", crate::postgresql::PgBackend::open),
        },
        K::Redis => SystemEntry {
            kind,
            feature: "redis",
            env_prefix: "DEDUP_REDIS",
            embedded: false,
            keys: &[SERVER_KEYS, REDIS_KEYS],
            variants: default_variant,
            build: built!("redis", crate::redis::RedisBackend::open),
        },
        K::Clickhouse => SystemEntry {
            kind,
            feature: "clickhouse",
            env_prefix: "DEDUP_CLICKHOUSE",
            embedded: false,
            keys: &[SERVER_KEYS, CLICKHOUSE_KEYS],
            variants: clickhouse_variants,
            build: built!("clickhouse", |_, cfg, v| Ok(Box::new(crate::clickhouse::ChBackend::open(cfg, v)?))),
        },
        K::Mariadb => SystemEntry {
            kind,
            feature: "mariadb",
            env_prefix: "DEDUP_MARIADB",
            embedded: false,
            keys: &[SERVER_KEYS, MARIADB_KEYS],
            variants: mariadb_variants,
            build: built!("mariadb", |_, cfg, v| Ok(Box::new(crate::mariadb::MariaBackend::open(cfg, v)?))),
        },
        K::Kafka => SystemEntry {
            kind,
            feature: "kafka",
            env_prefix: "DEDUP_KAFKA",
            embedded: false,
            keys: &[SERVER_KEYS, KAFKA_KEYS],
            variants: kafka_variants,
            build: built!("kafka", |_, cfg, v| Ok(Box::new(crate::kafka::KafkaBackend::open(cfg, v)?))),
        },
        // S3 / MinIO: prefix DEDUP_S3; the backend also reads every DEDUP_MINIO_<KEY> as a
        // fallback (see s3::settings), so the study's MinIO variable names keep working.
        K::S3 => SystemEntry {
            kind,
            feature: "s3",
            env_prefix: "DEDUP_S3",
            embedded: false,
            keys: &[S3_KEYS],
            variants: s3_variants,
            build: built!("s3", |_, cfg, v| Ok(Box::new(crate::s3::S3Backend::open(cfg, v)?))),
        },
    }
}

fn default_variant(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    let list = cfg.string_list("variants")?.unwrap_or_else(|| vec!["default".to_string()]);
    if let Some(v) = list.iter().find(|v| *v != "default") {
        return Err(BackendError::msg(format!("{kind} has no variant {v:?}; its only variant is `default`")));
    }
    Ok(list)
}

/// Opening the lsm backend touches nothing on disk: it checks the settings before a run.
#[allow(unused_variables)]
fn lsm_variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    let list = default_variant(kind, cfg)?;
    #[cfg(feature = "lsm")]
    for v in &list {
        crate::lsm::LsmBackend::open(cfg, v)?;
    }
    Ok(list)
}

#[allow(unused_variables)]
fn pg_variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    #[cfg(feature = "postgresql")]
    return crate::postgresql::variants(kind, cfg);
    #[cfg(not(feature = "postgresql"))]
    return default_variant(kind, cfg);
}

#[allow(unused_variables)]
fn clickhouse_variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    #[cfg(feature = "clickhouse")]
    return crate::clickhouse::variants(kind, cfg);
    #[cfg(not(feature = "clickhouse"))]
    return default_variant(kind, cfg);
}

#[allow(unused_variables)]
fn s3_variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    #[cfg(feature = "s3")]
    return crate::s3::variants(cfg);
    #[cfg(not(feature = "s3"))]
    return default_variant(kind, cfg);
}

#[allow(unused_variables)]
fn kafka_variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    #[cfg(feature = "kafka")]
    return crate::kafka::variants(cfg);
    #[cfg(not(feature = "kafka"))]
    return default_variant(kind, cfg);
}

#[allow(unused_variables)]
fn mariadb_variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    #[cfg(feature = "mariadb")]
    return crate::mariadb::variants(cfg);
    #[cfg(not(feature = "mariadb"))]
    return default_variant(kind, cfg);
}

impl SystemEntry {
    /// The error for a system that cannot be opened in this build, naming the feature that
    /// enables it; `None` when it can.
    pub fn unavailable(&self) -> Option<BackendError> {
        let kind = self.kind;
        match self.build {
            Build::Open(_) => None,
            Build::FeatureOff => Some(BackendError::msg(format!(
                "system {kind} is not available in this build of dedup-lab; rebuild with `cargo build --release \
                 --features {}`",
                self.feature
            ))),
            Build::NotWritten => Some(BackendError::msg(format!(
                "system {kind} has no backend in dedup-lab {} yet; available systems: {}",
                env!("CARGO_PKG_VERSION"),
                built_names().join(", ")
            ))),
        }
    }

    /// Every key accepted under `[systems.<name>]`: the engine's, the backend's, and the
    /// `_env` / `_file` companions of its secrets.
    pub fn accepted_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        let mut add = |k: String| {
            if !keys.contains(&k) {
                keys.push(k);
            }
        };
        for k in ENGINE_KEYS.iter().chain(self.all_keys()) {
            add(k.key.to_string());
            if k.secret {
                add(format!("{}_env", k.key));
                add(format!("{}_file", k.key));
            }
        }
        keys
    }

    fn all_keys(&self) -> impl Iterator<Item = &'static SettingKey> + '_ {
        self.keys.iter().flat_map(|list| list.iter())
    }

    /// Checks the keys of a `[systems.<name>]` table: a secret written into the config, or
    /// a key the system does not read, is an error naming the key, the system and the fix.
    /// `name` is the section name as written (it may be an alias such as `pg`).
    pub fn check_keys<'a>(&self, name: &str, keys: impl IntoIterator<Item = &'a str>) -> Result<(), BackendError> {
        // A system this build cannot open reads nothing: its section is kept, unchecked.
        if self.unavailable().is_some() {
            return Ok(());
        }
        let accepted = self.accepted_keys();
        for key in keys {
            if let Some(s) = self.all_keys().find(|k| k.secret && k.key == key) {
                return Err(BackendError::msg(format!(
                    "config [systems.{name}] has `{key}`: secrets never go in the config file; set the environment \
                     variable ${}_{}, or `{k}_env` (the variable to read) / `{k}_file` (a file holding it)",
                    self.env_prefix,
                    key.to_ascii_uppercase(),
                    k = s.key
                )));
            }
            if !accepted.iter().any(|a| a == key) {
                let near = accepted.iter().find(|a| edit_distance(a, key) <= 2);
                return Err(BackendError::msg(format!(
                    "config [systems.{name}] has an unknown key `{key}` for system {}{}; valid keys: {}",
                    self.kind,
                    near.map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default(),
                    accepted.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The keys of the system's secret settings.
    pub fn secret_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.all_keys().filter(|k| k.secret).map(|k| k.key)
    }
}

/// Names of every system this build can open, in registry order.
pub fn built_names() -> Vec<&'static str> {
    SystemKind::ALL.iter().filter(|k| matches!(entry(**k).build, Build::Open(_))).map(|k| k.name()).collect()
}

/// Every system with whether it is built, for the CLI's help: `sqlite, …, mariadb (not yet)`.
pub fn describe_all() -> String {
    SystemKind::ALL
        .iter()
        .map(|k| match entry(*k).build {
            Build::Open(_) => k.name().to_string(),
            Build::FeatureOff => format!("{k} (feature off)"),
            Build::NotWritten => format!("{k} (not yet)"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Levenshtein distance, for "did you mean" hints on misspelt keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_has_one_entry_with_its_own_kind_and_prefix() {
        let mut prefixes = std::collections::BTreeSet::new();
        for k in SystemKind::ALL {
            let e = entry(k);
            assert_eq!(e.kind, k);
            assert!(e.env_prefix.starts_with("DEDUP_"), "{k}");
            assert!(prefixes.insert(e.env_prefix), "{k}: prefix {} used twice", e.env_prefix);
            assert_eq!(e.embedded, k.is_embedded(), "{k}");
        }
    }

    #[test]
    fn unknown_and_secret_keys_are_refused_with_the_valid_keys() {
        let pg = entry(SystemKind::Postgresql);
        pg.check_keys("postgresql", ["host", "port", "password_env", "replicas", "cold_command"]).unwrap();
        let e = pg.check_keys("postgresql", ["hots"]).unwrap_err().to_string();
        assert!(e.contains("unknown key `hots` for system postgresql (did you mean `host`?)"), "{e}");
        assert!(e.contains("valid keys: variants, replicas"), "{e}");
        let e = pg.check_keys("pg", ["password"]).unwrap_err().to_string();
        assert!(e.contains("[systems.pg] has `password`") && e.contains("$DEDUP_PG_PASSWORD"), "{e}");
        let e = entry(SystemKind::Sqlite).check_keys("sqlite", ["host"]).unwrap_err().to_string();
        assert!(
            e.contains(
                "valid keys: variants, replicas, probe, prometheus, scrape, max_bytes, cold_command, cold_timeout, cold_pass_env, server_pids, server_pid_files, server_cgroup, dir"
            ),
            "{e}"
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("host", "hots"), 2);
        assert_eq!(edit_distance("port", "port"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
