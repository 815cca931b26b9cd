//! The scratch directory: the only place real-world ingestion writes to.
//!
//! Whatever needs a copy on disk goes here, never beside a source: originals that later
//! records duplicate when they cannot be re-read from the source in place, zip archives
//! nested in other archives (a zip needs random access), and with `--stage-to` copies of
//! the source files themselves.
//!
//! Every directory made here is named `dedup-lab-scratch-<pid>-<n>` (or `dedup-lab-stage-…`)
//! under the configured parent, removed by its owner when it is dropped (also when a
//! dataset fails or the process is interrupted by a signal: the readers stop, unwind and
//! drop), and once more by the [`Session`] guard at the end of a command. Directories of
//! processes that no longer exist (killed with SIGKILL, or a second Ctrl-C) are removed when
//! the next session starts under the same parent.

use super::{interrupted, source};
use crate::spec::DatasetError;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

const SCRATCH_PREFIX: &str = "dedup-lab-scratch-";
const STAGE_PREFIX: &str = "dedup-lab-stage-";

/// Where scratch directories go.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Parent of the scratch directories (default: the system's temp directory).
    pub scratch: Option<PathBuf>,
    /// Copy every source file under this directory first and read the copies.
    pub stage_to: Option<PathBuf>,
}

#[derive(Debug)]
pub(crate) struct SessionInner {
    pub(crate) scratch_parent: PathBuf,
    stage_parent: Option<PathBuf>,
    /// The staging directory once made, and source → copy.
    staged: Mutex<(Option<ScratchDir>, HashMap<PathBuf, PathBuf>)>,
}

static SESSION: RwLock<Option<Arc<SessionInner>>> = RwLock::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The configuration of this process's real-world reading; dropping it removes every
/// scratch and staging directory this process made. One per command.
#[derive(Debug)]
pub struct Session {
    inner: Arc<SessionInner>,
}

impl Session {
    /// Starts a session: checks the directories and removes stale scratch directories of
    /// processes that no longer exist.
    pub fn start(opts: SessionOptions) -> Result<Session, DatasetError> {
        let scratch_parent = opts.scratch.clone().unwrap_or_else(std::env::temp_dir);
        for (what, dir) in [("--scratch", Some(&scratch_parent)), ("--stage-to", opts.stage_to.as_ref())] {
            let Some(dir) = dir else { continue };
            if !dir.is_dir() {
                return Err(DatasetError::Invalid(format!(
                    "{what} {}: not an existing directory; create it first or choose another one",
                    dir.display()
                )));
            }
            sweep_stale(dir);
        }
        let inner = Arc::new(SessionInner {
            scratch_parent,
            stage_parent: opts.stage_to,
            staged: Mutex::new((None, HashMap::new())),
        });
        *SESSION.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&inner));
        Ok(Session { inner })
    }

    pub fn scratch_parent(&self) -> &Path {
        &self.inner.scratch_parent
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut global = SESSION.write().unwrap_or_else(|e| e.into_inner());
        if global.as_ref().is_some_and(|g| Arc::ptr_eq(g, &self.inner)) {
            *global = None;
        }
        drop(global);
        let mut staged = self.inner.staged.lock().unwrap_or_else(|e| e.into_inner());
        staged.0 = None; // removes the staging directory
        staged.1.clear();
        drop(staged);
        // Anything of this process that an owner did not remove (a leaked reader thread).
        sweep_own(&self.inner.scratch_parent);
        if let Some(p) = &self.inner.stage_parent {
            sweep_own(p);
        }
    }
}

/// Refuses scratch or staging directories inside a source directory or beside a source
/// file: nothing may be created there.
pub(crate) fn check_outside(name: &str, source: &str, files: &[PathBuf]) -> Result<(), DatasetError> {
    let session = current();
    let mut forbidden: Vec<PathBuf> = files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
    if !source::is_glob(source) && Path::new(source).is_dir() {
        forbidden.push(PathBuf::from(source));
    }
    forbidden.sort();
    forbidden.dedup();
    let dirs = [("--scratch", Some(&session.scratch_parent)), ("--stage-to", session.stage_parent.as_ref())];
    for (what, dir) in dirs {
        let Some(dir) = dir else { continue };
        if let Some(src) = forbidden.iter().find(|s| source::is_within(dir, s)) {
            return Err(DatasetError::Invalid(format!(
                "real-world source {name}: the scratch directory {} ({what}) lies in the source directory {}; \
                 dedup-lab never creates anything beside a source: choose {what} elsewhere",
                dir.display(),
                src.display()
            )));
        }
    }
    Ok(())
}

/// The current session, or the defaults (system temp directory, no staging).
pub(crate) fn current() -> Arc<SessionInner> {
    if let Some(s) = SESSION.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return Arc::clone(s);
    }
    Arc::new(SessionInner {
        scratch_parent: std::env::temp_dir(),
        stage_parent: None,
        staged: Mutex::new((None, HashMap::new())),
    })
}

