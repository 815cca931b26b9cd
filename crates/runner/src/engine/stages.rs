//! The stage bodies and the one measuring wrapper around them.
//!
//! A body (bulk load, per-record insert or delete, maintenance) does the stage's work and
//! reports what it sent ([`Work`]); [`Engine::measure`] reads sizes and the size probe
//! before and after it, counts the rows, reads the sample back and builds the
//! [`Measurement`]. Everything is timed here and nowhere else. Cache preparation (cold or
//! warm) runs before the wrapper. A stage the system declares unsupported is not run:
//! [`Engine::unsupported_stage`] only records where the store stands.

use super::Engine;
use super::Event;
use super::feed::{Sample, digest, native_format};
use crate::latency::Latencies;
use crate::probe::Probe;
use crate::spec::CellPlan;
use crate::{RunError, interrupted};
use dedup_lab_core::{Backend, CacheState, InternalSizes, Measurement, Namespace, Operation, Physical, Stage};
use dedup_lab_datagen::Dataset;
use std::time::{Duration, Instant};

/// What the body of a stage reports to the measuring wrapper.
#[derive(Default)]
pub(super) struct Work {
    pub(super) rows_sent: u64,
    pub(super) rows_reported: Option<u64>,
    pub(super) logical_bytes: u64,
    /// Time spent inside the backend's calls.
    pub(super) busy: Duration,
    pub(super) latencies: Option<Latencies>,
    pub(super) notes: Vec<String>,
    pub(super) sample: Sample,
    /// Native mode, a deduplicating backend: the distinct record contents sent.
    pub(super) distinct: Option<u64>,
}

/// A stage's measurement, and what the engine needs besides it to judge the stage.
pub(super) struct Measured {
    pub(super) m: Measurement,
    /// Sampled records a deduplicating variant collapsed (read back as nothing).
    pub(super) collapsed: u64,
    /// See [`Work::distinct`].
    pub(super) distinct: Option<u64>,
}

impl Engine<'_> {
    /// Cold: run the system's `cold_command` if it has one, then close and reopen the store
    /// (after a server restart the old connection is gone) and drop the OS page cache;
    /// warm: read a bounded sample first. Returns what was done, for the measurement's notes.
    pub(super) fn prepare_cache(
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
                    let secret_vars = self.spec.secret_env_names();
                    let ctx = crate::cold::ColdContext {
                        system: &cell.key.system_label(),
                        stage: stage.name(),
                        lab: self.spec.lab.as_str(),
                        data_paths: &paths,
                        secret_vars: &secret_vars,
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
    /// count, read-back; everything timed here and nowhere else. For a deduplicating
    /// variant a sampled record that reads back as nothing counts as collapsed.
    pub(super) fn measure(
        &mut self,
        cell: &CellPlan,
        stage: Stage,
        ns: &Namespace,
        b: &mut dyn Backend,
        probe: &Probe,
        body: impl FnOnce(&mut Self, &mut dyn Backend) -> Result<Work, RunError>,
    ) -> Result<Measured, RunError> {
        // A copy (a few pids or a path): the stage body borrows the engine mutably.
        let server = self.server_procs.clone();
        let meter = crate::footprint::Meter::start(server.as_ref());
        let internal_before: InternalSizes = b.sizes(ns)?;
        let method = probe.method(b, ns)?;
        let before = probe.read(b, ns)?;
        let started_at = dedup_lab_core::time::now_rfc3339();
        if self.telemetry.as_ref().is_some_and(|t| t.tracing()) {
            let reader = probe.sample_reader(b, ns, cell.key.system.name());
            if let Some(t) = self.telemetry.as_mut() {
                t.body_start(&cell.key, stage, reader);
            }
        }
        let work = body(self, b);
        if let Some(t) = self.telemetry.as_mut() {
            t.body_end();
        }
        let work = work?;
        if interrupted() {
            return Err(RunError::Interrupted);
        }
        let after = probe.read_after(b, ns, before.bytes)?;
        let internal_after = b.sizes(ns)?;
        let counted = b.count(ns)?;
        let mut notes = work.notes;
        notes.extend(before.note.into_iter().map(|n| format!("before: {n}")));
        notes.extend(after.note.into_iter().map(|n| format!("after: {n}")));
        let (before, after) = (before.bytes, after.bytes);
        notes.extend(b.take_notes());
        let deduplicates = b.deduplicates().is_some();
        let (mut matched, mut collapsed) = (0, 0);
        for (id, want) in &work.sample {
            match b.read_one(ns, id)? {
                Some(got) if digest(&got) == *want => matched += 1,
                None if deduplicates => collapsed += 1,
                _ => {}
            }
        }
        let footprint = meter.finish();
        let delta = after as i64 - before as i64;
        let (edr_replica, edr_cluster, edr_note) = if stage.is_insert() {
            Measurement::edr(work.logical_bytes, delta, cell.replicas)
        } else {
            (None, None, None)
        };
        let secs = work.busy.as_secs_f64();
        let per_sec = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        let ops = if stage == Stage::Maintenance { 1 } else { work.rows_sent };
        let m = Measurement {
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
            notes,
            valid: true,
            invalid_reasons: Vec::new(),
            unsupported: None,
            storage_sim: None,
            footprint: Some(footprint),
        };
        Ok(Measured { m, collapsed, distinct: work.distinct })
    }

    /// The line of a stage that was not run because the system does not support it: rows 0,
    /// one physical reading (before = after, delta 0: where the store stands), no EDR.
    pub(super) fn unsupported_stage(
        &mut self,
        cell: &CellPlan,
        stage: Stage,
        ns: &Namespace,
        b: &mut dyn Backend,
        probe: &Probe,
        reason: String,
    ) -> Result<Measurement, RunError> {
        let started_at = dedup_lab_core::time::now_rfc3339();
        let internal = b.sizes(ns)?;
        let method = probe.method(b, ns)?;
        let reading = probe.read(b, ns)?;
        let at = reading.bytes;
        Ok(Measurement {
            cell: cell.key.clone(),
            stage,
            started_at,
            rows_sent: 0,
            rows_reported: None,
            rows_counted: None,
            logical_bytes: 0,
            physical: Physical { method, before: at, after: at, delta: 0 },
            replicas: cell.replicas,
            edr_replica: None,
            edr_cluster: None,
            edr_note: Some("undefined: the stage is unsupported".into()),
            reclaimed_bytes: None,
            reclaimed_share: None,
            duration_ns: 0,
            mb_per_s: 0.0,
            ops_per_s: 0.0,
            latency: None,
            internal_before: internal.clone(),
            internal_after: internal,
            readback_sampled: 0,
            readback_matched: 0,
            notes: std::iter::once(format!("unsupported: {reason}")).chain(reading.note).collect(),
            valid: false,
            invalid_reasons: Vec::new(),
            unsupported: Some(reason),
            storage_sim: None,
            footprint: None,
        })
    }

    /// `bulk_insert`: every record through the system's bulk path in one call.
    pub(super) fn bulk(
        &mut self,
        cell: &CellPlan,
        ds: &Dataset,
        ns: &Namespace,
        b: &mut dyn Backend,
    ) -> Result<Work, RunError> {
        let mut src = self.records(cell, ds).count_distinct(b.deduplicates().is_some());
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
            distinct: src.distinct(),
            sample: src.sample,
        })
    }

    /// `perfile_insert` and `refill`: one operation per record, each timed.
    pub(super) fn per_record_insert(
        &mut self,
        cell: &CellPlan,
        ds: &Dataset,
        ns: &Namespace,
        b: &mut dyn Backend,
    ) -> Result<Work, RunError> {
        let mut src = self.records(cell, ds).count_distinct(b.deduplicates().is_some());
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
            if let Some(t) = &self.telemetry {
                t.timed_op(0, 0, d);
            }
            *w.rows_reported.as_mut().expect("set above") += reported;
            (self.observer)(Event::Records { n: 1 });
        }
        w.rows_sent = src.rows;
        w.logical_bytes = src.bytes;
        w.notes.extend(src.native_notes());
        w.notes.extend(ns.schema().map(|s| format!("native storage: {}", b.native_storage(s))));
        w.distinct = src.distinct();
        w.sample = src.sample;
        Ok(w)
    }

    /// `perfile_delete`: every record the insert stages wrote, one operation each, timed.
    pub(super) fn per_record_delete(
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
            if let Some(t) = &self.telemetry {
                t.timed_op(1, 0, d);
            }
            *w.rows_reported.as_mut().expect("set above") += reported;
            w.rows_sent += 1;
            (self.observer)(Event::Records { n: 1 });
        }
        Ok(w)
    }
}

