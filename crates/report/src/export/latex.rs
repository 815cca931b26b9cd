//! LaTeX: booktabs tables ready for `\input` (one file per table, under `tex/`), CSV files
//! laid out for pgfplots, and a pgfplots bar chart of the EDR that reads one of them.
//!
//! Every `.tex` file needs `\usepackage{booktabs}` (the plot also `pgfplots`); the files
//! refer to each other through `\dedupLabDir` (default `tex`), so a document that keeps
//! them elsewhere says `\newcommand{\dedupLabDir}{path}` first.
//!
//! A stage a system does not support shows as `unsupported` in the tables, with the reason
//! in a line under the table; the CSV files for pgfplots have `nan` there.

use super::fmt;
use super::{Artifact, Exporter, Format, UNSUPPORTED, unsupported_stages};
use crate::metrics::Unit;
use crate::model::{Group, Report};
use crate::stats::Stats;
use dedup_lab_core::Stage;
use std::collections::{BTreeMap, BTreeSet};

pub struct Latex;

/// Escapes text for LaTeX (pdflatex-safe: the few non-ASCII characters the report uses
/// become commands, anything else becomes `?`).
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                o.push('\\');
                o.push(c);
            }
            '~' => o.push_str("\\textasciitilde{}"),
            '^' => o.push_str("\\textasciicircum{}"),
            '<' => o.push_str("\\textless{}"),
            '>' => o.push_str("\\textgreater{}"),
            '×' => o.push_str("$\\times$"),
            '±' => o.push_str("$\\pm$"),
            '−' => o.push_str("$-$"),
            '–' => o.push_str("--"),
            '—' => o.push_str("---"),
            'µ' | 'μ' => o.push_str("$\\mu$"),
            '÷' => o.push_str("$\\div$"),
            c if c.is_ascii() => o.push(c),
            _ => o.push('?'),
        }
    }
    o
}

fn mean_ci(unit: Unit, s: Option<&Stats>) -> String {
    escape(&fmt::mean_ci(unit, s, " ± "))
}

/// A share in whole percent without the sign (the column header says `\%`): `100 ± 0`.
fn share_ci(s: Option<&Stats>) -> String {
    let p = |v: f64| format!("{:.0}", (v * 100.0).round() + 0.0);
    match s {
        None => "--".into(),
        Some(s) => match s.ci_half {
            Some(h) => format!("{} $\\pm$ {}", p(s.mean), p(h)),
            None => p(s.mean),
        },
    }
}

/// A table cell for `stage` of `g`: `unsupported` when the system does not support it,
/// else what `figure` makes of it.
fn cell(g: &Group, stage: Stage, figure: impl FnOnce() -> String) -> String {
    if g.unsupported(stage).is_some() { UNSUPPORTED.into() } else { figure() }
}

/// A line under a table naming the stages of `stages` (of `system`, or of every system)
/// that it shows as unsupported, or that were unsupported in some repetitions (the table
/// has the figures of the others), with the reasons; empty when there are none.
fn unsupported_note(report: &Report, stages: &[Stage], system: Option<&str>) -> String {
    let mut seen = BTreeSet::new();
    for (g, s) in unsupported_stages(report) {
        if stages.contains(&s.stage) && system.is_none_or(|x| x == g.key.system) {
            let some = if s.n > 0 { " (in some repetitions)" } else { "" };
            seen.insert((g.key.system.clone(), s.stage, some, s.unsupported.join("; ")));
        }
    }
    if seen.is_empty() {
        return String::new();
    }
    let items: Vec<String> = seen
        .iter()
        .map(|(sys, st, some, why)| {
            let why = escape(why.trim_end_matches('.'));
            format!("\\texttt{{{}}} \\texttt{{{}}}{some}: {why}", escape(sys), escape(st.name()))
        })
        .collect();
    format!("\\par\\smallskip{{\\footnotesize Unsupported, not run: {}.}}\n", items.join("; "))
}

