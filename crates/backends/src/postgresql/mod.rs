//! PostgreSQL and CockroachDB: one backend for the PostgreSQL wire protocol.
//!
//! # PostgreSQL
//! - Namespace: schema `<lab>` (`dedup_lab`), one table per container:
//!   `dedup_lab.c0 (k text PRIMARY KEY, v bytea NOT NULL)`, the value column's TOAST storage
//!   and compression set by the variant (`extended`, `external`, `main`, `extended-lz4`, …;
//!   see [`variant`]).
//! - Native insertion mode (the namespace has a schema): `c0 (k text PRIMARY KEY, <typed
//!   columns>)` — `bigint`, `numeric(19, s)`, `text`, `timestamptz`, `uuid`, `jsonb`,
//!   `bytea`, … (see [`typed`]); the variant's storage and compression apply to every
//!   variable-length column. COPY, `unnest` and per-record statements send the typed values
//!   in binary; `read_one` rebuilds the record's canonical encoding from the stored columns.
//! - `reset`/`teardown` drop only the lab schema's own tables and then the schema, without
//!   `CASCADE`: an object outside the lab that depends on a lab table (a view, a foreign key)
//!   makes them fail with a clear error instead of being dropped along.
//! - Bulk path: `COPY … FROM STDIN (FORMAT binary)`, one COPY per container (a second
//!   connection for `c1`), returning the counts of the servers' `COPY n` tags. `bulk = unnest`
//!   selects the CockroachDB path instead.
//! - Per-record operations use unnamed statements with explicit parameter types
//!   (`execute_typed`/`query_typed`): nothing is cached on the server, so a dropped and
//!   recreated schema cannot collide with or invalidate a prepared statement.
//! - `inventory` lists the lab schema and its tables (`schema dedup_lab`, `table
//!   dedup_lab.c0`, …) when it exists; `drop_lab` drops exactly that, as teardown does.
//! - `maintenance`: `VACUUM (FULL, ANALYZE)` on the lab tables.
//! - `settle`: `CHECKPOINT` when the role may (superuser or `pg_checkpoint`, PostgreSQL 15+).
//!   Otherwise nothing is run: relation files are extended when pages are added, so their
//!   allocated size is already current; only page contents may still sit in shared buffers.
//!   Which of the two happened is reported in `sizes().details["settle"]` and by `preflight`.
//! - `sizes`: `pg_total_relation_size` per lab table summed, with heap / maps / TOAST / TOAST
//!   index / index bytes per table in the details.
//! - `data_paths`: with `data_dir` set, the exact files of each lab table, its indexes, its
//!   TOAST table and TOAST index (all segments and the `_fsm`/`_vm`/`_init` forks), resolved
//!   with `pg_relation_filepath()`. VACUUM FULL gives relations new files, so ask again for
//!   every measurement.
//!
//! # CockroachDB
//! Same wire code. Namespace: database `<lab>`, tables `dedup_lab.public.c0`. Bulk path:
//! batched `INSERT … SELECT * FROM unnest($1::text[], $2::bytea[])`. TLS is required unless
//! `sslmode=disable` is set explicitly. Sizes: `SHOW RANGES FROM TABLE … WITH DETAILS`
//! (`range_size`, needs admin or the ZONECONFIG privilege). Maintenance and settle: none a
//! non-admin can trigger; reported as such.
//!
//! No CockroachDB server is available to this project's tests. What the tests run against
//! PostgreSQL (via [`PgBackend::open_cockroach_path_on_postgres`], which uses a schema where
//! CockroachDB uses a database): settings and TLS defaults (TLS required; `prefer` refused),
//! the `unnest` bulk path, per-record statements, count, preflight's marker check, and error
//! messages. **Untested CockroachDB-only SQL:**
//! - `DROP DATABASE IF EXISTS "dedup_lab" CASCADE` and `CREATE DATABASE "dedup_lab"`;
//! - the inventory's `pg_database` and `"dedup_lab".information_schema.tables` queries;
//! - three-part names `"dedup_lab".public."c0"` in every statement;
//! - `SELECT … FROM [SHOW RANGES FROM TABLE … WITH DETAILS]` (`range_size`) in `sizes`;
//! - that CockroachDB accepts unnamed typed statements with array parameters exactly as
//!   PostgreSQL does (it implements the extended protocol; not verified here);
//! - `SELECT version(), 0::INT4, false` at connect, and running each DDL statement on its own
//!   (CockroachDB restricts schema changes inside transactions);
//! - the permission-denied fallback of `sizes` (a note instead of a total) and the CREATEDB
//!   hint for a role that may not create the lab database.
//!
//! The lab database is dropped with `CASCADE` (everything in it is the lab's); unlike the
//! PostgreSQL path this would also drop views in other databases that depend on lab tables.
//!
//! # Modules
//! [`settings`], `conn` (connections), `errors` (messages and error classes), `dialect`
//! (every PostgreSQL / CockroachDB difference), `ddl` (names, create, drop, inventory),
//! `copy` and `unnest` (the bulk paths), `records` (per-record operations), `preflight`,
//! `sizes` (settle, maintenance, sizes, data paths), [`typed`] and [`variant`]. Connection
//! settings, TLS, error classes of sockets, the consistency check and batching are shared
//! with the other server backends ([`crate::net`]).

mod conn;
mod copy;
mod ddl;
mod dialect;
mod errors;
mod preflight;
mod records;
pub mod settings;
mod sizes;
pub mod typed;
mod unnest;
pub mod variant;

