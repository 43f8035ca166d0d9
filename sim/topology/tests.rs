use super::*;
use crate::hardware::Catalog;

fn fabric(nodes: &[(&str, u64)]) -> Fabric {
    let catalog = Catalog::bundled().unwrap();
    let nodes: Vec<(NodeProfile, u64)> = nodes.iter().map(|(n, c)| (catalog.nodes[*n].clone(), *c)).collect();
    Fabric::build(&nodes, &catalog.links)
}

fn gpus(fabric: &Fabric, node_index: usize) -> Vec<usize> {
    (0..fabric.devices().len())
        .filter(|&i| fabric.devices()[i].node_index == node_index && fabric.devices()[i].group == "gpu")
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn gpus_in_a_dgx_talk_over_nvswitch_and_across_nodes_over_their_nics() {
    let fabric = fabric(&[("dgx-h100", 2)]);
    let (a, b) = (gpus(&fabric, 0), gpus(&fabric, 1));
    let inside = fabric.send_recv(a[0], a[1]).unwrap();
    assert!(close(inside.seconds_per_byte, 1.0 / 450e9), "{inside:?}");
    assert!(close(inside.alpha_s, 3e-6));
    let across = fabric.send_recv(a[0], b[0]).unwrap();
    assert!(close(across.seconds_per_byte, 1.0 / 50e9), "{across:?}");
}

#[test]
fn ring_all_reduce_without_switch_reduction_moves_2_n_minus_1_over_n() {
    let fabric = fabric(&[("dgx-a100", 1)]);
    let group = &gpus(&fabric, 0)[..4];
    let comm = fabric.group_comm(group).unwrap();
    assert!(close(comm.all_reduce.seconds_per_byte, 2.0 * 3.0 / 4.0 / 300e9), "{comm:?}");
    assert!(close(comm.all_gather.seconds_per_byte, 3.0 / 4.0 / 300e9));
    // 2(n−1) steps of one NVSwitch hop each.
    assert!(close(comm.all_reduce.alpha_s, 6.0 * 3e-6));
}

#[test]
fn nvls_switch_reduction_beats_the_ring_on_h100() {
    let fabric = fabric(&[("dgx-h100", 1)]);
    let comm = fabric.group_comm(&gpus(&fabric, 0)).unwrap();
    assert!(close(comm.all_reduce.seconds_per_byte, 1.0 / 450e9), "{comm:?}");
}

#[test]
fn a_group_spanning_two_nodes_reduces_hierarchically() {
    let fabric = fabric(&[("dgx-a100", 2)]);
    let mut group = gpus(&fabric, 0);
    group.extend(gpus(&fabric, 1));
    let comm = fabric.group_comm(&group).unwrap();
    // Intra-node reduce-scatter and all-gather (7/8 over NVLink each) plus 1/8 of the buffer
    // across the two nodes on each GPU's own 25 GB/s NIC (2·(2−1)/2 · 1/8) — or SHARP over IB
    // when cheaper; both are far better than a flat ring through one NIC.
    let hierarchical = 2.0 * 7.0 / 8.0 / 300e9 + 1.0 / 8.0 / 25e9;
    assert!(comm.all_reduce.seconds_per_byte <= hierarchical * (1.0 + 1e-9), "{comm:?}");
    let flat = 2.0 * 15.0 / 16.0 / 25e9;
    assert!(comm.all_reduce.seconds_per_byte < flat / 3.0);
}

#[test]
fn mesh_pairs_get_a_share_of_the_device_bandwidth() {
    let fabric = fabric(&[("mi300x-node", 1)]);
    let g = gpus(&fabric, 0);
    let pair = fabric.send_recv(g[0], g[1]).unwrap();
    assert!(close(pair.seconds_per_byte, 1.0 / 64e9), "{pair:?}");
}

#[test]
fn nodes_without_scale_out_have_no_path_between_them() {
    let fabric = fabric(&[("workstation-rtx4070", 2)]);
    let g: Vec<usize> = (0..fabric.devices().len()).filter(|&i| fabric.devices()[i].device == "rtx-4070").collect();
    assert_eq!(g.len(), 2);
    assert!(fabric.send_recv(g[0], g[1]).is_err());
    assert!(fabric.group_comm(&g).is_err());
}
