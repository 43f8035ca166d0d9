//! Vidur's per-operator compute profiles (`data/profiling/compute/<gpu>/<model>/mlp.csv` in
//! Vidur, plain or gzipped): one row per (num_tokens, tensor-parallel degree) with
//! `time_stats.<op>.median` in ms.

use crate::error::{read_text, Error, Location, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// One measured configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct VidurComputeRow {
    /// Tokens in the batch.
    pub num_tokens: u64,
    /// Tensor-parallel degree.
    pub tensor_parallel: u64,
    /// Operator name → median time, seconds.
    pub median_s: BTreeMap<String, f64>,
    /// The profiled model's shape (whole model, before tensor parallelism).
    pub shape: VidurModelShape,
}

/// Model dimensions recorded in each Vidur row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VidurModelShape {
    /// Query heads.
    pub heads: u64,
    /// Key/value heads.
    pub kv_heads: u64,
    /// Hidden size.
    pub hidden_size: u64,
    /// MLP intermediate size.
    pub intermediate_size: u64,
    /// Vocabulary.
    pub vocab_size: u64,
    /// SwiGLU-style gated MLP.
    pub gated_mlp: bool,
}

impl VidurModelShape {
    /// A one-layer model of this shape, enough to size its operators.
    pub fn model(&self) -> crate::model::ModelSpec {
        let config = format!(
            r#"{{"model_type":"vidur","hidden_size":{},"num_hidden_layers":1,"num_attention_heads":{},"num_key_value_heads":{},"intermediate_size":{},"vocab_size":{},"hidden_act":"{}"}}"#,
            self.hidden_size,
            self.heads,
            self.kv_heads,
            self.intermediate_size,
            self.vocab_size,
            if self.gated_mlp { "silu" } else { "gelu" }
        );
        crate::model::ModelSpec::from_hf_config("vidur-profiled", "vidur row", &config)
            .expect("profiled shapes are valid")
    }
}

/// Reads a Vidur compute profile (`.gz` files are decompressed).
pub fn read_vidur_compute(path: &Path) -> Result<Vec<VidurComputeRow>> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| Error::in_file(&file, format!("cannot read the header: {e}")))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::at(Location { file: file.clone(), line: Some(1), field: Some(name.into()) }, "column missing")
        })
    };
    let tokens_column = column("num_tokens")?;
    let tp_column = column("num_tensor_parallel_workers")?;
    let shape_columns =
        [column("n_head")?, column("n_kv_head")?, column("n_embd")?, column("n_expanded_embd")?, column("vocab_size")?];
    let gated_column = column("use_gated_mlp")?;
    let medians: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            h.strip_prefix("time_stats.").and_then(|rest| rest.strip_suffix(".median")).map(|op| (i, op.to_string()))
        })
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::in_file(&file, format!("malformed row: {e}")))?;
        let line = record.position().map_or(0, |p| p.line()) as usize;
        let number = |index: usize, name: &str| -> Result<f64> {
            record.get(index).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite()).ok_or_else(|| {
                Error::at(Location { file: file.clone(), line: Some(line), field: Some(name.into()) }, "not a number")
            })
        };
        let mut median_s = BTreeMap::new();
        for (index, op) in &medians {
            if let Some(value) = record.get(*index).and_then(|v| v.parse::<f64>().ok()) {
                median_s.insert(op.clone(), value * 1e-3);
            }
        }
        let dims: Vec<u64> = shape_columns
            .iter()
            .map(|&c| number(c, headers.get(c).unwrap_or("dimension")).map(|v| v as u64))
            .collect::<Result<_>>()?;
        let shape = VidurModelShape {
            heads: dims[0],
            kv_heads: dims[1],
            hidden_size: dims[2],
            intermediate_size: dims[3],
            vocab_size: dims[4],
            gated_mlp: record.get(gated_column).is_some_and(|v| v.eq_ignore_ascii_case("true")),
        };
        if shape.heads == 0 || shape.kv_heads == 0 || shape.heads % shape.kv_heads != 0 || shape.hidden_size == 0 {
            return Err(Error::at(
                Location { file: file.clone(), line: Some(line), field: Some("n_head".into()) },
                "inconsistent model shape",
            ));
        }
        rows.push(VidurComputeRow {
            num_tokens: number(tokens_column, "num_tokens")? as u64,
            tensor_parallel: number(tp_column, "num_tensor_parallel_workers")? as u64,
            median_s,
            shape,
        });
    }
    Ok(rows)
}
