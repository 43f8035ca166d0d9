//! The paged KV cache of one replica: a pool of fixed-size blocks, and the manager that hands
//! them to sequences and holds reservations for KV arriving from another replica.
//!
//! Only counts are kept: which physical block holds what does not change any timing. The pool
//! never hands out more blocks than it has; callers must ask before computing tokens.

use super::Sequence;

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
/// the sequence (`kv_blocks`), and only this manager changes it.
#[derive(Debug, Clone)]
pub struct KvManager {
    pool: BlockPool,
}

impl KvManager {
    /// A manager of `pool`.
    pub fn new(pool: BlockPool) -> Self {
        KvManager { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u64) -> u64 {
        self.pool.blocks_for(tokens)
    }

    /// Grows `sequence`'s allocation to hold its computed tokens plus `tokens` more; false
    /// (and nothing taken) when the pool lacks the blocks.
    pub fn grow(&mut self, sequence: &mut Sequence, tokens: u64) -> bool {
        let extra = self.pool.blocks_for(sequence.computed_tokens + tokens).saturating_sub(sequence.kv_blocks);
        if self.pool.try_allocate(extra) {
            sequence.kv_blocks += extra;
            true
        } else {
            false
        }
    }

    /// Gives a fresh `sequence` the blocks for its first `tokens`; false when they are not
    /// free.
    pub fn admit(&mut self, sequence: &mut Sequence, tokens: u64) -> bool {
        let blocks = self.pool.blocks_for(tokens);
        if self.pool.try_allocate(blocks) {
            sequence.kv_blocks = blocks;
            true
        } else {
            false
        }
    }

    /// Frees everything `sequence` holds.
    pub fn free(&mut self, sequence: &mut Sequence) {
        self.pool.release(sequence.kv_blocks);
        sequence.kv_blocks = 0;
    }

    /// Reserves the blocks for `tokens` tokens of KV arriving from another replica; the
    /// number of blocks taken, or None when they are not free (no sequence is preempted to
    /// make room).
    pub fn reserve(&mut self, tokens: u64) -> Option<u64> {
        let blocks = self.pool.blocks_for(tokens);
        self.pool.try_allocate(blocks).then_some(blocks)
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
        assert!(kv.admit(&mut sequence, 20));
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
