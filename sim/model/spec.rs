//! A checked model architecture and the sizes derived from it.

use super::hf_config::HfConfig;
use super::WeightFormat;
use crate::error::{Error, Location, Result};
use crate::hardware::Dtype;
use serde::Serialize;

/// Mixture-of-experts layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoeSpec {
    /// Routed experts per MoE layer.
    pub experts: u64,
    /// Experts each token is routed to (top-k).
    pub experts_per_token: u64,
    /// Intermediate size of one routed expert.
    pub expert_intermediate_size: u64,
    /// Intermediate size of the shared expert(s) together (0 when none).
    pub shared_intermediate_size: u64,
    /// Layers whose MLP is a MoE block (the rest are dense).
    pub moe_layers: u64,
}

/// Multi-head latent attention dimensions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MlaSpec {
    /// Rank of the compressed KV (what the cache stores, with the rope part).
    pub kv_lora_rank: u64,
    /// Rank of the compressed query (None: full-rank query projection).
    pub q_lora_rank: Option<u64>,
    /// Rotary part of each head's query/key.
    pub qk_rope_head_dim: u64,
    /// Non-rotary part of each head's query/key.
    pub qk_nope_head_dim: u64,
    /// Value head dimension.
    pub v_head_dim: u64,
}

/// A decoder-only transformer, as servesim needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSpec {
    /// Catalog name or folder name.
    pub name: String,
    /// `model_type` from the config.
    pub architecture: String,
    /// Decoder layers.
    pub layers: u64,
    /// Model width.
    pub hidden_size: u64,
    /// Query heads.
    pub attention_heads: u64,
    /// Key/value heads (GQA/MQA when fewer than query heads).
    pub kv_heads: u64,
    /// Per-head dimension.
    pub head_dim: u64,
    /// Dense MLP intermediate size.
    pub intermediate_size: u64,
    /// Vocabulary size.
    pub vocab_size: u64,
    /// Context window (max_position_embeddings).
    pub max_context_tokens: u64,
    /// Whether the LM head shares the embedding matrix.
    pub tied_embeddings: bool,
    /// Whether the MLP is gated (SwiGLU: gate, up, down) rather than two matrices.
    pub gated_mlp: bool,
    /// MoE layout, when the model has experts.
    pub moe: Option<MoeSpec>,
    /// MLA dimensions, when the model uses latent attention.
    pub mla: Option<MlaSpec>,
    /// `torch_dtype` of the published weights, when it names a known dtype.
    pub published_dtype: Option<Dtype>,
    /// Tokens each query attends back over, when attention is windowed (Mistral 7B: 4096).
    pub sliding_window_tokens: Option<u64>,
}

