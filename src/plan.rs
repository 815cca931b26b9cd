//! Validation: raw CLI arguments and config into plans. Nothing connects or writes before
//! a plan has been built, so bad input fails before any work starts.

use crate::args::DatasetArgs;
use crate::config::RawMatrix;
use anyhow::{Result, bail};
use dedup_lab_core::{Grade, PayloadType};
use dedup_lab_datagen::spec::{DEFAULT_RECORD_SIZE, DEFAULT_SEED};
use dedup_lab_datagen::{DatasetSpec, RecordSize};

/// Size profiles: records per dataset and record size.
pub const PROFILES: &[(&str, u64, u64, &str)] = &[
    ("quick", 16, DEFAULT_RECORD_SIZE, "16 records of 512 KiB per dataset"),
    ("seed", 500, DEFAULT_RECORD_SIZE, "500 records of 512 KiB per dataset (the original study)"),
];

/// The validated list of datasets to build.
#[derive(Debug, Clone)]
pub struct DatasetPlan {
    pub specs: Vec<DatasetSpec>,
}

impl DatasetPlan {
    pub fn total_bytes(&self) -> u64 {
        self.specs
            .iter()
            .map(|s| dedup_lab_datagen::Dataset::new(s.clone()).map(|d| d.total_bytes()).unwrap_or(0))
            .sum()
    }
}

fn parse_list<T: std::str::FromStr<Err = dedup_lab_core::ParseError> + PartialEq>(values: &[String]) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let parsed: T = v.parse()?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// CLI flags win over the config file, which wins over the defaults.
pub fn dataset_plan(args: &DatasetArgs, cfg: &RawMatrix) -> Result<DatasetPlan> {
    let payloads: Vec<PayloadType> = match args.payload_types.as_ref().or(cfg.payload_types.as_ref()) {
        Some(list) => parse_list(list)?,
        None => PayloadType::ALL.to_vec(),
    };
    let grades: Vec<Grade> = match args.grades.as_ref().or(cfg.grades.as_ref()) {
        Some(list) => parse_list(list)?,
        None => vec![Grade::U0, Grade::U50, Grade::U90],
    };
    if payloads.is_empty() {
        bail!("no payload type selected; valid payload types: {}", PayloadType::valid_names());
    }
    if grades.is_empty() {
        bail!("no duplication grade selected; give e.g. --grades U0,U50,U90");
    }
    let profile_name = args.profile.as_deref().or(cfg.profile.as_deref()).unwrap_or("quick");
    let Some(&(_, p_records, p_size, _)) = PROFILES.iter().find(|p| p.0 == profile_name) else {
        let valid: Vec<String> = PROFILES.iter().map(|p| format!("{} ({})", p.0, p.3)).collect();
        bail!("invalid profile {profile_name:?}: valid profiles: {}", valid.join(", "));
    };
    let record_size = match args.record_size.as_ref().or(cfg.record_size.as_ref()) {
        Some(s) => s.parse::<RecordSize>()?,
        None => RecordSize::Fixed(p_size),
    };
    let explicit_records = args.records.or(cfg.records);
    let records = match (explicit_records, args.dataset_size.as_ref().or(cfg.dataset_size.as_ref())) {
        (Some(_), Some(_)) => bail!("give either --records or --dataset-size, not both"),
        (Some(n), None) => n,
        (None, Some(size)) => {
            let total = dedup_lab_core::parse_bytes("dataset size", size)?;
            // The mean record size: fixed, or the middle of a uniform range.
            let mean = match record_size {
                RecordSize::Fixed(s) => s,
                RecordSize::Range { min, max } => (min + max) / 2,
            };
            let n = total.div_ceil(mean);
            if n == 0 {
                bail!("invalid dataset size {size:?}: it must hold at least one record of {record_size} B");
            }
            n
        }
        (None, None) => p_records,
    };
    let seed = args.seed.or(cfg.seed).unwrap_or(DEFAULT_SEED);
    let mut specs = Vec::new();
    for &payload in &payloads {
        for &grade in &grades {
            let spec = DatasetSpec { payload, grade, records, record_size, seed };
            spec.validate()?;
            specs.push(spec);
        }
    }
    Ok(DatasetPlan { specs })
}

