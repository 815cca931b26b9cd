//! Stage capabilities: a backend may declare an operation unsupported (the engine journals
//! the stage as unsupported instead of running it, and the cell stays `ok`) or declare that
//! its variant deduplicates (row counts are then checked against a range). The backend
//! underneath is the real SQLite one; a wrapper only adds the declarations.

use dedup_lab_core::{
    Backend, BackendError, CacheState, CellStatus, Grade, InsertionMode, InternalSizes, JournalLine, MaintenanceReport,
    Measurement, Namespace, Operation, PayloadType, Placement, PreflightReport, Record, RecordId, RecordStream, Schema,
    Stage, SystemKind,
};
use dedup_lab_datagen::{DatasetSpec, RecordSize};
use dedup_lab_runner::journal::{Journal, RunDir, read_journal};
use dedup_lab_runner::probe::ProbeKind;
use dedup_lab_runner::{Engine, RunOutcome, RunSpec, SystemSpec};

/// A real backend underneath, with declared capabilities (and, for one test, a step the
/// test's superuser takes after every reset).
struct Declaring {
    inner: Box<dyn Backend>,
    unsupported: Vec<(Operation, &'static str)>,
    deduplicates: Option<&'static str>,
    after_reset: Option<fn(&Namespace)>,
}

impl Backend for Declaring {
    fn kind(&self) -> SystemKind {
        self.inner.kind()
    }
    fn variant(&self) -> &str {
        self.inner.variant()
    }
    fn endpoint(&self) -> String {
        self.inner.endpoint()
    }
    fn preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        self.inner.preflight(ns)
    }
    fn server_version(&mut self) -> Result<String, BackendError> {
        self.inner.server_version()
    }
    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.inner.reset(ns)?;
        if let Some(step) = self.after_reset {
            step(ns);
        }
        Ok(())
    }
    fn bulk_insert(&mut self, ns: &Namespace, r: RecordStream<'_>) -> Result<u64, BackendError> {
        self.inner.bulk_insert(ns, r)
    }
    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        self.inner.insert_one(ns, r)
    }
    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        self.inner.delete_one(ns, id)
    }
    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.read_one(ns, id)
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
    fn native_storage(&self, schema: &Schema) -> String {
        self.inner.native_storage(schema)
    }
    fn unsupported(&self, op: Operation) -> Option<String> {
        self.unsupported.iter().find(|(o, _)| *o == op).map(|(_, why)| why.to_string())
    }
    fn deduplicates(&self) -> Option<String> {
        self.deduplicates.map(String::from)
    }
    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        self.inner.reopen()
    }
}

struct Run {
    outcome: RunOutcome,
    lines: Vec<JournalLine>,
}

