//! The remote size probes (`prometheus`, `scrape`) and the Pushgateway client against the REAL
//! local servers of `scripts/services.sh up prometheus`: Prometheus scraping every second a
//! node-exporter that runs only its textfile collector (basic auth) and a Pushgateway.
//!
//! The tests feed the exporter by writing `.prom` files into its textfile directory (a temp
//! name, then a rename, so it never reads half a file): Longhorn- and kube-state-shaped
//! series, several for one volume. What Prometheus holds is checked with `curl`, not with the
//! client under test. Every file, volume and run label carries a token of its own, so tests
//! running in parallel (and files a crashed run left) never share a series.
//! Skips without `DEDUP_PROM_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`.

use crate::support::{journal, run_env, stages, text_of};
use dedup_lab_core::{CellStatus, JournalLine, Stage};
use dedup_lab_runner::RunError;
use dedup_lab_runner::prom::{
    AuthSpec, PromProbe, PromSource, PromTarget, PushTarget, ScrapeProbe, ScrapeSource, Settle, push_stage,
    settle_moved, settle_steady,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const VARS: &[&str] = &[
    "DEDUP_PROM_URL",
    "DEDUP_PROM_TEXTFILE_DIR",
    "DEDUP_NODE_EXPORTER_URL",
    "DEDUP_NODE_EXPORTER_USER",
    "DEDUP_NODE_EXPORTER_PASSWORD",
    "DEDUP_PUSHGATEWAY_URL",
];

struct Env {
    prom: String,
    textfiles: PathBuf,
    exporter: String,
    exporter_user: String,
    gateway: String,
}

fn env() -> Option<Env> {
    let v = crate::support::server_env("prometheus", VARS)?;
    Some(Env {
        prom: v[0].clone(),
        textfiles: v[1].clone().into(),
        exporter: v[2].clone(),
        exporter_user: v[3].clone(),
        gateway: v[5].clone(),
    })
}

/// A token unique to this test and process: `<name>-<pid>-<n>`, usable in file names, label
/// values and (with `_` for `-`) metric names.
fn token(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{name}-{}-{}{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A textfile-collector file this test owns; removed when dropped.
struct Textfile {
    path: PathBuf,
}

impl Textfile {
    fn new(env: &Env, token: &str) -> Textfile {
        Textfile { path: env.textfiles.join(format!("dedup-t-{token}.prom")) }
    }

    /// Replaces the file's content with these gauges, `(metric, labels, value)`. Every family
    /// gets `# TYPE … gauge`: node-exporter merges families across files only when they agree.
    fn publish(&self, series: &[(&str, String, String)]) {
        let mut sorted: Vec<&(&str, String, String)> = series.iter().collect();
        sorted.sort_by_key(|s| s.0);
        let mut text = String::new();
        let mut family = "";
        for (name, labels, value) in sorted {
            if *name != family {
                text.push_str(&format!("# TYPE {name} gauge\n"));
                family = name;
            }
            text.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
        publish_atomically(&self.path, &text);
    }
}

fn publish_atomically(path: &Path, text: &str) {
    // `*.prom.tmp` is not read by the collector; the rename makes the whole file appear at once.
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl Drop for Textfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn gauge(name: &'static str, labels: String, value: impl ToString) -> (&'static str, String, String) {
    (name, labels, value.to_string())
}

/// An instant query by curl: the `data.result` list.
fn promql(env: &Env, query: &str) -> Vec<serde_json::Value> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "5", "-G", "--data-urlencode"])
        .arg(format!("query={query}"))
        .arg(format!("{}/api/v1/query", env.prom))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {query}: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Waits (30 s at most) until `query` gives series for which `done` holds; returns them.
fn wait_for(env: &Env, query: &str, done: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let result = promql(env, query);
        if done(&result) {
            return result;
        }
        assert!(Instant::now() < deadline, "Prometheus did not show {query} as expected within 30 s: {result:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn value_of(series: &serde_json::Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

fn prom_probe(env: &Env, target: PromTarget) -> PromProbe {
    PromProbe {
        url: env.prom.clone(),
        target,
        auth: AuthSpec::default(),
        timeout_secs: 5.0,
        settle: Settle::default(),
        sslrootcert: None,
    }
}

fn source(env: &Env, target: PromTarget) -> PromSource {
    PromSource::new("files", &prom_probe(env, target)).unwrap()
}

fn err_of(r: Result<u64, RunError>) -> String {
    match r {
        Ok(n) => panic!("expected an error, got the number {n}"),
        Err(e) => e.chain(),
    }
}

#[test]
fn the_prometheus_probe_sums_every_series_of_a_volume() {
    let Some(env) = env() else { return };
    let t = token("sum");
    let (vol, other) = (format!("pvc-{t}"), format!("pvc-{t}-other"));
    let file = Textfile::new(&env, &t);
    let series = |v: &str, node: &str| format!("volume=\"{v}\",node=\"{node}\"");
    file.publish(&[
        gauge("longhorn_volume_actual_size_bytes", series(&vol, "n1"), 1000),
        gauge("longhorn_volume_actual_size_bytes", series(&vol, "n2"), 2000),
        gauge("longhorn_volume_actual_size_bytes", series(&vol, "n3"), 4000),
        gauge("longhorn_volume_actual_size_bytes", series(&other, "n1"), 99999),
    ]);
    let query = format!("longhorn_volume_actual_size_bytes{{volume=\"{vol}\"}}");
    wait_for(&env, &query, |r| r.len() == 3);
    let src = source(&env, PromTarget::Query(query.clone()));
    assert_eq!(src.read().unwrap(), 7000, "the sum over the three replicas, not the first series");
    assert_eq!(src.method(), format!("prometheus:{query}"));
}

#[test]
fn the_pvc_template_resolves_the_volume_and_sums_it() {
    let Some(env) = env() else { return };
    let t = token("pvc");
    let (vol, other, gone) = (format!("pvc-{t}"), format!("pvc-{t}-other"), format!("pvc-{t}-gone"));
    let ns = format!("ns-{t}");
    let file = Textfile::new(&env, &t);
    let size = |v: &str, node: &str, bytes: u64| {
        gauge("longhorn_volume_actual_size_bytes", format!("volume=\"{v}\",node=\"{node}\""), bytes)
    };
    let info = |pvc: &str, v: &str| {
        gauge(
            "kube_persistentvolumeclaim_info",
            format!("persistentvolumeclaim=\"{pvc}\",namespace=\"{ns}\",storageclass=\"longhorn\",volumename=\"{v}\""),
            1,
        )
    };
    file.publish(&[
        size(&vol, "n1", 3000),
        size(&vol, "n2", 3000),
        size(&vol, "n3", 1234),
        size(&other, "n1", 50000),
        info("data-0", &vol),
        info("data-1", &other),
        info("data-2", &gone),
    ]);
    wait_for(&env, &format!("longhorn_volume_actual_size_bytes{{volume=~\"pvc-{t}.*\"}}"), |r| r.len() == 4);
    wait_for(&env, &format!("kube_persistentvolumeclaim_info{{namespace=\"{ns}\"}}"), |r| r.len() == 3);
    let pvc = |name: &str| PromTarget::Pvc { pvc: name.into(), namespace: ns.clone() };
    let src = source(&env, pvc("data-0"));
    assert_eq!(src.read().unwrap(), 7234, "every replica of the PVC's volume, and only those");
    assert_eq!(src.method(), format!("prometheus:pvc {ns}/data-0"));
    assert_eq!(source(&env, pvc("data-1")).read().unwrap(), 50000);
    let e = err_of(source(&env, pvc("missing")).read());
    assert!(
        e.contains("prometheus probe of files")
            && e.contains("PVC ")
            && e.contains("/missing is not in kube_persistentvolumeclaim_info"),
        "{e}"
    );
    let e = err_of(source(&env, pvc("data-2")).read());
    assert!(
        e.contains(&format!("is bound to volume {gone}, but longhorn_volume_actual_size_bytes has no series")),
        "{e}"
    );
    assert!(e.contains("query `longhorn_volume_actual_size_bytes and on(volume)"), "the query is named: {e}");
}

#[test]
fn failed_queries_are_errors_naming_the_probe_and_the_query() {
    let Some(env) = env() else { return };
    let t = token("errors");
    let metric = format!("dedup_t_value_{}", t.replace('-', "_"));
    let file = Textfile::new(&env, &t);
    file.publish(&[
        gauge("dedup_t_value", format!("t=\"{t}\",kind=\"nan\""), "NaN"),
        gauge("dedup_t_value", format!("t=\"{t}\",kind=\"inf\""), "+Inf"),
        gauge("dedup_t_value", format!("t=\"{t}\",kind=\"ok\""), 5),
    ]);
    wait_for(&env, &format!("dedup_t_value{{t=\"{t}\"}}"), |r| r.len() == 3);
    for (query, cause) in [
        (metric.clone(), "no series: the query matched nothing"),
        ("sum(".to_string(), "Prometheus refused it (bad_data, HTTP 400)"),
        (format!("dedup_t_value{{t=\"{t}\",kind=\"nan\"}}"), "has the value NaN, not a finite number"),
        // One bad series among good ones spoils the sum.
        (format!("dedup_t_value{{t=\"{t}\"}}"), "not a finite number of bytes"),
        (format!("dedup_t_value{{t=\"{t}\",kind=\"inf\"}}"), "has the value +Inf, not a finite number"),
        (format!("dedup_t_value{{t=\"{t}\",kind=\"ok\"}}[1m]"), "range vector (matrix)"),
        (format!("-dedup_t_value{{t=\"{t}\",kind=\"ok\"}}"), "a negative size"),
        ("\"text\"".to_string(), "it gives a string"),
    ] {
        let e = err_of(source(&env, PromTarget::Query(query.clone())).read());
        assert!(e.contains("prometheus probe of files") && e.contains(&format!("query `{query}`")), "{query}: {e}");
        assert!(e.contains(cause), "{query}: expected {cause:?} in: {e}");
    }
    let mut down = prom_probe(&env, PromTarget::Query("up".into()));
    down.url = "http://127.0.0.1:9".into();
    let e = err_of(PromSource::new("files", &down).unwrap().read());
    assert!(e.contains("prometheus probe of files: query `up`") && e.contains("is the server running?"), "{e}");
}

/// The value moves in steps (as a volume's size does while it grows) and then holds: the
/// settle takes the final value, not the first that differs or one of the steps; a value that
/// never moves is taken when `settle_bound` runs out, and the note says so.
#[test]
fn settling_waits_for_the_value_to_move_and_then_hold() {
    let Some(env) = env() else { return };
    let t = token("settle");
    let file = Arc::new(Textfile::new(&env, &t));
    let labels = format!("t=\"{t}\"");
    file.publish(&[gauge("dedup_t_settle_bytes", labels.clone(), 1000)]);
    let query = format!("dedup_t_settle_bytes{{{labels}}}");
    wait_for(&env, &query, |r| r.len() == 1 && value_of(&r[0]) == 1000.0);
    let src = source(&env, PromTarget::Query(query.clone()));
    let settle = Settle { bound_secs: 60.0, interval_secs: 0.4, polls: 6 };
    let started = Instant::now();
    let writer = {
        let (file, labels) = (file.clone(), labels.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            // A new value every 0.4 s, faster than the 1 s scrapes: never steady for 2 s.
            for v in [2000, 3000, 4000, 5000, 6000, 7000] {
                file.publish(&[gauge("dedup_t_settle_bytes", labels.clone(), v)]);
                std::thread::sleep(Duration::from_millis(400));
            }
            started.elapsed()
        })
    };
    let r = settle_moved(&settle, 1000, || src.read()).unwrap();
    let last_change = writer.join().unwrap();
    assert_eq!(r.bytes, 7000, "the value after it stopped moving: {r:?}");
    assert!(started.elapsed() >= last_change, "returned before the last step");
    assert!(r.note.as_deref().unwrap().contains("moved from 1000 B to 7000 B, then 6 equal polls"), "{r:?}");
    // Nothing moves: the bound decides, and says so.
    let quick = Settle { bound_secs: 2.0, interval_secs: 0.4, polls: 3 };
    let started = Instant::now();
    let r = settle_moved(&quick, 7000, || src.read()).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1600), "{:?}", started.elapsed());
    assert_eq!(r.bytes, 7000);
    let note = r.note.unwrap();
    assert!(note.contains("stayed at 7000 B") && note.contains("settle_bound (2 s) ran out"), "{note}");
    // Before a stage: only steadiness counts.
    let r = settle_steady(&quick, || src.read()).unwrap();
    assert_eq!((r.bytes, r.note), (7000, None));
    // A reading that fails while settling is the error, never a number.
    let broken = source(&env, PromTarget::Query(format!("{query} / on() group_left() absent(up)")));
    assert!(settle_moved(&quick, 7000, || broken.read()).is_err());
}

fn scrape_probe(env: &Env, t: &str, labels: &[(&str, &str)]) -> ScrapeProbe {
    let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    l.push(("t".into(), t.to_string()));
    ScrapeProbe {
        url: env.exporter.clone(),
        metric: "dedup_t_bucket_usage_bytes".into(),
        labels: l,
        auth: AuthSpec {
            user: Some(env.exporter_user.clone()),
            password_env: Some("DEDUP_NODE_EXPORTER_PASSWORD".into()),
            ..Default::default()
        },
        timeout_secs: 5.0,
        settle: Settle::default(),
        sslrootcert: None,
    }
}

#[test]
fn the_scrape_probe_sums_the_matching_series_of_an_endpoint() {
    let Some(env) = env() else { return };
    let t = token("scrape");
    let file = Textfile::new(&env, &t);
    let bucket = |b: &str| format!("bucket=\"{b}\",t=\"{t}\"");
    file.publish(&[
        gauge("dedup_t_bucket_usage_bytes", bucket("dedup-lab-c0"), 100),
        gauge("dedup_t_bucket_usage_bytes", bucket("dedup-lab-c1"), 250),
        gauge("dedup_t_bucket_usage_bytes", bucket("other"), 9999),
        gauge("dedup_t_bucket_usage_bytes_total", bucket("dedup-lab-c0"), 7),
    ]);
    let read = |p: &ScrapeProbe| ScrapeSource::new("s3", p).and_then(|s| s.read());
    let lab = scrape_probe(&env, &t, &[("bucket", "dedup-lab-c*")]);
    assert_eq!(read(&lab).unwrap(), 350, "both lab buckets; not `other`, not the _total metric");
    assert_eq!(
        ScrapeSource::new("s3", &lab).unwrap().method(),
        format!("scrape:dedup_t_bucket_usage_bytes{{bucket=\"dedup-lab-c*\",t=\"{t}\"}}")
    );
    assert_eq!(read(&scrape_probe(&env, &t, &[("bucket", "dedup-lab-c0")])).unwrap(), 100);
    let e = err_of(read(&scrape_probe(&env, &t, &[("bucket", "nothing-*")])));
    assert!(
        e.contains("scrape probe of s3: dedup_t_bucket_usage_bytes{bucket=\"nothing-*\"")
            && e.contains("none of the endpoint's")
            && e.contains("matches the labels"),
        "{e}"
    );
    let mut absent = lab.clone();
    absent.metric = "dedup_t_no_such_metric".into();
    let e = err_of(read(&absent));
    assert!(e.contains("has no metric dedup_t_no_such_metric at all"), "{e}");
    // Authentication: none, and a wrong password (from a file), are refused by the server.
    let mut anonymous = lab.clone();
    anonymous.auth = AuthSpec::default();
    let e = err_of(read(&anonymous));
    assert!(e.contains("scrape probe of s3") && e.contains("HTTP 401"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pw"), "wrong\n").unwrap();
    let mut wrong = lab.clone();
    wrong.auth.password_env = None;
    wrong.auth.password_file = Some(tmp.path().join("pw"));
    let e = err_of(read(&wrong));
    assert!(e.contains("HTTP 401") && !e.contains("wrong"), "the password is never shown: {e}");
    // A matching series that is no number.
    file.publish(&[gauge("dedup_t_bucket_usage_bytes", bucket("dedup-lab-c0"), "NaN")]);
    let e = err_of(read(&lab));
    assert!(e.contains("scrape probe of s3") && e.contains("has the value NaN"), "{e}");
}

#[test]
fn pushed_stage_results_are_read_back_through_promql() {
    let Some(env) = env() else { return };
    let run = token("push");
    let target = PushTarget::new(&env.gateway).unwrap();
    // A variant with `=` and `,` goes base64-encoded into the group's URL.
    let variant = "compression=zstd,cleanup=compact-hash";
    let labels = |stage: &'static str| {
        [
            ("system", "kafka"),
            ("variant", variant),
            ("payload", "random_binary"),
            ("grade", "U50"),
            ("mode", "blob"),
            ("stage", stage),
            ("run", run.as_str()),
        ]
    };
    let metrics = |edr: f64, delta: f64| {
        [
            ("dedup_edr", edr),
            ("dedup_throughput_bps", 1.5e8),
            ("dedup_phys_delta_bytes", delta),
            ("dedup_duration_ms", 850.0),
        ]
    };
    push_stage(&target, &labels("bulk_insert"), &metrics(1.9, 123456.0)).unwrap();
    push_stage(&target, &labels("perfile_insert"), &metrics(1.5, 222222.0)).unwrap();
    let series = wait_for(&env, &format!("{{run=\"{run}\",__name__=~\"dedup_.*\"}}"), |r| r.len() == 8);
    for s in &series {
        let m = &s["metric"];
        assert_eq!(
            (&m["job"], &m["system"], &m["variant"], &m["payload"], &m["grade"], &m["mode"]),
            (
                &"dedup_lab".into(),
                &"kafka".into(),
                &variant.into(),
                &"random_binary".into(),
                &"U50".into(),
                &"blob".into()
            ),
            "{s}"
        );
    }
    let one = |name: &str, stage: &str| {
        let r = promql(&env, &format!("{name}{{run=\"{run}\",stage=\"{stage}\"}}"));
        assert_eq!(r.len(), 1, "{name} {stage}: {r:?}");
        value_of(&r[0])
    };
    assert_eq!(one("dedup_edr", "bulk_insert"), 1.9);
    assert_eq!(one("dedup_phys_delta_bytes", "bulk_insert"), 123456.0);
    assert_eq!(one("dedup_edr", "perfile_insert"), 1.5, "the second stage did not replace the first");
    assert_eq!(one("dedup_throughput_bps", "perfile_insert"), 1.5e8);
    assert_eq!(one("dedup_duration_ms", "perfile_insert"), 850.0);
    // The same stage again replaces its own group only.
    push_stage(&target, &labels("bulk_insert"), &metrics(2.5, 1000.0)).unwrap();
    wait_for(&env, &format!("dedup_edr{{run=\"{run}\",stage=\"bulk_insert\"}}"), |r| {
        r.len() == 1 && value_of(&r[0]) == 2.5
    });
    assert_eq!(one("dedup_edr", "perfile_insert"), 1.5);
    // Refused before anything is sent.
    for (labels, metrics, want) in [
        (vec![("bad-name", "x")], vec![("dedup_edr", 1.0)], "\"bad-name\" is not a label name"),
        (vec![("job", "x")], vec![("dedup_edr", 1.0)], "label job is given twice"),
        (vec![("run", "x")], vec![("dedup_edr", f64::NAN)], "only finite numbers are pushed"),
        (vec![("run", "x")], vec![("dedup edr", 1.0)], "is not a metric name"),
        (vec![("run", "x")], vec![], "no metric to push"),
    ] {
        let e = push_stage(&target, &labels, &metrics).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    let e = push_stage(&PushTarget::new("http://127.0.0.1:9").unwrap(), &labels("bulk_insert"), &metrics(1.0, 1.0))
        .unwrap_err()
        .chain();
    assert!(
        e.contains("pushgateway PUT http://127.0.0.1:9/metrics/job/dedup_lab/") && e.contains("server running"),
        "{e}"
    );
}

/// Feeds the textfile with the allocated bytes of `dir`, split over two "replicas" of
/// `volume`, every 200 ms until `stop`: a volume metric that follows what a run writes, with
/// a lag (the scrape), as a remote volume's would.
fn feed_volume(
    file: Arc<Textfile>,
    dir: PathBuf,
    volume: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let bytes = dedup_lab_runner::probe::allocated_bytes(&[&dir]).unwrap_or(0);
            file.publish(&[
                gauge("longhorn_volume_actual_size_bytes", format!("volume=\"{volume}\",node=\"n1\""), bytes / 2),
                gauge(
                    "longhorn_volume_actual_size_bytes",
                    format!("volume=\"{volume}\",node=\"n2\""),
                    bytes - bytes / 2,
                ),
            ]);
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

fn run_files(cfg: &Path, results: &Path) -> std::process::Output {
    run_env(
        &[],
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--systems",
            "files",
            "--payload-types",
            "random_binary",
            "--grades",
            "U0",
            "--records",
            "16",
            "--record-size",
            "64KiB",
            "--stages",
            "bulk_insert,perfile_insert",
            "--no-storage-sim",
        ],
    )
}

fn files_config(env: &Env, store: &Path, query: &str) -> String {
    format!(
        "[systems.files]\ndir = {:?}\nprobe = \"prometheus\"\n\n[systems.files.prometheus]\nurl = {:?}\nquery = '{query}'\n\
         timeout = 5\nsettle_bound = 30\nsettle_interval = 0.5\nsettle_polls = 5\n",
        store.display().to_string(),
        env.prom
    )
}

/// A whole `dedup-lab run` on the embedded `files` system, its physical size read through
/// Prometheus from a metric that follows the store's directory.
#[test]
fn a_run_measures_through_the_prometheus_probe() {
    let Some(env) = env() else { return };
    let t = token("run");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let volume = format!("pvc-{t}");
    let query = format!("longhorn_volume_actual_size_bytes{{volume=\"{volume}\"}}");
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed_volume(Arc::new(Textfile::new(&env, &t)), store.clone(), volume, stop.clone());
    wait_for(&env, &query, |r| r.len() == 2);
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, files_config(&env, &store, &query)).unwrap();
    let results = tmp.path().join("r");
    let out = run_files(&cfg, &results);
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    assert!(out.status.success(), "{}", text_of(&out));
    let lines = journal(&results);
    let measured = stages(&lines);
    assert_eq!(measured.len(), 2, "{lines:?}");
    for m in &measured {
        assert_eq!(m.physical.method, format!("prometheus:{query}"));
        let logical = m.logical_bytes as i64;
        assert!(
            m.physical.delta >= logical / 2 && m.physical.delta <= logical * 2,
            "{}: delta {} B for {logical} B written (the store's own growth, through Prometheus)",
            m.stage,
            m.physical.delta
        );
        assert!(m.notes.iter().any(|n| n.starts_with("after: probe settled after")), "{:?}", m.notes);
    }
    assert_eq!(measured[0].stage, Stage::BulkInsert);
    assert!(matches!(lines.last(), Some(JournalLine::Cell { status: CellStatus::Ok, .. })), "{lines:?}");
    // The trace samples the same metric: each stage's last sample has a reading of it.
    let trace = std::fs::read_to_string(crate::support::run_dir(&results).join("trace.jsonl")).unwrap();
    let finals: Vec<serde_json::Value> = trace
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|s| s["final"] == true)
        .collect();
    assert_eq!(finals.len(), 2);
    assert!(finals.iter().all(|s| s["phys_bytes"].as_u64().is_some()), "{finals:?}");
}

/// A query that finds nothing fails the cell with the probe's sentence; no stage line carries
/// a number made up for it.
#[test]
fn a_failing_query_fails_the_cell_instead_of_giving_a_number() {
    let Some(env) = env() else { return };
    let t = token("runfail");
    let tmp = tempfile::tempdir().unwrap();
    let query = format!("dedup_t_absent_{}", t.replace('-', "_"));
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, files_config(&env, &tmp.path().join("store"), &query)).unwrap();
    let results = tmp.path().join("r");
    let out = run_files(&cfg, &results);
    let text = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let want = format!("prometheus probe of files: query `{query}` at {}/api/v1/query: no series", env.prom);
    assert!(text.contains(&want), "{text}");
    let lines = journal(&results);
    assert!(stages(&lines).is_empty(), "no stage was measured: {lines:?}");
    match lines.last() {
        Some(JournalLine::Cell { status: CellStatus::Failed, reason: Some(r), .. }) => {
            assert!(r.contains(&want), "{r}")
        }
        other => panic!("expected a failed cell: {other:?}"),
    }
    // preflight reads the configured probe too: its row fails with the same sentence.
    let pf = run_env(&[], &["preflight", "--config", cfg.to_str().unwrap(), "--systems", "files"]);
    let pf_text = text_of(&pf);
    assert_eq!(pf.status.code(), Some(1), "{pf_text}");
    let row = pf_text.lines().find(|l| l.starts_with("files/default ")).unwrap_or_else(|| panic!("{pf_text}"));
    assert!(row.contains("created, dropped") && row.contains("FAILED"), "{row}");
    assert!(pf_text.contains(&format!("FAILED  files/default: size probe: {want}")), "{pf_text}");
}

/// Probe settings are checked before anything connects (no server needed).
#[test]
fn probe_settings_are_checked_before_the_run_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    for (text, expect) in [
        ("[systems.files]\nprobe = \"prometheus\"\n", "needs a table [systems.files.prometheus]"),
        (
            "[systems.files]\nprobe = \"prometheus\"\n[systems.files.prometheus]\nurl = \"http://p:9090\"\nquery = \"up\"\ntoken = \"abc\"\n",
            "secrets never go in the config file",
        ),
        (
            "[systems.files]\nprobe = \"scrape\"\n[systems.files.scrape]\nurl = \"http://e/metrics\"\nmetric = \"m\"\nsettle_bound = \"long\"\n",
            "settle_bound = \"long\": expected seconds",
        ),
        ("[systems.files]\nprobe = \"fs\"\n[systems.files.scrape]\nurl = \"http://e\"\n", "but probe = \"fs\""),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let out = crate::support::run(&["run", "--config", cfg.to_str().unwrap(), "--systems", "files", "--dry-run"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expect), "{text}: {err}");
        assert!(!err.contains("abc"), "the secret is not echoed: {err}");
    }
}

