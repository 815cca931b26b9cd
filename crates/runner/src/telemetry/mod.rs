//! Operations telemetry of a run, for the people watching it: the event stream
//! (`events.jsonl`: run, system, cell and stage start and end, with failure and skip
//! reasons) and the metrics trace (`trace.jsonl`: a sample of the running stage every
//! `interval`), both in the run directory and optionally forwarded to Kafka topics.
//!
//! Telemetry observes, it never measures: the measured figures are the journal's. The
//! sampler runs on a thread of its own and reads counters the stage loops bump (two
//! relaxed atomic adds per record, one uncontended lock per timed operation), so tracing
//! does not slow a stage beyond noise (see BENCH.md). A failing Kafka topic never holds up
//! or fails the run (see [`sink`]).

pub mod push;
pub mod sink;

use crate::latency::Latencies;
use crate::probe::SampleReader;
use dedup_lab_core::{CellKey, CellStatus, LatencySummary, Measurement, Stage};
use serde_json::{Value, json};
use sink::{Messages, Output, TopicSink};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The trace and event files in a run directory.
pub const TRACE_FILE: &str = "trace.jsonl";
pub const EVENTS_FILE: &str = "events.jsonl";
/// Default Kafka topics.
pub const METRICS_TOPIC: &str = "dedup-lab-metrics";
pub const EVENTS_TOPIC: &str = "dedup-lab-events";
/// How long the end of a run waits for the Kafka threads to send what is queued.
const FINISH_BOUND: Duration = Duration::from_secs(10);

/// Validated telemetry settings (`[trace]`).
pub struct TelemetryOptions {
    /// Sampling interval of the metrics trace; `None`: no trace (events are still written).
    pub interval: Option<Duration>,
    /// How often a sample also reads the physical size (the probe's [`SampleReader`]).
    pub probe_interval: Duration,
    /// Kafka topics for the trace and the events (`[trace.kafka]`).
    pub kafka: Option<KafkaTopics>,
    /// Where each stage's figures are pushed (`[pushgateway]`; lines of [`push::stage_line`]).
    pub push: Option<Box<dyn TopicSink>>,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        TelemetryOptions {
            interval: Some(Duration::from_millis(100)),
            probe_interval: Duration::from_secs(1),
            kafka: None,
            push: None,
        }
    }
}

/// The two remote topics (validated settings; they connect on first send).
pub struct KafkaTopics {
    pub metrics: Box<dyn TopicSink>,
    pub events: Box<dyn TopicSink>,
}

/// What a stage has done so far, bumped by the stage loops and read by the sampler.
#[derive(Default)]
pub struct Progress {
    ops: AtomicU64,
    bytes: AtomicU64,
    /// Latencies of the timed operations since the last sample.
    window: Mutex<Option<Latencies>>,
}

