//! The storage-layer simulation in every exporter: each shows, per cell, the system's EDR,
//! the storage EDR at the run's report block size and the ideal, side by side. The fixture
//! simulates SQLite only, so lsm's cells must show no storage figure (never a zero).

use crate::common::*;
use dedup_lab_core::Stage;
use dedup_lab_report::{Format, Options, aggregate};

fn report() -> dedup_lab_report::Report {
    aggregate(&[source()], &intrinsic(42), &Options::default()).unwrap()
}

fn text(f: Format, path: &str) -> String {
    let a = f.exporter().export(&report()).into_iter().find(|a| a.path == path).unwrap();
    String::from_utf8(a.bytes).unwrap()
}

/// The three figures of sqlite random_binary U90's bulk insert, as the aggregate has them.
fn figures() -> (String, String, String) {
    let r = report();
    let g = r
        .groups
        .iter()
        .find(|g| g.key.system == "sqlite" && g.key.payload == "random_binary" && g.key.grade.to_string() == "U90")
        .unwrap();
    let edr = g.stat(Stage::BulkInsert, "edr_replica").unwrap().mean;
    let storage = g.stat(Stage::BulkInsert, "storage_edr").unwrap().mean;
    assert!(storage > 2.0 * edr, "the fixture's volume catches what SQLite does not: {storage} vs {edr}");
    (format!("{edr:.2}"), format!("{storage:.2}"), format!("{:.2}", g.ideal.unwrap()))
}

#[test]
fn aggregate_carries_the_storage_figures_and_their_block_size() {
    let r = report();
    assert!(r.has_storage_sim());
    assert_eq!(r.storage_block_label(), "4.0 KiB");
    for g in &r.groups {
        let s = g.stage(Stage::BulkInsert).unwrap();
        let sqlite = g.key.system == "sqlite";
        assert_eq!(s.metrics.contains_key("storage_edr"), sqlite, "{}", g.key.system);
        assert_eq!(s.storage_block_sizes, if sqlite { vec![4096] } else { vec![] });
        // Delete and maintenance stages are never simulated.
        assert!(!g.stage(Stage::Maintenance).unwrap().metrics.contains_key("storage_edr"));
    }
}

#[test]
fn markdown_shows_the_three_figures_in_one_row() {
    let (edr, storage, ideal) = figures();
    let md = text(Format::Markdown, "report.md");
    let row = md.lines().find(|l| l.starts_with("| sqlite | random_binary | U90 | bulk_insert |")).unwrap();
    let cols: Vec<&str> = row.split(" | ").collect();
    assert!(cols[5].starts_with(&edr) && cols[6].starts_with(&storage) && cols[9].starts_with(&ideal), "{row}");
    let lsm = md.lines().find(|l| l.starts_with("| lsm | random_binary | U90 | bulk_insert |")).unwrap();
    assert!(lsm.contains("| – | – | – |"), "{lsm}");
}

#[test]
fn csv_latex_html_and_json_show_them() {
    let (edr, storage, ideal) = figures();
    let csv = text(Format::Csv, "report.csv");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in ["storage_edr_mean", "storage_edr_zstd_mean", "storage_dedup_mean", "ideal_ratio", "edr_replica_mean"] {
        assert!(header.contains(&col), "missing column {col}");
    }
    let tex = text(Format::Latex, "tex/storage_edr.tex");
    let line = tex.lines().find(|l| l.starts_with("random\\_binary & U90")).unwrap();
    // ideal, then per system (lsm, sqlite) sys. and stor.
    assert!(line.contains(&ideal) && line.contains(&edr) && line.contains(&storage), "{line}");
    assert!(tex.contains("sys. & stor.") && tex.contains("4.0 KiB"), "{tex}");
    let html = text(Format::Html, "report.html");
    let section = &html[html.find("<section id=\"storage\">").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    for s in ["EDR (system)", "storage EDR (volume, lz4)", "ideal (record dedup × zstd)", "<svg", &storage, &ideal] {
        assert!(section.contains(s), "{s:?} not in the HTML storage section");
    }
    let json: serde_json::Value = serde_json::from_str(&text(Format::Json, "report.json")).unwrap();
    let groups = json["groups"].as_array().unwrap();
    assert!(groups.iter().any(|g| g["stages"][0]["metrics"]["storage_edr"]["mean"].is_number()));
}
