//! Markdown: the summary tables (EDR beside the storage EDR and the ideal ratio, the
//! storage-layer simulation per insert stage, physical sizes per stage,
//! throughput and latency), the cells that were not averaged, the stages a system does not
//! support (shown as `unsupported` in the tables), the warnings and the runs.

use super::fmt::{mean_ci, value};
use super::{Artifact, Exporter, Format, UNSUPPORTED, unsupported_stages};
use crate::metrics::{Unit, metric};
use crate::model::Report;
use dedup_lab_core::Stage;

pub struct Markdown;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn table(out: &mut String, head: &[&str], right: &[bool], rows: &[Vec<String>]) {
    out.push_str(&format!("| {} |\n", head.join(" | ")));
    let align: Vec<&str> = right.iter().map(|r| if *r { "--:" } else { "---" }).collect();
    out.push_str(&format!("|{}|\n", align.join("|")));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
    }
    out.push('\n');
}

/// The group's identity columns: system, payload, grade (+ axes, + dataset when they vary).
/// A table with a row per group and stage: the key columns, stage, n, then `cells` of the
/// stage's metrics (all right-aligned) under `heads`.
fn per_stage_table<'a>(
    o: &mut String,
    report: &'a Report,
    heads: &[&str],
    cells: impl Fn(&dyn Fn(&str) -> Option<&'a crate::stats::Stats>) -> Vec<String>,
) {
    let mut head: Vec<&str> = key_head(report);
    let nk = head.len();
    head.extend(["stage", "n"]);
    head.extend_from_slice(heads);
    let mut right = vec![false; nk + 1];
    right.extend(std::iter::repeat_n(true, heads.len() + 1));
    let mut rows = Vec::new();
    for g in &report.groups {
        for s in &g.stages {
            let mut r = key_cols(report, g);
            r.push(s.stage.to_string());
            r.push(s.n.to_string());
            let mut c = cells(&|id: &str| s.metrics.get(id));
            if s.unsupported_reason().is_some() {
                // Not run: no figures; the reason is listed under "Stages not supported".
                c.iter_mut().for_each(|x| *x = "–".into());
                c[0] = UNSUPPORTED.into();
            }
            r.extend(c);
            rows.push(r);
        }
    }
    table(o, &head, &right, &rows);
}

fn key_cols(report: &Report, g: &crate::model::Group) -> Vec<String> {
    let mut v = vec![g.key.system.clone(), g.key.payload.clone(), g.key.grade.to_string()];
    if report.axes_vary {
        v.push(g.key.axes());
    }
    if report.mixed_datasets {
        v.push(g.key.dataset.clone());
    }
    v
}

fn key_head(report: &Report) -> Vec<&'static str> {
    let mut v = vec!["system", "payload", "grade"];
    if report.axes_vary {
        v.push("placement/cache/mode");
    }
    if report.mixed_datasets {
        v.push("dataset");
    }
    v
}

/// One line saying what the report covers.
pub fn overview_line(report: &Report) -> String {
    let t = &report.totals;
    format!(
        "{} run(s); cells: {} planned, {} ok, {} invalid, {} failed, {} skipped, {} unfinished, {} not started",
        report.sources.len(),
        t.planned,
        t.ok,
        t.invalid,
        t.failed,
        t.skipped,
        t.unfinished,
        t.not_started
    )
}

