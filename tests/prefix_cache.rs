//! Prefix caching on the Mooncake conversation trace, against reuse computed directly from the
//! trace's `hash_ids` (read here with serde_json, not through servesim's trace reader).
//!
//! - With an unlimited cache the hit rate is exactly the direct computation.
//! - With a finite cache it is lower and rises with capacity; TTFT p50 falls with it.
//! - Host tiers keep what the device evicts: KV-pool cache < + host DRAM < + NVMe <= unlimited.
//! - A cache-aware router finds more of the cache than a load-only one across replicas.
//!
//! The exact comparison replays all 12,031 requests; the others the first 600.

mod common;

use common::{project_root, run, scenario};
use flate2::read::GzDecoder;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};

const TRACE: &str = "workloads/mooncake_conversation_trace.jsonl.gz";
/// Prompt tokens per hash in Mooncake's traces.
const BLOCK_TOKENS: u64 = 512;

/// (prompt tokens, hash_ids) of the first `limit` requests, in trace (arrival) order.
fn trace_prompts(limit: usize) -> Vec<(u64, Vec<u64>)> {
    let file = std::fs::File::open(project_root().join(TRACE)).unwrap();
    BufReader::new(GzDecoder::new(file))
        .lines()
        .take(limit)
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            let hashes = row["hash_ids"].as_array().unwrap().iter().map(|h| h.as_u64().unwrap()).collect();
            (row["input_length"].as_u64().unwrap(), hashes)
        })
        .collect()
}

/// Prompt tokens an unlimited cache serves, in arrival order: each request reuses the
/// leading run of its blocks that an earlier request computed, never the block holding its
/// last prompt token (its logits must be computed); a computed prompt leaves every full
/// block it holds in the cache.
fn direct_hit_tokens(prompts: &[(u64, Vec<u64>)]) -> (u64, u64) {
    let mut cached: HashSet<u64> = HashSet::new();
    let (mut prompt_tokens, mut hit_tokens) = (0, 0);
    for (tokens, hashes) in prompts {
        prompt_tokens += tokens;
        let reusable = ((tokens - 1) / BLOCK_TOKENS).min(hashes.len() as u64) as usize;
        let hits = hashes[..reusable].iter().take_while(|h| cached.contains(h)).count() as u64;
        hit_tokens += hits * BLOCK_TOKENS;
        let full = (tokens / BLOCK_TOKENS).min(hashes.len() as u64) as usize;
        cached.extend(&hashes[..full]);
    }
    (prompt_tokens, hit_tokens)
}

fn mooncake_scenario(limit: usize, time_scale: f64, replicas: u64, router: &str, pool: &str) -> String {
    mooncake_scenario_of("llama-3.1-8b", limit, time_scale, replicas, router, pool)
}

fn mooncake_scenario_of(model: &str, limit: usize, time_scale: f64, replicas: u64, router: &str, pool: &str) -> String {
    format!(
        "seed: 1
model: {model}
cluster:
  nodes:
    - node: dgx-h100
deployment:
  router: {router}
  pools:
    - device: h100-sxm
      replicas: {replicas}
{pool}
workload:
  trace:
    format: mooncake
    path: ../{TRACE}
    limit: {limit}
    time_scale: {time_scale}
"
    )
}

struct CacheRun {
    hit_rate: f64,
    hit_tokens: u64,
    prompt_tokens: u64,
    ttft_p50_s: f64,
    preemptions: u64,
}

fn run_cache(text: &str) -> CacheRun {
    let scenario = scenario(text);
    let (_, summary) = run(&scenario);
    let cache = summary.prefix_cache.expect("a pool with a prefix cache reports it");
    assert_eq!(summary.requests.completed, summary.requests.total, "every request finishes");
    CacheRun {
        hit_rate: cache.hit_rate.expect("prompts were served"),
        hit_tokens: cache.hit_tokens,
        prompt_tokens: cache.prompt_tokens,
        ttft_p50_s: summary.latency.ttft_s.p50.expect("requests finished"),
        preemptions: summary.requests.preemptions,
    }
}

fn unlimited_hit_rate_is_the_direct_one(limit: usize, time_scale: f64) {
    let (prompt_tokens, hit_tokens) = direct_hit_tokens(&trace_prompts(limit));
    let pool = "      prefix_cache: { unlimited: true, share_in_flight: true }";
    let simulated = run_cache(&mooncake_scenario(limit, time_scale, 1, "round_robin", pool));
    eprintln!(
        "{limit} requests: direct {hit_tokens} of {prompt_tokens} prompt tokens ({:.4}); simulated {} of {} ({:.4})",
        hit_tokens as f64 / prompt_tokens as f64,
        simulated.hit_tokens,
        simulated.prompt_tokens,
        simulated.hit_rate
    );
    // A preempted sequence's recomputation is not a first lookup: it neither adds prompt
    // tokens nor hits, so the comparison stays exact when the run preempts.
    eprintln!("({} preemptions)", simulated.preemptions);
    assert_eq!(simulated.prompt_tokens, prompt_tokens);
    assert_eq!(simulated.hit_tokens, hit_tokens, "unlimited-cache hits equal the direct computation exactly");
}

