//! Speculative decoding on the shipped `scenarios/specdec-*.yaml`: the batch-1 speedup agrees
//! with the cost model's own prices, and the directions the literature reports hold (the gain
//! shrinks as the batch grows, slow verifiers want shorter drafts, overlap gains at most 1.6×).
//! Figures are printed (`cargo test --test speculation -- --nocapture`).

mod common;

use servesim::cluster::{pool_cost_model, replica_speculator};
use servesim::cost::CostModel;
use servesim::metrics::Summary;
use servesim::model::BatchShape;
use servesim::scenario::Scenario;

/// The text of `scenarios/<name>.yaml`.
fn shipped(name: &str) -> String {
    std::fs::read_to_string(common::project_root().join("scenarios").join(format!("{name}.yaml"))).unwrap()
}

/// `text` with `from` replaced by `to` (which must be there).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in the scenario");
    text.replacen(from, to, 1)
}

/// `text` without its pool's `speculation:` block.
fn without_speculation(text: &str) -> String {
    let mut out = String::new();
    let mut skipping = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(block) = skipping {
            if indent > block && !line.trim().is_empty() {
                continue;
            }
            skipping = None;
        }
        if line.trim_start().starts_with("speculation:") {
            skipping = Some(indent);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(!out.contains("speculation:"), "speculation block left in:\n{out}");
    out
}

/// `text` with its `workload:` section replaced by `workload` (indented for the key).
fn with_workload(text: &str, workload: &str) -> String {
    let start = text.find("\nworkload:\n").expect("a workload section") + 1;
    let end = text[start..].find("\nslo:").map_or(text.len(), |i| start + i + 1);
    format!("{}workload:\n{workload}{}", &text[..start], &text[end..])
}

/// Requests of `input` prompt and `output` generated tokens, all arriving at once.
fn burst(requests: u64, input: u64, output: u64) -> String {
    format!(
        "  synthetic:
    requests: {requests}
    arrival: {{ poisson: {{ rate_per_s: 1000000 }} }}
    input_tokens: {{ fixed: {{ value: {input} }} }}
    output_tokens: {{ fixed: {{ value: {output} }} }}
"
    )
}

/// Requests of fixed lengths arriving far apart: one at a time.
fn one_at_a_time(requests: u64, input: u64, output: u64) -> String {
    format!(
        "  synthetic:
    requests: {requests}
    arrival: {{ poisson: {{ rate_per_s: 0.001 }} }}
    input_tokens: {{ fixed: {{ value: {input} }} }}
    output_tokens: {{ fixed: {{ value: {output} }} }}
"
    )
}

fn run(text: &str) -> (Scenario, Summary) {
    let scenario = common::scenario(text);
    let (_, summary) = common::run(&scenario);
    assert_eq!(summary.requests.completed, summary.requests.total, "every request completes");
    (scenario, summary)
}

/// Mean time per output token after the first, s. Speedups are TPOT ratios throughout: TPOT
/// covers exactly the tokens verification steps produce (the first comes from prefill, which
/// speculation does not change), so a speedup is the decode-phase one the papers report.
fn tpot(summary: &Summary) -> f64 {
    summary.latency.tpot_s.mean.expect("TPOT")
}

/// Speedup of `text` over the same scenario without speculation, and its summary.
fn speedup(text: &str) -> (f64, Summary) {
    let (_, plain) = run(&without_speculation(text));
    let (_, spec) = run(text);
    (tpot(&plain) / tpot(&spec), spec)
}

/// Simulated batch-1 speedup vs (tokens per step) ÷ (step-time ratio) priced directly.
fn batch_one_speedup_matches_cost_model(name: &str, k: u64) {
    let (input, output) = (512, 256);
    let text = with_workload(&shipped(name), &one_at_a_time(4, input, output));
    let text = text.replace("max_num_seqs: 256,", "max_num_seqs: 1,");
    let (simulated, summary) = speedup(&text);
    let scenario = common::scenario(&text);
    let pool = &scenario.pools[0];
    let placement = &pool.placements[0];
    let mut cost = pool_cost_model(pool, placement);
    let mut speculator = replica_speculator(pool, placement, scenario.seed).expect("the pool speculates");
    // Priced at the mean context of the decode phase.
    let context = input + output / 2;
    let mut decode = BatchShape::default();
    decode.add_decode(context);
    let decode_s = cost.iteration(&decode).duration_ns as f64 * 1e-9;
    let mut verify = BatchShape::default();
    verify.add_verify(context - 1, k + 1);
    let verify_s = cost.iteration(&verify).duration_ns as f64 * 1e-9;
    let draft_s = speculator.draft_seconds(&[(context, k)]);
    let step_ratio = (verify_s + draft_s) / decode_s;
    let tokens_per_step = summary.speculation.as_ref().unwrap().tokens_per_step.unwrap();
    let predicted = tokens_per_step / step_ratio;
    eprintln!(
        "{name} batch 1: simulated speedup {simulated:.3}x; predicted {predicted:.3}x = {tokens_per_step:.3} tokens/step ÷ \
         step ratio {step_ratio:.3} (verify {:.2} ms + draft {:.2} ms vs decode {:.2} ms)",
        verify_s * 1e3,
        draft_s * 1e3,
        decode_s * 1e3
    );
    assert!(
        (simulated / predicted - 1.0).abs() < 0.03,
        "{name}: simulated speedup {simulated:.3} vs cost-model prediction {predicted:.3}"
    );
}

#[test]
fn batch_one_speedup_is_tokens_per_step_over_step_time_ratio() {
    batch_one_speedup_matches_cost_model("specdec-eagle-8b", 4);
    batch_one_speedup_matches_cost_model("specdec-dovetail", 4);
}

/// Speedups of eagle-8b on `device` at max_num_seqs 1, 8, 64, 256, each with twice as many
/// requests (256 prompt, 256 output tokens) arriving at once.
fn speedups_by_batch(device: &str) -> Vec<f64> {
    let base = edit(&shipped("specdec-eagle-8b"), "device: h100-sxm", &format!("device: {device}"));
    [1u64, 8, 64, 256]
        .iter()
        .map(|&batch| {
            let text = with_workload(&base, &burst(2 * batch.max(8), 128, 256));
            let text = edit(&text, "max_num_seqs: 256,", &format!("max_num_seqs: {batch},"));
            let (s, _) = speedup(&text);
            eprintln!("eagle-8b on {device}, max_num_seqs {batch}: speedup {s:.3}x");
            s
        })
        .collect()
}

/// Verification is a (k+1)-token chunk per sequence: at batch 1 it costs what a decode step
/// costs (memory-bound), at batch 256 it is 1,280 tokens of GEMMs. On an H100 (high FLOP/byte)
/// the gain shrinks but survives; on an A100, more compute-bound at that size, it turns into
/// a slowdown.
#[test]
fn speedup_falls_as_the_batch_grows_and_turns_to_slowdown() {
    for device in ["h100-sxm", "a100-sxm-80gb"] {
        let speedups = speedups_by_batch(device);
        for pair in speedups.windows(2) {
            assert!(pair[1] < pair[0], "{device}: the speedup does not fall with the batch: {speedups:.3?}");
        }
        assert!(speedups[0] > 2.0, "{device}: batch-1 speedup {:.3}", speedups[0]);
        if device == "a100-sxm-80gb" {
            assert!(speedups[3] < 1.0, "{device}: speculation still pays at batch 256 ({:.3}x)", speedups[3]);
        }
    }
}

/// The k of 1..=8 with the lowest TPOT.
fn best_k(text: &str, label: &str) -> u64 {
    let mut best = (0, f64::INFINITY);
    let mut figures = Vec::new();
    for k in 1..=8u64 {
        let (_, summary) = run(&edit(text, "k: 4", &format!("k: {k}")));
        let t = tpot(&summary);
        figures.push(format!("{k}: {:.2} ms", t * 1e3));
        if t < best.1 {
            best = (k, t);
        }
    }
    eprintln!("{label}: TPOT by k {}; best k = {}", figures.join(", "), best.0);
    best.0
}

/// The CPU (EPYC 9654, AVX-512 BF16: ~26 tokens per pass before compute binds) verifies
/// 8 × (k + 1) tokens compute-bound already at small k, so each extra drafted token costs
/// nearly its share of a full step; an H100 verifies them memory-bound up to k = 8. (At batch
/// 1 both verify memory-bound and the best k, set by the draft's cost and α, is 6 on both.)
/// The same acceptance (0.8 per token) on both, 8 sequences at a time.
#[test]
fn a_slow_cpu_verifier_wants_shorter_drafts_than_a_gpu() {
    let cpu = with_workload(&shipped("specdec-dovetail"), &burst(8, 256, 96));
    let cpu = edit(&cpu, "max_num_seqs: 1,", "max_num_seqs: 8,");
    let gpu = with_workload(&shipped("specdec-eagle-8b"), &burst(8, 256, 96));
    let gpu = edit(&edit(&gpu, "max_num_seqs: 256,", "max_num_seqs: 8,"), "rate: 0.75", "rate: 0.8");
    let on_cpu = best_k(&cpu, "dovetail, 7B verified on epyc-9654, batch 8");
    let on_gpu = best_k(&gpu, "eagle-8b, verified on h100-sxm, batch 8");
    assert!(on_cpu < on_gpu, "best k on the CPU {on_cpu} vs on the GPU {on_gpu}");
}

#[test]
fn overlap_beats_serial_speculation_by_at_most_1_6x() {
    let overlapped = with_workload(&shipped("specdec-pearl"), &one_at_a_time(3, 512, 200));
    let serial = edit(&overlapped, "overlap: true", "overlap: false");
    let (_, o) = run(&overlapped);
    let (_, s) = run(&serial);
    let gain = tpot(&s) / tpot(&o);
    eprintln!("pearl: overlap {gain:.3}x serial (PEARL reports up to 1.52x)");
    assert!(gain > 1.0 && gain <= 1.6, "overlap gains {gain:.3}x over serial");
}

#[test]
fn dovetail_speedup_over_cpu_only_decoding() {
    let text = with_workload(&shipped("specdec-dovetail"), &one_at_a_time(3, 256, 128));
    let (s, summary) = speedup(&text);
    let tokens_per_s = 1.0 / tpot(&summary);
    eprintln!("dovetail-like: {s:.2}x CPU-only decoding at {tokens_per_s:.1} tokens/s (paper: 2.77x at 5.86 tokens/s)");
    assert!(s > 1.5 && s < 4.0, "speedup {s:.2}");
}

/// Drafts made beside a verification assume the whole current draft is accepted (PEARL's
/// post-verify): when every draft is rejected overlap saves nothing, and when every draft is
/// accepted the step costs the longer of drafting and verifying instead of their sum.
#[test]
fn overlapped_drafts_are_void_after_a_rejection() {
    let base = with_workload(&shipped("specdec-pearl"), &one_at_a_time(2, 512, 120));
    let gain = |rate: &str| {
        let overlapped = edit(&base, "rate: 0.85", rate);
        let (_, o) = run(&overlapped);
        let (_, s) = run(&edit(&overlapped, "overlap: true", "overlap: false"));
        tpot(&s) / tpot(&o)
    };
    let (never, always) = (gain("rate: 0.0"), gain("rate: 1.0"));
    eprintln!("pearl: overlap gain {never:.3}x when every draft is rejected, {always:.3}x when all are accepted");
    assert!((never - 1.0).abs() < 1e-6, "overlap gained {never:.4}x with every draft rejected");
    assert!(always > 1.3, "overlap gained only {always:.3}x with every draft accepted");
}

/// A burst of `requests` on one `device` speculating with EAGLE heads of adaptive length (up
/// to 8) and per-request Beta(1, 1) acceptance, so draft lengths spread, verified with
/// `batching`.
fn spread_drafts(device: &str, max_num_seqs: u64, requests: u64, batching: &str) -> String {
    format!(
        "seed: 1
model: llama-3.1-8b
deployment:
  pools:
    - device: {device}
      scheduler: {{ max_num_seqs: {max_num_seqs} }}
      speculation: {{ method: eagle, k: 8, adaptive: true, batching: {batching}, acceptance: {{ beta: {{ alpha: 1, beta: 1 }} }} }}
workload:
  synthetic:
    requests: {requests}
    arrival: {{ poisson: {{ rate_per_s: 200 }} }}
    input_tokens: {{ fixed: {{ value: 256 }} }}
    output_tokens: {{ fixed: {{ value: 256 }} }}
"
    )
}

#[test]
fn grouping_by_draft_length_trades_padding_for_smaller_batches() {
    // Naive padded batching pads every verification to the batch's longest draft; grouping
    // (EXSpec-style) batches sequences of similar draft length from a pool twice the batch.
    // Where verification is compute-bound (A100, batch 64) the padding it saves is worth
    // more than the batch it splits; where it is memory-bound (H100, batch 16) padding is
    // nearly free and the smaller batches lose.
    let measure = |device: &str, seqs: u64| {
        let (_, padded) = run(&spread_drafts(device, seqs, 600, "padded"));
        let (_, grouped) = run(&spread_drafts(device, seqs, 600, "grouped"));
        let padding = |s: &Summary| s.speculation.as_ref().unwrap().padding_tokens as f64;
        let rate = |s: &Summary| s.throughput.output_tokens_per_s.unwrap();
        eprintln!(
            "{device} batch {seqs}: padding {:.0} -> {:.0} tokens, output {:.0} -> {:.0} tok/s, TPOT {:.1} -> {:.1} ms",
            padding(&padded),
            padding(&grouped),
            rate(&padded),
            rate(&grouped),
            tpot(&padded) * 1e3,
            tpot(&grouped) * 1e3
        );
        (padding(&grouped) / padding(&padded), rate(&grouped) / rate(&padded))
    };
    let (padding_a100, rate_a100) = measure("a100-sxm-80gb", 64);
    assert!(padding_a100 < 0.3, "grouping must cut most of the padding: {padding_a100:.2}");
    assert!(rate_a100 > 1.05, "compute-bound verification gains from grouping: {rate_a100:.3}");
    let (padding_h100, rate_h100) = measure("h100-sxm", 16);
    assert!(padding_h100 < 0.3, "{padding_h100:.2}");
    assert!(rate_h100 < 1.0, "memory-bound verification loses from smaller batches: {rate_h100:.3}");
}
