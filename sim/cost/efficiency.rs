//! Achievable fractions of peak: what turns a datasheet roofline into a prediction.
//!
//! [`ProfileEfficiency`] uses the device profile's constants; [`FittedEfficiency`] uses curves
//! fitted to measured operator times by `servesim calibrate`. The roofline cost model works
//! with either through the [`Efficiency`] trait.

use crate::hardware::DeviceProfile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// Efficiency factors of one device.
pub trait Efficiency: Debug + Send + Sync {
    /// Fraction of peak FLOP/s a GEMM of `flops` achieves.
    fn gemm(&self, flops: f64) -> f64;
    /// Fraction of peak FLOP/s of fused attention.
    fn attention(&self) -> f64;
    /// Fraction of peak bandwidth of the bandwidth-bound operator `name` moving `bytes`.
    fn memory(&self, name: &str, bytes: f64) -> f64;
    /// Fixed cost of each operator kernel, s.
    fn kernel_overhead_s(&self) -> f64;
}

/// The device profile's constant factors.
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
    fn gemm(&self, _flops: f64) -> f64 {
        self.gemm
    }
    fn attention(&self) -> f64 {
        self.attention
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
    /// GEMM efficiency against log2(FLOPs).
    pub gemm_by_log2_flops: Curve,
    /// Memory-bound operators' bandwidth efficiency against log2(bytes), per Vidur operator
    /// name, with `default` for the rest.
    pub memory_by_log2_bytes: BTreeMap<String, Curve>,
    /// Fused-attention efficiency (not in the fitted data; kept from the profile).
    pub attention: f64,
    /// Bandwidth efficiency of attention's KV reads and of memory-bound GEMMs' weight reads
    /// (large streaming reads, unlike the small kernels fitted above; kept from the profile).
    pub streaming_bandwidth: f64,
    /// Per-kernel overhead, µs.
    pub kernel_overhead_us: f64,
}

impl Efficiency for FittedEfficiency {
    fn gemm(&self, flops: f64) -> f64 {
        self.gemm_by_log2_flops.at(flops)
    }
    fn attention(&self) -> f64 {
        self.attention
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
