//! The subset of Hugging Face `config.json` fields servesim reads. Published configs carry
//! many more fields, so unknown fields are accepted here (unlike servesim's own YAML files);
//! the aliases cover the older GPT-J/GPT-NeoX/Falcon spellings.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub(super) struct HfConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(alias = "n_embd", alias = "d_model")]
    pub hidden_size: Option<u64>,
    #[serde(alias = "n_layer", alias = "num_layers")]
    pub num_hidden_layers: Option<u64>,
    #[serde(alias = "n_head")]
    pub num_attention_heads: Option<u64>,
    #[serde(default, alias = "num_kv_heads", alias = "n_head_kv", alias = "multi_query_group_num")]
    pub num_key_value_heads: Option<u64>,
    #[serde(default)]
    pub head_dim: Option<u64>,
    #[serde(default, alias = "n_inner", alias = "ffn_dim", alias = "ffn_hidden_size")]
    pub intermediate_size: Option<u64>,
    pub vocab_size: Option<u64>,
    #[serde(default, alias = "n_positions", alias = "seq_length", alias = "max_sequence_length")]
    pub max_position_embeddings: Option<u64>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default, alias = "activation_function")]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub torch_dtype: Option<String>,
    // Sliding-window attention (Mistral); Qwen configs name a window they do not use.
    #[serde(default)]
    pub sliding_window: Option<u64>,
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    // Mixture of experts (Mixtral, Qwen-MoE, DeepSeek).
    #[serde(default, alias = "num_local_experts", alias = "n_routed_experts")]
    pub num_experts: Option<u64>,
    #[serde(default)]
    pub num_experts_per_tok: Option<u64>,
    #[serde(default)]
    pub moe_intermediate_size: Option<u64>,
    #[serde(default)]
    pub n_shared_experts: Option<u64>,
    #[serde(default)]
    pub shared_expert_intermediate_size: Option<u64>,
    #[serde(default)]
    pub first_k_dense_replace: Option<u64>,
    #[serde(default)]
    pub moe_layer_freq: Option<u64>,
    #[serde(default)]
    pub decoder_sparse_step: Option<u64>,
    #[serde(default)]
    pub mlp_only_layers: Option<Vec<u64>>,
    // Multi-head latent attention (DeepSeek-V2/V3).
    #[serde(default)]
    pub kv_lora_rank: Option<u64>,
    #[serde(default)]
    pub q_lora_rank: Option<u64>,
    #[serde(default)]
    pub qk_rope_head_dim: Option<u64>,
    #[serde(default)]
    pub qk_nope_head_dim: Option<u64>,
    #[serde(default)]
    pub v_head_dim: Option<u64>,
    // Llama 4: experts of `intermediate_size`, dense layers of `intermediate_size_mlp`, MoE
    // every `interleave_moe_layer_step` layers, each with one shared expert.
    #[serde(default)]
    pub intermediate_size_mlp: Option<u64>,
    #[serde(default)]
    pub interleave_moe_layer_step: Option<u64>,
    // Multimodal configs (Llama 4) hold the language model's fields in `text_config`.
    #[serde(default)]
    pub text_config: Option<Box<HfConfig>>,
}
