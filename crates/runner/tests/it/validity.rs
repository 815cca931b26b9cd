//! The engine must catch a system that lies about what it wrote (the original harness
//! reported 0 rows for every bulk insert and never noticed). A wrapper around the real
//! SQLite backend reports wrong counts or corrupts reads; the engine must mark the cell
//! invalid and say why.

use dedup_lab_backends::BackendConfig;
use dedup_lab_core::{
    Backend, BackendError, CacheState, CellStatus, Grade, InsertionMode, InternalSizes, JournalLine, MaintenanceReport,
    Namespace, PayloadType, Placement, Record, RecordId, RecordStream, Stage, SystemKind,
};
use dedup_lab_datagen::{DatasetSpec, RecordSize};
use dedup_lab_runner::journal::{Journal, RunDir, read_journal};
use dedup_lab_runner::probe::ProbeKind;
use dedup_lab_runner::{Engine, RunSpec, SystemSpec};

/// Real SQLite underneath; `bulk_insert` reports 0 rows (and may not even read its
/// records), `read_one` may corrupt a byte.
struct Lying {
    inner: Box<dyn Backend>,
    corrupt_reads: bool,
    reads_nothing: bool,
}

impl Backend for Lying {
    fn kind(&self) -> SystemKind {
        SystemKind::Sqlite
    }
    fn endpoint(&self) -> String {
        self.inner.endpoint()
    }
    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.inner.reset(ns)
    }
    fn bulk_insert(&mut self, ns: &Namespace, r: RecordStream<'_>) -> Result<u64, BackendError> {
        if self.reads_nothing {
            return Ok(0);
        }
        self.inner.bulk_insert(ns, r).map(|_| 0)
    }
    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        self.inner.insert_one(ns, r)
    }
    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        self.inner.delete_one(ns, id)
    }
    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let mut v = self.inner.read_one(ns, id)?;
        if self.corrupt_reads
            && let Some(d) = v.as_mut()
        {
            d[0] ^= 1;
        }
        Ok(v)
    }
    fn maintenance(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        self.inner.maintenance(ns)
    }
    fn settle(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.inner.settle(ns)
    }
    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        self.inner.count(ns)
    }
    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        self.inner.sizes(ns)
    }
    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.inner.teardown(ns)
    }
    fn data_paths(&mut self, ns: &Namespace) -> Result<Vec<std::path::PathBuf>, BackendError> {
        self.inner.data_paths(ns)
    }
}

fn run_with(corrupt_reads: bool) -> Vec<JournalLine> {
    let (invalid, lines) = run_cell(6, |inner| Box::new(Lying { inner, corrupt_reads, reads_nothing: false }));
    assert_eq!(invalid, 1);
    lines
}

/// One SQLite cell of `records` records through `wrap(real backend)`: the count of invalid
/// cells and the journal.
fn run_cell(records: u64, wrap: impl FnOnce(Box<dyn Backend>) -> Box<dyn Backend>) -> (usize, Vec<JournalLine>) {
    let tmp = tempfile::tempdir().unwrap();
    let spec = RunSpec {
        lab: "dedup_lab".parse().unwrap(),
        systems: vec![SystemSpec {
            kind: SystemKind::Sqlite,
            variants: vec!["default".into()],
            replicas: 1,
            probe: ProbeKind::Auto,
            max_bytes: None,
            cold_command: None,
            settings: serde_json::json!({}),
        }],
        datasets: vec![DatasetSpec {
            payload: PayloadType::RandomBinary,
            grade: Grade::U50,
            records,
            record_size: RecordSize::Fixed(8192),
            seed: 1,
            real_world: None,
        }],
        stages: vec![Stage::BulkInsert, Stage::PerfileInsert],
        runs: 1,
        placements: vec![Placement::Within],
        caches: vec![CacheState::Warm],
        modes: vec![InsertionMode::Blob],
        on_parse_error: Default::default(),
        readback: 3,
        keep: false,
        storage_sim: None,
    };
    let dir = RunDir::new(tmp.path(), "r1");
    let info = RunDir::new_info("r1", spec.clone(), "test");
    dir.create(&info).unwrap();
    let journal = Journal::create(&dir).unwrap();
    let cfg = BackendConfig::new(spec.lab.clone(), "sqlite", "X", serde_json::json!({}), dir.lab_dir());
    let inner = dedup_lab_backends::open(SystemKind::Sqlite, "default", &cfg).unwrap();
    let mut observer = |_e: dedup_lab_runner::Event| {};
    let outcome = Engine::new(spec, dir.clone(), info, journal, 1, &mut observer)
        .with_backend(SystemKind::Sqlite, "default", wrap(inner))
        .run()
        .unwrap();
    (outcome.invalid.len(), read_journal(&dir.journal_path()).unwrap().0)
}

fn stage(lines: &[JournalLine], want: Stage) -> &dedup_lab_core::Measurement {
    lines
        .iter()
        .find_map(|l| match l {
            JournalLine::Stage(m) if m.stage == want => Some(m.as_ref()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn zero_reported_rows_make_the_cell_invalid() {
    let lines = run_with(false);
    let bulk = stage(&lines, Stage::BulkInsert);
    assert!(!bulk.valid);
    assert_eq!(bulk.rows_sent, 6);
    assert_eq!(bulk.rows_reported, Some(0));
    assert!(bulk.invalid_reasons[0].contains("reported 0 rows, 6 were sent"), "{:?}", bulk.invalid_reasons);
    // The honest per-record stage of the same cell stays valid.
    assert!(stage(&lines, Stage::PerfileInsert).valid);
    let cell = lines.iter().find_map(|l| match l {
        JournalLine::Cell { status, .. } => Some(*status),
        _ => None,
    });
    assert_eq!(cell, Some(CellStatus::Invalid));
}

#[test]
fn corrupted_read_back_makes_the_cell_invalid() {
    let lines = run_with(true);
    let per = stage(&lines, Stage::PerfileInsert);
    assert_eq!(per.readback_sampled, 3);
    assert_eq!(per.readback_matched, 0);
    assert!(per.invalid_reasons.iter().any(|r| r.contains("read back differ")), "{:?}", per.invalid_reasons);
}

/// A stage through which no record flowed must not pass as a measurement of an empty
/// store. A dataset cannot be empty by itself (a spec needs at least one record, and a
/// real-world source without data is refused at its scan: `realworld_cli`), so here the
/// backend takes its bulk stream and never reads it: the stage is invalid, "no rows were
/// sent", and the run counts the cell invalid (the CLI then exits 1).
#[test]
fn a_stage_that_sends_no_records_makes_the_cell_invalid() {
    let (invalid, lines) = run_cell(6, |inner| Box::new(Lying { inner, corrupt_reads: false, reads_nothing: true }));
    assert_eq!(invalid, 1, "the run counts the cell invalid");
    let bulk = stage(&lines, Stage::BulkInsert);
    assert_eq!(bulk.rows_sent, 0);
    assert!(!bulk.valid);
    assert!(bulk.invalid_reasons.iter().any(|r| r == "bulk_insert: no rows were sent"), "{:?}", bulk.invalid_reasons);
    assert!(stage(&lines, Stage::PerfileInsert).valid, "the per-record stage sent its rows");
    let cell = lines.iter().find_map(|l| match l {
        JournalLine::Cell { status, .. } => Some(*status),
        _ => None,
    });
    assert_eq!(cell, Some(CellStatus::Invalid));
}
