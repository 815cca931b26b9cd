//! Datasets for dedup-lab: deterministic synthetic payloads with an exact share of
//! duplicates, dataset directories with manifests, and intrinsic analysis.
//!
//! Determinism: `(seed, payload type, grade, record count, record size)` defines every byte.
//! A record's content depends only on the seed, the payload type and the index of the
//! *original* record it is (or copies), so a duplicate is regenerated, never stored, and
//! records can be produced in any order on any number of threads. Memory is O(record size)
//! plus a plan of 8 bytes per original record.

pub mod analyze;
pub mod dir;
pub mod native;
pub mod par;
pub mod payload;
pub mod plan;
pub mod realworld;
pub mod spec;
mod words;

pub use analyze::{ANALYSIS_FORMAT, Analysis, Analyzer, ChunkStats, ContainerStats};
pub use plan::{DupPlan, PlanEntry};
pub use spec::{DatasetError, DatasetSpec, RecordSize};

use sha2::{Digest, Sha256};

/// A dataset: a validated spec that can stream its records.
#[derive(Debug, Clone)]
pub struct Dataset {
    spec: DatasetSpec,
}

/// One generated record.
#[derive(Debug, Clone)]
pub struct GeneratedRecord {
    pub index: u64,
    /// Index of the original this record is (itself) or copies.
    pub source: u64,
    pub data: Vec<u8>,
}

impl GeneratedRecord {
    pub fn key(&self) -> String {
        dedup_lab_core::Record::key_for(self.index)
    }

    pub fn is_duplicate(&self) -> bool {
        self.source != self.index
    }
}

impl Dataset {
    pub fn new(spec: DatasetSpec) -> Result<Dataset, DatasetError> {
        spec.validate()?;
        Ok(Dataset { spec })
    }

    pub fn spec(&self) -> &DatasetSpec {
        &self.spec
    }

    /// Which record copies which, with sizes; no payload is generated.
    pub fn plan(&self) -> DupPlan {
        DupPlan::new(&self.spec)
    }

    /// Whether the records are read from a real-world source.
    pub fn is_real_world(&self) -> bool {
        self.spec.real_world.is_some()
    }

    /// The records in order, generated one at a time. A real-world dataset is read on a
    /// reader thread; a read error panics (use [`Dataset::try_par_records`] to handle it).
    pub fn records(&self) -> Box<dyn Iterator<Item = GeneratedRecord> + Send + '_> {
        if self.is_real_world() {
            return Box::new(par::ParRecords::new(self, 1, false).map(|h| h.record));
        }
        Box::new(self.plan().map(move |e| {
            let mut data = Vec::with_capacity(e.size as usize);
            self.fill(e.source, e.size, &mut data);
            GeneratedRecord { index: e.index, source: e.source, data }
        }))
    }

    /// Writes the content of original record `source` (of `size` bytes) into `buf`.
    /// Synthetic datasets only: real-world bytes come from their source.
    pub fn fill(&self, source: u64, size: u64, buf: &mut Vec<u8>) {
        buf.clear();
        payload::generate(self.spec.payload, self.spec.seed, source, size as usize, buf);
    }

    /// Total logical bytes of the dataset (computed from the plan, no payload generated;
    /// for a real-world dataset, as planned when its source was scanned).
    pub fn total_bytes(&self) -> u64 {
        if let Some(rw) = &self.spec.real_world {
            return rw.bytes;
        }
        match self.spec.record_size {
            RecordSize::Fixed(s) => s * self.spec.records,
            RecordSize::Range { .. } => self.plan().map(|e| e.size).sum(),
        }
    }
}

/// SHA-256 of a byte slice as lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Derives 32 bytes of PRNG seed from a domain tag and numbers, so that different uses of
/// the same user seed never share a random stream.
pub(crate) fn derive_seed(domain: &str, parts: &[u64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"dedup-lab/v1/");
    h.update(domain.as_bytes());
    for p in parts {
        h.update(p.to_le_bytes());
    }
    h.finalize().into()
}

impl Dataset {
    /// The records in order with their SHA-256, generated on `threads` worker threads.
    /// A real-world dataset's read error panics: use [`Dataset::try_par_records`] for those.
    pub fn par_records(&self, threads: usize) -> par::ParRecords {
        par::ParRecords::new(self, threads, true)
    }

    /// The records in order with their SHA-256 (and, for real-world records, their origin),
    /// or the error that stopped them (a real-world source that cannot be read, changed, or
    /// a signal); nothing follows an error.
    pub fn try_par_records(&self, threads: usize) -> par::TryParRecords {
        par::TryParRecords::new(self, threads, true)
    }

    /// [`Dataset::try_par_records`] without the SHA-256 (`sha256` is `None`): for consumers
    /// that need only the bytes. The runner's feed hashes just its read-back sample, so a
    /// stage does not spend a core hashing every record for nothing.
    pub fn try_par_records_unhashed(&self, threads: usize) -> par::TryParRecords {
        par::TryParRecords::new(self, threads, false)
    }
}

/// SHA-256 of a byte slice.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}
