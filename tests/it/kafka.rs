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
];

struct Env {
    data_dir: PathBuf,
    sasl_port: String,
    tls_port: String,
    ca: String,
    password: String,
}

fn env() -> Option<Env> {
    let v = crate::support::server_env("kafka", VARS)?;
    Some(Env {
        data_dir: v[2].clone().into(),
        sasl_port: v[3].clone(),
        tls_port: v[4].clone(),
        ca: v[5].clone(),
        password: v[6].clone(),
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
        let mut leftovers = |ns: &Namespace| {
            let dirs = topic_dirs(&env, ns.lab());
            if !dirs.is_empty() {
                eprintln!("{variant}: partition directories left on the broker's disk: {dirs:?}");
            }
            !dirs.is_empty()
        };
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

/// Native records (one message per record, its canonical encoding) through the bulk path and
/// one by one, read back, counted and deleted (tombstones): the compact-key variant is the
/// one with per-record delete.
#[test]
fn kafka_native_mode_round_trips_in_compact_key() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_kafka_native";
    let mut b = open_with(lab, "cleanup=compact-key", serde_json::json!({ "cleaner_timeout": 1 }));
    conformance::run_native_suite(b.as_mut(), lab);
    assert!(topic_dirs(&env, &lab.parse().unwrap()).is_empty(), "the native suite left topics behind");

    // What the broker holds is one JSON object per record, also for a CSV-shaped payload
    // (`<uuid>,<value>` lines): read straight from the topic, not through the backend.
    let (schema, recs) = conformance::native_records(dedup_lab_core::PayloadType::UuidKeys, 0, 4096, 0);
    let ns = Namespace::new(&lab.parse().unwrap(), 1).with_schema(schema);
    b.reset(&ns).unwrap();
    let mut stream = recs.iter().cloned().map(Ok);
    assert_eq!(b.bulk_insert(&ns, &mut stream).unwrap(), recs.len() as u64);
    let topic = format!("dedup-lab-{}-c0", lab.replace('_', "-"));
    let messages = topic_values(&topic);
    assert_eq!(messages.len(), recs.len());
    for (m, r) in messages.iter().zip(&recs) {
        let csv = String::from_utf8(r.data.clone()).unwrap();
        let (key, value) = csv.split_once(',').unwrap();
        assert_eq!(m["key"], key, "{m} for {csv}");
        assert_eq!(m["value"].as_i64(), Some(value.trim().parse().unwrap()), "{m} for {csv}");
    }
    assert_eq!(b.read_one(&ns, &recs[1].id).unwrap().as_deref(), Some(&recs[1].data[..]), "read back as sent");
    b.teardown(&ns).unwrap();
}

/// The SCRAM credentials of `user` for both mechanisms, set through the plaintext listener
/// (the broker's metadata holds them; services.sh cannot, it has no Kafka client).
pub(crate) fn scram_user(user: &str, password: &str) {
    let cfg = config("dedup_t_kafka_admin", serde_json::json!({}));
    let mut b = dedup_lab_backends::kafka::KafkaBackend::open(&cfg, "default").unwrap();
    for sha512 in [true, false] {
        b.cluster().upsert_scram_user(user, password, sha512).unwrap_or_else(|e| panic!("{}", e.chain()));
    }
}

fn sasl_settings(port: &str, mech: &str, user: &str, password: &str) -> serde_json::Value {
    // The password goes through a file: the config never holds a secret.
    let file = std::env::temp_dir().join(format!("dedup-t-kafka-pw-{user}-{}", std::process::id()));
    std::fs::write(&file, password).unwrap();
    // crabka advertises its plaintext listener to clients of every listener: stay on this one.
    serde_json::json!({ "port": port, "user": user, "sasl_mechanism": mech, "password_file": file, "bootstrap_only": true })
}

#[test]
fn kafka_scram_and_tls_authenticate_and_bad_credentials_are_one_clear_error() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_kafka_auth";
    scram_user("dedup", &env.password);
    let ns = Namespace::new(&lab.parse().unwrap(), 1);
    for mech in ["scram-sha-512", "scram-sha-256"] {
        let mut b = open_with(lab, "default", sasl_settings(&env.sasl_port, mech, "dedup", &env.password));
        let report = b.preflight(&ns).unwrap_or_else(|e| panic!("{mech}: {}", e.chain()));
        assert!(report.checks.iter().any(|c| c.contains("authenticated")), "{mech}: {:?}", report.checks);
        assert!(b.endpoint().contains(&mech.to_ascii_uppercase()), "{}", b.endpoint());
    }
    // TLS (SASL_SSL) with the test CA, the certificate checked against `localhost`.
    let mut tls = sasl_settings(&env.tls_port, "scram-sha-512", "dedup", &env.password);
    tls["sslrootcert"] = serde_json::json!(env.ca);
    tls["tls_server_name"] = serde_json::json!("localhost");
    let mut b = open_with(lab, "default", tls.clone());
    b.reset(&ns).unwrap_or_else(|e| panic!("TLS: {}", e.chain()));
    assert_eq!(b.insert_one(&ns, &blob(1, 0, vec![7u8; 4096])).unwrap(), 1);
    assert_eq!(b.count(&ns).unwrap(), 1);
    b.teardown(&ns).unwrap();
    // A certificate for another name is a configuration error.
    tls["tls_server_name"] = serde_json::json!("elsewhere.example");
    let e = open_with(lab, "default", tls).reset(&ns).unwrap_err();
    assert_eq!(e.class(), Some(ErrorClass::Config), "{}", e.chain());

    // Wrong password: one authentication error that never shows the password.
    let wrong = "not-the-password-4711";
    let e = open_with(lab, "default", sasl_settings(&env.sasl_port, "scram-sha-512", "dedup", wrong))
        .reset(&ns)
        .unwrap_err();
    assert_eq!(e.class(), Some(ErrorClass::Authentication), "{}", e.chain());
    assert!(!e.chain().contains(wrong) && !e.chain().contains(&env.password), "{}", e.chain());
    assert!(e.chain().contains("password"), "the fix is named: {}", e.chain());
    // PLAIN: crabka takes no PLAIN passwords from its configuration, so it always refuses.
    let e = open_with(lab, "default", sasl_settings(&env.sasl_port, "plain", "dedup", &env.password))
        .reset(&ns)
        .unwrap_err();
    assert_eq!(e.class(), Some(ErrorClass::Authentication), "{}", e.chain());
    // A mechanism the listener does not offer names the ones it does.
    let mut plain_tls = sasl_settings(&env.tls_port, "plain", "dedup", &env.password);
    plain_tls["sslrootcert"] = serde_json::json!(env.ca);
    plain_tls["tls_server_name"] = serde_json::json!("localhost");
    let e = open_with(lab, "default", plain_tls).reset(&ns).unwrap_err();
    assert_eq!(e.class(), Some(ErrorClass::Config), "{}", e.chain());
    assert!(e.chain().contains("SCRAM-SHA-512"), "{}", e.chain());
}

#[test]
fn kafka_authorization_failure_is_one_sentence_with_the_acls_to_grant() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_kafka_acl";
    scram_user("dedup_limited", "limited-password-1");
    let mut b = open_with(
        lab,
        "default",
        sasl_settings(&env.sasl_port, "scram-sha-512", "dedup_limited", "limited-password-1"),
    );
    let e = b.reset(&Namespace::new(&lab.parse().unwrap(), 1)).unwrap_err();
    assert_eq!(e.class(), Some(ErrorClass::Permission), "{}", e.chain());
    let text = e.chain();
    assert!(text.contains("User:dedup_limited") && text.contains("dedup-lab-"), "{text}");
    assert_eq!(text.lines().count(), 1, "one sentence: {text}");
}

