//! ClickHouse over its HTTP interface: MergeTree against ReplacingMergeTree, the column
//! store of the study.
//!
//! What is measured: how much of a dataset's bytes the server keeps on disk in `MergeTree`
//! parts, and how that changes when the table engine collapses duplicate rows on merge
//! (`ReplacingMergeTree` ordered by a content hash) or when a column codec compresses the
//! payload column (see [`variant`]). Compression per column block acts on every variant.
//!
//! - Namespace: database `<lab>` (`dedup_lab`), one table per container,
//!   `c0 (k String, v String)` in blob mode, typed `Nullable` columns in native mode (see
//!   [`rowbinary`]). `reset`/`teardown` drop the lab database (everything in it is the lab's)
//!   and nothing else; `inventory` lists it and its tables for `cleanup`.
//! - Write paths (`records`): bulk `INSERT … FORMAT RowBinary` in batches bounded by bytes,
//!   each verified by `count()` (18.16 reports no insert count); per-record single-row
//!   inserts; per-record deletes as `ALTER TABLE … DELETE` mutations, waited for.
//! - `maintenance`: `OPTIMIZE TABLE … FINAL`; `settle`: no merge or mutation running and
//!   replaced parts gone from disk (`sizes`).
//! - Sizes: `system.parts`, active parts only; the `fs` probe reads the table directories
//!   under `data_dir` when the server is local.
//! - Errors: the ClickHouse error code decides the class (`errors`); the password travels
//!   only in the `X-ClickHouse-Key` header.
//!
//! Written and tested against ClickHouse 18.16 (the only server installable here). Paths a
//! newer server would take are named in the README ("ClickHouse") as untested.
//!
//! Why not the `clickhouse` crate: it defaults to `RowBinaryWithNamesAndTypes` validation
//! and lz4 compression, both unknown to 18.16, brings its own HTTP stack (hyper) beside the
//! shared client, and maps rows through serde structs where this backend writes bytes and
//! a handful of typed values. RowBinary is a few dozen lines ([`rowbinary`]).

mod conn;
mod ddl;
mod errors;
mod preflight;
mod records;
pub mod rowbinary;
pub mod settings;
mod sizes;
pub mod variant;

use crate::BackendConfig;
use conn::Client;
use dedup_lab_core::{
    Backend, BackendError, ErrorClass, InternalSizes, LabName, MaintenanceReport, Namespace, Operation,
    PreflightReport, Record, RecordId, RecordStream, Schema, SystemKind,
};
use settings::Settings;
use std::path::PathBuf;
use variant::{Engine, Variant};

/// The variants to measure: the `variants` setting or [`variant::DEFAULTS`], validated
/// offline (no connection).
pub fn variants(_kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    let list =
        cfg.string_list("variants")?.unwrap_or_else(|| variant::DEFAULTS.iter().map(|s| s.to_string()).collect());
    if list.is_empty() {
        return Err(BackendError::msg("clickhouse: the `variants` list is empty").classed(ErrorClass::Config));
    }
    for (i, v) in list.iter().enumerate() {
        Variant::parse(v)?;
        if list[..i].contains(v) {
            return Err(
                BackendError::msg(format!("clickhouse: variant {v:?} is listed twice")).classed(ErrorClass::Config)
            );
        }
    }
    Ok(list)
}

/// What the server said about itself when the backend opened.
#[derive(Debug, Clone, Default)]
struct ServerInfo {
    version: String,
    /// `system.mutations` has `latest_fail_reason`.
    fail_reason: bool,
    /// Lightweight `DELETE FROM` without experimental settings (23.3+).
    lightweight_delete: bool,
}

pub struct ChBackend {
    s: Settings,
    variant: Variant,
    c: Client,
    server: ServerInfo,
    settle_note: String,
}

impl ChBackend {
    /// Opens the backend in `variant`: reads the server version (which connects and
    /// authenticates) and refuses a variant the server cannot serve.
    pub fn open(cfg: &BackendConfig, variant: &str) -> Result<ChBackend, BackendError> {
        let variant = Variant::parse(variant)?;
        let s = Settings::from_config(cfg)?;
        let c = Client::new(&s)?;
        let mut b = ChBackend { s, variant, c, server: ServerInfo::default(), settle_note: "not run yet".into() };
        b.connect()?;
        if b.variant.codec.is_some()
            && variant::major_minor(&b.server.version).is_none_or(|v| v < variant::CODECS_SINCE)
        {
            let (maj, min) = variant::CODECS_SINCE;
            return Err(BackendError::msg(format!(
                "{}: variant {:?} needs column codecs, which ClickHouse has from {maj}.{min}; this server is {}. \
                 Drop it from `variants` or measure a newer server",
                b.c.sys, b.variant.name, b.server.version
            ))
            .classed(ErrorClass::Config));
        }
        Ok(b)
    }

    fn connect(&mut self) -> Result<(), BackendError> {
        let rows = self.c.rows(
            "connecting",
            "SELECT version(), (SELECT count() FROM system.columns WHERE database = 'system' AND table = 'mutations' \
             AND name = 'latest_fail_reason')",
        )?;
        let row = rows.into_iter().next().unwrap_or_default();
        let version = row.first().cloned().unwrap_or_default();
        self.server = ServerInfo {
            lightweight_delete: variant::major_minor(&version).is_some_and(|v| v >= variant::LIGHTWEIGHT_DELETE_SINCE),
            version,
            fail_reason: row.get(1).is_some_and(|n| n != "0"),
        };
        Ok(())
    }

    fn engine_name(&self) -> &'static str {
        match self.variant.engine {
            Engine::MergeTree => "MergeTree",
            Engine::Replacing => "ReplacingMergeTree",
        }
    }
}

impl Backend for ChBackend {
    fn kind(&self) -> SystemKind {
        SystemKind::Clickhouse
    }

    fn variant(&self) -> &str {
        &self.variant.name
    }

    fn endpoint(&self) -> String {
        self.s.endpoint()
    }

    fn server_version(&mut self) -> Result<String, BackendError> {
        Ok(self.server.version.clone())
    }

    fn preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        self.run_preflight(ns)
    }

    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.reset_lab(ns)
    }

    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        self.bulk(ns, records)
    }

    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        self.insert_record(ns, r)
    }

    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        self.delete_record(ns, id)
    }

    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        self.read_record(ns, id)
    }

    fn maintenance(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        self.optimize(ns)
    }

    fn settle(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.settle_lab(ns)
    }

    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        self.count_rows(ns)
    }

    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        self.read_sizes(ns)
    }

    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.drop_lab_objects(ns.lab())
    }

    fn data_paths(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        self.table_dirs(ns)
    }

    fn native_storage(&self, schema: &Schema) -> String {
        format!(
            "one {} table per container (k String, {})",
            self.engine_name(),
            rowbinary::column_defs(schema, self.variant.codec)
        )
    }

    fn unsupported(&self, _op: Operation) -> Option<String> {
        None
    }

    fn deduplicates(&self) -> Option<String> {
        (self.variant.engine == Engine::Replacing).then(|| {
            "ReplacingMergeTree ordered by a content hash: rows with equal content collapse into one when parts \
             merge"
                .to_string()
        })
    }

    fn inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        self.lab_inventory(lab)
    }

    fn drop_lab(&mut self, lab: &LabName) -> Result<(), BackendError> {
        self.drop_lab_objects(lab)
    }

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.c = Client::new(&self.s)?;
        self.connect()?;
        Ok(Some(format!("dropped the HTTP connections to {}; the next request opens a new one", self.s.endpoint())))
    }
}
