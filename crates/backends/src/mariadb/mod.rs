//! MariaDB (and MySQL-protocol servers) on InnoDB.
//!
//! - Namespace: the database `<lab>` (`dedup_lab`), the only one dedup-lab creates, writes
//!   or drops; one table per container, `c0`, `c1`:
//!   `(k VARCHAR(64) ASCII PRIMARY KEY, v LONGBLOB NOT NULL) ENGINE=InnoDB <row format>`.
//! - Native insertion mode (the namespace has a schema): typed columns instead of `v`
//!   (`BIGINT`, `DECIMAL(19, s)`, `LONGTEXT`, `DATETIME(6)`, `UUID` or `BINARY(16)`, `JSON`,
//!   `LONGBLOB`; see [`typed`]); `read_one` rebuilds the canonical encoding from the columns.
//! - Variants ([`variant`]): `dynamic`, `compressed` (`KEY_BLOCK_SIZE` from the settings, or
//!   `compressed-<k>`), `page-compressed` (`PAGE_COMPRESSED=1` with the server's
//!   `innodb_compression_algorithm`). What the server cannot serve is refused when the
//!   backend opens, so `preflight` names it.
//! - Bulk path: `LOAD DATA LOCAL INFILE` streamed from the record iterator through the
//!   driver's per-connection infile handler (no temporary file), one statement per
//!   container (a second connection for `c1`), each in a transaction that is rolled back when
//!   anything fails; the row count is the server's. When the server forbids local infile, or
//!   with `bulk = "insert"`, batched multi-row `INSERT` instead; the stage's notes say which.
//! - Per record: prepared `INSERT` / `DELETE` / `SELECT` on one persistent connection.
//! - `maintenance`: `OPTIMIZE TABLE` (InnoDB rebuilds the table).
//! - `settle`: after deletes, a bounded wait until InnoDB's purge has freed the deleted
//!   records' pages (history length 0, from `INNODB_METRICS`), so the delete stage is
//!   measured with them free; then `FLUSH TABLES … FOR EXPORT` (writes the tables' dirty pages, so page
//!   compression's holes are punched and the files are current) and `ANALYZE TABLE` (the
//!   sizes in `information_schema` are statistics, stale without it). Without the RELOAD
//!   privilege only `ANALYZE TABLE` runs; the sizes' details say so.
//! - `sizes`: `information_schema.TABLES` (data, index, free bytes; total = data + index)
//!   and `INNODB_SYS_TABLESPACES` (file and allocated size; needs the PROCESS privilege).
//! - `data_paths`: with `data_dir` set, the lab tables' own `.ibd` files, whose allocated
//!   blocks count the holes page compression punches.
//!
//! Modules: [`settings`], `conn` (connections), `errors` (messages and classes), `ddl`,
//! `load` (bulk paths), `records` (per-record operations), `sizes` (settle, maintenance,
//! sizes, files, notes), `preflight`, [`typed`], [`variant`].

mod conn;
mod ddl;
mod errors;
mod load;
mod preflight;
mod records;
pub mod settings;
mod sizes;
pub mod typed;
pub mod variant;

use crate::BackendConfig;
use conn::ServerInfo;
use dedup_lab_core::{
    Backend, BackendError, ErrorClass, InternalSizes, LabName, MaintenanceReport, Namespace, PreflightReport, Record,
    RecordId, RecordStream, Schema, SystemKind,
};
use settings::{SYSTEM, Settings};
use std::path::PathBuf;
use tokio::runtime::Runtime;
use variant::Variant;

