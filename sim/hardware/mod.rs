//! Hardware profiles: devices (GPU, CPU, NPU) and links, read from YAML files whose every
//! number carries a source.
//!
//! This module parses and checks profiles; it does not decide how long anything takes (that is
//! `cost`) nor how devices are wired into replicas (that is `cluster`).

mod catalog;
mod device;
mod link;
mod node;

pub use catalog::{
    aiconfigurator_framework, bundled_measured, bundled_measured_by_name, bundled_measured_for_framework,
    bundled_measured_names, bundled_scenario, measured_file, Catalog, BUNDLED_CALIBRATIONS, BUNDLED_DEVICES,
    BUNDLED_LINKS, BUNDLED_MEASURED, BUNDLED_MODELS, BUNDLED_NODES, BUNDLED_SCENARIOS,
};
pub use device::{
    ComputeSpec, DeviceKind, DeviceProfile, Dtype, DvfsPoint, MemorySpec, Overheads, PowerSpec, BANDWIDTH_GBS,
    OVERHEAD_US,
};
pub use link::{AllToAllCalibration, LinkKind, LinkProfile};
pub use node::{DeviceGroup, HostStorage, Interconnect, NodeProfile, NvmeSpec, ScaleOut, Topology};

use crate::error::Result;
use crate::input::YamlSource;
use std::collections::BTreeMap;

/// Checks that each numeric field of a profile is covered by a `sources` entry for itself or
/// for one of its parents.
pub(crate) fn check_sources(
    source: &YamlSource,
    sources: &BTreeMap<String, String>,
    numeric_fields: &[String],
) -> Result<()> {
    for field in numeric_fields {
        let covered = sources.keys().any(|key| {
            field == key
                || (field.starts_with(key.as_str())
                    && (field[key.len()..].starts_with('.') || field[key.len()..].starts_with('[')))
        });
        if !covered {
            return Err(source.error(
                field,
                format!(
                    "this number has no entry in `sources:`; add `{field}: \"<citation>\"` (or \"ESTIMATE: <how>\" for a guess), or a source for a parent field"
                ),
            ));
        }
    }
    for (key, citation) in sources {
        if citation.trim().is_empty() {
            return Err(source.error(&format!("sources.{key}"), "the citation is empty"));
        }
    }
    Ok(())
}
