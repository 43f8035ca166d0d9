//! The prefix cache of one replica: KV of prompt prefixes kept after the requests that
//! computed them, found again by the hash of the prefix.
//!
//! An entry is one hashed block of prompt tokens (a Mooncake `hash_ids` block; the hash of a
//! block stands for the whole prefix up to it, so a request can reuse only a leading run of
//! entries). Entries no running sequence uses are evictable, least recently released first
//! (vLLM's free-block queue and SGLang's radix-tree LRU evict in this order). A sequence may
//! also find an entry that another running sequence is computing right now ("pending"):
//! with `share_in_flight` (SGLang's in-batch prefix sharing) it waits for it rather than
//! computing it again.
//!
//! This module only keeps the index and the counts; the KV blocks themselves are counted by
//! the `KvManager`, which moves them between sequences and entries. With `Unlimited`
//! capacity the index keeps every block ever computed and holds no blocks (a what-if bound).

use super::kv_tiers::HostTiers;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

/// How much the cache may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheCapacity {
    /// Entries hold KV blocks of the pool, at most this many blocks in all.
    Blocks(u64),
    /// Every computed block stays findable and holds no pool blocks (a what-if bound).
    Unlimited,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The request computing it now, while pending.
    pending_owner: Option<u32>,
    /// Sequences using it.
    refs: u32,
    /// Its key in the LRU order while evictable.
    released_at: u64,
}

/// What a sequence finds in the cache for its prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrefixLookup {
    /// Leading entries it can reuse (on the device or offloaded).
    pub hit_entries: u32,
    /// Of those, entries offloaded to host tiers (to be loaded back).
    pub offloaded_entries: u32,
    /// Whether the next entry is being computed by another sequence and the cache shares
    /// in-flight prefixes: the sequence should wait rather than compute it.
    pub wait: bool,
}

/// Hit and traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrefixCacheStats {
    /// Entries evicted.
    pub evictions: u64,
    /// Entries inserted.
    pub insertions: u64,
}

/// The prefix index of one replica.
#[derive(Debug, Clone)]
pub struct PrefixCache {
    entries: HashMap<u64, Entry, BuildHasherDefault<std::collections::hash_map::DefaultHasher>>,
    /// Evictable entries by release order.
    lru: BTreeMap<u64, u64>,
    clock: u64,
    capacity: CacheCapacity,
    entry_blocks: u64,
    held_blocks: u64,
    share_in_flight: bool,
    stats: PrefixCacheStats,
}

/// What became of a block a sequence finished computing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insertion {
    /// The cache took the block's KV: the sequence now refers to the entry.
    Adopted,
    /// The cache already had it: the sequence refers to the entry and frees its copy.
    Shared,
    /// The cache indexes it without holding blocks (unlimited), the sequence keeps its KV.
    Indexed,
    /// No room: the sequence keeps its KV and the prefix chain ends here for it.
    Refused,
}

impl PrefixCache {
    /// A cache of `capacity` whose entries hold `entry_blocks` KV blocks each.
    pub fn new(capacity: CacheCapacity, entry_blocks: u64, share_in_flight: bool) -> Self {
        PrefixCache {
            entries: HashMap::default(),
            lru: BTreeMap::new(),
            clock: 0,
            capacity,
            entry_blocks: entry_blocks.max(1),
            held_blocks: 0,
            share_in_flight,
            stats: PrefixCacheStats::default(),
        }
    }

    /// KV blocks per entry.
    pub fn entry_blocks(&self) -> u64 {
        self.entry_blocks
    }

    /// Whether entries hold pool blocks.
    pub fn holds_blocks(&self) -> bool {
        matches!(self.capacity, CacheCapacity::Blocks(_))
    }

    /// Blocks held by entries no sequence uses (free to evict).
    pub fn evictable_blocks(&self) -> u64 {
        if self.holds_blocks() {
            self.lru.len() as u64 * self.entry_blocks
        } else {
            0
        }
    }

