//! HTML: one self-contained page (inline CSS and SVG, no script, no network resource):
//! an overview, the EDR per system × payload × grade beside the ideal ratio, the
//! storage-layer simulation (system EDR, storage EDR and ideal side by side), physical
//! against logical bytes per stage, space given back by delete and maintenance, throughput
//! and latency percentiles, the repetitions not averaged, the stages a system does not
//! support (shown as `unsupported` wherever a figure would be), warnings, every statistic,
//! and the runs' metadata (tool version, configuration without secrets, server versions).
//!
//! Charts are small multiples: one chart per payload type, grades along the x axis, one
//! colour per system.

use super::fmt;
use super::svg::{self, Bar, BarChart, BarSeries, DASHES, LineChart, LineSeries, PALETTE, esc};
use super::{Artifact, Exporter, Format, UNSUPPORTED, unsupported_stages};
use crate::metrics::{METRICS, Unit, metric};
use crate::model::{Group, Report, WarningKind};
use crate::stats::Stats;
use dedup_lab_core::{Grade, Stage};
use std::collections::BTreeSet;

pub struct Html;

const CSS: &str = r#"
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #ffffff; --soft: #f4f6f9; --accent: #0072B2;
  --ok: #1b7f3b; --bad: #b3261e; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--fg); background: var(--bg); }
