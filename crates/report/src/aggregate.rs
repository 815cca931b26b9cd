//! Merging run directories and aggregating their repetitions: a pure function from loaded
//! runs (and the intrinsic analyses of their datasets) to a [`Report`].
//!
//! Rules: only finished, valid repetitions are averaged; invalid, failed, skipped and
//! unfinished ones are listed with their reason. A stage a system does not support (not
//! run, journaled as unsupported) makes no repetition invalid and enters no statistic. Runs on different datasets for the same
//! payload × grade, or from different tool versions, are refused unless the caller allows
//! mixing; then they are flagged, and different datasets are kept apart as separate groups.
//! Outliers (median/MAD) are flagged as warnings and never dropped.

use crate::metrics::METRICS;
use crate::model::*;
use crate::stats::{Stats, mad_outliers, median};
use dedup_lab_core::{CellKey, CellStatus, JournalLine, Measurement, Stage, format_bytes};
use dedup_lab_datagen::{Analysis, DatasetSpec, RecordSize};
use dedup_lab_runner::RunInfo;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One loaded run directory.
#[derive(Debug, Clone)]
pub struct Source {
    /// The directory, as given or found.
    pub path: String,
    pub info: RunInfo,
    /// The readable journal lines, in order.
    pub lines: Vec<JournalLine>,
    /// Problems found while loading (unreadable lines), each naming the line.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Two-sided confidence level of the intervals.
    pub confidence: f64,
    /// Merge runs of different tool versions or datasets (flagged; datasets kept apart).
    pub allow_mixed: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { confidence: 0.95, allow_mixed: false }
    }
}

/// Why the runs cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(pub String);

/// A dataset as a short label: `16 × 512.0 KiB, seed 20240501`.
pub fn dataset_label(spec: &DatasetSpec) -> String {
    let size = match spec.record_size {
        RecordSize::Fixed(s) => format_bytes(s),
        RecordSize::Range { min, max } => format!("{}–{}", format_bytes(min), format_bytes(max)),
    };
    match &spec.real_world {
        // A real-world dataset is its source as it was: the identity digest tells versions apart.
        Some(rw) => format!("{} × {size}, seed {}, source {} ({})", spec.records, spec.seed, rw.source, rw.identity()),
        None => format!("{} × {size}, seed {}", spec.records, spec.seed),
    }
}

fn status_name(s: CellStatus) -> &'static str {
    match s {
        CellStatus::Ok => "ok",
        CellStatus::Invalid => "invalid",
        CellStatus::Failed => "failed",
        CellStatus::Skipped => "skipped",
    }
}

/// Keys that hold secrets or credentials; their values never reach a report.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_env") || k.ends_with("_file") {
        return false; // the name of a variable or file, not the secret
    }
    ["password", "passwd", "secret", "token", "credential", "private_key", "api_key", "access_key"]
        .iter()
        .any(|s| k.contains(s))
}

/// Removes a password from `scheme://user:password@host` URLs.
fn redact_url(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else { return s.to_string() };
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return s.to_string() };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!("{}{}:***{}", &s[..scheme_end + 3], &userinfo[..colon], &rest[at..]),
        None => s.to_string(),
    }
}

/// The configuration with every secret-looking value replaced by `"***"`.
pub fn redact(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() { Value::String("***".into()) } else { redact(v) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::String(s) => Value::String(redact_url(s)),
        other => other.clone(),
    }
}

/// The label of the dataset a cell of run `info` measured.
fn dataset_of(info: &RunInfo, k: &CellKey) -> String {
    info.spec
        .datasets
        .iter()
        .find(|d| d.payload_name() == k.payload && d.grade == k.grade)
        .map(dataset_label)
        .unwrap_or_else(|| "unknown dataset".into())
}

