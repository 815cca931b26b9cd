//! Sizes of local files: the `fs` size probe's reading, shared by the runner's probes and
//! the conformance suite.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Allocated bytes of files and directory trees, each inode counted once; missing paths
/// count as 0 (a table not yet created has no file).
pub fn allocated_bytes(paths: &[impl AsRef<Path>]) -> std::io::Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack: Vec<std::path::PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
    while let Some(p) = stack.pop() {
        let m = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        total += m.blocks() * 512;
        if m.is_dir() {
            match std::fs::read_dir(&p) {
                Ok(rd) => {
                    for e in rd {
                        stack.push(e?.path());
                    }
                }
                // Removed between stat and listing: nothing left to count.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_once_per_inode() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a");
        std::fs::write(&f, vec![7u8; 100_000]).unwrap();
        std::fs::hard_link(&f, d.path().join("b")).unwrap();
        let only_file = allocated_bytes(&[&f]).unwrap();
        assert!(only_file >= 100_000, "{only_file}");
        let both = allocated_bytes(&[d.path()]).unwrap();
        let dir_itself = std::fs::metadata(d.path()).unwrap().blocks() * 512;
        assert_eq!(both, only_file + dir_itself, "the hard link is the same inode");
        assert_eq!(allocated_bytes(&[d.path().join("missing")]).unwrap(), 0);
    }
}
