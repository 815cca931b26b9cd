//! Redis, standalone or cluster, under an ACL user confined to `~dedup:*`.
//!
//! # What is stored
//! - One key per record, `dedup:<lab>:c<container>:<record key>` ([`keys`]): the record as a
//!   string (`SET`) in blob mode; in native mode one string per record for one-column
//!   records (text, JSON documents, binary chunks) or one hash per record (`HSET` of its
//!   fields) for rows ([`typed`]). No hash tag: a lab's keys spread over every master.
//! - Never sent: `SELECT`, `FLUSHDB`, `FLUSHALL`, `KEYS`, or any key outside `dedup:<lab>:`.
//!   `reset`, `teardown` and `cleanup` find the lab's keys with `SCAN MATCH dedup:<lab>:*`
//!   on every master and `UNLINK` them in pipelines.
//!
//! # Operations
//! - `bulk_insert`: pipelines of `batch_rows` / `batch_bytes` records, grouped per master in
//!   a cluster (keys of many slots in one pipeline are fine: it is not a transaction); the
//!   count reported is the number of `OK` (or, for `HSET`, integer) replies.
//! - `insert_one`: one `SET` (or `HSET`); `delete_one`: one `UNLINK` (its integer reply is the
//!   count); `read_one`: `GET` (or `HGETALL`).
//! - `count`: `SCAN MATCH dedup:<lab>:c<n>:*` on every master.
//! - `maintenance`: `MEMORY PURGE` on every master (jemalloc returns dirty pages to the OS)
//!   and, where AOF is on, `BGREWRITEAOF`. When the ACL denies `MEMORY PURGE` (checked when
//!   the backend opens) and AOF is off, maintenance is declared unsupported with the reason.
//!
//! # Physical size ([`sizes`])
//! - Memory (the default, probe `auto`/`internal`): `MEMORY STATS` `total.allocated` (=
//!   `used_memory`) minus `clients.normal` per master, summed. It counts what Redis asked
//!   its allocator for, without the buffers of client connections (they hold the tool's own
//!   pipelines: a query buffer of a whole batch stays allocated for a while after a bulk
//!   load, and would count as stored data). The allocator's own overhead
//!   (`allocator.resident − allocator.allocated`) and fragmentation are in the details, not
//!   in the total. `used_memory` covers the whole server, not just the lab; deltas are what
//!   the engine uses.
//! - Persisted bytes (probe `fs`): the RDB file of every master (`CONFIG GET dir` +
//!   `dbfilename`) after a completed `SAVE` in `settle`, when the server is on this machine.
//!   Both are in every `sizes()` reading; EDR uses the configured probe.
//! - Fairness: the first write into a fresh server allocates one-time structures (dict
//!   tables, allocator arenas). Before its first reset an opened backend writes
//!   `warmup_bytes` (8 MiB) under `dedup:<lab>:warmup:*`, deletes them and runs
//!   `MEMORY PURGE`, so the first cell's before/after readings do not carry them
//!   (`sizes().details["warmup"]` says what was done).
//!
//! # Cold cache
//! An in-memory store has no cold cache: `reopen` closes and reopens the connections and
//! says so. The `cold_command` can restart the server, which then loads its RDB file.

mod errors;
pub mod keys;
mod preflight;
pub mod resp;
pub mod router;
pub mod settings;
mod sizes;
pub mod typed;

use crate::BackendConfig;
use crate::net::batch::Batcher;
use dedup_lab_core::{
    Backend, BackendError, ErrorClass, InternalSizes, LabName, MaintenanceReport, Namespace, Operation,
    PreflightReport, Record, RecordId, RecordStream, Schema, SystemKind,
};
use resp::Reply;
use router::Router;
use settings::Settings;
use std::path::PathBuf;

/// A master and the keys found on it.
type NodeKeys = (String, Vec<Vec<u8>>);

pub struct RedisBackend {
    s: Settings,
    r: Router,
    /// The TLS configuration (fresh connections of the preflight reuse it).
    tls: Option<(std::sync::Arc<rustls::ClientConfig>, String)>,
    /// Why `MEMORY PURGE` cannot run (the ACL denies it), found when opening.
    purge_denied: Option<String>,
    /// Whether AOF is on (`CONFIG GET appendonly`); `None` when the ACL hides it.
    aof: Option<bool>,
    /// What the warm-up did; `None` before it ran.
    warmup: Option<String>,
}

impl RedisBackend {
    pub fn open(kind: SystemKind, cfg: &BackendConfig, variant: &str) -> Result<Box<dyn Backend>, BackendError> {
        if kind != SystemKind::Redis {
            return Err(BackendError::msg(format!("the Redis backend cannot serve {kind}")).classed(ErrorClass::Config));
        }
        Ok(Box::new(Self::connect(cfg, variant)?))
    }

