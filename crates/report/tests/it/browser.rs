//! The HTML report of the fixture in a real browser (headless Chromium).

use dedup_lab_report::{Format, Options, aggregate};

#[test]
fn html_report_renders_in_chromium() {
    let report = aggregate(&[crate::common::source()], &crate::common::intrinsic(42), &Options::default()).unwrap();
    let work = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&work).unwrap();
    let html = work.join("report.html");
    std::fs::write(&html, &Format::Html.exporter().export(&report)[0].bytes).unwrap();
    let Some(r) = crate::support::chromium::render(&html, &work, "fixture.png") else { return };
    // 2 insert stages × 2 payloads (EDR), physical 2, reclaim 2 × 2, throughput 3 × 2, latency 2 × 2.
    crate::support::chromium::assert_renders_well(&r, 20);
    assert!(r.dom.contains("rows counted 7 ≠ 8 sent"), "the invalid repetition is shown with its reason");
    assert!(r.dom.contains(">failed<") && r.dom.contains(">unfinished<"));
    eprintln!("screenshot: {}", r.screenshot.display());
}