#[test]
fn kafka_unreachable_bootstrap_is_classed_and_named() {
    let Some(_env) = env() else { return };
    let mut b = open_with(
        "dedup_t_kafka_unreach",
        "default",
        serde_json::json!({ "host": "127.0.0.1", "port": 1, "connect_timeout": 2 }),
    );
    let e = b.reset(&Namespace::new(&"dedup_t_kafka_unreach".parse().unwrap(), 1)).unwrap_err();
    assert_eq!(e.class(), Some(ErrorClass::Unreachable), "{}", e.chain());
    assert!(e.chain().contains("127.0.0.1:1"), "{}", e.chain());
}

/// The state crabka-broker 0.3.0 is left in when a topic's deletion meets its compaction: a
/// partition directory, records and all, of a topic that no longer exists (planted here by
/// copying a real partition's files back after the topic was deleted). `cleanup` lists and
/// removes it; a reset with `data_dir` has it removed before it creates the topic again (the
/// broker would reopen it and count the old records), and one without `data_dir`, which
/// cannot see the broker's disk, refuses to measure a topic that is not empty at birth.
#[test]
fn directories_a_deleted_topic_left_behind_are_removed_or_refused_never_measured() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_kafka_stranded";
    let ns = Namespace::new(&lab.parse().unwrap(), 1);
    let mut b = open_with(lab, "default", serde_json::json!({}));
    b.reset(&ns).unwrap_or_else(|e| panic!("{}", e.chain()));
    let mut recs = (0..50).map(|i| Ok(blob(i, 0, vec![(i % 251) as u8; 8 * 1024])));
    assert_eq!(b.bulk_insert(&ns, &mut recs).unwrap(), 50);
    let dir = env.data_dir.join("dedup-lab-dedup-t-kafka-stranded-c0-0");
    let saved = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    };
    copy(&dir, saved.path());
    b.teardown(&ns).unwrap();
    assert!(!dir.exists(), "the broker removed the deleted topic's directory");
    let plant = || {
        copy(saved.path(), &dir);
        assert_eq!(topic_dirs(&env, ns.lab()).len(), 1);
    };

    // cleanup: listed, then removed through the broker, then nothing is left.
    plant();
    let listed = b.inventory(ns.lab()).unwrap();
    assert!(
        listed.iter().any(|l| l.contains("directory dedup-lab-dedup-t-kafka-stranded-c0-0 of a deleted topic")),
        "{listed:?}"
    );
    b.drop_lab(ns.lab()).unwrap_or_else(|e| panic!("{}", e.chain()));
    assert!(topic_dirs(&env, ns.lab()).is_empty(), "drop_lab had the stranded directory removed");
    assert!(b.inventory(ns.lab()).unwrap().is_empty());
    assert!(b.take_notes().iter().any(|n| n.contains("had left the directories")), "the repair is in the notes");

    // Without data_dir the reset cannot see the directory; the broker reopens it, and the
    // reset refuses rather than measure old records.
    plant();
    let mut remote = open_with(lab, "default", serde_json::json!({ "data_dir": "" }));
    let e = remote.reset(&ns).unwrap_err();
    assert_eq!(e.class(), Some(ErrorClass::Server), "{}", e.chain());
    assert!(e.chain().contains("right after dedup-lab created them"), "{}", e.chain());

    // With data_dir the reset has it removed first: the new topic is empty.
    b.drop_lab(ns.lab()).unwrap();
    plant();
    b.reset(&ns).unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(b.count(&ns).unwrap(), 0, "no old record in the new topic");
    assert_eq!(b.sizes(&ns).unwrap().total_bytes, Some(0));
    b.teardown(&ns).unwrap();
    assert!(topic_dirs(&env, ns.lab()).is_empty());
}

