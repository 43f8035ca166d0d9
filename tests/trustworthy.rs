//! Trustworthy outputs: no silently wrong number, no stale file, no error pointing the wrong
//! way, no hang on absurd sizes. Each test here failed before the fix it guards (issue 8);
//! the KV-capacity items are in `tests/kv_capacity.rs`, the hostile corpus in
//! `tests/hostile.rs`.

mod common;

use serde_json::Value;
use servesim::cluster::simulate;
use servesim::metrics::Summary;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn failed_saying(&self, facts: &[&str]) -> &Self {
        assert!(!self.success, "expected failure:\n{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        for fact in facts {
            assert!(self.stderr.contains(fact), "stderr lacks {fact:?}:\n{}", self.stderr);
        }
        self
    }

    fn succeeded(&self) -> &Self {
        assert!(self.success, "expected success:\n{}\n{}", self.stderr, self.stdout);
        self
    }
}

/// Runs the binary (killing it after 120 s: nothing here may hang).
fn servesim_env(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_servesim"));
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start servesim");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("servesim {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("output");
    Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn servesim(args: &[&str]) -> Outcome {
    servesim_env(args, &[])
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

const SMALL: &str = "name: small
model: llama-3.2-1b
deployment:
  pools:
    - device: h100-sxm
      scheduler: { max_num_seqs: 16 }
workload:
  synthetic:
    requests: 40
    arrival: { poisson: { rate_per_s: 10 } }
    input_tokens: { fixed: { value: 128 } }
    output_tokens: { fixed: { value: 16 } }
slo: { ttft_s: 1.0 }
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

// --- 3: a run owns its folder ----------------------------------------------------------------

#[test]
fn a_reused_run_folder_keeps_no_stale_timeline_or_plots_and_plot_names_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "s.yaml", SMALL);
    let out = tmp.path().join("out");
    servesim(&["run", path_str(&scenario), "--quiet", "--plots", "--out", path_str(&out)]).succeeded();
    assert!(out.join("timeline.csv").is_file() && out.join("kv_cache.png").is_file());
    servesim(&["run", path_str(&scenario), "--quiet", "--out", path_str(&out)]).succeeded();
    assert!(out.join("summary.json").is_file());
    assert!(!out.join("timeline.csv").exists(), "the earlier run's timeline must not survive");
    assert!(!out.join("kv_cache.png").exists(), "the earlier run's plots must not survive");
    servesim(&["plot", path_str(&out)]).failed_saying(&["timeline.csv is missing", "--plots", path_str(&out)]);
}

#[test]
fn a_folder_holding_other_files_is_refused_before_simulating() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "s.yaml", SMALL);
    let out = tmp.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    write(&out, "notes.txt", "keep me");
    servesim(&["run", path_str(&scenario), "--quiet", "--out", path_str(&out)]).failed_saying(&[
        path_str(&out),
        "notes.txt",
        "--out",
    ]);
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "keep me");
    assert!(!out.join("summary.json").exists());
}

// --- 4: statistics over zero samples are null ------------------------------------------------

