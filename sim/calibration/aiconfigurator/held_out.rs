//! Measured rows held out of the grids, and the error of a cost model on them: each row is
//! turned into the servesim operator it times (with the FLOPs and bytes servesim's operator
//! plan would give it), priced, and compared with the measurement.
//!
//! For conversion (the errors recorded in a calibration file) and the held-out test (measured
//! tables against the roofline); not used during simulation. The CSV form is what
//! `tests/data/aiconfigurator/` ships, so that the test needs no Parquet files.

use super::times::{AttentionDtype, GemmDtype};
use crate::cost::MeasuredContext;
use crate::error::{csv_error, Error, Location, Result};
use crate::hardware::Dtype;
use crate::model::{AttentionHeads, OpKind, OpShape, Operator, Precision, WeightFormat};
use std::collections::BTreeMap;

/// One measured row (fields a table does not have are 0 or empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeldOutRow {
    /// `gemm`, `context_attention`, `generation_attention` or `all_reduce`.
    pub table: String,
    /// GEMM dtype, or attention dtype.
    pub dtype: String,
    /// KV-cache dtype (attention).
    pub kv_dtype: String,
    /// Head dimension (attention).
    pub head_dim: u64,
    /// Sequences (attention).
    pub batch: u64,
    /// Prompt tokens (context) or KV tokens (generation).
    pub tokens: u64,
    /// Query heads (attention).
    pub heads: u64,
    /// KV heads (attention).
    pub kv_heads: u64,
    /// GEMM rows (tokens).
    pub m: u64,
    /// GEMM outputs.
    pub n: u64,
    /// GEMM inputs.
    pub k: u64,
    /// Devices (all-reduce).
    pub gpus: u64,
    /// Per-device buffer (all-reduce), bytes.
    pub message_bytes: u64,
    /// Measured latency, s.
    pub latency_s: f64,
}

const HEADER: [&str; 14] = [
    "table",
    "dtype",
    "kv_dtype",
    "head_dim",
    "batch",
    "tokens",
    "heads",
    "kv_heads",
    "m",
    "n",
    "k",
    "gpus",
    "message_bytes",
    "latency_ms",
];

impl HeldOutRow {
    /// A key that orders rows by table and shape.
    pub fn sort_key(&self) -> (&str, &str, &str, [u64; 11]) {
        (
            &self.table,
            &self.dtype,
            &self.kv_dtype,
            [
                self.head_dim,
                self.gpus,
                self.heads,
                self.kv_heads,
                self.batch,
                self.tokens,
                self.m,
                self.n,
                self.k,
                self.message_bytes,
                self.latency_s.to_bits(),
            ],
        )
    }

    /// The error group the row belongs to (`gemm.<dtype>` or the table).
    pub fn group(&self) -> String {
        if self.table == "gemm" {
            format!("gemm.{}", self.dtype)
        } else {
            self.table.clone()
        }
    }