    /// Connects and authenticates; learns the topology and what the ACL allows.
    pub fn connect(cfg: &BackendConfig, variant: &str) -> Result<RedisBackend, BackendError> {
        if variant != "default" {
            return Err(BackendError::msg(format!("redis has no variant {variant:?}; its only variant is `default`"))
                .classed(ErrorClass::Config));
        }
        let s = Settings::from_config(cfg)?;
        let tls = match s.server.tls.mode {
            crate::net::settings::SslMode::Disable => None,
            _ => Some((crate::net::tls::client_config(&s.server)?, s.server.tls_name().to_string())),
        };
        let r = Router::open(&s, tls.clone())?;
        let mut b = RedisBackend { s, r, tls, purge_denied: None, aof: None, warmup: None };
        b.learn_acl()?;
        Ok(b)
    }

    /// Tries `MEMORY PURGE` and reads `appendonly` on every master, to know what maintenance
    /// can do.
    fn learn_acl(&mut self) -> Result<(), BackendError> {
        for node in self.r.masters() {
            if let Reply::Error(msg) = self.r.raw(&node, &cmd(&["MEMORY", "PURGE"]))? {
                self.purge_denied =
                    Some(self.r.fail(&node, &cmd(&["MEMORY", "PURGE"]), &msg, "reclaim memory").to_string());
            }
            match self.r.raw(&node, &cmd(&["CONFIG", "GET", "appendonly"]))? {
                Reply::Error(_) => {}
                r => {
                    let on = r.items().get(1).and_then(Reply::text).is_some_and(|v| v == "yes");
                    self.aof = Some(self.aof.unwrap_or(false) || on);
                }
            }
        }
        Ok(())
    }

    fn r_tls(&self) -> Option<(std::sync::Arc<rustls::ClientConfig>, String)> {
        self.tls.clone()
    }

    fn sys(&self) -> &str {
        &self.r.sys
    }

    /// Every key of the lab on every master, per master.
    fn lab_keys(&mut self, lab: &LabName) -> Result<Vec<NodeKeys>, BackendError> {
        let mut out = Vec::new();
        for node in self.r.masters() {
            let keys = self.r.scan(&node, &keys::lab_pattern(lab))?;
            out.push((node, keys));
        }
        Ok(out)
    }

    /// Unlinks every key of the lab, until a SCAN finds none.
    fn drop_keys(&mut self, lab: &LabName) -> Result<(), BackendError> {
        for _ in 0..10 {
            let found: Vec<Vec<u8>> = self.lab_keys(lab)?.into_iter().flat_map(|(_, k)| k).collect();
            if found.is_empty() {
                return Ok(());
            }
            for chunk in found.chunks(self.s.batch_rows.max(100)) {
                let cmds: Vec<Vec<Vec<u8>>> = chunk.iter().map(|k| vec![b"UNLINK".to_vec(), k.clone()]).collect();
                for (c, r) in cmds.iter().zip(self.r.pipeline(&cmds, "drop the lab's keys")?) {
                    if let Reply::Error(msg) = r {
                        let node = self.r.node_for(&c[1])?;
                        return Err(self.r.fail(&node, c, &msg, "drop the lab's keys"));
                    }
                }
            }
        }
        Err(BackendError::msg(format!(
            "{}: keys of lab {lab} keep appearing while they are dropped; is another run writing?",
            self.sys()
        ))
        .classed(ErrorClass::Server))
    }

    /// Writes `warmup_bytes` under the lab's warm-up keys and deletes them again (once).
    fn warm_up(&mut self, lab: &LabName) -> Result<(), BackendError> {
        if self.warmup.is_some() {
            return Ok(());
        }
        let value_len = 64 * 1024;
        let n = self.s.warmup_bytes.div_ceil(value_len as u64);
        let value = vec![b'w'; value_len];
        let sets: Vec<Vec<Vec<u8>>> =
            (0..n).map(|i| vec![b"SET".to_vec(), keys::warmup_key(lab, i), value.clone()]).collect();
        for chunk in sets.chunks(64) {
            self.check_ok(chunk, "warm up the server")?;
        }
        let dels: Vec<Vec<Vec<u8>>> = (0..n).map(|i| vec![b"UNLINK".to_vec(), keys::warmup_key(lab, i)]).collect();
        for chunk in dels.chunks(256) {
            self.r.pipeline(chunk, "warm up the server")?;
        }
        let purged = self.purge()?;
        self.warmup = Some(format!(
            "wrote and deleted {n} keys of {value_len} B ({} B) before the first reset{}",
            n * value_len as u64,
            if purged { ", then MEMORY PURGE" } else { "" }
        ));
        Ok(())
    }