/// The stage executions of one run in journal order (see [`Report::executions`]): every
/// stage line (the last one where a stage of a cell is journaled twice, as in the
/// figures) and the end line of every failed cell.
fn executions(s: &Source) -> Vec<Execution> {
    let mut last_stage: HashMap<(&CellKey, Stage), usize> = HashMap::new();
    let mut last_end: HashMap<&CellKey, usize> = HashMap::new();
    for (i, l) in s.lines.iter().enumerate() {
        match l {
            JournalLine::Stage(m) => last_stage.insert((&m.cell, m.stage), i),
            JournalLine::Cell { cell, .. } => last_end.insert(cell, i),
        };
    }
    let mut out = Vec::new();
    for (i, l) in s.lines.iter().enumerate() {
        let (cell, what) = match l {
            JournalLine::Stage(m) if last_stage.get(&(&m.cell, m.stage)) == Some(&i) => {
                (&m.cell, Executed::Stage(m.clone()))
            }
            JournalLine::Cell { cell, status: CellStatus::Failed, reason, finished_at }
                if last_end.get(cell) == Some(&i) =>
            {
                let failed = Executed::Failed {
                    cell: cell.clone(),
                    // Stages run in the planned order, and a failing one journals nothing.
                    stage: s.info.spec.stages.iter().copied().find(|st| !last_stage.contains_key(&(cell, *st))),
                    reason: reason.clone().unwrap_or_else(|| "no reason recorded".into()),
                    finished_at: finished_at.clone(),
                };
                (cell, failed)
            }
            _ => continue,
        };
        out.push(Execution { dataset: dataset_of(&s.info, cell), what });
    }
    out
}

struct CellData<'a> {
    run_id: &'a str,
    key: &'a CellKey,
    dataset: String,
    status: Option<CellStatus>,
    reason: Option<String>,
    stages: BTreeMap<Stage, &'a Measurement>,
}

