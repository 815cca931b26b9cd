//! The compatibility CSV `experiment_results.csv`: the original harness's 25 columns, in
//! its order, one row per stage execution (not aggregated), so analysis scripts and thesis
//! tables written for the original keep reading it. Units and meanings, and where they
//! differ from the original, are in the README (section "experiment_results.csv").
//!
//! - A finished stage: its figures; `error` holds its invalid reasons (empty when valid).
//! - A stage the system does not support (not run): a row with `error` =
//!   `unsupported: <reason>` and every figure empty.
//! - A failed cell: its finished stages as usual, plus one row for the stage that failed
//!   (it has no line of its own) with `error` = the error and every figure empty.
//! - Undefined values (EDR of a stage whose physical size did not grow, latency of a stage
//!   without per-record operations, a total the system does not report) are empty, never
//!   `-1` or `0`.

use super::csv::{field, num};
use super::{Artifact, Exporter, Format};
use crate::model::{Executed, Execution, Report};
use dedup_lab_core::{CellKey, Measurement, Stage};

pub struct Compat;

/// The file name the original harness wrote.
pub const FILE: &str = "experiment_results.csv";

/// The original harness's columns, in its order.
pub const HEADER: [&str; 25] = [
    "system",
    "payload_type",
    "dup_grade",
    "insertion_mode",
    "stage",
    "duration_ms",
    "rows_affected",
    "bytes_logical",
    "logical_size_before",
    "logical_size_after",
    "phys_size_before",
    "phys_size_after",
    "phys_delta",
    "edr",
    "throughput_mbps",
    "latency_p50_us",
    "latency_p95_us",
    "latency_p99_us",
    "latency_min_us",
    "latency_max_us",
    "latency_mean_us",
    "replica_count",
    "volume_name",
    "timestamp",
    "error",
];

/// The original's `insertion_mode` of a stage: how the records the stage acts on were
/// written. `bulk` for `bulk_insert`; `perfile` for the per-record stages and for
/// `maintenance`, which reclaims what `perfile_delete` freed.
pub fn insertion_mode(stage: Stage) -> &'static str {
    match stage {
        Stage::BulkInsert => "bulk",
        Stage::PerfileInsert | Stage::PerfileDelete | Stage::Maintenance | Stage::Refill => "perfile",
    }
}

/// The `system` column: the system and variant (`postgresql/external`), followed by what
/// the original never varied, so rows of different setups never look alike:
/// ` [placement/cache/mode]` when a cell axis is not the default `within/warm/blob`, and
/// the dataset label when the report merges runs on different datasets (`--allow-mixed`).
fn system(report: &Report, cell: &CellKey, dataset: &str) -> String {
    let mut extra = Vec::new();
    let axes = format!("{}/{}/{}", cell.placement, cell.cache, cell.mode);
    if axes != "within/warm/blob" {
        extra.push(axes);
    }
    if report.mixed_datasets {
        extra.push(dataset.to_string());
    }
    let label = cell.system_label();
    if extra.is_empty() { label } else { format!("{label} [{}]", extra.join("; ")) }
}

/// Nanoseconds as microseconds (exact: at most three decimals).
fn us(ns: u64) -> String {
    num(Some(ns as f64 / 1e3))
}

/// The figures of a stage that ran, from `duration_ms` to `latency_mean_us` (16 fields).
fn figures(m: &Measurement) -> Vec<String> {
    let lat = m.latency.as_ref();
    vec![
        num(Some(m.duration_ns as f64 / 1e6)),
        m.rows_reported.unwrap_or(m.rows_sent).to_string(),
        m.logical_bytes.to_string(),
        m.internal_before.total_bytes.map(|b| b.to_string()).unwrap_or_default(),
        m.internal_after.total_bytes.map(|b| b.to_string()).unwrap_or_default(),
        m.physical.before.to_string(),
        m.physical.after.to_string(),
        m.physical.delta.to_string(),
        num(m.edr_replica),
        num(Some(m.mb_per_s)),
        lat.map(|l| us(l.p50_ns)).unwrap_or_default(),
        lat.map(|l| us(l.p95_ns)).unwrap_or_default(),
        lat.map(|l| us(l.p99_ns)).unwrap_or_default(),
        lat.map(|l| us(l.min_ns)).unwrap_or_default(),
        lat.map(|l| us(l.max_ns)).unwrap_or_default(),
        // The mean to the nanosecond, like the other latency figures.
        lat.map(|l| num(Some(l.mean_ns.round() / 1e3))).unwrap_or_default(),
    ]
}

/// The `error` of a journaled stage: `unsupported: <reason>`, or its invalid reasons.
fn stage_error(m: &Measurement) -> String {
    let mut parts: Vec<String> = m.unsupported.iter().map(|why| format!("unsupported: {why}")).collect();
    parts.extend(m.invalid_reasons.iter().cloned());
    if parts.is_empty() && !m.valid {
        parts.push("invalid (no reason recorded)".into());
    }
    parts.join("; ")
}

/// The 25 fields of one execution.
pub fn row(report: &Report, e: &Execution) -> Vec<String> {
    let cell = e.cell();
    let mut r = vec![system(report, cell, &e.dataset), cell.payload.clone(), cell.grade.to_string()];
    match &e.what {
        Executed::Stage(m) => {
            r.push(insertion_mode(m.stage).into());
            r.push(m.stage.to_string());
            if m.unsupported.is_some() {
                r.extend(std::iter::repeat_n(String::new(), 16));
            } else {
                r.extend(figures(m));
            }
            r.push(m.replicas.to_string());
            r.push(m.physical.method.clone());
            r.push(m.started_at.clone());
            r.push(stage_error(m));
        }
        Executed::Failed { stage, reason, finished_at, .. } => {
            r.push(stage.map(insertion_mode).unwrap_or_default().into());
            r.push(stage.map(|s| s.to_string()).unwrap_or_default());
            // Nothing was measured; the replicas and the probe are not in the end line.
            r.extend(std::iter::repeat_n(String::new(), 16 + 2));
            r.push(finished_at.clone());
            r.push(reason.clone());
        }
    }
    debug_assert_eq!(r.len(), HEADER.len());
    r
}

/// The whole file: the header, then a row per execution in journal order.
pub fn to_csv(report: &Report) -> String {
    let mut out = HEADER.join(",");
    out.push('\n');
    for e in &report.executions {
        out.push_str(&row(report, e).iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

impl Exporter for Compat {
    fn format(&self) -> Format {
        Format::Compat
    }

    fn export(&self, report: &Report) -> Vec<Artifact> {
        vec![Artifact::text(FILE, to_csv(report))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insertion_modes_are_the_originals() {
        let modes: Vec<&str> = Stage::ALL.iter().map(|s| insertion_mode(*s)).collect();
        assert_eq!(modes, ["bulk", "perfile", "perfile", "perfile", "perfile"]);
    }

    #[test]
    fn microseconds_are_exact() {
        assert_eq!(us(1_234_567), "1234.567");
        assert_eq!(us(1_000), "1");
        assert_eq!(us(0), "0");
    }
}
