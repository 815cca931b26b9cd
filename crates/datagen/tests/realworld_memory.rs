//! Real-world sources are streamed, never read whole (SPEC §5 rule 4): the peak of live heap
//! bytes while a 48 MiB file and a 48 MiB .tar.gz are scanned and read (U50: copies come
//! from re-reads in place and from the scratch spool) stays at a few records, far below the
//! source's size. One test in this file so that nothing else allocates while it measures.

#[path = "support/corpus.rs"]
mod corpus;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::peak_during;
use dedup_lab_core::Grade;
use dedup_lab_datagen::realworld::{self, SourceDef};
use dedup_lab_datagen::{Dataset, RecordSize};
use std::io::Write;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

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
