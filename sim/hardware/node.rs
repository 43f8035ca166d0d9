//! Node profiles: which devices a machine holds and how they are linked inside it, plus the
//! NICs that join it to a cluster fabric.

use crate::error::Result;
use crate::input::checked::{Count, Positive};
use crate::input::YamlSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the members of an interconnect are wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// Every member has a port on one non-blocking switch (NVSwitch, PCIe switch).
    Switch,
    /// A direct link between every pair; each pair gets bandwidth / (members − 1).
    Mesh,
    /// Member i is linked to member i + 1.
    Chain,
}

/// A group of identical devices in a node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGroup {
    /// Name used by interconnects.
    pub group: String,
    /// Device profile name.
    pub device: String,
    /// How many.
    pub count: Count,
}

/// An intra-node link joining device groups.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Interconnect {
    /// Link profile name.
    pub link: String,
    /// Device groups joined.
    pub members: Vec<String>,
    /// Wiring.
    pub topology: Topology,
}

/// NICs joining member devices to the cluster fabric, one per device.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleOut {
    /// Link profile name of each NIC.
    pub link: String,
    /// Device groups that have a NIC.
    pub members: Vec<String>,
}

/// Storage outside the accelerators that a serving engine can offload KV blocks to: the
/// host's DRAM and its local NVMe drives, reached from each accelerator over the link that
/// joins it to a CPU group (its PCIe or chip-to-chip link).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostStorage {
    /// Host DRAM of the whole node, GiB.
    pub memory_gib: Positive,
    /// Local NVMe drives of the whole node.
    #[serde(default)]
    pub nvme: Option<NvmeSpec>,
}

/// A node's local NVMe drives together.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NvmeSpec {
    /// Capacity, GiB.
    pub capacity_gib: Positive,
    /// Sequential read bandwidth of all drives together, GB/s.
    pub read_gbs: Positive,
    /// Sequential write bandwidth of all drives together, GB/s.
    pub write_gbs: Positive,
}

/// One node profile as read from `hardware-profiles/nodes/*.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeProfile {
    /// Catalog key.
    pub name: String,
    /// Human-readable name.
    pub display_name: String,
    /// Device groups.
    pub devices: Vec<DeviceGroup>,
    /// Intra-node links.
    #[serde(default)]
    pub interconnects: Vec<Interconnect>,
    /// NICs to the cluster fabric.
    #[serde(default)]
    pub scale_out: Option<ScaleOut>,
    /// Host DRAM and NVMe for KV offload (absent: the node offers no KV tiers).
    #[serde(default)]
    pub host: Option<HostStorage>,
    /// Field path → citation.
    pub sources: BTreeMap<String, String>,
}

/// Most devices one node profile may hold (a cluster holds at most 2^20 devices in all).
pub const MAX_DEVICES_PER_NODE: u64 = 1 << 20;

impl NodeProfile {
    /// Parses and checks a node profile: groups are unique, interconnects name existing groups,
    /// and every device and link name is known to `known_device`/`known_link`.
    pub fn from_source(
        source: &YamlSource,
        known_device: &dyn Fn(&str) -> bool,
        known_link: &dyn Fn(&str) -> bool,
    ) -> Result<Self> {
        let node: NodeProfile = source.parse()?;
        if node.devices.is_empty() {
            return Err(source.error("devices", "list at least one device group (group, device, count)"));
        }
        let mut groups = BTreeMap::new();
        for (index, group) in node.devices.iter().enumerate() {
            let field = format!("devices[{index}]");
            if group.count.get() > MAX_DEVICES_PER_NODE {
                return Err(source.error(
                    &format!("{field}.count"),
                    format!(
                        "{} devices in one node is more than servesim builds (at most {MAX_DEVICES_PER_NODE} per node); describe a rack or pod as several nodes",
                        group.count
                    ),
                ));
            }
            if groups.insert(group.group.as_str(), index).is_some() {
                return Err(
                    source.error(&format!("{field}.group"), format!("group {:?} is defined twice", group.group))
                );
            }
            if !known_device(&group.device) {
                return Err(source.error(
                    &format!("{field}.device"),
                    format!("unknown device {:?}; see `servesim profiles`", group.device),
                ));
            }
        }
        let check_members = |field: &str, members: &[String]| -> Result<()> {
            if members.is_empty() {
                return Err(source.error(field, "list at least one device group"));
            }
            for (i, member) in members.iter().enumerate() {
                if !groups.contains_key(member.as_str()) {
                    return Err(source.error(
                        &format!("{field}[{i}]"),
                        format!(
                            "the link joins a missing device group {member:?}; this node's groups are: {}",
                            crate::input::known_list(groups.keys().copied())
                        ),
                    ));
                }
            }
            Ok(())
        };
        for (index, interconnect) in node.interconnects.iter().enumerate() {
            let field = format!("interconnects[{index}]");
            check_members(&format!("{field}.members"), &interconnect.members)?;
            if !known_link(&interconnect.link) {
                return Err(source.error(
                    &format!("{field}.link"),
                    format!("unknown link {:?}; see `servesim profiles`", interconnect.link),
                ));
            }
        }
        if let Some(scale_out) = &node.scale_out {
            check_members("scale_out.members", &scale_out.members)?;
            if !known_link(&scale_out.link) {
                return Err(source.error("scale_out.link", format!("unknown link {:?}", scale_out.link)));
            }
        }
        if let Some(host) = &node.host {
            // Bounds far beyond any node either way, as for a device's memory.
            let capacity = (super::device::CAPACITY_GIB.0, 1e9);
            let why = "far beyond any node either way";
            source.check_within("host.memory_gib", host.memory_gib.get(), capacity, " GiB", why)?;
            if let Some(nvme) = &host.nvme {
                source.check_within("host.nvme.capacity_gib", nvme.capacity_gib.get(), capacity, " GiB", why)?;
                let bandwidth = super::device::BANDWIDTH_GBS;
                source.check_within("host.nvme.read_gbs", nvme.read_gbs.get(), bandwidth, " GB/s", why)?;
                source.check_within("host.nvme.write_gbs", nvme.write_gbs.get(), bandwidth, " GB/s", why)?;
            }
        }
        if node.host.is_some() && !node.sources.keys().any(|k| k == "host" || k.starts_with("host.")) {
            return Err(source.error("sources", "add a `host:` source for the host memory and NVMe figures"));
        }
        // Counts are covered by a `devices` source; links carry their own sources.
        if !node.sources.keys().any(|k| k == "devices" || k.starts_with("devices")) {
            return Err(source.error("sources", "add a `devices:` source for the device counts"));
        }
        Ok(node)
    }

    /// Devices of profile `device` in one node.
    pub fn count_of(&self, device: &str) -> u64 {
        self.devices.iter().filter(|g| g.device == device).map(|g| g.count.get()).sum()
    }
}
