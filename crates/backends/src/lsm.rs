//! Embedded LSM tree (fjall) with LZ4 compression on every level: one database directory
//! per lab namespace, one keyspace per container.
//!
//! Bulk path: write batches of up to `batch_bytes` (16 MiB). Maintenance: major compaction
//! of every keyspace. Settle: flush memtables to tables and fsync the journal. Internal
//! sizes: fjall's own disk-space figures.
//!
//! Memory is what fjall keeps plus one write batch: `memtable_size` per keyspace (sealed
//! memtables wait for their flush too) and the block `cache_size`. fjall ships with 64 MiB
//! and 32 MiB, and with those a 2 GiB bulk + per-record run peaked at 228 MiB RSS
//! (`scripts/bench.sh rss`), above the tool's 128 MiB bound; the defaults here are 8 MiB
//! each, which keep the whole process inside it. `memtable_size = "64MiB"` and `cache_size =
//! "32MiB"` measure fjall as shipped. Either way the values are recorded with the run's
//! settings.

use crate::BackendConfig;
use dedup_lab_core::{
    Backend, BackendError, InternalSizes, MaintenanceReport, Namespace, Record, RecordId, RecordStream, ResultExt,
    SystemKind,
};
use fjall::config::CompressionPolicy;
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::PathBuf;

/// The tool's own write batch: large enough that a commit costs little per record, small
/// enough not to add much to fjall's memory.
const DEFAULT_BATCH_BYTES: u64 = 16 << 20;

/// fjall's memtable limit per keyspace and its block cache, lowered from fjall's 64 MiB and
/// 32 MiB so that the whole process stays within 128 MiB (module docs).
const DEFAULT_MEMTABLE_SIZE: u64 = 8 << 20;
const DEFAULT_CACHE_SIZE: u64 = 8 << 20;

/// Memtables (active + sealed, waiting for their flush) the writes may run ahead by, in
/// memtables: fjall 3.1 stalls no writer on memory, so a fast writer piles up sealed
/// memtables faster than two cores flush them (548 MiB RSS with 8 MiB memtables in a 2 GiB
/// bulk load). Waiting here, as RocksDB's write stall would, bounds the process; the wait
/// is part of the stage's time, like any store's own stall.
const WRITE_BUFFER_MEMTABLES: u64 = 4;

/// Waits until fjall's memtables (active and sealed) hold at most `budget` bytes, polling
/// every millisecond, for at most a minute (then the write goes on: a stalled flush is
/// fjall's to report, not a reason to hang the run).
fn stall_while_flushing(db: &Database, budget: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // `write_buffer_size` is fjall's (hidden, experimental) sum of the memtables' sizes;
    // the version is pinned in Cargo.lock.
    while db.write_buffer_size() > budget && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

pub struct LsmBackend {
    dir: PathBuf,
    open: Option<(PathBuf, Database, Vec<Keyspace>)>,
    batch_bytes: usize,
    /// fjall's per-keyspace memtable limit.
    memtable_size: u64,
    /// fjall's block cache.
    cache_size: u64,
}

impl LsmBackend {
    pub fn open(cfg: &BackendConfig, variant: &str) -> Result<LsmBackend, BackendError> {
        if variant != "default" {
            return Err(BackendError::msg(format!("lsm has no variant {variant:?}; use `default`")));
        }
        let at_least = |key: &str, min: u64| -> Result<Option<u64>, BackendError> {
            match cfg.bytes(key)? {
                Some(v) if v < min => Err(BackendError::msg(format!(
                    "lsm: setting `{key}` is {v} B; use at least {}",
                    dedup_lab_core::format_bytes(min)
                ))),
                v => Ok(v),
            }
        };
        Ok(LsmBackend {
            dir: crate::config::store_dir(cfg, "lsm"),
            open: None,
            batch_bytes: at_least("batch_bytes", 1)?.unwrap_or(DEFAULT_BATCH_BYTES) as usize,
            memtable_size: at_least("memtable_size", 1 << 20)?.unwrap_or(DEFAULT_MEMTABLE_SIZE),
            cache_size: at_least("cache_size", 1 << 20)?.unwrap_or(DEFAULT_CACHE_SIZE),
        })
    }

    fn db_dir(&self, ns: &Namespace) -> PathBuf {
        self.dir.join(ns.lab().as_str())
    }

    fn db(&mut self, ns: &Namespace) -> Result<(&Database, &[Keyspace]), BackendError> {
        let dir = self.db_dir(ns);
        if self.open.as_ref().map(|o| &o.0) != Some(&dir) {
            self.open = None;
            let builder = Database::builder(&dir).cache_size(self.cache_size);
            let db = builder.open().ctx(|| format!("lsm: opening {}", dir.display()))?;
            let memtable = self.memtable_size;
            let mut keyspaces = Vec::new();
            for (_, c) in ns.containers() {
                let ks = db
                    .keyspace(&c, || {
                        KeyspaceCreateOptions::default()
                            .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
                            .max_memtable_size(memtable)
                    })
                    .ctx(|| format!("lsm: opening keyspace {c}"))?;
                keyspaces.push(ks);
            }
            self.open = Some((dir, db, keyspaces));
        }
        let (_, db, ks) = self.open.as_ref().expect("opened above");
        Ok((db, ks))
    }

    fn remove(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.open = None;
        let dir = self.db_dir(ns);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::with_source(format!("lsm: removing {}", dir.display()), e)),
        }
    }
}

