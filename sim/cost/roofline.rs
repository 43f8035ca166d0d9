//! Roofline pricing: each operator takes the longer of its compute time and its memory time,
//! each at the device's achievable (efficiency-scaled) peak, plus a fixed kernel cost;
//! tensor-parallel all-reduces cost what the topology says.
//!
//! Named shortcuts (documented in ARCHITECTURE.md, error measured in tests/fidelity.rs):
//! operators run one after another with no overlap; with pipeline parallelism every stage is
//! as slow as the one with the most layers plus the embedding and LM head.

use super::efficiency::{Efficiency, ProfileEfficiency};
use super::{CostModel, IterationCost, ResourceShare};
use crate::engine::secs_to_nanos;
use crate::hardware::{DeviceProfile, Dtype};
use crate::model::{BatchShape, ModelSpec, OpKind, Operator, OperatorPlan, Parallelism};
use crate::scenario::ParallelComm;
use crate::topology::CollectiveCost;
use std::sync::Arc;

/// Roofline cost model of one replica.
#[derive(Debug, Clone)]
pub struct RooflineCostModel {
    plan: OperatorPlan,
    efficiency: Arc<dyn Efficiency>,
    gemm_peak_flops: f64,
    attention_peak_flops: f64,
    peak_bytes_per_s: f64,
    iteration_s: f64,
    tp_all_reduce: CollectiveCost,
    pp_send: CollectiveCost,
    pipeline_parallel: u64,
    hidden_size: f64,
    host_launch_s: f64,
    scratch: Vec<Operator>,
}

impl RooflineCostModel {
    /// A model of `model` with weights in `weight_dtype` and KV in `kv_dtype` on devices of
    /// profile `device`, split and connected as `comm` says, with the profile's efficiencies.
    pub fn new(
        model: &ModelSpec,
        device: &DeviceProfile,
        weight_dtype: Dtype,
        kv_dtype: Dtype,
        comm: &ParallelComm,
    ) -> Self {
        Self::with_efficiency(model, device, weight_dtype, kv_dtype, comm, Arc::new(ProfileEfficiency::of(device)))
    }

    /// The same with other efficiency factors (e.g. fitted by `servesim calibrate`).
    pub fn with_efficiency(
        model: &ModelSpec,
        device: &DeviceProfile,
        weight_dtype: Dtype,
        kv_dtype: Dtype,
        comm: &ParallelComm,
        efficiency: Arc<dyn Efficiency>,
    ) -> Self {
        // 16-bit activations: weight-only quantised formats still compute in 16 bits, except
        // fp8, which serving engines run as fp8 × fp8 GEMMs.
        let gemm_dtype = match weight_dtype {
            Dtype::Fp8 => Dtype::Fp8,
            Dtype::Fp32 => Dtype::Fp32,
            Dtype::Fp16 => Dtype::Fp16,
            _ => Dtype::Bf16,
        };
        let parallelism = Parallelism::new(comm.tensor_parallel, comm.pipeline_parallel);
        RooflineCostModel {
            plan: OperatorPlan::new(model, parallelism, weight_dtype, kv_dtype),
            efficiency,
            gemm_peak_flops: device.peak_flops(gemm_dtype),
            attention_peak_flops: device.peak_flops(Dtype::Bf16),
            peak_bytes_per_s: device.memory_bandwidth_bytes_per_s(),
            iteration_s: device.overheads.iteration_us.get() * 1e-6,
            tp_all_reduce: comm.tp_all_reduce.clone(),
            pp_send: comm.pp_send.clone(),
            pipeline_parallel: parallelism.pipeline,
            hidden_size: model.hidden_size as f64,
            host_launch_s: 0.0,
            scratch: Vec::with_capacity(32),
        }
    }

    /// Makes iterations launch-bound at `seconds` of host time per kernel (eager frameworks).
    pub fn with_host_launch(mut self, seconds: f64) -> Self {
        self.host_launch_s = seconds;
        self
    }

    /// Seconds one repetition of `op` takes.
    pub fn operator_seconds(&self, op: &Operator) -> f64 {
        let e = &self.efficiency;
        let memory_s = |name: &str| op.bytes / (self.peak_bytes_per_s * e.memory(name, op.bytes));
        match op.kind {
            OpKind::Gemm => {
                (op.flops / (self.gemm_peak_flops * e.gemm(op.flops))).max(memory_s("gemm")) + e.kernel_overhead_s()
            }
            OpKind::Attention => {
                (op.flops / (self.attention_peak_flops * e.attention())).max(memory_s("attention"))
                    + e.kernel_overhead_s()
            }
            OpKind::Memory => memory_s(op.name) + e.kernel_overhead_s(),
            OpKind::AllReduce => self.tp_all_reduce.seconds(op.bytes),
        }
    }

    /// The operators of one pipeline stage's iteration (for reports and fidelity checks).
    pub fn operators(&self, batch: &BatchShape) -> Vec<Operator> {
        let mut out = Vec::new();
        self.plan.operators(batch, &mut out);
        out
    }
}

impl CostModel for RooflineCostModel {
    fn iteration(&mut self, batch: &BatchShape) -> IterationCost {
        self.iteration_shared(batch, ResourceShare::WHOLE)
    }

    fn iteration_shared(&mut self, batch: &BatchShape, share: ResourceShare) -> IterationCost {
        if share != ResourceShare::WHOLE {
            // Price on a device whose peaks are the share's; utilisations stay relative to
            // the share (the executor scales them to the whole device).
            let saved = (self.gemm_peak_flops, self.attention_peak_flops, self.peak_bytes_per_s);
            self.gemm_peak_flops *= share.compute;
            self.attention_peak_flops *= share.compute;
            self.peak_bytes_per_s *= share.memory_bandwidth;
            let cost = self.iteration_shared(batch, ResourceShare::WHOLE);
            (self.gemm_peak_flops, self.attention_peak_flops, self.peak_bytes_per_s) = saved;
            return cost;
        }
        let mut ops = std::mem::take(&mut self.scratch);
        self.plan.operators(batch, &mut ops);
        let mut seconds = self.iteration_s;
        let mut flops = 0.0;
        let mut bytes = 0.0;
        let mut kernels = 0.0;
        for op in &ops {
            let repeat = op.repeat as f64;
            kernels += repeat;
            seconds += self.operator_seconds(op) * repeat;
            if op.kind != OpKind::AllReduce {
                flops += op.flops * repeat;
                bytes += op.bytes * repeat;
            }
        }
        self.scratch = ops;
        // The device cannot run ahead of a host that launches kernels one by one.
        let seconds = seconds.max(self.iteration_s + kernels * self.host_launch_s);
        let duration_ns = secs_to_nanos(seconds).max(1);
        let duration_s = duration_ns as f64 * 1e-9;
        let transfer_ns = if self.pipeline_parallel > 1 {
            secs_to_nanos(self.pp_send.seconds(batch.total_tokens() as f64 * self.hidden_size * 2.0))
        } else {
            0
        };
        IterationCost {
            duration_ns,
            transfer_ns,
            compute_utilization: (flops / (self.gemm_peak_flops * duration_s)).min(1.0),
            memory_utilization: (bytes / (self.peak_bytes_per_s * duration_s)).min(1.0),
        }
    }
}
