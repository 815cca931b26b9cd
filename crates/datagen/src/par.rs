//! Parallel, ordered, bounded record generation.
//!
//! Worker `w` of `W` generates (and hashes) records `w, w+W, w+2W, …` into its own bounded
//! channel; the consumer reads the channels round-robin, so records come out in order and
//! at most `W × (DEPTH + 1)` records are in memory at once, whatever the dataset size.

use crate::realworld::{Origin, Stream};
use crate::spec::DatasetError;
use crate::{Dataset, GeneratedRecord, PlanEntry};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

const DEPTH: usize = 2;

/// A generated record with its SHA-256 (`None` from the unhashed iterators:
/// [`crate::Dataset::try_par_records_unhashed`]).
#[derive(Debug, Clone)]
pub struct HashedRecord {
    pub record: GeneratedRecord,
    pub sha256: Option<[u8; 32]>,
    /// Where a real-world record's bytes come from (file, archive entry, offset).
    pub origin: Option<Origin>,
}

impl HashedRecord {
    /// The record's SHA-256: the workers' if they computed it, else computed now.
    pub fn digest(&self) -> [u8; 32] {
        self.sha256.unwrap_or_else(|| Sha256::digest(&self.record.data).into())
    }
}

/// Iterator over a dataset's records, generated and hashed on worker threads.
///
/// Yields every record of the dataset or panics: a worker that panics is never mistaken
/// for the end of the dataset (which would silently truncate it); its panic is resumed on
/// the consumer's thread.
pub struct ParRecords {
    receivers: Vec<Receiver<HashedRecord>>,
    workers: Vec<Option<JoinHandle<()>>>,
    next: u64,
    total: u64,
    /// A real-world dataset's reader instead of the generator workers.
    real: Option<Stream>,
}

/// Writes the content of one planned record into the (cleared) buffer.
type Fill = dyn Fn(&Dataset, &PlanEntry, &mut Vec<u8>) + Send + Sync;

impl ParRecords {
    /// `hash`: whether the workers compute each record's SHA-256.
    pub fn new(ds: &Dataset, threads: usize, hash: bool) -> ParRecords {
        if ds.is_real_world() {
            let real = Some(Stream::start(ds.spec(), threads, hash));
            return ParRecords { receivers: Vec::new(), workers: Vec::new(), next: 0, total: 0, real };
        }
        Self::spawn(
            ds,
            threads,
            hash,
            Arc::new(|ds: &Dataset, e: &PlanEntry, buf: &mut Vec<u8>| ds.fill(e.source, e.size, buf)),
        )
    }

    fn spawn(ds: &Dataset, threads: usize, hash: bool, fill: Arc<Fill>) -> ParRecords {
        let threads = threads.max(1);
        let mut receivers = Vec::with_capacity(threads);
        let mut workers = Vec::with_capacity(threads);
        for w in 0..threads {
            let (tx, rx) = sync_channel::<HashedRecord>(DEPTH);
            let ds = ds.clone();
            let fill = Arc::clone(&fill);
            workers.push(Some(std::thread::spawn(move || {
                for entry in ds.plan().skip(w).step_by(threads) {
                    let mut data = Vec::with_capacity(entry.size as usize);
                    fill(&ds, &entry, &mut data);
                    let sha256 = hash.then(|| Sha256::digest(&data).into());
                    let record = GeneratedRecord { index: entry.index, source: entry.source, data };
                    if tx.send(HashedRecord { record, sha256, origin: None }).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })));
            receivers.push(rx);
        }
        ParRecords { receivers, workers, next: 0, total: ds.spec().records, real: None }
    }
}

impl Iterator for ParRecords {
    type Item = HashedRecord;
    fn next(&mut self) -> Option<HashedRecord> {
        if let Some(real) = &mut self.real {
            return real.next().map(|r| r.unwrap_or_else(|e| panic!("{e}")));
        }
        if self.next >= self.total {
            return None;
        }
        let w = (self.next % self.receivers.len() as u64) as usize;
        match self.receivers[w].recv() {
            Ok(item) => {
                self.next += 1;
                Some(item)
            }
            Err(_) => {
                // The worker hung up before its record: it panicked. Resume its panic here.
                let outcome = self.workers[w].take().map(|h| h.join());
                if let Some(Err(panic)) = outcome {
                    std::panic::resume_unwind(panic);
                }
                panic!("generator worker {w} ended before record {} of {}", self.next, self.total);
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if let Some(real) = &self.real {
            return real.size_hint();
        }
        let left = (self.total - self.next) as usize;
        (left, Some(left))
    }
}

impl Drop for ParRecords {
    fn drop(&mut self) {
        // Dropping the receivers makes every worker's next send fail, so they all end.
        self.receivers.clear();
        for w in self.workers.iter_mut().filter_map(Option::take) {
            let _ = w.join();
        }
    }
}

/// Iterator over a dataset's records in order, with their SHA-256, or the error that
/// stopped them: real-world sources can fail to read (synthetic datasets never do).
pub enum TryParRecords {
    Synthetic(ParRecords),
    RealWorld(Stream),
}

impl TryParRecords {
    /// `hash`: whether each record's SHA-256 is computed.
    pub fn new(ds: &Dataset, threads: usize, hash: bool) -> TryParRecords {
        if ds.is_real_world() {
            TryParRecords::RealWorld(Stream::start(ds.spec(), threads, hash))
        } else {
            TryParRecords::Synthetic(ParRecords::new(ds, threads, hash))
        }
    }
}

impl Iterator for TryParRecords {
    type Item = Result<HashedRecord, DatasetError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            TryParRecords::Synthetic(p) => p.next().map(Ok),
            TryParRecords::RealWorld(s) => s.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            TryParRecords::Synthetic(p) => p.size_hint(),
            TryParRecords::RealWorld(s) => s.size_hint(),
        }
    }
}

/// Threads to use for generation by default: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DatasetSpec, RecordSize};
    use dedup_lab_core::{Grade, PayloadType};