/// Everything `run`, `preflight` and `cleanup` need, validated.
pub struct RunPlan {
    pub spec: dedup_lab_runner::RunSpec,
    pub results: std::path::PathBuf,
}

/// Keys that would hold a secret; they must come from the environment or a file.
const SECRET_KEYS: &[&str] = &["password", "secret", "token", "secret_key", "access_key_secret"];

/// The systems to use and their settings.
pub fn system_specs(
    names: Option<&Vec<String>>,
    cfg: &crate::config::RawConfig,
    lab: &dedup_lab_core::LabName,
) -> Result<Vec<dedup_lab_runner::SystemSpec>> {
    use dedup_lab_core::SystemKind;
    let kinds: Vec<SystemKind> = match names.or(cfg.matrix.systems.as_ref()) {
        Some(list) => parse_list(list)?,
        None => SystemKind::EMBEDDED.to_vec(),
    };
    if kinds.is_empty() {
        bail!("no system selected; valid systems: {}", SystemKind::valid_names());
    }
    // Every section is checked, selected or not: a secret in a config file is refused.
    for (name, table) in &cfg.systems {
        if name.parse::<SystemKind>().is_err() {
            bail!(
                "config has a section [systems.{name}] for an unknown system; valid systems: {}",
                SystemKind::valid_names()
            );
        }
        for key in table.keys() {
            if SECRET_KEYS.contains(&key.as_str()) {
                bail!(
                    "config [systems.{name}] has `{key}`: secrets never go in the config file; \
                     set the environment variable (e.g. DEDUP_PG_PASSWORD) or `{key}_env` / `{key}_file`"
                );
            }
        }
    }
    let mut out = Vec::new();
    for kind in kinds {
        let table = cfg
            .systems
            .iter()
            .find(|(k, _)| k.parse::<SystemKind>().ok() == Some(kind))
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        let settings = serde_json::to_value(&table)?;
        let replicas = match table.get("replicas") {
            None => 1,
            Some(v) => v.as_integer().filter(|r| (1..=1000).contains(r)).ok_or_else(|| {
                anyhow::anyhow!("config [systems.{kind}] replicas = {v:?}: expected a whole number from 1 to 1000")
            })? as u32,
        };
        let probe = match table.get("probe").map(|v| v.as_str().unwrap_or("?")) {
            None => dedup_lab_runner::probe::ProbeKind::Auto,
            Some(p) => p.parse().map_err(|e: String| anyhow::anyhow!("config [systems.{kind}] probe: {e}"))?,
        };
        let max_bytes = match table.get("max_bytes") {
            None => None,
            Some(toml::Value::Integer(n)) if *n > 0 => Some(*n as u64),
            Some(toml::Value::String(s)) => Some(dedup_lab_core::parse_bytes("max_bytes", s)?),
            Some(v) => bail!("config [systems.{kind}] max_bytes = {v:?}: expected a size such as 50GiB"),
        };
        dedup_lab_backends::available(kind)?;
        let bcfg = dedup_lab_runner::engine::backend_config_for(lab, kind, &settings);
        let variants = dedup_lab_backends::variants(kind, &bcfg)?;
        out.push(dedup_lab_runner::SystemSpec { kind, variants, replicas, probe, max_bytes, settings });
    }
    Ok(out)
}

