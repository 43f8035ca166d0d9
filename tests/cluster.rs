//! Clusters: placement on node profiles, CPUs and GPUs side by side, pipeline parallelism,
//! and topology errors.

mod common;

use common::{project_root, run, scenario};
use servesim::hardware::Catalog;
use servesim::input::YamlSource;
use servesim::metrics::RequestStatus;
use servesim::scenario::{Overrides, Scenario};
use std::collections::BTreeMap;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn decode_rate_on_cpu_and_workstation_gpu_follows_their_memory_bandwidth() {
    let scenario =
        Scenario::load(&project_root().join("scenarios/cpu-vs-workstation.yaml"), &Overrides::default()).unwrap();
    let (output, _) = run(&scenario);
    let mut tpot: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for record in output.recorder.records() {
        if let (Some(replica), Some(t)) = (record.replica, record.tpot_s()) {
            tpot.entry(replica).or_default().push(t);
        }
    }
    // Replica 0 is the Xeon pool, replica 1 the RTX 4070 pool.
    let decode_rate = |replica: u32| 1.0 / median(tpot[&replica].clone());
    let measured = decode_rate(1) / decode_rate(0);
    let catalog = Catalog::bundled().unwrap();
    let achievable = |name: &str| {
        let device = &catalog.devices[name];
        device.memory.bandwidth_gbs.get() * device.memory.bandwidth_efficiency.get()
    };
    let expected = achievable("rtx-4070") / achievable("xeon-8480");
    let error = (measured / expected - 1.0).abs();
    eprintln!(
        "GPU/CPU decode-rate ratio {measured:.3}, achievable-bandwidth ratio {expected:.3}, error {:.1}%",
        error * 100.0
    );
    assert!(error < 0.10);
}

#[test]
fn the_dgx_cluster_scenario_places_four_tp4_replicas_on_two_nodes() {
    let scenario =
        Scenario::load(&project_root().join("scenarios/dgx-h100-cluster.yaml"), &Overrides::default()).unwrap();
    let pool = &scenario.pools[0];
    assert_eq!(pool.placements.len(), 4);
    let devices = scenario.fabric.devices();
    for placement in &pool.placements {
        assert_eq!(placement.devices.len(), 4);
        let nodes: Vec<usize> = placement.devices.iter().map(|&d| devices[d].node_index).collect();
        assert!(nodes.iter().all(|&n| n == nodes[0]), "a TP group must stay inside one node: {nodes:?}");
        // NVLink 4 through NVSwitch with in-network reduction: 1 byte per byte at 450 GB/s.
        assert!((placement.comm.tp_all_reduce.affine.seconds_per_byte - 1.0 / 450e9).abs() < 1e-15);
    }
}

fn pipeline_scenario(stages: u64, requests: u64, rate: f64) -> String {
    format!(
        "seed: 2
model: llama-3.1-8b
deployment:
  pools:
    - device: a100-sxm-80gb
      pipeline_parallel: {stages}
      interconnect: nvlink3
      scheduler: {{ max_num_seqs: 64, max_num_batched_tokens: 4096 }}
workload:
  synthetic:
    requests: {requests}
    arrival: {{ poisson: {{ rate_per_s: {rate} }} }}
    input_tokens: {{ fixed: {{ value: 512 }} }}
    output_tokens: {{ fixed: {{ value: 128 }} }}
"
    )
}

#[test]
fn pipeline_stages_keep_several_batches_in_flight() {
    // Alone, a request sees every stage in turn: about the same latency as one device.
    let (_, one) = run(&scenario(&pipeline_scenario(1, 1, 1.0)));
    let (_, two) = run(&scenario(&pipeline_scenario(2, 1, 1.0)));
    let ratio = two.latency.e2e_s.mean.unwrap() / one.latency.e2e_s.mean.unwrap();
    assert!((0.6..1.2).contains(&ratio), "single-request latency ratio {ratio}");
    // Saturated, two stages with two batches in flight carry more tokens per second.
    let (_, one) = run(&scenario(&pipeline_scenario(1, 3000, 100.0)));
    let (output, two) = run(&scenario(&pipeline_scenario(2, 3000, 100.0)));
    assert!(output.recorder.records().iter().all(|r| r.status == RequestStatus::Completed));
    let speedup = two.throughput.output_tokens_per_s.unwrap() / one.throughput.output_tokens_per_s.unwrap();
    eprintln!(
        "PP2 vs PP1 saturated throughput: {speedup:.2}×; busy {:.2} vs {:.2}",
        two.devices[0].busy_fraction.unwrap(),
        one.devices[0].busy_fraction.unwrap()
    );
    assert!(speedup > 1.3, "pipelining should overlap batches: {speedup:.2}×");
    assert_eq!(two.devices[0].devices, 2);
}

