//! The PostgreSQL backend against the REAL local test server (`scripts/services.sh up
//! postgresql; eval "$(scripts/services.sh env postgresql)"`). No mocks.
//!
//! Without `DEDUP_PG_*` in the environment every test here prints why and returns; with
//! `DEDUP_LAB_REQUIRE_SERVERS=1` it fails instead. Each test uses its own lab name, so they
//! can run in parallel against one server.

use crate::support::*;
use dedup_lab_backends::postgresql::PgBackend;
use dedup_lab_backends::{BackendConfig, open};
use dedup_lab_core::{
    Backend, Column, ColumnType, ErrorClass, LabName, Namespace, Record, RecordId, RowEncoding, Schema, SystemKind,
    Value,
};
use serde_json::json;

const NO_SERVER: &str = "no local PostgreSQL test server in the environment (DEDUP_PG_HOST/PORT/USER/PASSWORD unset; \
                         run `scripts/services.sh up postgresql` and eval `scripts/services.sh env postgresql`)";

fn config(lab: &str, settings: serde_json::Value) -> Option<BackendConfig> {
    env_pg_config(lab, settings)
}

fn open_pg(cfg: &BackendConfig, variant: &str) -> Box<dyn Backend> {
    open(SystemKind::Postgresql, variant, cfg).unwrap_or_else(|e| panic!("open {variant}: {}", e.chain()))
}

fn schema_exists(lab: &str) -> bool {
    env_sql(&format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{lab}'"))[0].as_deref() == Some("1")
}

fn total(b: &mut dyn Backend, ns: &Namespace) -> u64 {
    b.sizes(ns).unwrap().total_bytes.expect("postgresql reports a total")
}

#[test]
fn copy_reports_rows_reads_back_sizes_grow_and_teardown_drops_everything() {
    let lab = "dedup_t_copy";
    let Some(cfg) = config(lab, json!({})) else {
        return skip(NO_SERVER);
    };
    let ns = ns(lab, 2);
    let mut b = open_pg(&cfg, "extended");
    b.reset(&ns).unwrap();
    let empty = total(b.as_mut(), &ns);

    // Placement `across`: records alternate between the two containers.
    let recs: Vec<_> =
        (0..300).map(|i| record(i, (i % 2) as u8, random_bytes(i, 1000 + (i as usize * 37) % 9000))).collect();
    let reported = b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap();
    assert_eq!(reported, 300, "the COPY row count must be the server's (the original reported 0)");
    assert_eq!(b.count(&ns).unwrap(), 300);
    for r in recs.iter().step_by(7) {
        assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]), "{}", r.id.key);
    }
    assert_eq!(b.read_one(&ns, &RecordId { key: "r99999999".into(), container: 0 }).unwrap(), None);

    b.settle(&ns).unwrap();
    let sizes = b.sizes(&ns).unwrap();
    let full = sizes.total_bytes.unwrap();
    let logical: u64 = recs.iter().map(|r| r.data.len() as u64).sum();
    assert!(full > empty && full >= logical / 2, "sizes must grow: {empty} -> {full} for {logical} logical bytes");
    for c in ["c0", "c1"] {
        for k in ["heap_bytes", "toast_bytes", "toast_index_bytes", "index_bytes", "total_bytes"] {
            assert!(sizes.details.contains_key(&format!("{c}.{k}")), "missing {c}.{k} in {:?}", sizes.details);
        }
    }
    // The test role has pg_checkpoint (scripts/services.sh): settle must really checkpoint,
    // not report that it was refused.
    assert_eq!(sizes.details["settle"], "CHECKPOINT", "settle did not run CHECKPOINT");

    // data_paths: the lab relations' own files under DEDUP_PG_DATA_DIR.
    if let Ok(dir) = std::env::var("DEDUP_PG_DATA_DIR") {
        let paths = b.data_paths(&ns).unwrap();
        // Per table: heap, TOAST heap, TOAST index, pkey index (+ forks).
        assert!(paths.len() >= 8, "{paths:?}");
        assert!(paths.iter().all(|p| p.starts_with(&dir) && p.exists()), "{paths:?}");
        let bytes: u64 = paths.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        assert!(bytes >= logical / 2, "{bytes} bytes in files for {logical} logical");
    }

    b.teardown(&ns).unwrap();
    assert!(!schema_exists(lab), "teardown must leave no {lab} schema");
    // Teardown is idempotent.
    b.teardown(&ns).unwrap();
}

