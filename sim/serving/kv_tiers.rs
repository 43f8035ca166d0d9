//! KV tiers below the device: host DRAM (and optionally local NVMe) that a replica offloads
//! KV to over its devices' host links — sequences swapped out by preemption, and prefix-cache
//! blocks evicted from the device, which can be loaded back instead of recomputed.
//!
//! Capacities are counted in KV blocks of the replica; swapped sequences and offloaded prefix
//! blocks share host DRAM (swaps first: a swap evicts offloaded prefix blocks to make room).
//! Offloaded prefix blocks leave host DRAM for NVMe, least recently offloaded first, when
//! DRAM is full, and leave NVMe the same way. Times are the bytes each device moves over its
//! link divided by the link's bandwidth, plus its latency. This module keeps counts and
//! prices moves; it does not decide what to move (the KV manager and batch policies do).

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

type Index = HashMap<u64, u64, BuildHasherDefault<std::collections::hash_map::DefaultHasher>>;

/// Sizes and speeds of a replica's tiers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierSpec {
    /// Host-DRAM capacity, blocks.
    pub host_blocks: u64,
    /// NVMe capacity, blocks (0: no NVMe tier).
    pub nvme_blocks: u64,
    /// Bytes of one block on one device.
    pub block_bytes_per_device: f64,
    /// Host-link bandwidth per device and direction, bytes/s.
    pub host_link_bytes_per_s: f64,
    /// Host-link latency, s.
    pub host_link_latency_s: f64,
    /// NVMe read bandwidth per device, bytes/s.
    pub nvme_read_bytes_per_s: f64,
    /// Whether preemption swaps to host DRAM.
    pub swap_preemption: bool,
}

/// Which tier an offloaded block is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Host DRAM.
    Host,
    /// Local NVMe.
    Nvme,
}

/// Traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TierStats {
    /// Sequences swapped out.
    pub swap_outs: u64,
    /// Sequences swapped back in.
    pub swap_ins: u64,
    /// Blocks moved by swaps (both ways).
    pub swapped_blocks: u64,
    /// Prefix blocks loaded back from host DRAM.
    pub loaded_from_host_blocks: u64,
    /// Prefix blocks loaded back from NVMe.
    pub loaded_from_nvme_blocks: u64,
    /// Seconds of host-link transfers.
    pub transfer_s: f64,
}

/// One offloaded-prefix tier: entries in offload order.
#[derive(Debug, Clone, Default)]
struct PrefixTier {
    order: BTreeMap<u64, u64>,
    index: Index,
}

impl PrefixTier {
    fn insert(&mut self, tick: u64, hash: u64) {
        self.order.insert(tick, hash);
        self.index.insert(hash, tick);
    }
    fn remove(&mut self, hash: u64) -> bool {
        match self.index.remove(&hash) {
            Some(tick) => {
                self.order.remove(&tick);
                true
            }
            None => false,
        }
    }
    fn pop_oldest(&mut self) -> Option<u64> {
        let (_, hash) = self.order.pop_first()?;
        self.index.remove(&hash);
        Some(hash)
    }
}

/// A replica's host tiers.
#[derive(Debug, Clone)]
pub struct HostTiers {
    spec: TierSpec,
    swapped_blocks: u64,
    host_prefix: PrefixTier,
    nvme_prefix: PrefixTier,
    entry_blocks: u64,
    clock: u64,
    stats: TierStats,
}

