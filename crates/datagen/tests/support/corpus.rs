//! A small real-world corpus built in a temp directory: plain files and every archive
//! format dedup-lab reads (zip with deflated and stored entries, an .xlsx inside a zip, a
//! .tar.bz2, a .json.gz, a zip inside a .tar.gz, a plain .tar), with the content every
//! leaf must yield. Shared by the datagen tests and the CLI tests.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One leaf the corpus yields: its source file, its entry inside it, its bytes.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub file: PathBuf,
    pub entry: Option<String>,
    pub data: Vec<u8>,
}

pub struct Corpus {
    pub root: PathBuf,
    /// Every non-empty leaf, in the order dedup-lab reads them.
    pub leaves: Vec<Leaf>,
}

/// Deterministic bytes: pseudo-random (`text = false`) or lines of words.
pub fn content(seed: u64, len: usize, text: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    if !text {
        return (0..len).map(|_| (next() >> 24) as u8).collect();
    }
    const WORDS: &[&str] = &["ledger", "amount", "the", "of", "transfer", "account", "2023", "EUR", "and", "a"];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[(next() % WORDS.len() as u64) as usize].as_bytes());
        out.push(if next() % 9 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

pub fn zip_bytes(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, deflate) in entries {
        let method = if *deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
        w.start_file(*name, SimpleFileOptions::default().compression_method(method)).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A tar of regular files (plus a directory and a symlink entry, which carry no data).
pub fn tar_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    b.append_data(&mut dir, "dir/", std::io::empty()).unwrap();
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    b.append_link(&mut l, "link", "dir").unwrap();
    b.into_inner().unwrap()
}

/// A tar entry with a raw name (the tar crate refuses `..` and absolute names when building).
pub fn tar_raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn bz2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Builds the corpus under `dir/src`.
pub fn build(dir: &Path) -> Corpus {
    let root = dir.join("src");
    fs::create_dir_all(root.join("sub")).unwrap();
    let mut leaves = Vec::new();
    let mut leaf = |file: &Path, entry: Option<&str>, data: &[u8]| {
        leaves.push(Leaf { file: file.to_path_buf(), entry: entry.map(String::from), data: data.to_vec() })
    };

    let a = content(1, 10_000, true);
    fs::write(root.join("a_text.txt"), &a).unwrap();
    leaf(&root.join("a_text.txt"), None, &a);

    let b = content(2, 70_000, false);
    fs::write(root.join("b_blob.bin"), &b).unwrap();
    leaf(&root.join("b_blob.bin"), None, &b);

    // bank_transactions: an .xlsx (itself a zip) inside a .zip, next to a deflated and a
    // stored entry.
    let readme = content(3, 3_000, true);
    let raw = content(4, 9_000, false);
    let types = content(5, 700, true);
    let sheet = content(6, 20_000, true);
    let xlsx = zip_bytes(&[("[Content_Types].xml", &types, true), ("xl/worksheets/sheet1.xml", &sheet, true)]);
    let bank = zip_bytes(&[("readme.txt", &readme, true), ("raw.bin", &raw, false), ("statements.xlsx", &xlsx, false)]);
    let c = root.join("c_bank.zip");
    fs::write(&c, bank).unwrap();
    leaf(&c, Some("readme.txt"), &readme);
    leaf(&c, Some("raw.bin"), &raw);
    leaf(&c, Some("statements.xlsx!/[Content_Types].xml"), &types);
    leaf(&c, Some("statements.xlsx!/xl/worksheets/sheet1.xml"), &sheet);

    // text_corpus: a .tar.bz2.
    let one = content(7, 5_000, true);
    let two = content(8, 12_000, true);
    let d = root.join("d_corpus.tar.bz2");
    fs::write(&d, bz2(&tar_bytes(&[("corpus/one.txt", &one), ("corpus/two.txt", &two)]))).unwrap();
    leaf(&d, Some("corpus/one.txt"), &one);
    leaf(&d, Some("corpus/two.txt"), &two);

    // github_events: an hourly .json.gz.
    let events = content(9, 30_000, true);
    let e = root.join("e_events.json.gz");
    fs::write(&e, gz(&events)).unwrap();
    leaf(&e, Some("e_events.json"), &events);

    // A zip inside a .tar.gz (the zip must be spooled to scratch to be read).
    let n = content(10, 4_000, false);
    let plain = content(11, 2_500, true);
    let inner = zip_bytes(&[("n.txt", &n, true)]);
    let f = root.join("f_nested.tar.gz");
    fs::write(&f, gz(&tar_bytes(&[("inner.zip", &inner), ("plain.txt", &plain)]))).unwrap();
    leaf(&f, Some("inner.zip!/n.txt"), &n);
    leaf(&f, Some("plain.txt"), &plain);

    // A plain .tar: its entries can be re-read in place.
    let x = content(12, 40_000, false);
    let g = root.join("g_plain.tar");
    fs::write(&g, tar_bytes(&[("x.bin", &x)])).unwrap();
    leaf(&g, Some("x.bin"), &x);

    // An empty file yields nothing.
    fs::write(root.join("h_empty.txt"), b"").unwrap();

    // A subdirectory with a man page.
    let man = content(13, 6_000, true);
    let s = root.join("sub/ls.1.gz");
    fs::write(&s, gz(&man)).unwrap();
    leaf(&s, Some("ls.1"), &man);

    Corpus { root, leaves }
}

/// Records the leaves of `corpus` yield when cut into `record_size` pieces, in order:
/// (file, entry, offset, bytes).
pub fn expected_records(corpus: &Corpus, record_size: usize) -> Vec<(PathBuf, Option<String>, u64, Vec<u8>)> {
    let mut out = Vec::new();
    for l in &corpus.leaves {
        for (i, c) in l.data.chunks(record_size).enumerate() {
            out.push((l.file.clone(), l.entry.clone(), (i * record_size) as u64, c.to_vec()));
        }
    }
    out
}
