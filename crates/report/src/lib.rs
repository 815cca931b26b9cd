//! Aggregation of journal lines into summaries and reports, and the exporters.
//!
//! - [`load`] reads result directories (a run directory or a results root);
//! - [`aggregate`] merges runs and computes the statistics per cell and stage (pure);
//! - [`export`] renders the aggregated [`model::Report`] as CSV, JSON, Markdown, LaTeX and
//!   HTML, and its stage executions as the original harness's `experiment_results.csv`
//!   (pure functions to bytes); [`write_artifacts`] puts them on disk;
//! - [`summary`] is the end-of-run terminal table.

pub mod aggregate;
pub mod export;
pub mod intrinsic;
pub mod load;
pub mod metrics;
pub mod model;
pub mod stats;
pub mod summary;

pub use aggregate::{MergeError, Options, Source, aggregate};
pub use export::{Artifact, Exporter, Format};
pub use model::Report;
pub use summary::{Ideal, SummaryRow, footprint_line, summarize, summary_table};

use std::path::{Path, PathBuf};

/// Writes the artifacts under `dir` (creating subdirectories), each atomically (temporary
/// file, then rename). Returns the paths written.
pub fn write_artifacts(dir: &Path, artifacts: &[Artifact]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in artifacts {
        let path = a.path.split('/').fold(dir.to_path_buf(), |p, part| p.join(part));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension(format!(
            "{}.tmp",
            path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default()
        ));
        std::fs::write(&tmp, &a.bytes)?;
        std::fs::rename(&tmp, &path)?;
        out.push(path);
    }
    Ok(out)
}

/// The summary rows of the terminal table, from an aggregated report (means of valid
/// repetitions), so merged runs print the same table a single run does.
pub fn summary_rows(report: &Report) -> Vec<SummaryRow> {
    use dedup_lab_core::Stage;
    report
        .groups
        .iter()
        .map(|g| {
            let mean = |stage, id| g.stat(stage, id).map(|s| s.mean);
            let mut system = g.key.system.clone();
            if report.mixed_datasets {
                system = format!("{system} [{}]", g.key.dataset);
            }
            SummaryRow {
                system,
                payload: g.key.payload.clone(),
                grade: g.key.grade.to_string(),
                mode: g.key.mode.to_string(),
                axes: format!("{}/{}", g.key.placement, g.key.cache),
                runs: g.runs,
                bulk_edr: mean(Stage::BulkInsert, "edr_replica"),
                perfile_edr: mean(Stage::PerfileInsert, "edr_replica"),
                delete_reclaimed: mean(Stage::PerfileDelete, "reclaimed_share"),
                maintenance_reclaimed: mean(Stage::Maintenance, "reclaimed_share"),
                status: if g.status == "ok" { "ok".into() } else { g.status.to_uppercase() },
                unsupported: g
                    .stages
                    .iter()
                    .filter(|s| s.unsupported_runs > 0)
                    .map(|s| (s.stage, s.unsupported.join("; ")))
                    .collect(),
            }
        })
        .collect()
}

/// The ideal ratios per (payload, grade) for [`summary_table`].
pub fn ideal_map(report: &Report) -> std::collections::BTreeMap<(String, String), Ideal> {
    report
        .datasets
        .iter()
        .filter_map(|d| d.intrinsic.as_ref().map(|a| ((d.payload.clone(), d.grade.to_string()), Ideal::of(a))))
        .collect()
}