impl ModelSpec {
    /// Parses a Hugging Face `config.json` text; `origin` names it in errors.
    pub fn from_hf_config(name: &str, origin: &str, text: &str) -> Result<Self> {
        let mut config: HfConfig = serde_json::from_str(text).map_err(|e| {
            Error::at(
                Location { file: origin.to_string(), line: Some(e.line()), field: None },
                format!("not a valid Hugging Face config.json: {e}"),
            )
        })?;
        // A multimodal config: servesim serves its language model.
        if let Some(mut text_config) = config.text_config.take() {
            text_config.architectures = text_config.architectures.or(config.architectures);
            config = *text_config;
        }
        // Llama 4 names its expert size `intermediate_size` and its dense MLP size
        // `intermediate_size_mlp`; every MoE layer adds one shared expert of the expert size.
        let llama4 = config.interleave_moe_layer_step.is_some() || config.intermediate_size_mlp.is_some();
        if llama4 {
            config.moe_intermediate_size = config.moe_intermediate_size.or(config.intermediate_size);
            config.shared_expert_intermediate_size =
                config.shared_expert_intermediate_size.or(config.intermediate_size);
            config.intermediate_size = config.intermediate_size_mlp.or(config.intermediate_size);
        }
        let missing = |field: &str| {
            Error::at(
                Location { file: origin.to_string(), line: None, field: Some(field.to_string()) },
                "required field is missing (servesim reads decoder-only transformer configs)".to_string(),
            )
        };
        // Bounds far above any published model keep every size computation within u64.
        let bounded = |field: &str, value: Option<u64>, max: u64| -> Result<u64> {
            match value {
                Some(v) if (1..=max).contains(&v) => Ok(v),
                Some(v) => Err(Error::at(
                    Location { file: origin.to_string(), line: None, field: Some(field.to_string()) },
                    format!("{v} is outside the supported range 1..={max}"),
                )),
                None => Err(missing(field)),
            }
        };
        const WIDTH: u64 = 1 << 17;
        const COUNT: u64 = 1 << 12;
        let positive = |field: &str, value: Option<u64>| -> Result<u64> {
            let max = match field {
                "vocab_size" => 1 << 22,
                "intermediate_size" | "moe_intermediate_size" | "shared_expert_intermediate_size" => 1 << 19,
                "num_hidden_layers" | "num_attention_heads" | "num_key_value_heads" | "num_experts_per_tok" => COUNT,
                _ => WIDTH,
            };
            bounded(field, value, max)
        };
        let hidden_size = positive("hidden_size", config.hidden_size)?;
        let layers = positive("num_hidden_layers", config.num_hidden_layers)?;
        let attention_heads = positive("num_attention_heads", config.num_attention_heads)?;
        let vocab_size = positive("vocab_size", config.vocab_size)?;
        let kv_heads = positive("num_key_value_heads", Some(config.num_key_value_heads.unwrap_or(attention_heads)))?;
        if attention_heads % kv_heads != 0 {
            return Err(Error::at(
                Location { file: origin.to_string(), line: None, field: Some("num_key_value_heads".into()) },
                format!("{attention_heads} attention heads are not a multiple of {kv_heads} key/value heads"),
            ));
        }
        if config.head_dim.is_none() && hidden_size % attention_heads != 0 {
            return Err(Error::at(
                Location { file: origin.to_string(), line: None, field: Some("hidden_size".into()) },
                format!(
                    "hidden_size {hidden_size} is not a multiple of num_attention_heads {attention_heads}, so the head size is unknown; give `head_dim`"
                ),
            ));
        }
        let head_dim = positive("head_dim", Some(config.head_dim.unwrap_or(hidden_size / attention_heads)))?;
        let intermediate_size =
            positive("intermediate_size", Some(config.intermediate_size.unwrap_or(4 * hidden_size)))?;
        // Published models reach 10M tokens (Llama 4 Scout); 2^24 leaves room.
        let max_context_tokens =
            bounded("max_position_embeddings", Some(config.max_position_embeddings.unwrap_or(4096)), 1 << 24)?;
        let architecture = config.model_type.clone().unwrap_or_else(|| {
            config.architectures.as_ref().and_then(|a| a.first().cloned()).unwrap_or_else(|| "unknown".into())
        });
        let activation = config.hidden_act.clone().unwrap_or_else(|| "silu".into()).to_lowercase();
        let gated_mlp =
            activation.contains("silu") || activation.contains("swish") || architecture.starts_with("gemma");

        let moe = match config.num_experts {
            Some(experts) if experts > 1 => {
                let experts = bounded("num_experts", Some(experts), COUNT)?;
                let experts_per_token = bounded("num_experts_per_tok", config.num_experts_per_tok, experts)?;
                let expert_intermediate_size =
                    positive("moe_intermediate_size", Some(config.moe_intermediate_size.unwrap_or(intermediate_size)))?;
                let shared_intermediate_size = match (config.shared_expert_intermediate_size, config.n_shared_experts) {
                    (Some(size), _) => size,
                    (None, Some(count)) => bounded("n_shared_experts", Some(count), 64)? * expert_intermediate_size,
                    (None, None) => 0,
                };
                let shared_intermediate_size = if shared_intermediate_size == 0 {
                    0
                } else {
                    positive("shared_expert_intermediate_size", Some(shared_intermediate_size))?
                };
                let dense_prefix = config.first_k_dense_replace.unwrap_or(0).min(layers);
                let step = config.moe_layer_freq.or(config.decoder_sparse_step).unwrap_or(1).max(1);
                let mlp_only = config.mlp_only_layers.clone().unwrap_or_default();
                let moe_layers = match config.interleave_moe_layer_step {
                    // Llama 4: layers step − 1, 2·step − 1, ... are MoE.
                    Some(interleave) => layers / interleave.max(1),
                    None => (dense_prefix..layers)
                        .filter(|layer| (layer - dense_prefix) % step == 0 && !mlp_only.contains(layer))
                        .count() as u64,
                };
                Some(MoeSpec {
                    experts,
                    experts_per_token,
                    expert_intermediate_size,
                    shared_intermediate_size,
                    moe_layers,
                })
            }
            _ => None,
        };
        let mla = match config.kv_lora_rank {
            Some(kv_lora_rank) => Some(MlaSpec {
                kv_lora_rank: positive("kv_lora_rank", Some(kv_lora_rank))?,
                q_lora_rank: config.q_lora_rank.map(|r| positive("q_lora_rank", Some(r))).transpose()?,
                qk_rope_head_dim: positive("qk_rope_head_dim", Some(config.qk_rope_head_dim.unwrap_or(64)))?,
                qk_nope_head_dim: positive("qk_nope_head_dim", Some(config.qk_nope_head_dim.unwrap_or(128)))?,
                v_head_dim: positive("v_head_dim", Some(config.v_head_dim.unwrap_or(128)))?,
            }),
            None => None,
        };
        let published_dtype = match config.torch_dtype.as_deref() {
            Some("bfloat16") => Some(Dtype::Bf16),
            Some("float16") => Some(Dtype::Fp16),
            Some("float32") => Some(Dtype::Fp32),
            _ => None,
        };
        Ok(ModelSpec {
            name: name.to_string(),
            architecture,
            layers,
            hidden_size,
            attention_heads,
            kv_heads,
            head_dim,
            intermediate_size,
            vocab_size,
            max_context_tokens,
            tied_embeddings: config.tie_word_embeddings.unwrap_or(false),
            gated_mlp,
            moe,
            mla,
            published_dtype,
            sliding_window_tokens: match (config.sliding_window, config.use_sliding_window) {
                (Some(window), None | Some(true)) if window > 0 && window < max_context_tokens => Some(window),
                _ => None,
            },
        })
    }

