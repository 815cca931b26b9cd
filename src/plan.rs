//! Validation: raw CLI arguments and config into plans. Nothing connects or writes before
//! a plan has been built, so bad input fails before any work starts.

use crate::args::DatasetArgs;
use crate::config::RawMatrix;
use anyhow::{Result, bail};
use dedup_lab_core::{Grade, PayloadType};
use dedup_lab_datagen::realworld::{self, SourceDef, validate_name};
use dedup_lab_datagen::spec::{DEFAULT_RECORD_SIZE, DEFAULT_SEED};
use dedup_lab_datagen::{DatasetError, DatasetSpec, RecordSize};

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

/// The real-world sources defined in the config (`[real_world]`) and on the command line
/// (`--real-world NAME=PATH`, which wins), and the names given on the command line.
fn real_world_defs(args: &DatasetArgs, cfg: &RealWorldConfig) -> Result<(Vec<SourceDef>, Vec<String>)> {
    let mut defs: Vec<SourceDef> = Vec::new();
    for (name, value) in cfg {
        validate_name(name).map_err(|e| anyhow::anyhow!("config [real_world]: {e}"))?;
        let def = match value {
            toml::Value::String(path) => SourceDef { name: name.clone(), path: path.clone(), expand_archives: true },
            toml::Value::Table(t) => {
                for key in t.keys() {
                    if key != "path" && key != "expand_archives" {
                        bail!(
                            "config [real_world.{name}] has an unknown key `{key}`; valid keys: path, expand_archives"
                        );
                    }
                }
                let Some(toml::Value::String(path)) = t.get("path") else {
                    bail!("config [real_world.{name}] needs `path = \"…\"` (a file, a directory or a glob)");
                };
                let expand_archives = match t.get("expand_archives") {
                    None => true,
                    Some(toml::Value::Boolean(b)) => *b,
                    Some(v) => bail!("config [real_world.{name}] expand_archives = {v:?}: expected true or false"),
                };
                SourceDef { name: name.clone(), path: path.clone(), expand_archives }
            }
            v => bail!(
                "config [real_world] {name} = {v:?}: expected a path (\"/data/nasa/*.tif\") or a table with `path`"
            ),
        };
        defs.push(def);
    }
    let mut cli_names = Vec::new();
    for arg in &args.real_world {
        let Some((name, path)) = arg.split_once('=') else {
            bail!("invalid --real-world {arg:?}: expected NAME=PATH, e.g. --real-world 'nasa_image=/data/nasa/*.tif'");
        };
        let (name, path) = (name.trim(), path.trim());
        validate_name(name).map_err(|e| anyhow::anyhow!("--real-world {arg:?}: {e}"))?;
        if path.is_empty() {
            bail!("invalid --real-world {arg:?}: the path is empty");
        }
        if cli_names.iter().any(|n| n == name) {
            bail!("--real-world {name} is given twice; give each name once");
        }
        cli_names.push(name.to_string());
        defs.retain(|d| d.name != name);
        defs.push(SourceDef { name: name.into(), path: path.into(), expand_archives: true });
    }
    Ok((defs, cli_names))
}

/// A selected payload type: synthetic, or a real-world source.
enum Selected {
    Synthetic(PayloadType),
    RealWorld(SourceDef),
}

/// The `[real_world]` table of the config file.
pub type RealWorldConfig = std::collections::BTreeMap<String, toml::Value>;

/// CLI flags win over the config file, which wins over the defaults.
///
/// Payload types: `--payload-types`; else the real-world types given with `--real-world`;
/// else `payload_types` of the config; else the five synthetic types and every real-world
/// type of the config. Real-world sources are scanned here (counting their records); one
/// that cannot be read yields datasets that fail on their own, with the reason.
pub fn dataset_plan(args: &DatasetArgs, cfg: &RawMatrix, real_world: &RealWorldConfig) -> Result<DatasetPlan> {
    let (defs, cli_names) = real_world_defs(args, real_world)?;
    let names: Vec<String> = match (&args.payload_types, cli_names.is_empty(), &cfg.payload_types) {
        (Some(list), _, _) => list.clone(),
        (None, false, _) => cli_names,
        (None, true, Some(list)) => list.clone(),
        (None, true, None) => {
            PayloadType::ALL.iter().map(|p| p.to_string()).chain(defs.iter().map(|d| d.name.clone())).collect()
        }
    };
    let mut payloads: Vec<Selected> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if seen.iter().any(|s| s == name) {
            continue;
        }
        seen.push(name.to_string());
        if let Ok(p) = name.parse::<PayloadType>() {
            payloads.push(Selected::Synthetic(p));
        } else if let Some(d) = defs.iter().find(|d| d.name == name) {
            payloads.push(Selected::RealWorld(d.clone()));
        } else {
            let real: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            bail!(
                "invalid payload type {name:?}: valid payload types: {}{}",
                PayloadType::valid_names(),
                if real.is_empty() {
                    "; real-world types are defined with --real-world NAME=PATH or [real_world] in the config".into()
                } else {
                    format!(", and the real-world types {}", real.join(", "))
                }
            );
        }
    }
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
    for selected in &payloads {
        match selected {
            Selected::Synthetic(payload) => {
                for &grade in &grades {
                    let spec = DatasetSpec { payload: *payload, grade, records, record_size, seed, real_world: None };
                    spec.validate()?;
                    specs.push(spec);
                }
            }
            Selected::RealWorld(def) => {
                specs.extend(real_world_specs(def, &grades, record_size, seed, args.verify_sources)?)
            }
        }
    }
    Ok(DatasetPlan { specs })
}

