//! The duplication plan: which records are copies, and of which original.
//!
//! The plan depends on `(seed, grade, record count, record size)` but not on the payload
//! type, so every payload type of a run has the same duplicate structure and results are
//! comparable across types.
//!
//! Duplicates are chosen by selection sampling (Knuth's Algorithm S): walking records
//! 1..N, record i becomes a duplicate with probability needed/remaining, which yields
//! *exactly* the planned number while streaming. Each duplicate copies an original chosen
//! uniformly among the originals before it. Record 0 is always an original.

use crate::derive_seed;
use crate::spec::{DatasetSpec, RecordSize};
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256StarStar;

/// One planned record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanEntry {
    pub index: u64,
    /// The original this record is (== index) or copies (< index).
    pub source: u64,
    /// Size in bytes (a duplicate has its original's size).
    pub size: u64,
}

impl PlanEntry {
    pub fn is_duplicate(&self) -> bool {
        self.source != self.index
    }
}

/// Streams [`PlanEntry`]s in record order.
#[derive(Debug, Clone)]
pub struct DupPlan {
    rng: Xoshiro256StarStar,
    seed: u64,
    size: RecordSize,
    records: u64,
    next: u64,
    needed: u64,
    originals: Vec<u64>,
}

/// A uniform integer in `0..n` (n > 0) by multiply-shift; deterministic on every platform.
pub(crate) fn below(rng: &mut Xoshiro256StarStar, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

/// Size of original `source`: fixed, or drawn from the range by a stream of its own.
pub fn record_size_of(seed: u64, size: RecordSize, source: u64) -> u64 {
    match size {
        RecordSize::Fixed(s) => s,
        RecordSize::Range { min, max } => {
            let mut rng = Xoshiro256StarStar::from_seed(derive_seed("size", &[seed, min, max, source]));
            min + below(&mut rng, max - min + 1)
        }
    }
}

impl DupPlan {
    pub fn new(spec: &DatasetSpec) -> DupPlan {
        let (smin, smax) = match spec.record_size {
            RecordSize::Fixed(s) => (s, s),
            RecordSize::Range { min, max } => (min, max),
        };
        let seed = derive_seed("plan", &[spec.seed, u64::from(spec.grade.percent()), spec.records, smin, smax]);
        DupPlan {
            rng: Xoshiro256StarStar::from_seed(seed),
            seed: spec.seed,
            size: spec.record_size,
            records: spec.records,
            next: 0,
            needed: spec.grade.duplicates_of(spec.records),
            originals: Vec::new(),
        }
    }
}

impl Iterator for DupPlan {
    type Item = PlanEntry;

    fn next(&mut self) -> Option<PlanEntry> {
        let index = self.next;
        if index >= self.records {
            return None;
        }
        self.next += 1;
        // Candidates left for a duplicate slot: records index..N (record 0 never is one).
        let remaining = self.records - index;
        let duplicate = index > 0 && self.needed > 0 && below(&mut self.rng, remaining) < self.needed;
        let source = if duplicate {
            self.needed -= 1;
            let pick = below(&mut self.rng, self.originals.len() as u64);
            self.originals[pick as usize]
        } else {
            self.originals.push(index);
            index
        };
        Some(PlanEntry { index, source, size: record_size_of(self.seed, self.size, source) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.records - self.next) as usize;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dedup_lab_core::{Grade, PayloadType};
    use proptest::prelude::*;

    fn spec(records: u64, grade: u8, seed: u64) -> DatasetSpec {
        DatasetSpec {
            payload: PayloadType::RandomBinary,
            grade: Grade::new(grade).unwrap(),
            records,
            record_size: RecordSize::Fixed(64),
            seed,
            real_world: None,
        }
    }

    #[test]
    fn u90_of_500_has_exactly_50_originals() {
        let originals = DupPlan::new(&spec(500, 90, 1)).filter(|e| !e.is_duplicate()).count();
        assert_eq!(originals, 50);
    }

    proptest! {
        #[test]
        fn grade_is_exact(records in 1u64..3000, grade in 0u8..100, seed in any::<u64>()) {
            let plan: Vec<_> = DupPlan::new(&spec(records, grade, seed)).collect();
            prop_assert_eq!(plan.len() as u64, records);
            let dups = plan.iter().filter(|e| e.is_duplicate()).count() as u64;
            let exact = ((u64::from(grade) * records) as f64 / 100.0).round() as u64;
            prop_assert_eq!(dups, exact.min(records - 1));
            prop_assert!(!plan[0].is_duplicate());
            for e in &plan {
                prop_assert_eq!(e.index, plan[e.index as usize].index);
                if e.is_duplicate() {
                    // A copy points at an earlier original, never at another copy.
                    prop_assert!(e.source < e.index);
                    prop_assert!(!plan[e.source as usize].is_duplicate());
                }
            }
        }
    }

    #[test]
    fn range_sizes_are_within_bounds_and_copies_match() {
        let mut s = spec(2000, 50, 7);
        s.record_size = RecordSize::Range { min: 4096, max: 1 << 20 };
        let plan: Vec<_> = DupPlan::new(&s).collect();
        for e in &plan {
            assert!((4096..=1 << 20).contains(&e.size));
            assert_eq!(e.size, plan[e.source as usize].size);
        }
        let distinct: std::collections::HashSet<_> = plan.iter().map(|e| e.size).collect();
        assert!(distinct.len() > 500, "sizes should spread over the range");
    }
}
