//! The calibration file `servesim calibrate` writes and scenarios use (`calibration:` in a
//! pool): fitted efficiency curves of one device and, optionally, fitted collective curves of
//! the machines it was measured in.

use super::CollectiveCurve;
use crate::cost::FittedEfficiency;
use crate::error::Result;
use crate::input::YamlSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A device calibration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Device profile the curves belong to.
    pub device: String,
    /// The command that produced the file.
    pub generated_by: String,
    /// Measurement folders used.
    pub fitted_from: Vec<String>,
    /// Operator measurements used.
    pub operator_samples: usize,
    /// In-sample median absolute percentage error per operator (fraction).
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
        let all_points = std::iter::once(&calibration.efficiency.gemm_by_log2_flops)
            .chain(calibration.efficiency.memory_by_log2_bytes.values())
            .chain(calibration.collectives.iter().map(|c| &c.efficiency_by_log2_bytes))
            .flat_map(|c| c.points.iter());
        for (x, y) in all_points {
            if !x.is_finite() || !y.is_finite() || *y <= 0.0 {
                return Err(source
                    .error("efficiency", format!("curve point ({x}, {y}) must be finite with a positive efficiency")));
            }
        }
        Ok(calibration)
    }

    /// The curve of `collective` among `devices` devices on `nodes` nodes, if measured.
    pub fn collective(&self, collective: &str, devices: u64, nodes: u64) -> Option<&CollectiveCurve> {
        self.collectives.iter().find(|c| c.collective == collective && c.devices == devices && c.nodes == nodes)
    }
}
