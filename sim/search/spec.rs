//! The search spec file, the plans it spans, and the scenario each plan stands for.

use super::axes::{value_text, Axis, AxisSet};
use crate::error::Result;
use crate::hardware::Catalog;
use crate::input::checked::{Count, Fraction, Positive};
use crate::input::YamlSource;
use crate::input::{from_yaml_value, to_yaml_value, YamlMapping as Mapping, YamlValue as Value};
use crate::records::RequestSpec;
use crate::scenario::schema::{ClusterSection, NodeCountSection, ScenarioFile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Plans a search runs unless `--max-plans` says otherwise: about an hour of simulation on
/// two cores for a trace of ~20k requests.
pub const DEFAULT_MAX_PLANS: u64 = 10_000;

/// Simulated requests per second and core assumed by [`SearchSpec::estimated_seconds`] (the
/// README's benchmarks measure 130k–150k on one core; this leaves room for larger models).
const ESTIMATE_REQUESTS_PER_CORE_S: f64 = 100_000.0;

/// What to optimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Lowest `latency_metric`.
    MinimizeLatency,
    /// Lowest energy per output token.
    MinimizeEnergy,
    /// Lowest cost per million output tokens.
    MinimizeCost,
    /// Highest request rate sustained within the SLO, per device.
    MaximizeCapacityPerDevice,
    /// Highest request rate sustained within the SLO, per dollar-hour.
    MaximizeCapacityPerDollar,
}

impl Objective {
    /// Whether the objective bisects the arrival rate.
    pub fn is_capacity(self) -> bool {
        matches!(self, Objective::MaximizeCapacityPerDevice | Objective::MaximizeCapacityPerDollar)
    }
}

/// Latency figure for `minimize_latency` and the Pareto front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyMetric {
    /// p99 time to first token.
    #[default]
    TtftP99,
    /// p50 time to first token.
    TtftP50,
    /// p99 time per output token.
    TpotP99,
    /// p99 end-to-end latency.
    E2eP99,
    /// Mean end-to-end latency.
    E2eMean,
}

/// Limits a plan must respect to be simulated.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Most devices (all pools together).
    pub max_devices: Option<Count>,
    /// Highest price of all devices together, USD per hour.
    pub max_cost_per_hour_usd: Option<Positive>,
}

/// The SLO a plan must meet.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSlo {
    /// Bound on time to first token, s.
    pub ttft_s: Option<Positive>,
    /// Bound on mean time per output token, s.
    pub tpot_s: Option<Positive>,
    /// Bound on end-to-end latency, s.
    pub e2e_s: Option<Positive>,
    /// Fraction of requests that must meet every bound.
    #[serde(default = "default_fraction")]
    pub min_fraction: Fraction,
}

fn default_fraction() -> Fraction {
    Fraction::new(0.9).expect("fraction")
}

/// Capacity-search settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySettings {
    /// Relative tolerance of the bisection on the arrival rate.
    #[serde(default = "default_tolerance")]
    pub tolerance: Fraction,
}

impl Default for CapacitySettings {
    fn default() -> Self {
        CapacitySettings { tolerance: default_tolerance() }
    }
}

fn default_tolerance() -> Fraction {
    Fraction::new(0.02).expect("fraction")
}

/// A search spec file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchFile {
    /// Name in outputs.
    #[serde(default)]
    pub name: Option<String>,
    /// Base scenario: a path relative to the spec, or a bundled scenario name.
    pub base: String,
    /// The values to try: axis name (a pool field, `router`, `<pool name>.<field>` or a path
    /// into the scenario) → list of values, in the order plans enumerate them.
    pub axes: Mapping,
    /// Limits.
    #[serde(default)]
    pub budget: Budget,
    /// The SLO (replaces the base scenario's).
    pub slo: SearchSlo,
    /// What to optimise.
    pub objective: Objective,
    /// Latency figure for `minimize_latency` and the Pareto front.
    #[serde(default)]
    pub latency_metric: LatencyMetric,
    /// Capacity-search settings.
    #[serde(default)]
    pub capacity: CapacitySettings,
    /// Rows of the terminal table.
    #[serde(default)]
    pub top: Option<Count>,
}

