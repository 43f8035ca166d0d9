//! Roofline pricing: each operator takes the longer of its compute time and its memory time,
//! each at the device's achievable (efficiency-scaled) peak, plus a fixed kernel cost.
//!
//! Named shortcuts (documented in ARCHITECTURE.md, error measured in tests/fidelity.rs):
//! operators run one after another with no overlap; efficiency factors are constants per
//! operator kind; the tensor-parallel all-reduce is a ring over one link type.

use super::{CostModel, IterationCost};
use crate::engine::SimTime;
use crate::hardware::{DeviceProfile, Dtype, LinkProfile};
use crate::model::{BatchShape, ModelSpec, OpKind, Operator, OperatorPlan};

/// Roofline cost model of one replica: `tensor_parallel` identical devices joined by `link`.
#[derive(Debug, Clone)]
pub struct RooflineCostModel {
    plan: OperatorPlan,
    gemm_flops_per_s: f64,
    attention_flops_per_s: f64,
    bytes_per_s: f64,
    peak_flops: f64,
    peak_bytes_per_s: f64,
    kernel_s: f64,
    iteration_s: f64,
    tensor_parallel: u64,
    link_bytes_per_s: f64,
    link_latency_s: f64,
    scratch: Vec<Operator>,
}

impl RooflineCostModel {
    /// A model of `model` with weights in `weight_dtype` and KV in `kv_dtype` on
    /// `tensor_parallel` devices of profile `device`; `link` joins them when
    /// `tensor_parallel > 1`.
    pub fn new(
        model: &ModelSpec,
        device: &DeviceProfile,
        weight_dtype: Dtype,
        kv_dtype: Dtype,
        tensor_parallel: u64,
        link: Option<&LinkProfile>,
    ) -> Self {
        // 16-bit activations: weight-only quantised formats still compute in 16 bits, except
        // fp8, which serving engines run as fp8 × fp8 GEMMs.
        let gemm_dtype = match weight_dtype {
            Dtype::Fp8 => Dtype::Fp8,
            Dtype::Fp32 => Dtype::Fp32,
            Dtype::Fp16 => Dtype::Fp16,
            _ => Dtype::Bf16,
        };
        let peak_gemm = device.peak_flops(gemm_dtype);
        let peak_attention = device.peak_flops(Dtype::Bf16);
        RooflineCostModel {
            plan: OperatorPlan::new(model, tensor_parallel, weight_dtype, kv_dtype),
            gemm_flops_per_s: peak_gemm * device.compute.gemm_efficiency.get(),
            attention_flops_per_s: peak_attention * device.compute.attention_efficiency.get(),
            bytes_per_s: device.memory_bandwidth_bytes_per_s() * device.memory.bandwidth_efficiency.get(),
            peak_flops: peak_gemm,
            peak_bytes_per_s: device.memory_bandwidth_bytes_per_s(),
            kernel_s: device.overheads.kernel_launch_us.get() * 1e-6,
            iteration_s: device.overheads.iteration_us.get() * 1e-6,
            tensor_parallel: tensor_parallel.max(1),
            link_bytes_per_s: link.map_or(f64::INFINITY, |l| l.bandwidth_bytes_per_s()),
            link_latency_s: link.map_or(0.0, |l| l.latency_us.get() * 1e-6),
            scratch: Vec::with_capacity(32),
        }
    }

    /// Seconds one repetition of `op` takes.
    pub fn operator_seconds(&self, op: &Operator) -> f64 {
        match op.kind {
            OpKind::Gemm => (op.flops / self.gemm_flops_per_s).max(op.bytes / self.bytes_per_s) + self.kernel_s,
            OpKind::Attention => {
                (op.flops / self.attention_flops_per_s).max(op.bytes / self.bytes_per_s) + self.kernel_s
            }
            OpKind::Memory => (op.bytes / self.bytes_per_s).max(op.flops / self.gemm_flops_per_s) + self.kernel_s,
            OpKind::AllReduce => self.ring_all_reduce_seconds(op.bytes),
        }
    }

    /// Ring all-reduce of `bytes` per device: 2(n−1)/n of the data crosses each link, in
    /// 2(n−1) latency-bound steps.
    pub fn ring_all_reduce_seconds(&self, bytes: f64) -> f64 {
        let n = self.tensor_parallel as f64;
        if n <= 1.0 {
            return 0.0;
        }
        2.0 * (n - 1.0) / n * bytes / self.link_bytes_per_s + 2.0 * (n - 1.0) * self.link_latency_s
    }

    /// The operators of an iteration (for reports and fidelity checks).
    pub fn operators(&self, batch: &BatchShape) -> Vec<Operator> {
        let mut out = Vec::new();
        self.plan.operators(batch, &mut out);
        out
    }
}

impl CostModel for RooflineCostModel {
    fn iteration(&mut self, batch: &BatchShape) -> IterationCost {
        let mut ops = std::mem::take(&mut self.scratch);
        self.plan.operators(batch, &mut ops);
        let mut seconds = self.iteration_s;
        let mut flops = 0.0;
        let mut bytes = 0.0;
        for op in &ops {
            let repeat = op.repeat as f64;
            seconds += self.operator_seconds(op) * repeat;
            if op.kind != OpKind::AllReduce {
                flops += op.flops * repeat;
                bytes += op.bytes * repeat;
            }
        }
        self.scratch = ops;
        let duration = SimTime::from_secs_f64(seconds).as_nanos().max(1);
        let duration_s = duration as f64 * 1e-9;
        IterationCost {
            duration_ns: duration,
            compute_utilization: (flops / (self.peak_flops * duration_s)).min(1.0),
            memory_utilization: (bytes / (self.peak_bytes_per_s * duration_s)).min(1.0),
        }
    }
}