/// Ground truth on the broker's disk: zstd shrinks compressible records and `none` does not;
/// compaction by content hash leaves one copy of each distinct value once the cleaner ran.
#[test]
fn kafka_codecs_and_hash_compaction_change_what_the_broker_stores() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_kafka_truth";
    let ns = Namespace::new(&lab.parse().unwrap(), 1);
    let text = |i: u64| format!("record {i} ").repeat(6000).into_bytes();
    let mut sizes = Vec::new();
    for variant in ["compression=none", "compression=zstd"] {
        let mut b = open_with(lab, variant, serde_json::json!({}));
        b.reset(&ns).unwrap();
        let mut recs = (0..40).map(|i| Ok(blob(i, 0, text(i))));
        assert_eq!(b.bulk_insert(&ns, &mut recs).unwrap(), 40);
        let total = b.sizes(&ns).unwrap().total_bytes.unwrap();
        sizes.push(total);
        b.teardown(&ns).unwrap();
    }
    let logical: u64 = (0..40).map(|i| text(i).len() as u64).sum();
    assert!(sizes[0] >= logical, "uncompressed log {} < logical {logical}", sizes[0]);
    assert!(sizes[1] * 20 < sizes[0], "zstd should shrink repetitive text 20x: {sizes:?}");

    // 60 records of 32 KiB, 6 distinct values (U90): after compaction by hash about 6 stay.
    let mut b =
        open_with(lab, "cleanup=compact-hash", serde_json::json!({ "segment_bytes": 65536, "cleaner_timeout": 90 }));
    b.reset(&ns).unwrap();
    let value = |v: u64| {
        let mut x = v.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..32 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    let mut recs = (0..60).map(|i| Ok(blob(i, 0, value(i % 6))));
    assert_eq!(b.bulk_insert(&ns, &mut recs).unwrap(), 60);
    // Closes the last full segment: one more record (a 7th distinct value).
    b.insert_one(&ns, &blob(60, 0, value(99))).unwrap();
    // Against what was written, not the size before maintenance: the broker's own cleaner
    // round (every 30 s) may already have compacted closed segments by then.
    let written: u64 = 61 * 32 * 1024;
    let before = b.sizes(&ns).unwrap().total_bytes.unwrap();
    let m = b.maintenance(&ns).unwrap();
    let after = b.sizes(&ns).unwrap().total_bytes.unwrap();
    assert!(
        after * 3 < written && after <= before,
        "compaction by hash should drop most copies: {written} written, {before} before, {after} after ({})",
        m.action
    );
    assert_eq!(b.count(&ns).unwrap(), 7, "one record per distinct value");
    assert!(b.deduplicates().is_some());
    let on_disk: u64 = topic_dirs(&env, ns.lab())
        .iter()
        .flat_map(|d| std::fs::read_dir(env.data_dir.join(d)).unwrap())
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(on_disk * 2 < written, "the files shrank too: {on_disk} on disk for {written} written");
    b.teardown(&ns).unwrap();
}