/// The configuration variants: the `variants` setting, or `dynamic`, `compressed`,
/// `page-compressed`. Validated offline: no connection is made (dry runs call this).
pub fn variants(cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    let s = Settings::from_config(cfg)?;
    let list = cfg.string_list("variants")?.unwrap_or_else(Variant::defaults);
    if list.is_empty() {
        return Err(BackendError::msg(format!("{SYSTEM}: the `variants` list is empty")).classed(ErrorClass::Config));
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in &list {
        Variant::parse(v, s.key_block_size, s.page_compression_level).map_err(|e| e.classed(ErrorClass::Config))?;
        if !seen.insert(v.as_str()) {
            return Err(
                BackendError::msg(format!("{SYSTEM}: variant {v:?} is listed twice")).classed(ErrorClass::Config)
            );
        }
    }
    Ok(list)
}

pub struct MariaBackend {
    s: Settings,
    variant: Variant,
    conn: Option<mysql_async::Conn>,
    /// `prefer` found no TLS on the server: connect in plaintext from now on.
    plain_only: bool,
    server: ServerInfo,
    /// Records were deleted since the last settle: purge may still be freeing their pages.
    purge_pending: bool,
    /// `Some(false)` once `FLUSH TABLES … FOR EXPORT` was refused for lack of privilege.
    flush_allowed: Option<bool>,
    /// What `settle` did last (reported in the sizes' details).
    settle_note: String,
    /// Notes for the stage being measured ([`Backend::take_notes`]).
    notes: Vec<String>,
    /// The last [`sizes`](Backend::sizes) reading, for the note that compares it with the files.
    last_sizes: Option<sizes::Reading>,
    /// The data directory was found to hold the lab's files.
    data_dir_checked: bool,
    /// Drives every connection of this backend; declared last so it is dropped last.
    rt: Runtime,
}

impl MariaBackend {
    /// Opens the backend in `variant`: connects, reads the server version, and checks that
    /// the server can serve the variant.
    pub fn open(cfg: &BackendConfig, variant: &str) -> Result<MariaBackend, BackendError> {
        let s = Settings::from_config(cfg)?;
        let variant = Variant::parse(variant, s.key_block_size, s.page_compression_level)
            .map_err(|e| e.classed(ErrorClass::Config))?;
        // The CA file is read and checked by the shared TLS code, for its messages.
        crate::net::tls::client_config(&s)?;
        // The driver builds its rustls configuration with the process's default provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BackendError::with_source(format!("{SYSTEM}: starting the I/O runtime"), e))?;
        let mut b = MariaBackend {
            s,
            variant,
            conn: None,
            plain_only: false,
            server: ServerInfo::default(),
            purge_pending: false,
            flush_allowed: None,
            settle_note: "not run yet".into(),
            notes: Vec::new(),
            last_sizes: None,
            data_dir_checked: false,
            rt,
        };
        b.ensure_conn()?;
        b.check_variant()?;
        Ok(b)
    }

    /// `mariadb 127.0.0.1:33069 as dedup`, the start of every message.
    fn sys(&self) -> String {
        format!("{SYSTEM} {}", self.s.endpoint())
    }
}

impl Drop for MariaBackend {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            conn::close(&self.rt, c);
        }
    }
}

impl Backend for MariaBackend {
    fn kind(&self) -> SystemKind {
        SystemKind::Mariadb
    }

    fn variant(&self) -> &str {
        &self.variant.name
    }

    fn endpoint(&self) -> String {
        self.s.endpoint()
    }

    fn server_version(&mut self) -> Result<String, BackendError> {
        self.ensure_conn()?;
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
        self.flush_and_analyze(ns)
    }

    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        self.count_rows(ns)
    }

    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        self.read_sizes(ns)
    }

    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.drop_lab_database(ns.lab())
    }

    fn data_paths(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        self.table_files(ns)
    }

    fn native_storage(&self, schema: &Schema) -> String {
        format!(
            "one typed InnoDB table per container ({}, {}) {}",
            typed::KEY_COLUMN,
            typed::column_defs(schema, self.server.uuid_native),
            self.variant.table_options()
        )
    }

    fn take_notes(&mut self) -> Vec<String> {
        self.stage_notes()
    }

    fn inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        self.lab_inventory(lab)
    }

    fn drop_lab(&mut self, lab: &LabName) -> Result<(), BackendError> {
        self.drop_lab_database(lab)
    }

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        if let Some(c) = self.conn.take() {
            conn::close(&self.rt, c);
        }
        Ok(Some(format!("closed the connection to {}; the next call opens a new one", self.s.endpoint())))
    }
}
