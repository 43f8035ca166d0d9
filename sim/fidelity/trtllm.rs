//! TensorRT-LLM 0.9's published performance tables (`trtllm_v0.9_perf.csv`): throughput per
//! GPU of static batches (gptSessionBenchmark: one context step for the batch, then decode
//! steps) and batch-1 first-token latency, against servesim with the `trtllm` engine profile.
//!
//! The rows servesim can price (models and GPUs it bundles) are split in two halves that each
//! hold every kind of configuration: the file lists, per (model, GPU) block, the same six
//! configurations (four throughput shapes, two first-token lengths); row p of block b fits
//! when b + p is even and checks otherwise, so each configuration fits in half the blocks and
//! checks in the other half.

use super::{grid, median_error, Deployment};
use crate::cost::{CostModel, KernelScale, RooflineCostModel};
use crate::error::{csv_error, read_text, Error, Result};
use crate::hardware::Catalog;
use crate::model::BatchShape;
use std::collections::BTreeMap;
use std::path::Path;

/// What a published row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishedKind {
    /// Output tokens per second per GPU of a static batch.
    ThroughputPerGpu,
    /// First-token latency at batch 1, ms.
    FirstTokenMs,
}

/// One published configuration servesim can price.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    /// Position among the kept rows.
    pub index: usize,
    /// Block number (one per published model and GPU, in file order) plus position in the
    /// block: even fits, odd checks.
    pub split_key: usize,
    /// Model, GPU, precision, TP, batch and lengths, for printing.
    pub label: String,
    /// The GPU name as published.
    pub gpu: String,
    /// What servesim deploys for it.
    pub deployment: Deployment,
    /// Sequences in the batch.
    pub batch: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// What is measured.
    pub kind: PublishedKind,
    /// The published value.
    pub value: f64,
}

impl PublishedRow {
    /// Whether the row is in the fitting half.
    pub fn fits(&self) -> bool {
        self.split_key % 2 == 0
    }
}

/// The bundled model of a published model name.
fn model_of(name: &str) -> Option<&'static str> {
    match name {
        "LLaMA 7B" => Some("llama-2-7b"),
        "LLaMA 70B" => Some("llama-2-70b"),
        "Mistral 7B" => Some("mistral-7b"),
        "Mixtral 8x7B" => Some("mixtral-8x7b"),
        _ => None,
    }
}

/// The bundled device and node of a published GPU name.
fn device_of(gpu: &str) -> Option<(&'static str, &'static str)> {
    match gpu {
        "A100" => Some(("a100-sxm-80gb", "dgx-a100")),
        "H100" => Some(("h100-sxm", "dgx-h100")),
        "H200" => Some(("h200", "hgx-h200")),
        "L40S" => Some(("l40s", "l40s-server")),
        _ => None,
    }
}

