//! `dedup-lab storage-sim PATH…`: the storage-layer dedup simulation over any files, printed
//! in the manner of `zdb -S` (a reference-count histogram per block size, then the ratios).

use crate::args::StorageSimArgs;
use crate::config::RawConfig;
use anyhow::{Context, Result};
use dedup_lab_core::{StorageSim, format_bytes};
use dedup_lab_storagesim::{Request, block_label, simulate};
use std::process::ExitCode;

pub fn run(args: &StorageSimArgs, cfg: &RawConfig) -> Result<ExitCode> {
    let opts = crate::plan::storage_sim_options(
        args.block_sizes.as_deref(),
        args.report_block_size.as_deref(),
        args.sample.as_deref(),
        &cfg.storage_sim,
    )?;
    let mut req = Request::new(&args.paths);
    if let Some(t) = args.threads {
        anyhow::ensure!(t >= 1, "invalid --threads 0: give 1 or more worker threads");
        req.threads = t;
    }
    let sim = simulate(&req, &opts).context("storage-sim")?;
    let peak = peak_rss();
    if args.json {
        let mut v = serde_json::to_value(&sim)?;
        v["peak_rss_bytes"] = peak.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render(&sim, req.threads, peak));
    }
    Ok(ExitCode::SUCCESS)
}

/// The process's peak resident set (Linux `VmHWM`), if known.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

/// A ratio estimated from a sample, with its relative standard error.
fn sampled(r: Option<f64>, rel: f64) -> String {
    match r {
        Some(r) if rel > 0.0 => format!("{r:.2} ±{:.2}%", rel * 100.0),
        r => ratio(r),
    }
}

/// The text report: a header, one histogram per block size, the summary table.
pub fn render(sim: &StorageSim, threads: usize, peak: Option<u64>) -> String {
    let secs = sim.duration_ns as f64 / 1e9;
    let mut o = format!(
        "storage-sim: {} file(s), {} read in {:.2} s ({:.0} MB/s, {} thread(s)); fingerprint tables {}{}\n",
        sim.files,
        format_bytes(sim.file_bytes),
        secs,
        if secs > 0.0 { sim.file_bytes as f64 / 1e6 / secs } else { 0.0 },
        threads,
        format_bytes(sim.table_bytes),
        peak.map_or(String::new(), |p| format!(", peak RSS {}", format_bytes(p))),
    );
    o.push_str(
        "Blocks are cut at file offsets; a file's last block is padded with zeros. Zero blocks are counted apart \
         and not stored. PSIZE = lz4 bytes, each distinct block compressed on its own.\n",
    );
    for b in &sim.blocks {
        o.push_str(&format!(
            "\nblock size {}: {} referenced, {} zero, {} distinct\n",
            block_label(b.block_size),
            b.referenced_blocks,
            b.zero_blocks,
            b.distinct_blocks
        ));
        o.push_str(&format!(
            "{:>9}  {:>10} {:>10} {:>10}  {:>10} {:>10} {:>10}\n",
            "refcnt", "blocks", "LSIZE", "PSIZE", "ref blocks", "ref LSIZE", "ref PSIZE"
        ));
        for h in &b.histogram {
            let refs = if h.refs_min == h.refs_max {
                h.refs_min.to_string()
            } else {
                format!("{}-{}", h.refs_min, h.refs_max)
            };
            o.push_str(&format!(
                "{:>9}  {:>10} {:>10} {:>10}  {:>10} {:>10} {:>10}\n",
                refs,
                h.blocks,
                short(h.lsize),
                short(h.psize),
                h.ref_blocks,
                short(h.ref_lsize),
                short(h.ref_psize)
            ));
        }
        o.push_str(&format!(
            "dedup = {}, compress lz4 = {}, zstd = {}, dedup × lz4 = {}, dedup × zstd = {}\n",
            ratio(b.dedup_ratio),
            sampled(b.lz4_ratio, b.lz4_rel_error),
            sampled(b.zstd_ratio, b.zstd_rel_error),
            sampled(b.dedup_lz4, b.lz4_rel_error),
            sampled(b.dedup_zstd, b.zstd_rel_error)
        ));
        if b.sample_rate > 1 {
            o.push_str(&format!(
                "compression estimated from {} of {} distinct blocks (1 in {}; ± = relative standard error)\n",
                b.sampled, b.distinct_blocks, b.sample_rate
            ));
        }
    }
    o.push_str(&format!(
        "\nstorage EDR = {} logical ÷ what a deduplicating, compressing volume stores (headline: {}, lz4)\n",
        format_bytes(sim.logical_bytes),
        block_label(sim.report_block_size)
    ));
    o.push_str(&format!(
        "{:>7} {:>10} {:>8} {:>10} {:>7} {:>12} {:>12} {:>12} {:>10} {:>12} {:>12}\n",
        "block",
        "referenced",
        "zero",
        "distinct",
        "dedup",
        "lz4",
        "zstd",
        "dedup×lz4",
        "stored lz4",
        "storage EDR",
        "EDR zstd"
    ));
    for b in &sim.blocks {
        o.push_str(&format!(
            "{:>7} {:>10} {:>8} {:>10} {:>7} {:>12} {:>12} {:>12} {:>10} {:>12} {:>12}\n",
            block_label(b.block_size),
            b.referenced_blocks,
            b.zero_blocks,
            b.distinct_blocks,
            ratio(b.dedup_ratio),
            sampled(b.lz4_ratio, b.lz4_rel_error),
            sampled(b.zstd_ratio, b.zstd_rel_error),
            sampled(b.dedup_lz4, b.lz4_rel_error),
            b.lz4_bytes.map_or("–".into(), short),
            sampled(b.storage_edr, b.lz4_rel_error),
            sampled(b.storage_edr_zstd, b.zstd_rel_error)
        ));
    }
    o
}

/// Bytes in a short column form: `512K`, `1.5M`, `2.0G`.
fn short(n: u64) -> String {
    let f = n as f64;
    if n < 1 << 10 {
        format!("{n}")
    } else if n < 1 << 20 {
        format!("{:.1}K", f / 1024.0)
    } else if n < 1 << 30 {
        format!("{:.1}M", f / 1048576.0)
    } else {
        format!("{:.1}G", f / 1073741824.0)
    }
}
