//! The [`Backend`] trait: the one surface every storage system implements.
//!
//! The required surface is small; optional abilities have defaults that say honestly what
//! was not done. Backends contain no timing code: the runner's measuring wrapper times every
//! call.

use crate::cell::Stage;
use crate::error::BackendError;
use crate::namespace::{LabName, Namespace};
use crate::record::{Record, RecordId};
use crate::system::SystemKind;
use crate::value::Schema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Records streamed into a bulk insert. Items are errors when the source fails mid-way
/// (a real-world file that cannot be read).
pub type RecordStream<'a> = &'a mut dyn Iterator<Item = Result<Record, BackendError>>;

/// What the system itself reports about the size of the lab namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InternalSizes {
    /// The system's own total for the namespace, when it has one.
    pub total_bytes: Option<u64>,
    /// Further figures (per container, page counts, part counts, …).
    pub details: BTreeMap<String, serde_json::Value>,
}

/// What a maintenance step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceReport {
    /// The operation, e.g. `VACUUM`, or `none: <why>` when the system has none.
    pub action: String,
}

/// What a preflight check found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreflightReport {
    pub server_version: Option<String>,
    /// Lines describing each check that passed.
    pub checks: Vec<String>,
}

/// The operations the stages are made of; a backend may declare one without meaning on it
/// ([`Backend::unsupported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    BulkInsert,
    InsertOne,
    DeleteOne,
    Maintenance,
}

impl Operation {
    /// The operation stage `stage` is made of.
    pub fn of(stage: Stage) -> Operation {
        match stage {
            Stage::BulkInsert => Operation::BulkInsert,
            Stage::PerfileInsert | Stage::Refill => Operation::InsertOne,
            Stage::PerfileDelete => Operation::DeleteOne,
            Stage::Maintenance => Operation::Maintenance,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::BulkInsert => "bulk insert",
            Operation::InsertOne => "per-record insert",
            Operation::DeleteOne => "per-record delete",
            Operation::Maintenance => "maintenance",
        }
    }
}

/// A storage system under test, bound to one endpoint and one variant.
pub trait Backend: Send {
    fn kind(&self) -> SystemKind;

    /// The variant label (`default` unless the system has configuration variants).
    fn variant(&self) -> &str {
        "default"
    }

    /// Where this backend writes, for messages (never contains a secret).
    fn endpoint(&self) -> String;

    /// Connect, authenticate, create and drop the namespace, check consistency.
    fn preflight(&mut self, ns: &Namespace) -> Result<PreflightReport, BackendError> {
        self.reset(ns)?;
        self.teardown(ns)?;
        Ok(PreflightReport {
            server_version: self.server_version().ok(),
            checks: vec!["created and dropped the lab namespace".into()],
        })
    }

    fn server_version(&mut self) -> Result<String, BackendError> {
        Ok(String::new())
    }

    /// Make the namespace exist and be empty (idempotent).
    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError>;

    /// Load all records through the bulk path; returns the row count the system reports.
    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError>;

    /// Insert one record as its own operation; returns the rows the system reports.
    fn insert_one(&mut self, ns: &Namespace, record: &Record) -> Result<u64, BackendError>;

    /// Delete one record as its own operation; returns the rows the system reports.
    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError>;

    /// Read one record back (for verification).
    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError>;

    /// The system's space-reclaim operation.
    fn maintenance(&mut self, ns: &Namespace) -> Result<MaintenanceReport, BackendError>;

    /// Make written data durable so a size reading is stable.
    fn settle(&mut self, _ns: &Namespace) -> Result<(), BackendError> {
        Ok(())
    }

    /// Records stored in the namespace.
    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError>;

    /// The system's own size figures for the namespace.
    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError>;

    /// Drop the namespace and everything in it.
    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError>;

    /// Directories holding the namespace's data on this machine, for the `fs` probe.
    fn data_paths(&mut self, _ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        Ok(Vec::new())
    }

    /// How the backend stores typed records of `schema` (native insertion mode, when the
    /// namespace carries a schema), for the measurement notes. A backend without typed
    /// storage ignores the schema and stores each record's `data`, as this default says.
    fn native_storage(&self, _schema: &Schema) -> String {
        "one value per record: its canonical encoding (no typed storage)".into()
    }

    /// `Some(reason)` when `op` has no meaningful form on this system or variant (a log
    /// that cannot delete one record, a store without a reclaim operation). The engine then
    /// journals the stage as unsupported, with the reason, instead of running it; it counts
    /// as neither valid nor invalid.
    fn unsupported(&self, _op: Operation) -> Option<String> {
        None
    }

    /// What the backend has to say about the stage just measured, beyond its figures: a
    /// fallback path it took, why two of its size figures differ. The engine adds these to
    /// the stage's notes after measuring; the default has nothing to say.
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// `Some(how)` when this variant removes duplicate records by design (a table engine
    /// that collapses equal rows on merge, a log compacted by content hash). Row counts are
    /// then checked against the range from the number of distinct records to the number
    /// sent, instead of against the number sent.
    fn deduplicates(&self) -> Option<String> {
        None
    }

    /// What exists of lab `lab` in the store, one line per object (schema, table, key
    /// range, topic, bucket, directory), for `cleanup`. Only objects inside the lab
    /// namespace are listed. The default lists the existing data paths of a two-container
    /// namespace.
    fn inventory(&mut self, lab: &LabName) -> Result<Vec<String>, BackendError> {
        let ns = Namespace::new(lab, 2);
        Ok(self.data_paths(&ns)?.into_iter().filter(|p| p.exists()).map(|p| p.display().to_string()).collect())
    }

    /// Drops everything [`inventory`](Backend::inventory) lists. The default tears down a
    /// two-container namespace.
    fn drop_lab(&mut self, lab: &LabName) -> Result<(), BackendError> {
        self.teardown(&Namespace::new(lab, 2))
    }

    /// Close and reopen the store so the next stage starts cold. Returns what was done, or
    /// `None` when the backend cannot do it.
    fn reopen(&mut self) -> Result<Option<String>, BackendError> {
        Ok(None)
    }
}
