//! Properties that hold for every scenario: no request is lost, every requested token is
//! generated, the KV cache never exceeds its capacity, and simulated time never goes back.

mod common;

use common::scenario;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use servesim::cluster::{Cluster, RunOutput};
use servesim::engine::SimTime;
use servesim::metrics::{RequestRecord, RequestStatus};

/// Runs `cluster` one event at a time, checking after each that time did not go back and
/// that no replica holds more KV blocks than it has; returns the records and the violations.
fn run_watched(mut cluster: Cluster) -> (RunOutput, u64) {
    let mut last = SimTime::ZERO;
    let mut kv_violations = 0;
    while let Some(now) = cluster.step() {
        assert!(now >= last, "time went back from {last} to {now}");
        last = now;
        for replica in cluster.replicas() {
            if replica.kv().used_blocks() > replica.kv().capacity_blocks() {
                kv_violations += 1;
            }
        }
    }
    (cluster.finish(), kv_violations)
}

/// A completed request produced exactly its tokens, in order: arrival ≤ first scheduled ≤
/// first token ≤ last token.
fn check_completed(record: &RequestRecord) -> Result<(), TestCaseError> {
    prop_assert_eq!(record.tokens_emitted, record.spec.output_tokens);
    let (first, last) = (record.first_token.unwrap(), record.last_token.unwrap());
    prop_assert!(record.spec.arrival <= record.first_scheduled.unwrap());
    prop_assert!(record.first_scheduled.unwrap() <= first && first <= last);
    Ok(())
}

/// The knobs the property test varies.
struct Case {
    model: &'static str,
    device: &'static str,
    memory_utilization: f64,
    policy: &'static str,
    max_num_seqs: u64,
    max_batched: u64,
    chunked: bool,
    replicas: u64,
    pipeline_parallel: u64,
    router: &'static str,
    requests: u64,
    rate: f64,
    input_mean: f64,
    output_mean: f64,
    seed: u64,
}

impl Case {
    fn text(&self) -> String {
        let Case {
            model,
            device,
            memory_utilization,
            policy,
            max_num_seqs,
            max_batched,
            chunked,
            replicas,
            pipeline_parallel,
            router,
            requests,
            rate,
            input_mean,
            output_mean,
            seed,
        } = self;
        let max_model_len = if *chunked { 8192 } else { *max_batched };
        format!(
            "seed: {seed}
model: {model}
deployment:
  router: {router}
  pools:
    - device: {device}
      replicas: {replicas}
      pipeline_parallel: {pipeline_parallel}
      interconnect: pcie-gen4-x16
      memory_utilization: {memory_utilization}
      runtime_reserve_gib: 0.5
      scheduler:
        policy: {policy}
        max_num_seqs: {max_num_seqs}
        max_num_batched_tokens: {max_batched}
        chunked_prefill: {chunked}
        max_model_len: {max_model_len}
workload:
  synthetic:
    requests: {requests}
    arrival: {{ gamma: {{ rate_per_s: {rate}, cv: 2 }} }}
    input_tokens: {{ lognormal: {{ mean: {input_mean}, cv: 1.5 }} }}
    output_tokens: {{ lognormal: {{ mean: {output_mean}, cv: 1.5 }} }}
"
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20261124),
        .. ProptestConfig::default()
    })]

    #[test]
    fn no_request_lost_tokens_complete_kv_bounded_time_monotone(
        (model, device, memory_utilization) in prop_oneof![
            // Tight memory so the KV pool is small and preemption happens.
            Just(("llama-3.2-1b", "l4", 0.17)),
            Just(("llama-3.2-1b", "l4", 0.25)),
            Just(("qwen2.5-7b", "a100-sxm-80gb", 0.25)),
            Just(("llama-3.1-8b", "h100-sxm", 0.9)),
        ],
        policy in prop_oneof![Just("fcfs"), Just("shortest_prompt_first"), Just("priority")],
        max_num_seqs in 1u64..96,
        max_batched in prop_oneof![Just(512u64), Just(2048), Just(8192)],
        chunked in any::<bool>(),
        replicas in 1u64..4,
        pipeline_parallel in 1u64..3,
        router in prop_oneof![Just("round_robin"), Just("least_outstanding_tokens"), Just("power_of_two")],
        requests in 1u64..250,
        rate in 1.0f64..60.0,
        input_mean in 16.0f64..3000.0,
        output_mean in 4.0f64..600.0,
        seed in 0u64..1000,
    ) {
        let text = Case { model, device, memory_utilization, policy, max_num_seqs, max_batched, chunked,
            replicas, pipeline_parallel, router, requests, rate, input_mean, output_mean, seed }.text();
        let scenario = scenario(&text);
        let (output, kv_violations) = run_watched(Cluster::build(&scenario));
        prop_assert_eq!(kv_violations, 0);
        let records = output.recorder.records();
        prop_assert_eq!(records.len() as u64, requests);
        for record in records {
            match record.status {
                RequestStatus::Completed => {
                    check_completed(record)?;
                }
                RequestStatus::Rejected => prop_assert!(record.reject_reason.is_some()),
                RequestStatus::Unfinished => prop_assert!(false, "request {} never finished", record.spec.id),
            }
        }
        for replica in &output.replicas {
            prop_assert!(replica.kv_peak_blocks <= replica.kv_capacity_blocks);
        }
    }
}

