//! A cluster: the serving components a scenario describes, wired once into a [`Simulation`],
//! run, and taken apart into records.
//!
//! Wiring order fixes every component's id: the request source, the entry router, the decode
//! router and KV-transfer network (with prefill/decode disaggregation), the role controller
//! (with a switching pool), then the replicas of every pool in order. Components only know
//! each other's ids; what they share is the [`ServingState`].

use crate::cost::{CostModel, Efficiency, GraphPlan, HostOverheads, KernelScale, ProfileEfficiency, RooflineCostModel};
use crate::engine::{ComponentId, RunStats, SimTime, Simulation};
use crate::engine_profiles::{Batching, EngineProfile, GraphMode};
use crate::model::ModelSpec;
use crate::records::Recorder;
use crate::scenario::{
    Drafter, ParallelComm, PoolPlan, PoolRole, PrefixCachePlan, ReplicaPlacement, RouterKind, Scenario,
};
use crate::serving::{
    Acceptance, BatchPolicy, BlockPool, CacheCapacity, DraftCost, Executor, Handoff, HostTiers, IterationRecord,
    KvLayout, KvManager, LeastKvLoad, LeastOutstandingTokens, Msg, Network, PowerOfTwo, PrefillFirst, PrefixAware,
    PrefixCache, Replica, ReplicaGauge, ReplicaHardware, ReplicaSetup, ReplicaStats, RequestSource, Role,
    RoleController, RoleSwitch, RoundRobin, RoutePolicy, RouteTarget, Router, SchedulerState, Scope, ScorerWeights,
    ServingState, ShareControl, Speculator, Stage, SwitchPolicy, TierSpec, TransferLog, VllmV1, Worker,
};
use std::sync::Arc;

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
    /// KV transfers (disaggregated deployments).
    pub transfers: TransferLog,
    /// Role switches (switching pools).
    pub role_switches: Vec<RoleSwitch>,
}

