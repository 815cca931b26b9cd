//! The S3 backend against the REAL local SeaweedFS server of `scripts/services.sh up s3`:
//! the shared conformance suite in both variants (blob and native mode, preflight,
//! cleanup), content types as stored, faults (wrong credentials, unreachable endpoint, a
//! server stopped mid-stage, a 1 GiB record streamed in parts), ground truth (EDR of
//! incompressible objects, space given back by the vacuum) and full CLI runs.
//!
//! What exists on the server is asked of the server itself through `curl --aws-sigv4` (an
//! S3 client independent of the backend's own signing), never of the backend.
//! Skips without `DEDUP_S3_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`.

use crate::support::{journal, stages};
use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::{
    Backend, CellStatus, ErrorClass, InsertionMode, JournalLine, Namespace, PayloadType, Record, RecordId, Stage,
    SystemKind,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VARS: &[&str] =
    &["DEDUP_S3_ENDPOINT", "DEDUP_S3_ACCESS_KEY", "DEDUP_S3_SECRET_KEY", "DEDUP_S3_MASTER_URL", "DEDUP_S3_DATA_DIR"];

struct Env {
    endpoint: String,
    key: String,
    secret: String,
}

fn env() -> Option<Env> {
    let v = crate::support::server_env("s3", VARS)?;
    Some(Env { endpoint: v[0].clone(), key: v[1].clone(), secret: v[2].clone() })
}

fn config(lab: &str, settings: serde_json::Value) -> BackendConfig {
    BackendConfig::new(lab.parse().unwrap(), "s3", "DEDUP_S3", settings, std::env::temp_dir())
}

fn open(lab: &str, variant: &str) -> Box<dyn Backend> {
    dedup_lab_backends::open(SystemKind::S3, variant, &config(lab, serde_json::json!({})))
        .unwrap_or_else(|e| panic!("{variant}: {}", e.chain()))
}

/// An S3 request by curl (its own SigV4), credentials on stdin, not in argv. Returns
/// (HTTP status, body).
fn curl(env: &Env, method: &str, path: &str) -> (u16, String) {
    let mut child = Command::new("curl")
        .args(["-s", "-K", "-", "-X", method, "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3"])
        .arg(format!("{}{path}", env.endpoint))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs");
    writeln!(child.stdin.take().unwrap(), "user = \"{}:{}\"", env.key, env.secret).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Every bucket on the server (ListBuckets by curl).
fn server_buckets(env: &Env) -> Vec<String> {
    let (status, body) = curl(env, "GET", "/");
    assert_eq!(status, 200, "ListBuckets: {body}");
    body.split("<Name>").skip(1).filter_map(|s| s.split("</Name>").next()).map(str::to_string).collect()
}

fn lab_buckets_left(env: &Env, ns: &Namespace) -> bool {
    let prefix = format!("{}-c", ns.lab().dashed());
    server_buckets(env).iter().any(|b| b.strip_prefix(&prefix).is_some_and(|n| n.bytes().all(|c| c.is_ascii_digit())))
}

#[test]
fn s3_conforms_in_every_variant() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_s3_conformance";
    let cfg = config(lab, serde_json::json!({}));
    let variants = dedup_lab_backends::variants(SystemKind::S3, &cfg).unwrap();
    assert_eq!(variants, ["default", "content-type=auto"]);
    conformance::check_variants(
        &variants,
        &mut |v| dedup_lab_backends::open(SystemKind::S3, v, &cfg),
        "content-type=gzip",
    );
    for variant in &variants {
        let mut b = open(lab, variant);
        let mut leftovers = |ns: &Namespace| lab_buckets_left(&env, ns);
        conformance::run_suite(b.as_mut(), &mut conformance::Suite { lab, leftovers: &mut leftovers });
        if variant != "default" {
            // Native records differ from blobs only in their content types, which `auto`
            // does not send: the blob suite covers it (and CI time is short).
            continue;
        }
        conformance::run_native_suite(b.as_mut(), "dedup_t_s3_conformance_native");
        let native: Namespace = Namespace::new(&"dedup_t_s3_conformance_native".parse().unwrap(), 2);
        assert!(!lab_buckets_left(&env, &native), "{variant}: the native suite left its buckets");
    }
}

/// What curl sees of an object: (status, content-type, content-length, etag).
fn head(env: &Env, path: &str) -> (u16, String, u64, String) {
    let mut child = Command::new("curl")
        .args(["-s", "-K", "-", "-I", "--aws-sigv4", "aws:amz:us-east-1:s3"])
        .arg(format!("{}{path}", env.endpoint))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl runs");
    writeln!(child.stdin.take().unwrap(), "user = \"{}:{}\"", env.key, env.secret).unwrap();
    let out = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned();
    let status = out.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let header = |name: &str| {
        out.lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
            .unwrap_or_default()
            .to_string()
    };
    (status, header("content-type"), header("content-length").parse().unwrap_or(0), header("etag"))
}

/// Every object gets an explicit content type (the blob type, or its native encoding's);
/// variant `content-type=auto` sends none and the store picks one.
#[test]
fn objects_carry_explicit_content_types() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_s3_types";
    let blob = Record::blob(RecordId { key: "r00000001".into(), container: 0 }, 1, b"hello, plain text".repeat(100));
    let (schema, native) = conformance::native_records(PayloadType::StructuredJson, 2, 4096, 0);
    let (text_schema, text) = conformance::native_records(PayloadType::TextDocument, 3, 4096, 0);
    for (variant, want_blob, want_json, want_text) in [
        ("default", "application/octet-stream", "application/json", "text/plain; charset=utf-8"),
        // SeaweedFS sniffs untyped objects: all three are text here.
        ("content-type=auto", "text/plain; charset=utf-8", "text/plain; charset=utf-8", "text/plain; charset=utf-8"),
    ] {
        let mut b = open(lab, variant);
        let ns = Namespace::new(&lab.parse().unwrap(), 1);
        b.reset(&ns).unwrap();
        b.insert_one(&ns, &blob).unwrap();
        let bucket = format!("/{}-c0", ns.lab().dashed());
        assert_eq!(head(&env, &format!("{bucket}/r00000001")).1, want_blob, "{variant}: blob");
        let json_ns = ns.clone().with_schema(schema.clone());
        b.insert_one(&json_ns, &native[0]).unwrap();
        assert_eq!(head(&env, &format!("{bucket}/{}", native[0].id.key)).1, want_json, "{variant}: json");
        let text_ns = ns.clone().with_schema(text_schema.clone());
        b.insert_one(&text_ns, &text[0]).unwrap();
        assert_eq!(head(&env, &format!("{bucket}/{}", text[0].id.key)).1, want_text, "{variant}: text");
        let note = b.native_storage(&schema);
        assert!(note.starts_with("one object per record"), "{note}");
        if variant == "default" {
            assert!(note.contains("application/json") && note.contains("as sent (no compression)"), "{note}");
            assert!(b.native_storage(&text_schema).contains("gzips text/*"), "{}", b.native_storage(&text_schema));
        } else {
            assert!(note.contains("no Content-Type"), "{note}");
        }
        b.teardown(&ns).unwrap();
    }
}

