//! splitwise-sim's A100 profile of Llama2-70B (`splitwise_perf_model_a100.csv`): measured
//! prompt-phase times (a batch of prompts in one step) and token-phase times (one decode step
//! of the batch) at TP 2, 4 and 8, against servesim with an engine profile (`eager-pytorch`:
//! the measurements come from an engine without CUDA graphs).
//!
//! Repeated runs of a configuration are reduced to their median; configurations are split by
//! their order (tp, prompt, batch, tokens): even positions fit, odd positions check.

use super::{grid, median_error, Deployment};
use crate::cost::{CostModel, RooflineCostModel};
use crate::error::{csv_error, read_text, Error, Location, Result};
use crate::hardware::Catalog;
use crate::model::BatchShape;
use std::collections::BTreeMap;
use std::path::Path;

/// One measured configuration (medians of its repeated runs).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitwiseConfig {
    /// Position among the configurations (even: fitting half, odd: checking half).
    pub index: usize,
    /// Tensor-parallel degree.
    pub tp: u64,
    /// Prompt tokens per request.
    pub prompt_tokens: u64,
    /// Requests in the batch.
    pub batch: u64,
    /// Output tokens per request (the token phase is measured at mid-generation).
    pub output_tokens: u64,
    /// Median prompt-phase time, s.
    pub prompt_s: f64,
    /// Median token-phase time (one decode step), s.
    pub token_s: f64,
}

impl SplitwiseConfig {
    /// Whether the configuration is in the fitting half.
    pub fn fits(&self) -> bool {
        self.index % 2 == 0
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Reads the Llama2-70B rows of splitwise-sim's A100 profile.
pub fn read_splitwise(path: &Path) -> Result<Vec<SplitwiseConfig>> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(&file, &e))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| Error::Input {
            location: Location { file: file.clone(), line: Some(1), field: Some(name.to_string()) },
            message: format!("the profile has no `{name}` column"),
        })
    };
    let columns = ["model", "tensor_parallel", "prompt_size", "batch_size", "token_size", "prompt_time", "token_time"]
        .map(column);
    let mut c = [0usize; 7];
    for (slot, found) in c.iter_mut().zip(columns) {
        *slot = found?;
    }
    type Runs = BTreeMap<(u64, u64, u64, u64), (Vec<f64>, Vec<f64>)>;
    let mut runs: Runs = BTreeMap::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(&file, &e))?;
        if record.get(c[0]) != Some("llama2-70b") {
            continue;
        }
        let number = |i: usize| -> Result<f64> {
            let text = record.get(c[i]).unwrap_or("");
            text.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0).ok_or_else(|| Error::Input {
                location: Location {
                    file: file.clone(),
                    line: Some(line + 2),
                    field: Some(headers.get(c[i]).unwrap_or("").to_string()),
                },
                message: format!("expected a positive number, found {text:?}"),
            })
        };
        let key = (number(1)? as u64, number(2)? as u64, number(3)? as u64, number(4)? as u64);
        let entry = runs.entry(key).or_default();
        entry.0.push(number(5)? * 1e-3);
        entry.1.push(number(6)? * 1e-3);
    }
    Ok(runs
        .into_iter()
        .enumerate()
        .map(|(index, ((tp, prompt_tokens, batch, output_tokens), (prompt, token)))| SplitwiseConfig {
            index,
            tp,
            prompt_tokens,
            batch,
            output_tokens,
            prompt_s: median(prompt),
            token_s: median(token),
        })
        .collect())
}

/// Errors of a set of configurations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SplitwiseErrors {
    /// Median |error| of the prompt phase, with the count.
    pub prompt: (usize, f64),
    /// Median |error| of the token phase, with the count.
    pub token: (usize, f64),
    /// (tp, prompt, batch, predicted prompt s, measured, predicted token s, measured).
    pub rows: Vec<(u64, u64, u64, f64, f64, f64, f64)>,
}

/// The deployment splitwise measured, served by `engine` with the A100 calibration.
pub fn splitwise_deployment(tp: u64, engine: &str) -> Deployment {
    Deployment {
        model: "llama-2-70b".into(),
        device: "a100-sxm-80gb".into(),
        node: "dgx-a100".into(),
        tp,
        engine: engine.into(),
        dtype: "fp16".into(),
        kv_dtype: "fp16".into(),
        calibration: Some("a100-sxm-80gb".into()),
    }
}

fn phases(cost: &mut RooflineCostModel, config: &SplitwiseConfig) -> (f64, f64) {
    let mut prompt = BatchShape::default();
    for _ in 0..config.batch {
        prompt.add_prefill_chunk(0, config.prompt_tokens, true);
    }
    let mut token = BatchShape::default();
    for _ in 0..config.batch {
        token.add_decode(config.prompt_tokens + config.output_tokens / 2);
    }
    let seconds = |shape: &BatchShape, cost: &mut RooflineCostModel| cost.iteration(shape).duration_ns as f64 * 1e-9;
    (seconds(&prompt, cost), seconds(&token, cost))
}

