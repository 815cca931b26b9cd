//! The aggregated report: what every exporter renders. Plain data, serialisable as the
//! JSON export.

use crate::stats::Stats;
use dedup_lab_core::{CacheState, CellKey, Grade, InsertionMode, Measurement, Placement, Stage};
use dedup_lab_datagen::Analysis;
use serde::Serialize;
use std::collections::BTreeMap;

pub const REPORT_FORMAT: &str = "dedup-lab-report/1";

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: String,
    /// Confidence level of the intervals (0.95).
    pub confidence: f64,
    /// The merged runs, in the order given.
    pub sources: Vec<SourceInfo>,
    pub totals: Totals,
    /// The datasets of the runs with their intrinsic ("ideal store") analysis.
    pub datasets: Vec<DatasetInfo>,
    /// True when one payload × grade was measured on different datasets (kept apart).
    pub mixed_datasets: bool,
    /// True when a cell axis (placement, cache, insertion mode) is not the default somewhere.
    pub axes_vary: bool,
    /// One group per system × payload × grade × axes (× dataset when mixed), sorted.
    pub groups: Vec<Group>,
    /// Every repetition that is not a valid, finished cell, with its reason.
    pub problem_cells: Vec<CellIssue>,
    pub warnings: Vec<Warning>,
    /// Every stage execution, not aggregated, in journal order (the sources in the order
    /// given, each run once): what the compatibility export `experiment_results.csv` has a
    /// row for. Not part of the JSON export, which has the valid ones as samples.
    #[serde(skip)]
    pub executions: Vec<Execution>,
}

/// One stage execution of one repetition, as journaled.
#[derive(Debug, Clone)]
pub struct Execution {
    /// The dataset label of the cell (see [`DatasetInfo::label`]).
    pub dataset: String,
    pub what: Executed,
}

#[derive(Debug, Clone)]
pub enum Executed {
    /// A journaled stage: finished (valid or invalid) or not run because the system does
    /// not support it. When the journal has the same stage of a cell twice, the last one.
    Stage(Box<Measurement>),
    /// The end of a failed cell: its failing stage has no line of its own.
    Failed {
        cell: CellKey,
        /// The first planned stage without a line (the one that failed); `None` when every
        /// stage has one (the cell failed afterwards, e.g. in its teardown).
        stage: Option<Stage>,
        /// The error chain.
        reason: String,
        /// When the failure was journaled (RFC 3339 UTC).
        finished_at: String,
    },
}

impl Execution {
    pub fn cell(&self) -> &CellKey {
        match &self.what {
            Executed::Stage(m) => &m.cell,
            Executed::Failed { cell, .. } => cell,
        }
    }
}

/// One merged run directory.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    pub run_id: String,
    pub path: String,
    pub tool_version: String,
    pub git_commit: String,
    pub host: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub server_versions: BTreeMap<String, String>,
    /// The run's validated configuration with anything secret-looking removed.
    pub config: serde_json::Value,
    pub cells_planned: usize,
    pub cells_finished: usize,
    pub journal_lines: usize,
}

/// Cell counts over all sources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub planned: usize,
    pub ok: usize,
    pub invalid: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Started but without an end line (running, or the run was killed).
    pub unfinished: usize,
    pub not_started: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    pub payload: String,
    pub grade: Grade,
    /// e.g. `16 × 512.0 KiB, seed 20240501`.
    pub label: String,
    pub records: u64,
    pub record_size: String,
    pub seed: u64,
    pub intrinsic: Option<Analysis>,
}

/// What identifies a group of repetitions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// System and variant, e.g. `postgresql/external`.
    pub system: String,
    pub payload: String,
    pub grade: Grade,
    pub mode: InsertionMode,
    pub placement: Placement,
    pub cache: CacheState,
    /// The dataset label (see [`DatasetInfo::label`]).
    pub dataset: String,
}

impl GroupKey {
    /// `placement/cache/mode`.
    pub fn axes(&self) -> String {
        format!("{}/{}/{}", self.placement, self.cache, self.mode)
    }
}

/// The repetitions of one cell (all runs, all sources), aggregated per stage.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    #[serde(flatten)]
    pub key: GroupKey,
    /// The dataset's intrinsic ideal ratio (record dedup × zstd).
    pub ideal: Option<f64>,
    /// The ideal ratio of a store that deduplicates only inside one container, under the
    /// group's placement: with `across` every copy sits in another container than its
    /// original; with `within` it equals `ideal`.
    pub ideal_per_container: Option<f64>,
    /// Repetitions seen (any status, finished or not).
    pub runs: usize,
    /// Repetitions that finished and passed every check: the only ones averaged.
    pub valid_runs: usize,
    /// `ok`, `invalid`, `failed`, `skipped`, `unfinished`, or `k of n ok` when mixed.
    pub status: String,
    /// Why repetitions are not valid (one line each).
    pub issues: Vec<String>,
    pub stages: Vec<StageAgg>,
}

