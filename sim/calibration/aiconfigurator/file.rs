//! The measured-operator calibration file: AIConfigurator's tables of one system, framework
//! and framework version, reduced to latency grids, with where they came from and how well
//! they predict the measurements left out of them.
//!
//! This is the file format only (what `servesim calibrate --aiconfigurator` writes and the
//! catalog embeds); the lookup is `times`, the conversion `convert`.

use super::grid::GridFile;
use crate::input::YamlValue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A measured-operator calibration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredFile {
    /// Where the measurements come from: `aiconfigurator`.
    pub source: String,
    /// Version of the `aiconfigurator-core` package the tables were read from.
    pub aiconfigurator_version: String,
    /// Licence and copyright of the measurements.
    pub licence: String,
    /// AIConfigurator system name (e.g. `h100_sxm`).
    pub system: String,
    /// servesim device profile the measurements belong to.
    pub device: String,
    /// Serving framework whose kernels were timed (`trtllm`, `vllm`, `sglang`).
    pub framework: String,
    /// The framework version of the GEMM and attention tables.
    pub framework_version: String,
    /// The command that wrote the file (data path and output folder left out).
    pub generated_by: String,
    /// How the grids were chosen and which rows were held out of them.
    pub method: String,
    /// Each source table: file, rows, the collector's metadata.
    pub tables: BTreeMap<String, TableProvenance>,
    /// Error of the grids on the measured rows held out of them, per table.
    pub held_out_error: BTreeMap<String, HeldOutError>,
    /// GEMM latency grids (m × n × k) by AIConfigurator GEMM dtype.
    pub gemm: BTreeMap<String, GridFile>,
    /// Causal prefill attention (no cached prefix) grids.
    pub context_attention: Vec<AttentionGrid>,
    /// Decode attention (one query token per sequence) grids.
    pub generation_attention: Vec<AttentionGrid>,
    /// Single-node all-reduce of 16-bit buffers by device count.
    pub all_reduce: Vec<AllReduceGrid>,
}

/// One source table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableProvenance {
    /// Path relative to the system's data folder.
    pub file: String,
    /// Rows in the file.
    pub rows: usize,
    /// Rows kept (first measurement of each configuration, the configurations servesim
    /// models).
    pub rows_used: usize,
    /// Rows that made the grid cells.
    pub rows_in_grid: usize,
    /// The collector's `collection_meta.yaml` beside the file (comments dropped).
    pub collection_meta: YamlValue,
}

/// Absolute percentage errors (fractions) on held-out rows.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeldOutError {
    /// Rows held out.
    pub rows: usize,
    /// Median absolute percentage error.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
}

/// An attention grid and the configuration it was measured in.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionGrid {
    /// What attention computes in (`bfloat16`, `fp8`).
    pub attn_dtype: String,
    /// What the KV cache is stored in.
    pub kv_cache_dtype: String,
    /// Head dimension.
    pub head_dim: u64,
    /// Latencies.
    pub grid: GridFile,
}

/// An all-reduce grid.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllReduceGrid {
    /// Devices taking part.
    pub gpus: u64,
    /// Latencies against the per-device buffer in bytes.
    pub grid: GridFile,
}
