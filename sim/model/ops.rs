//! The operators of one serving iteration and their FLOPs and bytes, per device of a
//! tensor-parallel group.
//!
//! Operator names follow Vidur's profiling columns (`attn_pre_proj`, `mlp_up_proj`, ...) so
//! that predictions can be compared with its measurements one to one.

use super::{ModelSpec, Parallelism, Precision};

/// What bounds an operator, which selects the efficiency factor the cost model applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpKind {
    /// Dense matrix multiply.
    #[default]
    Gemm,
    /// Fused attention over the KV cache.
    Attention,
    /// Element-wise or normalisation work (bandwidth-bound).
    Memory,
    /// Tensor-parallel all-reduce of `bytes` per device.
    AllReduce,
}

/// One operator of an iteration, repeated `repeat` times (usually once per layer).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
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
    /// Prefill attention: mean keys each query attends to (its efficiency depends on it).
    pub keys_per_query: f64,
    /// Weight-only formats: operations to expand the weights to 16 bits on the fly, per
    /// repetition, run on the general-purpose cores.
    pub dequant_ops: f64,
    /// Runs at 16 bits whatever the deployment's precision (the MoE router and the LM head
    /// stay unquantised in the checkpoints servesim knows).
    pub unquantized: bool,
    /// The per-device problem shape, for cost models that look measured times up by shape.
    pub shape: OpShape,
}

/// The per-device problem shape of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum OpShape {
    /// No shape a table is keyed by.
    #[default]
    None,
    /// `m` tokens times a `k` × `n` weight matrix.
    Gemm {
        /// Rows: tokens.
        m: u64,
        /// Output features.
        n: u64,
        /// Input features.
        k: u64,
    },
    /// Causal attention of prompt chunks.
    PrefillAttention {
        /// Chunks (sequences).
        sequences: u64,
        /// Mean query tokens per chunk.
        query_tokens: f64,
        /// Mean KV tokens each chunk attends over (the chunk included).
        kv_tokens: f64,
        /// Heads per device.
        heads: AttentionHeads,
    },
    /// One query token per sequence over its cache.
    DecodeAttention {
        /// Sequences.
        sequences: u64,
        /// Mean KV tokens per sequence.
        kv_tokens: f64,
        /// Heads per device.
        heads: AttentionHeads,
    },
    /// The routed experts of an MoE layer: each expert hit runs an up (gate and up fused)
    /// and a down projection over the tokens routed to it.
    Experts {
        /// Distinct experts hit (expected value).
        experts_hit: f64,
        /// Tokens each hit expert processes (mean).
        tokens_per_expert: f64,
        /// Model width.
        hidden: u64,
        /// Expert intermediate width per device.
        intermediate: u64,
        /// Matrices of the up projection (2 for gated MLPs).
        up_matrices: u64,
    },
    /// A tensor-parallel all-reduce.
    AllReduce {
        /// Bytes per device.
        bytes: f64,
    },
}

/// The attention heads one device computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttentionHeads {
    /// Query heads.
    pub query: u64,
    /// Key-value heads (MLA: 1, its latent).
    pub kv: u64,
    /// Query-key head dimension.
    pub head_dim: u64,
    /// MLA: `kv` is a compressed latent attended by MLA's own kernels (tables of standard
    /// attention do not apply).
    pub latent: bool,
}

/// The token-level shape of one iteration's batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchShape {
    /// Prompt tokens computed this iteration (all prefill chunks together).
    pub prefill_tokens: u64,
    /// Decode tokens computed this iteration (one per decoding sequence).
    pub decode_tokens: u64,
    /// Prefill chunks (one per sequence with prompt tokens this iteration).
    pub prefill_chunks: u64,
    /// Query-key pairs of the prefill chunks' causal attention.
    pub prefill_attention_pairs: f64,
    /// KV-cache tokens the prefill chunks read (earlier context plus the chunk itself).
    pub prefill_kv_tokens: u64,
    /// KV-cache tokens the decode tokens attend to, summed over sequences.
    pub decode_context_tokens: u64,
    /// Sequences whose next-token logits are computed this iteration.
    pub sampled_tokens: u64,
    /// Seconds of KV moved between the devices and host memory before the step can run
    /// (swaps, offloaded prefix blocks loaded back).
    pub host_transfer_s: f64,
    /// Verifications of drafted tokens among the prefill chunks (speculative decoding).
    pub verifications: u64,
    /// Tokens of those verifications (included in `prefill_tokens`).
    pub verify_tokens: u64,
    /// Seconds of drafting the step's verifications waited for (drafted before it).
    pub draft_s: f64,
    /// Seconds of drafting that ran beside the step (PEARL's post-verify drafts), binding
    /// only when longer than the step.
    pub draft_overlap_s: f64,
}