/// Row key columns: payload, grade (+ axes, + dataset when they vary).
fn row_key(report: &Report, g: &Group) -> Vec<String> {
    let mut v = vec![escape(&g.key.payload), escape(&g.key.grade.to_string())];
    if report.axes_vary {
        v.push(escape(&g.key.axes()));
    }
    if report.mixed_datasets {
        v.push(escape(&g.key.dataset));
    }
    v
}

fn key_head(report: &Report) -> Vec<&'static str> {
    let mut v = vec!["payload", "grade"];
    if report.axes_vary {
        v.push("placement/cache/mode");
    }
    if report.mixed_datasets {
        v.push("dataset");
    }
    v
}

/// Systems in report order, and the groups by (row key, system).
type Pivot<'a> = (Vec<String>, Vec<(Vec<String>, BTreeMap<String, &'a Group>)>);

fn pivot(report: &Report) -> Pivot<'_> {
    let mut systems: Vec<String> = report.groups.iter().map(|g| g.key.system.clone()).collect();
    systems.sort();
    systems.dedup();
    let mut rows: Vec<(Vec<String>, BTreeMap<String, &Group>)> = Vec::new();
    let mut sorted: Vec<&Group> = report.groups.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.key.payload, a.key.grade, a.key.axes(), &a.key.dataset, &a.key.system).cmp(&(
            &b.key.payload,
            b.key.grade,
            b.key.axes(),
            &b.key.dataset,
            &b.key.system,
        ))
    });
    for g in sorted {
        let k = row_key(report, g);
        match rows.last_mut() {
            Some((rk, m)) if *rk == k => {
                m.insert(g.key.system.clone(), g);
            }
            _ => rows.push((k, BTreeMap::from([(g.key.system.clone(), g)]))),
        }
    }
    (systems, rows)
}

fn preamble(what: &str) -> String {
    format!("% dedup-lab report: {what}.\n% Needs \\usepackage{{booktabs}}; include with \\input{{tex/<file>}}.\n")
}

fn conf_note(report: &Report) -> String {
    format!(
        "mean $\\pm$ half-width of the {:.0}\\,\\% confidence interval (Student's $t$) over valid repetitions",
        report.confidence * 100.0
    )
}

/// EDR of one insert stage: rows payload × grade, a column per system, the ideal beside.
fn edr_table(report: &Report, stage: Stage) -> String {
    let (systems, rows) = pivot(report);
    let kh = key_head(report);
    let mut o = preamble(&format!("effective dedup ratio of {stage}"));
    o.push_str("\\begin{table}[htbp]\n\\centering\n\\small\n\\setlength{\\tabcolsep}{4pt}\n");
    o.push_str(&format!(
        "\\caption{{Effective dedup ratio (EDR) of \\texttt{{{}}} per system, beside the dataset's ideal ratio; {}.}}\n",
        escape(stage.name()),
        conf_note(report)
    ));
    o.push_str(&format!("\\label{{tab:dedup-lab-edr-{}}}\n", stage.name().replace('_', "-")));
    o.push_str(&format!("\\begin{{tabular}}{{{}r{}}}\n\\toprule\n", "l".repeat(kh.len()), "r".repeat(systems.len())));
    let mut head: Vec<String> = kh.iter().map(|h| escape(h)).collect();
    head.push("ideal".into());
    head.extend(systems.iter().map(|s| format!("\\texttt{{{}}}", escape(s))));
    o.push_str(&format!("{} \\\\\n\\midrule\n", head.join(" & ")));
    for (k, by_sys) in &rows {
        let mut r = k.clone();
        let ideal = by_sys.values().find_map(|g| g.ideal);
        r.push(ideal.map_or("--".into(), |v| format!("{v:.2}")));
        for s in &systems {
            r.push(match by_sys.get(s) {
                None => "".into(),
                Some(g) if g.valid_runs == 0 => escape(&g.status),
                Some(g) => cell(g, stage, || mean_ci(Unit::Ratio, g.stat(stage, "edr_replica"))),
            });
        }
        o.push_str(&format!("{} \\\\\n", r.join(" & ")));
    }
    o.push_str("\\bottomrule\n\\end{tabular}\n");
    o.push_str(&unsupported_note(report, &[stage], None));
    o.push_str("\\end{table}\n");
    o
}

