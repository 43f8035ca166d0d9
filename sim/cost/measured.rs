//! Measured operator times: the seam through which tables of kernel timings measured on real
//! devices (AIConfigurator's operator database, converted by `servesim calibrate`) take
//! precedence over the roofline for the operators and shapes they cover.
//!
//! The roofline cost model asks an [`OperatorTimes`] first and prices by the roofline only
//! what it declines (`None`): operators without tables, dtypes never measured, and shapes
//! the tables cannot answer for. This module holds the seam only; the tables live in
//! `calibration`.

use crate::model::{Operator, Precision};
use std::fmt::Debug;

/// What the cost model knows about the replica when it asks for a measured time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasuredContext {
    /// The deployment's precision.
    pub precision: Precision,
    /// Devices in the tensor-parallel group (all-reduces).
    pub tensor_parallel: u64,
    /// Whether the tensor-parallel group shares one node's fabric (measured all-reduces are
    /// single-node).
    pub single_node: bool,
}

/// Operator times measured on one device with one serving engine.
pub trait OperatorTimes: Debug + Send + Sync {
    /// Seconds one repetition of `op` takes, when the measurements cover it.
    fn seconds(&self, op: &Operator, context: &MeasuredContext) -> Option<f64>;

    /// Where the measurements come from, for reports (e.g. "aiconfigurator h100_sxm trtllm
    /// 1.3.0rc20").
    fn source(&self) -> String;
}
