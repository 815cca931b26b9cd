//! `dedup-lab analyze`: intrinsic duplicate and compression ratios, the "ideal store".

use crate::args::AnalyzeArgs;
use crate::config::RawConfig;
use crate::plan::dataset_plan;
use anyhow::{Context, Result};
use dedup_lab_core::format_bytes;
use dedup_lab_datagen::dir::{self, ManifestLine};
use dedup_lab_datagen::realworld;
use dedup_lab_datagen::{Analysis, Analyzer, Dataset};
use dedup_lab_report::intrinsic::Cache;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

pub fn run(args: &AnalyzeArgs, cfg: &RawConfig) -> Result<ExitCode> {
    // A real-world dataset that cannot be read fails on its own row; the others are analysed.
    let results: Vec<(String, Result<Analysis, String>)> = match &args.dir {
        Some(root) => analyze_dir(root)?.into_iter().map(|(k, a)| (k, Ok(a))).collect(),
        None => {
            let plan = dataset_plan(&args.dataset, &cfg.matrix, &cfg.real_world)?;
            let cache = analysis_cache(args.no_cache);
            let mut out = Vec::new();
            for spec in plan.specs {
                let label = format!("{}/{}", spec.payload_name(), spec.grade);
                let real = spec.real_world.is_some();
                let analysis = Dataset::new(spec).map_err(|e| e.to_string()).and_then(|d| analyze_spec(&d, &cache));
                if realworld::interrupted() {
                    eprintln!("interrupted; scratch files removed");
                    return Ok(ExitCode::from(130));
                }
                if let (Err(e), false) = (&analysis, real) {
                    anyhow::bail!("{label}: {e}");
                }
                out.push((label, analysis));
            }
            warn_cache(&cache);
            out
        }
    };
    let failed = results.iter().filter(|(_, a)| a.is_err()).count();
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(k, a)| {
                let v = match a {
                    Ok(a) => serde_json::to_value(a).expect("analysis serialises"),
                    Err(e) => serde_json::json!({ "error": e }),
                };
                (k.clone(), v)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        print!("{}", table(&results));
    }
    if failed > 0 {
        for (label, e) in results.iter().filter_map(|(l, a)| a.as_ref().err().map(|e| (l, e))) {
            eprintln!("FAILED {label}: {e}");
        }
        eprintln!("{failed} of {} dataset(s) could not be analysed", results.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Analyses a dataset, hashing on worker threads, unless `cache` has it (the summary and
/// the exports of a run share one cache, later invocations the disk); a real-world source
/// may fail to read.
pub fn analyze_spec(ds: &Dataset, cache: &Cache) -> Result<Analysis, String> {
    cache.analyze(ds, dir::default_threads()).map_err(|e| e.to_string())
}

/// The analysis cache of one invocation: `$DEDUP_LAB_CACHE_DIR/analysis` (see
/// `dedup_lab_report::intrinsic`), or memory only with `--no-cache`.
pub fn analysis_cache(no_cache: bool) -> Cache {
    if no_cache { Cache::in_memory() } else { Cache::from_env() }
}

/// Warns about the first problem the disk cache met, once per invocation: it costs time,
/// never a result.
pub fn warn_cache(cache: &Cache) {
    if let Some(note) = cache.take_note() {
        log::warn!("{note}");
    }
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
                an.add(&buf, None, r.duplicate_of.is_some());
            }
        }
        out.push((entry.path, an.finish()));
    }
    Ok(out)
}

fn table(rows: &[(String, Result<Analysis, String>)]) -> String {
    let mut s = format!(
        "{:28} {:>7} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "dataset", "records", "unique", "logical", "record", "4KiB", "cdc8KiB", "zstd", "ideal", "across"
    );
    for (label, a) in rows {
        let a = match a {
            Ok(a) => a,
            Err(e) => {
                s.push_str(&format!("{label:28} FAILED: {e}\n"));
                continue;
            }
        };
        s.push_str(&format!(
            "{:28} {:>7} {:>7} {:>10} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}\n",
            label,
            a.records,
            a.unique_records,
            format_bytes(a.logical_bytes),
            a.record_dedup_ratio,
            a.fixed_4k.dedup_ratio,
            a.fastcdc_8k.dedup_ratio,
            a.compression_ratio,
            a.ideal_ratio,
            a.across.ideal_ratio
        ));
    }
    s.push_str(
        "ratios are logical ÷ stored: record/4KiB/cdc8KiB = dedup only, zstd = compression of distinct records \
         (level 3), ideal = both\n\
         across = the ideal of a store that deduplicates only inside one container, with placement `across` \
         (every copy in another container than its original); with `within` it is the ideal\n",
    );
    s
}