/// Every numeric leaf of `value` with its path.
fn numeric_leaves(value: &Value, path: &str, out: &mut Vec<(String, f64)>) {
    match value {
        Value::Number(n) => out.push((path.to_string(), n.as_f64().unwrap())),
        Value::Object(map) => {
            for (key, child) in map {
                numeric_leaves(child, &format!("{path}.{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                numeric_leaves(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn a_run_where_every_request_is_rejected_reports_null_not_zero_for_every_statistic() {
    // Every prompt is longer than the context window, so every request is rejected.
    let text = SMALL.replace("scheduler: { max_num_seqs: 16 }", "scheduler: { max_num_seqs: 16, max_model_len: 64 }");
    let scenario = common::scenario(&text);
    let summary = Summary::compute(&scenario, &simulate(&scenario));
    assert_eq!(summary.requests.rejected, 40);
    let json = serde_json::to_value(&summary).unwrap();
    let mut leaves = Vec::new();
    numeric_leaves(&json, "", &mut leaves);
    // Counts and totals may be zero; rates over the run's (positive) duration may be zero;
    // nothing computed over zero samples may be.
    let may_be_zero = |path: &str| {
        let leaf = path.rsplit('.').next().unwrap();
        matches!(
            leaf,
            "count"
                | "completed"
                | "unfinished"
                | "preemptions"
                | "requests_meeting_slo"
                | "fraction_meeting_slo"
                | "iterations"
                | "peak_occupancy"
                | "mean_occupancy"
                | "busy_fraction"
                | "mean_compute_utilization"
                | "mean_memory_utilization"
                | "requests_per_s"
                | "input_tokens_per_s"
                | "output_tokens_per_s"
                | "goodput_requests_per_s"
                | "mean_waiting_requests"
                | "arrival_rate_per_s"
                | "seed"
                | "prompt_tokens"
                | "hit_tokens"
                | "evictions"
        )
    };
    let zeros: Vec<&String> = leaves.iter().filter(|(p, v)| *v == 0.0 && !may_be_zero(p)).map(|(p, _)| p).collect();
    assert!(zeros.is_empty(), "statistics over no samples reported as 0: {zeros:?}");
    for field in ["ttft_s", "tpot_s", "e2e_s", "queue_wait_s", "inter_token_s"] {
        let d = &json["latency"][field];
        assert_eq!(d["count"], 0);
        for stat in ["mean", "p50", "p90", "p99", "max"] {
            assert!(d[stat].is_null(), "latency.{field}.{stat} = {}", d[stat]);
        }
    }
    for field in ["j_per_output_token", "j_per_token", "j_per_request", "usd_per_million_output_tokens"] {
        assert!(json["energy"][field].is_null(), "energy.{field} = {}", json["energy"][field]);
    }
    // The command line refuses the scenario outright, in validate and in run.
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "rejected.yaml", &text);
    servesim(&["validate", path_str(&path)]).failed_saying(&["rejected.yaml", "no request can be served"]);
    servesim(&["run", path_str(&path), "--quiet", "--out", path_str(&tmp.path().join("out"))])
        .failed_saying(&["no request can be served", "max_model_len"]);
}

#[test]
fn a_sweep_at_a_vanishing_load_is_refused_instead_of_reporting_zero_latency() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "s.yaml", SMALL);
    let out = tmp.path().join("sweep");
    servesim(&["sweep", path_str(&scenario), "--loads", "1e-12", "--out", path_str(&out)])
        .failed_saying(&["--loads", "beyond"]);
}

const SEARCH_BASE: &str = "name: base
seed: 3
model: llama-3.1-8b
deployment:
  pools:
    - device: h100-sxm
      interconnect: nvlink4
workload:
  synthetic:
    requests: 60
    arrival: { poisson: { rate_per_s: 8 } }
    input_tokens: { fixed: { value: 256 } }
    output_tokens: { fixed: { value: 32 } }
";

fn search_spec(dir: &Path, axes: &str, extra: &str) -> PathBuf {
    write(dir, "base.yaml", SEARCH_BASE);
    write(
        dir,
        "spec.yaml",
        &format!(
            "name: trust\nbase: base.yaml\naxes:\n{axes}\nslo: {{ ttft_s: 2.0, min_fraction: 0.5 }}\nobjective: minimize_latency\n{extra}"
        ),
    )
}

fn csv_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| headers.iter().zip(r.unwrap().iter()).map(|(h, v)| (h.into(), v.into())).collect())
        .collect()
}

#[test]
fn pruned_plans_leave_their_figures_empty_and_their_reasons_in_words() {
    let tmp = tempfile::tempdir().unwrap();
    // TP 3 does not divide Llama-3.1-8B's 32 heads; clock 0.3 is no DVFS point of the H100.
    let spec = search_spec(tmp.path(), "  tensor_parallel: [1, 3]\n  clock_ratio: [1.0, 0.3]", "");
    let out = tmp.path().join("out");
    let outcome = servesim(&["search", path_str(&spec), "--out", path_str(&out)]);
    outcome.succeeded();
    assert!(
        outcome.stdout.contains("pruned 2: the device has no DVFS point at that clock ratio (e.g. plan 1:")
            && outcome.stdout.contains("pruned 1: the parallel layout does not split the model"),
        "{}",
        outcome.stdout
    );
    let rows = csv_rows(&out.join("search.csv"));
    for row in &rows {
        if row["status"] == "pruned" {
            for column in ["ttft_p99_s", "tpot_p50_s", "j_per_output_token", "fraction_meeting_slo"] {
                assert_eq!(row[column], "", "plan {}: {column} of a pruned plan must be empty", row["index"]);
            }
            assert!(!row["pruned_because"].is_empty() && !row["reason"].is_empty());
        }
    }
    assert_eq!(rows.iter().filter(|r| r["status"] == "simulated").count(), 1);
}

