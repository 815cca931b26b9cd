//! Memory stays O(record size), never O(dataset): records come out of an iterator and at
//! most a few are alive at once, whatever the dataset size (SPEC §5 rule 4).
//!
//! A counting global allocator measures the peak of live heap bytes while 8 MiB datasets
//! are generated, iterated in parallel and written to disk. This file holds one test so
//! that nothing else allocates while it measures.

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::peak_during;
use dedup_lab_core::{Grade, PayloadType};
use dedup_lab_datagen::{Dataset, DatasetSpec, RecordSize, dir};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const RECORD: u64 = 64 * 1024;
const RECORDS: u64 = 128; // 8 MiB per dataset

#[test]
fn memory_is_bounded_by_the_record_size_not_the_dataset_size() {
    let threads = 3;
    // records(): one record at a time (plus the plan; a generator may not grow a record
    // beyond its size, which would double it). par_records(W): W workers × (channel
    // depth 2 + the one being generated) + the consumer's. Allow 2× for allocator slack.
    let sequential_bound = RECORD as usize + (RECORD as usize) / 4;
    let parallel_bound = 2 * (threads * 3 + 1) * RECORD as usize;
    let dataset_bytes = (RECORD * RECORDS) as usize;
    assert!(parallel_bound * 4 < dataset_bytes, "the test must be able to tell the two apart");

    let tmp = tempfile::tempdir().unwrap();
    dir::prepare_output(tmp.path(), false).unwrap();
    let mut report = String::new();
    for payload in PayloadType::ALL {
        let ds = Dataset::new(DatasetSpec {
            payload,
            grade: Grade::U50,
            records: RECORDS,
            record_size: RecordSize::Fixed(RECORD),
            seed: 9,
            real_world: None,
        })
        .unwrap();

        let mut bytes = 0u64;
        let seq = peak_during(|| ds.records().for_each(|r| bytes += r.data.len() as u64));
        assert_eq!(bytes, RECORD * RECORDS);

        let mut count = 0;
        let par = peak_during(|| ds.par_records(threads).for_each(|_| count += 1));
        assert_eq!(count, RECORDS);

        let write = peak_during(|| {
            dir::write_dataset(tmp.path(), &ds, threads, &mut |_| {}).unwrap();
        });
        report.push_str(&format!(
            "{payload}: records() {} KiB, par_records({threads}) {} KiB, write_dataset {} KiB\n",
            seq >> 10,
            par >> 10,
            write >> 10
        ));
        assert!(seq <= sequential_bound, "{payload}: records() peaked at {seq} bytes\n{report}");
        assert!(par <= parallel_bound, "{payload}: par_records peaked at {par} bytes\n{report}");
        assert!(write <= parallel_bound, "{payload}: write_dataset peaked at {write} bytes\n{report}");
    }
    println!("{report}");
}