/// Wrong credentials give ONE clear authentication message naming where the keys came from:
/// no secret, no signature dump. Both kinds: an unknown access key and a wrong secret.
#[test]
fn wrong_credentials_are_one_clear_message() {
    let Some(env) = env() else { return };
    for (var, what) in
        [("DEDUP_T_S3_WRONG_KEY", "InvalidAccessKeyId"), ("DEDUP_T_S3_WRONG_SECRET", "SignatureDoesNotMatch")]
    {
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var(var, "wrong-Secret-Value-4711") };
        let key = if what == "InvalidAccessKeyId" { "access_key_env" } else { "secret_key_env" };
        let cfg = config("dedup_t_s3_auth", serde_json::json!({ key: var }));
        let mut b = dedup_lab_backends::open(SystemKind::S3, "default", &cfg).unwrap();
        let ns = Namespace::new(&"dedup_t_s3_auth".parse().unwrap(), 1);
        let e = b.preflight(&ns).unwrap_err();
        assert_eq!(e.class(), Some(ErrorClass::Authentication), "{}", e.chain());
        let text = e.chain();
        eprintln!("{text}");
        assert!(text.contains(&format!("the server refused the credentials ({what})")), "{text}");
        assert!(text.contains(&format!("`{key}` ({var})")), "names where the key came from: {text}");
        for leak in ["wrong-Secret-Value-4711", &env.secret, &env.key, "StringToSign", "CanonicalRequest", "Signature="]
        {
            assert!(!text.contains(leak), "{leak:?} in {text}");
        }
    }
}

