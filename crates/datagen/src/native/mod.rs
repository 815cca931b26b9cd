//! Native insertion mode: parsing payload files into typed records.
//!
//! In blob mode a payload file is one value. In native mode it is parsed into the records it
//! holds, each a typed row of the payload type's [`Schema`], written through the system's
//! natural data model (typed columns, `jsonb`, one key or object per record):
//!
//! | payload type | records | schema |
//! |---|---|---|
//! | `structured_json` | one per NDJSON line | `id` int, `user`, `email` text, `amount` decimal(2), `currency`, `status`, `country` text, `score` int, `created_at` timestamp (+ `token` text, see [`for_dataset`]) |
//! | `jsonb_documents` | one per file (the document) | `doc` json |
//! | `text_document` | one per paragraph (text between blank lines) | `body` text |
//! | `uuid_keys` | one per `<uuid>,<value>` line | `key` uuid, `value` int |
//! | `random_binary` | one per 4 KiB chunk (the last may be shorter) | `chunk` bytes |
//!
//! Parsing streams: a [`Format`] reads any [`BufRead`] and yields one record at a time, so
//! memory is one record plus the reader's buffer. Parsing is deterministic, so a duplicated
//! file yields the same rows as its original (under different keys).
//!
//! A payload type without a natural record structure (an image, a video) has no format:
//! [`support`] says why, and the runner stores it as blob with that note. That is also the
//! hook for the real-world types: NDJSON events, CSV rows, number files and text lines get
//! a [`Format`] each when their ingestion arrives.

mod readers;

pub use readers::Records;

use dedup_lab_core::{Column, ColumnType, ParseError, RowEncoding, Schema, Value};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::BufRead;
use std::str::FromStr;

/// Size of a `random_binary` native record.
pub const BINARY_CHUNK: usize = 4096;

/// How the files of one payload type are parsed into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NDJSON of flat objects with the `structured_json` fields: one typed row per line.
    /// `token`: the schema has a nullable `token` column, for the short `{"id","token"}`
    /// object the generator writes into a record too small for one full line.
    StructuredJson { token: bool },
    /// One JSON document per file: one `json` value.
    JsonDocument,
    /// Text: one record per paragraph (the text between `\n\n` separators).
    TextParagraphs,
    /// `<uuid>,<integer>` lines: one record per line.
    UuidLines,
    /// Fixed-size binary chunks.
    BinaryChunks { size: usize },
}

/// Whether a payload type has a native format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Native(Format),
    /// Stored as blob in native mode; the reason goes into the measurement's notes.
    Blob(String),
}

/// The native format of payload type `payload`, or why it has none.
pub fn support(payload: &str) -> Support {
    let later = |what: &str| {
        Support::Blob(format!(
            "native mode: {payload} ({what}) has no native parser yet; it arrives with real-world ingestion, \
             so the files were stored as blobs"
        ))
    };
    match payload {
        "structured_json" => Support::Native(Format::StructuredJson { token: false }),
        "jsonb_documents" => Support::Native(Format::JsonDocument),
        "text_document" => Support::Native(Format::TextParagraphs),
        "uuid_keys" => Support::Native(Format::UuidLines),
        "random_binary" => Support::Native(Format::BinaryChunks { size: BINARY_CHUNK }),
        "nasa_image" | "blender_video" => Support::Blob(format!(
            "native mode: {payload} is {} without a record structure, so its files were stored as blobs",
            if payload == "nasa_image" { "an image" } else { "a video" }
        )),
        "github_events" => later("NDJSON events"),
        "bank_transactions" => later("spreadsheet rows"),
        "numeric_dataset" => later("number files"),
        "text_corpus" | "gutenberg_text" => later("text lines"),
        other => Support::Blob(format!(
            "native mode: payload type {other} has no native format, so its files were stored as blobs"
        )),
    }
}

/// Records smaller than this may be too small for one `structured_json` line (at most about
/// 210 bytes); the generator then writes a short `{"id":…,"token":…}` object instead.
pub const SMALL_JSON_RECORD: u64 = 512;

