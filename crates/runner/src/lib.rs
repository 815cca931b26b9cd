//! Plan execution: runs cells through their stages, measures every stage the same way for
//! every system (the measuring wrapper lives here, never in a backend), reads physical
//! sizes through size probes, and persists every result the moment it exists.

pub mod cold;
pub mod engine;
pub mod footprint;
pub mod journal;
pub mod latency;
pub mod native;
pub mod probe;
pub mod prom;
pub mod spec;
pub mod telemetry;

pub use engine::{Engine, Event, RunOutcome};
pub use journal::{Journal, RunDir, RunInfo};
pub use spec::{CellPlan, RunSpec, SystemSpec};

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the binary's signal handler on SIGINT/SIGTERM; the engine checks it between
/// operations, tears the current cell down and stops.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Errors of the runner.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Backend(#[from] dedup_lab_core::BackendError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("interrupted by a signal")]
    Interrupted,
}

impl RunError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        RunError::Io { path: path.as_ref().display().to_string(), source }
    }

    /// The message with all its causes.
    pub fn chain(&self) -> String {
        match self {
            RunError::Backend(b) => b.chain(),
            other => dedup_lab_core::chain(other),
        }
    }
}
