//! Whole-iteration and end-to-end checks against published measurements:
//! - splitwise-sim's A100 profile of Llama2-70B (Mutinifni/splitwise-sim, `splitwise_perf_model_a100.csv`):
//!   prompt-phase and token-phase times at TP 2/4/8;
//! - TensorRT-LLM 0.9's published throughput per GPU and batch-1 first-token latency
//!   (NVIDIA/TensorRT-LLM docs, `trtllm_v0.9_perf.csv`) for the models servesim bundles.
//!
//! Each fits its engine profile's constants on one half of the data (library functions in
//! `servesim::fidelity`; `--ignored` tests re-run the fits and check the bundled profiles equal
//! them) and asserts the bounds on the other half. Figures are printed (`--nocapture`).

mod common;

/// splitwise-sim's A100 Llama2-70B profile against the `eager-pytorch` engine profile, whose
/// constants were fitted on the profile's fitting half (`servesim::fidelity::fit_eager_engine`):
/// the checking half's errors are the figure (acceptance: prompt phase ≤ 12%, token phase
/// ≤ 5%).
#[test]
fn llama2_70b_iterations_on_a100_match_splitwise_measurements() {
    use servesim::fidelity::{read_splitwise, splitwise_errors};
    let catalog = servesim::hardware::Catalog::bundled().unwrap();
    let configs = read_splitwise(&common::measured_data().join("serving/splitwise_perf_model_a100.csv")).unwrap();
    let (fitting, checking): (Vec<_>, Vec<_>) = configs.iter().partition(|c| c.fits());
    for (half, configs) in [("fitting half (in-sample)", &fitting), ("checking half", &checking)] {
        let errors = splitwise_errors(configs, "eager-pytorch", &catalog, &|c| c).unwrap();
        if half == "checking half" {
            for (tp, prompt, batch, p, pm, t, tm) in &errors.rows {
                eprintln!(
                    "TP{tp} prompt {prompt:>5} batch {batch:>3}: prompt {:7.1} ms (measured {:7.1}), token {:6.2} ms (measured {:6.2})",
                    p * 1e3,
                    pm * 1e3,
                    t * 1e3,
                    tm * 1e3
                );
            }
        }
        eprintln!(
            "splitwise Llama2-70B A100, {half}: prompt phase {:.1}% ({} configs), token phase {:.1}% ({} configs)",
            errors.prompt.1 * 100.0,
            errors.prompt.0,
            errors.token.1 * 100.0,
            errors.token.0
        );
        if half == "checking half" {
            assert!(errors.prompt.1 <= 0.12 && errors.token.1 <= 0.05, "{:?} {:?}", errors.prompt, errors.token);
        }
    }
}

/// The TensorRT-LLM 0.9 tables against the `trtllm-0.9` engine profile, whose constants were
/// fitted on the table's fitting half (`servesim::fidelity::fit_trtllm_engine`): the checking
/// half's errors are the figure (acceptance: ≤ 12% overall, ≤ 15% on every GPU, batch-1 first
/// token ≤ 15%). Rows: the published LLaMA 7B/70B, Mistral 7B and Mixtral 8x7B rows on A100,
/// H100, H200 and L40S (GPT-J 6B and Falcon 180B have no bundled config).
#[test]
fn tensorrt_llm_throughput_per_gpu_error_table() {
    use servesim::fidelity::{read_trtllm_table, trtllm_errors};
    let catalog = servesim::hardware::Catalog::bundled().unwrap();
    let rows = read_trtllm_table(&common::measured_data().join("serving/trtllm_v0.9_perf.csv"), "trtllm-0.9").unwrap();
    let (fitting, checking): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.fits());
    assert_eq!((fitting.len(), checking.len()), (48, 48), "two equal halves");
    for (half, rows) in [("fitting half (in-sample)", &fitting), ("checking half", &checking)] {
        let errors = trtllm_errors(rows, &catalog, None).unwrap();
        if half == "checking half" {
            for (label, predicted, published) in &errors.rows {
                eprintln!(
                    "{label}: {predicted:9.1} (published {published:9.1}, {:+.0}%)",
                    (predicted / published - 1.0) * 100.0
                );
            }
        }
        for (gpu, (count, error)) in &errors.throughput {
            eprintln!(
                "TensorRT-LLM 0.9 {half}: throughput/GPU {gpu}: median |error| {:.1}% over {count} rows",
                error * 100.0
            );
        }
        let (count, error) = errors.first_token;
        eprintln!(
            "TensorRT-LLM 0.9 {half}: batch-1 first token: median |error| {:.1}% over {count} rows",
            error * 100.0
        );
        if half == "checking half" {
            assert!(errors.throughput["all"].1 <= 0.12, "overall {:.3}", errors.throughput["all"].1);
            for gpu in ["A100", "H100", "H200", "L40S"] {
                assert!(errors.throughput[gpu].1 <= 0.15, "{gpu} {:.3}", errors.throughput[gpu].1);
            }
            assert!(error <= 0.15, "first token {error:.3}");
        }
    }
}