impl Run {
    fn stage(&self, want: Stage) -> &Measurement {
        self.lines
            .iter()
            .find_map(|l| match l {
                JournalLine::Stage(m) if m.stage == want => Some(m.as_ref()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{want} is journaled"))
    }

    fn cell_status(&self) -> CellStatus {
        self.lines
            .iter()
            .find_map(|l| match l {
                JournalLine::Cell { status, .. } => Some(*status),
                _ => None,
            })
            .expect("the cell ended")
    }
}

const RECORDS: u64 = 6;

/// Runs one U50 random-binary cell of `RECORDS` records through `stages` on the wrapped
/// SQLite backend.
fn run(stages: &[Stage], mode: InsertionMode, wrap: impl FnOnce(Box<dyn Backend>) -> Box<dyn Backend>) -> Run {
    run_on(SystemKind::Sqlite, "dedup_lab", stages, mode, wrap)
}

/// The same on `kind` (its settings from the environment), in lab `lab`.
fn run_on(
    kind: SystemKind,
    lab: &str,
    stages: &[Stage],
    mode: InsertionMode,
    wrap: impl FnOnce(Box<dyn Backend>) -> Box<dyn Backend>,
) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let payload = match mode {
        InsertionMode::Native => PayloadType::StructuredJson,
        _ => PayloadType::RandomBinary,
    };
    let variant = dedup_lab_backends::variants(
        kind,
        &dedup_lab_runner::engine::backend_config_for(&lab.parse().unwrap(), kind, &serde_json::json!({})),
    )
    .unwrap()
    .remove(0);
    let spec = RunSpec {
        lab: lab.parse().unwrap(),
        systems: vec![SystemSpec {
            kind,
            variants: vec![variant.clone()],
            replicas: 1,
            probe: ProbeKind::Auto,
            max_bytes: None,
            cold_command: None,
            settings: serde_json::json!({}),
        }],
        datasets: vec![DatasetSpec {
            payload,
            grade: Grade::U50,
            records: RECORDS,
            record_size: RecordSize::Fixed(8192),
            seed: 1,
            real_world: None,
        }],
        stages: stages.to_vec(),
        runs: 1,
        placements: vec![Placement::Within],
        caches: vec![CacheState::Warm],
        modes: vec![mode],
        on_parse_error: Default::default(),
        readback: RECORDS,
        keep: false,
        storage_sim: None,
    };
    let dir = RunDir::new(tmp.path(), "r1");
    let info = RunDir::new_info("r1", spec.clone(), "test");
    dir.create(&info).unwrap();
    let journal = Journal::create(&dir).unwrap();
    let cfg = dedup_lab_runner::engine::backend_config(&spec, kind, &dir.lab_dir());
    let inner = dedup_lab_backends::open(kind, &variant, &cfg).unwrap_or_else(|e| panic!("{kind}: {}", e.chain()));
    let mut observer = |_e: dedup_lab_runner::Event| {};
    let outcome = Engine::new(spec, dir.clone(), info, journal, 1, &mut observer)
        .with_backend(kind, &variant, wrap(inner))
        .run()
        .unwrap();
    Run { outcome, lines: read_journal(&dir.journal_path()).unwrap().0 }
}

fn declaring(unsupported: Vec<(Operation, &'static str)>) -> impl FnOnce(Box<dyn Backend>) -> Box<dyn Backend> {
    move |inner| Box::new(Declaring { inner, unsupported, deduplicates: None, after_reset: None })
}

/// The line of a stage that was not run.
fn assert_unsupported(m: &Measurement, reason: &str) {
    assert_eq!(m.unsupported.as_deref(), Some(reason), "{}", m.stage);
    assert!(!m.valid && m.invalid_reasons.is_empty(), "{}: neither valid nor invalid: {m:?}", m.stage);
    assert_eq!((m.rows_sent, m.rows_reported, m.logical_bytes, m.duration_ns), (0, None, 0, 0));
    assert_eq!(m.physical.before, m.physical.after);
    assert_eq!(m.physical.delta, 0);
    assert!(m.edr_replica.is_none() && m.edr_cluster.is_none());
    assert!(m.edr_note.as_deref().is_some_and(|n| n.contains("unsupported")), "{:?}", m.edr_note);
    assert!(m.notes.contains(&format!("unsupported: {reason}")), "{:?}", m.notes);
}

#[test]
fn an_unsupported_delete_is_journaled_not_run_and_the_cell_is_ok() {
    let why = "an append-only log cannot delete one record";
    let r = run(
        &[Stage::BulkInsert, Stage::PerfileInsert, Stage::PerfileDelete, Stage::Maintenance, Stage::Refill],
        InsertionMode::Blob,
        declaring(vec![(Operation::DeleteOne, why)]),
    );
    assert!(r.outcome.invalid.is_empty() && r.outcome.failed.is_empty(), "{:?}", r.outcome);
    assert_eq!(r.cell_status(), CellStatus::Ok);

    let insert = r.stage(Stage::PerfileInsert);
    assert!(insert.valid, "{:?}", insert.invalid_reasons);
    let delete = r.stage(Stage::PerfileDelete);
    assert_unsupported(delete, why);
    // The probe still shows where the store stands: every record is still there.
    assert!(delete.physical.before > 0);
    assert!(delete.reclaimed_bytes.is_none() && delete.reclaimed_share.is_none());

    // Maintenance still runs, and expects the records the delete left (all of them).
    let maint = r.stage(Stage::Maintenance);
    assert!(maint.unsupported.is_none());
    assert!(maint.valid, "{:?}", maint.invalid_reasons);
    assert_eq!(maint.rows_counted, Some(RECORDS));
    assert!(maint.notes.iter().any(|n| n.starts_with("maintenance: ")), "{:?}", maint.notes);

    // Refill re-inserts what the delete removed: unsupported with it, saying why.
    let refill = r.stage(Stage::Refill);
    let expected =
        format!("refill re-inserts the records perfile_delete removed, and per-record delete is unsupported: {why}");
    assert_unsupported(refill, &expected);
}

#[test]
fn an_unsupported_maintenance_is_journaled_not_run_and_the_cell_is_ok() {
    let why = "the store has no reclaim operation";
    let r = run(
        &[Stage::PerfileInsert, Stage::PerfileDelete, Stage::Maintenance],
        InsertionMode::Blob,
        declaring(vec![(Operation::Maintenance, why)]),
    );
    assert_eq!(r.cell_status(), CellStatus::Ok, "{:?}", r.outcome);
    assert!(r.stage(Stage::PerfileInsert).valid);
    let delete = r.stage(Stage::PerfileDelete);
    assert!(delete.valid && delete.unsupported.is_none(), "{:?}", delete.invalid_reasons);
    assert_eq!(delete.rows_counted, Some(0));
    assert_unsupported(r.stage(Stage::Maintenance), why);
}

fn deduplicating(how: &'static str) -> impl FnOnce(Box<dyn Backend>) -> Box<dyn Backend> {
    move |inner| Box::new(Declaring { inner, unsupported: vec![], deduplicates: Some(how), after_reset: None })
}

#[test]
fn a_deduplicating_declaration_over_a_store_that_keeps_every_row_is_valid() {
    let how = "collapses equal rows on merge";
    for mode in [InsertionMode::Blob, InsertionMode::Native] {
        let r = run(
            &[Stage::BulkInsert, Stage::PerfileInsert, Stage::PerfileDelete, Stage::Maintenance],
            mode,
            deduplicating(how),
        );
        assert_eq!(r.cell_status(), CellStatus::Ok, "{mode}: {:?}", r.outcome);
        for stage in [Stage::BulkInsert, Stage::PerfileInsert] {
            let m = r.stage(stage);
            assert!(m.valid, "{mode} {stage}: {:?}", m.invalid_reasons);
            // Every row is kept: the count is the top of the accepted range.
            assert_eq!(m.rows_counted, Some(m.rows_sent));
            let note = m.notes.iter().find(|n| n.starts_with("deduplicating variant: ")).expect("the how is noted");
            assert!(note.contains(how), "{note}");
            // U50 of 6 files: 3 distinct ones in blob mode. Native mode counts distinct
            // records while streaming; every native record of a file differs, so at least
            // the records of the 3 originals are distinct.
            let low: u64 = note.split("; ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
            match mode {
                InsertionMode::Blob => assert_eq!(low, 3, "{note}"),
                _ => assert!(low < m.rows_sent && low >= 3, "{note}"),
            }
            assert!(m.notes.iter().any(|n| n.starts_with("read-back: 0 of ")), "{:?}", m.notes);
        }
        assert!(r.stage(Stage::PerfileDelete).valid);
        assert!(r.stage(Stage::Maintenance).valid);
    }
}

/// A store that deduplicates by content, made of the real SQLite backend: a record whose
/// content was written before is acknowledged but not stored (as a table engine that
/// collapses equal rows, or a log compacted by content hash, would leave it).
struct Collapsing {
    inner: Declaring,
    seen: std::collections::HashSet<Vec<u8>>,
}

impl Backend for Collapsing {
    fn kind(&self) -> SystemKind {
        self.inner.kind()
    }
    fn endpoint(&self) -> String {
        self.inner.endpoint()
    }
    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.seen.clear();
        self.inner.reset(ns)
    }
    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let (seen, mut sent) = (&mut self.seen, 0);
        let mut first_of_content = records.inspect(|_| sent += 1).filter(|r| match r {
            Ok(r) => seen.insert(r.data.clone()),
            Err(_) => true,
        });
        self.inner.bulk_insert(ns, &mut first_of_content)?;
        Ok(sent)
    }
    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        if self.seen.insert(r.data.clone()) { self.inner.insert_one(ns, r) } else { Ok(1) }
    }
    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        self.inner.delete_one(ns, id)
    }
    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.read_one(ns, id)
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
    fn unsupported(&self, op: Operation) -> Option<String> {
        self.inner.unsupported(op)
    }
    fn deduplicates(&self) -> Option<String> {
        self.inner.deduplicates()
    }
}

