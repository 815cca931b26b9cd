//! `dedup-lab preflight` and `dedup-lab cleanup`: talk to each selected system without
//! measuring anything.

use crate::args::PreflightArgs;
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

/// Drops lab namespaces left behind by interrupted runs: on every selected server, and the
/// embedded stores under `<results>/<run>/lab`.
pub fn cleanup(args: &PreflightArgs, cfg: &RawConfig) -> Result<ExitCode> {
    let lab = lab(cfg)?;
    let systems = system_specs(args.systems.as_ref(), cfg, &lab)?;
    let results = cfg.results_dir.clone().unwrap_or_else(|| "results".into());
    let mut failed = 0;
    for sys in &systems {
        if sys.kind.is_embedded() && sys.settings.get("dir").is_none() {
            continue; // handled below, per run directory
        }
        let bcfg = backend_config_for(&lab, sys.kind, &sys.settings);
        match dedup_lab_backends::open(sys.kind, "default", &bcfg)
            .and_then(|mut b| b.teardown(&Namespace::new(&lab, 2)))
        {
            Ok(()) => println!("dropped the lab namespace `{lab}` on {}", sys.kind),
            Err(e) => {
                failed += 1;
                println!("FAILED  {}: {}", sys.kind, e.chain());
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(&results) {
        for e in rd.flatten() {
            let lab_dir = e.path().join("lab");
            if lab_dir.is_dir() {
                std::fs::remove_dir_all(&lab_dir)
                    .map_err(|err| anyhow::anyhow!("removing {}: {err}", lab_dir.display()))?;
                println!("removed {}", lab_dir.display());
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn tempdir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("dedup-lab-preflight-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
