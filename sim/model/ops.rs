//! The operators of one serving iteration and their FLOPs and bytes, per device of a
//! tensor-parallel group.
//!
//! Operator names follow Vidur's profiling columns (`attn_pre_proj`, `mlp_up_proj`, ...) so
//! that predictions can be compared with its measurements one to one.

use super::{ModelSpec, Parallelism};
use crate::hardware::Dtype;

/// What bounds an operator, which selects the efficiency factor the cost model applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Dense matrix multiply.
    Gemm,
    /// Fused attention over the KV cache.
    Attention,
    /// Element-wise or normalisation work (bandwidth-bound).
    Memory,
    /// Tensor-parallel all-reduce of `bytes` per device.
    AllReduce,
}

/// One operator of an iteration, repeated `repeat` times (usually once per layer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Operator {
    /// Vidur-style name.
    pub name: &'static str,
    /// Bounding resource.
    pub kind: OpKind,
    /// Floating-point operations per repetition, per device.
    pub flops: f64,
    /// Bytes moved to/from device memory per repetition, per device (for `AllReduce`: the
    /// message size).
    pub bytes: f64,
    /// Repetitions per iteration.
    pub repeat: u64,
}

/// The token-level shape of one iteration's batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchShape {
    /// Prompt tokens computed this iteration (all prefill chunks together).
    pub prefill_tokens: u64,
    /// Decode tokens computed this iteration (one per decoding sequence).
    pub decode_tokens: u64,
    /// Query-key pairs of the prefill chunks' causal attention.
    pub prefill_attention_pairs: f64,
    /// KV-cache tokens the prefill chunks read (earlier context plus the chunk itself).
    pub prefill_kv_tokens: u64,
    /// KV-cache tokens the decode tokens attend to, summed over sequences.
    pub decode_context_tokens: u64,
    /// Sequences whose next-token logits are computed this iteration.
    pub sampled_tokens: u64,
}

impl BatchShape {
    /// Adds a prefill chunk of `chunk_tokens` after `context_tokens` already in the cache;
    /// `samples` when the chunk finishes the prompt (the first output token is sampled).
    pub fn add_prefill_chunk(&mut self, context_tokens: u64, chunk_tokens: u64, samples: bool) {
        let q = chunk_tokens as f64;
        self.prefill_tokens += chunk_tokens;
        self.prefill_attention_pairs += q * context_tokens as f64 + q * (q + 1.0) / 2.0;
        self.prefill_kv_tokens += context_tokens + chunk_tokens;
        self.sampled_tokens += u64::from(samples);
    }

    /// Adds one decode token attending to `context_tokens` (including itself).
    pub fn add_decode(&mut self, context_tokens: u64) {
        self.decode_tokens += 1;
        self.decode_context_tokens += context_tokens;
        self.sampled_tokens += 1;
    }

    /// All tokens computed this iteration.
    pub fn total_tokens(&self) -> u64 {
        self.prefill_tokens + self.decode_tokens
    }

    /// Whether there is nothing to compute.
    pub fn is_empty(&self) -> bool {
        self.total_tokens() == 0
    }
}

/// Per-device operator sizes of a model under a tensor-parallel degree, precomputed so that
/// building an iteration's operators is a handful of multiplications.
#[derive(Debug, Clone)]
pub struct OperatorPlan {
    layers: u64,
    dense_layers: u64,
    moe_layers: u64,
    tensor_parallel: u64,
    hidden: f64,
    weight_bytes: f64,
    activation_bytes: f64,
    kv_bytes: f64,
    /// Per device: attention input projection parameters, their output width.
    qkv_params: f64,
    qkv_out_width: f64,
    o_params: f64,
    o_in_width: f64,
    rope_width: f64,
    heads: f64,
    qk_dim: f64,
    v_dim: f64,
    kv_elements_per_token: f64,
    mlp_matrices: f64,
    intermediate: f64,
    moe: Option<MoePlan>,
    vocab: f64,
}

#[derive(Debug, Clone)]
struct MoePlan {
    experts: f64,
    experts_per_token: f64,
    expert_intermediate: f64,
    shared_intermediate: f64,
}