/// The storage-layer simulation of `bulk_insert`: per system its EDR and the storage EDR
/// (lz4, at the report block size) side by side, the ideal beside.
fn storage_table(report: &Report) -> String {
    let stage = Stage::BulkInsert;
    let (systems, rows) = pivot(report);
    let kh = key_head(report);
    let mut o = preamble("system EDR, storage EDR and ideal of bulk_insert");
    o.push_str("\\begin{table}[htbp]\n\\centering\n\\small\n\\setlength{\\tabcolsep}{4pt}\n");
    o.push_str(&format!(
        "\\caption{{EDR of \\texttt{{bulk\\_insert}} per system (sys.) beside the storage EDR (stor.): logical bytes \
         $\\div$ what a volume deduplicating and lz4-compressing blocks of {} aligned to file offsets would store for the \
         system's files; ideal = the dataset's record dedup $\\times$ zstd; {}.}}\n",
        escape(&report.storage_block_label()),
        conf_note(report)
    ));
    o.push_str("\\label{tab:dedup-lab-storage}\n");
    o.push_str(&format!("\\begin{{tabular}}{{{}r{}}}\n\\toprule\n", "l".repeat(kh.len()), "rr".repeat(systems.len())));
    let mut top: Vec<String> = vec!["".into(); kh.len() + 1];
    top.extend(systems.iter().map(|s| format!("\\multicolumn{{2}}{{c}}{{\\texttt{{{}}}}}", escape(s))));
    o.push_str(&format!("{} \\\\\n", top.join(" & ")));
    let rules: Vec<String> = (0..systems.len())
        .map(|i| format!("\\cmidrule(lr){{{}-{}}}", kh.len() + 2 * i + 2, kh.len() + 2 * i + 3))
        .collect();
    o.push_str(&format!("{}\n", rules.join("")));
    let mut head: Vec<String> = kh.iter().map(|h| escape(h)).collect();
    head.push("ideal".into());
    for _ in &systems {
        head.extend(["sys.".to_string(), "stor.".to_string()]);
    }
    o.push_str(&format!("{} \\\\\n\\midrule\n", head.join(" & ")));
    for (k, by_sys) in &rows {
        let mut r = k.clone();
        r.push(by_sys.values().find_map(|g| g.ideal).map_or("--".into(), |v| format!("{v:.2}")));
        for s in &systems {
            match by_sys.get(s) {
                None => r.extend(["".into(), "".into()]),
                Some(g) if g.valid_runs == 0 => r.extend([escape(&g.status), "".into()]),
                Some(g) => {
                    for id in ["edr_replica", "storage_edr"] {
                        r.push(cell(g, stage, || mean_ci(Unit::Ratio, g.stat(stage, id))));
                    }
                }
            }
        }
        o.push_str(&format!("{} \\\\\n", r.join(" & ")));
    }
    o.push_str("\\bottomrule\n\\end{tabular}\n");
    o.push_str(&unsupported_note(report, &[stage], None));
    o.push_str("\\end{table}\n");
    o
}

