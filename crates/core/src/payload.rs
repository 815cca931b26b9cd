//! Synthetic payload types.

use crate::error::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The five synthetic payload types of the study (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadType {
    /// Bytes from xoshiro256**: incompressible.
    RandomBinary,
    /// NDJSON of flat records: compressible, repetitive keys.
    StructuredJson,
    /// Natural-language-like text from a word-frequency model.
    TextDocument,
    /// Newline-separated UUID v4 keys with small values.
    UuidKeys,
    /// One nested JSON document per record.
    JsonbDocuments,
    /// Records read from real files (a named source: images, videos, archives, …); the
    /// dataset spec names the source. Not one of [`PayloadType::ALL`]: real-world types are
    /// selected by their own names.
    RealWorld,
}

impl PayloadType {
    pub const ALL: [PayloadType; 5] = [
        PayloadType::RandomBinary,
        PayloadType::StructuredJson,
        PayloadType::TextDocument,
        PayloadType::UuidKeys,
        PayloadType::JsonbDocuments,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PayloadType::RandomBinary => "random_binary",
            PayloadType::StructuredJson => "structured_json",
            PayloadType::TextDocument => "text_document",
            PayloadType::UuidKeys => "uuid_keys",
            PayloadType::JsonbDocuments => "jsonb_documents",
            PayloadType::RealWorld => "real_world",
        }
    }

    /// File extension used when a dataset is written to disk.
    pub fn extension(self) -> &'static str {
        match self {
            PayloadType::RandomBinary => "bin",
            PayloadType::StructuredJson => "ndjson",
            PayloadType::TextDocument => "txt",
            PayloadType::UuidKeys => "csv",
            PayloadType::JsonbDocuments => "json",
            PayloadType::RealWorld => "bin",
        }
    }

    /// Whether a record of this type is a JSON document that a system may store as JSON.
    pub fn is_json_document(self) -> bool {
        matches!(self, PayloadType::JsonbDocuments)
    }

    /// A stable small number used when deriving per-type seeds (never reorder).
    pub fn tag(self) -> u64 {
        match self {
            PayloadType::RandomBinary => 1,
            PayloadType::StructuredJson => 2,
            PayloadType::TextDocument => 3,
            PayloadType::UuidKeys => 4,
            PayloadType::JsonbDocuments => 5,
            PayloadType::RealWorld => 6,
        }
    }

    pub fn valid_names() -> String {
        Self::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for PayloadType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PayloadType {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ParseError::new("payload type", s, format!("valid payload types: {}", Self::valid_names())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lists_valid_names() {
        for p in PayloadType::ALL {
            assert_eq!(p.name().parse::<PayloadType>().unwrap(), p);
        }
        let e = "random".parse::<PayloadType>().unwrap_err().to_string();
        assert!(e.contains("\"random\"") && e.contains("jsonb_documents"), "{e}");
    }
}