#[test]
fn a_spec_whose_every_plan_is_pruned_fails_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = search_spec(tmp.path(), "  tensor_parallel: [3, 5]", "");
    let out = tmp.path().join("out");
    servesim(&["search", path_str(&spec), "--out", path_str(&out)]).failed_saying(&[
        "every one of the 2 plans was pruned",
        "pruned 2: the parallel layout does not split the model",
    ]);
}

#[test]
fn calibrate_on_an_empty_network_folder_fails_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let compute = tmp.path().join("compute");
    std::fs::create_dir(&compute).unwrap();
    let source = common::measured_data().join("vidur/compute/a100/microsoft/phi-2/mlp.csv.gz");
    std::fs::copy(source, compute.join("mlp.csv.gz")).unwrap();
    let network = tmp.path().join("network");
    std::fs::create_dir(&network).unwrap();
    let out = tmp.path().join("cal.yaml");
    servesim(&[
        "calibrate",
        "--device",
        "a100-sxm-80gb",
        "--compute",
        path_str(&compute),
        "--network",
        path_str(&network),
        "--out",
        path_str(&out),
    ])
    .failed_saying(&["--network", "no collective measurements"]);
    assert!(!out.exists());
}

// --- 5: capacity objectives are not silently capped ------------------------------------------

#[test]
fn capacity_search_goes_past_1024_times_a_light_base_rate() {
    let tmp = tempfile::tempdir().unwrap();
    // 0.002 requests/s: the old search stopped at 1024 × that (≈ 2 req/s) and reported it.
    let base = SEARCH_BASE.replace("rate_per_s: 8", "rate_per_s: 0.002").replace("requests: 60", "requests: 300");
    write(tmp.path(), "base.yaml", &base);
    let spec = write(
        tmp.path(),
        "spec.yaml",
        "base: base.yaml\naxes: {}\nslo: { ttft_s: 0.5, min_fraction: 0.9 }\nobjective: maximize_capacity_per_device\ncapacity: { tolerance: 0.05 }\n",
    );
    let out = tmp.path().join("out");
    servesim(&["search", path_str(&spec), "--out", path_str(&out)]).succeeded();
    let row = &csv_rows(&out.join("search.csv"))[0];
    let capacity: f64 = row["capacity_rps"].parse().unwrap();
    let base_rate = 300.0
        / servesim::scenario::Scenario::load(&tmp.path().join("base.yaml"), &Default::default())
            .unwrap()
            .requests
            .last()
            .unwrap()
            .arrival
            .as_secs_f64();
    eprintln!("capacity {capacity:.1} req/s = {:.0} × the base rate; {}", capacity / base_rate, row["capacity_limit"]);
    assert!(capacity > 1100.0 * base_rate, "capacity {capacity} stopped near 1024 × {base_rate}");
    assert!(row["capacity_limit"] == "bracketed" || row["capacity_limit"] == "not_reached");
}

#[test]
fn a_workload_too_light_to_saturate_a_plan_reports_its_capacity_as_not_reached() {
    let tmp = tempfile::tempdir().unwrap();
    let base = SEARCH_BASE.replace("requests: 60", "requests: 4");
    write(tmp.path(), "base.yaml", &base);
    let spec = write(
        tmp.path(),
        "spec.yaml",
        "base: base.yaml\naxes: {}\nslo: { ttft_s: 5.0, min_fraction: 0.5 }\nobjective: maximize_capacity_per_device\n",
    );
    let out = tmp.path().join("out");
    let outcome = servesim(&["search", path_str(&spec), "--out", path_str(&out)]);
    outcome.succeeded();
    assert_eq!(csv_rows(&out.join("search.csv"))[0]["capacity_limit"], "not_reached");
    assert!(
        outcome.stdout.contains("capacity not reached for 1 plans") && outcome.stdout.contains('≥'),
        "{}",
        outcome.stdout
    );
}