    /// Width of all query heads together.
    pub fn query_width(&self) -> u64 {
        match &self.mla {
            Some(mla) => self.attention_heads * (mla.qk_nope_head_dim + mla.qk_rope_head_dim),
            None => self.attention_heads * self.head_dim,
        }
    }

    /// Per-head dimensions used inside attention: (query·key, value). With MLA the cached
    /// latent is attended to directly (weights absorbed), as serving engines do in decode.
    pub fn attention_head_dims(&self) -> (u64, u64) {
        match &self.mla {
            Some(mla) => (mla.kv_lora_rank + mla.qk_rope_head_dim, mla.kv_lora_rank),
            None => (self.head_dim, self.head_dim),
        }
    }

    /// Parameters of one layer's attention input projections (Q, K, V or the MLA down/up
    /// projections).
    pub fn attention_input_params(&self) -> u64 {
        let h = self.hidden_size;
        match &self.mla {
            Some(mla) => {
                let q = match mla.q_lora_rank {
                    Some(rank) => h * rank + rank * self.query_width(),
                    None => h * self.query_width(),
                };
                let kv_down = h * (mla.kv_lora_rank + mla.qk_rope_head_dim);
                let kv_up = mla.kv_lora_rank * self.attention_heads * (mla.qk_nope_head_dim + mla.v_head_dim);
                q + kv_down + kv_up
            }
            None => h * (self.attention_heads + 2 * self.kv_heads) * self.head_dim,
        }
    }

    /// Parameters of one layer's attention output projection.
    pub fn attention_output_params(&self) -> u64 {
        let value_width = match &self.mla {
            Some(mla) => self.attention_heads * mla.v_head_dim,
            None => self.attention_heads * self.head_dim,
        };
        value_width * self.hidden_size
    }

    /// Matrices in an MLP block: 3 when gated, else 2.
    pub fn mlp_matrices(&self) -> u64 {
        if self.gated_mlp {
            3
        } else {
            2
        }
    }

    fn dense_mlp_params(&self) -> u64 {
        self.mlp_matrices() * self.hidden_size * self.intermediate_size
    }

    fn moe_mlp_params(&self, moe: &MoeSpec) -> u64 {
        let per_expert = self.mlp_matrices() * self.hidden_size * moe.expert_intermediate_size;
        let shared = self.mlp_matrices() * self.hidden_size * moe.shared_intermediate_size;
        moe.experts * per_expert + shared + self.hidden_size * moe.experts
    }