/// Applies a study-design preset to the configured matrix (command-line flags still win).
fn apply_preset(name: &str, m: &mut crate::config::RawMatrix) -> Result<()> {
    let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    match name {
        "original" => {
            m.payload_types =
                list(&["random_binary", "structured_json", "text_document", "uuid_keys", "jsonb_documents"]);
            m.grades = list(&["U0", "U50", "U90"]);
            m.profile = Some("seed".into());
            m.runs = Some(3);
        }
        "method" => {
            m.grades = list(&["U0", "U50", "U90", "U95", "U99"]);
            m.placements = list(&["within", "across"]);
            m.caches = list(&["cold", "warm"]);
            m.runs = Some(3);
        }
        other => bail!(
            "invalid preset {other:?}: valid presets: original (5 types, U0/U50/U90, 500 × 512 KiB, 3 runs), \
             method (U0/U50/U90/U95/U99, within/across, cold/warm, 3 runs, at the size you set)"
        ),
    }
    Ok(())
}

/// Insertion modes from `blob`, `native` and `both` (which is both of them).
fn insertion_modes(values: &[String]) -> Result<Vec<dedup_lab_core::InsertionMode>> {
    use dedup_lab_core::InsertionMode;
    let mut out = Vec::new();
    for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let add: Vec<InsertionMode> = if v == "both" {
            vec![InsertionMode::Blob, InsertionMode::Native]
        } else {
            vec![v.parse().map_err(|e: dedup_lab_core::ParseError| {
                anyhow::anyhow!("invalid insertion mode {:?}: valid values: blob, native, both", e.value)
            })?]
        };
        for m in add {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    if out.is_empty() {
        bail!("no insertion mode selected; give --insertion-mode blob, native or both");
    }
    Ok(out)
}

pub fn run_plan(args: &crate::args::RunArgs, cfg: &crate::config::RawConfig) -> Result<RunPlan> {
    use dedup_lab_core::{CacheState, InsertionMode, LabName, Placement, Stage};
    use dedup_lab_datagen::native::OnParseError;
    let lab: LabName = cfg.lab.as_deref().unwrap_or("dedup_lab").parse()?;
    let mut matrix = cfg.matrix.clone();
    if let Some(p) = &args.preset {
        apply_preset(p, &mut matrix)?;
    }
    let datasets = dataset_plan(&args.dataset, &matrix)?;
    let systems = system_specs(args.systems.as_ref(), cfg, &lab)?;
    let stages: Vec<Stage> = match args.stages.as_ref().or(matrix.stages.as_ref()) {
        Some(list) => parse_list(list)?,
        None => Stage::DEFAULT.to_vec(),
    };
    let stages = dedup_lab_runner::RunSpec::validate_stages(&stages).map_err(anyhow::Error::msg)?;
    let runs = args.runs.or(matrix.runs).unwrap_or(1);
    if !(1..=1000).contains(&runs) {
        bail!("invalid run count {runs}: give --runs a whole number from 1 to 1000");
    }
    let placements: Vec<Placement> = match args.placements.as_ref().or(matrix.placements.as_ref()) {
        Some(l) => parse_list(l)?,
        None => vec![Placement::Within],
    };
    let caches: Vec<CacheState> = match args.caches.as_ref().or(matrix.caches.as_ref()) {
        Some(l) => parse_list(l)?,
        None => vec![CacheState::Warm],
    };
    if placements.is_empty() || caches.is_empty() {
        bail!("select at least one placement (within, across) and one cache state (warm, cold)");
    }
    let modes = match args.insertion_mode.as_ref().or(matrix.insertion_modes.as_ref()) {
        Some(l) => insertion_modes(l)?,
        None => vec![InsertionMode::Blob],
    };
    let on_parse_error: OnParseError =
        args.on_parse_error.as_deref().or(matrix.on_parse_error.as_deref()).unwrap_or("fail").parse()?;
    let readback = args.readback.or(matrix.readback).unwrap_or(8);
    let results = args.results.clone().or(cfg.results_dir.clone()).unwrap_or_else(|| "results".into());
    Ok(RunPlan {
        spec: dedup_lab_runner::RunSpec {
            lab,
            systems,
            datasets: datasets.specs,
            stages,
            runs,
            placements,
            caches,
            modes,
            on_parse_error,
            readback,
            keep: args.keep,
        },
        results,
    })
}
