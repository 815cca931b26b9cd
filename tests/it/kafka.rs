//! The Kafka backend against the REAL local broker of `scripts/services.sh up kafka`
//! (crabka-broker 0.3.0): the shared conformance suite in every variant, native mode,
//! SASL/SCRAM and TLS, authorization and connection faults, and ground truth (codecs shrink
//! compressible records; compaction by content hash removes duplicates on disk).
//!
//! What exists on the broker is read from its data directory (one `<topic>-<partition>`
//! directory per partition), independent of the backend's own client.
//! Skips without `DEDUP_KAFKA_*` unless `DEDUP_LAB_REQUIRE_SERVERS=1`.

use dedup_lab_backends::{BackendConfig, conformance};
use dedup_lab_core::{Backend, ErrorClass, LabName, Namespace, Operation, Record, RecordId, SystemKind};
use std::path::PathBuf;

const VARS: &[&str] = &[
    "DEDUP_KAFKA_HOST",
    "DEDUP_KAFKA_PORT",
    "DEDUP_KAFKA_DATA_DIR",
    "DEDUP_KAFKA_TEST_SASL_PORT",
    "DEDUP_KAFKA_TEST_TLS_PORT",
    "DEDUP_KAFKA_TEST_CA",
    "DEDUP_KAFKA_TEST_PASSWORD",
    "DEDUP_KAFKA_TEST_PID_FILE",
];

struct Env {
    data_dir: PathBuf,
    sasl_port: String,
    tls_port: String,
    ca: String,
    password: String,
    pid_file: PathBuf,
}

fn env() -> Option<Env> {
    let v = crate::support::server_env("kafka", VARS)?;
    Some(Env {
        data_dir: v[2].clone().into(),
        sasl_port: v[3].clone(),
        tls_port: v[4].clone(),
        ca: v[5].clone(),
        password: v[6].clone(),
        pid_file: v[7].clone().into(),
    })
}

fn config(lab: &str, settings: serde_json::Value) -> BackendConfig {
    BackendConfig::new(lab.parse().unwrap(), "kafka", "DEDUP_KAFKA", settings, std::env::temp_dir())
}

fn open_with(lab: &str, variant: &str, settings: serde_json::Value) -> Box<dyn Backend> {
    dedup_lab_backends::open(SystemKind::Kafka, variant, &config(lab, settings))
        .unwrap_or_else(|e| panic!("{variant}: {}", e.chain()))
}

/// The lab's partition directories on the broker's disk.
fn topic_dirs(env: &Env, lab: &LabName) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(&env.data_dir) else { return Vec::new() };
    rd.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.rsplit_once('-').is_some_and(|(t, _)| dedup_lab_backends::kafka::is_lab_topic(lab, t)))
        .collect()
}

fn blob(i: u64, container: u8, data: Vec<u8>) -> Record {
    Record::blob(RecordId { key: Record::key_for(i), container }, i, data)
}

#[test]
fn kafka_conforms_in_every_variant() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_kafka_conformance";
    let cfg = config(lab, serde_json::json!({}));
    let variants = dedup_lab_backends::variants(SystemKind::Kafka, &cfg).unwrap();
    assert_eq!(variants.len(), 7, "{variants:?}");
    conformance::check_variants(
        &variants,
        &mut |v| dedup_lab_backends::open(SystemKind::Kafka, v, &cfg),
        "compression=brotli",
    );
    for variant in &variants {
        let mut b = open_with(lab, variant, serde_json::json!({ "cleaner_timeout": 35 }));
        let mut leftovers = |ns: &Namespace| !topic_dirs(&env, ns.lab()).is_empty();
        conformance::run_suite(b.as_mut(), &mut conformance::Suite { lab, leftovers: &mut leftovers });
        let expect_delete = variant == "cleanup=compact-key";
        assert_eq!(b.unsupported(Operation::DeleteOne).is_none(), expect_delete, "{variant}");
        assert_eq!(
            b.unsupported(Operation::Maintenance).is_none(),
            variant.starts_with("cleanup=compact"),
            "{variant}"
        );
    }
}
