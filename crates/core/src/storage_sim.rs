//! What the storage-layer dedup simulation found: would a deduplicating, compressing volume
//! (ZFS with `dedup=on` and `compression=lz4`, VDO, Btrfs with an offline deduper) catch the
//! duplicates in a set of files?
//!
//! Plain data only: the simulation itself (reading files, fingerprints, compression) lives
//! in the `dedup-lab-storagesim` crate; these types travel in measurement lines and reports.

use serde::{Deserialize, Serialize};

/// The simulation over one set of files, for every configured block size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageSim {
    /// Regular files read (each inode once).
    pub files: u64,
    /// Their apparent size (what reading them gives).
    pub file_bytes: u64,
    /// The bytes the storage EDR divides: the stage's logical bytes in a run, the files'
    /// bytes standalone.
    pub logical_bytes: u64,
    /// The block size whose storage EDR the reports show.
    pub report_block_size: u64,
    /// One entry per block size, ascending.
    pub blocks: Vec<BlockSim>,
    /// Bytes the fingerprint tables held at the end (their allocated capacity).
    pub table_bytes: u64,
    /// Wall time of the simulation.
    pub duration_ns: u64,
}

impl StorageSim {
    /// The figures at `block_size`.
    pub fn at(&self, block_size: u64) -> Option<&BlockSim> {
        self.blocks.iter().find(|b| b.block_size == block_size)
    }

    /// Storage EDR (lz4) at the report block size.
    pub fn storage_edr(&self) -> Option<f64> {
        self.at(self.report_block_size).and_then(|b| b.storage_edr)
    }

    /// Storage EDR with zstd at the report block size.
    pub fn storage_edr_zstd(&self) -> Option<f64> {
        self.at(self.report_block_size).and_then(|b| b.storage_edr_zstd)
    }
}

/// The simulation at one block size. Blocks are cut at file offsets 0, B, 2B, …; a file's
/// last, partial block is padded with zeros (what a block device holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockSim {
    pub block_size: u64,
    /// Blocks that are not all zeros, every reference counted.
    pub referenced_blocks: u64,
    /// All-zero blocks: counted apart, never stored (zero-block elimination / holes).
    pub zero_blocks: u64,
    /// Distinct non-zero blocks: what a deduplicating volume keeps.
    pub distinct_blocks: u64,
    /// 1 in `sample_rate` distinct blocks is compressed (chosen by fingerprint, the same ones
    /// on every run) and the compressed totals are estimated from them; 1 = every block, exact.
    pub sample_rate: u64,
    /// Distinct blocks compressed.
    pub sampled: u64,
    /// Bytes the distinct blocks take compressed with lz4, each block on its own and kept
    /// uncompressed where lz4 would not make it smaller; an estimate when sampled, `None`
    /// when the sample held fewer than two blocks.
    pub lz4_bytes: Option<u64>,
    /// Relative standard error of `lz4_bytes` (0 when exact).
    pub lz4_rel_error: f64,
    /// The same with zstd (level [`BlockSim::zstd_level`]).
    pub zstd_bytes: Option<u64>,
    pub zstd_level: i32,
    pub zstd_rel_error: f64,
    /// Reference-count histogram of the distinct blocks (as `zdb -S` prints it).
    pub histogram: Vec<RefBucket>,
    /// referenced ÷ distinct blocks.
    pub dedup_ratio: Option<f64>,
    /// distinct blocks' bytes ÷ their lz4 bytes.
    pub lz4_ratio: Option<f64>,
    /// distinct blocks' bytes ÷ their zstd bytes.
    pub zstd_ratio: Option<f64>,
    /// dedup × lz4.
    pub dedup_lz4: Option<f64>,
    /// dedup × zstd.
    pub dedup_zstd: Option<f64>,
    /// logical bytes ÷ lz4 bytes: the storage EDR of a deduplicating volume with lz4.
    pub storage_edr: Option<f64>,
    /// logical bytes ÷ zstd bytes.
    pub storage_edr_zstd: Option<f64>,
}

impl BlockSim {
    /// Fills the derived ratios from the counts; a ratio with nothing to divide by is `None`.
    pub fn derive(&mut self, logical_bytes: u64) {
        let div = |a: f64, b: u64| (b > 0).then(|| a / b as f64);
        let distinct_bytes = (self.distinct_blocks * self.block_size) as f64;
        self.dedup_ratio = div(self.referenced_blocks as f64, self.distinct_blocks);
        let (lz4, zstd) = (self.lz4_bytes.unwrap_or(0), self.zstd_bytes.unwrap_or(0));
        self.lz4_ratio = div(distinct_bytes, lz4);
        self.zstd_ratio = div(distinct_bytes, zstd);
        self.dedup_lz4 = div((self.referenced_blocks * self.block_size) as f64, lz4);
        self.dedup_zstd = div((self.referenced_blocks * self.block_size) as f64, zstd);
        self.storage_edr = div(logical_bytes as f64, lz4);
        self.storage_edr_zstd = div(logical_bytes as f64, zstd);
    }
}

/// Distinct blocks referenced `refs_min..=refs_max` times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefBucket {
    pub refs_min: u64,
    pub refs_max: u64,
    /// Distinct blocks in the bucket, their bytes and their lz4 bytes (estimated from the
    /// bucket's sampled blocks when sampled).
    pub blocks: u64,
    pub lsize: u64,
    pub psize: u64,
    /// The same, every reference counted.
    pub ref_blocks: u64,
    pub ref_lsize: u64,
    pub ref_psize: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ratios() {
        let mut b = BlockSim {
            block_size: 4096,
            referenced_blocks: 100,
            zero_blocks: 3,
            distinct_blocks: 10,
            sample_rate: 1,
            sampled: 10,
            lz4_bytes: Some(20480),
            lz4_rel_error: 0.0,
            zstd_bytes: Some(10240),
            zstd_level: 3,
            zstd_rel_error: 0.0,
            histogram: Vec::new(),
            dedup_ratio: None,
            lz4_ratio: None,
            zstd_ratio: None,
            dedup_lz4: None,
            dedup_zstd: None,
            storage_edr: None,
            storage_edr_zstd: None,
        };
        b.derive(409_600);
        assert_eq!(b.dedup_ratio, Some(10.0));
        assert_eq!(b.lz4_ratio, Some(2.0));
        assert_eq!(b.zstd_ratio, Some(4.0));
        assert_eq!(b.dedup_lz4, Some(20.0));
        assert_eq!(b.storage_edr, Some(20.0));
        assert_eq!(b.storage_edr_zstd, Some(40.0));
        b.distinct_blocks = 0;
        b.lz4_bytes = None;
        b.derive(0);
        assert_eq!((b.dedup_ratio, b.storage_edr), (None, None), "nothing stored: undefined, not infinite");
    }
}
