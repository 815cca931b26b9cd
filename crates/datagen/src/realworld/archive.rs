//! Walking a source file's leaves: the file itself, or, for archives, every regular file
//! they contain (recursively: archives inside archives), in archive order, each as a
//! stream. Nothing is extracted to a path and nothing is read whole.
//!
//! Formats, recognised by name (case-insensitive): `.zip` and the zip-based office and
//! document formats (`.xlsx`, `.xlsm`, `.docx`, `.pptx`, `.odt`, `.ods`, `.odp`), `.tar`,
//! `.tar.gz`/`.tgz`, `.tar.bz2`/`.tbz2`/`.tbz`, `.gz`, `.bz2`. A zip needs random access:
//! read in place when it is the source file itself, spooled to the scratch directory when
//! it sits inside another archive.
//!
//! Entries with an absolute path or a `..` component are skipped with a warning (they are
//! never used as paths anyway); directories, links and special files carry no data and
//! are passed over.

use super::interrupted;
use super::scratch::{Scratch, copy_bounded};
use super::source;
use crate::spec::DatasetError;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// How deep archives may nest before the innermost one is read as a plain file.
const MAX_DEPTH: u32 = 8;

/// One leaf: a plain file, or one entry of an archive.
pub(crate) struct Leaf<'a> {
    /// The entry inside the source file, e.g. `bank.zip!/2023.xlsx!/xl/worksheets/sheet1.xml`
    /// (containers joined by `!/`); `None` for the source file itself.
    pub label: Option<&'a str>,
    /// The size its container declares, if it declares one (checked against what is read).
    pub declared: Option<u64>,
    /// Offset of the leaf's first byte in the file being read, when its bytes lie there
    /// contiguously and uncompressed (so a chunk can be re-read in place later).
    pub base: Option<u64>,
}

pub(crate) enum Flow {
    Continue,
    Stop,
}

pub(crate) trait Visitor {
    /// One leaf, with its content as a stream.
    fn leaf(&mut self, leaf: &Leaf<'_>, data: &mut dyn Read) -> Result<Flow, DatasetError>;
    fn warning(&mut self, msg: String);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zip,
    Tar,
    Gz,
    Bz2,
}

const ZIP_EXTENSIONS: &[&str] = &[".zip", ".xlsx", ".xlsm", ".docx", ".pptx", ".odt", ".ods", ".odp"];

/// The archive kind of a file name and the name of what it decompresses to.
fn kind(name: &str) -> Option<(Kind, String)> {
    let lower = name.to_ascii_lowercase();
    let base = |ext: &str| name[..name.len() - ext.len()].to_string();
    if ZIP_EXTENSIONS.iter().any(|e| lower.ends_with(e)) {
        return Some((Kind::Zip, name.to_string()));
    }
    if lower.ends_with(".tar") {
        return Some((Kind::Tar, name.to_string()));
    }
    if lower.ends_with(".tgz") {
        return Some((Kind::Gz, base(".tgz") + ".tar"));
    }
    for ext in [".tbz2", ".tbz"] {
        if lower.ends_with(ext) {
            return Some((Kind::Bz2, base(ext) + ".tar"));
        }
    }
    if lower.ends_with(".gz") {
        return Some((Kind::Gz, base(".gz")));
    }
    if lower.ends_with(".bz2") {
        return Some((Kind::Bz2, base(".bz2")));
    }
    None
}

/// Whether `name` is read as an archive (when archives are expanded).
pub fn is_archive_name(name: &str) -> bool {
    kind(name).is_some()
}

/// Why an entry name is not followed, if it is not.
fn unsafe_name(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if b.first().is_some_and(|c| *c == b'/' || *c == b'\\') || (b.len() >= 2 && b[1] == b':') {
        return Some("it has an absolute path");
    }
    if name.split(['/', '\\']).any(|c| c == "..") {
        return Some("its path has a `..` component");
    }
    None
}

fn join(prefix: Option<&str>, name: &str) -> String {
    match prefix {
        Some(p) => format!("{p}!/{name}"),
        None => name.to_string(),
    }
}

fn basename(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Walks one source file.
pub(crate) struct Walker<'a> {
    /// The source file, for messages and names.
    pub file: &'a Path,
    /// What is actually read: the source, or its staged copy.
    pub read_path: &'a Path,
    pub expand: bool,
    pub scratch: &'a mut Scratch,
}

impl Walker<'_> {
    fn err(&self, label: Option<&str>, msg: impl std::fmt::Display) -> DatasetError {
        match label {
            Some(l) => DatasetError::Invalid(format!("{}: entry {l}: {msg}", self.file.display())),
            None => DatasetError::Invalid(format!("{}: {msg}", self.file.display())),
        }
    }

