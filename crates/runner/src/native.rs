//! The record feed of native insertion mode: payload files from the generator threads,
//! parsed into typed records on a parser thread of its own, handed over in small batches
//! through a bounded channel. Memory stays bounded: the generator's few files in flight,
//! the file being parsed, and at most [`DEPTH`] batches of records.

use dedup_lab_core::{BackendError, Placement, Record, RecordId, Schema};
use dedup_lab_datagen::Dataset;
use dedup_lab_datagen::native::{Format, NativeError, OnParseError, Support, for_dataset};
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
    pub fn for_dataset(spec: &dedup_lab_datagen::DatasetSpec) -> NativePlan {
        match for_dataset(spec) {
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
            for h in ParRecords::new(&ds, threads, false) {
                let f = h.record;
                // The file as `dedup-lab generate` would write it.
                let label = format!(
                    "{}/{}/records/{}.{} ({}, seed {})",
                    spec.payload_name(),
                    spec.grade,
                    f.key(),
                    spec.extension(),
                    spec.id(),
                    spec.seed
                );
                let container = u8::from(placement == Placement::Across && f.is_duplicate());
                let file = FileRef { label: &label, index: f.index, container, data: &f.data };
                let mut stopped = false;
                let parsed = parse_file(format, &schema, &file, policy, &mut |item| {
                    match item {
                        Parsed::Record(r) => {
                            bytes += r.data.len();
                            batch.records.push(r);
                        }
                        Parsed::Skipped(e) => batch.skipped.push(e),
                    }
                    if batch.records.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES {
                        bytes = 0;
                        if tx.send(std::mem::take(&mut batch)).is_err() {
                            stopped = true; // the consumer stopped early
                            return false;
                        }
                    }
                    true
                });
                if stopped {
                    return;
                }
                if let Err(e) = parsed {
                    batch.failed = Some(e);
                    let _ = tx.send(batch);
                    return;
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

/// One payload file to parse.
pub struct FileRef<'a> {
    /// Names the file in errors.
    pub label: &'a str,
    /// Its index in the dataset.
    pub index: u64,
    /// The container its records go to.
    pub container: u8,
    pub data: &'a [u8],
}

/// What parsing a file yields, record by record.
pub enum Parsed {
    /// A native record: typed row, canonical encoding as `data`, native key.
    Record(Record),
    /// A record that could not be parsed, skipped under `on_parse_error = "skip"`.
    Skipped(NativeError),
}

/// Parses `file` into native records, handing each to `emit` (which returns false to stop
/// early). Under [`OnParseError::Fail`] the first record that cannot be parsed is the error,
/// naming the file and line; under [`OnParseError::Skip`] it is handed over as skipped.
pub fn parse_file(
    format: Format,
    schema: &Schema,
    file: &FileRef<'_>,
    policy: OnParseError,
    emit: &mut dyn FnMut(Parsed) -> bool,
) -> Result<(), BackendError> {
    for item in format.parse(file.label, file.data) {
        let out = match item {
            Ok(nr) => {
                let data = schema.encode(&nr.row).map_err(|e| {
                    BackendError::with_source(format!("native record of {} line {}", file.label, nr.line), e)
                })?;
                Parsed::Record(Record {
                    id: RecordId { key: Record::native_key_for(file.index, nr.ordinal), container: file.container },
                    index: file.index,
                    data,
                    row: Some(nr.row),
                })
            }
            Err(e) => match policy {
                OnParseError::Skip => Parsed::Skipped(e),
                OnParseError::Fail => {
                    return Err(BackendError::msg(format!(
                        "native parsing failed: {e} (set on_parse_error = \"skip\" in [matrix], or \
                         --on-parse-error skip, to count and skip such records)"
                    )));
                }
            },
        };
        if !emit(out) {
            break;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], policy: OnParseError) -> (Result<(), BackendError>, Vec<Record>, Vec<String>) {
        let format = Format::StructuredJson { token: false };
        let file =
            FileRef { label: "structured_json/U0/records/r00000002.ndjson", index: 2, container: 1, data: input };
        let (mut recs, mut skipped) = (Vec::new(), Vec::new());
        let r = parse_file(format, &format.schema(), &file, policy, &mut |p| {
            match p {
                Parsed::Record(r) => recs.push(r),
                Parsed::Skipped(e) => skipped.push(e.to_string()),
            }
            true
        });
        (r, recs, skipped)
    }

    const BAD: &[u8] = b"{\"id\":1,\"user\":\"a\"}\n{\"id\":2,\"user\n{\"id\":3}\n";

    #[test]
    fn a_bad_record_fails_naming_file_and_line() {
        let (r, recs, _) = run(BAD, OnParseError::Fail);
        let e = r.unwrap_err().to_string();
        assert!(
            e.starts_with("native parsing failed: structured_json/U0/records/r00000002.ndjson line 2: malformed JSON"),
            "{e}"
        );
        assert!(e.contains("on_parse_error = \"skip\""), "{e}");
        assert_eq!(recs.len(), 1, "the records before it were handed over");
    }

    #[test]
    fn a_bad_record_is_counted_and_skipped_when_configured() {
        let (r, recs, skipped) = run(BAD, OnParseError::Skip);
        r.unwrap();
        let keys: Vec<&str> = recs.iter().map(|r| r.id.key.as_str()).collect();
        assert_eq!(keys, ["r00000002n000000", "r00000002n000002"], "keys keep the records' positions");
        assert!(recs.iter().all(|r| r.id.container == 1 && r.index == 2 && r.row.is_some()));
        assert_eq!(recs[1].data, br#"{"id":3}"#);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("r00000002.ndjson line 2: malformed JSON"), "{skipped:?}");
    }

    #[test]
    fn invalid_utf8_in_text_fails_naming_the_line() {
        let format = Format::TextParagraphs;
        let data = b"one.\n\ntwo \xc3\x28 three.\n";
        let file = FileRef { label: "text_document/U50/records/r00000007.txt", index: 7, container: 0, data };
        let e = parse_file(format, &format.schema(), &file, OnParseError::Fail, &mut |_| true).unwrap_err();
        assert!(e.to_string().contains("r00000007.txt line 3: invalid UTF-8"), "{e}");
    }
}
