//! Requests and what happened to them: the [`RequestSpec`] a workload produces, and the
//! per-request milestones the serving components write while the simulation runs (routed,
//! scheduled, each token, transfers, rejected, preempted).
//!
//! This is the sink of the one-way flow's "run → records" step: serving components write
//! here and nothing here influences them; `metrics` aggregates the records afterwards.

mod gaps;
mod histogram;
mod recorder;

pub use gaps::GapLog;
pub use histogram::LogHistogram;
pub use recorder::{Recorder, RejectReason, RequestRecord, RequestStatus};

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
    /// Its prompt's prefix-block hashes in the workload's [`PrefixHashes`] (empty when the
    /// workload has none).
    pub prefix: PrefixSpan,
}

/// Where one request's prefix-block hashes lie in [`PrefixHashes::hashes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrefixSpan {
    /// Index of the first hash.
    pub start: u32,
    /// Hashes: one per full block of `block_tokens` prompt tokens, from the start.
    pub blocks: u32,
}

/// The prefix-block hashes of a workload's prompts (Mooncake's `hash_ids`): hash i of a
/// request identifies its first (i + 1) × `block_tokens` prompt tokens, so two requests whose
/// hash i agrees share that whole prefix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefixHashes {
    /// Prompt tokens per hashed block.
    pub block_tokens: u32,
    /// Every request's hashes, end to end.
    pub hashes: Vec<u64>,
}

impl PrefixHashes {
    /// The hashes of `span`.
    pub fn of(&self, span: PrefixSpan) -> &[u64] {
        &self.hashes[span.start as usize..(span.start + span.blocks) as usize]
    }

    /// Whether no request has hashes.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}
