//! Every metric of a stage measurement that the report aggregates, in column order.

use dedup_lab_core::Measurement;

/// How a metric's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A dimensionless ratio (EDR).
    Ratio,
    /// A fraction, shown as a percentage.
    Share,
    Bytes,
    Seconds,
    MegabytesPerSecond,
    OpsPerSecond,
    Nanoseconds,
    Count,
}

impl Unit {
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Ratio => "×",
            Unit::Share => "%",
            Unit::Bytes => "B",
            Unit::Seconds => "s",
            Unit::MegabytesPerSecond => "MB/s",
            Unit::OpsPerSecond => "ops/s",
            Unit::Nanoseconds => "ns",
            Unit::Count => "",
        }
    }
}

/// One aggregated metric: its column id, a label, its unit, how to read it from a
/// measurement (`None` when the stage does not have it), and whether outliers are flagged.
pub struct Metric {
    pub id: &'static str,
    pub label: &'static str,
    pub unit: Unit,
    pub get: fn(&Measurement) -> Option<f64>,
    pub outliers: bool,
}

fn lat(m: &Measurement, f: fn(&dedup_lab_core::LatencySummary) -> f64) -> Option<f64> {
    m.latency.as_ref().filter(|l| l.count > 0).map(f)
}

/// The metrics, in the order of the CSV columns.
pub const METRICS: &[Metric] = &[
    Metric { id: "edr_replica", label: "EDR", unit: Unit::Ratio, get: |m| m.edr_replica, outliers: true },
    Metric { id: "edr_cluster", label: "EDR (cluster)", unit: Unit::Ratio, get: |m| m.edr_cluster, outliers: true },
    Metric {
        id: "logical_bytes",
        label: "logical bytes",
        unit: Unit::Bytes,
        get: |m| m.stage.is_insert().then_some(m.logical_bytes as f64),
        outliers: false,
    },
    Metric {
        id: "physical_before",
        label: "physical before",
        unit: Unit::Bytes,
        get: |m| Some(m.physical.before as f64),
        outliers: false,
    },
    Metric {
        id: "physical_after",
        label: "physical after",
        unit: Unit::Bytes,
        get: |m| Some(m.physical.after as f64),
        outliers: false,
    },
    Metric {
        id: "physical_delta",
        label: "physical delta",
        unit: Unit::Bytes,
        get: |m| Some(m.physical.delta as f64),
        outliers: true,
    },
    Metric {
        id: "reclaimed_bytes",
        label: "reclaimed bytes",
        unit: Unit::Bytes,
        get: |m| m.reclaimed_bytes.map(|b| b as f64),
        outliers: false,
    },
    Metric {
        id: "reclaimed_share",
        label: "reclaimed share",
        unit: Unit::Share,
        get: |m| m.reclaimed_share,
        outliers: true,
    },
    Metric {
        id: "duration_s",
        label: "duration",
        unit: Unit::Seconds,
        get: |m| Some(m.duration_ns as f64 / 1e9),
        outliers: false,
    },
    Metric {
        id: "mb_per_s",
        label: "throughput",
        unit: Unit::MegabytesPerSecond,
        get: |m| m.stage.is_insert().then_some(m.mb_per_s),
        outliers: true,
    },
    Metric {
        id: "ops_per_s",
        label: "operations",
        unit: Unit::OpsPerSecond,
        get: |m| (m.rows_sent > 0).then_some(m.ops_per_s),
        outliers: true,
    },
    Metric {
        id: "lat_min_ns",
        label: "latency min",
        unit: Unit::Nanoseconds,
        get: |m| lat(m, |l| l.min_ns as f64),
        outliers: false,
    },
    Metric {
        id: "lat_mean_ns",
        label: "latency mean",
        unit: Unit::Nanoseconds,
        get: |m| lat(m, |l| l.mean_ns),
        outliers: false,
    },
    Metric {
        id: "lat_p50_ns",
        label: "latency p50",
        unit: Unit::Nanoseconds,
        get: |m| lat(m, |l| l.p50_ns as f64),
        outliers: true,
    },
    Metric {
        id: "lat_p90_ns",
        label: "latency p90",
        unit: Unit::Nanoseconds,
        get: |m| lat(m, |l| l.p90_ns as f64),
        outliers: false,
    },
    Metric {
        id: "lat_p95_ns",
        label: "latency p95",
        unit: Unit::Nanoseconds,
        get: |m| lat(m, |l| l.p95_ns as f64),
        outliers: false,
    },
    Metric {
        id: "lat_p99_ns",
        label: "latency p99",
        unit: Unit::Nanoseconds,
        get: |m| lat(m, |l| l.p99_ns as f64),
        outliers: false,
    },
    Metric {
        id: "lat_p999_ns",
        label: "latency p99.9",
        unit: Unit::Nanoseconds,
        get: |m| lat(m, |l| l.p999_ns as f64),
        outliers: false,
    },
    Metric {
        id: "lat_max_ns",
        label: "latency max",
        unit: Unit::Nanoseconds,
        get: |m| lat(m, |l| l.max_ns as f64),
        outliers: false,
    },
    Metric {
        id: "rows_sent",
        label: "rows sent",
        unit: Unit::Count,
        get: |m| Some(m.rows_sent as f64),
        outliers: false,
    },
    Metric {
        id: "rows_reported",
        label: "rows reported",
        unit: Unit::Count,
        get: |m| m.rows_reported.map(|r| r as f64),
        outliers: false,
    },
    Metric {
        id: "rows_counted",
        label: "rows counted",
        unit: Unit::Count,
        get: |m| m.rows_counted.map(|r| r as f64),
        outliers: false,
    },
    Metric {
        id: "internal_before_bytes",
        label: "internal size before",
        unit: Unit::Bytes,
        get: |m| m.internal_before.total_bytes.map(|b| b as f64),
        outliers: false,
    },
    Metric {
        id: "internal_after_bytes",
        label: "internal size after",
        unit: Unit::Bytes,
        get: |m| m.internal_after.total_bytes.map(|b| b as f64),
        outliers: false,
    },
    Metric {
        id: "readback_sampled",
        label: "read back",
        unit: Unit::Count,
        get: |m| m.stage.is_insert().then_some(m.readback_sampled as f64),
        outliers: false,
    },
    Metric {
        id: "readback_matched",
        label: "read back matched",
        unit: Unit::Count,
        get: |m| m.stage.is_insert().then_some(m.readback_matched as f64),
        outliers: false,
    },
    // The storage-layer simulation at the run's report block size (after the existing
    // columns, so the CSV's earlier columns keep their places).
    Metric {
        id: "storage_edr",
        label: "storage EDR",
        unit: Unit::Ratio,
        get: |m| m.storage_sim.as_ref().and_then(|s| s.storage_edr()),
        outliers: true,
    },
    Metric {
        id: "storage_edr_zstd",
        label: "storage EDR (zstd)",
        unit: Unit::Ratio,
        get: |m| m.storage_sim.as_ref().and_then(|s| s.storage_edr_zstd()),
        outliers: false,
    },
    Metric {
        id: "storage_dedup",
        label: "storage block dedup",
        unit: Unit::Ratio,
        get: |m| m.storage_sim.as_ref().and_then(|s| s.at(s.report_block_size)).and_then(|b| b.dedup_ratio),
        outliers: false,
    },
    // The instrument's footprint (after the existing columns, for the same reason).
    Metric {
        id: "tool_cpu_s",
        label: "dedup-lab CPU",
        unit: Unit::Seconds,
        get: |m| m.footprint.as_ref().map(|f| f.tool_cpu_ns() as f64 / 1e9),
        outliers: false,
    },
    Metric {
        id: "tool_cpu_share",
        label: "dedup-lab CPU share",
        unit: Unit::Share,
        get: |m| m.footprint.as_ref().and_then(|f| f.tool_share()),
        outliers: false,
    },
    Metric {
        id: "server_cpu_s",
        label: "server CPU",
        unit: Unit::Seconds,
        get: |m| m.footprint.as_ref().and_then(|f| f.server_cpu_ns).map(|n| n as f64 / 1e9),
        outliers: false,
    },
];

/// The metric with this id.
pub fn metric(id: &str) -> &'static Metric {
    METRICS.iter().find(|m| m.id == id).unwrap_or_else(|| panic!("unknown metric {id}"))
}