header { background: #14202e; color: #fff; padding: 22px 32px 16px; }
header h1 { margin: 0 0 4px; font-size: 24px; font-weight: 650; }
header p { margin: 0; color: #c5cfdb; }
nav { position: sticky; top: 0; z-index: 2; background: var(--soft); border-bottom: 1px solid var(--line);
  padding: 8px 32px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 18px; }
main { max-width: 1340px; margin: 0 auto; padding: 8px 32px 40px; }
section { margin-top: 28px; }
h2 { font-size: 20px; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.note, .note-text { color: var(--muted); font-size: 13px; margin: 4px 0 10px; max-width: 980px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 120px; }
.card .v { font-size: 22px; font-weight: 650; }
.card .k { color: var(--muted); font-size: 12px; }
.card.bad .v { color: var(--bad); }
.card.ok .v { color: var(--ok); }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: 13px; margin: 6px 0; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.sw { width: 14px; height: 14px; border-radius: 3px; display: inline-block; }
.sw.ref { width: 20px; height: 0; border-top: 2px dashed #222; border-radius: 0; }
.sw.ln { width: 22px; height: 0; border-top: 2px solid #333; border-radius: 0; }
.multiples { display: flex; flex-wrap: wrap; gap: 10px 12px; align-items: flex-start; }
.multiples figure { margin: 0; }
svg.chart { max-width: 100%; height: auto; background: #fff; }
svg.chart text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; fill: #2a3140; }
svg.chart .title { font-size: 13px; font-weight: 600; }
svg.chart .tick, svg.chart .group { font-size: 11px; }
svg.chart .axis-label { font-size: 11px; fill: #5b6475; }
svg.chart .grid { stroke: #e6e9ef; stroke-width: 1; }
svg.chart .axis { stroke: #8a93a3; stroke-width: 1; }
svg.chart .ci { stroke: #1d2330; stroke-width: 1.2; fill: none; }
svg.chart .ref { stroke: #222; stroke-width: 1.6; stroke-dasharray: 4 3; }
svg.chart .ref-label { font-size: 10px; fill: #444; }
svg.chart .note { font-size: 10px; fill: #b3261e; font-weight: 600; }
svg.chart .line { fill: none; stroke-width: 1.8; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0 14px; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; position: sticky; top: 37px; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.st { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.st.ok { background: #e3f4e8; color: var(--ok); }
.st.bad { background: #fde7e5; color: var(--bad); }
.st.part { background: #fff4d6; color: var(--warn); }
ul.warnings li { margin: 3px 0; }
ul.warnings .kind { font-weight: 600; color: var(--warn); margin-right: 4px; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow: auto;
  font-size: 12px; max-height: 420px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
footer { color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); margin-top: 36px; padding-top: 8px; }
"#;

fn status_badge(status: &str) -> String {
    let class = if status == "ok" {
        "ok"
    } else if status.contains(" of ") {
        "part"
    } else {
        "bad"
    };
    format!("<span class=\"st {class}\">{}</span>", esc(status))
}

fn td(s: &str) -> String {
    format!("<td>{}</td>", esc(s))
}

fn tdn(s: &str) -> String {
    format!("<td class=\"n\">{}</td>", esc(s))
}

/// A numeric cell for `stage` of `g`: `unsupported` (the reason as its tooltip) when the
/// system does not support the stage, else `text`.
fn tdn_of(g: &Group, stage: Stage, text: impl FnOnce() -> String) -> String {
    match g.unsupported(stage) {
        Some(why) => unsupported_td(&why),
        None => tdn(&text()),
    }
}

fn unsupported_td(why: &str) -> String {
    format!("<td class=\"n\" title=\"{}\">{UNSUPPORTED}</td>", esc(why))
}

fn thead(cols: &[(&str, bool)]) -> String {
    let mut o = String::from("<thead><tr>");
    for (c, num) in cols {
        o.push_str(&if *num { format!("<th class=\"n\">{}</th>", esc(c)) } else { format!("<th>{}</th>", esc(c)) });
    }
    o.push_str("</tr></thead>\n");
    o
}

/// The layout shared by every chart: payloads (one chart each), x groups within a payload
/// (grade, axes, dataset), systems (one colour each).
struct Layout<'a> {
    report: &'a Report,
    payloads: Vec<String>,
    systems: Vec<String>,
    grades: Vec<Grade>,
}

impl<'a> Layout<'a> {
    fn new(report: &'a Report) -> Layout<'a> {
        let set = |f: fn(&Group) -> String| -> Vec<String> {
            report.groups.iter().map(f).collect::<BTreeSet<_>>().into_iter().collect()
        };
        Layout {
            report,
            payloads: set(|g| g.key.payload.clone()),
            systems: set(|g| g.key.system.clone()),
            grades: report.groups.iter().map(|g| g.key.grade).collect::<BTreeSet<_>>().into_iter().collect(),
        }
    }

    fn color(&self, system: &str) -> &'static str {
        let i = self.systems.iter().position(|s| s == system).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    }

    fn dash(&self, grade: Grade) -> &'static str {
        let i = self.grades.iter().position(|g| *g == grade).unwrap_or(0);
        DASHES[i % DASHES.len()]
    }

    /// The x groups of a payload: (label, grade, axes, dataset), sorted.
    fn x_groups(&self, payload: &str) -> Vec<(String, Grade, String, String)> {
        let mut v: Vec<(Grade, String, String)> = self
            .report
            .groups
            .iter()
            .filter(|g| g.key.payload == payload)
            .map(|g| (g.key.grade, g.key.axes(), g.key.dataset.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        v.sort();
        v.into_iter()
            .map(|(grade, axes, ds)| {
                let mut label = grade.to_string();
                if self.report.axes_vary {
                    label.push_str(&format!(" {}", axes.split('/').take(2).collect::<Vec<_>>().join("/")));
                }
                if self.report.mixed_datasets {
                    label.push_str(&format!(" {}", ds.split(',').next().unwrap_or("")));
                }
                (label, grade, axes, ds)
            })
            .collect()
    }

    fn group(&self, system: &str, payload: &str, grade: Grade, axes: &str, ds: &str) -> Option<&'a Group> {
        self.report.groups.iter().find(|g| {
            g.key.system == system
                && g.key.payload == payload
                && g.key.grade == grade
                && g.key.axes() == axes
                && g.key.dataset == ds
        })
    }

    fn legend(&self, reference: Option<&str>, grades: bool) -> String {
        let mut o = String::from("<div class=\"legend\">");
        for s in &self.systems {
            o.push_str(&format!("<span><i class=\"sw\" style=\"background:{}\"></i>{}</span>", self.color(s), esc(s)));
        }
        if let Some(r) = reference {
            o.push_str(&format!("<span><i class=\"sw ref\"></i>{}</span>", esc(r)));
        }
        if grades {
            for g in &self.grades {
                let d = self.dash(*g);
                o.push_str(&format!(
                    "<span><svg width=\"26\" height=\"8\" aria-hidden=\"true\"><line x1=\"1\" y1=\"4\" x2=\"25\" y2=\"4\" \
                     stroke=\"#333\" stroke-width=\"2\"{}/></svg>{g}</span>",
                    if d.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{d}\"") }
                ));
            }
        }
        o.push_str("</div>\n");
        o
    }

    /// Small-multiple bar charts of one metric of one stage, with an optional reference.
    fn bar_figure(
        &self,
        stage: Stage,
        metric_id: &str,
        y_label: &str,
        log: bool,
        ref_name: Option<&str>,
        tick: fn(f64) -> String,
    ) -> String {
        let m = metric(metric_id);
        let mut o = String::from("<div class=\"multiples\">\n");
        for p in &self.payloads {
            let xg = self.x_groups(p);
            let series = self
                .systems
                .iter()
                .map(|s| BarSeries {
                    name: s.clone(),
                    color: self.color(s).into(),
                    bars: xg
                        .iter()
                        .map(|(label, grade, axes, ds)| {
                            let Some(g) = self.group(s, p, *grade, axes, ds) else { return Bar::default() };
                            let what = format!("{s} · {p} {label} · {stage}");
                            match g.stat(stage, metric_id) {
                                Some(st) => Bar {
                                    value: Some(st.mean),
                                    low: st.ci_low,
                                    high: st.ci_high,
                                    tooltip: format!("{what}: {} (n={})", fmt::mean_ci(m.unit, Some(st), " ± "), st.n),
                                    note: None,
                                },
                                None if g.valid_runs == 0 => Bar {
                                    tooltip: format!("{what}: {}", g.issues.first().cloned().unwrap_or_default()),
                                    note: Some(g.status.clone()),
                                    ..Bar::default()
                                },
                                None => match g.unsupported(stage) {
                                    Some(why) => Bar {
                                        tooltip: format!("{what}: {UNSUPPORTED}: {why}"),
                                        note: Some(UNSUPPORTED.into()),
                                        ..Bar::default()
                                    },
                                    None => Bar {
                                        tooltip: format!("{what}: undefined"),
                                        note: Some("n/a".into()),
                                        ..Bar::default()
                                    },
                                },
                            }
                        })
                        .collect(),
                })
                .collect();
            let reference = ref_name.map(|name| {
                let vals = xg
                    .iter()
                    .map(|(_, grade, axes, ds)| {
                        self.systems.iter().find_map(|s| self.group(s, p, *grade, axes, ds).and_then(|g| g.ideal))
                    })
                    .collect();
                (name.to_string(), vals)
            });
            let ch = BarChart {
                title: p.clone(),
                y_label: y_label.into(),
                log,
                groups: xg.iter().map(|x| x.0.clone()).collect(),
                series,
                reference,
                fmt: tick,
                binary: m.unit == Unit::Bytes,
            };
            o.push_str(&format!("<figure>{}</figure>\n", svg::bar_chart(&ch)));
        }
        o.push_str("</div>\n");
        o
    }

    /// Physical size after each stage, one line per system × grade, logical bytes as reference.
    fn physical_figure(&self) -> String {
        let stages: Vec<Stage> = self
            .report
            .groups
            .iter()
            .flat_map(|g| g.stages.iter().map(|s| s.stage))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut o = String::from("<div class=\"multiples\">\n");
        for p in &self.payloads {
            let mut series = Vec::new();
            let mut logical = BTreeSet::new();
            for s in &self.systems {
                for (label, grade, axes, ds) in self.x_groups(p) {
                    let Some(g) = self.group(s, p, grade, &axes, &ds) else { continue };
                    if g.valid_runs == 0 {
                        continue;
                    }
                    for st in &g.stages {
                        if let Some(l) = st.metrics.get("logical_bytes") {
                            logical.insert(l.mean.round() as u64);
                        }
                    }
                    series.push(LineSeries {
                        name: format!("{s} · {label}"),
                        color: self.color(s).into(),
                        dash: self.dash(grade).into(),
                        points: stages.iter().map(|st| g.stat(*st, "physical_after").map(|x| x.mean)).collect(),
                    });
                }
            }
            let references = if logical.len() == 1 {
                vec![("logical".to_string(), *logical.iter().next().expect("one") as f64)]
            } else {
                Vec::new()
            };
            let ch = LineChart {
                title: p.clone(),
                y_label: "physical size after the stage".into(),
                log: false,
                categories: stages.iter().map(|s| short_stage(*s).to_string()).collect(),
                series,
                references,
                fmt: fmt::bytes_tick,
                binary: true,
            };
            o.push_str(&format!("<figure>{}</figure>\n", svg::line_chart(&ch)));
        }
        o.push_str("</div>\n");
        o
    }

    /// Latency percentiles of a per-record stage, one line per system × grade.
    fn latency_figure(&self, stage: Stage) -> String {
        const P: [(&str, &str); 6] = [
            ("p50", "lat_p50_ns"),
            ("p90", "lat_p90_ns"),
            ("p95", "lat_p95_ns"),
            ("p99", "lat_p99_ns"),
            ("p99.9", "lat_p999_ns"),
            ("max", "lat_max_ns"),
        ];
        let mut o = String::from("<div class=\"multiples\">\n");
        for p in &self.payloads {
            let mut series = Vec::new();
            for s in &self.systems {
                for (label, grade, axes, ds) in self.x_groups(p) {
                    let Some(g) = self.group(s, p, grade, &axes, &ds) else { continue };
                    if g.stat(stage, "lat_p50_ns").is_none() {
                        continue;
                    }
                    series.push(LineSeries {
                        name: format!("{s} · {label}"),
                        color: self.color(s).into(),
                        dash: self.dash(grade).into(),
                        points: P.iter().map(|(_, id)| g.stat(stage, id).map(|x| x.mean)).collect(),
                    });
                }
            }
            let ch = LineChart {
                title: p.clone(),
                y_label: "latency (log scale)".into(),
                log: true,
                categories: P.iter().map(|(n, _)| n.to_string()).collect(),
                series,
                references: Vec::new(),
                fmt: fmt::nanos_tick,
                binary: false,
            };
            o.push_str(&format!("<figure>{}</figure>\n", svg::line_chart(&ch)));
        }
        o.push_str("</div>\n");
        o
    }
}

fn short_stage(s: Stage) -> &'static str {
    match s {
        Stage::BulkInsert => "bulk",
        Stage::PerfileInsert => "insert",
        Stage::PerfileDelete => "delete",
        Stage::Maintenance => "maint.",
        Stage::Refill => "refill",
    }
}

fn has_stage(report: &Report, stage: Stage) -> bool {
    report.groups.iter().any(|g| g.stage(stage).is_some())
}

fn has_metric(report: &Report, stage: Stage, id: &str) -> bool {
    report.groups.iter().any(|g| g.stat(stage, id).is_some())
}

fn overview(report: &Report, o: &mut String) {
    let t = &report.totals;
    let layout = Layout::new(report);
    let reps: usize = report.groups.iter().map(|g| g.runs).sum();
    o.push_str("<section id=\"overview\"><h2>Overview</h2>\n<div class=\"cards\">\n");
    let card = |o: &mut String, v: String, k: &str, class: &str| {
        o.push_str(&format!(
            "<div class=\"card {class}\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>\n",
            esc(&v),
            esc(k)
        ))
    };
    card(o, report.sources.len().to_string(), "runs merged", "");
    card(o, layout.systems.len().to_string(), "systems", "");
    card(o, layout.payloads.len().to_string(), "payload types", "");
    card(o, layout.grades.len().to_string(), "duplication grades", "");
    card(o, reps.to_string(), "repetitions seen", "");
    card(o, t.ok.to_string(), "valid, averaged", "ok");
    let bad = t.invalid + t.failed + t.skipped;
    card(o, bad.to_string(), "invalid / failed / skipped", if bad > 0 { "bad" } else { "" });
    card(o, (t.unfinished + t.not_started).to_string(), "unfinished / not started", "");
    let outliers = report.warnings.iter().filter(|w| w.kind == WarningKind::Outlier).count();
    let warnings = report.warnings.len() - outliers;
    card(o, warnings.to_string(), "warnings", if warnings == 0 { "" } else { "bad" });
    card(o, outliers.to_string(), "outliers flagged", "");
    o.push_str("</div>\n");
    o.push_str(&format!(
        "<p class=\"note\">Figures are means over the valid repetitions of each cell; intervals are {:.0} % confidence \
         intervals of the mean (Student's t). Repetitions that are invalid, failed or unfinished are listed under \
         <a href=\"#problems\">Not averaged</a> and never enter a mean; outliers (median/MAD rule) stay in every figure \
         and are listed under <a href=\"#warnings\">Warnings</a>.</p>\n",
        report.confidence * 100.0
    ));
    let mut systems: Vec<String> = Vec::new();
    for s in &report.sources {
        for (k, v) in &s.server_versions {
            let line = if v.is_empty() { k.clone() } else { format!("{k} ({v})") };
            if !systems.contains(&line) {
                systems.push(line);
            }
        }
    }
    o.push_str("<dl class=\"meta\">");
    o.push_str(&format!("<dt>systems</dt><dd>{}</dd>", esc(&systems.join(", "))));
    let ds: Vec<String> =
        report.datasets.iter().map(|d| d.label.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    o.push_str(&format!("<dt>datasets</dt><dd>{}</dd>", esc(&ds.join("; "))));
    let runs: Vec<String> = report
        .sources
        .iter()
        .map(|s| {
            format!("{} on {} ({}, {} of {} cells)", s.run_id, s.host, s.status, s.cells_finished, s.cells_planned)
        })
        .collect();
    o.push_str(&format!("<dt>runs</dt><dd>{}</dd>", esc(&runs.join("; "))));
    o.push_str("</dl>\n</section>\n");
}

fn edr_section(report: &Report, layout: &Layout, o: &mut String) {
    o.push_str("<section id=\"edr\"><h2>Effective dedup ratio</h2>\n");
    o.push_str(
        "<p class=\"note\">EDR = logical bytes ÷ (physical growth ÷ replicas): 1 = every byte stored once per replica, \
         2 = half the space. The dashed line is the dataset's <em>ideal</em> ratio: what a store that keeps each distinct \
         record once, zstd-compressed, would reach. Log scale; whiskers are confidence intervals.</p>\n",
    );
    o.push_str(&layout.legend(Some("ideal (record dedup × zstd)"), false));
    for stage in [Stage::BulkInsert, Stage::PerfileInsert, Stage::Refill] {
        if has_stage(report, stage) {
            o.push_str(&format!("<h3>{}</h3>\n", esc(&format!("EDR of {stage}"))));
            o.push_str(&layout.bar_figure(stage, "edr_replica", "EDR (log scale)", true, Some("ideal"), fmt::tick));
        }
    }
    o.push_str("<h3>Table</h3>\n<table>");
    let mut cols = key_cols_head(report);
    cols.extend([
        ("n", true),
        ("EDR bulk", true),
        ("EDR per-record", true),
        ("EDR cluster (bulk)", true),
        ("ideal", true),
        ("bulk of ideal", true),
        ("status", false),
    ]);
    o.push_str(&thead(&cols));
    o.push_str("<tbody>\n");
    let r = metric("edr_replica");
    for g in &report.groups {
        o.push_str("<tr>");
        o.push_str(&key_cols(report, g));
        o.push_str(&tdn(&format!("{}/{}", g.valid_runs, g.runs)));
        for stage in [Stage::BulkInsert, Stage::PerfileInsert] {
            o.push_str(&tdn_of(g, stage, || fmt::mean_ci(r.unit, g.stat(stage, r.id), " ± ")));
        }
        o.push_str(&tdn_of(g, Stage::BulkInsert, || {
            fmt::mean_ci(r.unit, g.stat(Stage::BulkInsert, "edr_cluster"), " ± ")
        }));
        o.push_str(&tdn(&g.ideal.map_or("–".into(), |v| format!("{v:.2}"))));
        let share = match (g.stat(Stage::BulkInsert, r.id), g.ideal) {
            (Some(s), Some(i)) if i > 0.0 => fmt::pct(s.mean / i),
            _ => "–".into(),
        };
        o.push_str(&tdn(&share));
        o.push_str(&format!("<td>{}</td>", status_badge(&g.status)));
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table>\n</section>\n");
}

/// The storage-layer simulation: per insert stage, for every system × grade, the system's
/// EDR, the storage EDR and the ideal as three bars side by side, so a reader sees where
/// duplicates were lost: in the database's layout (storage EDR low too) or only in the
/// system (storage EDR high); then a table with the zstd figure and the block dedup.
fn storage_section(report: &Report, layout: &Layout, o: &mut String) {
    const SERIES: [(&str, &str, &str); 3] = [
        ("EDR (system)", "#4477aa", "edr_replica"),
        ("storage EDR (volume, lz4)", "#ee6677", "storage_edr"),
        ("ideal (record dedup × zstd)", "#bbbbbb", ""),
    ];
    o.push_str("<section id=\"storage\"><h2>Storage-layer simulation</h2>\n");
    if !report.has_storage_sim() {
        o.push_str(
            "<p class=\"note\">No storage simulation in these runs (no system with local data files, or \
             <code>--no-storage-sim</code>).</p>\n</section>\n",
        );
        return;
    }
    o.push_str(&format!(
        "<p class=\"note\">What a volume that deduplicates and compresses fixed blocks of {} aligned to file offsets \
         (ZFS <code>dedup=on</code>, VDO) would store for each system's data files after the stage: storage EDR = \
         logical bytes ÷ those bytes. Storage EDR far below ideal: the database's layout hid the duplicates from the \
         volume; storage EDR near ideal while EDR is low: the volume would catch what the system does not. \
         Log scale; whiskers are confidence intervals.</p>\n",
        esc(&report.storage_block_label())
    ));
    o.push_str("<div class=\"legend\">");
    for (name, color, _) in SERIES {
        o.push_str(&format!("<span><i class=\"sw\" style=\"background:{color}\"></i>{}</span>", esc(name)));
    }
    o.push_str("</div>\n");
    let bar = |g: &Group, stage: Stage, id: &str, what: &str| -> Bar {
        if id.is_empty() {
            return match g.ideal {
                Some(v) => Bar { value: Some(v), tooltip: format!("{what}: ideal {v:.2}"), ..Bar::default() },
                None => Bar { note: Some("n/a".into()), tooltip: format!("{what}: no ideal"), ..Bar::default() },
            };
        }
        match g.stat(stage, id) {
            Some(st) => Bar {
                value: Some(st.mean),
                low: st.ci_low,
                high: st.ci_high,
                tooltip: format!("{what}: {id} {} (n={})", fmt::mean_ci(Unit::Ratio, Some(st), " ± "), st.n),
                note: None,
            },
            None => Bar {
                note: Some(if g.valid_runs == 0 { g.status.clone() } else { "n/a".into() }),
                tooltip: format!("{what}: {id} undefined"),
                ..Bar::default()
            },
        }
    };
    for stage in [Stage::BulkInsert, Stage::PerfileInsert, Stage::Refill] {
        let with = |g: &&Group| g.stat(stage, "storage_edr").is_some();
        if !report.groups.iter().any(|g| with(&g)) {
            continue;
        }
        o.push_str(&format!(
            "<h3>{}</h3>\n<div class=\"multiples\">\n",
            esc(&format!("{stage}: EDR, storage EDR, ideal"))
        ));
        for p in &layout.payloads {
            let groups: Vec<&Group> = report.groups.iter().filter(|g| &g.key.payload == p).filter(with).collect();
            if groups.is_empty() {
                continue;
            }
            let label = |g: &Group| {
                let mut l = format!("{} {}", g.key.system, g.key.grade);
                if report.axes_vary {
                    l.push_str(&format!(" {}", g.key.axes()));
                }
                l
            };
            let series = SERIES
                .iter()
                .map(|(name, color, id)| BarSeries {
                    name: name.to_string(),
                    color: color.to_string(),
                    bars: groups.iter().map(|g| bar(g, stage, id, &format!("{p} · {}", label(g)))).collect(),
                })
                .collect();
            let ch = BarChart {
                title: p.clone(),
                y_label: "ratio (log scale)".into(),
                log: true,
                groups: groups.iter().map(|g| label(g)).collect(),
                series,
                reference: None,
                fmt: fmt::tick,
                binary: false,
            };
            o.push_str(&format!("<figure>{}</figure>\n", svg::bar_chart(&ch)));
        }
        o.push_str("</div>\n");
    }
    o.push_str("<h3>Table</h3>\n<table>");
    let mut cols = key_cols_head(report);
    cols.extend([
        ("stage", false),
        ("n", true),
        ("EDR", true),
        ("storage EDR", true),
        ("storage EDR (zstd)", true),
        ("block dedup", true),
        ("ideal", true),
    ]);
    o.push_str(&thead(&cols));
    o.push_str("<tbody>\n");
    for g in &report.groups {
        for st in g.stages.iter().filter(|s| s.stage.is_insert() && !s.storage_block_sizes.is_empty()) {
            o.push_str("<tr>");
            o.push_str(&key_cols(report, g));
            o.push_str(&format!("<td>{}</td>", esc(&st.stage.to_string())));
            o.push_str(&tdn(&st.n.to_string()));
            for id in ["edr_replica", "storage_edr", "storage_edr_zstd", "storage_dedup"] {
                o.push_str(&tdn(&fmt::mean_ci(Unit::Ratio, st.metrics.get(id), " ± ")));
            }
            o.push_str(&tdn(&g.ideal.map_or("–".into(), |v| format!("{v:.2}"))));
            o.push_str("</tr>\n");
        }
    }
    o.push_str("</tbody></table>\n</section>\n");
}

/// Head and body of a table with a row per group and stage: the key columns, stage, n,
/// then the cells `cells` makes of the stage under `heads` (name, numeric). The caller
/// closes the table.
fn per_stage_table<'a>(
    report: &'a Report,
    heads: &[(&str, bool)],
    cells: impl Fn(&'a crate::model::StageAgg, &dyn Fn(&str) -> Option<&'a Stats>) -> Vec<String>,
) -> String {
    let mut cols: Vec<(&str, bool)> = key_cols_head(report);
    cols.extend([("stage", false), ("n", true)]);
    cols.extend_from_slice(heads);
    let mut o = thead(&cols);
    o.push_str("<tbody>\n");
    for g in &report.groups {
        for s in &g.stages {
            o.push_str("<tr>");
            o.push_str(&key_cols(report, g));
            o.push_str(&td(s.stage.name()));
            o.push_str(&tdn(&s.n.to_string()));
            let mut c = cells(s, &|id: &str| s.metrics.get(id));
            if let Some(why) = s.unsupported_reason() {
                // Not run: no figures.
                c.iter_mut().for_each(|x| *x = tdn("–"));
                c[0] = unsupported_td(&why);
            }
            o.push_str(&c.concat());
            o.push_str("</tr>\n");
        }
    }
    o
}

fn key_cols_head(report: &Report) -> Vec<(&'static str, bool)> {
    let mut v = vec![("system", false), ("payload", false), ("grade", false)];
    if report.axes_vary {
        v.push(("placement/cache/mode", false));
    }
    if report.mixed_datasets {
        v.push(("dataset", false));
    }
    v
}

fn key_cols(report: &Report, g: &Group) -> String {
    let mut o = td(&g.key.system) + &td(&g.key.payload) + &td(&g.key.grade.to_string());
    if report.axes_vary {
        o.push_str(&td(&g.key.axes()));
    }
    if report.mixed_datasets {
        o.push_str(&td(&g.key.dataset));
    }
    o
}

fn physical_section(report: &Report, layout: &Layout, o: &mut String) {
    o.push_str("<section id=\"physical\"><h2>Physical and logical bytes per stage</h2>\n");
    o.push_str(
        "<p class=\"note\">Physical size of the lab namespace after each stage (mean over repetitions) against the \
         logical bytes of the dataset (dashed). <code>bulk</code> loads the dataset in one go; <code>insert</code> \
         loads it again record by record into an emptied namespace; <code>delete</code> removes those records one by \
         one; <code>maint.</code> runs the system's space reclaim.</p>\n",
    );
    o.push_str(&layout.legend(Some("logical bytes"), true));
    o.push_str(&layout.physical_figure());
    o.push_str("<details><summary>Table: logical and physical bytes of every cell and stage</summary>\n<table>");
    o.push_str(&per_stage_table(
        report,
        &[
            ("logical", true),
            ("before", true),
            ("after", true),
            ("delta", true),
            ("EDR cluster", true),
            ("size probe", false),
        ],
        |s, m| {
            let mut r = vec![tdn(&fmt::mean(Unit::Bytes, m("logical_bytes")))];
            for id in ["physical_before", "physical_after", "physical_delta"] {
                r.push(tdn(&fmt::mean_ci(Unit::Bytes, m(id), " ± ")));
            }
            r.push(tdn(&fmt::mean_ci(Unit::Ratio, m("edr_cluster"), " ± ")));
            r.push(td(&s.methods.join(", ")));
            r
        },
    ));
    o.push_str("</tbody></table></details>\n</section>\n");
}

fn reclaim_section(report: &Report, layout: &Layout, o: &mut String) {
    if !has_stage(report, Stage::PerfileDelete) && !has_stage(report, Stage::Maintenance) {
        return;
    }
    o.push_str("<section id=\"reclaim\"><h2>Space given back after delete and maintenance</h2>\n");
    o.push_str(
        "<p class=\"note\">The share of the growth of the per-record insert that each stage gave back: 100 % = all of \
         it, 0 % = nothing, negative = the store grew. Whiskers are confidence intervals.</p>\n",
    );
    o.push_str(&layout.legend(None, false));
    for (stage, what) in
        [(Stage::PerfileDelete, "after deleting every record"), (Stage::Maintenance, "after maintenance")]
    {
        if has_metric(report, stage, "reclaimed_share") {
            o.push_str(&format!("<h3>Given back {what} ({stage})</h3>\n"));
            o.push_str(&layout.bar_figure(
                stage,
                "reclaimed_share",
                "share of growth given back",
                false,
                None,
                fmt::pct,
            ));
        }
    }
    o.push_str("<table>");
    let mut cols = key_cols_head(report);
    cols.extend([
        ("n", true),
        ("delete frees", true),
        ("delete share", true),
        ("maintenance frees", true),
        ("maintenance share", true),
        ("maintenance action", false),
    ]);
    o.push_str(&thead(&cols));
    o.push_str("<tbody>\n");
    for g in &report.groups {
        o.push_str("<tr>");
        o.push_str(&key_cols(report, g));
        o.push_str(&tdn(&format!("{}/{}", g.valid_runs, g.runs)));
        for stage in [Stage::PerfileDelete, Stage::Maintenance] {
            o.push_str(&tdn_of(g, stage, || fmt::mean_ci(Unit::Bytes, g.stat(stage, "reclaimed_bytes"), " ± ")));
            o.push_str(&tdn_of(g, stage, || fmt::mean_ci(Unit::Share, g.stat(stage, "reclaimed_share"), " ± ")));
        }
        let notes = g.stage(Stage::Maintenance).map(|s| s.notes.join("; ")).unwrap_or_default();
        o.push_str(&td(&notes));
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table>\n</section>\n");
}

fn performance_section(report: &Report, layout: &Layout, o: &mut String) {
    o.push_str("<section id=\"performance\"><h2>Throughput and latency</h2>\n");
    o.push_str(&layout.legend(None, false));
    for (stage, id, label) in [
        (Stage::BulkInsert, "mb_per_s", "MB/s (log scale)"),
        (Stage::PerfileInsert, "mb_per_s", "MB/s (log scale)"),
        (Stage::PerfileDelete, "ops_per_s", "deletes/s (log scale)"),
        (Stage::Refill, "mb_per_s", "MB/s (log scale)"),
    ] {
        if has_metric(report, stage, id) {
            o.push_str(&format!(
                "<h3>{} of {stage}</h3>\n",
                esc(if id == "mb_per_s" { "Throughput" } else { "Operations" })
            ));
            o.push_str(&layout.bar_figure(stage, id, label, true, None, fmt::tick));
        }
    }
    for stage in Stage::ALL.iter().copied().filter(|s| s.is_per_record()) {
        if has_metric(report, stage, "lat_p50_ns") {
            o.push_str(&format!("<h3>Latency percentiles of {stage} (one operation per record)</h3>\n"));
            o.push_str(&layout.legend(None, true));
            o.push_str(&layout.latency_figure(stage));
        }
    }
    o.push_str("<details><summary>Table: throughput and latency of every cell and stage</summary>\n<table>");
    o.push_str(&per_stage_table(
        report,
        &["duration", "MB/s", "ops/s", "p50", "p90", "p95", "p99", "p99.9", "max"].map(|h| (h, true)),
        |_, m| {
            let mut r = vec![
                tdn(&fmt::mean_ci(Unit::Seconds, m("duration_s"), " ± ")),
                tdn(&fmt::mean_ci(Unit::MegabytesPerSecond, m("mb_per_s"), " ± ")),
                tdn(&fmt::mean_ci(Unit::OpsPerSecond, m("ops_per_s"), " ± ")),
            ];
            for id in ["lat_p50_ns", "lat_p90_ns", "lat_p95_ns", "lat_p99_ns", "lat_p999_ns", "lat_max_ns"] {
                r.push(tdn(&fmt::mean(Unit::Nanoseconds, m(id))));
            }
            r
        },
    ));
    o.push_str("</tbody></table></details>\n</section>\n");
}

fn problems_section(report: &Report, o: &mut String) {
    o.push_str("<section id=\"problems\"><h2>Not averaged</h2>\n");
    if report.problem_cells.is_empty() {
        o.push_str(
            "<p>Every repetition finished and passed its checks (row counts, read-back, non-zero writes).</p>\n",
        );
    } else {
        o.push_str(&format!(
            "<p class=\"note\">{} repetition(s) are shown here and left out of every mean.</p>\n<table>",
            report.problem_cells.len()
        ));
        o.push_str(&thead(&[
            ("system", false),
            ("payload", false),
            ("grade", false),
            ("placement/cache/mode", false),
            ("repetition", false),
            ("status", false),
            ("reason", false),
        ]));
        o.push_str("<tbody>\n");
        for c in &report.problem_cells {
            o.push_str(&format!(
                "<tr>{}{}{}{}{}<td>{}</td>{}</tr>\n",
                td(&c.system),
                td(&c.payload),
                td(&c.grade.to_string()),
                td(&c.axes),
                td(&format!("{} #{}", c.run_id, c.run)),
                status_badge(&c.status),
                td(&c.reason)
            ));
        }
        o.push_str("</tbody></table>\n");
    }
    o.push_str("</section>\n");
}

/// The stages a system does not support; nothing when every stage ran.
fn unsupported_section(report: &Report, o: &mut String) {
    let list = unsupported_stages(report);
    if list.is_empty() {
        return;
    }
    o.push_str("<section id=\"unsupported\"><h2>Stages not supported</h2>\n");
    o.push_str(
        "<p class=\"note\">A system without a meaningful form of a stage does not run it. The stage is neither valid \
         nor invalid, shows as <em>unsupported</em> and enters no figure.</p>\n<table>",
    );
    let mut cols = key_cols_head(report);
    cols.extend([("stage", false), ("repetitions", true), ("reason", false)]);
    o.push_str(&thead(&cols));
    o.push_str("<tbody>\n");
    for (g, s) in list {
        o.push_str("<tr>");
        o.push_str(&key_cols(report, g));
        o.push_str(&td(s.stage.name()));
        o.push_str(&tdn(&format!("{} of {}", s.unsupported_runs, s.unsupported_runs + s.n)));
        o.push_str(&td(&s.unsupported.join("; ")));
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table>\n</section>\n");
}

fn warnings_section(report: &Report, o: &mut String) {
    o.push_str("<section id=\"warnings\"><h2>Warnings</h2>\n");
    let list: Vec<_> = report.warnings.iter().filter(|w| w.kind != WarningKind::Outlier).collect();
    if list.is_empty() {
        o.push_str("<p>None: the journals read cleanly and the runs agree on tool version and datasets.</p>\n");
    } else {
        o.push_str("<ul class=\"warnings\">\n");
        for w in list {
            o.push_str(&format!("<li><span class=\"kind\">{}</span>{}</li>\n", w.kind.name(), esc(&w.message)));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("<h3 id=\"outliers\">Outliers</h3>\n");
    let rows: Vec<(&Group, Stage, &crate::model::Outlier)> = report
        .groups
        .iter()
        .flat_map(|g| g.stages.iter().flat_map(move |s| s.outliers.iter().map(move |o| (g, s.stage, o))))
        .collect();
    if rows.is_empty() {
        o.push_str(&format!(
            "<p>No value is flagged by the median/MAD rule (modified z-score beyond ±{}, judged only for cells with \
             {} repetitions or more: with fewer, ordinary noise would be flagged).</p>\n",
            crate::stats::OUTLIER_SCORE,
            crate::stats::OUTLIER_MIN_N
        ));
    } else {
        o.push_str(&format!(
            "<p class=\"note\">{} value(s) have a modified z-score 0.6745·(x − median)/MAD beyond ±{} among the \
             repetitions of their cell (judged only for cells with {} repetitions or more: with fewer, ordinary noise \
             would be flagged). They are kept in every mean and interval; look at what happened in that \
             repetition.</p>\n<details><summary>Show the flagged values</summary><table>",
            rows.len(),
            crate::stats::OUTLIER_SCORE,
            crate::stats::OUTLIER_MIN_N
        ));
        let mut cols = key_cols_head(report);
        cols.extend([
            ("stage", false),
            ("metric", false),
            ("repetition", false),
            ("value", true),
            ("median", true),
            ("score", true),
        ]);
        o.push_str(&thead(&cols));
        o.push_str("<tbody>\n");
        for (g, stage, x) in rows {
            let m = metric(&x.metric);
            o.push_str("<tr>");
            o.push_str(&key_cols(report, g));
            o.push_str(&td(stage.name()));
            o.push_str(&td(m.label));
            o.push_str(&td(&format!("{} #{}", x.run_id, x.run)));
            o.push_str(&tdn(&fmt::value_unit(m.unit, x.value)));
            o.push_str(&tdn(&fmt::value_unit(m.unit, x.median)));
            o.push_str(&tdn(&format!("{:.1}", x.score)));
            o.push_str("</tr>\n");
        }
        o.push_str("</tbody></table></details>\n");
    }
    o.push_str("</section>\n");
}

/// The metrics of the statistics table.
const HEADLINE: [&str; 10] = [
    "edr_replica",
    "edr_cluster",
    "physical_delta",
    "reclaimed_share",
    "duration_s",
    "mb_per_s",
    "ops_per_s",
    "lat_p50_ns",
    "lat_p99_ns",
    "lat_max_ns",
];

fn stats_section(report: &Report, o: &mut String) {
    o.push_str("<section id=\"statistics\"><h2>All statistics</h2>\n");
    o.push_str(
        "<p class=\"note\">The headline metrics of every cell and stage; every metric of every repetition is in \
         <code>report.csv</code> (statistics) and <code>report.json</code> (statistics and samples).</p>\n\
         <details><summary>n, mean, standard deviation, confidence interval, min, max and coefficient of variation\
         </summary>\n<table>",
    );
    let mut cols = key_cols_head(report);
    cols.extend([
        ("stage", false),
        ("metric", false),
        ("n", true),
        ("mean", true),
        ("sd", true),
        ("CI low", true),
        ("CI high", true),
        ("min", true),
        ("max", true),
        ("CV", true),
    ]);
    o.push_str(&thead(&cols));
    o.push_str("<tbody>\n");
    let f = |unit: Unit, v: Option<f64>| v.map_or("–".into(), |v| fmt::value_unit(unit, v));
    for g in &report.groups {
        for s in &g.stages {
            for m in METRICS.iter().filter(|m| HEADLINE.contains(&m.id)) {
                let Some(st): Option<&Stats> = s.metrics.get(m.id) else { continue };
                o.push_str("<tr>");
                o.push_str(&key_cols(report, g));
                o.push_str(&td(s.stage.name()));
                o.push_str(&td(m.label));
                o.push_str(&tdn(&st.n.to_string()));
                o.push_str(&tdn(&fmt::value_unit(m.unit, st.mean)));
                o.push_str(&tdn(&st.sd.map_or("–".into(), |v| fmt::half(m.unit, v))));
                o.push_str(&tdn(&f(m.unit, st.ci_low)));
                o.push_str(&tdn(&f(m.unit, st.ci_high)));
                o.push_str(&tdn(&fmt::value_unit(m.unit, st.min)));
                o.push_str(&tdn(&fmt::value_unit(m.unit, st.max)));
                o.push_str(&tdn(&st.cv.map_or("–".into(), |v| format!("{:.1} %", v * 100.0))));
                o.push_str("</tr>\n");
            }
        }
    }
    o.push_str("</tbody></table></details>\n</section>\n");
}

fn metadata_section(report: &Report, o: &mut String) {
    o.push_str("<section id=\"metadata\"><h2>Runs</h2>\n");
    for s in &report.sources {
        o.push_str(&format!("<h3>{}</h3>\n<dl class=\"meta\">", esc(&s.run_id)));
        let mut row = |k: &str, v: &str| o.push_str(&format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(v)));
        row("directory", &s.path);
        row("tool", &format!("dedup-lab {} (commit {})", s.tool_version, s.git_commit));
        row("host", &s.host);
        row("started", &s.started_at);
        row("finished", s.finished_at.as_deref().unwrap_or("–"));
        row("status", &s.status);
        row(
            "cells",
            &format!("{} of {} finished; {} journal lines", s.cells_finished, s.cells_planned, s.journal_lines),
        );
        for (k, v) in &s.server_versions {
            row(&format!("server {k}"), if v.is_empty() { "(no version reported)" } else { v });
        }
        o.push_str("</dl>\n");
        let cfg = serde_json::to_string_pretty(&s.config).unwrap_or_default();
        o.push_str(&format!(
            "<details><summary>Configuration (secrets removed)</summary><pre>{}</pre></details>\n",
            esc(&cfg)
        ));
    }
    o.push_str(
        "<h3>Datasets</h3>\n<p>Ratios are logical ÷ stored. <em>ideal</em> = record dedup × zstd over the whole \
         namespace; <em>ideal per container, across</em> = the same for a store that deduplicates only inside one \
         container, when placement <code>across</code> puts every copy in another container than its original.</p>\n\
         <table>",
    );
    o.push_str(&thead(&[
        ("payload", false),
        ("grade", false),
        ("dataset", false),
        ("unique records", true),
        ("record dedup", true),
        ("4 KiB chunks", true),
        ("CDC 8 KiB", true),
        ("zstd", true),
        ("ideal", true),
        ("ideal per container, across", true),
    ]));
    o.push_str("<tbody>\n");
    for d in &report.datasets {
        o.push_str("<tr>");
        o.push_str(&td(&d.payload));
        o.push_str(&td(&d.grade.to_string()));
        o.push_str(&td(&d.label));
        match &d.intrinsic {
            Some(a) => {
                o.push_str(&tdn(&format!("{} of {}", a.unique_records, a.records)));
                for v in [
                    a.record_dedup_ratio,
                    a.fixed_4k.dedup_ratio,
                    a.fastcdc_8k.dedup_ratio,
                    a.compression_ratio,
                    a.ideal_ratio,
                    a.across.ideal_ratio,
                ] {
                    o.push_str(&tdn(&format!("{v:.2}")));
                }
            }
            None => o.push_str("<td class=\"n\" colspan=\"7\">not analysed</td>"),
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table>\n</section>\n");
}

pub fn render(report: &Report) -> String {
    let layout = Layout::new(report);
    let versions: Vec<String> =
        report.sources.iter().map(|s| s.tool_version.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut o = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    o.push_str("<title>dedup-lab report</title>\n<style>");
    o.push_str(CSS);
    o.push_str("</style>\n</head>\n<body>\n<header><h1>dedup-lab report</h1>\n");
    let ids: Vec<&str> = report.sources.iter().map(|s| s.run_id.as_str()).collect();
    o.push_str(&format!(
        "<p>{} · dedup-lab {}</p></header>\n",
        esc(&if ids.len() == 1 {
            format!("run {}", ids[0])
        } else {
            format!("{} runs: {}", ids.len(), ids.join(", "))
        }),
        esc(&versions.join(", "))
    ));
    o.push_str(
        "<nav><a href=\"#overview\">Overview</a><a href=\"#edr\">EDR</a><a href=\"#storage\">Storage sim</a><a href=\"#physical\">Physical vs logical</a>\
         <a href=\"#reclaim\">Reclaimed</a><a href=\"#performance\">Throughput &amp; latency</a>\
         <a href=\"#problems\">Not averaged</a>",
    );
    if !unsupported_stages(report).is_empty() {
        o.push_str("<a href=\"#unsupported\">Not supported</a>");
    }
    o.push_str(
        "<a href=\"#warnings\">Warnings</a><a href=\"#statistics\">Statistics</a>\
         <a href=\"#metadata\">Runs</a></nav>\n<main>\n",
    );
    overview(report, &mut o);
    edr_section(report, &layout, &mut o);
    storage_section(report, &layout, &mut o);
    physical_section(report, &layout, &mut o);
    reclaim_section(report, &layout, &mut o);
    performance_section(report, &layout, &mut o);
    problems_section(report, &mut o);
    unsupported_section(report, &mut o);
    warnings_section(report, &mut o);
    stats_section(report, &mut o);
    metadata_section(report, &mut o);
    o.push_str(&format!(
        "<footer>{} · {}</footer>\n</main>\n</body>\n</html>\n",
        esc(&super::markdown::overview_line(report)),
        "generated by dedup-lab report; self-contained: no scripts, fonts or images are loaded from anywhere"
    ));
    o
}

impl Exporter for Html {
    fn format(&self) -> Format {
        Format::Html
    }

    fn export(&self, report: &Report) -> Vec<Artifact> {
        vec![Artifact::text("report.html", render(report))]
    }
}
