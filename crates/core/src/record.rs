//! Records: the unit a backend writes, reads and deletes.

use crate::value::Value;
use serde::{Deserialize, Serialize};

/// Identifies a stored record inside a namespace: its key and the container it lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordId {
    /// Unique within a dataset, e.g. `r00000042` (a file) or `r00000042n000017` (the 18th
    /// native record parsed from file 42). Only `[a-z0-9]`, so every system can use it as a
    /// key, file name or object name without escaping.
    pub key: String,
    /// Index of the container of the namespace (0 unless placement is `across`).
    pub container: u8,
}

/// One record on its way to a backend: a whole payload file ("file" in the original study,
/// blob insertion mode) or one typed record parsed from a file (native insertion mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: RecordId,
    /// Position in the dataset, from 0: of the record, or of the file a native record was
    /// parsed from.
    pub index: u64,
    /// The payload bytes: the file (blob), or the canonical encoding of `row` (native;
    /// see [`crate::Schema::encode`]). What logical bytes count and read-back compares.
    pub data: Vec<u8>,
    /// The typed row of a native record, in the order of the namespace's schema columns.
    /// Backends with typed storage write it into typed columns; others store `data`.
    pub row: Option<Vec<Value>>,
}

impl Record {
    /// A blob record (no typed row).
    pub fn blob(id: RecordId, index: u64, data: Vec<u8>) -> Record {
        Record { id, index, data, row: None }
    }

    /// The key of record (file) `index`: `r00000042`.
    pub fn key_for(index: u64) -> String {
        format!("r{index:08}")
    }

    /// The key of the native record at position `ordinal` (from 0) of file `file`:
    /// `r00000003n000017`.
    pub fn native_key_for(file: u64, ordinal: u64) -> String {
        format!("r{file:08}n{ordinal:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercase_alphanumeric() {
        assert_eq!(Record::key_for(42), "r00000042");
        assert_eq!(Record::native_key_for(3, 17), "r00000003n000017");
        assert_eq!(Record::native_key_for(3, 12_345_678), "r00000003n12345678");
        for k in [Record::key_for(7), Record::native_key_for(123_456_789, 0)] {
            assert!(k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{k}");
        }
    }
}
