//! `dedup-lab run`: plan, then (unless `--dry-run`) execute the matrix with a progress bar,
//! journal every stage, and end with the summary table.

use crate::args::RunArgs;
use crate::config::RawConfig;
use crate::plan::{RunPlan, run_plan};
use anyhow::{Context, Result, bail};
use dedup_lab_core::{CellStatus, Stage, SystemKind, format_bytes};
use dedup_lab_datagen::Dataset;
use dedup_lab_report::Format;
use dedup_lab_runner::journal::{self, Journal, RunDir};
use dedup_lab_runner::{Engine, Event, RunSpec};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::process::ExitCode;

pub fn run(args: &RunArgs, cfg: &RawConfig) -> Result<ExitCode> {
    let exports = super::report::export_formats(args.export.as_ref(), cfg)?;
    if let Some(id) = &args.resume {
        if args.dry_run {
            bail!("--resume and --dry-run cannot be combined");
        }
        return resume(args, cfg, id, &exports);
    }
    let plan = run_plan(args, cfg)?;
    let telemetry = crate::telemetry::options(cfg, &plan.spec.lab)?;
    if args.dry_run {
        print_plan(&plan);
        println!("dry run: nothing was connected to, created or written");
        return Ok(ExitCode::SUCCESS);
    }
    let run_id = new_run_id();
    let dir = RunDir::new(&plan.results, &run_id);
    let info = RunDir::new_info(&run_id, plan.spec.clone(), env!("DEDUP_LAB_GIT_COMMIT"));
    dir.create(&info)?;
    let journal = Journal::create(&dir)?;
    log::info!("run {run_id}: {} cells, results in {}", plan.spec.cells().len(), dir.path.display());
    execute(plan.spec, dir, info, journal, args, &exports, telemetry)
}

fn resume(args: &RunArgs, cfg: &RawConfig, run_id: &str, exports: &[Format]) -> Result<ExitCode> {
    let results = args.results.clone().or(cfg.results_dir.clone()).unwrap_or_else(|| "results".into());
    let dir = RunDir::new(&results, run_id);
    let mut info = dir.read_info().with_context(|| format!("cannot resume run {run_id}"))?;
    // A source that changed since the run started would mix old and new data: refuse.
    for ds in &info.spec.datasets {
        if let Some(rw) = &ds.real_world {
            dedup_lab_datagen::realworld::check_unchanged(rw).map_err(|e| {
                anyhow::anyhow!("cannot resume run {run_id}: {e}; start a new run to measure the new data")
            })?;
        }
    }
    let telemetry = crate::telemetry::options(cfg, &info.spec.lab)?;
    let (journal, report) = Journal::resume(&dir)?;
    log::info!(
        "resuming run {run_id}: {} of {} cells finished, {} journal line(s) of unfinished cells set aside in {}",
        report.finished_cells,
        info.spec.cells().len(),
        report.discarded_lines,
        journal::DISCARDED_FILE
    );
    info.status = "running".into();
    info.finished_at = None;
    dir.write_info(&info)?;
    execute(info.spec.clone(), dir, info, journal, args, exports, telemetry)
}

