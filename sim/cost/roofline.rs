//! Roofline pricing: each operator takes the longer of its compute time and its memory time,
//! each at the device's achievable (efficiency-scaled) peak, plus a fixed kernel cost;
//! tensor-parallel all-reduces cost what the topology says.
//!
//! Named shortcuts (documented in ARCHITECTURE.md, error measured in tests/fidelity.rs):
//! operators run one after another with no overlap; with pipeline parallelism every stage is
//! as slow as the one with the most layers plus the embedding and LM head.

use super::efficiency::{Efficiency, ProfileEfficiency};
use super::host::{HostOverheads, Launch};
use super::measured::{KernelScale, MeasuredContext, OperatorTimes};
use super::{CostModel, IterationCost, ResourceShare};
use crate::engine::secs_to_nanos;
use crate::hardware::{DeviceProfile, Dtype};
use crate::model::{BatchShape, ModelSpec, OpKind, OpShape, Operator, OperatorPlan, Parallelism, Precision};
use crate::scenario::ParallelComm;
use crate::topology::CollectiveCost;
use std::sync::Arc;

/// Per-direction link bandwidth from which a tensor-parallel group counts as NVLink-class
/// (PCIe Gen5 x16 is 64 GB/s; NVLink 3 and later at least 300 GB/s).
pub const NVLINK_CLASS_BYTES_PER_S: f64 = 100e9;

/// Roofline cost model of one replica.
#[derive(Debug, Clone)]
pub struct RooflineCostModel {
    plan: OperatorPlan,
    efficiency: Arc<dyn Efficiency>,
    precision: Precision,
    gemm_peak_flops: f64,
    /// The 16-bit type and its peak, for unquantised GEMMs.
    half: Dtype,
    half_peak_flops: f64,
    attention_peak_flops: f64,
    /// Peak of the general-purpose cores (dequantisation), FLOP/s.
    vector_peak_flops: f64,
    peak_bytes_per_s: f64,
    iteration_s: f64,
    tp_all_reduce: CollectiveCost,
    pp_send: CollectiveCost,
    pipeline_parallel: u64,
    hidden_size: f64,
    host: HostOverheads,
    measured: Option<Arc<dyn OperatorTimes>>,
    kernel_scale: KernelScale,
    measured_context: MeasuredContext,
    /// Share of the re-reads of a decode kernel that reads each KV head once per query head.
    reread_fraction: f64,
    /// MoE experts run at 16 bits.
    experts_at_16_bits: bool,
    /// The share of the devices the iteration being priced runs on.
    share: ResourceShare,
    scratch: Vec<Operator>,
}

impl RooflineCostModel {
    /// A model of `model` at `precision` on devices of profile `device`, split and connected
    /// as `comm` says, with the profile's efficiencies.
    pub fn new(model: &ModelSpec, device: &DeviceProfile, precision: Precision, comm: &ParallelComm) -> Self {
        Self::with_efficiency(model, device, precision, comm, Arc::new(ProfileEfficiency::of(device)))
    }

    /// The same with other efficiency factors (e.g. fitted by `servesim calibrate`).
    pub fn with_efficiency(
        model: &ModelSpec,
        device: &DeviceProfile,
        precision: Precision,
        comm: &ParallelComm,
        efficiency: Arc<dyn Efficiency>,
    ) -> Self {
        let parallelism = Parallelism::new(comm.tensor_parallel, comm.pipeline_parallel);
        let half =
            if precision.attention == Dtype::Fp16 || precision.gemm == Dtype::Fp16 { Dtype::Fp16 } else { Dtype::Bf16 };
        RooflineCostModel {
            plan: OperatorPlan::new(model, parallelism, precision),
            efficiency,
            precision,
            gemm_peak_flops: device.peak_flops(precision.gemm),
            half,
            half_peak_flops: device.peak_flops(half),
            attention_peak_flops: device.peak_flops(precision.attention),
            vector_peak_flops: device.peak_flops(Dtype::Fp32),
            peak_bytes_per_s: device.memory_bandwidth_bytes_per_s(),
            iteration_s: device.overheads.iteration_us.get() * 1e-6,
            tp_all_reduce: comm.tp_all_reduce.clone(),
            pp_send: comm.pp_send.clone(),
            pipeline_parallel: parallelism.pipeline,
            hidden_size: model.hidden_size as f64,
            host: HostOverheads::default(),
            measured: None,
            kernel_scale: KernelScale::default(),
            measured_context: MeasuredContext {
                precision,
                tensor_parallel: comm.tensor_parallel,
                single_node: comm.tp_nodes_spanned <= 1 && comm.tp_link_bytes_per_s >= NVLINK_CLASS_BYTES_PER_S,
            },
            reread_fraction: 0.0,
            experts_at_16_bits: false,
            share: ResourceShare::WHOLE,
            scratch: Vec::with_capacity(32),
        }
    }

