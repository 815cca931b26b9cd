//! Size probes: where the physical size of a namespace comes from.
//!
//! - `fs`: allocated bytes (`st_blocks × 512`) of the backend's data paths, each inode once.
//! - `internal`: the system's own total for the namespace ([`Backend::sizes`]).
//!
//! Every reading settles the backend first and is repeated until two consecutive readings
//! agree (bounded), so a number is never taken while the system is still writing. A failed
//! reading is an error, never a number (the original fed a failed query's −1 into deltas).

use crate::RunError;
use dedup_lab_core::{Backend, BackendError, Namespace};
use std::time::Duration;

const MAX_READS: usize = 8;
const BETWEEN_READS: Duration = Duration::from_millis(25);

/// How to read the physical size of a system's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `fs` when the backend has local data paths, `internal` otherwise.
    Auto,
    Fs,
    Internal,
}

impl std::str::FromStr for ProbeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ProbeKind::Auto),
            "fs" => Ok(ProbeKind::Fs),
            "internal" => Ok(ProbeKind::Internal),
            other => Err(format!("invalid size probe {other:?}: valid probes: auto, fs, internal")),
        }
    }
}

pub use dedup_lab_backends::local::allocated_bytes;

/// A configured probe bound to one backend.
pub struct Probe {
    kind: ProbeKind,
}

impl Probe {
    pub fn new(kind: ProbeKind) -> Probe {
        Probe { kind }
    }

    fn resolve(
        &self,
        backend: &mut dyn Backend,
        ns: &Namespace,
    ) -> Result<(ProbeKind, Vec<std::path::PathBuf>), BackendError> {
        let paths = match self.kind {
            ProbeKind::Internal => Vec::new(),
            _ => backend.data_paths(ns)?,
        };
        let kind = match self.kind {
            ProbeKind::Auto if paths.is_empty() => ProbeKind::Internal,
            ProbeKind::Auto => ProbeKind::Fs,
            ProbeKind::Fs if paths.is_empty() => {
                return Err(BackendError::msg(format!(
                    "{}: the fs size probe needs the system's local data directory; set its `data_dir` or use probe = \"internal\"",
                    backend.kind()
                )));
            }
            k => k,
        };
        Ok((kind, paths))
    }

    /// The method label for measurements, e.g. `fs` or `internal`.
    pub fn method(&self, backend: &mut dyn Backend, ns: &Namespace) -> Result<String, RunError> {
        Ok(match self.resolve(backend, ns)?.0 {
            ProbeKind::Fs => "fs",
            _ => "internal",
        }
        .to_string())
    }

    fn read_once(&self, backend: &mut dyn Backend, ns: &Namespace) -> Result<u64, RunError> {
        let (kind, paths) = self.resolve(backend, ns)?;
        match kind {
            ProbeKind::Fs => allocated_bytes(&paths).map_err(|e| {
                RunError::Backend(BackendError::with_source(format!("{}: fs size probe", backend.kind()), e))
            }),
            _ => backend.sizes(ns)?.total_bytes.ok_or_else(|| {
                RunError::Backend(BackendError::msg(format!(
                    "{}: the system reports no total size for the namespace; use probe = \"fs\"",
                    backend.kind()
                )))
            }),
        }
    }

    /// Settles the backend, then reads until two consecutive readings agree.
    pub fn read(&self, backend: &mut dyn Backend, ns: &Namespace) -> Result<u64, RunError> {
        backend.settle(ns)?;
        let mut last = self.read_once(backend, ns)?;
        for _ in 1..MAX_READS {
            std::thread::sleep(BETWEEN_READS);
            let next = self.read_once(backend, ns)?;
            if next == last {
                return Ok(next);
            }
            last = next;
        }
        Ok(last)
    }
}
