//! The end-of-run summary: EDR per system × payload × grade beside the dataset's intrinsic
//! ideal ratio, with the share of the per-record growth given back by delete and
//! maintenance. A pure function from journal lines to rows to text. A stage a system does
//! not support shows as `unsupported`, with the reasons under the table.

use dedup_lab_core::{CellStatus, JournalLine, Stage};
use std::collections::{BTreeMap, BTreeSet};

/// One row of the summary (means over repetitions of valid cells).
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    pub system: String,
    pub payload: String,
    pub grade: String,
    /// Insertion mode: `blob` or `native`.
    pub mode: String,
    /// Placement / cache, shown when not the defaults.
    pub axes: String,
    pub runs: usize,
    pub bulk_edr: Option<f64>,
    pub perfile_edr: Option<f64>,
    pub delete_reclaimed: Option<f64>,
    pub maintenance_reclaimed: Option<f64>,
    /// `ok`, or the worst status among the repetitions.
    pub status: String,
    /// Stages the system does not support (in some valid repetition), with the reasons.
    /// A figure without any value for such a stage shows as `unsupported`.
    pub unsupported: BTreeMap<Stage, String>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Groups journal lines by cell (over runs) and averages the stage figures of valid cells.
pub fn summarize(lines: &[JournalLine]) -> Vec<SummaryRow> {
    #[derive(Default)]
    struct Acc {
        runs: usize,
        bulk: Vec<f64>,
        perfile: Vec<f64>,
        delete: Vec<f64>,
        maint: Vec<f64>,
        status: Option<CellStatus>,
        unsupported: BTreeMap<Stage, BTreeSet<String>>,
    }
    let mut status_of = BTreeMap::new();
    for l in lines {
        if let JournalLine::Cell { cell, status, .. } = l {
            status_of.insert(cell.clone(), *status);
        }
    }
    let mut groups: BTreeMap<(String, String, String, String, String), Acc> = BTreeMap::new();
    let key_of = |c: &dedup_lab_core::CellKey| {
        let axes = format!("{}/{}", c.placement, c.cache);
        (c.system_label(), c.payload.clone(), c.grade.to_string(), axes, c.mode.to_string())
    };
    for (cell, status) in &status_of {
        let acc = groups.entry(key_of(cell)).or_default();
        acc.runs += 1;
        let worse = match (acc.status, *status) {
            (None, s) => s,
            (Some(CellStatus::Failed), _) | (_, CellStatus::Failed) => CellStatus::Failed,
            (Some(CellStatus::Invalid), _) | (_, CellStatus::Invalid) => CellStatus::Invalid,
            (Some(CellStatus::Skipped), _) | (_, CellStatus::Skipped) => CellStatus::Skipped,
            _ => CellStatus::Ok,
        };
        acc.status = Some(worse);
    }
    for l in lines {
        let JournalLine::Stage(m) = l else { continue };
        if status_of.get(&m.cell) != Some(&CellStatus::Ok) {
            continue; // invalid or unfinished cells are never averaged in
        }
        let acc = groups.entry(key_of(&m.cell)).or_default();
        if let Some(why) = &m.unsupported {
            acc.unsupported.entry(m.stage).or_default().insert(why.clone());
            continue; // not run: in no figure
        }
        match m.stage {
            Stage::BulkInsert => acc.bulk.extend(m.edr_replica),
            Stage::PerfileInsert => acc.perfile.extend(m.edr_replica),
            Stage::PerfileDelete => acc.delete.extend(m.reclaimed_share),
            Stage::Maintenance => acc.maint.extend(m.reclaimed_share),
            Stage::Refill => {}
        }
    }
    groups
        .into_iter()
        .map(|((system, payload, grade, axes, mode), a)| SummaryRow {
            system,
            payload,
            grade,
            mode,
            axes,
            runs: a.runs,
            bulk_edr: mean(&a.bulk),
            perfile_edr: mean(&a.perfile),
            delete_reclaimed: mean(&a.delete),
            maintenance_reclaimed: mean(&a.maint),
            status: match a.status {
                Some(CellStatus::Ok) => "ok",
                Some(CellStatus::Invalid) => "INVALID",
                Some(CellStatus::Failed) => "FAILED",
                Some(CellStatus::Skipped) => "skipped",
                None => "unfinished",
            }
            .into(),
            unsupported: a
                .unsupported
                .into_iter()
                .map(|(stage, why)| (stage, why.into_iter().collect::<Vec<_>>().join("; ")))
                .collect(),
        })
        .collect()
}

/// A dataset's intrinsic ideal ratios (from `analyze`): for a store deduplicating across the
/// whole namespace, and for one deduplicating only inside a container when every copy is
/// placed `across` in another container than its original.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ideal {
    pub whole: f64,
    pub across: f64,
}

impl Ideal {
    pub fn of(a: &dedup_lab_datagen::Analysis) -> Ideal {
        Ideal { whole: a.ideal_ratio, across: a.across.ideal_ratio }
    }

    /// The per-container ideal under a row's `placement/cache` axes.
    fn per_container(&self, axes: &str) -> f64 {
        if axes.starts_with("across/") { self.across } else { self.whole }
    }
}

