//! Intrinsic analysis: how much an ideal store could save on a dataset.
//!
//! Per dataset: the record-level duplicate ratio, the chunk-level duplicate ratios with
//! fixed 4 KiB chunks and with FastCDC (2/8/64 KiB min/avg/max, chunked per record as a
//! file-level deduplicating store would), the zstd (level 3) size of every distinct record
//! compressed on its own, and the ideal ratio = logical / zstd size of the distinct records
//! (record-level dedup × compression). With placement `across` every duplicate is written to
//! another container than its original, so a store that deduplicates only inside one
//! container (table, bucket, topic) can at best reach the `across` ratios. Streaming: memory
//! is one record plus one hash per distinct record and chunk (and per container).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

const FIXED_CHUNK: usize = 4096;
const CDC_MIN: u32 = 2048;
const CDC_AVG: u32 = 8192;
const CDC_MAX: u32 = 65_536;
const ZSTD_LEVEL: i32 = 3;

/// The version of what an analysis of a spec holds, part of the key of the on-disk analysis
/// cache (dedup-lab-report's `intrinsic`). A spec defines every byte of its dataset, so a
/// cached analysis stays right until the figures computed from the same spec change: bump
/// this when the [`Analyzer`]'s output (its fields or how they are computed) or the bytes a
/// payload generator or a real-world reader yields for the same spec change, so that no
/// older analysis is reused.
pub const ANALYSIS_FORMAT: u32 = 1;

/// Duplicate statistics of one chunking method.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkStats {
    pub chunks: u64,
    pub unique_chunks: u64,
    pub unique_bytes: u64,
    /// logical bytes / unique chunk bytes.
    pub dedup_ratio: f64,
}

/// The intrinsic ratios of one dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub records: u64,
    pub unique_records: u64,
    pub logical_bytes: u64,
    pub unique_record_bytes: u64,
    /// logical bytes / bytes of distinct records.
    pub record_dedup_ratio: f64,
    pub fixed_4k: ChunkStats,
    pub fastcdc_8k: ChunkStats,
    /// zstd size of every record compressed on its own, duplicates included.
    pub zstd_bytes: u64,
    /// zstd size of the distinct records only.
    pub zstd_unique_bytes: u64,
    /// unique record bytes / their zstd size.
    pub compression_ratio: f64,
    /// logical bytes / zstd size of the distinct records: the ideal store.
    pub ideal_ratio: f64,
    /// The same ideal store, deduplicating only inside one container, when the duplicates
    /// are placed `across` (originals in one container, every copy in another). Under
    /// placement `within` all records share one container and the ratios above apply.
    #[serde(default)]
    pub across: ContainerStats,
}

/// What a store that deduplicates only inside each container could reach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Bytes of the records that are distinct within their container, summed over containers.
    pub unique_record_bytes: u64,
    /// Their zstd size.
    pub zstd_unique_bytes: u64,
    /// logical bytes / unique record bytes.
    pub record_dedup_ratio: f64,
    /// logical bytes / zstd unique bytes.
    pub ideal_ratio: f64,
}

/// Accumulates records one at a time.
#[derive(Default)]
pub struct Analyzer {
    a: Analysis,
    records: HashMap<[u8; 32], u64>,
    fixed: HashSet<[u8; 16]>,
    cdc: HashSet<[u8; 16]>,
    /// Distinct records per container under placement `across`: originals, copies.
    across: [HashSet<[u8; 32]>; 2],
}

