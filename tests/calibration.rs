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

/// Runs `servesim calibrate ARGS --out TEMP` from the project root (the command the README
/// documents) and checks that `hardware-profiles/calibrations/{bundled}` is what it writes:
/// every fitted number, error and comment line; only the output path in `generated_by` differs.
fn assert_bundled_calibration_is_fresh(bundled: &str, args: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    let written = out.path().join(bundled);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_servesim"))
        .current_dir(common::project_root())
        .arg("calibrate")
        .args(args)
        .arg("--out")
        .arg(&written)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let fresh = std::fs::read_to_string(&written).unwrap();
    let path = format!("hardware-profiles/calibrations/{bundled}");
    let bundled_text = std::fs::read_to_string(common::project_root().join(&path)).unwrap();
    let strip = |text: &str| text.lines().filter(|l| !l.starts_with("generated_by:")).collect::<Vec<_>>().join("\n");
    assert!(strip(&fresh) == strip(&bundled_text), "{path} is stale: regenerate it with the command in the README");
    // The recorded command is the one run, writing to the bundled path.
    let command = format!("generated_by: servesim calibrate {} --out {path}", args.join(" "));
    assert!(bundled_text.lines().any(|l| l == command), "{path}: generated_by is not `{command}`");
}

#[test]
fn the_bundled_a100_calibration_is_what_servesim_calibrate_writes_today() {
    assert_bundled_calibration_is_fresh(
        "a100-sxm-80gb.yaml",
        &[
            "--device",
            "a100-sxm-80gb",
            "--compute",
            "tests/data/vidur/compute/a100",
            "--network",
            "tests/data/vidur/network/a100_dgx",
            "--node",
            "dgx-a100",
        ],
    );
}

/// The H100 models Vidur profiled that are bundled (every one is fitted: in-sample errors only).
const H100_MODELS: [&str; 3] = ["Qwen/Qwen-72B", "internlm/internlm-20b", "microsoft/phi-2"];

/// The arguments of the README's H100 SXM and H200 commands (before `--out`).
const H100_ARGS: [&str; 8] = [
    "--device",
    "h100-sxm",
    "--compute",
    "tests/data/vidur/compute/h100",
    "--network",
    "tests/data/vidur/network/h100_pairwise_nvlink",
    "--node",
    "dgx-h100",
];

#[test]
fn the_bundled_h100_calibration_is_what_servesim_calibrate_writes_today() {
    assert_bundled_calibration_is_fresh("h100-sxm.yaml", &H100_ARGS);
}

#[test]
fn the_bundled_h200_calibration_is_what_servesim_calibrate_writes_today() {
    let mut args: Vec<&str> = H100_ARGS.to_vec();
    args[1] = "h200";
    args.splice(2..2, ["--measured-on", "h100-sxm"]);
    assert_bundled_calibration_is_fresh("h200.yaml", &args);
}

#[test]
fn h100_curves_fit_the_h100_measurements() {
    let catalog = Catalog::bundled().unwrap();
    let h100 = &catalog.devices["h100-sxm"];
    let samples = samples("h100", &H100_MODELS);
    assert!(samples.len() > 20_000, "{} H100 samples", samples.len());
    let errors = errors_by_operator(&samples, h100, &fit_compute(&samples, h100));
    report("H100 SXM, in-sample (curves fitted on the same three models)", &errors);
    // In-sample, so a loose bound: a fit that is this far off is broken, not merely optimistic.
    for (op, (_, error)) in &errors {
        assert!(*error < 0.15, "{op}: {:.1}%", error * 100.0);
    }
    let bundled = servesim::input::YamlSource::from_file(
        &common::project_root().join("hardware-profiles/calibrations/h100-sxm.yaml"),
    )
    .unwrap();
    let bundled = servesim::calibration::Calibration::from_source(&bundled).unwrap();
    for (op, (_, error)) in &errors {
        assert_eq!(bundled.operator_error.get(op), Some(error), "{op}: the bundled file's operator_error");
    }
}

/// Bandwidth-bound samples (the roofline's memory bound is at least 4× its compute bound, and
/// the kernel takes at least 5× the fitted overhead): predicted time on the carried device
/// over predicted time on the measured one, per sample.
fn ratios(before: &[f64], after: &[f64], pick: impl Fn(usize) -> bool) -> Vec<f64> {
    let mut r: Vec<f64> = (0..before.len()).filter(|&i| pick(i)).map(|i| after[i] / before[i]).collect();
    r.sort_by(f64::total_cmp);
    r
}

