//! The shared backend conformance suite: every backend, embedded or server, must pass it.
//!
//! It drives a backend through what the engine and `cleanup` rely on, against the real
//! store: reset, bulk insert with a reported count equal to what was sent, per-record
//! insert/delete with verified counts, read-back of exact bytes, both containers, a record
//! outside the namespace (an error, never a panic), maintenance, sizes that grow with data,
//! `reopen` keeping the data, `preflight`, `inventory`/`drop_lab` (what `cleanup` uses), the
//! variants, the operations a backend declares unsupported, and a teardown that leaves
//! nothing behind. Native insertion mode has its own part ([`run_native_suite`]).
//!
//! Built with the `conformance` feature, so the same suite runs from the root crate's
//! `tests/` and from `crates/backends/tests/it`. A failed check panics with the backend's
//! name and what it did, as a test should.

use crate::local::allocated_bytes;
use dedup_lab_core::{
    Backend, BackendError, ErrorClass, LabName, Namespace, Operation, PayloadType, Record, RecordId, Schema,
};

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

/// The physical size as the `auto` probe reads it: settle, then the allocated bytes of the
/// local data paths, or the system's own total when it has none.
pub fn physical(b: &mut dyn Backend, ns: &Namespace) -> u64 {
    b.settle(ns).unwrap_or_else(|e| panic!("{}: settle: {}", b.kind(), e.chain()));
    let paths = b.data_paths(ns).unwrap_or_else(|e| panic!("{}: data paths: {}", b.kind(), e.chain()));
    if paths.is_empty() {
        let sizes = b.sizes(ns).unwrap_or_else(|e| panic!("{}: sizes: {}", b.kind(), e.chain()));
        sizes.total_bytes.unwrap_or_else(|| panic!("{}: no local data paths and no internal total", b.kind()))
    } else {
        allocated_bytes(&paths).unwrap_or_else(|e| panic!("{}: allocated bytes: {e}", b.kind()))
    }
}

/// What the suite is told about the backend under test.
pub struct Suite<'a> {
    /// The lab the suite works in (each caller its own, so suites can run in parallel).
    pub lab: &'a str,
    /// Whether anything of the namespace still exists, asked of the store itself (the
    /// server's catalog, the directory), not of the backend.
    pub leftovers: &'a mut dyn FnMut(&Namespace) -> bool,
}

