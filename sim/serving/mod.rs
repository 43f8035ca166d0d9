//! One serving replica: iteration-level continuous batching with chunked prefill, a paged KV
//! cache, admission control and preemption by recompute, under a pluggable queue policy.
//!
//! A replica owns its queues, its KV pool and its cost model, and reacts to two things: a
//! request arriving and its current iteration finishing. It does not route requests (that is
//! `cluster`) nor aggregate metrics (that is `metrics`); it reports per-request milestones to a
//! [`crate::metrics::Recorder`].

mod kv_cache;
mod policy;
mod replica;

pub use kv_cache::BlockPool;
pub use policy::Policy;
pub use replica::{IterationRecord, Replica, ReplicaHardware, ReplicaStats, SchedulerConfig, Started};

use crate::engine::SimTime;

/// One request as the workload describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSpec {
    /// Identifier from the trace (row order) or generator.
    pub id: u64,
    /// Arrival time.
    pub arrival: SimTime,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Tokens to generate.
    pub output_tokens: u32,
    /// Priority class (lower is served first under the `priority` policy).
    pub priority: i32,
}
