//! `servesim calibrate`: fit a device's efficiency curves (and its machines' collective
//! curves) to measured timings in Vidur's format, and write a calibration file; or, with
//! `--aiconfigurator`, convert AIConfigurator's measured operator tables into a
//! measured-operator calibration ([`calibrate_aiconfigurator`]).

use crate::calibration::{
    aiconfigurator, carry_compute, errors_by_operator, fit_compute, fit_network, network_errors_by_band,
    operator_samples, read_vidur_compute, read_vidur_network, Calibration,
};
use crate::error::{Error, Result};
use crate::hardware::{Catalog, DeviceProfile};
use std::path::{Path, PathBuf};

/// What `servesim calibrate` was asked to do.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// Bundled device the calibration is for (and the measurements were taken on, unless
    /// `measured_on` names another).
    pub device: String,
    /// Bundled device the measurements were taken on, when it is not `device`: the curves are
    /// fitted against its peaks and carried to `device` (same compute, other memory: H100 SXM
    /// timings for H200), see [`carry_compute`].
    pub measured_on: Option<String>,
    /// Folders searched recursively for Vidur compute profiles (`mlp.csv` or `mlp.csv.gz`).
    pub compute: Vec<PathBuf>,
    /// Folder of Vidur network profiles.
    pub network: Option<PathBuf>,
    /// Bundled node the network measurements were taken on.
    pub node: String,
    /// Output calibration file.
    pub out: PathBuf,
}

/// Files named `name` under `dir`, recursively, in path order.
fn find_files(flag: &str, dir: &Path, name: &str, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::usage(flag, format!("{}: cannot read the folder: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            find_files(flag, &path, name, found)?;
        } else if crate::error::uncompressed_name(&path) == Some(name) {
            found.push(path);
        }
    }
    Ok(())
}

/// The bundled device `name`, or a usage error naming `flag`.
fn bundled_device<'a>(catalog: &'a Catalog, flag: &str, name: &str) -> Result<&'a DeviceProfile> {
    catalog.devices.get(name).ok_or_else(|| {
        Error::usage(
            flag,
            format!(
                "unknown device {name:?}; bundled devices are: {}",
                crate::input::known_list(catalog.devices.keys().map(String::as_str))
            ),
        )
    })
}

/// The comment lines above the fields: how to treat the file, and what it does not hold.
fn header(calibration: &Calibration) -> String {
    let mut header = "# Written by `servesim calibrate` (see generated_by); regenerate rather than edit.\n".to_string();
    if let Some(measured) = &calibration.measured_on {
        header += &format!(
            "# No {device} measurements: the curves were fitted to {measured} timings and carried to {device}\n\
             # as the same fraction of each kernel's roofline bound (see measured_on). An assumption where the\n\
             # two differ in memory bandwidth: small bandwidth-bound kernels are latency-bound and gain less\n\
             # from the higher peak than this predicts. operator_error is the in-sample error on {measured}.\n",
            device = calibration.device
        );
    }
    if let (Some(measured), Some(node)) = (&calibration.measured_on, &calibration.node) {
        header += &format!(
            "# The collective curves are the fractions of {node}'s topology-model bandwidth that {measured} groups\n\
             # reached; {device} groups of the same shape get the same fractions of their own topology's.\n",
            device = calibration.device
        );
    }
    if calibration.node.is_none() {
        header += "# Compute curves only (no --network): collectives use the uncalibrated topology model.\n";
    }
    header
}

