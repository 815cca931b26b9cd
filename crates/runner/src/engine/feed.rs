//! The record feed: what the insert stages send and the delete stage removes. A cell's
//! records stream from the generator threads (blob mode: one record per file) or from the
//! native parser (native mode: the files parsed into typed records); [`RecordSource`]
//! counts rows and bytes on the way and keeps the hashes of a read-back sample. Nothing
//! holds a whole dataset (but see [`RecordSource::count_distinct`]).

use super::Engine;
use crate::interrupted;
use crate::native::{NativeFeed, NativePlan};
use crate::spec::CellPlan;
use dedup_lab_core::{BackendError, InsertionMode, Placement, Record, RecordId};
use dedup_lab_datagen::Dataset;
use dedup_lab_datagen::native::Format;
use dedup_lab_datagen::par::TryParRecords;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Record ids and hashes of a stage's read-back sample.
pub(super) type Sample = Vec<(RecordId, [u8; 32])>;

/// How a native cell stores its files; `None` in blob mode.
pub(super) fn native_plan(cell: &CellPlan) -> Option<NativePlan> {
    (cell.key.mode == InsertionMode::Native).then(|| NativePlan::for_dataset(&cell.dataset))
}

/// The format the files of a native cell are parsed with; `None` in blob mode and for
/// payload types stored as blob in native mode.
pub(super) fn native_format(cell: &CellPlan) -> Option<Format> {
    match native_plan(cell) {
        Some(NativePlan::Parsed(f)) => Some(f),
        _ => None,
    }
}

/// The id of record `index`: duplicates go to the second container when placement is `across`.
pub(super) fn record_id(cell: &CellPlan, index: u64, duplicate: bool) -> RecordId {
    let container = u8::from(cell.key.placement == Placement::Across && duplicate);
    RecordId { key: Record::key_for(index), container }
}

/// SHA-256 of a record, for read-back checks.
pub(super) fn digest(data: &[u8]) -> [u8; 32] {
    dedup_lab_datagen::sha256(data)
}

impl Engine<'_> {
    /// The records of a cell, ready to stream to a backend.
    pub(super) fn records(&self, cell: &CellPlan, ds: &Dataset) -> RecordSource {
        let feed = match native_format(cell) {
            Some(f) => Feed::Native(self.native_feed(cell, ds, f)),
            None => Feed::Blob(ds.try_par_records_unhashed(self.threads)),
        };
        let mut src = RecordSource::new(feed, cell, self.spec.readback);
        src.progress = self.telemetry.as_ref().map(|t| t.progress());
        src
    }

    fn native_feed(&self, cell: &CellPlan, ds: &Dataset, format: Format) -> NativeFeed {
        NativeFeed::start(ds, self.threads, format, cell.key.placement, self.spec.on_parse_error)
    }

    /// The ids of the records the insert stages write, in order: one per file (blob), or
    /// one per native record (parsing the files again; nothing is kept between stages).
    pub(super) fn ids(
        &self,
        cell: &CellPlan,
        ds: &Dataset,
    ) -> Box<dyn Iterator<Item = Result<RecordId, BackendError>>> {
        match native_format(cell) {
            Some(f) => Box::new(self.native_feed(cell, ds, f).map(|r| r.map(|r| r.id))),
            None => {
                let cell = cell.clone();
                Box::new(ds.plan().map(move |e| Ok(record_id(&cell, e.index, e.is_duplicate()))))
            }
        }
    }
}

pub(super) enum Feed {
    /// One record per file.
    Blob(TryParRecords),
    /// The files parsed into native records.
    Native(NativeFeed),
}

/// Streams a dataset's records to a backend, counting rows and bytes and keeping the
/// hashes of an evenly spread read-back sample: every `sample_every`-th file, or in native
/// mode the first and the last record of every `sample_every`-th file.
pub(super) struct RecordSource {
    feed: Feed,
    cell: CellPlan,
    pub(super) rows: u64,
    pub(super) bytes: u64,
    files: u64,
    pub(super) sample: Sample,
    sample_every: u64,
    /// Native mode: the file of the previous record, and the sampled file's latest record
    /// after its first (its last one once the file ends).
    last_file: Option<u64>,
    pending_last: Option<(RecordId, [u8; 32])>,
    /// Native mode, for a deduplicating backend only: a 64-bit hash of each distinct record
    /// content sent.
    distinct: Option<HashSet<u64>>,
    /// The telemetry's counters, bumped per record pulled (the trace's progress).
    progress: Option<std::sync::Arc<crate::telemetry::Progress>>,
}