    /// Layers with a dense MLP.
    pub fn dense_layers(&self) -> u64 {
        self.layers - self.moe.as_ref().map_or(0, |m| m.moe_layers)
    }

    /// Total parameter count.
    pub fn parameter_count(&self) -> u64 {
        let h = self.hidden_size;
        let embeddings = self.vocab_size * h * if self.tied_embeddings { 1 } else { 2 };
        let attention = self.attention_input_params() + self.attention_output_params();
        let norms = 2 * h;
        let dense = self.dense_layers() * (attention + self.dense_mlp_params() + norms);
        let moe = self.moe.as_ref().map_or(0, |m| m.moe_layers * (attention + self.moe_mlp_params(m) + norms));
        embeddings + dense + moe + h
    }

    /// Parameters touched per token (for MoE: top-k routed plus shared experts only).
    pub fn active_parameter_count(&self) -> u64 {
        match &self.moe {
            None => self.parameter_count(),
            Some(moe) => {
                let per_expert = self.mlp_matrices() * self.hidden_size * moe.expert_intermediate_size;
                let inactive = moe.moe_layers * (moe.experts - moe.experts_per_token.min(moe.experts)) * per_expert;
                self.parameter_count() - inactive
            }
        }
    }

    /// Bytes of weights stored as `format`. Quantised formats leave the embeddings and the
    /// LM head at 16 bits, as published FP8, INT4 and FP4 checkpoints do.
    pub fn weight_bytes(&self, format: WeightFormat) -> f64 {
        let all = self.parameter_count() as f64;
        let bytes = format.bytes_per_param();
        if bytes >= 2.0 {
            return all * bytes;
        }
        let tables = self.embedding_params() as f64;
        (all - tables) * bytes + tables * 2.0
    }

    /// Parameters of the token embedding and the LM head (once if tied).
    pub fn embedding_params(&self) -> u64 {
        let copies = if self.tied_embeddings { 1 } else { 2 };
        copies * self.vocab_size * self.hidden_size
    }

    /// KV-cache elements per token per layer (K and V for each KV head, or the MLA latent).
    pub fn kv_elements_per_token_per_layer(&self) -> u64 {
        match &self.mla {
            Some(mla) => mla.kv_lora_rank + mla.qk_rope_head_dim,
            None => 2 * self.kv_heads * self.head_dim,
        }
    }

    /// KV-cache bytes per token over all layers at `dtype`.
    pub fn kv_bytes_per_token(&self, dtype: Dtype) -> f64 {
        (self.layers * self.kv_elements_per_token_per_layer()) as f64 * dtype.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA_3_1_8B: &str = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":4096,"intermediate_size":14336,
        "max_position_embeddings":131072,"model_type":"llama","num_attention_heads":32,"num_hidden_layers":32,
        "num_key_value_heads":8,"rms_norm_eps":1e-05,"tie_word_embeddings":false,"torch_dtype":"bfloat16",
        "vocab_size":128256,"hidden_act":"silu"}"#;

    #[test]
    fn llama_3_1_8b_sizes_match_the_published_figures() {
        let model = ModelSpec::from_hf_config("llama-3.1-8b", "test", LLAMA_3_1_8B).unwrap();
        // Meta publishes 8.03 B parameters.
        let params = model.parameter_count() as f64;
        assert!((params / 8.03e9 - 1.0).abs() < 0.005, "{params}");
        // 2 (K,V) × 32 layers × 8 heads × 128 dims × 2 bytes.
        assert_eq!(model.kv_bytes_per_token(Dtype::Bf16), 131072.0);
    }

    #[test]
    fn bad_configs_are_errors_not_panics() {
        assert!(ModelSpec::from_hf_config("x", "t", "{").is_err());
        let no_hidden = r#"{"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10}"#;
        let error = ModelSpec::from_hf_config("x", "t", no_hidden).unwrap_err().to_string();
        assert!(error.contains("hidden_size"), "{error}");
        let bad_gqa = r#"{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":6,"num_key_value_heads":4,"vocab_size":10}"#;
        assert!(ModelSpec::from_hf_config("x", "t", bad_gqa).is_err());
    }
}
