//! Collective timings: Vidur's network profiles (`data/profiling/network/<system>/` in Vidur,
//! all-reduce and send/recv medians by message size, worker count and devices per node) and
//! the fit of a bandwidth-efficiency curve per measured configuration against servesim's
//! topology model of the same machines.

use super::median_absolute_percentage_error;
use crate::cost::Curve;
use crate::error::{csv_error, read_text, uncompressed_name, Error, Location, Result};
use crate::hardware::{LinkProfile, NodeProfile};
use crate::topology::{Affine, CollectiveCost, Fabric};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A measured collective.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSample {
    /// `all_reduce` or `send_recv`.
    pub collective: String,
    /// Devices taking part.
    pub devices: u64,
    /// Nodes they span.
    pub nodes: u64,
    /// Message size, bytes (Vidur sizes are fp16 elements).
    pub bytes: f64,
    /// Median time, s.
    pub measured_s: f64,
}

/// A fitted efficiency curve of one collective configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectiveCurve {
    /// `all_reduce` or `send_recv`.
    pub collective: String,
    /// Devices taking part.
    pub devices: u64,
    /// Nodes they span.
    pub nodes: u64,
    /// Achieved fraction of the topology model's bandwidth against log2(message bytes).
    pub efficiency_by_log2_bytes: Curve,
}

/// Reads every `*.csv` (or gzipped `*.csv.gz`) of a Vidur network folder.
pub fn read_vidur_network(dir: &Path) -> Result<Vec<NetworkSample>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, "cannot read folder", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| uncompressed_name(p).is_some_and(|n| n.ends_with(".csv")))
        .collect();
    files.sort();
    let mut samples = Vec::new();
    for path in files {
        let text = read_text(&path)?;
        let file = path.display().to_string();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| csv_error(&file, &e))?.clone();
        let column = |name: &str| headers.iter().position(|h| h == name);
        let (Some(workers), Some(per_node), Some(size), Some(collective)) =
            (column("num_workers"), column("devices_per_node"), column("size"), column("collective"))
        else {
            return Err(Error::at(
                Location { file: file.clone(), line: Some(1), field: None },
                "not a Vidur network profile: the header needs the columns num_workers, devices_per_node, size and collective",
            ));
        };
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(&file, &e))?;
            let name = record.get(collective).unwrap_or_default().to_string();
            let median = headers.iter().position(|h| h == format!("time_stats.{name}.median"));
            let number = |i: Option<usize>| i.and_then(|i| record.get(i)).and_then(|v| v.parse::<f64>().ok());
            let (Some(w), Some(d), Some(elements), Some(ms)) =
                (number(Some(workers)), number(Some(per_node)), number(Some(size)), number(median))
            else {
                let line = record.position().map(|p| p.line() as usize);
                return Err(Error::at(
                    Location { file: file.clone(), line, field: None },
                    format!(
                        "missing or non-numeric values (num_workers, devices_per_node, size and time_stats.{name}.median must be numbers)"
                    ),
                ));
            };
            if w < 1.0 || d < 1.0 || ms <= 0.0 {
                continue;
            }
            samples.push(NetworkSample {
                collective: name,
                devices: w as u64,
                nodes: (w / d).round().max(1.0) as u64,
                bytes: elements * 2.0,
                measured_s: ms * 1e-3,
            });
        }
    }
    Ok(samples)
}

