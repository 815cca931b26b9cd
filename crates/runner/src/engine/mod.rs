//! The engine: runs every cell of a [`RunSpec`] through its stages with one measuring
//! wrapper for all systems, journals each stage as soon as it is measured, and tears the
//! lab namespace down after every cell (also after a failure or a signal).

use crate::journal::{Journal, RunDir, RunInfo};
use crate::latency::Latencies;
use crate::native::{NativeFeed, NativePlan};
use crate::probe::Probe;
use crate::spec::{CellPlan, RunSpec};
use crate::{RunError, interrupted};
use dedup_lab_backends::BackendConfig;
use dedup_lab_core::{
    Backend, BackendError, CacheState, CellKey, CellStatus, InsertionMode, InternalSizes, JournalLine, Measurement,
    Namespace, Physical, Placement, Record, RecordId, Stage, SystemKind,
};
use dedup_lab_datagen::Dataset;
use dedup_lab_datagen::native::Format;
use dedup_lab_datagen::par::TryParRecords;
use sha2_free::Sha256Hex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Progress notifications for the user interface.
#[derive(Debug)]
pub enum Event<'a> {
    CellStart { index: usize, total: usize, key: &'a CellKey },
    AlreadyDone { index: usize, total: usize, key: &'a CellKey },
    Stage { key: &'a CellKey, stage: Stage },
    Records { n: u64 },
    CellEnd { key: &'a CellKey, status: CellStatus, reason: Option<&'a str> },
    Warning(String),
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct RunOutcome {
    pub cells: usize,
    pub ran: usize,
    pub already_done: usize,
    pub invalid: Vec<(CellKey, String)>,
    pub failed: Vec<(CellKey, String)>,
    pub skipped: Vec<(CellKey, String)>,
    pub interrupted: bool,
}

/// The environment-variable prefix of a system's settings.
pub fn env_prefix(kind: SystemKind) -> &'static str {
    match kind {
        SystemKind::Sqlite => "DEDUP_SQLITE",
        SystemKind::Lsm => "DEDUP_LSM",
        SystemKind::Files => "DEDUP_FILES",
        SystemKind::Postgresql => "DEDUP_PG",
        SystemKind::Cockroachdb => "DEDUP_CRDB",
        SystemKind::Mariadb => "DEDUP_MARIADB",
        SystemKind::Clickhouse => "DEDUP_CLICKHOUSE",
        SystemKind::Redis => "DEDUP_REDIS",
        SystemKind::Kafka => "DEDUP_KAFKA",
        SystemKind::S3 => "DEDUP_MINIO",
    }
}

/// Builds the configuration a backend is opened with.
pub fn backend_config(spec: &RunSpec, kind: SystemKind, work_dir: &std::path::Path) -> BackendConfig {
    let settings = spec.system(kind).map(|s| s.settings.clone()).unwrap_or(serde_json::json!({}));
    BackendConfig::new(spec.lab.clone(), kind.name(), env_prefix(kind), settings, work_dir.to_path_buf())
}

/// A configuration for planning (no work directory is created or used).
pub fn backend_config_for(
    lab: &dedup_lab_core::LabName,
    kind: SystemKind,
    settings: &serde_json::Value,
) -> BackendConfig {
    BackendConfig::new(lab.clone(), kind.name(), env_prefix(kind), settings.clone(), std::path::PathBuf::new())
}

pub struct Engine<'a> {
    spec: RunSpec,
    dir: RunDir,
    info: RunInfo,
    journal: Journal,
    threads: usize,
    backends: HashMap<(SystemKind, String), Result<Box<dyn Backend>, String>>,
    observer: &'a mut dyn FnMut(Event),
}

/// Record ids and hashes of a stage's read-back sample.
type Sample = Vec<(RecordId, [u8; 32])>;

/// What the body of a stage reports to the measuring wrapper.
#[derive(Default)]
struct Work {
    rows_sent: u64,
    rows_reported: Option<u64>,
    logical_bytes: u64,
    /// Time spent inside the backend's calls.
    busy: Duration,
    latencies: Option<Latencies>,
    notes: Vec<String>,
    sample: Sample,
}

impl<'a> Engine<'a> {
    pub fn new(
        spec: RunSpec,
        dir: RunDir,
        info: RunInfo,
        journal: Journal,
        threads: usize,
        observer: &'a mut dyn FnMut(Event),
    ) -> Engine<'a> {
        Engine { spec, dir, info, journal, threads: threads.max(1), backends: HashMap::new(), observer }
    }

    /// Uses `backend` for `(kind, variant)` instead of opening one from the registry (for
    /// embedding the engine, and for tests that wrap a real backend).
    pub fn with_backend(mut self, kind: SystemKind, variant: &str, backend: Box<dyn Backend>) -> Self {
        self.backends.insert((kind, variant.to_string()), Ok(backend));
        self
    }

    /// Runs every cell not finished yet.
    pub fn run(mut self) -> Result<RunOutcome, RunError> {
        let cells = self.spec.cells();
        let total = cells.len();
        let mut out = RunOutcome { cells: total, ..Default::default() };
        for (index, cell) in cells.iter().enumerate() {
            if self.journal.is_finished(&cell.key) {
                out.already_done += 1;
                (self.observer)(Event::AlreadyDone { index, total, key: &cell.key });
                continue;
            }
            if interrupted() {
                out.interrupted = true;
                break;
            }
            (self.observer)(Event::CellStart { index, total, key: &cell.key });
            let (status, reason) = match cell.over_budget() {
                // Never half-written: a cell over the budget does not start at all.
                Some(why) => (CellStatus::Skipped, Some(why)),
                None => self.run_cell(cell),
            };
            if status == CellStatus::Skipped && reason.as_deref() == Some("interrupted") {
                out.interrupted = true;
                break;
            }
            out.ran += 1;
            match status {
                CellStatus::Skipped => out.skipped.push((cell.key.clone(), reason.clone().unwrap_or_default())),
                CellStatus::Failed => out.failed.push((cell.key.clone(), reason.clone().unwrap_or_default())),
                CellStatus::Invalid => out.invalid.push((cell.key.clone(), reason.clone().unwrap_or_default())),
                _ => {}
            }
            self.journal.append(&JournalLine::Cell {
                cell: cell.key.clone(),
                status,
                reason: reason.clone(),
                finished_at: dedup_lab_core::time::now_rfc3339(),
            })?;
            (self.observer)(Event::CellEnd { key: &cell.key, status, reason: reason.as_deref() });
        }
        self.info.status = if out.interrupted { "interrupted" } else { "finished" }.into();
        self.info.finished_at = Some(dedup_lab_core::time::now_rfc3339());
        self.dir.write_info(&self.info)?;
        // Embedded stores live under the run directory; drop the folder once it is empty.
        if !self.spec.keep {
            remove_empty_dirs(&self.dir.lab_dir());
        }
        Ok(out)
    }

    fn backend(&mut self, kind: SystemKind, variant: &str) -> Result<&mut Box<dyn Backend>, String> {
        let key = (kind, variant.to_string());
        if !self.backends.contains_key(&key) {
            let cfg = backend_config(&self.spec, kind, &self.dir.lab_dir());
            let opened = dedup_lab_backends::open(kind, variant, &cfg).map_err(|e| e.chain());
            self.backends.insert(key.clone(), opened);
            if let Some(Ok(b)) = self.backends.get_mut(&key) {
                match b.server_version() {
                    Ok(v) => {
                        self.info.server_versions.insert(format!("{kind}/{variant}"), v);
                        if let Err(e) = self.dir.write_info(&self.info) {
                            (self.observer)(Event::Warning(format!("could not update run.json: {}", e.chain())));
                        }
                    }
                    Err(e) => (self.observer)(Event::Warning(format!("{kind}: server version unknown: {}", e.chain()))),
                }
            }
        }
        match self.backends.get_mut(&key).expect("inserted above") {
            Ok(b) => Ok(b),
            Err(e) => Err(e.clone()),
        }
    }

    /// Runs one cell; returns its status and reason. Teardown always runs (unless `keep`).
    fn run_cell(&mut self, cell: &CellPlan) -> (CellStatus, Option<String>) {
        let mut ns = Namespace::new(&self.spec.lab, if cell.key.placement == Placement::Across { 2 } else { 1 });
        if let Some(format) = native_format(cell) {
            // Typed storage: backends that have it create typed containers in `reset`.
            ns = ns.with_schema(format.schema());
        }
        let ds = match Dataset::new(cell.dataset.clone()) {
            Ok(d) => d,
            Err(e) => return (CellStatus::Failed, Some(format!("dataset: {e}"))),
        };
        let mut backend = match self.backend(cell.key.system, &cell.key.variant) {
            // Take the backend out of the map for the duration of the cell (the borrow
            // checker cannot see that stages and the map are disjoint).
            Ok(_) => self.backends.remove(&(cell.key.system, cell.key.variant.clone())).expect("present").expect("ok"),
            Err(e) => {
                return (CellStatus::Failed, Some(format!("{} could not be opened: {e}", cell.key.system_label())));
            }
        };
        let result = self.stages(cell, &ds, &ns, backend.as_mut());
        let mut teardown_error = None;
        if !self.spec.keep
            && let Err(e) = backend.teardown(&ns)
        {
            teardown_error = Some(format!("teardown failed: {}", e.chain()));
        }
        self.backends.insert((cell.key.system, cell.key.variant.clone()), Ok(backend));
        match result {
            Err(RunError::Interrupted) => (CellStatus::Skipped, Some("interrupted".into())),
            Err(e) => {
                let mut reason = e.chain();
                if let Some(t) = teardown_error {
                    reason.push_str("; ");
                    reason.push_str(&t);
                }
                (CellStatus::Failed, Some(reason))
            }
            Ok(reasons) if reasons.is_empty() && teardown_error.is_none() => (CellStatus::Ok, None),
            Ok(mut reasons) => {
                if let Some(t) = teardown_error {
                    return (CellStatus::Failed, Some(t));
                }
                reasons.dedup();
                (CellStatus::Invalid, Some(reasons.join("; ")))
            }
        }
    }

    /// Runs the stages of a cell; returns the reasons it is invalid (empty when valid).
    fn stages(
        &mut self,
        cell: &CellPlan,
        ds: &Dataset,
        ns: &Namespace,
        b: &mut dyn Backend,
    ) -> Result<Vec<String>, RunError> {
        let probe =
            Probe::new(self.spec.system(cell.key.system).map(|s| s.probe).unwrap_or(crate::probe::ProbeKind::Auto));
        let n = cell.dataset.records;
        let native = native_format(cell).is_some();
        let fallback = match native_plan(cell) {
            Some(NativePlan::Blob(why)) => Some(why),
            _ => None,
        };
        let mut reasons = Vec::new();
        let mut perfile_growth: Option<i64> = None;
        // Native records sent by the first insert stage: every later one must send as many.
        let mut native_rows: Option<u64> = None;
        for stage in self.spec.stages.clone() {
            if interrupted() {
                return Err(RunError::Interrupted);
            }
            (self.observer)(Event::Stage { key: &cell.key, stage });
            if matches!(stage, Stage::BulkInsert | Stage::PerfileInsert) {
                b.reset(ns)?;
            }
            let cache_note = self.prepare_cache(cell, stage, ds, ns, b)?;
            let (expected_count, mut m) = match stage {
                Stage::BulkInsert => (n, self.measure(cell, stage, ns, b, &probe, |e, b| e.bulk(cell, ds, ns, b))?),
                Stage::PerfileInsert | Stage::Refill => {
                    (n, self.measure(cell, stage, ns, b, &probe, |e, b| e.per_record_insert(cell, ds, ns, b))?)
                }
                Stage::PerfileDelete => {
                    (0, self.measure(cell, stage, ns, b, &probe, |e, b| e.per_record_delete(cell, ds, ns, b))?)
                }
                Stage::Maintenance => {
                    let before = b.count(ns)?;
                    (
                        before,
                        self.measure(cell, stage, ns, b, &probe, |_, b| {
                            let t = Instant::now();
                            let r = b.maintenance(ns)?;
                            Ok(Work {
                                busy: t.elapsed(),
                                notes: vec![format!("maintenance: {}", r.action)],
                                ..Default::default()
                            })
                        })?,
                    )
                }
            };
            m.notes.extend(cache_note);
            m.notes.extend(fallback.clone());
            // In native mode the number of records is what parsing the files gave.
            let expected_count = if native && stage.is_insert() { m.rows_sent } else { expected_count };
            if native && stage.is_insert() {
                match native_rows {
                    None => native_rows = Some(m.rows_sent),
                    Some(first) if first != m.rows_sent => m.invalid_reasons.push(format!(
                        "{stage}: {} native records sent, the first insert stage sent {first}",
                        m.rows_sent
                    )),
                    Some(_) => {}
                }
            }
            // Verification: what the system reports and what is there must match what was sent.
            if stage != Stage::Maintenance {
                if m.rows_sent == 0 {
                    m.invalid_reasons.push(format!("{stage}: no rows were sent"));
                }
                if m.rows_reported != Some(m.rows_sent) {
                    m.invalid_reasons.push(format!(
                        "{stage}: system reported {} rows, {} were sent",
                        m.rows_reported.map_or("no".into(), |r| r.to_string()),
                        m.rows_sent
                    ));
                }
            }
            if m.rows_counted != Some(expected_count) {
                m.invalid_reasons.push(format!(
                    "{stage}: {} rows counted afterwards, expected {expected_count}",
                    m.rows_counted.map_or("no".into(), |r| r.to_string())
                ));
            }
            if m.readback_matched != m.readback_sampled {
                m.invalid_reasons.push(format!(
                    "{stage}: {} of {} records read back differ from what was written",
                    m.readback_sampled - m.readback_matched,
                    m.readback_sampled
                ));
            }
            match stage {
                Stage::PerfileInsert => perfile_growth = Some(m.physical.delta),
                Stage::PerfileDelete | Stage::Maintenance => {
                    let reclaimed = -m.physical.delta;
                    m.reclaimed_bytes = Some(reclaimed);
                    m.reclaimed_share = perfile_growth.filter(|g| *g > 0).map(|g| reclaimed as f64 / g as f64);
                }
                Stage::Refill => {
                    if let Some(g) = perfile_growth.filter(|g| *g > 0) {
                        m.notes.push(format!(
                            "refill grew the store by {} B, {:.3} × the first perfile_insert's {} B",
                            m.physical.delta,
                            m.physical.delta as f64 / g as f64,
                            g
                        ));
                    }
                }
                Stage::BulkInsert => {}
            }
            m.valid = m.invalid_reasons.is_empty();
            reasons.extend(m.invalid_reasons.iter().cloned());
            self.journal.append(&JournalLine::Stage(Box::new(m)))?;
        }
        Ok(reasons)
    }

    /// Cold: run the system's `cold_command` if it has one, then close and reopen the store
    /// (after a server restart the old connection is gone) and drop the OS page cache;
    /// warm: read a bounded sample first. Returns what was done, for the measurement's notes.
    fn prepare_cache(
        &mut self,
        cell: &CellPlan,
        stage: Stage,
        ds: &Dataset,
        ns: &Namespace,
        b: &mut dyn Backend,
    ) -> Result<Vec<String>, RunError> {
        let mut notes = Vec::new();
        match cell.key.cache {
            CacheState::Cold => {
                if let Some(cmd) = self.spec.system(cell.key.system).and_then(|s| s.cold_command.clone()) {
                    let paths = b.data_paths(ns).unwrap_or_default();
                    let ctx = crate::cold::ColdContext {
                        system: &cell.key.system_label(),
                        stage: stage.name(),
                        lab: self.spec.lab.as_str(),
                        data_paths: &paths,
                    };
                    notes.push(cmd.run(&ctx)?);
                }
                match b.reopen()? {
                    Some(what) => notes.push(format!("cold: {what}")),
                    None => notes.push(format!("cold: {} cannot be reopened by dedup-lab", b.kind())),
                }
                notes.push(format!("cold: {}", drop_page_cache()));
            }
            CacheState::Warm => {
                let mut read = 0;
                for id in self.ids(cell, ds).take(self.spec.readback.max(1) as usize) {
                    if b.read_one(ns, &id?)?.is_some() {
                        read += 1;
                    }
                }
                notes.push(format!("warm: read {read} records before the stage"));
            }
        }
        Ok(notes)
    }

    /// The measuring wrapper: sizes and probe before, the stage body, probe and sizes after,
    /// count, read-back; everything timed here and nowhere else.
    fn measure(
        &mut self,
        cell: &CellPlan,
        stage: Stage,
        ns: &Namespace,
        b: &mut dyn Backend,
        probe: &Probe,
        body: impl FnOnce(&mut Self, &mut dyn Backend) -> Result<Work, RunError>,
    ) -> Result<Measurement, RunError> {
        let internal_before: InternalSizes = b.sizes(ns)?;
        let method = probe.method(b, ns)?;
        let before = probe.read(b, ns)?;
        let started_at = dedup_lab_core::time::now_rfc3339();
        let work = body(self, b)?;
        if interrupted() {
            return Err(RunError::Interrupted);
        }
        let after = probe.read(b, ns)?;
        let internal_after = b.sizes(ns)?;
        let counted = b.count(ns)?;
        let mut matched = 0;
        for (id, want) in &work.sample {
            if let Some(got) = b.read_one(ns, id)?
                && Sha256Hex::digest(&got) == *want
            {
                matched += 1;
            }
        }
        let delta = after as i64 - before as i64;
        let (edr_replica, edr_cluster, edr_note) = if stage.is_insert() {
            Measurement::edr(work.logical_bytes, delta, cell.replicas)
        } else {
            (None, None, None)
        };
        let secs = work.busy.as_secs_f64();
        let per_sec = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        let ops = if stage == Stage::Maintenance { 1 } else { work.rows_sent };
        Ok(Measurement {
            cell: cell.key.clone(),
            stage,
            started_at,
            rows_sent: work.rows_sent,
            rows_reported: work.rows_reported,
            rows_counted: Some(counted),
            logical_bytes: work.logical_bytes,
            physical: Physical { method, before, after, delta },
            replicas: cell.replicas,
            edr_replica,
            edr_cluster,
            edr_note,
            reclaimed_bytes: None,
            reclaimed_share: None,
            duration_ns: work.busy.as_nanos() as u64,
            mb_per_s: per_sec(work.logical_bytes as f64 / 1e6),
            ops_per_s: per_sec(ops as f64),
            latency: work.latencies.as_ref().and_then(Latencies::summary),
            internal_before,
            internal_after,
            readback_sampled: work.sample.len() as u64,
            readback_matched: matched,
            notes: work.notes,
            valid: true,
            invalid_reasons: Vec::new(),
            unsupported: None,
        })
    }

    fn records(&self, cell: &CellPlan, ds: &Dataset) -> RecordSource {
        let feed = match native_format(cell) {
            Some(f) => Feed::Native(self.native_feed(cell, ds, f)),
            None => Feed::Blob(ds.try_par_records(self.threads)),
        };
        RecordSource::new(feed, cell, self.spec.readback)
    }

    fn native_feed(&self, cell: &CellPlan, ds: &Dataset, format: Format) -> NativeFeed {
        NativeFeed::start(ds, self.threads, format, cell.key.placement, self.spec.on_parse_error)
    }

    /// The ids of the records the insert stages write, in order: one per file (blob), or
    /// one per native record (parsing the files again; nothing is kept between stages).
    fn ids(&self, cell: &CellPlan, ds: &Dataset) -> Box<dyn Iterator<Item = Result<RecordId, BackendError>>> {
        match native_format(cell) {
            Some(f) => Box::new(self.native_feed(cell, ds, f).map(|r| r.map(|r| r.id))),
            None => {
                let cell = cell.clone();
                Box::new(ds.plan().map(move |e| Ok(record_id(&cell, e.index, e.is_duplicate()))))
            }
        }
    }

    fn bulk(&mut self, cell: &CellPlan, ds: &Dataset, ns: &Namespace, b: &mut dyn Backend) -> Result<Work, RunError> {
        let mut src = self.records(cell, ds);
        let t = Instant::now();
        let reported = b.bulk_insert(ns, &mut src);
        let busy = t.elapsed();
        if interrupted() {
            return Err(RunError::Interrupted);
        }
        let reported = reported?;
        (self.observer)(Event::Records { n: src.rows });
        let mut notes = vec![if native_format(cell).is_some() {
            "bulk duration includes streaming the records from the generator threads and the parser thread".into()
        } else {
            "bulk duration includes streaming the records from the generator threads".into()
        }];
        notes.extend(src.native_notes());
        notes.extend(ns.schema().map(|s| format!("native storage: {}", b.native_storage(s))));
        Ok(Work {
            rows_sent: src.rows,
            rows_reported: Some(reported),
            logical_bytes: src.bytes,
            busy,
            latencies: None,
            notes,
            sample: src.sample,
        })
    }

    fn per_record_insert(
        &mut self,
        cell: &CellPlan,
        ds: &Dataset,
        ns: &Namespace,
        b: &mut dyn Backend,
    ) -> Result<Work, RunError> {
        let mut src = self.records(cell, ds);
        let mut w = Work { rows_reported: Some(0), latencies: Some(Latencies::default()), ..Default::default() };
        for r in src.by_ref() {
            let r = r?;
            if interrupted() {
                return Err(RunError::Interrupted);
            }
            let t = Instant::now();
            let reported = b.insert_one(ns, &r)?;
            let d = t.elapsed();
            w.busy += d;
            w.latencies.as_mut().expect("set above").record(d);
            *w.rows_reported.as_mut().expect("set above") += reported;
            (self.observer)(Event::Records { n: 1 });
        }
        w.rows_sent = src.rows;
        w.logical_bytes = src.bytes;
        w.notes.extend(src.native_notes());
        w.notes.extend(ns.schema().map(|s| format!("native storage: {}", b.native_storage(s))));
        w.sample = src.sample;
        Ok(w)
    }

    fn per_record_delete(
        &mut self,
        cell: &CellPlan,
        ds: &Dataset,
        ns: &Namespace,
        b: &mut dyn Backend,
    ) -> Result<Work, RunError> {
        let mut w = Work { rows_reported: Some(0), latencies: Some(Latencies::default()), ..Default::default() };
        for id in self.ids(cell, ds) {
            if interrupted() {
                return Err(RunError::Interrupted);
            }
            let id = id?;
            let t = Instant::now();
            let reported = b.delete_one(ns, &id)?;
            let d = t.elapsed();
            w.busy += d;
            w.latencies.as_mut().expect("set above").record(d);
            *w.rows_reported.as_mut().expect("set above") += reported;
            w.rows_sent += 1;
            (self.observer)(Event::Records { n: 1 });
        }
        Ok(w)
    }
}