    fn dataset(records: u64) -> Dataset {
        Dataset::new(DatasetSpec {
            payload: PayloadType::RandomBinary,
            grade: Grade::U50,
            records,
            record_size: RecordSize::Fixed(64),
            seed: 3,
            real_world: None,
        })
        .unwrap()
    }

    #[test]
    fn yields_every_record_in_order_for_any_thread_count() {
        let ds = dataset(37);
        for threads in [1, 2, 3, 8, 64] {
            let idx: Vec<u64> = ds.par_records(threads).map(|h| h.record.index).collect();
            assert_eq!(idx, (0..37).collect::<Vec<_>>(), "{threads} threads");
        }
    }

    #[test]
    fn unhashed_records_are_the_same_bytes_and_hash_nothing() {
        let ds = dataset(23);
        let hashed: Vec<HashedRecord> = ds.par_records(3).collect();
        let plain: Vec<HashedRecord> = ds.try_par_records_unhashed(3).map(Result::unwrap).collect();
        assert_eq!(hashed.len(), plain.len());
        for (h, p) in hashed.iter().zip(&plain) {
            assert_eq!(h.record.data, p.record.data, "record {}", h.record.index);
            assert!(h.sha256.is_some() && p.sha256.is_none(), "record {}", h.record.index);
            assert_eq!(p.digest(), h.sha256.unwrap(), "digest() computes what the workers would");
        }
    }

    #[test]
    fn a_panicking_worker_is_not_the_end_of_the_dataset() {
        let ds = dataset(20);
        let fill: Arc<Fill> = Arc::new(|ds: &Dataset, e: &PlanEntry, buf: &mut Vec<u8>| {
            assert!(e.index != 13, "generator failed on record 13");
            ds.fill(e.source, e.size, buf);
        });
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ParRecords::spawn(&ds, 3, true, fill).count()));
        let panic = result.expect_err("the dataset must not end quietly after 13 records");
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(msg.contains("record 13"), "{msg}");
    }

    #[test]
    fn stopping_early_ends_the_workers() {
        let ds = dataset(1000);
        // Each worker holds a clone of `fill` until its thread ends: once the iterator is
        // dropped, only ours may be left, or a worker still runs (or was never joined).
        let fill: Arc<Fill> = Arc::new(|ds: &Dataset, e: &PlanEntry, buf: &mut Vec<u8>| ds.fill(e.source, e.size, buf));
        let first: Vec<u64> =
            ParRecords::spawn(&ds, 4, true, Arc::clone(&fill)).take(5).map(|r| r.record.index).collect();
        assert_eq!(first, [0, 1, 2, 3, 4], "records come out in order");
        assert_eq!(Arc::strong_count(&fill), 1, "dropping the iterator must end and join every worker");
    }
}