/// The topology model's cost of each configuration on `node` machines.
fn nominal(
    node: &NodeProfile,
    links: &BTreeMap<String, LinkProfile>,
    samples: &[NetworkSample],
) -> BTreeMap<(String, u64, u64), Affine> {
    let mut costs = BTreeMap::new();
    for sample in samples {
        let key = (sample.collective.clone(), sample.devices, sample.nodes);
        if costs.contains_key(&key) {
            continue;
        }
        let fabric = Fabric::build(&[(node.clone(), sample.nodes)], links);
        let per_node = (sample.devices / sample.nodes) as usize;
        // The node's first device profile is the one measured; it may sit in several groups
        // (cards bridged in pairs), which a group of workers spans in order.
        let gpu = node.devices.first().map(|g| g.device.clone()).unwrap_or_default();
        let mut members = Vec::new();
        for node_index in 0..sample.nodes as usize {
            let local: Vec<usize> = (0..fabric.devices().len())
                .filter(|&i| fabric.devices()[i].node_index == node_index && fabric.devices()[i].device == gpu)
                .take(per_node)
                .collect();
            members.extend(local);
        }
        if members.len() as u64 != sample.devices {
            // The node cannot hold the measured group: no nominal cost, so no curve.
            continue;
        }
        let cost = if sample.collective == "send_recv" && members.len() >= 2 {
            fabric.send_recv(members[0], members[members.len() - 1]).ok()
        } else {
            fabric.group_comm(&members).ok().map(|c| c.all_reduce)
        };
        if let Some(cost) = cost {
            costs.insert(key, cost);
        }
    }
    costs
}

/// Fits one efficiency curve per configuration: the median, per half-octave of message size,
/// of the bandwidth fraction that makes the model reproduce the measurement.
pub fn fit_network(
    samples: &[NetworkSample],
    node: &NodeProfile,
    links: &BTreeMap<String, LinkProfile>,
) -> Vec<CollectiveCurve> {
    let costs = nominal(node, links, samples);
    let mut bins: BTreeMap<(String, u64, u64), BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for sample in samples {
        let key = (sample.collective.clone(), sample.devices, sample.nodes);
        let Some(cost) = costs.get(&key) else { continue };
        let transfer = sample.measured_s - cost.alpha_s;
        if transfer <= 0.0 {
            continue;
        }
        let efficiency = (cost.seconds_per_byte * sample.bytes / transfer).clamp(1e-3, 4.0);
        let bin = (sample.bytes.log2() * 2.0).round() as i64;
        bins.entry(key).or_default().entry(bin).or_default().push(efficiency);
    }
    bins.into_iter()
        .map(|((collective, devices, nodes), bins)| CollectiveCurve {
            collective,
            devices,
            nodes,
            efficiency_by_log2_bytes: Curve {
                points: bins
                    .into_iter()
                    .map(|(bin, mut v)| {
                        v.sort_by(f64::total_cmp);
                        (bin as f64 / 2.0, v[v.len() / 2])
                    })
                    .collect(),
            },
        })
        .collect()
}

/// Median absolute percentage error by message-size band (`<64KiB`, `64KiB-1MiB`,
/// `1-16MiB`, `>=16MiB`) of the calibrated model on `samples`.
pub fn network_errors_by_band(
    samples: &[NetworkSample],
    curves: &[CollectiveCurve],
    node: &NodeProfile,
    links: &BTreeMap<String, LinkProfile>,
) -> BTreeMap<String, (usize, f64)> {
    let costs = nominal(node, links, samples);
    let mut pairs: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in samples {
        let key = (sample.collective.clone(), sample.devices, sample.nodes);
        let (Some(cost), Some(curve)) =
            (costs.get(&key), curves.iter().find(|c| (c.collective.clone(), c.devices, c.nodes) == key))
        else {
            continue;
        };
        let predicted = CollectiveCost { affine: *cost, efficiency: Some(curve.efficiency_by_log2_bytes.clone()) }
            .seconds(sample.bytes);
        let band = match sample.bytes {
            b if b < 65536.0 => "<64KiB",
            b if b < 1048576.0 => "64KiB-1MiB",
            b if b < 16777216.0 => "1-16MiB",
            _ => ">=16MiB",
        };
        pairs.entry(band.to_string()).or_default().push((predicted, sample.measured_s));
    }
    pairs.into_iter().map(|(band, p)| (band, (p.len(), median_absolute_percentage_error(&p)))).collect()
}
