//! The bundled hardware catalog: per-dtype peaks ordered as the hardware orders them, the dtypes
//! each architecture runs natively, and the routes the approximated node topologies produce.

use servesim::hardware::{Catalog, DeviceProfile, Dtype};
use servesim::input::checked::Positive;
use servesim::topology::Fabric;

/// The peak ordering every tensor/matrix unit in the catalog obeys: narrower formats are at least
/// as fast as wider ones. Only dtypes a profile lists are compared, each with the nearest listed
/// neighbour in the chain (an fp4 peak with no fp8 is compared with the 16-bit one). The 16-bit
/// rate is bf16, or fp16 where a device has no bf16 (fp16 and bf16 are not compared with each
/// other: Gaudi 3 runs fp16 at a quarter of its bf16 rate).
fn ordering_violations(device: &DeviceProfile) -> Vec<String> {
    let peak = |dtype: Dtype| device.compute.peak_tflops.get(&dtype).map(|p| p.get());
    let sixteen = peak(Dtype::Bf16).map(|p| ("bf16", p)).or(peak(Dtype::Fp16).map(|p| ("fp16", p)));
    let mut violations = Vec::new();
    let mut check = |wide: Option<(&str, f64)>, narrow: Option<(&str, f64)>| {
        if let (Some((wide_name, wide)), Some((narrow_name, narrow))) = (wide, narrow) {
            if narrow < wide {
                violations.push(format!("{}: {narrow_name} {narrow} < {wide_name} {wide}", device.name));
            }
        }
    };
    let named = |name: &'static str, dtype: Dtype| peak(dtype).map(|p| (name, p));
    let chain: Vec<(&str, f64)> = [
        named("fp4", Dtype::Fp4),
        named("fp8", Dtype::Fp8),
        sixteen,
        named("tf32", Dtype::Tf32),
        named("fp32", Dtype::Fp32),
    ]
    .into_iter()
    .flatten()
    .collect();
    for pair in chain.windows(2) {
        check(Some(pair[1]), Some(pair[0]));
    }
    check(sixteen, named("int8", Dtype::Int8));
    check(named("int8", Dtype::Int8), named("int4", Dtype::Int4));
    violations
}

#[test]
fn every_bundled_device_orders_its_peaks_as_its_hardware_does() {
    let catalog = Catalog::bundled().unwrap();
    let violations: Vec<String> = catalog.devices.values().flat_map(ordering_violations).collect();
    assert!(violations.is_empty(), "peaks out of order (a typo?):\n{}", violations.join("\n"));
    // Every device has a 16-bit rate, which precision resolution falls back to.
    for device in catalog.devices.values() {
        assert!(device.runs(Dtype::Bf16) || device.runs(Dtype::Fp16), "{} has no 16-bit peak", device.name);
    }
}

#[test]
fn the_ordering_check_catches_a_dropped_digit() {
    let catalog = Catalog::bundled().unwrap();
    let mut b200 = catalog.devices["b200"].clone();
    assert!(ordering_violations(&b200).is_empty());
    // fp8 typed as 450 instead of 4500 falls below bf16 (2250); fp4 typed as 900 below fp8.
    b200.compute.peak_tflops.insert(Dtype::Fp8, Positive::new(450.0).unwrap());
    assert_eq!(ordering_violations(&b200), vec!["b200: fp8 450 < bf16 2250".to_string()]);
    b200.compute.peak_tflops.insert(Dtype::Fp8, Positive::new(4500.0).unwrap());
    b200.compute.peak_tflops.insert(Dtype::Fp4, Positive::new(900.0).unwrap());
    assert_eq!(ordering_violations(&b200), vec!["b200: fp4 900 < fp8 4500".to_string()]);
    let mut mi300x = catalog.devices["mi300x"].clone();
    mi300x.compute.peak_tflops.insert(Dtype::Int8, Positive::new(261.49).unwrap());
    assert_eq!(ordering_violations(&mi300x), vec!["mi300x: int8 261.49 < bf16 1307.4".to_string()]);
}