    /// `MEMORY PURGE` on every master, when allowed; whether it ran.
    fn purge(&mut self) -> Result<bool, BackendError> {
        if self.purge_denied.is_some() {
            return Ok(false);
        }
        for node in self.r.masters() {
            self.r.on(&node, &cmd(&["MEMORY", "PURGE"]), "reclaim memory")?;
        }
        Ok(true)
    }

    /// Runs write commands as pipelines; every reply must be a success. Returns how many
    /// were.
    fn check_ok(&mut self, cmds: &[Vec<Vec<u8>>], why: &str) -> Result<u64, BackendError> {
        let replies = self.r.pipeline(cmds, why)?;
        let mut ok = 0;
        for (c, r) in cmds.iter().zip(&replies) {
            ok += self.success(c, r, why)?;
        }
        Ok(ok)
    }
}

impl RedisBackend {
    /// The bulk path: batches of `batch_rows` / `batch_bytes`, each sent as one pipeline per
    /// master while the previous batch's replies are still on their way (one batch in
    /// flight), so the server never waits for the client to prepare the next batch. The
    /// count is the number of `OK` (or `HSET` integer) replies.
    fn bulk(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        const WHY: &str = "load the records";
        let mut batcher: Batcher<Vec<Vec<u8>>> =
            Batcher::new(usize::from(ns.container_count()), self.s.batch_rows, self.s.batch_bytes);
        let mut inflight: Option<(router::InFlight, Vec<Vec<Vec<u8>>>)> = None;
        let mut redirected: Vec<(Vec<Vec<u8>>, Reply)> = Vec::new();
        let mut ok = 0;
        let settle = |b: &mut RedisBackend,
                      prev: Option<(router::InFlight, Vec<Vec<Vec<u8>>>)>,
                      redirected: &mut Vec<(Vec<Vec<u8>>, Reply)>|
         -> Result<u64, BackendError> {
            let Some((sent, cmds)) = prev else { return Ok(0) };
            let replies = b.r.receive(sent)?;
            let mut n = 0;
            for (c, r) in cmds.into_iter().zip(replies) {
                if Router::is_redirect(&r) {
                    redirected.push((c, r));
                } else {
                    n += b.success(&c, &r, WHY)?;
                }
            }
            Ok(n)
        };
        let dispatch = |b: &mut RedisBackend,
                        items: Vec<Vec<Vec<u8>>>,
                        inflight: &mut Option<(router::InFlight, Vec<Vec<Vec<u8>>>)>,
                        redirected: &mut Vec<(Vec<Vec<u8>>, Reply)>|
         -> Result<u64, BackendError> {
            let sent = b.r.send(&items)?;
            let prev = inflight.replace((sent, items));
            settle(b, prev, redirected)
        };
        for r in records {
            let r = r?;
            let key = keys::record_key(ns, &r.id)?;
            let (bytes, container) = (r.data.len(), usize::from(r.id.container));
            let c = typed::write_command(ns.schema(), key, r)?;
            if let Some(batch) = batcher.push(container, c, bytes) {
                ok += dispatch(self, batch.items, &mut inflight, &mut redirected)?;
            }
        }
        for batch in batcher.finish() {
            ok += dispatch(self, batch.items, &mut inflight, &mut redirected)?;
        }
        ok += settle(self, inflight.take(), &mut redirected)?;
        // Nothing is in flight now: redirected commands are sent again one by one.
        for (c, r) in redirected {
            let r = self.r.follow(&c, r, WHY)?;
            ok += self.success(&c, &r, WHY)?;
        }
        Ok(ok)
    }

    /// 1 for a successful write reply, an error for an error reply.
    fn success(&self, c: &[Vec<u8>], r: &Reply, why: &str) -> Result<u64, BackendError> {
        match r {
            Reply::Status(s) if s == "OK" => Ok(1),
            Reply::Int(_) => Ok(1),
            Reply::Error(msg) => {
                let node = self.r.node_for(&c[1])?;
                Err(self.r.fail(&node, c, msg, why))
            }
            other => Err(BackendError::msg(format!(
                "{}: unexpected reply {other:?} to {}",
                self.sys(),
                String::from_utf8_lossy(&c[0])
            ))
            .classed(ErrorClass::Server)),
        }
    }
}

