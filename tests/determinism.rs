//! Same scenario and seed ⇒ byte-identical outputs; a different seed changes a synthetic
//! workload's outputs.

use std::fs;
use std::path::Path;
use std::process::Command;

fn run_cli(out: &Path, extra: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_servesim"))
        .args(["run", "--quiet", "--out"])
        .arg(out)
        .args(extra)
        .status()
        .expect("servesim runs");
    assert!(status.success());
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn same_scenario_and_seed_give_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run_cli(&a, &[]);
    run_cli(&b, &[]);
    for file in ["summary.json", "requests.csv"] {
        assert_eq!(read(&a, file), read(&b, file), "{file} differs between identical runs");
    }
}

#[test]
fn a_different_seed_changes_a_synthetic_workload() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run_cli(&a, &["--seed", "1"]);
    run_cli(&b, &["--seed", "2"]);
    assert_ne!(read(&a, "requests.csv"), read(&b, "requests.csv"));
    assert_ne!(read(&a, "summary.json"), read(&b, "summary.json"));
}

#[test]
fn trace_replay_is_identical_across_runs_with_token_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/azure-conv-sample.yaml");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&a, &b] {
        let status = Command::new(env!("CARGO_BIN_EXE_servesim"))
            .args(["run", "--quiet"])
            .arg(&scenario)
            .arg("--out")
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
    for file in ["summary.json", "requests.csv", "token_gaps.csv"] {
        assert_eq!(read(&a, file), read(&b, file), "{file} differs");
    }
}

/// A disaggregated, semi-PD and role-switching deployment in one search: every output is the
/// same bytes on 1 and 2 threads, and across two runs with timelines and traces.
#[test]
fn split_deployments_are_identical_across_runs_and_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "name: split-base
seed: 9
model: llama-3.2-1b
cluster:
  nodes: [{ node: dgx-h100, count: 1 }]
deployment:
  router: power_of_two
  decode_router: power_of_two
  kv_transfer: { layerwise: true }
  pools:
    - { name: prefill, role: prefill, device: h100-sxm, replicas: 2, memory_utilization: 0.05, runtime_reserve_gib: 0.5 }
    - { name: decode, role: decode, device: h100-sxm, replicas: 2, memory_utilization: 0.05, runtime_reserve_gib: 0.5 }
workload:
  synthetic:
    requests: 300
    arrival: { gamma: { rate_per_s: 40, cv: 2 } }
    input_tokens: { lognormal: { mean: 800, cv: 1.2, max: 4000 } }
    output_tokens: { lognormal: { mean: 100, cv: 1.2, max: 1000 } }
slo: { ttft_s: 1.0, tpot_s: 0.05 }
";
    fs::write(tmp.path().join("base.yaml"), base).unwrap();
    let spec = tmp.path().join("spec.yaml");
    fs::write(
        &spec,
        "name: split\nbase: base.yaml\naxes:\n  prefill.replicas: [1, 2]\n  decode.replicas: [1, 2]\n  deployment.kv_transfer.layerwise: [false, true]\nslo: { ttft_s: 1.0, tpot_s: 0.05, min_fraction: 0.1 }\nobjective: minimize_latency\n",
    )
    .unwrap();
    let one = search_on_one_and_two_threads(&spec, tmp.path());
    let rows = String::from_utf8(read(&one, "search.csv")).unwrap();
    assert_eq!(rows.lines().filter(|l| l.contains(",simulated,")).count(), 8, "{rows}");
    for (name, pools) in [
        ("split", ""),
        ("semi", "    - { name: semi, role: semi_pd, device: h100-sxm, replicas: 3, memory_utilization: 0.05, runtime_reserve_gib: 0.5, semi_pd: { prefill_compute_share: 0.4, adapt: { interval_s: 0.5 } } }\n"),
        ("switching", "    - { name: mixed, role: switching, device: h100-sxm, replicas: 4, memory_utilization: 0.05, runtime_reserve_gib: 0.5 }\n"),
    ] {
        let text = if pools.is_empty() {
            base.to_string()
        } else {
            let start = base.find("  pools:\n").unwrap() + "  pools:\n".len();
            let end = base.find("workload:").unwrap();
            format!("{}{pools}{}", &base[..start], &base[end..])
                .replace("  kv_transfer: { layerwise: true }\n", "  role_switching: { interval_s: 0.2, prefill_queue_tokens: 1024 }\n")
        };
        let scenario = tmp.path().join(format!("{name}.yaml"));
        fs::write(&scenario, text).unwrap();
        let (a, b) = (tmp.path().join(format!("{name}-a")), tmp.path().join(format!("{name}-b")));
        for dir in [&a, &b] {
            let status = Command::new(env!("CARGO_BIN_EXE_servesim"))
                .args(["run", "--quiet", "--trace"])
                .arg(&scenario)
                .arg("--out")
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success(), "{name}");
        }
        for file in ["summary.json", "requests.csv", "timeline.csv", "trace.json"] {
            assert_eq!(read(&a, file), read(&b, file), "{name}: {file} differs between identical runs");
        }
    }
}

