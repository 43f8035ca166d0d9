//! Cost models: how long one serving iteration takes on one replica's devices, and how busy it
//! keeps them.
//!
//! [`CostModel`] is the seam: the serving engine asks it for the cost of a [`BatchShape`] and
//! knows nothing of how that is computed. [`RooflineCostModel`] prices each operator by the
//! roofline with the device profile's efficiency factors; calibrated and table-driven models
//! are further implementations of the same trait.

mod efficiency;
mod host;
mod measured;
mod roofline;

pub use efficiency::{Curve, Efficiency, FittedEfficiency, ProfileEfficiency};
pub use host::{GraphPlan, HostOverheads, Launch};
pub use measured::{KernelScale, MeasuredContext, OperatorTimes};
pub use roofline::RooflineCostModel;

use crate::model::BatchShape;

/// Time and resource use of one iteration, per device of the replica. With pipeline
/// parallelism an iteration passes through `stages` stages of `duration_ns` each, with
/// `transfer_ns` between consecutive stages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IterationCost {
    /// Time of one pipeline stage (the whole iteration without pipelining), ns.
    pub duration_ns: u64,
    /// Time to hand activations to the next stage, ns (0 without pipelining).
    pub transfer_ns: u64,
    /// Fraction of peak FLOP/s used over the iteration.
    pub compute_utilization: f64,
    /// Fraction of peak memory bandwidth used over the iteration.
    pub memory_utilization: f64,
}

impl IterationCost {
    /// A single-stage iteration of `duration_ns`.
    pub fn single_stage(duration_ns: u64, compute_utilization: f64, memory_utilization: f64) -> Self {
        IterationCost { duration_ns, transfer_ns: 0, compute_utilization, memory_utilization }
    }

    /// The utilisation that drives power: the busier of compute and memory, as in a roofline
    /// the binding resource is the one running flat out.
    pub fn activity(&self) -> f64 {
        self.compute_utilization.max(self.memory_utilization).clamp(0.0, 1.0)
    }
}

/// The share of a replica's devices an iteration may use: all of them, or a compute
/// partition (semi-PD's SM split) with the memory bandwidth it can get.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceShare {
    /// Fraction of the peak FLOP/s.
    pub compute: f64,
    /// Fraction of the peak memory bandwidth.
    pub memory_bandwidth: f64,
}

impl ResourceShare {
    /// The whole device.
    pub const WHOLE: ResourceShare = ResourceShare { compute: 1.0, memory_bandwidth: 1.0 };
}

/// Prices iterations for one replica.
pub trait CostModel: Send {
    /// Cost of an iteration of shape `batch` on the whole devices.
    fn iteration(&mut self, batch: &BatchShape) -> IterationCost;

    /// Cost of an iteration of shape `batch` on `share` of the devices. Models that cannot
    /// split a device price the whole device.
    fn iteration_shared(&mut self, batch: &BatchShape, share: ResourceShare) -> IterationCost {
        let _ = share;
        self.iteration(batch)
    }
}
