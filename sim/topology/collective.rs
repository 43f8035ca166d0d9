//! Collective costs on the fabric as affine functions of the message size: α (latency steps)
//! plus bytes × β, where β comes from the most loaded port.
//!
//! Sharing rule: all flows of one collective that cross the same port direction share its
//! bandwidth equally, so the collective takes as long as its busiest port needs (the sum of
//! the bytes crossing it over its bandwidth). Collectives of different replicas are assumed not
//! to contend: in the bundled nodes every device has its own NVLink/NIC ports.

use super::Fabric;
use std::collections::BTreeMap;

/// `alpha_s + seconds_per_byte × bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Affine {
    /// Fixed cost, s.
    pub alpha_s: f64,
    /// Marginal cost, s per byte.
    pub seconds_per_byte: f64,
}

impl Affine {
    /// Cost of `bytes`.
    pub fn seconds(&self, bytes: f64) -> f64 {
        if bytes <= 0.0 {
            0.0
        } else {
            self.alpha_s + self.seconds_per_byte * bytes
        }
    }

    fn then(self, other: Affine) -> Affine {
        Affine {
            alpha_s: self.alpha_s + other.alpha_s,
            seconds_per_byte: self.seconds_per_byte + other.seconds_per_byte,
        }
    }

    /// The slower of two costs (by β, then α).
    pub fn max(self, other: Affine) -> Affine {
        if (other.seconds_per_byte, other.alpha_s) > (self.seconds_per_byte, self.alpha_s) {
            other
        } else {
            self
        }
    }
}

/// A collective's cost with an optional measured efficiency curve: `α + β·bytes / e(bytes)`,
/// where `e` is the fraction of the topology model's bandwidth the collective achieves at that
/// message size (fitted by `servesim calibrate`; 1 when absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectiveCost {
    /// Latency and nominal bandwidth from the topology.
    pub affine: Affine,
    /// Measured bandwidth efficiency against log2(bytes).
    pub efficiency: Option<crate::cost::Curve>,
}

impl CollectiveCost {
    /// A cost with no measured curve.
    pub fn nominal(affine: Affine) -> Self {
        CollectiveCost { affine, efficiency: None }
    }

    /// Cost of `bytes`.
    pub fn seconds(&self, bytes: f64) -> f64 {
        if bytes <= 0.0 {
            return 0.0;
        }
        let efficiency = self.efficiency.as_ref().map_or(1.0, |curve| curve.at_unclamped(bytes));
        self.affine.alpha_s + self.affine.seconds_per_byte * bytes / efficiency
    }
}

/// Collective costs of one group of devices (bytes are per device: the buffer each holds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GroupComm {
    /// All-reduce of a buffer.
    pub all_reduce: Affine,
    /// All-gather producing a buffer of that size.
    pub all_gather: Affine,
    /// Reduce-scatter of a buffer of that size.
    pub reduce_scatter: Affine,
    /// All-to-all of a buffer of that size (1/n to each member), with the links' all-to-all
    /// calibration (see [`Fabric::all_to_all_v`]).
    pub all_to_all: Affine,
}

/// A transfer of `fraction` of the message from `from` to `to` (device indices).
type Flow = (usize, usize, f64);

/// Per port (edge index) the fraction of a message it carries, the longest route latency, and
/// the largest all-to-all fixed cost of a port crossed.
type PortLoad = (BTreeMap<usize, f64>, f64, f64);

impl Fabric {
    /// Routes `flows`: the fraction of the message each port carries (by edge index), the
    /// longest route latency, and the largest all-to-all fixed cost of any port crossed. Err
    /// holds a pair of devices with no path between them.
    fn load_ports(&self, flows: &[Flow]) -> Result<PortLoad, (usize, usize)> {
        let mut load: BTreeMap<usize, f64> = BTreeMap::new();
        let (mut latency, mut fixed): (f64, f64) = (0.0, 0.0);
        for &(from, to, fraction) in flows {
            if from == to || fraction <= 0.0 {
                continue;
            }
            let route = self.route(from, to).ok_or((from, to))?;
            latency = latency.max(route.iter().map(|&e| self.port(e).latency_s).sum());
            for edge in route {
                fixed = fixed.max(self.port(edge).all_to_all_fixed_s);
                *load.entry(edge.index()).or_default() += fraction;
            }
        }
        Ok((load, latency, fixed))
    }

    /// Seconds per byte of the busiest port of `load`, each port at its bandwidth × the
    /// efficiency `efficiency` gives it.
    fn busiest_port(&self, load: &BTreeMap<usize, f64>, efficiency: impl Fn(&super::Port) -> f64) -> f64 {
        load.iter()
            .map(|(&edge, &bytes)| {
                let port = self.port(petgraph::graph::EdgeIndex::new(edge));
                bytes / (port.bytes_per_s * efficiency(port))
            })
            .fold(0.0, f64::max)
    }

    /// Cost of `flows` moving concurrently, in `steps` latency-bound rounds. Err holds a pair
    /// of devices with no path between them.
    fn flows_cost(&self, flows: &[Flow], steps: f64) -> Result<Affine, (usize, usize)> {
        let (load, latency, _) = self.load_ports(flows)?;
        Ok(Affine { alpha_s: steps * latency, seconds_per_byte: self.busiest_port(&load, |_| 1.0) })
    }