/// Space given back by delete and maintenance: two columns per system.
fn reclaim_table(report: &Report) -> String {
    let (systems, rows) = pivot(report);
    let kh = key_head(report);
    let mut o = preamble("share of the per-record growth given back by delete and maintenance");
    o.push_str("\\begin{table}[htbp]\n\\centering\n\\small\n\\setlength{\\tabcolsep}{4pt}\n");
    o.push_str(&format!(
        "\\caption{{Share of the \\texttt{{perfile\\_insert}} growth given back by \\texttt{{perfile\\_delete}} (del.) \
         and \\texttt{{maintenance}} (mnt.); {}.}}\n",
        conf_note(report)
    ));
    o.push_str("\\label{tab:dedup-lab-reclaim}\n");
    o.push_str(&format!("\\begin{{tabular}}{{{}{}}}\n\\toprule\n", "l".repeat(kh.len()), "rr".repeat(systems.len())));
    let mut top: Vec<String> = vec!["".into(); kh.len()];
    top.extend(systems.iter().map(|s| format!("\\multicolumn{{2}}{{c}}{{\\texttt{{{}}}}}", escape(s))));
    o.push_str(&format!("{} \\\\\n", top.join(" & ")));
    let rules: Vec<String> = (0..systems.len())
        .map(|i| format!("\\cmidrule(lr){{{}-{}}}", kh.len() + 2 * i + 1, kh.len() + 2 * i + 2))
        .collect();
    o.push_str(&format!("{}\n", rules.join("")));
    let mut head: Vec<String> = kh.iter().map(|h| escape(h)).collect();
    for _ in &systems {
        head.extend(["del. \\%".to_string(), "mnt. \\%".to_string()]);
    }
    o.push_str(&format!("{} \\\\\n\\midrule\n", head.join(" & ")));
    for (k, by_sys) in &rows {
        let mut r = k.clone();
        for s in &systems {
            match by_sys.get(s) {
                None => r.extend(["".into(), "".into()]),
                Some(g) => {
                    for stage in [Stage::PerfileDelete, Stage::Maintenance] {
                        r.push(cell(g, stage, || share_ci(g.stat(stage, "reclaimed_share"))));
                    }
                }
            }
        }
        o.push_str(&format!("{} \\\\\n", r.join(" & ")));
    }
    o.push_str("\\bottomrule\n\\end{tabular}\n");
    o.push_str(&unsupported_note(report, &[Stage::PerfileDelete, Stage::Maintenance], None));
    o.push_str("\\end{table}\n");
    o
}

/// Throughput and latency: one table per system (rows payload × grade).
fn performance_tables(report: &Report) -> String {
    let (systems, rows) = pivot(report);
    let kh = key_head(report);
    let mut o = preamble("throughput and per-record latency, one table per system");
    for s in &systems {
        o.push_str("\\begin{table}[htbp]\n\\centering\n\\footnotesize\n\\setlength{\\tabcolsep}{4pt}\n");
        o.push_str(&format!(
            "\\caption{{Throughput and per-record latency of \\texttt{{{}}}: bulk and per-record insert in MB/s, \
             per-record insert and delete latency (p50, p99); {}.}}\n",
            escape(s),
            conf_note(report)
        ));
        let label: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        o.push_str(&format!("\\label{{tab:dedup-lab-perf-{label}}}\n"));
        o.push_str(&format!("\\begin{{tabular}}{{{}rrrrrr}}\n\\toprule\n", "l".repeat(kh.len())));
        let pad = vec![""; kh.len()].join(" & ");
        o.push_str(&format!(
            "{pad} & \\multicolumn{{2}}{{c}}{{MB/s}} & \\multicolumn{{2}}{{c}}{{insert latency}} & \
             \\multicolumn{{2}}{{c}}{{delete latency}} \\\\\n"
        ));
        let c0 = kh.len() + 1;
        o.push_str(&format!(
            "\\cmidrule(lr){{{}-{}}}\\cmidrule(lr){{{}-{}}}\\cmidrule(lr){{{}-{}}}\n",
            c0,
            c0 + 1,
            c0 + 2,
            c0 + 3,
            c0 + 4,
            c0 + 5
        ));
        let mut head: Vec<String> = kh.iter().map(|h| escape(h)).collect();
        head.extend(["bulk", "per-record", "p50", "p99", "p50", "p99"].map(String::from));
        o.push_str(&format!("{} \\\\\n\\midrule\n", head.join(" & ")));
        for (k, by_sys) in &rows {
            let Some(g) = by_sys.get(s) else { continue };
            let mut r = k.clone();
            for stage in [Stage::BulkInsert, Stage::PerfileInsert] {
                r.push(cell(g, stage, || mean_ci(Unit::MegabytesPerSecond, g.stat(stage, "mb_per_s"))));
            }
            for (stage, id) in [
                (Stage::PerfileInsert, "lat_p50_ns"),
                (Stage::PerfileInsert, "lat_p99_ns"),
                (Stage::PerfileDelete, "lat_p50_ns"),
                (Stage::PerfileDelete, "lat_p99_ns"),
            ] {
                r.push(cell(g, stage, || escape(&fmt::mean(Unit::Nanoseconds, g.stat(stage, id)))));
            }
            o.push_str(&format!("{} \\\\\n", r.join(" & ")));
        }
        o.push_str("\\bottomrule\n\\end{tabular}\n");
        o.push_str(&unsupported_note(
            report,
            &[Stage::BulkInsert, Stage::PerfileInsert, Stage::PerfileDelete],
            Some(s),
        ));
        o.push_str("\\end{table}\n");
    }
    o
}