/// Why `stage` has no meaningful form on `b`, when it has none. `refill` re-inserts the
/// records `perfile_delete` removed, so it is unsupported wherever that is.
pub(super) fn unsupported(b: &dyn Backend, stage: Stage) -> Option<String> {
    b.unsupported(Operation::of(stage)).or_else(|| {
        (stage == Stage::Refill).then(|| b.unsupported(Operation::DeleteOne)).flatten().map(|why| {
            format!(
                "refill re-inserts the records perfile_delete removed, and {} is unsupported: {why}",
                Operation::DeleteOne.name()
            )
        })
    })
}

/// `maintenance`: the system's space-reclaim operation, timed.
pub(super) fn maintenance(ns: &Namespace, b: &mut dyn Backend) -> Result<Work, RunError> {
    let t = Instant::now();
    let r = b.maintenance(ns)?;
    Ok(Work { busy: t.elapsed(), notes: vec![format!("maintenance: {}", r.action)], ..Default::default() })
}

/// The storage-layer dedup simulation over the backend's local data files, with `logical`
/// as the bytes the storage EDR divides; `None` for a system without local data paths.
pub(super) fn storage_sim(
    ns: &Namespace,
    b: &mut dyn Backend,
    logical: u64,
    opts: &dedup_lab_storagesim::Options,
    threads: usize,
) -> Result<Option<dedup_lab_core::StorageSim>, String> {
    let paths = b.data_paths(ns).map_err(|e| e.chain())?;
    if paths.is_empty() {
        return Ok(None);
    }
    let req = dedup_lab_storagesim::Request {
        paths: &paths,
        logical_bytes: Some(logical),
        // Like the fs probe: a relation or table file not created yet holds nothing.
        missing_ok: true,
        threads,
    };
    dedup_lab_storagesim::simulate(&req, opts).map(Some).map_err(|e| dedup_lab_core::chain(&e))
}

/// Drops the OS page cache when permitted (root on Linux); says what happened.
fn drop_page_cache() -> String {
    // Dirty pages are not dropped: the stage before already settled the store.
    match std::fs::write("/proc/sys/vm/drop_caches", "1") {
        Ok(()) => "dropped the OS page cache".into(),
        Err(e) => format!("could not drop the OS page cache ({e}); the store was only reopened"),
    }
}
