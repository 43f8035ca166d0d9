//! Placing replicas on the cluster's devices and costing their communication.
//!
//! Each replica takes `tensor_parallel × pipeline_parallel` devices of its pool's device
//! profile, preferring the first node that can hold all of them, else the first free ones in
//! node order. Stage s uses devices `[s·tp, (s+1)·tp)`. Every tensor-parallel group must be
//! connected and every stage must reach the next.
//!
//! Sizes are bounded ([`MAX_DEVICES`], [`MAX_NODES`], [`MAX_LINKS`]) and checked before the
//! fabric is built; placement is linear in devices and replicas.

use super::schema::ScenarioFile;
use crate::calibration::Calibration;
use crate::error::Result;
use crate::hardware::{Catalog, DeviceGroup, DeviceProfile, Interconnect, LinkProfile, NodeProfile, Topology};
use crate::input::checked::Count;
use crate::input::YamlSource;
use crate::topology::{Affine, CollectiveCost, CommCache, Fabric};
use std::collections::{BTreeMap, HashMap};

/// Communication costs of one replica's parallel plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParallelComm {
    /// Devices per stage.
    pub tensor_parallel: u64,
    /// Stages.
    pub pipeline_parallel: u64,
    /// All-reduce within a stage's tensor-parallel group (the slowest stage's).
    pub tp_all_reduce: CollectiveCost,
    /// Activation hand-off between consecutive stages (the slowest boundary).
    pub pp_send: CollectiveCost,
    /// Most nodes one tensor-parallel group spans (1: inside one machine).
    pub tp_nodes_spanned: u64,
    /// The link bandwidth per device and direction the group's ring all-reduce runs at (the
    /// slowest group's), bytes/s; infinite for a single device.
    pub tp_link_bytes_per_s: f64,
}

/// Where one replica runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaPlacement {
    /// Fabric device indices, stage by stage.
    pub devices: Vec<usize>,
    /// Its communication costs.
    pub comm: ParallelComm,
    /// Where it may offload KV, when its pool offloads.
    pub offload: Option<super::offload::OffloadPlan>,
}

/// What a pool needs from the cluster.
pub(super) struct PoolDemand<'a> {
    pub device: &'a DeviceProfile,
    pub replicas: u64,
    pub tensor_parallel: u64,
    pub pipeline_parallel: u64,
    pub interconnect: Option<&'a LinkProfile>,
    pub calibration: Option<&'a Calibration>,
}

/// Most devices one cluster may hold (2^20): far beyond any deployment servesim models, and
/// small enough that the fabric and the placements fit in a few GiB of memory.
pub const MAX_DEVICES: u64 = 1 << 20;

/// Most node instances one cluster may hold (nodes without devices still take memory).
pub const MAX_NODES: u64 = MAX_DEVICES;

/// Most links (device–switch or device–device ports) one cluster may hold: a mesh of n
/// devices has n(n − 1)/2 of them.
pub const MAX_LINKS: u64 = 1 << 23;

/// The links one instance of `node` adds to the fabric.
fn links_per_node(node: &NodeProfile) -> u64 {
    let members = |groups: &[String]| -> u64 {
        node.devices.iter().filter(|d| groups.contains(&d.group)).fold(0u64, |sum, d| sum.saturating_add(d.count.get()))
    };
    let inside = node.interconnects.iter().map(|interconnect| {
        let m = members(&interconnect.members);
        match interconnect.topology {
            Topology::Switch => m,
            Topology::Mesh => m.saturating_mul(m.saturating_sub(1)) / 2,
            Topology::Chain => m.saturating_sub(1),
        }
    });
    let nics = node.scale_out.as_ref().map_or(0, |scale_out| members(&scale_out.members));
    inside.fold(nics, u64::saturating_add)
}