impl OperatorPlan {
    /// Sizes for `model` split as `parallelism` says, with weights in `weight_dtype` and the
    /// KV cache in `kv_dtype`; activations are 16-bit. Per-layer operators repeat only for the
    /// layers of the largest pipeline stage.
    pub fn new(model: &ModelSpec, parallelism: Parallelism, weight_dtype: Dtype, kv_dtype: Dtype) -> Self {
        let pp = parallelism.pipeline;
        let tp = parallelism.tensor as f64;
        let (qk_dim, v_dim) = model.attention_head_dims();
        let kv_elements_per_device = parallelism.kv_elements_per_token_per_layer_per_device(model) as f64;
        // Each device projects its share of the query heads and its (possibly replicated) KV
        // heads; MLA's latent projections are split like the query.
        let query_heads = model.attention_heads / parallelism.tensor;
        let kv_heads = parallelism.kv_heads_per_device(model);
        let (qkv_params, qkv_out_width) = match &model.mla {
            Some(_) => (
                model.attention_input_params() as f64 / tp,
                (model.query_width() as f64 + model.kv_elements_per_token_per_layer() as f64) / tp,
            ),
            None => {
                let width = (query_heads + 2 * kv_heads) * model.head_dim;
                ((model.hidden_size * width) as f64, width as f64)
            }
        };
        OperatorPlan {
            layers: model.layers.div_ceil(pp),
            dense_layers: model.dense_layers().div_ceil(pp),
            moe_layers: (model.layers - model.dense_layers()).div_ceil(pp),
            tensor_parallel: parallelism.tensor,
            hidden: model.hidden_size as f64,
            weight_bytes: weight_dtype.bytes(),
            activation_bytes: 2.0,
            kv_bytes: kv_dtype.bytes(),
            qkv_params,
            qkv_out_width,
            o_params: model.attention_output_params() as f64 / tp,
            o_in_width: model.attention_output_params() as f64 / model.hidden_size as f64 / tp,
            rope_width: ((query_heads + kv_heads) * model.head_dim) as f64,
            heads: model.attention_heads as f64 / tp,
            qk_dim: qk_dim as f64,
            v_dim: v_dim as f64,
            kv_elements_per_token: kv_elements_per_device,
            mlp_matrices: model.mlp_matrices() as f64,
            intermediate: model.intermediate_size as f64 / tp,
            moe: model.moe.as_ref().map(|m| MoePlan {
                experts: m.experts as f64,
                experts_per_token: m.experts_per_token as f64,
                expert_intermediate: m.expert_intermediate_size as f64 / tp,
                shared_intermediate: m.shared_intermediate_size as f64 / tp,
            }),
            vocab: model.vocab_size as f64 / tp,
        }
    }

    /// Decoder layers per iteration.
    pub fn layers(&self) -> u64 {
        self.layers
    }