impl RecordSource {
    fn new(feed: Feed, cell: &CellPlan, readback: u64) -> RecordSource {
        let n = cell.dataset.records;
        let sample_every = if readback == 0 { 0 } else { n.div_ceil(readback.min(n)).max(1) };
        RecordSource {
            feed,
            cell: cell.clone(),
            rows: 0,
            bytes: 0,
            files: 0,
            sample: Vec::new(),
            sample_every,
            last_file: None,
            pending_last: None,
            distinct: None,
            progress: None,
        }
    }

    /// Counts the distinct record contents sent, when `on` (a backend that deduplicates)
    /// and the records are native: the lower end of the row counts such a backend may
    /// report. (In blob mode the dataset plan knows its distinct records; nothing is
    /// counted.) This keeps one 64-bit hash per distinct native record: 8 bytes per native
    /// record (plus the hash set's slack), the one thing in the feed that grows with the
    /// dataset.
    pub(super) fn count_distinct(mut self, on: bool) -> RecordSource {
        if on && matches!(self.feed, Feed::Native(_)) {
            self.distinct = Some(HashSet::new());
        }
        self
    }

    /// The distinct record contents sent so far, when counted.
    pub(super) fn distinct(&self) -> Option<u64> {
        self.distinct.as_ref().map(|d| d.len() as u64)
    }

    fn sampled(&self, file: u64) -> bool {
        self.sample_every > 0 && file.is_multiple_of(self.sample_every)
    }

    /// What native mode did, for the measurement's notes (nothing in blob mode).
    pub(super) fn native_notes(&self) -> Vec<String> {
        let Feed::Native(feed) = &self.feed else { return Vec::new() };
        let mut notes = Vec::new();
        if let Some(f) = native_format(&self.cell) {
            let schema = f.schema();
            let cols: Vec<String> = schema.columns.iter().map(|c| format!("{} {}", c.name, c.ty.name())).collect();
            notes.push(format!(
                "native: {} records from {} files ({}; schema {}: {}); logical bytes are the records' canonical \
                 encodings as sent",
                self.rows,
                self.files,
                f.describe(),
                schema.name,
                cols.join(", ")
            ));
        }
        notes.extend(feed.skipped_note());
        notes
    }
}

impl Iterator for RecordSource {
    type Item = Result<Record, BackendError>;
    fn next(&mut self) -> Option<Self::Item> {
        if interrupted() {
            return Some(Err(BackendError::msg("interrupted by a signal")));
        }
        let record = match &mut self.feed {
            Feed::Blob(par) => {
                let h = match par.next()? {
                    Ok(h) => h,
                    // A real-world source that cannot be read fails this cell's stage, nothing else.
                    Err(e) => {
                        let ds = &self.cell.dataset;
                        return Some(Err(BackendError::msg(format!(
                            "dataset {}/{}: {e}",
                            ds.payload_name(),
                            ds.grade
                        ))));
                    }
                };
                let r = h.record;
                let id = record_id(&self.cell, r.index, r.is_duplicate());
                if self.sampled(r.index) {
                    self.sample.push((id.clone(), digest(&r.data)));
                }
                self.files += 1;
                Record::blob(id, r.index, r.data)
            }
            Feed::Native(feed) => {
                let Some(item) = feed.next() else {
                    self.sample.extend(self.pending_last.take());
                    return None;
                };
                let r = match item {
                    Ok(r) => r,
                    Err(e) => return Some(Err(e)),
                };
                let first_of_file = self.last_file != Some(r.index);
                if first_of_file {
                    self.sample.extend(self.pending_last.take());
                    self.last_file = Some(r.index);
                    self.files += 1;
                }
                if self.sampled(r.index) {
                    let entry = (r.id.clone(), digest(&r.data));
                    if first_of_file {
                        self.sample.push(entry);
                    } else {
                        self.pending_last = Some(entry);
                    }
                }
                r
            }
        };
        self.rows += 1;
        self.bytes += record.data.len() as u64;
        if let Some(p) = &self.progress {
            p.add(1, record.data.len() as u64);
        }
        if let Some(set) = self.distinct.as_mut() {
            let mut h = DefaultHasher::new();
            record.data.hash(&mut h);
            set.insert(h.finish());
        }
        Some(Ok(record))
    }
}