/// Refuses pools that could not fit in any cluster servesim builds, before anything is
/// allocated for them.
fn check_pool_sizes(source: &YamlSource, pools: &[PoolDemand]) -> Result<()> {
    let mut total: u64 = 0;
    for (index, pool) in pools.iter().enumerate() {
        let field = format!("deployment.pools[{index}].replicas");
        if pool.replicas > MAX_DEVICES {
            return Err(source.error(
                &field,
                format!(
                    "{} replicas are more than servesim places: a cluster holds at most {MAX_DEVICES} devices, and each replica needs at least one",
                    pool.replicas
                ),
            ));
        }
        let devices =
            pool.replicas.checked_mul(pool.tensor_parallel).and_then(|d| d.checked_mul(pool.pipeline_parallel));
        let devices = devices.filter(|&d| d <= MAX_DEVICES).ok_or_else(|| {
            source.error(
                &field,
                format!(
                    "{} replicas × tensor_parallel {} × pipeline_parallel {} need more devices than servesim places in one cluster ({MAX_DEVICES})",
                    pool.replicas, pool.tensor_parallel, pool.pipeline_parallel
                ),
            )
        })?;
        total += devices;
        if total > MAX_DEVICES {
            return Err(source.error(
                &field,
                format!(
                    "the pools up to this one need {total} devices, more than servesim places in one cluster ({MAX_DEVICES})"
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses clusters with more nodes or devices than servesim builds, before building them.
fn check_cluster_size(source: &YamlSource, nodes: &[(NodeProfile, u64)]) -> Result<()> {
    let limits = format!("a cluster holds at most {MAX_NODES} nodes, {MAX_DEVICES} devices and {MAX_LINKS} links");
    let (mut total_nodes, mut total_devices, mut total_links): (u64, u64, u64) = (0, 0, 0);
    for (index, (node, count)) in nodes.iter().enumerate() {
        let field = format!("cluster.nodes[{index}].count");
        let so_far = |total: u64, what: &str| {
            if index == 0 {
                String::new()
            } else {
                format!(" (with the entries above, {total} {what})")
            }
        };
        total_nodes = total_nodes.saturating_add(*count);
        if total_nodes > MAX_NODES {
            return Err(source.error(
                &field,
                format!("{count} nodes are more than servesim builds{}: {limits}", so_far(total_nodes, "nodes")),
            ));
        }
        let per_node = node.devices.iter().fold(0u64, |sum, group| sum.saturating_add(group.count.get()));
        total_devices = total_devices.saturating_add(count.saturating_mul(per_node));
        if total_devices > MAX_DEVICES {
            return Err(source.error(
                &field,
                format!(
                    "{count} × {} of {per_node} devices each are more devices than servesim builds{}: {limits}",
                    node.name,
                    so_far(total_devices, "devices")
                ),
            ));
        }
        let per_node = links_per_node(node);
        total_links = total_links.saturating_add(count.saturating_mul(per_node));
        if total_links > MAX_LINKS {
            let what = format!("{} has {per_node} links (a mesh of n devices has n(n − 1)/2)", node.name);
            return Err(if per_node > MAX_LINKS {
                source.error(
                    &format!("cluster.nodes[{index}].node"),
                    format!("{what}, more than servesim builds: {limits}"),
                )
            } else {
                source.error(
                    &field,
                    format!(
                        "{count} nodes, of which each {what}, are more links than servesim builds{}: {limits}",
                        so_far(total_links, "links")
                    ),
                )
            });
        }
    }
    Ok(())
}

/// Builds the fabric: the `cluster:` nodes, or one implicit node per replica whose devices
/// share a switch of the pool's `interconnect`. Refuses sizes beyond [`MAX_DEVICES`] and
/// [`MAX_NODES`] first.
pub(super) fn build_fabric(
    file: &ScenarioFile,
    source: &YamlSource,
    catalog: &Catalog,
    pools: &[PoolDemand],
) -> Result<Fabric> {
    check_pool_sizes(source, pools)?;
    let mut links: BTreeMap<String, LinkProfile> = catalog.links.clone();
    let nodes: Vec<(NodeProfile, u64)> = match &file.cluster {
        Some(cluster) => {
            if cluster.nodes.is_empty() {
                return Err(source.error("cluster.nodes", "list at least one node"));
            }
            for (index, pool) in file.deployment.pools.iter().enumerate() {
                if pool.interconnect.is_some() {
                    return Err(source.error(
                        &format!("deployment.pools[{index}].interconnect"),
                        "with `cluster:`, links come from the node profiles; remove `interconnect`",
                    ));
                }
            }
            let mut nodes = Vec::new();
            for (index, entry) in cluster.nodes.iter().enumerate() {
                let node = catalog.node(&entry.node, source, &format!("cluster.nodes[{index}].node"))?;
                nodes.push((node, entry.count.get()));
            }
            check_cluster_size(source, &nodes)?;
            nodes
        }
        None => pools
            .iter()
            .enumerate()
            .map(|(index, pool)| {
                let interconnects = pool
                    .interconnect
                    .map(|link| {
                        links.insert(link.name.clone(), link.clone());
                        vec![Interconnect {
                            link: link.name.clone(),
                            members: vec!["device".into()],
                            topology: Topology::Switch,
                        }]
                    })
                    .unwrap_or_default();
                let node = NodeProfile {
                    name: format!("pool{index}-replica"),
                    display_name: "implicit node of one replica".into(),
                    devices: vec![DeviceGroup {
                        group: "device".into(),
                        device: pool.device.name.clone(),
                        count: Count::new(pool.tensor_parallel * pool.pipeline_parallel).expect("≥ 1"),
                    }],
                    interconnects,
                    scale_out: None,
                    host: None,
                    sources: BTreeMap::new(),
                };
                (node, pool.replicas)
            })
            .collect(),
    };
    Ok(Fabric::build(&nodes, &links))
}

/// The free devices of one device profile, node by node. Each replica takes the first free
/// devices of a node, so a node's free devices are always the tail of its list and a cursor per
/// node is all the state there is.
#[derive(Default)]
struct FreeDevices {
    /// Every device of the profile, in device order (nodes are contiguous in it).
    devices: Vec<usize>,
    /// Per node that holds some: its next free device and its end, as positions in `devices`.
    nodes: Vec<(usize, usize)>,
    /// Free devices left in all.
    left: usize,
    /// For each replica size k: no node before this position in `nodes` has k free devices
    /// left (free devices only ever decrease, so it only moves forward).
    first_fit: HashMap<usize, usize>,
}

impl FreeDevices {
    /// The free devices of each device profile.
    fn index(fabric: &Fabric) -> HashMap<&str, FreeDevices> {
        let mut by_profile: HashMap<&str, FreeDevices> = HashMap::new();
        let mut last_node: HashMap<&str, usize> = HashMap::new();
        for (i, slot) in fabric.devices().iter().enumerate() {
            let free = by_profile.entry(slot.device.as_str()).or_default();
            if last_node.insert(slot.device.as_str(), slot.node_index) != Some(slot.node_index) {
                free.nodes.push((free.devices.len(), free.devices.len()));
            }
            free.devices.push(i);
            free.nodes.last_mut().expect("pushed above").1 += 1;
            free.left += 1;
        }
        by_profile
    }

    /// Takes `k` devices: the first free ones of the first node that has `k` free, else the
    /// first `k` free ones in device order; None when fewer than `k` are free.
    fn take(&mut self, k: usize) -> Option<Vec<usize>> {
        if k > self.left {
            return None;
        }
        let free_in = |node: (usize, usize)| node.1 - node.0;
        let mut fit = self.first_fit.get(&k).copied().unwrap_or(0);
        while fit < self.nodes.len() && free_in(self.nodes[fit]) < k {
            fit += 1;
        }
        self.first_fit.insert(k, fit);
        let chosen = if fit < self.nodes.len() {
            let node = &mut self.nodes[fit];
            node.0 += k;
            self.devices[node.0 - k..node.0].to_vec()
        } else {
            let mut at = self.first_fit.get(&1).copied().unwrap_or(0);
            while free_in(self.nodes[at]) == 0 {
                at += 1;
            }
            self.first_fit.insert(1, at);
            let mut chosen = Vec::with_capacity(k);
            while chosen.len() < k {
                let node = &mut self.nodes[at];
                let n = (k - chosen.len()).min(free_in(*node));
                chosen.extend_from_slice(&self.devices[node.0..node.0 + n]);
                node.0 += n;
                at += 1;
            }
            chosen
        };
        self.left -= k;
        Some(chosen)
    }
}

/// Places every replica of every pool; errors name the pool and what is missing.
///
/// Time is linear in devices and replicas: free devices are indexed once, and communication
/// is costed once per group shape (replicas placed alike on identical nodes share it).
pub(super) fn place(fabric: &Fabric, source: &YamlSource, pools: &[PoolDemand]) -> Result<Vec<Vec<ReplicaPlacement>>> {
    let devices = fabric.devices();
    let mut free = FreeDevices::index(fabric);
    let mut costs = CommCache::new(fabric);
    let mut placements = Vec::new();
    for (pool_index, pool) in pools.iter().enumerate() {
        let field = format!("deployment.pools[{pool_index}]");
        let (tp, pp) = (pool.tensor_parallel as usize, pool.pipeline_parallel as usize);
        let per_replica = tp * pp;
        let mut pool_placements = Vec::with_capacity(pool.replicas as usize);
        let slots = free.entry(pool.device.name.as_str()).or_default();
        for replica in 0..pool.replicas {
            let Some(chosen) = slots.take(per_replica) else {
                let total = slots.devices.len();
                let kinds: Vec<String> = {
                    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
                    for d in devices {
                        *count.entry(d.device.as_str()).or_default() += 1;
                    }
                    count.iter().map(|(k, v)| format!("{v} × {k}")).collect()
                };
                return Err(source.error(
                    &format!("{field}.replicas"),
                    format!(
                        "the pool needs {} × {} = {} {} devices (replica {} has none left); the cluster has {total} of them in all, {} free before this pool; it holds {}",
                        pool.replicas,
                        per_replica,
                        pool.replicas as usize * per_replica,
                        pool.device.name,
                        replica,
                        slots.left + replica as usize * per_replica,
                        kinds.join(", ")
                    ),
                ));
            };
            let no_path = |(a, b): (usize, usize), what: &str| {
                source.error(
                    &field,
                    format!(
                        "no path between {} and {} of {what} of replica {replica}; join them with an interconnect in the node profile (or `interconnect:` without a cluster), or keep the group inside one node",
                        devices[a].label(),
                        devices[b].label()
                    ),
                )
            };
            let stages: Vec<&[usize]> = chosen.chunks(tp).collect();
            let nodes_of = |group: &[usize]| {
                let mut nodes: Vec<usize> = group.iter().map(|&d| devices[d].node_index).collect();
                nodes.dedup();
                nodes.len() as u64
            };
            // A measured curve applies when the calibration saw the same group shape.
            let curve = |collective: &str, group: &[usize]| {
                pool.calibration
                    .and_then(|c| c.collective(collective, group.len() as u64, nodes_of(group)))
                    .map(|c| c.efficiency_by_log2_bytes.clone())
            };
            let mut tp_all_reduce = Affine::default();
            for group in &stages {
                let group_comm = costs.group_comm(group).map_err(|pair| no_path(pair, "the tensor-parallel group"))?;
                tp_all_reduce = tp_all_reduce.max(group_comm.all_reduce);
            }
            let mut pp_send = Affine::default();
            let mut pp_pair: Vec<usize> = Vec::new();
            for pair in stages.windows(2) {
                let send =
                    costs.send_recv(pair[0][0], pair[1][0]).map_err(|p| no_path(p, "consecutive pipeline stages"))?;
                if pp_pair.is_empty() || send.max(pp_send) == send {
                    pp_pair = vec![pair[0][0], pair[1][0]];
                }
                pp_send = pp_send.max(send);
            }
            // A ring all-reduce moves 2(n − 1)/n bytes per byte over each device's link.
            let ring_factor = 2.0 * (tp as f64 - 1.0) / tp as f64;
            let tp_link_bytes_per_s = if tp > 1 && tp_all_reduce.seconds_per_byte > 0.0 {
                ring_factor / tp_all_reduce.seconds_per_byte
            } else {
                f64::INFINITY
            };
            let comm = ParallelComm {
                tp_link_bytes_per_s,
                tp_nodes_spanned: stages.iter().map(|g| nodes_of(g)).max().unwrap_or(1),
                tensor_parallel: tp as u64,
                pipeline_parallel: pp as u64,
                tp_all_reduce: CollectiveCost { affine: tp_all_reduce, efficiency: curve("all_reduce", stages[0]) },
                pp_send: CollectiveCost {
                    affine: pp_send,
                    efficiency: if pp_pair.is_empty() { None } else { curve("send_recv", &pp_pair) },
                },
            };
            pool_placements.push(ReplicaPlacement { devices: chosen, comm, offload: None });
        }
        placements.push(pool_placements);
    }
    Ok(placements)
}