/// Scans a real-world source and makes one dataset per grade; a source that cannot be read
/// gives datasets that fail with the reason (the rest of the plan is unaffected).
fn real_world_specs(
    def: &SourceDef,
    grades: &[Grade],
    record_size: RecordSize,
    seed: u64,
    verify: bool,
) -> Result<Vec<DatasetSpec>> {
    log::info!(
        "scanning real-world source {} ({}){}",
        def.name,
        def.path,
        if verify { ", hashing every file" } else { "" }
    );
    let scan = match realworld::scan(def, record_size, verify) {
        Ok(scan) => scan,
        Err(DatasetError::Interrupted) => bail!("interrupted by a signal while scanning {}", def.path),
        Err(e) => {
            log::error!("real-world source {}: {e}; its datasets fail", def.name);
            return Ok(grades
                .iter()
                .map(|&g| realworld::failed_dataset(def, g, record_size, seed, e.to_string()))
                .collect());
        }
    };
    for w in &scan.warnings {
        log::warn!("real-world source {}: {w}", def.name);
    }
    log::info!(
        "  {}: {} file(s), {} leaves, {} in {} records",
        def.name,
        scan.files.len(),
        scan.leaves,
        dedup_lab_core::format_bytes(scan.source_bytes),
        scan.records
    );
    grades.iter().map(|&g| scan.dataset(g, record_size, seed).map_err(anyhow::Error::from)).collect()
}

/// Everything `run`, `preflight` and `cleanup` need, validated.
pub struct RunPlan {
    pub spec: dedup_lab_runner::RunSpec,
    pub results: std::path::PathBuf,
}

/// The systems to use and their settings. Every `[systems.<name>]` section is checked,
/// selected or not, against the registry: an unknown system or key, or a secret written
/// into the config, stops the plan before anything connects.
pub fn system_specs(
    names: Option<&Vec<String>>,
    cfg: &crate::config::RawConfig,
    lab: &dedup_lab_core::LabName,
) -> Result<Vec<dedup_lab_runner::SystemSpec>> {
    use dedup_lab_core::SystemKind;
    let kinds: Vec<SystemKind> = match names.or(cfg.matrix.systems.as_ref()) {
        Some(list) => parse_list(list)?,
        None => SystemKind::ALL.into_iter().filter(|k| dedup_lab_backends::entry(*k).embedded).collect(),
    };
    if kinds.is_empty() {
        bail!("no system selected; valid systems: {}", SystemKind::valid_names());
    }
    let mut sections: Vec<SystemKind> = Vec::new();
    for (name, table) in &cfg.systems {
        let Ok(kind) = name.parse::<SystemKind>() else {
            bail!(
                "config has a section [systems.{name}] for an unknown system; valid systems: {}",
                SystemKind::valid_names()
            );
        };
        if sections.contains(&kind) {
            bail!("config has two sections for system {kind} (one under an alias, e.g. [systems.pg]); keep one");
        }
        sections.push(kind);
        dedup_lab_backends::entry(kind).check_keys(name, table.keys().map(String::as_str))?;
        // The probe settings too, so a wrong one is found before a run that selects the system.
        dedup_lab_runner::probe::ProbeKind::from_settings(name, &serde_json::to_value(table)?)
            .map_err(anyhow::Error::msg)?;
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
        let probe =
            dedup_lab_runner::probe::ProbeKind::from_settings(kind.name(), &settings).map_err(anyhow::Error::msg)?;
        let max_bytes = match table.get("max_bytes") {
            None => None,
            Some(toml::Value::Integer(n)) if *n > 0 => Some(*n as u64),
            Some(toml::Value::String(s)) => Some(dedup_lab_core::parse_bytes("max_bytes", s)?),
            Some(v) => bail!("config [systems.{kind}] max_bytes = {v:?}: expected a size such as 50GiB"),
        };
        let cold_command = cold_command(kind, &table)?;
        dedup_lab_backends::available(kind)?;
        let bcfg = dedup_lab_runner::engine::backend_config_for(lab, kind, &settings);
        let variants = dedup_lab_backends::variants(kind, &bcfg)?;
        // The server processes the footprint reads: a bad value is refused before anything runs.
        dedup_lab_runner::footprint::ServerProcs::from_config(&bcfg)
            .map_err(|e| anyhow::anyhow!("config [systems.{kind}]: {e}"))?;
        out.push(dedup_lab_runner::SystemSpec { kind, variants, replicas, probe, max_bytes, cold_command, settings });
    }
    Ok(out)
}

