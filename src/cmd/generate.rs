//! `dedup-lab generate`: write datasets, then stop. Connects nowhere.

use crate::args::GenerateArgs;
use crate::config::RawConfig;
use crate::plan::dataset_plan;
use anyhow::{Context, Result};
use dedup_lab_core::format_bytes;
use dedup_lab_datagen::{Dataset, dir};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;
use std::process::ExitCode;

pub fn run(args: &GenerateArgs, cfg: &RawConfig) -> Result<ExitCode> {
    // Validate everything first: filters apply before a single byte is generated.
    let plan = dataset_plan(&args.dataset, &cfg.matrix)?;
    let datasets: Vec<Dataset> = plan.specs.iter().cloned().map(Dataset::new).collect::<Result<_, _>>()?;
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
    for ds in &datasets {
        let spec = ds.spec();
        bar.set_message(format!("{} {}", spec.payload, spec.grade));
        let mut progress = |n| bar.inc(n);
        let Some(root) = output else {
            let t = dir::dataset_totals(ds, threads, &mut progress);
            bar.suspend(|| {
                println!(
                    "{} records={} duplicate_records={} logical_bytes={} dataset_sha256={}",
                    dir::dataset_rel_path(spec),
                    t.records,
                    t.duplicate_records,
                    t.logical_bytes,
                    t.dataset_sha256
                )
            });
            continue;
        };
        let totals = dir::write_dataset(root, ds, threads, &mut progress)
            .with_context(|| format!("generating {} {}", spec.payload, spec.grade))?;
        bar.suspend(|| {
            eprintln!(
                "{:16} {:4} {:>6} records ({:>5} duplicates) {:>10}  {}",
                spec.payload.name(),
                spec.grade.to_string(),
                totals.records,
                totals.duplicate_records,
                format_bytes(totals.logical_bytes),
                root.join(dir::dataset_rel_path(spec)).display()
            )
        });
    }
    bar.finish_and_clear();
    let place = output.map(Path::display).map_or("nowhere (--no-write)".to_string(), |d| d.to_string());
    let verb = if output.is_some() { "wrote" } else { "generated and hashed" };
    eprintln!("{verb} {} dataset(s), {} in {place}", datasets.len(), format_bytes(total));
    Ok(ExitCode::SUCCESS)
}
