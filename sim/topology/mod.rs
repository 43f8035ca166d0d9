//! Topology: the graph of devices, switches and links of a cluster (petgraph), routes between
//! devices, and the cost of collectives over those routes.
//!
//! Vertices are devices and switches; each directed edge is one direction of a device port
//! with the link profile's bandwidth per direction and half its latency (so a device–switch–
//! device path carries the link's full latency). A `switch` interconnect is one non-blocking
//! switch vertex; `mesh` joins every pair directly with bandwidth / (members − 1); `chain`
//! joins neighbours; a node's scale-out NICs attach its members to one cluster-wide fabric
//! switch. This module knows nothing of requests or batching.

mod collective;
mod flows;

pub use collective::{Affine, CollectiveCost, GroupComm};
pub use flows::FlowSet;

use crate::hardware::{LinkProfile, NodeProfile, Topology};
use petgraph::algo::astar;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use std::collections::BTreeMap;

/// One device of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSlot {
    /// Index of its node instance.
    pub node_index: usize,
    /// Node profile name.
    pub node: String,
    /// Device group in the node.
    pub group: String,
    /// Device profile name.
    pub device: String,
    /// Index within its group.
    pub index_in_group: u64,
    vertex: NodeIndex,
}

impl DeviceSlot {
    /// A human-readable name such as `dgx-h100#1/gpu3`.
    pub fn label(&self) -> String {
        format!("{}#{}/{}{}", self.node, self.node_index, self.group, self.index_in_group)
    }
}

/// One direction of a port.
#[derive(Debug, Clone)]
pub struct Port {
    /// Bandwidth, bytes per second.
    pub bytes_per_s: f64,
    /// Latency of this hop, s.
    pub latency_s: f64,
    /// Link profile name.
    pub link: String,
}

#[derive(Debug, Clone)]
enum Vertex {
    Device,
    /// A switch; `reduces` when it can reduce in-network (NVLS/SHARP).
    Switch {
        reduces: bool,
    },
}

/// The cluster graph.
#[derive(Debug, Clone)]
pub struct Fabric {
    graph: DiGraph<Vertex, Port>,
    devices: Vec<DeviceSlot>,
}

impl Fabric {
    /// Builds the graph of `count` instances of each node, joined by one fabric switch where
    /// nodes have scale-out NICs. `links` must hold every link the nodes name.
    pub fn build(nodes: &[(NodeProfile, u64)], links: &BTreeMap<String, LinkProfile>) -> Fabric {
        let mut fabric = Fabric { graph: DiGraph::new(), devices: Vec::new() };
        let mut cluster_switch: Option<NodeIndex> = None;
        let mut node_index = 0;
        for (node, count) in nodes {
            for _ in 0..*count {
                let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                for group in &node.devices {
                    for i in 0..group.count.get() {
                        let vertex = fabric.graph.add_node(Vertex::Device);
                        by_group.entry(group.group.as_str()).or_default().push(fabric.devices.len());
                        fabric.devices.push(DeviceSlot {
                            node_index,
                            node: node.name.clone(),
                            group: group.group.clone(),
                            device: group.device.clone(),
                            index_in_group: i,
                            vertex,
                        });
                    }
                }
                let members_of = |groups: &[String]| -> Vec<usize> {
                    groups.iter().flat_map(|g| by_group.get(g.as_str()).cloned().unwrap_or_default()).collect()
                };
                for interconnect in &node.interconnects {
                    let Some(link) = links.get(&interconnect.link) else { continue };
                    let members = members_of(&interconnect.members);
                    fabric.wire(&members, link, interconnect.topology);
                }
                if let Some(scale_out) = &node.scale_out {
                    if let Some(link) = links.get(&scale_out.link) {
                        let switch = *cluster_switch
                            .get_or_insert_with(|| fabric.graph.add_node(Vertex::Switch { reduces: false }));
                        if link.switch_reduction {
                            fabric.graph[switch] = Vertex::Switch { reduces: true };
                        }
                        for member in members_of(&scale_out.members) {
                            let vertex = fabric.devices[member].vertex;
                            fabric.connect(vertex, switch, link, link.bandwidth_bytes_per_s(), 0.5);
                        }
                    }
                }
                node_index += 1;
            }
        }
        fabric
    }

