//! CSV: one row per cell × stage (a cell = system × payload × grade × axes, over its
//! repetitions), every metric a group of columns: n, mean, sd, ci_low, ci_high, min, max,
//! cv. Groups without any valid repetition get one row with an empty stage, their status
//! and the reasons. A stage the system does not support has the status
//! `unsupported: <reason>` and no figures; `undefined` counts the repetitions where the
//! stage was unsupported, with the reason.

use super::{Artifact, Exporter, Format};
use crate::metrics::METRICS;
use crate::model::{Group, Report, StageAgg};
use crate::stats::Stats;

pub struct Csv;

/// A CSV field, quoted when it needs to be (RFC 4180).
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// A number with full precision (shortest round-trip form); empty when absent.
pub fn num(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite()).map(|v| v.to_string()).unwrap_or_default()
}

const STAT_COLUMNS: [&str; 8] = ["n", "mean", "sd", "ci_low", "ci_high", "min", "max", "cv"];

fn stat_fields(s: Option<&Stats>) -> [String; 8] {
    match s {
        None => Default::default(),
        Some(s) => [
            s.n.to_string(),
            num(Some(s.mean)),
            num(s.sd),
            num(s.ci_low),
            num(s.ci_high),
            num(Some(s.min)),
            num(Some(s.max)),
            num(s.cv),
        ],
    }
}

fn header() -> Vec<String> {
    let mut h: Vec<String> = [
        "system",
        "payload",
        "grade",
        "mode",
        "placement",
        "cache",
        "dataset",
        "stage",
        "status",
        "runs",
        "valid_runs",
        "confidence",
        "ideal_ratio",
        "ideal_ratio_per_container",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in METRICS {
        h.extend(STAT_COLUMNS.iter().map(|c| format!("{}_{c}", m.id)));
    }
    h.extend(["undefined", "outliers", "issues", "storage_block_sizes"].map(String::from));
    h
}

fn row(report: &Report, g: &Group, stage: Option<&StageAgg>) -> Vec<String> {
    let k = &g.key;
    let mut r = vec![
        k.system.clone(),
        k.payload.clone(),
        k.grade.to_string(),
        k.mode.to_string(),
        k.placement.to_string(),
        k.cache.to_string(),
        k.dataset.clone(),
        stage.map(|s| s.stage.to_string()).unwrap_or_default(),
        match stage.and_then(|s| s.unsupported_reason()) {
            Some(why) => format!("unsupported: {why}"),
            None => g.status.clone(),
        },
        g.runs.to_string(),
        g.valid_runs.to_string(),
        report.confidence.to_string(),
        num(g.ideal),
        num(g.ideal_per_container),
    ];
    for m in METRICS {
        r.extend(stat_fields(stage.and_then(|s| s.metrics.get(m.id))));
    }
    let mut undefined: Vec<String> =
        stage.map(|s| s.undefined.iter().map(|(m, n)| format!("{m}:{n}")).collect()).unwrap_or_default();
    if let Some(s) = stage.filter(|s| s.unsupported_runs > 0) {
        undefined.push(format!("unsupported:{} ({})", s.unsupported_runs, s.unsupported.join("; ")));
    }
    let outliers: Vec<String> = stage
        .map(|s| s.outliers.iter().map(|o| format!("{} {}#{}={}", o.metric, o.run_id, o.run, o.value)).collect())
        .unwrap_or_default();
    r.push(undefined.join("; "));
    r.push(outliers.join("; "));
    r.push(g.issues.join(" | "));
    r.push(
        stage
            .map(|s| s.storage_block_sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(";"))
            .unwrap_or_default(),
    );
    r
}

/// The rows (header first) as fields, for other exporters that want the same table.
pub fn table(report: &Report) -> Vec<Vec<String>> {
    let mut rows = vec![header()];
    for g in &report.groups {
        if g.stages.is_empty() {
            rows.push(row(report, g, None));
        }
        for s in &g.stages {
            rows.push(row(report, g, Some(s)));
        }
    }
    rows
}

/// Fields to CSV text (LF line ends).
pub fn to_csv(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&r.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

impl Exporter for Csv {
    fn format(&self) -> Format {
        Format::Csv
    }

    fn export(&self, report: &Report) -> Vec<Artifact> {
        vec![Artifact::text("report.csv", to_csv(&table(report)))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("plain"), "plain");
        assert_eq!(num(Some(0.1)), "0.1");
        assert_eq!(num(None), "");
    }
}