    /// The serving engine's host work and graph launches.
    pub fn host(&self) -> &HostOverheads {
        &self.host
    }

    /// Adds the serving engine's host work and graph launches.
    pub fn with_host(mut self, host: HostOverheads) -> Self {
        self.host = host;
        self
    }

    /// Makes eagerly launched steps launch-bound at `seconds` of host time per kernel.
    pub fn with_host_launch(mut self, seconds: f64) -> Self {
        self.host.kernel_launch_s = seconds;
        self
    }

    /// Prices the operators `times` covers by its measurements (the roofline prices the rest).
    pub fn with_measured(mut self, times: Arc<dyn OperatorTimes>) -> Self {
        self.measured = Some(times);
        self
    }

    /// Scales operator times by kind (an engine version's kernels against servesim's prices).
    pub fn with_kernel_scale(mut self, scale: KernelScale) -> Self {
        self.kernel_scale = scale;
        self
    }

    /// Makes decode attention re-read `fraction` of what a kernel reading each KV head once
    /// per query head would (an engine's fallback kernel for grouped-query attention).
    pub fn with_kv_rereads(mut self, fraction: f64) -> Self {
        self.reread_fraction = fraction.clamp(0.0, 1.0);
        self
    }

    /// The share of decode KV re-reads (0: none).
    pub fn kv_reread_fraction(&self) -> f64 {
        self.reread_fraction
    }

    /// Runs MoE expert GEMMs at 16 bits whatever the weight format.
    pub fn with_experts_at_16_bits(mut self, yes: bool) -> Self {
        self.experts_at_16_bits = yes;
        self
    }

    /// Prices residual adds inside the norms after them (engines that fuse them).
    pub fn with_fused_residual_norm(mut self, fused: bool) -> Self {
        self.plan = self.plan.with_fused_residual_norm(fused);
        self
    }

    /// Seconds one repetition of `op` takes: measured where the tables cover it, else the
    /// roofline.
    pub fn operator_seconds(&self, op: &Operator) -> f64 {
        match op.shape {
            OpShape::DecodeAttention { sequences, kv_tokens, heads }
                if self.reread_fraction > 0.0 && heads.kv < heads.query && heads.kv > 0 =>
            {
                let ratio = heads.query as f64 / heads.kv as f64;
                let mut reread = *op;
                reread.shape = OpShape::DecodeAttention {
                    sequences,
                    kv_tokens,
                    heads: crate::model::AttentionHeads { kv: heads.query, ..heads },
                };
                reread.bytes *= ratio;
                let once = self.priced_seconds(op);
                once + self.reread_fraction * (self.priced_seconds(&reread) - once).max(0.0)
            }
            OpShape::Experts { .. } if self.experts_at_16_bits && !op.unquantized => {
                // Weights stay in their format; the GEMMs compute at 16 bits.
                let mut sixteen = *op;
                sixteen.unquantized = true;
                self.priced_seconds(&sixteen)
            }
            _ => self.priced_seconds(op),
        }
    }