/// A speculative scenario (a draft model on the pool's devices with adaptive k, tree drafts and
/// overlap; EAGLE heads with per-request Beta acceptance) gives the same bytes across runs and,
/// in a search over both, across thread counts.
#[test]
fn speculative_decoding_is_identical_across_runs_and_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let base = "name: spec-base
seed: 5
model: llama-3.2-1b
deployment:
  router: least_outstanding_tokens
  pools:
    - device: l4
      replicas: 2
      memory_utilization: 0.3
      runtime_reserve_gib: 0.5
      speculation:
        method: draft_model
        k: 5
        adaptive: true
        tree_width: 2
        overlap: true
        draft: { model: llama-3.2-1b }
        acceptance: { rate: 0.75, batch_exponent: 0.1 }
workload:
  synthetic:
    requests: 150
    arrival: { gamma: { rate_per_s: 20, cv: 2 } }
    input_tokens: { lognormal: { mean: 600, cv: 1.2, max: 4000 } }
    output_tokens: { lognormal: { mean: 120, cv: 1.2, max: 1000 } }
slo: { ttft_s: 1.0, tpot_s: 0.05 }
";
    let scenario = tmp.path().join("base.yaml");
    fs::write(&scenario, base).unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&a, &b] {
        run_cli(dir, &[scenario.to_str().unwrap()]);
    }
    for file in ["summary.json", "requests.csv"] {
        assert_eq!(read(&a, file), read(&b, file), "{file} differs between identical speculative runs");
    }
    let summary = String::from_utf8(read(&a, "summary.json")).unwrap();
    assert!(summary.contains("\"speculation\""), "{summary}");
    let spec = tmp.path().join("spec.yaml");
    fs::write(
        &spec,
        "name: spec\nbase: base.yaml\naxes:\n  deployment.pools[0].speculation:\n    - { method: draft_model, k: 5, adaptive: true, tree_width: 2, overlap: true, draft: { model: llama-3.2-1b }, acceptance: { rate: 0.75 } }\n    - { method: eagle, k: 3, acceptance: { beta: { alpha: 4, beta: 2 } } }\n  deployment.pools[0].speculation.k: [2, 4]\nslo: { ttft_s: 1.0, tpot_s: 0.05, min_fraction: 0.1 }\nobjective: minimize_latency\n",
    )
    .unwrap();
    let one = search_on_one_and_two_threads(&spec, tmp.path());
    let rows = String::from_utf8(read(&one, "search.csv")).unwrap();
    assert_eq!(rows.lines().filter(|l| l.contains(",simulated,")).count(), 4, "{rows}");
}

/// Runs the search `spec` on one and on two threads into folders under `dir`, checks their
/// files are byte-identical, and returns the one-thread folder.
fn search_on_one_and_two_threads(spec: &Path, dir: &Path) -> std::path::PathBuf {
    let search = |threads: &str, out: &Path| {
        let status = Command::new(env!("CARGO_BIN_EXE_servesim"))
            .args(["search", spec.to_str().unwrap(), "--quiet", "--threads", threads, "--out"])
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success());
    };
    let (one, two) = (dir.join("one"), dir.join("two"));
    search("1", &one);
    search("2", &two);
    for file in ["rows.csv", "search.csv", "pareto.csv", "best.yaml"] {
        assert_eq!(read(&one, file), read(&two, file), "{file} differs between thread counts");
    }
    one
}
