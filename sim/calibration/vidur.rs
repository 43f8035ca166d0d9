//! Vidur's per-operator compute profiles (`profiling/vidur/compute/<gpu>/<model>/mlp.csv`):
//! one row per (num_tokens, tensor-parallel degree) with `time_stats.<op>.median` in ms.

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
}

/// Reads a Vidur compute profile.
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
        rows.push(VidurComputeRow {
            num_tokens: number(tokens_column, "num_tokens")? as u64,
            tensor_parallel: number(tp_column, "num_tensor_parallel_workers")? as u64,
            median_s,
        });
    }
    Ok(rows)
}