fn error_of(text: &str, dir: &std::path::Path) -> String {
    let source = YamlSource::from_text("cluster.yaml", dir.to_path_buf(), text.to_string());
    Scenario::from_source(&source, &Overrides::default()).unwrap_err().to_string()
}

const WORKLOAD: &str = "workload:
  synthetic:
    requests: 2
    arrival: { poisson: { rate_per_s: 1 } }
    input_tokens: { fixed: { value: 16 } }
    output_tokens: { fixed: { value: 4 } }
";

#[test]
fn a_node_whose_link_joins_a_missing_device_group_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken-node.yaml"),
        "name: broken-node
display_name: two GPUs on a switch that names a third group
devices:
  - { group: gpu, device: h100-sxm, count: 2 }
interconnects:
  - { link: nvlink4, members: [gpu, npu], topology: switch }
sources: { devices: test }
",
    )
    .unwrap();
    let text = format!(
        "model: llama-3.1-8b\ncluster:\n  nodes:\n    - node: ./broken-node.yaml\ndeployment:\n  pools:\n    - device: h100-sxm\n{WORKLOAD}"
    );
    let error = error_of(&text, dir.path());
    assert!(error.contains("broken-node.yaml:6"), "{error}");
    assert!(error.contains("interconnects[0].members[1]") && error.contains("missing device group \"npu\""), "{error}");
}

#[test]
fn a_tensor_parallel_group_without_a_path_between_its_devices_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "model: llama-3.2-1b\ncluster:\n  nodes:\n    - node: workstation-rtx4070\n      count: 2\ndeployment:\n  pools:\n    - device: rtx-4070\n      tensor_parallel: 2\n{WORKLOAD}"
    );
    let error = error_of(&text, dir.path());
    assert!(error.contains("cluster.yaml:8"), "{error}");
    assert!(error.contains("no path between workstation-rtx4070#0/gpu0 and workstation-rtx4070#1/gpu0"), "{error}");
}

#[test]
fn a_pool_larger_than_the_cluster_is_an_error_with_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "model: llama-3.1-70b\ncluster:\n  nodes:\n    - node: dgx-h100\ndeployment:\n  pools:\n    - device: h100-sxm\n      replicas: 3\n      tensor_parallel: 4\n{WORKLOAD}"
    );
    let error = error_of(&text, dir.path());
    assert!(error.contains("field `deployment.pools[0].replicas`"), "{error}");
    assert!(error.contains("3 × 4 = 12 h100-sxm devices") && error.contains("8 × h100-sxm"), "{error}");
}

#[test]
fn tensor_parallel_across_nodes_uses_the_nics() {
    let text = format!(
        "model: llama-3.1-70b\ncluster:\n  nodes:\n    - node: dgx-a100\n      count: 2\ndeployment:\n  pools:\n    - device: a100-sxm-80gb\n      tensor_parallel: 16\n{WORKLOAD}"
    );
    let scenario = scenario(&text);
    let comm = &scenario.pools[0].placements[0].comm;
    // Hierarchical: 2·7/8 of the buffer over 300 GB/s NVLink plus 1/8 over each 25 GB/s NIC,
    // or in-network reduction over InfiniBand if cheaper.
    assert!(comm.tp_all_reduce.affine.seconds_per_byte <= 2.0 * 7.0 / 8.0 / 300e9 + 1.0 / 8.0 / 25e9 + 1e-18);
    assert!(comm.tp_all_reduce.affine.seconds_per_byte > 1.0 / 300e9);
}

/// Checks that every replica of `scenario` has its own devices, and that its communication
/// costs (computed once per group shape) are those computed afresh for its own devices.
fn assert_placed_apart_and_costed_afresh(scenario: &Scenario) {
    let fabric = &scenario.fabric;
    let mut taken = vec![false; fabric.devices().len()];
    for pool in &scenario.pools {
        assert_eq!(pool.placements.len() as u64, pool.replicas);
        let tp = pool.parallelism.tensor as usize;
        for placement in &pool.placements {
            assert_eq!(placement.devices.len() as u64, pool.parallelism.devices());
            for &d in &placement.devices {
                assert!(!std::mem::replace(&mut taken[d], true), "{} is placed twice", fabric.devices()[d].label());
                assert_eq!(fabric.devices()[d].device, pool.device.name);
            }
            if tp > 1 || pool.parallelism.pipeline > 1 {
                let stages: Vec<&[usize]> = placement.devices.chunks(tp).collect();
                let all_reduce = stages
                    .iter()
                    .map(|stage| fabric.group_comm(stage).unwrap().all_reduce)
                    .fold(Default::default(), servesim::topology::Affine::max);
                assert_eq!(placement.comm.tp_all_reduce.affine, all_reduce);
                let send = stages
                    .windows(2)
                    .map(|pair| fabric.send_recv(pair[0][0], pair[1][0]).unwrap())
                    .fold(Default::default(), servesim::topology::Affine::max);
                assert_eq!(placement.comm.pp_send.affine, send);
            }
        }
    }
}