impl BatchShape {
    /// Adds a prefill chunk of `chunk_tokens` after `context_tokens` already in the cache;
    /// `samples` when the chunk finishes the prompt (the first output token is sampled).
    pub fn add_prefill_chunk(&mut self, context_tokens: u64, chunk_tokens: u64, samples: bool) {
        let q = chunk_tokens as f64;
        self.prefill_tokens += chunk_tokens;
        self.prefill_chunks += 1;
        self.prefill_attention_pairs += q * context_tokens as f64 + q * (q + 1.0) / 2.0;
        self.prefill_kv_tokens += context_tokens + chunk_tokens;
        self.sampled_tokens += u64::from(samples);
    }

    /// Adds a verification of `tokens` (the last token and the drafts after it) after
    /// `computed_tokens` in the cache: a short chunk whose every position is sampled.
    pub fn add_verify(&mut self, computed_tokens: u64, tokens: u64) {
        self.add_prefill_chunk(computed_tokens, tokens, false);
        self.sampled_tokens += tokens;
        self.verifications += 1;
        self.verify_tokens += tokens;
    }

    /// Adds `tokens` positions of padding to a verification after `context_tokens`: computed
    /// and sampled, then thrown away.
    pub fn add_verify_padding(&mut self, context_tokens: u64, tokens: u64) {
        let q = tokens as f64;
        self.prefill_tokens += tokens;
        self.prefill_attention_pairs += q * context_tokens as f64 + q * (q + 1.0) / 2.0;
        self.prefill_kv_tokens += tokens;
        self.sampled_tokens += tokens;
        self.verify_tokens += tokens;
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
    dequantized: bool,
    attention_heads: AttentionHeads,
    /// Tokens a query attends back over at most (sliding-window attention).
    window: f64,
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
    /// Residual adds fused into the RMSNorm that follows them.
    fused_residual_norm: bool,
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
    /// Sizes for `model` split as `parallelism` says, at `precision` (weights, activations and
    /// KV cache at their formats' bytes). Per-layer operators repeat only for the layers of the
    /// largest pipeline stage.
    pub fn new(model: &ModelSpec, parallelism: Parallelism, precision: Precision) -> Self {
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
            weight_bytes: precision.weights.bytes_per_param(),
            activation_bytes: precision.activation_bytes(),
            kv_bytes: precision.kv.bytes(),
            dequantized: precision.weights.dequantized(),
            window: model.sliding_window_tokens.map_or(f64::INFINITY, |w| w as f64),
            attention_heads: AttentionHeads {
                query: query_heads,
                kv: if model.mla.is_some() { 1 } else { kv_heads },
                head_dim: qk_dim,
                latent: model.mla.is_some(),
            },
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
            fused_residual_norm: false,
        }
    }

    /// The same plan with each residual add done by the RMSNorm after it (one kernel reading
    /// and writing the residual too) instead of a kernel of its own.
    pub fn with_fused_residual_norm(mut self, fused: bool) -> Self {
        self.fused_residual_norm = fused;
        self
    }

    /// Decoder layers per iteration.
    pub fn layers(&self) -> u64 {
        self.layers
    }

    /// Fills `out` with the operators of an iteration of shape `batch` (cleared first).
    pub fn operators(&self, batch: &BatchShape, out: &mut Vec<Operator>) {
        self.operators_padded(batch, batch.total_tokens(), out);
    }