/// Re-fits the `trtllm-0.9` engine profile's constants on the fitting half of the TensorRT-LLM
/// table from fixed starting values and checks they are the bundled ones (slow in debug:
/// `cargo test --release --test serving_fidelity -- --ignored`).
#[test]
#[ignore]
fn trtllm_engine_constants_refit() {
    use servesim::fidelity::{fit_trtllm_engine, read_trtllm_table, EngineConstants};
    let catalog = servesim::hardware::Catalog::bundled().unwrap();
    let rows = read_trtllm_table(&common::measured_data().join("serving/trtllm_v0.9_perf.csv"), "trtllm-0.9").unwrap();
    let start =
        EngineConstants { step_us: 60.0, per_sequence_us: 1.0, scale: Default::default(), reread_fraction: 0.5 };
    let (fitted, fit_errors) = fit_trtllm_engine(&rows, &catalog, start).unwrap();
    eprintln!("fitted: {fitted:?}");
    eprintln!("fitting half: {:?} first token {:?}", fit_errors.throughput, fit_errors.first_token);
    let profile = &catalog.engines["trtllm-0.9"];
    let bundled = EngineConstants {
        step_us: profile.host.step_us.get(),
        per_sequence_us: profile.host.per_sequence_us.get(),
        scale: servesim::cluster::engine_kernel_scale(profile),
        reread_fraction: profile.windowed_decode_reread_fraction,
    };
    assert_eq!(fitted, bundled, "hardware-profiles/engines/trtllm-0.9.yaml is what the fit gives");
}

/// Re-fits the `eager-pytorch` engine profile's constants on splitwise's fitting half from
/// fixed starting values and checks they are the bundled ones.
#[test]
#[ignore]
fn eager_engine_constants_refit() {
    use servesim::fidelity::{fit_eager_engine, read_splitwise, EagerConstants};
    let catalog = servesim::hardware::Catalog::bundled().unwrap();
    let configs = read_splitwise(&common::measured_data().join("serving/splitwise_perf_model_a100.csv")).unwrap();
    let start = EagerConstants { kernel_launch_us: 40.0, step_us: 500.0, scale: Default::default() };
    let (fitted, fit_errors) = fit_eager_engine(&configs, "eager-pytorch", &catalog, start).unwrap();
    eprintln!("fitted: {fitted:?}; fitting half: prompt {:?} token {:?}", fit_errors.prompt, fit_errors.token);
    let profile = &catalog.engines["eager-pytorch"];
    let bundled = EagerConstants {
        kernel_launch_us: profile.graphs.kernel_launch_us.get(),
        step_us: profile.host.step_us.get(),
        scale: servesim::cluster::engine_kernel_scale(profile),
    };
    assert_eq!(fitted, bundled, "hardware-profiles/engines/eager-pytorch.yaml is what the fit gives");
}
