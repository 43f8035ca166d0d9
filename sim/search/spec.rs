//! The search spec file and the plans it spans.

use crate::error::Result;
use crate::hardware::Catalog;
use crate::input::checked::{Count, Fraction, Positive};
use crate::input::YamlSource;
use crate::scenario::schema::{ClusterSection, NodeCountSection, RouterKind, ScenarioFile};
use crate::serving::{Policy, RequestSpec};
use serde::{Deserialize, Serialize};
use std::path::Path;

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

/// The axes: each lists the values to try for pool 0 of the base scenario (absent: keep the
/// base value).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    /// Device profiles (placed on the first bundled node holding that device).
    pub device: Option<Vec<String>>,
    /// Tensor-parallel degrees.
    pub tensor_parallel: Option<Vec<Count>>,
    /// Pipeline stages.
    pub pipeline_parallel: Option<Vec<Count>>,
    /// Replica counts.
    pub replicas: Option<Vec<Count>>,
    /// Batch sequence limits.
    pub max_num_seqs: Option<Vec<Count>>,
    /// Token budgets (the chunk size of chunked prefill).
    pub max_num_batched_tokens: Option<Vec<Count>>,
    /// Queue policies.
    pub policy: Option<Vec<Policy>>,
    /// Routers.
    pub router: Option<Vec<RouterKind>>,
    /// Memory utilisation.
    pub memory_utilization: Option<Vec<Fraction>>,
    /// DVFS clock ratios.
    pub clock_ratio: Option<Vec<Fraction>>,
}

/// Limits a plan must respect to be simulated.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Most devices.
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
    /// The values to try.
    pub axes: Axes,
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
    pub index: usize,
    /// Device profile.
    pub device: String,
    /// Tensor-parallel degree.
    pub tensor_parallel: u64,
    /// Pipeline stages.
    pub pipeline_parallel: u64,
    /// Replicas.
    pub replicas: u64,
    /// max_num_seqs.
    pub max_num_seqs: u64,
    /// max_num_batched_tokens.
    pub max_num_batched_tokens: u64,
    /// Queue policy.
    pub policy: Policy,
    /// Router.
    pub router: RouterKind,
    /// Memory utilisation.
    pub memory_utilization: f64,
    /// DVFS clock ratio.
    pub clock_ratio: f64,
}

/// A validated search.
pub struct SearchSpec {
    /// Name in outputs.
    pub name: String,
    /// The spec as read.
    pub file: SearchFile,
    /// The base scenario file.
    pub base: ScenarioFile,
    /// Where the base came from (error locations, relative paths).
    pub base_source: YamlSource,
    /// The base workload, loaded once.
    pub requests: Vec<RequestSpec>,
    /// Every plan, in enumeration order.
    pub plans: Vec<Plan>,
    /// Bundled profiles.
    pub catalog: Catalog,
}

