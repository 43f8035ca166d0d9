//! Plan search: sharding and threading do not change results, known answers are found, and
//! spec errors are clear.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const BASE: &str = "name: small-base
seed: 4
model: llama-3.1-8b
deployment:
  pools:
    - device: h100-sxm
workload:
  synthetic:
    requests: 300
    arrival: { poisson: { rate_per_s: 12 } }
    input_tokens: { lognormal: { mean: 800, cv: 1.0, max: 8000 } }
    output_tokens: { lognormal: { mean: 150, cv: 1.0, max: 1000 } }
";

fn spec_text(axes: &str, objective: &str) -> String {
    format!(
        "name: small
base: base.yaml
axes:
{axes}
slo: {{ ttft_s: 1.0, tpot_s: 0.05, min_fraction: 0.5 }}
objective: {objective}
"
    )
}

fn write_spec(dir: &Path, text: &str) -> PathBuf {
    fs::write(dir.join("base.yaml"), BASE).unwrap();
    let path = dir.join("spec.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn servesim(args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_servesim")).args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
}

const AXES: &str = "  max_num_seqs: [8, 64]
  max_num_batched_tokens: [512, 2048]
  replicas: [1, 2]
  policy: [fcfs, shortest_prompt_first]";

#[test]
fn three_shards_merged_equal_one_run_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &spec_text(AXES, "minimize_latency"));
    let spec = spec.to_str().unwrap();
    let whole = tmp.path().join("whole");
    servesim(&["search", spec, "--out", whole.to_str().unwrap()]);
    let mut shard_dirs = Vec::new();
    for i in 0..3 {
        let dir = tmp.path().join(format!("shard{i}"));
        servesim(&["search", spec, "--shard", &format!("{i}/3"), "--out", dir.to_str().unwrap()]);
        shard_dirs.push(dir.to_str().unwrap().to_string());
    }
    let merged = tmp.path().join("merged");
    let mut args = vec!["merge", spec];
    args.extend(shard_dirs.iter().map(String::as_str));
    args.extend(["--out", merged.to_str().unwrap()]);
    servesim(&args);
    for file in ["rows.csv", "search.csv", "pareto.csv", "best.yaml"] {
        assert_eq!(read(&whole, file), read(&merged, file), "{file} differs");
    }
    // The Pareto plots are drawn from the merged files too.
    for file in ["pareto_energy.png", "pareto_cost.png", "pareto_energy.svg"] {
        assert!(whole.join(file).is_file() && merged.join(file).is_file(), "{file}");
    }
}

#[test]
fn one_and_two_threads_give_identical_results() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &spec_text(AXES, "minimize_energy"));
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    servesim(&["search", spec.to_str().unwrap(), "--threads", "1", "--out", a.to_str().unwrap()]);
    servesim(&["search", spec.to_str().unwrap(), "--threads", "2", "--out", b.to_str().unwrap()]);
    assert_eq!(read(&a, "search.csv"), read(&b, "search.csv"));
    assert_eq!(read(&a, "pareto.csv"), read(&b, "pareto.csv"));
}

