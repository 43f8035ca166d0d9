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
