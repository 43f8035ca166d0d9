//! Device profiles: compute peaks per dtype, memory, efficiency factors, overheads, power and
//! price.

use super::check_sources;
use crate::error::Result;
use crate::input::checked::{Fraction, NonNegative, Positive};
use crate::input::YamlSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What sort of processor a device is; the cost model treats all kinds through the same
/// roofline, with each kind's own figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A GPU.
    Gpu,
    /// A CPU socket.
    Cpu,
    /// An NPU or other AI accelerator.
    Npu,
}

/// Numeric formats with a peak rate in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE single precision.
    Fp32,
    /// TensorFloat-32.
    Tf32,
    /// IEEE half precision.
    Fp16,
    /// bfloat16.
    Bf16,
    /// 8-bit floating point (E4M3/E5M2).
    Fp8,
    /// 8-bit integer.
    Int8,
    /// 4-bit float (E2M1; NVFP4/MXFP4 tensor-core rate).
    Fp4,
    /// 4-bit integer.
    Int4,
}

impl Dtype {
    /// Bytes per element; a 4-bit float carries its share of an FP8 scale per 16 elements
    /// (NVFP4), as every 4-bit float format in use has block scales.
    pub fn bytes(self) -> f64 {
        match self {
            Dtype::Fp32 | Dtype::Tf32 => 4.0,
            Dtype::Fp16 | Dtype::Bf16 => 2.0,
            Dtype::Fp8 | Dtype::Int8 => 1.0,
            Dtype::Fp4 => 0.5 + 1.0 / 16.0,
            Dtype::Int4 => 0.5,
        }
    }

    /// The lowercase name used in files.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Fp32 => "fp32",
            Dtype::Tf32 => "tf32",
            Dtype::Fp16 => "fp16",
            Dtype::Bf16 => "bf16",
            Dtype::Fp8 => "fp8",
            Dtype::Int8 => "int8",
            Dtype::Fp4 => "fp4",
            Dtype::Int4 => "int4",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Compute capabilities.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeSpec {
    /// Dense peak TFLOP/s (or TOP/s) per dtype.
    pub peak_tflops: BTreeMap<Dtype, Positive>,
    /// Achievable fraction of peak on large GEMMs.
    pub gemm_efficiency: Fraction,
    /// Achievable fraction of peak in fused attention kernels.
    pub attention_efficiency: Fraction,
}

/// Memory capacity and bandwidth.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemorySpec {
    /// Capacity in GiB.
    pub capacity_gib: Positive,
    /// Peak bandwidth in GB/s (1e9 bytes per second).
    pub bandwidth_gbs: Positive,
    /// Achievable fraction of peak bandwidth.
    pub bandwidth_efficiency: Fraction,
}

/// Fixed costs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Overheads {
    /// Cost of each operator kernel, µs.
    pub kernel_launch_us: NonNegative,
    /// Runtime overhead per serving iteration, µs.
    pub iteration_us: NonNegative,
}

/// Power draw.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSpec {
    /// Power when idle, W.
    pub idle_w: NonNegative,
    /// Power at full utilisation (TDP/TBP), W.
    pub max_w: Positive,
    /// Lower clock settings the device can run at (DVFS), besides full clock.
    #[serde(default)]
    pub dvfs: Vec<DvfsPoint>,
    /// How power rises with activity: points (activity, fraction of the idle-to-max range),
    /// both in [0, 1]; (0, 0) and (1, 1) are implied. Absent: linear.
    #[serde(default)]
    pub activity_curve: Vec<(f64, f64)>,
}

impl PowerSpec {
    /// Power at `activity` (the busier of compute and memory utilisation), W.
    pub fn power_w(&self, activity: f64) -> f64 {
        let a = activity.clamp(0.0, 1.0);
        let mut previous = (0.0, 0.0);
        let mut fraction = a;
        if !self.activity_curve.is_empty() {
            fraction = 1.0;
            for &point in self.activity_curve.iter().chain(std::iter::once(&(1.0, 1.0))) {
                if a <= point.0 {
                    let span = point.0 - previous.0;
                    fraction = if span > 0.0 {
                        previous.1 + (point.1 - previous.1) * (a - previous.0) / span
                    } else {
                        point.1
                    };
                    break;
                }
                previous = point;
            }
        }
        self.idle_w.get() + (self.max_w.get() - self.idle_w.get()) * fraction
    }
}

