//! `dedup-lab generate`: write datasets, then stop. Connects nowhere.

use crate::args::GenerateArgs;
use crate::config::RawConfig;
use crate::plan::dataset_plan;
use anyhow::{Context, Result};
use dedup_lab_core::format_bytes;
use dedup_lab_datagen::{Dataset, dir};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::process::ExitCode;

pub fn run(args: &GenerateArgs, cfg: &RawConfig) -> Result<ExitCode> {
    // Validate everything first: filters apply before a single byte is generated.
    let plan = dataset_plan(&args.dataset, &cfg.matrix)?;
    let datasets: Vec<Dataset> = plan.specs.iter().cloned().map(Dataset::new).collect::<Result<_, _>>()?;
    let threads = args.threads.unwrap_or_else(dir::default_threads).max(1);
    dir::prepare_output(&args.output, args.force)?;

    let total = plan.total_bytes();
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    for ds in &datasets {
        let spec = ds.spec();
        bar.set_message(format!("{} {}", spec.payload, spec.grade));
        let totals = dir::write_dataset(&args.output, ds, threads, &mut |n| bar.inc(n))
            .with_context(|| format!("generating {} {}", spec.payload, spec.grade))?;
        bar.suspend(|| {
            eprintln!(
                "{:16} {:4} {:>6} records ({:>5} duplicates) {:>10}  {}",
                spec.payload.name(),
                spec.grade.to_string(),
                totals.records,
                totals.duplicate_records,
                format_bytes(totals.logical_bytes),
                args.output.join(dir::dataset_rel_path(spec)).display()
            )
        });
    }
    bar.finish_and_clear();
    eprintln!("wrote {} dataset(s), {} in {}", datasets.len(), format_bytes(total), args.output.display());
    Ok(ExitCode::SUCCESS)
}