/// One point of the search space.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Position in the enumeration (stable across runs and shards).
    pub index: u64,
    /// One value per axis, as text.
    pub values: Vec<String>,
}

/// What a plan's scenario asks for, known before validating it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanShape {
    /// Devices of all pools.
    pub devices: u64,
    /// Their price, USD per hour.
    pub cost_per_hour_usd: f64,
    /// Pools in words, e.g. `b200 TP4 ×1 + a100-sxm-80gb TP8 ×2`.
    pub label: String,
}

/// A validated search.
pub struct SearchSpec {
    /// Name in outputs.
    pub name: String,
    /// The spec as read.
    pub file: SearchFile,
    /// Where the spec came from.
    pub source: YamlSource,
    /// The base scenario file.
    pub base: ScenarioFile,
    /// The base as a document the axes edit.
    base_document: Value,
    /// Where the base came from (error locations, relative paths).
    pub base_source: YamlSource,
    /// The base workload, loaded once.
    pub requests: Vec<RequestSpec>,
    /// Their prompts' prefix-block hashes.
    pub prefixes: std::sync::Arc<crate::records::PrefixHashes>,
    /// The axes.
    pub axes: AxisSet,
    /// Bundled profiles.
    pub catalog: Catalog,
    /// Whether some axis sets a device (plans are then placed on bundled nodes).
    searches_device: bool,
    plan_count: u64,
}

impl SearchSpec {
    /// Reads and checks a search spec; refuses one with more than `max_plans` plans.
    pub fn load(path: &Path, max_plans: u64) -> Result<SearchSpec> {
        let source = YamlSource::from_file(path)?;
        let file: SearchFile = source.parse()?;
        let name = match &file.name {
            Some(name) => {
                crate::scenario::check_plain_name(name).map_err(|message| source.error("name", message))?;
                name.clone()
            }
            None => crate::scenario::plain_name_from(
                &path.file_stem().map_or("search".into(), |s| s.to_string_lossy().into_owned()),
            ),
        };
        let catalog = Catalog::bundled()?;
        let base_source = match crate::scenario::bundled_source(&file.base) {
            Some(bundled) => bundled,
            None => YamlSource::from_file(&source.resolve(&file.base)).map_err(|e| source.file_error("base", e))?,
        };
        let base: ScenarioFile = base_source.parse()?;
        let base_document = to_yaml_value(&base).map_err(|e| source.error("base", e))?;
        let mut axes = AxisSet::default();
        for (key, values) in &file.axes {
            let Some(name) = key.as_str() else {
                return Err(source.error("axes", format!("axis names are text; found {}", value_text(key))));
            };
            let field = format!("axes.{name}");
            let Some(values) = values.as_sequence() else {
                return Err(source.error(&field, "give the axis a list of values, e.g. [1, 2, 4]"));
            };
            let axis =
                Axis::new(name, values.clone(), &base_document).map_err(|message| source.error(&field, message))?;
            axes.axes.push(axis);
        }
        let searches_device = axes.axes.iter().any(Axis::sets_pool_device);
        // A pool's device that no axis replaces must be known: it is in every plan.
        for (index, pool) in base.deployment.pools.iter().enumerate() {
            let field = format!("deployment.pools[{index}].device");
            if !axes.axes.iter().any(|a| a.path == field) {
                catalog.device(&pool.device, &base_source, &field)?;
            }
        }
        // Each value must make a well-formed scenario on its own (types, ranges, names):
        // later failures are then about the plan, not the spec.
        for axis in &axes.axes {
            for (i, value) in axis.values.iter().enumerate() {
                let field = format!("axes.{}[{i}]", axis.name);
                let mut document = base_document.clone();
                axis.set(&mut document, value).map_err(|message| source.error(&field, message))?;
                let edited: ScenarioFile = from_yaml_value(document).map_err(|e| {
                    source.error(&field, format!("{} is not a valid `{}`: {e}", value_text(value), axis.path))
                })?;
                if axis.sets_pool_device() {
                    let device = value_text(value);
                    if !edited.deployment.pools.iter().any(|p| p.device == device) {
                        continue;
                    }
                    if !catalog.devices.contains_key(&device) {
                        return Err(source.error(
                            &field,
                            format!(
                                "unknown device {device:?}; bundled devices are: {}",
                                crate::input::known_list(catalog.devices.keys().map(String::as_str))
                            ),
                        ));
                    }
                    if node_for(&catalog, &device).is_none() {
                        return Err(source.error(
                            &field,
                            format!("no bundled node profile holds {device:?}, so its replicas cannot be placed"),
                        ));
                    }
                }
            }
        }
        let plan_count = axes.plan_count().unwrap_or(u64::MAX);
        let workload = crate::workload::load(&base.workload, &base_source, base.seed)?;
        let (requests, prefixes) = (workload.requests, workload.prefixes);
        let spec = SearchSpec {
            name,
            file,
            source,
            base,
            base_document,
            base_source,
            requests,
            prefixes,
            axes,
            catalog,
            searches_device,
            plan_count,
        };
        if plan_count > max_plans {
            return Err(spec.source.error(
                "axes",
                format!(
                    "{} plans exceed the limit of {max_plans} (about {} to simulate on one core); narrow the axes, split the search with --shard, or raise the limit with --max-plans",
                    spec.plan_count_text(),
                    duration_text(spec.estimated_seconds(1)),
                ),
            ));
        }
        spec.check_budget()?;
        Ok(spec)
    }

