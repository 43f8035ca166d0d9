//! Queue policies: the order in which waiting requests are admitted, and which running
//! request is preempted first when KV blocks run out (the one the policy values least).

use serde::{Deserialize, Serialize};

/// How a replica orders its waiting queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// First come, first served (vLLM's default).
    #[default]
    Fcfs,
    /// Shortest prompt first; ties by arrival.
    ShortestPromptFirst,
    /// Lowest priority value first; ties by arrival.
    Priority,
}

impl Policy {
    /// Sort key of a request: smaller is served earlier and preempted later. `arrival_order`
    /// breaks ties so the order is total.
    pub fn key(self, input_tokens: u32, priority: i32, arrival_order: u64) -> (i64, u64) {
        let rank = match self {
            Policy::Fcfs => 0,
            Policy::ShortestPromptFirst => i64::from(input_tokens),
            Policy::Priority => i64::from(priority),
        };
        (rank, arrival_order)
    }
}