    fn ring(&self, members: &[usize], fraction: f64, steps: f64) -> Result<Affine, (usize, usize)> {
        let n = members.len();
        let flows: Vec<Flow> = (0..n).map(|i| (members[i], members[(i + 1) % n], fraction)).collect();
        self.flows_cost(&flows, steps)
    }

    /// Cost of an all-to-all with an arbitrary traffic matrix: `flows` are `(from, to,
    /// fraction)`, each moving `fraction` of the message concurrently with the others (so a
    /// pipelined multi-stage scheme, such as DeepEP's RDMA-then-NVLink forwarding, is its
    /// stages' flows together). Unlike the other collectives it applies the links'
    /// `all_to_all` calibration: a port carries its bytes at `bandwidth × efficiency`, and α is
    /// the longest route latency plus the largest fixed cost of any link crossed. Links
    /// without a calibration give the plain α–β cost. Err holds a pair with no path.
    pub fn all_to_all_v(&self, flows: &[(usize, usize, f64)]) -> Result<Affine, (usize, usize)> {
        let (load, latency, fixed) = self.load_ports(flows)?;
        let seconds_per_byte = self.busiest_port(&load, |port| port.all_to_all_efficiency);
        Ok(Affine { alpha_s: latency + fixed, seconds_per_byte })
    }

    /// Point-to-point transfer cost from device `a` to `b`.
    pub fn send_recv(&self, a: usize, b: usize) -> Result<Affine, (usize, usize)> {
        self.flows_cost(&[(a, b, 1.0)], 1.0)
    }

    /// Collective costs of `members` (device indices, in ring order).
    pub fn group_comm(&self, members: &[usize]) -> Result<GroupComm, (usize, usize)> {
        let n = members.len();
        if n <= 1 {
            return Ok(GroupComm::default());
        }
        let nf = n as f64;
        let gather = self.ring(members, (nf - 1.0) / nf, nf - 1.0)?;
        let all_to_all: Vec<Flow> = members
            .iter()
            .flat_map(|&a| members.iter().filter(move |&&b| b != a).map(move |&b| (a, b, 1.0 / nf)))
            .collect();
        Ok(GroupComm {
            all_reduce: self.all_reduce(members)?,
            all_gather: gather,
            reduce_scatter: gather,
            all_to_all: self.all_to_all_v(&all_to_all)?,
        })
    }

    /// All-reduce by the cheapest applicable algorithm at a 4 MiB message (as NCCL tunes):
    /// in-network reduction, hierarchical, or a flat ring.
    fn all_reduce(&self, members: &[usize]) -> Result<Affine, (usize, usize)> {
        let n = members.len();
        let nf = n as f64;
        let mut candidates = vec![self.ring(members, 2.0 * (nf - 1.0) / nf, 2.0 * (nf - 1.0))?];
        // In-network reduction: each member sends its buffer to the switch once and receives
        // the result once.
        for ports in self.reducing_switch_ports(members) {
            let slowest = ports.iter().map(|p| 1.0 / p.bytes_per_s).fold(0.0, f64::max);
            let latency = ports.iter().map(|p| p.latency_s).fold(0.0, f64::max);
            // Reduce on the way in, multicast on the way out: two traversals of up and down.
            candidates.push(Affine { alpha_s: 4.0 * latency, seconds_per_byte: slowest });
        }
        // Hierarchical when the group spans nodes with equal shares: reduce-scatter inside each
        // node, all-reduce of 1/k shards across nodes on k parallel rings (one per local rank,
        // each through its own NIC), all-gather inside each node.
        let mut by_node: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &m in members {
            by_node.entry(self.devices()[m].node_index).or_default().push(m);
        }
        let k = by_node.values().next().map_or(0, Vec::len);
        if by_node.len() > 1 && k > 1 && by_node.values().all(|v| v.len() == k) {
            let nodes = by_node.len() as f64;
            let kf = k as f64;
            let locals: Vec<&Vec<usize>> = by_node.values().collect();
            let intra: Vec<Flow> = locals
                .iter()
                .flat_map(|local| (0..k).map(|i| (local[i], local[(i + 1) % k], (kf - 1.0) / kf)))
                .collect();
            let inter: Vec<Flow> = (0..k)
                .flat_map(|rank| {
                    let locals = &locals;
                    (0..locals.len()).map(move |j| {
                        (locals[j][rank], locals[(j + 1) % locals.len()][rank], 2.0 * (nodes - 1.0) / nodes / kf)
                    })
                })
                .collect();
            let intra_phase = self.flows_cost(&intra, kf - 1.0)?;
            let inter_phase = self.flows_cost(&inter, 2.0 * (nodes - 1.0))?;
            candidates.push(intra_phase.then(inter_phase).then(intra_phase));
        }
        const TUNING_BYTES: f64 = 4.0 * 1024.0 * 1024.0;
        Ok(candidates
            .into_iter()
            .min_by(|a, b| a.seconds(TUNING_BYTES).total_cmp(&b.seconds(TUNING_BYTES)))
            .expect("the ring is always a candidate"))
    }
}
