//! Embedded SQLite (bundled): one database file per lab namespace, one table per container.
//!
//! Blob mode: `c0 (k TEXT PRIMARY KEY, v BLOB NOT NULL)`. Native mode (the namespace has a
//! schema): one typed `STRICT` table per container with a column per schema column —
//! integers, decimals (as their unscaled integer: cents) and timestamps (Unix microseconds)
//! as `INTEGER`, floats as `REAL`, text as `TEXT`, JSON documents as `TEXT` checked by
//! `json_valid`, UUIDs and bytes as `BLOB`. `read_one` rebuilds the record's canonical
//! encoding from the stored columns.
//!
//! Bulk path: one transaction with a prepared INSERT. Maintenance: `VACUUM`. Settle: WAL
//! checkpoint (TRUNCATE), so the main file holds everything. Internal sizes:
//! `page_count × page_size`, free pages, and per-table bytes from `dbstat` when compiled in.

use crate::BackendConfig;
use dedup_lab_core::{
    Backend, BackendError, ColumnType, InternalSizes, MaintenanceReport, Namespace, Record, RecordId, RecordStream,
    ResultExt, Schema, SystemKind, Value,
};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, params, params_from_iter};
use std::path::PathBuf;

pub struct SqliteBackend {
    dir: PathBuf,
    conn: Option<Connection>,
    path: Option<PathBuf>,
}

impl SqliteBackend {
    pub fn open(cfg: &BackendConfig, variant: &str) -> Result<SqliteBackend, BackendError> {
        if variant != "default" {
            return Err(BackendError::msg(format!("sqlite has no variant {variant:?}; use `default`")));
        }
        Ok(SqliteBackend { dir: crate::config::store_dir(cfg, "sqlite"), conn: None, path: None })
    }

    fn db_path(&self, ns: &Namespace) -> PathBuf {
        self.dir.join(format!("{}.sqlite", ns.lab()))
    }

    fn connect(&mut self, ns: &Namespace) -> Result<&mut Connection, BackendError> {
        let path = self.db_path(ns);
        if self.path.as_ref() != Some(&path) || self.conn.is_none() {
            std::fs::create_dir_all(&self.dir).ctx(|| format!("sqlite: creating {}", self.dir.display()))?;
            let conn = Connection::open(&path).ctx(|| format!("sqlite: opening {}", path.display()))?;
            // WAL keeps per-record commits cheap; settle() checkpoints it into the main file.
            conn.pragma_update(None, "journal_mode", "WAL").ctx(|| "sqlite: enabling WAL".into())?;
            conn.pragma_update(None, "synchronous", "NORMAL").ctx(|| "sqlite: setting synchronous".into())?;
            self.conn = Some(conn);
            self.path = Some(path);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// The database file of `ns` and the files SQLite keeps next to it.
    fn files(&self, ns: &Namespace) -> Vec<PathBuf> {
        let path = self.db_path(ns);
        ["", "-wal", "-shm", "-journal"]
            .iter()
            .map(|suffix| PathBuf::from(format!("{}{suffix}", path.display())))
            .collect()
    }

    fn remove_files(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.conn = None;
        self.path = None;
        for p in self.files(ns) {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BackendError::with_source(format!("sqlite: removing {}", p.display()), e)),
            }
        }
        Ok(())
    }
}

impl Backend for SqliteBackend {
    fn kind(&self) -> SystemKind {
        SystemKind::Sqlite
    }

    fn endpoint(&self) -> String {
        self.dir.display().to_string()
    }