#[test]
fn schema_dropped_and_recreated_many_times_keeps_statements_working() {
    // The original harness reused a prepared-statement name that collided after the
    // schema was dropped and recreated.
    let lab = "dedup_t_recreate";
    let Some(cfg) = config(lab, json!({})) else {
        return skip(NO_SERVER);
    };
    let ns = ns(lab, 1);
    let mut b = open_pg(&cfg, "external");
    for round in 0..6u64 {
        b.reset(&ns).unwrap();
        for i in 0..5 {
            let r = record(round * 100 + i, 0, random_bytes(round * 100 + i, 3000));
            assert_eq!(b.insert_one(&ns, &r).unwrap(), 1, "round {round}");
            assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]));
        }
        assert_eq!(b.delete_one(&ns, &RecordId { key: Record::key_for(round * 100), container: 0 }).unwrap(), 1);
        let bulk: Vec<_> = (0..20).map(|i| record(round * 100 + 50 + i, 0, text_bytes(i, 500))).collect();
        assert_eq!(b.bulk_insert(&ns, &mut stream(bulk)).unwrap(), 20);
        assert_eq!(b.count(&ns).unwrap(), 24, "round {round}");
        if round % 2 == 1 {
            b.teardown(&ns).unwrap();
        }
    }
    b.teardown(&ns).unwrap();
    assert!(!schema_exists(lab));
}

#[test]
fn deletes_are_counted_and_vacuum_full_gives_space_back() {
    let lab = "dedup_t_vacuum";
    let Some(cfg) = config(lab, json!({})) else {
        return skip(NO_SERVER);
    };
    let ns = ns(lab, 1);
    let mut b = open_pg(&cfg, "external");
    b.reset(&ns).unwrap();
    let recs: Vec<_> = (0..200).map(|i| record(i, 0, random_bytes(1000 + i, 8192))).collect();
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap(), 200);
    b.settle(&ns).unwrap();
    let loaded = total(b.as_mut(), &ns);

    for r in recs.iter().filter(|r| r.index % 4 != 0) {
        assert_eq!(b.delete_one(&ns, &r.id).unwrap(), 1, "{}", r.id.key);
    }
    // A second delete of the same key affects nothing, and says so.
    assert_eq!(b.delete_one(&ns, &recs[1].id).unwrap(), 0);
    assert_eq!(b.count(&ns).unwrap(), 50);
    b.settle(&ns).unwrap();
    let after_delete = total(b.as_mut(), &ns);
    assert!(after_delete >= loaded * 9 / 10, "plain DELETE does not give space back: {loaded} -> {after_delete}");

    // Other tests run transactions in the same database at the same time; rows deleted while
    // one of those is open are still "recently dead" and VACUUM FULL must keep them. So try
    // again (bounded) until no older transaction holds them back.
    let mut after_vacuum = u64::MAX;
    for _ in 0..20 {
        let report = b.maintenance(&ns).unwrap();
        assert!(report.action.starts_with("VACUUM (FULL, ANALYZE)"), "{}", report.action);
        b.settle(&ns).unwrap();
        after_vacuum = total(b.as_mut(), &ns);
        if after_vacuum < after_delete / 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(after_vacuum < after_delete / 2, "VACUUM FULL must shrink: {after_delete} -> {after_vacuum}");
    assert_eq!(b.count(&ns).unwrap(), 50);
    for r in recs.iter().filter(|r| r.index % 4 == 0) {
        assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]));
    }
    b.teardown(&ns).unwrap();
}

