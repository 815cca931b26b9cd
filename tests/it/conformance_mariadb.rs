//! The shared conformance suite (`dedup_lab_backends::conformance`) on the REAL local
//! MariaDB test server, in every variant: blob mode, native mode (the five synthetic payload
//! types through typed tables), the variant list, preflight and cleanup. Whether a lab is
//! left behind is asked of the server's catalog through the `mariadb` client as root, not of
//! the backend. Skips without `DEDUP_MARIADB_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`.

use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::SystemKind;

const VARS: &[&str] = &[
    "DEDUP_MARIADB_HOST",
    "DEDUP_MARIADB_PORT",
    "DEDUP_MARIADB_USER",
    "DEDUP_MARIADB_PASSWORD",
    "DEDUP_MARIADB_SOCKET",
    "DEDUP_MARIADB_ROOT_PASSWORD",
];

fn config(lab: &str) -> BackendConfig {
    BackendConfig::new(lab.parse().unwrap(), "mariadb", "DEDUP_MARIADB", serde_json::json!({}), std::env::temp_dir())
}

#[test]
fn mariadb_conforms_in_every_variant() {
    if crate::support::server_env("mariadb", VARS).is_none() {
        return;
    }
    let srv = crate::mariadb_server::shared_env().expect("the variables were checked above");
    let lab = "dedup_t_m_conformance";
    let native_lab = "dedup_t_m_conformance_native";
    let cfg = config(lab);
    let variants = dedup_lab_backends::variants(SystemKind::Mariadb, &cfg).unwrap();
    assert_eq!(variants, ["dynamic", "compressed", "page-compressed"]);
    conformance::check_variants(&variants, &mut |v| dedup_lab_backends::open(SystemKind::Mariadb, v, &cfg), "compact");
    for variant in &variants {
        let mut b = dedup_lab_backends::open(SystemKind::Mariadb, variant, &cfg)
            .unwrap_or_else(|e| panic!("{variant}: {}", e.chain()));
        let srv2 = srv.clone();
        let mut leftovers = move |ns: &dedup_lab_core::Namespace| srv2.database_exists(ns.lab().as_str());
        conformance::run_suite(b.as_mut(), &mut conformance::Suite { lab, leftovers: &mut leftovers });
        conformance::run_native_suite(b.as_mut(), native_lab);
        assert!(!srv.database_exists(native_lab), "{variant}: the native suite left its database");
    }
}