#[test]
fn h100_curves_carried_to_h200_keep_compute_bound_times_and_follow_the_bandwidth() {
    use servesim::calibration::{carry_compute, predict};
    use servesim::model::OpKind;
    let catalog = Catalog::bundled().unwrap();
    let (h100, h200) = (&catalog.devices["h100-sxm"], &catalog.devices["h200"]);
    let samples = samples("h100", &H100_MODELS);
    let fitted = fit_compute(&samples, h100);
    let before = predict(&samples, h100, &fitted);

    // Carried to the device it was measured on, nothing changes.
    let same = predict(&samples, h100, &carry_compute(&samples, h100, &fitted, h100));
    for (a, b) in before.iter().zip(&same) {
        assert!((a / b - 1.0).abs() < 1e-9, "{a} vs {b}");
    }

    let after = predict(&samples, h200, &carry_compute(&samples, h100, &fitted, h200));
    let bandwidth = h100.memory_bandwidth_bytes_per_s() / h200.memory_bandwidth_bytes_per_s();
    let overhead_s = fitted.kernel_overhead_us * 1e-6;
    let peak = h100.peak_flops(servesim::hardware::Dtype::Fp16);
    let compute_bound =
        ratios(&before, &after, |i| samples[i].kind == OpKind::Gemm && samples[i].flops > 1e12 && before[i] > 1e-4);
    let memory_bound = ratios(&before, &after, |i| {
        let s = &samples[i];
        let memory_s = s.bytes / h100.memory_bandwidth_bytes_per_s();
        s.kind == OpKind::Memory && memory_s > 4.0 * s.flops / peak && s.measured_s > 5.0 * overhead_s.max(1e-6)
    });
    let median = |r: &[f64]| r[r.len() / 2];
    eprintln!(
        "H100 -> H200 carry: {} compute-bound GEMMs keep {:.3}× their time (median); {} bandwidth-bound kernels take {:.3}× (bandwidth ratio {bandwidth:.3})",
        compute_bound.len(),
        median(&compute_bound),
        memory_bound.len(),
        median(&memory_bound),
    );
    assert!(compute_bound.len() > 100 && memory_bound.len() > 100);
    assert!((median(&compute_bound) - 1.0).abs() < 0.02, "compute-bound GEMMs: {:.3}×", median(&compute_bound));
    // The fixed overhead does not shrink, so the kernels speed up by a little less than the ratio.
    assert!(
        median(&memory_bound) >= bandwidth - 0.01 && median(&memory_bound) < bandwidth + 0.1,
        "bandwidth-bound kernels: {:.3}× against {bandwidth:.3}",
        median(&memory_bound)
    );
}

