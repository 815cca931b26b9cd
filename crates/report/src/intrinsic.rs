//! The intrinsic ("ideal store") analysis of the datasets of a run, computed from their
//! specs (a dataset is byte-identical from its spec on any machine) and cached per spec for
//! the life of the process, so the summary and the exports of a run share one analysis.

use crate::aggregate::Source;
use dedup_lab_datagen::{Analysis, Analyzer, Dataset, DatasetSpec};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

fn cache() -> &'static Mutex<HashMap<DatasetSpec, Analysis>> {
    static CACHE: OnceLock<Mutex<HashMap<DatasetSpec, Analysis>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Analyses a generated dataset, hashing on worker threads (cached per spec).
pub fn analyze(ds: &Dataset, threads: usize) -> Analysis {
    // A real-world source that cannot be read any more leaves the ideal ratio empty.
    try_analyze(ds, threads).unwrap_or_default()
}

/// Like [`analyze`], with the error of a source that cannot be read (nothing is cached then).
pub fn try_analyze(ds: &Dataset, threads: usize) -> Result<Analysis, String> {
    if let Some(a) = cache().lock().expect("analysis cache").get(ds.spec()) {
        return Ok(a.clone());
    }
    let mut an = Analyzer::new();
    for h in ds.try_par_records(threads) {
        let h = h.map_err(|e| e.to_string())?;
        an.add(&h.record.data, Some(h.sha256));
    }
    let a = an.finish();
    cache().lock().expect("analysis cache").insert(ds.spec().clone(), a.clone());
    Ok(a)
}

/// The analysis of every distinct dataset of the sources. A spec that no longer builds
/// (e.g. written by a newer version) is left out, and its ideal ratio stays empty.
pub fn analyses(sources: &[Source], threads: usize) -> Vec<(DatasetSpec, Analysis)> {
    let mut out: Vec<(DatasetSpec, Analysis)> = Vec::new();
    for s in sources {
        for spec in &s.info.spec.datasets {
            if out.iter().any(|(d, _)| d == spec) {
                continue;
            }
            if let Ok(ds) = Dataset::new(spec.clone()) {
                out.push((spec.clone(), analyze(&ds, threads)));
            }
        }
    }
    out
}
