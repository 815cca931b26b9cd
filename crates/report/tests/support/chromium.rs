//! Renders an HTML report in headless Chromium: dumps the DOM after load with a probe
//! script (script errors, failed or attempted resource loads, how many charts have a size
//! on screen) and takes a screenshot. Without Chromium the caller skips, unless
//! `DEDUP_LAB_REQUIRE_SERVERS=1`, where a missing browser is a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the page reported about itself after loading.
#[derive(Debug)]
pub struct Rendered {
    /// The DOM after load (with the probe's `<pre id="dedup-check">`).
    pub dom: String,
    /// `{charts, drawn, bars, lines, errors: [...], resources: [...], width, height}`.
    pub check: serde_json::Value,
    pub screenshot: PathBuf,
}

const PROBE: &str = r#"<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target && (e.target.src || e.target.href);
  window.__errors.push(String(e.message || 'resource error') + (t ? ' ' + t : ''));
}, true);
window.addEventListener('load', function () {
  var charts = Array.prototype.slice.call(document.querySelectorAll('svg.chart'));
  var drawn = charts.filter(function (s) { var r = s.getBoundingClientRect(); return r.width > 100 && r.height > 100; });
  var res = performance.getEntriesByType('resource').map(function (r) { return r.name; });
  var out = document.createElement('pre');
  out.id = 'dedup-check';
  out.textContent = JSON.stringify({
    charts: charts.length, drawn: drawn.length,
    bars: document.querySelectorAll('svg.chart rect.bar').length,
    lines: document.querySelectorAll('svg.chart path.line').length,
    errors: window.__errors, resources: res,
    width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight
  });
  document.body.appendChild(out);
});
</script>"#;

fn find_chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|b| {
        Command::new(b).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

fn run(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).spawn().expect("chromium starts");
    let deadline = Instant::now() + limit;
    // Read stdout on a thread so a large DOM cannot fill the pipe and stall the browser.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut b).ok();
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut b).ok();
        b
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            let s = child.wait().unwrap();
            panic!("chromium did not finish in {limit:?} ({s})");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output { status, stdout: out_t.join().unwrap(), stderr: err_t.join().unwrap() }
}

fn browser(bin: &str, profile: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Renders `html` (a file), or returns `None` (skip) when Chromium is not installed.
pub fn render(html: &Path, work: &Path, screenshot_name: &str) -> Option<Rendered> {
    let Some(bin) = find_chromium() else {
        if std::env::var("DEDUP_LAB_REQUIRE_SERVERS").is_ok_and(|v| v == "1") {
            panic!("chromium is required (DEDUP_LAB_REQUIRE_SERVERS=1): apt-get install chromium");
        }
        eprintln!("skipped: chromium is not installed, the HTML report was not rendered (apt-get install chromium)");
        return None;
    };
    std::fs::create_dir_all(work).unwrap();
    let page = std::fs::read_to_string(html).unwrap();
    let probed = work.join("probed.html");
    std::fs::write(&probed, page.replacen("<head>", &format!("<head>\n{PROBE}"), 1)).unwrap();
    let url = |p: &Path| format!("file://{}", p.canonicalize().unwrap().display());

    let out = run(
        browser(bin, &work.join("profile-dom")).args(["--virtual-time-budget=10000", "--dump-dom"]).arg(url(&probed)),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "chromium --dump-dom failed: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let start = dom
        .find("<pre id=\"dedup-check\">")
        .unwrap_or_else(|| panic!("the probe did not run; DOM:\n{}", &dom[..dom.len().min(2000)]))
        + "<pre id=\"dedup-check\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end].replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let check: serde_json::Value = serde_json::from_str(&json).unwrap();

    let screenshot = work.join(screenshot_name);
    let out = run(
        browser(bin, &work.join("profile-shot"))
            .args(["--window-size=1400,2600"])
            .arg(format!("--screenshot={}", screenshot.display()))
            .arg(url(html)),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "chromium --screenshot failed: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&screenshot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "the screenshot is not a real picture");
    Some(Rendered { dom, check, screenshot })
}

/// The checks every rendered report must pass.
pub fn assert_renders_well(r: &Rendered, min_charts: u64) {
    let c = &r.check;
    assert_eq!(c["errors"], serde_json::json!([]), "the page reported errors: {c}");
    assert_eq!(c["resources"], serde_json::json!([]), "the page loaded resources (it must be self-contained): {c}");
    let charts = c["charts"].as_u64().unwrap();
    assert!(charts >= min_charts, "only {charts} charts: {c}");
    assert_eq!(c["drawn"], c["charts"], "every chart has a size on screen: {c}");
    assert!(c["bars"].as_u64().unwrap() > 0 && c["lines"].as_u64().unwrap() > 0, "{c}");
    assert!(c["width"].as_u64().unwrap() <= 1400, "no horizontal overflow at 1400 px: {c}");
    for id in
        ["overview", "edr", "physical", "reclaim", "performance", "problems", "warnings", "statistics", "metadata"]
    {
        assert!(r.dom.contains(&format!("<section id=\"{id}\"")), "section {id} is missing");
    }
}