/// A replica's counters with what is needed to interpret them.
#[derive(Debug, Clone)]
pub struct ReplicaReport {
    /// Index of its pool in the scenario.
    pub pool: usize,
    /// Its role at the end.
    pub role: Role,
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

/// The wired components of one run.
pub struct Cluster {
    sim: Simulation<Msg, ServingState>,
    replicas: Vec<ComponentId>,
    replica_pool: Vec<usize>,
    max_time: Option<SimTime>,
}

/// Builds the cost model of one worker of one replica.
pub type CostModelFactory<'a> = dyn FnMut(&Scenario, &PoolPlan, &ReplicaPlacement) -> Box<dyn CostModel> + 'a;

fn route_policy(kind: RouterKind, scenario: &Scenario, name: &str) -> Box<dyn RoutePolicy> {
    match kind {
        RouterKind::RoundRobin => Box::new(RoundRobin::default()),
        RouterKind::LeastOutstandingTokens => Box::new(LeastOutstandingTokens),
        RouterKind::LeastKvLoad => Box::new(LeastKvLoad),
        RouterKind::PowerOfTwo => Box::new(PowerOfTwo::new(scenario.seed, name)),
        RouterKind::PrefixAware => {
            Box::new(PrefixAware::new(ScorerWeights::default(), router_index_capacities(scenario)))
        }
    }
}

/// How many prefix blocks a cache-aware router believes each replica (in wiring order) can
/// hold: its prefix cache's capacity, else its whole KV pool; unbounded for the unlimited
/// what-if.
fn router_index_capacities(scenario: &Scenario) -> Vec<Option<u64>> {
    let hash_tokens = u64::from(scenario.prefixes.block_tokens.max(1));
    let mut capacities = Vec::new();
    for pool in &scenario.pools {
        let blocks = match pool.prefix_cache {
            Some(PrefixCachePlan { capacity_blocks: None, .. }) => None,
            Some(PrefixCachePlan { capacity_blocks: Some(blocks), .. }) => Some(blocks),
            None => Some(pool.memory.kv_capacity_blocks),
        };
        let entries = blocks.map(|blocks| blocks * pool.memory.block_size_tokens / hash_tokens);
        capacities.extend(std::iter::repeat_n(entries, pool.placements.len()));
    }
    capacities
}

/// The cost model of one replica of `pool` placed at `placement`, as runs use it: the
/// pool's calibration (else the device profile's efficiencies), its measured operator times,
/// and its engine's host work and graphs.
pub fn pool_cost_model(pool: &PoolPlan, placement: &ReplicaPlacement) -> RooflineCostModel {
    let efficiency: Arc<dyn Efficiency> = match &pool.calibration {
        Some(calibration) => Arc::new(calibration.efficiency.clone()),
        None => Arc::new(ProfileEfficiency::of(&pool.device)),
    };
    let mut cost =
        RooflineCostModel::with_efficiency(&pool.model, &pool.device, pool.precision, &placement.comm, efficiency)
            .with_host(host_overheads(&pool.engine, pool.host_launch_s));
    if let Some(times) = &pool.measured {
        cost = cost.with_measured(times.clone());
    }
    let reread =
        if pool.model.sliding_window_tokens.is_some() { pool.engine.windowed_decode_reread_fraction } else { 0.0 };
    cost.with_kv_rereads(reread)
        .with_experts_at_16_bits(pool.engine.experts_at_16_bits)
        .with_fused_residual_norm(pool.engine.fused_residual_norm)
        .with_kernel_scale(engine_kernel_scale(&pool.engine))
}

/// The factors `engine`'s profile puts on measured kernel times, as the cost model takes them.
pub fn engine_kernel_scale(engine: &EngineProfile) -> KernelScale {
    let s = &engine.kernel_scale;
    KernelScale {
        gemm: s.gemm,
        attention_prefill: s.attention_prefill,
        attention_decode: s.attention_decode,
        experts_few_tokens: s.experts_few_tokens,
        experts_many_tokens: s.experts_many_tokens,
        all_reduce: s.all_reduce,
    }
}

/// The speculation of one replica of `pool` placed at `placement`, when the pool speculates:
/// drafts priced on the pool's devices (with its measured operator data) or on the draft's
/// own device, accepted from per-request streams of `seed`.
pub fn replica_speculator(pool: &PoolPlan, placement: &ReplicaPlacement, seed: u64) -> Option<Speculator> {
    let plan = pool.speculation.as_ref()?;
    let on_pool_devices = |model: &ModelSpec, precision, comm: &ParallelComm| {
        let mut cost = RooflineCostModel::with_efficiency(
            model,
            &pool.device,
            precision,
            comm,
            Arc::new(ProfileEfficiency::of(&pool.device)),
        )
        .with_fused_residual_norm(pool.engine.fused_residual_norm);
        if let Some(times) = &pool.measured {
            cost = cost.with_measured(times.clone());
        }
        Box::new(cost) as Box<dyn CostModel>
    };
    let single = ParallelComm { tensor_parallel: 1, pipeline_parallel: 1, ..ParallelComm::default() };
    let draft_cost = match &plan.drafter {
        Drafter::Lookup => DraftCost::Free,
        Drafter::Layers { model } => {
            DraftCost::Sequential { cost: on_pool_devices(model, pool.precision, &placement.comm), exchange_s: 0.0 }
        }
        Drafter::Heads { model } => {
            DraftCost::OnePass { cost: on_pool_devices(model, pool.precision, &placement.comm) }
        }
        Drafter::Model { model, precision, device: None, tensor_parallel, .. } => {
            let comm = if *tensor_parallel == 1 { &single } else { &placement.comm };
            DraftCost::Sequential { cost: on_pool_devices(model, *precision, comm), exchange_s: 0.0 }
        }
        Drafter::Model { model, precision, device: Some(device), link, tensor_parallel, .. } => {
            let comm = ParallelComm { tensor_parallel: *tensor_parallel, ..single.clone() };
            let cost = RooflineCostModel::with_efficiency(
                model,
                device,
                *precision,
                &comm,
                Arc::new(ProfileEfficiency::of(device)),
            );
            // Drafted tokens go to the target and the verdict comes back, every step.
            let exchange_s = 2.0 * link.as_ref().map_or(0.0, |l| l.latency_us.get() * 1e-6);
            DraftCost::Sequential { cost: Box::new(cost), exchange_s }
        }
    };
    let acceptance = Acceptance::new(plan.acceptance.clone(), plan.tree_width as u32, plan.batch_exponent, seed);
    Some(
        Speculator::new(plan.draft_tokens, plan.tree_width, plan.adaptive, plan.overlap, acceptance, draft_cost)
            .padded(plan.padded),
    )
}

/// The batch policy of an engine's scheduler.
fn batch_policy(engine: &EngineProfile) -> Box<dyn BatchPolicy> {
    match engine.scheduler.batching {
        // TensorRT-LLM's in-flight batching forms steps as vLLM V1 does; its difference,
        // whole-output reservations without preemption, is in the scheduler config.
        Batching::ChunkedPrefill | Batching::Inflight => Box::new(VllmV1::default()),
        Batching::PrefillFirst => Box::new(PrefillFirst),
    }
}

/// The host side of an engine as the cost model prices it; `launch_s` overrides the engine's
/// per-kernel launch cost.
pub fn host_overheads(engine: &EngineProfile, launch_s: Option<f64>) -> HostOverheads {
    let sizes = engine.graphs.capture_sizes.clone();
    HostOverheads {
        step_s: engine.host.step_us.get() * 1e-6,
        per_sequence_s: engine.host.per_sequence_us.get() * 1e-6,
        overlapped: engine.host.overlapped,
        graphs: match engine.graphs.mode {
            GraphMode::None => GraphPlan::Eager,
            GraphMode::DecodeOnly => GraphPlan::DecodeOnly(sizes),
            GraphMode::Piecewise => GraphPlan::Piecewise(sizes),
            GraphMode::FullAndPiecewise => GraphPlan::FullAndPiecewise(sizes),
        },
        kernel_launch_s: launch_s.unwrap_or(engine.graphs.kernel_launch_us.get() * 1e-6),
    }
}

impl Cluster {
    /// Builds the cluster a scenario describes, pricing iterations with the roofline model.
    pub fn build(scenario: &Scenario) -> Cluster {
        Self::build_with(scenario, &mut |_, pool, placement| Box::new(pool_cost_model(pool, placement)))
    }

