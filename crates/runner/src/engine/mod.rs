//! The engine: runs every cell of a [`RunSpec`] through its stages with one measuring
//! wrapper for all systems, journals each stage as soon as it is measured, and tears the
//! lab namespace down after every cell (also after a failure or a signal).
//!
//! This module holds the run and cell loops: opening backends, running a cell's stages in
//! order and tearing it down. The rest is split by job:
//! - [`stages`]: the stage bodies, cache preparation and the measuring wrapper;
//! - [`validity`]: the validity rules, one pure function;
//! - [`feed`]: the records a stage sends, and their ids.

mod feed;
mod stages;
mod validity;

use crate::journal::{Journal, RunDir, RunInfo};
use crate::native::NativePlan;
use crate::probe::Probe;
use crate::spec::{CellPlan, RunSpec};
use crate::telemetry::Telemetry;
use crate::{RunError, interrupted};
use dedup_lab_backends::BackendConfig;
use dedup_lab_core::{Backend, CellKey, CellStatus, JournalLine, Namespace, Placement, Stage, SystemKind};
use dedup_lab_datagen::Dataset;
use feed::{native_format, native_plan};
use stages::Measured;
use std::collections::HashMap;
use validity::{Expected, StageFacts};

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
    dedup_lab_backends::entry(kind).env_prefix
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
    /// The event stream and metrics trace, when the run has them.
    telemetry: Option<Telemetry>,
    /// The stage under way, for the event of a stage that fails.
    current_stage: Option<Stage>,
    /// The server processes of the current cell's system, when its settings name them.
    server_procs: Option<crate::footprint::ServerProcs>,
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
        Engine {
            spec,
            dir,
            info,
            journal,
            threads: threads.max(1),
            backends: HashMap::new(),
            observer,
            telemetry: None,
            current_stage: None,
            server_procs: None,
        }
    }

    /// Writes the event stream and the metrics trace through `t`.
    pub fn with_telemetry(mut self, t: Telemetry) -> Self {
        self.telemetry = Some(t);
        self
    }

    /// Shows what the telemetry's sinks had to say (failures, recoveries) as warnings.
    fn telemetry_messages(&mut self) {
        let msgs = self.telemetry.as_ref().map(Telemetry::take_messages).unwrap_or_default();
        for m in msgs {
            (self.observer)(Event::Warning(m));
        }
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
        if let Some(t) = self.telemetry.as_mut() {
            let systems: Vec<String> = self.spec.systems.iter().map(|s| s.kind.to_string()).collect();
            t.run_start(total, &systems);
        }
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
            if let Some(t) = self.telemetry.as_mut() {
                t.cell_start(&cell.key, index, total);
            }
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
            if let Some(t) = self.telemetry.as_mut() {
                t.cell_end(&cell.key, status, reason.as_deref());
            }
            (self.observer)(Event::CellEnd { key: &cell.key, status, reason: reason.as_deref() });
            self.telemetry_messages();
        }
        self.info.status = if out.interrupted { "interrupted" } else { "finished" }.into();
        if let Some(t) = self.telemetry.as_mut() {
            t.run_end(
                &self.info.status,
                serde_json::json!({
                    "cells": out.cells,
                    "ran": out.ran,
                    "already_done": out.already_done,
                    "failed": out.failed.len(),
                    "invalid": out.invalid.len(),
                    "skipped": out.skipped.len(),
                }),
            );
        }
        self.telemetry_messages();
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
        if let (Some(stage), Some(t)) = (self.current_stage.take(), self.telemetry.as_mut())
            && let Err(e) = &result
        {
            t.stage_failed(&cell.key, stage, &e.chain());
        }
        let mut teardown_error = None;
        if !self.spec.keep
            && let Err(e) = backend.teardown(&ns)
        {
            // The same cause twice in one line says nothing new (a server that is down).
            let same = result.as_ref().is_err_and(|r| r.chain() == e.chain());
            teardown_error = Some(if same {
                "teardown failed the same way".to_string()
            } else {
                format!("teardown failed: {}", e.chain())
            });
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
        let probe = Probe::new(
            self.spec.system(cell.key.system).map_or(&crate::probe::ProbeKind::Auto, |s| &s.probe),
            cell.key.system.name(),
        )?;
        // Checked when the plan was validated; a failure here (a variable changed since)
        // fails the cell like any other setting.
        self.server_procs = crate::footprint::ServerProcs::from_config(&backend_config(
            &self.spec,
            cell.key.system,
            &self.dir.lab_dir(),
        ))
        .map_err(|e| RunError::Backend(dedup_lab_core::BackendError::msg(e)))?;
        let n = cell.dataset.records;
        let native = native_format(cell).is_some();
        let fallback = match native_plan(cell) {
            Some(NativePlan::Blob(why)) => Some(why),
            _ => None,
        };
        let deduplicates = b.deduplicates();
        // The distinct records: the lower end of the row counts of a variant that
        // deduplicates (`None` for any other). Blob mode knows them from the plan; native
        // mode counts them while the insert stages stream.
        let mut distinct =
            (deduplicates.is_some() && !native).then(|| ds.plan().filter(|e| !e.is_duplicate()).count() as u64);
        let mut reasons = Vec::new();
        let mut perfile_growth: Option<i64> = None;
        // Native records sent by the first insert stage: every later one must send as many.
        let mut native_rows: Option<u64> = None;
        for stage in self.spec.stages.clone() {
            if interrupted() {
                return Err(RunError::Interrupted);
            }
            (self.observer)(Event::Stage { key: &cell.key, stage });
            self.current_stage = Some(stage);
            if let Some(t) = self.telemetry.as_mut() {
                t.stage_start(&cell.key, stage);
            }
            if let Some(why) = stages::unsupported(b, stage) {
                // Not run (no reset, no cache preparation either); neither valid nor invalid.
                let mut m = self.unsupported_stage(cell, stage, ns, b, &probe, why)?;
                m.invalid_reasons = validity::invalid_reasons(&StageFacts::of(&m, Expected::Exactly(0)));
                reasons.extend(m.invalid_reasons.iter().cloned());
                self.journal.append(&JournalLine::Stage(Box::new(m.clone())))?;
                self.current_stage = None;
                if let Some(t) = self.telemetry.as_mut() {
                    t.stage_end(&m);
                }
                continue;
            }
            if matches!(stage, Stage::BulkInsert | Stage::PerfileInsert) {
                b.reset(ns)?;
            }
            let cache_note = self.prepare_cache(cell, stage, ds, ns, b)?;
            let mut count_before = 0;
            let Measured { mut m, collapsed, distinct: streamed_distinct } = match stage {
                Stage::BulkInsert => self.measure(cell, stage, ns, b, &probe, |e, b| e.bulk(cell, ds, ns, b))?,
                Stage::PerfileInsert | Stage::Refill => {
                    self.measure(cell, stage, ns, b, &probe, |e, b| e.per_record_insert(cell, ds, ns, b))?
                }
                Stage::PerfileDelete => {
                    self.measure(cell, stage, ns, b, &probe, |e, b| e.per_record_delete(cell, ds, ns, b))?
                }
                Stage::Maintenance => {
                    count_before = b.count(ns)?;
                    self.measure(cell, stage, ns, b, &probe, |_, b| stages::maintenance(ns, b))?
                }
            };
            distinct = streamed_distinct.or(distinct);
            if stage.is_insert()
                && let Some(opts) = &self.spec.storage_sim
            {
                // After the probe's reading, outside the stage's timing: the lab's files
                // as they stand after the stage, through a simulated deduplicating volume.
                match stages::storage_sim(ns, b, m.logical_bytes, opts, self.threads) {
                    Ok(sim) => m.storage_sim = sim,
                    Err(e) => m.notes.push(format!("storage-sim: not simulated: {e}")),
                }
            }
            m.notes.extend(cache_note);
            m.notes.extend(fallback.clone());
            let expected = match stage {
                // In native mode the number of records is what parsing the files gave.
                Stage::BulkInsert | Stage::PerfileInsert | Stage::Refill => {
                    Expected::up_to(if native { m.rows_sent } else { n }, distinct)
                }
                Stage::PerfileDelete => Expected::Exactly(0),
                Stage::Maintenance => Expected::up_to(count_before, distinct),
            };
            if let Some(how) = &deduplicates {
                m.notes.push(match expected {
                    Expected::Between { low, high } => {
                        format!("deduplicating variant: {how}; {low} to {high} rows are accepted afterwards")
                    }
                    Expected::Exactly(rows) => {
                        format!("deduplicating variant: {how}; {rows} rows are expected afterwards")
                    }
                });
                if m.readback_sampled > 0 {
                    m.notes.push(format!(
                        "read-back: {collapsed} of {} sampled records were collapsed by the variant (read back nothing)",
                        m.readback_sampled
                    ));
                }
            }
            let first_native_rows = if native && stage.is_insert() {
                let first = native_rows;
                native_rows.get_or_insert(m.rows_sent);
                first
            } else {
                None
            };
            // A deduplicating variant's per-record delete finds the records it collapsed gone.
            let reported_low = (stage == Stage::PerfileDelete).then_some(distinct).flatten();
            if deduplicates.is_some()
                && let (Some(_), Some(reported)) = (reported_low, m.rows_reported)
                && reported < m.rows_sent
            {
                m.notes.push(format!(
                    "per-record delete: {} of {} deletes found their record already collapsed by the variant (0 rows)",
                    m.rows_sent - reported,
                    m.rows_sent
                ));
            }
            m.invalid_reasons = validity::invalid_reasons(&StageFacts {
                reported_low,
                readback_collapsed: collapsed,
                first_native_rows,
                ..StageFacts::of(&m, expected)
            });
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
            self.journal.append(&JournalLine::Stage(Box::new(m.clone())))?;
            self.current_stage = None;
            if let Some(t) = self.telemetry.as_mut() {
                t.stage_end(&m);
            }
        }
        Ok(reasons)
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