/// Wrong credentials and an unreachable endpoint fail the s3 cells with a clear, journaled
/// error; the other system's cells still run; nothing secret is printed or journaled.
#[test]
fn a_run_with_wrong_credentials_or_no_server_journals_the_error_and_goes_on() {
    let Some(env) = env() else { return };
    for (var, value, want) in [
        (
            "DEDUP_S3_SECRET_KEY",
            "wrong-Secret-Value-4711",
            "the server refused the credentials (SignatureDoesNotMatch)",
        ),
        ("DEDUP_S3_ENDPOINT", "http://127.0.0.1:1", "the endpoint cannot be reached"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("c.toml");
        std::fs::write(&cfg, "lab = \"dedup_t_s3_fault\"\n[systems.s3]\nvariants = [\"default\"]\n").unwrap();
        let out = crate::support::run_env(
            &[(var, value)],
            &[
                "run",
                "--config",
                cfg.to_str().unwrap(),
                "--results",
                tmp.path().join("r2").to_str().unwrap(),
                "--systems",
                "s3,files",
                "--payload-types",
                "uuid_keys",
                "--grades",
                "U50",
                "--records",
                "4",
                "--record-size",
                "4KiB",
            ],
        );
        let all = crate::support::text_of(&out);
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(all.contains(want), "{all}");
        let journal_text =
            std::fs::read_to_string(crate::support::run_dir(&tmp.path().join("r2")).join("measurements.jsonl"))
                .unwrap();
        for leak in ["wrong-Secret-Value-4711", env.secret.as_str(), env.key.as_str(), "StringToSign"] {
            assert!(!all.contains(leak) && !journal_text.contains(leak), "{leak:?} printed or journaled");
        }
        let mut seen = 0;
        for l in journal(&tmp.path().join("r2")) {
            if let JournalLine::Cell { cell, status, reason, .. } = l {
                if cell.system == SystemKind::S3 {
                    assert_eq!(status, CellStatus::Failed, "{cell}");
                    assert!(reason.as_deref().unwrap_or_default().contains(want), "{reason:?}");
                } else {
                    assert_eq!(status, CellStatus::Ok, "{cell}: the run goes on");
                }
                seen += 1;
            }
        }
        assert_eq!(seen, 2, "one s3 and one files cell journaled");
        // preflight says the same in one line.
        let out = crate::support::run_env(
            &[(var, value)],
            &["preflight", "--config", cfg.to_str().unwrap(), "--systems", "s3"],
        );
        let all = crate::support::text_of(&out);
        assert!(!out.status.success() && all.contains(want), "{all}");
        assert!(!all.contains("wrong-Secret-Value-4711") && !all.contains("StringToSign"), "{all}");
    }
}

/// Ground truth on SeaweedFS: incompressible objects with an explicit binary type take
/// their own size (EDR within 10 % of 1), deleting everything and vacuuming gives most of
/// the growth back, and native JSON records go in as application/json objects. Every
/// stage is valid; the buckets are gone afterwards.
#[test]
fn a_full_run_has_the_expected_ground_truth() {
    let Some(env) = env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "lab = \"dedup_t_s3_truth\"\n[systems.s3]\nvariants = [\"default\"]\n").unwrap();
    let results = tmp.path().join("r");
    let out = crate::support::run_env(
        &[],
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--systems",
            "minio",
            "--payload-types",
            "random_binary,structured_json",
            "--grades",
            "U0,U90",
            "--insertion-mode",
            "both",
            "--records",
            "16",
            "--record-size",
            "256KiB",
        ],
    );
    assert!(out.status.success(), "{}", crate::support::text_of(&out));
    let lines = journal(&results);
    let (mut edr_checked, mut reclaim_checked, mut json_checked) = (0, 0, 0);
    for m in stages(&lines) {
        assert!(m.valid, "{}: {:?}", m.cell, m.invalid_reasons);
        assert_eq!(m.physical.method, "fs", "the local data directory is probed");
        if m.stage == Stage::BulkInsert && m.cell.payload == "random_binary" && m.cell.mode == InsertionMode::Blob {
            assert_eq!(m.rows_reported, Some(16));
            let edr = m.edr_replica.unwrap();
            assert!((edr - 1.0).abs() <= 0.1, "{}: EDR {edr}", m.cell);
            edr_checked += 1;
        }
        if m.stage == Stage::Maintenance {
            assert!(m.notes.iter().any(|n| n.contains("SeaweedFS volume vacuum")), "{:?}", m.notes);
            let share = m.reclaimed_share.unwrap();
            assert!(share > 0.8, "{}: the vacuum gives back most of the growth: {share}", m.cell);
            reclaim_checked += 1;
        }
        if m.cell.mode == InsertionMode::Native && m.cell.payload == "structured_json" && m.stage == Stage::BulkInsert {
            assert!(m.notes.iter().any(|n| n.contains("Content-Type application/json")), "{:?}", m.notes);
            json_checked += 1;
        }
    }
    assert_eq!((edr_checked, reclaim_checked, json_checked), (2, 8, 2));
    for l in &lines {
        if let JournalLine::Cell { status, reason, .. } = l {
            assert_eq!(*status, CellStatus::Ok, "{reason:?}");
        }
    }
    assert!(!lab_buckets_left(&env, &Namespace::new(&"dedup_t_s3_truth".parse().unwrap(), 2)));
}

