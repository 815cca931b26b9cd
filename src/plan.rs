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

fn parse_list<T: std::str::FromStr<Err = dedup_lab_core::ParseError> + PartialEq>(
    values: &[String],
) -> Result<Vec<T>> {
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
    let records = args.records.or(cfg.records).unwrap_or(p_records);
    let record_size = match args.record_size.as_ref().or(cfg.record_size.as_ref()) {
        Some(s) => s.parse::<RecordSize>()?,
        None => RecordSize::Fixed(p_size),
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