    /// The same with the token-parallel operators (GEMMs, norms, all-reduces) run over
    /// `padded_tokens` ≥ the batch's tokens, as a CUDA graph captured for a larger batch does.
    pub fn operators_padded(&self, batch: &BatchShape, padded_tokens: u64, out: &mut Vec<Operator>) {
        out.clear();
        if batch.is_empty() {
            return;
        }
        let tokens = padded_tokens.max(batch.total_tokens());
        let t = tokens as f64;
        let h = self.hidden;
        // Norms, rotary embeddings and residual adds run at 16 bits whatever the GEMMs do.
        let e = 2.0;
        let a = self.activation_bytes;
        let w = self.weight_bytes;
        let layers = self.layers;
        let dequantized = self.dequantized;
        let mut push = |op: Operator| {
            if op.repeat > 0 {
                out.push(op);
            }
        };
        let memory = |name, flops: f64, bytes: f64, repeat: u64| Operator {
            name,
            kind: OpKind::Memory,
            flops,
            bytes,
            repeat,
            ..Operator::default()
        };
        // A GEMM of `t` tokens through `params` weights taking `k` inputs to `n` outputs per
        // token (per device; MLA's low-rank projections have fewer weights than k × n).
        let gemm = |name, params: f64, k: f64, n: f64, repeat: u64| {
            Operator {
                name,
                kind: OpKind::Gemm,
                flops: 2.0 * t * params,
                bytes: params * w + t * (k + n) * a,
                repeat,
                // Weight-only formats expand each weight once per 64-token tile of the batch
                // (scale, zero, convert, pack: four operations).
                dequant_ops: if dequantized { params * (t / 64.0).ceil() * 4.0 } else { 0.0 },
                shape: OpShape::Gemm { m: tokens, n: n.round() as u64, k: (params / n).round() as u64 },
                ..Operator::default()
            }
        };

        // A norm fused with the residual add before it also reads and writes the residual.
        let norm_bytes = if self.fused_residual_norm { 4.0 * t * h * e } else { 2.0 * t * h * e };
        push(memory("input_layernorm", 4.0 * t * h, norm_bytes, layers));
        push(gemm("attn_pre_proj", self.qkv_params, h, self.qkv_out_width, layers));
        push(memory("attn_rope", 3.0 * t * self.rope_width, 2.0 * t * self.rope_width * e, layers));

        let head_flops = 2.0 * self.heads * (self.qk_dim + self.v_dim);
        let kv_token_bytes = self.kv_elements_per_token * self.kv_bytes;
        let q_bytes = self.heads * (self.qk_dim + self.v_dim) * e;
        // A sliding window bounds what each query attends to (applied to the batch's mean
        // context, a named shortcut exact when every sequence is on the same side of it).
        let window = self.window;
        if batch.prefill_tokens > 0 {
            let q = batch.prefill_tokens as f64;
            let chunks = batch.prefill_chunks.max(1);
            let keys_per_query = (batch.prefill_attention_pairs / q).min(window);
            let kv_tokens = (batch.prefill_kv_tokens as f64 / chunks as f64).min(window + q / chunks as f64);
            push(Operator {
                name: "attn_prefill",
                kind: OpKind::Attention,
                flops: head_flops * keys_per_query * q,
                bytes: q * q_bytes + kv_tokens * chunks as f64 * kv_token_bytes,
                repeat: layers,
                keys_per_query,
                shape: OpShape::PrefillAttention {
                    sequences: chunks,
                    query_tokens: q / chunks as f64,
                    kv_tokens,
                    heads: self.attention_heads,
                },
                ..Operator::default()
            });
        }
        if batch.decode_tokens > 0 {
            let d = batch.decode_tokens as f64;
            let context = (batch.decode_context_tokens as f64 / d).min(window);
            push(Operator {
                name: "attn_decode",
                kind: OpKind::Attention,
                flops: head_flops * context * d,
                bytes: d * q_bytes + (context + 1.0) * d * kv_token_bytes,
                repeat: layers,
                keys_per_query: context,
                shape: OpShape::DecodeAttention {
                    sequences: batch.decode_tokens,
                    kv_tokens: context,
                    heads: self.attention_heads,
                },
                ..Operator::default()
            });
        }

        push(gemm("attn_post_proj", self.o_params, self.o_in_width, h, layers));
        let all_reduce = |name, repeat| {
            let bytes = t * h * e;
            Operator {
                name,
                kind: OpKind::AllReduce,
                bytes,
                repeat,
                shape: OpShape::AllReduce { bytes },
                ..Operator::default()
            }
        };
        if self.tensor_parallel > 1 {
            push(all_reduce("attn_all_reduce", layers));
        }
        push(memory("post_attention_layernorm", 4.0 * t * h, norm_bytes, layers));

        let up_matrices = self.mlp_matrices - 1.0;
        if self.dense_layers > 0 {
            let i = self.intermediate;
            push(gemm("mlp_up_proj", up_matrices * h * i, h, up_matrices * i, self.dense_layers));
            push(memory("mlp_act", 4.0 * t * i, (up_matrices + 1.0) * t * i * e, self.dense_layers));
            push(gemm("mlp_down_proj", h * i, i, h, self.dense_layers));
        }
        if let Some(moe) = &self.moe {
            let mut gate = gemm("moe_gate", h * moe.experts, h, moe.experts, self.moe_layers);
            // The router runs at 16 bits, unquantised.
            gate.bytes = h * moe.experts * e + t * h * e;
            gate.dequant_ops = 0.0;
            gate.unquantized = true;
            push(gate);
            // Distinct experts hit by t tokens each choosing k of E uniformly: every hit expert's
            // weights are read once.
            let hit = moe.experts * (1.0 - (1.0 - moe.experts_per_token / moe.experts).powf(t));
            let routed = t * moe.experts_per_token;
            let expert_params = self.mlp_matrices * h * moe.expert_intermediate;
            let bytes =
                hit * expert_params * w + routed * (2.0 * h + (up_matrices + 1.0) * moe.expert_intermediate) * a;
            push(Operator {
                name: "moe_experts",
                kind: OpKind::Gemm,
                flops: 2.0 * routed * expert_params,
                bytes,
                repeat: self.moe_layers,
                dequant_ops: if dequantized { hit * expert_params * 4.0 } else { 0.0 },
                shape: OpShape::Experts {
                    experts_hit: hit,
                    tokens_per_expert: routed / hit.max(1e-9),
                    hidden: h as u64,
                    intermediate: moe.expert_intermediate.round() as u64,
                    up_matrices: up_matrices as u64,
                },
                ..Operator::default()
            });
            if moe.shared_intermediate > 0.0 {
                let shared_params = self.mlp_matrices * h * moe.shared_intermediate;
                let bytes = shared_params * w + t * (2.0 * h + (up_matrices + 1.0) * moe.shared_intermediate) * a;
                push(Operator {
                    name: "moe_shared_experts",
                    kind: OpKind::Gemm,
                    flops: 2.0 * t * shared_params,
                    bytes,
                    repeat: self.moe_layers,
                    dequant_ops: if dequantized { shared_params * (t / 64.0).ceil() * 4.0 } else { 0.0 },
                    ..Operator::default()
                });
            }
        }
        if self.tensor_parallel > 1 {
            push(all_reduce("mlp_all_reduce", layers));
        }
        // Two residual adds per layer, each reading two tensors and writing one (unless the
        // norms after them do the adds).
        if !self.fused_residual_norm {
            push(memory("add", t * h, 3.0 * t * h * e, 2 * layers));
        }

        // Once per iteration: embedding lookup, final norm, LM head and sampling over the
        // sequences that produce a token.
        push(memory("emb", 0.0, 2.0 * t * h * e, 1));
        push(memory("final_layernorm", 4.0 * t * h, 2.0 * t * h * e, 1));
        let s = batch.sampled_tokens as f64;
        if s > 0.0 {
            // The LM head stays at 16 bits in every quantised checkpoint servesim knows.
            let params = h * self.vocab;
            push(Operator {
                name: "lm_head",
                kind: OpKind::Gemm,
                flops: 2.0 * s * params,
                bytes: params * e + s * (h * e + self.vocab * 4.0),
                repeat: 1,
                unquantized: true,
                shape: OpShape::Gemm { m: batch.sampled_tokens, n: self.vocab.round() as u64, k: h as u64 },
                ..Operator::default()
            });
            push(memory("sampler", 5.0 * s * self.vocab, 2.0 * s * self.vocab * 4.0, 1));
        }
    }
}
