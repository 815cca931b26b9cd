//! Physical space: `settle` (FLUSH TABLES … FOR EXPORT where allowed, then ANALYZE TABLE),
//! `maintenance` (OPTIMIZE TABLE), `sizes` (information_schema), `data_paths` (the lab
//! tables' `.ibd` files) and the note that says why the file and page figures differ.

use super::MariaBackend;
use super::errors::{ER_DBACCESS_DENIED, ER_SPECIFIC_ACCESS_DENIED, ER_TABLEACCESS_DENIED, OpKind};
use super::variant::Format;
use crate::net::class::io_class;
use dedup_lab_core::{BackendError, ErrorClass, InternalSizes, MaintenanceReport, Namespace, format_bytes};
use mysql_async::Error as MyError;
use mysql_async::prelude::Queryable;
use std::path::PathBuf;

/// What one `sizes` reading found, per lab table.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// information_schema.TABLES after ANALYZE TABLE: data, index and free bytes.
    pub data: u64,
    pub index: u64,
    pub free: u64,
    /// INNODB_SYS_TABLESPACES: the files' size and allocated bytes (None without PROCESS).
    pub file: Option<u64>,
    pub allocated: Option<u64>,
}

/// A row of information_schema.TABLES: name, data, index and free bytes, rows (estimated).
type TableRow = (String, Option<u64>, Option<u64>, Option<u64>, Option<u64>);

fn denied(e: &MyError) -> bool {
    matches!(e, MyError::Server(s) if matches!(s.code, ER_SPECIFIC_ACCESS_DENIED | ER_DBACCESS_DENIED | ER_TABLEACCESS_DENIED))
}

impl MariaBackend {
    /// The lab tables of `ns` that exist (settle and sizes skip what a reset has not made).
    fn existing_tables(&mut self, ns: &Namespace) -> Result<Vec<(u8, String)>, BackendError> {
        let present: Vec<String> = self.lab_tables(ns.lab())?.into_iter().map(|(t, _)| t).collect();
        Ok(ns.containers().filter(|(_, name)| present.contains(name)).collect())
    }

    pub(super) fn optimize(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        let tables: Vec<String> = ns.containers().map(|(i, _)| self.table(ns, i)).collect();
        let sql = format!("OPTIMIZE TABLE {}", tables.join(", "));
        let rows: Vec<(String, String, String, String)> =
            self.run(OpKind::Admin, || sql.clone(), async |c| c.query(&sql).await)?;
        check_admin_rows(&self.sys(), &sql, &rows)?;
        // InnoDB answers "Table does not support optimize, doing recreate + analyze instead".
        let how = rows.iter().find(|r| r.2 == "note").map(|r| format!(" ({})", r.3)).unwrap_or_default();
        Ok(MaintenanceReport { action: format!("{sql}{how}") })
    }

    pub(super) fn flush_and_analyze(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let tables: Vec<String> = self.existing_tables(ns)?.into_iter().map(|(i, _)| self.table(ns, i)).collect();
        if tables.is_empty() {
            self.settle_note = "nothing to settle: the lab has no tables".into();
            return Ok(());
        }
        let list = tables.join(", ");
        let mut did = Vec::new();
        if self.purge_pending {
            did.push(self.wait_for_purge()?);
            self.purge_pending = false;
        }
        if self.flush_allowed != Some(false) {
            // Writes the tables' dirty pages to their files (and so punches page
            // compression's holes), then releases the read lock it took.
            let flush = format!("FLUSH TABLES {list} FOR EXPORT");
            let outcome = self.run(
                OpKind::Admin,
                || flush.clone(),
                async |c| {
                    Ok(match c.query_drop(&flush).await {
                        Ok(()) => c.query_drop("UNLOCK TABLES").await.map(|_| true),
                        Err(e) if denied(&e) => Ok(false),
                        Err(e) => Err(e),
                    })
                },
            )?;
            match outcome {
                Ok(true) => {
                    self.flush_allowed = Some(true);
                    did.push("FLUSH TABLES … FOR EXPORT".to_string());
                }
                Ok(false) => {
                    self.flush_allowed = Some(false);
                }
                Err(e) => return Err(self.fail(OpKind::Admin, "FLUSH TABLES … FOR EXPORT", e)),
            }
        }
        let analyze = format!("ANALYZE TABLE {list}");
        let rows: Vec<(String, String, String, String)> =
            self.run(OpKind::Admin, || analyze.clone(), async |c| c.query(&analyze).await)?;
        check_admin_rows(&self.sys(), &analyze, &rows)?;
        did.push("ANALYZE TABLE".into());
        if self.flush_allowed == Some(false) {
            did.push(format!(
                "no FLUSH TABLES: user {} lacks the RELOAD privilege, so dirty pages may still sit in the buffer \
                 pool; files are extended when pages are allocated, but page compression punches its holes only \
                 when a page is written",
                self.s.user
            ));
        }
        self.settle_note = did.join(" + ");
        Ok(())
    }