#[test]
fn external_storage_of_random_bytes_costs_about_the_logical_size() {
    let lab = "dedup_t_external";
    let Some(cfg) = config(lab, json!({})) else {
        return skip(NO_SERVER);
    };
    let ns = ns(lab, 1);
    let mut b = open_pg(&cfg, "external");
    b.reset(&ns).unwrap();
    let attr = env_sql(&format!(
        "SELECT attstorage::text FROM pg_attribute WHERE attrelid = '{lab}.c0'::regclass AND attname = 'v'"
    ));
    assert_eq!(attr[0].as_deref(), Some("e"), "EXTERNAL storage must be set");
    let recs: Vec<_> = (0..64).map(|i| record(i, 0, random_bytes(77 + i, 64 * 1024))).collect();
    let logical: u64 = recs.iter().map(|r| r.data.len() as u64).sum();
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs)).unwrap(), 64);
    b.settle(&ns).unwrap();
    let phys = total(b.as_mut(), &ns);
    let ratio = phys as f64 / logical as f64;
    eprintln!("EXTERNAL random bytes: {phys} physical / {logical} logical = {ratio:.3}");
    assert!((0.9..=1.1).contains(&ratio), "pg_total_relation_size {phys} vs logical {logical}: ratio {ratio:.3}");
    b.teardown(&ns).unwrap();
}

#[test]
fn extended_storage_compresses_text() {
    let lab = "dedup_t_extended";
    let Some(cfg) = config(lab, json!({})) else {
        return skip(NO_SERVER);
    };
    let ns = ns(lab, 1);
    let mut b = open_pg(&cfg, "extended");
    b.reset(&ns).unwrap();
    let recs: Vec<_> = (0..64).map(|i| record(i, 0, text_bytes(i, 64 * 1024))).collect();
    let logical: u64 = recs.iter().map(|r| r.data.len() as u64).sum();
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs)).unwrap(), 64);
    b.settle(&ns).unwrap();
    let phys = total(b.as_mut(), &ns);
    eprintln!("EXTENDED text: {phys} physical / {logical} logical");
    assert!(phys * 3 < logical, "EXTENDED must compress text: {phys} physical for {logical} logical");
    let comp = env_sql(&format!("SELECT DISTINCT pg_column_compression(v) FROM {lab}.c0"));
    assert_eq!(comp, vec![Some("pglz".to_string())]);
    b.teardown(&ns).unwrap();
}

#[test]
fn lz4_variant_uses_lz4_when_the_server_has_it() {
    let lab = "dedup_t_lz4";
    let Some(cfg) = config(lab, json!({})) else {
        return skip(NO_SERVER);
    };
    let has_lz4 = env_sql("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'");
    match open(SystemKind::Postgresql, "extended-lz4", &cfg) {
        Ok(mut b) => {
            assert_eq!(has_lz4.first().cloned().flatten().as_deref(), Some("t"));
            let ns = ns(lab, 1);
            b.reset(&ns).unwrap();
            let recs: Vec<_> = (0..8).map(|i| record(i, 0, text_bytes(i, 32 * 1024))).collect();
            assert_eq!(b.bulk_insert(&ns, &mut stream(recs)).unwrap(), 8);
            let comp = env_sql(&format!("SELECT DISTINCT pg_column_compression(v) FROM {lab}.c0"));
            assert_eq!(comp, vec![Some("lz4".to_string())]);
            b.teardown(&ns).unwrap();
        }
        Err(e) => {
            assert_ne!(has_lz4.first().cloned().flatten().as_deref(), Some("t"), "{}", e.chain());
            assert!(e.chain().contains("lz4"), "{}", e.chain());
        }
    }
}

#[test]
fn unnest_bulk_path_in_small_batches() {
    let lab = "dedup_t_unnest";
    let Some(cfg) = config(lab, json!({"bulk": "unnest", "batch_rows": 7, "batch_bytes": "20KiB"})) else {
        return skip(NO_SERVER);
    };
    let ns = ns(lab, 2);
    let mut b = open_pg(&cfg, "extended");
    b.reset(&ns).unwrap();
    let recs: Vec<_> =
        (0..101).map(|i| record(i, (i % 3 == 0) as u8, random_bytes(i, 100 + i as usize * 50))).collect();
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap(), 101);
    assert_eq!(b.count(&ns).unwrap(), 101);
    for r in recs.iter().step_by(10) {
        assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]));
    }
    b.teardown(&ns).unwrap();
}

