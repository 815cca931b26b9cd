//! Names and DDL: the lab database and its tables, created in the variant's row format,
//! dropped whole (everything in the lab database is the lab's), and listed for `cleanup`.

use super::MariaBackend;
use super::errors::OpKind;
use super::typed;
use super::variant::Format;
use dedup_lab_core::{BackendError, ErrorClass, LabName, Namespace, RecordId};
use mysql_async::prelude::Queryable;

/// `` `dedup_lab` `` (lab names are validated `[a-z0-9_]`).
pub fn db(lab: &LabName) -> String {
    format!("`{lab}`")
}

impl MariaBackend {
    /// The table of container `index` (one of `ns.containers()`), quoted.
    pub(super) fn table(&self, ns: &Namespace, index: u8) -> String {
        format!("{}.`{}`", db(ns.lab()), ns.container_name(index))
    }

    /// The table record `id` belongs to; an error when its container is outside `ns`.
    pub(super) fn table_of(&self, ns: &Namespace, id: &RecordId) -> Result<String, BackendError> {
        let i = ns.container_of(id)?;
        Ok(self.table(ns, i as u8))
    }

    /// Checks, once per open, that the server can serve the variant: a clear error now
    /// instead of a failed `CREATE TABLE` halfway through a run.
    pub(super) fn check_variant(&mut self) -> Result<(), BackendError> {
        let vars: Vec<(String, String)> = self.run(
            OpKind::Admin,
            || "reading the InnoDB settings".into(),
            async |c| {
                c.query(
                    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('innodb_file_per_table', 'innodb_page_size', \
                     'innodb_compression_algorithm', 'innodb_read_only_compressed', 'have_innodb')",
                )
                .await
            },
        )?;
        let var = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let on = |name: &str| var(name).is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
        let refuse = |why: String| {
            Err(BackendError::msg(format!(
                "{}: variant {:?} cannot run on this server ({}): {why}; drop it from `variants`",
                self.sys(),
                self.variant.name,
                self.server.version
            ))
            .classed(ErrorClass::Config))
        };
        let page_size: u32 = var("innodb_page_size").and_then(|v| v.parse().ok()).unwrap_or(16384);
        match self.variant.format {
            Format::Dynamic => Ok(()),
            Format::Compressed(_) | Format::PageCompressed(_) if !on("innodb_file_per_table") => {
                refuse("it needs innodb_file_per_table=ON (each table in its own .ibd file)".into())
            }
            Format::Compressed(_) if on("innodb_read_only_compressed") => {
                refuse("innodb_read_only_compressed=ON makes ROW_FORMAT=COMPRESSED tables read-only".into())
            }
            Format::Compressed(k) if page_size > 16384 || k * 1024 > page_size => refuse(format!(
                "ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE={k} needs innodb_page_size ≥ {k} KiB and ≤ 16 KiB; the server \
                 has {} KiB",
                page_size / 1024
            )),
            Format::PageCompressed(_) => match var("innodb_compression_algorithm") {
                Some(a) if !a.eq_ignore_ascii_case("none") => Ok(()),
                other => refuse(format!(
                    "PAGE_COMPRESSED=1 compresses with innodb_compression_algorithm, which is {}",
                    other.unwrap_or("not available")
                )),
            },
            Format::Compressed(_) => Ok(()),
        }
    }

    /// The server's page compression algorithm (for notes), when the variant uses it.
    pub(super) fn page_compression(&mut self) -> Option<String> {
        if !matches!(self.variant.format, Format::PageCompressed(_)) {
            return None;
        }
        self.run(
            OpKind::Admin,
            || "reading innodb_compression_algorithm".into(),
            async |c| c.query_first::<String, _>("SELECT @@GLOBAL.innodb_compression_algorithm").await,
        )
        .ok()
        .flatten()
    }

    fn create_sql(&self, ns: &Namespace) -> Vec<String> {
        let lab = db(ns.lab());
        let mut sql = vec![format!("CREATE DATABASE {lab} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")];
        let columns = match ns.schema() {
            None => "v LONGBLOB NOT NULL".to_string(),
            Some(s) => typed::column_defs(s, self.server.uuid_native),
        };
        for (i, _) in ns.containers() {
            sql.push(format!(
                "CREATE TABLE {} ({}, {columns}) ENGINE=InnoDB {}",
                self.table(ns, i),
                typed::KEY_COLUMN,
                self.variant.table_options()
            ));
        }
        sql
    }

    pub(super) fn reset_lab(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let mut sql = vec![format!("DROP DATABASE IF EXISTS {}", db(ns.lab()))];
        sql.extend(self.create_sql(ns));
        let all = sql.join(";\n");
        let variant = self.variant.name.clone();
        self.exec_sql(OpKind::Ddl, || format!("resetting database {} (variant {variant})", ns.lab()), &all)
    }

    pub(super) fn drop_lab_database(&mut self, lab: &LabName) -> Result<(), BackendError> {
        let sql = format!("DROP DATABASE IF EXISTS {}", db(lab));
        self.exec_sql(OpKind::Ddl, || format!("dropping database {lab}"), &sql)
    }

    /// The lab's tables as the catalog lists them, with their kind (`BASE TABLE`, `VIEW`, …).
    pub(super) fn lab_tables(&mut self, lab: &LabName) -> Result<Vec<(String, String)>, BackendError> {
        let name = lab.to_string();
        self.run(
            OpKind::Admin,
            || format!("listing the tables of database {lab}"),
            async |c| {
                c.exec(
                    "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY \
                     TABLE_NAME",
                    (name,),
                )
                .await
            },
        )
    }

    /// `database dedup_lab`, then `table dedup_lab.c0`, … for what exists of the lab.
    pub(super) fn lab_inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let name = lab.to_string();
        let exists: Option<String> = self.run(
            OpKind::Admin,
            || format!("looking for database {lab}"),
            async |c| {
                c.exec_first("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (name,)).await
            },
        )?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let mut out = vec![format!("database {lab}")];
        for (t, kind) in self.lab_tables(lab)? {
            let word = if kind == "VIEW" { "view" } else { "table" };
            out.push(format!("{word} {lab}.{t}"));
        }
        Ok(out)
    }
}
