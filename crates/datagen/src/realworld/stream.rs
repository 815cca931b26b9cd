//! The records of a real-world dataset, streamed: one reader thread walks the source and
//! follows the plan, `threads` workers hash, the consumer takes the records in order.
//!
//! Memory: the reader holds one record; every channel holds at most `DEPTH` records; the
//! reader keeps, per original that a later record copies, where its bytes can be found
//! again (a few dozen bytes each). Never a whole file.

use super::archive::{Flow, Leaf, Visitor, Walker};
use super::scratch::{Scratch, TempFile};
use super::{Origin, RealWorldSpec, check_files, interrupted, source};
use crate::par::HashedRecord;
use crate::plan::{DupPlan, PlanEntry};
use crate::spec::{DatasetError, DatasetSpec, RecordSize};
use crate::{GeneratedRecord, sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

const DEPTH: usize = 2;

type Job = Result<(GeneratedRecord, Origin), DatasetError>;
type Item = Result<HashedRecord, DatasetError>;

/// Iterator over the records of a real-world dataset, in order, each with its SHA-256 and
/// origin. After an error it ends.
pub struct Stream {
    outputs: Vec<Receiver<Item>>,
    threads: Vec<JoinHandle<()>>,
    next: u64,
    total: u64,
    done: bool,
    name: String,
}

impl Stream {
    /// `hash`: whether the workers compute each record's SHA-256.
    pub(crate) fn start(spec: &DatasetSpec, threads: usize, hash: bool) -> Stream {
        let threads = threads.max(1);
        let mut inputs = Vec::with_capacity(threads);
        let mut outputs = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads + 1);
        for _ in 0..threads {
            let (in_tx, in_rx) = sync_channel::<Job>(DEPTH);
            let (out_tx, out_rx) = sync_channel::<Item>(DEPTH);
            handles.push(std::thread::spawn(move || {
                for job in in_rx {
                    let item = job.map(|(record, origin)| {
                        let sha256 = hash.then(|| sha256(&record.data));
                        HashedRecord { record, sha256, origin: Some(origin) }
                    });
                    if out_tx.send(item).is_err() {
                        return; // the consumer stopped
                    }
                }
            }));
            inputs.push(in_tx);
            outputs.push(out_rx);
        }
        let name = spec_name(spec);
        let total = spec.records;
        let spec = spec.clone();
        handles.push(std::thread::spawn(move || {
            let mut out = RoundRobin { senders: inputs, next: 0 };
            match produce(&spec, &mut out) {
                Ok(()) | Err(Stop::Hangup) => {}
                Err(Stop::Error(e)) => {
                    let _ = out.send(Err(e));
                }
            }
        }));
        Stream { outputs, threads: handles, next: 0, total, done: false, name }
    }
}

fn spec_name(spec: &DatasetSpec) -> String {
    format!("{}/{}", spec.payload_name(), spec.grade)
}

