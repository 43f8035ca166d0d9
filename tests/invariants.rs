//! Properties that hold for every scenario: no request is lost, every requested token is
//! generated, the KV cache never exceeds its capacity, and simulated time never goes back.

mod common;

use common::scenario;
use proptest::prelude::*;
use servesim::cluster::{Cluster, RunOutput};
use servesim::engine::SimTime;
use servesim::metrics::RequestStatus;

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
                    prop_assert_eq!(record.tokens_emitted, record.spec.output_tokens);
                    let (first, last) = (record.first_token.unwrap(), record.last_token.unwrap());
                    prop_assert!(record.spec.arrival <= record.first_scheduled.unwrap());
                    prop_assert!(record.first_scheduled.unwrap() <= first && first <= last);
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