impl HostTiers {
    /// Tiers of `spec` whose prefix entries hold `entry_blocks` blocks each.
    pub fn new(spec: TierSpec, entry_blocks: u64) -> Self {
        HostTiers {
            spec,
            swapped_blocks: 0,
            host_prefix: PrefixTier::default(),
            nvme_prefix: PrefixTier::default(),
            entry_blocks: entry_blocks.max(1),
            clock: 0,
            stats: TierStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> TierStats {
        self.stats
    }

    /// Whether preemption swaps.
    pub fn swaps(&self) -> bool {
        self.spec.swap_preemption
    }

    /// Host-DRAM blocks in use.
    pub fn host_used_blocks(&self) -> u64 {
        self.swapped_blocks + self.host_prefix.order.len() as u64 * self.entry_blocks
    }

    /// Seconds to move `blocks` between a device and host DRAM.
    pub fn host_transfer_s(&self, blocks: u64) -> f64 {
        if blocks == 0 {
            return 0.0;
        }
        self.spec.host_link_latency_s
            + blocks as f64 * self.spec.block_bytes_per_device / self.spec.host_link_bytes_per_s
    }

    /// Seconds to read `blocks` from NVMe into a device.
    pub fn nvme_read_s(&self, blocks: u64) -> f64 {
        if blocks == 0 {
            return 0.0;
        }
        let bandwidth = self.spec.nvme_read_bytes_per_s.min(self.spec.host_link_bytes_per_s);
        self.spec.host_link_latency_s + blocks as f64 * self.spec.block_bytes_per_device / bandwidth
    }

    /// Takes host DRAM for a swapped-out sequence of `blocks`, pushing offloaded prefix
    /// blocks down (or out) to make room; false (nothing moved) when even that is not enough.
    /// Returns the swap's transfer time.
    pub fn swap_out(&mut self, blocks: u64) -> Option<f64> {
        if self.swapped_blocks + blocks > self.spec.host_blocks {
            return None;
        }
        while self.host_used_blocks() + blocks > self.spec.host_blocks {
            let hash = self.host_prefix.pop_oldest().expect("prefix blocks fill the rest");
            self.demote_to_nvme(hash);
        }
        self.swapped_blocks += blocks;
        self.stats.swap_outs += 1;
        self.stats.swapped_blocks += blocks;
        let seconds = self.host_transfer_s(blocks);
        self.stats.transfer_s += seconds;
        Some(seconds)
    }

    /// Returns the host DRAM of a sequence of `blocks` swapped back in; its transfer time.
    pub fn swap_in(&mut self, blocks: u64) -> f64 {
        self.swapped_blocks -= blocks.min(self.swapped_blocks);
        self.stats.swap_ins += 1;
        self.stats.swapped_blocks += blocks;
        let seconds = self.host_transfer_s(blocks);
        self.stats.transfer_s += seconds;
        seconds
    }

    fn demote_to_nvme(&mut self, hash: u64) {
        if self.spec.nvme_blocks < self.entry_blocks {
            return;
        }
        while (self.nvme_prefix.order.len() as u64 + 1) * self.entry_blocks > self.spec.nvme_blocks {
            self.nvme_prefix.pop_oldest();
        }
        self.clock += 1;
        self.nvme_prefix.insert(self.clock, hash);
    }

    /// Keeps a prefix block evicted from the device in host DRAM (pushing the oldest down to
    /// NVMe when DRAM is full); false when DRAM holds nothing but swaps.
    pub fn offload_prefix(&mut self, hash: u64) -> bool {
        if self.swapped_blocks + self.entry_blocks > self.spec.host_blocks {
            self.demote_to_nvme(hash);
            return false;
        }
        while self.host_used_blocks() + self.entry_blocks > self.spec.host_blocks {
            let oldest = self.host_prefix.pop_oldest().expect("prefix blocks fill the rest");
            self.demote_to_nvme(oldest);
        }
        self.clock += 1;
        self.host_prefix.insert(self.clock, hash);
        true
    }

    /// The tier holding the offloaded prefix block `hash`.
    pub fn locate(&self, hash: u64) -> Option<Tier> {
        if self.host_prefix.index.contains_key(&hash) {
            Some(Tier::Host)
        } else if self.nvme_prefix.index.contains_key(&hash) {
            Some(Tier::Nvme)
        } else {
            None
        }
    }

    /// Takes the offloaded prefix block `hash` back to the device; the transfer time.
    pub fn load_prefix(&mut self, hash: u64) -> f64 {
        let blocks = self.entry_blocks;
        let seconds = if self.host_prefix.remove(hash) {
            self.stats.loaded_from_host_blocks += blocks;
            self.host_transfer_s(blocks)
        } else if self.nvme_prefix.remove(hash) {
            self.stats.loaded_from_nvme_blocks += blocks;
            self.nvme_read_s(blocks)
        } else {
            0.0
        };
        self.stats.transfer_s += seconds;
        seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host_blocks: u64, nvme_blocks: u64) -> TierSpec {
        TierSpec {
            host_blocks,
            nvme_blocks,
            block_bytes_per_device: 1e6,
            host_link_bytes_per_s: 64e9,
            host_link_latency_s: 0.0,
            nvme_read_bytes_per_s: 4e9,
            swap_preemption: true,
        }
    }

    #[test]
    fn swaps_push_prefix_blocks_down_and_transfers_cost_bytes_over_bandwidth() {
        let mut tiers = HostTiers::new(spec(10, 4), 2);
        assert!(tiers.offload_prefix(1) && tiers.offload_prefix(2) && tiers.offload_prefix(3));
        assert_eq!(tiers.host_used_blocks(), 6);
        // 8 blocks of swap leave room for one prefix entry: the two oldest go to NVMe.
        let seconds = tiers.swap_out(8).unwrap();
        assert!((seconds - 8.0 * 1e6 / 64e9).abs() < 1e-15);
        assert_eq!(tiers.locate(1), Some(Tier::Nvme));
        assert_eq!(tiers.locate(2), Some(Tier::Nvme));
        assert_eq!(tiers.locate(3), Some(Tier::Host), "the newest stays in DRAM");
        assert!(tiers.swap_out(3).is_none(), "8 + 3 swapped blocks exceed 10");
        assert!((tiers.load_prefix(2) - 2.0 * 1e6 / 4e9).abs() < 1e-15, "NVMe reads at its own bandwidth");
    }
}
