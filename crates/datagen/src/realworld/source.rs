//! Resolving a configured source (a file, a directory or a glob) into the files it names,
//! in a stable order, and opening them read-only.
//!
//! Nothing here writes: files are opened with `O_RDONLY` (and `O_NOATIME` where the kernel
//! allows it, so not even the access time changes), directories are only listed.

use crate::spec::DatasetError;
use std::collections::HashSet;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Whether `source` is a glob pattern rather than a path.
pub fn is_glob(source: &str) -> bool {
    source.contains(['*', '?', '['])
}

/// The files a source names, sorted, each once, with the warnings found on the way
/// (entries skipped because they are not regular files).
pub fn resolve(source: &str) -> Result<(Vec<PathBuf>, Vec<String>), DatasetError> {
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    if is_glob(source) {
        let paths = glob::glob(source).map_err(|e| {
            DatasetError::Invalid(format!("{source:?} is not a valid glob pattern: {e} (use *, ? and [..])"))
        })?;
        let mut any = false;
        for p in paths {
            any = true;
            let p =
                p.map_err(|e| DatasetError::Invalid(format!("{}: cannot be read: {}", e.path().display(), e.error())))?;
            add_path(&p, &mut files, &mut warnings, false)?;
        }
        if !any {
            return Err(DatasetError::Invalid(format!(
                "{source}: the pattern matches no file; check the path (an unreadable directory on the way \
                 also matches nothing)"
            )));
        }
    } else {
        add_path(Path::new(source), &mut files, &mut warnings, true)?;
    }
    files.sort();
    files.dedup();
    Ok((files, warnings))
}

/// `stat` that names the path and explains the common failures.
pub fn metadata(path: &Path) -> Result<Metadata, DatasetError> {
    fs::metadata(path).map_err(|e| describe(path, e))
}

/// An I/O error on `path` as a clear message.
pub fn describe(path: &Path, e: io::Error) -> DatasetError {
    let why = match e.raw_os_error() {
        Some(libc::ELOOP) => "a symlink loop (too many levels of symbolic links)".to_string(),
        Some(libc::ENOENT) => match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => "a dangling symlink (its target does not exist)".to_string(),
            _ => "does not exist".to_string(),
        },
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied (not readable by this user)".to_string(),
        _ => e.to_string(),
    };
    DatasetError::Invalid(format!("{}: {why}", path.display()))
}

fn add_path(path: &Path, files: &mut Vec<PathBuf>, warnings: &mut Vec<String>, top: bool) -> Result<(), DatasetError> {
    let meta = metadata(path)?;
    if meta.is_dir() {
        let mut ancestors = HashSet::new();
        ancestors.insert((meta.dev(), meta.ino()));
        walk_dir(path, &mut ancestors, files, warnings)
    } else if meta.is_file() {
        files.push(path.to_path_buf());
        Ok(())
    } else if top {
        // Reading a FIFO or a device could block forever or never end.
        Err(DatasetError::Invalid(format!(
            "{}: not a regular file or directory (a FIFO, socket or device); point the source at files",
            path.display()
        )))
    } else {
        warnings.push(format!("{}: skipped: not a regular file or directory", path.display()));
        Ok(())
    }
}

/// Depth-first, entries sorted by name. Symlinks are followed; one that leads back to a
/// directory being walked is a loop, an error naming it.
fn walk_dir(
    dir: &Path,
    ancestors: &mut HashSet<(u64, u64)>,
    files: &mut Vec<PathBuf>,
    warnings: &mut Vec<String>,
) -> Result<(), DatasetError> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| describe(dir, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| DatasetError::Invalid(format!("{}: the directory cannot be listed: {e}", dir.display())))?;
    entries.sort();
    for path in entries {
        let meta = metadata(&path)?;
        if meta.is_dir() {
            let id = (meta.dev(), meta.ino());
            if !ancestors.insert(id) {
                return Err(DatasetError::Invalid(format!(
                    "{}: a symlink loop (it leads back to a directory that contains it)",
                    path.display()
                )));
            }
            walk_dir(&path, ancestors, files, warnings)?;
            ancestors.remove(&id);
        } else if meta.is_file() {
            files.push(path);
        } else {
            warnings.push(format!("{}: skipped: not a regular file or directory", path.display()));
        }
    }
    Ok(())
}

/// Opens a source file for reading only. `O_NOATIME` keeps even its access time as it
/// was where the kernel allows it (the file's owner or root); elsewhere a plain read-only
/// open.
pub fn open_read(path: &Path) -> Result<File, DatasetError> {
    use std::os::unix::fs::OpenOptionsExt;
    #[cfg(target_os = "linux")]
    {
        if let Ok(f) = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOATIME).open(path) {
            return Ok(f);
        }
    }
    File::open(path).map_err(|e| describe(path, e))
}

/// Modification time in nanoseconds since the epoch.
pub fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec())
}

/// Whether `inner` is `outer` or lies below it (both canonicalised where they exist).
pub fn is_within(inner: &Path, outer: &Path) -> bool {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(inner).starts_with(canon(outer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_directories_resolve_sorted() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("b/c")).unwrap();
        for f in ["a.txt", "b/x.txt", "b/c/y.txt", "z.bin"] {
            fs::write(d.join(f), f).unwrap();
        }
        let (files, _) = resolve(d.to_str().unwrap()).unwrap();
        let rel: Vec<String> = files.iter().map(|p| p.strip_prefix(d).unwrap().display().to_string()).collect();
        assert_eq!(rel, ["a.txt", "b/c/y.txt", "b/x.txt", "z.bin"]);
        let (files, _) = resolve(&format!("{}/*.txt", d.display())).unwrap();
        assert_eq!(files, [d.join("a.txt")]);
        let e = resolve(&format!("{}/*.none", d.display())).unwrap_err().to_string();
        assert!(e.contains("matches no file"), "{e}");
        let e = resolve(&format!("{}/missing", d.display())).unwrap_err().to_string();
        assert!(e.contains("missing: does not exist"), "{e}");
    }

    #[test]
    fn symlink_loops_are_errors_naming_the_link() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("data")).unwrap();
        fs::write(d.join("data/f"), "x").unwrap();
        std::os::unix::fs::symlink(d.join("data"), d.join("data/again")).unwrap();
        let e = resolve(d.join("data").to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("data/again: a symlink loop"), "{e}");
        std::os::unix::fs::symlink(d.join("l2"), d.join("l1")).unwrap();
        std::os::unix::fs::symlink(d.join("l1"), d.join("l2")).unwrap();
        let e = resolve(d.join("l1").to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("l1: a symlink loop"), "{e}");
    }
}