/// Peak and current resident memory of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    (kb("VmHWM:"), kb("VmRSS:"))
}

/// A 1 GiB record goes up as a multipart upload of parts sent from its own buffer: the
/// process's peak memory grows by far less than the record (no copy, no buffering).
#[test]
fn a_1_gib_record_is_streamed_in_parts_with_bounded_memory() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_s3_big";
    let mut b = open(lab, "default");
    let ns = Namespace::new(&lab.parse().unwrap(), 1);
    b.reset(&ns).unwrap();
    // 1 GiB of pseudo-random data (a 1 MiB block, repeated: SeaweedFS does not deduplicate).
    let block: Vec<u8> = conformance::record(7, 0, 1 << 20).data;
    let mut data = Vec::with_capacity(1 << 30);
    for _ in 0..1024 {
        data.extend_from_slice(&block);
    }
    let record = Record::blob(RecordId { key: "r00000000".into(), container: 0 }, 0, data);
    let (_, resident) = rss();
    assert!(resident >= 1 << 30, "the record is resident: {resident}");
    assert_eq!(b.insert_one(&ns, &record).unwrap(), 1);
    let (peak, _) = rss();
    let growth = peak.saturating_sub(resident);
    eprintln!("1 GiB upload: resident {resident} B before, peak {peak} B, growth {growth} B");
    assert!(growth < 96 << 20, "uploading 1 GiB grew the peak RSS by {growth} bytes");
    let (status, _, len, etag) = head(&env, &format!("/{}-c0/r00000000", ns.lab().dashed()));
    assert_eq!((status, len), (200, 1 << 30));
    assert!(etag.trim_matches('"').ends_with("-64"), "a multipart upload of 64 × 16 MiB parts: ETag {etag}");
    assert_eq!(b.count(&ns).unwrap(), 1);
    b.teardown(&ns).unwrap();
}

// ----- a throwaway SeaweedFS of this test's own, to stop mid-stage -----

/// `weed server` on free ports in a temporary directory, stopped on drop.
struct Weed {
    weed: String,
    dir: PathBuf,
    ports: Vec<u16>,
    child: Option<Child>,
}

