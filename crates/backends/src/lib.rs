//! Storage backends: one module per system, all behind [`dedup_lab_core::Backend`], and one
//! table describing them all ([`registry`]). Each backend is behind a cargo feature; a
//! backend left out of the build fails with a sentence naming the feature that enables it.

#[cfg(feature = "clickhouse")]
pub mod clickhouse;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod local;
#[cfg(feature = "lsm")]
pub mod lsm;
#[cfg(feature = "mariadb")]
pub mod mariadb;
#[cfg(feature = "net")]
pub mod net;
#[cfg(feature = "postgresql")]
pub mod postgresql;
#[cfg(feature = "redis")]
pub mod redis;
pub mod registry;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use config::{BackendConfig, Secret};
use dedup_lab_core::{Backend, BackendError, SystemKind};
pub use registry::{SystemEntry, entry};

/// Opens a backend for `kind` in configuration `variant`.
pub fn open(kind: SystemKind, variant: &str, cfg: &BackendConfig) -> Result<Box<dyn Backend>, BackendError> {
    let e = entry(kind);
    match e.build {
        registry::Build::Open(open) => open(kind, cfg, variant),
        _ => Err(e.unavailable().expect("not buildable")),
    }
}

/// Whether `kind` is part of this build; the error names the feature that enables it.
pub fn available(kind: SystemKind) -> Result<(), BackendError> {
    entry(kind).unavailable().map_or(Ok(()), Err)
}

/// The configuration variants a system is measured in (each becomes its own matrix row),
/// validated offline: nothing connects.
pub fn variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    (entry(kind).variants)(kind, cfg)
}
