//! `dedup-lab preflight` and `dedup-lab cleanup`: talk to each selected system without
//! measuring anything.

use crate::args::{CleanupArgs, PreflightArgs};
use crate::config::RawConfig;
use crate::plan::system_specs;
use anyhow::Result;
use dedup_lab_core::{LabName, Namespace};
use dedup_lab_runner::engine::backend_config_for;
use std::process::ExitCode;

fn lab(cfg: &RawConfig) -> Result<LabName> {
    Ok(cfg.lab.as_deref().unwrap_or("dedup_lab").parse()?)
}

/// Connect, authenticate, create and drop the namespace, check consistency.
pub fn preflight(args: &PreflightArgs, cfg: &RawConfig) -> Result<ExitCode> {
    let lab = lab(cfg)?;
    let systems = system_specs(args.systems.as_ref(), cfg, &lab)?;
    let scratch = tempdir()?;
    let mut failed = 0;
    for sys in &systems {
        for variant in &sys.variants {
            let mut bcfg = backend_config_for(&lab, sys.kind, &sys.settings);
            bcfg.work_dir = scratch.clone();
            let label = format!("{}/{variant}", sys.kind);
            let result = dedup_lab_backends::open(sys.kind, variant, &bcfg).and_then(|mut b| {
                let endpoint = b.endpoint();
                b.preflight(&Namespace::new(&lab, 2)).map(|r| (endpoint, r))
            });
            match result {
                Ok((endpoint, r)) => {
                    println!("ok      {label} at {endpoint} {}", r.server_version.unwrap_or_default());
                    for c in r.checks {
                        println!("        ✓ {c}");
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("FAILED  {label}: {}", e.chain());
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Lists, and unless `--dry-run` drops, what is in the lab namespace of every selected
/// system: on each server (opened in the first of its variants), in each embedded store's
/// configured `dir`, and in the embedded stores of every run under the results directory.
/// Only what the backend finds inside the lab namespace is touched: a file next to a store,
/// or a table in another schema, stays.
pub fn cleanup(args: &CleanupArgs, cfg: &RawConfig) -> Result<ExitCode> {
    let lab = lab(cfg)?;
    let systems = system_specs(args.systems.as_ref(), cfg, &lab)?;
    let results = args.results.clone().or(cfg.results_dir.clone()).unwrap_or_else(|| "results".into());
    let verb = if args.dry_run { "found" } else { "dropped" };
    let mut failed = 0;
    // Where each system's stores are: one place for a server or a configured `dir`, else
    // the `lab` folder of every run directory.
    let run_labs: Vec<std::path::PathBuf> = match std::fs::read_dir(&results) {
        Ok(rd) => {
            let mut v: Vec<_> = rd.flatten().map(|e| e.path().join("lab")).filter(|p| p.is_dir()).collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    };
    for sys in &systems {
        let entry = dedup_lab_backends::entry(sys.kind);
        let places: Vec<Option<&std::path::Path>> = if entry.embedded && sys.settings.get("dir").is_none() {
            run_labs.iter().map(|p| Some(p.as_path())).collect()
        } else {
            vec![None]
        };
        let variant = sys.variants.first().map(String::as_str).unwrap_or("default");
        for place in places {
            let mut bcfg = backend_config_for(&lab, sys.kind, &sys.settings);
            if let Some(p) = place {
                bcfg.work_dir = p.to_path_buf();
            }
            let outcome = dedup_lab_backends::open(sys.kind, variant, &bcfg).and_then(|mut b| {
                let found = b.inventory(&lab)?;
                if !args.dry_run && !found.is_empty() {
                    b.drop_lab(&lab)?;
                    let left = b.inventory(&lab)?;
                    if !left.is_empty() {
                        return Err(dedup_lab_core::BackendError::msg(format!(
                            "{}: still there after dropping: {}",
                            b.endpoint(),
                            left.join(", ")
                        )));
                    }
                }
                Ok((b.endpoint(), found))
            });
            match outcome {
                Ok((endpoint, found)) if found.is_empty() => {
                    println!("clean   {} at {endpoint}: nothing in lab `{lab}`", sys.kind)
                }
                Ok((endpoint, found)) => {
                    println!("{verb:<7} {} at {endpoint}: {} object(s) of lab `{lab}`", sys.kind, found.len());
                    for f in found {
                        println!("        {f}");
                    }
                }
                Err(e) => {
                    failed += 1;
                    println!("FAILED  {}: {}", sys.kind, e.chain());
                }
            }
        }
    }
    // Embedded stores live in <run>/lab/<system>: remove folders the drops left empty.
    if !args.dry_run {
        for p in &run_labs {
            remove_empty_dirs(p);
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Removes `dir` and the folders below it that are empty (nothing else).
fn remove_empty_dirs(dir: &std::path::Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir); // fails, harmlessly, unless empty
}

fn tempdir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("dedup-lab-preflight-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
