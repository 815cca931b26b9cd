//! The MariaDB backend against the REAL local test server (`scripts/services.sh up mariadb;
//! eval "$(scripts/services.sh env mariadb)"`). No mocks.
//!
//! Without `DEDUP_MARIADB_*` in the environment every test here prints why and returns; with
//! `DEDUP_LAB_REQUIRE_SERVERS=1` it fails instead. Each test uses its own lab name, so they
//! can run in parallel against one server.

use crate::support::mariadb::{SharedServer, hex_token, shared_env};
use crate::support::*;
use dedup_lab_backends::{BackendConfig, open};
use dedup_lab_core::{
    Backend, Column, ColumnType, ErrorClass, LabName, Namespace, Record, RecordId, RowEncoding, Schema, SystemKind,
    Value,
};
use serde_json::json;

const NO_SERVER: &str = "no local MariaDB test server in the environment (DEDUP_MARIADB_* unset; run \
                         `scripts/services.sh up mariadb` and eval `scripts/services.sh env mariadb`)";

fn server() -> Option<SharedServer> {
    let s = shared_env();
    if s.is_none() {
        skip(NO_SERVER);
    }
    s
}

fn config(lab: &str, settings: serde_json::Value) -> BackendConfig {
    BackendConfig::new(lab.parse().expect("lab name"), "mariadb", "DEDUP_MARIADB", settings, std::path::PathBuf::new())
}

fn open_mdb(cfg: &BackendConfig, variant: &str) -> Box<dyn Backend> {
    open(SystemKind::Mariadb, variant, cfg).unwrap_or_else(|e| panic!("open {variant}: {}", e.chain()))
}

fn total(b: &mut dyn Backend, ns: &Namespace) -> u64 {
    b.settle(ns).unwrap();
    b.sizes(ns).unwrap().total_bytes.expect("mariadb reports a total")
}

fn fs_bytes(b: &mut dyn Backend, ns: &Namespace) -> u64 {
    b.settle(ns).unwrap();
    let paths = b.data_paths(ns).unwrap();
    assert!(!paths.is_empty(), "DEDUP_MARIADB_DATA_DIR gives the fs probe its files");
    dedup_lab_backends::local::allocated_bytes(&paths).unwrap()
}

/// Records whose bytes hold every value the LOAD DATA encoding must escape, at the edges too.
fn tricky_records(container: u8) -> Vec<Record> {
    let all: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let specials = b"\\\t\n\\N\\\r\0'\"\x1a\\".to_vec();
    let datas = [all, specials, Vec::new(), b"\\".to_vec(), b"\n".to_vec(), b"\\N".to_vec(), b"NULL".to_vec()];
    datas.into_iter().enumerate().map(|(i, d)| record(500 + i as u64, container, d)).collect()
}

#[test]
fn load_data_reports_rows_reads_back_sizes_grow_and_teardown_drops_everything() {
    let lab = "dedup_t_m_load";
    let Some(srv) = server() else { return };
    let ns = ns(lab, 2);
    let mut b = open_mdb(&config(lab, json!({})), "dynamic");
    b.reset(&ns).unwrap();
    let empty = total(b.as_mut(), &ns);

    let mut recs: Vec<_> =
        (0..300).map(|i| record(i, (i % 2) as u8, random_bytes(i, 1000 + (i as usize * 37) % 9000))).collect();
    recs.extend(tricky_records(0));
    recs.extend(tricky_records(1).into_iter().map(|mut r| {
        r.id.key.push('b');
        r
    }));
    let n = recs.len() as u64;
    let reported = b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(reported, n, "the row count must be the server's");
    let notes = b.take_notes().join("\n");
    assert!(notes.contains("LOAD DATA LOCAL INFILE streamed") && notes.contains("2 table(s)"), "{notes}");
    assert_eq!(b.count(&ns).unwrap(), n);
    for r in &recs {
        assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]), "{}", r.id.key);
    }
    assert_eq!(b.read_one(&ns, &RecordId { key: "r99999999".into(), container: 0 }).unwrap(), None);

    let full = total(b.as_mut(), &ns);
    let sizes = b.sizes(&ns).unwrap();
    let logical: u64 = recs.iter().map(|r| r.data.len() as u64).sum();
    assert!(full > empty && full >= logical / 2, "sizes must grow: {empty} -> {full} for {logical} logical bytes");
    for c in ["c0", "c1"] {
        for k in ["data_bytes", "index_bytes", "free_bytes", "file_bytes", "allocated_bytes"] {
            assert!(sizes.details.contains_key(&format!("{c}.{k}")), "missing {c}.{k} in {:?}", sizes.details);
        }
    }
    let settle = sizes.details["settle"].as_str().unwrap();
    assert!(settle.contains("FLUSH TABLES") && settle.contains("ANALYZE TABLE"), "{settle}");
    let notes = b.take_notes().join("\n");
    assert!(notes.contains("sizes: internal = InnoDB's pages in use") && notes.contains("allocated"), "{notes}");

    // data_paths: the lab tables' own files under DEDUP_MARIADB_DATA_DIR.
    if let Some(dir) = &srv.data_dir {
        let paths = b.data_paths(&ns).unwrap();
        assert_eq!(paths, [dir.join(lab).join("c0.ibd"), dir.join(lab).join("c1.ibd")]);
        assert!(fs_bytes(b.as_mut(), &ns) >= logical / 2);
    }

    b.teardown(&ns).unwrap();
    assert!(!srv.database_exists(lab), "teardown must leave no {lab} database");
    b.teardown(&ns).unwrap();
}

