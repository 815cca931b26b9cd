//! `dedup-lab generate`: write datasets, then stop. Connects nowhere.

use crate::args::GenerateArgs;
use crate::config::RawConfig;
use crate::plan::dataset_plan;
use anyhow::{Context, Result};
use dedup_lab_core::format_bytes;
use dedup_lab_datagen::{Dataset, DatasetError, dir};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;
use std::process::ExitCode;

pub fn run(args: &GenerateArgs, cfg: &RawConfig) -> Result<ExitCode> {
    // Validate everything first: filters apply before a single byte is generated.
    let plan = dataset_plan(&args.dataset, &cfg.matrix, &cfg.real_world)?;
    // A real-world dataset whose source cannot be read fails on its own; the others go on.
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut datasets: Vec<Dataset> = Vec::new();
    for spec in &plan.specs {
        match Dataset::new(spec.clone()) {
            Ok(d) => datasets.push(d),
            Err(e) if spec.real_world.is_some() => failed.push((dir::dataset_rel_path(spec), e.to_string())),
            Err(e) => return Err(e.into()),
        }
    }
    let threads = args.threads.unwrap_or_else(dir::default_threads).max(1);
    let output = args.output.as_deref();
    if let Some(root) = output {
        dir::prepare_output(root, args.force)?;
        for ds in &datasets {
            dir::check_target(root, ds.spec())?;
        }
    }

    let total = plan.total_bytes();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut done = 0usize;
    let mut done_bytes = 0u64;
    for ds in &datasets {
        let spec = ds.spec();
        let label = dir::dataset_rel_path(spec);
        bar.set_message(format!("{} {}", spec.payload_name(), spec.grade));
        let mut progress = |n| bar.inc(n);
        let result = match output {
            None => dir::dataset_totals(ds, threads, &mut progress).inspect(|t| {
                bar.suspend(|| {
                    println!(
                        "{label} records={} duplicate_records={} logical_bytes={} dataset_sha256={}",
                        t.records, t.duplicate_records, t.logical_bytes, t.dataset_sha256
                    )
                });
            }),
            Some(root) => dir::write_dataset(root, ds, threads, &mut progress).inspect(|totals| {
                bar.suspend(|| {
                    eprintln!(
                        "{:16} {:4} {:>6} records ({:>5} duplicates) {:>10}  {}",
                        spec.payload_name(),
                        spec.grade.to_string(),
                        totals.records,
                        totals.duplicate_records,
                        format_bytes(totals.logical_bytes),
                        root.join(&label).display()
                    )
                });
            }),
        };
        match result {
            Ok(t) => {
                done += 1;
                done_bytes += t.logical_bytes;
            }
            Err(DatasetError::Interrupted) => {
                bar.finish_and_clear();
                eprintln!("interrupted: {label} was not finished (and left nothing behind); scratch files removed");
                return Ok(ExitCode::from(130));
            }
            Err(e) if spec.real_world.is_some() => {
                bar.suspend(|| eprintln!("FAILED {label}: {e}"));
                failed.push((label, e.to_string()));
            }
            Err(e) => return Err(e).with_context(|| format!("generating {} {}", spec.payload_name(), spec.grade)),
        }
    }
    bar.finish_and_clear();
    let place = output.map(Path::display).map_or("nowhere (--no-write)".to_string(), |d| d.to_string());
    let verb = if output.is_some() { "wrote" } else { "generated and hashed" };
    eprintln!("{verb} {done} dataset(s), {} in {place}", format_bytes(done_bytes));
    if !failed.is_empty() {
        for (label, e) in &failed {
            eprintln!("FAILED {label}: {e}");
        }
        eprintln!("{} of {} dataset(s) failed", failed.len(), plan.specs.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
