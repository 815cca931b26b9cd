//! Storage backends: one module per system, all behind [`dedup_lab_core::Backend`], and one
//! `match` as the registry ([`open`]). Each backend is behind a cargo feature; a backend
//! left out of the build fails with a sentence naming the feature that enables it.

pub mod config;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "lsm")]
pub mod lsm;
#[cfg(feature = "net")]
pub mod net;
#[cfg(feature = "postgresql")]
pub mod postgresql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use config::{BackendConfig, Secret};
use dedup_lab_core::{Backend, BackendError, SystemKind};

/// Opens a backend for `kind` in configuration `variant`.
#[allow(unused_variables)] // with every backend feature off, nothing reads them
pub fn open(kind: SystemKind, variant: &str, cfg: &BackendConfig) -> Result<Box<dyn Backend>, BackendError> {
    match kind {
        #[cfg(feature = "sqlite")]
        SystemKind::Sqlite => Ok(Box::new(sqlite::SqliteBackend::open(cfg, variant)?)),
        #[cfg(feature = "lsm")]
        SystemKind::Lsm => Ok(Box::new(lsm::LsmBackend::open(cfg, variant)?)),
        #[cfg(feature = "files")]
        SystemKind::Files => Ok(Box::new(files::FilesBackend::open(cfg, variant)?)),
        #[cfg(feature = "postgresql")]
        SystemKind::Postgresql | SystemKind::Cockroachdb => postgresql::PgBackend::open(kind, cfg, variant),
        other => Err(not_built(other)),
    }
}

/// Whether `kind` is part of this build; the error names the feature that enables it.
pub fn available(kind: SystemKind) -> Result<(), BackendError> {
    match kind {
        #[cfg(feature = "sqlite")]
        SystemKind::Sqlite => Ok(()),
        #[cfg(feature = "lsm")]
        SystemKind::Lsm => Ok(()),
        #[cfg(feature = "files")]
        SystemKind::Files => Ok(()),
        #[cfg(feature = "postgresql")]
        SystemKind::Postgresql | SystemKind::Cockroachdb => Ok(()),
        other => Err(not_built(other)),
    }
}

/// The configuration variants a system is measured in (each becomes its own matrix row).
pub fn variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    match kind {
        #[cfg(feature = "postgresql")]
        SystemKind::Postgresql | SystemKind::Cockroachdb => postgresql::variants(kind, cfg),
        // Opening touches nothing on disk: it checks the settings before the run starts.
        #[cfg(feature = "lsm")]
        SystemKind::Lsm => {
            let list = cfg.string_list("variants")?.unwrap_or_else(|| vec!["default".to_string()]);
            for v in &list {
                lsm::LsmBackend::open(cfg, v)?;
            }
            Ok(list)
        }
        _ => Ok(cfg.string_list("variants")?.unwrap_or_else(|| vec!["default".to_string()])),
    }
}

/// The error for a system whose backend is not part of this build, or not written yet.
pub fn not_built(kind: SystemKind) -> BackendError {
    let feature = match kind {
        SystemKind::Sqlite | SystemKind::Lsm | SystemKind::Files | SystemKind::Postgresql => kind.name(),
        SystemKind::Cockroachdb => "postgresql",
        _ => {
            return BackendError::msg(format!(
                "system {kind} has no backend in dedup-lab {} yet; available systems: sqlite, lsm, files, postgresql, cockroachdb",
                env!("CARGO_PKG_VERSION")
            ));
        }
    };
    BackendError::msg(format!(
        "system {kind} is not available in this build of dedup-lab; rebuild with `cargo build --release --features {feature}`"
    ))
}