#[test]
fn database_dropped_and_recreated_many_times_keeps_statements_working() {
    // The original harness reused a prepared-statement name that collided after the schema
    // was dropped and recreated; here the driver caches prepared statements per connection.
    let lab = "dedup_t_m_recreate";
    let Some(srv) = server() else { return };
    let ns1 = ns(lab, 1);
    let mut b = open_mdb(&config(lab, json!({})), "dynamic");
    for round in 0..6u64 {
        // Every other round the same table name is typed: a cached INSERT must not survive it.
        let (ns, typed) = if round % 2 == 0 { (ns1.clone(), None) } else { typed_ns(lab, 5, 0) };
        b.reset(&ns).unwrap();
        let recs: Vec<Record> = match typed {
            None => (0..5).map(|i| record(round * 100 + i, 0, random_bytes(round * 100 + i, 3000))).collect(),
            Some(recs) => recs,
        };
        for r in &recs {
            assert_eq!(b.insert_one(&ns, r).unwrap_or_else(|e| panic!("{}", e.chain())), 1, "round {round}");
            assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]));
        }
        assert_eq!(b.delete_one(&ns, &recs[0].id).unwrap(), 1);
        assert_eq!(b.count(&ns).unwrap(), 4, "round {round}");
        if round % 3 == 2 {
            b.teardown(&ns).unwrap();
        }
    }
    b.teardown(&ns1).unwrap();
    assert!(!srv.database_exists(lab));
}

#[test]
fn deletes_are_counted_and_optimize_gives_space_back() {
    let lab = "dedup_t_m_optimize";
    let Some(srv) = server() else { return };
    if srv.data_dir.is_none() {
        return skip("DEDUP_MARIADB_DATA_DIR unset");
    }
    let ns = ns(lab, 1);
    let mut b = open_mdb(&config(lab, json!({})), "dynamic");
    b.reset(&ns).unwrap();
    let recs: Vec<_> = (0..200).map(|i| record(i, 0, random_bytes(1000 + i, 64 * 1024))).collect();
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap(), 200);
    let loaded = fs_bytes(b.as_mut(), &ns);
    for r in recs.iter().filter(|r| r.index % 4 != 0) {
        assert_eq!(b.delete_one(&ns, &r.id).unwrap(), 1, "{}", r.id.key);
    }
    assert_eq!(b.delete_one(&ns, &recs[1].id).unwrap(), 0, "a second delete affects nothing");
    assert_eq!(b.count(&ns).unwrap(), 50);
    let after_delete = fs_bytes(b.as_mut(), &ns);
    assert!(after_delete >= loaded * 9 / 10, "DELETE does not shrink the file: {loaded} -> {after_delete}");
    let report = b.maintenance(&ns).unwrap();
    assert!(report.action.starts_with("OPTIMIZE TABLE `dedup_t_m_optimize`.`c0`"), "{}", report.action);
    assert!(report.action.contains("recreate"), "InnoDB rebuilds the table: {}", report.action);
    let after = fs_bytes(b.as_mut(), &ns);
    assert!(after < after_delete / 2, "OPTIMIZE TABLE must shrink the file: {after_delete} -> {after}");
    assert_eq!(b.count(&ns).unwrap(), 50);
    for r in recs.iter().filter(|r| r.index % 4 == 0) {
        assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]));
    }
    b.teardown(&ns).unwrap();
}