/// A pgfplots-safe column name.
fn col(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

fn pgf_num(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite()).map_or("nan".into(), |v| v.to_string())
}

/// EDR of an insert stage for a pgfplots bar chart: one row per payload × grade, a mean
/// and a confidence half-width column per system (half-width 0 when there is none).
fn edr_csv(report: &Report, stage: Stage) -> String {
    let (systems, rows) = pivot(report);
    let mut head = vec!["label".to_string(), "payload".into(), "grade".into(), "ideal".into()];
    for s in &systems {
        head.push(format!("{}_mean", col(s)));
        head.push(format!("{}_ci", col(s)));
    }
    let mut o = head.join(",") + "\n";
    for (_, by_sys) in &rows {
        let g0 = by_sys.values().next().expect("a row has a group");
        let mut label = format!("{} {}", g0.key.payload, g0.key.grade);
        if report.axes_vary {
            label.push_str(&format!(" {}", g0.key.axes()));
        }
        let mut r = vec![
            escape(&label).replace(',', " "),
            g0.key.payload.clone(),
            g0.key.grade.to_string(),
            pgf_num(by_sys.values().find_map(|g| g.ideal)),
        ];
        for s in &systems {
            let st = by_sys.get(s).and_then(|g| g.stat(stage, "edr_replica"));
            r.push(pgf_num(st.map(|s| s.mean)));
            r.push(pgf_num(Some(st.and_then(|s| s.ci_half).unwrap_or(0.0))));
        }
        o.push_str(&(r.join(",") + "\n"));
    }
    o
}

/// Every cell × stage with the headline metrics (mean and half-width), long format.
fn stages_csv(report: &Report) -> String {
    const IDS: [&str; 9] = [
        "edr_replica",
        "edr_cluster",
        "physical_delta",
        "reclaimed_share",
        "duration_s",
        "mb_per_s",
        "ops_per_s",
        "lat_p50_ns",
        "lat_p99_ns",
    ];
    let mut head: Vec<String> =
        ["system", "payload", "grade", "placement", "cache", "mode", "stage", "n", "ideal"].map(String::from).to_vec();
    for id in IDS {
        head.push(format!("{id}_mean"));
        head.push(format!("{id}_ci"));
    }
    let mut o = head.join(",") + "\n";
    for g in &report.groups {
        for s in &g.stages {
            let mut r = vec![
                col(&g.key.system),
                g.key.payload.clone(),
                g.key.grade.to_string(),
                g.key.placement.to_string(),
                g.key.cache.to_string(),
                g.key.mode.to_string(),
                s.stage.to_string(),
                s.n.to_string(),
                pgf_num(g.ideal),
            ];
            for id in IDS {
                let st = s.metrics.get(id);
                r.push(pgf_num(st.map(|s| s.mean)));
                r.push(pgf_num(Some(st.and_then(|s| s.ci_half).unwrap_or(0.0))));
            }
            o.push_str(&(r.join(",") + "\n"));
        }
    }
    o
}

