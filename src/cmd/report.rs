//! `dedup-lab report`: merge result directories, aggregate the repetitions, write the
//! exports; and the exports at the end of `dedup-lab run`.

use crate::args::ReportArgs;
use crate::config::RawConfig;
use anyhow::{Context, Result};
use dedup_lab_report::intrinsic::Cache;
use dedup_lab_report::model::WarningKind;
use dedup_lab_report::{Format, Options, Report};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The export formats: the command line, else the config key `exports`, else all.
pub fn export_formats(cli: Option<&Vec<String>>, cfg: &RawConfig) -> Result<Vec<Format>> {
    match cli.or(cfg.exports.as_ref()) {
        None => Ok(Format::ALL.to_vec()),
        Some(list) => Format::parse_list(list).map_err(anyhow::Error::msg),
    }
}

/// Loads, analyses (through `cache`) and aggregates; prints the loading warnings to stderr.
fn build(paths: &[PathBuf], allow_mixed: bool, cache: &Cache) -> Result<Report> {
    let sources = dedup_lab_report::load::load(paths)?;
    let intrinsic = cache.analyses(&sources, dedup_lab_datagen::dir::default_threads());
    super::analyze::warn_cache(cache);
    let report = dedup_lab_report::aggregate(&sources, &intrinsic, &Options { allow_mixed, ..Options::default() })?;
    let mut outliers = 0;
    for w in &report.warnings {
        match w.kind {
            WarningKind::Outlier => outliers += 1,
            _ => log::warn!("{}", w.message),
        }
    }
    if outliers > 0 {
        log::info!(
            "note: {outliers} value(s) flagged as outliers by the median/MAD rule (kept in every figure; listed in the report)"
        );
    }
    Ok(report)
}

fn write(report: &Report, out: &Path, formats: &[Format]) -> Result<Vec<PathBuf>> {
    let artifacts = dedup_lab_report::export::export(report, formats);
    dedup_lab_report::write_artifacts(out, &artifacts)
        .with_context(|| format!("writing the report to {}", out.display()))
}

pub fn run(args: &ReportArgs, cfg: &RawConfig) -> Result<ExitCode> {
    let formats = export_formats(args.format.as_ref(), cfg)?;
    let report = build(&args.dirs, args.allow_mixed, &super::analyze::analysis_cache(args.no_cache))?;
    print!(
        "{}",
        dedup_lab_report::summary_table(
            &dedup_lab_report::summary_rows(&report),
            &dedup_lab_report::ideal_map(&report)
        )
    );
    println!("{}", dedup_lab_report::export::markdown::overview_line(&report));
    let out = args.output.clone().unwrap_or_else(|| args.dirs[0].clone());
    for p in write(&report, &out, &formats)? {
        println!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The exports of a run, into its directory, with the run's analysis cache. A failure is
/// reported, not fatal: the measurements are safe in the journal and `dedup-lab report` can
/// write them again.
pub fn export_run(dir: &Path, formats: &[Format], cache: &Cache) {
    if formats.is_empty() {
        return;
    }
    let result = build(&[dir.to_path_buf()], false, cache).and_then(|r| write(&r, dir, formats));
    match result {
        Ok(paths) => {
            let names: Vec<String> = paths
                .iter()
                .filter_map(|p| p.strip_prefix(dir).ok())
                .map(|p| p.display().to_string())
                .filter(|p| !p.starts_with("tex/") || p == "tex/edr_bulk_insert.tex")
                .map(|p| if p.starts_with("tex/") { "tex/*".to_string() } else { p })
                .collect();
            println!("exports: {} in {}", names.join(", "), dir.display());
        }
        Err(e) => eprintln!(
            "warning: the exports could not be written ({e:#}); write them later with `dedup-lab report {}`",
            dir.display()
        ),
    }
}
