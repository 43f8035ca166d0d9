//! Achievable fractions of peak: what turns a datasheet roofline into a prediction.
//!
//! [`ProfileEfficiency`] uses the device profile's constants; [`FittedEfficiency`] uses curves
//! fitted to measured operator times by `servesim calibrate`. The roofline cost model works
//! with either through the [`Efficiency`] trait.

use crate::hardware::{DeviceProfile, Dtype};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// Mean keys per query at which fused prefill attention reaches half its peak efficiency:
/// FlashAttention-3's published causal BF16 forward throughput on H100 (head dim 128) is about
/// 300 TFLOP/s at 512 tokens, 550 at 2k and 680 at 16k, which `L / (L + 700)` of a 700 TFLOP/s
/// plateau fits; a causal prompt of L tokens has L/2 keys per query.
pub const PREFILL_KEYS_PER_QUERY_HALF: f64 = 350.0;

/// KV bytes read per attention call at which paged decode attention reaches half its peak
/// bandwidth efficiency (split-K kernels fill the GPU from a few MiB up; below, a fixed
/// start-up dominates).
pub const DECODE_BYTES_HALF: f64 = 256.0 * 1024.0;

/// The analytic shape of prefill attention efficiency against keys per query, in (0, 1).
pub fn prefill_attention_shape(keys_per_query: f64) -> f64 {
    let k = keys_per_query.max(1.0);
    k / (k + PREFILL_KEYS_PER_QUERY_HALF)
}

/// The analytic shape of decode attention bandwidth efficiency against bytes read, in (0, 1).
pub fn decode_attention_shape(bytes: f64) -> f64 {
    let b = bytes.max(1.0);
    b / (b + DECODE_BYTES_HALF)
}

/// Efficiency factors of one device.
pub trait Efficiency: Debug + Send + Sync {
    /// Fraction of the `dtype` peak FLOP/s a GEMM of `flops` achieves.
    fn gemm(&self, dtype: Dtype, flops: f64) -> f64;
    /// Fraction of peak FLOP/s of fused causal prefill attention of `flops` with a mean of
    /// `keys_per_query` keys per query.
    fn attention_prefill(&self, flops: f64, keys_per_query: f64) -> f64;
    /// Fraction of peak bandwidth of paged decode attention reading `bytes` of KV.
    fn attention_decode(&self, bytes: f64) -> f64;
    /// Fraction of peak bandwidth of the bandwidth-bound operator `name` moving `bytes`.
    fn memory(&self, name: &str, bytes: f64) -> f64;
    /// Fixed cost of each operator kernel, s.
    fn kernel_overhead_s(&self) -> f64;
}

/// The device profile's constant factors, with the analytic attention shapes.
#[derive(Debug, Clone)]
pub struct ProfileEfficiency {
    gemm: f64,
    attention: f64,
    memory: f64,
    kernel_s: f64,
}

impl ProfileEfficiency {
    /// The factors of `device`.
    pub fn of(device: &DeviceProfile) -> Self {
        ProfileEfficiency {
            gemm: device.compute.gemm_efficiency.get(),
            attention: device.compute.attention_efficiency.get(),
            memory: device.memory.bandwidth_efficiency.get(),
            kernel_s: device.overheads.kernel_launch_us.get() * 1e-6,
        }
    }
}

impl Efficiency for ProfileEfficiency {
    fn gemm(&self, _dtype: Dtype, _flops: f64) -> f64 {
        self.gemm
    }
    fn attention_prefill(&self, _flops: f64, keys_per_query: f64) -> f64 {
        self.attention * prefill_attention_shape(keys_per_query)
    }
    fn attention_decode(&self, bytes: f64) -> f64 {
        self.memory * decode_attention_shape(bytes)
    }
    fn memory(&self, _name: &str, _bytes: f64) -> f64 {
        self.memory
    }
    fn kernel_overhead_s(&self) -> f64 {
        self.kernel_s
    }
}

/// A piecewise-linear curve of efficiency against log2 of a size, flat beyond its ends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Curve {
    /// Knots: (log2 of the size, efficiency), sorted by size.
    pub points: Vec<(f64, f64)>,
}

impl Curve {
    /// The efficiency at `size`, within [1e-4, 1].
    pub fn at(&self, size: f64) -> f64 {
        self.at_unclamped(size).clamp(1e-4, 1.0)
    }

    /// The interpolated value at `size` (efficiencies relative to a nominal model may exceed
    /// 1), at least 1e-4.
    pub fn at_unclamped(&self, size: f64) -> f64 {
        let x = size.max(1.0).log2();
        let points = &self.points;
        match points.iter().position(|&(px, _)| px >= x) {
            None => points.last().map_or(1.0, |p| p.1),
            Some(0) => points[0].1,
            Some(i) => {
                let ((x0, y0), (x1, y1)) = (points[i - 1], points[i]);
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            }
        }
        .max(1e-4)
    }
}

/// Curves fitted by `servesim calibrate`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FittedEfficiency {
    /// GEMM efficiency against log2(FLOPs), for 16-bit GEMMs (and any dtype without a curve
    /// of its own).
    pub gemm_by_log2_flops: Curve,
    /// GEMM efficiency against log2(FLOPs) per compute dtype (relative to that dtype's peak),
    /// where measured.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gemm_by_dtype: BTreeMap<Dtype, Curve>,
    /// Memory-bound operators' bandwidth efficiency against log2(bytes), per Vidur operator
    /// name, with `default` for the rest.
    pub memory_by_log2_bytes: BTreeMap<String, Curve>,
    /// Peak fused-attention efficiency; the analytic shape in keys per query scales it unless
    /// a measured prefill curve is given.
    pub attention: f64,
    /// Measured prefill attention efficiency against log2(FLOPs), where measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_prefill_by_log2_flops: Option<Curve>,
    /// Measured decode attention bandwidth efficiency against log2(KV bytes), where measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_decode_by_log2_bytes: Option<Curve>,
    /// Bandwidth efficiency of attention's KV reads and of memory-bound GEMMs' weight reads
    /// (large streaming reads, unlike the small kernels fitted above; kept from the profile).
    pub streaming_bandwidth: f64,
    /// Per-kernel overhead, µs.
    pub kernel_overhead_us: f64,
}

impl Efficiency for FittedEfficiency {
    fn gemm(&self, dtype: Dtype, flops: f64) -> f64 {
        self.gemm_by_dtype.get(&dtype).unwrap_or(&self.gemm_by_log2_flops).at(flops)
    }
    fn attention_prefill(&self, flops: f64, keys_per_query: f64) -> f64 {
        match &self.attention_prefill_by_log2_flops {
            Some(curve) => curve.at(flops),
            None => self.attention * prefill_attention_shape(keys_per_query),
        }
    }
    fn attention_decode(&self, bytes: f64) -> f64 {
        match &self.attention_decode_by_log2_bytes {
            Some(curve) => curve.at(bytes),
            None => self.streaming_bandwidth * decode_attention_shape(bytes),
        }
    }
    fn memory(&self, name: &str, bytes: f64) -> f64 {
        // Operators without a curve of their own use the closest kind: the final norm is a
        // norm, everything else the default.
        let key = match name {
            "attention" | "gemm" => return self.streaming_bandwidth,
            "final_layernorm" => "input_layernorm",
            other => other,
        };
        self.memory_by_log2_bytes
            .get(key)
            .or_else(|| self.memory_by_log2_bytes.get("default"))
            .map_or(0.7, |curve| curve.at(bytes))
    }
    fn kernel_overhead_s(&self) -> f64 {
        self.kernel_overhead_us * 1e-6
    }
}
