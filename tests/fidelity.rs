//! First look at operator fidelity: roofline GEMM times against Vidur's measured A100 medians
//! (microsoft/vidur, `tests/data/vidur/compute/a100/`), uncalibrated.
//!
//! The figures are printed (run with `--nocapture`) and bounded loosely here; calibration in a
//! later step is what brings them down.

mod common;

use servesim::calibration::{median_absolute_percentage_error, read_vidur_compute};
use servesim::cost::RooflineCostModel;
use servesim::hardware::{Catalog, Dtype, BUNDLED_MODELS};
use servesim::model::{BatchShape, ModelSpec, Precision};
use servesim::scenario::ParallelComm;

const GEMMS: [&str; 4] = ["attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj"];

fn model(name: &str) -> ModelSpec {
    let (_, text) = BUNDLED_MODELS.iter().find(|(n, _)| *n == name).expect("bundled model");
    ModelSpec::from_hf_config(name, name, text).unwrap()
}

/// (predicted, measured) seconds for every GEMM row with num_tokens ≥ 128.
fn gemm_pairs(model_name: &str, vidur_dir: &str) -> Vec<(f64, f64)> {
    let catalog = Catalog::bundled().unwrap();
    let device = &catalog.devices["a100-sxm-80gb"];
    let spec = model(model_name);
    let path = common::measured_data().join("vidur/compute/a100").join(vidur_dir).join("mlp.csv.gz");
    let rows = read_vidur_compute(&path).unwrap();
    let mut pairs = Vec::new();
    for row in rows.iter().filter(|r| r.num_tokens >= 128) {
        let comm = ParallelComm { tensor_parallel: row.tensor_parallel, pipeline_parallel: 1, ..Default::default() };
        let cost = RooflineCostModel::new(&spec, device, Precision::sixteen_bit(Dtype::Fp16), &comm);
        let mut batch = BatchShape::default();
        batch.add_prefill_chunk(0, row.num_tokens, false);
        for op in cost.operators(&batch).iter().filter(|op| GEMMS.contains(&op.name)) {
            if let Some(&measured) = row.median_s.get(op.name) {
                pairs.push((cost.operator_seconds(op), measured));
            }
        }
    }
    pairs
}

#[test]
fn uncalibrated_roofline_gemm_error_on_a100() {
    for (model_name, dir) in [("llama-2-7b", "meta-llama/Llama-2-7b-hf"), ("llama-2-70b", "meta-llama/Llama-2-70b-hf")]
    {
        let pairs = gemm_pairs(model_name, dir);
        assert!(pairs.len() > 500, "{model_name}: only {} measured GEMMs", pairs.len());
        let mape = median_absolute_percentage_error(&pairs);
        let bias = pairs.iter().map(|(p, m)| p / m).sum::<f64>() / pairs.len() as f64;
        eprintln!(
            "{model_name}: {} GEMM measurements (num_tokens ≥ 128, TP 1/2/4/8): median |error| {:.1}%, mean predicted/measured {:.3}",
            pairs.len(),
            mape * 100.0,
            bias
        );
        // Uncalibrated bound: within a factor that a roofline with datasheet peaks can claim.
        assert!(mape < 0.35, "{model_name}: median error {:.1}%", mape * 100.0);
    }
}