// --- 6, 7, 8: errors that point the right way ------------------------------------------------

#[test]
fn a_yaml_file_with_a_byte_order_mark_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "bom.yaml", &format!("\u{feff}{SMALL}"));
    servesim(&["validate", path_str(&scenario)]).succeeded();
    let spec = search_spec(tmp.path(), "  replicas: [1]", "");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, format!("\u{feff}{text}")).unwrap();
    servesim(&["validate", path_str(&spec)]).succeeded();
}

#[test]
fn a_search_spec_with_a_syntax_error_reports_the_syntax_error() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = search_spec(tmp.path(), "  replicas: [1, 2", "");
    let outcome = servesim(&["validate", path_str(&spec)]);
    outcome.failed_saying(&["spec.yaml:"]);
    assert!(!outcome.stderr.contains("unknown field"), "{}", outcome.stderr);
}

#[test]
fn an_oversized_block_size_or_token_budget_names_that_field() {
    let tmp = tempfile::tempdir().unwrap();
    for (setting, field) in [
        ("block_size: 100000000", "scheduler.block_size"),
        ("max_num_batched_tokens: 50000000", "scheduler.max_num_batched_tokens"),
    ] {
        let text =
            SMALL.replace("scheduler: { max_num_seqs: 16 }", &format!("scheduler: {{ max_num_seqs: 16, {setting} }}"));
        let path = write(tmp.path(), "s.yaml", &text);
        servesim(&["validate", path_str(&path)]).failed_saying(&[&format!("deployment.pools[0].{field}`")]);
    }
}

// --- 10, 11, 13: checks before work ----------------------------------------------------------

#[test]
fn a_bad_out_for_search_or_sweep_fails_before_simulating_and_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = search_spec(tmp.path(), "  replicas: [1, 2]", "");
    let file = write(tmp.path(), "taken", "a file, not a folder");
    let outcome = servesim(&["search", path_str(&spec), "--out", path_str(&file)]);
    outcome.failed_saying(&[path_str(&file), "not a folder"]);
    assert!(!outcome.stderr.contains("evaluated"), "the search ran before checking --out:\n{}", outcome.stderr);
    let scenario = write(tmp.path(), "s.yaml", SMALL);
    servesim(&["sweep", path_str(&scenario), "--out", path_str(&file)]).failed_saying(&[path_str(&file)]);
}

#[test]
fn huge_search_spaces_are_counted_without_materialising_them_and_refused_above_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let hundred = format!("[{}]", (1..=100).map(|i| (i * 8).to_string()).collect::<Vec<_>>().join(", "));
    let axes = |n: usize| {
        ["max_num_seqs", "max_num_batched_tokens", "deployment.pools[0].scheduler.block_size", "seed", "replicas"][..n]
            .iter()
            .map(|a| format!("  {a}: {hundred}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let spec = search_spec(tmp.path(), &axes(5), "");
    servesim(&["validate", path_str(&spec)]).failed_saying(&[
        "10000000000 plans exceed the limit of 10000",
        "--max-plans",
        "days",
    ]);
    let spec = search_spec(tmp.path(), &axes(3), "");
    servesim(&["validate", path_str(&spec)]).failed_saying(&["1000000 plans exceed the limit"]);
    let outcome = servesim(&["validate", path_str(&spec), "--max-plans", "1000000"]);
    outcome.succeeded();
    assert!(outcome.stdout.contains("1000000 plans (about"), "{}", outcome.stdout);
}

#[test]
fn a_thread_count_beyond_the_cores_is_capped_and_said() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = search_spec(tmp.path(), "  replicas: [1]", "");
    let out = tmp.path().join("out");
    let outcome = servesim(&["search", path_str(&spec), "--threads", "100000", "--out", path_str(&out)]);
    outcome.succeeded();
    assert!(outcome.stderr.contains("--threads 100000: capped at"), "{}", outcome.stderr);
}

// --- 14, 15, 16, 18, 19 -----------------------------------------------------------------------

#[test]
fn a_scenario_name_must_be_a_plain_folder_name() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["/tmp/elsewhere", "../up", "a/b", ".hidden"] {
        let path = write(tmp.path(), "s.yaml", &SMALL.replace("name: small", &format!("name: \"{name}\"")));
        servesim(&["validate", path_str(&path)]).failed_saying(&["s.yaml:1: field `name`", "not a plain name"]);
    }
}