#[test]
fn placement_costs_on_a_mixed_cluster_are_those_computed_afresh() {
    // Pipelines inside DGX H100s, tensor parallelism across two DGX A100s (no node has 16), and
    // pairs on MI300X nodes; replicas of one pool share costs by shape.
    let text = format!(
        "model: llama-3.1-70b
cluster:
  nodes:
    - {{ node: dgx-h100, count: 3 }}
    - {{ node: dgx-a100, count: 2 }}
    - {{ node: mi300x-node, count: 2 }}
deployment:
  pools:
    - {{ device: h100-sxm, replicas: 3, tensor_parallel: 4, pipeline_parallel: 2 }}
    - {{ device: a100-sxm-80gb, replicas: 1, tensor_parallel: 16 }}
    - {{ device: mi300x, replicas: 8, tensor_parallel: 2 }}
{WORKLOAD}"
    );
    let scenario = scenario(&text);
    assert_placed_apart_and_costed_afresh(&scenario);
    let a100 = &scenario.pools[1].placements[0];
    let nodes: std::collections::BTreeSet<usize> =
        a100.devices.iter().map(|&d| scenario.fabric.devices()[d].node_index).collect();
    assert_eq!(nodes.len(), 2, "TP16 spans both DGX A100s");
}

#[test]
fn tp8_replicas_on_512_dgx_h100_nodes_fill_one_node_each() {
    let text = format!(
        "model: llama-3.1-70b\ncluster:\n  nodes:\n    - node: dgx-h100\n      count: 512\ndeployment:\n  pools:\n    - device: h100-sxm\n      replicas: 512\n      tensor_parallel: 8\n{WORKLOAD}"
    );
    let scenario = scenario(&text);
    assert_placed_apart_and_costed_afresh(&scenario);
    let devices = scenario.fabric.devices();
    for (replica, placement) in scenario.pools[0].placements.iter().enumerate() {
        assert!(placement.devices.iter().all(|&d| devices[d].node_index == replica), "replica {replica}");
        // NVLink 4 through NVSwitch with in-network reduction.
        assert!((placement.comm.tp_all_reduce.affine.seconds_per_byte - 1.0 / 450e9).abs() < 1e-15);
    }
}

#[test]
fn a_hundred_thousand_single_gpu_replicas_are_each_placed_on_their_own_device() {
    // Placement is linear in the replicas (it used to take minutes here).
    let text = format!(
        "model: llama-3.2-1b\ndeployment:\n  pools:\n    - device: h100-sxm\n      replicas: 100000\n{WORKLOAD}"
    );
    let scenario = scenario(&text);
    assert_eq!(scenario.fabric.devices().len(), 100_000);
    assert_placed_apart_and_costed_afresh(&scenario);
}

#[test]
fn an_idle_replica_batches_every_request_arriving_at_the_same_instant() {
    // As offline benchmarks send them: twenty prompts at t = 0. The first batch must hold all
    // of them, not the first arrival alone.
    let tmp = tempfile::tempdir().unwrap();
    let mut trace = String::from("arrival_s,input_tokens,output_tokens\n");
    for _ in 0..20 {
        trace += "0,100,4\n";
    }
    trace += "0.5,100,4\n";
    std::fs::write(tmp.path().join("t.csv"), trace).unwrap();
    let text = "model: llama-3.1-8b
deployment:
  pools: [{ device: h100-sxm }]
workload:
  trace: { format: csv, path: t.csv }
";
    let source = servesim::input::YamlSource::from_text("offline.yaml", tmp.path().to_path_buf(), text.to_string());
    let mut scenario = Scenario::from_source(&source, &Default::default()).unwrap();
    scenario.record_timeline = true;
    let (output, _) = common::run(&scenario);
    let timeline = output.timeline.unwrap();
    assert_eq!(
        (timeline[0].start, timeline[0].sequences, timeline[0].prefill_tokens),
        (servesim::engine::SimTime::ZERO, 20, 2000)
    );
}
