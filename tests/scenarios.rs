//! Every runnable scenario in `scenarios/` is a regression case: it must validate, run, and
//! reproduce the key figures recorded in `tests/golden/<name>.json`.
//!
//! After an intended change of the model, regenerate the figures with
//! `SERVESIM_UPDATE_GOLDEN=1 cargo test --test scenarios` and review the diff.

mod common;

use serde_json::{json, Value};
use servesim::metrics::Summary;
use servesim::scenario::{Overrides, Scenario};
use std::fs;

fn key_figures(summary: &Summary) -> Value {
    let l = &summary.latency;
    json!({
        "requests_completed": summary.requests.completed,
        "requests_rejected": summary.requests.rejected,
        "preemptions": summary.requests.preemptions,
        "duration_s": summary.duration_s,
        "ttft_p50_s": l.ttft_s.p50,
        "ttft_p99_s": l.ttft_s.p99,
        "tpot_p50_s": l.tpot_s.p50,
        "tpot_p99_s": l.tpot_s.p99,
        "e2e_p99_s": l.e2e_s.p99,
        "output_tokens_per_s": summary.throughput.output_tokens_per_s,
        "fraction_meeting_slo": summary.goodput.fraction_meeting_slo,
        "kv_peak_occupancy": summary.kv_cache.peak_occupancy,
        "energy_j_per_output_token": summary.energy.j_per_output_token,
        "usd_per_million_output_tokens": summary.energy.usd_per_million_output_tokens,
    })
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-12),
        _ => a == b,
    }
}

#[test]
fn every_bundled_scenario_reproduces_its_key_figures() {
    let dir = common::project_root().join("scenarios");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let update = std::env::var_os("SERVESIM_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for path in names {
        let scenario = Scenario::load(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        let (_, summary) = common::run(&scenario);
        let figures = key_figures(&summary);
        let golden_path = common::project_root().join("tests/golden").join(format!("{}.json", scenario.name));
        if update {
            fs::write(&golden_path, serde_json::to_string_pretty(&figures).unwrap() + "\n").unwrap();
            continue;
        }
        let text = fs::read_to_string(&golden_path).unwrap_or_else(|_| {
            panic!("{} has no golden figures; run with SERVESIM_UPDATE_GOLDEN=1", golden_path.display())
        });
        let golden: Value = serde_json::from_str(&text).unwrap();
        for (key, expected) in golden.as_object().unwrap() {
            let actual = &figures[key];
            if !close(actual, expected) {
                failures.push(format!("{}: {key} = {actual}, golden {expected}", scenario.name));
            }
        }
    }
    assert!(failures.is_empty(), "figures changed:\n{}", failures.join("\n"));
}
