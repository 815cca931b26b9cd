//! The record feed of native insertion mode: payload files from the generator threads,
//! parsed into typed records on a parser thread of its own, handed over in small batches
//! through a bounded channel. Memory stays bounded: the generator's few files in flight,
//! the file being parsed, and at most [`DEPTH`] batches of records.

use dedup_lab_core::{BackendError, Placement, Record, RecordId, Schema};
use dedup_lab_datagen::Dataset;
use dedup_lab_datagen::native::{Format, NativeError, OnParseError, Support, support};
use dedup_lab_datagen::par::ParRecords;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// Batches in flight between the parser thread and the consumer.
const DEPTH: usize = 4;
/// A batch ends after this many records or bytes.
const BATCH_RECORDS: usize = 512;
const BATCH_BYTES: usize = 1 << 20;
/// Parse errors quoted in a measurement's notes (the rest are only counted).
pub const QUOTED_ERRORS: usize = 3;

/// How a cell in native mode stores its files.
#[derive(Debug, Clone)]
pub enum NativePlan {
    /// Parsed into records of `format`.
    Parsed(Format),
    /// The payload type has no native format: stored as blob, for the reason given.
    Blob(String),
}

impl NativePlan {
    pub fn for_payload(payload: &str) -> NativePlan {
        match support(payload) {
            Support::Native(f) => NativePlan::Parsed(f),
            Support::Blob(why) => NativePlan::Blob(why),
        }
    }
}

#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    skipped: Vec<NativeError>,
    failed: Option<BackendError>,
}

/// The native records of a dataset, in file order and, within a file, in record order.
pub struct NativeFeed {
    rx: Option<Receiver<Batch>>,
    thread: Option<JoinHandle<()>>,
    current: std::vec::IntoIter<Record>,
    failed: Option<BackendError>,
    /// Records that could not be parsed and were skipped (`on_parse_error = "skip"`).
    pub skipped: u64,
    /// The first [`QUOTED_ERRORS`] of them.
    pub skipped_errors: Vec<String>,
}

impl NativeFeed {
    /// Starts generating (on `threads` threads) and parsing (on one more) the files of `ds`.
    /// With placement `across`, every record of a duplicated file goes to container 1.
    pub fn start(
        ds: &Dataset,
        threads: usize,
        format: Format,
        placement: Placement,
        policy: OnParseError,
    ) -> NativeFeed {
        let (tx, rx) = sync_channel::<Batch>(DEPTH);
        let ds = ds.clone();
        let thread = std::thread::spawn(move || {
            let schema = format.schema();
            let spec = ds.spec().clone();
            let mut batch = Batch::default();
            let mut bytes = 0usize;
            for h in ParRecords::new(&ds, threads) {
                let f = h.record;
                // The file as `dedup-lab generate` would write it.
                let label = format!(
                    "{}/{}/records/{}.{} ({}, seed {})",
                    spec.payload,
                    spec.grade,
                    f.key(),
                    spec.payload.extension(),
                    spec.id(),
                    spec.seed
                );
                let container = u8::from(placement == Placement::Across && f.is_duplicate());
                for item in format.parse(&label, &f.data[..]) {
                    match item {
                        Ok(nr) => match encode(&schema, &nr.row, &label, nr.line) {
                            Ok(data) => {
                                bytes += data.len();
                                batch.records.push(Record {
                                    id: RecordId { key: Record::native_key_for(f.index, nr.ordinal), container },
                                    index: f.index,
                                    data,
                                    row: Some(nr.row),
                                });
                            }
                            Err(e) => {
                                batch.failed = Some(e);
                                let _ = tx.send(batch);
                                return;
                            }
                        },
                        Err(e) => match policy {
                            OnParseError::Skip => batch.skipped.push(e),
                            OnParseError::Fail => {
                                batch.failed = Some(BackendError::msg(format!(
                                    "native parsing failed: {e} (set on_parse_error = \"skip\" in [matrix] to count \
                                     and skip such records)"
                                )));
                                let _ = tx.send(batch);
                                return;
                            }
                        },
                    }
                    if batch.records.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES {
                        if tx.send(std::mem::take(&mut batch)).is_err() {
                            return; // the consumer stopped early
                        }
                        bytes = 0;
                    }
                }
            }
            let _ = tx.send(batch);
        });
        NativeFeed {
            rx: Some(rx),
            thread: Some(thread),
            current: Vec::new().into_iter(),
            failed: None,
            skipped: 0,
            skipped_errors: Vec::new(),
        }
    }

    /// What the skipped records were, for a measurement's notes.
    pub fn skipped_note(&self) -> Option<String> {
        (self.skipped > 0).then(|| {
            format!(
                "skipped {} record(s) that could not be parsed (on_parse_error = \"skip\"); first: {}",
                self.skipped,
                self.skipped_errors.join(" | ")
            )
        })
    }
}

fn encode(schema: &Schema, row: &[dedup_lab_core::Value], file: &str, line: u64) -> Result<Vec<u8>, BackendError> {
    schema.encode(row).map_err(|e| BackendError::with_source(format!("native record of {file} line {line}"), e))
}

impl Iterator for NativeFeed {
    type Item = Result<Record, BackendError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(Ok(r));
            }
            if let Some(e) = self.failed.take() {
                self.rx = None;
                return Some(Err(e));
            }
            let batch = self.rx.as_ref()?.recv().ok();
            let Some(batch) = batch else {
                self.rx = None;
                return None;
            };
            for e in batch.skipped {
                self.skipped += 1;
                if self.skipped_errors.len() < QUOTED_ERRORS {
                    self.skipped_errors.push(e.to_string());
                }
            }
            self.failed = batch.failed;
            self.current = batch.records.into_iter();
        }
    }
}

impl Drop for NativeFeed {
    fn drop(&mut self) {
        // Dropping the receiver makes the parser's next send fail, so it ends (and ends the
        // generator threads on its way out).
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
