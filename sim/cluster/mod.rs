//! A cluster: the replicas of every pool behind a router, wired to the event engine.
//!
//! [`Cluster`] is the simulation's [`World`]: it turns two kinds of events (a request arrives,
//! a replica's iteration ends) into calls on the router and the replicas, and schedules what
//! they ask for. Arrivals are fed one at a time (each schedules the next), so the event queue
//! stays small however long the trace.

mod router;

pub use router::Router;

use crate::cost::{CostModel, Efficiency, ProfileEfficiency, RooflineCostModel};
use crate::engine::{self, EventQueue, RunStats, SimTime, World};
use crate::metrics::Recorder;
use crate::scenario::{PoolPlan, ReplicaPlacement, Scenario};
use crate::serving::{BlockPool, IterationRecord, Replica, ReplicaHardware, ReplicaStats, RequestSpec, Started};
use std::sync::Arc;

/// Events of a serving simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Request `index` (into the arrival-ordered list) arrives.
    Arrival(usize),
    /// Replica `index`'s oldest batch in flight completed.
    BatchDone(usize),
    /// Replica `index`'s first pipeline stage became free.
    StageFree(usize),
}

/// What a finished run leaves behind.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Per-request records.
    pub recorder: Recorder,
    /// Per-replica counters.
    pub replicas: Vec<ReplicaReport>,
    /// Engine counters.
    pub engine: RunStats,
    /// Every batch, by start time, when the scenario asked for a timeline.
    pub timeline: Option<Vec<IterationRecord>>,
}

/// A replica's counters with what is needed to interpret them.
#[derive(Debug, Clone)]
pub struct ReplicaReport {
    /// Index of its pool in the scenario.
    pub pool: usize,
    /// Counters.
    pub stats: ReplicaStats,
    /// Devices in the replica.
    pub devices: u32,
    /// Idle power per device, W.
    pub idle_power_w: f64,
    /// KV blocks.
    pub kv_capacity_blocks: u64,
    /// Most KV blocks in use at once.
    pub kv_peak_blocks: u64,
}

/// How far a run has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunProgress {
    /// Simulated time.
    pub now: SimTime,
    /// Requests completed or rejected.
    pub finished_requests: u64,
    /// Requests in the workload.
    pub total_requests: u64,
    /// Events delivered.
    pub events: u64,
}

/// The replicas, router and recorder of one run.
pub struct Cluster {
    replicas: Vec<Replica>,
    replica_pool: Vec<usize>,
    router: Router,
    recorder: Recorder,
    requests: Vec<RequestSpec>,
    record_timeline: bool,
}

impl Cluster {
    /// Builds the cluster a scenario describes, pricing iterations with the roofline model.
    pub fn build(scenario: &Scenario) -> Cluster {
        Self::build_with(scenario, |scenario, pool, placement| {
            let efficiency: Arc<dyn Efficiency> = match &pool.calibration {
                Some(calibration) => Arc::new(calibration.efficiency.clone()),
                None => Arc::new(ProfileEfficiency::of(&pool.device)),
            };
            Box::new(
                RooflineCostModel::with_efficiency(
                    &scenario.model,
                    &pool.device,
                    scenario.weight_dtype,
                    scenario.kv_dtype,
                    &placement.comm,
                    efficiency,
                )
                .with_host_launch(pool.host_launch_s),
            )
        })
    }

    /// Builds the cluster with the cost model `cost_model(scenario, pool, placement)` for each
    /// replica.
    pub fn build_with(
        scenario: &Scenario,
        mut cost_model: impl FnMut(&Scenario, &PoolPlan, &ReplicaPlacement) -> Box<dyn CostModel>,
    ) -> Cluster {
        let mut replicas = Vec::new();
        let mut replica_pool = Vec::new();
        for (pool_index, pool) in scenario.pools.iter().enumerate() {
            for placement in &pool.placements {
                replicas.push(Replica::new(
                    pool.scheduler,
                    cost_model(scenario, pool, placement),
                    BlockPool::new(pool.memory.kv_capacity_blocks, pool.memory.block_size_tokens),
                    ReplicaHardware {
                        devices_per_stage: pool.parallelism.tensor as u32,
                        stages: pool.parallelism.pipeline as u32,
                        power: pool.device.power.clone(),
                    },
                ));
                if scenario.record_timeline {
                    replicas.last_mut().expect("just pushed").record_timeline();
                }
                replica_pool.push(pool_index);
            }
        }
        Cluster {
            router: Router::new(scenario.router, scenario.seed),
            recorder: Recorder::new(&scenario.requests, scenario.keep_token_gaps),
            requests: scenario.requests.clone(),
            record_timeline: scenario.record_timeline,
            replicas,
            replica_pool,
        }
    }

