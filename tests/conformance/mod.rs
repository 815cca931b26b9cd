//! The shared backend conformance suite: every backend, embedded or server, must pass it.
//!
//! It drives a backend through what the engine relies on — reset, bulk insert with a
//! reported count equal to what was sent, per-record insert/delete with verified counts,
//! read-back of exact bytes, both containers, maintenance, sizes that grow with data,
//! and a teardown that leaves nothing behind — against the real store.

#![allow(dead_code)] // each test binary uses part of this module

use dedup_lab_core::{Backend, BackendError, LabName, Namespace, Record, RecordId};
use dedup_lab_runner::probe::{Probe, ProbeKind};

/// A deterministic record of `len` bytes (incompressible enough to grow any store).
pub fn record(index: u64, container: u8, len: usize) -> Record {
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    Record::blob(RecordId { key: Record::key_for(index), container }, index, data)
}

/// Runs the whole suite. `leftovers` answers whether anything of the namespace still
/// exists in the store after teardown (asked of the store itself, not of the backend).
pub fn run_suite(b: &mut dyn Backend, leftovers: &mut dyn FnMut(&mut dyn Backend, &Namespace) -> bool) {
    let lab: LabName = "dedup_lab_conformance".parse().unwrap();
    let ns = Namespace::new(&lab, 2);
    let n = 24u64;
    let size = 64 * 1024;
    let probe = Probe::new(ProbeKind::Auto);

    // reset gives an empty namespace, also when run twice.
    b.reset(&ns).expect("reset");
    b.reset(&ns).expect("second reset is idempotent");
    assert_eq!(b.count(&ns).expect("count"), 0, "{}: a fresh namespace is empty", b.kind());
    let empty = probe.read(b, &ns).expect("probe of the empty namespace");

    // Bulk insert into both containers: the system's own count must equal what was sent.
    let mut recs = (0..n).map(|i| Ok::<_, BackendError>(record(i, (i % 2) as u8, size)));
    let reported = b.bulk_insert(&ns, &mut recs).expect("bulk insert");
    assert_eq!(reported, n, "{}: bulk insert must report the rows the system wrote", b.kind());
    assert_eq!(b.count(&ns).expect("count"), n);
    let full = probe.read(b, &ns).expect("probe after bulk insert");
    assert!(
        full >= empty + n * size as u64 / 2,
        "{}: physical size must grow with {} B of incompressible data: {empty} -> {full}",
        b.kind(),
        n * size as u64
    );
    let sizes = b.sizes(&ns).expect("sizes");
    if let Some(total) = sizes.total_bytes {
        assert!(total >= n * size as u64 / 2, "{}: internal size {total} too small", b.kind());
    }

    // Exact bytes come back, from the right container; a missing key reads as None.
    for i in [0, 1, n / 2, n - 1] {
        let want = record(i, (i % 2) as u8, size);
        let got = b.read_one(&ns, &want.id).expect("read").expect("record present");
        assert!(got == want.data, "{}: record {i} read back differs", b.kind());
    }
    let wrong_container = RecordId { key: Record::key_for(0), container: 1 };
    assert_eq!(b.read_one(&ns, &wrong_container).expect("read"), None, "{}: containers are separate", b.kind());

    // A failing bulk stream is an error, not a partial success.
    let mut failing = (0..3u64)
        .map(|i| Ok(record(1000 + i, 0, 1024)))
        .chain(std::iter::once(Err(BackendError::msg("source failed"))));
    assert!(
        b.bulk_insert(&ns, &mut failing).is_err(),
        "{}: a failing record stream must fail the bulk insert",
        b.kind()
    );

    // Per-record insert and delete with counts.
    b.reset(&ns).expect("reset before per-record stage");
    for i in 0..n {
        assert_eq!(
            b.insert_one(&ns, &record(i, 0, size)).expect("insert_one"),
            1,
            "{}: insert_one reports 1 row",
            b.kind()
        );
    }
    assert_eq!(b.count(&ns).expect("count"), n);
    // Re-inserting a key either fails (a primary key) or overwrites (a key-value store);
    // it never adds a second record.
    let _ = b.insert_one(&ns, &record(0, 0, size));
    assert_eq!(b.count(&ns).expect("count"), n, "{}: a key is stored once", b.kind());
    for i in 0..n {
        let id = RecordId { key: Record::key_for(i), container: 0 };
        assert_eq!(b.delete_one(&ns, &id).expect("delete_one"), 1, "{}: delete_one reports 1 row", b.kind());
    }
    let missing = RecordId { key: Record::key_for(0), container: 0 };
    assert_eq!(b.delete_one(&ns, &missing).expect("delete of a missing record"), 0, "{}: nothing to delete", b.kind());
    assert_eq!(b.count(&ns).expect("count"), 0);

    // Maintenance runs and says what it did; the store stays usable.
    let m = b.maintenance(&ns).expect("maintenance");
    assert!(!m.action.is_empty());
    assert_eq!(b.count(&ns).expect("count after maintenance"), 0);
    b.settle(&ns).expect("settle");

    // Teardown leaves nothing behind, and is idempotent.
    b.teardown(&ns).expect("teardown");
    b.teardown(&ns).expect("second teardown");
    assert!(!leftovers(b, &ns), "{}: teardown left the namespace behind", b.kind());
}

