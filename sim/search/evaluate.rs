//! Evaluating one plan: prune it (budget, memory, divisibility, placement) or simulate it, and
//! for capacity objectives find the highest sustainable request rate by bisection.

use super::spec::{LatencyMetric, Objective, Plan, SearchSpec};
use crate::cluster::simulate;
use crate::metrics::Summary;
use crate::scenario::{Overrides, Scenario};
use crate::serving::RequestSpec;

/// Whether a plan ran.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanStatus {
    /// Simulated.
    Simulated,
    /// Not simulated, with the reason.
    Pruned(String),
}

/// One row of `search.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    /// The plan.
    pub plan: Plan,
    /// Devices used.
    pub devices: u64,
    /// Price of the devices, USD per hour.
    pub cost_per_hour_usd: f64,
    /// Simulated or pruned.
    pub status: PlanStatus,
    /// Fraction of requests meeting the SLO.
    pub fraction_meeting_slo: f64,
    /// Whether that fraction reaches the spec's minimum.
    pub meets_slo: bool,
    /// TTFT p50 and p99, s.
    pub ttft_p50_s: f64,
    /// TTFT p99, s.
    pub ttft_p99_s: f64,
    /// TPOT p50, s.
    pub tpot_p50_s: f64,
    /// TPOT p99, s.
    pub tpot_p99_s: f64,
    /// Mean end-to-end latency, s.
    pub e2e_mean_s: f64,
    /// End-to-end p99, s.
    pub e2e_p99_s: f64,
    /// Output tokens per second.
    pub output_tokens_per_s: f64,
    /// Energy per output token, J.
    pub j_per_output_token: f64,
    /// Cost per million output tokens, USD.
    pub usd_per_million_output_tokens: f64,
    /// Highest request rate within the SLO (capacity objectives only), requests/s.
    pub capacity_rps: f64,
}

impl PlanRow {
    /// The latency figure the spec ranks by.
    pub fn latency(&self, metric: LatencyMetric) -> f64 {
        match metric {
            LatencyMetric::TtftP99 => self.ttft_p99_s,
            LatencyMetric::TtftP50 => self.ttft_p50_s,
            LatencyMetric::TpotP99 => self.tpot_p99_s,
            LatencyMetric::E2eP99 => self.e2e_p99_s,
            LatencyMetric::E2eMean => self.e2e_mean_s,
        }
    }

    /// The value to minimise under `objective` (capacities are negated).
    pub fn objective_value(&self, objective: Objective, metric: LatencyMetric) -> f64 {
        match objective {
            Objective::MinimizeLatency => self.latency(metric),
            Objective::MinimizeEnergy => self.j_per_output_token,
            Objective::MinimizeCost => self.usd_per_million_output_tokens,
            Objective::MaximizeCapacityPerDevice => -self.capacity_rps / self.devices.max(1) as f64,
            Objective::MaximizeCapacityPerDollar => -self.capacity_rps / self.cost_per_hour_usd.max(1e-9),
        }
    }
}

fn pruned(spec: &SearchSpec, plan: &Plan, reason: String) -> PlanRow {
    PlanRow {
        plan: plan.clone(),
        devices: SearchSpec::devices_of(plan),
        cost_per_hour_usd: spec.cost_per_hour(plan),
        status: PlanStatus::Pruned(reason),
        fraction_meeting_slo: 0.0,
        meets_slo: false,
        ttft_p50_s: 0.0,
        ttft_p99_s: 0.0,
        tpot_p50_s: 0.0,
        tpot_p99_s: 0.0,
        e2e_mean_s: 0.0,
        e2e_p99_s: 0.0,
        output_tokens_per_s: 0.0,
        j_per_output_token: 0.0,
        usd_per_million_output_tokens: 0.0,
        capacity_rps: 0.0,
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
pub fn evaluate_plan(spec: &SearchSpec, plan: &Plan) -> PlanRow {
    if let Some(reason) = spec.budget_violation(plan) {
        return pruned(spec, plan, reason);
    }
    let file = spec.scenario_file(plan);
    let build = |requests: Vec<RequestSpec>| {
        Scenario::from_parsed(file.clone(), &spec.base_source, &Overrides::default(), Some(requests), &spec.catalog)
    };
    let scenario = match build(spec.requests.clone()) {
        Ok(scenario) => scenario,
        Err(error) => return pruned(spec, plan, strip_location(&error.to_string())),
    };
    let min_fraction = spec.file.slo.min_fraction.get();
    let summary = Summary::compute(&scenario, &simulate(&scenario));
    let mut row = pruned(spec, plan, String::new());
    row.status = PlanStatus::Simulated;
    row.fraction_meeting_slo = summary.goodput.fraction_meeting_slo;
    row.meets_slo = summary.goodput.fraction_meeting_slo >= min_fraction;
    let l = &summary.latency;
    row.ttft_p50_s = l.ttft_s.p50;
    row.ttft_p99_s = l.ttft_s.p99;
    row.tpot_p50_s = l.tpot_s.p50;
    row.tpot_p99_s = l.tpot_s.p99;
    row.e2e_mean_s = l.e2e_s.mean;
    row.e2e_p99_s = l.e2e_s.p99;
    row.output_tokens_per_s = summary.throughput.output_tokens_per_s;
    row.j_per_output_token = summary.energy.j_per_output_token;
    row.usd_per_million_output_tokens = summary.energy.usd_per_million_output_tokens;
    if matches!(spec.file.objective, Objective::MaximizeCapacityPerDevice | Objective::MaximizeCapacityPerDollar) {
        row.capacity_rps = capacity(spec, &build, min_fraction);
    }
    row
}

/// Highest arrival rate (requests/s) at which the SLO fraction holds: double or halve the
/// rate until the answer is bracketed, then bisect to the spec's relative tolerance.
fn capacity(spec: &SearchSpec, build: &dyn Fn(Vec<RequestSpec>) -> crate::Result<Scenario>, min_fraction: f64) -> f64 {
    let base_requests = &spec.requests;
    let span = base_requests.last().map_or(0.0, |r| r.arrival.as_secs_f64());
    if span <= 0.0 {
        return 0.0;
    }
    let base_rate = base_requests.len() as f64 / span;
    // `multiplier` scales the rate: arrival times shrink by it.
    let meets = |multiplier: f64| -> bool {
        match build(scaled(base_requests, 1.0 / multiplier)) {
            Ok(scenario) => {
                Summary::compute(&scenario, &simulate(&scenario)).goodput.fraction_meeting_slo >= min_fraction
            }
            Err(_) => false,
        }
    };
    let (mut low, mut high) = if meets(1.0) {
        let mut low = 1.0;
        let mut high = 2.0;
        while meets(high) && high < 1024.0 {
            low = high;
            high *= 2.0;
        }
        (low, high)
    } else {
        let mut high = 1.0;
        let mut low = 0.5;
        while !meets(low) && low > 1.0 / 1024.0 {
            high = low;
            low /= 2.0;
        }
        if !meets(low) {
            return 0.0;
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
    low * base_rate
}

/// Plan errors name the generated scenario's base file and line, which mean nothing to the
/// reader of `search.csv`; keep the field and the message.
fn strip_location(message: &str) -> String {
    match message.find(": field `") {
        Some(pos) => message[pos + 2..].to_string(),
        None => message.to_string(),
    }
}