pub fn render(report: &Report) -> String {
    let conf = (report.confidence * 100.0).round();
    let mut o = String::from("# dedup-lab report\n\n");
    o.push_str(&format!("{}.\n\n", overview_line(report)));
    o.push_str(&format!(
        "Figures are means over the valid repetitions ± the half-width of the {conf:.0} % confidence interval \
         (Student's t); n = valid repetitions of all repetitions. Invalid, failed and unfinished repetitions are \
         listed below and never averaged in.\n\n"
    ));

    let kh = key_head(report);
    let nk = kh.len();
    let edr = metric("edr_replica");
    let share = metric("reclaimed_share");
    o.push_str("## Effective dedup ratio\n\n");
    o.push_str(
        "EDR = logical bytes ÷ (physical growth ÷ replicas); ideal = the dataset's own record-dedup × zstd ratio; \
         'frees' = share of the per-record growth given back.\n\n",
    );
    o.push_str(&format!(
        "storage EDR = logical bytes ÷ what a deduplicating, compressing volume (lz4, blocks of {}) would store for \
         the system's files after the bulk insert (see *Storage-layer simulation*).\n\n",
        report.storage_block_label()
    ));
    // With placement `across` somewhere, the per-container ideal is a column of its own.
    let across = report.groups.iter().any(|g| g.key.placement == dedup_lab_core::Placement::Across);
    if across {
        o.push_str(
            "ideal/ctr = the ideal of a store that deduplicates only inside one container; placement `across` \
             puts every copy in another container than its original.\n\n",
        );
    }
    let mut head = kh.clone();
    head.extend(["n", "EDR bulk", "EDR per-record", "storage EDR", "ideal"]);
    if across {
        head.push("ideal/ctr");
    }
    head.extend(["delete frees", "maintenance frees", "status"]);
    let mut right = vec![false; nk];
    right.extend([true, true, true, true, true]);
    if across {
        right.push(true);
    }
    right.extend([true, true, false]);
    let ratio = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
    let fig = |g: &crate::model::Group, stage: Stage, m: &crate::metrics::Metric| match g.unsupported(stage) {
        Some(_) => UNSUPPORTED.to_string(),
        None => mean_ci(m.unit, g.stat(stage, m.id), " ± "),
    };
    let rows: Vec<Vec<String>> = report
        .groups
        .iter()
        .map(|g| {
            let mut r = key_cols(report, g);
            r.push(format!("{}/{}", g.valid_runs, g.runs));
            r.push(fig(g, Stage::BulkInsert, edr));
            r.push(fig(g, Stage::PerfileInsert, edr));
            r.push(fig(g, Stage::BulkInsert, metric("storage_edr")));
            r.push(ratio(g.ideal));
            if across {
                r.push(ratio(g.ideal_per_container));
            }
            r.push(fig(g, Stage::PerfileDelete, share));
            r.push(fig(g, Stage::Maintenance, share));
            r.push(g.status.clone());
            r
        })
        .collect();
    table(&mut o, &head, &right, &rows);

    storage_section(&mut o, report);

    o.push_str("## Physical size per stage\n\n");
    per_stage_table(&mut o, report, &["logical", "physical before", "physical after", "delta", "reclaimed"], |m| {
        ["logical_bytes", "physical_before", "physical_after", "physical_delta", "reclaimed_bytes"]
            .map(|id| mean_ci(Unit::Bytes, m(id), " ± "))
            .to_vec()
    });

    o.push_str("## Throughput and latency\n\n");
    let head =
        ["duration", "MB/s", "ops/s", "p50", "p90", "p99", "p99.9", "max", "dedup-lab CPU", "CPU share", "server CPU"];
    per_stage_table(&mut o, report, &head, |m| {
        let mut r = vec![
            mean_ci(Unit::Seconds, m("duration_s"), " ± "),
            mean_ci(Unit::MegabytesPerSecond, m("mb_per_s"), " ± "),
            mean_ci(Unit::OpsPerSecond, m("ops_per_s"), " ± "),
        ];
        for id in ["lat_p50_ns", "lat_p90_ns", "lat_p99_ns", "lat_p999_ns", "lat_max_ns"] {
            r.push(m(id).map_or("–".into(), |st| value(Unit::Nanoseconds, st.mean)));
        }
        // The instrument's footprint: its CPU time, its share of the machine's core-seconds,
        // and the server's CPU time where its processes are known.
        r.push(m("tool_cpu_s").map_or("–".into(), |st| value(Unit::Seconds, st.mean)));
        r.push(m("tool_cpu_share").map_or("–".into(), |st| value(Unit::Share, st.mean)));
        r.push(m("server_cpu_s").map_or("–".into(), |st| value(Unit::Seconds, st.mean)));
        r
    });

    o.push_str("## Repetitions not averaged\n\n");
    if report.problem_cells.is_empty() {
        o.push_str("None: every repetition finished and passed its checks.\n\n");
    } else {
        let rows: Vec<Vec<String>> = report
            .problem_cells
            .iter()
            .map(|c| {
                vec![
                    c.system.clone(),
                    c.payload.clone(),
                    c.grade.to_string(),
                    c.axes.clone(),
                    format!("{} #{}", c.run_id, c.run),
                    c.status.to_uppercase(),
                    c.reason.clone(),
                ]
            })
            .collect();
        table(
            &mut o,
            &["system", "payload", "grade", "placement/cache/mode", "repetition", "status", "reason"],
            &[false; 7],
            &rows,
        );
    }

    let unsupported = unsupported_stages(report);
    if !unsupported.is_empty() {
        o.push_str("## Stages not supported\n\n");
        o.push_str(
            "A system without a meaningful form of a stage does not run it; the stage is neither valid nor invalid \
             and enters no figure.\n\n",
        );
        let mut head = kh.clone();
        head.extend(["stage", "repetitions", "reason"]);
        let rows: Vec<Vec<String>> = unsupported
            .iter()
            .map(|(g, s)| {
                let mut r = key_cols(report, g);
                r.push(s.stage.to_string());
                r.push(format!("{} of {}", s.unsupported_runs, s.unsupported_runs + s.n));
                r.push(s.unsupported.join("; "));
                r
            })
            .collect();
        let mut right = vec![false; nk + 1];
        right.extend([true, false]);
        table(&mut o, &head, &right, &rows);
    }

    o.push_str("## Warnings\n\n");
    let (outliers, others): (Vec<_>, Vec<_>) =
        report.warnings.iter().partition(|w| w.kind == crate::model::WarningKind::Outlier);
    if others.is_empty() {
        o.push_str("None.\n\n");
    } else {
        for w in others {
            o.push_str(&format!("- **{}**: {}\n", w.kind.name(), cell(&w.message)));
        }
        o.push('\n');
    }
    if !outliers.is_empty() {
        o.push_str(&format!(
            "### Outliers\n\n{} value(s) flagged by the median/MAD rule (modified z-score beyond ±{}, judged only for \
             cells with {} repetitions or more); they stay in every figure.\n\n",
            outliers.len(),
            crate::stats::OUTLIER_SCORE,
            crate::stats::OUTLIER_MIN_N
        ));
        for w in outliers {
            o.push_str(&format!("- {}\n", cell(&w.message)));
        }
        o.push('\n');
    }

    o.push_str("## Runs\n\n");
    let rows: Vec<Vec<String>> = report
        .sources
        .iter()
        .map(|s| {
            vec![
                s.run_id.clone(),
                s.host.clone(),
                format!("{} ({})", s.tool_version, s.git_commit),
                s.started_at.clone(),
                s.finished_at.clone().unwrap_or_else(|| "–".into()),
                s.status.clone(),
                format!("{}/{}", s.cells_finished, s.cells_planned),
                s.server_versions
                    .iter()
                    .map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}: {v}") })
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    table(&mut o, &["run", "host", "tool", "started", "finished", "status", "cells", "servers"], &[false; 8], &rows);
    o
}

/// The storage-layer simulation per insert stage: the system's EDR, the storage EDR and the
/// ideal side by side, so a reader sees where duplicates were lost.
fn storage_section(o: &mut String, report: &Report) {
    o.push_str("## Storage-layer simulation\n\n");
    if !report.has_storage_sim() {
        o.push_str("No storage simulation in these runs (no system with local data files, or `--no-storage-sim`).\n\n");
        return;
    }
    o.push_str(&format!(
        "What a volume that deduplicates and compresses fixed blocks of {} (aligned to file offsets) would store for \
         the system's data files after each insert stage. EDR is the system's own; storage EDR = logical bytes ÷ the \
         volume's bytes with lz4 (and zstd); block dedup = referenced ÷ distinct non-zero blocks. Storage EDR well \
         below ideal with a low block dedup: the layout hid the duplicates from the volume; storage EDR near ideal: \
         the volume would catch what the system did not.\n\n",
        report.storage_block_label()
    ));
    let kh = key_head(report);
    let mut head = kh.clone();
    head.extend(["stage", "n", "EDR", "storage EDR", "storage EDR (zstd)", "block dedup", "ideal"]);
    let mut right = vec![false; kh.len() + 1];
    right.extend([true; 6]);
    let mut rows = Vec::new();
    for g in &report.groups {
        for s in g.stages.iter().filter(|s| s.stage.is_insert() && s.unsupported_reason().is_none()) {
            let m = |id: &str| mean_ci(Unit::Ratio, s.metrics.get(id), " ± ");
            let mut r = key_cols(report, g);
            r.extend([s.stage.to_string(), s.n.to_string()]);
            r.extend(["edr_replica", "storage_edr", "storage_edr_zstd", "storage_dedup"].map(m));
            r.push(g.ideal.map_or("–".into(), |v| format!("{v:.2}")));
            rows.push(r);
        }
    }
    table(o, &head, &right, &rows);
}

impl Exporter for Markdown {
    fn format(&self) -> Format {
        Format::Markdown
    }

    fn export(&self, report: &Report) -> Vec<Artifact> {
        vec![Artifact::text("report.md", render(report))]
    }
}
