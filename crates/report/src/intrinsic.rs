//! The intrinsic ("ideal store") analysis of the datasets of a run, computed from their
//! specs (a dataset is byte-identical from its spec on any machine) and cached per spec for
//! the life of the process, so the summary and the exports of a run share one analysis.

use crate::aggregate::Source;
use dedup_lab_datagen::{Analysis, Analyzer, Dataset, DatasetError, DatasetSpec};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

fn cache() -> &'static Mutex<HashMap<DatasetSpec, Analysis>> {
    static CACHE: OnceLock<Mutex<HashMap<DatasetSpec, Analysis>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Analyses a dataset, hashing on worker threads (cached per spec). A real-world dataset
/// whose source cannot be read (or changed) gives its error.
pub fn analyze(ds: &Dataset, threads: usize) -> Result<Analysis, DatasetError> {
    if let Some(a) = cache().lock().expect("analysis cache").get(ds.spec()) {
        return Ok(a.clone());
    }
    let mut an = Analyzer::new();
    for h in ds.try_par_records(threads) {
        let h = h?;
        an.add(&h.record.data, h.sha256, h.record.is_duplicate());
    }
    let a = an.finish();
    cache().lock().expect("analysis cache").insert(ds.spec().clone(), a.clone());
    Ok(a)
}

/// The analysis of every distinct dataset of the sources. A spec that no longer builds
/// (e.g. written by a newer version) or whose real-world source cannot be read any more is
/// left out, and its ideal ratio stays empty.
pub fn analyses(sources: &[Source], threads: usize) -> Vec<(DatasetSpec, Analysis)> {
    let mut out: Vec<(DatasetSpec, Analysis)> = Vec::new();
    for s in sources {
        for spec in &s.info.spec.datasets {
            if out.iter().any(|(d, _)| d == spec) {
                continue;
            }
            if let Ok(a) = Dataset::new(spec.clone()).and_then(|ds| analyze(&ds, threads)) {
                out.push((spec.clone(), a));
            }
        }
    }
    out
}