    /// The operator the row times and the context it ran in; `None` for a dtype servesim has
    /// no format for.
    pub fn operator(&self) -> Option<(Operator, MeasuredContext)> {
        let context = |precision| MeasuredContext { precision, tensor_parallel: 1, single_node: true };
        match self.table.as_str() {
            "gemm" => {
                let weights = match GemmDtype::parse(&self.dtype)? {
                    GemmDtype::Bfloat16 => WeightFormat::Bf16,
                    GemmDtype::Fp8 => WeightFormat::Fp8,
                    GemmDtype::Fp8Block => WeightFormat::Fp8Block,
                    GemmDtype::Nvfp4 => WeightFormat::Nvfp4,
                    GemmDtype::Int4WeightOnly => WeightFormat::Int4Awq,
                    GemmDtype::SmoothQuant => WeightFormat::Int8,
                    GemmDtype::Int8WeightOnly => return None,
                };
                let precision = Precision::resolve(weights, Dtype::Bf16, Dtype::Bf16, &|_| true);
                let (m, n, k) = (self.m as f64, self.n as f64, self.k as f64);
                // As servesim's operator plan sizes a GEMM (sim/model/ops.rs).
                let op = Operator {
                    name: "gemm",
                    kind: OpKind::Gemm,
                    flops: 2.0 * m * n * k,
                    bytes: n * k * weights.bytes_per_param() + m * (k + n) * precision.activation_bytes(),
                    repeat: 1,
                    dequant_ops: if weights.dequantized() { n * k * (m / 64.0).ceil() * 4.0 } else { 0.0 },
                    shape: OpShape::Gemm { m: self.m, n: self.n, k: self.k },
                    ..Operator::default()
                };
                Some((op, context(precision)))
            }
            "context_attention" | "generation_attention" => {
                let dtype = |name: &str| match AttentionDtype::parse(name)? {
                    AttentionDtype::Bfloat16 => Some(Dtype::Bf16),
                    AttentionDtype::Fp8 => Some(Dtype::Fp8),
                };
                let attention = dtype(&self.dtype)?;
                let kv = dtype(&self.kv_dtype)?;
                let precision = Precision { weights: WeightFormat::Bf16, gemm: Dtype::Bf16, kv, attention };
                let heads =
                    AttentionHeads { query: self.heads, kv: self.kv_heads, head_dim: self.head_dim, latent: false };
                let (b, s) = (self.batch as f64, self.tokens as f64);
                let head_flops = 2.0 * self.heads as f64 * 2.0 * self.head_dim as f64;
                let q_bytes = self.heads as f64 * 2.0 * self.head_dim as f64 * 2.0;
                let kv_token_bytes = 2.0 * self.kv_heads as f64 * self.head_dim as f64 * kv.bytes();
                let op = if self.table == "context_attention" {
                    let pairs = b * s * (s + 1.0) / 2.0;
                    Operator {
                        name: "attn_prefill",
                        kind: OpKind::Attention,
                        flops: head_flops * pairs,
                        bytes: b * s * (q_bytes + kv_token_bytes),
                        repeat: 1,
                        keys_per_query: pairs / (b * s),
                        shape: OpShape::PrefillAttention {
                            sequences: self.batch,
                            query_tokens: s,
                            kv_tokens: s,
                            heads,
                        },
                        ..Operator::default()
                    }
                } else {
                    Operator {
                        name: "attn_decode",
                        kind: OpKind::Attention,
                        flops: head_flops * b * s,
                        bytes: b * q_bytes + (b * s + b) * kv_token_bytes,
                        repeat: 1,
                        keys_per_query: s,
                        shape: OpShape::DecodeAttention { sequences: self.batch, kv_tokens: s, heads },
                        ..Operator::default()
                    }
                };
                Some((op, context(precision)))
            }
            "all_reduce" => {
                let bytes = self.message_bytes as f64;
                let op = Operator {
                    name: "all_reduce",
                    kind: OpKind::AllReduce,
                    bytes,
                    repeat: 1,
                    shape: OpShape::AllReduce { bytes },
                    ..Operator::default()
                };
                let precision = Precision::sixteen_bit(Dtype::Bf16);
                Some((op, MeasuredContext { precision, tensor_parallel: self.gpus, single_node: true }))
            }
            _ => None,
        }
    }
}

/// Absolute percentage errors of one group of rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorSummary {
    /// Rows priced.
    pub rows: usize,
    /// Rows the model declined.
    pub declined: usize,
    /// Median (fraction).
    pub median: f64,
    /// 90th percentile (fraction).
    pub p90: f64,
}