/// One clock setting: compute peaks scale with the clock; memory bandwidth does not (HBM
/// and GDDR clocks are separate); power at full activity drops to `max_w`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DvfsPoint {
    /// Core clock relative to the full clock, in (0, 1].
    pub clock_ratio: Fraction,
    /// Power at full activity at this clock, W.
    pub max_w: Positive,
}

// Accepted ranges: far beyond any real device either way, yet narrow enough that every
// duration derived from a profile (an iteration, a transfer) fits the u64-nanosecond clock.
/// Peak compute, TFLOP/s: 1 MFLOP/s to 1 EFLOP/s.
pub const PEAK_TFLOPS: (f64, f64) = (1e-6, 1e6);
/// Memory capacity, GiB: 1 KiB to 1 PiB.
pub const CAPACITY_GIB: (f64, f64) = (1e-6, 1e6);
/// Bandwidth, GB/s: 1 MB/s to 1 PB/s (also for links).
pub const BANDWIDTH_GBS: (f64, f64) = (1e-3, 1e6);
/// Fixed overheads and latencies, µs: at most 1 s (also for links and host launch costs).
pub const OVERHEAD_US: (f64, f64) = (0.0, 1e6);
/// Power, W.
pub const POWER_W: (f64, f64) = (0.0, 1e6);
/// Price, USD per device-hour.
pub const PRICE_PER_HOUR_USD: (f64, f64) = (0.0, 1e6);
/// DVFS clock ratio: compute peaks scale with it.
pub const CLOCK_RATIO: (f64, f64) = (0.01, 1.0);

/// One device profile as read from `hardware-profiles/devices/*.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    /// Catalog key.
    pub name: String,
    /// Human-readable name.
    pub display_name: String,
    /// GPU, CPU or NPU.
    pub kind: DeviceKind,
    /// Compute figures.
    pub compute: ComputeSpec,
    /// Memory figures.
    pub memory: MemorySpec,
    /// Fixed costs.
    pub overheads: Overheads,
    /// Power figures.
    pub power: PowerSpec,
    /// Price per device-hour, USD.
    pub price_per_hour_usd: NonNegative,
    /// Field path → citation (or "ESTIMATE: ...").
    pub sources: BTreeMap<String, String>,
}

impl DeviceProfile {
    /// Parses and checks a device profile.
    pub fn from_source(source: &YamlSource) -> Result<Self> {
        let profile: DeviceProfile = source.parse()?;
        profile.check(source)?;
        Ok(profile)
    }