    fn priced_seconds(&self, op: &Operator) -> f64 {
        if let Some(measured_s) = self.measured.as_ref().and_then(|m| m.seconds(op, &self.measured_context)) {
            // On a share of the device, compute-bound work slows by the compute share and
            // streaming work by the bandwidth share.
            let share = match op.shape {
                crate::model::OpShape::DecodeAttention { .. } => self.share.memory_bandwidth,
                _ => self.share.compute,
            };
            return measured_s * self.kernel_scale.of(&op.shape) / share;
        }
        self.roofline_seconds(op) * self.kernel_scale.of(&op.shape)
    }

    /// Seconds one repetition of `op` takes by the roofline.
    pub fn roofline_seconds(&self, op: &Operator) -> f64 {
        let e = &self.efficiency;
        let memory_s = |name: &str| op.bytes / (self.peak_bytes_per_s * e.memory(name, op.bytes));
        match op.kind {
            OpKind::Gemm => {
                let (dtype, peak) = if op.unquantized {
                    (self.half, self.half_peak_flops)
                } else {
                    (self.precision.gemm, self.gemm_peak_flops)
                };
                let compute_s = op.flops / (peak * e.gemm(dtype, op.flops));
                // Weight-only formats expand weights on the vector cores before the tensor
                // cores use them; the two pipelines overlap (MARLIN), so the slower one binds.
                let dequant_s = op.dequant_ops / self.vector_peak_flops;
                compute_s.max(dequant_s).max(memory_s("gemm")) + e.kernel_overhead_s()
            }
            OpKind::Attention => {
                let compute_s =
                    op.flops / (self.attention_peak_flops * e.attention_prefill(op.flops, op.keys_per_query));
                // Decode attention streams the KV cache, at an efficiency that grows with
                // how much it reads.
                let memory_s = if matches!(op.shape, OpShape::DecodeAttention { .. }) {
                    op.bytes / (self.peak_bytes_per_s * e.attention_decode(op.bytes))
                } else {
                    memory_s("attention")
                };
                compute_s.max(memory_s) + e.kernel_overhead_s()
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
            let saved = (
                self.gemm_peak_flops,
                self.half_peak_flops,
                self.attention_peak_flops,
                self.vector_peak_flops,
                self.peak_bytes_per_s,
            );
            self.gemm_peak_flops *= share.compute;
            self.half_peak_flops *= share.compute;
            self.attention_peak_flops *= share.compute;
            self.vector_peak_flops *= share.compute;
            self.peak_bytes_per_s *= share.memory_bandwidth;
            self.share = share;
            let cost = self.iteration_shared(batch, ResourceShare::WHOLE);
            self.share = ResourceShare::WHOLE;
            (
                self.gemm_peak_flops,
                self.half_peak_flops,
                self.attention_peak_flops,
                self.vector_peak_flops,
                self.peak_bytes_per_s,
            ) = saved;
            return cost;
        }
        let mut ops = std::mem::take(&mut self.scratch);
        let (launch, padded_tokens) = self.host.launch(batch.prefill_tokens, batch.decode_tokens);
        self.plan.operators_padded(batch, padded_tokens, &mut ops);
        let mut seconds = self.iteration_s;
        let mut flops = 0.0;
        let mut bytes = 0.0;
        let mut launched = 0.0;
        for op in &ops {
            let repeat = op.repeat as f64;
            launched += match launch {
                Launch::Eager => repeat,
                Launch::Piecewise if op.kind == OpKind::Attention => repeat,
                _ => 0.0,
            };
            seconds += self.operator_seconds(op) * repeat;
            if op.kind != OpKind::AllReduce {
                flops += op.flops * repeat;
                bytes += op.bytes * repeat;
            }
        }
        self.scratch = ops;
        // The device cannot run ahead of a host that launches kernels one by one.
        let device_s = seconds.max(self.iteration_s + launched * self.host.kernel_launch_s);
        let sequences = batch.prefill_chunks + batch.decode_tokens;
        // KV moved over the host link blocks the step (vLLM swaps before the forward pass).
        let step_s = self.host.combine(device_s, self.host.host_s(sequences)) + batch.host_transfer_s;
        // Drafting precedes verification, or runs beside it and binds only when slower.
        let seconds = step_s.max(batch.draft_overlap_s) + batch.draft_s;
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
