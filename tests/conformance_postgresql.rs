//! The native part of the conformance suite on the REAL local PostgreSQL test server: the
//! five synthetic payload types, parsed as the engine parses them, through typed tables in
//! both TOAST variants. Skips without `DEDUP_PG_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`.

mod conformance;
mod support;

use dedup_lab_backends::BackendConfig;
use dedup_lab_core::SystemKind;

#[test]
fn postgresql_native_records_conform() {
    let Some(_) =
        support::server_env("postgresql", &["DEDUP_PG_HOST", "DEDUP_PG_PORT", "DEDUP_PG_USER", "DEDUP_PG_PASSWORD"])
    else {
        return;
    };
    for variant in ["extended", "external"] {
        let cfg = BackendConfig::new(
            "dedup_t_conformance_native".parse().unwrap(),
            "postgresql",
            "DEDUP_PG",
            serde_json::json!({}),
            std::path::PathBuf::new(),
        );
        let mut b = dedup_lab_backends::open(SystemKind::Postgresql, variant, &cfg)
            .unwrap_or_else(|e| panic!("{variant}: {}", e.chain()));
        conformance::run_native_suite(b.as_mut(), "dedup_t_conformance_native");
    }
}
