//! Per-device memory split of a replica: weights, activation and runtime reserve, and what is
//! left for the KV cache (vLLM's `gpu_memory_utilization` rule).

use super::schema::PoolSection;
use crate::hardware::{DeviceProfile, Dtype};
use crate::model::ModelSpec;
use crate::serving::SchedulerConfig;
use serde::Serialize;

const GIB: f64 = (1u64 << 30) as f64;

/// How one device's memory is used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryPlan {
    /// Memory serving may use: capacity × memory_utilization, bytes.
    pub usable_bytes: f64,
    /// Weights held by one device, bytes.
    pub weight_bytes: f64,
    /// Peak activations of a full-budget iteration, bytes (estimate; see ARCHITECTURE.md).
    pub activation_bytes: f64,
    /// Runtime reserve, bytes.
    pub runtime_reserve_bytes: f64,
    /// Left for the KV cache, bytes.
    pub kv_bytes: f64,
    /// KV bytes of one token on one device.
    pub kv_bytes_per_token: f64,
    /// Tokens per block.
    pub block_size_tokens: u64,
    /// KV blocks of the replica.
    pub kv_capacity_blocks: u64,
}

impl MemoryPlan {
    /// The split for `model` on `device` as configured by `pool`; an error message with the
    /// numbers when the model does not fit.
    pub fn new(
        model: &ModelSpec,
        device: &DeviceProfile,
        weight_dtype: Dtype,
        kv_dtype: Dtype,
        pool: &PoolSection,
        scheduler: &SchedulerConfig,
    ) -> Result<MemoryPlan, String> {
        let tp = pool.tensor_parallel.get() as f64;
        // Each stage holds the weights and KV of its share of the layers (the first stage's
        // share is rounded up).
        let pp = pool.pipeline_parallel.get();
        let stage_fraction = model.layers.div_ceil(pp) as f64 / model.layers as f64;
        let usable_bytes = device.memory_bytes() * pool.memory_utilization.get();
        let weight_bytes = model.weight_bytes(weight_dtype) / tp * stage_fraction;
        // Activations of the largest iteration: the widest live tensors of one layer (input,
        // QKV output, gated-MLP intermediate) in 16 bits, plus fp32 logits of every sequence.
        let tokens = scheduler.max_num_batched_tokens as f64;
        let widest = (4 * model.hidden_size) as f64
            + (model.query_width() + 2 * model.kv_heads * model.head_dim) as f64 / tp
            + (model.mlp_matrices() * model.intermediate_size) as f64 / tp;
        let activation_bytes =
            tokens * widest * 2.0 + scheduler.max_num_seqs as f64 * model.vocab_size as f64 / tp * 4.0 * 2.0;
        let runtime_reserve_bytes = pool.runtime_reserve_gib.get() * GIB;
        let kv_bytes = usable_bytes - weight_bytes - activation_bytes - runtime_reserve_bytes;
        let kv_bytes_per_token = if model.mla.is_some() {
            model.kv_bytes_per_token(kv_dtype)
        } else {
            model.kv_bytes_per_token(kv_dtype) / tp
        };
        let block_size_tokens = pool.scheduler.block_size.get();
        let block_bytes = kv_bytes_per_token * block_size_tokens as f64;
        let kv_capacity_blocks = if kv_bytes > 0.0 { (kv_bytes / block_bytes).floor() as u64 } else { 0 };
        if kv_capacity_blocks == 0 {
            return Err(format!(
                "{} ({}) does not fit on {} × tensor_parallel {} × pipeline_parallel {pp}: each device needs {:.1} GiB (weights {:.1} GiB in {weight_dtype}, activations {:.1} GiB, runtime reserve {:.1} GiB) plus room for at least one KV block ({:.2} MiB), but has {:.1} GiB usable ({:.0} GiB × memory_utilization {}); use more tensor parallelism, a larger device or a smaller dtype",
                model.name,
                crate::input::known_list([model.architecture.as_str()]),
                device.name,
                pool.tensor_parallel,
                (weight_bytes + activation_bytes + runtime_reserve_bytes) / GIB,
                weight_bytes / GIB,
                activation_bytes / GIB,
                runtime_reserve_bytes / GIB,
                block_bytes / (1u64 << 20) as f64,
                usable_bytes / GIB,
                device.memory.capacity_gib,
                pool.memory_utilization,
            ));
        }
        Ok(MemoryPlan {
            usable_bytes,
            weight_bytes,
            activation_bytes,
            runtime_reserve_bytes,
            kv_bytes,
            kv_bytes_per_token,
            block_size_tokens,
            kv_capacity_blocks,
        })
    }
}
