//! The S3 backend against the REAL local SeaweedFS server of `scripts/services.sh up s3`:
//! the shared conformance suite in both variants (blob and native mode, preflight,
//! cleanup), content types as stored, faults (wrong credentials, unreachable endpoint, a
//! server stopped mid-stage, a 1 GiB record streamed in parts), ground truth (EDR of
//! incompressible objects, space given back by the vacuum) and full CLI runs.
//!
//! What exists on the server is asked of the server itself through `curl --aws-sigv4` (an
//! S3 client independent of the backend's own signing), never of the backend.
//! Skips without `DEDUP_S3_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`.

mod support;

use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::{Backend, ErrorClass, Namespace, SystemKind};
use std::io::Write;
use std::process::{Command, Stdio};

const VARS: &[&str] =
    &["DEDUP_S3_ENDPOINT", "DEDUP_S3_ACCESS_KEY", "DEDUP_S3_SECRET_KEY", "DEDUP_S3_MASTER_URL", "DEDUP_S3_DATA_DIR"];

struct Env {
    endpoint: String,
    key: String,
    secret: String,
}

fn env() -> Option<Env> {
    let v = support::server_env("s3", VARS)?;
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
        conformance::run_native_suite(b.as_mut(), "dedup_t_s3_conformance_native");
        let native: Namespace = Namespace::new(&"dedup_t_s3_conformance_native".parse().unwrap(), 2);
        assert!(!lab_buckets_left(&env, &native), "{variant}: the native suite left its buckets");
    }
}
