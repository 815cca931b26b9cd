//! The Redis backend against REAL servers started by `scripts/services.sh up redis`: a
//! standalone server and a 3-master cluster, both used through the ACL user `dedup`
//! (`~dedup:* +@all -@dangerous +save +config|get`), never the default user. The default
//! (admin) user appears only to ask the servers themselves what exists (`redis-cli --scan`).
//! Fault tests that kill a node start a throwaway cluster of their own in a temp dir.
//! Skips without `DEDUP_REDIS_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`.

mod support;

use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::{Backend, BackendError, ErrorClass, LabName, Namespace, Record, RecordId, SystemKind};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VARS: &[&str] = &[
    "DEDUP_REDIS_HOST",
    "DEDUP_REDIS_PORT",
    "DEDUP_REDIS_USER",
    "DEDUP_REDIS_PASSWORD",
    "DEDUP_REDIS_CLUSTER_PORT",
    "DEDUP_REDIS_ADMIN_PASSWORD",
];

struct Env {
    host: String,
    port: u16,
    cluster_port: u16,
    admin_password: String,
}

fn env() -> Option<Env> {
    let v = support::server_env("redis", VARS)?;
    Some(Env {
        host: v[0].clone(),
        port: v[1].parse().unwrap(),
        cluster_port: v[4].parse().unwrap(),
        admin_password: v[5].clone(),
    })
}

fn config(lab: &str, settings: serde_json::Value) -> BackendConfig {
    BackendConfig::new(lab.parse().unwrap(), "redis", "DEDUP_REDIS", settings, std::env::temp_dir())
}

/// Asks the server itself, as the admin, for the keys matching `pattern` on `port`.
fn admin_scan(env: &Env, port: u16, pattern: &str) -> Vec<String> {
    let out = Command::new("redis-cli")
        .env("REDISCLI_AUTH", &env.admin_password)
        .args(["--no-auth-warning", "-h", &env.host, "-p", &port.to_string(), "--scan", "--pattern", pattern])
        .output()
        .expect("redis-cli runs (installed by scripts/services.sh)");
    assert!(out.status.success(), "redis-cli: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn admin(env: &Env, port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .env("REDISCLI_AUTH", &env.admin_password)
        .args(["--no-auth-warning", "-h", &env.host, "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every master's port: the standalone server, or the three masters of the cluster.
fn ports(env: &Env, cluster: bool) -> Vec<u16> {
    if cluster { (0..3).map(|i| env.cluster_port + i).collect() } else { vec![env.port] }
}

fn conforms(cluster: bool, lab: &str) {
    let Some(env) = env() else { return };
    let port = if cluster { env.cluster_port } else { env.port };
    let cfg = config(lab, serde_json::json!({ "port": port }));
    let variants = dedup_lab_backends::variants(SystemKind::Redis, &cfg).unwrap();
    conformance::check_variants(&variants, &mut |v| dedup_lab_backends::open(SystemKind::Redis, v, &cfg), "zstd");
    let mut b =
        dedup_lab_backends::open(SystemKind::Redis, "default", &cfg).unwrap_or_else(|e| panic!("{}", e.chain()));
    if cluster {
        assert!(b.endpoint().contains("cluster of 3 masters"), "{}", b.endpoint());
    }
    let masters = ports(&env, cluster);
    let mut leftovers =
        |ns: &Namespace| masters.iter().any(|p| !admin_scan(&env, *p, &format!("dedup:{}:*", ns.lab())).is_empty());
    conformance::run_suite(b.as_mut(), &mut conformance::Suite { lab, leftovers: &mut leftovers });
    let native = format!("{lab}_native");
    conformance::run_native_suite(b.as_mut(), &native);
    assert!(!leftovers(&Namespace::new(&native.parse().unwrap(), 2)), "the native suite left keys");
}

#[test]
fn redis_standalone_conforms() {
    conforms(false, "dedup_t_redis_standalone");
}

#[test]
fn redis_cluster_conforms() {
    conforms(true, "dedup_t_redis_cluster");
}
