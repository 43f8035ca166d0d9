//! The KV-cache capacity follows from memory left after weights.

mod common;

use common::{scenario, single_replica};

#[test]
fn llama_3_1_8b_on_h100_matches_the_hand_computation() {
    let workload = "  synthetic:\n    requests: 1\n    arrival: { poisson: { rate_per_s: 1 } }\n    input_tokens: { fixed: { value: 10 } }\n    output_tokens: { fixed: { value: 10 } }";
    let scenario = scenario(&single_replica("llama-3.1-8b", "h100-sxm", 256, 8192, workload, 0));
    let pool = &scenario.pools[0];
    // By hand: KV bytes/token = 2 (K,V) × 32 layers × 8 KV heads × 128 dims × 2 bytes.
    let kv_bytes_per_token = 2.0 * 32.0 * 8.0 * 128.0 * 2.0;
    assert_eq!(pool.memory.kv_bytes_per_token, kv_bytes_per_token);
    // 80 GiB × 0.9 minus 8.03 B bf16 parameters.
    let free_bytes = 80.0 * 1024f64.powi(3) * 0.9 - 8.03e9 * 2.0;
    let hand_tokens = free_bytes / kv_bytes_per_token;
    let simulated_tokens = (pool.memory.kv_capacity_blocks * pool.memory.block_size_tokens) as f64;
    let error = (simulated_tokens - hand_tokens).abs() / hand_tokens;
    eprintln!("KV capacity: simulated {simulated_tokens} tokens, hand {hand_tokens:.0}, error {:.2}%", error * 100.0);
    assert!(error < 0.05, "error {:.2}%", error * 100.0);
    // The simulator holds back activations and a runtime reserve, so it is below the bound.
    assert!(simulated_tokens < hand_tokens);
}

/// Tokens of KV cache a hand computation gives: memory left after the weights (no activation
/// or runtime reserve), over the bytes one device stores per token.
fn hand_tokens(device_gib: f64, params: f64, devices_sharing_weights: f64, kv_bytes_per_token_per_device: f64) -> f64 {
    let free_bytes = device_gib * 1024f64.powi(3) * 0.9 - params * 2.0 / devices_sharing_weights;
    free_bytes / kv_bytes_per_token_per_device
}

fn capacity_tokens(model: &str, device: &str, tp: u64, pp: u64) -> f64 {
    let text = format!(
        "model: {model}
deployment:
  pools:
    - device: {device}
      tensor_parallel: {tp}
      pipeline_parallel: {pp}
      interconnect: nvlink4
workload:
  synthetic:
    requests: 1
    arrival: {{ poisson: {{ rate_per_s: 1 }} }}
    input_tokens: {{ fixed: {{ value: 10 }} }}
    output_tokens: {{ fixed: {{ value: 10 }} }}
"
    );
    let scenario = scenario(&text);
    let memory = &scenario.pools[0].memory;
    (memory.kv_capacity_blocks * memory.block_size_tokens) as f64
}

#[test]
fn each_pipeline_stage_holds_only_its_layers_kv() {
    // Llama-3.1-8B on A100-80GB: 32 layers, 8 KV heads × 128 dims, bf16. A stage of PP p keeps
    // 32/p layers' KV per token and 1/p of the weights, so capacity more than doubles at PP2.
    let full_kv = 2.0 * 32.0 * 8.0 * 128.0 * 2.0;
    let mut previous = 0.0;
    for pp in [1u64, 2, 4] {
        let simulated = capacity_tokens("llama-3.1-8b", "a100-sxm-80gb", 1, pp);
        let hand = hand_tokens(80.0, 8.03e9, pp as f64, full_kv / pp as f64);
        let error = (simulated - hand).abs() / hand;
        eprintln!("PP{pp}: {simulated} tokens, hand {hand:.0} ({:.2}% below)", error * 100.0);
        assert!(simulated < hand && error < 0.06, "PP{pp}: {simulated} vs {hand:.0}");
        assert!(simulated > 2.0 * previous, "PP{pp} must hold more than twice PP{}", pp / 2);
        previous = simulated;
    }
}

#[test]
fn tensor_parallelism_beyond_the_kv_heads_replicates_them() {
    // vLLM keeps at least one KV head per device: at TP 8 and TP 16 each of Llama-3.1-8B's
    // devices stores 1 head × 128 dims × 2 (K, V) × 32 layers × 2 bytes per token.
    let per_device = 2.0 * 32.0 * 128.0 * 2.0;
    for tp in [8u64, 16] {
        let simulated = capacity_tokens("llama-3.1-8b", "h100-sxm", tp, 1);
        let hand = hand_tokens(80.0, 8.03e9, tp as f64, per_device);
        eprintln!("llama-3.1-8b TP{tp}: {simulated} tokens per replica, hand {hand:.0}");
        assert!(simulated < hand && (hand - simulated) / hand < 0.05, "TP{tp}: {simulated} vs {hand:.0}");
    }
    // Llama-3.1-405B has 8 KV heads and 126 layers: at TP16 every device holds one head.
    let simulated = capacity_tokens("llama-3.1-405b", "h200", 16, 1);
    let hand = hand_tokens(141.0, 405.85e9, 16.0, 2.0 * 126.0 * 128.0 * 2.0);
    eprintln!("llama-3.1-405b TP16 on H200: {simulated} tokens, hand {hand:.0}");
    assert!(simulated < hand && (hand - simulated) / hand < 0.05, "{simulated} vs {hand:.0}");
}