    /// Number of plans.
    pub fn plan_count(&self) -> u64 {
        self.plan_count
    }

    fn plan_count_text(&self) -> String {
        match self.axes.plan_count() {
            Some(count) => count.to_string(),
            None => "more than 2^64".to_string(),
        }
    }

    /// A rough wall time for simulating every plan on `threads` cores, s.
    pub fn estimated_seconds(&self, threads: usize) -> f64 {
        let simulations_per_plan = if self.file.objective.is_capacity() { 12.0 } else { 1.0 };
        self.plan_count as f64 * self.requests.len() as f64 * simulations_per_plan
            / (ESTIMATE_REQUESTS_PER_CORE_S * threads.max(1) as f64)
    }

    /// Plan `index`.
    pub fn plan(&self, index: u64) -> Plan {
        Plan { index, values: self.axes.values(index).into_iter().map(value_text).collect() }
    }

    /// The scenario file of plan `index`: the base with the axes' values written in, its
    /// name and SLO set, calibrations for other devices dropped, and, when a device is
    /// searched (or the base describes a cluster), bundled nodes enough for every pool.
    pub fn scenario_file(&self, index: u64) -> std::result::Result<ScenarioFile, String> {
        let document = self.axes.apply(&self.base_document, index)?;
        let mut file: ScenarioFile = from_yaml_value(document)?;
        file.name = Some(format!("{}-plan{index}", self.name));
        for pool in &mut file.deployment.pools {
            if pool.calibration.as_deref().is_some_and(|c| !c.starts_with(&pool.device)) {
                pool.calibration = None;
            }
        }
        if self.searches_device || file.cluster.is_some() {
            // Devices each pool needs, by the bundled node that holds its device.
            let mut needs: BTreeMap<String, BTreeMap<String, (u64, u64)>> = BTreeMap::new();
            let mut all_found = true;
            for pool in &file.deployment.pools {
                match node_for(&self.catalog, &pool.device) {
                    Some((node, per_node)) => {
                        let entry = needs.entry(node).or_default().entry(pool.device.clone()).or_insert((0, per_node));
                        entry.0 += pool_devices(pool);
                    }
                    None => all_found = false,
                }
            }
            if all_found && !needs.is_empty() {
                for pool in &mut file.deployment.pools {
                    pool.interconnect = None;
                }
                file.cluster = Some(ClusterSection {
                    nodes: needs
                        .into_iter()
                        .map(|(node, devices)| {
                            let count = devices.values().map(|&(d, per)| d.div_ceil(per.max(1))).max().unwrap_or(1);
                            NodeCountSection { node, count: Count::new(count.max(1)).expect("≥ 1") }
                        })
                        .collect(),
                });
            }
        }
        let slo = &self.file.slo;
        file.slo.ttft_s = slo.ttft_s;
        file.slo.tpot_s = slo.tpot_s;
        file.slo.e2e_s = slo.e2e_s;
        Ok(file)
    }

