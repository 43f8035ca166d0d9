//! Plan search: enumerate deployment plans from a search spec, prune the infeasible ones with
//! their reasons, simulate the rest in parallel, and rank them by latency, energy, cost or
//! sustainable request rate under an SLO, with a Pareto front and the best plan written out
//! as a runnable scenario.
//!
//! Results are a pure function of the spec and the plan rows: the same for any thread count,
//! and a run split into deterministic shards (`--shard I/N`, plan i goes to shard i mod N)
//! merges into the same files as one run. This module does not simulate by itself; it builds
//! scenarios and hands them to `cluster`.

mod axes;
mod evaluate;
mod output;
mod spec;

pub use axes::{value_text, Axis, AxisSet};
pub use evaluate::{evaluate_plan, CapacityLimit, PlanMetrics, PlanRow, PlanStatus, Pruned};
pub use output::{columns, finalize, read_rows, rows_text, write_rows, SearchOutputs};
pub use spec::{
    duration_text, load_spec, Budget, LatencyMetric, Objective, Plan, PlanShape, SearchFile, SearchSpec,
    DEFAULT_MAX_PLANS,
};

use rayon::prelude::*;

/// Which plans a run evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard's index, from 0.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole search.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `I/N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (i, n) = text.split_once('/').ok_or_else(|| format!("expected I/N (e.g. 0/4), found {text:?}"))?;
        let index: usize = i.trim().parse().map_err(|_| format!("shard index {i:?} is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| format!("shard count {n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: the index must be below the count"));
        }
        Ok(Shard { index, count })
    }

    /// Whether plan `i` belongs to this shard.
    pub fn contains(&self, plan_index: u64) -> bool {
        plan_index % self.count as u64 == self.index as u64
    }

    /// This shard's plan indices among `plan_count` plans.
    pub fn plans(&self, plan_count: u64) -> impl Iterator<Item = u64> {
        (self.index as u64..plan_count).step_by(self.count)
    }
}

/// Evaluates this shard's plans on the current rayon pool; `progress` is called after each.
pub fn run_plans(spec: &SearchSpec, shard: Shard, progress: &(dyn Fn() + Sync)) -> Vec<PlanRow> {
    let plans: Vec<u64> = shard.plans(spec.plan_count()).collect();
    plans
        .par_iter()
        .map(|&index| {
            let row = evaluate_plan(spec, index);
            progress();
            row
        })
        .collect()
}
