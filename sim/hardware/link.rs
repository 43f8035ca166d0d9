//! Link profiles: bandwidth per direction and latency of an interconnect.

use super::check_sources;
use crate::error::Result;
use crate::input::checked::{Fraction, NonNegative, Positive};
use crate::input::YamlSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The family of an interconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// NVLink / NVSwitch.
    Nvlink,
    /// PCI Express.
    Pcie,
    /// InfiniBand.
    Infiniband,
    /// Ethernet or RoCE.
    Ethernet,
    /// A vendor fabric (Infinity Fabric, on-package).
    Fabric,
    /// A CPU socket-to-socket link (UPI, xGMI).
    Socket,
}

/// One link profile as read from `hardware-profiles/links/*.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkProfile {
    /// Catalog key.
    pub name: String,
    /// Human-readable name.
    pub display_name: String,
    /// Family.
    pub kind: LinkKind,
    /// Bandwidth per device per direction, GB/s.
    pub bandwidth_gbs_per_direction: Positive,
    /// One-way small-message latency, µs.
    pub latency_us: NonNegative,
    /// Whether the fabric can reduce in-network (NVLS, SHARP).
    #[serde(default)]
    pub switch_reduction: bool,
    /// Calibration of expert-parallel all-to-all (dispatch/combine) over this link; absent:
    /// the raw α–β model (efficiency 1, no fixed cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_to_all: Option<AllToAllCalibration>,
    /// Field path → citation.
    pub sources: BTreeMap<String, String>,
}

/// How an expert-parallel all-to-all performs on a link against its line rate.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllToAllCalibration {
    /// Fraction of the per-direction bandwidth an all-to-all achieves, (0, 1].
    pub efficiency: Fraction,
    /// Fixed cost of one all-to-all whose routes cross this link (kernel launch, signalling,
    /// synchronisation), µs, on top of the routes' latency.
    pub fixed_latency_us: NonNegative,
}

impl LinkProfile {
    /// Parses and checks a link profile.
    pub fn from_source(source: &YamlSource) -> Result<Self> {
        let profile: LinkProfile = source.parse()?;
        source.check_range(
            "bandwidth_gbs_per_direction",
            profile.bandwidth_gbs_per_direction.get(),
            super::device::BANDWIDTH_GBS,
            " GB/s",
        )?;
        source.check_range("latency_us", profile.latency_us.get(), super::device::OVERHEAD_US, " µs")?;
        let mut numeric = vec!["bandwidth_gbs_per_direction".to_string(), "latency_us".to_string()];
        if let Some(a2a) = &profile.all_to_all {
            source.check_range(
                "all_to_all.fixed_latency_us",
                a2a.fixed_latency_us.get(),
                super::device::OVERHEAD_US,
                " µs",
            )?;
            numeric.extend(["all_to_all.efficiency", "all_to_all.fixed_latency_us"].map(String::from));
        }
        check_sources(source, &profile.sources, &numeric)?;
        Ok(profile)
    }

    /// Bandwidth per direction in bytes per second.
    pub fn bandwidth_bytes_per_s(&self) -> f64 {
        self.bandwidth_gbs_per_direction.get() * 1e9
    }
}
