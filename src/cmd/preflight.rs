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

/// One line of the preflight table.
struct Row {
    target: String,
    endpoint: String,
    auth: String,
    namespace: String,
    consistency: String,
    probe: String,
    verdict: Result<(), String>,
}

impl Row {
    fn new(target: String) -> Row {
        let dash = || "—".to_string();
        Row {
            target,
            endpoint: dash(),
            auth: dash(),
            namespace: dash(),
            consistency: dash(),
            probe: dash(),
            verdict: Ok(()),
        }
    }

    /// Marks the row failed, in the column the error class points at.
    fn failed(&mut self, e: &dedup_lab_core::BackendError) {
        use dedup_lab_core::ErrorClass as C;
        match e.class() {
            Some(C::Unreachable) => self.endpoint = format!("{} (unreachable)", self.endpoint),
            Some(C::Timeout) => self.endpoint = format!("{} (no answer)", self.endpoint),
            Some(C::Authentication) => self.auth = "FAILED".into(),
            Some(C::Permission) => {
                self.auth = "ok".into();
                self.namespace = "FAILED (permission)".into()
            }
            Some(C::Config) => self.endpoint = format!("{} (configuration)", self.endpoint),
            _ => self.namespace = "FAILED".into(),
        }
        self.verdict = Err(e.chain());
    }
}

fn print_table(rows: &[Row]) {
    let head = ["target", "endpoint", "auth", "namespace", "consistency", "probe reading", "verdict"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.target.clone(),
                r.endpoint.clone(),
                r.auth.clone(),
                r.namespace.clone(),
                r.consistency.clone(),
                r.probe.clone(),
                if r.verdict.is_ok() { "ok".into() } else { "FAILED".into() },
            ]
        })
        .collect();
    let width = |i: usize| cells.iter().map(|c| c[i].chars().count()).chain([head[i].len()]).max().unwrap_or(0);
    let widths: Vec<usize> = (0..7).map(width).collect();
    let line = |c: &[String]| {
        let parts: Vec<String> = c.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    println!();
    line(&head.map(String::from));
    for c in &cells {
        line(c);
    }
    for r in rows {
        if let Err(why) = &r.verdict {
            println!("FAILED  {}: {why}", r.target);
        }
    }
}

/// One system in one variant: open, the backend's preflight (connect, authenticate, create
/// and drop the namespace, consistency), then the size probe on an empty namespace.
fn system_row(
    lab: &LabName,
    sys: &dedup_lab_runner::SystemSpec,
    variant: &str,
    scratch: &std::path::Path,
    details: &mut Vec<String>,
) -> Row {
    let label = format!("{}/{variant}", sys.kind);
    let mut row = Row::new(label.clone());
    let embedded = dedup_lab_backends::entry(sys.kind).embedded;
    let mut bcfg = backend_config_for(lab, sys.kind, &sys.settings);
    bcfg.work_dir = scratch.to_path_buf();
    let mut b = match dedup_lab_backends::open(sys.kind, variant, &bcfg) {
        Ok(b) => b,
        Err(e) => {
            row.endpoint = "(not opened)".into();
            row.failed(&e);
            return row;
        }
    };
    row.endpoint = b.endpoint();
    let report = match b.preflight(&Namespace::new(lab, 2)) {
        Ok(r) => r,
        Err(e) => {
            row.failed(&e);
            return row;
        }
    };
    row.auth = if embedded { "— (embedded)".into() } else { "ok".into() };
    row.namespace = "created, dropped".into();
    if report.checks.iter().any(|c| c.contains("consisten") || c.contains("fresh connection")) {
        row.consistency = "ok".into();
    }
    details.push(format!("ok      {label} at {} {}", row.endpoint, report.server_version.unwrap_or_default()));
    details.extend(report.checks.iter().map(|c| format!("        ✓ {c}")));
    // The configured probe, once, on an empty namespace (created and torn down again).
    let ns = Namespace::new(lab, 1);
    let reading = dedup_lab_runner::probe::Probe::new(&sys.probe, sys.kind.name()).and_then(|probe| {
        b.reset(&ns)?;
        let method = probe.method(b.as_mut(), &ns)?;
        let r = probe.read(b.as_mut(), &ns)?;
        Ok(format!("{method}: {}", dedup_lab_core::format_bytes(r.bytes)))
    });
    let torn = b.teardown(&ns);
    match (reading, torn) {
        (Ok(r), Ok(())) => row.probe = r,
        (Err(e), _) => {
            row.probe = "FAILED".into();
            row.verdict = Err(format!("size probe: {}", e.chain()));
        }
        (Ok(r), Err(e)) => {
            row.probe = r;
            row.namespace = "FAILED (teardown)".into();
            row.verdict = Err(format!("teardown after the probe reading: {}", e.chain()));
        }
    }
    row
}

/// A telemetry sink: reach and authenticate without sending anything.
fn sink_row(target: &str, sink: &mut dyn dedup_lab_runner::telemetry::sink::TopicSink) -> Row {
    let mut row = Row::new(target.to_string());
    row.endpoint = sink.target();
    match sink.check() {
        Ok(found) => {
            row.auth = "ok".into();
            row.namespace = found;
        }
        Err(why) => {
            row.auth = "?".into();
            row.verdict = Err(why);
        }
    }
    row
}

/// Connect, authenticate, create and drop the namespace, check consistency, read the size
/// probe, for every selected system in every variant, and reach every configured sink;
/// one table at the end, exit code 1 when anything failed.
pub fn preflight(args: &PreflightArgs, cfg: &RawConfig) -> Result<ExitCode> {
    let lab = lab(cfg)?;
    let systems = system_specs(args.systems.as_ref(), cfg, &lab)?;
    let mut telemetry = crate::telemetry::options(cfg, &lab)?;
    let scratch = tempdir()?;
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for sys in &systems {
        for variant in &sys.variants {
            rows.push(system_row(&lab, sys, variant, &scratch, &mut details));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if let Some(k) = telemetry.kafka.as_mut() {
        rows.push(sink_row("trace → kafka", k.metrics.as_mut()));
        rows.push(sink_row("events → kafka", k.events.as_mut()));
    }
    if let Some(p) = telemetry.push.as_mut() {
        rows.push(sink_row("pushgateway", p.as_mut()));
    }
    for d in details {
        println!("{d}");
    }
    print_table(&rows);
    let failed = rows.iter().filter(|r| r.verdict.is_err()).count();
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
