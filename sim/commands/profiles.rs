//! `servesim profiles`: the bundled devices, links, serving engines, nodes, calibrations and
//! models with their key figures.

use crate::error::Result;
use crate::hardware::{Catalog, Dtype, BUNDLED_MODELS};
use crate::model::ModelSpec;
use std::fmt::Write as _;

/// The listing `servesim profiles` prints.
pub fn profiles() -> Result<String> {
    let catalog = Catalog::bundled()?;
    let mut out = String::new();
    let _ = writeln!(out, "devices ({}):", catalog.devices.len());
    let _ = writeln!(
        out,
        "  {:<16} {:<4} {:>10} {:>8} {:>8} {:>9} {:>9} {:>7} {:>8}  description",
        "name", "kind", "bf16 TF/s", "fp8", "fp4", "mem GiB", "GB/s", "max W", "$/hour"
    );
    for device in catalog.devices.values() {
        // The dtypes a device lacks show as "-" (peak_flops would give a fallback rate).
        let native = |dtype: Dtype| {
            if device.runs(dtype) {
                format!("{:.0}", device.peak_flops(dtype) / 1e12)
            } else {
                "-".to_string()
            }
        };
        let _ = writeln!(
            out,
            "  {:<16} {:<4} {:>10.1} {:>8} {:>8} {:>9.0} {:>9.0} {:>7.0} {:>8.2}  {}",
            device.name,
            format!("{:?}", device.kind).to_lowercase(),
            device.peak_flops(Dtype::Bf16) / 1e12,
            native(Dtype::Fp8),
            native(Dtype::Fp4),
            device.memory.capacity_gib.get(),
            device.memory.bandwidth_gbs.get(),
            device.power.max_w.get(),
            device.price_per_hour_usd.get(),
            device.display_name
        );
    }
    let _ = writeln!(out, "\nlinks ({}):", catalog.links.len());
    let _ = writeln!(out, "  {:<24} {:<10} {:>10} {:>11}  description", "name", "kind", "GB/s/dir", "latency µs");
    for link in catalog.links.values() {
        let _ = writeln!(
            out,
            "  {:<24} {:<10} {:>10.1} {:>11.2}  {}",
            link.name,
            format!("{:?}", link.kind).to_lowercase(),
            link.bandwidth_gbs_per_direction.get(),
            link.latency_us.get(),
            link.display_name
        );
    }
    let _ = writeln!(out, "\nengines ({}):", catalog.engines.len());
    let _ = writeln!(
        out,
        "  {:<14} {:<16} {:<10} {:<13} {:>8} {:<19} {:<7}  description",
        "name", "batching", "preempt", "prefix cache", "step µs", "graphs", "tables"
    );
    for engine in catalog.engines.values() {
        // The YAML spelling: `ChunkedPrefill` → `chunked_prefill`.
        let word = |value: &dyn std::fmt::Debug| {
            let mut snake = String::new();
            for (i, c) in format!("{value:?}").chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            snake
        };
        let _ = writeln!(
            out,
            "  {:<14} {:<16} {:<10} {:<13} {:>8.0} {:<19} {:<7}  {}",
            engine.name,
            word(&engine.scheduler.batching),
            word(&engine.scheduler.preemption),
            word(&engine.scheduler.prefix_cache),
            engine.host.step_us.get(),
            word(&engine.graphs.mode),
            engine.measured_framework.as_deref().unwrap_or("-"),
            engine.display_name
        );
    }
    let _ = writeln!(out, "\nnodes ({}):", catalog.nodes.len());
    for node in catalog.nodes.values() {
        // Groups of one device profile (bridged pairs, superchips) and repeated links are
        // summed, in order of first appearance.
        let mut devices: Vec<(&str, u64)> = Vec::new();
        for group in &node.devices {
            match devices.iter_mut().find(|(device, _)| *device == group.device) {
                Some((_, count)) => *count += group.count.get(),
                None => devices.push((&group.device, group.count.get())),
            }
        }
        let devices: Vec<String> = devices.iter().map(|(device, count)| format!("{count} × {device}")).collect();
        let mut links: Vec<(String, usize)> = Vec::new();
        for interconnect in &node.interconnects {
            let link = format!("{} ({:?})", interconnect.link, interconnect.topology).to_lowercase();
            match links.iter_mut().find(|(known, _)| *known == link) {
                Some((_, times)) => *times += 1,
                None => links.push((link, 1)),
            }
        }
        let links: Vec<String> =
            links.into_iter().map(|(link, times)| if times > 1 { format!("{times} × {link}") } else { link }).collect();
        let nic = node.scale_out.as_ref().map_or(String::new(), |s| format!("; NICs {}", s.link));
        let host = node.host.as_ref().map_or(String::new(), |h| {
            let nvme = h.nvme.as_ref().map_or(String::new(), |n| format!(" + NVMe {:.0} GiB", n.capacity_gib.get()));
            format!("; host {:.0} GiB{nvme}", h.memory_gib.get())
        });
        let _ = writeln!(out, "  {:<20} {}; {}{nic}{host}", node.name, devices.join(" + "), links.join(", "));
    }
    let _ = writeln!(out, "\ncalibrations ({}):", crate::hardware::BUNDLED_CALIBRATIONS.len());
    for (name, _) in crate::hardware::BUNDLED_CALIBRATIONS {
        let _ = writeln!(out, "  {name}");
    }
    let _ = writeln!(
        out,
        "\nmeasured operator tables ({}, AIConfigurator; device_engine_version):",
        crate::hardware::BUNDLED_MEASURED.len()
    );
    for (name, _) in crate::hardware::BUNDLED_MEASURED {
        let _ = writeln!(out, "  {name}");
    }
    let _ = writeln!(out, "\nmodels ({}):", BUNDLED_MODELS.len());
    let _ = writeln!(
        out,
        "  {:<16} {:<14} {:>9} {:>9} {:>14} {:>9}",
        "name", "architecture", "params B", "active B", "KV KiB/token", "context"
    );
    for (name, text) in BUNDLED_MODELS {
        let model = ModelSpec::from_hf_config(name, name, text)?;
        let _ = writeln!(
            out,
            "  {:<16} {:<14} {:>9.2} {:>9.2} {:>14.1} {:>9}",
            name,
            model.architecture,
            model.parameter_count() as f64 / 1e9,
            model.active_parameter_count() as f64 / 1e9,
            model.kv_bytes_per_token(Dtype::Bf16) / 1024.0,
            model.max_context_tokens
        );
    }
    Ok(out)
}