    /// Blocks held by all entries.
    pub fn held_blocks(&self) -> u64 {
        self.held_blocks
    }

    /// Counters.
    pub fn stats(&self) -> PrefixCacheStats {
        self.stats
    }

    /// The leading entries of `hashes` that `request` may reuse, on the device or offloaded
    /// to `tiers`.
    pub fn lookup(&self, hashes: &[u64], request: u32, tiers: Option<&HostTiers>) -> PrefixLookup {
        let mut lookup = PrefixLookup::default();
        for hash in hashes {
            match self.entries.get(hash) {
                Some(entry) if entry.pending_owner.is_none() => lookup.hit_entries += 1,
                Some(entry) if self.share_in_flight && entry.pending_owner != Some(request) => {
                    lookup.wait = true;
                    break;
                }
                Some(_) => break,
                None if tiers.is_some_and(|t| t.locate(*hash).is_some()) => {
                    lookup.hit_entries += 1;
                    lookup.offloaded_entries += 1;
                }
                None => break,
            }
        }
        lookup
    }

    /// Whether `hash` is on the device and computed.
    pub fn resident(&self, hash: u64) -> bool {
        self.entries.get(&hash).is_some_and(|e| e.pending_owner.is_none())
    }

    /// Brings a block loaded back from a host tier onto the device, used by one sequence;
    /// `evict` frees room as in `insert`. False when the cache has no room for it.
    pub fn insert_loaded(&mut self, hash: u64, evict: &mut dyn FnMut(u64, u64)) -> bool {
        if let CacheCapacity::Blocks(limit) = self.capacity {
            while self.held_blocks + self.entry_blocks > limit {
                match self.evict_one() {
                    Some((evicted, blocks)) => evict(evicted, blocks),
                    None => return false,
                }
            }
            self.held_blocks += self.entry_blocks;
        }
        self.entries.insert(hash, Entry { pending_owner: None, refs: 1, released_at: 0 });
        true
    }

    /// Evictable blocks among the first `count` entries of `hashes` (reusing them makes them
    /// unevictable).
    pub fn evictable_among(&self, hashes: &[u64]) -> u64 {
        if !self.holds_blocks() {
            return 0;
        }
        hashes.iter().filter(|h| self.entries.get(h).is_some_and(|e| e.refs == 0)).count() as u64 * self.entry_blocks
    }

    /// Takes a reference on each of `hashes` (all present and computed).
    pub fn acquire(&mut self, hashes: &[u64]) {
        for hash in hashes {
            let entry = self.entries.get_mut(hash).expect("acquired entries were looked up");
            if entry.refs == 0 {
                self.lru.remove(&entry.released_at);
            }
            entry.refs += 1;
        }
    }

    /// Drops a reference on each of `hashes`; unused entries become evictable, the last
    /// released evicted last.
    pub fn release(&mut self, hashes: &[u64]) {
        for hash in hashes {
            let Some(entry) = self.entries.get_mut(hash) else { continue };
            entry.refs -= 1;
            if entry.refs == 0 {
                self.clock += 1;
                entry.released_at = self.clock;
                self.lru.insert(self.clock, *hash);
            }
        }
    }

    /// Marks the absent entries of `hashes` as being computed by `request`.
    pub fn mark_pending(&mut self, hashes: &[u64], request: u32) {
        if !self.share_in_flight {
            return;
        }
        for hash in hashes {
            self.entries.entry(*hash).or_insert(Entry { pending_owner: Some(request), refs: 0, released_at: 0 });
        }
    }

    /// Removes the pending marks `request` left on `hashes` (it stopped computing them).
    pub fn drop_pending(&mut self, hashes: &[u64], request: u32) {
        for hash in hashes {
            if self.entries.get(hash).is_some_and(|e| e.pending_owner == Some(request)) {
                self.entries.remove(hash);
            }
        }
    }

