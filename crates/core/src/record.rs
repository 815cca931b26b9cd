//! Records: the unit a backend writes, reads and deletes.

use serde::{Deserialize, Serialize};

/// Identifies a stored record inside a namespace: its key and the container it lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordId {
    /// Unique within a dataset, e.g. `r00000042`. Only `[a-z0-9]`, so every system can
    /// use it as a key, file name or object name without escaping.
    pub key: String,
    /// Index of the container of the namespace (0 unless placement is `across`).
    pub container: u8,
}

/// One record ("file" in the original study) on its way to a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: RecordId,
    /// Position in the dataset, from 0.
    pub index: u64,
    /// The payload bytes (a blob; native insertion mode encodes typed records here too).
    pub data: Vec<u8>,
}

impl Record {
    pub fn key_for(index: u64) -> String {
        format!("r{index:08}")
    }
}
