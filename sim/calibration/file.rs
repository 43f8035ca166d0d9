//! The calibration file `servesim calibrate` writes and scenarios use (`calibration:` in a
//! pool): fitted efficiency curves of one device and, optionally, fitted collective curves of
//! the machines it was measured in.

use super::CollectiveCurve;
use crate::cost::FittedEfficiency;
use crate::error::Result;
use crate::hardware::OVERHEAD_US;
use crate::input::YamlSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Fitted fractions of peak (attention, streaming bandwidth).
const EFFICIENCY: (f64, f64) = (1e-4, 1.0);
/// Largest log2 of an operator size or message size on a curve.
const LOG2_SIZE_MAX: f64 = 128.0;
/// Largest curve value (collective curves are relative to the topology model and may exceed 1).
const CURVE_MAX: f64 = 1e3;

/// A device calibration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Device profile the curves belong to.
    pub device: String,
    /// Device profile the measurements were taken on, when it is not `device`: the curves were
    /// fitted there and carried to `device` (`servesim calibrate --measured-on`), and
    /// `operator_error` is the in-sample error on that device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_on: Option<String>,
    /// The command that produced the file.
    pub generated_by: String,
    /// Measurement folders used.
    pub fitted_from: Vec<String>,
    /// Operator measurements used.
    pub operator_samples: usize,
    /// In-sample median absolute percentage error per operator (fraction), on the device the
    /// measurements were taken on.
    pub operator_error: BTreeMap<String, f64>,
    /// The fitted curves.
    pub efficiency: FittedEfficiency,
    /// Node profile the collectives were measured on.
    #[serde(default)]
    pub node: Option<String>,
    /// Fitted collective curves.
    #[serde(default)]
    pub collectives: Vec<CollectiveCurve>,
    /// In-sample median absolute percentage error of collectives by message-size band.
    #[serde(default)]
    pub collective_error: BTreeMap<String, f64>,
}

impl Calibration {
    /// Parses a calibration file.
    pub fn from_source(source: &YamlSource) -> Result<Self> {
        let calibration: Calibration = source.parse()?;
        if calibration.efficiency.gemm_by_log2_flops.points.is_empty() {
            return Err(source.error("efficiency.gemm_by_log2_flops.points", "the curve has no points"));
        }
        for (name, curve) in &calibration.efficiency.memory_by_log2_bytes {
            if curve.points.is_empty() {
                return Err(
                    source.error(&format!("efficiency.memory_by_log2_bytes.{name}.points"), "the curve has no points")
                );
            }
        }
        let efficiency = &calibration.efficiency;
        // Fractions of the profile's peaks, as the device profile's own factors are.
        source.check_range("efficiency.attention", efficiency.attention, EFFICIENCY, "")?;
        source.check_range("efficiency.streaming_bandwidth", efficiency.streaming_bandwidth, EFFICIENCY, "")?;
        source.check_range("efficiency.kernel_overhead_us", efficiency.kernel_overhead_us, OVERHEAD_US, " µs")?;
        let curves =
            std::iter::once(("efficiency.gemm_by_log2_flops".to_string(), &efficiency.gemm_by_log2_flops))
                .chain(
                    efficiency
                        .memory_by_log2_bytes
                        .iter()
                        .map(|(name, c)| (format!("efficiency.memory_by_log2_bytes.{name}"), c)),
                )
                .chain(
                    calibration.collectives.iter().enumerate().map(|(i, c)| {
                        (format!("collectives[{i}].efficiency_by_log2_bytes"), &c.efficiency_by_log2_bytes)
                    }),
                );
        for (field, curve) in curves {
            let mut last = f64::NEG_INFINITY;
            for (i, &(x, y)) in curve.points.iter().enumerate() {
                let valid = x.is_finite()
                    && x > last
                    && (0.0..=LOG2_SIZE_MAX).contains(&x)
                    && y.is_finite()
                    && y > 0.0
                    && y <= CURVE_MAX;
                if !valid {
                    return Err(source.error(
                        &format!("{field}.points[{i}]"),
                        format!(
                            "curve point ({x}, {y}) must have a log2 size in 0..={LOG2_SIZE_MAX}, above the previous point's, and an efficiency in (0, {CURVE_MAX}]"
                        ),
                    ));
                }
                last = x;
            }
        }
        Ok(calibration)
    }

    /// The curve of `collective` among `devices` devices on `nodes` nodes, if measured.
    pub fn collective(&self, collective: &str, devices: u64, nodes: u64) -> Option<&CollectiveCurve> {
        self.collectives.iter().find(|c| c.collective == collective && c.devices == devices && c.nodes == nodes)
    }
}
