//! `dedup-lab analyze`: intrinsic duplicate and compression ratios, the "ideal store".

use crate::args::AnalyzeArgs;
use crate::config::RawConfig;
use crate::plan::dataset_plan;
use anyhow::{Context, Result};
use dedup_lab_core::format_bytes;
use dedup_lab_datagen::dir::{self, ManifestLine};
use dedup_lab_datagen::{Analysis, Analyzer, Dataset};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

pub fn run(args: &AnalyzeArgs, cfg: &RawConfig) -> Result<ExitCode> {
    let results: Vec<(String, Analysis)> = match &args.dir {
        Some(root) => analyze_dir(root)?,
        None => {
            let plan = dataset_plan(&args.dataset, &cfg.matrix)?;
            let mut out = Vec::new();
            for spec in plan.specs {
                let label = format!("{}/{}", spec.payload, spec.grade);
                out.push((label, analyze_spec(&Dataset::new(spec)?)));
            }
            out
        }
    };
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> =
            results.into_iter().map(|(k, a)| (k, serde_json::to_value(a).expect("analysis serialises"))).collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        print!("{}", table(&results));
    }
    Ok(ExitCode::SUCCESS)
}

/// Analyses a generated dataset, hashing on worker threads (cached per spec, so the
/// summary and the exports of a run share one analysis).
pub fn analyze_spec(ds: &Dataset) -> Analysis {
    dedup_lab_report::intrinsic::analyze(ds, dir::default_threads())
}

fn analyze_dir(root: &Path) -> Result<Vec<(String, Analysis)>> {
    let index = dir::read_index(root)?;
    let mut out = Vec::new();
    for entry in index.datasets {
        let ds_dir = root.join(&entry.path);
        let mut an = Analyzer::new();
        let mut buf = Vec::new();
        for line in dir::read_manifest(&ds_dir.join("manifest.jsonl"))? {
            if let ManifestLine::Record(r) = line? {
                let path = ds_dir.join(&r.file);
                buf.clear();
                std::fs::File::open(&path)
                    .and_then(|mut f| f.read_to_end(&mut buf))
                    .with_context(|| format!("reading {}", path.display()))?;
                an.add(&buf, None);
            }
        }
        out.push((entry.path, an.finish()));
    }
    Ok(out)
}

fn table(rows: &[(String, Analysis)]) -> String {
    let mut s = format!(
        "{:28} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "dataset", "records", "unique", "logical", "record", "4KiB", "cdc8KiB", "zstd", "ideal"
    );
    for (label, a) in rows {
        s.push_str(&format!(
            "{:28} {:>7} {:>7} {:>10} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
            label,
            a.records,
            a.unique_records,
            format_bytes(a.logical_bytes),
            a.record_dedup_ratio,
            a.fixed_4k.dedup_ratio,
            a.fastcdc_8k.dedup_ratio,
            a.compression_ratio,
            a.ideal_ratio
        ));
    }
    s.push_str("ratios are logical ÷ stored: record/4KiB/cdc8KiB = dedup only, zstd = compression of distinct records (level 3), ideal = both\n");
    s
}