impl Report {
    /// Whether any stage has storage-simulation figures.
    pub fn has_storage_sim(&self) -> bool {
        self.groups.iter().flat_map(|g| &g.stages).any(|s| !s.storage_block_sizes.is_empty())
    }

    /// The block size(s) of the storage EDR figures, e.g. `4.0 KiB`; `–` when none.
    pub fn storage_block_label(&self) -> String {
        let sizes: std::collections::BTreeSet<u64> =
            self.groups.iter().flat_map(|g| &g.stages).flat_map(|s| s.storage_block_sizes.iter().copied()).collect();
        if sizes.is_empty() {
            return "–".into();
        }
        sizes.into_iter().map(dedup_lab_core::format_bytes).collect::<Vec<_>>().join(", ")
    }
}

impl Group {
    pub fn stage(&self, stage: Stage) -> Option<&StageAgg> {
        self.stages.iter().find(|s| s.stage == stage)
    }

    /// Why the system does not support `stage`, when no valid repetition ran it for that
    /// reason (see [`StageAgg::unsupported_reason`]).
    pub fn unsupported(&self, stage: Stage) -> Option<String> {
        self.stage(stage).and_then(StageAgg::unsupported_reason)
    }

    /// The statistics of a metric of a stage, when any valid repetition has it.
    pub fn stat(&self, stage: Stage, metric: &str) -> Option<&Stats> {
        self.stage(stage).and_then(|s| s.metrics.get(metric))
    }
}

/// One stage of a group over its valid repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct StageAgg {
    pub stage: Stage,
    /// Valid repetitions that have this stage.
    pub n: usize,
    /// Metric id → statistics (metrics without any value are absent).
    pub metrics: BTreeMap<String, Stats>,
    /// Metric id → repetitions where it is undefined (e.g. EDR with a physical delta ≤ 0).
    pub undefined: BTreeMap<String, usize>,
    /// Distinct notes of the measurements (maintenance command, cache action, EDR notes).
    pub notes: Vec<String>,
    /// Distinct size probe methods that measured the physical size (e.g. `fs`).
    pub methods: Vec<String>,
    pub samples: Vec<Sample>,
    pub outliers: Vec<Outlier>,
    /// Valid repetitions where the system does not support the stage: it was not run, and
    /// they are in no statistic, sample or outlier (nor in `n`).
    #[serde(skip_serializing_if = "is_zero")]
    pub unsupported_runs: usize,
    /// Why the system does not support the stage (the distinct reasons given).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<String>,
    /// The block sizes at which the storage simulation's figures (`storage_*` metrics) were
    /// taken (one, unless runs with different settings were merged).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_block_sizes: Vec<u64>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl StageAgg {
    /// The reasons, when the stage was unsupported in every valid repetition that has it
    /// (so it has no figures at all).
    pub fn unsupported_reason(&self) -> Option<String> {
        (self.n == 0 && self.unsupported_runs > 0).then(|| self.unsupported.join("; "))
    }
}

/// One valid repetition's values.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub run_id: String,
    pub run: u32,
    pub values: BTreeMap<String, f64>,
}

/// A value the median/MAD rule flags. It stays in every figure; this only warns.
#[derive(Debug, Clone, Serialize)]
pub struct Outlier {
    pub metric: String,
    pub run_id: String,
    pub run: u32,
    pub value: f64,
    pub median: f64,
    /// The modified z-score.
    pub score: f64,
}

/// A repetition that is not averaged in, and why.
#[derive(Debug, Clone, Serialize)]
pub struct CellIssue {
    pub run_id: String,
    pub system: String,
    pub payload: String,
    pub grade: Grade,
    pub axes: String,
    pub run: u32,
    /// `invalid`, `failed`, `skipped` or `unfinished`.
    pub status: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// An unreadable journal line, an empty journal.
    Journal,
    /// Different tool versions or builds, or different datasets, in one report.
    Mixed,
    /// The same run given twice.
    Duplicate,
    /// A value the median/MAD rule flags.
    Outlier,
}

impl WarningKind {
    pub fn name(self) -> &'static str {
        match self {
            WarningKind::Journal => "journal",
            WarningKind::Mixed => "mixed",
            WarningKind::Duplicate => "duplicate",
            WarningKind::Outlier => "outlier",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub message: String,
}
