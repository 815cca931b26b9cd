//! The files a simulation reads: regular files under the given paths, each inode once (a
//! hard link is the same blocks on a volume), symbolic links not followed (the link is a
//! few bytes of metadata; its target is counted where it lies, if it is given at all).

use crate::SimError;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A file to read and its size when listed.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
}

pub(crate) fn files(paths: &[PathBuf], missing_ok: bool) -> Result<Vec<FileEntry>, SimError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    // Depth first in sorted order, so the file list (and any error) is the same every time.
    let mut stack: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    let mut top_level = paths.len();
    while let Some(p) = stack.pop() {
        let given = top_level > 0;
        top_level = top_level.saturating_sub(1);
        let m = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A given path must exist; an entry that vanished while listing is skipped.
                if given && !missing_ok {
                    return Err(SimError::NotFound { path: p });
                }
                continue;
            }
            Err(e) => return Err(SimError::Io { path: p, what: "reading its metadata", source: e }),
        };
        if !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        if m.is_dir() {
            let rd = match std::fs::read_dir(&p) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(SimError::Io { path: p, what: "listing the directory", source: e }),
            };
            let mut children = Vec::new();
            for e in rd {
                children.push(
                    e.map_err(|e| SimError::Io { path: p.clone(), what: "listing the directory", source: e })?.path(),
                );
            }
            children.sort();
            stack.extend(children.into_iter().rev());
        } else if m.is_file() {
            out.push(FileEntry { path: p, len: m.len() });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_files_once_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/b"), b"bb").unwrap();
        std::fs::write(d.path().join("a"), b"a").unwrap();
        std::fs::hard_link(d.path().join("a"), d.path().join("a2")).unwrap();
        std::os::unix::fs::symlink(d.path().join("sub/b"), d.path().join("link")).unwrap();
        let f = files(&[d.path().to_path_buf()], false).unwrap();
        let names: Vec<_> = f.iter().map(|f| f.path.strip_prefix(d.path()).unwrap().display().to_string()).collect();
        assert_eq!(names, ["a", "sub/b"], "the hard link a2 is a's inode; the symbolic link is not followed");
        let missing = d.path().join("missing");
        let e = files(std::slice::from_ref(&missing), false).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("no such file"), "{e}");
        assert!(files(&[missing], true).unwrap().is_empty());
    }
}