fn collapsing(deduplicates: Option<&'static str>) -> impl FnOnce(Box<dyn Backend>) -> Box<dyn Backend> {
    move |inner| {
        let inner = Declaring { inner, unsupported: vec![], deduplicates, after_reset: None };
        Box::new(Collapsing { inner, seen: Default::default() })
    }
}

#[test]
fn a_deduplicating_variant_that_collapses_copies_is_valid_only_when_it_says_so() {
    let stages = [Stage::BulkInsert, Stage::PerfileInsert, Stage::Maintenance];
    // U50 of 6 records: 3 originals are kept, their 3 copies collapsed.
    let r = run(&stages, InsertionMode::Blob, collapsing(Some("keeps one row per content")));
    assert_eq!(r.cell_status(), CellStatus::Ok, "{:?}", r.outcome);
    for stage in [Stage::BulkInsert, Stage::PerfileInsert] {
        let m = r.stage(stage);
        assert!(m.valid, "{stage}: {:?}", m.invalid_reasons);
        assert_eq!((m.rows_sent, m.rows_reported, m.rows_counted), (6, Some(6), Some(3)));
        assert_eq!((m.readback_sampled, m.readback_matched), (6, 3));
        assert!(
            m.notes
                .iter()
                .any(|n| n == "read-back: 3 of 6 sampled records were collapsed by the variant (read back nothing)"),
            "{:?}",
            m.notes
        );
    }
    // After maintenance: at most what was there before it (3), at least the distinct (3).
    assert_eq!(r.stage(Stage::Maintenance).rows_counted, Some(3));
    assert!(r.stage(Stage::Maintenance).valid);

    // The same store without the declaration lost rows: invalid.
    let r = run(&stages, InsertionMode::Blob, collapsing(None));
    assert_eq!(r.cell_status(), CellStatus::Invalid);
    let bulk = r.stage(Stage::BulkInsert);
    assert_eq!(
        bulk.invalid_reasons,
        [
            "bulk_insert: 3 rows counted afterwards, expected 6",
            "bulk_insert: 3 of 6 records read back differ from what was written"
        ]
    );
}

