//! Evaluating one plan: prune it (budget, memory, parallel layout, DVFS, placement) with the
//! reason in words, or simulate it, and for capacity objectives find the highest sustainable
//! request rate by bisection.

use super::spec::{LatencyMetric, Objective, Plan, SearchSpec};
use crate::cluster::simulate;
use crate::error::Error;
use crate::metrics::Summary;
use crate::records::RequestSpec;
use crate::scenario::{Overrides, Scenario};

/// Why a plan was not simulated, grouped for the terminal and kept whole for the CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// A category in words, e.g. "does not fit in device memory".
    pub category: String,
    /// The full reason.
    pub reason: String,
}

impl Pruned {
    /// The category of a scenario validation error, from the field it names.
    pub fn from_error(error: &Error) -> Pruned {
        let (field, message) = match error {
            Error::Input { location, message } => (location.field.clone().unwrap_or_default(), message.clone()),
            Error::Io { .. } | Error::Usage { .. } => (String::new(), error.to_string()),
        };
        let leaf = field.rsplit('.').next().unwrap_or("");
        let category = match leaf {
            // A draft or heads that do not fit beside the target or on their own device.
            _ if field.contains(".speculation") && (message.contains("fit") || message.contains("no room")) => {
                "does not fit in device memory"
            }
            _ if field.contains(".speculation") => "invalid speculation",
            "clock_ratio" => "the device has no DVFS point at that clock ratio",
            "tensor_parallel" | "pipeline_parallel" => "the parallel layout does not split the model",
            "device" | "runtime_reserve_gib" | "max_num_batched_tokens" | "max_num_seqs" | "block_size" => {
                "does not fit in device memory"
            }
            "replicas" | "count" => "cannot be placed on the cluster",
            "chunked_prefill" | "max_model_len" => "invalid scheduler limits",
            _ if field.starts_with("deployment.pools") => "cannot be placed on the cluster",
            _ => "invalid plan",
        };
        let reason = if field.is_empty() { message } else { format!("{field}: {message}") };
        Pruned { category: category.to_string(), reason }
    }
}

/// Whether a plan ran.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanStatus {
    /// Simulated.
    Simulated,
    /// Not simulated, with the reason.
    Pruned(Pruned),
}

/// How a capacity search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityLimit {
    /// The SLO broke between two tested rates: the capacity is bracketed.
    Bracketed,
    /// Every tested rate met the SLO, up to the one at which the whole workload arrives at
    /// once: the plan's capacity is at least the reported rate (the workload is too short to
    /// saturate it).
    NotReached,
}

impl CapacityLimit {
    /// Name in CSV cells.
    pub fn name(self) -> &'static str {
        match self {
            CapacityLimit::Bracketed => "bracketed",
            CapacityLimit::NotReached => "not_reached",
        }
    }
}

/// Figures of a simulated plan; each is None where it has no value (e.g. TPOT when no request
/// produced two tokens). Pruned plans have none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanMetrics {
    /// Fraction of requests meeting the SLO.
    pub fraction_meeting_slo: Option<f64>,
    /// TTFT p50, s.
    pub ttft_p50_s: Option<f64>,
    /// TTFT p99, s.
    pub ttft_p99_s: Option<f64>,
    /// TPOT p50, s.
    pub tpot_p50_s: Option<f64>,
    /// TPOT p99, s.
    pub tpot_p99_s: Option<f64>,
    /// Mean end-to-end latency, s.
    pub e2e_mean_s: Option<f64>,
    /// End-to-end p99, s.
    pub e2e_p99_s: Option<f64>,
    /// Output tokens per second.
    pub output_tokens_per_s: Option<f64>,
    /// Energy per output token, J.
    pub j_per_output_token: Option<f64>,
    /// Cost per million output tokens, USD.
    pub usd_per_million_output_tokens: Option<f64>,
    /// Highest request rate within the SLO (capacity objectives only), requests/s.
    pub capacity_rps: Option<f64>,
    /// How the capacity search ended.
    pub capacity_limit: Option<CapacityLimit>,
}

