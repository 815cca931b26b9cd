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

mod conn;
pub mod settings;
mod tls;
pub mod typed;
pub mod variant;

use crate::BackendConfig;
use conn::{Conn, OpKind, op_error};
use dedup_lab_core::{
    Backend, BackendError, InternalSizes, MaintenanceReport, Namespace, PreflightReport, Record, RecordId,
    RecordStream, Schema, SystemKind, Value,
};
use settings::{BulkPath, Settings};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::runtime::Runtime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres_rustls::MakeRustlsConnect;
use typed::{PgValue, RawValue};
use variant::{Compression, ValueColumn, Variant};

/// The configuration variants of `kind`: the `variants` setting, or the defaults
/// (`extended`, `external` for PostgreSQL; `default` for CockroachDB). Validated offline: no
/// connection is made (dry runs call this).
pub fn variants(kind: SystemKind, cfg: &BackendConfig) -> Result<Vec<String>, BackendError> {
    let list = cfg.string_list("variants")?.unwrap_or_else(|| Variant::defaults(kind));
    if list.is_empty() {
        return Err(BackendError::msg(format!("{kind}: the `variants` list is empty")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in &list {
        Variant::parse(kind, v)?;
        if !seen.insert(v.as_str()) {
            return Err(BackendError::msg(format!("{kind}: variant {v:?} is listed twice")));
        }
    }
    Ok(list)
}

/// Where the lab lives on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NsMode {
    /// PostgreSQL: schema `<lab>` in the configured database.
    Schema,
    /// CockroachDB: database `<lab>`.
    Database,
}

/// What the server told us when we first connected.
#[derive(Debug, Clone, Default)]
struct ServerInfo {
    version: String,
    /// `server_version_num` (PostgreSQL only; 0 when unknown).
    version_num: u32,
    lz4: bool,
}

pub struct PgBackend {
    kind: SystemKind,
    ns_mode: NsMode,
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
        let mode = if kind == SystemKind::Cockroachdb { NsMode::Database } else { NsMode::Schema };
        Ok(Box::new(Self::open_mode(kind, cfg, variant, mode)?))
    }

    /// Test hook: the CockroachDB code path (settings, TLS defaults, unnest bulk path, no
    /// maintenance or checkpoint) against a PostgreSQL server, with the lab in a schema
    /// instead of a database. `sizes` still runs CockroachDB's SQL and so fails there.
    #[doc(hidden)]
    pub fn open_cockroach_path_on_postgres(cfg: &BackendConfig) -> Result<PgBackend, BackendError> {
        Self::open_mode(SystemKind::Cockroachdb, cfg, "default", NsMode::Schema)
    }

    fn open_mode(
        kind: SystemKind,
        cfg: &BackendConfig,
        variant: &str,
        ns_mode: NsMode,
    ) -> Result<PgBackend, BackendError> {
        if !matches!(kind, SystemKind::Postgresql | SystemKind::Cockroachdb) {
            return Err(BackendError::msg(format!("the PostgreSQL backend cannot serve {kind}")));
        }
        let variant = Variant::parse(kind, variant)?;
        let s = Settings::from_config(kind, cfg)?;
        let tls = tls::connector(&s)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BackendError::with_source(format!("{kind}: starting the I/O runtime"), e))?;
        let mut b = PgBackend {
            kind,
            ns_mode,
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
            )));
        }
        Ok(b)
    }

    fn is_pg(&self) -> bool {
        self.kind == SystemKind::Postgresql
    }

    fn sys(&self) -> String {
        format!("{} {}", self.kind, self.s.endpoint())
    }

    /// Connects when there is no live connection (first use, after `reopen`, after the
    /// server went away).
    fn ensure_conn(&mut self) -> Result<(), BackendError> {
        if self.conn.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.conn = None;
        let conn = Conn::open(&self.rt, &self.s, &self.tls)?;
        if self.server.version.is_empty() {
            let pg = self.is_pg();
            let sql = if pg {
                "SELECT version(), current_setting('server_version_num')::int4, \
                 COALESCE((SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'), false)"
            } else {
                "SELECT version(), 0::INT4, false"
            };
            let row = self
                .rt
                .block_on(conn.client.query_typed(sql, &[]))
                .map_err(|e| op_error(&self.s, "reading the server version", OpKind::Admin, e, None))?;
            let row =
                row.into_iter().next().ok_or_else(|| BackendError::msg(format!("{}: no version row", self.sys())))?;
            self.server = ServerInfo {
                version: row.get::<_, String>(0),
                version_num: row.get::<_, i32>(1).max(0) as u32,
                lz4: row.get::<_, bool>(2),
            };
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// Runs `f` on the connection; errors get the system, endpoint, `op` and a hint.
    fn run<T>(
        &mut self,
        kind: OpKind,
        op: impl FnOnce() -> String,
        f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, BackendError> {
        self.ensure_conn()?;
        let conn = self.conn.as_ref().expect("connected above");
        let result = self.rt.block_on(f(&conn.client));
        result.map_err(|e| self.fail(kind, &op(), e))
    }

    /// Turns a driver error into our error; forgets a dead connection (the next call
    /// reconnects) and says why it died.
    fn fail(&mut self, kind: OpKind, op: &str, e: tokio_postgres::Error) -> BackendError {
        let ended = if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn.take().and_then(|c| c.end_reason(&self.rt))
        } else {
            None
        };
        op_error(&self.s, op, kind, e, ended)
    }

    fn batch(&mut self, kind: OpKind, op: impl FnOnce() -> String, sql: &str) -> Result<(), BackendError> {
        self.run(kind, op, async |c| c.batch_execute(sql).await)
    }

    // ----- names, all derived from the namespace -----

    fn lab(ns: &Namespace) -> String {
        // LabName allows only [a-z0-9_], so quoting cannot be escaped.
        format!("\"{}\"", ns.lab())
    }

    /// A relation of the lab: `"dedup_lab"."c0"` or, in a CockroachDB database,
    /// `"dedup_lab".public."c0"`.
    fn rel(&self, ns: &Namespace, name: &str) -> String {
        debug_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        match self.ns_mode {
            NsMode::Schema => format!("{}.\"{name}\"", Self::lab(ns)),
            NsMode::Database => format!("{}.public.\"{name}\"", Self::lab(ns)),
        }
    }

    fn table(&self, ns: &Namespace, container: u8) -> String {
        self.rel(ns, &ns.container_name(container))
    }

    fn container_of(ns: &Namespace, c: u8, what: &str) -> Result<(), BackendError> {
        check_container(usize::from(ns.container_count()), c, what)
    }

    fn kind_word(&self) -> &'static str {
        match self.ns_mode {
            NsMode::Schema => "schema",
            NsMode::Database => "database",
        }
    }

    /// SQL that drops the lab (PostgreSQL: its own tables, then the empty schema, no CASCADE).
    fn drop_sql(&mut self, ns: &Namespace) -> Result<Vec<String>, BackendError> {
        let lab = Self::lab(ns);
        if self.ns_mode == NsMode::Database {
            if self.s.database == ns.lab().as_str() {
                return Err(BackendError::msg(format!(
                    "{}: refusing to drop database {lab}: it is the database dedup-lab is connected to",
                    self.sys()
                )));
            }
            return Ok(vec![format!("DROP DATABASE IF EXISTS {lab} CASCADE")]);
        }
        let name = ns.lab().to_string();
        let tables: Vec<String> = self.run(
            OpKind::Ddl,
            || format!("listing the tables of schema {lab}"),
            async |c| {
                let rows = c
                    .query_typed(
                        "SELECT quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
                        &[(&name, Type::TEXT)],
                    )
                    .await?;
                Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
            },
        )?;
        let mut sql = Vec::new();
        if !tables.is_empty() {
            let list: Vec<String> = tables.iter().map(|t| format!("{lab}.{t}")).collect();
            sql.push(format!("DROP TABLE IF EXISTS {}", list.join(", ")));
        }
        sql.push(format!("DROP SCHEMA IF EXISTS {lab}"));
        Ok(sql)
    }

    fn create_sql(&self, ns: &Namespace) -> Vec<String> {
        let lab = Self::lab(ns);
        let mut sql = vec![match self.ns_mode {
            NsMode::Schema => format!("CREATE SCHEMA {lab}"),
            NsMode::Database => format!("CREATE DATABASE {lab}"),
        }];
        // The variant's storage and compression apply to the value column (blob mode) or to
        // every variable-length column of the typed table (native mode).
        let (columns, toasted): (String, Vec<String>) = match ns.schema() {
            None => (format!("v {} NOT NULL", self.value_column.sql()), vec!["v".into()]),
            Some(s) => (
                typed::column_defs(s),
                s.columns.iter().filter(|c| typed::toastable(c.ty)).map(|c| typed::ident(&c.name)).collect(),
            ),
        };
        for (i, _) in ns.containers() {
            let t = self.table(ns, i);
            sql.push(format!("CREATE TABLE {t} (k text PRIMARY KEY, {columns})"));
            if let Some(storage) = self.variant.storage
                && !toasted.is_empty()
            {
                let mut alters = Vec::new();
                for c in &toasted {
                    alters.push(format!("ALTER COLUMN {c} SET STORAGE {}", storage.sql()));
                    // Per-column compression exists since PostgreSQL 14; set it explicitly so
                    // the server's default_toast_compression cannot change what a variant means.
                    if storage.compresses() && self.server.version_num >= 140000 {
                        alters.push(format!("ALTER COLUMN {c} SET COMPRESSION {}", self.variant.compression.sql()));
                    }
                }
                sql.push(format!("ALTER TABLE {t} {}", alters.join(", ")));
            }
        }
        sql
    }

    /// Runs DDL statements: in one transaction on PostgreSQL, one by one on CockroachDB
    /// (which restricts schema changes inside transactions).
    fn ddl(&mut self, what: String, sql: Vec<String>) -> Result<(), BackendError> {
        if self.ns_mode == NsMode::Schema {
            let joined = sql.join(";\n");
            self.batch(OpKind::Ddl, || what, &joined)
        } else {
            for stmt in sql {
                self.batch(OpKind::Ddl, || format!("{what}: {stmt}"), &stmt)?;
            }
            Ok(())
        }
    }

    // ----- bulk paths -----

    fn bulk_copy(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        self.ensure_conn()?;
        let n = usize::from(ns.container_count());
        let cols = ns.schema().map_or_else(|| "k, v".to_string(), typed::column_names);
        let stmts: Vec<String> =
            (0..n).map(|i| format!("COPY {} ({cols}) FROM STDIN (FORMAT binary)", self.table(ns, i as u8))).collect();
        let mut extra: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
        let main = &self.conn.as_ref().expect("connected above").client;
        let target = CopyTarget { stmts: &stmts, schema: ns.schema() };
        let result = copy_all(&self.rt, &self.s, &self.tls, main, &mut extra, &target, records);
        drop(extra);
        match result {
            Ok(rows) => Ok(rows),
            Err(BulkError::Backend(e)) => Err(e),
            Err(BulkError::Pg { container: 0, op, err }) => Err(self.fail(OpKind::Dml, &op, err)),
            Err(BulkError::Pg { op, err, .. }) => Err(op_error(&self.s, &op, OpKind::Dml, err, None)),
        }
    }

    fn bulk_unnest(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let n = usize::from(ns.container_count());
        let (cols, arrays) = match ns.schema() {
            None => ("k, v".to_string(), format!("$1::text[], $2::{}[]", self.value_column.sql())),
            Some(s) => {
                let arrays: Vec<String> = std::iter::once("$1::text[]".to_string())
                    .chain(
                        s.columns.iter().enumerate().map(|(j, c)| format!("${}::{}[]", j + 2, typed::pg_type(c.ty).0)),
                    )
                    .collect();
                (typed::column_names(s), arrays.join(", "))
            }
        };
        let sql: Vec<String> = (0..n)
            .map(|i| format!("INSERT INTO {} ({cols}) SELECT * FROM unnest({arrays})", self.table(ns, i as u8)))
            .collect();
        let mut batches: Vec<(Vec<Record>, usize)> = (0..n).map(|_| (Vec::new(), 0)).collect();
        let (max_rows, max_bytes) = (self.s.batch_rows, self.s.batch_bytes);
        let mut total = 0u64;
        for item in records {
            let r = item?;
            Self::container_of(ns, r.id.container, &r.id.key)?;
            let i = usize::from(r.id.container);
            let b = &mut batches[i];
            b.1 += r.id.key.len() + r.data.len();
            b.0.push(r);
            if b.0.len() >= max_rows || b.1 >= max_bytes {
                let batch = std::mem::take(&mut b.0);
                b.1 = 0;
                total += self.insert_batch(&sql[i], ns.schema(), &batch)?;
            }
        }
        for (i, b) in batches.into_iter().enumerate() {
            if !b.0.is_empty() {
                total += self.insert_batch(&sql[i], ns.schema(), &b.0)?;
            }
        }
        Ok(total)
    }

    /// One `INSERT … SELECT * FROM unnest(…)` of `batch`: one array per column.
    fn insert_batch(&mut self, sql: &str, schema: Option<&Schema>, batch: &[Record]) -> Result<u64, BackendError> {
        let first = batch.first().map(|r| r.id.key.clone()).unwrap_or_default();
        let n = batch.len();
        let keys: Vec<&str> = batch.iter().map(|r| r.id.key.as_str()).collect();
        let Some(schema) = schema else {
            let vals: Vec<&[u8]> = batch.iter().map(|r| r.data.as_slice()).collect();
            return self.run(
                OpKind::Dml,
                || format!("bulk insert of {n} rows from {first}"),
                async |c| c.execute_typed(sql, &[(&keys, Type::TEXT_ARRAY), (&vals, Type::BYTEA_ARRAY)]).await,
            );
        };
        let rows = batch.iter().map(|r| typed_row(schema, r)).collect::<Result<Vec<_>, _>>()?;
        let columns: Vec<Vec<PgValue<'_>>> = schema
            .columns
            .iter()
            .enumerate()
            .map(|(j, c)| rows.iter().map(|row| PgValue { value: &row[j], ty: c.ty }).collect())
            .collect();
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&keys, Type::TEXT_ARRAY)];
        for (c, col) in schema.columns.iter().zip(&columns) {
            params.push((col, typed::pg_type(c.ty).2));
        }
        self.run(
            OpKind::Dml,
            || format!("bulk insert of {n} rows from {first}"),
            async |c| c.execute_typed(sql, &params).await,
        )
    }

    // ----- preflight -----

    /// The server identity a connection sees (`pg_control_system()`; None when not
    /// readable, and on CockroachDB).
    async fn identity(pg: bool, c: &tokio_postgres::Client) -> Option<String> {
        if !pg {
            return None;
        }
        c.query_typed("SELECT system_identifier::text FROM pg_control_system()", &[])
            .await
            .ok()
            .and_then(|rows| rows.first().map(|r| r.get::<_, String>(0)))
    }

    fn preflight_checks(&mut self, ns: &Namespace, checks: &mut Vec<String>) -> Result<(), BackendError> {
        let lab = Self::lab(ns);
        self.reset(ns)?;
        checks.push(format!(
            "created {} {lab} with tables {} (variant {})",
            self.kind_word(),
            ns.containers().map(|(_, c)| c).collect::<Vec<_>>().join(", "),
            self.variant.name
        ));

        // A marker row written on this connection must be visible on every fresh one.
        let marker = self.rel(ns, "preflight");
        let token = random_token();
        let pg = self.is_pg();
        let create = format!("CREATE TABLE {marker} (token text NOT NULL)");
        self.batch(OpKind::Ddl, || format!("preflight: creating {marker}"), &create)?;
        let insert = format!("INSERT INTO {marker} (token) VALUES ($1)");
        let tok = token.clone();
        let main_id = self.run(
            OpKind::Dml,
            || format!("preflight: writing the marker row into {marker}"),
            async |c| {
                c.execute_typed(&insert, &[(&tok, Type::TEXT)]).await?;
                Ok(Self::identity(pg, c).await)
            },
        )?;

        let n = self.s.preflight_connections;
        let select = format!("SELECT token FROM {marker}");
        let several = "several unreplicated servers answer behind this address (as with two primaries behind one \
                       load balancer: what one of them is told, the other does not know); point dedup-lab at a \
                       single primary, or fix the replication, before measuring";
        for i in 1..=n {
            let fresh = Conn::open(&self.rt, &self.s, &self.tls).map_err(|e| {
                BackendError::with_source(
                    format!(
                        "{}: preflight: fresh connection {i} of {n} failed although the first one worked; if only \
                         some connections fail, {several}",
                        self.sys()
                    ),
                    e,
                )
            })?;
            let (id, seen) = self.rt.block_on(async {
                let id = Self::identity(pg, &fresh.client).await;
                let seen = fresh.client.query_typed(&select, &[]).await;
                (id, seen)
            });
            let seen = match seen {
                Ok(rows) => rows.first().map(|r| r.get::<_, String>(0)),
                Err(e) if matches!(e.code(), Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME || *c == SqlState::INVALID_CATALOG_NAME) => {
                    None
                }
                Err(e) => {
                    return Err(op_error(
                        &self.s,
                        &format!("preflight: reading {marker} on fresh connection {i} of {n}"),
                        OpKind::Dml,
                        e,
                        None,
                    ));
                }
            };
            let id_differs = matches!((&main_id, &id), (Some(a), Some(b)) if a != b);
            if seen.as_deref() != Some(token.as_str()) || id_differs {
                let what = match &seen {
                    None => format!("does not see the {} {lab} and marker row", self.kind_word()),
                    Some(_) => "sees a different marker row".to_string(),
                };
                let ids = match (&main_id, &id) {
                    (Some(a), Some(b)) if a != b => {
                        format!(" (system identifier {a} on the first, {b} on this one)")
                    }
                    _ => String::new(),
                };
                return Err(BackendError::msg(format!(
                    "{}: preflight: fresh connection {i} of {n} {what} that the first connection created{ids}: {several}",
                    self.sys()
                )));
            }
        }
        checks.push(match &main_id {
            Some(id) => {
                format!("{n} fresh connections saw the same server (system identifier {id}) and the marker row")
            }
            None => format!("{n} fresh connections saw the marker row written on the first connection"),
        });

        self.settle(ns)?;
        checks.push(format!("settle: {}", self.settle_note));
        if let Some(dir) = self.s.data_dir.clone() {
            let files = self.data_paths(ns)?;
            checks.push(format!("data_dir {}: found the {} files of the lab relations", dir.display(), files.len()));
        }
        Ok(())
    }
}

