//! Real-world sources are streamed, never read whole (SPEC §5 rule 4): the peak of live heap
//! bytes while a 48 MiB file and a 48 MiB .tar.gz are scanned and read (U50: copies come
//! from re-reads in place and from the scratch spool) stays at a few records, far below the
//! source's size. One test in this file so that nothing else allocates while it measures.

#[path = "support/corpus.rs"]
mod corpus;

use dedup_lab_core::Grade;
use dedup_lab_datagen::realworld::{self, SourceDef};
use dedup_lab_datagen::{Dataset, RecordSize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            PEAK.fetch_max(LIVE.load(Relaxed) + new_size, Relaxed);
            if new_size >= layout.size() {
                LIVE.fetch_add(new_size - layout.size(), Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    f();
    PEAK.load(Relaxed) - base
}

const MIB: usize = 1 << 20;
const SIZE: usize = 48 * MIB;
const RECORD: u64 = MIB as u64;

#[test]
fn reading_a_large_file_or_archive_keeps_a_few_records_in_memory() {
    let t = tempfile::tempdir().unwrap();
    let plain = t.path().join("video.bin");
    let tgz = t.path().join("corpus.tar.gz");
    {
        // Written in pieces: the test itself never holds the whole source either.
        let mut f = std::fs::File::create(&plain).unwrap();
        for piece in 1..=48 {
            f.write_all(&corpus::content(piece, MIB, false)).unwrap();
        }
        f.sync_all().unwrap();
        // The same bytes as the one entry of a .tar.gz (tar reads the file in pieces).
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&tgz).unwrap(), flate2::Compression::none());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(SIZE as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "big.bin", std::fs::File::open(&plain).unwrap()).unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    let bound = 16 * MIB;
    let mut report = String::new();
    for (name, path) in [("plain", &plain), ("tar.gz", &tgz)] {
        let def = SourceDef { name: "big".into(), path: path.display().to_string(), expand_archives: true };
        let mut spec = None;
        let scan_peak = peak_during(|| {
            let scan = realworld::scan(&def, RecordSize::Fixed(RECORD), false).unwrap();
            spec = Some(scan.dataset(Grade::U50, RecordSize::Fixed(RECORD), 1).unwrap());
        });
        let spec = spec.unwrap();
        assert_eq!(spec.records, 48);
        let mut n = 0;
        let read_peak = peak_during(|| {
            for r in Dataset::new(spec.clone()).unwrap().try_par_records(2) {
                r.unwrap();
                n += 1;
            }
        });
        assert_eq!(n, 48);
        report.push_str(&format!("{name}: scan {} KiB, read {} KiB\n", scan_peak / 1024, read_peak / 1024));
        assert!(scan_peak <= bound && read_peak <= bound, "{name} exceeded {bound} B:\n{report}");
    }
    eprintln!("{report}");
}
