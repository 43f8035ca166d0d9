//! Prefill/decode disaggregation: KV transfers take bytes ÷ bandwidth on the placed route,
//! stream layer by layer when asked, share the ports they cross, and bad deployments get a
//! clear error naming the pools.

mod common;

use servesim::cluster::{simulate, RunOutput};
use servesim::input::YamlSource;
use servesim::metrics::RequestStatus;
use servesim::scenario::{Overrides, Scenario};
use std::path::Path;

/// Llama-2-70B's KV per token in fp16: 2 (K, V) × 80 layers × 8 heads × 128 dims × 2 bytes.
const LLAMA2_70B_KV_BYTES_PER_TOKEN: f64 = 2.0 * 80.0 * 8.0 * 128.0 * 2.0;

/// A node of `devices` MI300X (192 GB: Llama-2-70B fits on one) joined by `link` as `topology`.
fn node(dir: &Path, devices: u64, link: &str, topology: &str) {
    std::fs::write(
        dir.join("node.yaml"),
        format!(
            "name: node\ndisplay_name: test node\ndevices:\n  - {{ group: gpu, device: mi300x, count: {devices} }}\ninterconnects:\n  - {{ link: {link}, members: [gpu], topology: {topology} }}\nsources:\n  devices: test fixture\n  interconnects: test fixture\n"
        ),
    )
    .unwrap();
}