impl Weed {
    fn start(weed: &str, dir: &Path) -> Weed {
        // Eight free ports: master, volume, filer, S3, each with its gRPC port.
        let listeners: Vec<_> = (0..8).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let ports = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        drop(listeners);
        std::fs::write(
            dir.join("s3.json"),
            r#"{"identities":[{"name":"t","credentials":[{"accessKey":"throwawaykey","secretKey":"throwawaysecret"}],"actions":["Admin","Read","Write","List"]}]}"#,
        )
        .unwrap();
        let mut w = Weed { weed: weed.to_string(), dir: dir.to_path_buf(), ports, child: None };
        w.start_again();
        w
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[6])
    }

    fn master(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[0])
    }

    fn start_again(&mut self) {
        let p = &self.ports;
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let log = std::fs::File::options().create(true).append(true).open(self.dir.join("weed.log")).unwrap();
        let child = Command::new(&self.weed)
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-volume.max=0", "-master.volumeSizeLimitMB=64"])
            .args([
                "-master.vacuumIntervalSeconds=2000000",
                "-volume.preStopSeconds=0",
                "-filer",
                "-s3",
                "-webdav=false",
            ])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-filer.localSocket={}", self.dir.join("f.sock").display()))
            .arg(format!("-s3.localSocket={}", self.dir.join("s.sock").display()))
            .arg(format!("-s3.config={}", self.dir.join("s3.json").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weed starts");
        self.child = Some(child);
        // Ready: the S3 gateway answers, and the master has a volume server.
        let env = self.env();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let s3 = curl(&env, "GET", "/").0 == 200;
            let nodes = Command::new("curl").args(["-s", &format!("{}/dir/status", self.master())]).output().unwrap();
            if s3 && String::from_utf8_lossy(&nodes.stdout).contains("\"DataNodes\":[{") {
                return;
            }
            assert!(Instant::now() < deadline, "throwaway weed not ready: {}", self.dir.display());
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }

    fn env(&self) -> Env {
        Env { endpoint: self.endpoint(), key: "throwawaykey".into(), secret: "throwawaysecret".into() }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "endpoint": self.endpoint(),
            "access_key_env": "DEDUP_T_S3_THROWAWAY_KEY",
            "secret_key_env": "DEDUP_T_S3_THROWAWAY_SECRET",
            "flavour": "seaweedfs",
            "master_url": self.master(),
            "connect_timeout": 3,
        })
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server stops while a bulk insert streams: a clear error of a network class; while it
/// is down, a clear "cannot be reached"; back up, `drop_lab` (what `cleanup` does) empties
/// and deletes the lab's buckets.
#[test]
fn a_server_stopped_mid_stage_is_a_clear_error_and_cleanup_removes_the_lab() {
    let Some(_) = env() else { return };
    let weed =
        std::env::var("DEDUP_S3_WEED").expect("DEDUP_S3_WEED (scripts/services.sh env s3) names the weed binary");
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Weed::start(&weed, tmp.path());
    // SAFETY: variables only this test reads.
    unsafe {
        std::env::set_var("DEDUP_T_S3_THROWAWAY_KEY", "throwawaykey");
        std::env::set_var("DEDUP_T_S3_THROWAWAY_SECRET", "throwawaysecret");
    }
    let lab = "dedup_t_s3_dies";
    let cfg = config(lab, w.settings());
    let mut b = dedup_lab_backends::open(SystemKind::S3, "default", &cfg).unwrap();
    let ns = Namespace::new(&lab.parse().unwrap(), 2);
    b.reset(&ns).unwrap();
    let stopper = std::cell::RefCell::new(&mut w);
    let mut records = (0..400u64).map(|i| {
        if i == 100 {
            stopper.borrow_mut().stop();
        }
        Ok(conformance::record(i, (i % 2) as u8, 64 << 10))
    });
    let err = b.bulk_insert(&ns, &mut records).unwrap_err();
    drop(records);
    let e = err.chain();
    eprintln!("{e}");
    assert!(
        matches!(err.class(), Some(ErrorClass::ConnectionLost | ErrorClass::Unreachable)),
        "{:?}: {e}",
        err.class()
    );
    assert!(e.starts_with(&format!("s3 {}", w.endpoint())), "{e}");
    let err = b.count(&ns).unwrap_err();
    assert_eq!(err.class(), Some(ErrorClass::Unreachable), "{}", err.chain());
    assert!(err.chain().contains("the endpoint cannot be reached; is the server running"), "{}", err.chain());

    w.start_again();
    let left = b.inventory(ns.lab()).unwrap();
    assert_eq!(left.len(), 2, "both lab buckets are still there: {left:?}");
    b.drop_lab(ns.lab()).unwrap();
    assert!(b.inventory(ns.lab()).unwrap().is_empty());
    assert!(server_buckets(&w.env()).is_empty(), "the throwaway server holds no bucket");
}
