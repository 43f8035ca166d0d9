//! Fitting efficiency curves to measured operator times.
//!
//! For every measurement the "implied efficiency" is the one that would make the roofline
//! reproduce it exactly: FLOPs / (peak × (time − kernel overhead)) for GEMMs, bytes /
//! (bandwidth × (time − overhead)) for bandwidth-bound operators. Implied efficiencies are
//! grouped in half-octave bins of size (FLOPs for GEMMs, bytes per operator name otherwise) and
//! each bin's median becomes a knot of a piecewise-linear curve. The kernel overhead is the
//! candidate (0–10 µs) with the smallest median error over the fitting data.

use super::{median_absolute_percentage_error, VidurComputeRow, VidurModelShape};
use crate::cost::{Curve, FittedEfficiency, RooflineCostModel};
use crate::hardware::{DeviceProfile, Dtype};
use crate::model::{BatchShape, OpKind, Precision};
use crate::scenario::ParallelComm;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One measured operator with its sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorSample {
    /// Vidur operator name.
    pub name: &'static str,
    /// GEMM or bandwidth-bound.
    pub kind: OpKind,
    /// FLOPs per device.
    pub flops: f64,
    /// Bytes per device.
    pub bytes: f64,
    /// Measured median, s.
    pub measured_s: f64,
    /// Tokens in the batch.
    pub tokens: u64,
    /// Tensor-parallel degree.
    pub tensor_parallel: u64,
}

/// Turns Vidur rows into samples of the operators servesim models (attention is not in
/// these tables).
pub fn operator_samples(rows: &[VidurComputeRow]) -> Vec<OperatorSample> {
    let mut samples = Vec::new();
    // Shapes repeat across rows: one operator plan per (shape, TP degree).
    let mut plans: BTreeMap<(VidurModelShape, u64), crate::model::OperatorPlan> = BTreeMap::new();
    let mut ops = Vec::new();
    for row in rows {
        let plan = match plans.entry((row.shape, row.tensor_parallel)) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                // read_vidur_compute refuses rows whose shape is not a model; rows built by
                // hand with such a shape have no operators to compare.
                let Ok(model) = row.shape.model() else { continue };
                entry.insert(crate::model::OperatorPlan::new(
                    &model,
                    crate::model::Parallelism::new(row.tensor_parallel, 1),
                    Precision::sixteen_bit(Dtype::Fp16),
                ))
            }
        };
        let mut batch = BatchShape::default();
        batch.add_prefill_chunk(0, row.num_tokens, false);
        plan.operators(&batch, &mut ops);
        for op in &ops {
            if !matches!(op.kind, OpKind::Gemm | OpKind::Memory) {
                continue;
            }
            if let Some(&measured_s) = row.median_s.get(op.name) {
                if measured_s > 0.0 {
                    samples.push(OperatorSample {
                        name: op.name,
                        kind: op.kind,
                        flops: op.flops,
                        bytes: op.bytes,
                        measured_s,
                        tokens: row.num_tokens,
                        tensor_parallel: row.tensor_parallel,
                    });
                }
            }
        }
    }
    samples
}

fn curve_from_bins(bins: BTreeMap<i64, Vec<f64>>) -> Curve {
    let points = bins
        .into_iter()
        .map(|(bin, mut values)| {
            values.sort_by(f64::total_cmp);
            (bin as f64 / 2.0, values[values.len() / 2].clamp(1e-4, 1.0))
        })
        .collect();
    Curve { points }
}

fn half_octave(size: f64) -> i64 {
    (size.max(1.0).log2() * 2.0).round() as i64
}

fn fit_with_overhead(samples: &[OperatorSample], device: &DeviceProfile, overhead_s: f64) -> FittedEfficiency {
    let peak = device.peak_flops(Dtype::Fp16);
    let bandwidth = device.memory_bandwidth_bytes_per_s();
    let mut gemm: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut memory: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for sample in samples {
        let time = sample.measured_s - overhead_s;
        if time <= 0.0 {
            continue;
        }
        match sample.kind {
            OpKind::Gemm => gemm.entry(half_octave(sample.flops)).or_default().push(sample.flops / (peak * time)),
            _ => {
                let efficiency = sample.bytes / (bandwidth * time);
                for key in [sample.name, "default"] {
                    memory
                        .entry(key.to_string())
                        .or_default()
                        .entry(half_octave(sample.bytes))
                        .or_default()
                        .push(efficiency);
                }
            }
        }
    }
    FittedEfficiency {
        gemm_by_dtype: BTreeMap::new(),
        attention_prefill_by_log2_flops: None,
        attention_decode_by_log2_bytes: None,
        gemm_by_log2_flops: curve_from_bins(gemm),
        memory_by_log2_bytes: memory.into_iter().map(|(name, bins)| (name, curve_from_bins(bins))).collect(),
        attention: device.compute.attention_efficiency.get(),
        streaming_bandwidth: device.memory.bandwidth_efficiency.get(),
        kernel_overhead_us: overhead_s * 1e6,
    }
}

