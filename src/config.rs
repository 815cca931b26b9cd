//! The raw configuration file (TOML), read into plain structs. Validation happens in `plan.rs`.
//!
//! Every key is documented in `dedup-lab.example.toml`.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Lab namespace name (default `dedup_lab`).
    pub lab: Option<String>,
    /// Where run results go (default `results`).
    pub results_dir: Option<PathBuf>,
    /// Exports written at the end of a run and by `report` (default: all of csv, json, md, tex, html, compat).
    pub exports: Option<Vec<String>>,
    #[serde(default)]
    pub matrix: RawMatrix,
    /// Per-system settings, `[systems.<name>]`, passed to the backend that reads them.
    #[serde(default)]
    pub systems: BTreeMap<String, toml::Table>,
    /// Real-world payload types: `name = "path"` (a file, directory or glob) or a table
    /// `[real_world.name]` with `path` and `expand_archives`; checked in `plan.rs`.
    #[serde(default)]
    pub real_world: BTreeMap<String, toml::Value>,
    /// `[storage_sim]`: the storage-layer dedup simulation (runs and `storage-sim`).
    #[serde(default)]
    pub storage_sim: RawStorageSim,
    /// `[trace]`: the metrics trace and the event stream (`telemetry.rs`).
    #[serde(default)]
    pub trace: RawTrace,
    /// `[pushgateway]`: push every stage's figures (`url`, `job`, `timeout`, credentials).
    pub pushgateway: Option<toml::Table>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrace {
    /// Sampling interval of the metrics trace, e.g. `"100ms"` (default) or `"1s"`; `"off"`: none.
    pub interval: Option<String>,
    /// How often a sample also reads the physical size (default `"1s"`).
    pub probe_interval: Option<String>,
    /// `[trace.kafka]`: also send the trace and the events to Kafka (the connection keys of
    /// `[systems.kafka]`, plus `metrics_topic` and `events_topic`).
    pub kafka: Option<toml::Table>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorageSim {
    /// After every insert stage of a system with local data files (default true).
    pub enabled: Option<bool>,
    /// e.g. `["4KiB", "8KiB", "16KiB", "128KiB"]`.
    pub block_sizes: Option<Vec<String>>,
    pub report_block_size: Option<String>,
    /// `"auto"` or N (1 in N distinct blocks compressed).
    pub sample: Option<RawSample>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSample {
    Number(i64),
    Text(String),
}

impl RawSample {
    pub fn text(&self) -> String {
        match self {
            RawSample::Number(n) => n.to_string(),
            RawSample::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatrix {
    pub systems: Option<Vec<String>>,
    pub payload_types: Option<Vec<String>>,
    pub grades: Option<Vec<String>>,
    pub stages: Option<Vec<String>>,
    pub runs: Option<u32>,
    pub profile: Option<String>,
    pub records: Option<u64>,
    pub record_size: Option<String>,
    pub dataset_size: Option<String>,
    pub seed: Option<u64>,
    pub readback: Option<u64>,
    pub placements: Option<Vec<String>>,
    pub caches: Option<Vec<String>>,
    /// `blob`, `native` or `both` (a list).
    pub insertion_modes: Option<Vec<String>>,
    /// `fail` or `skip`.
    pub on_parse_error: Option<String>,
}

/// Reads the config file, or returns the defaults when there is none.
pub fn load(path: Option<&Path>) -> Result<RawConfig> {
    let Some(path) = path else { return Ok(RawConfig::default()) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}; check the --config path", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!("config file {} is not valid (see dedup-lab.example.toml for every key)", path.display())
    })
}
