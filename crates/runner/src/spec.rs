//! The validated, serialisable description of a run. It is stored in `run.json`, so a
//! resumed run rebuilds exactly the same cells, whatever the command line says.

use crate::probe::ProbeKind;
use dedup_lab_core::{CacheState, CellKey, InsertionMode, LabName, Placement, Stage, SystemKind};
use dedup_lab_datagen::DatasetSpec;
use dedup_lab_datagen::native::OnParseError;
use serde::{Deserialize, Serialize};

/// One system under test with its settings (secrets are never part of these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSpec {
    pub kind: SystemKind,
    pub variants: Vec<String>,
    /// Physical copies the storage keeps (volume replicas × replication factor).
    pub replicas: u32,
    pub probe: ProbeKind,
    /// Byte budget: cells whose planned footprint exceeds it are skipped and journaled.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Run before each stage of a cold cell (`cold_command` / `cold_timeout`).
    #[serde(default)]
    pub cold_command: Option<crate::cold::ColdCommand>,
    /// The `[systems.<name>]` table as given (keys naming secrets are refused earlier).
    pub settings: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub lab: LabName,
    pub systems: Vec<SystemSpec>,
    pub datasets: Vec<DatasetSpec>,
    pub stages: Vec<Stage>,
    pub runs: u32,
    pub placements: Vec<Placement>,
    pub caches: Vec<CacheState>,
    /// Insertion modes: `blob` (each file one value) and/or `native` (files parsed into
    /// typed records).
    pub modes: Vec<InsertionMode>,
    /// Native mode: what a record that cannot be parsed does (fail the stage, or be
    /// counted and skipped).
    #[serde(default)]
    pub on_parse_error: OnParseError,
    /// Records read back and hash-checked after every insert stage.
    pub readback: u64,
    /// Keep each cell's namespace instead of tearing it down.
    pub keep: bool,
    /// The storage-layer dedup simulation over the lab's data files after every insert
    /// stage (systems with local data paths); `None`: off (and in runs from before it).
    #[serde(default)]
    pub storage_sim: Option<dedup_lab_storagesim::Options>,
}

/// One cell to run: its key and its dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct CellPlan {
    pub key: CellKey,
    pub dataset: DatasetSpec,
    pub replicas: u32,
    /// The system's byte budget, if any.
    pub max_bytes: Option<u64>,
}

impl CellPlan {
    /// The most the cell keeps in the lab at once, planned: the dataset's logical bytes
    /// (each insert stage starts from an emptied namespace) times the replicas.
    pub fn footprint(&self) -> u64 {
        dedup_lab_datagen::Dataset::new(self.dataset.clone()).map(|d| d.total_bytes()).unwrap_or(0)
            * u64::from(self.replicas.max(1))
    }

    /// Why the cell must be skipped for its byte budget, if it must.
    pub fn over_budget(&self) -> Option<String> {
        let max = self.max_bytes?;
        let need = self.footprint();
        (need > max).then(|| {
            format!(
                "skipped: its planned footprint {} exceeds the byte budget max_bytes = {} of {}",
                dedup_lab_core::format_bytes(need),
                dedup_lab_core::format_bytes(max),
                self.key.system_label()
            )
        })
    }
}

impl RunSpec {
    /// Checks the stage list: in order, and every stage has what it works on.
    pub fn validate_stages(stages: &[Stage]) -> Result<Vec<Stage>, String> {
        let mut sorted: Vec<Stage> = stages.to_vec();
        sorted.sort();
        sorted.dedup();
        if sorted.is_empty() {
            return Err(
                "no stage selected; valid stages: bulk_insert, perfile_insert, perfile_delete, maintenance, refill"
                    .into(),
            );
        }
        let has = |s| sorted.contains(&s);
        if has(Stage::PerfileDelete) && !has(Stage::PerfileInsert) {
            return Err("stage perfile_delete deletes what perfile_insert wrote: select perfile_insert too".into());
        }
        if has(Stage::Refill) && !has(Stage::PerfileDelete) {
            return Err(
                "stage refill re-inserts what perfile_delete deleted: select perfile_insert and perfile_delete too"
                    .into(),
            );
        }
        Ok(sorted)
    }

    /// Every cell, in the order they run: runs outermost (so an interrupted run has whole
    /// repetitions), then systems, variants, datasets and the further axes.
    pub fn cells(&self) -> Vec<CellPlan> {
        let mut out = Vec::new();
        for run in 1..=self.runs {
            for sys in &self.systems {
                for variant in &sys.variants {
                    for ds in &self.datasets {
                        for &mode in &self.modes {
                            for &placement in &self.placements {
                                for &cache in &self.caches {
                                    out.push(CellPlan {
                                        key: CellKey {
                                            system: sys.kind,
                                            variant: variant.clone(),
                                            payload: ds.payload_name().to_string(),
                                            grade: ds.grade,
                                            mode,
                                            placement,
                                            cache,
                                            run,
                                        },
                                        dataset: ds.clone(),
                                        replicas: sys.replicas,
                                        max_bytes: sys.max_bytes,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    pub fn system(&self, kind: SystemKind) -> Option<&SystemSpec> {
        self.systems.iter().find(|s| s.kind == kind)
    }

    /// The environment variables that `*_env` settings name: they hold secrets.
    pub fn secret_env_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sys in &self.systems {
            if let Some(map) = sys.settings.as_object() {
                for (k, v) in map {
                    if let (true, Some(name)) = (k.ends_with("_env"), v.as_str()) {
                        out.push(name.to_string());
                    }
                }
            }
            out.extend(sys.probe.secret_env_names());
        }
        out
    }
}
