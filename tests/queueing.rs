//! The engine and a replica agree with queueing theory where theory is exact.
//!
//! With `max_num_seqs: 1` a replica is a single server; a fixed-length one-token request is a
//! constant service time (M/D/1), and a linear test cost model with exponentially distributed
//! prompt lengths gives exponential service (M/M/1). Mean queue waits are compared with the
//! closed forms; Little's law is checked on the waiting queue.

mod common;

use common::{run, scenario, single_replica};
use servesim::cluster::Cluster;
use servesim::cost::{CostModel, IterationCost};
use servesim::metrics::Summary;
use servesim::model::BatchShape;

const REQUESTS: u64 = 200_000;

/// Service time of one fixed request, measured by running it alone.
fn service_time_s(model: &str, input_tokens: u64) -> f64 {
    let workload = format!(
        "  synthetic:\n    requests: 1\n    arrival: {{ poisson: {{ rate_per_s: 1 }} }}\n    input_tokens: {{ fixed: {{ value: {input_tokens} }} }}\n    output_tokens: {{ fixed: {{ value: 1 }} }}"
    );
    let (output, _) = run(&scenario(&single_replica(model, "h100-sxm", 1, 8192, &workload, 1)));
    output.recorder.records()[0].e2e_s().expect("completed")
}

fn mean_queue_wait(summary: &Summary) -> f64 {
    summary.latency.queue_wait_s.mean.unwrap()
}

fn assert_close(measured: f64, expected: f64, tolerance: f64, what: &str) {
    let error = (measured - expected).abs() / expected;
    assert!(error <= tolerance, "{what}: measured {measured:.6e}, theory {expected:.6e}, error {:.2}%", error * 100.0);
    eprintln!("{what}: measured {measured:.6e}, theory {expected:.6e}, error {:.2}%", error * 100.0);
}

#[test]
fn constant_service_under_poisson_arrivals_matches_m_d_1() {
    // Over seeds 1–8 the error with 200k requests stayed within ±1.4%.
    let service_s = service_time_s("llama-3.2-1b", 512);
    let rho = 0.8;
    let rate = rho / service_s;
    let workload = format!(
        "  synthetic:\n    requests: {REQUESTS}\n    arrival: {{ poisson: {{ rate_per_s: {rate} }} }}\n    input_tokens: {{ fixed: {{ value: 512 }} }}\n    output_tokens: {{ fixed: {{ value: 1 }} }}"
    );
    let (_, summary) = run(&scenario(&single_replica("llama-3.2-1b", "h100-sxm", 1, 8192, &workload, 11)));
    assert_eq!(summary.requests.completed, REQUESTS);
    // M/D/1: Wq = ρ / (2 μ (1 − ρ)).
    let theory = rho * service_s / (2.0 * (1.0 - rho));
    assert_close(mean_queue_wait(&summary), theory, 0.03, "M/D/1 mean wait");
    // Every request's service is exactly the constant.
    assert!((summary.latency.e2e_s.max.unwrap() - summary.latency.queue_wait_s.max.unwrap() - service_s).abs() < 1e-6);
}

/// Prices an iteration at 1 µs per prompt token and 1 µs per decode token: with exponential
/// prompt lengths, service times are (discretised) exponential.
struct LinearCost;

impl CostModel for LinearCost {
    fn iteration(&mut self, batch: &BatchShape) -> IterationCost {
        IterationCost::single_stage(batch.total_tokens() * 1_000, 1.0, 1.0)
    }
}

#[test]
fn exponential_service_under_poisson_arrivals_matches_m_m_1_and_littles_law() {
    let mean_tokens: f64 = 10_000.0;
    let rho = 0.8;
    // Prompt lengths ⌈Exp(mean)⌉ are geometric with mean 1/(1 − e^{−1/mean}).
    let mean_service_s = 1e-6 / (1.0 - (-1.0 / mean_tokens).exp());
    let rate = rho / mean_service_s;
    // M/M/1 at ρ = 0.8 converges slowly: over seeds 1–8 the error of the mean wait spread
    // over ±6% with 200k requests and ±2% with 1M, so this check uses 1M.
    let requests = 1_000_000;
    let workload = format!(
        "  synthetic:\n    requests: {requests}\n    arrival: {{ poisson: {{ rate_per_s: {rate} }} }}\n    input_tokens: {{ exponential: {{ mean: {mean_tokens}, max: 120000 }} }}\n    output_tokens: {{ fixed: {{ value: 1 }} }}"
    );
    let text = single_replica("llama-3.2-1b", "h100-sxm", 1, 65_536, &workload, 5);
    let scenario = scenario(&text);
    let output = Cluster::build_with(&scenario, &mut |_, _, _| Box::new(LinearCost)).run();
    let summary = Summary::compute(&scenario, &output);
    assert_eq!(summary.requests.completed, requests);
    // M/M/1: Wq = ρ / (μ − λ).
    let theory = rho / (1.0 / mean_service_s - rate);
    assert_close(mean_queue_wait(&summary), theory, 0.03, "M/M/1 mean wait");
    // Little's law on the waiting queue: time-average length = arrival rate × mean wait.
    let little = summary.queue.arrival_rate_per_s.unwrap() * mean_queue_wait(&summary);
    assert_close(summary.queue.mean_waiting_requests.unwrap(), little, 0.005, "Little's law (queue)");
}

#[test]
fn littles_law_holds_for_a_batching_replica() {
    // Not a single server: continuous batching of variable requests. Little's law still holds
    // on the waiting queue, whatever the service discipline.
    let workload = "  synthetic:\n    requests: 3000\n    arrival: { gamma: { rate_per_s: 5, cv: 2 } }\n    input_tokens: { lognormal: { mean: 800, cv: 1 } }\n    output_tokens: { lognormal: { mean: 200, cv: 1 } }";
    let (_, summary) = run(&scenario(&single_replica("llama-3.1-8b", "a100-sxm-80gb", 64, 4096, workload, 3)));
    let little = summary.queue.arrival_rate_per_s.unwrap() * mean_queue_wait(&summary);
    assert!(summary.queue.mean_waiting_requests.unwrap() > 0.01, "the queue must actually build up");
    assert_close(summary.queue.mean_waiting_requests.unwrap(), little, 0.02, "Little's law (batching)");
}