    /// Fills `out` with the operators of an iteration of shape `batch` (cleared first).
    pub fn operators(&self, batch: &BatchShape, out: &mut Vec<Operator>) {
        out.clear();
        if batch.is_empty() {
            return;
        }
        let t = batch.total_tokens() as f64;
        let h = self.hidden;
        let a = self.activation_bytes;
        let w = self.weight_bytes;
        let layers = self.layers;
        let mut push = |name, kind, flops: f64, bytes: f64, repeat: u64| {
            if repeat > 0 {
                out.push(Operator { name, kind, flops, bytes, repeat });
            }
        };
        let gemm = |params: f64, in_width: f64, out_width: f64| {
            (2.0 * t * params, params * w + t * (in_width + out_width) * a)
        };

        push("input_layernorm", OpKind::Memory, 4.0 * t * h, 2.0 * t * h * a, layers);
        let (f, b) = gemm(self.qkv_params, h, self.qkv_out_width);
        push("attn_pre_proj", OpKind::Gemm, f, b, layers);
        push("attn_rope", OpKind::Memory, 3.0 * t * self.rope_width, 2.0 * t * self.rope_width * a, layers);

        let head_flops = 2.0 * self.heads * (self.qk_dim + self.v_dim);
        let kv_token_bytes = self.kv_elements_per_token * self.kv_bytes;
        if batch.prefill_tokens > 0 {
            let q = batch.prefill_tokens as f64;
            let bytes =
                q * self.heads * (self.qk_dim + self.v_dim) * a + batch.prefill_kv_tokens as f64 * kv_token_bytes;
            push("attn_prefill", OpKind::Attention, head_flops * batch.prefill_attention_pairs, bytes, layers);
        }
        if batch.decode_tokens > 0 {
            let d = batch.decode_tokens as f64;
            let bytes = d * self.heads * (self.qk_dim + self.v_dim) * a
                + (batch.decode_context_tokens as f64 + d) * kv_token_bytes;
            push("attn_decode", OpKind::Attention, head_flops * batch.decode_context_tokens as f64, bytes, layers);
        }

        let (f, b) = gemm(self.o_params, self.o_in_width, h);
        push("attn_post_proj", OpKind::Gemm, f, b, layers);
        if self.tensor_parallel > 1 {
            push("attn_all_reduce", OpKind::AllReduce, 0.0, t * h * a, layers);
        }
        push("post_attention_layernorm", OpKind::Memory, 4.0 * t * h, 2.0 * t * h * a, layers);

        let up_matrices = self.mlp_matrices - 1.0;
        if self.dense_layers > 0 {
            let i = self.intermediate;
            let (f, b) = gemm(up_matrices * h * i, h, up_matrices * i);
            push("mlp_up_proj", OpKind::Gemm, f, b, self.dense_layers);
            push("mlp_act", OpKind::Memory, 4.0 * t * i, (up_matrices + 1.0) * t * i * a, self.dense_layers);
            let (f, b) = gemm(h * i, i, h);
            push("mlp_down_proj", OpKind::Gemm, f, b, self.dense_layers);
        }
        if let Some(moe) = &self.moe {
            push("moe_gate", OpKind::Gemm, 2.0 * t * h * moe.experts, h * moe.experts * w + t * h * a, self.moe_layers);
            // Distinct experts hit by t tokens each choosing k of E uniformly: every hit expert's
            // weights are read once.
            let hit = moe.experts * (1.0 - (1.0 - moe.experts_per_token / moe.experts).powf(t));
            let routed = t * moe.experts_per_token;
            let expert_params = self.mlp_matrices * h * moe.expert_intermediate;
            let bytes =
                hit * expert_params * w + routed * (2.0 * h + (up_matrices + 1.0) * moe.expert_intermediate) * a;
            push("moe_experts", OpKind::Gemm, 2.0 * routed * expert_params, bytes, self.moe_layers);
            if moe.shared_intermediate > 0.0 {
                let shared_params = self.mlp_matrices * h * moe.shared_intermediate;
                let bytes = shared_params * w + t * (2.0 * h + (up_matrices + 1.0) * moe.shared_intermediate) * a;
                push("moe_shared_experts", OpKind::Gemm, 2.0 * t * shared_params, bytes, self.moe_layers);
            }
        }
        if self.tensor_parallel > 1 {
            push("mlp_all_reduce", OpKind::AllReduce, 0.0, t * h * a, layers);
        }
        // Two residual adds per layer, each reading two tensors and writing one.
        push("add", OpKind::Memory, t * h, 3.0 * t * h * a, 2 * layers);

        // Once per iteration: embedding lookup, final norm, LM head and sampling over the
        // sequences that produce a token.
        push("emb", OpKind::Memory, 0.0, 2.0 * t * h * a, 1);
        push("final_layernorm", OpKind::Memory, 4.0 * t * h, 2.0 * t * h * a, 1);
        let s = batch.sampled_tokens as f64;
        if s > 0.0 {
            let params = h * self.vocab;
            push("lm_head", OpKind::Gemm, 2.0 * s * params, params * w + s * (h * a + self.vocab * 4.0), 1);
            push("sampler", OpKind::Memory, 5.0 * s * self.vocab, 2.0 * s * self.vocab * 4.0, 1);
        }
    }
}
