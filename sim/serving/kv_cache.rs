//! The paged KV cache of one replica: a pool of fixed-size blocks, and the manager that hands
//! them to sequences and holds reservations for KV arriving from another replica.
//!
//! Only counts are kept: which physical block holds what does not change any timing. The pool
//! never hands out more blocks than it has; callers must ask before computing tokens.

use super::kv_tiers::HostTiers;
use super::prefix_cache::{Insertion, PrefixCache, PrefixLookup};
use super::Sequence;
use crate::records::PrefixHashes;
use std::sync::Arc;

/// A pool of KV-cache blocks.
#[derive(Debug, Clone)]
pub struct BlockPool {
    block_size_tokens: u64,
    capacity_blocks: u64,
    used_blocks: u64,
    peak_used_blocks: u64,
}

impl BlockPool {
    /// A pool of `capacity_blocks` blocks of `block_size_tokens` tokens.
    pub fn new(capacity_blocks: u64, block_size_tokens: u64) -> Self {
        BlockPool { block_size_tokens: block_size_tokens.max(1), capacity_blocks, used_blocks: 0, peak_used_blocks: 0 }
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u64) -> u64 {
        tokens.div_ceil(self.block_size_tokens)
    }

    /// Takes `blocks` blocks if that many are free.
    pub fn try_allocate(&mut self, blocks: u64) -> bool {
        if self.used_blocks + blocks > self.capacity_blocks {
            return false;
        }
        self.used_blocks += blocks;
        self.peak_used_blocks = self.peak_used_blocks.max(self.used_blocks);
        true
    }

    /// Returns `blocks` blocks.
    pub fn release(&mut self, blocks: u64) {
        debug_assert!(blocks <= self.used_blocks, "released more KV blocks than held");
        self.used_blocks -= blocks.min(self.used_blocks);
    }

    /// Blocks in use.
    pub fn used_blocks(&self) -> u64 {
        self.used_blocks
    }

    /// Blocks not in use.
    pub fn free_blocks(&self) -> u64 {
        self.capacity_blocks - self.used_blocks
    }

    /// Total blocks.
    pub fn capacity_blocks(&self) -> u64 {
        self.capacity_blocks
    }

    /// Most blocks ever in use at once.
    pub fn peak_used_blocks(&self) -> u64 {
        self.peak_used_blocks
    }

    /// Tokens per block.
    pub fn block_size_tokens(&self) -> u64 {
        self.block_size_tokens
    }
}

/// Hands blocks of a [`BlockPool`] to sequences: each sequence's allocation is recorded in
/// the sequence (`kv_blocks`, plus `shared_blocks` it uses through prefix-cache entries), and
/// only this manager changes it. With a prefix cache, blocks of entries no sequence uses
/// count as free: they are evicted, least recently released first, when blocks are needed.
#[derive(Debug, Clone)]
pub struct KvManager {
    pool: BlockPool,
    cache: Option<PrefixCache>,
    prefixes: Arc<PrefixHashes>,
    peak_used_blocks: u64,
    tiers: Option<HostTiers>,
    /// Host-link transfer time of swaps and prefix loads not yet charged to a batch, s.
    pending_transfer_s: f64,
}

impl KvManager {
    /// A manager of `pool` without a prefix cache.
    pub fn new(pool: BlockPool) -> Self {
        KvManager {
            pool,
            cache: None,
            prefixes: Arc::default(),
            peak_used_blocks: 0,
            tiers: None,
            pending_transfer_s: 0.0,
        }
    }

    /// A manager of `pool` whose `cache` indexes the prompts' `prefixes`.
    pub fn with_prefix_cache(pool: BlockPool, cache: PrefixCache, prefixes: Arc<PrefixHashes>) -> Self {
        KvManager { pool, cache: Some(cache), prefixes, peak_used_blocks: 0, tiers: None, pending_transfer_s: 0.0 }
    }

    /// Adds host tiers below the device (swap preemption, offloaded prefix blocks).
    pub fn with_tiers(mut self, tiers: HostTiers) -> Self {
        self.tiers = Some(tiers);
        self
    }

    /// The host tiers, if any.
    pub fn tiers(&self) -> Option<&HostTiers> {
        self.tiers.as_ref()
    }

    /// Host-link transfer time incurred since the last call, to charge to the next batch, s.
    pub fn take_transfer_s(&mut self) -> f64 {
        std::mem::take(&mut self.pending_transfer_s)
    }

