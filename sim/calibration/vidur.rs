//! Vidur's per-operator compute profiles (`data/profiling/compute/<gpu>/<model>/mlp.csv` in
//! Vidur, plain or gzipped): one row per (num_tokens, tensor-parallel degree) with
//! `time_stats.<op>.median` in ms.

use crate::error::{csv_error, read_text, Error, Location, Result};
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
    /// A one-layer model of this shape, enough to size its operators; an error (naming the
    /// Vidur column at fault) when the shape is not a model servesim can size.
    pub fn model(&self) -> Result<crate::model::ModelSpec, (String, String)> {
        let config = format!(
            r#"{{"model_type":"vidur","hidden_size":{},"num_hidden_layers":1,"num_attention_heads":{},"num_key_value_heads":{},"intermediate_size":{},"vocab_size":{},"hidden_act":"{}"}}"#,
            self.hidden_size,
            self.heads,
            self.kv_heads,
            self.intermediate_size,
            self.vocab_size,
            if self.gated_mlp { "silu" } else { "gelu" }
        );
        crate::model::ModelSpec::from_hf_config("vidur-profiled", "vidur row", &config).map_err(|error| {
            let (field, message) = match error {
                Error::Input { location, message } => (location.field.unwrap_or_default(), message),
                other => (String::new(), other.to_string()),
            };
            // The config fields this shape fills, by the Vidur columns they come from.
            let column = match field.as_str() {
                "num_attention_heads" => "n_head",
                "num_key_value_heads" => "n_kv_head",
                "hidden_size" | "head_dim" => "n_embd",
                "intermediate_size" => "n_expanded_embd",
                other => other,
            };
            (column.to_string(), message)
        })
    }
}

/// Most tokens of one profiled batch accepted (Vidur profiles up to a few thousand).
const MAX_PROFILED_TOKENS: u64 = 1 << 24;

/// Reads a Vidur compute profile (`.gz` files are decompressed).
pub fn read_vidur_compute(path: &Path) -> Result<Vec<VidurComputeRow>> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(&file, &e))?.clone();
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
    let mut models = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&file, &e))?;
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
        let at = |column: &str| Location { file: file.clone(), line: Some(line), field: Some(column.to_string()) };
        if let std::collections::btree_map::Entry::Vacant(entry) = models.entry(shape) {
            entry.insert(shape.model().map_err(|(column, message)| {
                Error::at(at(&column), format!("the profiled model's shape is not one servesim can size: {message}"))
            })?);
        }
        let whole = |name: &str, index: usize, max: u64| -> Result<u64> {
            let value = number(index, name)?;
            if value.fract() == 0.0 && (1.0..=max as f64).contains(&value) {
                Ok(value as u64)
            } else {
                Err(Error::at(at(name), format!("expected a whole number in 1..={max}, found {value}")))
            }
        };
        let num_tokens = whole("num_tokens", tokens_column, MAX_PROFILED_TOKENS)?;
        let tensor_parallel = whole("num_tensor_parallel_workers", tp_column, 1 << 12)?;
        crate::model::Parallelism::new(tensor_parallel, 1)
            .check(&models[&shape])
            .map_err(|(_, message)| Error::at(at("num_tensor_parallel_workers"), message))?;
        rows.push(VidurComputeRow { num_tokens, tensor_parallel, median_s, shape });
    }
    if rows.is_empty() {
        return Err(Error::at(
            Location { file, line: Some(1), field: None },
            "no measurements: the file has a header but no rows",
        ));
    }
    Ok(rows)
}