    fn server_version(&mut self) -> Result<String, BackendError> {
        Ok(format!("SQLite {}", rusqlite::version()))
    }

    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.remove_files(ns)?;
        let conn = self.connect(ns)?;
        for (_, c) in ns.containers() {
            let sql = match ns.schema() {
                None => format!("CREATE TABLE {c} (k TEXT PRIMARY KEY, v BLOB NOT NULL)"),
                Some(s) => create_typed(&c, s),
            };
            conn.execute_batch(&sql).ctx(|| format!("sqlite: creating table {c}"))?;
        }
        Ok(())
    }

    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let conn = self.connect(ns)?;
        let tx = conn.transaction().ctx(|| "sqlite: BEGIN".into())?;
        let mut rows = 0;
        {
            let mut stmts = Vec::new();
            for (_, c) in ns.containers() {
                stmts.push(tx.prepare(&insert_sql(&c, ns.schema())).ctx(|| "sqlite: prepare".into())?);
            }
            for r in records {
                let r = r?;
                let stmt = &mut stmts[ns.container_of(&r.id)?];
                rows += execute_insert(stmt, ns.schema(), &r)?;
            }
        }
        tx.commit().ctx(|| "sqlite: COMMIT".into())?;
        Ok(rows)
    }

    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        ns.container_of(&r.id)?;
        let c = ns.container_name(r.id.container);
        let conn = self.connect(ns)?;
        let mut stmt = conn.prepare_cached(&insert_sql(&c, ns.schema())).ctx(|| "sqlite: prepare".into())?;
        execute_insert(&mut stmt, ns.schema(), r)
    }

    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        ns.container_of(id)?;
        let c = ns.container_name(id.container);
        let conn = self.connect(ns)?;
        let mut stmt =
            conn.prepare_cached(&format!("DELETE FROM {c} WHERE k = ?1")).ctx(|| "sqlite: prepare".into())?;
        Ok(stmt.execute(params![id.key]).ctx(|| format!("sqlite: delete {}", id.key))? as u64)
    }

    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        ns.container_of(id)?;
        let c = ns.container_name(id.container);
        let conn = self.connect(ns)?;
        let Some(schema) = ns.schema() else {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT v FROM {c} WHERE k = ?1")).ctx(|| "sqlite: prepare".into())?;
            return stmt
                .query_row(params![id.key], |row| row.get::<_, Vec<u8>>(0))
                .optional()
                .ctx(|| format!("sqlite: read {}", id.key));
        };
        let cols: Vec<String> = schema.columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {} FROM {c} WHERE k = ?1", cols.join(", ")))
            .ctx(|| "sqlite: prepare".into())?;
        let row = stmt
            .query_row(params![id.key], |row| {
                schema.columns.iter().enumerate().map(|(i, col)| read_value(row.get_ref(i)?, col.ty)).collect()
            })
            .optional()
            .ctx(|| format!("sqlite: read {}", id.key))?;
        row.map(|values: Vec<Value>| {
            schema.encode(&values).ctx(|| format!("sqlite: rebuilding record {} from its columns", id.key))
        })
        .transpose()
    }

    fn maintenance(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        let conn = self.connect(ns)?;
        conn.execute_batch("VACUUM").ctx(|| "sqlite: VACUUM".into())?;
        Ok(MaintenanceReport { action: "VACUUM".into() })
    }

    fn settle(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let conn = self.connect(ns)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).ctx(|| "sqlite: WAL checkpoint".into())
    }

    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        let names: Vec<String> = ns.containers().map(|(_, c)| c).collect();
        let conn = self.connect(ns)?;
        let mut total = 0u64;
        for c in names {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {c}"), [], |r| r.get(0))
                .ctx(|| format!("sqlite: count {c}"))?;
            total += n as u64;
        }
        Ok(total)
    }

    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let names: Vec<String> = ns.containers().map(|(_, c)| c).collect();
        let conn = self.connect(ns)?;
        let pragma = |name: &str| -> Result<i64, BackendError> {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).ctx(|| format!("sqlite: PRAGMA {name}"))
        };
        let (pages, page_size, free) = (pragma("page_count")?, pragma("page_size")?, pragma("freelist_count")?);
        let mut sizes = InternalSizes { total_bytes: Some((pages * page_size) as u64), ..Default::default() };
        sizes.details.insert("page_count".into(), pages.into());
        sizes.details.insert("page_size".into(), page_size.into());
        sizes.details.insert("freelist_count".into(), free.into());
        for c in names {
            // dbstat counts the table's B-tree and overflow pages; it may be compiled out.
            let bytes: Option<i64> = conn
                .query_row("SELECT sum(pgsize) FROM dbstat WHERE name = ?1", params![c], |r| r.get(0))
                .ok()
                .flatten();
            if let Some(b) = bytes {
                sizes.details.insert(format!("table_{c}_bytes"), b.into());
            }
        }
        Ok(sizes)
    }

    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.remove_files(ns)
    }

    fn data_paths(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        // The main file only: settle() checkpoints the WAL into it and truncates the WAL.
        Ok(vec![self.db_path(ns)])
    }

    fn inventory(&mut self, lab: &dedup_lab_core::LabName) -> Result<Vec<String>, BackendError> {
        let ns = Namespace::new(lab, 1);
        Ok(self.files(&ns).into_iter().filter(|p| p.exists()).map(|p| format!("file {}", p.display())).collect())
    }

    fn native_storage(&self, schema: &Schema) -> String {
        let cols: Vec<String> = schema.columns.iter().map(|c| format!("{} {}", c.name, sql_type(c.ty))).collect();
        format!("one typed STRICT table per container (k TEXT PRIMARY KEY, {})", cols.join(", "))
    }

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.conn = None;
        self.path = None;
        Ok(Some("closed the SQLite connection; it reopens on the next call".into()))
    }
}

