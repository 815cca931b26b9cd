//! The dedup table of one block size: a fingerprint → (references, lz4 size) map, split in
//! shards so the workers rarely wait for each other.
//!
//! An entry is 24 bytes (16 of fingerprint, 4 of reference count, 4 of lz4 size, or
//! [`NOT_SAMPLED`]) plus one
//! control byte of the hash map, at a load of at most 7/8: about 27–55 bytes per distinct
//! block, depending on where the map is between two growths. Shards grow one at a time, so
//! the transient of a growth is one shard's, not the whole table's.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;

pub(crate) type Fp = [u8; 16];

const SHARDS: usize = 64;

/// A fingerprint as a map key: its bytes are already uniform, so the map's hash is 8 of
/// them (no SipHash over 16 bytes per block).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(Fp);

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes")));
    }
}

#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached through a Hash other than Key's; fold the bytes in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The lz4 size of a block that was not in the compression sample.
pub(crate) const NOT_SAMPLED: u32 = u32::MAX;

#[derive(Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) refs: u32,
    pub(crate) lz4: u32,
}

type Shard = HashMap<Key, Entry, BuildHasherDefault<KeyHasher>>;

pub(crate) struct Table {
    shards: Vec<Mutex<Shard>>,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect() }
    }

    fn shard(&self, fp: &Fp) -> std::sync::MutexGuard<'_, Shard> {
        // The last byte picks the shard; the map hashes the first eight.
        self.shards[fp[15] as usize % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one reference of `fp`. A block seen for the first time is compressed by
    /// `compress` (outside the lock) and its sizes are returned; `None` for a block already
    /// known. When two workers meet the same new block at once, one of them inserts it and
    /// the other counts a reference, so every distinct block's sizes are returned once.
    pub(crate) fn reference<T>(&self, fp: &Fp, compress: impl FnOnce() -> (u32, T)) -> Option<(u32, T)> {
        if let Some(e) = self.shard(fp).get_mut(&Key(*fp)) {
            e.refs = e.refs.saturating_add(1);
            return None;
        }
        let (lz4, rest) = compress();
        match self.shard(fp).entry(Key(*fp)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.get_mut().refs = e.get().refs.saturating_add(1);
                None
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Entry { refs: 1, lz4 });
                Some((lz4, rest))
            }
        }
    }

    /// Every distinct block's entry (for the histogram).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Entry)) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).values().for_each(&mut f);
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len() as u64).sum()
    }

    /// Bytes the maps have allocated: capacity × (entry + control byte).
    pub(crate) fn allocated_bytes(&self) -> u64 {
        let per = (std::mem::size_of::<(Key, Entry)>() + 1) as u64;
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).capacity() as u64 * per).sum()
    }
}
