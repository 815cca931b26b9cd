//! ClickHouse against the REAL local server of `scripts/services.sh up clickhouse` (18.16):
//! the shared conformance suite in every variant (blob and native mode), the codec variant
//! refused on a server without codecs, faults, ground truth and CLI runs. Whether a lab is
//! left behind is asked of the server itself (over HTTP as the admin user, with curl), not
//! of the backend.
//!
//! Without the server these tests print why and pass; under `scripts/test.sh`
//! (`DEDUP_LAB_REQUIRE_SERVERS=1`) a missing server fails them. The test user may use only
//! `dedup_lab` and `dedup_t_ch_0` … `dedup_t_ch_9`; each test has its own lab.

mod support;

use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::{Backend, ErrorClass, Namespace, SystemKind};
use std::process::Command;

const VARS: &[&str] = &[
    "DEDUP_CLICKHOUSE_HOST",
    "DEDUP_CLICKHOUSE_PORT",
    "DEDUP_CLICKHOUSE_USER",
    "DEDUP_CLICKHOUSE_PASSWORD",
    "DEDUP_CLICKHOUSE_ADMIN_PASSWORD",
    "DEDUP_CLICKHOUSE_DATA_DIR",
];

fn ch() -> Option<Vec<String>> {
    support::server_env("clickhouse", VARS)
}

fn config(lab: &str, settings: serde_json::Value) -> BackendConfig {
    BackendConfig::new(lab.parse().unwrap(), "clickhouse", "DEDUP_CLICKHOUSE", settings, std::env::temp_dir())
}

fn open(lab: &str, variant: &str, settings: serde_json::Value) -> Box<dyn Backend> {
    dedup_lab_backends::open(SystemKind::Clickhouse, variant, &config(lab, settings))
        .unwrap_or_else(|e| panic!("{variant}: {}", e.chain()))
}

/// Runs `sql` on the server as the admin user (curl, password in a header read from stdin's
/// environment, never on the command line); returns the TabSeparated answer.
fn admin(env: &[String], sql: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--data-binary", "@-", "-H", "X-ClickHouse-User: default"])
        .arg("-H")
        .arg(format!("X-ClickHouse-Key: {}", env[4]))
        .arg(format!("http://{}:{}/", env[0], env[1]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(sql.as_bytes())?;
            c.wait_with_output()
        })
        .expect("curl runs (installed by scripts/services.sh)");
    assert!(out.status.success(), "{sql}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn database_exists(env: &[String], db: &str) -> bool {
    admin(env, &format!("SELECT count() FROM system.databases WHERE name = '{db}'")) != "0"
}

#[test]
fn clickhouse_conforms_in_every_variant() {
    let Some(env) = ch() else { return };
    let lab = "dedup_t_ch_0";
    let cfg = config(lab, serde_json::json!({}));
    let variants = dedup_lab_backends::variants(SystemKind::Clickhouse, &cfg).unwrap();
    assert_eq!(variants, ["mergetree", "replacing"]);
    conformance::check_variants(
        &variants,
        &mut |v| dedup_lab_backends::open(SystemKind::Clickhouse, v, &cfg),
        "collapsingmergetree",
    );
    for variant in &variants {
        let mut b = open(lab, variant, serde_json::json!({}));
        let env2 = env.clone();
        let mut leftovers = move |ns: &Namespace| database_exists(&env2, ns.lab().as_str());
        conformance::run_suite(b.as_mut(), &mut conformance::Suite { lab, leftovers: &mut leftovers });
        conformance::run_native_suite(b.as_mut(), "dedup_t_ch_1");
        assert!(!database_exists(&env, "dedup_t_ch_1"), "{variant}: the native suite left its database");
    }
}

/// 18.16 has no column codecs: the codec variant is refused when it opens (so at preflight),
/// with a sentence naming the version it needs.
#[test]
fn the_codec_variant_is_refused_by_a_server_without_codecs() {
    let Some(_env) = ch() else { return };
    let cfg = config("dedup_t_ch_2", serde_json::json!({"variants": ["mergetree-zstd"]}));
    assert_eq!(dedup_lab_backends::variants(SystemKind::Clickhouse, &cfg).unwrap(), ["mergetree-zstd"]);
    let e = match dedup_lab_backends::open(SystemKind::Clickhouse, "mergetree-zstd", &cfg) {
        Ok(_) => panic!("18.16 has no codecs; the variant must be refused"),
        Err(e) => e,
    };
    let msg = e.chain();
    assert!(msg.contains("needs column codecs, which ClickHouse has from 19.1; this server is 18.16"), "{msg}");
    assert_eq!(e.class(), Some(ErrorClass::Config));
}
