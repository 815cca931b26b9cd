//! Dataset specifications and their validation.

use dedup_lab_core::{Grade, ParseError, PayloadType, format_bytes, parse_bytes};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The seed used when none is given (documented in the README).
pub const DEFAULT_SEED: u64 = 20_240_501;
/// The original study's record ("file") size.
pub const DEFAULT_RECORD_SIZE: u64 = 512 * 1024;
/// Smallest record: room for one JSON line or document.
pub const MIN_RECORD_SIZE: u64 = 64;
/// Largest record: one value must fit comfortably in memory and in every system.
pub const MAX_RECORD_SIZE: u64 = 1 << 30;
/// Most records a dataset may have.
pub const MAX_RECORDS: u64 = 100_000_000;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Invalid(String),
    /// The I/O error is part of the message, not a `source`: printing the error chain
    /// (`{:#}`) would otherwise repeat it.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A signal (SIGINT/SIGTERM) stopped the work.
    #[error("interrupted by a signal")]
    Interrupted,
}

impl DatasetError {
    pub fn io(path: impl AsRef<std::path::Path>, error: std::io::Error) -> Self {
        DatasetError::Io { path: path.as_ref().display().to_string(), error }
    }
}

/// Size of each record: fixed, or drawn uniformly from an inclusive range per original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordSize {
    Fixed(u64),
    Range { min: u64, max: u64 },
}

impl RecordSize {
    pub fn max(self) -> u64 {
        match self {
            RecordSize::Fixed(s) => s,
            RecordSize::Range { max, .. } => max,
        }
    }
}

impl fmt::Display for RecordSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordSize::Fixed(s) => write!(f, "{s}"),
            RecordSize::Range { min, max } => write!(f, "{min}..{max}"),
        }
    }
}

impl FromStr for RecordSize {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let size = match s.split_once("..") {
            Some((a, b)) => {
                RecordSize::Range { min: parse_bytes("record size", a)?, max: parse_bytes("record size", b)? }
            }
            None => RecordSize::Fixed(parse_bytes("record size", s)?),
        };
        let (min, max) = match size {
            RecordSize::Fixed(v) => (v, v),
            RecordSize::Range { min, max } => (min, max),
        };
        if min > max {
            return Err(ParseError::new("record size", s, "the range's lower bound is above its upper bound"));
        }
        if min < MIN_RECORD_SIZE || max > MAX_RECORD_SIZE {
            return Err(ParseError::new(
                "record size",
                s,
                format!(
                    "a record must be between {} and {} (e.g. 512KiB or 4KiB..1MiB)",
                    format_bytes(MIN_RECORD_SIZE),
                    format_bytes(MAX_RECORD_SIZE)
                ),
            ));
        }
        Ok(size)
    }
}

impl Serialize for RecordSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Everything that defines a dataset's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DatasetSpec {
    /// The synthetic payload type, or [`PayloadType::RealWorld`] with `real_world` set.
    pub payload: PayloadType,
    pub grade: Grade,
    pub records: u64,
    pub record_size: RecordSize,
    pub seed: u64,
    /// The source and its identity, for a real-world dataset (absent for synthetic ones, so
    /// their specs serialise as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_world: Option<crate::realworld::RealWorldSpec>,
}

impl DatasetSpec {
    pub fn validate(&self) -> Result<(), DatasetError> {
        match (&self.real_world, self.payload) {
            (Some(rw), PayloadType::RealWorld) => {
                if let Some(e) = &rw.error {
                    return Err(DatasetError::Invalid(e.clone()));
                }
                if let RecordSize::Range { .. } = self.record_size {
                    return Err(DatasetError::Invalid(format!(
                        "real-world dataset {}: records have one fixed size, not the range {}",
                        rw.name, self.record_size
                    )));
                }
            }
            (None, PayloadType::RealWorld) => {
                return Err(DatasetError::Invalid("payload type real_world needs a source".into()));
            }
            (Some(_), p) => {
                return Err(DatasetError::Invalid(format!("a {p} dataset cannot have a real-world source")));
            }
            (None, _) => {}
        }
        if self.records == 0 || self.records > MAX_RECORDS {
            return Err(ParseError::new(
                "record count",
                self.records.to_string(),
                format!("a dataset needs between 1 and {MAX_RECORDS} records"),
            )
            .into());
        }
        // Re-run the size checks for specs built in code or read from a manifest.
        self.record_size.to_string().parse::<RecordSize>()?;
        Ok(())
    }

    /// A short stable identifier, e.g. `random_binary-U50-n16-s524288-seed20240501`; a
    /// real-world one ends with a digest of its source's identity (`-src1a2b3c4d5e6f`).
    pub fn id(&self) -> String {
        let base =
            format!("{}-{}-n{}-s{}-seed{}", self.payload_name(), self.grade, self.records, self.record_size, self.seed);
        match &self.real_world {
            Some(rw) => format!("{base}-src{}", rw.identity()),
            None => base,
        }
    }

    /// The payload-type name the dataset is selected and reported by: the synthetic type's
    /// name, or the real-world source's name (e.g. `nasa_image`).
    pub fn payload_name(&self) -> &str {
        match &self.real_world {
            Some(rw) => &rw.name,
            None => self.payload.name(),
        }
    }

    /// File extension of the dataset's record files.
    pub fn extension(&self) -> &'static str {
        self.payload.extension()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes() {
        assert_eq!("512KiB".parse::<RecordSize>().unwrap(), RecordSize::Fixed(524_288));
        assert_eq!("4KiB..1MiB".parse::<RecordSize>().unwrap(), RecordSize::Range { min: 4096, max: 1 << 20 });
        for bad in ["0", "10", "2GiB", "1MiB..4KiB", "abc"] {
            let e = bad.parse::<RecordSize>().unwrap_err().to_string();
            assert!(e.contains("record size"), "{bad}: {e}");
        }
    }
}