use crate::BackendConfig;
use conn::{Conn, ServerInfo};
use dedup_lab_core::{
    Backend, BackendError, ErrorClass, InternalSizes, LabName, MaintenanceReport, Namespace, PreflightReport, Record,
    RecordId, RecordStream, Schema, SystemKind,
};
use dialect::Dialect;
use settings::{BulkPath, Settings};
use std::path::PathBuf;
use tokio::runtime::Runtime;
use tokio_postgres_rustls::MakeRustlsConnect;
use variant::{Compression, ValueColumn, Variant};

/// The configuration variants of `kind`: the `variants` setting, or the defaults
/// (`extended`, `external` for PostgreSQL; `default` for CockroachDB). Validated offline: no
/// connection is made (dry runs call this).
pub fn variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    let list = cfg.string_list("variants")?.unwrap_or_else(|| Variant::defaults(kind));
    if list.is_empty() {
        return Err(BackendError::msg(format!("{kind}: the `variants` list is empty")).classed(ErrorClass::Config));
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in &list {
        Variant::parse(kind, v).map_err(|e| e.classed(ErrorClass::Config))?;
        if !seen.insert(v.as_str()) {
            return Err(BackendError::msg(format!("{kind}: variant {v:?} is listed twice")).classed(ErrorClass::Config));
        }
    }
    Ok(list)
}

pub struct PgBackend {
    kind: SystemKind,
    dialect: Dialect,
    s: Settings,
    variant: Variant,
    value_column: ValueColumn,
    tls: MakeRustlsConnect,
    conn: Option<Conn>,
    server: ServerInfo,
    /// `Some(false)` once CHECKPOINT was refused for lack of privilege.
    checkpoint_allowed: Option<bool>,
    /// What `settle` did last (reported in `sizes` details).
    settle_note: String,
    /// Drives every connection of this backend; declared last so it is dropped last.
    rt: Runtime,
}

impl PgBackend {
    /// Opens `kind` (PostgreSQL or CockroachDB) in `variant`: connects, reads the server
    /// version, and checks that the server can serve the variant.
    pub fn open(kind: SystemKind, cfg: &BackendConfig, variant: &str) -> Result<Box<dyn Backend>, BackendError> {
        Ok(Box::new(Self::open_dialect(kind, cfg, variant, Dialect::of(kind))?))
    }

    /// Test hook: the CockroachDB code path (settings, TLS defaults, unnest bulk path, no
    /// maintenance or checkpoint) against a PostgreSQL server, with the lab in a schema
    /// instead of a database. `sizes` still runs CockroachDB's SQL and so fails there.
    #[doc(hidden)]
    pub fn open_cockroach_path_on_postgres(cfg: &BackendConfig) -> Result<PgBackend, BackendError> {
        Self::open_dialect(SystemKind::Cockroachdb, cfg, "default", Dialect::cockroach_on_postgres())
    }

    fn open_dialect(
        kind: SystemKind,
        cfg: &BackendConfig,
        variant: &str,
        dialect: Dialect,
    ) -> Result<PgBackend, BackendError> {
        if !matches!(kind, SystemKind::Postgresql | SystemKind::Cockroachdb) {
            return Err(
                BackendError::msg(format!("the PostgreSQL backend cannot serve {kind}")).classed(ErrorClass::Config)
            );
        }
        let variant = Variant::parse(kind, variant).map_err(|e| e.classed(ErrorClass::Config))?;
        let s = Settings::from_config(kind, cfg)?;
        let tls = MakeRustlsConnect::new(crate::net::tls::client_config(&s)?.as_ref().clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BackendError::with_source(format!("{kind}: starting the I/O runtime"), e))?;
        let mut b = PgBackend {
            kind,
            dialect,
            s,
            variant,
            value_column: ValueColumn::Bytea,
            tls,
            conn: None,
            server: ServerInfo::default(),
            checkpoint_allowed: None,
            settle_note: "not run yet".into(),
            rt,
        };
        b.ensure_conn()?;
        if b.variant.compression == Compression::Lz4 && !b.server.lz4 {
            return Err(BackendError::msg(format!(
                "{kind} {}: variant {:?} needs lz4 TOAST compression, which this server ({}) does not offer \
                 (needs PostgreSQL 14+ built with lz4); drop it from `variants`",
                b.s.endpoint(),
                b.variant.name,
                b.server.version
            ))
            .classed(ErrorClass::Config));
        }
        Ok(b)
    }

    /// `postgresql 127.0.0.1:54329/dedup as dedup`, the start of every message.
    fn sys(&self) -> String {
        format!("{} {}", self.kind, self.s.endpoint())
    }
}

impl Backend for PgBackend {
    fn kind(&self) -> SystemKind {
        self.kind
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
        match self.s.bulk {
            BulkPath::Copy => self.bulk_copy(ns, records),
            BulkPath::Unnest => self.bulk_unnest(ns, records),
        }
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
        self.reclaim(ns)
    }

    fn settle(&mut self, _ns: &Namespace) -> Result<(), BackendError> {
        self.checkpoint()
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
        self.relation_paths(ns)
    }

    fn native_storage(&self, schema: &Schema) -> String {
        let storage = match self.variant.storage {
            Some(s) => format!("; TOAST storage {} on the variable-length columns", s.sql()),
            None => String::new(),
        };
        format!("one typed table per container (k text PRIMARY KEY, {}){storage}", typed::column_defs(schema))
    }

    fn inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        self.lab_inventory(lab)
    }

    fn drop_lab(&mut self, lab: &LabName) -> Result<(), BackendError> {
        self.drop_lab_objects(lab)
    }

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.conn = None;
        Ok(Some(format!("closed the connection to {}; the next call opens a new one", self.s.endpoint())))
    }
}