impl Backend for LsmBackend {
    fn kind(&self) -> SystemKind {
        SystemKind::Lsm
    }

    fn endpoint(&self) -> String {
        self.dir.display().to_string()
    }

    fn server_version(&mut self) -> Result<String, BackendError> {
        Ok("fjall 3 (LZ4)".into())
    }

    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.remove(ns)?;
        std::fs::create_dir_all(&self.dir).ctx(|| format!("lsm: creating {}", self.dir.display()))?;
        self.db(ns).map(|_| ())
    }

    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let limit = self.batch_bytes;
        let budget = self.memtable_size * WRITE_BUFFER_MEMTABLES;
        let (db, ks) = self.db(ns)?;
        let mut batch = db.batch();
        let (mut pending, mut rows) = (0usize, 0u64);
        let mut in_batch = 0u64;
        for r in records {
            let r = r?;
            pending += r.data.len();
            batch.insert(&ks[ns.container_of(&r.id)?], r.id.key.as_bytes(), r.data);
            in_batch += 1;
            if pending >= limit {
                batch.commit().ctx(|| "lsm: committing a write batch".into())?;
                stall_while_flushing(db, budget);
                rows += in_batch;
                (pending, in_batch) = (0, 0);
                batch = db.batch();
            }
        }
        batch.commit().ctx(|| "lsm: committing a write batch".into())?;
        Ok(rows + in_batch)
    }

    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        let budget = self.memtable_size * WRITE_BUFFER_MEMTABLES;
        let (db, ks) = self.db(ns)?;
        ks[ns.container_of(&r.id)?]
            .insert(r.id.key.as_bytes(), r.data.as_slice())
            .ctx(|| format!("lsm: insert {}", r.id.key))?;
        stall_while_flushing(db, budget);
        Ok(1)
    }

    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        let (_, ks) = self.db(ns)?;
        let k = &ks[ns.container_of(id)?];
        // An LSM delete writes a tombstone whether or not the key exists; check first so the
        // reported count means "a record was deleted".
        let existed = k.contains_key(id.key.as_bytes()).ctx(|| format!("lsm: lookup {}", id.key))?;
        k.remove(id.key.as_bytes()).ctx(|| format!("lsm: delete {}", id.key))?;
        Ok(u64::from(existed))
    }

    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let (_, ks) = self.db(ns)?;
        Ok(ks[ns.container_of(id)?].get(id.key.as_bytes()).ctx(|| format!("lsm: read {}", id.key))?.map(|v| v.to_vec()))
    }

    fn maintenance(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        let (_, ks) = self.db(ns)?;
        for k in ks {
            k.rotate_memtable_and_wait().ctx(|| "lsm: flushing memtable".into())?;
            k.major_compact().ctx(|| "lsm: major compaction".into())?;
        }
        Ok(MaintenanceReport { action: "flush + major compaction of every keyspace".into() })
    }

    fn settle(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        let (db, ks) = self.db(ns)?;
        for k in ks {
            k.rotate_memtable_and_wait().ctx(|| "lsm: flushing memtable".into())?;
        }
        db.persist(PersistMode::SyncAll).ctx(|| "lsm: persisting journal".into())?;
        // fjall deletes obsolete tables and fully flushed journals when their last handle
        // goes away; closing and reopening makes that happen now, so the reading is the
        // store's steady state rather than a moment of background cleanup.
        self.open = None;
        self.db(ns).map(|_| ())
    }

    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        let (_, ks) = self.db(ns)?;
        let mut n = 0u64;
        for k in ks {
            n += k.len().ctx(|| "lsm: counting".into())? as u64;
        }
        Ok(n)
    }

    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let (db, ks) = self.db(ns)?;
        let total = db.disk_space().ctx(|| "lsm: disk space".into())?;
        let mut s = InternalSizes { total_bytes: Some(total), ..Default::default() };
        s.details.insert("journal_bytes".into(), db.journal_disk_space().ctx(|| "lsm: journal size".into())?.into());
        for (i, k) in ks.iter().enumerate() {
            s.details.insert(format!("c{i}_bytes"), k.disk_space().into());
            s.details.insert(format!("c{i}_tables"), (k.table_count() as u64).into());
        }
        Ok(s)
    }

    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.remove(ns)
    }

    /// The tables only: the journal (WAL) holds a transient second copy until it rotates,
    /// and like every system's WAL it is outside the fs probe's scope (it is in `sizes`).
    fn data_paths(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        Ok(vec![self.db_dir(ns).join("keyspaces")])
    }

    /// The whole database directory of the lab (tables, journal, metadata).
    fn inventory(&mut self, lab: &dedup_lab_core::LabName) -> Result<Vec<String>, BackendError> {
        let dir = self.db_dir(&Namespace::new(lab, 1));
        Ok(if dir.exists() { vec![format!("directory {}", dir.display())] } else { Vec::new() })
    }

    fn native_storage(&self, _schema: &dedup_lab_core::Schema) -> String {
        "one key per record, its canonical encoding as the value".into()
    }

    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.open = None;
        Ok(Some("closed the fjall database; it reopens (and recovers) on the next call".into()))
    }
}