/// One row of `search.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    /// The plan.
    pub plan: Plan,
    /// Pools in words (empty when the plan's scenario could not be read).
    pub label: String,
    /// Devices used.
    pub devices: Option<u64>,
    /// Price of the devices, USD per hour.
    pub cost_per_hour_usd: Option<f64>,
    /// Simulated or pruned.
    pub status: PlanStatus,
    /// Whether the SLO fraction reaches the spec's minimum.
    pub meets_slo: bool,
    /// Figures (all None when pruned).
    pub metrics: PlanMetrics,
}

impl PlanRow {
    /// The latency figure the spec ranks by.
    pub fn latency(&self, metric: LatencyMetric) -> Option<f64> {
        let m = &self.metrics;
        match metric {
            LatencyMetric::TtftP99 => m.ttft_p99_s,
            LatencyMetric::TtftP50 => m.ttft_p50_s,
            LatencyMetric::TpotP99 => m.tpot_p99_s,
            LatencyMetric::E2eP99 => m.e2e_p99_s,
            LatencyMetric::E2eMean => m.e2e_mean_s,
        }
    }

    /// The value to minimise under `objective` (capacities are negated).
    pub fn objective_value(&self, objective: Objective, metric: LatencyMetric) -> Option<f64> {
        let m = &self.metrics;
        match objective {
            Objective::MinimizeLatency => self.latency(metric),
            Objective::MinimizeEnergy => m.j_per_output_token,
            Objective::MinimizeCost => m.usd_per_million_output_tokens,
            Objective::MaximizeCapacityPerDevice => Some(-m.capacity_rps? / self.devices.filter(|&d| d > 0)? as f64),
            Objective::MaximizeCapacityPerDollar => {
                Some(-m.capacity_rps? / self.cost_per_hour_usd.filter(|&c| c > 0.0)?)
            }
        }
    }

    /// A row for a plan that was not simulated.
    fn pruned(plan: Plan, pruned: Pruned) -> PlanRow {
        PlanRow {
            plan,
            label: String::new(),
            devices: None,
            cost_per_hour_usd: None,
            status: PlanStatus::Pruned(pruned),
            meets_slo: false,
            metrics: PlanMetrics::default(),
        }
    }
}

/// Arrival times multiplied by `scale` (below 1: a faster trace).
fn scaled(requests: &[RequestSpec], scale: f64) -> Vec<RequestSpec> {
    requests
        .iter()
        .map(|r| RequestSpec { arrival: crate::engine::SimTime::from_secs_f64(r.arrival.as_secs_f64() * scale), ..*r })
        .collect()
}