    /// The pool.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    /// The prefix cache, if any.
    pub fn prefix_cache(&self) -> Option<&PrefixCache> {
        self.cache.as_ref()
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u64) -> u64 {
        self.pool.blocks_for(tokens)
    }

    /// Blocks a sequence could get now: free ones and evictable cached ones.
    pub fn free_blocks(&self) -> u64 {
        self.pool.free_blocks() + self.cache.as_ref().map_or(0, PrefixCache::evictable_blocks)
    }

    /// Blocks in use by sequences and by cached prefixes they use.
    pub fn used_blocks(&self) -> u64 {
        self.pool.capacity_blocks() - self.free_blocks()
    }

    /// Takes `blocks` blocks, evicting unused cached prefixes as needed; false (and nothing
    /// evicted) when even that would not give enough.
    fn take(&mut self, blocks: u64) -> bool {
        if blocks > self.free_blocks() {
            return false;
        }
        while self.pool.free_blocks() < blocks {
            let (hash, evicted) =
                self.cache.as_mut().and_then(PrefixCache::evict_one).expect("evictable blocks were counted");
            self.pool.release(evicted);
            if let Some(tiers) = &mut self.tiers {
                tiers.offload_prefix(hash);
            }
        }
        let taken = self.pool.try_allocate(blocks);
        self.peak_used_blocks = self.peak_used_blocks.max(self.used_blocks());
        taken
    }

    /// Blocks in the pool.
    pub fn capacity_blocks(&self) -> u64 {
        self.pool.capacity_blocks()
    }

    /// Most blocks ever in use by sequences (and the cached prefixes they used) at once.
    pub fn peak_used_blocks(&self) -> u64 {
        self.peak_used_blocks
    }

    /// The hashes of `sequence`'s prompt blocks it could reuse: never the block holding its
    /// last prompt token, whose logits must be computed.
    fn reusable_hashes(&self, sequence: &Sequence) -> &[u64] {
        let hashes = self.prefixes.of(sequence.prefix);
        let block_tokens = u64::from(self.prefixes.block_tokens.max(1));
        let usable = ((sequence.context_tokens.saturating_sub(1)) / block_tokens).min(hashes.len() as u64);
        &hashes[..usable as usize]
    }

    /// What `sequence`, not yet computed at all, finds of its prompt in the prefix cache.
    pub fn lookup(&self, sequence: &Sequence) -> PrefixLookup {
        match &self.cache {
            Some(cache) if sequence.computed_tokens == 0 && sequence.prefix.blocks > 0 => {
                cache.lookup(self.reusable_hashes(sequence), sequence.request as u32, self.tiers.as_ref())
            }
            _ => PrefixLookup::default(),
        }
    }

    /// Prompt tokens a lookup's hits cover.
    pub fn hit_tokens(&self, lookup: PrefixLookup) -> u64 {
        u64::from(lookup.hit_entries) * u64::from(self.prefixes.block_tokens)
    }

    /// Blocks `sequence` must be given to hold `reserve_tokens` tokens after reusing
    /// `lookup`'s hits, and whether they can be had now.
    pub fn can_admit(&self, sequence: &Sequence, lookup: PrefixLookup, reserve_tokens: u64) -> bool {
        let (own, reclaimed) = self.admission_blocks(sequence, lookup, reserve_tokens);
        own <= self.free_blocks() - reclaimed
    }

    /// (own blocks needed, evictable blocks the hits would take out of the free count).
    fn admission_blocks(&self, sequence: &Sequence, lookup: PrefixLookup, reserve_tokens: u64) -> (u64, u64) {
        let Some(cache) = &self.cache else { return (self.pool.blocks_for(reserve_tokens), 0) };
        let hits = &self.reusable_hashes(sequence)[..lookup.hit_entries as usize];
        let shared = if cache.holds_blocks() { hits.len() as u64 * cache.entry_blocks() } else { 0 };
        // Offloaded hits come back into blocks the pool must give.
        let loaded = if cache.holds_blocks() { u64::from(lookup.offloaded_entries) * cache.entry_blocks() } else { 0 };
        (self.pool.blocks_for(reserve_tokens).saturating_sub(shared) + loaded, cache.evictable_among(hits))
    }

