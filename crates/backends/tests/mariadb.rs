//! The MariaDB backend against the REAL local test server (`scripts/services.sh up mariadb;
//! eval "$(scripts/services.sh env mariadb)"`). No mocks.
//!
//! Without `DEDUP_MARIADB_*` in the environment every test here prints why and returns; with
//! `DEDUP_LAB_REQUIRE_SERVERS=1` it fails instead. Each test uses its own lab name, so they
//! can run in parallel against one server.

#![cfg(feature = "mariadb")]

mod support;

use dedup_lab_backends::{BackendConfig, open};
use dedup_lab_core::{
    Backend, Column, ColumnType, ErrorClass, LabName, Namespace, Record, RecordId, RowEncoding, Schema, SystemKind,
    Value,
};
use serde_json::json;
use support::mariadb::{SharedServer, hex_token, shared_env};
use support::*;

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
