//! What one stage of one cell measured, and the journal lines that persist it.

use crate::backend::InternalSizes;
use crate::cell::{CellKey, Stage};
use serde::{Deserialize, Serialize};

/// Latency summary of a per-record stage, in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p95_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

/// Physical size before and after a stage, as read by one size probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Physical {
    /// `fs`, `internal`, `prometheus` or `scrape`, with what it read (e.g. `fs:/path`).
    pub method: String,
    pub before: u64,
    pub after: u64,
    pub delta: i64,
}

/// The result of one stage of one cell. One JSON line in `measurements.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub cell: CellKey,
    pub stage: Stage,
    /// Start of the stage, RFC 3339 UTC.
    pub started_at: String,
    /// Records the tool sent (or deleted).
    pub rows_sent: u64,
    /// Rows the system reported as affected (COPY count, affected rows, acknowledgements).
    pub rows_reported: Option<u64>,
    /// Rows counted in the namespace after the stage.
    pub rows_counted: Option<u64>,
    /// Payload bytes written (0 for delete and maintenance).
    pub logical_bytes: u64,
    pub physical: Physical,
    /// Physical copies the storage keeps (volume replicas × replication factor).
    pub replicas: u32,
    /// `logical / (delta / replicas)`; `None` when undefined (delta ≤ 0 or not an insert stage).
    pub edr_replica: Option<f64>,
    /// `logical / delta` (no normalisation); `None` when undefined.
    pub edr_cluster: Option<f64>,
    /// Why EDR is undefined, when it is.
    pub edr_note: Option<String>,
    /// For delete and maintenance: bytes given back (−delta) and the share of the growth of
    /// the cell's `perfile_insert` that this is.
    pub reclaimed_bytes: Option<i64>,
    pub reclaimed_share: Option<f64>,
    pub duration_ns: u64,
    pub mb_per_s: f64,
    pub ops_per_s: f64,
    pub latency: Option<LatencySummary>,
    pub internal_before: InternalSizes,
    pub internal_after: InternalSizes,
    /// Records read back after an insert stage, and how many matched their SHA-256.
    pub readback_sampled: u64,
    pub readback_matched: u64,
    /// What the stage did besides writing (maintenance command, cache action, …).
    pub notes: Vec<String>,
    pub valid: bool,
    pub invalid_reasons: Vec<String>,
    /// `Some(reason)` when the system has no meaningful form of this stage: the stage was
    /// not run, and the line counts as neither valid nor invalid (left out of every mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// Insert stages on a system with local data files: what a deduplicating, compressing
    /// volume would store for the lab's files after the stage (see [`crate::storage_sim`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_sim: Option<crate::storage_sim::StorageSim>,
    /// The instrument's own CPU time during the stage (and the server's, where its processes
    /// are known): how much dedup-lab may have disturbed what it measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footprint: Option<Footprint>,
}

/// CPU time spent during one stage, from its first size reading to its read-back, as the
/// operating system counts it (every thread, C libraries included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footprint {
    /// Wall time of that interval.
    pub wall_ns: u64,
    /// dedup-lab's user CPU time in the interval (all threads).
    pub tool_user_ns: u64,
    /// dedup-lab's system CPU time in the interval.
    pub tool_sys_ns: u64,
    /// Cores the machine offers dedup-lab: the interval holds `wall × cores` core-seconds.
    pub cores: u32,
    /// The server's CPU time (user + system) in the interval, where its processes are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_ns: Option<u64>,
    /// What the server's figure covers (`pid 123 and its children`, `cgroup …`), or why it
    /// could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_note: Option<String>,
}

impl Footprint {
    /// dedup-lab's CPU time, user + system, in nanoseconds.
    pub fn tool_cpu_ns(&self) -> u64 {
        self.tool_user_ns + self.tool_sys_ns
    }

    /// dedup-lab's share of the machine's core-seconds in the interval (0–1).
    pub fn tool_share(&self) -> Option<f64> {
        let capacity = self.wall_ns as f64 * f64::from(self.cores.max(1));
        (capacity > 0.0).then(|| self.tool_cpu_ns() as f64 / capacity)
    }

    /// dedup-lab's share of the CPU time it and the server spent together (0–1), where the
    /// server's is known.
    pub fn tool_share_of_work(&self) -> Option<f64> {
        let server = self.server_cpu_ns?;
        let total = self.tool_cpu_ns() + server;
        (total > 0).then(|| self.tool_cpu_ns() as f64 / total as f64)
    }
}

impl Measurement {
    /// EDR for an insert stage: `(edr_replica, edr_cluster, note)`.
    pub fn edr(logical: u64, delta: i64, replicas: u32) -> (Option<f64>, Option<f64>, Option<String>) {
        if delta <= 0 {
            return (None, None, Some(format!("undefined: physical delta {delta} B ≤ 0")));
        }
        let cluster = logical as f64 / delta as f64;
        (Some(cluster * f64::from(replicas.max(1))), Some(cluster), None)
    }
}

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// Every stage ran and every check passed.
    Ok,
    /// Every stage ran, but a check failed (counts, read-back, zero rows).
    Invalid,
    /// A stage failed with an error.
    Failed,
    /// Not run (e.g. over the byte budget).
    Skipped,
}

/// One line of `measurements.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JournalLine {
    /// A finished stage.
    Stage(Box<Measurement>),
    /// The end of a cell: written after its last stage, so a cell without it is partial.
    Cell {
        cell: CellKey,
        status: CellStatus,
        /// The error chain of a failed cell, or why it was skipped or invalid.
        reason: Option<String>,
        finished_at: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edr_definitions() {
        let (r, c, n) = Measurement::edr(1000, 500, 2);
        assert_eq!((r, c, n), (Some(4.0), Some(2.0), None));
        let (r, c, n) = Measurement::edr(1000, 0, 1);
        assert!(r.is_none() && c.is_none() && n.unwrap().contains("undefined"));
    }
}