fn chunk_id(data: &[u8]) -> [u8; 16] {
    let d = Sha256::digest(data);
    d[..16].try_into().expect("16 of 32 bytes")
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

impl Analyzer {
    pub fn new() -> Analyzer {
        Analyzer::default()
    }

    /// Adds one record. `sha256` may be given when the caller already computed it;
    /// `duplicate` says whether the dataset's plan made it a copy of an earlier record
    /// (with placement `across` it goes to the other container).
    pub fn add(&mut self, data: &[u8], sha256: Option<[u8; 32]>, duplicate: bool) {
        let hash = sha256.unwrap_or_else(|| Sha256::digest(data).into());
        let compressed = self.add_global(data, hash);
        if self.across[usize::from(duplicate)].insert(hash) {
            self.a.across.unique_record_bytes += data.len() as u64;
            self.a.across.zstd_unique_bytes += compressed;
        }
    }

    /// Adds a record to the whole-dataset figures; returns its zstd size.
    fn add_global(&mut self, data: &[u8], hash: [u8; 32]) -> u64 {
        let a = &mut self.a;
        a.records += 1;
        a.logical_bytes += data.len() as u64;
        if let Some(&compressed) = self.records.get(&hash) {
            a.zstd_bytes += compressed;
            // A duplicate record adds its chunks to the totals but no new unique chunk.
            a.fixed_4k.chunks += data.len().div_ceil(FIXED_CHUNK) as u64;
            a.fastcdc_8k.chunks += fastcdc::v2020::FastCDC::new(data, CDC_MIN, CDC_AVG, CDC_MAX).count() as u64;
            return compressed;
        }
        let compressed = zstd::bulk::compress(data, ZSTD_LEVEL).map(|c| c.len() as u64).unwrap_or(data.len() as u64);
        self.records.insert(hash, compressed);
        a.unique_records += 1;
        a.unique_record_bytes += data.len() as u64;
        a.zstd_bytes += compressed;
        a.zstd_unique_bytes += compressed;
        for chunk in data.chunks(FIXED_CHUNK) {
            a.fixed_4k.chunks += 1;
            if self.fixed.insert(chunk_id(chunk)) {
                a.fixed_4k.unique_chunks += 1;
                a.fixed_4k.unique_bytes += chunk.len() as u64;
            }
        }
        for c in fastcdc::v2020::FastCDC::new(data, CDC_MIN, CDC_AVG, CDC_MAX) {
            let chunk = &data[c.offset..c.offset + c.length];
            a.fastcdc_8k.chunks += 1;
            if self.cdc.insert(chunk_id(chunk)) {
                a.fastcdc_8k.unique_chunks += 1;
                a.fastcdc_8k.unique_bytes += chunk.len() as u64;
            }
        }
        compressed
    }

    pub fn finish(self) -> Analysis {
        let mut a = self.a;
        a.record_dedup_ratio = ratio(a.logical_bytes, a.unique_record_bytes);
        a.fixed_4k.dedup_ratio = ratio(a.logical_bytes, a.fixed_4k.unique_bytes);
        a.fastcdc_8k.dedup_ratio = ratio(a.logical_bytes, a.fastcdc_8k.unique_bytes);
        a.compression_ratio = ratio(a.unique_record_bytes, a.zstd_unique_bytes);
        a.ideal_ratio = ratio(a.logical_bytes, a.zstd_unique_bytes);
        a.across.record_dedup_ratio = ratio(a.logical_bytes, a.across.unique_record_bytes);
        a.across.ideal_ratio = ratio(a.logical_bytes, a.across.zstd_unique_bytes);
        a
    }
}

/// Analyses a generated dataset.
pub fn analyze_dataset(ds: &crate::Dataset) -> Analysis {
    let mut an = Analyzer::new();
    for r in ds.records() {
        an.add(&r.data, None, r.is_duplicate());
    }
    an.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dataset, DatasetSpec, RecordSize};
    use dedup_lab_core::{Grade, PayloadType};

    fn analyze(p: PayloadType, grade: u8, records: u64) -> Analysis {
        let ds = Dataset::new(DatasetSpec {
            payload: p,
            grade: Grade::new(grade).unwrap(),
            records,
            record_size: RecordSize::Fixed(65_536),
            seed: 1,
            real_world: None,
        })
        .unwrap();
        analyze_dataset(&ds)
    }

    #[test]
    fn random_u90_dedups_ten_fold_and_does_not_compress() {
        let a = analyze(PayloadType::RandomBinary, 90, 100);
        assert_eq!(a.unique_records, 10);
        assert!((a.record_dedup_ratio - 10.0).abs() < 1e-9, "{a:?}");
        assert!((a.fixed_4k.dedup_ratio - 10.0).abs() < 1e-9, "{a:?}");
        assert!((a.fastcdc_8k.dedup_ratio - 10.0).abs() < 0.01, "{a:?}");
        assert!(a.compression_ratio < 1.01, "{a:?}");
        assert!((a.ideal_ratio - 10.0).abs() < 0.2, "{a:?}");
    }

    #[test]
    fn u0_has_no_duplicates_and_u50_two_fold() {
        let a = analyze(PayloadType::RandomBinary, 0, 40);
        assert_eq!(a.unique_records, 40);
        assert!((a.record_dedup_ratio - 1.0).abs() < 1e-9);
        let a = analyze(PayloadType::RandomBinary, 50, 40);
        assert!((a.record_dedup_ratio - 2.0).abs() < 1e-9, "{a:?}");
    }

    #[test]
    fn across_placement_bounds_a_per_container_store() {
        // U50 of 40 random records: 20 originals, 20 copies. Across, the copies sit in a
        // container of their own: each container is distinct within unless a source is
        // copied more than once there.
        let ds = Dataset::new(DatasetSpec {
            payload: PayloadType::RandomBinary,
            grade: Grade::new(50).unwrap(),
            records: 40,
            record_size: RecordSize::Fixed(8192),
            seed: 1,
            real_world: None,
        })
        .unwrap();
        let copies: HashSet<u64> = ds.records().filter(|r| r.is_duplicate()).map(|r| r.source).collect();
        let a = analyze_dataset(&ds);
        assert!((a.record_dedup_ratio - 2.0).abs() < 1e-9, "{a:?}");
        // Originals (20) plus one of each distinct source among the copies.
        let expect = 40.0 / (20 + copies.len()) as f64;
        assert!((a.across.record_dedup_ratio - expect).abs() < 1e-9, "{expect} {a:?}");
        assert!(a.across.record_dedup_ratio < a.record_dedup_ratio);
        assert!((a.across.ideal_ratio - expect).abs() < 0.05, "{a:?}");

        // Every copy of the same source, all in the one other container.
        let mut an = Analyzer::new();
        for (i, dup) in [(0u8, false), (1, false), (0, true), (0, true), (1, true)] {
            an.add(&[i; 4096], None, dup);
        }
        let a = an.finish();
        assert!((a.record_dedup_ratio - 2.5).abs() < 1e-9, "{a:?}");
        assert!((a.across.record_dedup_ratio - 5.0 / 4.0).abs() < 1e-9, "{a:?}");
    }

    #[test]
    fn u0_has_the_same_ratios_across_and_within() {
        let a = analyze(PayloadType::TextDocument, 0, 8);
        assert_eq!(a.across.unique_record_bytes, a.unique_record_bytes);
        assert!((a.across.ideal_ratio - a.ideal_ratio).abs() < 1e-12);
    }

    #[test]
    fn text_compresses() {
        let a = analyze(PayloadType::TextDocument, 0, 8);
        assert!(a.compression_ratio > 2.0, "{a:?}");
        let j = analyze(PayloadType::StructuredJson, 0, 8);
        assert!(j.compression_ratio > 2.0, "{j:?}");
    }
}