/// `prefill` TP1 prefill replicas and one decode replica of Llama-2-70B on the test node,
/// serving `requests` prompts of `tokens` tokens that all arrive at t = 0.
fn run_split(dir: &Path, prefill: u64, requests: u64, tokens: u64, layerwise: bool) -> (Scenario, RunOutput) {
    let mut trace = String::from("arrival_s,input_tokens,output_tokens\n");
    for _ in 0..requests {
        trace += &format!("0,{tokens},4\n");
    }
    std::fs::write(dir.join("trace.csv"), trace).unwrap();
    let text = format!(
        "model: llama-2-70b
dtype: fp16
cluster:
  nodes: [{{ node: ./node.yaml, count: 1 }}]
deployment:
  router: round_robin
  kv_transfer: {{ layerwise: {layerwise} }}
  pools:
    - {{ name: prefill, role: prefill, device: mi300x, replicas: {prefill} }}
    - {{ name: decode, role: decode, device: mi300x }}
workload:
  trace: {{ format: csv, path: trace.csv }}
"
    );
    let source = YamlSource::from_text("split.yaml", dir.to_path_buf(), text);
    let scenario = Scenario::from_source(&source, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
    let output = simulate(&scenario);
    for record in output.recorder.records() {
        assert_eq!(record.status, RequestStatus::Completed);
    }
    (scenario, output)
}

#[test]
fn a_bulk_kv_transfer_takes_bytes_over_bandwidth_plus_the_link_latency() {
    // A 2,048-token Llama-2-70B fp16 prompt: 640 MiB of KV.
    let bytes = 2048.0 * LLAMA2_70B_KV_BYTES_PER_TOKEN;
    assert_eq!(bytes, 640.0 * 1024.0 * 1024.0);
    for (link, gbs, expected_ms) in
        [("nvlink4", 450.0, 1.49), ("infiniband-ndr", 50.0, 13.4), ("infiniband-hdr", 25.0, 26.8)]
    {
        let tmp = tempfile::tempdir().unwrap();
        node(tmp.path(), 2, link, "chain");
        let (scenario, output) = run_split(tmp.path(), 1, 1, 2048, false);
        let latency_ms = servesim::hardware::Catalog::bundled().unwrap().links[link].latency_us.get() * 1e-3;
        let record = &output.recorder.records()[0];
        let (start, end) = (record.transfer_start.unwrap(), record.transfer_end.unwrap());
        // Bulk: the transfer starts when the prompt's first token is out.
        assert_eq!(start, record.first_token.unwrap());
        let took_ms = (end - start) as f64 * 1e-6;
        let model_ms = bytes / (gbs * 1e9) * 1e3;
        eprintln!("{link}: {took_ms:.3} ms (expected {expected_ms} ms + {latency_ms:.3} ms latency; bytes ÷ bandwidth {model_ms:.3} ms)");
        assert!(((took_ms - latency_ms) / expected_ms - 1.0).abs() < 0.05, "{link}: {took_ms} ms");
        assert_eq!(output.transfers.bytes_moved, bytes);
        assert!(record.first_decode.unwrap() >= end, "decode starts after the transfer ends");
        let summary = servesim::metrics::Summary::compute(&scenario, &output);
        assert_eq!(summary.disaggregation.unwrap().transfer_s.count, 1);
    }
}

#[test]
fn a_layerwise_transfer_leaves_only_the_last_layer_after_prefill_ends() {
    let tmp = tempfile::tempdir().unwrap();
    node(tmp.path(), 2, "infiniband-ndr", "chain");
    let (_, output) = run_split(tmp.path(), 1, 1, 2048, true);
    let record = &output.recorder.records()[0];
    let prefill_end = record.first_token.unwrap();
    let (start, end) = (record.transfer_start.unwrap(), record.transfer_end.unwrap());
    assert!(start < prefill_end, "a streamed transfer starts while the prompt computes");
    let after_ms = (end - prefill_end) as f64 * 1e-6;
    let bulk_ms = 2048.0 * LLAMA2_70B_KV_BYTES_PER_TOKEN / 50e9 * 1e3;
    let latency_ms = 5e-3;
    eprintln!(
        "after prefill: {after_ms:.4} ms, 1/80 of the bulk {bulk_ms:.3} ms is {:.4} ms (+{latency_ms} ms latency)",
        bulk_ms / 80.0
    );
    assert!(((after_ms - latency_ms) / (bulk_ms / 80.0) - 1.0).abs() < 0.05);
}

#[test]
fn transfers_into_one_decode_port_share_it() {
    let bulk = |prefill: u64| {
        let tmp = tempfile::tempdir().unwrap();
        // Every device has one port into the switch: the decode device's port is shared.
        node(tmp.path(), prefill + 1, "infiniband-ndr", "switch");
        let (_, output) = run_split(tmp.path(), prefill, prefill, 2048, false);
        let times: Vec<f64> = output
            .recorder
            .records()
            .iter()
            .map(|r| (r.transfer_end.unwrap() - r.transfer_start.unwrap()) as f64 * 1e-9)
            .collect();
        // The prompts ran side by side on their own replicas: the transfers overlap.
        let starts: Vec<_> = output.recorder.records().iter().map(|r| r.transfer_start.unwrap()).collect();
        assert!(starts.iter().all(|&s| s == starts[0]), "{starts:?}");
        times
    };
    let one = bulk(1)[0];
    for n in [2u64, 4] {
        let times = bulk(n);
        for t in &times {
            eprintln!(
                "{n} transfers into one port: {:.3} ms each vs {:.3} ms alone ({:.2}×)",
                t * 1e3,
                one * 1e3,
                t / one
            );
            assert!((t / one / n as f64 - 1.0).abs() < 0.05, "{t} vs {n} × {one}");
        }
    }
}

/// Writes `text` as a scenario and returns `servesim validate`'s stderr (asserting failure).
fn validate_error(text: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.yaml");
    std::fs::write(&path, text).unwrap();
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_servesim")).arg("validate").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success() && !stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("bad.yaml:"), "{stderr}");
    stderr
}

fn deployment(pools: &str) -> String {
    format!(
        "model: llama-3.1-8b
cluster:
  nodes: [{{ node: dgx-h100, count: 1 }}]
deployment:
  pools:
{pools}
workload:
  synthetic:
    requests: 4
    arrival: {{ poisson: {{ rate_per_s: 1 }} }}
    input_tokens: {{ fixed: {{ value: 64 }} }}
    output_tokens: {{ fixed: {{ value: 8 }} }}
"
    )
}

#[test]
fn bad_deployments_are_errors_naming_the_pools() {
    let error = validate_error(&deployment("    - { name: dec, role: decode, device: h100-sxm }"));
    assert!(
        error.contains("field `deployment.pools[0].role`")
            && error.contains("dec")
            && error.contains("no prefill pool"),
        "{error}"
    );
    let error = validate_error(&deployment(
        "    - { name: pre, role: prefill, device: h100-sxm }\n    - { name: dec, role: decode, device: h100-sxm, model: llama-3.2-1b }",
    ));
    assert!(error.contains("deployment.pools[1].model") && error.contains("pre") && error.contains("dec"), "{error}");
    // 48 heads split over 4 or over 6 devices, but 6 is not a multiple of 4: a device's heads
    // would land on parts of devices.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"hidden_size": 3072, "num_hidden_layers": 2, "num_attention_heads": 48, "num_key_value_heads": 48, "intermediate_size": 8192, "vocab_size": 32000, "max_position_embeddings": 4096}"#,
    )
    .unwrap();
    let text = deployment(
        "    - { name: pre, role: prefill, device: h100-sxm, tensor_parallel: 4 }\n    - { name: dec, role: decode, device: h100-sxm, tensor_parallel: 6 }",
    )
    .replace("model: llama-3.1-8b", &format!("model: {}", tmp.path().join("config.json").display()))
    .replace("count: 1", "count: 2");
    let error = validate_error(&text);
    assert!(error.contains("cannot reshard") && error.contains("pre") && error.contains("dec"), "{error}");
    let no_cluster = "model: llama-3.1-8b
deployment:
  pools:
    - { name: pre, role: prefill, device: h100-sxm }
    - { name: dec, role: decode, device: h100-sxm }
workload:
  synthetic:
    requests: 4
    arrival: { poisson: { rate_per_s: 1 } }
    input_tokens: { fixed: { value: 64 } }
    output_tokens: { fixed: { value: 8 } }
";
    let error = validate_error(no_cluster);
    assert!(
        error.contains("no route between pool pre") && error.contains("dec") && error.contains("cluster:"),
        "{error}"
    );
    let error = validate_error(&deployment(
        "    - { name: c, device: h100-sxm }\n    - { name: pre, role: prefill, device: h100-sxm }\n    - { name: dec, role: decode, device: h100-sxm }",
    ));
    assert!(error.contains("serve whole requests") && error.contains("pre, dec"), "{error}");
}