/// The native format of a dataset's payload type: [`support`], with the `token` column of
/// `structured_json` only when the dataset's records can be small enough to need it (a
/// column that is always NULL is not free: a PostgreSQL row with a NULL carries a null
/// bitmap, 8 bytes more per row after alignment).
pub fn for_dataset(spec: &crate::DatasetSpec) -> Support {
    let min = match spec.record_size {
        crate::RecordSize::Fixed(s) => s,
        crate::RecordSize::Range { min, .. } => min,
    };
    match support(spec.payload_name()) {
        Support::Native(Format::StructuredJson { .. }) => {
            Support::Native(Format::StructuredJson { token: min < SMALL_JSON_RECORD })
        }
        other => other,
    }
}

fn col(name: &str, ty: ColumnType) -> Column {
    Column { name: name.into(), ty }
}

impl Format {
    /// What a file becomes, for notes.
    pub fn describe(self) -> String {
        match self {
            Format::StructuredJson { .. } => "one typed row per NDJSON line".into(),
            Format::JsonDocument => "one JSON document per file".into(),
            Format::TextParagraphs => "one text row per paragraph".into(),
            Format::UuidLines => "one (uuid, int) row per line".into(),
            Format::BinaryChunks { size } => format!("one bytes row per {size}-byte chunk"),
        }
    }

    /// The schema of the records.
    pub fn schema(self) -> Schema {
        use ColumnType::*;
        let (name, columns, encoding) = match self {
            Format::StructuredJson { token } => (
                "structured_json",
                vec![
                    col("id", Int),
                    col("user", Text),
                    col("email", Text),
                    col("amount", Decimal { scale: 2 }),
                    col("currency", Text),
                    col("status", Text),
                    col("country", Text),
                    col("score", Int),
                    col("created_at", Timestamp),
                ]
                .into_iter()
                .chain(token.then(|| col("token", Text)))
                .collect(),
                RowEncoding::JsonObject,
            ),
            Format::JsonDocument => ("jsonb_documents", vec![col("doc", Json)], RowEncoding::Raw),
            Format::TextParagraphs => ("text_document", vec![col("body", Text)], RowEncoding::Raw),
            Format::UuidLines => ("uuid_keys", vec![col("key", Uuid), col("value", Int)], RowEncoding::Csv),
            Format::BinaryChunks { .. } => ("random_binary", vec![col("chunk", Bytes)], RowEncoding::Raw),
        };
        Schema::new(name, columns, encoding).expect("built-in schemas are valid")
    }

    /// Parses the file read from `reader`; `file` names it in errors. After an error the
    /// iterator goes on with the next record (a document format ends), so a caller may skip
    /// bad records.
    pub fn parse<R: BufRead>(self, file: &str, reader: R) -> Records<R> {
        Records::new(self, file, reader)
    }
}

/// One record parsed from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeRecord {
    /// Position of the record in its file, from 0 (records that failed to parse count too,
    /// so keys do not depend on the parse-error policy).
    pub ordinal: u64,
    /// Line of the file where the record starts, from 1 (0 for binary chunks).
    pub line: u64,
    pub row: Vec<Value>,
}

/// A record that cannot be parsed: the file, the line (0: not a line-based format) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct NativeError {
    pub file: String,
    pub line: u64,
    pub message: String,
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{} line {}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// What to do with a record that cannot be parsed (config key `on_parse_error`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnParseError {
    /// Stop the stage with an error naming the file and line (the default).
    #[default]
    Fail,
    /// Count the record, note the first errors, and go on without it.
    Skip,
}

impl OnParseError {
    pub fn name(self) -> &'static str {
        match self {
            OnParseError::Fail => "fail",
            OnParseError::Skip => "skip",
        }
    }
}

impl fmt::Display for OnParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OnParseError {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fail" => Ok(OnParseError::Fail),
            "skip" => Ok(OnParseError::Skip),
            _ => Err(ParseError::new("on_parse_error", s, "valid values: fail, skip")),
        }
    }
}

#[cfg(test)]
mod tests;