/// Loads `recs` in `variant`; returns (logical, internal growth, fs growth).
fn load_in(lab: &str, variant: &str, recs: Vec<Record>) -> (u64, u64, u64) {
    let ns = ns(lab, 1);
    let mut b = open_mdb(&config(lab, json!({})), variant);
    b.reset(&ns).unwrap();
    let (i0, f0) = (total(b.as_mut(), &ns), fs_bytes(b.as_mut(), &ns));
    let logical: u64 = recs.iter().map(|r| r.data.len() as u64).sum();
    let n = recs.len() as u64;
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap(), n);
    let (i1, f1) = (total(b.as_mut(), &ns), fs_bytes(b.as_mut(), &ns));
    for r in recs.iter().step_by(9) {
        assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]), "{variant}");
    }
    b.teardown(&ns).unwrap();
    eprintln!("{variant}: logical {logical}, internal +{}, fs +{}", i1 - i0, f1 - f0);
    (logical, i1.saturating_sub(i0), f1.saturating_sub(f0))
}

#[test]
fn variants_store_as_they_say() {
    let lab = "dedup_t_m_variants";
    let Some(srv) = server() else { return };
    if srv.data_dir.is_none() {
        return skip("DEDUP_MARIADB_DATA_DIR unset");
    }
    let random: Vec<_> = (0..64).map(|i| record(i, 0, random_bytes(77 + i, 256 * 1024))).collect();
    let text: Vec<_> = (0..64).map(|i| record(i, 0, text_bytes(i, 256 * 1024))).collect();
    // DYNAMIC: incompressible bytes cost about their own size.
    let (logical, internal, fs) = load_in(lab, "dynamic", random);
    let ratio = internal as f64 / logical as f64;
    assert!((0.95..=1.1).contains(&ratio), "DYNAMIC random: internal {internal} / logical {logical} = {ratio:.3}");
    assert!(fs as f64 >= logical as f64 * 0.95, "DYNAMIC random: fs {fs}");
    // COMPRESSED: both figures see zlib on 8 KiB pages.
    let (logical, internal, fs) = load_in(lab, "compressed", text.clone());
    assert!(internal * 2 < logical && fs * 2 < logical, "COMPRESSED text: {internal} / {fs} of {logical}");
    // Page compression: the pages stay 16 KiB for InnoDB; only the file's blocks shrink.
    let (logical, internal, fs) = load_in(lab, "page-compressed", text);
    assert!(internal as f64 >= logical as f64 * 0.9, "page-compressed text, internal: {internal} of {logical}");
    assert!(fs * 2 < logical, "page-compressed text, fs (holes punched): {fs} of {logical}");
    // The server really made the tables so.
    let ns = ns(lab, 1);
    let mut b = open_mdb(&config(lab, json!({"key_block_size": 4})), "compressed");
    b.reset(&ns).unwrap();
    let opts = srv.root_sql(&format!(
        "SELECT ROW_FORMAT, CREATE_OPTIONS FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{lab}' AND TABLE_NAME = 'c0'"
    ));
    assert_eq!(opts[0][0], "Compressed");
    assert!(opts[0][1].contains("key_block_size=4"), "{:?}", opts);
    b.teardown(&ns).unwrap();
}

#[test]
fn insert_bulk_path_in_small_batches() {
    let lab = "dedup_t_m_insert";
    let Some(_srv) = server() else { return };
    let cfg = config(lab, json!({"bulk": "insert", "batch_rows": 7, "batch_bytes": "20KiB"}));
    let ns = ns(lab, 2);
    let mut b = open_mdb(&cfg, "dynamic");
    b.reset(&ns).unwrap();
    let mut recs: Vec<_> =
        (0..101).map(|i| record(i, (i % 3 == 0) as u8, random_bytes(i, 100 + i as usize * 50))).collect();
    recs.extend(tricky_records(1));
    let n = recs.len() as u64;
    assert_eq!(b.bulk_insert(&ns, &mut stream(recs.clone())).unwrap(), n);
    let notes = b.take_notes().join("\n");
    assert!(notes.contains("batched multi-row INSERT") && notes.contains("bulk = \"insert\" is configured"), "{notes}");
    assert_eq!(b.count(&ns).unwrap(), n);
    for r in &recs {
        assert_eq!(b.read_one(&ns, &r.id).unwrap().as_deref(), Some(&r.data[..]), "{}", r.id.key);
    }
    check_typed_round_trip(b.as_mut(), lab);
    b.teardown(&ns).unwrap();
}