/// Reads the published table, keeping the rows of bundled models and GPUs (GPT-J 6B and
/// Falcon 180B have no bundled config); `engine` serves them.
pub fn read_trtllm_table(path: &Path, engine: &str) -> Result<Vec<PublishedRow>> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(&file, &e))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| Error::Input {
            location: crate::error::Location { file: file.clone(), line: Some(1), field: Some(name.to_string()) },
            message: format!("the table has no `{name}` column"),
        })
    };
    let [model_c, gpu_c, precision_c, tp_c, batch_c, isl_c, osl_c, metric_c, value_c] =
        ["model", "gpu", "precision", "tp", "batch_size", "isl", "osl", "metric", "value"].map(column);
    let (model_c, gpu_c, precision_c, tp_c, batch_c, isl_c, osl_c, metric_c, value_c) =
        (model_c?, gpu_c?, precision_c?, tp_c?, batch_c?, isl_c?, osl_c?, metric_c?, value_c?);
    let mut rows = Vec::new();
    let mut block: Option<(String, String)> = None;
    let (mut block_number, mut position) = (0usize, 0usize);
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_error(&file, &e))?;
        let field = |c: usize| record.get(c).unwrap_or("");
        let number = |c: usize| -> Result<f64> {
            field(c).parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0).ok_or_else(|| Error::Input {
                location: crate::error::Location {
                    file: file.clone(),
                    line: Some(line + 2),
                    field: Some(headers.get(c).unwrap_or("").to_string()),
                },
                message: format!("expected a positive number, found {:?}", field(c)),
            })
        };
        let (Some(model), Some((device, node))) = (model_of(field(model_c)), device_of(field(gpu_c))) else {
            continue;
        };
        let kind = match field(metric_c) {
            "output_tok_per_s_per_gpu" => PublishedKind::ThroughputPerGpu,
            "first_token_latency_ms_bs1" => PublishedKind::FirstTokenMs,
            _ => continue,
        };
        let block_name = (field(model_c).to_string(), field(gpu_c).to_string());
        if block.as_ref() != Some(&block_name) {
            if block.is_some() {
                block_number += 1;
            }
            block = Some(block_name);
            position = 0;
        }
        let split_key = block_number + position;
        position += 1;
        // TensorRT-LLM's FP8 results quantise the KV cache too.
        let (dtype, kv_dtype) = if field(precision_c) == "FP8" { ("fp8", "fp8") } else { ("fp16", "fp16") };
        let tp = number(tp_c)? as u64;
        let (batch, isl, osl) = (number(batch_c)? as u64, number(isl_c)? as u64, number(osl_c)? as u64);
        rows.push(PublishedRow {
            index: rows.len(),
            split_key,
            label: format!(
                "{:<12} {:<5} {:<4} TP{tp} batch {batch:>4} {isl:>5}/{osl:<5}",
                field(model_c),
                field(gpu_c),
                field(precision_c)
            ),
            gpu: field(gpu_c).to_string(),
            deployment: Deployment {
                model: model.into(),
                device: device.into(),
                node: node.into(),
                tp,
                engine: engine.into(),
                dtype: dtype.into(),
                kv_dtype: kv_dtype.into(),
                calibration: None,
            },
            batch,
            input_tokens: isl,
            output_tokens: osl,
            kind,
            value: number(value_c)?,
        });
    }
    Ok(rows)
}

/// The engine constants fitted to the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConstants {
    /// Host time per step, µs.
    pub step_us: f64,
    /// Host time per sequence per step, µs.
    pub per_sequence_us: f64,
    /// This engine version's kernels against servesim's operator prices.
    pub scale: KernelScale,
    /// Share of decode KV re-reads for sliding-window models.
    pub reread_fraction: f64,
}

/// Errors of one half of the table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableErrors {
    /// Median |error| of throughput per GPU, by GPU and "all", with row counts.
    pub throughput: BTreeMap<String, (usize, f64)>,
    /// Median |error| of batch-1 first-token latency, with the row count.
    pub first_token: (usize, f64),
    /// (label, predicted, published) of every row.
    pub rows: Vec<(String, f64, f64)>,
}

impl TableErrors {
    /// The fitting objective: overall throughput and first-token errors, plus the worst GPU.
    fn objective(&self) -> f64 {
        let worst = self.throughput.values().map(|e| e.1).fold(0.0, f64::max);
        self.throughput.get("all").map_or(1.0, |e| e.1) + self.first_token.1 + 0.5 * worst
    }
}

/// The value `cost` predicts for `row`.
fn predict(cost: &mut RooflineCostModel, row: &PublishedRow) -> f64 {
    match row.kind {
        PublishedKind::ThroughputPerGpu => {
            let seconds =
                crate::calibration::static_batch_seconds(cost, row.batch, row.input_tokens, row.output_tokens);
            (row.batch * row.output_tokens) as f64 / seconds / row.deployment.tp as f64
        }
        PublishedKind::FirstTokenMs => {
            let mut shape = BatchShape::default();
            shape.add_prefill_chunk(0, row.input_tokens, true);
            cost.iteration(&shape).duration_ns as f64 * 1e-6
        }
    }
}

