//! The catalog of bundled devices, links and models (embedded at build time from
//! `hardware-profiles/` and `models/`), and resolution of a name-or-path reference from a
//! scenario.

use super::{DeviceProfile, LinkProfile, NodeProfile};
use crate::calibration::aiconfigurator::MeasuredTimes;
use crate::engine_profiles::EngineProfile;
use crate::error::{Error, Result};
use crate::input::{known_list, YamlSource};
use crate::model::ModelSpec;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Parsed bundled profiles.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Devices by name.
    pub devices: BTreeMap<String, DeviceProfile>,
    /// Links by name.
    pub links: BTreeMap<String, LinkProfile>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeProfile>,
    /// Serving engines by name.
    pub engines: BTreeMap<String, EngineProfile>,
}

/// Whether a reference names a file rather than a catalog entry.
fn is_path(reference: &str) -> bool {
    reference.contains('/') || reference.contains('\\') || reference.ends_with(".yaml") || reference.ends_with(".json")
}

impl Catalog {
    /// Parses every bundled profile. A failure here means a bundled file is broken.
    pub fn bundled() -> Result<Catalog> {
        let mut devices = BTreeMap::new();
        for (name, text) in BUNDLED_DEVICES {
            let source = bundled_source("hardware-profiles/devices", name, text);
            let profile = DeviceProfile::from_source(&source)?;
            check_name_matches(&source, &profile.name, name)?;
            devices.insert(name.to_string(), profile);
        }
        let mut links = BTreeMap::new();
        for (name, text) in BUNDLED_LINKS {
            let source = bundled_source("hardware-profiles/links", name, text);
            let profile = LinkProfile::from_source(&source)?;
            check_name_matches(&source, &profile.name, name)?;
            links.insert(name.to_string(), profile);
        }
        let mut nodes = BTreeMap::new();
        for (name, text) in BUNDLED_NODES {
            let source = bundled_source("hardware-profiles/nodes", name, text);
            let profile = NodeProfile::from_source(&source, &|d| devices.contains_key(d), &|l| links.contains_key(l))?;
            check_name_matches(&source, &profile.name, name)?;
            nodes.insert(name.to_string(), profile);
        }
        let mut engines = BTreeMap::new();
        for (name, text) in BUNDLED_ENGINES {
            let source = bundled_source("hardware-profiles/engines", name, text);
            let profile = EngineProfile::from_source(&source)?;
            check_name_matches(&source, &profile.name, name)?;
            engines.insert(name.to_string(), profile);
        }
        Ok(Catalog { devices, links, nodes, engines })
    }

    /// Resolves `reference` (a catalog name or a path to a YAML profile) written at `field` of
    /// `scenario`.
    pub fn device(&self, reference: &str, scenario: &YamlSource, field: &str) -> Result<DeviceProfile> {
        resolve(reference, scenario, field, "device", &self.devices, &DeviceProfile::from_source)
    }

    /// Resolves a node reference (catalog name or path to a node profile YAML).
    pub fn node(&self, reference: &str, scenario: &YamlSource, field: &str) -> Result<NodeProfile> {
        let parse = |source: &YamlSource| {
            NodeProfile::from_source(source, &|d| self.devices.contains_key(d), &|l| self.links.contains_key(l))
        };
        resolve(reference, scenario, field, "node", &self.nodes, &parse)
    }

    /// Resolves a calibration reference: a bundled name (file stem under
    /// `hardware-profiles/calibrations/`) or a path.
    pub fn calibration(
        &self,
        reference: &str,
        scenario: &YamlSource,
        field: &str,
    ) -> Result<crate::calibration::Calibration> {
        let source = if is_path(reference) {
            let path = scenario.resolve(reference);
            YamlSource::from_file(&path).map_err(|e| scenario.file_error(field, e))?
        } else {
            let Some((name, text)) = BUNDLED_CALIBRATIONS.iter().find(|(name, _)| *name == reference) else {
                return Err(scenario.error(
                    field,
                    format!(
                        "unknown calibration {reference:?}; bundled calibrations are: {}; or give a path to a file written by `servesim calibrate`",
                        known_list(BUNDLED_CALIBRATIONS.iter().map(|(n, _)| *n))
                    ),
                ));
            };
            bundled_source("hardware-profiles/calibrations", name, text)
        };
        crate::calibration::Calibration::from_source(&source)
    }