#[test]
fn cockroach_code_path_runs_on_postgresql() {
    let lab = "dedup_t_crdbpath";
    // Explicit sslmode=disable: the local server has no TLS (CockroachDB's default would
    // require it; see the next assertion).
    let Some(cfg) = config(lab, json!({"sslmode": "disable", "batch_rows": 16})) else {
        return skip(NO_SERVER);
    };
    let ns = ns(lab, 1);
    let mut b = PgBackend::open_cockroach_path_on_postgres(&cfg).unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(b.kind(), SystemKind::Cockroachdb);
    b.reset(&ns).unwrap();
    let recs: Vec<_> = (0..40).map(|i| record(i, 0, random_bytes(i, 2000))).collect();
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap(), 40);
    let one = record(1000, 0, b"one more".to_vec());
    assert_eq!(b.insert_one(&ns, &one).unwrap(), 1);
    assert_eq!(b.read_one(&ns, &one.id).unwrap().as_deref(), Some(&b"one more"[..]));
    assert_eq!(b.delete_one(&ns, &recs[0].id).unwrap(), 1);
    assert_eq!(b.count(&ns).unwrap(), 40);
    assert!(b.maintenance(&ns).unwrap().action.starts_with("none:"));
    b.settle(&ns).unwrap();
    assert!(b.data_paths(&ns).unwrap().is_empty());
    let report = b.preflight(&ns).unwrap();
    assert!(report.checks.iter().any(|c| c.contains("marker row")), "{:?}", report.checks);
    b.teardown(&ns).unwrap();
    assert!(!schema_exists(lab));

    // Without an explicit sslmode the CockroachDB path insists on TLS, which this server lacks.
    let cfg = config(lab, json!({})).unwrap();
    let e = err_text(PgBackend::open_cockroach_path_on_postgres(&cfg).map(|_| ()));
    eprintln!("{e}");
    assert!(e.starts_with("cockroachdb "), "{e}");
    assert!(e.contains("does not offer TLS") && e.contains("sslmode=require"), "{e}");
}

#[test]
fn preflight_passes_on_one_server_and_leaves_nothing() {
    let lab = "dedup_t_preflight";
    let Some(cfg) = config(lab, json!({"preflight_connections": 3})) else {
        return skip(NO_SERVER);
    };
    let ns = ns(lab, 2);
    let mut b = open_pg(&cfg, "extended");
    let report = b.preflight(&ns).unwrap_or_else(|e| panic!("{}", e.chain()));
    let text = report.checks.join("\n");
    eprintln!("{text}");
    assert!(text.contains("3 fresh connections saw the same server"), "{text}");
    assert!(text.contains("settle: "), "{text}");
    assert!(text.contains("dropped schema"), "{text}");
    assert!(report.server_version.unwrap().starts_with("PostgreSQL"));
    assert!(!schema_exists(lab));
}

#[test]
fn wrong_password_names_system_endpoint_and_fix_but_not_the_password() {
    let lab = "dedup_t_wrongpw";
    let wrong = format!("wrong-{}", crate::support::pgcluster::hex_token(8));
    let (_guard, file) = secret_file(&wrong);
    let Some(cfg) = config(lab, json!({"password_file": file.to_str().unwrap()})) else {
        return skip(NO_SERVER);
    };
    let e = err_text(open(SystemKind::Postgresql, "extended", &cfg).map(|_| ()));
    eprintln!("{e}");
    let endpoint =
        format!("postgresql {}:{}/", std::env::var("DEDUP_PG_HOST").unwrap(), std::env::var("DEDUP_PG_PORT").unwrap());
    assert!(e.starts_with(&endpoint), "{e}");
    assert!(e.contains("authentication failed") && e.contains("password_file"), "{e}");
    assert!(!e.contains(&wrong), "the password leaked: {e}");
    assert!(!e.contains(&std::env::var("DEDUP_PG_PASSWORD").unwrap()), "the real password leaked: {e}");
    let class = open(SystemKind::Postgresql, "extended", &cfg).err().unwrap().class();
    assert_eq!(class, Some(ErrorClass::Authentication));
}

