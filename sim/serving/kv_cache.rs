//! The paged KV cache of one replica, as a pool of fixed-size blocks.
//!
//! Only counts are kept: which physical block holds what does not change any timing. The pool
//! never hands out more blocks than it has; callers must ask before computing tokens.

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
}