/// A throwaway broker of the test's own on a loopback address of its own (crabka's
/// controller takes port 9093 of the listen address, so each broker needs its own address;
/// two tests sharing one would connect to each other's broker when they run in parallel).
struct Throwaway {
    bin: String,
    host: &'static str,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl Throwaway {
    fn start(host: &'static str) -> Throwaway {
        let bin = std::env::var("DEDUP_KAFKA_TEST_BIN").expect("DEDUP_KAFKA_TEST_BIN (scripts/services.sh env kafka)");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("meta.properties.json"),
            r#"{"directory_id":"6f1c1a52-4b8e-4e4c-9d55-0d3f3c0f9a11","cluster_id":"throwaway","node_id":1}"#,
        )
        .unwrap();
        let mut t = Throwaway { bin, host, dir, port: 19192, child: None };
        t.start_again();
        t
    }

    fn start_again(&mut self) {
        let child = std::process::Command::new(&self.bin)
            .args([
                "--listen-addr",
                &format!("{}:{}", self.host, self.port),
                "--metrics-listen-addr",
                "none",
                "--log-dir",
            ])
            .arg(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the broker starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect((self.host, self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the throwaway broker is not up after 30 s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::json!({ "host": self.host, "port": self.port, "statement_timeout": 10, "connect_timeout": 2 })
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The broker stopped in the middle of a bulk load: a classed error, not a hang or a count;
/// while it is down a clear "cannot connect"; back up, `drop_lab` (what `cleanup` does)
/// deletes the lab's topics.
#[test]
fn kafka_broker_stopped_mid_stage_is_a_connection_error_and_cleanup_works_after() {
    let Some(_env) = env() else { return };
    let mut t = Throwaway::start("127.0.0.2");
    let lab = "dedup_t_kafka_stop";
    let ns = Namespace::new(&lab.parse().unwrap(), 2);
    let mut b = open_with(lab, "default", t.settings());
    b.reset(&ns).unwrap_or_else(|e| panic!("{}", e.chain()));
    let stopper = std::cell::RefCell::new(&mut t);
    let mut recs = (0..4000u64).map(|i| {
        if i == 300 {
            stopper.borrow_mut().stop();
        }
        Ok(blob(i, (i % 2) as u8, vec![(i % 251) as u8; 16 * 1024]))
    });
    let e = b.bulk_insert(&ns, &mut recs).unwrap_err();
    drop(recs);
    assert!(
        matches!(e.class(), Some(ErrorClass::ConnectionLost | ErrorClass::Unreachable)),
        "{:?}: {}",
        e.class(),
        e.chain()
    );
    assert!(e.chain().starts_with("kafka: "), "{}", e.chain());
    let down = b.count(&ns).unwrap_err();
    assert_eq!(down.class(), Some(ErrorClass::Unreachable), "{}", down.chain());
    assert!(down.chain().contains("is the broker running"), "{}", down.chain());
    t.start_again();
    let left = b.inventory(ns.lab()).unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(left.len(), 2, "both lab topics are still there: {left:?}");
    b.drop_lab(ns.lab()).unwrap();
    assert!(b.inventory(ns.lab()).unwrap().is_empty());
}

/// A full run over every variant: each result line names the broker and the codec, the
/// stages a variant cannot do are journaled as unsupported with the reason, the row counts
/// are the acknowledged offsets, incompressible records take their own size (EDR 1), the
/// cleaner of the hash-compacted topic gives back most of the growth of U90 data (its
/// duplicates), the key-compacted one the records the delete stage tombstoned, and no lab
/// topic is left.
#[test]
fn a_run_over_every_variant_records_the_broker_and_the_effect_of_compaction() {
    use dedup_lab_core::Stage;
    let Some(env) = env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "lab = \"dedup_t_kafka_run\"\n[systems.kafka]\nsegment_bytes = \"256KiB\"\ncleaner_timeout = 40\nprobe = \"internal\"\n",
    )
    .unwrap();
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
            "kafka",
            "--payload-types",
            "random_binary",
            "--grades",
            "U90",
            "--records",
            "40",
            "--record-size",
            "64KiB",
        ],
    );
    assert!(out.status.success(), "{}", crate::support::text_of(&out));
    let lines = crate::support::journal(&results);
    let mut variants = std::collections::BTreeSet::new();
    let (mut none_edr, mut hash_freed, mut key_freed) = (None, None, None);
    for m in crate::support::stages(&lines) {
        variants.insert(m.cell.variant.clone());
        if let Some(why) = &m.unsupported {
            assert!(
                matches!(m.stage, Stage::PerfileDelete | Stage::Maintenance) && !why.is_empty(),
                "{} {:?}: {why}",
                m.cell,
                m.stage
            );
            continue;
        }
        assert!(m.notes.iter().any(|n| n.starts_with("broker: crabka-broker 0.3.0")), "{:?}", m.notes);
        assert!(m.valid, "{} {:?}: {:?}", m.cell, m.stage, m.invalid_reasons);
        if m.stage == Stage::BulkInsert {
            assert_eq!(m.rows_reported, Some(40), "{}", m.cell);
        }
        match (m.cell.variant.as_str(), m.stage) {
            ("compression=none", Stage::BulkInsert) => none_edr = m.edr_replica,
            ("cleanup=compact-hash", Stage::Maintenance) => hash_freed = m.reclaimed_share,
            ("cleanup=compact-key", Stage::Maintenance) => key_freed = m.reclaimed_share,
            _ => {}
        }
    }
    assert_eq!(variants.len(), 7, "{variants:?}");
    let (none_edr, hash_freed) = (none_edr.unwrap(), hash_freed.unwrap());
    assert!((none_edr - 1.0).abs() < 0.1, "incompressible, uncompressed: EDR {none_edr}");
    // 90 % of the records are copies; the active segment is never cleaned, so a bit less.
    assert!(hash_freed > 0.6, "compaction by hash gives back the duplicates: {hash_freed}");
    // The delete stage's tombstones sit in the active segment until maintenance closes it;
    // then the cleaner removes the deleted records.
    let key_freed = key_freed.unwrap();
    assert!(key_freed > 0.9, "compaction by key gives back the deleted records: {key_freed}");
    assert!(topic_dirs(&env, &"dedup_t_kafka_run".parse().unwrap()).is_empty(), "the run's topics are gone");
}

/// Wrong credentials and an unreachable bootstrap fail the kafka cells with a clear,
/// journaled error; the files cell still runs; the password is never printed or journaled.
#[test]
fn a_run_with_wrong_credentials_or_no_broker_journals_the_error_and_goes_on() {
    use dedup_lab_core::{CellStatus, JournalLine};
    let Some(env) = env() else { return };
    let wrong = "Wrong-Kafka-Password-4711";
    for (settings, want) in [
        (
            format!(
                "port = {}\nuser = \"dedup\"\nsasl_mechanism = \"scram-sha-512\"\nbootstrap_only = true\n",
                env.sasl_port
            ),
            "SaslAuthenticationFailed",
        ),
        ("port = 1\nconnect_timeout = 2\n".to_string(), "is the broker running"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!("lab = \"dedup_t_kafka_fault\"\n[systems.kafka]\nvariants = [\"default\"]\n{settings}"),
        )
        .unwrap();
        let out = crate::support::run_env(
            &[("DEDUP_KAFKA_PASSWORD", wrong)],
            &[
                "run",
                "--config",
                cfg.to_str().unwrap(),
                "--results",
                tmp.path().join("r").to_str().unwrap(),
                "--systems",
                "kafka,files",
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
        assert!(all.contains(want), "{want}: {all}");
        let journal_text =
            std::fs::read_to_string(crate::support::run_dir(&tmp.path().join("r")).join("measurements.jsonl")).unwrap();
        assert!(!all.contains(wrong) && !journal_text.contains(wrong), "the password is printed or journaled");
        let mut seen = 0;
        for l in crate::support::journal(&tmp.path().join("r")) {
            if let JournalLine::Cell { cell, status, reason, .. } = l {
                if cell.system == SystemKind::Kafka {
                    assert_eq!(status, CellStatus::Failed, "{cell}");
                    assert!(reason.as_deref().unwrap_or_default().contains(want), "{reason:?}");
                } else {
                    assert_eq!(status, CellStatus::Ok, "{cell}: the run goes on");
                }
                seen += 1;
            }
        }
        assert_eq!(seen, 2, "one kafka and one files cell journaled");
    }
}

/// `cleanup --systems kafka` lists and deletes the lab's topics and nothing else: topics of
/// another lab whose name starts like ours, and topics outside the prefix, survive.
#[test]
fn cleanup_deletes_the_kafka_lab_topics_and_leaves_other_topics_alone() {
    let Some(env) = env() else { return };
    let lab = "dedup_t_k_cleanup";
    let ours = ["dedup-lab-dedup-t-k-cleanup-c0", "dedup-lab-dedup-t-k-cleanup-c7"];
    let foreign = ["dedup-lab-dedup-t-k-cleanupx-c0", "dedup-lab-dedup-t-k-cleanup-c0-x", "orders-dedup-t-k-cleanup"];
    let mut admin =
        dedup_lab_backends::kafka::KafkaBackend::open(&config(lab, serde_json::json!({})), "default").unwrap();
    for t in ours.iter().chain(&foreign) {
        admin.cluster().delete_topics(&[t.to_string()]).unwrap();
        admin.cluster().create_topic(t, 1, 1, &[]).unwrap_or_else(|e| panic!("{t}: {}", e.chain()));
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, format!("lab = \"{lab}\"\n")).unwrap();
    let args =
        ["cleanup", "--config", cfg.to_str().unwrap(), "--results", tmp.path().to_str().unwrap(), "--systems", "kafka"];
    let listed = crate::support::ok(&[&args[..], &["--dry-run"]].concat());
    assert!(listed.contains("found   kafka"), "{listed}");
    for t in ours {
        assert!(listed.contains(&format!("topic {t}")), "{t}: {listed}");
    }
    for t in foreign {
        assert!(!listed.contains(&format!("topic {t}\n")) && !listed.contains(&format!("topic {t} ")), "{t}: {listed}");
    }
    let dropped = crate::support::ok(&args);
    assert!(dropped.contains("dropped kafka"), "{dropped}");
    let dirs: Vec<String> = std::fs::read_dir(&env.data_dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    for t in ours {
        assert!(!dirs.contains(&format!("{t}-0")), "{t} is gone: {dirs:?}");
    }
    for t in foreign {
        assert!(dirs.contains(&format!("{t}-0")), "{t} survives: {dirs:?}");
    }
    let again = crate::support::ok(&args);
    assert!(again.contains("clean   kafka"), "{again}");
    admin.cluster().delete_topics(&foreign.iter().map(|t| t.to_string()).collect::<Vec<_>>()).unwrap();
}

/// The broker dies in the middle of a journaled run's bulk stage: the kafka cell is journaled
/// as failed with a connection error, the files cell after it still runs, and once the broker
/// is back `cleanup --systems kafka` removes the topics the dead stage left.
#[test]
fn a_broker_killed_mid_run_fails_its_cell_the_run_goes_on_and_cleanup_removes_the_topics() {
    use dedup_lab_core::{CellStatus, JournalLine};
    let Some(_env) = env() else { return };
    let mut t = Throwaway::start("127.0.0.3");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "lab = \"dedup_t_kafka_midrun\"\n[systems.kafka]\nvariants = [\"default\"]\nhost = \"{}\"\nport = {}\n\
             connect_timeout = 2\nstatement_timeout = 10\n",
            t.host, t.port
        ),
    )
    .unwrap();
    let results = tmp.path().join("r");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .args(["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()])
        .args(["--systems", "kafka,files", "--payload-types", "random_binary", "--grades", "U0"])
        .args(["--records", "4000", "--record-size", "64KiB", "--stages", "bulk_insert"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the broker once the lab's partition holds 32 MiB: the bulk stage is under way.
    let part = t.dir.path().join("dedup-lab-dedup-t-kafka-midrun-c0-0");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let held: u64 = std::fs::read_dir(&part)
            .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0);
        if held > 32 << 20 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the bulk stage never reached 32 MiB");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    t.stop();
    let out = child.wait_with_output().unwrap();
    let all = crate::support::text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let mut seen = 0;
    for l in crate::support::journal(&results) {
        if let JournalLine::Cell { cell, status, reason, .. } = l {
            if cell.system == SystemKind::Kafka {
                assert_eq!(status, CellStatus::Failed, "{cell}");
                let reason = reason.unwrap_or_default();
                assert!(reason.contains(t.host), "names the broker: {reason}");
            } else {
                assert_eq!(status, CellStatus::Ok, "{cell}: the run goes on");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 2, "one kafka and one files cell journaled: {all}");
    t.start_again();
    let args =
        ["cleanup", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap(), "--systems", "kafka"];
    let listed = crate::support::ok(&[&args[..], &["--dry-run"]].concat());
    assert!(listed.contains("topic dedup-lab-dedup-t-kafka-midrun-c0"), "the dead stage's topic is found: {listed}");
    let dropped = crate::support::ok(&args);
    assert!(dropped.contains("dropped kafka"), "{dropped}");
    assert!(crate::support::ok(&args).contains("clean   kafka"));
}

/// A broker that cannot be reached fails every kafka cell the same way: the run says so in
/// one line with the count (the original logged thousands of lines), the journal keeps every
/// cell.
#[test]
fn one_unreachable_broker_is_one_line_with_the_number_of_cells_it_failed() {
    let Some(_env) = env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "lab = \"dedup_t_kafka_flood\"\n[systems.kafka]\nport = 1\nconnect_timeout = 1\n").unwrap();
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
            "kafka",
            "--payload-types",
            "uuid_keys",
            "--grades",
            "U0,U90",
            "--records",
            "4",
            "--record-size",
            "4KiB",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The cause is printed when it first happens (the server version lookup, the first cell)
    // and once at the end with the count: never once per cell.
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("is the broker running")).collect();
    assert!(lines.len() <= 3, "one line per place the cause is reported, not per cell: {stderr}");
    let summary: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FAILED  ")).collect();
    assert_eq!(summary.len(), 1, "{stderr}");
    assert!(summary[0].starts_with("FAILED  14 cells ("), "7 variants × 2 grades: {}", summary[0]);
    assert_eq!(summary[0].matches("is the broker running").count(), 1, "the teardown's same cause is not repeated");
    let failed = crate::support::journal(&results)
        .into_iter()
        .filter(|l| matches!(l, dedup_lab_core::JournalLine::Cell { status: dedup_lab_core::CellStatus::Failed, .. }))
        .count();
    assert_eq!(failed, 14, "every cell is journaled");
    // The event stream: each cell's first stage ends as failed, with the cause.
    let events = jsonl(&crate::support::run_dir(&results).join("events.jsonl"));
    let failed_stages: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "stage_end" && e["status"] == "failed").collect();
    assert_eq!(failed_stages.len(), 14, "{events:#?}");
    assert!(
        failed_stages.iter().all(|e| e["stage"] == "bulk_insert"
            && e["reason"].as_str().is_some_and(|r| r.contains("is the broker running")))
    );
}

/// The values of `topic` on the local broker (the trace's and events' Kafka copies).
fn topic_values(topic: &str) -> Vec<serde_json::Value> {
    let cfg = config("dedup_t_kafka_admin", serde_json::json!({}));
    let mut w = dedup_lab_backends::kafka::TopicWriter::open(&cfg, topic).unwrap();
    w.read_all().unwrap().iter().map(|v| serde_json::from_slice(v).unwrap()).collect()
}

fn drop_topics(topics: &[&str]) {
    let cfg = config("dedup_t_kafka_admin", serde_json::json!({}));
    let mut b = dedup_lab_backends::kafka::KafkaBackend::open(&cfg, "default").unwrap();
    let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    b.cluster().delete_topics(&names).unwrap();
}

fn jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `[trace.kafka]`: the events and the trace arrive in their topics, each line once and in
/// the order of the files.
#[test]
fn trace_and_events_reach_their_kafka_topics_as_in_the_files() {
    let Some(_env) = env() else { return };
    let (metrics, events) = ("dedup-t-trace-metrics", "dedup-t-trace-events");
    drop_topics(&[metrics, events]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "lab = \"dedup_t_kafka_trace\"\n[trace]\ninterval = \"50ms\"\n[trace.kafka]\nhost = \"127.0.0.1\"\nport = {}\n\
             metrics_topic = \"{metrics}\"\nevents_topic = \"{events}\"\n",
            std::env::var("DEDUP_KAFKA_PORT").unwrap()
        ),
    )
    .unwrap();
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
            "files",
            "--payload-types",
            "random_binary",
            "--grades",
            "U0,U50",
            "--records",
            "800",
            "--record-size",
            "8KiB",
        ],
    );
    assert!(out.status.success(), "{}", crate::support::text_of(&out));
    assert!(!crate::support::text_of(&out).contains("telemetry sink"), "{}", crate::support::text_of(&out));
    let run = crate::support::run_dir(&results);
    let (ev_file, tr_file) = (jsonl(&run.join("events.jsonl")), jsonl(&run.join("trace.jsonl")));
    assert!(tr_file.len() >= 10 && ev_file.len() >= 20, "{} {}", tr_file.len(), ev_file.len());
    assert_eq!(topic_values(events), ev_file, "the events topic holds the file's lines");
    assert_eq!(topic_values(metrics), tr_file, "the metrics topic holds the file's lines");
    drop_topics(&[metrics, events]);
}

/// A Kafka sink that cannot write (wrong credentials) or whose broker stops mid-run never
/// hurts the run: it succeeds, the files are complete, and the sink says so in a handful of
/// lines, not one per sample.
#[test]
fn a_failing_kafka_sink_is_a_handful_of_lines_and_the_run_and_its_files_are_complete() {
    let Some(env) = env() else { return };
    let run_args = |cfg: &std::path::Path, results: &std::path::Path| -> Vec<String> {
        ["run", "--config", cfg.to_str().unwrap(), "--results", results.to_str().unwrap()]
            .iter()
            .chain(&["--systems", "files", "--payload-types", "random_binary", "--grades", "U0"])
            .chain(&["--records", "1500", "--record-size", "4KiB", "--stages", "perfile_insert,perfile_delete"])
            .map(|s| s.to_string())
            .collect()
    };
    let check = |results: &std::path::Path, text: &str| {
        let run = crate::support::run_dir(results);
        let ev = jsonl(&run.join("events.jsonl"));
        assert_eq!(ev.last().unwrap()["event"], "run_end", "the event file is complete");
        let tr = jsonl(&run.join("trace.jsonl"));
        // More than the two final samples: the sampler kept writing while the sink failed. (A
        // count tied to the 10 ms interval raced the clock: 18 samples on a fast run.)
        assert!(tr.len() > 2, "interval samples besides the final ones: {}", tr.len());
        assert_eq!(tr.iter().filter(|s| s["final"] == true).count(), 2, "each stage's last sample is there");
        let sink_lines: Vec<&str> = text.lines().filter(|l| l.contains("telemetry sink")).collect();
        assert!(!sink_lines.is_empty() && sink_lines.len() <= 4, "a handful of lines: {sink_lines:#?}");
        sink_lines.join("\n")
    };
    let tmp = tempfile::tempdir().unwrap();

    // Wrong credentials on the SASL listener.
    let cfg = tmp.path().join("auth.toml");
    std::fs::write(
        &cfg,
        format!(
            "lab = \"dedup_t_kafka_sinkauth\"\n[trace]\ninterval = \"10ms\"\n[trace.kafka]\nhost = \"127.0.0.1\"\n\
             port = {}\nuser = \"dedup\"\nsasl_mechanism = \"SCRAM-SHA-512\"\npassword_env = \"DEDUP_T_WRONG_PW\"\n",
            env.sasl_port
        ),
    )
    .unwrap();
    let results = tmp.path().join("auth");
    let args = run_args(&cfg, &results);
    let out = crate::support::run_env(
        &[("DEDUP_T_WRONG_PW", "not-the-password")],
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let text = crate::support::text_of(&out);
    assert!(out.status.success(), "{text}");
    let said = check(&results, &text);
    assert!(said.contains("sending failed") && said.contains("authentication"), "{said}");
    assert!(!text.contains("not-the-password"), "the password never shows");

    // The broker stops in the middle of the run.
    let mut t = Throwaway::start("127.0.0.4");
    let cfg = tmp.path().join("stop.toml");
    std::fs::write(
        &cfg,
        format!(
            "lab = \"dedup_t_kafka_sinkstop\"\n[trace]\ninterval = \"10ms\"\n[trace.kafka]\nhost = \"{}\"\nport = {}\n\
             connect_timeout = 1\nstatement_timeout = 2\n",
            t.host, t.port
        ),
    )
    .unwrap();
    let results = tmp.path().join("stop");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dedup-lab"))
        .args(run_args(&cfg, &results))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the broker once the metrics topic has samples in it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !t.dir.path().join("dedup-lab-metrics-0").exists()
        || std::fs::read_dir(t.dir.path().join("dedup-lab-metrics-0"))
            .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum::<u64>())
            .unwrap_or(0)
            < 2048
    {
        assert!(std::time::Instant::now() < deadline, "no sample reached the broker");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    t.stop();
    let out = child.wait_with_output().unwrap();
    let text = crate::support::text_of(&out);
    assert!(out.status.success(), "{text}");
    let said = check(&results, &text);
    assert!(said.contains("sending failed"), "{said}");
    assert!(said.contains(t.host), "names the broker: {said}");
}

/// `preflight` reaches the `[trace.kafka]` topics without sending anything: a row per topic
/// with what it found, and a FAILED row with the cause when the credentials are wrong.
#[test]
fn preflight_reaches_the_trace_topics_and_names_a_sink_that_cannot_authenticate() {
    let Some(env) = env() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("ok.toml");
    std::fs::write(
        &cfg,
        format!(
            "lab = \"dedup_t_kafka_pfsink\"\n[trace.kafka]\nhost = \"127.0.0.1\"\nport = {}\nmetrics_topic = \"dedup-t-pf-m\"\n",
            std::env::var("DEDUP_KAFKA_PORT").unwrap()
        ),
    )
    .unwrap();
    let out = crate::support::run(&["preflight", "--config", cfg.to_str().unwrap(), "--systems", "files"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("trace → kafka")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        row.contains("topic dedup-t-pf-m at 127.0.0.1:") && row.contains("topic missing") && row.ends_with("ok"),
        "{row}"
    );
    assert!(topic_values("dedup-t-pf-m").is_empty(), "preflight sent nothing");
    drop_topics(&["dedup-t-pf-m"]);

    let cfg = tmp.path().join("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            "lab = \"dedup_t_kafka_pfsink\"\n[trace.kafka]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"dedup\"\n\
             sasl_mechanism = \"SCRAM-SHA-256\"\npassword_env = \"DEDUP_T_PF_PW\"\n",
            env.sasl_port
        ),
    )
    .unwrap();
    let out = crate::support::run_env(
        &[("DEDUP_T_PF_PW", "wrong-wrong")],
        &["preflight", "--config", cfg.to_str().unwrap(), "--systems", "files"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("events → kafka") && l.ends_with("FAILED")), "{stdout}");
    assert!(stdout.contains("FAILED  trace → kafka: ") && stdout.contains("authentication"), "{stdout}");
    assert!(!stdout.contains("wrong-wrong"));
}

/// Sizes of a cluster dedup-lab cannot ask directly, through the `scrape` probe of an
/// exporter's per-partition log size: here crabka's own metrics endpoint (its disk scanner
/// publishes `crabka_broker_partition_disk_bytes` every second), summed over the lab's
/// topics. The probe waits for the new topics' series to appear and for the value to move and
/// hold; incompressible records take their own size, zstd shrinks text.
#[test]
fn a_run_measures_kafka_through_a_scrape_of_the_brokers_partition_sizes() {
    let Some(_env) = env() else { return };
    let Some(url) = crate::support::server_env("kafka", &["DEDUP_KAFKA_TEST_METRICS_URL"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "lab = \"dedup_t_kafka_scrape\"\n[systems.kafka]\nvariants = [\"compression=none\", \"compression=zstd\"]\n\
             probe = \"scrape\"\n[systems.kafka.scrape]\nurl = \"{}\"\nmetric = \"crabka_broker_partition_disk_bytes\"\n\
             labels = {{ topic = \"dedup-lab-dedup-t-kafka-scrape-*\" }}\nsettle_interval = 0.5\nsettle_polls = 3\n\
             settle_bound = 30\n",
            url[0]
        ),
    )
    .unwrap();
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
            "kafka",
            "--payload-types",
            "random_binary,text_document",
            "--grades",
            "U0",
            "--records",
            "40",
            "--record-size",
            "64KiB",
            "--stages",
            "bulk_insert",
            "--export",
            "none",
        ],
    );
    assert!(out.status.success(), "{}", crate::support::text_of(&out));
    let lines = crate::support::journal(&results);
    let measured = crate::support::stages(&lines);
    assert_eq!(measured.len(), 4);
    for m in &measured {
        assert!(
            m.physical.method.starts_with("scrape:crabka_broker_partition_disk_bytes{topic="),
            "{}",
            m.physical.method
        );
        assert!(m.notes.iter().any(|n| n.starts_with("after: probe settled after")), "{:?}", m.notes);
        let edr = m.edr_replica.unwrap();
        match (m.cell.variant.as_str(), m.cell.payload.as_str()) {
            (_, "random_binary") => assert!((edr - 1.0).abs() < 0.1, "{}: incompressible: EDR {edr}", m.cell),
            ("compression=zstd", "text_document") => assert!(edr > 1.5, "{}: zstd shrinks text: EDR {edr}", m.cell),
            _ => {}
        }
    }
}