#[test]
fn a_record_outside_the_namespace_is_an_error_on_every_path() {
    let lab = "dedup_t_outside";
    let Some(cfg) = config(lab, json!({})) else {
        return skip(NO_SERVER);
    };
    let ns = ns(lab, 1);
    let outside = record(7, 3, b"x".to_vec());
    for bulk in ["copy", "unnest"] {
        let cfg = config(lab, json!({"bulk": bulk})).unwrap();
        let mut b = open_pg(&cfg, "extended");
        b.reset(&ns).unwrap();
        let recs = vec![record(1, 0, b"in".to_vec()), outside.clone()];
        let e = b.bulk_insert(&ns, &mut stream(recs)).unwrap_err();
        assert!(e.chain().contains("names container 3, but namespace dedup_t_outside has 1"), "{bulk}: {}", e.chain());
        assert_eq!(e.class(), Some(ErrorClass::BadRequest));
        assert_eq!(b.count(&ns).unwrap(), 0, "{bulk}: the aborted bulk insert left nothing");
    }
    let mut b = open_pg(&cfg, "extended");
    b.reset(&ns).unwrap();
    for e in [
        b.insert_one(&ns, &outside).map(|_| ()).unwrap_err(),
        b.delete_one(&ns, &outside.id).map(|_| ()).unwrap_err(),
        b.read_one(&ns, &outside.id).map(|_| ()).unwrap_err(),
    ] {
        assert!(e.chain().contains("names container 3"), "{}", e.chain());
        assert_eq!(e.class(), Some(ErrorClass::BadRequest));
    }
    assert_eq!(b.count(&ns).unwrap(), 0);
    b.teardown(&ns).unwrap();
}