/// How a native cell stores its files; `None` in blob mode.
fn native_plan(cell: &CellPlan) -> Option<NativePlan> {
    (cell.key.mode == InsertionMode::Native).then(|| NativePlan::for_dataset(&cell.dataset))
}

/// The format the files of a native cell are parsed with; `None` in blob mode and for
/// payload types stored as blob in native mode.
fn native_format(cell: &CellPlan) -> Option<Format> {
    match native_plan(cell) {
        Some(NativePlan::Parsed(f)) => Some(f),
        _ => None,
    }
}

/// The id of record `index`: duplicates go to the second container when placement is `across`.
fn record_id(cell: &CellPlan, index: u64, duplicate: bool) -> RecordId {
    let container = u8::from(cell.key.placement == Placement::Across && duplicate);
    RecordId { key: Record::key_for(index), container }
}

enum Feed {
    /// One record per file.
    Blob(TryParRecords),
    /// The files parsed into native records.
    Native(NativeFeed),
}

/// Streams a dataset's records to a backend, counting rows and bytes and keeping the
/// hashes of an evenly spread read-back sample: every `sample_every`-th file, or in native
/// mode the first and the last record of every `sample_every`-th file.
struct RecordSource {
    feed: Feed,
    cell: CellPlan,
    rows: u64,
    bytes: u64,
    files: u64,
    sample: Sample,
    sample_every: u64,
    /// Native mode: the file of the previous record, and the sampled file's latest record
    /// after its first (its last one once the file ends).
    last_file: Option<u64>,
    pending_last: Option<(RecordId, [u8; 32])>,
}