    /// Gives a fresh `sequence` its prefix hits and the blocks for `reserve_tokens` tokens in
    /// all (hits included); false (nothing taken) when they are not free. Its prompt blocks
    /// still to compute are marked as in flight for caches that share them.
    pub fn admit(&mut self, sequence: &mut Sequence, lookup: PrefixLookup, reserve_tokens: u64) -> bool {
        let (own, reclaimed) = self.admission_blocks(sequence, lookup, reserve_tokens);
        if own > self.free_blocks() - reclaimed {
            return false;
        }
        let mut hit_tokens = self.hit_tokens(lookup);
        let mut own = own;
        if self.cache.is_some() {
            // The blocks of offloaded hits are taken one by one below, the rest at the end.
            let hashes = self.prefixes.clone();
            let hashes = hashes.of(sequence.prefix);
            let block_tokens = u64::from(self.prefixes.block_tokens.max(1));
            let usable = ((sequence.context_tokens.saturating_sub(1)) / block_tokens).min(hashes.len() as u64) as usize;
            let mut hits = lookup.hit_entries as usize;
            // Offloaded hits come back first: each takes its blocks from the pool (counted in
            // `own` above) and becomes a device entry this sequence uses.
            for (at, &hash) in hashes[..hits].iter().enumerate() {
                let cache = self.cache.as_mut().expect("checked");
                if cache.resident(hash) {
                    cache.acquire(&[hash]);
                    continue;
                }
                let entry_blocks = cache.entry_blocks();
                let holds = cache.holds_blocks();
                if holds {
                    let taken = self.take(entry_blocks);
                    debug_assert!(taken, "free blocks were checked");
                }
                let (pool, tiers) = (&mut self.pool, &mut self.tiers);
                let cache = self.cache.as_mut().expect("checked");
                let loaded = cache.insert_loaded(hash, &mut |evicted, blocks| {
                    pool.release(blocks);
                    if let Some(tiers) = tiers.as_mut() {
                        tiers.offload_prefix(evicted);
                    }
                });
                if !loaded {
                    // No room to keep it cached: the chain ends here and the rest is computed.
                    if holds {
                        self.pool.release(entry_blocks);
                    }
                    hits = at;
                    break;
                }
                // The loaded entry holds the blocks just taken.
                let tiers = self.tiers.as_mut().expect("offloaded hits need tiers");
                self.pending_transfer_s += tiers.load_prefix(hash);
            }
            hit_tokens = hits as u64 * block_tokens;
            let cache = self.cache.as_mut().expect("checked");
            cache.mark_pending(&hashes[hits..usable], sequence.request as u32);
            sequence.cached_entries = hits as u32;
            sequence.shared_blocks = if cache.holds_blocks() { hits as u64 * cache.entry_blocks() } else { 0 };
            own = self.pool.blocks_for(reserve_tokens).saturating_sub(sequence.shared_blocks);
        }
        let taken = self.take(own);
        debug_assert!(taken, "free blocks were checked");
        sequence.kv_blocks = own;
        sequence.computed_tokens = hit_tokens;
        true
    }

    /// Grows `sequence`'s allocation to hold its computed tokens plus `tokens` more; false
    /// (and nothing taken) when the pool lacks the blocks.
    pub fn grow(&mut self, sequence: &mut Sequence, tokens: u64) -> bool {
        let held = sequence.kv_blocks + sequence.shared_blocks;
        let extra = self.pool.blocks_for(sequence.computed_tokens + tokens).saturating_sub(held);
        if self.take(extra) {
            sequence.kv_blocks += extra;
            true
        } else {
            false
        }
    }

    /// Returns the blocks `sequence` holds beyond its computed tokens (speculative tokens the
    /// verification rejected: their KV is rolled back).
    pub fn trim(&mut self, sequence: &mut Sequence) {
        let needed = self.pool.blocks_for(sequence.computed_tokens);
        let held = sequence.kv_blocks + sequence.shared_blocks;
        let surplus = held.saturating_sub(needed).min(sequence.kv_blocks);
        self.pool.release(surplus);
        sequence.kv_blocks -= surplus;
    }

