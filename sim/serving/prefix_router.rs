//! Cache-aware routing: the entry router keeps its own approximate index of which prompt
//! prefixes each replica has seen and scores replicas by the longest cached prefix, balanced
//! against load — the weighted scorer pipeline of llm-d's inference scheduler and BLIS's
//! `weighted` policy (prefix affinity 3, queue depth 2, KV utilisation 2, each in [0, 1]).
//!
//! The index is the router's, not the replicas': it records where requests were sent and
//! forgets the least recently routed prefixes once a replica's share exceeds what its KV
//! (or prefix cache) could hold. It can therefore believe a prefix is cached after the replica
//! evicted it — as llm-d's approximate prefix scorer does. This module does not read replica
//! caches and does not route decode hand-offs by prefix.

use super::messages::ReplicaGauge;
use super::router::RoutePolicy;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

type Index = HashMap<u64, u64, BuildHasherDefault<std::collections::hash_map::DefaultHasher>>;

/// Scorer weights of [`PrefixAware`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorerWeights {
    /// Weight of the cached share of the prompt's prefix blocks.
    pub prefix: f64,
    /// Weight of the queue-depth score: outstanding tokens, min-max normalised over the
    /// candidates (the least loaded scores 1).
    pub queue: f64,
    /// Weight of the free share of the KV cache.
    pub kv: f64,
}

impl Default for ScorerWeights {
    /// BLIS's default `prefix-affinity:3,queue-depth:2,kv-utilization:2`.
    fn default() -> Self {
        ScorerWeights { prefix: 3.0, queue: 2.0, kv: 2.0 }
    }
}

/// Prefix blocks a replica is believed to hold, least recently routed first.
#[derive(Debug, Clone, Default)]
struct ReplicaIndex {
    capacity_entries: Option<u64>,
    order: BTreeMap<u64, u64>,
    last_use: Index,
}

impl ReplicaIndex {
    fn matched(&self, prefix: &[u64]) -> usize {
        // Hash i names the whole prefix up to block i: the match is the leading run.
        prefix.iter().take_while(|hash| self.last_use.contains_key(hash)).count()
    }

    fn touch(&mut self, hash: u64, tick: u64) {
        if let Some(old) = self.last_use.insert(hash, tick) {
            self.order.remove(&old);
        }
        self.order.insert(tick, hash);
        if let Some(capacity) = self.capacity_entries {
            while self.order.len() as u64 > capacity {
                let (_, oldest) = self.order.pop_first().expect("over capacity means non-empty");
                self.last_use.remove(&oldest);
            }
        }
    }
}

/// Routes to the replica with the best weighted sum of prefix affinity, queue depth and free
/// KV; ties to the earliest candidate.
#[derive(Debug, Clone)]
pub struct PrefixAware {
    weights: ScorerWeights,
    replicas: Vec<ReplicaIndex>,
    tick: u64,
}

impl PrefixAware {
    /// A policy over replicas whose indexes hold at most `capacity_entries[replica]` prefix
    /// blocks each (`None`: unbounded).
    pub fn new(weights: ScorerWeights, capacity_entries: Vec<Option<u64>>) -> Self {
        let replicas = capacity_entries
            .into_iter()
            .map(|capacity_entries| ReplicaIndex { capacity_entries, ..ReplicaIndex::default() })
            .collect();
        PrefixAware { weights, replicas, tick: 0 }
    }

    fn score(&self, prefix: &[u64], candidates: &[u32], board: &[ReplicaGauge]) -> usize {
        let loads = candidates.iter().map(|&c| board[c as usize].outstanding_tokens);
        let (least, most) = loads.fold((u64::MAX, 0), |(lo, hi), load| (lo.min(load), hi.max(load)));
        let mut best = (0, f64::NEG_INFINITY);
        for (position, &candidate) in candidates.iter().enumerate() {
            let gauge = &board[candidate as usize];
            let prefix_score = match (prefix.len(), self.replicas.get(candidate as usize)) {
                (0, _) | (_, None) => 0.0,
                (blocks, Some(index)) => index.matched(prefix) as f64 / blocks as f64,
            };
            let queue_score =
                if most == least { 1.0 } else { (most - gauge.outstanding_tokens) as f64 / (most - least) as f64 };
            let kv_score = 1.0 - gauge.kv_used_blocks as f64 / gauge.kv_capacity_blocks.max(1) as f64;
            let score =
                self.weights.prefix * prefix_score + self.weights.queue * queue_score + self.weights.kv * kv_score;
            if score > best.1 {
                best = (position, score);
            }
        }
        best.0
    }
}

impl RoutePolicy for PrefixAware {
    fn choose(&mut self, candidates: &[u32], board: &[ReplicaGauge]) -> usize {
        self.score(&[], candidates, board)
    }

    fn choose_for(&mut self, prefix: &[u64], candidates: &[u32], board: &[ReplicaGauge]) -> usize {
        self.score(prefix, candidates, board)
    }

    fn routed(&mut self, prefix: &[u64], replica: u32) {
        let Some(index) = self.replicas.get_mut(replica as usize) else { return };
        for &hash in prefix {
            self.tick += 1;
            index.touch(hash, self.tick);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::Role;

    fn gauge(outstanding_tokens: u64, kv_used_blocks: u64) -> ReplicaGauge {
        ReplicaGauge {
            outstanding_tokens,
            kv_used_blocks,
            kv_capacity_blocks: 100,
            waiting: 0,
            pending_prefill_tokens: 0,
            pending_reservations: 0,
            role: Role::Colocated,
            accepting: true,
        }
    }

    #[test]
    fn a_cached_prefix_outweighs_a_moderate_load_difference_but_not_a_large_one() {
        let mut policy = PrefixAware::new(ScorerWeights::default(), vec![None, None]);
        policy.routed(&[1, 2, 3, 4], 1);
        // Replica 1 holds the whole prefix (3 points) but is the most loaded (0 of 2 queue
        // points) against replica 0's 2: the prefix wins.
        let board = [gauge(0, 10), gauge(1000, 10)];
        assert_eq!(policy.choose_for(&[1, 2, 3, 4], &[0, 1], &board), 1);
        // A fully used KV cache costs replica 1 another 2 points: now 2 + 2 beats 3 + 0.
        let board = [gauge(0, 0), gauge(1000, 100)];
        assert_eq!(policy.choose_for(&[1, 2, 3, 4], &[0, 1], &board), 0);
        // Only the leading run counts: a request sharing block 2 but not block 1 gets nothing.
        let board = [gauge(0, 10), gauge(1000, 10)];
        assert_eq!(policy.choose_for(&[9, 2, 3, 4], &[0, 1], &board), 0);
    }

    #[test]
    fn the_index_forgets_the_least_recently_routed_prefixes_beyond_capacity() {
        let mut policy = PrefixAware::new(ScorerWeights::default(), vec![Some(2), Some(2)]);
        policy.routed(&[1, 2], 0);
        policy.routed(&[3], 0);
        assert_eq!(policy.replicas[0].matched(&[1, 2]), 0, "block 1 was the oldest");
        assert_eq!(policy.replicas[0].matched(&[2]), 1);
        assert_eq!(policy.replicas[0].matched(&[3]), 1);
    }
}