    /// Visits every leaf of the file in order.
    pub(crate) fn walk(&mut self, v: &mut dyn Visitor) -> Result<Flow, DatasetError> {
        let name = self.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut file = source::open_read(self.read_path)?;
        let len = file.metadata().map_err(|e| self.err(None, e))?.len();
        match kind(&name).filter(|_| self.expand) {
            None => v.leaf(&Leaf { label: None, declared: Some(len), base: Some(0) }, &mut file),
            Some((Kind::Zip, _)) => self.zip(file, None, Some(0), 0, v),
            Some((Kind::Tar, _)) => {
                // In place: skip over entries by seeking instead of reading through them.
                let mut ar = tar::Archive::new(file);
                let entries = ar.entries_with_seek().map_err(|e| self.err(None, format!("not a tar archive: {e}")))?;
                self.tar(entries, None, Some(0), 0, v)
            }
            Some((k, inner)) => {
                let mut r = BufReader::with_capacity(1 << 18, file);
                self.decompressed(&mut r, k, &inner, None, 0, v)
            }
        }
    }

    /// One entry (or decompressed stream) named `name`: an archive to descend into, or a leaf.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        r: &mut dyn Read,
        name: &str,
        label: Option<String>,
        declared: Option<u64>,
        base: Option<u64>,
        depth: u32,
        v: &mut dyn Visitor,
    ) -> Result<Flow, DatasetError> {
        let kind = kind(name).filter(|_| self.expand);
        if kind.is_some() && depth >= MAX_DEPTH {
            v.warning(format!(
                "{}: entry {}: archives nested deeper than {MAX_DEPTH} levels; read as a plain file",
                self.file.display(),
                label.as_deref().unwrap_or(name)
            ));
        }
        match kind.filter(|_| depth < MAX_DEPTH) {
            None => v.leaf(&Leaf { label: label.as_deref(), declared, base }, r),
            Some((Kind::Tar, _)) => {
                let mut ar = tar::Archive::new(r);
                let entries =
                    ar.entries().map_err(|e| self.err(label.as_deref(), format!("not a tar archive: {e}")))?;
                self.tar(entries, label.as_deref(), base, depth, v)
            }
            Some((Kind::Zip, _)) => {
                // A zip needs random access: spool the entry to the scratch directory.
                let (mut f, guard) = self.scratch.file("nested-zip")?;
                let what = format!("{}: entry {}", self.file.display(), label.as_deref().unwrap_or(name));
                let n = copy_bounded(r, &mut f, &what)?;
                if let Some(d) = declared.filter(|d| *d != n) {
                    return Err(self.err(
                        label.as_deref(),
                        format!("{n} B read, the archive declares {d} B (corrupt or truncated archive)"),
                    ));
                }
                let flow = self.zip(f, label.as_deref(), None, depth, v);
                drop(guard);
                flow
            }
            Some((k, inner)) => {
                let mut r = BufReader::with_capacity(1 << 16, r);
                self.decompressed(&mut r, k, &inner, label.as_deref(), depth, v)
            }
        }
    }

    /// A `.gz` or `.bz2` stream (multi-member streams included) decompressing to `inner`.
    /// Over an archive (`.tar.gz`) the archive's entries are listed under the same label;
    /// over a plain file it becomes the leaf `<label>!/<inner name>`.
    fn decompressed(
        &mut self,
        r: &mut dyn std::io::BufRead,
        kind: Kind,
        inner: &str,
        label: Option<&str>,
        depth: u32,
        v: &mut dyn Visitor,
    ) -> Result<Flow, DatasetError> {
        let mut dec: Box<dyn Read + '_> = match kind {
            Kind::Gz => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            _ => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        };
        if self.expand && depth + 1 < MAX_DEPTH && kind_is_archive(inner) {
            // The decompressed stream is the archive itself: descend without a new level.
            self.entry_same_level(&mut dec, inner, label, depth + 1, v)
        } else {
            let leaf = join(label, basename(inner));
            self.entry(&mut dec, inner, Some(leaf), None, None, MAX_DEPTH, v)
        }
    }

    fn entry_same_level(
        &mut self,
        r: &mut dyn Read,
        name: &str,
        label: Option<&str>,
        depth: u32,
        v: &mut dyn Visitor,
    ) -> Result<Flow, DatasetError> {
        match kind(name) {
            Some((Kind::Tar, _)) => {
                let mut ar = tar::Archive::new(r);
                let entries = ar.entries().map_err(|e| self.err(label, format!("not a tar archive: {e}")))?;
                self.tar(entries, label, None, depth, v)
            }
            Some((Kind::Zip, _)) => {
                let (mut f, guard) = self.scratch.file("nested-zip")?;
                let what =
                    format!("{}{}", self.file.display(), label.map(|l| format!(": entry {l}")).unwrap_or_default());
                copy_bounded(r, &mut f, &what)?;
                let flow = self.zip(f, label, None, depth, v);
                drop(guard);
                flow
            }
            Some((k, inner)) => {
                let mut r = BufReader::with_capacity(1 << 16, r);
                self.decompressed(&mut r, k, &inner, label, depth, v)
            }
            None => unreachable!("only called for archive names"),
        }
    }

    fn tar<R: Read>(
        &mut self,
        entries: tar::Entries<'_, R>,
        prefix: Option<&str>,
        base: Option<u64>,
        depth: u32,
        v: &mut dyn Visitor,
    ) -> Result<Flow, DatasetError> {
        let mut last: Option<String> = None;
        for e in entries {
            if interrupted() {
                return Err(DatasetError::Interrupted);
            }
            let mut e = e.map_err(|e| {
                let after = last.as_deref().map(|l| format!(" after entry {l}")).unwrap_or_default();
                self.err(prefix, format!("corrupt or truncated tar archive{after}: {e}"))
            })?;
            let ty = e.header().entry_type();
            if !(ty.is_file() || ty.is_contiguous() || ty.is_gnu_sparse()) {
                continue;
            }
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            if let Some(why) = unsafe_name(&name) {
                v.warning(format!("{}: entry {name:?} skipped: {why}", self.file.display()));
                continue;
            }
            let sparse = ty.is_gnu_sparse();
            let declared = (!sparse).then(|| e.size());
            let at = (!sparse).then(|| base.map(|b| b + e.raw_file_position())).flatten();
            let label = join(prefix, &name);
            last = Some(name.clone());
            if let Flow::Stop = self.entry(&mut e, &name, Some(label), declared, at, depth + 1, v)? {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    fn zip<R: Read + Seek>(
        &mut self,
        reader: R,
        prefix: Option<&str>,
        base: Option<u64>,
        depth: u32,
        v: &mut dyn Visitor,
    ) -> Result<Flow, DatasetError> {
        let mut z = zip::ZipArchive::new(reader)
            .map_err(|e| self.err(prefix, format!("not a readable zip archive (corrupt or truncated?): {e}")))?;
        for i in 0..z.len() {
            if interrupted() {
                return Err(DatasetError::Interrupted);
            }
            let name = match z.name_for_index(i) {
                Some(Ok(n)) => n.into_owned(),
                _ => format!("#{i}"),
            };
            let label = join(prefix, &name);
            if let Some(why) = unsafe_name(&name) {
                v.warning(format!(
                    "{}: entry {name:?}{} skipped: {why}",
                    self.file.display(),
                    prefix.map(|p| format!(" in {p}")).unwrap_or_default()
                ));
                continue;
            }
            let mut f = z.by_index(i).map_err(|e| self.err(Some(&label), format!("cannot be read: {e}")))?;
            if f.is_dir() || f.is_symlink() {
                continue;
            }
            let stored = f.compression() == zip::CompressionMethod::Stored && !f.encrypted();
            let at = if stored { base.and_then(|b| f.data_start().map(|d| b + d)) } else { None };
            let declared = Some(f.size());
            if let Flow::Stop = self.entry(&mut f, &name, Some(label), declared, at, depth + 1, v)? {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }
}

fn kind_is_archive(name: &str) -> bool {
    kind(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name() {
        assert_eq!(kind("a.ZIP").map(|k| k.0), Some(Kind::Zip));
        assert_eq!(kind("bank.xlsx").map(|k| k.0), Some(Kind::Zip));
        assert_eq!(kind("c.tar.gz"), Some((Kind::Gz, "c.tar".into())));
        assert_eq!(kind("c.tgz"), Some((Kind::Gz, "c.tar".into())));
        assert_eq!(kind("c.tbz2"), Some((Kind::Bz2, "c.tar".into())));
        assert_eq!(kind("ls.1.gz"), Some((Kind::Gz, "ls.1".into())));
        assert_eq!(kind("notes.txt"), None);
    }

    #[test]
    fn unsafe_names() {
        assert!(unsafe_name("/etc/passwd").is_some());
        assert!(unsafe_name("a/../../b").is_some());
        assert!(unsafe_name("C:\\x").is_some());
        assert!(unsafe_name("a/b..c/d").is_none());
    }
}
