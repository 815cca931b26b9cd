//! Embedded SQLite (bundled): one database file per lab namespace, one table per container.
//!
//! Bulk path: one transaction with a prepared INSERT. Maintenance: `VACUUM`. Settle: WAL
//! checkpoint (TRUNCATE), so the main file holds everything. Internal sizes:
//! `page_count × page_size`, free pages, and per-table bytes from `dbstat` when compiled in.

use crate::BackendConfig;
use dedup_lab_core::{
    Backend, BackendError, InternalSizes, MaintenanceReport, Namespace, Record, RecordId, RecordStream, ResultExt,
    SystemKind,
};
use rusqlite::{Connection, OptionalExtension, params};
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

    fn remove_files(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.conn = None;
        self.path = None;
        let path = self.db_path(ns);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
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
            conn.execute_batch(&format!("CREATE TABLE {c} (k TEXT PRIMARY KEY, v BLOB NOT NULL)"))
                .ctx(|| format!("sqlite: creating table {c}"))?;
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
                stmts.push(
                    tx.prepare(&format!("INSERT INTO {c} (k, v) VALUES (?1, ?2)")).ctx(|| "sqlite: prepare".into())?,
                );
            }
            for r in records {
                let r = r?;
                let stmt = &mut stmts[usize::from(r.id.container)];
                rows += stmt.execute(params![r.id.key, r.data]).ctx(|| format!("sqlite: insert {}", r.id.key))? as u64;
            }
        }
        tx.commit().ctx(|| "sqlite: COMMIT".into())?;
        Ok(rows)
    }

    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        let c = ns.container_name(r.id.container);
        let conn = self.connect(ns)?;
        let mut stmt =
            conn.prepare_cached(&format!("INSERT INTO {c} (k, v) VALUES (?1, ?2)")).ctx(|| "sqlite: prepare".into())?;
        Ok(stmt.execute(params![r.id.key, r.data]).ctx(|| format!("sqlite: insert {}", r.id.key))? as u64)
    }

    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        let c = ns.container_name(id.container);
        let conn = self.connect(ns)?;
        let mut stmt =
            conn.prepare_cached(&format!("DELETE FROM {c} WHERE k = ?1")).ctx(|| "sqlite: prepare".into())?;
        Ok(stmt.execute(params![id.key]).ctx(|| format!("sqlite: delete {}", id.key))? as u64)
    }

    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let c = ns.container_name(id.container);
        let conn = self.connect(ns)?;
        let mut stmt =
            conn.prepare_cached(&format!("SELECT v FROM {c} WHERE k = ?1")).ctx(|| "sqlite: prepare".into())?;
        stmt.query_row(params![id.key], |row| row.get::<_, Vec<u8>>(0))
            .optional()
            .ctx(|| format!("sqlite: read {}", id.key))
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

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.conn = None;
        self.path = None;
        Ok(Some("closed the SQLite connection; it reopens on the next call".into()))
    }
}