    fn connect(&mut self, a: NodeIndex, b: NodeIndex, link: &LinkProfile, bytes_per_s: f64, latency_share: f64) {
        let port =
            Port { bytes_per_s, latency_s: link.latency_us.get() * 1e-6 * latency_share, link: link.name.clone() };
        self.graph.add_edge(a, b, port.clone());
        self.graph.add_edge(b, a, port);
    }

    fn wire(&mut self, members: &[usize], link: &LinkProfile, topology: Topology) {
        let vertices: Vec<NodeIndex> = members.iter().map(|&m| self.devices[m].vertex).collect();
        let bandwidth = link.bandwidth_bytes_per_s();
        match topology {
            Topology::Switch => {
                let switch = self.graph.add_node(Vertex::Switch { reduces: link.switch_reduction });
                for v in vertices {
                    self.connect(v, switch, link, bandwidth, 0.5);
                }
            }
            Topology::Mesh => {
                let share = bandwidth / (vertices.len().saturating_sub(1).max(1)) as f64;
                for (i, &a) in vertices.iter().enumerate() {
                    for &b in &vertices[i + 1..] {
                        self.connect(a, b, link, share, 1.0);
                    }
                }
            }
            Topology::Chain => {
                for pair in vertices.windows(2) {
                    self.connect(pair[0], pair[1], link, bandwidth, 1.0);
                }
            }
        }
    }

    /// All devices, in node order then group order.
    pub fn devices(&self) -> &[DeviceSlot] {
        &self.devices
    }

    /// The lowest-latency route from device `a` to device `b` (ties: fewer hops, then wider
    /// links), as edges; None when no path exists.
    pub fn route(&self, a: usize, b: usize) -> Option<Vec<EdgeIndex>> {
        let (from, to) = (self.devices[a].vertex, self.devices[b].vertex);
        let (_, vertices) = astar(
            &self.graph,
            from,
            |v| v == to,
            |e| e.weight().latency_s + 1e-9 + 1e-3 / e.weight().bytes_per_s,
            |_| 0.0,
        )?;
        Some(
            vertices
                .windows(2)
                .map(|pair| {
                    // The widest of parallel edges between the two vertices.
                    self.graph
                        .edges_connecting(pair[0], pair[1])
                        .max_by(|x, y| x.weight().bytes_per_s.total_cmp(&y.weight().bytes_per_s))
                        .map(|e| petgraph::visit::EdgeRef::id(&e))
                        .expect("consecutive route vertices are joined")
                })
                .collect(),
        )
    }

    /// A port by edge.
    pub fn port(&self, edge: EdgeIndex) -> &Port {
        &self.graph[edge]
    }

    /// Every port's bandwidth, bytes per second, indexed by edge index.
    pub fn port_bandwidths(&self) -> Vec<f64> {
        self.graph.edge_weights().map(|p| p.bytes_per_s).collect()
    }

    /// For each in-network-reducing switch that every member has a port on, those ports.
    fn reducing_switch_ports(&self, members: &[usize]) -> Vec<Vec<&Port>> {
        let Some(&first) = members.first() else { return Vec::new() };
        let mut found = Vec::new();
        for candidate in self.graph.neighbors(self.devices[first].vertex) {
            if !matches!(self.graph[candidate], Vertex::Switch { reduces: true }) {
                continue;
            }
            let ports: Option<Vec<&Port>> = members
                .iter()
                .map(|&m| self.graph.find_edge(self.devices[m].vertex, candidate).map(|e| &self.graph[e]))
                .collect();
            if let Some(ports) = ports {
                found.push(ports);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests;
