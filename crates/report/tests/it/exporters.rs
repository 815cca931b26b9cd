//! Every exporter against committed snapshots (`UPDATE_SNAPSHOTS=1` rewrites them), and the
//! LaTeX output through pdflatex when it is installed.

use crate::common::*;
use dedup_lab_report::{Format, Options, aggregate};

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
            "tex/storage_edr.tex",
            "tex/performance.tex",
            "tex/stages.csv",
            "report.html",
            "experiment_results.csv",
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

/// The LaTeX tables and the pgfplots chart of the fixture compile (see `crate::common::latex_compiles`).
#[test]
fn latex_compiles_with_pdflatex() {
    latex_compiles(&report());
}