    /// Builds the cluster with `cost_model(scenario, pool, placement)` for each worker.
    pub fn build_with(scenario: &Scenario, cost_model: &mut CostModelFactory<'_>) -> Cluster {
        let state = ServingState {
            requests: scenario.requests.clone(),
            recorder: Recorder::new(&scenario.requests, scenario.keep_token_gaps),
            board: Vec::new(),
            transfers: TransferLog { records: scenario.record_timeline.then(Vec::new), ..TransferLog::default() },
            timeline: scenario.record_timeline.then(Vec::new),
            role_switches: Vec::new(),
        };
        let mut sim = Simulation::new(state);
        let disaggregated = scenario.pools.iter().any(|p| p.role.hands_off());
        let switching = scenario.pools.iter().any(|p| p.role == PoolRole::Switching);
        // Ids of the components added before the replicas.
        let source = ComponentId(0);
        let entry_router = ComponentId(1);
        let decode_router = disaggregated.then_some(ComponentId(2));
        let network = disaggregated.then_some(ComponentId(3));
        let controller = switching.then_some(ComponentId(if disaggregated { 4 } else { 2 }));
        let first_replica = 2 + if disaggregated { 2 } else { 0 } + u32::from(switching);

        // Replica indices, their pools and initial roles, in wiring order.
        let mut plan: Vec<(usize, usize, Role)> = Vec::new();
        for (pool_index, pool) in scenario.pools.iter().enumerate() {
            for replica in 0..pool.placements.len() {
                plan.push((pool_index, replica, pool.initial_role(replica as u64)));
            }
        }
        let id_of = |index: usize| ComponentId(first_replica + index as u32);
        let targets = |stage_roles: &dyn Fn(PoolRole) -> bool| -> Vec<RouteTarget> {
            plan.iter()
                .enumerate()
                .filter(|(_, (pool, _, _))| stage_roles(scenario.pools[*pool].role))
                .map(|(i, _)| RouteTarget { replica: i as u32, component: id_of(i) })
                .collect()
        };

        let added = sim.add(Box::new(RequestSource::new(entry_router)));
        debug_assert_eq!(added, source);
        let entry_targets = targets(&|role| role.takes_new_requests());
        sim.add(Box::new(
            Router::new(Stage::Entry, route_policy(scenario.router, scenario, "router"), entry_targets)
                .with_prefixes(scenario.prefixes.clone()),
        ));
        if disaggregated {
            let decode_targets = targets(&|role| role.decodes_handoffs());
            sim.add(Box::new(Router::new(
                Stage::Decode,
                route_policy(scenario.decode_router, scenario, "decode-router"),
                decode_targets,
            )));
            let layouts = plan
                .iter()
                .map(|&(pool, replica, _)| {
                    let pool = &scenario.pools[pool];
                    KvLayout {
                        devices: pool.placements[replica].devices.clone(),
                        parallelism: pool.parallelism,
                        model: pool.model.clone(),
                        kv_dtype: pool.precision.kv,
                    }
                })
                .collect();
            sim.add(Box::new(Network::new(Arc::new(scenario.fabric.clone()), layouts)));
        }
        if let Some(switch) = &scenario.switching {
            let switchable = plan
                .iter()
                .enumerate()
                .filter(|(_, (pool, _, _))| scenario.pools[*pool].role == PoolRole::Switching)
                .map(|(i, _)| (i as u32, id_of(i)))
                .collect();
            let last_arrival = scenario.requests.last().map_or(SimTime::ZERO, |r| r.arrival);
            let policy = SwitchPolicy {
                interval_ns: crate::engine::secs_to_nanos(switch.interval_s).max(1),
                prefill_queue_tokens: switch.prefill_queue_tokens,
                decode_kv_occupancy: switch.decode_kv_occupancy,
                min_per_role: switch.min_per_role,
            };
            let id = sim.add(Box::new(RoleController::new(policy, switchable, last_arrival)));
            debug_assert_eq!(Some(id), controller);
            sim.schedule(id, SimTime::ZERO, Msg::Tick);
        }
        let mut replicas = Vec::new();
        let mut replica_pool = Vec::new();
        for (index, &(pool_index, replica, role)) in plan.iter().enumerate() {
            let pool = &scenario.pools[pool_index];
            let placement = &pool.placements[replica];
            let stages = pool.parallelism.pipeline as usize;
            let workers = match &pool.semi_pd {
                None => vec![Worker::new(Scope::All, Executor::new(cost_model(scenario, pool, placement), stages))],
                Some(split) => {
                    let mut prefill = Executor::new(cost_model(scenario, pool, placement), stages);
                    let mut decode = Executor::new(cost_model(scenario, pool, placement), stages);
                    prefill.set_compute_share(split.prefill_compute_share);
                    decode.set_compute_share(1.0 - split.prefill_compute_share);
                    vec![Worker::new(Scope::Prefill, prefill), Worker::new(Scope::Decode, decode)]
                }
            };
            let blocks = BlockPool::new(pool.memory.kv_capacity_blocks, pool.memory.block_size_tokens);
            let kv = match pool.prefix_cache {
                Some(plan) if !scenario.prefixes.is_empty() => {
                    let capacity = plan.capacity_blocks.map_or(CacheCapacity::Unlimited, CacheCapacity::Blocks);
                    let entry_blocks = u64::from(scenario.prefixes.block_tokens) / pool.memory.block_size_tokens;
                    let cache = PrefixCache::new(capacity, entry_blocks, plan.share_in_flight);
                    KvManager::with_prefix_cache(blocks, cache, scenario.prefixes.clone())
                }
                _ => KvManager::new(blocks),
            };
            let kv = match &placement.offload {
                Some(plan) => {
                    let entry_blocks =
                        (u64::from(scenario.prefixes.block_tokens) / pool.memory.block_size_tokens).max(1);
                    kv.with_tiers(HostTiers::new(
                        TierSpec {
                            host_blocks: plan.host_blocks,
                            nvme_blocks: plan.nvme_blocks,
                            block_bytes_per_device: plan.block_bytes_per_device,
                            host_link_bytes_per_s: plan.host_link_bytes_per_s,
                            host_link_latency_s: plan.host_link_latency_s,
                            nvme_read_bytes_per_s: plan.nvme_read_bytes_per_s,
                            swap_preemption: plan.swap_preemption,
                        },
                        entry_blocks,
                    ))
                }
                None => kv,
            };
            let handoff = match (decode_router, network) {
                (Some(decode_router), Some(network)) if pool.role.hands_off() => Some(Handoff {
                    decode_router,
                    network,
                    streaming: scenario.kv_streaming,
                    layers_per_stage: pool.parallelism.layers_per_stage(&pool.model),
                }),
                _ => None,
            };
            let share_control = pool.semi_pd.as_ref().and_then(|split| {
                let adapt = split.adapt?;
                Some(ShareControl {
                    interval_ns: crate::engine::secs_to_nanos(adapt.interval_s).max(1),
                    step: adapt.step,
                    min: adapt.min_share,
                    max: adapt.max_share,
                    ttft_s: scenario.slo.ttft_s?,
                    tpot_s: scenario.slo.tpot_s?,
                })
            });
            let id = sim.add(Box::new(Replica::new(ReplicaSetup {
                index: index as u32,
                role,
                state: SchedulerState::new(pool.scheduler, kv, stages),
                policy: batch_policy(&pool.engine),
                workers,
                hardware: ReplicaHardware {
                    devices_per_stage: pool.parallelism.tensor as u32,
                    stages: pool.parallelism.pipeline as u32,
                    power: pool.device.power.clone(),
                },
                handoff,
                share_control,
                speculator: replica_speculator(pool, placement, scenario.seed),
            })));
            debug_assert_eq!(id, id_of(index));
            if let Some(control) = share_control {
                sim.schedule(id, SimTime::ZERO + control.interval_ns, Msg::Tick);
            }
            sim.shared_mut().board.push(ReplicaGauge::idle(role, pool.memory.kv_capacity_blocks));
            replicas.push(id);
            replica_pool.push(pool_index);
        }
        if let Some(first) = scenario.requests.first() {
            sim.schedule(source, first.arrival, Msg::Arrive(0));
        }
        Cluster { sim, replicas, replica_pool, max_time: scenario.max_time }
    }