#[test]
fn failed_bulk_inserts_leave_nothing() {
    let lab = "dedup_t_m_rollback";
    let Some(_srv) = server() else { return };
    let ns = ns(lab, 2);
    for bulk in ["load", "insert"] {
        let mut b = open_mdb(&config(lab, json!({"bulk": bulk})), "dynamic");
        b.reset(&ns).unwrap();
        // The source fails after records went to both tables.
        let mut failing = (0..40u64)
            .map(|i| Ok(record(i, (i % 2) as u8, random_bytes(i, 20_000))))
            .chain(std::iter::once(Err(dedup_lab_core::BackendError::msg("source failed"))));
        let e = b.bulk_insert(&ns, &mut failing).unwrap_err();
        assert!(e.chain().contains("source failed"), "{bulk}: {}", e.chain());
        assert_eq!(b.count(&ns).unwrap(), 0, "{bulk}: a failed stream is rolled back");
        // A record outside the namespace.
        let recs = vec![record(1, 0, b"in".to_vec()), record(7, 3, b"x".to_vec())];
        let e = b.bulk_insert(&ns, &mut stream(recs)).unwrap_err();
        assert!(e.chain().contains("names container 3, but namespace dedup_t_m_rollback has 2"), "{}", e.chain());
        assert_eq!(e.class(), Some(ErrorClass::BadRequest));
        assert_eq!(b.count(&ns).unwrap(), 0, "{bulk}");
        // A duplicate key: LOAD DATA LOCAL skips it with a warning, INSERT fails; both roll back.
        let recs = vec![record(1, 0, b"a".to_vec()), record(2, 0, b"b".to_vec()), record(1, 0, b"c".to_vec())];
        let e = b.bulk_insert(&ns, &mut stream(recs)).unwrap_err();
        eprintln!("{bulk}: {}", e.chain());
        assert!(e.chain().contains("Duplicate entry"), "{bulk}: {}", e.chain());
        assert_eq!(e.class(), Some(ErrorClass::BadRequest));
        assert_eq!(b.count(&ns).unwrap(), 0, "{bulk}");
        // The backend is still usable.
        assert_eq!(b.bulk_insert(&ns, &mut stream(vec![record(9, 1, b"ok".to_vec())])).unwrap(), 1);
        assert_eq!(b.insert_one(&ns, &record(10, 0, b"ok".to_vec())).unwrap(), 1);
        b.teardown(&ns).unwrap();
    }
    let mut b = open_mdb(&config(lab, json!({})), "dynamic");
    b.reset(&ns).unwrap();
    let outside = record(7, 3, b"x".to_vec());
    for e in [
        b.insert_one(&ns, &outside).map(|_| ()).unwrap_err(),
        b.delete_one(&ns, &outside.id).map(|_| ()).unwrap_err(),
        b.read_one(&ns, &outside.id).map(|_| ()).unwrap_err(),
    ] {
        assert!(e.chain().contains("names container 3"), "{}", e.chain());
        assert_eq!(e.class(), Some(ErrorClass::BadRequest));
    }
    b.teardown(&ns).unwrap();
}