/// A directory of this process, removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn create(parent: &Path, prefix: &str) -> Result<ScratchDir, DatasetError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!("{prefix}{}-{n}-{nanos:x}", std::process::id()));
        fs::create_dir(&path).map_err(|e| {
            DatasetError::Invalid(format!("cannot create the scratch directory {}: {e}", path.display()))
        })?;
        Ok(ScratchDir { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Scratch space of one reader, made on first use.
#[derive(Debug)]
pub(crate) struct Scratch {
    session: Arc<SessionInner>,
    dir: Option<ScratchDir>,
}

impl Scratch {
    pub(crate) fn new() -> Scratch {
        Scratch { session: current(), dir: None }
    }

    fn dir(&mut self) -> Result<&Path, DatasetError> {
        if self.dir.is_none() {
            self.dir = Some(ScratchDir::create(&self.session.scratch_parent, SCRATCH_PREFIX)?);
        }
        Ok(self.dir.as_ref().expect("made above").path())
    }

    /// A new file in the scratch directory, removed when the returned guard is dropped.
    pub(crate) fn file(&mut self, what: &str) -> Result<(File, TempFile), DatasetError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.dir()?.join(format!("{what}-{n}"));
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| DatasetError::Invalid(format!("cannot create scratch file {}: {e}", path.display())))?;
        hold_for_test();
        Ok((f, TempFile(path)))
    }

    /// Where to read `path` from: the source itself, or its staged copy (`--stage-to`),
    /// copied on first use and shared by every reader of this process.
    pub(crate) fn read_path(&self, path: &Path, size: u64, mtime_ns: i64) -> Result<PathBuf, DatasetError> {
        stage(&self.session, path, size, mtime_ns)
    }
}

/// The test hook `DEDUP_LAB_TEST_HOLD_FIFO`: when it names a FIFO, the process's first
/// scratch file, once created, waits until a writer has opened that FIFO and closed it again.
/// The interrupt test sends its signal in that window, so it knows a spool is in progress
/// without racing the clock (a fast machine used to finish before the test looked). Unset,
/// it costs one environment lookup per process.
fn hold_for_test() {
    static HOLD: std::sync::Once = std::sync::Once::new();
    HOLD.call_once(|| {
        if let Some(fifo) = std::env::var_os("DEDUP_LAB_TEST_HOLD_FIFO")
            && let Ok(mut f) = File::open(fifo)
        {
            let _ = std::io::copy(&mut f, &mut std::io::sink());
        }
    });
}

/// Removes its file when dropped.
#[derive(Debug)]
pub(crate) struct TempFile(PathBuf);

impl TempFile {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Copies `src` into `dst` in bounded pieces, stopping on a signal. Returns the bytes copied.
pub(crate) fn copy_bounded(src: &mut dyn Read, dst: &mut dyn Write, what: &str) -> Result<u64, DatasetError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        if interrupted() {
            return Err(DatasetError::Interrupted);
        }
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DatasetError::Invalid(format!("{what}: {e}"))),
        };
        dst.write_all(&buf[..n]).map_err(|e| DatasetError::Invalid(format!("writing scratch copy of {what}: {e}")))?;
        total += n as u64;
    }
}

fn stage(session: &SessionInner, path: &Path, size: u64, mtime_ns: i64) -> Result<PathBuf, DatasetError> {
    let Some(parent) = &session.stage_parent else { return Ok(path.to_path_buf()) };
    // One copy at a time: readers of other datasets wait for a copy in progress.
    let mut staged = session.staged.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(copy) = staged.1.get(path) {
        return Ok(copy.clone());
    }
    if staged.0.is_none() {
        staged.0 = Some(ScratchDir::create(parent, STAGE_PREFIX)?);
    }
    let dir = staged.0.as_ref().expect("made above").path().to_path_buf();
    let n = staged.1.len();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let copy = dir.join(format!("{n:06}-{name}"));
    let mut from = source::open_read(path)?;
    let mut to = File::create(&copy)
        .map_err(|e| DatasetError::Invalid(format!("cannot create staged copy {}: {e}", copy.display())))?;
    let copied = copy_bounded(&mut from, &mut to, &path.display().to_string());
    let copied = match copied {
        Ok(c) => c,
        Err(e) => {
            let _ = fs::remove_file(&copy);
            return Err(e);
        }
    };
    let meta = source::metadata(path)?;
    if copied != size || meta.len() != size || source::mtime_ns(&meta) != mtime_ns {
        let _ = fs::remove_file(&copy);
        return Err(DatasetError::Invalid(format!(
            "{}: the file changed while it was staged (or since it was planned): {copied} B copied, {size} B planned",
            path.display()
        )));
    }
    staged.1.insert(path.to_path_buf(), copy.clone());
    Ok(copy)
}

/// Removes directories of our prefixes whose process is gone.
fn sweep_stale(parent: &Path) {
    sweep(parent, |pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists());
}

fn sweep_own(parent: &Path) {
    sweep(parent, |pid| pid == std::process::id());
}

fn sweep(parent: &Path, remove: impl Fn(u32) -> bool) {
    if !Path::new("/proc/self").exists() {
        return; // cannot tell which processes are alive
    }
    let Ok(rd) = fs::read_dir(parent) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(SCRATCH_PREFIX).or_else(|| name.strip_prefix(STAGE_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if remove(pid) && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}