/// Evaluates one plan.
pub fn evaluate_plan(spec: &SearchSpec, index: u64) -> PlanRow {
    let plan = spec.plan(index);
    let file = match spec.scenario_file(index) {
        Ok(file) => file,
        Err(reason) => return PlanRow::pruned(plan, Pruned { category: "invalid plan".into(), reason }),
    };
    let shape = match spec.shape(&file) {
        Ok(shape) => shape,
        Err(error) => return PlanRow::pruned(plan, Pruned::from_error(&error)),
    };
    let mut row = PlanRow::pruned(plan, Pruned { category: String::new(), reason: String::new() });
    row.label = shape.label.clone();
    row.devices = Some(shape.devices);
    row.cost_per_hour_usd = Some(shape.cost_per_hour_usd);
    if let Some(reason) = spec.budget_violation(&shape) {
        let category = if reason.starts_with("uses") { "over the device budget" } else { "over the cost budget" };
        row.status = PlanStatus::Pruned(Pruned { category: category.into(), reason });
        return row;
    }
    let build = |requests: Vec<RequestSpec>| {
        let workload = crate::workload::Workload { requests, prefixes: spec.prefixes.clone(), warnings: Vec::new() };
        Scenario::from_parsed(file.clone(), &spec.base_source, &Overrides::default(), Some(workload), &spec.catalog)
    };
    let scenario = match build(spec.requests.clone()) {
        Ok(scenario) => scenario,
        Err(error) => {
            row.status = PlanStatus::Pruned(Pruned::from_error(&error));
            return row;
        }
    };
    let min_fraction = spec.file.slo.min_fraction.get();
    let summary = Summary::compute(&scenario, &simulate(&scenario));
    row.status = PlanStatus::Simulated;
    let fraction = summary.goodput.fraction_meeting_slo;
    row.meets_slo = fraction.is_some_and(|f| f >= min_fraction);
    let l = &summary.latency;
    row.metrics = PlanMetrics {
        fraction_meeting_slo: fraction,
        ttft_p50_s: l.ttft_s.p50,
        ttft_p99_s: l.ttft_s.p99,
        tpot_p50_s: l.tpot_s.p50,
        tpot_p99_s: l.tpot_s.p99,
        e2e_mean_s: l.e2e_s.mean,
        e2e_p99_s: l.e2e_s.p99,
        output_tokens_per_s: summary.throughput.output_tokens_per_s,
        j_per_output_token: summary.energy.j_per_output_token,
        usd_per_million_output_tokens: summary.energy.usd_per_million_output_tokens,
        capacity_rps: None,
        capacity_limit: None,
    };
    if spec.file.objective.is_capacity() {
        let (rps, limit) = capacity(spec, &build, min_fraction);
        row.metrics.capacity_rps = Some(rps);
        row.metrics.capacity_limit = Some(limit);
    }
    row
}

/// Halvings tried below the base rate before a plan counts as unable to meet the SLO at any
/// rate (each request alone then misses it).
const MAX_HALVINGS: u32 = 20;

/// Highest arrival rate (requests/s) at which the SLO fraction holds: double or halve the
/// rate until the answer is bracketed, then bisect to the spec's relative tolerance. Doubling
/// goes on until the SLO breaks or the whole workload arrives within one nanosecond; in the
/// second case the capacity is reported as not reached.
fn capacity(
    spec: &SearchSpec,
    build: &dyn Fn(Vec<RequestSpec>) -> crate::Result<Scenario>,
    min_fraction: f64,
) -> (f64, CapacityLimit) {
    let base_requests = &spec.requests;
    let span = base_requests.last().map_or(0.0, |r| r.arrival.as_secs_f64());
    if span <= 0.0 {
        // Every request already arrives at once: no rate to scale.
        return (0.0, CapacityLimit::NotReached);
    }
    let base_rate = base_requests.len() as f64 / span;
    // `multiplier` scales the rate: arrival times shrink by it.
    let meets = |multiplier: f64| -> bool {
        match build(scaled(base_requests, 1.0 / multiplier)) {
            Ok(scenario) => Summary::compute(&scenario, &simulate(&scenario))
                .goodput
                .fraction_meeting_slo
                .is_some_and(|f| f >= min_fraction),
            Err(_) => false,
        }
    };
    let (mut low, mut high) = if meets(1.0) {
        let mut low = 1.0;
        let mut high = 2.0;
        loop {
            if span / high < 1e-9 {
                return (low * base_rate, CapacityLimit::NotReached);
            }
            if !meets(high) {
                break;
            }
            low = high;
            high *= 2.0;
        }
        (low, high)
    } else {
        let mut high = 1.0;
        let mut low = 0.5;
        let mut halvings = 1;
        while !meets(low) {
            if halvings >= MAX_HALVINGS {
                return (0.0, CapacityLimit::Bracketed);
            }
            high = low;
            low /= 2.0;
            halvings += 1;
        }
        (low, high)
    };
    let tolerance = spec.file.capacity.tolerance.get();
    while (high - low) / low > tolerance {
        let middle = (low + high) / 2.0;
        if meets(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    (low * base_rate, CapacityLimit::Bracketed)
}
