//! One file per record in a local directory: `<work>/files/<lab>/c<N>/<key>`.
//!
//! The plainest possible store: what a file system does with duplicated files. Settle
//! fsyncs the files written since the last settle. Maintenance: none (a file system has no
//! space-reclaim step of its own); reported as such.

use crate::BackendConfig;
use dedup_lab_core::{
    Backend, BackendError, InternalSizes, MaintenanceReport, Namespace, Record, RecordId, RecordStream, ResultExt,
    SystemKind,
};
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;

pub struct FilesBackend {
    dir: PathBuf,
    unsynced: Vec<PathBuf>,
}

impl FilesBackend {
    pub fn open(cfg: &BackendConfig, variant: &str) -> Result<FilesBackend, BackendError> {
        if variant != "default" {
            return Err(BackendError::msg(format!("files has no variant {variant:?}; use `default`")));
        }
        Ok(FilesBackend { dir: crate::config::store_dir(cfg, "files"), unsynced: Vec::new() })
    }

    fn ns_dir(&self, ns: &Namespace) -> PathBuf {
        self.dir.join(ns.lab().as_str())
    }

    fn path(&self, ns: &Namespace, id: &RecordId) -> Result<PathBuf, BackendError> {
        ns.container_of(id)?;
        Ok(self.ns_dir(ns).join(ns.container_name(id.container)).join(&id.key))
    }

    fn write(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        let path = self.path(ns, &r.id)?;
        // create_new: a record written twice is an error, as a primary key would be.
        let mut f = File::create_new(&path).ctx(|| format!("files: creating {}", path.display()))?;
        f.write_all(&r.data).ctx(|| format!("files: writing {}", path.display()))?;
        self.unsynced.push(path);
        Ok(1)
    }
}

impl Backend for FilesBackend {
    fn kind(&self) -> SystemKind {
        SystemKind::Files
    }

    fn endpoint(&self) -> String {
        self.dir.display().to_string()
    }

    fn reset(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.teardown(ns)?;
        for (_, c) in ns.containers() {
            let d = self.ns_dir(ns).join(c);
            fs::create_dir_all(&d).ctx(|| format!("files: creating {}", d.display()))?;
        }
        Ok(())
    }

    fn bulk_insert(&mut self, ns: &Namespace, records: RecordStream<'_>) -> Result<u64, BackendError> {
        let mut rows = 0;
        for r in records {
            rows += self.write(ns, &r?)?;
        }
        Ok(rows)
    }

    fn insert_one(&mut self, ns: &Namespace, r: &Record) -> Result<u64, BackendError> {
        self.write(ns, r)
    }

    fn delete_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<u64, BackendError> {
        let path = self.path(ns, id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(1),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(BackendError::with_source(format!("files: deleting {}", path.display()), e)),
        }
    }

    fn read_one(&mut self, ns: &Namespace, id: &RecordId) -> Result<Option<Vec<u8>>, BackendError> {
        let path = self.path(ns, id)?;
        match fs::read(&path) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BackendError::with_source(format!("files: reading {}", path.display()), e)),
        }
    }

    fn maintenance(&mut self, _ns: &Namespace) -> Result<MaintenanceReport, BackendError> {
        Ok(MaintenanceReport { action: "none: a plain directory has no space-reclaim operation".into() })
    }

    fn settle(&mut self, _ns: &Namespace) -> Result<(), BackendError> {
        for p in self.unsynced.drain(..) {
            match File::open(&p) {
                Ok(f) => f.sync_all().ctx(|| format!("files: fsync {}", p.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // deleted since
                Err(e) => return Err(BackendError::with_source(format!("files: fsync {}", p.display()), e)),
            }
        }
        Ok(())
    }

    fn count(&mut self, ns: &Namespace) -> Result<u64, BackendError> {
        Ok(self.sizes(ns)?.details.get("files").and_then(|v| v.as_u64()).unwrap_or(0))
    }

    fn sizes(&mut self, ns: &Namespace) -> Result<InternalSizes, BackendError> {
        let (mut files, mut bytes) = (0u64, 0u64);
        for (_, c) in ns.containers() {
            let d = self.ns_dir(ns).join(c);
            for e in fs::read_dir(&d).ctx(|| format!("files: listing {}", d.display()))? {
                let m = e.and_then(|e| e.metadata()).ctx(|| format!("files: listing {}", d.display()))?;
                files += 1;
                bytes += m.len();
            }
        }
        let mut s = InternalSizes { total_bytes: Some(bytes), ..Default::default() };
        s.details.insert("files".into(), files.into());
        Ok(s)
    }

    fn teardown(&mut self, ns: &Namespace) -> Result<(), BackendError> {
        self.unsynced.clear();
        let d = self.ns_dir(ns);
        match fs::remove_dir_all(&d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::with_source(format!("files: removing {}", d.display()), e)),
        }
    }

    fn data_paths(&mut self, ns: &Namespace) -> Result<Vec<PathBuf>, BackendError> {
        Ok(vec![self.ns_dir(ns)])
    }

    fn inventory(&mut self, lab: &dedup_lab_core::LabName) -> Result<Vec<String>, BackendError> {
        let dir = self.ns_dir(&Namespace::new(lab, 1));
        Ok(if dir.exists() { vec![format!("directory {}", dir.display())] } else { Vec::new() })
    }

    fn native_storage(&self, _schema: &dedup_lab_core::Schema) -> String {
        "one file per record holding its canonical encoding".into()
    }
}
