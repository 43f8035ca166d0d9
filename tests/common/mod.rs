//! Helpers shared by the integration tests: scenario texts and one-call runs.

#![allow(dead_code)]

use servesim::cluster::{simulate, RunOutput};
use servesim::input::YamlSource;
use servesim::metrics::Summary;
use servesim::scenario::{Overrides, Scenario};
use std::path::PathBuf;

/// The project root (where scenarios/ and workloads/ live).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/data`: the measured data the fidelity and calibration tests read (origins, licences
/// and how it was cut in `tests/data/README.md`).
pub fn measured_data() -> PathBuf {
    project_root().join("tests/data")
}

/// Parses and validates scenario text; relative paths resolve against `scenarios/`.
pub fn scenario(text: &str) -> Scenario {
    let source = YamlSource::from_text("test.yaml", project_root().join("scenarios"), text.to_string());
    Scenario::from_source(&source, &Overrides::default()).unwrap_or_else(|e| panic!("invalid test scenario: {e}"))
}

/// Runs a scenario and summarises it.
pub fn run(scenario: &Scenario) -> (RunOutput, Summary) {
    let output = simulate(scenario);
    let summary = Summary::compute(scenario, &output);
    (output, summary)
}

/// A one-pool scenario: `model` on one `device`, with the given scheduler limits and workload
/// YAML (indented for the `workload:` key).
pub fn single_replica(
    model: &str,
    device: &str,
    max_num_seqs: u64,
    max_batched: u64,
    workload: &str,
    seed: u64,
) -> String {
    format!(
        "seed: {seed}
model: {model}
deployment:
  pools:
    - device: {device}
      scheduler:
        max_num_seqs: {max_num_seqs}
        max_num_batched_tokens: {max_batched}
workload:
{workload}
"
    )
}