/// Why a bulk COPY failed: our own error, or the driver's on the connection of a container.
enum BulkError {
    Backend(BackendError),
    Pg { container: usize, op: String, err: tokio_postgres::Error },
}

impl From<BackendError> for BulkError {
    fn from(e: BackendError) -> Self {
        BulkError::Backend(e)
    }
}

/// What the COPYs write: one statement per container, and the schema of typed tables.
struct CopyTarget<'a> {
    stmts: &'a [String],
    schema: Option<&'a Schema>,
}

/// Streams records into one binary COPY per container; container 0 on the main connection,
/// the others on connections opened here (one COPY at a time per connection). Dropping a
/// writer before `finish` aborts its COPY.
fn copy_all(
    rt: &Runtime,
    s: &Settings,
    tls: &MakeRustlsConnect,
    main: &tokio_postgres::Client,
    extra: &mut [Option<Conn>],
    target: &CopyTarget<'_>,
    records: RecordStream<'_>,
) -> Result<u64, BulkError> {
    let (stmts, schema) = (target.stmts, target.schema);
    let types: Vec<Type> = match schema {
        None => vec![Type::TEXT, Type::BYTEA],
        Some(s) => std::iter::once(Type::TEXT).chain(s.columns.iter().map(|c| typed::pg_type(c.ty).1)).collect(),
    };
    let mut writers: Vec<Option<Pin<Box<BinaryCopyInWriter>>>> = stmts.iter().map(|_| None).collect();
    let pg = |container: usize, op: String| move |err| BulkError::Pg { container, op, err };
    for item in records {
        let r = item?;
        check_container(stmts.len(), r.id.container, &r.id.key)?;
        let i = usize::from(r.id.container);
        if writers[i].is_none() {
            if i > 0 && extra[i].is_none() {
                extra[i] = Some(Conn::open(rt, s, tls)?);
            }
            let client = if i == 0 { main } else { &extra[i].as_ref().expect("opened above").client };
            let sink = rt.block_on(client.copy_in(&stmts[i])).map_err(pg(i, format!("starting {}", stmts[i])))?;
            writers[i] = Some(Box::pin(BinaryCopyInWriter::new(sink, &types)));
        }
        let w = writers[i].as_mut().expect("created above");
        let written = match schema {
            None => {
                let values: [&(dyn ToSql + Sync); 2] = [&r.id.key, &r.data];
                rt.block_on(w.as_mut().write(&values))
            }
            Some(s) => {
                let row = typed_row(s, &r)?;
                let cells: Vec<PgValue<'_>> =
                    s.columns.iter().zip(row).map(|(c, value)| PgValue { value, ty: c.ty }).collect();
                let values: Vec<&(dyn ToSql + Sync)> =
                    std::iter::once(&r.id.key as &(dyn ToSql + Sync)).chain(cells.iter().map(|v| v as _)).collect();
                rt.block_on(w.as_mut().write(&values))
            }
        };
        written.map_err(pg(i, format!("COPY of record {}", r.id.key)))?;
    }
    let mut total = 0;
    for (i, w) in writers.iter_mut().enumerate() {
        if let Some(w) = w {
            total += rt.block_on(w.as_mut().finish()).map_err(pg(i, format!("finishing {}", stmts[i])))?;
        }
    }
    Ok(total)
}

