//! Topology: the graph of devices, switches and links of a cluster (petgraph), routes between
//! devices, and the cost of collectives over those routes.
//!
//! Vertices are devices and switches; each directed edge is one direction of a device port
//! with the link profile's bandwidth per direction and half its latency (so a device–switch–
//! device path carries the link's full latency). A `switch` interconnect is one non-blocking
//! switch vertex; `mesh` joins every pair directly with bandwidth / (members − 1); `chain`
//! joins neighbours; a node's scale-out NICs attach its members to one cluster-wide fabric
//! switch. This module knows nothing of requests or batching.
//!
//! Sizes: building is linear in the devices, and a route only ever searches the two nodes it
//! joins (a shortest path never passes through a third node: that would cross the fabric
//! switch twice), so its cost does not grow with the cluster. [`CommCache`] reuses collective
//! costs between groups of the same shape.

mod cache;
mod collective;
mod flows;

pub use cache::CommCache;
pub use collective::{Affine, CollectiveCost, GroupComm};
pub use flows::FlowSet;

use crate::hardware::{LinkProfile, NodeProfile, Topology};
use ordered_float::OrderedFloat;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

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
    /// Fraction of `bytes_per_s` an expert all-to-all achieves here (the link profile's
    /// `all_to_all.efficiency`; 1 when it has none).
    pub all_to_all_efficiency: f64,
    /// Fixed cost of an all-to-all crossing this port, s (`all_to_all.fixed_latency_us`; 0
    /// when none).
    pub all_to_all_fixed_s: f64,
}

#[derive(Debug, Clone)]
enum Vertex {
    Device,
    /// A switch; `reduces` when it can reduce in-network (NVLS/SHARP).
    Switch {
        reduces: bool,
    },
}

/// One node instance of the fabric.
#[derive(Debug, Clone)]
struct NodeInstance {
    /// Index of its entry in the list the fabric was built from (instances of one entry are
    /// wired identically).
    kind: usize,
    /// Its first device; its devices are contiguous.
    first_device: usize,
    /// Its vertices (devices and its own switches) are `vertices.0..vertices.1`.
    vertices: (usize, usize),
    /// The fabric switch's edges towards its devices, in device order.
    from_fabric: Vec<EdgeIndex>,
}

impl NodeInstance {
    fn holds(&self, vertex: NodeIndex) -> bool {
        (self.vertices.0..self.vertices.1).contains(&vertex.index())
    }
}

/// The cluster graph.
#[derive(Debug, Clone)]
pub struct Fabric {
    graph: DiGraph<Vertex, Port>,
    devices: Vec<DeviceSlot>,
    nodes: Vec<NodeInstance>,
    /// The switch joining the nodes' NICs, if any node has one.
    fabric_switch: Option<NodeIndex>,
}

impl Fabric {
    /// Builds the graph of `count` instances of each node, joined by one fabric switch where
    /// nodes have scale-out NICs. `links` must hold every link the nodes name.
    ///
    /// Time and memory are linear in the devices; callers bound the sizes (placement refuses
    /// clusters beyond its limits before building).
    pub fn build(nodes: &[(NodeProfile, u64)], links: &BTreeMap<String, LinkProfile>) -> Fabric {
        let mut fabric = Fabric { graph: DiGraph::new(), devices: Vec::new(), nodes: Vec::new(), fabric_switch: None };
        let mut node_index = 0;
        for (kind, (node, count)) in nodes.iter().enumerate() {
            for _ in 0..*count {
                let first_device = fabric.devices.len();
                let first_vertex = fabric.graph.node_count();
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
                let mut instance = NodeInstance {
                    kind,
                    first_device,
                    vertices: (first_vertex, fabric.graph.node_count()),
                    from_fabric: Vec::new(),
                };
                if let Some(scale_out) = &node.scale_out {
                    if let Some(link) = links.get(&scale_out.link) {
                        let switch = *fabric
                            .fabric_switch
                            .get_or_insert_with(|| fabric.graph.add_node(Vertex::Switch { reduces: false }));
                        if link.switch_reduction {
                            fabric.graph[switch] = Vertex::Switch { reduces: true };
                        }
                        for member in members_of(&scale_out.members) {
                            let vertex = fabric.devices[member].vertex;
                            let (_, back) = fabric.connect(vertex, switch, link, link.bandwidth_bytes_per_s(), 0.5);
                            instance.from_fabric.push(back);
                        }
                    }
                }
                fabric.nodes.push(instance);
                node_index += 1;
            }
        }
        fabric
    }

