//! Aggregation of a run's records into a summary: distributions with one percentile rule,
//! throughput, goodput, queue, KV occupancy, utilisation by pool and role, KV transfers,
//! energy and cost.
//!
//! [`Summary`] is computed once, after the run, from the records (see `records`, re-exported
//! here) and the components' counters. Nothing here influences the simulation.

mod percentile;
mod summary;

pub use crate::records::{GapLog, LogHistogram, Recorder, RejectReason, RequestRecord, RequestStatus};
pub use percentile::{Distribution, WeightedValues};
pub use summary::{
    DeviceSummary, DisaggregationSummary, EnergySummary, GoodputSummary, KvSummary, LatencySummary, QueueSummary,
    RequestCounts, RoleSummary, Slo, Summary, ThroughputSummary,
};