/// The default leftover check for stores on this machine: none of the data paths exists.
pub fn no_local_paths(b: &mut dyn Backend, ns: &Namespace) -> bool {
    b.data_paths(ns).expect("data paths").iter().any(|p| p.exists())
}

/// The native records of one generated payload file of `payload` (`size` bytes), as the
/// engine builds them: typed row + canonical encoding, native keys.
pub fn native_records(
    payload: dedup_lab_core::PayloadType,
    file: u64,
    size: usize,
    container: u8,
) -> (dedup_lab_core::Schema, Vec<Record>) {
    use dedup_lab_datagen::native::{Support, support};
    let Support::Native(format) = support(payload.name()) else { panic!("{payload} has a native format") };
    let schema = format.schema();
    let mut data = Vec::new();
    dedup_lab_datagen::payload::generate(payload, 99, file, size, &mut data);
    let records = format
        .parse("conformance", &data[..])
        .map(|r| {
            let r = r.expect("generated payloads parse");
            Record {
                id: RecordId { key: Record::native_key_for(file, r.ordinal), container },
                index: file,
                data: schema.encode(&r.row).expect("encodes"),
                row: Some(r.row),
            }
        })
        .collect();
    (schema, records)
}

/// Native insertion mode: for every synthetic payload type, a namespace typed by its schema
/// takes the parsed records through the bulk path and one by one, reads each record back as
/// its canonical encoding (a typed store rebuilds it from its columns), counts and deletes.
pub fn run_native_suite(b: &mut dyn Backend, lab: &str) {
    let lab: LabName = lab.parse().unwrap();
    for payload in dedup_lab_core::PayloadType::ALL {
        let (schema, recs) = native_records(payload, 3, 48 * 1024, 0);
        let (_, more) = native_records(payload, 4, 8 * 1024, 1);
        let ns = Namespace::new(&lab, 2).with_schema(schema);
        b.reset(&ns).unwrap_or_else(|e| panic!("{} {payload}: reset: {}", b.kind(), e.chain()));
        let n = recs.len() as u64;
        let mut stream = recs.iter().cloned().map(Ok::<_, BackendError>);
        let reported = b.bulk_insert(&ns, &mut stream).unwrap_or_else(|e| panic!("{payload}: bulk: {}", e.chain()));
        assert_eq!(reported, n, "{} {payload}: bulk insert reports every native record", b.kind());
        for r in &more {
            assert_eq!(b.insert_one(&ns, r).unwrap_or_else(|e| panic!("{payload}: insert: {}", e.chain())), 1);
        }
        assert_eq!(b.count(&ns).unwrap(), n + more.len() as u64, "{} {payload}", b.kind());
        for r in recs.iter().chain(&more) {
            let got = b.read_one(&ns, &r.id).unwrap_or_else(|e| panic!("{payload}: read: {}", e.chain()));
            assert!(
                got.as_deref() == Some(&r.data[..]),
                "{} {payload}: {} reads back as {:?}, sent {:?}",
                b.kind(),
                r.id.key,
                got.as_deref().map(String::from_utf8_lossy),
                String::from_utf8_lossy(&r.data)
            );
        }
        for r in &more {
            assert_eq!(b.delete_one(&ns, &r.id).unwrap(), 1);
        }
        assert_eq!(b.count(&ns).unwrap(), n);
        b.maintenance(&ns).unwrap();
        b.teardown(&ns).unwrap();
    }
}