/// `cold_command` (a shell command) and `cold_timeout` (whole seconds) of a system.
fn cold_command(
    kind: dedup_lab_core::SystemKind,
    table: &toml::Table,
) -> Result<Option<dedup_lab_runner::cold::ColdCommand>> {
    let timeout_secs = match table.get("cold_timeout") {
        None => dedup_lab_runner::cold::DEFAULT_TIMEOUT.as_secs(),
        Some(toml::Value::Integer(n)) if *n > 0 => *n as u64,
        Some(v) => bail!("config [systems.{kind}] cold_timeout = {v:?}: expected whole seconds above 0, e.g. 120"),
    };
    // Secret-holding variables the command may see after all, by name.
    let pass_env: Vec<String> = match table.get("cold_pass_env") {
        None => Vec::new(),
        Some(toml::Value::Array(a)) if a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty())) => {
            a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
        }
        Some(v) => bail!(
            "config [systems.{kind}] cold_pass_env = {v:?}: expected a list of environment variable names, \
             e.g. [\"DEDUP_PG_PASSWORD\"]"
        ),
    };
    match table.get("cold_command") {
        None => {
            if let Some(key) = ["cold_timeout", "cold_pass_env"].into_iter().find(|k| table.contains_key(*k)) {
                bail!("config [systems.{kind}] has {key} but no cold_command: set the command it applies to");
            }
            Ok(None)
        }
        Some(toml::Value::String(c)) if !c.trim().is_empty() => {
            Ok(Some(dedup_lab_runner::cold::ColdCommand { command: c.clone(), timeout_secs, pass_env }))
        }
        Some(v) => bail!(
            "config [systems.{kind}] cold_command = {v:?}: expected a shell command, \
             e.g. \"systemctl restart postgresql\""
        ),
    }
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
    let datasets = dataset_plan(&args.dataset, &matrix, &cfg.real_world)?;
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
    let storage_sim = if args.no_storage_sim || cfg.storage_sim.enabled == Some(false) {
        None
    } else {
        Some(storage_sim_options(
            args.storage_sim_block_sizes.as_deref(),
            args.storage_sim_report_block_size.as_deref(),
            args.storage_sim_sample.as_deref(),
            &cfg.storage_sim,
        )?)
    };
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
            storage_sim,
        },
        results,
    })
}

/// The storage simulation's options: flags over `[storage_sim]` over the defaults.
pub fn storage_sim_options(
    block_sizes: Option<&str>,
    report_block_size: Option<&str>,
    sample: Option<&str>,
    cfg: &crate::config::RawStorageSim,
) -> Result<dedup_lab_storagesim::Options> {
    use dedup_lab_storagesim as sim;
    let mut o = sim::Options::default();
    let from_cfg = cfg.block_sizes.as_ref().map(|l| l.join(","));
    if let Some(list) = block_sizes.or(from_cfg.as_deref()) {
        o.block_sizes = sim::parse_block_sizes(list)?;
    }
    match report_block_size.or(cfg.report_block_size.as_deref()) {
        Some(r) => o.report_block_size = sim::parse_report_block_size(r)?,
        // Without a choice: 4 KiB when simulated, else the smallest size given.
        None if !o.block_sizes.contains(&o.report_block_size) => o.report_block_size = o.block_sizes[0],
        None => {}
    }
    let from_cfg = cfg.sample.as_ref().map(|s| s.text());
    if let Some(v) = sample.or(from_cfg.as_deref()) {
        o.sample = sim::parse_sample(v)?;
    }
    o.validate()?;
    Ok(o)
}
