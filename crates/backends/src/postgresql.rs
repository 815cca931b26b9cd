//! PostgreSQL and CockroachDB (placeholder: being written on the `pg` branch).

use crate::BackendConfig;
use dedup_lab_core::{Backend, BackendError, SystemKind};

pub struct PgBackend;

impl PgBackend {
    pub fn open(kind: SystemKind, _cfg: &BackendConfig, _variant: &str) -> Result<Box<dyn Backend>, BackendError> {
        Err(crate::not_built(kind))
    }
}

pub fn variants(_kind: SystemKind, _cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    Ok(vec!["default".into()])
}
