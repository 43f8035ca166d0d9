//! Cost models: how long one serving iteration takes on one replica's devices, and how busy it
//! keeps them.
//!
//! [`CostModel`] is the seam: the serving engine asks it for the cost of a [`BatchShape`] and
//! knows nothing of how that is computed. [`RooflineCostModel`] prices each operator by the
//! roofline with the device profile's efficiency factors; calibrated and table-driven models
//! are further implementations of the same trait.

mod roofline;

pub use roofline::RooflineCostModel;

use crate::model::BatchShape;

/// Time and resource use of one iteration, per device of the replica.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IterationCost {
    /// Wall time of the iteration, ns.
    pub duration_ns: u64,
    /// Fraction of peak FLOP/s used over the iteration.
    pub compute_utilization: f64,
    /// Fraction of peak memory bandwidth used over the iteration.
    pub memory_utilization: f64,
}

impl IterationCost {
    /// The utilisation that drives power: the busier of compute and memory, as in a roofline
    /// the binding resource is the one running flat out.
    pub fn activity(&self) -> f64 {
        self.compute_utilization.max(self.memory_utilization).clamp(0.0, 1.0)
    }
}

/// Prices iterations for one replica.
pub trait CostModel: Send {
    /// Cost of an iteration of shape `batch`.
    fn iteration(&mut self, batch: &BatchShape) -> IterationCost;
}