    /// Runs to completion (or to `until`) and returns the records.
    pub fn run(self, until: Option<SimTime>) -> RunOutput {
        self.run_observed(until, &mut |_| {})
    }

    /// As [`Cluster::run`], calling `observe` every few thousand events (for progress bars).
    pub fn run_observed(mut self, until: Option<SimTime>, observe: &mut dyn FnMut(RunProgress)) -> RunOutput {
        const SLICE: u64 = 1 << 15;
        let mut queue = EventQueue::new();
        if let Some(first) = self.requests.first() {
            queue.schedule_at(first.arrival, Event::Arrival(0));
        }
        let mut engine = RunStats::default();
        while !engine::run_limited(&mut self, &mut queue, until, SLICE, &mut engine) {
            observe(RunProgress {
                now: engine.end_time,
                finished_requests: self.recorder.finished(),
                total_requests: self.requests.len() as u64,
                events: engine.events_delivered,
            });
        }
        let mut output = self.finish(engine.end_time);
        output.engine = engine;
        output
    }

    /// The replicas (for inspection between events).
    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// Closes the time integrals at `end` and hands over the records.
    pub fn finish(mut self, end: SimTime) -> RunOutput {
        let replicas = self
            .replicas
            .iter_mut()
            .zip(&self.replica_pool)
            .map(|(replica, &pool)| {
                replica.advance_to(end);
                ReplicaReport {
                    pool,
                    stats: replica.stats(),
                    devices: replica.hardware().devices_per_stage * replica.hardware().stages,
                    idle_power_w: replica.hardware().power.idle_w.get(),
                    kv_capacity_blocks: replica.kv().capacity_blocks(),
                    kv_peak_blocks: replica.kv().peak_used_blocks(),
                }
            })
            .collect();
        let timeline = self.record_timeline.then(|| {
            let mut timeline: Vec<IterationRecord> = Vec::new();
            for (index, replica) in self.replicas.iter_mut().enumerate() {
                timeline.extend(
                    replica.take_timeline().into_iter().map(|r| IterationRecord { replica: index as u32, ..r }),
                );
            }
            timeline.sort_by_key(|r| (r.start, r.replica));
            timeline
        });
        RunOutput {
            recorder: self.recorder,
            replicas,
            engine: RunStats { events_delivered: 0, end_time: end },
            timeline,
        }
    }

    fn started(queue: &mut EventQueue<Event>, replica: usize, started: Option<Started>) {
        if let Some(started) = started {
            queue.schedule_at(started.done, Event::BatchDone(replica));
            if started.pipeline_has_room && started.first_stage_free < started.done {
                queue.schedule_at(started.first_stage_free, Event::StageFree(replica));
            }
        }
    }
}

impl World for Cluster {
    type Event = Event;

    fn handle(&mut self, now: SimTime, event: Event, queue: &mut EventQueue<Event>) {
        match event {
            Event::Arrival(index) => {
                if let Some(next) = self.requests.get(index + 1) {
                    queue.schedule_at(next.arrival, Event::Arrival(index + 1));
                }
                let target = self.router.choose(&self.replicas);
                self.recorder.routed(index, target as u32);
                let spec = self.requests[index];
                let started = self.replicas[target].on_arrival(now, index, &spec, &mut self.recorder);
                Self::started(queue, target, started);
            }
            Event::BatchDone(replica) => {
                let started = self.replicas[replica].on_batch_done(now, &mut self.recorder);
                Self::started(queue, replica, started);
                if started.is_none() {
                    // A pipeline slot opened while the first stage is still busy.
                    if let Some(at) = self.replicas[replica].stage_free_wakeup(now) {
                        queue.schedule_at(at, Event::StageFree(replica));
                    }
                }
            }
            Event::StageFree(replica) => {
                let started = self.replicas[replica].on_stage_free(now, &mut self.recorder);
                Self::started(queue, replica, started);
            }
        }
    }
}

/// Builds and runs a scenario.
pub fn simulate(scenario: &Scenario) -> RunOutput {
    Cluster::build(scenario).run(scenario.max_time)
}

/// Builds and runs a scenario, reporting progress to `observe`.
pub fn simulate_observed(scenario: &Scenario, observe: &mut dyn FnMut(RunProgress)) -> RunOutput {
    Cluster::build(scenario).run_observed(scenario.max_time, observe)
}
