//! Collective costs computed once per group shape.

use super::{Affine, Fabric, GroupComm};
use std::collections::HashMap;

/// A group's shape: for each member, in order, its node's kind, its index inside that node, and
/// the rank of its node among the group's nodes in node order.
type Shape = Vec<(usize, usize, usize)>;

/// The collective costs of a fabric's groups, computed once per group shape.
///
/// A group's costs depend only on how its members' nodes are wired and where the members sit in
/// them: routes never leave the members' nodes and the fabric switch (see [`Fabric::route`]),
/// the hierarchical all-reduce orders nodes by index, and loads and latencies are combined by
/// maxima and by sums in member order. So two groups with the same shape, such as the
/// tensor-parallel groups of replicas placed alike on identical nodes, cost exactly the same,
/// bit for bit, and the cache answers what [`Fabric::group_comm`] and [`Fabric::send_recv`]
/// would. Groups without a path are not cached (the error names their devices).
#[derive(Debug)]
pub struct CommCache<'a> {
    fabric: &'a Fabric,
    groups: HashMap<Shape, GroupComm>,
    sends: HashMap<Shape, Affine>,
}

impl<'a> CommCache<'a> {
    /// An empty cache over `fabric`.
    pub fn new(fabric: &'a Fabric) -> Self {
        CommCache { fabric, groups: HashMap::new(), sends: HashMap::new() }
    }

    fn shape(&self, members: &[usize]) -> Shape {
        let node_of = |m: usize| self.fabric.devices[m].node_index;
        let mut nodes: Vec<usize> = members.iter().map(|&m| node_of(m)).collect();
        nodes.sort_unstable();
        nodes.dedup();
        members
            .iter()
            .map(|&m| {
                let (kind, inside) = self.fabric.position(m);
                (kind, inside, nodes.binary_search(&node_of(m)).expect("listed above"))
            })
            .collect()
    }

    /// [`Fabric::group_comm`] of `members`.
    pub fn group_comm(&mut self, members: &[usize]) -> Result<GroupComm, (usize, usize)> {
        if members.len() <= 1 {
            return self.fabric.group_comm(members);
        }
        let shape = self.shape(members);
        if let Some(&comm) = self.groups.get(&shape) {
            return Ok(comm);
        }
        let comm = self.fabric.group_comm(members)?;
        self.groups.insert(shape, comm);
        Ok(comm)
    }

    /// [`Fabric::send_recv`] from `a` to `b`.
    pub fn send_recv(&mut self, a: usize, b: usize) -> Result<Affine, (usize, usize)> {
        let shape = self.shape(&[a, b]);
        if let Some(&cost) = self.sends.get(&shape) {
            return Ok(cost);
        }
        let cost = self.fabric.send_recv(a, b)?;
        self.sends.insert(shape, cost);
        Ok(cost)
    }

    /// Distinct shapes computed so far (group costs plus transfers).
    pub fn computed(&self) -> usize {
        self.groups.len() + self.sends.len()
    }
}