    /// Records that `request` finished computing the block `hash`. `evict` is called to free
    /// pool blocks when the cache is at its capacity.
    pub fn insert(&mut self, hash: u64, request: u32, evict: &mut dyn FnMut(u64, u64)) -> Insertion {
        match self.entries.get_mut(&hash) {
            Some(entry) if entry.pending_owner == Some(request) => {
                entry.pending_owner = None;
            }
            Some(entry) if entry.pending_owner.is_none() => {
                if entry.refs == 0 {
                    self.lru.remove(&entry.released_at);
                }
                entry.refs += 1;
                return if self.holds_blocks() { Insertion::Shared } else { Insertion::Indexed };
            }
            // Someone else's pending block (no sharing in flight): computed twice.
            Some(_) => return Insertion::Refused,
            None => {
                self.entries.insert(hash, Entry { pending_owner: None, refs: 0, released_at: 0 });
            }
        }
        if let CacheCapacity::Blocks(limit) = self.capacity {
            while self.held_blocks + self.entry_blocks > limit {
                match self.evict_one() {
                    Some((evicted, blocks)) => evict(evicted, blocks),
                    None => {
                        self.entries.remove(&hash);
                        return Insertion::Refused;
                    }
                }
            }
            self.held_blocks += self.entry_blocks;
        }
        self.stats.insertions += 1;
        self.entries.get_mut(&hash).expect("just inserted").refs = 1;
        if self.holds_blocks() {
            Insertion::Adopted
        } else {
            Insertion::Indexed
        }
    }

    /// Evicts the least recently released unused entry; its hash and the pool blocks it held.
    pub fn evict_one(&mut self) -> Option<(u64, u64)> {
        let (_, hash) = self.lru.pop_first()?;
        self.entries.remove(&hash);
        self.held_blocks -= self.entry_blocks;
        self.stats.evictions += 1;
        Some((hash, self.entry_blocks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_is_a_leading_run_and_eviction_is_least_recently_released() {
        let mut cache = PrefixCache::new(CacheCapacity::Blocks(6), 2, false);
        let mut freed = 0;
        for hash in [10, 11, 12] {
            assert_eq!(cache.insert(hash, 0, &mut |_, b| freed += b), Insertion::Adopted);
        }
        assert_eq!(cache.lookup(&[10, 11, 99, 12], 1, None).hit_entries, 2, "a miss ends the run");
        cache.release(&[12]);
        cache.release(&[10, 11]);
        assert_eq!(cache.evictable_blocks(), 6);
        // A fourth entry needs room: the first released (12) goes.
        assert_eq!(cache.insert(13, 2, &mut |_, b| freed += b), Insertion::Adopted);
        assert_eq!(freed, 2);
        assert_eq!(cache.lookup(&[12], 3, None).hit_entries, 0);
        assert_eq!(cache.lookup(&[10, 11], 3, None).hit_entries, 2);
    }

    #[test]
    fn in_flight_prefixes_make_others_wait_only_when_shared() {
        let mut shared = PrefixCache::new(CacheCapacity::Unlimited, 1, true);
        shared.mark_pending(&[1, 2], 7);
        assert_eq!(shared.lookup(&[1, 2], 8, None), PrefixLookup { hit_entries: 0, offloaded_entries: 0, wait: true });
        assert_eq!(shared.lookup(&[1, 2], 7, None), PrefixLookup { hit_entries: 0, offloaded_entries: 0, wait: false });
        assert_eq!(shared.insert(1, 7, &mut |_, _| {}), Insertion::Indexed);
        assert_eq!(shared.lookup(&[1, 2], 8, None), PrefixLookup { hit_entries: 1, offloaded_entries: 0, wait: true });
        shared.drop_pending(&[2], 7);
        assert_eq!(shared.lookup(&[1, 2], 8, None), PrefixLookup { hit_entries: 1, offloaded_entries: 0, wait: false });
        let mut private = PrefixCache::new(CacheCapacity::Unlimited, 1, false);
        private.mark_pending(&[1], 7);
        assert_eq!(private.lookup(&[1], 8, None), PrefixLookup { hit_entries: 0, offloaded_entries: 0, wait: false });
    }
}