/// A command from string arguments.
fn cmd(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

impl Backend for RedisBackend {
    fn kind(&self) -> SystemKind {
        SystemKind::Redis
    }

    fn endpoint(&self) -> String {
        match &self.r.cluster {
            Some(m) => format!("{} (cluster of {} masters)", self.s.endpoint(), m.masters.len()),
            None => self.s.endpoint(),
        }
    }

    fn server_version(&mut self) -> Result<String, BackendError> {
        Ok(format!("Redis {}{}", self.r.version, if self.r.cluster.is_some() { " (cluster)" } else { "" }))
    }

    fn preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        self.run_preflight(ns)
    }

    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.warm_up(ns.lab())?;
        self.drop_keys(ns.lab())
    }

    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let r = self.bulk(ns, records);
        if r.is_err() {
            // A batch may still be in flight: its replies must never be read as another's.
            self.r.disconnect();
        }
        r
    }

    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        let key = keys::record_key(ns, &r.id)?;
        let c = typed::write_command(ns.schema(), key, r.clone())?;
        match self.r.keyed(&c, "store a record")? {
            Reply::Status(s) if s == "OK" => Ok(1),
            Reply::Int(_) => Ok(1),
            other => Err(BackendError::msg(format!("{}: unexpected reply {other:?} to a write", self.sys()))
                .classed(ErrorClass::Server)),
        }
    }

    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        let key = keys::record_key(ns, id)?;
        let r = self.r.keyed(&[b"UNLINK".to_vec(), key], "delete a record")?;
        Ok(r.int().unwrap_or(0).max(0) as u64)
    }

    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let key = keys::record_key(ns, id)?;
        match ns.schema() {
            Some(schema) if typed::is_hash(schema) => {
                let r = self.r.keyed(&[b"HGETALL".to_vec(), key], "read a record back")?;
                let it = r.items();
                if it.is_empty() {
                    return Ok(None);
                }
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = it
                    .chunks(2)
                    .filter_map(|p| match (p.first(), p.get(1)) {
                        (Some(Reply::Bulk(Some(f))), Some(Reply::Bulk(Some(v)))) => Some((f.clone(), v.clone())),
                        _ => None,
                    })
                    .collect();
                typed::decode_hash(schema, &pairs).map(Some)
            }
            schema => match self.r.keyed(&[b"GET".to_vec(), key], "read a record back")? {
                Reply::Bulk(Some(b)) => match schema {
                    Some(schema) => typed::decode_string(schema, &b).map(Some),
                    None => Ok(Some(b)),
                },
                _ => Ok(None),
            },
        }
    }

    fn maintenance(&mut self, _ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        self.reclaim()
    }

    fn settle(&mut self, _ns: &Namespace) -> Result<(), BackendError> {
        self.save_if_measured()
    }

    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        let mut n = 0;
        for node in self.r.masters() {
            for (c, _) in ns.containers() {
                n += self.r.scan(&node, &keys::container_pattern(ns.lab(), c))?.len() as u64;
            }
        }
        Ok(n)
    }

    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        self.read_sizes(ns)
    }

    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.drop_keys(ns.lab())
    }

    fn data_paths(&mut self, _ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        if self.s.rdb_probe { self.rdb_files() } else { Ok(Vec::new()) }
    }

    fn native_storage(&self, schema: &Schema) -> String {
        typed::describe(schema)
    }

    fn unsupported(&self, op: Operation) -> Option<String> {
        match (op, &self.purge_denied, self.aof) {
            (Operation::Maintenance, Some(denied), Some(false) | None) => Some(format!(
                "Redis reclaims memory with MEMORY PURGE, which the ACL denies ({denied}), and AOF is {} (no rewrite to run)",
                if self.aof.is_none() { "not readable (CONFIG GET denied)" } else { "off" }
            )),
            _ => None,
        }
    }

    fn inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let mut groups: std::collections::BTreeMap<String, (u64, std::collections::BTreeSet<String>)> =
            Default::default();
        for (node, found) in self.lab_keys(lab)? {
            for k in found {
                let g = groups.entry(keys::group_of(lab, &k)).or_default();
                g.0 += 1;
                g.1.insert(node.clone());
            }
        }
        Ok(groups
            .into_iter()
            .map(|(g, (n, nodes))| {
                format!(
                    "keys {}{g}:* ({n} keys on {})",
                    keys::lab_prefix(lab),
                    nodes.into_iter().collect::<Vec<_>>().join(", ")
                )
            })
            .collect())
    }

    fn drop_lab(&mut self, lab: &LabName) -> Result<(), BackendError> {
        self.drop_keys(lab)
    }

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.r.disconnect();
        Ok(Some(format!(
            "closed the connections to {}; an in-memory store has no cold cache (its data stays in memory): \
             configure cold_command to restart the server from its RDB file",
            self.endpoint()
        )))
    }
}