/// Runs SQL as the PostgreSQL test server's superuser (through psql).
fn pg_superuser(sql: &str) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set (scripts/services.sh env)"));
    let out = std::process::Command::new("psql")
        .env("PGPASSWORD", var("DEDUP_PG_SUPERUSER_PASSWORD"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &var("DEDUP_PG_HOST"), "-p", &var("DEDUP_PG_PORT")])
        .args(["-U", &var("DEDUP_PG_SUPERUSER"), "-d", &var("DEDUP_PG_DATABASE"), "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// After reset, a trigger the test's superuser adds makes the server skip two of the six
/// records (keys ending in 1 and 4): the bulk path must report the server's own COPY count
/// (4), not the number sent (6), and the engine must mark the cell invalid.
#[test]
fn postgresql_reports_its_own_count_and_fewer_rows_stored_make_the_cell_invalid() {
    let vars = ["DEDUP_PG_HOST", "DEDUP_PG_PORT", "DEDUP_PG_USER", "DEDUP_PG_PASSWORD", "DEDUP_PG_SUPERUSER"];
    if let Some(missing) = vars.iter().find(|v| std::env::var(v).map_or(true, |x| x.is_empty())) {
        assert!(
            std::env::var("DEDUP_LAB_REQUIRE_SERVERS").map_or(true, |v| v != "1"),
            "DEDUP_LAB_REQUIRE_SERVERS=1 but {missing} is unset (scripts/services.sh env)"
        );
        eprintln!("skipping: no PostgreSQL test server ({missing} unset)");
        return;
    }
    pg_superuser(
        "CREATE OR REPLACE FUNCTION public.dedup_t_drop_some() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF right(NEW.k, 1) IN ('1', '4') THEN RETURN NULL; END IF; RETURN NEW; END $$",
    );
    fn add_trigger(ns: &Namespace) {
        pg_superuser(&format!(
            "CREATE TRIGGER drop_some BEFORE INSERT ON {}.c0 FOR EACH ROW EXECUTE FUNCTION public.dedup_t_drop_some()",
            ns.lab()
        ));
    }
    let r = run_on(SystemKind::Postgresql, "dedup_t_trigger", &[Stage::BulkInsert], InsertionMode::Blob, |inner| {
        Box::new(Declaring { inner, unsupported: vec![], deduplicates: None, after_reset: Some(add_trigger) })
    });
    let bulk = r.stage(Stage::BulkInsert);
    assert_eq!((bulk.rows_sent, bulk.rows_reported, bulk.rows_counted), (RECORDS, Some(4), Some(4)));
    assert!(!bulk.valid, "fewer rows stored than sent");
    assert!(bulk.invalid_reasons.iter().any(|r| r.contains("system reported 4 rows, 6 were sent")), "{bulk:?}");
    assert_eq!(r.cell_status(), CellStatus::Invalid);
    assert_eq!(r.outcome.invalid.len(), 1);
}