/// Runs the whole blob-mode suite on `b`, then the checks that need a fresh lab
/// (preflight, cleanup).
pub fn run_suite(b: &mut dyn Backend, suite: &mut Suite<'_>) {
    let lab: LabName = suite.lab.parse().expect("a valid lab name");
    let ns = Namespace::new(&lab, 2);
    let kind = b.kind();
    let n = 24u64;
    let size = 64 * 1024;
    let variant = b.variant().to_string();
    let ok = |what: &str, e: BackendError| -> ! { panic!("{kind}/{variant}: {what}: {}", e.chain()) };
    let unsupported = |b: &dyn Backend, op: Operation| {
        let why = b.unsupported(op);
        if let Some(w) = &why {
            assert!(!w.trim().is_empty(), "{kind}: an unsupported {} needs a reason", op.name());
        }
        why.is_some()
    };

    // reset gives an empty namespace, also when run twice.
    b.reset(&ns).unwrap_or_else(|e| ok("reset", e));
    b.reset(&ns).unwrap_or_else(|e| ok("second reset (must be idempotent)", e));
    assert_eq!(b.count(&ns).unwrap_or_else(|e| ok("count", e)), 0, "{kind}: a fresh namespace is empty");
    let empty = physical(b, &ns);

    // Bulk insert into both containers: the system's own count must equal what was sent.
    if !unsupported(b, Operation::BulkInsert) {
        let mut recs = (0..n).map(|i| Ok::<_, BackendError>(record(i, (i % 2) as u8, size)));
        let reported = b.bulk_insert(&ns, &mut recs).unwrap_or_else(|e| ok("bulk insert", e));
        assert_eq!(reported, n, "{kind}: bulk insert must report the rows the system wrote");
        assert_eq!(b.count(&ns).unwrap_or_else(|e| ok("count", e)), n);
        let full = physical(b, &ns);
        assert!(
            full >= empty + n * size as u64 / 2,
            "{kind}: physical size must grow with {} B of incompressible data: {empty} -> {full}",
            n * size as u64
        );
        let sizes = b.sizes(&ns).unwrap_or_else(|e| ok("sizes", e));
        if let Some(total) = sizes.total_bytes {
            assert!(total >= n * size as u64 / 2, "{kind}: internal size {total} too small");
        }

        // Exact bytes come back, from the right container; a missing key reads as None.
        check_read_back(b, &ns, &[0, 1, n / 2, n - 1], size);
        let wrong_container = RecordId { key: Record::key_for(0), container: 1 };
        assert_eq!(b.read_one(&ns, &wrong_container).unwrap(), None, "{kind}: containers are separate");

        // Closing and reopening the store (a cold cache) keeps every record.
        let reopened = b.reopen().unwrap_or_else(|e| ok("reopen", e));
        if let Some(what) = reopened {
            assert!(!what.is_empty(), "{kind}: reopen says what it did");
        }
        assert_eq!(b.count(&ns).unwrap_or_else(|e| ok("count after reopen", e)), n, "{kind}: reopen keeps data");
        check_read_back(b, &ns, &[3, n - 2], size);

        // A failing bulk stream is an error, not a partial success.
        let mut failing = (0..3u64)
            .map(|i| Ok(record(1000 + i, 0, 1024)))
            .chain(std::iter::once(Err(BackendError::msg("source failed"))));
        assert!(b.bulk_insert(&ns, &mut failing).is_err(), "{kind}: a failing record stream must fail the bulk insert");
    }

    // A record that names a container the namespace does not have is an error with the
    // class BadRequest, on every path, never a panic.
    b.reset(&ns).unwrap_or_else(|e| ok("reset", e));
    let outside = record(7, 2, 16);
    let check_outside = |what: &str, r: Result<(), BackendError>| match r {
        Ok(()) => panic!("{kind}: {what} of a record in container 2 of a 2-container namespace must fail"),
        Err(e) => assert!(e.chain().contains("container 2"), "{kind}: {what}: {}", e.chain()),
    };
    if !unsupported(b, Operation::BulkInsert) {
        let mut one = std::iter::once(Ok(outside.clone()));
        check_outside("bulk insert", b.bulk_insert(&ns, &mut one).map(|_| ()));
    }
    if !unsupported(b, Operation::InsertOne) {
        let r = b.insert_one(&ns, &outside).map(|_| ());
        if let Err(e) = &r {
            assert_eq!(e.class(), Some(ErrorClass::BadRequest), "{kind}: class of {}", e.chain());
        }
        check_outside("insert_one", r);
    }
    if !unsupported(b, Operation::DeleteOne) {
        check_outside("delete_one", b.delete_one(&ns, &outside.id).map(|_| ()));
    }
    check_outside("read_one", b.read_one(&ns, &outside.id).map(|_| ()));

    // Per-record insert and delete with counts.
    b.reset(&ns).unwrap_or_else(|e| ok("reset before the per-record stage", e));
    if !unsupported(b, Operation::InsertOne) {
        for i in 0..n {
            let reported = b.insert_one(&ns, &record(i, 0, size)).unwrap_or_else(|e| ok("insert_one", e));
            assert_eq!(reported, 1, "{kind}: insert_one reports 1 row");
        }
        assert_eq!(b.count(&ns).unwrap(), n);
        // Re-inserting a key either fails (a primary key) or overwrites (a key-value
        // store); it never adds a second record.
        let _ = b.insert_one(&ns, &record(0, 0, size));
        assert_eq!(b.count(&ns).unwrap(), n, "{kind}: a key is stored once");
        if !unsupported(b, Operation::DeleteOne) {
            for i in 0..n {
                let id = RecordId { key: Record::key_for(i), container: 0 };
                assert_eq!(b.delete_one(&ns, &id).unwrap_or_else(|e| ok("delete_one", e)), 1, "{kind}: 1 row");
            }
            let missing = RecordId { key: Record::key_for(0), container: 0 };
            assert_eq!(b.delete_one(&ns, &missing).unwrap(), 0, "{kind}: deleting a missing record deletes nothing");
            assert_eq!(b.count(&ns).unwrap(), 0);
        }
    }

    // Maintenance runs and says what it did; the store stays usable.
    if !unsupported(b, Operation::Maintenance) {
        let before = b.count(&ns).unwrap();
        let m = b.maintenance(&ns).unwrap_or_else(|e| ok("maintenance", e));
        assert!(!m.action.is_empty(), "{kind}: maintenance says what it did");
        assert_eq!(b.count(&ns).unwrap_or_else(|e| ok("count after maintenance", e)), before);
    }
    b.settle(&ns).unwrap_or_else(|e| ok("settle", e));

    // Teardown leaves nothing behind, and is idempotent.
    b.teardown(&ns).unwrap_or_else(|e| ok("teardown", e));
    b.teardown(&ns).unwrap_or_else(|e| ok("second teardown", e));
    assert!(!(suite.leftovers)(&ns), "{kind}: teardown left the namespace behind");

    check_cleanup(b, &lab);
    check_preflight(b, &lab);
    assert!(!(suite.leftovers)(&ns), "{kind}: preflight or cleanup left the namespace behind");
}

