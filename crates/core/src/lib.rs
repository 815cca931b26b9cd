//! Plain data and traits shared by every dedup-lab crate.
//!
//! Nothing here does I/O: the types describe *what* an experiment is (systems, payloads,
//! grades, stages, cells, records, namespaces) and *what* a measurement contains, and the
//! [`Backend`] trait is the one surface every storage system implements.

pub mod backend;
pub mod cell;
pub mod error;
pub mod grade;
pub mod measurement;
pub mod namespace;
pub mod payload;
pub mod record;
pub mod size;
pub mod storage_sim;
pub mod system;
pub mod time;
pub mod value;

pub use backend::{Backend, InternalSizes, MaintenanceReport, Operation, PreflightReport, RecordStream};
pub use cell::{CacheState, CellKey, InsertionMode, Placement, Stage};
pub use error::{BackendError, ErrorClass, ParseError, ResultExt, chain};
pub use grade::Grade;
pub use measurement::{CellStatus, Footprint, JournalLine, LatencySummary, Measurement, Physical};
pub use namespace::{LabName, Namespace};
pub use payload::PayloadType;
pub use record::{Record, RecordId};
pub use size::{format_bytes, parse_bytes};
pub use storage_sim::{BlockSim, RefBucket, StorageSim};
pub use system::SystemKind;
pub use value::{Column, ColumnType, RowEncoding, RowError, Schema, Value};