impl Iterator for Stream {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.done || self.next >= self.total {
            return None;
        }
        let w = (self.next % self.outputs.len() as u64) as usize;
        match self.outputs[w].recv() {
            Ok(Ok(h)) => {
                self.next += 1;
                Some(Ok(h))
            }
            Ok(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            Err(_) => {
                // A thread ended before its record: it panicked. Report it as this
                // dataset's error instead of taking the whole process down.
                self.done = true;
                self.outputs.clear();
                let mut why = String::from("a reader thread ended unexpectedly");
                for t in self.threads.drain(..) {
                    if let Err(p) = t.join() {
                        let msg = p
                            .downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| p.downcast_ref::<&str>().copied())
                            .unwrap_or("?");
                        why = format!("a reader thread panicked: {msg}");
                    }
                }
                Some(Err(DatasetError::Invalid(format!(
                    "{}: record {} of {}: {why}",
                    self.name, self.next, self.total
                ))))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.total - self.next) as usize;
        (0, Some(left))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Hanging up makes every worker's and the reader's next send fail, so they end
        // (the reader removing its scratch files as it unwinds).
        self.outputs.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct RoundRobin {
    senders: Vec<SyncSender<Job>>,
    next: usize,
}

impl RoundRobin {
    fn send(&mut self, job: Job) -> Result<(), Stop> {
        let w = self.next;
        self.next = (self.next + 1) % self.senders.len();
        self.senders[w].send(job).map_err(|_| Stop::Hangup)
    }
}

enum Stop {
    Error(DatasetError),
    /// The consumer is gone.
    Hangup,
}

impl From<DatasetError> for Stop {
    fn from(e: DatasetError) -> Stop {
        Stop::Error(e)
    }
}

/// Where an original that a later record copies can be read again.
enum Place {
    /// Uncompressed in a file on disk (the source or its staged copy).
    InPlace { file: Arc<Path>, offset: u64 },
    /// In the reader's spool file.
    Spool { offset: u64 },
}

struct Saved {
    place: Place,
    len: usize,
    origin: Origin,
}

fn produce(spec: &DatasetSpec, out: &mut RoundRobin) -> Result<(), Stop> {
    let rw = spec.real_world.as_ref().expect("a real-world spec");
    if let Some(e) = &rw.error {
        return Err(DatasetError::Invalid(e.clone()).into());
    }
    check_files(rw)?;
    let RecordSize::Fixed(rs) = spec.record_size else {
        return Err(DatasetError::Invalid("real-world records need a fixed record size".into()).into());
    };
    // Pre-pass over the plan (no content): the originals, and which of them are copied later.
    let mut originals: Vec<u64> = Vec::new();
    let mut needed: Vec<u64> = Vec::new(); // bit set over original ordinals
    for e in DupPlan::new(spec) {
        if e.is_duplicate() {
            let k = originals.binary_search(&e.source).expect("a copy's source is an earlier original");
            needed[k / 64] |= 1 << (k % 64);
        } else {
            originals.push(e.index);
            if originals.len().div_ceil(64) > needed.len() {
                needed.push(0);
            }
        }
    }
    let mut feeder = Feeder {
        rw,
        rs,
        plan: DupPlan::new(spec),
        originals,
        needed,
        ordinal: 0,
        saved: HashMap::new(),
        scratch: Scratch::new(),
        spool: None,
        spool_len: 0,
        open: None,
        file_label: Arc::from(""),
        file_path: PathBuf::new(),
        read_path: Arc::from(Path::new("")),
        out,
        stop: None,
    };
    for f in &rw.files {
        if feeder.all_originals_read() {
            break;
        }
        if f.records == 0 {
            continue;
        }
        let path = PathBuf::from(&f.path);
        let read_path = feeder.scratch.read_path(&path, f.size, f.mtime_ns)?;
        feeder.file_label = Arc::from(f.path.as_str());
        feeder.file_path = path.clone();
        feeder.read_path = Arc::from(read_path.as_path());
        let mut scratch = Scratch::new();
        let walked = Walker { file: &path, read_path: &read_path, expand: rw.expand_archives, scratch: &mut scratch }
            .walk(&mut feeder);
        if let Some(stop) = feeder.stop.take() {
            return Err(stop);
        }
        walked?;
    }
    if !feeder.all_originals_read() {
        return Err(DatasetError::Invalid(format!(
            "real-world source {}: it yielded {} records, {} were planned; it changed since the dataset was \
             planned (plan it again)",
            rw.name,
            feeder.ordinal,
            feeder.originals.len()
        ))
        .into());
    }
    // The copies after the last original.
    while let Some(e) = feeder.plan.next() {
        feeder.copy(&e)?;
    }
    Ok(())
}

struct Feeder<'a> {
    rw: &'a RealWorldSpec,
    rs: u64,
    plan: DupPlan,
    originals: Vec<u64>,
    needed: Vec<u64>,
    /// Ordinal of the next original (= records taken from the source so far).
    ordinal: usize,
    saved: HashMap<usize, Saved>,
    scratch: Scratch,
    spool: Option<(File, TempFile)>,
    spool_len: u64,
    /// The file last opened for re-reading in place.
    open: Option<(Arc<Path>, File)>,
    file_label: Arc<str>,
    file_path: PathBuf,
    read_path: Arc<Path>,
    out: &'a mut RoundRobin,
    /// Why the walk was stopped by the visitor (a hang-up is not an error of the source).
    stop: Option<Stop>,
}

impl Feeder<'_> {
    fn all_originals_read(&self) -> bool {
        self.ordinal == self.originals.len()
    }

    fn is_needed(&self, k: usize) -> bool {
        self.needed[k / 64] & (1 << (k % 64)) != 0
    }

    /// Sends the copies planned before the next original, then that original.
    fn original(&mut self, data: Vec<u8>, origin: Origin, at: Option<u64>) -> Result<(), Stop> {
        loop {
            let e = self.plan.next().ok_or_else(|| {
                DatasetError::Invalid(format!("real-world source {}: more records than planned", self.rw.name))
            })?;
            if e.is_duplicate() {
                self.copy(&e)?;
                continue;
            }
            let k = self.ordinal;
            debug_assert_eq!(self.originals[k], e.index);
            self.ordinal += 1;
            if self.is_needed(k) {
                let place = match at {
                    Some(offset) => Place::InPlace { file: Arc::clone(&self.read_path), offset },
                    None => Place::Spool { offset: self.spool(&data)? },
                };
                self.saved.insert(k, Saved { place, len: data.len(), origin: origin.clone() });
            }
            let record = GeneratedRecord { index: e.index, source: e.index, data };
            return self.out.send(Ok((record, origin)));
        }
    }