fn check_read_back(b: &mut dyn Backend, ns: &Namespace, indexes: &[u64], size: usize) {
    for &i in indexes {
        let want = record(i, (i % 2) as u8, size);
        let got = b.read_one(ns, &want.id).unwrap_or_else(|e| panic!("{}: read {i}: {}", b.kind(), e.chain()));
        assert!(got.as_deref() == Some(&want.data[..]), "{}: record {i} read back differs", b.kind());
    }
}

/// `cleanup`: after a reset with data, `inventory` lists the lab's objects, `drop_lab`
/// removes them, and `inventory` is empty afterwards.
pub fn check_cleanup(b: &mut dyn Backend, lab: &LabName) {
    let kind = b.kind();
    let ns = Namespace::new(lab, 2);
    b.reset(&ns).unwrap_or_else(|e| panic!("{kind}: reset: {}", e.chain()));
    if b.unsupported(Operation::InsertOne).is_none() {
        b.insert_one(&ns, &record(1, 1, 1024)).unwrap_or_else(|e| panic!("{kind}: insert: {}", e.chain()));
    }
    b.settle(&ns).unwrap_or_else(|e| panic!("{kind}: settle: {}", e.chain()));
    let found = b.inventory(lab).unwrap_or_else(|e| panic!("{kind}: inventory: {}", e.chain()));
    assert!(!found.is_empty(), "{kind}: inventory must list the lab after a reset");
    assert!(found.iter().all(|f| !f.trim().is_empty()), "{kind}: {found:?}");
    b.drop_lab(lab).unwrap_or_else(|e| panic!("{kind}: drop_lab: {}", e.chain()));
    let left = b.inventory(lab).unwrap_or_else(|e| panic!("{kind}: inventory after drop: {}", e.chain()));
    assert!(left.is_empty(), "{kind}: drop_lab left {left:?}");
    b.drop_lab(lab).unwrap_or_else(|e| panic!("{kind}: drop_lab on nothing must succeed: {}", e.chain()));
}

/// `preflight` passes on a healthy store, says what it checked, and leaves nothing.
pub fn check_preflight(b: &mut dyn Backend, lab: &LabName) {
    let kind = b.kind();
    let report = b.preflight(&Namespace::new(lab, 2)).unwrap_or_else(|e| panic!("{kind}: preflight: {}", e.chain()));
    assert!(!report.checks.is_empty(), "{kind}: preflight says what it checked");
    let left = b.inventory(lab).unwrap_or_else(|e| panic!("{kind}: inventory: {}", e.chain()));
    assert!(left.is_empty(), "{kind}: preflight left {left:?}");
}

type OpenResult = Result<Box<dyn Backend>, BackendError>;

/// Every listed variant opens and says its own name; a variant the system does not have is
/// refused with an error naming it.
pub fn check_variants(variants: &[String], open: &mut dyn FnMut(&str) -> OpenResult, bogus: &str) {
    assert!(!variants.is_empty(), "a system has at least one variant");
    for v in variants {
        let b = open(v).unwrap_or_else(|e| panic!("variant {v}: {}", e.chain()));
        assert_eq!(b.variant(), v, "{}: the backend reports the variant it was opened in", b.kind());
    }
    match open(bogus) {
        Ok(b) => panic!("{}: variant {bogus:?} must be refused", b.kind()),
        Err(e) => assert!(e.chain().contains(bogus), "the error names the variant: {}", e.chain()),
    }
}

/// The native records of one generated payload file of `payload` (`size` bytes), as the
/// engine builds them: typed row + canonical encoding, native keys.
pub fn native_records(payload: PayloadType, file: u64, size: usize, container: u8) -> (Schema, Vec<Record>) {
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
    for payload in PayloadType::ALL {
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