    /// Devices, price and label of a plan's scenario file.
    pub fn shape(&self, file: &ScenarioFile) -> Result<PlanShape> {
        let mut devices = 0;
        let mut cost = 0.0;
        let mut parts = Vec::new();
        for (index, pool) in file.deployment.pools.iter().enumerate() {
            let device =
                self.catalog.device(&pool.device, &self.base_source, &format!("deployment.pools[{index}].device"))?;
            let count = pool_devices(pool);
            devices += count;
            cost += device.price_per_hour_usd.get() * count as f64;
            let mut part = format!("{} TP{}", device.name, pool.tensor_parallel);
            if pool.pipeline_parallel.get() > 1 {
                part += &format!(" PP{}", pool.pipeline_parallel);
            }
            part += &format!(" ×{}", pool.replicas);
            parts.push(part);
        }
        Ok(PlanShape { devices, cost_per_hour_usd: cost, label: parts.join(" + ") })
    }

    /// Why a plan of `shape` breaks the budget, if it does.
    pub fn budget_violation(&self, shape: &PlanShape) -> Option<String> {
        let budget = &self.file.budget;
        if let Some(max) = budget.max_devices {
            if shape.devices > max.get() {
                return Some(format!("uses {} devices, budget {max}", shape.devices));
            }
        }
        if let Some(max) = budget.max_cost_per_hour_usd {
            if shape.cost_per_hour_usd > max.get() {
                return Some(format!("costs ${:.2}/h, budget ${max}/h", shape.cost_per_hour_usd));
            }
        }
        None
    }

    fn check_budget(&self) -> Result<()> {
        let budget = &self.file.budget;
        if budget.max_devices.is_none() && budget.max_cost_per_hour_usd.is_none() {
            return Ok(());
        }
        let mut fewest = u64::MAX;
        let mut cheapest = f64::INFINITY;
        for index in 0..self.plan_count {
            let Ok(file) = self.scenario_file(index) else { continue };
            let shape = self.shape(&file)?;
            if self.budget_violation(&shape).is_none() {
                return Ok(());
            }
            fewest = fewest.min(shape.devices);
            cheapest = cheapest.min(shape.cost_per_hour_usd);
        }
        if fewest == u64::MAX {
            // No plan made a scenario file; evaluating them says why.
            return Ok(());
        }
        Err(self.source.error(
            "budget",
            format!(
                "no plan fits the budget: the smallest plan uses {fewest} devices and the cheapest costs ${cheapest:.2}/h"
            ),
        ))
    }
}

impl std::fmt::Debug for SearchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchSpec").field("name", &self.name).field("plans", &self.plan_count).finish()
    }
}

/// Devices of one pool section.
fn pool_devices(pool: &crate::scenario::schema::PoolSection) -> u64 {
    pool.replicas.get() * pool.tensor_parallel.get() * pool.pipeline_parallel.get()
}

/// The bundled node (by name) whose first device group is `device` — its main processor — or
/// else any holding it, and how many of it one node has.
fn node_for(catalog: &Catalog, device: &str) -> Option<(String, u64)> {
    let primary = catalog.nodes.values().find(|n| n.devices.first().is_some_and(|g| g.device == device));
    primary
        .or_else(|| catalog.nodes.values().find(|n| n.count_of(device) > 0))
        .map(|n| (n.name.clone(), n.count_of(device)))
}

/// Loads a search spec with the default plan limit (tests, library callers).
pub fn load_spec(path: &Path) -> Result<SearchSpec> {
    SearchSpec::load(path, DEFAULT_MAX_PLANS)
}

/// A duration in the largest sensible unit, e.g. `3.2 h`.
pub fn duration_text(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else if seconds < 172_800.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.0} days", seconds / 86_400.0)
    }
}
