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

/// A cluster of every bundled node kind, two of most, sharing one fabric switch.
fn mixed_fabric() -> Fabric {
    fabric(&[
        ("dgx-h100", 3),
        ("dgx-a100", 2),
        ("mi300x-node", 2),
        ("l40s-server", 1),
        ("gaudi2-node", 2),
        ("xeon-2s-server", 2),
        ("dgx-b200", 1),
        ("workstation-rtx4070", 2),
        ("hgx-h200", 1),
        ("dgx-h100", 1),
    ])
}

/// The route as petgraph's A* finds it on the whole graph (what `route` did before it learned
/// to search only the two nodes involved).
fn whole_graph_route(fabric: &Fabric, a: usize, b: usize) -> Option<Vec<EdgeIndex>> {
    let (from, to) = (fabric.devices[a].vertex, fabric.devices[b].vertex);
    let (_, vertices) = petgraph::algo::astar(
        &fabric.graph,
        from,
        |v| v == to,
        |e| e.weight().latency_s + 1e-9 + 1e-3 / e.weight().bytes_per_s,
        |_| 0.0,
    )?;
    Some(vertices.windows(2).map(|pair| fabric.widest_edge(pair[0], pair[1])).collect())
}

/// A route's hops as (latency, bandwidth): equal for equally good routes through different but
/// alike devices (a GPU reaching a remote CPU may relay through any GPU of that node).
fn hops(fabric: &Fabric, route: Option<Vec<EdgeIndex>>) -> Option<Vec<(f64, f64)>> {
    route.map(|edges| edges.iter().map(|&e| (fabric.port(e).latency_s, fabric.port(e).bytes_per_s)).collect())
}

#[test]
fn routes_searched_inside_two_nodes_are_as_good_as_routes_over_the_whole_graph() {
    let fabric = mixed_fabric();
    let n = fabric.devices().len();
    // A GPU and a CPU of the first node to every device, and a spread of other pairs.
    let pairs = (0..n)
        .flat_map(|a| (0..n).filter(move |&b| [0, 8].contains(&a) || (a % 7 == 0 && b % 5 == 0)).map(move |b| (a, b)));
    let mut checked = 0;
    for (a, b) in pairs {
        assert_eq!(
            hops(&fabric, fabric.route(a, b)),
            hops(&fabric, whole_graph_route(&fabric, a, b)),
            "{} → {}",
            fabric.devices()[a].label(),
            fabric.devices()[b].label()
        );
        checked += 1;
    }
    assert!(checked > 500, "{checked}");
}

/// Groups of many shapes: inside nodes at several offsets and orders, across nodes of one kind
/// and of mixed kinds, in and against node order, CPUs and GPUs together.
fn groups(fabric: &Fabric) -> Vec<Vec<usize>> {
    let nodes = fabric.devices().last().unwrap().node_index + 1;
    let local = |node: usize| -> Vec<usize> {
        (0..fabric.devices().len()).filter(|&i| fabric.devices()[i].node_index == node).collect()
    };
    let mut groups = Vec::new();
    for node in 0..nodes {
        let d = local(node);
        for size in [2, 4, 8] {
            for start in (0..d.len()).step_by(size.min(d.len())) {
                groups.push(d[start..(start + size).min(d.len())].to_vec());
            }
        }
        groups.push(d.iter().rev().copied().collect());
        groups.push(d.clone());
    }
    for a in 0..nodes {
        // The next node (often of the same kind) and one further on (after the end: before).
        for b in [(a + 1) % nodes, (a + 5) % nodes] {
            {
                let (da, db) = (local(a), local(b));
                let k = da.len().min(db.len()).min(4);
                groups.push(da[..k].iter().chain(&db[..k]).copied().collect());
                groups.push(vec![da[da.len() - 1], db[0]]);
            }
        }
    }
    groups
}

#[test]
fn cached_collective_costs_are_exactly_the_costs_computed_afresh() {
    let fabric = mixed_fabric();
    let groups = groups(&fabric);
    let fresh: Vec<_> = groups.iter().map(|g| (fabric.group_comm(g), fabric.send_recv(g[0], g[g.len() - 1]))).collect();
    let mut cache = CommCache::new(&fabric);
    // Twice, so the second round answers from the cache.
    for _ in 0..2 {
        for (group, (comm, send)) in groups.iter().zip(&fresh) {
            let labels = || group.iter().map(|&d| fabric.devices()[d].label()).collect::<Vec<_>>();
            assert_eq!(&cache.group_comm(group), comm, "{:?}", labels());
            assert_eq!(&cache.send_recv(group[0], group[group.len() - 1]), send, "{:?}", labels());
        }
    }
    // Shapes repeat across identical nodes, so there are fewer computations than questions.
    eprintln!("{} shapes for {} questions", cache.computed(), 2 * groups.len());
    assert!(cache.computed() < 2 * groups.len());
}

#[test]
fn groups_at_the_same_place_in_identical_nodes_share_one_computation() {
    let fabric = fabric(&[("dgx-h100", 4)]);
    let mut cache = CommCache::new(&fabric);
    for node in 0..4 {
        cache.group_comm(&gpus(&fabric, node)[..4]).unwrap();
    }
    assert_eq!(cache.computed(), 1);
    // Another position inside the node is another shape, even though it costs the same.
    cache.group_comm(&gpus(&fabric, 0)[4..]).unwrap();
    assert_eq!(cache.computed(), 2);
    // Two nodes in order, and two in reverse order, are different shapes.
    let span = |x: usize, y: usize| -> Vec<usize> { gpus(&fabric, x).into_iter().chain(gpus(&fabric, y)).collect() };
    cache.group_comm(&span(0, 1)).unwrap();
    cache.group_comm(&span(2, 3)).unwrap();
    assert_eq!(cache.computed(), 3);
    cache.group_comm(&span(3, 2)).unwrap();
    assert_eq!(cache.computed(), 4);
}
