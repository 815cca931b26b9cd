//! DDL and names: the lab's relations, creating and dropping the lab (PostgreSQL: its own
//! tables, then the schema, never `CASCADE`), and listing what exists of it for `cleanup`.

use super::PgBackend;
use super::dialect::{Dialect, LabDrop};
use super::errors::OpKind;
use super::typed;
use dedup_lab_core::{BackendError, ErrorClass, LabName, Namespace, RecordId};
use tokio_postgres::types::Type;

impl PgBackend {
    /// A relation of the lab, quoted for SQL.
    pub(super) fn rel(&self, ns: &Namespace, name: &str) -> String {
        self.dialect.rel(ns.lab(), name)
    }

    /// The table of container `index` (one of `ns.containers()`).
    pub(super) fn table(&self, ns: &Namespace, index: u8) -> String {
        self.rel(ns, &ns.container_name(index))
    }

    /// The table record `id` belongs to; an error when its container is outside `ns`.
    pub(super) fn table_of(&self, ns: &Namespace, id: &RecordId) -> Result<String, BackendError> {
        let i = ns.container_of(id)?;
        Ok(self.table(ns, i as u8))
    }

    /// `schema "dedup_lab"` / `database "dedup_lab"`.
    pub(super) fn lab_phrase(&self, lab: &LabName) -> String {
        format!("{} {}", self.dialect.lab_word(), Dialect::lab(lab))
    }

    /// The lab's own tables as the catalog lists them (quoted), whatever the namespace's
    /// container count; empty when the lab does not exist.
    fn lab_tables(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let name = lab.to_string();
        let sql = self.dialect.lab_tables_sql(lab);
        let what = self.lab_phrase(lab);
        self.run(
            OpKind::Ddl,
            || format!("listing the tables of {what}"),
            async |c| {
                let rows = c.query_typed(&sql, &[(&name, Type::TEXT)]).await?;
                Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
            },
        )
    }

    /// SQL that drops the lab (PostgreSQL: its own tables, then the empty schema, no CASCADE).
    fn drop_sql(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let quoted = Dialect::lab(lab);
        match self.dialect.lab_drop() {
            LabDrop::DatabaseCascade => {
                if self.s.database == lab.as_str() {
                    return Err(BackendError::msg(format!(
                        "{}: refusing to drop database {quoted}: it is the database dedup-lab is connected to",
                        self.sys()
                    ))
                    .classed(ErrorClass::Config));
                }
                Ok(vec![format!("DROP DATABASE IF EXISTS {quoted} CASCADE")])
            }
            LabDrop::TablesThenSchema => {
                let tables = self.lab_tables(lab)?;
                let mut sql = Vec::new();
                if !tables.is_empty() {
                    let list: Vec<String> = tables.iter().map(|t| format!("{quoted}.{t}")).collect();
                    sql.push(format!("DROP TABLE IF EXISTS {}", list.join(", ")));
                }
                sql.push(format!("DROP SCHEMA IF EXISTS {quoted}"));
                Ok(sql)
            }
        }
    }

    fn create_sql(&self, ns: &Namespace) -> Vec<String> {
        let mut sql = vec![self.dialect.create_lab(ns.lab())];
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

    /// Runs DDL statements: in one transaction on PostgreSQL, one by one on CockroachDB.
    pub(super) fn ddl(&mut self, what: String, sql: Vec<String>) -> Result<(), BackendError> {
        if self.dialect.ddl_in_one_transaction() {
            let joined = sql.join(";\n");
            self.batch(OpKind::Ddl, || what, &joined)
        } else {
            for stmt in sql {
                self.batch(OpKind::Ddl, || format!("{what}: {stmt}"), &stmt)?;
            }
            Ok(())
        }
    }

    pub(super) fn reset_lab(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let mut sql = self.drop_sql(ns.lab())?;
        sql.extend(self.create_sql(ns));
        self.ddl(format!("resetting {}", self.lab_phrase(ns.lab())), sql)
    }

    pub(super) fn drop_lab_objects(&mut self, lab: &LabName) -> Result<(), BackendError> {
        let sql = self.drop_sql(lab)?;
        self.ddl(format!("dropping {}", self.lab_phrase(lab)), sql)
    }

    /// `schema dedup_lab`, then `table dedup_lab.c0`, … for what exists of the lab.
    pub(super) fn lab_inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let name = lab.to_string();
        let sql = self.dialect.lab_exists_sql();
        let word = self.dialect.lab_word();
        let exists: i64 = self.run(
            OpKind::Ddl,
            || format!("looking for {word} {}", Dialect::lab(lab)),
            async |c| c.query_typed(sql, &[(&name, Type::TEXT)]).await?.first().map_or(Ok(0), |r| r.try_get(0)),
        )?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let mut out = vec![format!("{word} {lab}")];
        for t in self.lab_tables(lab)? {
            // Our tables' names need no quotes; show any other as the catalog quoted it.
            out.push(format!("table {}", self.dialect.rel_display(lab, &t)));
        }
        Ok(out)
    }
}