fn execute(
    spec: RunSpec,
    dir: RunDir,
    info: dedup_lab_runner::RunInfo,
    journal: Journal,
    args: &RunArgs,
    exports: &[Format],
    telemetry: dedup_lab_runner::telemetry::TelemetryOptions,
) -> Result<ExitCode> {
    super::install_signal_handlers()?;
    let telemetry = dedup_lab_runner::telemetry::Telemetry::open(&dir.path, &info.run_id, telemetry)
        .with_context(|| format!("cannot open the event stream and trace files in {}", dir.path.display()))?;
    let total = spec.cells().len() as u64;
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} cells  {msg}").expect("valid template"),
    );
    // A failure or warning is printed the first time it happens; the same text again (a server
    // that is down fails every cell of its system alike) only counts, and the end of the run
    // prints each failure once with the number of cells it failed.
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut repeated = 0usize;
    let mut observer = |e: Event| match e {
        Event::CellStart { key, index, total } => {
            log::debug!("cell {} of {total}: {key}", index + 1);
            bar.set_message(key.to_string())
        }
        Event::AlreadyDone { .. } => bar.inc(1),
        Event::Stage { key, stage } => {
            bar.suspend(|| log::debug!("{key} · {stage}"));
            bar.set_message(format!("{key} · {stage}"))
        }
        Event::Records { .. } => {}
        Event::CellEnd { key, status, reason } => {
            bar.inc(1);
            if status == CellStatus::Ok {
                bar.suspend(|| log::debug!("ok: {key}"));
            } else {
                let reason = reason.unwrap_or("");
                if seen.insert(format!("{status:?}: {reason}")) {
                    bar.suspend(|| log::warn!("{status:?}: {key}: {reason}"));
                } else {
                    repeated += 1;
                }
            }
        }
        Event::Warning(w) => {
            if seen.insert(format!("warning: {w}")) {
                bar.suspend(|| log::warn!("{w}"))
            } else {
                repeated += 1;
            }
        }
    };
    let threads = args.threads.unwrap_or_else(dedup_lab_datagen::dir::default_threads);
    let engine =
        Engine::new(spec.clone(), dir.clone(), info, journal, threads, &mut observer).with_telemetry(telemetry);
    let outcome = engine.run();
    bar.finish_and_clear();
    if repeated > 0 {
        log::info!("({repeated} repeated failure or warning line(s) not shown while running; counted below)");
    }
    let outcome = outcome.context("the run stopped")?;

    let (lines, bad) = journal::read_journal(&dir.journal_path())?;
    for b in &bad {
        log::warn!("{} line {} is unreadable and was skipped: {}", journal::JOURNAL_FILE, b.line, b.error);
    }
    let rows = dedup_lab_report::summarize(&lines);
    // One analysis cache for the summary and the exports: each dataset is analysed (or read
    // from the disk cache) once.
    let cache = super::analyze::analysis_cache(args.no_cache);
    print!("{}", dedup_lab_report::summary_table(&rows, &ideal_ratios(&spec, &cache)));
    println!(
        "EDR = logical bytes ÷ (physical growth ÷ replicas); ideal = the dataset's own dedup × zstd ratio; \
         'frees' = share of the per-record growth given back"
    );
    if spec.placements.contains(&dedup_lab_core::Placement::Across) {
        println!(
            "ideal/ctr = the ideal of a store that deduplicates only inside one container; \
             placement across puts every copy in another container than its original"
        );
    }
    if let Some(line) = dedup_lab_report::footprint_line(&lines) {
        println!("{line}");
    }
    println!("results: {}", dir.path.display());
    super::report::export_run(&dir.path, exports, &cache);
    super::analyze::warn_cache(&cache);
    if outcome.interrupted {
        eprintln!(
            "interrupted: the current cell was torn down; continue with `dedup-lab run --resume {}`",
            dir.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        );
        return Ok(ExitCode::from(130));
    }
    if !outcome.skipped.is_empty() && outcome.failed.is_empty() && outcome.invalid.is_empty() {
        for (k, r) in &outcome.skipped {
            eprintln!("SKIPPED {k}: {r}");
        }
    }
    if !outcome.failed.is_empty() || !outcome.invalid.is_empty() {
        // One line per distinct error, with how many cells it failed: a server that is down
        // fails every cell of its system the same way, and one sentence says it (the journal
        // keeps every cell's own line).
        for line in failure_lines(&outcome.failed) {
            eprintln!("{line}");
        }
        for (k, r) in &outcome.invalid {
            eprintln!("INVALID {k}: {r}");
        }
        for (k, r) in &outcome.skipped {
            eprintln!("SKIPPED {k}: {r}");
        }
        eprintln!("{} failed and {} invalid of {} cells", outcome.failed.len(), outcome.invalid.len(), outcome.cells);
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `FAILED  <cell>: <reason>` for a reason one cell failed with, and `FAILED  <n> cells
/// (<first cell> and <n-1> more; every cell is in the journal): <reason>` for a reason shared
/// by several, in the order the reasons first appeared.
fn failure_lines(failed: &[(dedup_lab_core::CellKey, String)]) -> Vec<String> {
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for (k, r) in failed {
        match groups.iter_mut().find(|(reason, _)| *reason == r.as_str()) {
            Some((_, cells)) => cells.push(k.to_string()),
            None => groups.push((r.as_str(), vec![k.to_string()])),
        }
    }
    groups
        .into_iter()
        .map(|(reason, cells)| match cells.len() {
            1 => format!("FAILED  {}: {reason}", cells[0]),
            n => format!("FAILED  {n} cells ({} and {} more; every cell is in the journal): {reason}", cells[0], n - 1),
        })
        .collect()
}

/// The intrinsic ideal ratios of every dataset of the run.
fn ideal_ratios(
    spec: &RunSpec,
    cache: &dedup_lab_report::intrinsic::Cache,
) -> BTreeMap<(String, String), dedup_lab_report::Ideal> {
    let mut out = BTreeMap::new();
    for ds in &spec.datasets {
        if let Ok(a) =
            Dataset::new(ds.clone()).map_err(|e| e.to_string()).and_then(|d| super::analyze::analyze_spec(&d, cache))
        {
            out.insert((ds.payload_name().to_string(), ds.grade.to_string()), dedup_lab_report::Ideal::of(&a));
        }
    }
    out
}

fn new_run_id() -> String {
    let now = dedup_lab_core::time::now_rfc3339();
    // 2026-11-22T19:45:12.345Z → 20261122-194512-345
    let digits: String = now.chars().filter(|c| c.is_ascii_digit()).collect();
    format!("{}-{}-{}-{:x}", &digits[0..8], &digits[8..14], &digits[14..17], std::process::id() & 0xffff)
}

/// Bytes one cell writes: the dataset once per insert stage.
fn cell_bytes(spec: &RunSpec, ds: &dedup_lab_datagen::DatasetSpec) -> u64 {
    let per = Dataset::new(ds.clone()).map(|d| d.total_bytes()).unwrap_or(0);
    per * spec.stages.iter().filter(|s| s.is_insert()).count() as u64
}

fn print_plan(plan: &RunPlan) {
    let spec = &plan.spec;
    let cells = spec.cells();
    let bytes: u64 = cells.iter().filter(|c| c.over_budget().is_none()).map(|c| cell_bytes(spec, &c.dataset)).sum();
    let ops: u64 =
        cells.iter().map(|c| c.dataset.records * spec.stages.iter().filter(|s| s.is_per_record()).count() as u64).sum();
    // Rough: embedded stores ~150 MB/s, servers ~50 MB/s, 0.5 ms per per-record operation.
    let secs: f64 = cells
        .iter()
        .map(|c| {
            let rate = if c.key.system.is_embedded() { 150e6 } else { 50e6 };
            cell_bytes(spec, &c.dataset) as f64 / rate + 0.3
        })
        .sum::<f64>()
        + ops as f64 * 0.0005;
    println!("plan: {} cells", cells.len());
    for s in &spec.systems {
        println!(
            "  system {:<12} variants: {}  replicas: {}  probe: {}",
            s.kind.name(),
            s.variants.join(", "),
            s.replicas,
            s.probe.name()
        );
        if let Some(max) = s.max_bytes {
            let mine: Vec<_> = cells.iter().filter(|c| c.key.system == s.kind).collect();
            let largest = mine.iter().map(|c| c.footprint()).max().unwrap_or(0);
            let over = mine.iter().filter(|c| c.over_budget().is_some()).count();
            println!(
                "         budget max_bytes {}: largest cell footprint {} ({:.0}% of the budget); {over} of {} cells would be skipped",
                format_bytes(max),
                format_bytes(largest),
                largest as f64 * 100.0 / max as f64,
                mine.len()
            );
        }
    }
    let payloads: Vec<String> = spec
        .datasets
        .iter()
        .map(|d| d.payload_name().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let grades: Vec<String> = spec
        .datasets
        .iter()
        .map(|d| d.grade.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    println!("  payload types: {}", payloads.join(", "));
    println!("  grades: {}", grades.join(", "));
    if let Some(d) = spec.datasets.iter().find(|d| d.real_world.is_none()) {
        println!("  records per dataset: {} × {} B (seed {})", d.records, d.record_size, d.seed);
    }
    for d in spec.datasets.iter().filter(|d| d.real_world.is_some()) {
        let rw = d.real_world.as_ref().expect("filtered");
        match &rw.error {
            Some(e) => println!("  real-world {} {}: FAILS: {e}", rw.name, d.grade),
            None => println!(
                "  real-world {} {}: {} records of {} B from {} file(s) ({}), {} of the source's {}",
                rw.name,
                d.grade,
                d.records,
                d.record_size,
                rw.files.len(),
                rw.source,
                format_bytes(rw.bytes),
                format_bytes(rw.source_bytes)
            ),
        }
    }
    println!("  stages: {}", spec.stages.iter().map(Stage::to_string).collect::<Vec<_>>().join(", "));
    println!(
        "  runs: {}   placements: {}   caches: {}   insertion modes: {}",
        spec.runs,
        spec.placements.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","),
        spec.caches.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(","),
        spec.modes.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
    );
    if spec.caches.contains(&dedup_lab_core::CacheState::Cold) {
        for sys in &spec.systems {
            match &sys.cold_command {
                Some(c) => {
                    println!("  cold {}: runs `{}` (timeout {} s), then reopens", sys.kind, c.command, c.timeout_secs)
                }
                None => println!("  cold {}: reopens the store and drops the OS page cache where permitted", sys.kind),
            }
        }
    }
    if spec.modes.contains(&dedup_lab_core::InsertionMode::Native) {
        println!("  native mode: on_parse_error = {}", spec.on_parse_error);
    }
    println!("  writes: {} in {} per-record operations plus bulk loads", format_bytes(bytes), ops);
    if spec.modes.contains(&dedup_lab_core::InsertionMode::Native) {
        println!("  (native cells: one per-record operation per parsed record, many per file; not counted above)");
    }
    println!("  estimate: ~{:.0} s (rough)", secs.max(1.0));
    println!("  results would go to: {}/<run-id>", plan.results.display());
    let servers: Vec<&str> = spec.systems.iter().filter(|s| !s.kind.is_embedded()).map(|s| s.kind.name()).collect();
    if !servers.is_empty() {
        println!("  servers that a real run would connect to: {}", servers.join(", "));
    }
    let _ = SystemKind::EMBEDDED;
}