impl SearchSpec {
    /// Reads and checks a search spec.
    pub fn load(path: &Path) -> Result<SearchSpec> {
        let source = YamlSource::from_file(path)?;
        let file: SearchFile = source.parse()?;
        let catalog = Catalog::bundled()?;
        let base_source = match crate::scenario::bundled_source(&file.base) {
            Some(bundled) => bundled,
            None => {
                YamlSource::from_file(&source.resolve(&file.base)).map_err(|e| source.error("base", e.to_string()))?
            }
        };
        let base: ScenarioFile = base_source.parse()?;
        if base.deployment.pools.len() != 1 {
            return Err(source.error("base", "the base scenario must have exactly one pool (the one the axes vary)"));
        }
        let requests = crate::workload::load(&base.workload, &base_source, base.seed)?;
        let axes = &file.axes;
        macro_rules! axis {
            ($name:ident, $default:expr, $map:expr) => {
                match &axes.$name {
                    Some(values) if values.is_empty() => {
                        return Err(source.error(
                            &format!("axes.{}", stringify!($name)),
                            "the axis lists no values; give at least one or remove it",
                        ))
                    }
                    Some(values) => values.iter().map($map).collect::<Vec<_>>(),
                    None => vec![$default],
                }
            };
        }
        let pool = &base.deployment.pools[0];
        let devices = axis!(device, pool.device.clone(), |d: &String| d.clone());
        for (i, device) in devices.iter().enumerate() {
            if !catalog.devices.contains_key(device) {
                return Err(source.error(
                    &format!("axes.device[{i}]"),
                    format!(
                        "unknown device {device:?}; bundled devices are: {}",
                        crate::input::known_list(catalog.devices.keys().map(String::as_str))
                    ),
                ));
            }
            if axes.device.is_some() && node_for(&catalog, device).is_none() {
                return Err(source.error(
                    &format!("axes.device[{i}]"),
                    format!("no bundled node profile holds {device:?}, so its replicas cannot be placed"),
                ));
            }
        }
        let tps = axis!(tensor_parallel, pool.tensor_parallel.get(), |c: &Count| c.get());
        let pps = axis!(pipeline_parallel, pool.pipeline_parallel.get(), |c: &Count| c.get());
        let replicas = axis!(replicas, pool.replicas.get(), |c: &Count| c.get());
        let seqs = axis!(max_num_seqs, pool.scheduler.max_num_seqs.get(), |c: &Count| c.get());
        let budgets = axis!(max_num_batched_tokens, pool.scheduler.max_num_batched_tokens.get(), |c: &Count| c.get());
        let policies = axis!(policy, pool.scheduler.policy, |p: &Policy| *p);
        let routers = axis!(router, base.deployment.router, |r: &RouterKind| *r);
        let utilizations = axis!(memory_utilization, pool.memory_utilization.get(), |f: &Fraction| f.get());
        let clocks = axis!(clock_ratio, pool.clock_ratio.get(), |f: &Fraction| f.get());
        let mut plans = Vec::new();
        for device in &devices {
            for &tensor_parallel in &tps {
                for &pipeline_parallel in &pps {
                    for &replica_count in &replicas {
                        for &max_num_seqs in &seqs {
                            for &max_num_batched_tokens in &budgets {
                                for &policy in &policies {
                                    for &router in &routers {
                                        for &memory_utilization in &utilizations {
                                            for &clock_ratio in &clocks {
                                                plans.push(Plan {
                                                    index: plans.len(),
                                                    device: device.clone(),
                                                    tensor_parallel,
                                                    pipeline_parallel,
                                                    replicas: replica_count,
                                                    max_num_seqs,
                                                    max_num_batched_tokens,
                                                    policy,
                                                    router,
                                                    memory_utilization,
                                                    clock_ratio,
                                                });
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let spec = SearchSpec {
            name: file
                .name
                .clone()
                .unwrap_or_else(|| path.file_stem().map_or("search".into(), |s| s.to_string_lossy().into_owned())),
            file,
            base,
            base_source,
            requests,
            plans,
            catalog,
        };
        spec.check_budget(&source)?;
        Ok(spec)
    }

    /// Devices a plan uses.
    pub fn devices_of(plan: &Plan) -> u64 {
        plan.replicas * plan.tensor_parallel * plan.pipeline_parallel
    }

    /// Price of a plan's devices, USD per hour.
    pub fn cost_per_hour(&self, plan: &Plan) -> f64 {
        self.catalog.devices.get(&plan.device).map_or(0.0, |d| d.price_per_hour_usd.get())
            * Self::devices_of(plan) as f64
    }

    /// Why `plan` breaks the budget, if it does.
    pub fn budget_violation(&self, plan: &Plan) -> Option<String> {
        let budget = &self.file.budget;
        let devices = Self::devices_of(plan);
        if let Some(max) = budget.max_devices {
            if devices > max.get() {
                return Some(format!("uses {devices} devices, budget {max}"));
            }
        }
        if let Some(max) = budget.max_cost_per_hour_usd {
            let cost = self.cost_per_hour(plan);
            if cost > max.get() {
                return Some(format!("costs ${cost:.2}/h, budget ${max}/h"));
            }
        }
        None
    }

    fn check_budget(&self, source: &YamlSource) -> Result<()> {
        if self.plans.iter().any(|p| self.budget_violation(p).is_none()) {
            return Ok(());
        }
        let fewest = self.plans.iter().map(Self::devices_of).min().unwrap_or(0);
        let cheapest = self.plans.iter().map(|p| self.cost_per_hour(p)).fold(f64::INFINITY, f64::min);
        Err(source.error(
            "budget",
            format!(
                "no plan fits the budget: the smallest plan uses {fewest} devices and the cheapest costs ${cheapest:.2}/h"
            ),
        ))
    }

    /// The scenario file of `plan`: the base with pool 0 replaced and, when the device axis is
    /// searched, a cluster of the device's bundled node with as many nodes as needed.
    pub fn scenario_file(&self, plan: &Plan) -> ScenarioFile {
        let mut file = self.base.clone();
        file.name = Some(format!("{}-plan{}", self.name, plan.index));
        file.deployment.router = plan.router;
        let pool = &mut file.deployment.pools[0];
        pool.device = plan.device.clone();
        pool.tensor_parallel = Count::new(plan.tensor_parallel).expect("≥ 1");
        pool.pipeline_parallel = Count::new(plan.pipeline_parallel).expect("≥ 1");
        pool.replicas = Count::new(plan.replicas).expect("≥ 1");
        pool.scheduler.max_num_seqs = Count::new(plan.max_num_seqs).expect("≥ 1");
        pool.scheduler.max_num_batched_tokens = Count::new(plan.max_num_batched_tokens).expect("≥ 1");
        pool.scheduler.policy = plan.policy;
        pool.memory_utilization = Fraction::new(plan.memory_utilization).expect("fraction");
        pool.clock_ratio = Fraction::new(plan.clock_ratio).expect("fraction");
        if pool.calibration.as_deref().is_some_and(|c| !c.starts_with(&plan.device)) {
            pool.calibration = None;
        }
        if self.file.axes.device.is_some() || file.cluster.is_some() {
            if let Some((node, per_node)) = node_for(&self.catalog, &plan.device) {
                pool.interconnect = None;
                let needed = Self::devices_of(plan).div_ceil(per_node).max(1);
                file.cluster = Some(ClusterSection {
                    nodes: vec![NodeCountSection { node, count: Count::new(needed).expect("≥ 1") }],
                });
            }
        }
        let slo = &self.file.slo;
        file.slo.ttft_s = slo.ttft_s;
        file.slo.tpot_s = slo.tpot_s;
        file.slo.e2e_s = slo.e2e_s;
        file
    }
}

/// The bundled node (by name) whose first device group is `device` — its main processor — or
/// else any holding it, and how many of it one node has.
fn node_for(catalog: &Catalog, device: &str) -> Option<(String, u64)> {
    let primary = catalog.nodes.values().find(|n| n.devices.first().is_some_and(|g| g.device == device));
    primary
        .or_else(|| catalog.nodes.values().find(|n| n.count_of(device) > 0))
        .map(|n| (n.name.clone(), n.count_of(device)))
}
