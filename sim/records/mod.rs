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
}
