//! `dedup-lab verify`: re-hash a dataset directory against its manifests.

use anyhow::Result;
use dedup_lab_datagen::dir;
use std::path::Path;
use std::process::ExitCode;

pub fn run(root: &Path) -> Result<ExitCode> {
    let reports = dir::verify(root)?;
    let mut bad = 0;
    for r in &reports {
        if r.problems.is_empty() {
            println!("ok      {} ({} records)", r.dataset, r.records_checked);
        } else {
            bad += 1;
            println!("FAILED  {} ({} records)", r.dataset, r.records_checked);
            for p in &r.problems {
                println!("        {p}");
            }
        }
    }
    if bad > 0 {
        eprintln!("dedup-lab: {bad} of {} dataset(s) do not match their manifest", reports.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