/// Errors of `configs` priced by `engine` as runs price them, each deployment's cost model
/// passed through `adjust` first (identity for the bundled profile).
pub fn splitwise_errors(
    configs: &[&SplitwiseConfig],
    engine: &str,
    catalog: &Catalog,
    adjust: &dyn Fn(RooflineCostModel) -> RooflineCostModel,
) -> Result<SplitwiseErrors> {
    let mut models: BTreeMap<u64, RooflineCostModel> = BTreeMap::new();
    let mut prompt_pairs = Vec::new();
    let mut token_pairs = Vec::new();
    let mut rows = Vec::new();
    for config in configs {
        if let std::collections::btree_map::Entry::Vacant(slot) = models.entry(config.tp) {
            slot.insert(adjust(splitwise_deployment(config.tp, engine).cost_model(catalog)?));
        }
        let (prompt_s, token_s) = phases(models.get_mut(&config.tp).expect("inserted"), config);
        prompt_pairs.push((prompt_s, config.prompt_s));
        token_pairs.push((token_s, config.token_s));
        rows.push((config.tp, config.prompt_tokens, config.batch, prompt_s, config.prompt_s, token_s, config.token_s));
    }
    Ok(SplitwiseErrors {
        prompt: (prompt_pairs.len(), median_error(&prompt_pairs)),
        token: (token_pairs.len(), median_error(&token_pairs)),
        rows,
    })
}

/// The eager engine's constants fitted to splitwise's measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EagerConstants {
    /// Host cost of launching one kernel, µs.
    pub kernel_launch_us: f64,
    /// Host time per step, µs.
    pub step_us: f64,
    /// The engine's kernels against servesim's operator prices.
    pub scale: crate::cost::KernelScale,
}

impl EagerConstants {
    /// `cost` with these constants in place of its engine's.
    pub fn apply(&self, cost: RooflineCostModel) -> RooflineCostModel {
        let mut host = cost.host().clone();
        host.kernel_launch_s = self.kernel_launch_us * 1e-6;
        host.step_s = self.step_us * 1e-6;
        cost.with_host(host).with_kernel_scale(self.scale)
    }
}

/// Fits the eager engine's launch cost, step overhead and kernel factors to the fitting half
/// of `configs` by coordinate descent over fixed grids from `start`; returns them and the
/// fitting half's errors.
pub fn fit_eager_engine(
    configs: &[SplitwiseConfig],
    engine: &str,
    catalog: &Catalog,
    start: EagerConstants,
) -> Result<(EagerConstants, SplitwiseErrors)> {
    let fitting: Vec<&SplitwiseConfig> = configs.iter().filter(|c| c.fits()).collect();
    let mut base: BTreeMap<u64, RooflineCostModel> = BTreeMap::new();
    for config in &fitting {
        if let std::collections::btree_map::Entry::Vacant(slot) = base.entry(config.tp) {
            slot.insert(splitwise_deployment(config.tp, engine).cost_model(catalog)?);
        }
    }
    let evaluate = |constants: &EagerConstants| -> SplitwiseErrors {
        let mut prompt_pairs = Vec::new();
        let mut token_pairs = Vec::new();
        let mut models: BTreeMap<u64, RooflineCostModel> =
            base.iter().map(|(&tp, cost)| (tp, constants.apply(cost.clone()))).collect();
        for config in &fitting {
            let (prompt_s, token_s) = phases(models.get_mut(&config.tp).expect("built"), config);
            prompt_pairs.push((prompt_s, config.prompt_s));
            token_pairs.push((token_s, config.token_s));
        }
        SplitwiseErrors {
            prompt: (prompt_pairs.len(), median_error(&prompt_pairs)),
            token: (token_pairs.len(), median_error(&token_pairs)),
            rows: Vec::new(),
        }
    };
    let objective = |e: &SplitwiseErrors| e.prompt.1 + e.token.1;
    let candidates: [(usize, Vec<f64>); 5] = [
        (0, grid(0.0, 80.0, 1.0)),
        (1, grid(0.0, 5000.0, 100.0)),
        (2, grid(0.5, 3.0, 0.02)),
        (3, grid(0.5, 3.0, 0.05)),
        (4, grid(0.5, 5.0, 0.05)),
    ];
    let set = |c: &mut EagerConstants, which: usize, value: f64| match which {
        0 => c.kernel_launch_us = value,
        1 => c.step_us = value,
        2 => c.scale.gemm = value,
        3 => c.scale.attention_prefill = value,
        _ => c.scale.all_reduce = value,
    };
    let best = super::coordinate_descent(start, &candidates, set, |c| objective(&evaluate(c)));
    let errors = evaluate(&best);
    Ok((best, errors))
}