#[test]
fn an_unlimited_cache_finds_exactly_the_reuse_in_the_hash_ids_of_the_whole_trace() {
    unlimited_hit_rate_is_the_direct_one(12_031, 6.0);
}

#[test]
fn a_finite_cache_finds_less_and_more_with_capacity_and_ttft_follows() {
    // Conversation turns come back hundreds of thousands of prompt tokens later: below that
    // a cache keeps only the shared first block. Llama-3.2-1B's 32 KiB of KV per token lets
    // one H100 cache over two million tokens, enough to see the rise.
    let limit = 600;
    let model = "llama-3.2-1b";
    let mooncake = |pool: &str| mooncake_scenario_of(model, limit, 6.0, 1, "round_robin", pool);
    let mut rows = Vec::new();
    for capacity in [500_000u64, 1_000_000, 1_500_000, 2_000_000] {
        let pool = format!("      prefix_cache: {{ capacity_tokens: {capacity}, share_in_flight: true }}");
        rows.push((format!("{capacity} tokens"), run_cache(&mooncake(&pool))));
    }
    let unlimited = run_cache(&mooncake("      prefix_cache: { unlimited: true, share_in_flight: true }"));
    let (_, without) = run(&scenario(&mooncake("      prefix_cache: { enabled: false }")));
    let none_ttft_p50_s = without.latency.ttft_s.p50.unwrap();
    eprintln!("no cache: TTFT p50 {none_ttft_p50_s:.3} s");
    for (name, r) in &rows {
        eprintln!("{name}: hit rate {:.4}, TTFT p50 {:.3} s", r.hit_rate, r.ttft_p50_s);
    }
    eprintln!("unlimited: hit rate {:.4}, TTFT p50 {:.3} s", unlimited.hit_rate, unlimited.ttft_p50_s);
    for pair in rows.windows(2) {
        assert!(pair[0].1.hit_rate < pair[1].1.hit_rate, "{} finds more than {}", pair[1].0, pair[0].0);
    }
    let largest = &rows.last().unwrap().1;
    assert!(largest.hit_rate < unlimited.hit_rate, "a finite cache finds less than the unlimited one");
    assert!(unlimited.ttft_p50_s < largest.ttft_p50_s && largest.ttft_p50_s < none_ttft_p50_s);
}

#[test]
fn host_tiers_keep_what_the_device_evicts() {
    let limit = 600;
    let tiers = [
        "      prefix_cache: { capacity_tokens: 50000 }",
        "      prefix_cache: { capacity_tokens: 50000 }\n      kv_offload: { cpu_gib: 20 }",
        "      prefix_cache: { capacity_tokens: 50000 }\n      kv_offload: { cpu_gib: 20, nvme_gib: 200 }",
        "      prefix_cache: { unlimited: true }",
    ];
    let rates: Vec<f64> =
        tiers.iter().map(|pool| run_cache(&mooncake_scenario(limit, 6.0, 1, "round_robin", pool)).hit_rate).collect();
    eprintln!(
        "device {:.4}, + 20 GiB DRAM {:.4}, + 200 GiB NVMe {:.4}, unlimited {:.4}",
        rates[0], rates[1], rates[2], rates[3]
    );
    assert!(rates[0] < rates[1] && rates[1] < rates[2] && rates[2] <= rates[3], "{rates:?}");
}

#[test]
fn a_cache_aware_router_finds_more_of_the_cache_than_a_load_only_one() {
    let limit = 600;
    let pool = "      prefix_cache: { enabled: true }";
    let load_only = run_cache(&mooncake_scenario(limit, 1.5, 4, "least_outstanding_tokens", pool));
    let aware = run_cache(&mooncake_scenario(limit, 1.5, 4, "prefix_aware", pool));
    eprintln!(
        "4 replicas: least outstanding tokens hit rate {:.4} (TTFT p50 {:.3} s); prefix aware {:.4} ({:.3} s)",
        load_only.hit_rate, load_only.ttft_p50_s, aware.hit_rate, aware.ttft_p50_s
    );
    assert!(aware.hit_rate > load_only.hit_rate * 1.2, "routing by prefix must find clearly more");
}
