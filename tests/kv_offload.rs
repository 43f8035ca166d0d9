//! KV tiers: what moving KV between a GPU and its host costs, and that swap preemption
//! moves it (and loses nothing).
//!
//! The expected figures are derived here from the model's `config.json` and the link profile,
//! not from the simulator's memory plan: a 32k-token Llama-3.1-70B KV over PCIe Gen5 x16 must
//! take its bytes divided by the link's bandwidth (issue 10's acceptance, ±5%).

mod common;

use common::{project_root, run, scenario};
use servesim::hardware::Catalog;

/// Bytes of KV one device holds for `tokens` tokens of `model` at 16 bits under tensor
/// parallelism `tp`, from the Hugging Face config.
fn kv_bytes_per_device(model: &str, tokens: u64, tp: u64) -> f64 {
    let path = project_root().join("models").join(model).join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    let field = |name: &str| config[name].as_u64().unwrap_or_else(|| panic!("{name} in {}", path.display()));
    let layers = field("num_hidden_layers");
    let kv_heads = field("num_key_value_heads");
    let head_dim = field("hidden_size") / field("num_attention_heads");
    let heads_per_device = (kv_heads / tp).max(1);
    // Keys and values, two bytes each.
    (layers * 2 * heads_per_device * head_dim * 2 * tokens) as f64
}

fn offload_scenario(tp: u64, extra_pool: &str, workload: &str) -> String {
    format!(
        "seed: 5
model: llama-3.1-70b
dtype: bf16
cluster:
  nodes:
    - node: dgx-h100
deployment:
  pools:
    - device: h100-sxm
      tensor_parallel: {tp}
{extra_pool}
workload:
{workload}
"
    )
}

#[test]
fn swapping_a_32k_token_llama_70b_kv_over_pcie_gen5_takes_its_bytes_over_the_link_bandwidth() {
    let catalog = Catalog::bundled().unwrap();
    let pcie = &catalog.links["pcie-gen5-x16"];
    let bandwidth_bytes_per_s = pcie.bandwidth_gbs_per_direction.get() * 1e9;
    let workload = "  synthetic:\n    requests: 1\n    arrival: { poisson: { rate_per_s: 1 } }\n    input_tokens: { fixed: { value: 64 } }\n    output_tokens: { fixed: { value: 8 } }";
    // 140 GB of BF16 weights do not fit one 80 GB H100: TP2 and up.
    for tp in [2u64, 4, 8] {
        let text = offload_scenario(tp, "      kv_offload: { swap_preemption: true }", workload);
        let scenario = scenario(&text);
        let pool = &scenario.pools[0];
        let plan = pool.placements[0].offload.expect("the pool offloads");
        let tokens = 32_768u64;
        let block_tokens = pool.memory.block_size_tokens;
        let blocks = tokens.div_ceil(block_tokens);
        let simulated_s = plan.host_transfer_s(blocks);
        let expected_s = kv_bytes_per_device("llama-3.1-70b", tokens, tp) / bandwidth_bytes_per_s;
        let error = simulated_s / expected_s - 1.0;
        eprintln!(
            "TP{tp}: {:.2} GB per GPU over {:.0} GB/s: expected {:.1} ms, simulated {:.1} ms ({:+.2}%)",
            kv_bytes_per_device("llama-3.1-70b", tokens, tp) / 1e9,
            bandwidth_bytes_per_s / 1e9,
            expected_s * 1e3,
            simulated_s * 1e3,
            error * 100.0
        );
        assert!(error.abs() <= 0.05, "TP{tp}: {simulated_s} s vs {expected_s} s");
    }
}

#[test]
fn swap_preemption_moves_kv_both_ways_at_the_link_price_and_finishes_every_request() {
    // Eight 12k-token prompts growing by 3k tokens each on one TP4 replica whose KV pool is
    // cut so that not all of them fit at full length: the scheduler must preempt, and with
    // swap preemption it swaps instead of recomputing.
    let workload = "  synthetic:
    requests: 8
    arrival: { poisson: { rate_per_s: 100 } }
    input_tokens: { fixed: { value: 12288 } }
    output_tokens: { fixed: { value: 3072 } }";
    let pool = "      memory_utilization: 0.55
      scheduler: { max_num_seqs: 8, max_num_batched_tokens: 16384 }
      kv_offload: { swap_preemption: true }";
    let scenario = scenario(&offload_scenario(4, pool, workload));
    let capacity_tokens = scenario.pools[0].memory.kv_capacity_blocks * scenario.pools[0].memory.block_size_tokens;
    assert!(
        capacity_tokens < 8 * (12288 + 3072) && capacity_tokens > 12288 + 3072,
        "the test needs a pool that holds one request but not all eight: {capacity_tokens} tokens"
    );
    let (output, summary) = run(&scenario);
    let offload = summary.kv_offload.clone().expect("an offloading pool reports its traffic");
    eprintln!("{offload:?}");
    assert!(offload.swap_outs > 0, "a pool too small for all eight must preempt");
    assert_eq!(offload.swap_ins, offload.swap_outs, "every swapped sequence comes back");
    assert_eq!(summary.requests.completed, 8, "nothing is lost");
    let plan = scenario.pools[0].placements[0].offload.unwrap();
    let transfers = (offload.swap_outs + offload.swap_ins) as f64;
    let expected_s = transfers * plan.host_link_latency_s
        + offload.swapped_blocks as f64 * plan.block_bytes_per_device / plan.host_link_bytes_per_s;
    assert!(
        (offload.transfer_s - expected_s).abs() <= 1e-9 * expected_s,
        "{} s of transfers for {} blocks, expected {expected_s} s",
        offload.transfer_s,
        offload.swapped_blocks
    );
    // Swapped sequences keep their KV: no prompt token is computed twice.
    let computed_prompt_tokens: u64 = output.replicas.iter().map(|r| r.stats.prefill_tokens).sum();
    assert_eq!(computed_prompt_tokens, 8 * 12288, "swap preemption recomputes nothing");
}

#[test]
fn recompute_preemption_recomputes_where_swap_preemption_moves() {
    let workload = "  synthetic:
    requests: 8
    arrival: { poisson: { rate_per_s: 100 } }
    input_tokens: { fixed: { value: 12288 } }
    output_tokens: { fixed: { value: 3072 } }";
    let recompute_pool = "      memory_utilization: 0.55
      scheduler: { max_num_seqs: 8, max_num_batched_tokens: 16384 }";
    let scenario = scenario(&offload_scenario(4, recompute_pool, workload));
    let (output, summary) = run(&scenario);
    assert!(summary.kv_offload.is_none(), "no offload section, no offload report");
    let computed_prompt_tokens: u64 = output.replicas.iter().map(|r| r.stats.prefill_tokens).sum();
    assert!(
        computed_prompt_tokens > 8 * 12288,
        "recompute preemption computes preempted prompts again: {computed_prompt_tokens} prompt tokens"
    );
    assert_eq!(summary.requests.completed, 8);
}