/// A pgfplots grouped bar chart of the bulk EDR (log scale) reading `edr_bulk_insert.csv`.
fn edr_plot(report: &Report) -> String {
    let (systems, rows) = pivot(report);
    let mut o = String::from(
        "% dedup-lab report: bar chart of the bulk-insert EDR per system with its confidence interval, and the ideal ratio (grey).\n\
         % Needs \\usepackage{pgfplots} (and \\pgfplotsset{compat=1.16} or newer); include with \\input{tex/edr_plot.tex}.\n\
         \\providecommand{\\dedupLabDir}{tex}\n",
    );
    o.push_str(&format!(
        "\\begin{{tikzpicture}}\n\\begin{{axis}}[\n  ybar, bar width={:.1}pt, ymode=log, log origin=infty,\n  \
         log ticks with fixed point, width=0.9\\linewidth, height=6.5cm, enlarge x limits={:.3},\n  \
         ylabel={{EDR (log scale)}},\n  \
         table/col sep=comma, xtick=data,\n  xticklabels from table={{\\dedupLabDir/edr_bulk_insert.csv}}{{label}},\n  \
         x tick label style={{rotate=60, anchor=east, font=\\scriptsize}},\n  \
         legend style={{font=\\scriptsize, at={{(0.5,1.02)}}, anchor=south}}, legend columns=-1,\n]\n",
        (180.0 / (rows.len().max(1) * (systems.len() + 1)) as f64).clamp(2.0, 9.0),
        (0.5 / rows.len().max(1) as f64).min(0.25)
    ));
    for s in &systems {
        o.push_str(&format!(
            "\\addplot+[error bars/.cd, y dir=both, y explicit] table[x expr=\\coordindex, y={c}_mean, \
             y error={c}_ci, col sep=comma]{{\\dedupLabDir/edr_bulk_insert.csv}};\n\\addlegendentry{{{}}}\n",
            escape(s),
            c = col(s)
        ));
    }
    o.push_str(
        "\\addplot+[fill=black!15, draw=black!50] table[x expr=\\coordindex, y=ideal, \
         col sep=comma]{\\dedupLabDir/edr_bulk_insert.csv};\n\\addlegendentry{ideal}\n",
    );
    o.push_str("\\end{axis}\n\\end{tikzpicture}\n");
    o
}

impl Exporter for Latex {
    fn format(&self) -> Format {
        Format::Latex
    }

    fn export(&self, report: &Report) -> Vec<Artifact> {
        let mut out = Vec::new();
        for stage in [Stage::BulkInsert, Stage::PerfileInsert] {
            if report.groups.iter().any(|g| g.stage(stage).is_some()) {
                out.push(Artifact::text(format!("tex/edr_{}.tex", stage.name()), edr_table(report, stage)));
                out.push(Artifact::text(format!("tex/edr_{}.csv", stage.name()), edr_csv(report, stage)));
            }
        }
        if report.groups.iter().any(|g| g.stage(Stage::BulkInsert).is_some()) {
            out.push(Artifact::text("tex/edr_plot.tex", edr_plot(report)));
        }
        out.push(Artifact::text("tex/reclaim.tex", reclaim_table(report)));
        if report.groups.iter().any(|g| g.stage(Stage::BulkInsert).is_some()) {
            out.push(Artifact::text("tex/storage_edr.tex", storage_table(report)));
        }
        out.push(Artifact::text("tex/performance.tex", performance_tables(report)));
        out.push(Artifact::text("tex/stages.csv", stages_csv(report)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("random_binary"), "random\\_binary");
        assert_eq!(escape("50% & $5 #1 {x}"), "50\\% \\& \\$5 \\#1 \\{x\\}");
        assert_eq!(escape("16 × 512.0 KiB"), "16 $\\times$ 512.0 KiB");
        assert_eq!(escape("1.2 ± 0.1 µs, −3"), "1.2 $\\pm$ 0.1 $\\mu$s, $-$3");
        assert_eq!(escape("a\\b~"), "a\\textbackslash{}b\\textasciitilde{}");
    }
}
