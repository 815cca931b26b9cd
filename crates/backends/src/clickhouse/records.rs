//! Writing, reading, counting and deleting records.
//!
//! - Bulk: records are grouped per container into batches of at most `batch_bytes` of
//!   RowBinary ([`crate::net::batch::Batcher`]); each batch is one `INSERT … FORMAT RowBinary`
//!   request. 18.16 answers an INSERT with an empty 200 and no row count, so each batch is
//!   verified: `count()` of its table before and after must differ by exactly the rows sent,
//!   and only that difference is reported. For `ReplacingMergeTree` a background merge could
//!   collapse rows between the two counts, so merges of the lab tables are stopped
//!   (`SYSTEM STOP MERGES`) for the duration of the bulk insert and started again after it.
//! - `insert_one`: one single-row RowBinary INSERT, after a look-up of the key (a MergeTree
//!   has no unique key, and a key is stored once): a key that exists is refused.
//! - `delete_one`: an `ALTER TABLE … DELETE WHERE k = …` mutation, waited for until
//!   `system.mutations` says `is_done` for every mutation of the table (18.16 has no
//!   `mutations_sync`), then checked by counting the key. On servers with lightweight
//!   `DELETE FROM` (23.3+, untested here) that is used instead. A key that is
//!   not there (a deduplicating variant merged it away) deletes 0 rows without a mutation.
//!   The per-record delete path is named in `sizes().details["delete_path"]`.

use super::ChBackend;
use super::conn::quote;
use super::ddl::table;
use super::rowbinary::{self, Reader, string, text_expr};
use super::variant::Engine;
use crate::net::batch::{Batch, Batcher};
use dedup_lab_core::{BackendError, ErrorClass, Namespace, Record, RecordId, RecordStream};
use std::time::{Duration, Instant};

impl ChBackend {
    fn table_of(&self, ns: &Namespace, container: usize) -> String {
        table(ns.lab(), &ns.container_name(container as u8))
    }

    /// The RowBinary of one record: `k`, then the payload or the typed columns.
    fn encode_row(&self, ns: &Namespace, r: &Record, out: &mut Vec<u8>) -> Result<(), BackendError> {
        string(r.id.key.as_bytes(), out);
        match (ns.schema(), &r.row) {
            (None, _) => string(&r.data, out),
            (Some(schema), Some(row)) => {
                schema.check(row).map_err(|e| self.bad_record(r, &e.to_string()))?;
                for (c, v) in schema.columns.iter().zip(row) {
                    rowbinary::value(v, c.ty, out)
                        .map_err(|why| self.bad_record(r, &format!("column {}: {why}", c.name)))?;
                }
            }
            (Some(_), None) => return Err(self.bad_record(r, "a native namespace needs typed rows")),
        }
        Ok(())
    }

    fn bad_record(&self, r: &Record, why: &str) -> BackendError {
        BackendError::msg(format!("{}: record {}: {why}", self.c.sys, r.id.key)).classed(ErrorClass::BadRequest)
    }

    pub(super) fn bulk(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let replacing = self.variant.engine == Engine::Replacing;
        if replacing {
            self.merges(ns, "STOP")?;
        }
        let result = self.bulk_batches(ns, records);
        if replacing {
            let started = self.merges(ns, "START");
            // A failed bulk insert's error matters more than a failed START.
            if result.is_ok() {
                started?;
            }
        }
        result
    }

    fn merges(&mut self, ns: &Namespace, verb: &str) -> Result<(), BackendError> {
        for (i, _) in ns.containers() {
            let t = self.table_of(ns, usize::from(i));
            self.c.execute(&format!("SYSTEM {verb} MERGES {t}"), &format!("SYSTEM {verb} MERGES {t}"))?;
        }
        Ok(())
    }

    fn bulk_batches(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let mut batcher: Batcher<Vec<u8>> =
            Batcher::new(usize::from(ns.container_count()), usize::MAX, self.s.batch_bytes);
        let mut total = 0;
        for r in records {
            let r = r?;
            let c = ns.container_of(&r.id)?;
            let mut row = Vec::with_capacity(r.data.len() + 32);
            self.encode_row(ns, &r, &mut row)?;
            let len = row.len();
            if let Some(b) = batcher.push(c, row, len) {
                total += self.send_batch(ns, b)?;
            }
        }
        for b in batcher.finish() {
            total += self.send_batch(ns, b)?;
        }
        Ok(total)
    }

    /// Sends one batch and returns the rows `count()` says it added.
    fn send_batch(&mut self, ns: &Namespace, b: Batch<Vec<u8>>) -> Result<u64, BackendError> {
        let t = self.table_of(ns, b.container);
        let sent = b.items.len() as u64;
        let body = b.items.concat();
        let before = self.c.number("counting rows", &format!("SELECT count() FROM {t}"))?;
        self.c.insert_rowbinary(&format!("inserting {sent} rows into {t}"), &t, &body)?;
        let after = self.c.number("counting rows", &format!("SELECT count() FROM {t}"))?;
        let added = after.saturating_sub(before);
        if added != sent {
            return Err(BackendError::msg(format!(
                "{}: inserting into {t}: the server accepted a batch of {sent} rows, but count() went from {before} to \
                 {after}; nothing of this batch is counted as inserted",
                self.c.sys
            ))
            .classed(ErrorClass::Server));
        }
        Ok(added)
    }

    fn count_key(&self, t: &str, key: &str) -> Result<u64, BackendError> {
        self.c.number("looking up a record", &format!("SELECT count() FROM {t} WHERE k = {}", quote(key)))
    }