#[test]
fn the_h100_to_h200_carry_against_measured_gemm_ratios() {
    // No H200 profile in Vidur's format exists, so the carried curves cannot be checked
    // directly. AIConfigurator measured the same GEMM shapes on both parts with each engine:
    // the measured H200 / H100 time ratio is what the carry predicts (its kernels are not
    // Vidur's, but the ratio between the two parts is the carry's claim).
    use servesim::calibration::aiconfigurator::read_held_out;
    use servesim::calibration::{carry_compute, predict};
    let catalog = Catalog::bundled().unwrap();
    let (h100, h200) = (&catalog.devices["h100-sxm"], &catalog.devices["h200"]);
    let vidur = samples("h100", &H100_MODELS);
    let fitted = fit_compute(&vidur, h100);
    let carried = carry_compute(&vidur, h100, &fitted, h200);
    for engine in ["trtllm_1.3.0rc20", "vllm_0.24.0", "sglang_0.5.14"] {
        let gemms = |device: &str| -> BTreeMap<(u64, u64, u64), f64> {
            let path = common::measured_data().join(format!("aiconfigurator/{device}_{engine}.csv.gz"));
            read_held_out(&path)
                .unwrap()
                .into_iter()
                .filter(|r| r.table == "gemm" && r.dtype == "bfloat16")
                .map(|r| ((r.m, r.n, r.k), r.latency_s))
                .collect()
        };
        let (on_h100, on_h200) = (gemms("h100-sxm"), gemms("h200"));
        let shapes: Vec<(u64, u64, u64)> = on_h100.keys().filter(|s| on_h200.contains_key(s)).copied().collect();
        assert!(shapes.len() > 100, "{engine}: {} shapes measured on both", shapes.len());
        let as_samples: Vec<OperatorSample> = shapes
            .iter()
            .map(|&(m, n, k)| {
                let (m, n, k) = (m as f64, n as f64, k as f64);
                OperatorSample {
                    name: "mlp_up_proj",
                    kind: servesim::model::OpKind::Gemm,
                    flops: 2.0 * m * n * k,
                    bytes: 2.0 * (m * k + k * n + m * n),
                    measured_s: 0.0,
                    tokens: m as u64,
                    tensor_parallel: 1,
                }
            })
            .collect();
        let predicted: Vec<f64> = predict(&as_samples, h200, &carried)
            .iter()
            .zip(predict(&as_samples, h100, &fitted))
            .map(|(a, b)| a / b)
            .collect();
        let measured: Vec<f64> = shapes.iter().map(|s| on_h200[s] / on_h100[s]).collect();
        let error = |pick: &dyn Fn(usize) -> bool, ratio: &dyn Fn(usize) -> f64| {
            let pairs: Vec<(f64, f64)> =
                (0..shapes.len()).filter(|&i| pick(i)).map(|i| (ratio(i), measured[i])).collect();
            (pairs.len(), servesim::calibration::median_absolute_percentage_error(&pairs))
        };
        let median = |values: Vec<f64>| {
            let mut values = values;
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let mut cells = Vec::new();
        let mut by_band = BTreeMap::new();
        for (band, low, high) in
            [("m <= 16", 0, 16), ("m 17-256", 17, 256), ("m > 256", 257, u64::MAX), ("all", 0, u64::MAX)]
        {
            let pick = |i: usize| (low..=high).contains(&shapes[i].0);
            let (n, carry) = error(&pick, &|i| predicted[i]);
            let (_, unchanged) = error(&pick, &|_| 1.0);
            let in_band =
                |values: &[f64]| (0..shapes.len()).filter(|&i| pick(i)).map(|i| values[i]).collect::<Vec<_>>();
            cells.push(format!(
                "{band} (n={n}): ratio measured {:.3}, carried {:.3}; error carried {:.1}%, unchanged {:.1}%",
                median(in_band(&measured)),
                median(in_band(&predicted)),
                carry * 100.0,
                unchanged * 100.0
            ));
            by_band.insert(band, (carry, unchanged));
        }
        eprintln!("H200 / H100 bf16 GEMM time, {engine}: {}", cells.join("; "));
        // Measured today: the carry is right for large GEMMs and overstates H200's gain on
        // bandwidth-bound ones (small kernels do not reach the same fraction of the higher
        // bandwidth). These bounds hold it to what it does now; the README quotes the figures.
        for (band, bound) in [("m <= 16", 0.20), ("m 17-256", 0.25), ("m > 256", 0.10)] {
            let (carry, _) = by_band[band];
            assert!(carry < bound, "{engine} {band}: carried H200/H100 ratio off by {:.1}%", carry * 100.0);
        }
    }
}

/// The cost model a run of `model` on one `device` with these pool lines uses.
fn priced(device: &str, pool_lines: &str) -> servesim::cost::RooflineCostModel {
    let scenario = common::scenario(&format!(
        "model: llama-3.1-8b
deployment:
  pools:
    - device: {device}
{pool_lines}workload:
  synthetic:
    requests: 1
    arrival: {{ poisson: {{ rate_per_s: 1 }} }}
    input_tokens: {{ fixed: {{ value: 64 }} }}
    output_tokens: {{ fixed: {{ value: 8 }} }}
"
    ));
    let pool = &scenario.pools[0];
    servesim::cluster::pool_cost_model(pool, &pool.placements[0])
}

#[test]
fn hopper_pools_price_by_measured_tables_then_the_calibration_then_the_profile() {
    use servesim::model::{BatchShape, OpKind};
    let mut batch = BatchShape::default();
    batch.add_prefill_chunk(0, 512, false);
    for device in ["h100-sxm", "h200"] {
        let calibration = format!("      calibration: {device}\n");
        let seconds = |lines: &str| {
            let cost = priced(device, lines);
            cost.operators(&batch).iter().map(|op| (op.name, op.kind, cost.operator_seconds(op))).collect::<Vec<_>>()
        };
        let roofline = "      operator_data: roofline\n";
        let measured_plain = seconds("");
        let measured_calibrated = seconds(&calibration);
        let roofline_plain = seconds(roofline);
        let roofline_calibrated = seconds(&format!("{roofline}{calibration}"));
        let (mut gemms, mut bandwidth_bound) = (0, 0);
        for i in 0..measured_plain.len() {
            let (name, kind, plain) = measured_plain[i];
            match kind {
                OpKind::Gemm => {
                    gemms += 1;
                    // The engine's measured GEMM tables come first: the calibration changes nothing.
                    assert_eq!(plain, measured_calibrated[i].2, "{device} {name}");
                    // Without them the calibration's GEMM curve prices them.
                    assert_ne!(roofline_plain[i].2, roofline_calibrated[i].2, "{device} {name}");
                }
                OpKind::Memory => {
                    bandwidth_bound += 1;
                    // No measured tables for norms, activations, rope: the calibration's curves
                    // price them over the profile's constant efficiency, whatever operator_data says.
                    assert_ne!(plain, measured_calibrated[i].2, "{device} {name}");
                    assert_eq!(measured_calibrated[i].2, roofline_calibrated[i].2, "{device} {name}");
                    assert_eq!(plain, roofline_plain[i].2, "{device} {name}");
                }
                _ => {}
            }
        }
        assert!(gemms > 0 && bandwidth_bound > 0, "{device}: {gemms} GEMMs, {bandwidth_bound} bandwidth-bound");
    }
    // Curves follow the device they are for: H100 curves on an H200 pool are refused.
    let text = "model: llama-3.1-8b\ndeployment:\n  pools:\n    - device: h200\n      calibration: h100-sxm\nworkload:\n  synthetic:\n    requests: 1\n    arrival: { poisson: { rate_per_s: 1 } }\n    input_tokens: { fixed: { value: 64 } }\n    output_tokens: { fixed: { value: 8 } }\n";
    let source = servesim::input::YamlSource::from_text("test.yaml", common::project_root(), text.to_string());
    let error = servesim::scenario::Scenario::from_source(&source, &servesim::scenario::Overrides::default())
        .expect_err("H100 curves on an H200 pool");
    assert!(error.to_string().contains("the calibration is for device \"h100-sxm\""), "{error}");
}