/// The pools of a split deployment the second property test varies.
#[derive(Debug, Clone)]
enum Split {
    /// `prefill` prefill and `decode` decode replicas.
    Disaggregated { prefill: u64, decode: u64, layerwise: bool },
    /// `replicas` semi-PD replicas with this prefill share, adapting or not.
    SemiPd { replicas: u64, share: f64, adapt: bool },
    /// `replicas` replicas switching roles.
    Switching { replicas: u64 },
}

/// The workload knobs of the split property test.
#[derive(Clone, Copy)]
struct SplitLoad {
    memory_utilization: f64,
    max_num_seqs: u64,
    requests: u64,
    rate: f64,
    input_mean: f64,
    output_mean: f64,
    seed: u64,
}

fn split_text(split: &Split, load: &SplitLoad) -> String {
    let SplitLoad { memory_utilization, max_num_seqs, requests, rate, input_mean, output_mean, seed } = *load;
    let pool = |name: &str, role: &str, replicas: u64, extra: &str| {
        format!(
            "    - {{ name: {name}, role: {role}, device: h100-sxm, replicas: {replicas}, memory_utilization: {memory_utilization}, runtime_reserve_gib: 0.5, scheduler: {{ max_num_seqs: {max_num_seqs}, max_num_batched_tokens: 2048, max_model_len: 8192 }}{extra} }}\n"
        )
    };
    let (pools, deployment) = match split {
        Split::Disaggregated { prefill, decode, layerwise } => (
            pool("pre", "prefill", *prefill, "") + &pool("dec", "decode", *decode, ""),
            format!("  kv_transfer: {{ layerwise: {layerwise} }}\n"),
        ),
        Split::SemiPd { replicas, share, adapt } => (
            pool(
                "semi",
                "semi_pd",
                *replicas,
                &format!(
                    ", semi_pd: {{ prefill_compute_share: {share}{} }}",
                    if *adapt { ", adapt: { interval_s: 0.5 }" } else { "" }
                ),
            ),
            String::new(),
        ),
        Split::Switching { replicas } => (
            pool("mixed", "switching", *replicas, ""),
            "  role_switching: { interval_s: 0.2, prefill_queue_tokens: 2048, decode_kv_occupancy: 0.5 }\n".to_string(),
        ),
    };
    format!(
        "seed: {seed}
model: llama-3.2-1b
cluster:
  nodes: [{{ node: dgx-h100, count: 1 }}]
deployment:
  router: least_outstanding_tokens
{deployment}  pools:
{pools}workload:
  synthetic:
    requests: {requests}
    arrival: {{ gamma: {{ rate_per_s: {rate}, cv: 2 }} }}
    input_tokens: {{ lognormal: {{ mean: {input_mean}, cv: 1.5, max: 6000 }} }}
    output_tokens: {{ lognormal: {{ mean: {output_mean}, cv: 1.5, max: 2000 }} }}
slo: {{ ttft_s: 1.0, tpot_s: 0.05 }}
"
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20261125),
        .. ProptestConfig::default()
    })]

    #[test]
    fn split_deployments_lose_nothing_bound_kv_on_both_sides_and_order_their_phases(
        split in prop_oneof![
            (1u64..4, 1u64..4, any::<bool>()).prop_map(|(prefill, decode, layerwise)| Split::Disaggregated { prefill, decode, layerwise }),
            (1u64..4, 0.2f64..0.8, any::<bool>()).prop_map(|(replicas, share, adapt)| Split::SemiPd { replicas, share, adapt }),
            (2u64..5).prop_map(|replicas| Split::Switching { replicas }),
        ],
        // Tight memory (a few thousand tokens of KV) so that both sides preempt and wait.
        memory_utilization in prop_oneof![Just(0.045), Just(0.06), Just(0.3)],
        max_num_seqs in 1u64..64,
        requests in 1u64..150,
        rate in 1.0f64..80.0,
        input_mean in 16.0f64..2000.0,
        output_mean in 1.0f64..300.0,
        seed in 0u64..1000,
    ) {
        let load = SplitLoad { memory_utilization, max_num_seqs, requests, rate, input_mean, output_mean, seed };
        let text = split_text(&split, &load);
        let scenario = scenario(&text);
        let (output, kv_violations) = run_watched(Cluster::build(&scenario));
        prop_assert_eq!(kv_violations, 0, "{:?}", split);
        let records = output.recorder.records();
        prop_assert_eq!(records.len() as u64, requests);
        let disaggregated = !matches!(split, Split::SemiPd { .. });
        let layerwise = matches!(split, Split::Disaggregated { layerwise: true, .. });
        for record in records {
            match record.status {
                RequestStatus::Completed => {
                    check_completed(record)?;
                    let first = record.first_token.unwrap();
                    if disaggregated && record.spec.output_tokens > 1 {
                        // The first token comes from the prefill replica; the KV moves after
                        // the prompt (or while its last chunk computes, when streamed) and
                        // decoding starts once it has arrived.
                        let (start, end) = (record.transfer_start.unwrap(), record.transfer_end.unwrap());
                        prop_assert!(start >= record.first_scheduled.unwrap());
                        if !layerwise {
                            prop_assert!(start >= first, "request {} moved before its prefill ended", record.spec.id);
                        }
                        prop_assert!(end >= first && start <= end);
                        prop_assert!(record.first_decode.unwrap() >= end, "request {} decoded before its KV arrived", record.spec.id);
                        prop_assert!(record.decode_replica.is_some());
                    } else {
                        prop_assert!(record.transfer_start.is_none() && record.decode_replica.is_none());
                    }
                }
                RequestStatus::Rejected => prop_assert!(record.reject_reason.is_some()),
                RequestStatus::Unfinished => prop_assert!(false, "request {} never finished ({:?})", record.spec.id, split),
            }
        }
        for replica in &output.replicas {
            prop_assert!(replica.kv_peak_blocks <= replica.kv_capacity_blocks);
        }
        // Every transfer delivered exactly one request's KV, once.
        let moved = records.iter().filter(|r| r.transfer_end.is_some()).count();
        prop_assert_eq!(output.transfers.durations_s.len(), moved);
    }
}