/// The typed row of a record for a typed table, checked against the schema.
fn typed_row<'r>(schema: &Schema, r: &'r Record) -> Result<&'r [Value], BackendError> {
    let row = r.row.as_deref().ok_or_else(|| {
        BackendError::msg(format!(
            "record {} has no typed row, but the lab tables are typed ({})",
            r.id.key, schema.name
        ))
    })?;
    schema.check(row).map_err(|e| BackendError::with_source(format!("record {}", r.id.key), e))?;
    Ok(row)
}

fn check_container(n: usize, c: u8, what: &str) -> Result<(), BackendError> {
    if usize::from(c) >= n {
        return Err(BackendError::msg(format!("record {what} names container {c}, but the namespace has {n}")));
    }
    Ok(())
}

/// A random marker for the preflight (not a secret; only has to differ between runs).
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    let a = h.finish();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}

/// The files of one relation under `dir` (`<node>`, `<node>.1`, `<node>_fsm`, `<node>_vm`,
/// `<node>_init`, and their segments).
fn relation_files(dir: &Path, node: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(node) else {
            continue;
        };
        let rest = ["_fsm", "_vm", "_init"].iter().find_map(|f| rest.strip_prefix(f)).unwrap_or(rest);
        let ok = rest.is_empty()
            || rest.strip_prefix('.').is_some_and(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
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
        self.ensure_conn()?;
        let tls = if self.is_pg() {
            self.run(
                OpKind::Admin,
                || "reading pg_stat_ssl".into(),
                async |c| {
                    let rows = c
                        .query_typed(
                            "SELECT ssl, COALESCE(version, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                            &[],
                        )
                        .await?;
                    Ok(rows.first().map(|r| (r.get::<_, bool>(0), r.get::<_, String>(1))))
                },
            )?
            .map(|(on, v)| if on { format!("TLS {v} (sslmode={})", self.s.sslmode.name()) } else { "no TLS".into() })
            .unwrap_or_else(|| format!("sslmode={}", self.s.sslmode.name()))
        } else {
            format!("sslmode={}", self.s.sslmode.name())
        };
        let mut checks =
            vec![format!("connected and authenticated as {} ({tls}); server: {}", self.s.user, self.server.version)];
        let result = self.preflight_checks(ns, &mut checks);
        // Drop the lab whatever happened above.
        let dropped = self.teardown(ns);
        result?;
        dropped?;
        checks.push(format!("dropped {} {}", self.kind_word(), Self::lab(ns)));
        Ok(PreflightReport { server_version: Some(self.server.version.clone()), checks })
    }

    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let mut sql = self.drop_sql(ns)?;
        sql.extend(self.create_sql(ns));
        self.ddl(format!("resetting {} {}", self.kind_word(), Self::lab(ns)), sql)
    }

    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        match self.s.bulk {
            BulkPath::Copy => self.bulk_copy(ns, records),
            BulkPath::Unnest => self.bulk_unnest(ns, records),
        }
    }

    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        Self::container_of(ns, r.id.container, &r.id.key)?;
        let t = self.table(ns, r.id.container);
        let Some(schema) = ns.schema() else {
            let sql = format!("INSERT INTO {t} (k, v) VALUES ($1, $2)");
            return self.run(
                OpKind::Dml,
                || format!("inserting {} into {t}", r.id.key),
                async |c| c.execute_typed(&sql, &[(&r.id.key, Type::TEXT), (&r.data, Type::BYTEA)]).await,
            );
        };
        let row = typed_row(schema, r)?;
        let marks: Vec<String> = (1..=schema.columns.len() + 1).map(|i| format!("${i}")).collect();
        let sql = format!("INSERT INTO {t} ({}) VALUES ({})", typed::column_names(schema), marks.join(", "));
        let cells: Vec<PgValue<'_>> =
            schema.columns.iter().zip(row).map(|(c, value)| PgValue { value, ty: c.ty }).collect();
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&r.id.key, Type::TEXT)];
        for (c, v) in schema.columns.iter().zip(&cells) {
            params.push((v, typed::pg_type(c.ty).1));
        }
        self.run(
            OpKind::Dml,
            || format!("inserting {} into {t}", r.id.key),
            async |c| c.execute_typed(&sql, &params).await,
        )
    }

    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        Self::container_of(ns, id.container, &id.key)?;
        let t = self.table(ns, id.container);
        let sql = format!("DELETE FROM {t} WHERE k = $1");
        self.run(
            OpKind::Dml,
            || format!("deleting {} from {t}", id.key),
            async |c| c.execute_typed(&sql, &[(&id.key, Type::TEXT)]).await,
        )
    }

    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        Self::container_of(ns, id.container, &id.key)?;
        let t = self.table(ns, id.container);
        let Some(schema) = ns.schema() else {
            let sql = format!("SELECT v FROM {t} WHERE k = $1");
            return self.run(
                OpKind::Dml,
                || format!("reading {} from {t}", id.key),
                async |c| {
                    let rows = c.query_typed(&sql, &[(&id.key, Type::TEXT)]).await?;
                    rows.first().map(|r| r.try_get::<_, Vec<u8>>(0)).transpose()
                },
            );
        };
        let names: Vec<String> = schema.columns.iter().map(|c| typed::ident(&c.name)).collect();
        let sql = format!("SELECT {} FROM {t} WHERE k = $1", names.join(", "));
        let raw: Option<Vec<Option<Vec<u8>>>> = self.run(
            OpKind::Dml,
            || format!("reading {} from {t}", id.key),
            async |c| {
                let rows = c.query_typed(&sql, &[(&id.key, Type::TEXT)]).await?;
                rows.first()
                    .map(|r| {
                        (0..schema.columns.len())
                            .map(|j| Ok(r.try_get::<_, Option<RawValue<'_>>>(j)?.map(|v| v.0.to_vec())))
                            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                    })
                    .transpose()
            },
        )?;
        let Some(raw) = raw else { return Ok(None) };
        let rebuild = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| {
            BackendError::with_source(format!("{}: rebuilding record {} from {t}: {what}", self.sys(), id.key), e)
        };
        let mut row = Vec::with_capacity(raw.len());
        for (c, v) in schema.columns.iter().zip(&raw) {
            row.push(typed::decode(c.ty, v.as_deref()).map_err(|e| rebuild(&format!("column {}", c.name), e))?);
        }
        schema.encode(&row).map(Some).map_err(|e| rebuild("encoding", e.into()))
    }

    fn maintenance(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        if !self.is_pg() {
            return Ok(MaintenanceReport {
                action: "none: CockroachDB reclaims space by MVCC garbage collection after the zone's gc.ttlseconds \
                         and by Pebble compactions; neither can be triggered without admin privileges"
                    .into(),
            });
        }
        let tables: Vec<String> = ns.containers().map(|(i, _)| self.table(ns, i)).collect();
        let sql = format!("VACUUM (FULL, ANALYZE) {}", tables.join(", "));
        self.batch(OpKind::Admin, || sql.clone(), &sql)?;
        Ok(MaintenanceReport { action: sql })
    }

    fn settle(&mut self, _ns: &Namespace) -> Result<(), BackendError> {
        if !self.is_pg() {
            self.settle_note =
                "none: CockroachDB has no CHECKPOINT; writes are durable in the Raft log on commit".into();
            return Ok(());
        }
        if self.checkpoint_allowed == Some(false) {
            return Ok(());
        }
        let outcome =
            self.run(OpKind::Admin, || "CHECKPOINT".into(), async |c| Ok(c.batch_execute("CHECKPOINT").await))?;
        match outcome {
            Ok(()) => {
                self.checkpoint_allowed = Some(true);
                self.settle_note = "CHECKPOINT".into();
                Ok(())
            }
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                self.checkpoint_allowed = Some(false);
                self.settle_note = format!(
                    "none: role {} may not CHECKPOINT (needs superuser or pg_checkpoint); relation files are \
                     extended as pages are added, so allocated sizes are current, but page contents may still sit \
                     in shared buffers",
                    self.s.user
                );
                Ok(())
            }
            Err(e) => Err(self.fail(OpKind::Admin, "CHECKPOINT", e)),
        }
    }

    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        let mut total = 0u64;
        for (i, _) in ns.containers() {
            let t = self.table(ns, i);
            let sql = format!("SELECT count(*) FROM {t}");
            let n: i64 = self.run(
                OpKind::Dml,
                || format!("counting {t}"),
                async |c| c.query_typed(&sql, &[]).await?.first().map(|r| r.try_get::<_, i64>(0)).unwrap_or(Ok(0)),
            )?;
            total += n.max(0) as u64;
        }
        Ok(total)
    }

    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let mut sizes = InternalSizes::default();
        sizes.details.insert("variant".into(), self.variant.name.clone().into());
        sizes.details.insert("settle".into(), self.settle_note.clone().into());
        let mut total = 0u64;
        if self.is_pg() {
            const SQL: &str = "SELECT pg_relation_size(c.oid, 'main'), \
                pg_relation_size(c.oid, 'fsm') + pg_relation_size(c.oid, 'vm'), \
                COALESCE(pg_table_size(NULLIF(c.reltoastrelid, 0)), 0), \
                COALESCE(pg_indexes_size(NULLIF(c.reltoastrelid, 0)), 0), \
                pg_indexes_size(c.oid), pg_total_relation_size(c.oid) \
                FROM pg_class c WHERE c.oid = to_regclass($1)";
            for (i, name) in ns.containers() {
                let t = self.table(ns, i);
                let row = self.run(
                    OpKind::Admin,
                    || format!("reading the sizes of {t}"),
                    async |c| {
                        let rows = c.query_typed(SQL, &[(&t, Type::TEXT)]).await?;
                        rows.first()
                            .map(|r| (0..6).map(|j| r.try_get::<_, i64>(j)).collect::<Result<Vec<_>, _>>())
                            .transpose()
                    },
                )?;
                let Some(v) = row else {
                    sizes.details.insert(format!("{name}.absent"), true.into());
                    continue;
                };
                let keys =
                    ["heap_bytes", "heap_maps_bytes", "toast_bytes", "toast_index_bytes", "index_bytes", "total_bytes"];
                for (k, x) in keys.iter().zip(&v) {
                    sizes.details.insert(format!("{name}.{k}"), (*x).into());
                }
                total += v[5].max(0) as u64;
            }
            sizes.total_bytes = Some(total);
        } else {
            // CockroachDB: the ranges holding each table. range_size is MVCC bytes (keys +
            // values, live and not yet garbage-collected) of a whole range, per replica; since
            // v23.1 small tables may share a range, which then counts for each of them.
            let mut denied = None;
            for (i, name) in ns.containers() {
                let t = self.table(ns, i);
                let sql = format!(
                    "SELECT COALESCE(sum(range_size), 0)::INT8, count(*)::INT8 FROM [SHOW RANGES FROM TABLE {t} WITH DETAILS]"
                );
                let r = self.run(
                    OpKind::Admin,
                    || format!("reading the ranges of {t}"),
                    async |c| {
                        Ok(match c.query_typed(&sql, &[]).await {
                            Ok(rows) => {
                                Ok(rows.first().map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1))).unwrap_or((0, 0)))
                            }
                            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Err(conn::chain(&e)),
                            Err(e) => return Err(e),
                        })
                    },
                )?;
                match r {
                    Ok((bytes, ranges)) => {
                        sizes.details.insert(format!("{name}.range_size_bytes"), bytes.into());
                        sizes.details.insert(format!("{name}.ranges"), ranges.into());
                        total += bytes.max(0) as u64;
                    }
                    Err(why) => denied = Some(why),
                }
            }
            match denied {
                None => sizes.total_bytes = Some(total),
                Some(why) => {
                    sizes.details.insert(
                        "note".into(),
                        format!("SHOW RANGES needs the admin role or the ZONECONFIG privilege: {why}").into(),
                    );
                }
            }
        }
        Ok(sizes)
    }

    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let sql = self.drop_sql(ns)?;
        self.ddl(format!("dropping {} {}", self.kind_word(), Self::lab(ns)), sql)
    }

    fn data_paths(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        let Some(dir) = self.s.data_dir.clone() else {
            return Ok(Vec::new());
        };
        if !self.is_pg() {
            return Ok(Vec::new());
        }
        const SQL: &str = "WITH t AS (SELECT to_regclass($1) AS oid) \
            SELECT pg_relation_filepath(t.oid) FROM t WHERE t.oid IS NOT NULL \
            UNION ALL SELECT pg_relation_filepath(i.indexrelid) FROM t JOIN pg_index i ON i.indrelid = t.oid \
            UNION ALL SELECT pg_relation_filepath(c.reltoastrelid) FROM t JOIN pg_class c ON c.oid = t.oid \
                WHERE c.reltoastrelid <> 0 \
            UNION ALL SELECT pg_relation_filepath(i.indexrelid) FROM t JOIN pg_class c ON c.oid = t.oid \
                JOIN pg_index i ON i.indrelid = c.reltoastrelid";
        let mut out = Vec::new();
        for (i, _) in ns.containers() {
            let t = self.table(ns, i);
            let rels: Vec<Option<String>> = self.run(
                OpKind::Admin,
                || format!("resolving the files of {t}"),
                async |c| Ok(c.query_typed(SQL, &[(&t, Type::TEXT)]).await?.iter().map(|r| r.get(0)).collect()),
            )?;
            for rel in rels.into_iter().flatten() {
                let main = dir.join(&rel);
                let (Some(parent), Some(node)) = (main.parent(), main.file_name().and_then(|n| n.to_str())) else {
                    continue;
                };
                if !main.exists() {
                    return Err(BackendError::msg(format!(
                        "{}: data_dir {} does not hold {rel}, a file of {t}; set `data_dir` / {} to this server's \
                         data directory (SHOW data_directory, as a superuser), or unset it when the server is not on \
                         this machine",
                        self.sys(),
                        dir.display(),
                        self.s.env("data_dir")
                    )));
                }
                let files = relation_files(parent, node).map_err(|e| {
                    BackendError::with_source(format!("{}: listing {}", self.sys(), parent.display()), e)
                })?;
                out.extend(files);
            }
        }
        Ok(out)
    }

    fn native_storage(&self, schema: &Schema) -> String {
        let storage = match self.variant.storage {
            Some(s) => format!("; TOAST storage {} on the variable-length columns", s.sql()),
            None => String::new(),
        };
        format!("one typed table per container (k text PRIMARY KEY, {}){storage}", typed::column_defs(schema))
    }

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.conn = None;
        Ok(Some(format!("closed the connection to {}; the next call opens a new one", self.s.endpoint())))
    }
}