/// A schema with every column type, and rows with edge values (negative and tiny decimals,
/// NULLs, sub-second and pre-1970 timestamps, JSON whose keys the server may reorder,
/// text with quotes, tabs, newlines and backslashes).
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
            key[15] = b'\t';
            let row = vec![
                Value::Int(i as i64 - 5),
                if i % 5 == 0 { Value::Null } else { Value::Float(i as f64 / 3.0) },
                Value::Decimal([-123_456, 5, 0, 700, i64::MAX / 1000][(i % 5) as usize] + i as i64),
                Value::Text(format!("user_{i} é \"q\" it's\ta\\b\nc")),
                Value::Bool(i % 2 == 0),
                Value::Timestamp(if i % 3 == 0 { -1_000_001 } else { 1_614_834_367_000_000 + i as i64 * 1_500_001 }),
                Value::Uuid(key),
                Value::Json(
                    dedup_lab_core::value::canonicalize_json(&format!(
                        r#"{{"zz": {i}, "a": [1.50, "x\ty", null, {{"k": true}}], "mid": {{"b": 1e2, "a": -0.25}}}}"#
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

fn typed_ns(lab: &str, n: u64, container: u8) -> (Namespace, Option<Vec<Record>>) {
    let (schema, recs) = typed_schema_and_records(n, container);
    (ns(lab, 1).with_schema(schema), Some(recs))
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
    let lab = "dedup_t_m_typed";
    let Some(srv) = server() else { return };
    let mut b = open_mdb(&config(lab, json!({})), "compressed");
    check_typed_round_trip(b.as_mut(), lab);
    let types = srv.root_sql(&format!(
        "SELECT GROUP_CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE ORDER BY ORDINAL_POSITION SEPARATOR ', ') \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{lab}' AND TABLE_NAME = 'c0'"
    ));
    assert_eq!(
        types[0][0],
        "k varchar(64), id bigint(20), ratio double, amount decimal(19,2), user longtext, ok tinyint(1), \
         created_at datetime(6), key uuid, doc longtext, chunk longblob"
    );
    // The server holds typed values: the JSON is queryable, the decimal exact, the UUID a UUID.
    let q = srv.root_sql(&format!(
        "SELECT JSON_VALUE(doc, '$.mid.b'), amount, `key` FROM {lab}.c0 WHERE k = 'r00000000n000001'"
    ));
    assert_eq!(q[0], ["100", "0.06", "00000000-0000-0001-0000-000000000009"], "1e2 is 100; 5 + 1 cents");
    let native = b.native_storage(&typed_schema_and_records(1, 0).0);
    assert!(native.contains("`key` UUID") && native.contains("ROW_FORMAT=COMPRESSED"), "{native}");
    b.teardown(&ns(lab, 2)).unwrap();
    assert!(!srv.database_exists(lab));
}

#[test]
fn preflight_passes_on_one_server_and_leaves_nothing() {
    let lab = "dedup_t_m_preflight";
    let Some(srv) = server() else { return };
    let ns = ns(lab, 2);
    let mut b = open_mdb(&config(lab, json!({"preflight_connections": 3})), "page-compressed");
    let report = b.preflight(&ns).unwrap_or_else(|e| panic!("{}", e.chain()));
    let text = report.checks.join("\n");
    eprintln!("{text}");
    assert!(text.contains("3 fresh connections saw the marker row"), "{text}");
    assert!(text.contains("PAGE_COMPRESSED=1"), "{text}");
    assert!(text.contains("settle: FLUSH TABLES … FOR EXPORT + ANALYZE TABLE"), "{text}");
    assert!(text.contains("streamed LOAD DATA LOCAL INFILE"), "{text}");
    assert!(text.contains("dropped database"), "{text}");
    if srv.data_dir.is_some() {
        assert!(text.contains("found the 2 .ibd files"), "{text}");
    }
    assert!(report.server_version.unwrap().contains("MariaDB"));
    assert!(!srv.database_exists(lab));
}

#[test]
fn wrong_password_names_system_endpoint_and_fix_but_not_the_password() {
    let lab = "dedup_t_m_wrongpw";
    let Some(srv) = server() else { return };
    let wrong = format!("wrong-{}", hex_token(8));
    let (_guard, file) = secret_file(&wrong);
    let cfg = config(lab, json!({"password_file": file.to_str().unwrap()}));
    let err = open(SystemKind::Mariadb, "dynamic", &cfg).err().expect("a wrong password must fail");
    let e = err.chain();
    eprintln!("{e}");
    assert!(e.starts_with(&format!("mariadb {}:{} as {}: connecting", srv.host, srv.port, srv.user)), "{e}");
    assert!(e.contains("authentication failed") && e.contains("password_file"), "{e}");
    assert!(!e.contains(&wrong), "the password leaked: {e}");
    assert!(!e.contains(&srv.password), "the real password leaked: {e}");
    assert_eq!(err.class(), Some(ErrorClass::Authentication));
}

#[test]
fn a_user_without_create_gets_a_clear_permission_error() {
    let lab = "dedup_t_m_nocreate";
    let Some(srv) = server() else { return };
    let pw = hex_token(8);
    srv.root_sql(&format!(
        "DROP USER IF EXISTS 'dedup_nocreate'@'%'; CREATE USER 'dedup_nocreate'@'%' IDENTIFIED BY '{pw}'; \
         GRANT SELECT, INSERT, DELETE ON `{lab}`.* TO 'dedup_nocreate'@'%'"
    ));
    let (_g, pw_file) = secret_file(&pw);
    let cfg = config(lab, json!({"user": "dedup_nocreate", "password_file": pw_file.to_str().unwrap()}));
    let mut b = open_mdb(&cfg, "dynamic");
    let err = b.reset(&ns(lab, 1)).unwrap_err();
    let e = err.chain();
    eprintln!("{e}");
    assert!(
        e.starts_with(&format!("mariadb {}:{} as dedup_nocreate: resetting database {lab}", srv.host, srv.port)),
        "{e}"
    );
    assert!(e.contains("may not create or drop the lab database") && e.contains("GRANT ALL PRIVILEGES ON"), "{e}");
    assert!(!e.contains(&pw));
    assert_eq!(err.class(), Some(ErrorClass::Permission));
    let e = err_text(b.preflight(&ns(lab, 1)));
    assert!(e.contains("denied"), "{e}");
    srv.root_sql("DROP USER 'dedup_nocreate'@'%'");
}

#[test]
fn inventory_lists_exactly_the_lab_and_drop_lab_drops_only_that() {
    let lab = "dedup_t_m_inventory";
    let other = "dedup_t_m_inventory_other";
    let Some(srv) = server() else { return };
    let lab_name: LabName = lab.parse().unwrap();
    let mut b = open_mdb(&config(lab, json!({})), "dynamic");
    b.drop_lab(&lab_name).unwrap();
    assert!(b.inventory(&lab_name).unwrap().is_empty(), "no lab, nothing listed");
    b.reset(&ns(lab, 2)).unwrap();
    srv.root_sql(&format!(
        "CREATE TABLE {lab}.c5 (k INT); CREATE TABLE {lab}.preflight (token TEXT); \
         DROP DATABASE IF EXISTS {other}; CREATE DATABASE {other}; CREATE TABLE {other}.c0 (k TEXT); \
         INSERT INTO {other}.c0 VALUES ('keep me')"
    ));
    let listed = b.inventory(&lab_name).unwrap();
    assert_eq!(
        listed,
        [
            format!("database {lab}"),
            format!("table {lab}.c0"),
            format!("table {lab}.c1"),
            format!("table {lab}.c5"),
            format!("table {lab}.preflight"),
        ]
    );
    b.drop_lab(&lab_name).unwrap();
    assert!(!srv.database_exists(lab));
    assert!(b.inventory(&lab_name).unwrap().is_empty());
    assert_eq!(srv.root_sql(&format!("SELECT k FROM {other}.c0")), [["keep me"]], "the other database survives");
    b.drop_lab(&lab_name).unwrap();
    srv.root_sql(&format!("DROP DATABASE {other}"));
}

#[test]
fn variants_are_offline_and_validated() {
    // No connection: this runs in dry runs.
    let cfg = isolated_config("dedup_lab", "mariadb", json!({"user": "u"}));
    let v = dedup_lab_backends::variants(SystemKind::Mariadb, &cfg).unwrap();
    assert_eq!(v, ["dynamic", "compressed", "page-compressed"]);
    let cfg = isolated_config("dedup_lab", "mariadb", json!({"user": "u", "variants": ["dynamic", "compressed-4"]}));
    assert_eq!(dedup_lab_backends::variants(SystemKind::Mariadb, &cfg).unwrap(), ["dynamic", "compressed-4"]);
    for (variants, want) in [
        (json!("dynamic, compresed"), "\"compresed\""),
        (json!(["dynamic", "dynamic"]), "listed twice"),
        (json!("compressed-3"), "valid: dynamic"),
    ] {
        let cfg = isolated_config("dedup_lab", "mariadb", json!({"user": "u", "variants": variants}));
        let e = err_text(dedup_lab_backends::variants(SystemKind::Mariadb, &cfg));
        assert!(e.contains(want), "{e}");
    }
}