/// How the speculative property test drafts.
#[derive(Debug, Clone)]
enum Drafting {
    /// N-gram lookup: no draft cost.
    Ngram,
    /// EAGLE layers on the target's devices.
    Eagle,
    /// llama-3.2-1b (the targets' vocabulary) on the pool's devices, or on an H100 of its own
    /// over PCIe.
    DraftModel { own_device: bool },
}

/// The knobs of the speculative property test.
#[derive(Debug, Clone)]
struct SpecCase {
    target: &'static str,
    device: &'static str,
    memory_utilization: f64,
    drafting: Drafting,
    k: u64,
    rate: f64,
    adaptive: bool,
    tree_width: u64,
    overlap: bool,
    batching: &'static str,
    max_num_seqs: u64,
    chunked: bool,
    requests: u64,
    rate_per_s: f64,
    input_mean: f64,
    output_mean: f64,
    seed: u64,
}

impl SpecCase {
    fn text(&self) -> String {
        let SpecCase {
            target,
            device,
            memory_utilization,
            drafting,
            k,
            rate,
            adaptive,
            tree_width,
            overlap,
            batching,
            max_num_seqs,
            chunked,
            requests,
            rate_per_s,
            input_mean,
            output_mean,
            seed,
        } = self;
        let method = match drafting {
            Drafting::Ngram => "ngram",
            Drafting::Eagle => "eagle",
            Drafting::DraftModel { own_device: false } => "draft_model\n        draft: { model: llama-3.2-1b }",
            Drafting::DraftModel { own_device: true } => {
                "draft_model\n        draft: { model: llama-3.2-1b, device: h100-sxm, link: pcie-gen5-x16 }"
            }
        };
        let max_batched = if *chunked { 2048 } else { 8192 };
        format!(
            "seed: {seed}
model: {target}
deployment:
  pools:
    - device: {device}
      memory_utilization: {memory_utilization}
      runtime_reserve_gib: 0.5
      scheduler:
        max_num_seqs: {max_num_seqs}
        max_num_batched_tokens: {max_batched}
        chunked_prefill: {chunked}
        max_model_len: 8192
      speculation:
        method: {method}
        k: {k}
        adaptive: {adaptive}
        tree_width: {tree_width}
        overlap: {overlap}
        batching: {batching}
        acceptance: {{ rate: {rate} }}
workload:
  synthetic:
    requests: {requests}
    arrival: {{ gamma: {{ rate_per_s: {rate_per_s}, cv: 2 }} }}
    input_tokens: {{ lognormal: {{ mean: {input_mean}, cv: 1.5, max: 6000 }} }}
    output_tokens: {{ lognormal: {{ mean: {output_mean}, cv: 1.5, max: 2000 }} }}
"
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20261126),
        .. ProptestConfig::default()
    })]

    #[test]
    fn speculation_generates_exactly_the_requested_tokens_within_kv_and_time(
        (target, device, memory_utilization, own_device_ok) in prop_oneof![
            // Tight pools (a few thousand tokens of KV beside the target and any draft) so
            // that speculative tokens push sequences into preemption.
            Just(("llama-3.2-1b", "l4", 0.25, false)),
            Just(("llama-3.2-1b", "l4", 0.35, false)),
            Just(("llama-3.1-8b", "h100-sxm", 0.25, true)),
            Just(("llama-3.1-8b", "h100-sxm", 0.9, true)),
        ],
        drafting in prop_oneof![
            Just(Drafting::Ngram),
            Just(Drafting::Eagle),
            any::<bool>().prop_map(|own_device| Drafting::DraftModel { own_device }),
        ],
        k in 1u64..7,
        rate in 0.0f64..=1.0,
        adaptive in any::<bool>(),
        tree_width in 1u64..4,
        overlap in any::<bool>(),
        batching in prop_oneof![Just("ragged"), Just("padded"), Just("grouped")],
        max_num_seqs in 1u64..64,
        chunked in any::<bool>(),
        requests in 1u64..120,
        rate_per_s in 1.0f64..60.0,
        input_mean in 16.0f64..2000.0,
        output_mean in 1.0f64..300.0,
        seed in 0u64..1000,
    ) {
        let drafting = match drafting {
            Drafting::DraftModel { own_device } => Drafting::DraftModel { own_device: own_device && own_device_ok },
            other => other,
        };
        let case = SpecCase { target, device, memory_utilization, drafting, k, rate, adaptive, tree_width, overlap,
            batching, max_num_seqs, chunked, requests, rate_per_s, input_mean, output_mean, seed };
        let scenario = scenario(&case.text());
        let (output, kv_violations) = run_watched(Cluster::build(&scenario));
        prop_assert_eq!(kv_violations, 0, "{:?}", case);
        let records = output.recorder.records();
        prop_assert_eq!(records.len() as u64, requests);
        let mut requested = 0;
        for record in records {
            // Never past the requested output length, whatever a verification accepted.
            prop_assert!(record.tokens_emitted <= record.spec.output_tokens, "{:?}", case);
            match record.status {
                RequestStatus::Completed => {
                    check_completed(record)?;
                    requested += u64::from(record.spec.output_tokens);
                }
                RequestStatus::Rejected => prop_assert!(record.reject_reason.is_some()),
                RequestStatus::Unfinished => prop_assert!(false, "request {} never finished ({:?})", record.spec.id, case),
            }
        }
        let mut produced = 0;
        for replica in &output.replicas {
            prop_assert!(replica.kv_peak_blocks <= replica.kv_capacity_blocks);
            let stats = replica.stats.speculation;
            prop_assert!(stats.accepted_tokens <= stats.drafted_tokens);
            produced += stats.produced_tokens;
        }
        // Verifications produce decode tokens only: never more than were requested.
        prop_assert!(produced <= requested, "{} tokens produced by verification of {} requested ({:?})", produced, requested, case);
    }
}