#[test]
fn each_architecture_lists_the_dtypes_its_tensor_units_run() {
    use Dtype::*;
    let catalog = Catalog::bundled().unwrap();
    let runs = |name: &str, dtype: Dtype| {
        let device = catalog.devices.get(name).unwrap_or_else(|| panic!("no device {name}"));
        device.runs(dtype)
    };
    // (devices, dtypes they must run, dtypes they must not list)
    let expectations: &[(&[&str], &[Dtype], &[Dtype])] = &[
        // Ampere: int8 and int4 tensor cores, no fp8/fp4.
        (&["a100-sxm-80gb", "a40"], &[Tf32, Bf16, Int8, Int4], &[Fp8, Fp4]),
        // Ada: fp8 on 4th-gen tensor cores and int4, no fp4.
        (&["l40s", "l4", "rtx-4070"], &[Bf16, Fp8, Int8, Int4], &[Fp4]),
        // Hopper: fp8, no fp4 and no int4 tensor cores.
        (
            &["h100-sxm", "h100-pcie", "h100-nvl", "h200", "h200-nvl", "gh200", "h800"],
            &[Tf32, Bf16, Fp8, Int8],
            &[Fp4, Int4],
        ),
        // Blackwell: fp4.
        (&["b200", "gb200", "rtx-pro-6000"], &[Bf16, Fp8, Int8, Fp4], &[Int4]),
        // Blackwell Ultra: fp4, INT8 cut below the bf16 rate and left out.
        (&["b300", "gb300"], &[Bf16, Fp8, Fp4], &[Int8, Int4]),
        // CDNA3: fp8 and int8, no fp4.
        (&["mi300x", "mi325x"], &[Bf16, Fp8, Int8], &[Fp4, Int4]),
        (&["gaudi2", "gaudi3"], &[Bf16, Fp8], &[Fp4]),
        (&["tpu-v5e", "tpu-v6e"], &[Bf16, Int8], &[Fp8, Fp4]),
        // AMX (Sapphire/Granite Rapids), AVX-512 BF16/VNNI (Zen 4), BFMMLA/SMMLA (Neoverse V2).
        (&["xeon-8480", "xeon-6980p", "epyc-9654", "ryzen-9-7950x", "grace"], &[Bf16, Int8], &[Fp8, Fp4]),
    ];
    for (devices, present, absent) in expectations {
        for &device in *devices {
            for &dtype in *present {
                assert!(runs(device, dtype), "{device} should list {dtype}");
            }
            for &dtype in *absent {
                assert!(!runs(device, dtype), "{device} should not list {dtype}");
            }
        }
    }
    assert!(runs("xeon-6980p", Fp16), "Granite Rapids has AMX-FP16");
    assert!(!runs("xeon-8480", Fp16), "Sapphire Rapids AMX has no FP16");
}

/// The links a route between two devices of `node` crosses, devices named `group`/index.
fn route_links(catalog: &Catalog, node: &str, from: (&str, u64), to: (&str, u64)) -> Vec<String> {
    let fabric = Fabric::build(&[(catalog.nodes[node].clone(), 1)], &catalog.links);
    let find = |(group, index): (&str, u64)| {
        fabric
            .devices()
            .iter()
            .position(|d| d.group == group && d.index_in_group == index)
            .unwrap_or_else(|| panic!("{node} has no {group}{index}"))
    };
    let route = fabric.route(find(from), find(to)).expect("a path");
    route.into_iter().map(|edge| fabric.port(edge).link.clone()).collect()
}

#[test]
fn approximated_node_topologies_route_over_the_intended_links() {
    let catalog = Catalog::bundled().unwrap();
    // GB200 NVL72: the two GPUs of one superchip talk over NVLink 5, not through their Grace.
    assert_eq!(route_links(&catalog, "gb200-nvl72", ("gpu00", 0), ("gpu00", 1)), ["nvlink5", "nvlink5"]);
    assert_eq!(route_links(&catalog, "gb200-nvl72", ("gpu00", 0), ("gpu35", 1)), ["nvlink5", "nvlink5"]);
    assert_eq!(route_links(&catalog, "gb200-nvl72", ("gpu07", 1), ("cpu07", 0)), ["nvlink-c2c", "nvlink-c2c"]);
    assert_eq!(route_links(&catalog, "gh200-node", ("gpu", 0), ("cpu", 0)), ["nvlink-c2c", "nvlink-c2c"]);
    // H100 NVL pairs: bridged inside a pair, PCIe between pairs.
    assert_eq!(route_links(&catalog, "h100-nvl-server", ("pair1", 0), ("pair1", 1)), ["nvlink-bridge-h100-nvl"]);
    assert_eq!(
        route_links(&catalog, "h100-nvl-server", ("pair0", 1), ("pair1", 0)),
        ["pcie-gen5-x16", "pcie-gen5-x16"]
    );
    assert_eq!(route_links(&catalog, "h200-nvl-server", ("quad0", 0), ("quad0", 3)), ["nvlink-bridge-h200-nvl"]);
    assert_eq!(
        route_links(&catalog, "h200-nvl-server", ("quad0", 0), ("quad1", 0)),
        ["pcie-gen5-x16", "pcie-gen5-x16"]
    );
    // Gaudi 3: direct all-to-all RoCE inside the box.
    assert_eq!(route_links(&catalog, "gaudi3-node", ("npu", 0), ("npu", 7)), ["gaudi3-roce"]);
}

#[test]
fn host_storage_figures_are_consistent_where_given() {
    let catalog = Catalog::bundled().unwrap();
    for node in catalog.nodes.values() {
        let Some(host) = &node.host else { continue };
        if let Some(nvme) = &host.nvme {
            // Sequential writes on the NVMe drives in the catalog are slower than reads.
            assert!(nvme.write_gbs.get() <= nvme.read_gbs.get(), "{}: NVMe write faster than read", node.name);
        }
        // Every sourced server in the catalog has at least 256 GiB of host DRAM; less would be
        // a unit slip (TB entered as thousands of GiB, or a per-DIMM figure).
        assert!(host.memory_gib.get() >= 256.0, "{}: host memory {} GiB", node.name, host.memory_gib);
    }
    let with_host = catalog.nodes.values().filter(|n| n.host.is_some()).count();
    assert!(with_host >= 13, "only {with_host} nodes give host storage");
}
