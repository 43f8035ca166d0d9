//! Bundled model configs against their publishers' parameter counts: total and active per
//! token (experts touched by top-k routing plus shared experts), as the model cards state.

use servesim::hardware::BUNDLED_MODELS;
use servesim::model::ModelSpec;

fn bundled(name: &str) -> ModelSpec {
    let (_, text) = BUNDLED_MODELS.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} is bundled"));
    ModelSpec::from_hf_config(name, name, text).unwrap()
}

/// `model`'s total and active parameters are within 2% of the published figures (billions).
fn matches_published(model: &str, total_b: f64, active_b: f64) {
    let spec = bundled(model);
    let total = spec.parameter_count() as f64 / 1e9;
    let active = spec.active_parameter_count() as f64 / 1e9;
    eprintln!("{model}: {total:.2}B total (published {total_b}B), {active:.2}B active (published {active_b}B)");
    assert!((total / total_b - 1.0).abs() < 0.02, "{model}: {total:.2}B total vs {total_b}B");
    assert!((active / active_b - 1.0).abs() < 0.02, "{model}: {active:.2}B active vs {active_b}B");
}

#[test]
fn qwen3_235b_a22b_has_235b_parameters_22b_active() {
    // Qwen3 technical report: 235B total, 22B activated; 128 experts, 8 activated.
    matches_published("qwen3-235b-a22b", 235.0, 22.0);
}

#[test]
fn deepseek_r1_has_671b_parameters_37b_active() {
    // DeepSeek-R1 model card: 671B total, 37B activated (the MTP module not counted).
    matches_published("deepseek-r1", 671.0, 37.0);
}

#[test]
fn llama_4_scout_language_model_has_17b_active_of_16_experts() {
    // Meta's model card: 17B active, 109B total. servesim reads the language model
    // (text_config), not the vision encoder (~1% of the total). 16 routed experts (top-1)
    // plus one shared expert in every layer.
    matches_published("llama-4-scout", 109.0, 17.0);
    let spec = bundled("llama-4-scout");
    let moe = spec.moe.as_ref().expect("Llama 4 is MoE");
    assert_eq!((moe.experts, moe.experts_per_token, moe.moe_layers), (16, 1, 48));
    assert_eq!((moe.expert_intermediate_size, moe.shared_intermediate_size), (8192, 8192));
    assert_eq!(spec.vocab_size, 202_048);
}