/// The "time never goes back" check of the property tests can fail: a component scheduling an
/// event in the past is caught by the engine (in the debug builds tests use).
#[test]
#[should_panic(expected = "before now")]
fn scheduling_an_event_in_the_past_fails_the_run() {
    use servesim::engine::{Component, Context, Simulation};
    struct BackInTime;
    impl Component<u32, ()> for BackInTime {
        fn handle(&mut self, message: u32, ctx: &mut Context<'_, u32, ()>) {
            if message == 0 {
                let earlier = SimTime::from_nanos(ctx.now().as_nanos() - 1);
                ctx.schedule_at(earlier, 1);
            }
        }
    }
    let mut sim = Simulation::new(());
    let id = sim.add(Box::new(BackInTime));
    sim.schedule(id, SimTime::from_nanos(10), 0);
    sim.run(None, u64::MAX);
}

#[test]
fn a_kv_pool_too_small_for_the_load_preempts_and_still_completes_every_request() {
    let text = Case {
        model: "llama-3.2-1b",
        device: "l4",
        memory_utilization: 0.17,
        policy: "fcfs",
        max_num_seqs: 64,
        max_batched: 2048,
        chunked: true,
        replicas: 1,
        pipeline_parallel: 1,
        router: "round_robin",
        requests: 300,
        rate: 30.0,
        input_mean: 1500.0,
        output_mean: 400.0,
        seed: 9,
    }
    .text();
    let (output, summary) = common::run(&scenario(&text));
    assert!(summary.requests.preemptions > 0, "the scenario must exercise preemption");
    assert_eq!(summary.requests.completed + summary.requests.rejected, 300);
    assert!(output.replicas[0].kv_peak_blocks <= output.replicas[0].kv_capacity_blocks);
    let generated: u64 = output.recorder.records().iter().map(|r| u64::from(r.tokens_emitted)).sum();
    let requested: u64 = output
        .recorder
        .records()
        .iter()
        .filter(|r| r.status == RequestStatus::Completed)
        .map(|r| u64::from(r.spec.output_tokens))
        .sum();
    assert_eq!(generated, requested);
}