/// The `q`-quantile of sorted values (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Errors of `predict` on `rows`, per group (`gemm.<dtype>`, `context_attention`,
/// `generation_attention`, `all_reduce`).
pub fn held_out_errors(
    rows: &[HeldOutRow],
    predict: &dyn Fn(&Operator, &MeasuredContext) -> Option<f64>,
) -> BTreeMap<String, ErrorSummary> {
    let mut errors: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    for row in rows {
        let entry = errors.entry(row.group()).or_default();
        match row.operator().and_then(|(op, context)| predict(&op, &context)) {
            Some(predicted) => entry.0.push((predicted / row.latency_s - 1.0).abs()),
            None => entry.1 += 1,
        }
    }
    errors
        .into_iter()
        .map(|(group, (mut e, declined))| {
            e.sort_by(f64::total_cmp);
            let summary = ErrorSummary {
                rows: e.len(),
                declined,
                median: if e.is_empty() { f64::NAN } else { (e[(e.len() - 1) / 2] + e[e.len() / 2]) / 2.0 },
                p90: quantile(&e, 0.9),
            };
            (group, summary)
        })
        .collect()
}

/// Writes rows as CSV (gzipped when `path` ends in `.gz`).
pub fn write_held_out(path: &std::path::Path, rows: &[HeldOutRow]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let io = |e: std::io::Error| Error::io(path, "cannot write the held-out rows", e);
    writer.write_record(HEADER).map_err(|e| io(e.into()))?;
    for r in rows {
        let numbers = [r.head_dim, r.batch, r.tokens, r.heads, r.kv_heads, r.m, r.n, r.k, r.gpus, r.message_bytes];
        let mut record = vec![r.table.clone(), r.dtype.clone(), r.kv_dtype.clone()];
        record.extend(numbers.iter().map(u64::to_string));
        record.push(format!("{}", r.latency_s * 1e3));
        writer.write_record(&record).map_err(|e| io(e.into()))?;
    }
    let bytes = writer.into_inner().map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        use std::io::Write;
        // A fixed header (no name, no time) keeps the file byte-for-byte reproducible.
        let mut encoder = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
        encoder.write_all(&bytes).map_err(io)?;
        encoder.finish().map_err(io)?
    } else {
        bytes
    };
    std::fs::write(path, bytes).map_err(io)
}

/// Reads rows written by [`write_held_out`] (plain or gzipped).
pub fn read_held_out(path: &std::path::Path) -> Result<Vec<HeldOutRow>> {
    let text = crate::error::read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(&file, &e))?.clone();
    if headers.iter().ne(HEADER) {
        return Err(Error::at(
            Location { file, line: Some(1), field: None },
            format!("expected the columns {}", HEADER.join(",")),
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&file, &e))?;
        let line = record.position().map_or(0, |p| p.line()) as usize;
        let at = |column: &str, message: String| {
            Error::at(Location { file: file.clone(), line: Some(line), field: Some(column.to_string()) }, message)
        };
        let text = |i: usize| record.get(i).unwrap_or("").to_string();
        let mut numbers = [0u64; 10];
        for (j, value) in numbers.iter_mut().enumerate() {
            let raw = record.get(3 + j).unwrap_or("");
            *value = raw.parse().map_err(|_| at(HEADER[3 + j], format!("{raw:?} is not a whole number")))?;
        }
        let raw = record.get(13).unwrap_or("");
        let latency_ms: f64 = raw.parse().map_err(|_| at("latency_ms", format!("{raw:?} is not a number")))?;
        if !(latency_ms.is_finite() && latency_ms > 0.0) {
            return Err(at("latency_ms", format!("{latency_ms} is not a finite positive number")));
        }
        let [head_dim, batch, tokens, heads, kv_heads, m, n, k, gpus, message_bytes] = numbers;
        rows.push(HeldOutRow {
            table: text(0),
            dtype: text(1),
            kv_dtype: text(2),
            head_dim,
            batch,
            tokens,
            heads,
            kv_heads,
            m,
            n,
            k,
            gpus,
            message_bytes,
            latency_s: latency_ms * 1e-3,
        });
    }
    Ok(rows)
}