/// `sql_rows` on the local test server as its superuser (`DEDUP_PG_SUPERUSER`), in the test
/// role's database.
fn superuser_sql(sql: &str) -> Vec<Option<String>> {
    let var =
        |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set (scripts/services.sh env postgresql)"));
    sql_rows(
        &var("DEDUP_PG_HOST"),
        var("DEDUP_PG_PORT").parse().expect("DEDUP_PG_PORT"),
        &var("DEDUP_PG_SUPERUSER"),
        &var("DEDUP_PG_SUPERUSER_PASSWORD"),
        &std::env::var("DEDUP_PG_DATABASE").unwrap_or_else(|_| var("DEDUP_PG_USER")),
        sql,
    )
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn inventory_lists_exactly_the_lab_and_drop_lab_drops_only_that() {
    let lab = "dedup_t_inventory";
    let other = "dedup_t_inventory_other";
    let Some(cfg) = config(lab, json!({})) else {
        return skip(NO_SERVER);
    };
    let lab_name: LabName = lab.parse().unwrap();
    let mut b = open_pg(&cfg, "extended");
    b.drop_lab(&lab_name).unwrap();
    assert!(b.inventory(&lab_name).unwrap().is_empty(), "no lab, nothing listed");

    // The lab with more tables than the namespace it was made with: a wider earlier run, a
    // preflight interrupted before it cleaned up.
    b.reset(&ns(lab, 2)).unwrap();
    env_sql(&format!("CREATE TABLE {lab}.c5 (k text PRIMARY KEY); CREATE TABLE {lab}.preflight (token text)"));
    // Someone else's objects: a schema and a table named like a lab table, made by the
    // superuser, in the same database.
    superuser_sql(&format!(
        "DROP SCHEMA IF EXISTS {other} CASCADE; CREATE SCHEMA {other}; CREATE TABLE {other}.c0 (k text); \
         INSERT INTO {other}.c0 VALUES ('keep me')"
    ));

    let listed = b.inventory(&lab_name).unwrap();
    assert_eq!(
        listed,
        [
            format!("schema {lab}"),
            format!("table {lab}.c0"),
            format!("table {lab}.c1"),
            format!("table {lab}.c5"),
            format!("table {lab}.preflight"),
        ]
    );

    b.drop_lab(&lab_name).unwrap();
    assert!(!schema_exists(lab));
    assert!(b.inventory(&lab_name).unwrap().is_empty());
    let kept = superuser_sql(&format!("SELECT k FROM {other}.c0"));
    assert_eq!(kept, [Some("keep me".to_string())], "the foreign table survives");
    // Dropping what is not there is no error.
    b.drop_lab(&lab_name).unwrap();
    superuser_sql(&format!("DROP SCHEMA {other} CASCADE"));
}

#[test]
fn variants_are_offline_and_validated() {
    // No connection: this runs in dry runs.
    let cfg = isolated_config("dedup_lab", "postgresql", json!({}));
    assert_eq!(dedup_lab_backends::variants(SystemKind::Postgresql, &cfg).unwrap(), ["extended", "external"]);
    let cfg = isolated_config("dedup_lab", "cockroachdb", json!({}));
    assert_eq!(dedup_lab_backends::variants(SystemKind::Cockroachdb, &cfg).unwrap(), ["default"]);
    let cfg = isolated_config("dedup_lab", "postgresql", json!({"variants": ["extended", "extended-lz4", "main"]}));
    assert_eq!(
        dedup_lab_backends::variants(SystemKind::Postgresql, &cfg).unwrap(),
        ["extended", "extended-lz4", "main"]
    );
    let cfg = isolated_config("dedup_lab", "postgresql", json!({"variants": "extended, externel"}));
    let e = err_text(dedup_lab_backends::variants(SystemKind::Postgresql, &cfg));
    assert!(e.contains("externel") && e.contains("valid:"), "{e}");
    let cfg = isolated_config("dedup_lab", "postgresql", json!({"variants": ["extended", "extended"]}));
    assert!(dedup_lab_backends::variants(SystemKind::Postgresql, &cfg).is_err());
}

/// A schema with every column type, and rows with edge values (negative and tiny decimals,
/// NULLs, sub-second and pre-2000 timestamps, JSON whose keys `jsonb` reorders).
fn typed_schema_and_records(n: u64, container: u8) -> (Schema, Vec<Record>) {
    let col = |name: &str, ty| Column { name: name.into(), ty };
    let schema = Schema::new(
        "every_type",
        vec![
            col("id", ColumnType::Int),
            col("ratio", ColumnType::Float),
            col("amount", ColumnType::Decimal { scale: 2 }),
            col("user", ColumnType::Text),
            col("ok", ColumnType::Bool),
            col("created_at", ColumnType::Timestamp),
            col("key", ColumnType::Uuid),
            col("doc", ColumnType::Json),
            col("chunk", ColumnType::Bytes),
        ],
        RowEncoding::JsonObject,
    )
    .unwrap();
    let recs = (0..n)
        .map(|i| {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&i.to_be_bytes());
            let row = vec![
                Value::Int(i as i64 - 5),
                if i % 5 == 0 { Value::Null } else { Value::Float(i as f64 / 3.0) },
                Value::Decimal([-123_456, 5, 0, 700, i64::MAX / 1000][(i % 5) as usize] + i as i64),
                Value::Text(format!("user_{i} é \"q\"")),
                Value::Bool(i % 2 == 0),
                Value::Timestamp(if i % 3 == 0 { -1_000_001 } else { 1_614_834_367_000_000 + i as i64 * 1_500_001 }),
                Value::Uuid(key),
                Value::Json(
                    dedup_lab_core::value::canonicalize_json(&format!(
                        r#"{{"zz": {i}, "a": [1.50, "x", null, {{"k": true}}], "mid": {{"b": 1e2, "a": -0.25}}}}"#
                    ))
                    .unwrap(),
                ),
                if i % 4 == 1 { Value::Null } else { Value::Bytes(random_bytes(i, 100 + i as usize * 97)) },
            ];
            let data = schema.encode(&row).unwrap();
            Record {
                id: RecordId { key: Record::native_key_for(i / 10, i % 10), container },
                index: i / 10,
                data,
                row: Some(row),
            }
        })
        .collect();
    (schema, recs)
}