    /// After deletes: waits (bounded) until InnoDB's purge has removed the delete-marked
    /// records, so their pages are free (and, with page compression, punched) before a size is
    /// read, instead of during the next stage. Returns what happened, for the settle note.
    fn wait_for_purge(&mut self) -> Result<String, BackendError> {
        const LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
        let started = std::time::Instant::now();
        loop {
            let len = self.run(
                OpKind::Admin,
                || "reading InnoDB's history list length".into(),
                async |c| {
                    Ok(match c
                        .query_first::<u64, _>(
                            "SELECT COUNT FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'",
                        )
                        .await
                    {
                        Ok(n) => Some(n.unwrap_or(0)),
                        Err(e) if denied(&e) => None,
                        Err(e) => return Err(e),
                    })
                },
            )?;
            let waited = started.elapsed().as_millis();
            match len {
                None => return Ok("no purge wait (INNODB_METRICS needs the PROCESS privilege)".into()),
                Some(0) => return Ok(format!("purge done after {waited} ms")),
                Some(n) if started.elapsed() >= LIMIT => {
                    return Ok(format!(
                        "purge not done after {waited} ms (history length {n}: other transactions on the server)"
                    ));
                }
                Some(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }

    pub(super) fn read_sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let mut sizes = InternalSizes::default();
        sizes.details.insert("variant".into(), self.variant.name.clone().into());
        sizes.details.insert("row_format".into(), self.variant.table_options().into());
        sizes.details.insert("settle".into(), self.settle_note.clone().into());
        let lab = ns.lab().to_string();
        let names: Vec<String> = ns.containers().map(|(_, n)| n).collect();
        // NULLs (a view someone put into the lab) read as 0 instead of failing the conversion.
        let tables: Vec<TableRow> = self.run(
            OpKind::Admin,
            || format!("reading information_schema.TABLES of database {lab}"),
            async |c| {
                c.exec(
                    "SELECT TABLE_NAME, DATA_LENGTH, INDEX_LENGTH, DATA_FREE, TABLE_ROWS FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = ?",
                    (lab.as_str(),),
                )
                .await
            },
        )?;
        let spaces = self.run(
            OpKind::Admin,
            || "reading information_schema.INNODB_SYS_TABLESPACES".into(),
            async |c| {
                Ok(
                    match c
                        .exec::<(String, u64, u64), _, _>(
                            "SELECT NAME, FILE_SIZE, ALLOCATED_SIZE FROM information_schema.INNODB_SYS_TABLESPACES \
                             WHERE NAME LIKE CONCAT(?, '/%')",
                            (lab.as_str(),),
                        )
                        .await
                    {
                        Ok(rows) => Some(rows),
                        Err(e) if denied(&e) => None,
                        Err(e) => return Err(e),
                    },
                )
            },
        )?;
        if spaces.is_none() {
            sizes.details.insert(
                "tablespaces".into(),
                format!("not read: INNODB_SYS_TABLESPACES needs the PROCESS privilege, which {} lacks", self.s.user)
                    .into(),
            );
        }
        let mut reading = Reading::default();
        for name in &names {
            let Some(&(_, data, index, free, rows)) = tables.iter().find(|t| &t.0 == name) else {
                sizes.details.insert(format!("{name}.absent"), true.into());
                continue;
            };
            let (data, index, free) = (data.unwrap_or(0), index.unwrap_or(0), free.unwrap_or(0));
            for (k, v) in [
                ("data_bytes", data),
                ("index_bytes", index),
                ("free_bytes", free),
                ("rows_estimate", rows.unwrap_or(0)),
            ] {
                sizes.details.insert(format!("{name}.{k}"), v.into());
            }
            reading.data += data;
            reading.index += index;
            reading.free += free;
            if let Some(spaces) = &spaces {
                let space = format!("{lab}/{name}");
                if let Some((_, file, allocated)) = spaces.iter().find(|s| s.0 == space) {
                    sizes.details.insert(format!("{name}.file_bytes"), (*file).into());
                    sizes.details.insert(format!("{name}.allocated_bytes"), (*allocated).into());
                    *reading.file.get_or_insert(0) += file;
                    *reading.allocated.get_or_insert(0) += allocated;
                }
            }
        }
        sizes.total_bytes = Some(reading.data + reading.index);
        self.last_sizes = Some(reading);
        Ok(sizes)
    }

    /// With `data_dir` set, the `.ibd` files of the namespace's tables.
    pub(super) fn table_files(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        let Some(dir) = self.s.data_dir.clone() else { return Ok(Vec::new()) };
        let lab_dir = dir.join(ns.lab().as_str());
        let files: Vec<PathBuf> = ns.containers().map(|(_, n)| lab_dir.join(format!("{n}.ibd"))).collect();
        if !self.data_dir_checked {
            // Once per backend: the server's own word that its files are where data_dir says.
            let tables = self.existing_tables(ns)?;
            if let Some((i, _)) = tables.first() {
                let file = &files[usize::from(*i)];
                match std::fs::metadata(file) {
                    Ok(_) => self.data_dir_checked = true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(BackendError::msg(format!(
                            "{}: data_dir {} does not hold {}, the file of table {}.{}; set `data_dir` / {} to this \
                             server's data directory (SELECT @@datadir), or unset it when the server is not on this \
                             machine",
                            self.sys(),
                            dir.display(),
                            file.display(),
                            ns.lab(),
                            ns.container_name(*i),
                            self.s.env("data_dir")
                        ))
                        .classed(ErrorClass::Config));
                    }
                    Err(e) => {
                        let class = io_class(&e).unwrap_or(ErrorClass::Config);
                        return Err(BackendError::with_source(
                            format!("{}: reading {}", self.sys(), file.display()),
                            e,
                        )
                        .classed(class));
                    }
                }
            }
        }
        Ok(files)
    }

    /// The notes of the stage just measured: the bulk path taken, and how the two size
    /// figures of the last reading relate.
    pub(super) fn stage_notes(&mut self) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.notes);
        let Some(r) = self.last_sizes.clone() else { return notes };
        let files = match (r.file, r.allocated) {
            (Some(f), Some(a)) => {
                format!("the .ibd files are {} long with {} allocated", format_bytes(f), format_bytes(a))
            }
            _ => "the .ibd files' sizes were not readable (PROCESS privilege)".into(),
        };
        let mut note = format!(
            "sizes: internal = InnoDB's pages in use, data {} + index {} (information_schema.TABLES after ANALYZE \
             TABLE; {} free in the tablespaces); {files}. The fs probe counts the files' allocated blocks: InnoDB \
             extends a tablespace ahead of use (one 1 MiB extent at a time, four once the file passes 32 extents) \
             and a B-tree reserves whole extents once it holds 32 pages, so on datasets of a few MiB the two differ \
             by up to several MiB",
            format_bytes(r.data),
            format_bytes(r.index),
            format_bytes(r.free)
        );
        match self.variant.format {
            Format::PageCompressed(_) => {
                let alg = self.page_compression().unwrap_or_else(|| "the server's algorithm".into());
                note.push_str(&format!(
                    "; page compression ({alg}) shrinks pages on disk only: internal counts them uncompressed, fs \
                     counts the blocks left after the holes punched in each page"
                ));
            }
            Format::Compressed(k) => note.push_str(&format!(
                "; ROW_FORMAT=COMPRESSED pages are {k} KiB on disk, and both figures count them at that size"
            )),
            Format::Dynamic => {}
        }
        notes.push(note);
        notes
    }
}

/// ANALYZE / OPTIMIZE answer with rows (table, op, msg_type, msg_text); an `error` row is a
/// failure even though the statement succeeded.
fn check_admin_rows(sys: &str, sql: &str, rows: &[(String, String, String, String)]) -> Result<(), BackendError> {
    if let Some(r) = rows.iter().find(|r| r.2.eq_ignore_ascii_case("error")) {
        return Err(BackendError::msg(format!("{sys}: {sql}: {}: {}", r.0, r.3)).classed(ErrorClass::Server));
    }
    Ok(())
}