/// Predicted seconds of each sample under `efficiency`.
pub fn predict(samples: &[OperatorSample], device: &DeviceProfile, efficiency: &FittedEfficiency) -> Vec<f64> {
    let comm = ParallelComm { tensor_parallel: 1, pipeline_parallel: 1, ..Default::default() };
    let model = crate::calibration::VidurModelShape {
        heads: 1,
        kv_heads: 1,
        hidden_size: 1,
        intermediate_size: 1,
        vocab_size: 1,
        gated_mlp: true,
    }
    .model()
    .expect("a model of width 1 is valid");
    let cost = RooflineCostModel::with_efficiency(
        &model,
        device,
        Precision::sixteen_bit(Dtype::Fp16),
        &comm,
        Arc::new(efficiency.clone()),
    );
    samples
        .iter()
        .map(|s| {
            let op = crate::model::Operator {
                name: s.name,
                kind: s.kind,
                flops: s.flops,
                bytes: s.bytes,
                repeat: 1,
                ..Default::default()
            };
            cost.operator_seconds(&op)
        })
        .collect()
}

/// Median absolute percentage error of `efficiency` on `samples`, per operator name and
/// overall ("all").
pub fn errors_by_operator(
    samples: &[OperatorSample],
    device: &DeviceProfile,
    efficiency: &FittedEfficiency,
) -> BTreeMap<String, (usize, f64)> {
    let predicted = predict(samples, device, efficiency);
    let mut pairs: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (sample, p) in samples.iter().zip(predicted) {
        pairs.entry(sample.name.to_string()).or_default().push((p, sample.measured_s));
        pairs.entry("all".into()).or_default().push((p, sample.measured_s));
    }
    pairs.into_iter().map(|(name, p)| (name, (p.len(), median_absolute_percentage_error(&p)))).collect()
}

/// The roofline's bound on one sample on `device`: compute at peak or memory at peak bandwidth,
/// whichever is slower (bandwidth-bound operators: memory alone), s.
fn roofline_bound_s(sample: &OperatorSample, device: &DeviceProfile) -> f64 {
    let memory_s = sample.bytes / device.memory_bandwidth_bytes_per_s();
    match sample.kind {
        OpKind::Gemm => (sample.flops / device.peak_flops(Dtype::Fp16)).max(memory_s),
        _ => memory_s,
    }
}

/// Carries curves fitted on `measured` (`fitted`, from `samples`) to `target`, a device with
/// no measurements of its own: each kernel is taken to reach the same fraction of its roofline
/// bound on `target` as on `measured` (after the same per-kernel overhead), and the curves are
/// refitted against `target`'s peaks.
///
/// Where the two devices share their compute peak, compute-bound GEMMs keep their time and the
/// bandwidth-bound operators keep their curves (the same fraction of a different bandwidth);
/// GEMMs that are bandwidth-bound on `measured` (weight reads at few tokens) speed up with the
/// bandwidth, as they would on the roofline. Assumption, not measurement: small kernels are
/// latency-bound and gain less from a higher peak than this predicts.
pub fn carry_compute(
    samples: &[OperatorSample],
    measured: &DeviceProfile,
    fitted: &FittedEfficiency,
    target: &DeviceProfile,
) -> FittedEfficiency {
    let overhead_s = fitted.kernel_overhead_us * 1e-6;
    let carried: Vec<OperatorSample> = samples
        .iter()
        .map(|sample| {
            let kernel_s = sample.measured_s - overhead_s;
            let mut carried = sample.clone();
            if kernel_s > 0.0 {
                let scale = roofline_bound_s(sample, target) / roofline_bound_s(sample, measured);
                carried.measured_s = overhead_s + kernel_s * scale;
            }
            carried
        })
        .collect();
    let mut efficiency = fit_with_overhead(&carried, target, overhead_s);
    // Bandwidth-bound operators reach the same fraction of the target's bandwidth: their
    // curves are the measured ones (the refit gives them back up to rounding).
    efficiency.memory_by_log2_bytes = fitted.memory_by_log2_bytes.clone();
    efficiency
}

/// Fits efficiency curves of `device` to `samples`.
pub fn fit_compute(samples: &[OperatorSample], device: &DeviceProfile) -> FittedEfficiency {
    let mut best: Option<(f64, FittedEfficiency)> = None;
    for overhead_us in 0..=10 {
        let fitted = fit_with_overhead(samples, device, f64::from(overhead_us) * 1e-6);
        let error = errors_by_operator(samples, device, &fitted).get("all").map_or(f64::INFINITY, |e| e.1);
        if best.as_ref().is_none_or(|(e, _)| error < *e) {
            best = Some((error, fitted));
        }
    }
    best.expect("at least one candidate").1
}