#[test]
fn a_plan_better_on_every_axis_is_alone_on_the_pareto_front_and_wins_every_objective() {
    // Batching one sequence at a time against up to 64 under the same load on the same device:
    // the larger batch is faster, uses less energy per token and costs less per token.
    let tmp = tempfile::tempdir().unwrap();
    for objective in ["minimize_latency", "minimize_energy", "minimize_cost"] {
        let spec = write_spec(tmp.path(), &spec_text("  max_num_seqs: [1, 64]", objective));
        let out = tmp.path().join(objective);
        servesim(&["search", spec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        let pareto = String::from_utf8(read(&out, "pareto.csv")).unwrap();
        let rows: Vec<&str> = pareto.lines().skip(1).collect();
        assert_eq!(rows.len(), 1, "{pareto}");
        assert!(rows[0].starts_with("1,"), "plan 1 (max_num_seqs 64) should dominate: {pareto}");
        let search = String::from_utf8(read(&out, "search.csv")).unwrap();
        let first = search.lines().nth(1).unwrap();
        assert!(first.starts_with("1,") && first.split(',').nth(2) == Some("1"), "{objective}: {first}");
        let best = String::from_utf8(read(&out, "best.yaml")).unwrap();
        assert!(best.contains("max_num_seqs: 64"), "{best}");
    }
}

/// M/D/1 waiting-time distribution (Erlang): P(W ≤ t·S) with load ρ.
fn md1_wait_cdf(rho: f64, t: f64) -> f64 {
    let mut sum = 0.0;
    let mut factorial = 1.0;
    for k in 0..=(t.floor() as i32) {
        if k > 0 {
            factorial *= f64::from(k);
        }
        let x = rho * (f64::from(k) - t);
        sum += x.powi(k) / factorial * (-x).exp();
    }
    (1.0 - rho) * sum
}

#[test]
fn capacity_search_finds_the_m_d_1_load_where_90_percent_wait_under_two_service_times() {
    let tmp = tempfile::tempdir().unwrap();
    let workload = |rate: f64, requests: u64| {
        format!(
            "model: llama-3.2-1b\ndeployment:\n  pools:\n    - device: h100-sxm\n      scheduler: {{ max_num_seqs: 1 }}\nworkload:\n  synthetic:\n    requests: {requests}\n    arrival: {{ poisson: {{ rate_per_s: {rate} }} }}\n    input_tokens: {{ fixed: {{ value: 512 }} }}\n    output_tokens: {{ fixed: {{ value: 1 }} }}\n"
        )
    };
    // The constant service time, from one request alone.
    let single = common::scenario(&workload(1.0, 1));
    let (output, _) = common::run(&single);
    let service_s = output.recorder.records()[0].e2e_s().unwrap();
    // ρ* with P(wait ≤ 2 S) = 0.9, by bisection on Erlang's formula.
    let (mut low, mut high) = (0.01, 0.99);
    for _ in 0..60 {
        let mid = (low + high) / 2.0;
        if md1_wait_cdf(mid, 2.0) >= 0.9 {
            low = mid;
        } else {
            high = mid;
        }
    }
    let expected_rate = low / service_s;
    fs::write(tmp.path().join("base.yaml"), workload(0.3 / service_s, 40_000)).unwrap();
    let ttft_bound = 3.0 * service_s; // TTFT = wait + S
    let spec = tmp.path().join("spec.yaml");
    fs::write(
        &spec,
        format!(
            "base: base.yaml\naxes: {{}}\nslo: {{ ttft_s: {ttft_bound}, min_fraction: 0.9 }}\nobjective: maximize_capacity_per_device\ncapacity: {{ tolerance: 0.005 }}\n"
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    servesim(&["search", spec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let search = String::from_utf8(read(&out, "search.csv")).unwrap();
    let header: Vec<&str> = search.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = search.lines().nth(1).unwrap().split(',').collect();
    let capacity: f64 = row[header.iter().position(|h| *h == "capacity_rps").unwrap()].parse().unwrap();
    let error = (capacity / expected_rate - 1.0).abs();
    eprintln!(
        "capacity {capacity:.2} req/s vs M/D/1 {expected_rate:.2} req/s (ρ* = {low:.4}), error {:.2}%",
        error * 100.0
    );
    // Bisection tolerance 0.5% plus sampling error of a 90th percentile over 40k requests.
    assert!(error < 0.03);
}

fn search_error(spec: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_spec(tmp.path(), spec);
    let output =
        Command::new(env!("CARGO_BIN_EXE_servesim")).args(["search", path.to_str().unwrap()]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(stderr.contains("spec.yaml") && !stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn an_unknown_axis_is_an_error_listing_the_axes() {
    let error = search_error(&spec_text("  max_num_seq: [8, 64]", "minimize_latency"));
    assert!(
        error.contains("spec.yaml:4") && error.contains("unknown axis `max_num_seq`") && error.contains("max_num_seqs"),
        "{error}"
    );
}

#[test]
fn an_empty_axis_is_an_error() {
    let error = search_error(&spec_text("  replicas: []", "minimize_latency"));
    assert!(error.contains("field `axes.replicas`") && error.contains("lists no values"), "{error}");
}

#[test]
fn an_impossible_budget_is_an_error_with_the_smallest_plan() {
    let text = spec_text("  replicas: [2, 4]", "minimize_cost") + "budget: { max_devices: 1 }\n";
    let error = search_error(&text);
    assert!(error.contains("field `budget`") && error.contains("smallest plan uses 2 devices"), "{error}");
}

#[test]
fn an_slo_field_typo_is_an_error() {
    let text = spec_text("  replicas: [1]", "minimize_cost").replace("ttft_s: 1.0", "ttft: 1.0");
    let error = search_error(&text);
    assert!(error.contains("field `slo.ttft`") && error.contains("unknown field `ttft`"), "{error}");
}

#[test]
fn an_unknown_objective_lists_the_choices() {
    let error = search_error(&spec_text("  replicas: [1]", "minimize_latencyy"));
    assert!(error.contains("minimize_energy") && error.contains("maximize_capacity_per_device"), "{error}");
}

/// Speculation is searchable through plain paths: k, the method with its draft (an axis over
/// the whole `draft` section, null for heads) and the draft's placement (the pool's devices or
/// an H100 of its own over PCIe). Plans pairing a method with the wrong draft are pruned as
/// invalid speculation; every other plan runs, and each gives different figures.
#[test]
fn speculation_k_method_and_draft_placement_are_search_axes() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "name: spec-base
seed: 4
model: llama-3.1-8b
deployment:
  pools:
    - device: h100-sxm
      speculation:
        method: draft_model
        k: 2
        draft: { model: llama-3.2-1b }
        acceptance: { rate: 0.8 }
workload:
  synthetic:
    requests: 40
    arrival: { poisson: { rate_per_s: 4 } }
    input_tokens: { fixed: { value: 256 } }
    output_tokens: { fixed: { value: 64 } }
";
    fs::write(tmp.path().join("base.yaml"), base).unwrap();
    let spec = tmp.path().join("spec.yaml");
    fs::write(
        &spec,
        "name: spec
base: base.yaml
axes:
  deployment.pools[0].speculation.k: [1, 2, 4]
  deployment.pools[0].speculation.method: [draft_model, eagle]
  deployment.pools[0].speculation.draft:
    - { model: llama-3.2-1b }
    - { model: llama-3.2-1b, device: h100-sxm, link: pcie-gen5-x16 }
    - null
slo: { ttft_s: 1.0, tpot_s: 0.05, min_fraction: 0.5 }
objective: minimize_latency
",
    )
    .unwrap();
    let out = tmp.path().join("out");
    servesim(&["search", spec.to_str().unwrap(), "--threads", "2", "--quiet", "--out", out.to_str().unwrap()]);
    let mut reader = csv::Reader::from_reader(std::io::Cursor::new(read(&out, "search.csv")));
    let headers = reader.headers().unwrap().clone();
    let column =
        |name: &str| headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("no {name} in {headers:?}"));
    let (k, method, draft) = (
        column("deployment.pools[0].speculation.k"),
        column("deployment.pools[0].speculation.method"),
        column("deployment.pools[0].speculation.draft"),
    );
    let (status, because, tpot, energy) =
        (column("status"), column("pruned_because"), column("tpot_p99_s"), column("j_per_output_token"));
    let mut figures = std::collections::BTreeSet::new();
    let mut simulated = 0;
    for row in reader.records() {
        let row = row.unwrap();
        let draft_model = row[method] == *"draft_model";
        let has_draft = !row[draft].is_empty();
        let valid = draft_model == has_draft;
        if valid {
            assert_eq!(&row[status], "simulated", "{row:?}");
            simulated += 1;
            assert!(
                figures.insert(format!("{} {}", &row[tpot], &row[energy])),
                "two plans gave the same figures: {row:?}"
            );
        } else {
            assert_eq!((&row[status], &row[because]), ("pruned", "invalid speculation"), "{row:?}");
        }
        assert!(["1", "2", "4"].contains(&&row[k]));
    }
    // 3 k × (2 draft placements + EAGLE heads).
    assert_eq!(simulated, 9);
    let text = String::from_utf8(read(&out, "search.csv")).unwrap();
    assert!(text.contains("\"{model: llama-3.2-1b, device: h100-sxm, link: pcie-gen5-x16}\""), "{text}");
}