/// `[pushgateway]` in a real run: after every stage the engine pushes its figures, and
/// Prometheus (scraping the gateway) shows them with the cell's labels and the run id; an
/// undefined EDR is not pushed; `preflight` reaches the gateway; a gateway that is not there
/// is one line and the run is unharmed.
#[test]
fn a_run_pushes_every_stage_to_the_gateway_and_prometheus_shows_it() {
    let Some(env) = env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, format!("lab = \"dedup_t_pushrun\"\n[pushgateway]\nurl = \"{}\"\n", env.gateway)).unwrap();
    let results = tmp.path().join("r");
    let out = run_env(
        &[],
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--systems",
            "files",
            "--payload-types",
            "random_binary",
            "--grades",
            "U50",
            "--records",
            "40",
            "--record-size",
            "16KiB",
            "--export",
            "none",
        ],
    );
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(!text_of(&out).contains("telemetry sink"), "{}", text_of(&out));
    let run = crate::support::run_dir(&results);
    let id = run.file_name().unwrap().to_str().unwrap().to_string();
    let lines = journal(&results);
    let measured = stages(&lines);
    let durations = wait_for(&env, &format!("dedup_duration_ms{{run=\"{id}\"}}"), |r| r.len() == measured.len());
    for m in &measured {
        let s = durations.iter().find(|s| s["metric"]["stage"] == m.stage.to_string()).unwrap();
        assert_eq!(s["metric"]["system"], "files");
        assert_eq!(
            (s["metric"]["payload"].as_str(), s["metric"]["grade"].as_str()),
            (Some("random_binary"), Some("U50"))
        );
        assert!((value_of(s) - m.duration_ns as f64 / 1e6).abs() < 1e-6, "{s} vs {}", m.duration_ns);
    }
    let edr = promql(&env, &format!("dedup_edr{{run=\"{id}\"}}"));
    let with_edr: Vec<_> = measured.iter().filter(|m| m.edr_replica.is_some()).collect();
    assert_eq!(edr.len(), with_edr.len(), "only defined EDRs are pushed: {edr:?}");
    let bulk = measured.iter().find(|m| m.stage == Stage::BulkInsert).unwrap();
    let pushed = edr.iter().find(|s| s["metric"]["stage"] == "bulk_insert").unwrap();
    assert!((value_of(pushed) - bulk.edr_replica.unwrap()).abs() < 1e-9);
    let delta = promql(&env, &format!("dedup_phys_delta_bytes{{run=\"{id}\",stage=\"perfile_delete\"}}"));
    let del = measured.iter().find(|m| m.stage == Stage::PerfileDelete).unwrap();
    assert_eq!(value_of(&delta[0]) as i64, del.physical.delta);

    let pf = run_env(&[], &["preflight", "--config", cfg.to_str().unwrap(), "--systems", "files"]);
    let pf_out = text_of(&pf);
    assert!(
        pf.status.success() && pf_out.lines().any(|l| l.starts_with("pushgateway") && l.ends_with("ok")),
        "{pf_out}"
    );

    // Nothing listening: the run succeeds, the gateway's failure is a line or two.
    std::fs::write(&cfg, "lab = \"dedup_t_pushrun\"\n[pushgateway]\nurl = \"http://127.0.0.1:1\"\ntimeout = 1\n")
        .unwrap();
    let out = run_env(
        &[],
        &["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap(), "--systems", "files"],
    );
    let all = text_of(&out);
    assert!(out.status.success(), "{all}");
    let said: Vec<&str> = all.lines().filter(|l| l.contains("pushgateway http://127.0.0.1:1")).collect();
    assert!(!said.is_empty() && said.len() <= 3, "{said:#?}");
}
