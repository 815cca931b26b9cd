//! Golden datasets: `(seed, payload type, grade, record count, record size)` fully defines
//! the bytes, on every platform, in every run and with any number of generator threads.
//!
//! The fingerprints below were computed once and are committed. If one changes, every
//! dataset generated before the change differs from one generated after it, so results of
//! earlier runs are no longer comparable: change a generator only on purpose, and then
//! update the table (the failure message prints the new one) and say so in the changelog.

use dedup_lab_core::{Grade, PayloadType};
use dedup_lab_datagen::dir::{self, ManifestLine};
use dedup_lab_datagen::{Dataset, DatasetSpec, RecordSize};
use sha2::{Digest, Sha256};

/// `Totals::dataset_sha256` (SHA-256 over the records' SHA-256s in order) of 8 records of
/// 4 KiB, seed 1, for every payload type × U0/U50/U90.
#[rustfmt::skip]
const GOLDEN: &[(&str, &str, &str)] = &[
    ("random_binary", "U0", "7fb9e14c06e59b8008b4bc5092c1e654764a86e23deb60b7964dfd7ad72cb974"),
    ("random_binary", "U50", "5475a7de8d20649f83f1f95dab510abd4da69fb4b65efd966d019e6a47957235"),
    ("random_binary", "U90", "ecb6cc569c57813948faedcc6347d2c8007e06c7b416b67eeba4cc39f038edd2"),
    ("structured_json", "U0", "db5be40897ffdf607ef0636f6a552379617765d20edc1e374d44ace91bd461e8"),
    ("structured_json", "U50", "502b6fd45740138160ddf82c322ea73226c4b37d2871a56fbb84ad47433cc1be"),
    ("structured_json", "U90", "7fba0cd51c7c1abfb6d3e9e1ec09a9e10246ff1ace8b5779d758cea47bb42347"),
    ("text_document", "U0", "f5c37deac05b829663bd55a59de2d823f5efcae22abf93c991af17fcb8894af5"),
    ("text_document", "U50", "958d3f2902aa637a70487a0bbc1ed6431e2f60a80bc67a03ff5b02bbcda6da93"),
    ("text_document", "U90", "f4b483f9dccd5a4c88b6f77634f92a1dba1cb7cc4d2f82e61e48d0e9412d582b"),
    ("uuid_keys", "U0", "e4fa5b27b6c17391e3d0751cd41bb3a136b4867fd74ec7f695d7eafaab360557"),
    ("uuid_keys", "U50", "b6cd4bc35556c96e0a41a2fc3170636956963c61f83594f2585ed40e28f50801"),
    ("uuid_keys", "U90", "6f38f8917e65a7c231f56ccac058453586d3236ffacba6ff10b0d73389dad9d9"),
    ("jsonb_documents", "U0", "698b25f792e3db190e7734a950ba820ddb5edd7362645c4f3094a017be04fd57"),
    ("jsonb_documents", "U50", "18eb2cc5cc9fd809a8b90caa204c4898b77243170681996bd8f691f06dfbb047"),
    ("jsonb_documents", "U90", "39a1f27b4abb31cce66c10f568817c3311dfbf4200bb4f361f2044e17920c05a"),
];

/// Datasets of other shapes: a seeded record-size range, U95, the default seed,
/// the smallest record size.
#[rustfmt::skip]
const GOLDEN_OTHER: &[(&str, &str, u64, &str, u64, &str)] = &[
    ("random_binary", "U50", 12, "64..8192", 1, "0e834f19a7d11d71a70466f2daeee37ceef32a996c3a56a8a3a3610defe599f8"),
    ("structured_json", "U50", 12, "64..8192", 1, "d41ba069c41e53cab34fc9d148842dd223cd67f070f89622a3ae8d61fd23730b"),
    ("jsonb_documents", "U90", 12, "64..8192", 1, "80c983fcb66da1fde7a067ebfc1b8fecc9e2afda95769ba9caca7b6d7e0f3e57"),
    ("uuid_keys", "U95", 40, "1024", 20240501, "0bb0dd43c32bd13669ccc8213851e8f40bc0851b86a1797a93d82f7947a0344b"),
    ("structured_json", "U0", 6, "64", 1, "b545c23b8599503586671c568846946b010a339393c9f136544dd326744ee351"),
    ("jsonb_documents", "U0", 6, "64", 1, "72bcceb93f2ec19577df3cc0e3ddfb587695e893a20602ca84ef0984c8d85cc1"),
    ("text_document", "U0", 6, "64", 1, "c0385ac585497ae370de5e55f889e65206e6fdad71ef9b5559d5d16c6b31da32"),
    ("uuid_keys", "U0", 6, "64", 1, "4046fcd84adc56e497feb201348e13f22321c3cc2d5566ae7ca950d3dc3a52c5"),
];

fn spec(payload: &str, grade: &str, records: u64, size: &str, seed: u64) -> DatasetSpec {
    DatasetSpec {
        payload: payload.parse().unwrap(),
        grade: grade.parse().unwrap(),
        records,
        record_size: size.parse().unwrap(),
        seed,
        real_world: None,
    }
}

