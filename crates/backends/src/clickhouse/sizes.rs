//! Maintenance, settling, the server's own sizes and the table directories.
//!
//! - `maintenance`: `OPTIMIZE TABLE … FINAL` per lab table (merges every part into one; for
//!   `ReplacingMergeTree` this is where duplicates collapse), then the wait of `settle`.
//! - `settle`: waits (at most `settle_timeout`) until no merge (`system.merges`) and no
//!   mutation (`system.mutations`) of a lab table runs, and until the inactive parts they
//!   replaced have left the disk (the server removes them `old_parts_lifetime` after the
//!   merge: 1 s on the test server, 8 minutes by default). Inactive parts still there when
//!   the time is up are not an error: `sizes` counts active parts only, and what happened is
//!   in `sizes().details["settle"]`. Once nothing runs, `settle` asks every 250 ms for an
//!   `OPTIMIZE TABLE … PARTITION ID` of a partition that does not exist: it merges nothing,
//!   but makes the server remove the parts whose lifetime has passed now rather than when
//!   its background pool next wakes (up to ~10 s on 18.16).
//! - `sizes`: `system.parts` of the lab database, **active parts only**: `bytes_on_disk`
//!   (the total), compressed and uncompressed bytes, rows and the part count, per table.
//! - `data_paths`: with `data_dir` set (the server's `<path>`), the table directories
//!   `<data_dir>/data/<lab>/<table>/`, for the `fs` probe.

use super::ChBackend;
use super::conn::quote;
use super::ddl::table;
use dedup_lab_core::{BackendError, InternalSizes, MaintenanceReport, Namespace};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

impl ChBackend {
    pub(super) fn optimize(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        let mut done = Vec::new();
        for (_, name) in ns.containers() {
            let t = table(ns.lab(), &name);
            self.c.execute(&format!("OPTIMIZE TABLE {t} FINAL"), &format!("OPTIMIZE TABLE {t} FINAL"))?;
            done.push(name);
        }
        self.settle_lab(ns)?;
        Ok(MaintenanceReport { action: format!("OPTIMIZE TABLE … FINAL on {}", done.join(", ")) })
    }

    pub(super) fn settle_lab(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let db = quote(ns.lab().as_str());
        let start = Instant::now();
        let mut last_nudge = start;
        let mut pause = Duration::from_millis(5);
        loop {
            let busy = self.c.number(
                "waiting for merges and mutations",
                &format!(
                    "SELECT (SELECT count() FROM system.merges WHERE database = {db}) + (SELECT count() FROM \
                     system.mutations WHERE database = {db} AND is_done = 0)"
                ),
            )?;
            let inactive = self.c.number(
                "waiting for replaced parts to leave the disk",
                &format!("SELECT count() FROM system.parts WHERE database = {db} AND NOT active"),
            )?;
            if busy == 0 && inactive == 0 {
                self.settle_note = format!("settled after {} ms", start.elapsed().as_millis());
                return Ok(());
            }
            if busy == 0 && last_nudge.elapsed() >= Duration::from_millis(250) {
                self.nudge_cleanup(ns)?;
                last_nudge = Instant::now();
            }
            if start.elapsed() >= self.s.settle_timeout {
                self.settle_note = format!(
                    "after {} s, {busy} merges/mutations still ran and {inactive} inactive parts were still on disk \
                     (the server's old_parts_lifetime); sizes count active parts only",
                    self.s.settle_timeout.as_secs()
                );
                return Ok(());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// A merge attempt on a partition that does not exist: it merges nothing, but a merge
    /// attempt first removes the parts whose `old_parts_lifetime` has passed. Without it
    /// 18.16 removes them only when its background pool next wakes (up to ~10 s later).
    fn nudge_cleanup(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        for (_, name) in ns.containers() {
            let t = table(ns.lab(), &name);
            self.c.execute(
                "asking the server to remove replaced parts",
                &format!("OPTIMIZE TABLE {t} PARTITION ID 'dedup_lab_no_such_partition'"),
            )?;
        }
        Ok(())
    }

    pub(super) fn read_sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let rows = self.c.rows(
            "reading system.parts",
            &format!(
                "SELECT table, sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes), \
                 sum(rows), count() FROM system.parts WHERE database = {} AND active GROUP BY table ORDER BY table",
                quote(ns.lab().as_str())
            ),
        )?;
        let num = |s: &String| s.parse::<u64>().unwrap_or(0);
        let mut total = 0;
        let mut details = std::collections::BTreeMap::new();
        for r in rows.iter().filter(|r| r.len() == 6) {
            total += num(&r[1]);
            details.insert(
                format!("table {}", r[0]),
                json!({"bytes_on_disk": num(&r[1]), "compressed_bytes": num(&r[2]),
                       "uncompressed_bytes": num(&r[3]), "rows": num(&r[4]), "active_parts": num(&r[5])}),
            );
        }
        details.insert("engine".into(), json!(self.engine_name()));
        details.insert("settle".into(), json!(self.settle_note));
        let delete_path = if self.server.lightweight_delete {
            "lightweight DELETE FROM (synchronous)"
        } else {
            "ALTER TABLE … DELETE mutation, waited for until system.mutations says is_done"
        };
        details.insert("delete_path".into(), json!(delete_path));
        details.insert("server_version".into(), json!(self.server.version));
        Ok(InternalSizes { total_bytes: Some(total), details })
    }

    pub(super) fn table_dirs(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        let Some(dir) = &self.s.data_dir else { return Ok(Vec::new()) };
        Ok(ns.containers().map(|(_, name)| dir.join("data").join(ns.lab().as_str()).join(name)).collect())
    }
}