impl Progress {
    pub fn add(&self, ops: u64, bytes: u64) {
        self.ops.fetch_add(ops, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn latency(&self, d: Duration) {
        if let Ok(mut w) = self.window.lock() {
            w.get_or_insert_with(Latencies::default).record(d);
        }
    }

    fn reset(&self) {
        self.ops.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        if let Ok(mut w) = self.window.lock() {
            *w = None;
        }
    }

    fn take_window(&self) -> Option<LatencySummary> {
        self.window.lock().ok().and_then(|mut w| w.take()).and_then(|l| l.summary())
    }
}

/// The process's resident set (bytes) and CPU time used so far (user + system).
fn process_stats() -> (Option<u64>, Duration) {
    // statm's second field: resident pages.
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        // SAFETY: sysconf has no preconditions.
        .map(|pages| pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64);
    let (user, sys) = crate::footprint::own_cpu();
    let cpu = user + sys;
    (rss, cpu)
}

/// The sampler of one running stage.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// What the sampler of a stage needs.
struct SampleContext {
    run: String,
    cell: String,
    system: String,
    stage: String,
    interval: Duration,
    probe_interval: Duration,
    reader: Option<SampleReader>,
}

fn sample_loop(mut ctx: SampleContext, progress: Arc<Progress>, out: Arc<Mutex<Output>>, stop: Arc<AtomicBool>) {
    let start = Instant::now();
    let (mut last_t, mut last_ops, mut last_bytes) = (start, 0u64, 0u64);
    let (_, mut last_cpu) = process_stats();
    let mut last_probe: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if !stopping {
            let wait = ctx.interval.saturating_sub(last_t.elapsed());
            if !wait.is_zero() {
                // Woken early by `stop_sampler` (or spuriously): look again.
                std::thread::park_timeout(wait);
                continue;
            }
        }
        let now = Instant::now();
        let (ops, bytes) = (progress.ops.load(Ordering::Relaxed), progress.bytes.load(Ordering::Relaxed));
        let dt = now.duration_since(last_t).as_secs_f64().max(1e-9);
        let (rss, cpu) = process_stats();
        let lat = progress.take_window();
        let us = |ns: u64| ns as f64 / 1e3;
        let mut v = json!({
            "ts": dedup_lab_core::time::now_rfc3339(),
            "t_ms": start.elapsed().as_secs_f64() * 1e3,
            "run": ctx.run,
            "system": ctx.system,
            "cell": ctx.cell,
            "stage": ctx.stage,
            "ops": ops,
            "bytes": bytes,
            "ops_per_s": (ops - last_ops) as f64 / dt,
            "mb_per_s": (bytes - last_bytes) as f64 / 1e6 / dt,
            "latency_ops": lat.as_ref().map(|l| l.count),
            "latency_p50_us": lat.as_ref().map(|l| us(l.p50_ns)),
            "latency_p95_us": lat.as_ref().map(|l| us(l.p95_ns)),
            "latency_p99_us": lat.as_ref().map(|l| us(l.p99_ns)),
            "rss_bytes": rss,
            "cpu_percent": (cpu.saturating_sub(last_cpu)).as_secs_f64() / dt * 100.0,
            "final": stopping,
        });
        let probe_due = last_probe.is_none_or(|p| now.duration_since(p) >= ctx.probe_interval) || stopping;
        if let Some(read) = ctx.reader.as_mut().filter(|_| probe_due) {
            last_probe = Some(now);
            v["phys_bytes"] = json!(read());
        }
        if let Ok(mut o) = out.lock() {
            o.write(&v);
        }
        (last_t, last_ops, last_bytes, last_cpu) = (now, ops, bytes, cpu);
        if stopping {
            return;
        }
    }
}

/// The telemetry of one run.
pub struct Telemetry {
    run: String,
    interval: Option<Duration>,
    probe_interval: Duration,
    events: Output,
    trace: Option<Arc<Mutex<Output>>>,
    push: Option<sink::Forwarder>,
    messages: Messages,
    progress: Arc<Progress>,
    sampler: Option<Sampler>,
    system: Option<String>,
}

fn cell_fields(key: &CellKey) -> Value {
    json!({
        "system": key.system.to_string(),
        "variant": key.variant,
        "cell": key.to_string(),
        "payload": key.payload,
        "grade": key.grade.to_string(),
        "mode": key.mode,
        "repetition": key.run,
    })
}

impl Telemetry {
    /// Opens the files in `run_dir` (appending: a resumed run continues them).
    pub fn open(run_dir: &Path, run_id: &str, opts: TelemetryOptions) -> std::io::Result<Telemetry> {
        let messages: Messages = Arc::default();
        let (metrics, events) = match opts.kafka {
            Some(k) => (Some(k.metrics), Some(k.events)),
            None => (None, None),
        };
        let events = Output::open(&run_dir.join(EVENTS_FILE), events, messages.clone())?;
        let trace = match opts.interval {
            Some(_) => Some(Arc::new(Mutex::new(Output::open(&run_dir.join(TRACE_FILE), metrics, messages.clone())?))),
            None => None,
        };
        let push = opts.push.map(|p| sink::Forwarder::start(p, messages.clone()));
        Ok(Telemetry {
            push,
            run: run_id.to_string(),
            interval: opts.interval,
            probe_interval: opts.probe_interval,
            events,
            trace,
            messages,
            progress: Arc::default(),
            sampler: None,
            system: None,
        })
    }

    /// The counters the stage loops bump (a handle for the record feed).
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// One timed operation of a per-record stage: its latency, and `ops`/`bytes` done when
    /// the record feed does not count them (deletes).
    pub fn timed_op(&self, ops: u64, bytes: u64, d: Duration) {
        if ops > 0 || bytes > 0 {
            self.progress.add(ops, bytes);
        }
        self.progress.latency(d);
    }

    fn event(&mut self, kind: &str, mut fields: Value) {
        let mut v = json!({ "ts": dedup_lab_core::time::now_rfc3339(), "run": self.run, "event": kind });
        if let (Some(o), Some(f)) = (v.as_object_mut(), fields.as_object_mut()) {
            o.append(f);
        }
        self.events.write(&v);
    }

    pub fn run_start(&mut self, cells: usize, systems: &[String]) {
        self.event("run_start", json!({ "cells": cells, "systems": systems }));
    }