    /// Joins `a` and `b` both ways; returns the edges a→b and b→a.
    fn connect(
        &mut self,
        a: NodeIndex,
        b: NodeIndex,
        link: &LinkProfile,
        bytes_per_s: f64,
        latency_share: f64,
    ) -> (EdgeIndex, EdgeIndex) {
        let port = Port {
            bytes_per_s,
            latency_s: link.latency_us.get() * 1e-6 * latency_share,
            link: link.name.clone(),
            all_to_all_efficiency: link.all_to_all.map_or(1.0, |c| c.efficiency.get()),
            all_to_all_fixed_s: link.all_to_all.map_or(0.0, |c| c.fixed_latency_us.get() * 1e-6),
        };
        (self.graph.add_edge(a, b, port.clone()), self.graph.add_edge(b, a, port))
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

    /// The bottleneck bandwidth (bytes/s) and summed latency (s) of the route from `a` to `b`,
    /// None when no path exists.
    pub fn path_capacity(&self, a: usize, b: usize) -> Option<(f64, f64)> {
        let route = self.route(a, b)?;
        let bandwidth = route.iter().map(|&e| self.port(e).bytes_per_s).fold(f64::INFINITY, f64::min);
        let latency = route.iter().map(|&e| self.port(e).latency_s).sum();
        Some((bandwidth, latency))
    }

    /// All devices, in node order then group order.
    pub fn devices(&self) -> &[DeviceSlot] {
        &self.devices
    }

    /// The lowest-latency route from device `a` to device `b` (ties: fewer hops, then wider
    /// links, then the path found first), as edges; None when no path exists.
    ///
    /// Dijkstra (A* without an estimate) over the vertices of the two devices' nodes and the
    /// fabric switch, whose only useful edges lead into `b`'s node: a path through a third node
    /// would cross the fabric switch twice, and dropping that loop makes it shorter. So the
    /// search is as large as two nodes whatever the cluster's size, and it depends only on how
    /// those nodes are wired: devices at the same places in identically wired nodes get the
    /// same route (what [`CommCache`] relies on).
    pub fn route(&self, a: usize, b: usize) -> Option<Vec<EdgeIndex>> {
        let (from, to) = (self.devices[a].vertex, self.devices[b].vertex);
        let (node_a, node_b) = (&self.nodes[self.devices[a].node_index], &self.nodes[self.devices[b].node_index]);
        let cost = |port: &Port| port.latency_s + 1e-9 + 1e-3 / port.bytes_per_s;
        // The searched vertices, numbered: `a`'s node, then `b`'s (when another), then the
        // fabric switch.
        let span = |node: &NodeInstance| node.vertices.1 - node.vertices.0;
        let b_offset = if std::ptr::eq(node_a, node_b) { 0 } else { span(node_a) };
        let switch_slot = b_offset + span(node_b);
        let slot = |v: NodeIndex| -> Option<usize> {
            if node_a.holds(v) {
                Some(v.index() - node_a.vertices.0)
            } else if node_b.holds(v) {
                Some(b_offset + v.index() - node_b.vertices.0)
            } else {
                (Some(v) == self.fabric_switch).then_some(switch_slot)
            }
        };
        let mut scores: Vec<Option<f64>> = vec![None; switch_slot + 1];
        let mut predecessor: Vec<Option<NodeIndex>> = vec![None; switch_slot + 1];
        let mut done = vec![false; switch_slot + 1];
        scores[slot(from).expect("in its node")] = Some(0.0);
        // Min-heap on (score, order of insertion).
        let mut next: BinaryHeap<(Reverse<OrderedFloat<f64>>, Reverse<u64>, NodeIndex)> = BinaryHeap::new();
        let mut pushed = 0u64;
        next.push((Reverse(OrderedFloat(0.0)), Reverse(pushed), from));
        while let Some((_, _, vertex)) = next.pop() {
            let at = slot(vertex).expect("only searched vertices are queued");
            if vertex == to {
                let mut vertices = vec![to];
                while let Some(before) = predecessor[slot(*vertices.last().expect("not empty")).expect("searched")] {
                    vertices.push(before);
                }
                vertices.reverse();
                return Some(vertices.windows(2).map(|pair| self.widest_edge(pair[0], pair[1])).collect());
            }
            if std::mem::replace(&mut done[at], true) {
                continue;
            }
            let score = scores[at].expect("queued vertices are scored");
            let mut relax = |target: NodeIndex, port: &Port| {
                let Some(target_slot) = slot(target) else { return };
                let candidate = score + cost(port);
                if scores[target_slot].is_some_and(|known| known <= candidate) {
                    return;
                }
                scores[target_slot] = Some(candidate);
                predecessor[target_slot] = Some(vertex);
                pushed += 1;
                next.push((Reverse(OrderedFloat(candidate)), Reverse(pushed), target));
            };
            if at == switch_slot {
                for &edge in &node_b.from_fabric {
                    let target = self.graph.edge_endpoints(edge).expect("an edge of the graph").1;
                    relax(target, &self.graph[edge]);
                }
            } else {
                for edge in self.graph.edges(vertex) {
                    relax(edge.target(), edge.weight());
                }
            }
        }
        None
    }

    /// The widest of the parallel edges from `from` to `to` (the last one listed on ties).
    fn widest_edge(&self, from: NodeIndex, to: NodeIndex) -> EdgeIndex {
        // List the edges at the end that is not the fabric switch (which has an edge per NIC);
        // both ends list them newest first.
        let widest = |edges: &mut dyn Iterator<Item = petgraph::graph::EdgeReference<'_, Port>>| {
            edges.max_by(|x, y| x.weight().bytes_per_s.total_cmp(&y.weight().bytes_per_s)).map(|e| e.id())
        };
        if Some(from) == self.fabric_switch {
            widest(&mut self.graph.edges_directed(to, Direction::Incoming).filter(|e| e.source() == from))
        } else {
            widest(&mut self.graph.edges_connecting(from, to))
        }
        .expect("consecutive route vertices are joined")
    }

    /// Where device `d` sits as far as costs can tell: its node's kind and its index inside
    /// that node.
    fn position(&self, d: usize) -> (usize, usize) {
        let node = &self.nodes[self.devices[d].node_index];
        (node.kind, d - node.first_device)
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
