//! Physical space: `settle` (CHECKPOINT where allowed), `maintenance` (the reclaim
//! statement), `sizes` (the server's size functions or ranges) and `data_paths` (the lab
//! relations' files in the data directory). What differs between the two systems comes from
//! the [`Dialect`](super::dialect::Dialect).

use super::PgBackend;
use super::dialect::{Dialect, RELATION_SIZE_KEYS, Settle, SizeSource};
use super::errors::OpKind;
use crate::net::class::io_class;
use dedup_lab_core::{BackendError, ErrorClass, InternalSizes, MaintenanceReport, Namespace, chain};
use std::path::{Path, PathBuf};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

impl PgBackend {
    pub(super) fn reclaim(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        let tables: Vec<String> = ns.containers().map(|(i, _)| self.table(ns, i)).collect();
        match self.dialect.maintenance(&tables) {
            Ok(sql) => {
                self.batch(OpKind::Admin, || sql.clone(), &sql)?;
                Ok(MaintenanceReport { action: sql })
            }
            Err(why) => Ok(MaintenanceReport { action: why.into() }),
        }
    }

    pub(super) fn checkpoint(&mut self) -> Result<(), BackendError> {
        if let Settle::Nothing(why) = self.dialect.settle() {
            self.settle_note = why.into();
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

    pub(super) fn read_sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let mut sizes = InternalSizes::default();
        sizes.details.insert("variant".into(), self.variant.name.clone().into());
        sizes.details.insert("settle".into(), self.settle_note.clone().into());
        match self.dialect.size_source() {
            SizeSource::Relation(sql) => self.relation_sizes(ns, sql, &mut sizes)?,
            SizeSource::Ranges => self.range_sizes(ns, &mut sizes)?,
        }
        Ok(sizes)
    }

    /// PostgreSQL: `pg_total_relation_size` per lab table summed, with heap / maps / TOAST /
    /// TOAST index / index bytes per table in the details.
    fn relation_sizes(&mut self, ns: &Namespace, sql: &str, sizes: &mut InternalSizes) -> Result<(), BackendError> {
        let mut total = 0u64;
        for (i, name) in ns.containers() {
            let t = self.table(ns, i);
            let row = self.run(
                OpKind::Admin,
                || format!("reading the sizes of {t}"),
                async |c| {
                    let rows = c.query_typed(sql, &[(&t, Type::TEXT)]).await?;
                    rows.first()
                        .map(|r| {
                            (0..RELATION_SIZE_KEYS.len()).map(|j| r.try_get::<_, i64>(j)).collect::<Result<Vec<_>, _>>()
                        })
                        .transpose()
                },
            )?;
            let Some(v) = row else {
                sizes.details.insert(format!("{name}.absent"), true.into());
                continue;
            };
            for (k, x) in RELATION_SIZE_KEYS.iter().zip(&v) {
                sizes.details.insert(format!("{name}.{k}"), (*x).into());
            }
            total += v[5].max(0) as u64;
        }
        sizes.total_bytes = Some(total);
        Ok(())
    }

    /// CockroachDB: the ranges holding each table; without the privilege to see them, a note
    /// instead of a total.
    fn range_sizes(&mut self, ns: &Namespace, sizes: &mut InternalSizes) -> Result<(), BackendError> {
        let mut total = 0u64;
        let mut denied = None;
        for (i, name) in ns.containers() {
            let t = self.table(ns, i);
            let sql = Dialect::ranges_sql(&t);
            let r = self.run(
                OpKind::Admin,
                || format!("reading the ranges of {t}"),
                async |c| {
                    Ok(match c.query_typed(&sql, &[]).await {
                        Ok(rows) => {
                            Ok(rows.first().map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1))).unwrap_or((0, 0)))
                        }
                        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Err(chain(&e)),
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
        Ok(())
    }

    /// With `data_dir` set, the exact files of each lab table, its indexes, its TOAST table
    /// and TOAST index (all segments and forks), resolved with `pg_relation_filepath()`.
    pub(super) fn relation_paths(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        let (Some(dir), Some(sql)) = (self.s.data_dir.clone(), self.dialect.relation_files_sql()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (i, _) in ns.containers() {
            let t = self.table(ns, i);
            let rels: Vec<Option<String>> = self.run(
                OpKind::Admin,
                || format!("resolving the files of {t}"),
                async |c| Ok(c.query_typed(sql, &[(&t, Type::TEXT)]).await?.iter().map(|r| r.get(0)).collect()),
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
                    ))
                    .classed(ErrorClass::Config));
                }
                let files = relation_files(parent, node).map_err(|e| {
                    let class = io_class(&e).unwrap_or(ErrorClass::Config);
                    BackendError::with_source(format!("{}: listing {}", self.sys(), parent.display()), e).classed(class)
                })?;
                out.extend(files);
            }
        }
        Ok(out)
    }
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
