//! Parallel, ordered, bounded record generation.
//!
//! Worker `w` of `W` generates (and hashes) records `w, w+W, w+2W, …` into its own bounded
//! channel; the consumer reads the channels round-robin, so records come out in order and
//! at most `W × (DEPTH + 1)` records are in memory at once, whatever the dataset size.

use crate::{Dataset, GeneratedRecord};
use sha2::{Digest, Sha256};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

const DEPTH: usize = 2;

/// A generated record with its SHA-256.
#[derive(Debug, Clone)]
pub struct HashedRecord {
    pub record: GeneratedRecord,
    pub sha256: [u8; 32],
}

/// Iterator over a dataset's records, generated and hashed on worker threads.
pub struct ParRecords {
    receivers: Vec<Receiver<HashedRecord>>,
    next: usize,
    workers: Vec<JoinHandle<()>>,
}

impl ParRecords {
    pub fn new(ds: &Dataset, threads: usize) -> ParRecords {
        let threads = threads.max(1);
        let mut receivers = Vec::with_capacity(threads);
        let mut workers = Vec::with_capacity(threads);
        for w in 0..threads {
            let (tx, rx) = sync_channel::<HashedRecord>(DEPTH);
            let ds = ds.clone();
            workers.push(std::thread::spawn(move || {
                for entry in ds.plan().skip(w).step_by(threads) {
                    let mut data = Vec::with_capacity(entry.size as usize);
                    ds.fill(entry.source, entry.size, &mut data);
                    let sha256 = Sha256::digest(&data).into();
                    let record = GeneratedRecord {
                        index: entry.index,
                        source: entry.source,
                        data,
                    };
                    if tx.send(HashedRecord { record, sha256 }).is_err() {
                        return; // the consumer stopped early
                    }
                }
            }));
            receivers.push(rx);
        }
        ParRecords {
            receivers,
            next: 0,
            workers,
        }
    }
}

impl Iterator for ParRecords {
    type Item = HashedRecord;
    fn next(&mut self) -> Option<HashedRecord> {
        let n = self.receivers.len();
        let item = self.receivers[self.next % n].recv().ok()?;
        self.next += 1;
        Some(item)
    }
}

impl Drop for ParRecords {
    fn drop(&mut self) {
        // Dropping the receivers makes every worker's next send fail, so they all end.
        self.receivers.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Threads to use for generation by default: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
