//! Sizes, settle and maintenance: memory per master (`MEMORY STATS`), the RDB files after
//! `SAVE`, `MEMORY PURGE` and `BGREWRITEAOF`.

use super::resp::Reply;
use super::{RedisBackend, cmd};
use dedup_lab_core::{BackendError, ErrorClass, InternalSizes, MaintenanceReport, Namespace};
use serde_json::json;
use std::path::PathBuf;

/// A field of a `MEMORY STATS` reply (a flat list of names and values).
fn stat(reply: &Reply, name: &str) -> Option<serde_json::Value> {
    let it = reply.items();
    let v = it.chunks(2).find(|p| p[0].text().as_deref() == Some(name)).and_then(|p| p.get(1))?;
    match v {
        Reply::Int(i) => Some(json!(i)),
        other => other.text().map(|t| t.parse::<f64>().map(|f| json!(f)).unwrap_or(json!(t))),
    }
}

impl RedisBackend {
    /// `settle`: with the RDB probe, a completed `SAVE` on every master, so the files hold
    /// exactly the data now in memory. Memory readings need nothing.
    pub(super) fn save_if_measured(&mut self) -> Result<(), BackendError> {
        if !self.s.rdb_probe {
            return Ok(());
        }
        for node in self.r.masters() {
            self.r.on(&node, &cmd(&["SAVE"]), "write the RDB file before it is measured")?;
        }
        Ok(())
    }

    /// The RDB file of every master (`CONFIG GET dir`, `CONFIG GET dbfilename`), when the
    /// server runs on this machine.
    pub(super) fn rdb_files(&mut self) -> Result<Vec<PathBuf>, BackendError> {
        if !self.s.is_local() {
            return Err(BackendError::msg(format!(
                "{}: the RDB file can be measured only when the server runs on this machine (host {}); use probe = \"internal\" (memory)",
                self.sys(),
                self.s.server.host
            ))
            .classed(ErrorClass::Config));
        }
        let mut out = Vec::new();
        for node in self.r.masters() {
            let why = "find the RDB file it measures";
            let dir = self.r.on(&node, &cmd(&["CONFIG", "GET", "dir"]), why)?;
            let file = self.r.on(&node, &cmd(&["CONFIG", "GET", "dbfilename"]), why)?;
            let (Some(dir), Some(file)) =
                (dir.items().get(1).and_then(Reply::text), file.items().get(1).and_then(Reply::text))
            else {
                return Err(BackendError::msg(format!(
                    "{}: node {node} did not say where its RDB file is",
                    self.sys()
                ))
                .classed(ErrorClass::Server));
            };
            out.push(PathBuf::from(dir).join(file));
        }
        Ok(out)
    }

    /// `maintenance`: `MEMORY PURGE` on every master, and `BGREWRITEAOF` where AOF is on.
    pub(super) fn reclaim(&mut self) -> Result<MaintenanceReport, BackendError> {
        let mut done = Vec::new();
        if self.purge()? {
            done.push("MEMORY PURGE on every master");
        }
        if self.aof == Some(true) {
            for node in self.r.masters() {
                self.r.on(&node, &cmd(&["BGREWRITEAOF"]), "rewrite the append-only file")?;
            }
            done.push("BGREWRITEAOF (started; Redis rewrites it in the background)");
        }
        if done.is_empty() {
            return Err(BackendError::msg(format!(
                "{}: no maintenance is possible: MEMORY PURGE is denied and AOF is off",
                self.sys()
            ))
            .classed(ErrorClass::Permission));
        }
        Ok(MaintenanceReport { action: done.join(", ") })
    }

    /// Memory per master (summed: the total), the RDB files when readable, and how the
    /// lab's keys spread.
    pub(super) fn read_sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let mut total = 0u64;
        let mut nodes = serde_json::Map::new();
        let lab_pattern = super::keys::lab_pattern(ns.lab());
        for node in self.r.masters() {
            let st = self.r.on(&node, &cmd(&["MEMORY", "STATS"]), "read the memory it measures")?;
            let used = stat(&st, "total.allocated").and_then(|v| v.as_u64()).ok_or_else(|| {
                BackendError::msg(format!("{}: MEMORY STATS on {node} has no total.allocated", self.sys()))
                    .classed(ErrorClass::Server)
            })?;
            // Client connections' buffers hold the tool's own pipelines (a query buffer of up
            // to a whole batch stays allocated for a while), not stored data.
            let clients = stat(&st, "clients.normal").and_then(|v| v.as_u64()).unwrap_or(0);
            total += used.saturating_sub(clients);
            let lab_keys = self.r.scan(&node, &lab_pattern)?.len();
            let mut d = serde_json::Map::new();
            d.insert("used_memory".into(), json!(used));
            d.insert("clients.normal".into(), json!(clients));
            for k in [
                "dataset.bytes",
                "overhead.total",
                "startup.allocated",
                "allocator.allocated",
                "allocator.resident",
                "allocator-fragmentation.ratio",
                "allocator-fragmentation.bytes",
                "rss-overhead.bytes",
                "keys.count",
            ] {
                if let Some(v) = stat(&st, k) {
                    d.insert(k.into(), v);
                }
            }
            d.insert("lab_keys".into(), json!(lab_keys));
            nodes.insert(node, serde_json::Value::Object(d));
        }
        let mut details = std::collections::BTreeMap::new();
        details.insert("masters".into(), serde_json::Value::Object(nodes));
        details.insert(
            "memory".into(),
            json!(
                "total = MEMORY STATS total.allocated (used_memory) summed over masters; the allocator's overhead \
                   (allocator.resident - allocator.allocated, fragmentation) is listed per master, not included"
            ),
        );
        details.insert("probe".into(), json!(if self.s.rdb_probe { "rdb files after SAVE (fs)" } else { "memory" }));
        if let Some(w) = &self.warmup {
            details.insert("warmup".into(), json!(w));
        }
        if self.s.is_local()
            && self.aof.is_some()
            && let Ok(files) = self.rdb_files()
        {
            let rdb: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
            details.insert("rdb_bytes".into(), json!(rdb));
            details
                .insert("rdb_files".into(), json!(files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>()));
            details.insert(
                "rdb".into(),
                json!(if self.s.rdb_probe {
                    "rdb_bytes: the files after the SAVE settle just ran"
                } else {
                    "rdb_bytes: the files as of the last save (settle runs SAVE only with probe = \"fs\")"
                }),
            );
        }
        Ok(InternalSizes { total_bytes: Some(total), details })
    }
}