    /// Resolves a serving-engine reference (catalog name or path to an engine profile YAML).
    pub fn engine(&self, reference: &str, scenario: &YamlSource, field: &str) -> Result<EngineProfile> {
        resolve(reference, scenario, field, "engine", &self.engines, &EngineProfile::from_source)
    }

    /// Resolves a link reference.
    pub fn link(&self, reference: &str, scenario: &YamlSource, field: &str) -> Result<LinkProfile> {
        resolve(reference, scenario, field, "link", &self.links, &LinkProfile::from_source)
    }

    /// Resolves a model reference: a bundled name, a path to a Hugging Face `config.json`, or
    /// a path to a model folder holding one (as `huggingface-cli download` leaves it).
    pub fn model(&self, reference: &str, scenario: &YamlSource, field: &str) -> Result<ModelSpec> {
        let bundled = BUNDLED_MODELS.iter().any(|(name, _)| *name == reference);
        if is_path(reference) || (!bundled && scenario.resolve(reference).is_dir()) {
            let mut path = scenario.resolve(reference);
            if path.is_dir() {
                path = path.join("config.json");
                if !path.is_file() {
                    return Err(scenario.error(
                        field,
                        format!(
                            "the folder {} holds no config.json; give a Hugging Face model folder or the path of its config.json",
                            scenario.resolve(reference).display()
                        ),
                    ));
                }
            }
            let text = crate::error::read_text(&path).map_err(|e| scenario.file_error(field, e))?;
            let name = path
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| reference.to_string());
            return ModelSpec::from_hf_config(&name, &path.display().to_string(), &text);
        }
        match BUNDLED_MODELS.iter().find(|(name, _)| *name == reference) {
            Some((name, text)) => {
                ModelSpec::from_hf_config(name, &format!("<bundled models/{name}/config.json>"), text)
            }
            None => Err(scenario.error(
                field,
                format!(
                    "unknown model {reference:?}; bundled models are: {}; or give a path to a Hugging Face config.json",
                    known_list(BUNDLED_MODELS.iter().map(|(n, _)| *n))
                ),
            )),
        }
    }

    /// Names of the bundled models.
    pub fn model_names() -> impl Iterator<Item = &'static str> {
        BUNDLED_MODELS.iter().map(|(name, _)| *name)
    }
}

/// A catalog entry by name, or a profile read from the path `reference` (relative to the
/// scenario); errors point at `field` and list the bundled names.
fn resolve<T: Clone>(
    reference: &str,
    scenario: &YamlSource,
    field: &str,
    kind: &str,
    bundled: &BTreeMap<String, T>,
    parse: &dyn Fn(&YamlSource) -> Result<T>,
) -> Result<T> {
    if is_path(reference) {
        let path = scenario.resolve(reference);
        let source = YamlSource::from_file(&path).map_err(|e| scenario.file_error(field, e))?;
        return parse(&source);
    }
    bundled.get(reference).cloned().ok_or_else(|| {
        let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        scenario.error(
            field,
            format!(
                "unknown {kind} {reference:?}; bundled {kind}s are: {}; or give a path to {article} {kind} profile YAML",
                known_list(bundled.keys().map(String::as_str))
            ),
        )
    })
}

fn bundled_source(dir: &str, name: &str, text: &str) -> YamlSource {
    YamlSource::from_text(format!("<bundled {dir}/{name}.yaml>"), PathBuf::new(), text.to_string())
}

