//! Names, creating and dropping the lab database and its tables, and the inventory for
//! `cleanup`. Every name is derived from the validated lab name: database `<lab>`, tables
//! `<lab>.c0`, `<lab>.c1`.

use super::ChBackend;
use super::conn::quote;
use super::rowbinary::column_defs;
use super::variant::Engine;
use dedup_lab_core::{BackendError, LabName, Namespace};

/// `` `dedup_lab`.`c0` ``.
pub fn table(lab: &LabName, container: &str) -> String {
    format!("`{lab}`.`{container}`")
}

impl ChBackend {
    /// The CREATE TABLE of one container in this variant.
    pub(super) fn create_sql(&self, ns: &Namespace, container: &str) -> String {
        let codec = self.variant.codec.map(|c| format!(" CODEC({c})")).unwrap_or_default();
        let (columns, hashed) = match ns.schema() {
            None => (format!("k String, v String{codec}"), "v".to_string()),
            Some(schema) => (
                format!("k String, {}", column_defs(schema, self.variant.codec)),
                schema
                    .columns
                    .iter()
                    .map(|c| super::rowbinary::hash_expr(&c.name, c.ty))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        let t = table(ns.lab(), container);
        match self.variant.engine {
            Engine::MergeTree => format!("CREATE TABLE {t} ({columns}) ENGINE = MergeTree ORDER BY k"),
            // The content hash is computed by the server from the stored columns; RowBinary
            // inserts leave MATERIALIZED columns out.
            Engine::Replacing => format!(
                "CREATE TABLE {t} ({columns}, h UInt64 MATERIALIZED cityHash64({hashed})) \
                 ENGINE = ReplacingMergeTree ORDER BY h"
            ),
        }
    }

    /// A fresh, empty lab database with one table per container.
    pub(super) fn reset_lab(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.drop_lab_objects(ns.lab())?;
        let lab = ns.lab();
        self.c.execute("creating the lab database", &format!("CREATE DATABASE `{lab}`"))?;
        for (_, name) in ns.containers() {
            let sql = self.create_sql(ns, &name);
            self.c.execute(&format!("creating table {}", table(lab, &name)), &sql)?;
        }
        Ok(())
    }

    /// Drops the lab database and everything in it (all of it is the lab's).
    pub(super) fn drop_lab_objects(&mut self, lab: &LabName) -> Result<(), BackendError> {
        self.c.execute("dropping the lab database", &format!("DROP DATABASE IF EXISTS `{lab}`"))
    }

    /// `database dedup_lab`, `table dedup_lab.c0`, … when the lab database exists.
    pub(super) fn lab_inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let l = quote(lab.as_str());
        let dbs =
            self.c.rows("listing the lab database", &format!("SELECT name FROM system.databases WHERE name = {l}"))?;
        if dbs.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = vec![format!("database {lab}")];
        let tables = self.c.rows(
            "listing the lab tables",
            &format!("SELECT name FROM system.tables WHERE database = {l} ORDER BY name"),
        )?;
        out.extend(tables.into_iter().filter_map(|r| r.into_iter().next()).map(|t| format!("table {lab}.{t}")));
        Ok(out)
    }
}