    pub(super) fn insert_record(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        let c = ns.container_of(&r.id)?;
        let t = self.table_of(ns, c);
        if self.count_key(&t, &r.id.key)? > 0 {
            return Err(BackendError::msg(format!("{}: {t} already holds record {}", self.c.sys, r.id.key))
                .classed(ErrorClass::BadRequest));
        }
        let mut body = Vec::with_capacity(r.data.len() + 32);
        self.encode_row(ns, r, &mut body)?;
        self.c.insert_rowbinary(&format!("inserting record {} into {t}", r.id.key), &t, &body)?;
        Ok(1)
    }

    pub(super) fn delete_record(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        let c = ns.container_of(id)?;
        let t = self.table_of(ns, c);
        let n = self.count_key(&t, &id.key)?;
        if n == 0 {
            return Ok(0);
        }
        let what = format!("deleting record {} from {t}", id.key);
        if self.server.lightweight_delete {
            // Synchronous on the servers that have it: the rows are marked deleted when it returns.
            self.c.execute(&what, &format!("DELETE FROM {t} WHERE k = {}", quote(&id.key)))?;
        } else {
            self.c.execute(&what, &format!("ALTER TABLE {t} DELETE WHERE k = {}", quote(&id.key)))?;
            self.wait_mutations(ns, c)?;
        }
        let left = self.count_key(&t, &id.key)?;
        if left != 0 {
            return Err(BackendError::msg(format!(
                "{}: the DELETE mutation of record {} in {t} is done, but {left} of its {n} rows are still there",
                self.c.sys, id.key
            ))
            .classed(ErrorClass::Server));
        }
        Ok(n)
    }

    /// Waits until every mutation of container `c` is done, at most `mutation_timeout`. A
    /// mutation the server reports as failing (`latest_fail_reason`, newer servers) is an
    /// error at once, with the server's reason.
    pub(super) fn wait_mutations(&mut self, ns: &Namespace, c: usize) -> Result<(), BackendError> {
        let name = ns.container_name(c as u8);
        let filter = format!("database = {} AND table = {} AND is_done = 0", quote(ns.lab().as_str()), quote(&name));
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let pending = self.c.rows(
                "waiting for the DELETE mutation",
                &format!(
                    "SELECT mutation_id, parts_to_do{} FROM system.mutations WHERE {filter}",
                    self.fail_reason_column()
                ),
            )?;
            let Some(first) = pending.first() else { return Ok(()) };
            if let Some(reason) = first.get(2).filter(|r| !r.is_empty()) {
                return Err(BackendError::msg(format!(
                    "{}: mutation {} of {} failed on the server: {reason}",
                    self.c.sys,
                    first[0],
                    table(ns.lab(), &name)
                ))
                .classed(ErrorClass::Server));
            }
            if start.elapsed() >= self.s.mutation_timeout {
                let why = if self.server.fail_reason {
                    String::new()
                } else {
                    format!(
                        "; this server ({}) keeps no failure reason in system.mutations (latest_fail_reason came \
                         with newer releases): its error log says why the mutation does not finish",
                        self.server.version
                    )
                };
                return Err(BackendError::msg(format!(
                    "{}: mutation {} of {} is not done after {} s ({} parts to do){why}",
                    self.c.sys,
                    first[0],
                    table(ns.lab(), &name),
                    self.s.mutation_timeout.as_secs(),
                    first.get(1).map(String::as_str).unwrap_or("?"),
                ))
                .classed(ErrorClass::Timeout));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    fn fail_reason_column(&self) -> &'static str {
        if self.server.fail_reason { ", latest_fail_reason" } else { "" }
    }

    pub(super) fn read_record(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let c = ns.container_of(id)?;
        let t = self.table_of(ns, c);
        let key = quote(&id.key);
        let bad = |why: String| {
            BackendError::msg(format!("{}: reading record {} from {t}: {why}", self.c.sys, id.key))
                .classed(ErrorClass::Server)
        };
        match ns.schema() {
            None => {
                let out = self.c.query_bytes(
                    "reading a record",
                    &format!("SELECT v FROM {t} WHERE k = {key} LIMIT 1 FORMAT RowBinary"),
                )?;
                if out.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Reader::new(&out).string().map_err(bad)?.to_vec()))
            }
            Some(schema) => {
                let cols = schema.columns.iter().map(|c| text_expr(&c.name, c.ty)).collect::<Vec<_>>().join(", ");
                let out = self.c.query_bytes(
                    "reading a record",
                    &format!("SELECT {cols} FROM {t} WHERE k = {key} LIMIT 1 FORMAT RowBinary"),
                )?;
                if out.is_empty() {
                    return Ok(None);
                }
                let mut r = Reader::new(&out);
                let mut row = Vec::with_capacity(schema.columns.len());
                for c in &schema.columns {
                    let raw = r.nullable_string().map_err(&bad)?;
                    row.push(rowbinary::parse_text(c.ty, raw).map_err(|e| bad(format!("column {}: {e}", c.name)))?);
                }
                Ok(Some(schema.encode(&row).map_err(|e| bad(e.to_string()))?))
            }
        }
    }

    pub(super) fn count_rows(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        let mut n = 0;
        for (i, _) in ns.containers() {
            let t = self.table_of(ns, usize::from(i));
            n += self.c.number("counting rows", &format!("SELECT count() FROM {t}"))?;
        }
        Ok(n)
    }
}