fn check_name_matches(source: &YamlSource, declared: &str, file_stem: &str) -> Result<()> {
    if declared != file_stem {
        return Err(source.error("name", format!("the name {declared:?} must equal the file name {file_stem:?}")));
    }
    Ok(())
}

/// The AIConfigurator framework whose measured kernels stand for servesim's serving `engine`
/// (`None`: an engine AIConfigurator does not time, such as eager PyTorch). Err lists the
/// engines known.
pub fn aiconfigurator_framework(engine: &str) -> Result<Option<&'static str>, String> {
    match engine {
        "trtllm" => Ok(Some("trtllm")),
        "vllm" | "vllm-v1" => Ok(Some("vllm")),
        "sglang" => Ok(Some("sglang")),
        "eager-pytorch" => Ok(None),
        other => Err(format!("unknown engine {other:?}; known: trtllm, vllm-v1, sglang, eager-pytorch")),
    }
}

/// A bundled measured-operator calibration's name: `<device>_<framework>_<version>`.
fn measured_name_parts(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.splitn(3, '_');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// Names of the bundled measured-operator calibrations.
pub fn bundled_measured_names() -> impl Iterator<Item = &'static str> {
    BUNDLED_MEASURED.iter().map(|(name, _)| *name)
}

/// The bundled measured-operator calibration named `name`, parsed (once per process).
pub fn bundled_measured_by_name(name: &str) -> Result<Option<Arc<MeasuredTimes>>> {
    static PARSED: Mutex<BTreeMap<String, Arc<MeasuredTimes>>> = Mutex::new(BTreeMap::new());
    let Some((name, text)) = BUNDLED_MEASURED.iter().find(|(n, _)| *n == name) else { return Ok(None) };
    if let Some(times) = PARSED.lock().unwrap_or_else(|e| e.into_inner()).get(*name) {
        return Ok(Some(times.clone()));
    }
    let times = Arc::new(MeasuredTimes::from_source(&YamlSource::from_text(
        format!("<bundled hardware-profiles/calibrations/aiconfigurator/{name}.yaml>"),
        PathBuf::new(),
        text.to_string(),
    ))?);
    PARSED.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), times.clone());
    Ok(Some(times))
}

/// The bundled measured operator times of `device` served by `engine` (a servesim engine
/// name), from the latest framework version bundled; `None` when none is bundled (the
/// roofline prices everything). Err for an unknown engine.
pub fn bundled_measured(device: &str, engine: &str) -> Result<Option<Arc<MeasuredTimes>>> {
    let framework = aiconfigurator_framework(engine).map_err(|message| Error::usage("engine", message))?;
    let Some(framework) = framework else { return Ok(None) };
    bundled_measured_for_framework(device, framework)
}

/// The bundled measured operator times of `device` under AIConfigurator framework
/// `framework` (`trtllm`, `vllm`, `sglang`), latest version; `None` when none is bundled.
pub fn bundled_measured_for_framework(device: &str, framework: &str) -> Result<Option<Arc<MeasuredTimes>>> {
    let latest = BUNDLED_MEASURED
        .iter()
        .filter_map(|(name, _)| measured_name_parts(name).map(|parts| (*name, parts)))
        .filter(|(_, (d, f, _))| *d == device && *f == framework)
        .max_by_key(|(_, (_, _, version))| crate::calibration::aiconfigurator::version_order(version));
    match latest {
        Some((name, _)) => bundled_measured_by_name(name),
        None => Ok(None),
    }
}

/// Reads a measured-operator calibration file written by `servesim calibrate --aiconfigurator`.
pub fn measured_file(path: &std::path::Path) -> Result<MeasuredTimes> {
    MeasuredTimes::from_file(path)
}

/// Embedded bundled scenario by file stem.
pub fn bundled_scenario(name: &str) -> Option<&'static str> {
    BUNDLED_SCENARIOS.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}