    /// Offers the prompt blocks `sequence` has finished computing to the prefix cache.
    pub fn on_computed(&mut self, sequence: &mut Sequence) {
        let Some(cache) = &mut self.cache else { return };
        if sequence.prefix.blocks == 0 {
            return;
        }
        let hashes = self.prefixes.of(sequence.prefix);
        let block_tokens = u64::from(self.prefixes.block_tokens.max(1));
        let full = (sequence.computed_tokens / block_tokens).min(hashes.len() as u64) as u32;
        let (pool, tiers) = (&mut self.pool, &mut self.tiers);
        while sequence.cached_entries < full {
            let hash = hashes[sequence.cached_entries as usize];
            let entry_blocks = cache.entry_blocks();
            let mut evict = |evicted: u64, blocks: u64| {
                pool.release(blocks);
                if let Some(tiers) = tiers.as_mut() {
                    tiers.offload_prefix(evicted);
                }
            };
            match cache.insert(hash, sequence.request as u32, &mut evict) {
                Insertion::Adopted => {
                    sequence.kv_blocks -= entry_blocks;
                    sequence.shared_blocks += entry_blocks;
                }
                Insertion::Shared => {
                    pool.release(entry_blocks);
                    sequence.kv_blocks -= entry_blocks;
                    sequence.shared_blocks += entry_blocks;
                }
                Insertion::Indexed => {}
                Insertion::Refused => {
                    // The chain ends here: later blocks could never be found past this one.
                    cache.drop_pending(&hashes[sequence.cached_entries as usize..], sequence.request as u32);
                    sequence.prefix.blocks = sequence.cached_entries;
                    return;
                }
            }
            sequence.cached_entries += 1;
        }
    }

    /// Frees everything `sequence` holds and drops its references to cached prefixes.
    pub fn free(&mut self, sequence: &mut Sequence) {
        self.pool.release(sequence.kv_blocks);
        sequence.kv_blocks = 0;
        if let Some(cache) = &mut self.cache {
            let hashes = self.prefixes.of(sequence.prefix);
            let held = sequence.cached_entries as usize;
            cache.release(&hashes[..held]);
            cache.drop_pending(&hashes[held..], sequence.request as u32);
        }
        sequence.cached_entries = 0;
        sequence.shared_blocks = 0;
    }

    /// Swaps `sequence`'s KV out to host DRAM when the tiers swap and have room: frees its
    /// device blocks and records what it must load back. False (nothing changed) otherwise.
    pub fn swap_out(&mut self, sequence: &mut Sequence) -> bool {
        let blocks = sequence.kv_blocks + sequence.shared_blocks;
        let Some(tiers) = self.tiers.as_mut().filter(|t| t.swaps()) else { return false };
        let Some(seconds) = tiers.swap_out(blocks) else { return false };
        self.pending_transfer_s += seconds;
        self.free(sequence);
        sequence.swapped_blocks = blocks;
        true
    }

    /// Brings a swapped-out `sequence`'s KV back when the blocks are free; false otherwise.
    pub fn swap_in(&mut self, sequence: &mut Sequence) -> bool {
        let blocks = sequence.swapped_blocks;
        if !self.take(blocks) {
            return false;
        }
        let tiers = self.tiers.as_mut().expect("swapped sequences come from tiers");
        self.pending_transfer_s += tiers.swap_in(blocks);
        sequence.kv_blocks = blocks;
        sequence.swapped_blocks = 0;
        true
    }

    /// Reserves the blocks for `tokens` tokens of KV arriving from another replica; the
    /// number of blocks taken, or None when they are not free (no sequence is preempted to
    /// make room).
    pub fn reserve(&mut self, tokens: u64) -> Option<u64> {
        let blocks = self.pool.blocks_for(tokens);
        self.take(blocks).then_some(blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_exceeds_capacity() {
        let mut pool = BlockPool::new(10, 16);
        assert_eq!(pool.blocks_for(17), 2);
        assert!(pool.try_allocate(7));
        assert!(!pool.try_allocate(4));
        assert!(pool.try_allocate(3));
        pool.release(5);
        assert_eq!(pool.used_blocks(), 5);
        assert_eq!(pool.peak_used_blocks(), 10);
    }

    #[test]
    fn sequences_grow_block_by_block_and_reservations_take_only_free_blocks() {
        let mut kv = KvManager::new(BlockPool::new(4, 16));
        let mut sequence = Sequence::new(0, (0, 0), 20, 5);
        assert!(kv.admit(&mut sequence, PrefixLookup::default(), 20));
        assert_eq!(sequence.kv_blocks, 2);
        sequence.computed_tokens = 20;
        assert!(kv.grow(&mut sequence, 12));
        assert_eq!(sequence.kv_blocks, 2, "32 tokens still fit in 2 blocks");
        assert!(kv.grow(&mut sequence, 13));
        assert_eq!(sequence.kv_blocks, 3);
        assert_eq!(kv.reserve(32), None, "2 blocks wanted, 1 free");
        assert_eq!(kv.reserve(16), Some(1));
        kv.free(&mut sequence);
        assert_eq!(kv.pool().used_blocks(), 1);
    }
}