    fn spool(&mut self, data: &[u8]) -> Result<u64, DatasetError> {
        if self.spool.is_none() {
            self.spool = Some(self.scratch.file("originals")?);
        }
        let (f, guard) = self.spool.as_mut().expect("made above");
        f.write_all(data)
            .map_err(|e| DatasetError::Invalid(format!("writing the spool file {}: {e}", guard.path().display())))?;
        let offset = self.spool_len;
        self.spool_len += data.len() as u64;
        Ok(offset)
    }

    /// Sends a copy: its original's bytes, read again.
    fn copy(&mut self, e: &PlanEntry) -> Result<(), Stop> {
        if interrupted() {
            return Err(DatasetError::Interrupted.into());
        }
        if !e.is_duplicate() {
            return Err(DatasetError::Invalid(format!(
                "real-world source {}: it yielded fewer records than planned; it changed since the dataset was planned",
                self.rw.name
            ))
            .into());
        }
        let k = self.originals.binary_search(&e.source).expect("a copy's source is an earlier original");
        let saved = self.saved.get(&k).expect("copied originals are saved");
        let mut data = vec![0u8; saved.len];
        let origin = saved.origin.clone();
        match &saved.place {
            Place::InPlace { file, offset } => {
                let (file, offset) = (Arc::clone(file), *offset);
                let same = self.open.as_ref().is_some_and(|(p, _)| Arc::ptr_eq(p, &file) || **p == *file);
                if !same {
                    self.open = Some((Arc::clone(&file), source::open_read(&file)?));
                }
                let f = &self.open.as_ref().expect("opened above").1;
                f.read_exact_at(&mut data, offset).map_err(|err| {
                    DatasetError::Invalid(format!(
                        "{}: cannot re-read {} B at offset {offset} for record {}: {err} (did the file change?)",
                        origin.file,
                        data.len(),
                        e.index
                    ))
                })?;
            }
            Place::Spool { offset } => {
                let (f, guard) = self.spool.as_ref().expect("spooled originals have a spool");
                f.read_exact_at(&mut data, *offset).map_err(|err| {
                    DatasetError::Invalid(format!("reading the spool file {}: {err}", guard.path().display()))
                })?;
            }
        }
        let record = GeneratedRecord { index: e.index, source: e.source, data };
        self.out.send(Ok((record, origin)))
    }

    fn read_error(&self, leaf: &Leaf<'_>, offset: u64, e: std::io::Error) -> DatasetError {
        match leaf.label {
            Some(l) => DatasetError::Invalid(format!(
                "{}: entry {l}: cannot be read at offset {offset}: {e} (corrupt or truncated archive?)",
                self.file_path.display()
            )),
            None => {
                DatasetError::Invalid(format!("{}: cannot be read at offset {offset}: {e}", self.file_path.display()))
            }
        }
    }
}

impl Visitor for Feeder<'_> {
    fn leaf(&mut self, leaf: &Leaf<'_>, data: &mut dyn Read) -> Result<Flow, DatasetError> {
        let entry: Option<Arc<str>> = leaf.label.map(Arc::from);
        let mut offset = 0u64;
        loop {
            if interrupted() {
                return Err(DatasetError::Interrupted);
            }
            if self.all_originals_read() {
                return Ok(Flow::Stop);
            }
            let mut chunk = Vec::with_capacity(self.rs as usize);
            if let Err(e) = (&mut *data).take(self.rs).read_to_end(&mut chunk) {
                return Err(self.read_error(leaf, offset, e));
            }
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len() as u64;
            let origin = Origin { file: Arc::clone(&self.file_label), entry: entry.clone(), offset };
            let at = leaf.base.map(|b| b + offset);
            if let Err(stop) = self.original(chunk, origin, at) {
                return match stop {
                    Stop::Error(e) => Err(e),
                    Stop::Hangup => {
                        self.stop = Some(Stop::Hangup);
                        Ok(Flow::Stop)
                    }
                };
            }
            offset += n;
            if n < self.rs {
                break;
            }
        }
        if let Some(d) = leaf.declared.filter(|d| *d != offset) {
            let what = match leaf.label {
                Some(l) => format!(
                    "{}: entry {l}: {offset} B read, the archive declares {d} B (corrupt or truncated archive)",
                    self.file_path.display()
                ),
                None => format!("{}: {offset} B read, {d} B were planned (the file changed)", self.file_path.display()),
            };
            return Err(DatasetError::Invalid(what));
        }
        Ok(Flow::Continue)
    }

    fn warning(&mut self, _msg: String) {
        // Reported when the source was scanned.
    }
}
