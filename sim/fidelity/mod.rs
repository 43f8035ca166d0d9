//! End-to-end fidelity against published serving measurements, and the fits of serving-engine
//! constants to them: TensorRT-LLM 0.9's throughput tables (`trtllm`) and splitwise-sim's A100
//! prompt- and token-phase times (`splitwise`).
//!
//! Each check prices iterations with exactly the cost model runs use (`cluster::pool_cost_model`
//! on a scenario built for the configuration), so a figure here is a figure of the simulator.
//! Fits split the published rows in two fixed halves: constants are fitted on one and the
//! error is reported on the other. Nothing here runs during a simulation.

mod splitwise;
mod trtllm;

pub use splitwise::{
    fit_eager_engine, read_splitwise, splitwise_deployment, splitwise_errors, EagerConstants, SplitwiseConfig,
    SplitwiseErrors,
};
pub use trtllm::{
    fit_trtllm_engine, read_trtllm_table, trtllm_errors, EngineConstants, PublishedKind, PublishedRow, TableErrors,
};

use crate::cluster::pool_cost_model;
use crate::cost::RooflineCostModel;
use crate::error::Result;
use crate::hardware::Catalog;
use crate::input::YamlSource;
use crate::scenario::{Overrides, Scenario};
use std::path::PathBuf;

/// One replica's deployment to price: `model` on `tp` × `device` in `node`, served by
/// `engine`, at weight format `dtype` with the KV cache in `kv_dtype`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deployment {
    /// Bundled model.
    pub model: String,
    /// Bundled device.
    pub device: String,
    /// Bundled node holding it.
    pub node: String,
    /// Tensor-parallel degree.
    pub tp: u64,
    /// Engine profile.
    pub engine: String,
    /// Weight format.
    pub dtype: String,
    /// KV-cache dtype.
    pub kv_dtype: String,
    /// Calibration of the device's efficiency curves (bundled name), if any.
    pub calibration: Option<String>,
}

impl Deployment {
    /// The cost model runs would use for one replica of this deployment.
    pub fn cost_model(&self, catalog: &Catalog) -> Result<RooflineCostModel> {
        let text = format!(
            "model: {}
dtype: {}
kv_cache_dtype: {}
cluster:
  nodes:
    - node: {}
deployment:
  pools:
    - device: {}
      engine: {}
      tensor_parallel: {}
      memory_utilization: 0.95
      runtime_reserve_gib: 0.1
      scheduler: {{ max_num_seqs: 1, max_num_batched_tokens: 2048, max_model_len: 2048 }}
{}workload:
  synthetic:
    requests: 1
    arrival: {{ poisson: {{ rate_per_s: 1 }} }}
    input_tokens: {{ fixed: {{ value: 1 }} }}
    output_tokens: {{ fixed: {{ value: 1 }} }}
",
            self.model,
            self.dtype,
            self.kv_dtype,
            self.node,
            self.device,
            self.engine,
            self.tp,
            self.calibration.as_ref().map_or(String::new(), |c| format!("      calibration: {c}\n"))
        );
        let source = YamlSource::from_text("<fidelity deployment>", PathBuf::new(), text);
        let file = source.parse()?;
        let scenario = Scenario::from_parsed(file, &source, &Overrides::default(), None, catalog)?;
        let pool = &scenario.pools[0];
        Ok(pool_cost_model(pool, &pool.placements[0]))
    }
}

/// Median absolute percentage error (fraction) of (predicted, measured) pairs; NaN for none.
pub fn median_error(pairs: &[(f64, f64)]) -> f64 {
    crate::calibration::median_absolute_percentage_error(pairs)
}

/// Evenly spaced values from `lo` to `hi` by `step`, rounded to 4 decimals (so fitted
/// constants print as written in the profiles).
pub(crate) fn grid(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let count = ((hi - lo) / step).round() as usize;
    (0..=count).map(|i| ((lo + step * i as f64) * 1e4).round() / 1e4).collect()
}

/// Coordinate descent over grids: from `start`, tries every value of each coordinate in
/// `candidates` (set by `set`), keeps any that lowers `objective`, and repeats (at most four
/// rounds) until a round improves nothing. Deterministic: no random restarts.
pub(crate) fn coordinate_descent<C: Copy>(
    start: C,
    candidates: &[(usize, Vec<f64>)],
    set: impl Fn(&mut C, usize, f64),
    objective: impl Fn(&C) -> f64,
) -> C {
    let mut best = start;
    let mut best_objective = objective(&best);
    for _round in 0..4 {
        let before = best_objective;
        for (which, values) in candidates {
            for &value in values {
                let mut trial = best;
                set(&mut trial, *which, value);
                let score = objective(&trial);
                if score < best_objective - 1e-12 {
                    best = trial;
                    best_objective = score;
                }
            }
        }
        if best_objective >= before - 1e-9 {
            break;
        }
    }
    best
}
