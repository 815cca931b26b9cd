//! The shared conformance suite (`dedup_lab_backends::conformance`) on the REAL local
//! PostgreSQL test server, in every variant: blob mode, native mode (the five synthetic
//! payload types through typed tables), the variant list, preflight and cleanup. Whether a
//! lab is left behind is asked of the server's catalog through psql, not of the backend.
//! Skips without `DEDUP_PG_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`.

use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::SystemKind;
use std::process::Command;

const VARS: &[&str] = &["DEDUP_PG_HOST", "DEDUP_PG_PORT", "DEDUP_PG_USER", "DEDUP_PG_PASSWORD"];

fn config(lab: &str) -> BackendConfig {
    BackendConfig::new(lab.parse().unwrap(), "postgresql", "DEDUP_PG", serde_json::json!({}), std::env::temp_dir())
}

/// Asks the server itself (through psql) whether a schema exists.
fn schema_exists(env: &[String], schema: &str) -> bool {
    let out = Command::new("psql")
        .env("PGPASSWORD", &env[3])
        .args(["-X", "-h", &env[0], "-p", &env[1], "-U", &env[2], "-d", "dedup", "-tAc"])
        .arg(format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{schema}'"))
        .output()
        .expect("psql runs (installed by scripts/services.sh)");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim() != "0"
}

#[test]
fn postgresql_conforms_in_every_variant() {
    let Some(env) = crate::support::server_env("postgresql", VARS) else { return };
    let lab = "dedup_t_conformance";
    let cfg = config(lab);
    let variants = dedup_lab_backends::variants(SystemKind::Postgresql, &cfg).unwrap();
    conformance::check_variants(
        &variants,
        &mut |v| dedup_lab_backends::open(SystemKind::Postgresql, v, &cfg),
        "extended-zstd",
    );
    for variant in &variants {
        let mut b = dedup_lab_backends::open(SystemKind::Postgresql, variant, &cfg)
            .unwrap_or_else(|e| panic!("{variant}: {}", e.chain()));
        let env2 = env.clone();
        let mut leftovers = move |ns: &dedup_lab_core::Namespace| schema_exists(&env2, ns.lab().as_str());
        conformance::run_suite(b.as_mut(), &mut conformance::Suite { lab, leftovers: &mut leftovers });
        conformance::run_native_suite(b.as_mut(), "dedup_t_conformance_native");
        assert!(!schema_exists(&env, "dedup_t_conformance_native"), "{variant}: native suite left its schema");
    }
}