fn check_typed_round_trip(b: &mut dyn Backend, lab: &str) {
    let (schema, recs) = typed_schema_and_records(60, 0);
    let (_, more) = typed_schema_and_records(5, 1);
    let ns = ns(lab, 2).with_schema(schema);
    b.reset(&ns).unwrap_or_else(|e| panic!("reset: {}", e.chain()));
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap_or_else(|e| panic!("{}", e.chain())), 60);
    for r in &more {
        assert_eq!(b.insert_one(&ns, r).unwrap_or_else(|e| panic!("{}", e.chain())), 1);
    }
    assert_eq!(b.count(&ns).unwrap(), 65);
    for r in recs.iter().chain(&more) {
        let got = b.read_one(&ns, &r.id).unwrap_or_else(|e| panic!("{}", e.chain())).expect("present");
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&r.data), "{}", r.id.key);
    }
    assert_eq!(b.delete_one(&ns, &more[0].id).unwrap(), 1);
    assert_eq!(b.read_one(&ns, &more[0].id).unwrap(), None);
    // A blob record cannot go into a typed table.
    let e = err_text(b.insert_one(&ns, &record(999, 0, b"x".to_vec())));
    assert!(e.contains("has no typed row"), "{e}");
}

#[test]
fn native_mode_creates_typed_tables_and_reads_back_every_type() {
    let lab = "dedup_t_typed";
    let Some(cfg) = config(lab, json!({})) else {
        return skip(NO_SERVER);
    };
    let mut b = open_pg(&cfg, "external");
    check_typed_round_trip(b.as_mut(), lab);
    let types = env_sql(&format!(
        "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_schema = '{lab}' AND table_name = 'c0'"
    ));
    assert_eq!(
        types[0].as_deref(),
        Some(
            "k text, id bigint, ratio double precision, amount numeric, user text, ok boolean, \
             created_at timestamp with time zone, key uuid, doc jsonb, chunk bytea"
        )
    );
    // The variant's storage applies to every variable-length column.
    let storage = env_sql(&format!(
        "SELECT string_agg(attname || '=' || attstorage::text, ',' ORDER BY attnum) FROM pg_attribute \
         WHERE attrelid = '{lab}.c0'::regclass AND attnum > 1"
    ));
    assert_eq!(
        storage[0].as_deref(),
        Some("id=p,ratio=p,amount=e,user=e,ok=p,created_at=p,key=p,doc=e,chunk=e"),
        "external storage on numeric, text, jsonb and bytea"
    );
    // The server holds typed values: jsonb is queryable, the decimal is exact.
    let q =
        env_sql(&format!("SELECT doc->'mid'->>'b' || ' ' || amount::text FROM {lab}.c0 WHERE k = 'r00000000n000001'"));
    assert_eq!(q[0].as_deref(), Some("100 0.06"), "1e2 is stored as the number 100; 5 + 1 cents as 0.06");
    b.teardown(&ns(lab, 2)).unwrap();
    assert!(!schema_exists(lab));
}

#[test]
fn native_mode_on_the_unnest_and_cockroach_paths() {
    let lab = "dedup_t_typed_unnest";
    let Some(cfg) = config(lab, json!({"bulk": "unnest", "batch_rows": 7, "sslmode": "disable"})) else {
        return skip(NO_SERVER);
    };
    let mut b = open_pg(&cfg, "extended");
    check_typed_round_trip(b.as_mut(), lab);
    b.teardown(&ns(lab, 2)).unwrap();
    let mut c = PgBackend::open_cockroach_path_on_postgres(&cfg).unwrap_or_else(|e| panic!("{}", e.chain()));
    check_typed_round_trip(&mut c, lab);
    c.teardown(&ns(lab, 2)).unwrap();
    assert!(!schema_exists(lab));
}