#[test]
fn a_trace_limit_stops_reading_and_rows_out_of_order_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    // Rows 3 and 5 go back in time; line 7 is garbage that a limit of 4 rows never reaches.
    write(
        tmp.path(),
        "t.csv",
        "arrival_s,input_tokens,output_tokens\n0.5,10,2\n0.1,10,2\n0.7,10,2\n0.2,10,2\n0.9,10,2\nnot,a,row\n",
    );
    let scenario = |limit: &str| {
        SMALL.replace(
            "  synthetic:\n    requests: 40\n    arrival: { poisson: { rate_per_s: 10 } }\n    input_tokens: { fixed: { value: 128 } }\n    output_tokens: { fixed: { value: 16 } }\n",
            &format!("  trace: {{ format: csv, path: t.csv{limit} }}\n"),
        )
    };
    let limited = write(tmp.path(), "limited.yaml", &scenario(", limit: 4"));
    let outcome = servesim(&["validate", path_str(&limited)]);
    outcome.succeeded();
    assert!(
        outcome.stderr.contains("warning:")
            && outcome.stderr.contains("2 rows arrive earlier")
            && outcome.stderr.contains("line 3"),
        "{}",
        outcome.stderr
    );
    let whole = write(tmp.path(), "whole.yaml", &scenario(""));
    servesim(&["validate", path_str(&whole)]).failed_saying(&["t.csv:7"]);
}

#[test]
fn search_progress_is_printed_as_lines_when_stderr_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = search_spec(tmp.path(), "  replicas: [1, 2, 3]", "");
    let out = tmp.path().join("out");
    let outcome =
        servesim_env(&["search", path_str(&spec), "--out", path_str(&out)], &[("SERVESIM_PROGRESS_INTERVAL_S", "0")]);
    outcome.succeeded();
    assert!(outcome.stderr.contains("/3 plans ("), "{}", outcome.stderr);
}

#[test]
fn a_model_may_be_a_hugging_face_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("Llama-3.2-1B");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(common::project_root().join("models/llama-3.2-1b/config.json"), folder.join("config.json")).unwrap();
    let path = write(tmp.path(), "s.yaml", &SMALL.replace("model: llama-3.2-1b", "model: ./Llama-3.2-1B"));
    let outcome = servesim(&["validate", path_str(&path)]);
    outcome.succeeded();
    assert!(outcome.stdout.contains("Llama-3.2-1B on"), "{}", outcome.stdout);
    let empty = tmp.path().join("empty-model");
    std::fs::create_dir(&empty).unwrap();
    let path = write(tmp.path(), "s.yaml", &SMALL.replace("model: llama-3.2-1b", "model: ./empty-model"));
    servesim(&["validate", path_str(&path)]).failed_saying(&["field `model`", "no config.json"]);
}

#[test]
fn search_plots_label_plans_by_their_pools_and_carry_the_spec_name() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = search_spec(tmp.path(), "  replicas: [1, 2]", "");
    let out = tmp.path().join("some-folder");
    servesim(&["search", path_str(&spec), "--out", path_str(&out)]).succeeded();
    let svg = std::fs::read_to_string(out.join("pareto_energy.svg")).unwrap();
    assert!(svg.contains("trust: latency vs energy"), "the title must be the spec's name");
    assert!(!svg.contains("some-folder"), "the title must not be the folder's name");
    assert!(svg.contains("h100-sxm TP1 ×"), "points must be labelled by their pools");
}
