//! Stages and cells: the units of the experiment matrix.

use crate::error::ParseError;
use crate::grade::Grade;
use crate::system::SystemKind;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn name(self) -> &'static str { match self { $($name::$v => $s),+ } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| {
                    let valid: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
                    ParseError::new($what, s, format!("valid values: {}", valid.join(", ")))
                })
            }
        }
    };
}

named_enum!(
    /// The stages of a cell, in the order they run.
    Stage, "stage", {
        /// Load the whole dataset through the system's bulk path.
        BulkInsert => "bulk_insert",
        /// On an emptied namespace, insert every record as its own operation.
        PerfileInsert => "perfile_insert",
        /// Delete every record of `perfile_insert` as its own operation.
        PerfileDelete => "perfile_delete",
        /// The system's space-reclaim operation.
        Maintenance => "maintenance",
        /// Re-insert the deleted records after maintenance (opt-in).
        Refill => "refill",
    }
);

impl Stage {
    /// The stages run when none are selected.
    pub const DEFAULT: [Stage; 4] = [Stage::BulkInsert, Stage::PerfileInsert, Stage::PerfileDelete, Stage::Maintenance];

    /// Stages that write records (EDR is defined for them).
    pub fn is_insert(self) -> bool {
        matches!(self, Stage::BulkInsert | Stage::PerfileInsert | Stage::Refill)
    }

    /// Stages that run one operation per record (latency histogram recorded).
    pub fn is_per_record(self) -> bool {
        matches!(self, Stage::PerfileInsert | Stage::PerfileDelete | Stage::Refill)
    }
}

named_enum!(
    /// Where duplicates land: in the container of their original, or in the other one.
    Placement, "placement", { Within => "within", Across => "across" }
);

named_enum!(
    /// Cache state before each stage.
    CacheState, "cache state", { Warm => "warm", Cold => "cold" }
);

named_enum!(
    /// Whether a payload file is stored as one value or parsed into typed records.
    InsertionMode, "insertion mode", { Blob => "blob", Native => "native" }
);

/// One cell of the matrix: everything that identifies a measurement except the stage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CellKey {
    pub system: SystemKind,
    /// A system-specific configuration (e.g. `external` TOAST storage); `default` otherwise.
    pub variant: String,
    pub payload: String,
    pub grade: Grade,
    pub mode: InsertionMode,
    pub placement: Placement,
    pub cache: CacheState,
    /// Repetition number, from 1.
    pub run: u32,
}

impl CellKey {
    /// The system and variant as one label, e.g. `postgresql/external`.
    pub fn system_label(&self) -> String {
        if self.variant == "default" { self.system.to_string() } else { format!("{}/{}", self.system, self.variant) }
    }
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} run{}",
            self.system_label(),
            self.payload,
            self.grade,
            self.mode,
            self.placement,
            self.cache,
            self.run
        )
    }
}
