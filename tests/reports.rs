//! Reports: every plot is drawn at its size (also for runs with no or one completed request),
//! and the Perfetto trace is valid trace-event JSON whose events match the run.

mod common;

use servesim::cluster::simulate;
use servesim::metrics::{RequestStatus, Summary};
use servesim::report::{plot_dir, write_run, write_trace, OutputFolder, OutputKind, TraceWindow};
use std::path::Path;
use std::process::Command;

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

fn svg_size(path: &Path) -> (u32, u32) {
    let text = std::fs::read_to_string(path).unwrap();
    let attr = |name: &str| {
        let start = text.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        text[start..].split('"').next().unwrap().parse::<u32>().unwrap()
    };
    (attr("width"), attr("height"))
}

fn run_to(dir: &Path, text: &str, timeline: bool) -> (servesim::scenario::Scenario, servesim::cluster::RunOutput) {
    let mut scenario = common::scenario(text);
    scenario.record_timeline = timeline;
    let output = simulate(&scenario);
    let summary = Summary::compute(&scenario, &output);
    let folder = OutputFolder::claim(dir, OutputKind::Run).unwrap();
    let written = write_run(&folder, &summary, &output).unwrap();
    folder.finish(&scenario.name, &written.all()).unwrap();
    (scenario, output)
}

fn scenario_text(requests: u64, max_model_len: u64, tp: u64) -> String {
    format!(
        "name: report-test
model: llama-3.1-8b
deployment:
  pools:
    - device: h100-sxm
      replicas: 2
      tensor_parallel: {tp}
      interconnect: nvlink4
      scheduler: {{ max_model_len: {max_model_len} }}
workload:
  synthetic:
    requests: {requests}
    arrival: {{ poisson: {{ rate_per_s: 20 }} }}
    input_tokens: {{ lognormal: {{ mean: 600, cv: 1.0, max: 4000 }} }}
    output_tokens: {{ lognormal: {{ mean: 100, cv: 1.0, max: 1000 }} }}
slo: {{ ttft_s: 1.0, tpot_s: 0.05 }}
"
    )
}

const EXPECTED: [(&str, (u32, u32)); 5] = [
    ("latency_cdf", (1500, 480)),
    ("ttft_vs_input", (900, 600)),
    ("throughput_queue", (1100, 700)),
    ("kv_cache", (1100, 500)),
    ("power", (1100, 700)),
];

fn check_plots(dir: &Path) {
    let files = plot_dir(dir).unwrap();
    assert_eq!(files.len(), 2 * EXPECTED.len());
    for (stem, size) in EXPECTED {
        assert_eq!(png_size(&dir.join(format!("{stem}.png"))), size, "{stem}.png");
        assert_eq!(svg_size(&dir.join(format!("{stem}.svg"))), size, "{stem}.svg");
    }
}

#[test]
fn every_run_plot_is_drawn_at_its_size() {
    let tmp = tempfile::tempdir().unwrap();
    run_to(tmp.path(), &scenario_text(300, 131072, 1), true);
    check_plots(tmp.path());
}

#[test]
fn a_run_with_no_completed_request_gives_empty_plots_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    // Every request is longer than the 16-token window: all are rejected.
    let (_, output) = run_to(tmp.path(), &scenario_text(20, 16, 1), true);
    assert!(output.recorder.records().iter().all(|r| r.status == RequestStatus::Rejected));
    check_plots(tmp.path());
    let svg = std::fs::read_to_string(tmp.path().join("latency_cdf.svg")).unwrap();
    assert!(svg.contains("no completed requests"));
}

#[test]
fn a_run_with_one_request_plots() {
    let tmp = tempfile::tempdir().unwrap();
    run_to(tmp.path(), &scenario_text(1, 131072, 1), true);
    check_plots(tmp.path());
}

#[test]
fn plotting_an_empty_folder_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let error = plot_dir(tmp.path()).unwrap_err().to_string();
    assert!(error.contains("nothing to plot"), "{error}");
}

fn trace_events(path: &Path) -> Vec<serde_json::Value> {
    let trace: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap().clone();
    for event in &events {
        let phase = event["ph"].as_str().unwrap();
        assert!(["M", "X", "b", "e", "n"].contains(&phase), "{event}");
        assert!(event["pid"].is_u64() && event["name"].is_string(), "{event}");
        if phase != "M" {
            assert!(event["ts"].as_f64().unwrap() >= 0.0, "{event}");
        }
        if phase == "X" {
            assert!(event["dur"].as_f64().unwrap() >= 0.0 && event["tid"].is_u64(), "{event}");
        }
    }
    events
}

#[test]
fn the_trace_has_a_slice_per_batch_and_device_and_an_async_slice_per_request() {
    let tmp = tempfile::tempdir().unwrap();
    let (scenario, output) = run_to(tmp.path(), &scenario_text(200, 131072, 2), true);
    let path = tmp.path().join("trace.json");
    write_trace(&path, &scenario, &output, TraceWindow::ALL).unwrap();
    let events = trace_events(&path);
    let count = |phase: &str, cat: &str| events.iter().filter(|e| e["ph"] == phase && e["cat"] == cat).count();
    // TP 2: every batch appears on both devices of its replica.
    assert_eq!(count("X", "batch"), 2 * output.timeline.as_ref().unwrap().len());
    let completed = output.recorder.records().iter().filter(|r| r.status == RequestStatus::Completed).count();
    let request_begins =
        events.iter().filter(|e| e["ph"] == "b" && e["name"].as_str().unwrap().starts_with("request ")).count();
    assert_eq!(request_begins, completed);
    assert_eq!(count("b", "request"), count("e", "request"));

    // A window keeps only what overlaps it.
    let windowed = tmp.path().join("window.json");
    write_trace(&windowed, &scenario, &output, TraceWindow::parse("2..3").unwrap()).unwrap();
    let events = trace_events(&windowed);
    let batches = events.iter().filter(|e| e["ph"] == "X" && e["cat"] == "batch").count();
    let overlapping = output
        .timeline
        .as_ref()
        .unwrap()
        .iter()
        .filter(|r| r.done.as_secs_f64() >= 2.0 && r.start.as_secs_f64() <= 3.0)
        .count();
    assert_eq!(batches, 2 * overlapping);
    assert!(batches > 0 && batches < 2 * output.timeline.as_ref().unwrap().len());
}

#[test]
fn run_plots_trace_and_sweep_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("s.yaml");
    std::fs::write(&scenario, scenario_text(100, 131072, 1)).unwrap();
    let run = tmp.path().join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_servesim"))
        .args(["run", "--quiet", "--plots", "--trace-window", "0..2", "--out"])
        .arg(&run)
        .arg(&scenario)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(run.join("trace.json").is_file() && run.join("latency_cdf.png").is_file());
    let sweep = tmp.path().join("sweep");
    let output = Command::new(env!("CARGO_BIN_EXE_servesim"))
        .args(["sweep", "--loads", "0.5,1,2", "--out"])
        .arg(&sweep)
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(png_size(&sweep.join("knee.png")), (1300, 500));
    let rows = std::fs::read_to_string(sweep.join("sweep.csv")).unwrap();
    assert_eq!(rows.lines().count(), 4);
    let bad = Command::new(env!("CARGO_BIN_EXE_servesim"))
        .args(["run", "--trace-window", "5..1", "--out"])
        .arg(tmp.path().join("bad"))
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--trace-window"));
}