#[test]
fn speculating_into_a_kv_pool_too_small_for_the_load_preempts_and_still_generates_every_token() {
    let text = SpecCase {
        target: "llama-3.2-1b",
        device: "l4",
        memory_utilization: 0.25,
        drafting: Drafting::DraftModel { own_device: false },
        k: 6,
        rate: 0.8,
        adaptive: false,
        tree_width: 2,
        overlap: false,
        batching: "grouped",
        max_num_seqs: 48,
        chunked: true,
        requests: 120,
        rate_per_s: 40.0,
        input_mean: 1200.0,
        output_mean: 300.0,
        seed: 9,
    }
    .text();
    let scenario = scenario(&text);
    let (output, kv_violations) = run_watched(Cluster::build(&scenario));
    assert_eq!(kv_violations, 0);
    let summary = servesim::metrics::Summary::compute(&scenario, &output);
    assert!(summary.requests.preemptions > 0, "the scenario must exercise preemption");
    assert_eq!(summary.requests.completed + summary.requests.rejected, 120);
    let stats = output.replicas[0].stats.speculation;
    assert!(stats.verifications > 0 && stats.rejected_tokens > 0, "{stats:?}");
    for record in output.recorder.records() {
        if record.status == RequestStatus::Completed {
            assert_eq!(record.tokens_emitted, record.spec.output_tokens);
        } else {
            assert!(record.tokens_emitted <= record.spec.output_tokens);
        }
    }
}
