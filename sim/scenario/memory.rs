//! Per-device memory split of a replica: weights, activation and runtime reserve, and what is
//! left for the KV cache (vLLM's `gpu_memory_utilization` rule).

use crate::hardware::{DeviceProfile, Dtype};
use crate::model::{ModelSpec, Parallelism, WeightFormat};
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
    /// KV bytes of one token on one device (its KV heads of its stage's layers).
    pub kv_bytes_per_token: f64,
    /// Tokens per block.
    pub block_size_tokens: u64,
    /// KV blocks of the replica.
    pub kv_capacity_blocks: u64,
}

/// What a pool asks of each device's memory.
#[derive(Debug, Clone, Copy)]
pub struct MemoryRequest<'a> {
    /// The model.
    pub model: &'a ModelSpec,
    /// The device.
    pub device: &'a DeviceProfile,
    /// Weight format.
    pub weights: WeightFormat,
    /// KV-cache dtype.
    pub kv_dtype: Dtype,
    /// How the model is split.
    pub parallelism: Parallelism,
    /// Fraction of device memory serving may use.
    pub memory_utilization: f64,
    /// Runtime reserve per device, GiB.
    pub runtime_reserve_gib: f64,
    /// Batching limits (they size the activations).
    pub scheduler: &'a SchedulerConfig,
    /// Tokens per KV block.
    pub block_size_tokens: u64,
}

/// Why a model does not fit: the pool field most to blame (relative to the pool, e.g.
/// `scheduler.block_size`) and a message with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoesNotFit {
    /// Field of the pool section at fault.
    pub field: &'static str,
    /// What is needed and what is available.
    pub message: String,
}

impl MemoryPlan {
    /// The split for `request`; when the model does not fit, which field is to blame.
    pub fn new(request: &MemoryRequest) -> Result<MemoryPlan, DoesNotFit> {
        let MemoryRequest { model, device, weights, kv_dtype, parallelism, scheduler, .. } = *request;
        let tp = parallelism.tensor as f64;
        let usable_bytes = device.memory_bytes() * request.memory_utilization;
        // Each stage holds the weights and KV of its share of the layers (the first stage's
        // share is rounded up).
        let weight_bytes = model.weight_bytes(weights) / tp * parallelism.stage_fraction(model);
        // Activations of the largest iteration: the widest live tensors of one layer (input,
        // QKV output, gated-MLP intermediate) in 16 bits, plus fp32 logits of every sequence.
        let tokens = scheduler.max_num_batched_tokens as f64;
        let widest = (4 * model.hidden_size) as f64
            + (model.query_width() + 2 * model.kv_heads * model.head_dim) as f64 / tp
            + (model.mlp_matrices() * model.intermediate_size) as f64 / tp;
        let token_activation_bytes = tokens * widest * 2.0;
        let logit_bytes = scheduler.max_num_seqs as f64 * model.vocab_size as f64 / tp * 4.0 * 2.0;
        let activation_bytes = token_activation_bytes + logit_bytes;
        let runtime_reserve_bytes = request.runtime_reserve_gib * GIB;
        let kv_bytes = usable_bytes - weight_bytes - activation_bytes - runtime_reserve_bytes;
        let kv_bytes_per_token = parallelism.kv_bytes_per_token_per_device(model, kv_dtype);
        let block_size_tokens = request.block_size_tokens;
        let block_bytes = kv_bytes_per_token * block_size_tokens as f64;
        let kv_capacity_blocks = if kv_bytes > 0.0 { (kv_bytes / block_bytes).floor() as u64 } else { 0 };
        if kv_capacity_blocks > 0 {
            return Ok(MemoryPlan {
                usable_bytes,
                weight_bytes,
                activation_bytes,
                runtime_reserve_bytes,
                kv_bytes,
                kv_bytes_per_token,
                block_size_tokens,
                kv_capacity_blocks,
            });
        }
        // Blame the first demand, in the order memory is handed out, that leaves too little.
        let field = if weight_bytes >= usable_bytes {
            "device"
        } else if weight_bytes + runtime_reserve_bytes >= usable_bytes {
            "runtime_reserve_gib"
        } else if weight_bytes + runtime_reserve_bytes + activation_bytes >= usable_bytes {
            if token_activation_bytes >= logit_bytes {
                "scheduler.max_num_batched_tokens"
            } else {
                "scheduler.max_num_seqs"
            }
        } else {
            "scheduler.block_size"
        };
        let advice = match field {
            "device" => "use more tensor or pipeline parallelism, a larger device or a smaller dtype",
            "runtime_reserve_gib" => "lower runtime_reserve_gib or use a larger device",
            "scheduler.max_num_batched_tokens" => {
                "lower max_num_batched_tokens (it sizes the activations of the largest iteration)"
            }
            "scheduler.max_num_seqs" => "lower max_num_seqs (every sequence's logits are held at once)",
            _ => "lower block_size: one block does not fit in what is left",
        };
        Err(DoesNotFit {
            field,
            message: format!(
                "{} ({}) does not fit on {} × tensor_parallel {} × pipeline_parallel {}: each device needs {:.1} GiB (weights {:.1} GiB in {weights}, activations {:.1} GiB, runtime reserve {:.1} GiB) plus room for at least one KV block ({:.2} MiB of {block_size_tokens} tokens), but has {:.1} GiB usable ({:.0} GiB × memory_utilization {}); {advice}",
                model.name,
                model.architecture,
                device.name,
                parallelism.tensor,
                parallelism.pipeline,
                (weight_bytes + activation_bytes + runtime_reserve_bytes) / GIB,
                weight_bytes / GIB,
                activation_bytes / GIB,
                runtime_reserve_bytes / GIB,
                block_bytes / (1u64 << 20) as f64,
                usable_bytes / GIB,
                device.memory.capacity_gib,
                request.memory_utilization,
            ),
        })
    }
}