/// The dataset fingerprint from the sequential iterator.
fn fingerprint(ds: &Dataset) -> String {
    let mut h = Sha256::new();
    for r in ds.records() {
        h.update(Sha256::digest(&r.data));
    }
    hex::encode(h.finalize())
}

fn small_specs() -> Vec<DatasetSpec> {
    let mut specs = Vec::new();
    for p in PayloadType::ALL {
        for g in [Grade::U0, Grade::U50, Grade::U90] {
            specs.push(DatasetSpec {
                payload: p,
                grade: g,
                records: 8,
                record_size: RecordSize::Fixed(4096),
                seed: 1,
                real_world: None,
            });
        }
    }
    specs
}

fn other_specs() -> Vec<DatasetSpec> {
    vec![
        spec("random_binary", "U50", 12, "64..8192", 1),
        spec("structured_json", "U50", 12, "64..8192", 1),
        spec("jsonb_documents", "U90", 12, "64..8192", 1),
        spec("uuid_keys", "U95", 40, "1024", 20_240_501),
        spec("structured_json", "U0", 6, "64", 1),
        spec("jsonb_documents", "U0", 6, "64", 1),
        spec("text_document", "U0", 6, "64", 1),
        spec("uuid_keys", "U0", 6, "64", 1),
    ]
}

fn table_of(specs: &[DatasetSpec]) -> String {
    specs
        .iter()
        .map(|s| {
            let fp = fingerprint(&Dataset::new(s.clone()).unwrap());
            format!(
                "    ({:?}, {:?}, {}, {:?}, {}, {fp:?}),\n",
                s.payload.name(),
                s.grade.to_string(),
                s.records,
                s.record_size.to_string(),
                s.seed
            )
        })
        .collect()
}

#[test]
fn every_payload_type_and_grade_matches_its_golden_fingerprint() {
    let specs = small_specs();
    let actual: Vec<(String, String, String)> = specs
        .iter()
        .map(|s| (s.payload.name().to_string(), s.grade.to_string(), fingerprint(&Dataset::new(s.clone()).unwrap())))
        .collect();
    let expected: Vec<(String, String, String)> =
        GOLDEN.iter().map(|(p, g, f)| (p.to_string(), g.to_string(), f.to_string())).collect();
    let table: String = actual.iter().map(|(p, g, f)| format!("    ({p:?}, {g:?}, {f:?}),\n")).collect();
    assert_eq!(actual, expected, "generated bytes changed; the new table is:\n{table}");
}

#[test]
fn other_shapes_match_their_golden_fingerprints() {
    let specs = other_specs();
    let expected: Vec<DatasetSpec> = GOLDEN_OTHER.iter().map(|&(p, g, n, s, seed, _)| spec(p, g, n, s, seed)).collect();
    assert_eq!(
        specs,
        expected,
        "GOLDEN_OTHER lists other datasets than other_specs(); the table is:\n{}",
        table_of(&specs)
    );
    for (s, golden) in specs.iter().zip(GOLDEN_OTHER) {
        let fp = fingerprint(&Dataset::new(s.clone()).unwrap());
        assert_eq!(fp, golden.5, "{}: generated bytes changed; the new table is:\n{}", s.id(), table_of(&specs));
    }
}

#[test]
fn thread_count_does_not_change_a_byte() {
    for s in small_specs().into_iter().chain(other_specs()) {
        let ds = Dataset::new(s.clone()).unwrap();
        let seq: Vec<_> = ds.records().collect();
        for threads in [1, 3] {
            let par: Vec<_> = ds.par_records(threads).collect();
            assert_eq!(par.len(), seq.len(), "{} with {threads} threads", s.id());
            for (p, q) in par.iter().zip(&seq) {
                assert_eq!(p.record.index, q.index, "{} with {threads} threads", s.id());
                assert_eq!(p.record.source, q.source, "{} with {threads} threads", s.id());
                assert!(p.record.data == q.data, "{} record {} differs with {threads} threads", s.id(), q.index);
                assert_eq!(p.sha256, Some(<[u8; 32]>::from(Sha256::digest(&q.data))), "{} record {}", s.id(), q.index);
            }
        }
    }
}

#[test]
fn written_manifests_carry_the_golden_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    dir::prepare_output(tmp.path(), false).unwrap();
    for (s, (_, _, golden)) in small_specs().iter().zip(GOLDEN) {
        let ds = Dataset::new(s.clone()).unwrap();
        let totals = dir::write_dataset(tmp.path(), &ds, 3, &mut |_| {}).unwrap();
        assert_eq!(totals.dataset_sha256, *golden, "{}", s.id());
        assert_eq!(totals.records, 8);
        assert_eq!(totals.duplicate_records, s.grade.duplicates_of(8));
        // The manifest on disk ends with the same totals.
        let manifest = tmp.path().join(dir::dataset_rel_path(s)).join("manifest.jsonl");
        let last = dir::read_manifest(&manifest).unwrap().last().unwrap().unwrap();
        assert_eq!(last, ManifestLine::Totals(totals));
    }
    let reports = dir::verify(tmp.path()).unwrap();
    assert_eq!(reports.len(), 15);
    assert!(reports.iter().all(|r| r.problems.is_empty() && r.records_checked == 8), "{reports:?}");
}
