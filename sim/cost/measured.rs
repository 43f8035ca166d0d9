//! Measured operator times: the seam through which tables of kernel timings measured on real
//! devices (AIConfigurator's operator database, converted by `servesim calibrate`) take
//! precedence over the roofline for the operators and shapes they cover.
//!
//! The roofline cost model asks an [`OperatorTimes`] first and prices by the roofline only
//! what it declines (`None`): operators without tables, dtypes never measured, and shapes
//! the tables cannot answer for. This module holds the seam only; the tables live in
//! `calibration`.

use crate::model::{OpShape, Operator, Precision};
use std::fmt::Debug;

/// What the cost model knows about the replica when it asks for a measured time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasuredContext {
    /// The deployment's precision.
    pub precision: Precision,
    /// Devices in the tensor-parallel group (all-reduces).
    pub tensor_parallel: u64,
    /// Whether the tensor-parallel group is joined like the systems collectives were
    /// measured on: inside one node, over NVLink-class links. Collectives over PCIe depend on
    /// the server's switch and socket layout, which the measured system need not share, and
    /// are left to the topology model.
    pub single_node: bool,
}

/// Factors on operator times by kind (an engine version's kernels against servesim's prices:
/// measured where covered, else the roofline).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelScale {
    /// Dense GEMMs.
    pub gemm: f64,
    /// Prefill attention.
    pub attention_prefill: f64,
    /// Decode attention.
    pub attention_decode: f64,
    /// MoE experts with at most 16 tokens each.
    pub experts_few_tokens: f64,
    /// MoE experts with at least 512 tokens each (log-interpolated in between).
    pub experts_many_tokens: f64,
    /// All-reduce.
    pub all_reduce: f64,
}

impl Default for KernelScale {
    fn default() -> Self {
        KernelScale {
            gemm: 1.0,
            attention_prefill: 1.0,
            attention_decode: 1.0,
            experts_few_tokens: 1.0,
            experts_many_tokens: 1.0,
            all_reduce: 1.0,
        }
    }
}

impl KernelScale {
    /// The factor of an operator of `shape`.
    pub fn of(&self, shape: &OpShape) -> f64 {
        match shape {
            OpShape::Gemm { .. } => self.gemm,
            OpShape::PrefillAttention { .. } => self.attention_prefill,
            OpShape::DecodeAttention { .. } => self.attention_decode,
            OpShape::Experts { tokens_per_expert, .. } => {
                // Grouped-GEMM kernels behave differently memory-bound (few tokens per expert)
                // and compute-bound (many).
                let (few, many) = (16f64.ln(), 512f64.ln());
                let at = ((tokens_per_expert.max(1.0).ln() - few) / (many - few)).clamp(0.0, 1.0);
                self.experts_few_tokens + (self.experts_many_tokens - self.experts_few_tokens) * at
            }
            OpShape::AllReduce { .. } => self.all_reduce,
            OpShape::None => 1.0,
        }
    }
}

/// Operator times measured on one device with one serving engine.
pub trait OperatorTimes: Debug + Send + Sync {
    /// Seconds one repetition of `op` takes, when the measurements cover it.
    fn seconds(&self, op: &Operator, context: &MeasuredContext) -> Option<f64>;

    /// Where the measurements come from, for reports (e.g. "aiconfigurator h100_sxm trtllm
    /// 1.3.0rc20").
    fn source(&self) -> String;
}
