//! Per-request records and their aggregation into a summary.
//!
//! The [`Recorder`] is written by replicas as milestones happen (scheduled, token, finished,
//! rejected, preempted). [`Summary`] is computed once, after the run, from the records and the
//! components' counters. Nothing here influences the simulation.

mod gaps;
mod histogram;
mod percentile;
mod recorder;
mod summary;

pub use gaps::GapLog;
pub use histogram::LogHistogram;
pub use percentile::{Distribution, WeightedValues};
pub use recorder::{Recorder, RejectReason, RequestRecord, RequestStatus};
pub use summary::{
    DeviceSummary, DisaggregationSummary, EnergySummary, GoodputSummary, KvSummary, LatencySummary, QueueSummary,
    RequestCounts, RoleSummary, Slo, Summary, ThroughputSummary,
};