/// Fits and writes the calibration; returns it.
pub fn calibrate(options: &CalibrateOptions) -> Result<Calibration> {
    let catalog = Catalog::bundled()?;
    let device = bundled_device(&catalog, "--device", &options.device)?;
    let measured = match &options.measured_on {
        Some(name) if *name == options.device => {
            return Err(Error::usage(
                "--measured-on",
                format!(
                    "{name:?} is the --device itself; leave --measured-on out when the measurements are of that device"
                ),
            ));
        }
        Some(name) => bundled_device(&catalog, "--measured-on", name)?,
        None => device,
    };
    let node = match &options.network {
        Some(_) => Some(catalog.nodes.get(&options.node).ok_or_else(|| {
            Error::usage(
                "--node",
                format!(
                    "unknown node {:?}; bundled nodes are: {}",
                    options.node,
                    crate::input::known_list(catalog.nodes.keys().map(String::as_str))
                ),
            )
        })?),
        None => None,
    };
    if let Some(node) = node {
        // Placements look collective curves up by group shape alone, so curves fitted on one
        // machine would price another machine's fabric: the node must hold the measured device.
        let gpu = node.devices.first().map(|g| g.device.as_str()).unwrap_or_default();
        if gpu != measured.name {
            return Err(Error::usage(
                "--node",
                format!(
                    "node {:?} holds {gpu:?}, not {:?}: the collective curves are fitted against this node's topology and applied to every {:?} pool with the same group shape, so they must come from a node of that device; leave --network out to calibrate the compute curves only",
                    options.node, measured.name, options.device
                ),
            ));
        }
    }
    let mut files = Vec::new();
    for dir in &options.compute {
        find_files("--compute", dir, "mlp.csv", &mut files)?;
    }
    if files.is_empty() {
        return Err(Error::usage(
            "--compute",
            format!(
                "no mlp.csv or mlp.csv.gz found under {}",
                options.compute.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    // Read the network measurements before fitting anything, so an empty folder fails fast.
    let network_samples = match &options.network {
        Some(dir) => {
            let samples = read_vidur_network(dir)?;
            if samples.is_empty() {
                return Err(Error::usage(
                    "--network",
                    format!(
                        "{}: no collective measurements found (expected Vidur network profiles such as all_reduce.csv and send_recv.csv with rows); a calibration without them would silently fall back to the uncalibrated topology model",
                        dir.display()
                    ),
                ));
            }
            Some(samples)
        }
        None => None,
    };
    let mut samples = Vec::new();
    for file in &files {
        eprintln!("reading {}", file.display());
        samples.extend(operator_samples(&read_vidur_compute(file)?));
    }
    eprintln!("fitting {} operator measurements", samples.len());
    let fitted = fit_compute(&samples, measured);
    let operator_error =
        errors_by_operator(&samples, measured, &fitted).into_iter().map(|(op, (_, e))| (op, e)).collect();
    let efficiency = match &options.measured_on {
        Some(name) => {
            eprintln!("carrying the curves fitted on {name} to {}", options.device);
            carry_compute(&samples, measured, &fitted, device)
        }
        None => fitted,
    };
    let mut fitted_from: Vec<String> = options.compute.iter().map(|p| p.display().to_string()).collect();
    let (mut collectives, mut collective_error, mut node_used) = (Vec::new(), Default::default(), None);
    if let (Some(dir), Some(node), Some(network_samples)) = (&options.network, node, &network_samples) {
        eprintln!("fitting {} collective measurements on {}", network_samples.len(), options.node);
        collectives = fit_network(network_samples, node, &catalog.links);
        collective_error = network_errors_by_band(network_samples, &collectives, node, &catalog.links)
            .into_iter()
            .map(|(band, (_, e))| (band, e))
            .collect();
        let unfitted: std::collections::BTreeSet<_> = network_samples
            .iter()
            .map(|s| (s.collective.as_str(), s.devices, s.nodes))
            .filter(|&shape| !collectives.iter().any(|c| (c.collective.as_str(), c.devices, c.nodes) == shape))
            .collect();
        for (collective, devices, nodes) in unfitted {
            eprintln!(
                "  no curve for {collective} on {devices} devices over {nodes} nodes: {} cannot hold that group, or the topology model's latency exceeds every measurement",
                options.node
            );
        }
        fitted_from.push(dir.display().to_string());
        node_used = Some(options.node.clone());
    }
    let mut command = format!("servesim calibrate --device {}", options.device);
    if let Some(name) = &options.measured_on {
        command += &format!(" --measured-on {name}");
    }
    for dir in &options.compute {
        command += &format!(" --compute {}", dir.display());
    }
    if let Some(dir) = &options.network {
        command += &format!(" --network {} --node {}", dir.display(), options.node);
    }
    command += &format!(" --out {}", options.out.display());
    let calibration = Calibration {
        device: options.device.clone(),
        measured_on: options.measured_on.clone(),
        generated_by: command,
        fitted_from,
        operator_samples: samples.len(),
        operator_error,
        efficiency,
        node: node_used,
        collectives,
        collective_error,
    };
    let text = crate::input::to_yaml(&calibration).map_err(|e| Error::usage("--out", e))?;
    std::fs::write(&options.out, format!("{}{text}", header(&calibration)))
        .map_err(|e| Error::io(&options.out, "cannot write the calibration", e))?;
    for (op, error) in &calibration.operator_error {
        eprintln!("  {op:<26} in-sample median |error| {:.1}% (on {})", error * 100.0, measured.name);
    }
    for (band, error) in &calibration.collective_error {
        eprintln!("  collectives {band:<12} in-sample median |error| {:.1}%", error * 100.0);
    }
    Ok(calibration)
}

/// What `servesim calibrate --aiconfigurator` was asked to do.
#[derive(Debug, Clone)]
pub struct AiconfiguratorOptions {
    /// AIConfigurator's `systems/data` folder or one system's folder.
    pub data: PathBuf,
    /// Bundled device the measurements belong to.
    pub device: String,
    /// Serving engine: `trtllm`, `vllm` (or servesim's `vllm-v1`), `sglang`.
    pub engine: String,
    /// Framework version (default: the latest with GEMM and attention tables).
    pub version: Option<String>,
    /// Output calibration file (YAML).
    pub out: PathBuf,
    /// Where to write an evenly spread sample of the held-out rows (CSV, gzipped if `.gz`).
    pub held_out: Option<PathBuf>,
}

/// The header written above a measured-operator calibration.
pub const MEASURED_HEADER: &str =
    "# Written by `servesim calibrate --aiconfigurator` (see generated_by); regenerate rather than edit.\n";

/// Converts and writes a measured-operator calibration; returns it.
pub fn calibrate_aiconfigurator(options: &AiconfiguratorOptions) -> Result<aiconfigurator::MeasuredFile> {
    let catalog = Catalog::bundled()?;
    if !catalog.devices.contains_key(&options.device) {
        return Err(Error::usage(
            "--device",
            format!(
                "unknown device {:?}; bundled devices are: {}",
                options.device,
                crate::input::known_list(catalog.devices.keys().map(String::as_str))
            ),
        ));
    }
    let framework = crate::hardware::aiconfigurator_framework(&options.engine)
        .map_err(|message| Error::usage("--engine", message))?
        .ok_or_else(|| Error::usage("--engine", format!("AIConfigurator times no kernels of {:?}", options.engine)))?;
    let out_name = options.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let conversion = aiconfigurator::convert(&aiconfigurator::ConvertOptions {
        data: options.data.clone(),
        device: options.device.clone(),
        framework: framework.to_string(),
        version: options.version.clone(),
        out_name,
    })?;
    let text = crate::input::to_yaml(&conversion.file).map_err(|e| Error::usage("--out", e))?;
    std::fs::write(&options.out, format!("{MEASURED_HEADER}{text}"))
        .map_err(|e| Error::io(&options.out, "cannot write the calibration", e))?;
    if let Some(path) = &options.held_out {
        aiconfigurator::write_held_out(path, &conversion.held_out_sample)?;
    }
    for (table, error) in &conversion.file.held_out_error {
        eprintln!(
            "  {table:<22} held-out rows {:>6}  median |error| {:.1}%  p90 {:.1}%",
            error.rows,
            error.median * 100.0,
            error.p90 * 100.0
        );
    }
    Ok(conversion.file)
}
