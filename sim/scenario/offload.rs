//! Where a replica can offload KV: its share of its node's host DRAM and NVMe, reached over
//! the route from its devices to a CPU of the same node (its PCIe or chip-to-chip link),
//! resolved once placement has put it in a node.
//!
//! Shortcuts (named in ARCHITECTURE.md): each device moves its own shard of the KV over its
//! own host link, concurrently and without contention on the host side; a node's host memory
//! and NVMe are shared out by accelerator.

use super::placement::ReplicaPlacement;
use super::schema::KvOffloadSection;
use super::MemoryPlan;
use crate::error::Result;
use crate::hardware::{Catalog, DeviceKind};
use crate::input::YamlSource;
use crate::topology::Fabric;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What one replica may offload KV to, and at what speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffloadPlan {
    /// Host-DRAM tier, in KV blocks of the replica.
    pub host_blocks: u64,
    /// NVMe tier, in KV blocks of the replica (0: none).
    pub nvme_blocks: u64,
    /// KV bytes of one block on one device (each device moves its shard).
    pub block_bytes_per_device: f64,
    /// Bandwidth of each device's host link, per direction, bytes/s.
    pub host_link_bytes_per_s: f64,
    /// Latency of the host link, s.
    pub host_link_latency_s: f64,
    /// NVMe read and write bandwidth per device (the node's drives shared by accelerator),
    /// bytes/s.
    pub nvme_read_bytes_per_s: f64,
    /// See `nvme_read_bytes_per_s`.
    pub nvme_write_bytes_per_s: f64,
    /// Whether preemption swaps KV to host DRAM.
    pub swap_preemption: bool,
}

impl OffloadPlan {
    /// Seconds to move `blocks` blocks between device and host DRAM.
    pub fn host_transfer_s(&self, blocks: u64) -> f64 {
        if blocks == 0 {
            return 0.0;
        }
        self.host_link_latency_s + blocks as f64 * self.block_bytes_per_device / self.host_link_bytes_per_s
    }

    /// Seconds to read `blocks` blocks from NVMe into the device (through the host link).
    pub fn nvme_read_s(&self, blocks: u64) -> f64 {
        if blocks == 0 {
            return 0.0;
        }
        let bandwidth = self.nvme_read_bytes_per_s.min(self.host_link_bytes_per_s);
        self.host_link_latency_s + blocks as f64 * self.block_bytes_per_device / bandwidth
    }
}

/// Resolves the offload of one replica at `placement` of a pool whose memory is `memory`
/// and whose section (at `field`) is `section`.
#[allow(clippy::too_many_arguments)]
pub(super) fn offload_plan(
    section: &KvOffloadSection,
    engine_swaps: bool,
    placement: &ReplicaPlacement,
    memory: &MemoryPlan,
    fabric: &Fabric,
    catalog: &Catalog,
    source: &YamlSource,
    field: &str,
) -> Result<OffloadPlan> {
    let devices = fabric.devices();
    let first = placement.devices[0];
    let slot = &devices[first];
    let node = catalog.nodes.get(&slot.node).ok_or_else(|| {
        source.error(
            field,
            "offloading KV needs the replicas in a node profile with `host:` memory: describe the machines under `cluster:` (e.g. `- node: dgx-h100`)",
        )
    })?;
    let host = node.host.as_ref().ok_or_else(|| {
        source.error(
            field,
            format!(
                "node {} gives no `host:` memory to offload KV to; add a `host:` section to its profile",
                node.name
            ),
        )
    })?;
    let is_cpu = |device: &str| catalog.devices.get(device).is_some_and(|d| d.kind == DeviceKind::Cpu);
    let cpu = devices
        .iter()
        .position(|d| d.node_index == slot.node_index && is_cpu(&d.device))
        .ok_or_else(|| source.error(field, format!("node {} has no CPU device to hold offloaded KV", node.name)))?;
    let mut link: Option<(f64, f64)> = None;
    for &device in &placement.devices {
        let (bandwidth, latency) = fabric.path_capacity(device, cpu).ok_or_else(|| {
            source.error(
                field,
                format!("no path from {} to the host CPU {}", devices[device].label(), devices[cpu].label()),
            )
        })?;
        link = Some(link.map_or((bandwidth, latency), |(b, l)| (b.min(bandwidth), l.max(latency))));
    }
    let (host_link_bytes_per_s, host_link_latency_s) = link.expect("a replica has devices");
    let accelerators: u64 = node.devices.iter().filter(|g| !is_cpu(&g.device)).map(|g| g.count.get()).sum();
    let share = placement.devices.len() as f64 / accelerators.max(1) as f64;
    let block_bytes_per_device = memory.kv_bytes_per_token * memory.block_size_tokens as f64;
    let replica_block_bytes = block_bytes_per_device * placement.devices.len() as f64;
    let host_share_gib = host.memory_gib.get() * share;
    let cpu_gib = match section.cpu_gib {
        Some(gib) if gib.get() > host_share_gib => {
            return Err(source.error(
                &format!("{field}.cpu_gib"),
                format!(
                    "{gib} GiB is more than this replica's share of {}'s host memory ({host_share_gib:.1} GiB: {} GiB over {accelerators} accelerators, {} of them this replica's)",
                    node.name,
                    host.memory_gib,
                    placement.devices.len()
                ),
            ))
        }
        Some(gib) => gib.get(),
        None => host_share_gib,
    };
    let (nvme_blocks, nvme_read, nvme_write) = match (section.nvme_gib, &host.nvme) {
        (None, _) => (0, 0.0, 0.0),
        (Some(_), None) => {
            return Err(source.error(
                &format!("{field}.nvme_gib"),
                format!("node {} gives no `host.nvme` drives to offload KV to", node.name),
            ))
        }
        (Some(gib), Some(nvme)) => {
            let nvme_share_gib = nvme.capacity_gib.get() * share;
            if gib.get() > nvme_share_gib {
                return Err(source.error(
                    &format!("{field}.nvme_gib"),
                    format!(
                        "{gib} GiB is more than this replica's share of {}'s NVMe ({nvme_share_gib:.1} GiB)",
                        node.name
                    ),
                ));
            }
            // Each device reads its shard; the node's drives serve all accelerators.
            let per_device = |gbs: f64| gbs * 1e9 / accelerators.max(1) as f64;
            (
                (gib.get() * GIB / replica_block_bytes) as u64,
                per_device(nvme.read_gbs.get()),
                per_device(nvme.write_gbs.get()),
            )
        }
    };
    Ok(OffloadPlan {
        host_blocks: (cpu_gib * GIB / replica_block_bytes) as u64,
        nvme_blocks,
        block_bytes_per_device,
        host_link_bytes_per_s,
        host_link_latency_s,
        nvme_read_bytes_per_s: nvme_read,
        nvme_write_bytes_per_s: nvme_write,
        swap_preemption: section.swap_preemption.unwrap_or(engine_swaps),
    })
}