    fn check(&self, source: &YamlSource) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(source.error("name", "the name is empty"));
        }
        if self.compute.peak_tflops.is_empty() {
            return Err(source.error("compute.peak_tflops", "give the peak of at least one dtype (e.g. `bf16: 989.4`)"));
        }
        if self.power.idle_w.get() >= self.power.max_w.get() {
            return Err(source.error(
                "power.idle_w",
                format!("idle power ({} W) must be below max power ({} W)", self.power.idle_w, self.power.max_w),
            ));
        }
        for (i, point) in self.power.dvfs.iter().enumerate() {
            if point.max_w.get() > self.power.max_w.get() || point.max_w.get() <= self.power.idle_w.get() {
                return Err(source.error(
                    &format!("power.dvfs[{i}].max_w"),
                    format!("must lie between idle_w ({} W) and max_w ({} W)", self.power.idle_w, self.power.max_w),
                ));
            }
        }
        let mut last = 0.0;
        for (i, &(activity, fraction)) in self.power.activity_curve.iter().enumerate() {
            let valid = activity.is_finite()
                && fraction.is_finite()
                && activity > last
                && activity < 1.0
                && (0.0..=1.0).contains(&fraction);
            if !valid {
                return Err(source.error(
                    &format!("power.activity_curve[{i}]"),
                    "points are (activity, fraction) with activity rising strictly inside (0, 1) and fraction in [0, 1]",
                ));
            }
            last = activity;
        }
        for (dtype, tflops) in &self.compute.peak_tflops {
            source.check_range(&format!("compute.peak_tflops.{dtype}"), tflops.get(), PEAK_TFLOPS, " TFLOP/s")?;
        }
        source.check_range("memory.capacity_gib", self.memory.capacity_gib.get(), CAPACITY_GIB, " GiB")?;
        source.check_range("memory.bandwidth_gbs", self.memory.bandwidth_gbs.get(), BANDWIDTH_GBS, " GB/s")?;
        source.check_range("overheads.kernel_launch_us", self.overheads.kernel_launch_us.get(), OVERHEAD_US, " µs")?;
        source.check_range("overheads.iteration_us", self.overheads.iteration_us.get(), OVERHEAD_US, " µs")?;
        source.check_range("power.max_w", self.power.max_w.get(), POWER_W, " W")?;
        source.check_range("price_per_hour_usd", self.price_per_hour_usd.get(), PRICE_PER_HOUR_USD, " USD/h")?;
        for (i, point) in self.power.dvfs.iter().enumerate() {
            source.check_range(&format!("power.dvfs[{i}].clock_ratio"), point.clock_ratio.get(), CLOCK_RATIO, "")?;
        }
        let mut numeric: Vec<String> =
            self.compute.peak_tflops.keys().map(|d| format!("compute.peak_tflops.{d}")).collect();
        if !self.power.activity_curve.is_empty() {
            numeric.push("power.activity_curve".into());
        }
        numeric.extend((0..self.power.dvfs.len()).map(|i| format!("power.dvfs[{i}]")));
        numeric.extend(
            [
                "compute.gemm_efficiency",
                "compute.attention_efficiency",
                "memory.capacity_gib",
                "memory.bandwidth_gbs",
                "memory.bandwidth_efficiency",
                "overheads.kernel_launch_us",
                "overheads.iteration_us",
                "power.idle_w",
                "power.max_w",
                "price_per_hour_usd",
            ]
            .map(String::from),
        );
        check_sources(source, &self.sources, &numeric)
    }

    /// Peak FLOP/s for `dtype`; a device without that dtype runs it at the rate of the nearest
    /// wider format it has (e.g. fp8 weights on an A100 compute in fp16), which is what
    /// frameworks do by up-casting.
    pub fn peak_flops(&self, dtype: Dtype) -> f64 {
        let fallback_order: &[Dtype] = match dtype {
            Dtype::Int4 => &[Dtype::Int4, Dtype::Int8, Dtype::Fp8, Dtype::Bf16, Dtype::Fp16, Dtype::Fp32],
            Dtype::Fp4 => &[Dtype::Fp4, Dtype::Fp8, Dtype::Bf16, Dtype::Fp16, Dtype::Fp32],
            Dtype::Int8 => &[Dtype::Int8, Dtype::Fp8, Dtype::Bf16, Dtype::Fp16, Dtype::Fp32],
            Dtype::Fp8 => &[Dtype::Fp8, Dtype::Bf16, Dtype::Fp16, Dtype::Fp32],
            Dtype::Bf16 => &[Dtype::Bf16, Dtype::Fp16, Dtype::Fp32],
            Dtype::Fp16 => &[Dtype::Fp16, Dtype::Bf16, Dtype::Fp32],
            Dtype::Tf32 => &[Dtype::Tf32, Dtype::Fp32],
            Dtype::Fp32 => &[Dtype::Fp32, Dtype::Tf32],
        };
        fallback_order
            .iter()
            .find_map(|d| self.compute.peak_tflops.get(d))
            .or_else(|| self.compute.peak_tflops.values().next())
            .map(|tflops| tflops.get() * 1e12)
            .unwrap_or(0.0)
    }

    /// Whether the device runs `dtype` natively (the profile gives its peak).
    pub fn runs(&self, dtype: Dtype) -> bool {
        self.compute.peak_tflops.contains_key(&dtype)
    }

    /// The dtypes the device runs natively, for messages.
    pub fn dtypes(&self) -> String {
        self.compute.peak_tflops.keys().map(|d| d.name()).collect::<Vec<_>>().join(", ")
    }

    /// This profile at a lower core clock: compute peaks scale by `clock_ratio`, power at full
    /// activity becomes the DVFS point's. Ratio 1 is the profile itself.
    pub fn at_clock(&self, clock_ratio: f64) -> Option<DeviceProfile> {
        if (clock_ratio - 1.0).abs() < 1e-9 {
            return Some(self.clone());
        }
        let point = self.power.dvfs.iter().find(|p| (p.clock_ratio.get() - clock_ratio).abs() < 1e-9)?;
        let mut scaled = self.clone();
        for tflops in scaled.compute.peak_tflops.values_mut() {
            *tflops = Positive::new(tflops.get() * clock_ratio).expect("scaled peak stays positive");
        }
        scaled.power.max_w = point.max_w;
        Some(scaled)
    }

    /// Memory capacity in bytes.
    pub fn memory_bytes(&self) -> f64 {
        self.memory.capacity_gib.get() * (1u64 << 30) as f64
    }

    /// Peak memory bandwidth in bytes per second.
    pub fn memory_bandwidth_bytes_per_s(&self) -> f64 {
        self.memory.bandwidth_gbs.get() * 1e9
    }
}