    /// Before a cell: a `system_end`/`system_start` pair when the system changes.
    pub fn cell_start(&mut self, key: &CellKey, index: usize, total: usize) {
        let system = key.system.to_string();
        if self.system.as_deref() != Some(system.as_str()) {
            if let Some(prev) = self.system.take() {
                self.event("system_end", json!({ "system": prev }));
            }
            self.event("system_start", json!({ "system": system }));
            self.system = Some(system);
        }
        let mut f = cell_fields(key);
        f["index"] = json!(index + 1);
        f["of"] = json!(total);
        self.event("cell_start", f);
    }

    pub fn cell_end(&mut self, key: &CellKey, status: CellStatus, reason: Option<&str>) {
        let mut f = cell_fields(key);
        f["status"] = json!(status);
        f["reason"] = json!(reason);
        self.event("cell_end", f);
    }

    /// A stage begins (before its reset and cache preparation).
    pub fn stage_start(&mut self, key: &CellKey, stage: Stage) {
        let mut f = cell_fields(key);
        f["stage"] = json!(stage);
        self.event("stage_start", f);
    }

    /// Whether samples are taken (the caller then makes the probe's sample reader).
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// The stage's body begins: the sampler starts, with the probe's sample reader, if any.
    pub fn body_start(&mut self, key: &CellKey, stage: Stage, reader: Option<SampleReader>) {
        self.stop_sampler();
        self.progress.reset();
        if let (Some(interval), Some(out)) = (self.interval, self.trace.clone()) {
            let ctx = SampleContext {
                run: self.run.clone(),
                cell: key.to_string(),
                system: key.system.to_string(),
                stage: stage.to_string(),
                interval,
                probe_interval: self.probe_interval,
                reader,
            };
            let stop = Arc::new(AtomicBool::new(false));
            let (p, s) = (self.progress.clone(), stop.clone());
            let thread = std::thread::Builder::new()
                .name("dedup-lab-trace".into())
                .spawn(move || sample_loop(ctx, p, out, s))
                .expect("the trace thread starts");
            self.sampler = Some(Sampler { stop, thread });
        }
    }

    /// The stage body ended (well or not): the sampler writes its last sample and stops.
    pub fn body_end(&mut self) {
        self.stop_sampler();
    }

    fn stop_sampler(&mut self) {
        if let Some(s) = self.sampler.take() {
            s.stop.store(true, Ordering::Relaxed);
            s.thread.thread().unpark();
            let _ = s.thread.join();
        }
    }

    /// A stage was measured (or not run because the system does not support it).
    pub fn stage_end(&mut self, m: &Measurement) {
        self.stop_sampler();
        let mut f = cell_fields(&m.cell);
        f["stage"] = json!(m.stage);
        f["status"] = json!(match (&m.unsupported, m.valid) {
            (Some(_), _) => "unsupported",
            (None, true) => "ok",
            (None, false) => "invalid",
        });
        f["reason"] = json!(
            m.unsupported.clone().or_else(|| { (!m.invalid_reasons.is_empty()).then(|| m.invalid_reasons.join("; ")) })
        );
        f["duration_ms"] = json!(m.duration_ns as f64 / 1e6);
        f["rows"] = json!(m.rows_sent);
        f["mb_per_s"] = json!(m.mb_per_s);
        f["phys_delta_bytes"] = json!(m.physical.delta);
        f["edr"] = json!(m.edr_replica);
        self.event("stage_end", f);
        if let (Some(p), Some(line)) = (&self.push, push::stage_line(&self.run, m)) {
            p.push(&serde_json::to_vec(&line).expect("push lines serialise"));
        }
    }

    /// A stage failed with an error (the cell fails).
    pub fn stage_failed(&mut self, key: &CellKey, stage: Stage, reason: &str) {
        self.stop_sampler();
        let mut f = cell_fields(key);
        f["stage"] = json!(stage);
        f["status"] = json!("failed");
        f["reason"] = json!(reason);
        self.event("stage_end", f);
    }

    /// The end of the run: the last `system_end`, `run_end`, and the Kafka threads are
    /// given [`FINISH_BOUND`] to send what is queued.
    pub fn run_end(&mut self, status: &str, counts: Value) {
        self.stop_sampler();
        if let Some(prev) = self.system.take() {
            self.event("system_end", json!({ "system": prev }));
        }
        let mut f = json!({ "status": status });
        if let (Some(o), Some(c)) = (f.as_object_mut(), counts.as_object()) {
            o.extend(c.clone());
        }
        self.event("run_end", f);
        self.events.finish(FINISH_BOUND);
        if let Some(p) = self.push.as_mut() {
            p.finish(FINISH_BOUND, &self.messages);
        }
        if let Some(t) = &self.trace
            && let Ok(mut t) = t.lock()
        {
            t.finish(FINISH_BOUND);
        }
    }

    /// Messages for the user since the last call (sink failures and recoveries).
    pub fn take_messages(&self) -> Vec<String> {
        self.messages.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop_sampler();
    }
}
