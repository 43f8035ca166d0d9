//! Calibration against Vidur's measured operator times (microsoft/vidur, A100 and A40): fit
//! on some models, report error on others and on another GPU.

mod common;

use servesim::calibration::{errors_by_operator, fit_compute, operator_samples, read_vidur_compute, OperatorSample};
use servesim::hardware::Catalog;
use std::collections::BTreeMap;

const FIT_MODELS: [&str; 4] =
    ["meta-llama/Meta-Llama-3-70B", "internlm/internlm-20b", "Qwen/Qwen-72B", "microsoft/phi-2"];
const CHECK_MODELS: [&str; 4] = [
    "meta-llama/Llama-2-7b-hf",
    "meta-llama/Llama-2-70b-hf",
    "meta-llama/Meta-Llama-3-8B",
    "codellama/CodeLlama-34b-Instruct-hf",
];

fn samples(gpu: &str, models: &[&str]) -> Vec<OperatorSample> {
    let root = common::measured_data().join("vidur/compute").join(gpu);
    models
        .iter()
        .filter_map(|m| {
            let path = root.join(m).join("mlp.csv.gz");
            path.is_file().then(|| operator_samples(&read_vidur_compute(&path).unwrap()))
        })
        .flatten()
        .collect()
}

fn report(title: &str, errors: &BTreeMap<String, (usize, f64)>) {
    let cells: Vec<String> = errors.iter().map(|(op, (n, e))| format!("{op} {:.1}% (n={n})", e * 100.0)).collect();
    eprintln!("{title}: {}", cells.join(", "));
}

#[test]
fn fitted_a100_curves_predict_held_out_models_within_10_percent_per_operator() {
    let catalog = Catalog::bundled().unwrap();
    let a100 = &catalog.devices["a100-sxm-80gb"];
    let fitted = fit_compute(&samples("a100", &FIT_MODELS), a100);
    let errors = errors_by_operator(&samples("a100", &CHECK_MODELS), a100, &fitted);
    report(
        "A100, fit on Llama-3-70B/InternLM-20B/Qwen-72B/Phi-2, checked on Llama-2-7B/70B, Llama-3-8B, CodeLlama-34B",
        &errors,
    );
    for (op, (_, error)) in &errors {
        assert!(*error <= 0.10, "{op}: {:.1}%", error * 100.0);
    }
}

#[test]
fn a100_fit_carried_to_a40_is_reported() {
    let catalog = Catalog::bundled().unwrap();
    let fitted = fit_compute(
        &samples("a100", &[&FIT_MODELS[..], &CHECK_MODELS[..]].concat()),
        &catalog.devices["a100-sxm-80gb"],
    );
    let a40 = &catalog.devices["a40"];
    let errors = errors_by_operator(&samples("a40", &[&FIT_MODELS[..], &CHECK_MODELS[..]].concat()), a40, &fitted);
    report("A40 with curves fitted on all A100 models", &errors);
    // GEMM efficiencies carry over between the two Ampere parts; bandwidth-bound kernels do not
    // (GDDR6 vs HBM2e), which is why a device is calibrated on its own measurements.
    for op in ["attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj"] {
        assert!(errors[op].1 < 0.15, "{op}: {:.1}%", errors[op].1 * 100.0);
    }
}

fn network_check(system: &str) -> BTreeMap<String, (usize, f64)> {
    use servesim::calibration::{fit_network, network_errors_by_band, read_vidur_network};
    let catalog = Catalog::bundled().unwrap();
    let samples = read_vidur_network(&common::measured_data().join("vidur/network").join(system)).unwrap();
    // Hold out every other message size of each configuration: fit on the rest.
    let mut sizes: Vec<u64> = samples.iter().map(|s| s.bytes as u64).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let held_out = |s: &servesim::calibration::NetworkSample| sizes.binary_search(&(s.bytes as u64)).unwrap() % 2 == 1;
    let (check, fit): (Vec<_>, Vec<_>) = samples.into_iter().partition(held_out);
    // Both systems are A100 SXM4 with NVSwitch; the pairwise one has no inter-node fabric.
    let node = &catalog.nodes["dgx-a100"];
    let curves = fit_network(&fit, node, &catalog.links);
    let flat: Vec<_> = curves
        .iter()
        .cloned()
        .map(|mut c| {
            c.efficiency_by_log2_bytes = servesim::cost::Curve { points: vec![(0.0, 1.0)] };
            c
        })
        .collect();
    report(
        &format!("{system} collectives, uncalibrated topology model"),
        &network_errors_by_band(&check, &flat, node, &catalog.links),
    );
    let errors = network_errors_by_band(&check, &curves, node, &catalog.links);
    report(&format!("{system} collectives, held-out sizes"), &errors);
    errors
}

#[test]
fn calibrated_collectives_predict_held_out_message_sizes() {
    for system in ["a100_dgx", "a100_pairwise_nvlink"] {
        let errors = network_check(system);
        for band in ["1-16MiB", ">=16MiB"] {
            assert!(errors[band].1 <= 0.15, "{system} {band}: {:.1}%", errors[band].1 * 100.0);
        }
    }
}

#[test]
fn the_bundled_a100_calibration_is_what_servesim_calibrate_writes_today() {
    // The command the README documents, run from the project root.
    let out = tempfile::tempdir().unwrap();
    let written = out.path().join("a100.yaml");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_servesim"))
        .current_dir(common::project_root())
        .args([
            "calibrate",
            "--device",
            "a100-sxm-80gb",
            "--compute",
            "tests/data/vidur/compute/a100",
            "--network",
            "tests/data/vidur/network/a100_dgx",
            "--node",
            "dgx-a100",
            "--out",
        ])
        .arg(&written)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let fresh = std::fs::read_to_string(&written).unwrap();
    let bundled =
        std::fs::read_to_string(common::project_root().join("hardware-profiles/calibrations/a100-sxm-80gb.yaml"))
            .unwrap();
    // Only the output path in `generated_by` differs.
    let strip = |text: &str| text.lines().filter(|l| !l.starts_with("generated_by:")).collect::<Vec<_>>().join("\n");
    assert!(
        strip(&fresh) == strip(&bundled),
        "hardware-profiles/calibrations/a100-sxm-80gb.yaml is stale: regenerate it with the command in the README"
    );
}