/// The SQLite type of a column (see the module documentation).
fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Int | ColumnType::Decimal { .. } | ColumnType::Timestamp | ColumnType::Bool => "INTEGER",
        ColumnType::Float => "REAL",
        ColumnType::Text | ColumnType::Json => "TEXT",
        ColumnType::Uuid | ColumnType::Bytes => "BLOB",
    }
}

/// A typed table for `schema` (column names are validated `[a-z][a-z0-9_]*`).
fn create_typed(table: &str, schema: &Schema) -> String {
    let mut cols = vec!["k TEXT PRIMARY KEY".to_string()];
    for c in &schema.columns {
        let mut def = format!("\"{}\" {}", c.name, sql_type(c.ty));
        if c.ty == ColumnType::Json {
            def.push_str(&format!(" CHECK (json_valid(\"{}\"))", c.name));
        }
        cols.push(def);
    }
    format!("CREATE TABLE {table} ({}) STRICT", cols.join(", "))
}

fn insert_sql(table: &str, schema: Option<&Schema>) -> String {
    match schema {
        None => format!("INSERT INTO {table} (k, v) VALUES (?1, ?2)"),
        Some(s) => {
            let names: Vec<String> = s.columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
            let marks: Vec<String> = (1..=s.columns.len() + 1).map(|i| format!("?{i}")).collect();
            format!("INSERT INTO {table} (k, {}) VALUES ({})", names.join(", "), marks.join(", "))
        }
    }
}

/// Inserts `r`: its typed row into a typed table, its data otherwise.
fn execute_insert(
    stmt: &mut rusqlite::Statement<'_>,
    schema: Option<&Schema>,
    r: &Record,
) -> Result<u64, BackendError> {
    let done = match schema {
        None => stmt.execute(params![r.id.key, r.data]),
        Some(s) => {
            let row = r.row.as_deref().ok_or_else(|| {
                BackendError::msg(format!("sqlite: record {} has no typed row, but its table is typed", r.id.key))
            })?;
            s.check(row).ctx(|| format!("sqlite: insert {}", r.id.key))?;
            let params = std::iter::once(Param::Key(&r.id.key)).chain(row.iter().map(Param::Value));
            stmt.execute(params_from_iter(params))
        }
    };
    Ok(done.ctx(|| format!("sqlite: insert {}", r.id.key))? as u64)
}

/// A parameter borrowed from a record (no copy of text or bytes).
enum Param<'a> {
    Key(&'a str),
    Value(&'a Value),
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let v = match self {
            Param::Key(k) => ValueRef::Text(k.as_bytes()),
            Param::Value(v) => match v {
                Value::Null => ValueRef::Null,
                Value::Int(i) | Value::Decimal(i) | Value::Timestamp(i) => ValueRef::Integer(*i),
                Value::Bool(b) => ValueRef::Integer(i64::from(*b)),
                Value::Float(f) => ValueRef::Real(*f),
                Value::Text(t) | Value::Json(t) => ValueRef::Text(t.as_bytes()),
                Value::Uuid(u) => ValueRef::Blob(u),
                Value::Bytes(b) => ValueRef::Blob(b),
            },
        };
        Ok(ToSqlOutput::Borrowed(v))
    }
}