/// The cost models of `rows` (one per distinct deployment).
fn cost_models(rows: &[&PublishedRow], catalog: &Catalog) -> Result<BTreeMap<Deployment, RooflineCostModel>> {
    let mut models = BTreeMap::new();
    for row in rows {
        if !models.contains_key(&row.deployment) {
            models.insert(row.deployment.clone(), row.deployment.cost_model(catalog)?);
        }
    }
    Ok(models)
}

fn errors_with(
    rows: &[&PublishedRow],
    models: &BTreeMap<Deployment, RooflineCostModel>,
    constants: Option<&EngineConstants>,
) -> TableErrors {
    let mut throughput: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut first_token = Vec::new();
    let mut labels = Vec::new();
    for row in rows {
        let mut cost = models[&row.deployment].clone();
        if let Some(c) = constants {
            let mut host = cost.host().clone();
            host.step_s = c.step_us * 1e-6;
            host.per_sequence_s = c.per_sequence_us * 1e-6;
            cost = cost.with_host(host).with_kernel_scale(c.scale);
            if cost.kv_reread_fraction() > 0.0 {
                cost = cost.with_kv_rereads(c.reread_fraction);
            }
        }
        let predicted = predict(&mut cost, row);
        labels.push((row.label.clone(), predicted, row.value));
        match row.kind {
            PublishedKind::ThroughputPerGpu => {
                throughput.entry(row.gpu.clone()).or_default().push((predicted, row.value));
                throughput.entry("all".into()).or_default().push((predicted, row.value));
            }
            PublishedKind::FirstTokenMs => first_token.push((predicted, row.value)),
        }
    }
    TableErrors {
        throughput: throughput.into_iter().map(|(gpu, pairs)| (gpu, (pairs.len(), median_error(&pairs)))).collect(),
        first_token: (first_token.len(), median_error(&first_token)),
        rows: labels,
    }
}

/// Errors of `rows` priced as runs price them: the engine profile as bundled, or with
/// `constants` in place of its host and kernel figures.
pub fn trtllm_errors(
    rows: &[&PublishedRow],
    catalog: &Catalog,
    constants: Option<&EngineConstants>,
) -> Result<TableErrors> {
    let models = cost_models(rows, catalog)?;
    Ok(errors_with(rows, &models, constants))
}

/// Fits the engine's host constants and measured-time factors to the fitting half of `rows`
/// by coordinate descent over fixed candidate grids (deterministic), starting from
/// `start`; returns the constants and the fitting half's errors.
pub fn fit_trtllm_engine(
    rows: &[PublishedRow],
    catalog: &Catalog,
    start: EngineConstants,
) -> Result<(EngineConstants, TableErrors)> {
    let fitting: Vec<&PublishedRow> = rows.iter().filter(|r| r.fits()).collect();
    let models = cost_models(&fitting, catalog)?;
    let candidates: [(usize, Vec<f64>); 9] = [
        (0, grid(0.0, 400.0, 10.0)),
        (1, grid(0.0, 5.0, 0.25)),
        (2, grid(0.5, 1.6, 0.02)),
        (3, grid(0.5, 2.0, 0.02)),
        (4, grid(0.5, 2.0, 0.02)),
        (5, grid(0.3, 3.0, 0.05)),
        (6, grid(0.5, 3.0, 0.05)),
        (7, grid(0.5, 2.0, 0.05)),
        (8, grid(0.05, 1.0, 0.05)),
    ];
    let set = |c: &mut EngineConstants, which: usize, value: f64| match which {
        0 => c.step_us = value,
        1 => c.per_sequence_us = value,
        2 => c.scale.gemm = value,
        3 => c.scale.attention_prefill = value,
        4 => c.scale.attention_decode = value,
        5 => c.scale.experts_few_tokens = value,
        6 => c.scale.experts_many_tokens = value,
        7 => c.scale.all_reduce = value,
        _ => c.reread_fraction = value,
    };
    let best =
        super::coordinate_descent(start, &candidates, set, |c| errors_with(&fitting, &models, Some(c)).objective());
    let errors = errors_with(&fitting, &models, Some(&best));
    Ok((best, errors))
}