impl RecordSource {
    fn new(feed: Feed, cell: &CellPlan, readback: u64) -> RecordSource {
        let n = cell.dataset.records;
        let sample_every = if readback == 0 { 0 } else { n.div_ceil(readback.min(n)).max(1) };
        RecordSource {
            feed,
            cell: cell.clone(),
            rows: 0,
            bytes: 0,
            files: 0,
            sample: Vec::new(),
            sample_every,
            last_file: None,
            pending_last: None,
        }
    }

    fn sampled(&self, file: u64) -> bool {
        self.sample_every > 0 && file.is_multiple_of(self.sample_every)
    }

    /// What native mode did, for the measurement's notes (nothing in blob mode).
    fn native_notes(&self) -> Vec<String> {
        let Feed::Native(feed) = &self.feed else { return Vec::new() };
        let mut notes = Vec::new();
        if let Some(f) = native_format(&self.cell) {
            let schema = f.schema();
            let cols: Vec<String> = schema.columns.iter().map(|c| format!("{} {}", c.name, c.ty.name())).collect();
            notes.push(format!(
                "native: {} records from {} files ({}; schema {}: {}); logical bytes are the records' canonical \
                 encodings as sent",
                self.rows,
                self.files,
                f.describe(),
                schema.name,
                cols.join(", ")
            ));
        }
        notes.extend(feed.skipped_note());
        notes
    }
}