/// The summary as an aligned text table. `ideal` maps `(payload, grade)` to the intrinsic
/// ideal ratios from `analyze`. With placement `across` in any row, a column `ideal/ctr`
/// gives the per-container ideal of each row's placement.
pub fn summary_table(rows: &[SummaryRow], ideal: &BTreeMap<(String, String), Ideal>) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    // `+ 0.0` turns a rounded −0 into 0, so a tiny negative share prints as `0%`.
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.0}%", (x * 100.0).round() + 0.0));
    // A stage's figure: its value, else `unsupported` when the system does not support it.
    let fig = |r: &SummaryRow, stage: Stage, v: Option<f64>, show: &dyn Fn(Option<f64>) -> String| {
        if v.is_none() && r.unsupported.contains_key(&stage) { "unsupported".to_string() } else { show(v) }
    };
    let figures = |r: &SummaryRow| {
        [
            fig(r, Stage::BulkInsert, r.bulk_edr, &f),
            fig(r, Stage::PerfileInsert, r.perfile_edr, &f),
            fig(r, Stage::PerfileDelete, r.delete_reclaimed, &pct),
            fig(r, Stage::Maintenance, r.maintenance_reclaimed, &pct),
        ]
    };
    // The figure columns widen only when a cell says `unsupported`.
    let wide = rows.iter().any(|r| figures(r).iter().any(|x| x == "unsupported"));
    let (we, wf) = if wide { (11, 11) } else { (8, 9) };
    let show_axes = rows.iter().any(|r| r.axes != "within/warm");
    let across = rows.iter().any(|r| r.axes.starts_with("across/"));
    let mut s = format!(
        "{:<22} {:<16} {:<5} {:<6}{} {:>we$} {:>we$} {:>8}{} {:>wf$} {:>wf$}  {}\n",
        "system",
        "payload",
        "grade",
        "mode",
        if show_axes { format!(" {:<18}", "placement/cache") } else { String::new() },
        "EDR bulk",
        "EDR rec",
        "ideal",
        if across { format!(" {:>9}", "ideal/ctr") } else { String::new() },
        "del frees",
        "mnt frees",
        "status"
    );
    for r in rows {
        let id = ideal.get(&(r.payload.clone(), r.grade.clone()));
        let [bulk, perfile, delete, maint] = figures(r);
        s.push_str(&format!(
            "{:<22} {:<16} {:<5} {:<6}{} {:>we$} {:>we$} {:>8}{} {:>wf$} {:>wf$}  {}\n",
            r.system,
            r.payload,
            r.grade,
            r.mode,
            if show_axes { format!(" {:<18}", r.axes) } else { String::new() },
            bulk,
            perfile,
            f(id.map(|i| i.whole)),
            if across { format!(" {:>9}", f(id.map(|i| i.per_container(&r.axes)))) } else { String::new() },
            delete,
            maint,
            r.status
        ));
    }
    let reasons: BTreeSet<(&str, Stage, &str)> = rows
        .iter()
        .flat_map(|r| r.unsupported.iter().map(|(st, why)| (r.system.as_str(), *st, why.as_str())))
        .collect();
    if !reasons.is_empty() {
        s.push_str("not supported, so not run (neither valid nor invalid):\n");
        for (system, stage, why) in reasons {
            s.push_str(&format!("  {system} {stage}: {why}\n"));
        }
    }
    s
}

/// One line on the instrument's own footprint over every measured stage of `lines`: its CPU
/// time and share of the machine's core-seconds, and the servers' CPU time where known.
/// `None` when no stage recorded one (a journal written before footprints existed).
pub fn footprint_line(lines: &[JournalLine]) -> Option<String> {
    let fps: Vec<&dedup_lab_core::Footprint> = lines
        .iter()
        .filter_map(|l| match l {
            JournalLine::Stage(m) => m.footprint.as_ref(),
            _ => None,
        })
        .collect();
    if fps.is_empty() {
        return None;
    }
    let secs = |ns: u64| ns as f64 / 1e9;
    let tool: u64 = fps.iter().map(|f| f.tool_cpu_ns()).sum();
    let capacity: f64 = fps.iter().map(|f| secs(f.wall_ns) * f64::from(f.cores.max(1))).sum();
    let mut s = format!(
        "instrument: dedup-lab used {:.1} s of CPU in the {} measured stages, {:.1} % of the machine's {:.0} \
         core-seconds",
        secs(tool),
        fps.len(),
        if capacity > 0.0 { 100.0 * secs(tool) / capacity } else { 0.0 },
        capacity
    );
    let with_server: Vec<&&dedup_lab_core::Footprint> = fps.iter().filter(|f| f.server_cpu_ns.is_some()).collect();
    if !with_server.is_empty() {
        let server: u64 = with_server.iter().filter_map(|f| f.server_cpu_ns).sum();
        let tool_there: u64 = with_server.iter().map(|f| f.tool_cpu_ns()).sum();
        s.push_str(&format!(
            "; the servers {:.1} s in the {} stages where their processes are known (dedup-lab {:.0} % of the two)",
            secs(server),
            with_server.len(),
            if tool_there + server > 0 { 100.0 * tool_there as f64 / (tool_there + server) as f64 } else { 0.0 }
        ));
    }
    Some(s)
}
