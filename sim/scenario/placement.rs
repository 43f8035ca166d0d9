//! Placing replicas on the cluster's devices and costing their communication.
//!
//! Each replica takes `tensor_parallel × pipeline_parallel` devices of its pool's device
//! profile, preferring the first node that can hold all of them, else the first free ones in
//! node order. Stage s uses devices `[s·tp, (s+1)·tp)`. Every tensor-parallel group must be
//! connected and every stage must reach the next.

use super::schema::ScenarioFile;
use crate::calibration::Calibration;
use crate::error::Result;
use crate::hardware::{Catalog, DeviceGroup, DeviceProfile, Interconnect, LinkProfile, NodeProfile, Topology};
use crate::input::checked::Count;
use crate::input::YamlSource;
use crate::topology::{Affine, CollectiveCost, Fabric};
use std::collections::BTreeMap;

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
}

/// Where one replica runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaPlacement {
    /// Fabric device indices, stage by stage.
    pub devices: Vec<usize>,
    /// Its communication costs.
    pub comm: ParallelComm,
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

/// Builds the fabric: the `cluster:` nodes, or one implicit node per replica whose devices
/// share a switch of the pool's `interconnect`.
pub(super) fn build_fabric(
    file: &ScenarioFile,
    source: &YamlSource,
    catalog: &Catalog,
    pools: &[PoolDemand],
) -> Result<Fabric> {
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
                    sources: BTreeMap::new(),
                };
                (node, pool.replicas)
            })
            .collect(),
    };
    Ok(Fabric::build(&nodes, &links))
}

/// Places every replica of every pool; errors name the pool and what is missing.
pub(super) fn place(fabric: &Fabric, source: &YamlSource, pools: &[PoolDemand]) -> Result<Vec<Vec<ReplicaPlacement>>> {
    let devices = fabric.devices();
    let mut used = vec![false; devices.len()];
    let mut placements = Vec::new();
    for (pool_index, pool) in pools.iter().enumerate() {
        let field = format!("deployment.pools[{pool_index}]");
        let (tp, pp) = (pool.tensor_parallel as usize, pool.pipeline_parallel as usize);
        let per_replica = tp * pp;
        let mut pool_placements = Vec::new();
        for replica in 0..pool.replicas {
            let free: Vec<usize> =
                (0..devices.len()).filter(|&i| !used[i] && devices[i].device == pool.device.name).collect();
            let mut by_node: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for &i in &free {
                by_node.entry(devices[i].node_index).or_default().push(i);
            }
            let chosen: Vec<usize> = match by_node.values().find(|slots| slots.len() >= per_replica) {
                Some(slots) => slots[..per_replica].to_vec(),
                None if free.len() >= per_replica => free[..per_replica].to_vec(),
                None => {
                    let total = devices.iter().filter(|d| d.device == pool.device.name).count();
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
                            free.len() + replica as usize * per_replica,
                            kinds.join(", ")
                        ),
                    ));
                }
            };
            for &i in &chosen {
                used[i] = true;
            }
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
                let group_comm = fabric.group_comm(group).map_err(|pair| no_path(pair, "the tensor-parallel group"))?;
                tp_all_reduce = tp_all_reduce.max(group_comm.all_reduce);
            }
            let mut pp_send = Affine::default();
            let mut pp_pair: Vec<usize> = Vec::new();
            for pair in stages.windows(2) {
                let send =
                    fabric.send_recv(pair[0][0], pair[1][0]).map_err(|p| no_path(p, "consecutive pipeline stages"))?;
                if pp_pair.is_empty() || send.max(pp_send) == send {
                    pp_pair = vec![pair[0][0], pair[1][0]];
                }
                pp_send = pp_send.max(send);
            }
            let comm = ParallelComm {
                tensor_parallel: tp as u64,
                pipeline_parallel: pp as u64,
                tp_all_reduce: CollectiveCost { affine: tp_all_reduce, efficiency: curve("all_reduce", stages[0]) },
                pp_send: CollectiveCost {
                    affine: pp_send,
                    efficiency: if pp_pair.is_empty() { None } else { curve("send_recv", &pp_pair) },
                },
            };
            pool_placements.push(ReplicaPlacement { devices: chosen, comm });
        }
        placements.push(pool_placements);
    }
    Ok(placements)
}