impl Iterator for RecordSource {
    type Item = Result<Record, BackendError>;
    fn next(&mut self) -> Option<Self::Item> {
        if interrupted() {
            return Some(Err(BackendError::msg("interrupted by a signal")));
        }
        let record = match &mut self.feed {
            Feed::Blob(par) => {
                let h = match par.next()? {
                    Ok(h) => h,
                    // A real-world source that cannot be read fails this cell's stage, nothing else.
                    Err(e) => {
                        let ds = &self.cell.dataset;
                        return Some(Err(BackendError::msg(format!(
                            "dataset {}/{}: {e}",
                            ds.payload_name(),
                            ds.grade
                        ))));
                    }
                };
                let r = h.record;
                let id = record_id(&self.cell, r.index, r.is_duplicate());
                if self.sampled(r.index) {
                    self.sample.push((id.clone(), h.sha256));
                }
                self.files += 1;
                Record::blob(id, r.index, r.data)
            }
            Feed::Native(feed) => {
                let Some(item) = feed.next() else {
                    self.sample.extend(self.pending_last.take());
                    return None;
                };
                let r = match item {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                };
                let first_of_file = self.last_file != Some(r.index);
                if first_of_file {
                    self.sample.extend(self.pending_last.take());
                    self.last_file = Some(r.index);
                    self.files += 1;
                }
                if self.sampled(r.index) {
                    let entry = (r.id.clone(), Sha256Hex::digest(&r.data));
                    if first_of_file {
                        self.sample.push(entry);
                    } else {
                        self.pending_last = Some(entry);
                    }
                }
                r
            }
        };
        self.rows += 1;
        self.bytes += record.data.len() as u64;
        Some(Ok(record))
    }
}

/// Drops the OS page cache when permitted (root on Linux); says what happened.
fn drop_page_cache() -> String {
    // Dirty pages are not dropped: the stage before already settled the store.
    match std::fs::write("/proc/sys/vm/drop_caches", "1") {
        Ok(()) => "dropped the OS page cache".into(),
        Err(e) => format!("could not drop the OS page cache ({e}); the store was only reopened"),
    }
}

fn remove_empty_dirs(dir: &std::path::Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir); // only succeeds when empty
}

mod sha2_free {
    //! SHA-256 for read-back checks, through the datagen crate's hashing.
    pub struct Sha256Hex;
    impl Sha256Hex {
        pub fn digest(data: &[u8]) -> [u8; 32] {
            dedup_lab_datagen::sha256(data)
        }
    }
}