/// Merges and aggregates. `intrinsic` holds the analysis of each dataset spec (missing
/// ones leave the ideal ratio empty).
pub fn aggregate(
    sources: &[Source],
    intrinsic: &[(DatasetSpec, Analysis)],
    opts: &Options,
) -> Result<Report, MergeError> {
    let mut warnings: Vec<Warning> = Vec::new();
    let warn = |w: &mut Vec<Warning>, kind, message: String| w.push(Warning { kind, message });

    // The same run twice (a run directory and its results root, or a copy) counts once.
    let mut seen = BTreeSet::new();
    let mut used: Vec<&Source> = Vec::new();
    for s in sources {
        if seen.insert((s.info.run_id.clone(), s.info.started_at.clone(), s.info.host.clone())) {
            used.push(s);
        } else {
            warn(
                &mut warnings,
                WarningKind::Duplicate,
                format!("run {} at {} was given more than once; it is counted once", s.info.run_id, s.path),
            );
        }
    }

    for s in &used {
        for w in &s.warnings {
            warn(&mut warnings, WarningKind::Journal, format!("run {}: {w}", s.info.run_id));
        }
    }

    // Tool versions and builds.
    let versions: BTreeMap<&str, Vec<&str>> = used.iter().fold(BTreeMap::new(), |mut m, s| {
        m.entry(s.info.tool_version.as_str()).or_insert_with(Vec::new).push(s.info.run_id.as_str());
        m
    });
    if versions.len() > 1 {
        let list: Vec<String> = versions.iter().map(|(v, runs)| format!("{v} ({})", runs.join(", "))).collect();
        let msg = format!("the runs come from different dedup-lab versions: {}", list.join("; "));
        if !opts.allow_mixed {
            return Err(MergeError(format!(
                "{msg}; report them separately, or pass --allow-mixed to merge them with a warning"
            )));
        }
        warn(&mut warnings, WarningKind::Mixed, msg);
    }
    let commits: BTreeSet<&str> = used.iter().map(|s| s.info.git_commit.as_str()).collect();
    if commits.len() > 1 && versions.len() == 1 {
        warn(
            &mut warnings,
            WarningKind::Mixed,
            format!(
                "the runs come from different builds of dedup-lab {} (commits {})",
                used[0].info.tool_version,
                commits.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        );
    }

    // Datasets: one spec per payload × grade, unless mixing is allowed.
    // (payload, grade) → each distinct spec with the runs that used it.
    type SpecRuns = Vec<(DatasetSpec, Vec<String>)>;
    let mut specs_of: BTreeMap<(String, dedup_lab_core::Grade), SpecRuns> = BTreeMap::new();
    for s in &used {
        for d in &s.info.spec.datasets {
            let entry = specs_of.entry((d.payload_name().to_string(), d.grade)).or_default();
            match entry.iter_mut().find(|(spec, _)| spec == d) {
                Some((_, runs)) => runs.push(s.info.run_id.clone()),
                None => entry.push((d.clone(), vec![s.info.run_id.clone()])),
            }
        }
    }
    let mut mixed_datasets = false;
    for ((payload, grade), specs) in &specs_of {
        if specs.len() > 1 {
            mixed_datasets = true;
            let list: Vec<String> =
                specs.iter().map(|(spec, runs)| format!("{} in {}", dataset_label(spec), runs.join(", "))).collect();
            let msg = format!("{payload} {grade} was measured on different datasets: {}", list.join("; "));
            if !opts.allow_mixed {
                return Err(MergeError(format!(
                    "{msg}; results on different datasets are never averaged together: report them separately, \
                     or pass --allow-mixed to show them side by side as separate groups"
                )));
            }
            warn(&mut warnings, WarningKind::Mixed, format!("{msg} (kept apart as separate groups)"));
        }
    }
    let datasets: Vec<DatasetInfo> = specs_of
        .values()
        .flatten()
        .map(|(spec, _)| DatasetInfo {
            payload: spec.payload_name().to_string(),
            grade: spec.grade,
            label: dataset_label(spec),
            records: spec.records,
            record_size: spec.record_size.to_string(),
            seed: spec.seed,
            intrinsic: intrinsic.iter().find(|(s, _)| s == spec).map(|(_, a)| a.clone()),
        })
        .collect();

    // Cells of every source.
    let mut totals = Totals::default();
    let mut cells: Vec<CellData> = Vec::new();
    let mut source_infos = Vec::new();
    let mut stage_executions = Vec::new();
    for s in &used {
        stage_executions.extend(executions(s));
        let run_id = s.info.run_id.as_str();
        let mut by_cell: BTreeMap<&CellKey, CellData> = BTreeMap::new();
        for (i, l) in s.lines.iter().enumerate() {
            let key = match l {
                JournalLine::Stage(m) => &m.cell,
                JournalLine::Cell { cell, .. } => cell,
            };
            let c = by_cell.entry(key).or_insert_with(|| CellData {
                run_id,
                key,
                dataset: dataset_of(&s.info, key),
                status: None,
                reason: None,
                stages: BTreeMap::new(),
            });
            match l {
                JournalLine::Stage(m) => {
                    if c.stages.insert(m.stage, m).is_some() {
                        warn(
                            &mut warnings,
                            WarningKind::Journal,
                            format!(
                                "run {run_id}: {key} {} is in the journal more than once (line {}); the last one counts",
                                m.stage,
                                i + 1
                            ),
                        );
                    }
                }
                JournalLine::Cell { status, reason, .. } => {
                    c.status = Some(*status);
                    c.reason = reason.clone();
                }
            }
        }
        let planned = s.info.spec.cells().len();
        let finished = by_cell.values().filter(|c| c.status.is_some()).count();
        totals.planned += planned;
        totals.not_started += planned.saturating_sub(by_cell.len());
        source_infos.push(SourceInfo {
            run_id: s.info.run_id.clone(),
            path: s.path.clone(),
            tool_version: s.info.tool_version.clone(),
            git_commit: s.info.git_commit.clone(),
            host: s.info.host.clone(),
            started_at: s.info.started_at.clone(),
            finished_at: s.info.finished_at.clone(),
            status: s.info.status.clone(),
            server_versions: s.info.server_versions.clone(),
            config: redact(&serde_json::to_value(&s.info.spec).expect("run spec serialises")),
            cells_planned: planned,
            cells_finished: finished,
            journal_lines: s.lines.len(),
        });
        cells.extend(by_cell.into_values());
    }

    // Validity of every repetition.
    let mut problem_cells = Vec::new();
    let mut groups: BTreeMap<GroupKey, Vec<(&CellData, Option<String>)>> = BTreeMap::new();
    for c in &cells {
        let k = c.key;
        let gk = GroupKey {
            system: k.system_label(),
            payload: k.payload.clone(),
            grade: k.grade,
            mode: k.mode,
            placement: k.placement,
            cache: k.cache,
            dataset: c.dataset.clone(),
        };
        let stage_reasons: Vec<String> = c
            .stages
            .values()
            .filter(|m| !m.valid && m.unsupported.is_none())
            .map(|m| format!("{}: {}", m.stage, m.invalid_reasons.join("; ")))
            .collect();
        let (status, reason) = match c.status {
            None => {
                totals.unfinished += 1;
                let done: Vec<String> = c.stages.keys().map(|s| s.to_string()).collect();
                (
                    "unfinished",
                    Some(format!(
                        "no end line: running, or stopped after {}",
                        if done.is_empty() { "no stage".to_string() } else { done.join(", ") }
                    )),
                )
            }
            Some(CellStatus::Ok) if stage_reasons.is_empty() => {
                totals.ok += 1;
                ("ok", None)
            }
            Some(s) => {
                match s {
                    CellStatus::Ok | CellStatus::Invalid => totals.invalid += 1,
                    CellStatus::Failed => totals.failed += 1,
                    CellStatus::Skipped => totals.skipped += 1,
                }
                let mut reasons: Vec<String> = c.reason.iter().cloned().collect();
                for r in &stage_reasons {
                    if !reasons.iter().any(|x| x.contains(r.as_str())) {
                        reasons.push(r.clone());
                    }
                }
                let name = if s == CellStatus::Ok { "invalid" } else { status_name(s) };
                (name, Some(if reasons.is_empty() { "no reason recorded".to_string() } else { reasons.join("; ") }))
            }
        };
        if let Some(r) = &reason {
            problem_cells.push(CellIssue {
                run_id: c.run_id.to_string(),
                system: k.system_label(),
                payload: k.payload.clone(),
                grade: k.grade,
                axes: gk.axes(),
                run: k.run,
                status: status.into(),
                reason: r.clone(),
            });
        }
        let issue = reason.map(|r| format!("{status}: {} run {}: {r}", c.run_id, k.run));
        groups.entry(gk).or_default().push((c, issue));
    }
    problem_cells.sort_by(|a, b| {
        (&a.system, &a.payload, a.grade, &a.axes, &a.run_id, a.run)
            .cmp(&(&b.system, &b.payload, b.grade, &b.axes, &b.run_id, b.run))
    });

    let ideal_of: HashMap<(String, dedup_lab_core::Grade, String), (f64, f64)> = datasets
        .iter()
        .filter_map(|d| {
            let a = d.intrinsic.as_ref()?;
            Some(((d.payload.clone(), d.grade, d.label.clone()), (a.ideal_ratio, a.across.ideal_ratio)))
        })
        .collect();

    let mut out_groups = Vec::new();
    for (key, mut reps) in groups {
        reps.sort_by(|a, b| (a.0.run_id, a.0.key.run).cmp(&(b.0.run_id, b.0.key.run)));
        let valid: Vec<&CellData> = reps.iter().filter(|(_, issue)| issue.is_none()).map(|(c, _)| *c).collect();
        let issues: Vec<String> = reps.iter().filter_map(|(_, i)| i.clone()).collect();
        let status = if issues.is_empty() {
            "ok".to_string()
        } else if valid.is_empty() {
            // The worst status among the repetitions.
            ["failed", "invalid", "skipped", "unfinished"]
                .into_iter()
                .find(|s| issues.iter().any(|i| i.starts_with(s)))
                .unwrap_or("invalid")
                .to_string()
        } else {
            format!("{} of {} ok", valid.len(), reps.len())
        };
        let mut stage_list: BTreeSet<Stage> = BTreeSet::new();
        for c in &valid {
            stage_list.extend(c.stages.keys().copied());
        }
        let mut stages = Vec::new();
        for stage in stage_list {
            // Stages the system does not support were not run: they enter no figure.
            let (unsupported, with): (Vec<_>, Vec<(&CellData, &Measurement)>) = valid
                .iter()
                .filter_map(|c| c.stages.get(&stage).map(|m| (*c, *m)))
                .partition(|(_, m)| m.unsupported.is_some());
            let unsupported_reasons: BTreeSet<String> =
                unsupported.iter().filter_map(|(_, m)| m.unsupported.clone()).collect();
            let mut metrics = BTreeMap::new();
            let mut undefined = BTreeMap::new();
            let mut outliers = Vec::new();
            for metric in METRICS {
                let vals: Vec<(&CellData, f64)> =
                    with.iter().filter_map(|(c, m)| (metric.get)(m).map(|v| (*c, v))).collect();
                if vals.is_empty() {
                    continue;
                }
                if vals.len() < with.len() {
                    undefined.insert(metric.id.to_string(), with.len() - vals.len());
                }
                let xs: Vec<f64> = vals.iter().map(|(_, v)| *v).collect();
                if let Some(st) = Stats::of(&xs, opts.confidence) {
                    metrics.insert(metric.id.to_string(), st);
                }
                if metric.outliers {
                    let med = median(&xs);
                    for (i, score) in mad_outliers(&xs) {
                        let (c, v) = vals[i];
                        outliers.push(Outlier {
                            metric: metric.id.to_string(),
                            run_id: c.run_id.to_string(),
                            run: c.key.run,
                            value: v,
                            median: med,
                            score,
                        });
                    }
                }
            }
            // EDR undefined in some repetitions: say so once even when no repetition has it.
            if stage.is_insert() && !metrics.contains_key("edr_replica") && !with.is_empty() {
                undefined.insert("edr_replica".into(), with.len());
                undefined.insert("edr_cluster".into(), with.len());
            }
            let (mut notes, mut methods, mut storage_block_sizes) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
            for (_, m) in &with {
                notes.extend(m.notes.iter().cloned());
                notes.extend(m.edr_note.iter().cloned());
                methods.insert(m.physical.method.clone());
                storage_block_sizes.extend(m.storage_sim.as_ref().map(|s| s.report_block_size));
            }
            let samples = with
                .iter()
                .map(|(c, m)| Sample {
                    run_id: c.run_id.to_string(),
                    run: c.key.run,
                    values: METRICS.iter().filter_map(|mt| (mt.get)(m).map(|v| (mt.id.to_string(), v))).collect(),
                })
                .collect();
            for o in &outliers {
                warn(
                    &mut warnings,
                    WarningKind::Outlier,
                    format!(
                        "{} {} {} {}: {} of run {} #{} is {} against a median of {} (modified z-score {:.1}); kept in the figures",
                        key.system,
                        key.payload,
                        key.grade,
                        stage,
                        o.metric,
                        o.run_id,
                        o.run,
                        fmt_num(o.value),
                        fmt_num(o.median),
                        o.score
                    ),
                );
            }
            stages.push(StageAgg {
                stage,
                n: with.len(),
                metrics,
                undefined,
                notes: notes.into_iter().collect(),
                methods: methods.into_iter().collect(),
                samples,
                outliers,
                unsupported_runs: unsupported.len(),
                unsupported: unsupported_reasons.into_iter().collect(),
                storage_block_sizes: storage_block_sizes.into_iter().collect(),
            });
        }
        let ideals = ideal_of.get(&(key.payload.clone(), key.grade, key.dataset.clone())).copied();
        let ideal = ideals.map(|i| i.0);
        let ideal_per_container = ideals.map(|(whole, across)| match key.placement {
            dedup_lab_core::Placement::Within => whole,
            dedup_lab_core::Placement::Across => across,
        });
        out_groups.push(Group {
            key,
            ideal,
            ideal_per_container,
            runs: reps.len(),
            valid_runs: valid.len(),
            status,
            issues,
            stages,
        });
    }

    let axes_vary = out_groups.iter().any(|g| g.key.axes() != "within/warm/blob");
    for s in &source_infos {
        if s.cells_finished < s.cells_planned {
            warn(
                &mut warnings,
                WarningKind::Journal,
                format!(
                    "run {} is incomplete: {} of {} cells finished (status {})",
                    s.run_id, s.cells_finished, s.cells_planned, s.status
                ),
            );
        }
    }
    Ok(Report {
        format: REPORT_FORMAT.into(),
        confidence: opts.confidence,
        sources: source_infos,
        totals,
        datasets,
        mixed_datasets,
        axes_vary,
        groups: out_groups,
        problem_cells,
        warnings,
        executions: stage_executions,
    })
}

/// A number for a message: integers as such, others with four significant digits.
fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 9) as usize;
        format!("{v:.digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let v = serde_json::json!({
            "systems": [{"settings": {"password": "hunter2", "password_env": "DEDUP_PG_PASSWORD",
                "url": "postgres://u:pw@host:5432/db", "host": "h", "access_key_secret": "x"}}]
        });
        let r = redact(&v);
        let s = &r["systems"][0]["settings"];
        assert_eq!(s["password"], "***");
        assert_eq!(s["password_env"], "DEDUP_PG_PASSWORD");
        assert_eq!(s["url"], "postgres://u:***@host:5432/db");
        assert_eq!(s["host"], "h");
        assert_eq!(s["access_key_secret"], "***");
        assert!(!r.to_string().contains("hunter2") && !r.to_string().contains(":pw@"));
    }

    #[test]
    fn numbers_for_messages() {
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(1.23456), "1.235");
        assert_eq!(fmt_num(0.0123456), "0.01235");
    }
}