/// A stored column back into a value of type `ty`.
fn read_value(v: ValueRef<'_>, ty: ColumnType) -> rusqlite::Result<Value> {
    use rusqlite::types::FromSqlError;
    let bad = || rusqlite::Error::FromSqlConversionFailure(0, v.data_type(), Box::new(FromSqlError::InvalidType));
    if let ValueRef::Null = v {
        return Ok(Value::Null);
    }
    Ok(match ty {
        ColumnType::Int => Value::Int(v.as_i64()?),
        ColumnType::Decimal { .. } => Value::Decimal(v.as_i64()?),
        ColumnType::Timestamp => Value::Timestamp(v.as_i64()?),
        ColumnType::Bool => Value::Bool(v.as_i64()? != 0),
        ColumnType::Float => Value::Float(v.as_f64()?),
        ColumnType::Text => Value::Text(v.as_str()?.to_string()),
        ColumnType::Json => Value::Json(v.as_str()?.to_string()),
        ColumnType::Uuid => Value::Uuid(v.as_blob()?.try_into().map_err(|_| bad())?),
        ColumnType::Bytes => Value::Bytes(v.as_blob()?.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dedup_lab_core::{Column, RowEncoding};

    #[test]
    fn native_tables_are_typed_and_rebuild_the_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let lab: dedup_lab_core::LabName = "dedup_lab_typed".parse().unwrap();
        let cfg = BackendConfig::new(lab.clone(), "sqlite", "DEDUP_UNUSED", serde_json::json!({}), dir.path().into());
        let mut b = SqliteBackend::open(&cfg, "default").unwrap();
        let schema = Schema::new(
            "t",
            vec![
                Column { name: "id".into(), ty: ColumnType::Int },
                Column { name: "amount".into(), ty: ColumnType::Decimal { scale: 2 } },
                Column { name: "at".into(), ty: ColumnType::Timestamp },
                Column { name: "doc".into(), ty: ColumnType::Json },
                Column { name: "key".into(), ty: ColumnType::Uuid },
                Column { name: "user".into(), ty: ColumnType::Text },
            ],
            RowEncoding::JsonObject,
        )
        .unwrap();
        let ns = Namespace::new(&lab, 1).with_schema(schema.clone());
        b.reset(&ns).unwrap();
        let types: Vec<(String, String)> = b
            .connect(&ns)
            .unwrap()
            .prepare("SELECT name, type FROM pragma_table_info('c0')")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want = [("k", "TEXT"), ("id", "INTEGER"), ("amount", "INTEGER"), ("at", "INTEGER")];
        for (i, (n, t)) in want.iter().enumerate() {
            assert_eq!((types[i].0.as_str(), types[i].1.as_str()), (*n, *t));
        }
        assert_eq!(types[4].1, "TEXT");
        assert_eq!(types[5].1, "BLOB");
        let row = vec![
            Value::Int(1),
            Value::Decimal(123_456),
            Value::Timestamp(1_614_834_367_000_000),
            Value::Json("{\"a\":[1,2]}".into()),
            Value::Uuid([7; 16]),
            Value::Null,
        ];
        let data = schema.encode(&row).unwrap();
        let id = RecordId { key: "r00000000n000000".into(), container: 0 };
        let rec = Record { id: id.clone(), index: 0, data: data.clone(), row: Some(row) };
        assert_eq!(b.insert_one(&ns, &rec).unwrap(), 1);
        assert_eq!(b.read_one(&ns, &id).unwrap().unwrap(), data);
        let stored: (i64, i64) = b
            .connect(&ns)
            .unwrap()
            .query_row("SELECT amount, typeof(\"user\") = 'null' FROM c0", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(stored, (123_456, 1), "the decimal is stored as its unscaled integer, NULL stays NULL");
        // A record without a typed row cannot go into a typed table.
        let blob = Record::blob(RecordId { key: "r1".into(), container: 0 }, 1, b"x".to_vec());
        assert!(b.insert_one(&ns, &blob).unwrap_err().to_string().contains("no typed row"));
        b.teardown(&ns).unwrap();
    }
}