    /// Delivers the next event (for tests that check invariants after every event).
    pub fn step(&mut self) -> Option<SimTime> {
        self.sim.step(self.max_time)
    }

    /// The replicas, by index.
    pub fn replicas(&self) -> impl Iterator<Item = &Replica> {
        self.replicas.iter().map(|&id| self.sim.component::<Replica>(id).expect("replica component"))
    }

    /// The shared state.
    pub fn state(&self) -> &ServingState {
        self.sim.shared()
    }

    /// Runs to completion (or the scenario's horizon) and returns the records.
    pub fn run(self) -> RunOutput {
        self.run_observed(&mut |_| {})
    }

    /// As [`Cluster::run`], calling `observe` every few thousand events (for progress bars).
    pub fn run_observed(mut self, observe: &mut dyn FnMut(RunProgress)) -> RunOutput {
        const SLICE: u64 = 1 << 15;
        while !self.sim.run(self.max_time, SLICE) {
            let stats = self.sim.stats();
            observe(RunProgress {
                now: stats.end_time,
                finished_requests: self.sim.shared().recorder.finished(),
                total_requests: self.sim.shared().requests.len() as u64,
                events: stats.events_delivered,
            });
        }
        self.finish()
    }

    /// Closes the time integrals at the last event and hands over the records.
    pub fn finish(mut self) -> RunOutput {
        let end = self.sim.stats().end_time;
        let mut reports = Vec::new();
        for (&id, &pool) in self.replicas.iter().zip(&self.replica_pool) {
            let replica = self.sim.component_mut::<Replica>(id).expect("replica component");
            replica.finish(end);
            reports.push(ReplicaReport {
                pool,
                role: replica.role(),
                stats: replica.stats(),
                devices: replica.hardware().devices(),
                idle_power_w: replica.hardware().power.idle_w.get(),
                kv_capacity_blocks: replica.kv().capacity_blocks(),
                kv_peak_blocks: replica.kv().peak_used_blocks(),
            });
        }
        let (state, engine) = self.sim.into_parts();
        let timeline = state.timeline.map(|mut timeline| {
            timeline.sort_by_key(|r| (r.start, r.replica, r.worker));
            timeline
        });
        RunOutput {
            recorder: state.recorder,
            replicas: reports,
            engine,
            timeline,
            transfers: state.transfers,
            role_switches: state.role_switches,
        }
    }
}

/// Builds and runs a scenario.
pub fn simulate(scenario: &Scenario) -> RunOutput {
    Cluster::build(scenario).run()
}

/// Builds and runs a scenario, reporting progress to `observe`.
pub fn simulate_observed(scenario: &Scenario, observe: &mut dyn FnMut(RunProgress)) -> RunOutput {
    Cluster::build(scenario).run_observed(observe)
}
