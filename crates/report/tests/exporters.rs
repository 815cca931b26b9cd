//! Every exporter against committed snapshots (`UPDATE_SNAPSHOTS=1` rewrites them), and the
//! LaTeX output through pdflatex when it is installed.

mod common;

use common::*;
use dedup_lab_report::{Format, Options, aggregate};
use std::process::Command;

fn report() -> dedup_lab_report::Report {
    aggregate(&[source()], &intrinsic(42), &Options::default()).unwrap()
}

#[test]
fn exporters_match_their_snapshots() {
    let r = report();
    let mut names = Vec::new();
    for f in Format::ALL {
        let files = f.exporter().export(&r);
        assert!(!files.is_empty(), "{f} exports something");
        assert_eq!(files, f.exporter().export(&r), "{f} is deterministic");
        for a in files {
            assert_snapshot(&a.path, &a.bytes);
            names.push(a.path);
        }
    }
    assert_eq!(
        names,
        [
            "report.csv",
            "report.json",
            "report.md",
            "tex/edr_bulk_insert.tex",
            "tex/edr_bulk_insert.csv",
            "tex/edr_perfile_insert.tex",
            "tex/edr_perfile_insert.csv",
            "tex/edr_plot.tex",
            "tex/reclaim.tex",
            "tex/performance.tex",
            "tex/stages.csv",
            "report.html",
        ]
    );
}

#[test]
fn csv_has_a_row_per_cell_and_stage_and_a_column_per_statistic() {
    let r = report();
    let text = String::from_utf8(Format::Csv.exporter().export(&r).remove(0).bytes).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = rows[0].split(',').collect();
    // 8 cells × 4 stages.
    assert_eq!(rows.len(), 1 + 8 * 4);
    for col in [
        "edr_replica_mean",
        "edr_replica_ci_low",
        "edr_replica_ci_high",
        "physical_delta_sd",
        "lat_p999_ns_cv",
        "mb_per_s_n",
    ] {
        assert!(header.contains(&col), "missing column {col}");
    }
    assert!(rows.iter().all(|r| r.split(',').count() >= header.len()), "every row has every column");
    assert!(text.contains("2 of 3 ok"));
}

#[test]
fn json_carries_every_sample() {
    let r = report();
    let v: serde_json::Value = serde_json::from_slice(&Format::Json.exporter().export(&r)[0].bytes).unwrap();
    assert_eq!(v["format"], "dedup-lab-report/1");
    let g = &v["groups"][0];
    assert_eq!(g["stages"][0]["samples"].as_array().unwrap().len(), g["valid_runs"].as_u64().unwrap() as usize);
    assert_eq!(v["problem_cells"].as_array().unwrap().len(), 3);
}

#[test]
fn html_is_self_contained() {
    let r = report();
    let html = String::from_utf8(Format::Html.exporter().export(&r).remove(0).bytes).unwrap();
    for needle in ["<script", "<link", "<img", "<iframe", "@import", "url("] {
        assert!(!html.contains(needle), "the page must not load anything ({needle})");
    }
    // Only the SVG namespace names a URL, and it is never fetched.
    let urls = html.matches("http://").count() + html.matches("https://").count();
    assert_eq!(urls, html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count());
    assert!(html.matches("<svg xmlns").count() >= 10);
    assert!(!html.contains("s3cr3t"));
}

/// Compiles the LaTeX tables (and, when pgfplots is installed, the chart) in a wrapper
/// document. Runs only where pdflatex is installed (Debian: texlive-latex-base,
/// texlive-latex-recommended; texlive-pictures for pgfplots).
#[test]
fn latex_compiles_with_pdflatex() {
    if Command::new("pdflatex").arg("--version").output().is_err() {
        // scripts/test.sh installs it: under the test command a missing pdflatex fails.
        assert!(
            std::env::var("DEDUP_LAB_REQUIRE_SERVERS").map_or(true, |v| v != "1"),
            "DEDUP_LAB_REQUIRE_SERVERS=1 but pdflatex is missing: apt-get install texlive-latex-base \
             texlive-latex-recommended texlive-pictures"
        );
        eprintln!("skipped: pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let r = report();
    let files = Format::Latex.exporter().export(&r);
    dedup_lab_report::write_artifacts(dir.path(), &files).unwrap();
    let pgfplots = Command::new("kpsewhich").arg("pgfplots.sty").output().is_ok_and(|o| o.status.success());
    assert!(
        pgfplots || std::env::var("DEDUP_LAB_REQUIRE_SERVERS").map_or(true, |v| v != "1"),
        "DEDUP_LAB_REQUIRE_SERVERS=1 but pgfplots is missing: apt-get install texlive-pictures"
    );
    let mut doc = String::from("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n");
    if pgfplots {
        doc.push_str("\\usepackage{pgfplots}\n\\pgfplotsset{compat=1.16}\n");
    }
    doc.push_str("\\begin{document}\n");
    for f in files.iter().filter(|f| f.path.ends_with(".tex")) {
        if f.path.ends_with("edr_plot.tex") && !pgfplots {
            continue;
        }
        doc.push_str(&format!("\\input{{{}}}\n\\clearpage\n", f.path));
    }
    doc.push_str("\\end{document}\n");
    std::fs::write(dir.path().join("main.tex"), doc).unwrap();
    let out = Command::new("pdflatex")
        .args(["-interaction=nonstopmode", "-halt-on-error", "main.tex"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("main.log")).unwrap_or_default();
    assert!(out.status.success(), "pdflatex failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), log);
    assert!(dir.path().join("main.pdf").is_file());
    assert!(!log.contains("Missing character"), "a character the font lacks:\n{log}");
    if !pgfplots {
        eprintln!("note: pgfplots is not installed; the chart was not compiled");
    }
}
