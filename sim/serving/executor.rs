//! Running batches on a replica's devices: pricing each with the cost model, passing it
//! through the pipeline stages, and accounting device time and energy.
//!
//! With `stages` pipeline stages up to `stages` batches are in flight (vLLM's virtual
//! engines); a batch enters stage s when it has left stage s−1 (plus the activation transfer)
//! and stage s is free. A worker may own only a share of the devices' compute (semi-PD): it
//! is then priced at that share of the peak FLOP/s and at the memory bandwidth the other
//! worker's batch in flight leaves (never less than its compute share). This module does not
//! choose batches.

use crate::cost::{CostModel, IterationCost, ResourceShare};
use crate::engine::SimTime;
use crate::hardware::PowerSpec;
use crate::model::BatchShape;
use std::collections::VecDeque;

/// Which role a replica plays; counters are kept per role so that replicas which switch roles
/// are accounted in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Prefill and decode on the same devices.
    Colocated,
    /// Prompt computation only; finished prompts' KV moves to a decode replica.
    Prefill,
    /// Decoding of prompts computed elsewhere.
    Decode,
}

impl Role {
    /// Every role, in counter order.
    pub const ALL: [Role; 3] = [Role::Colocated, Role::Prefill, Role::Decode];

    /// Index into per-role counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Role::Colocated => "colocated",
            Role::Prefill => "prefill",
            Role::Decode => "decode",
        }
    }
}

/// Counters of one role. Device-weighted figures are summed over the replica's devices (a
/// stage of a TP-4 replica busy for 1 s adds 4 device-seconds; a worker owning half the
/// compute adds half).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoleStats {
    /// Time the replica spent in this role, ns.
    pub role_ns: u64,
    /// Device-time spent computing, ns.
    pub busy_device_ns: f64,
    /// Energy of all devices while computing, J.
    pub busy_energy_j: f64,
    /// ∫ compute utilisation over device-time, s.
    pub compute_utilization_s: f64,
    /// ∫ memory utilisation over device-time, s.
    pub memory_utilization_s: f64,
    /// Batches run.
    pub iterations: u64,
}

/// Counters a replica keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplicaStats {
    /// Per role (index by [`Role::index`]).
    pub roles: [RoleStats; 3],
    /// ∫ waiting requests dt, request·s.
    pub waiting_area: f64,
    /// ∫ KV blocks used dt, block·s.
    pub kv_block_area: f64,
    /// Preemptions.
    pub preemptions: u64,
    /// Prompt tokens computed (including recomputation).
    pub prefill_tokens: u64,
    /// Decode tokens computed.
    pub decode_tokens: u64,
    /// Role switches.
    pub role_switches: u64,
    /// Prompt tokens of requests admitted for the first time.
    pub prompt_tokens_admitted: u64,
    /// Of those, tokens found in the prefix cache.
    pub prefix_hit_tokens: u64,
    /// Prefix-cache entries evicted.
    pub prefix_evictions: u64,
    /// Host-tier traffic (zero without offload).
    pub tiers: super::TierStats,
    /// Speculative decoding (zero without it).
    pub speculation: super::SpeculationStats,
}

impl ReplicaStats {
    /// Batches run in every role.
    pub fn iterations(&self) -> u64 {
        self.roles.iter().map(|r| r.iterations).sum()
    }

    /// Device-time spent computing in every role, ns.
    pub fn busy_device_ns(&self) -> f64 {
        self.roles.iter().map(|r| r.busy_device_ns).sum()
    }
}

/// One batch as it ran, for timelines and plots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterationRecord {
    /// Replica index.
    pub replica: u32,
    /// Worker within the replica (1 only for the decode worker of a split replica).
    pub worker: u8,
    /// Role of the replica when the batch ran.
    pub role: Role,
    /// When the batch entered the first stage.
    pub start: SimTime,
    /// Time in each stage, ns.
    pub stage_ns: u64,
    /// When it left the last stage.
    pub done: SimTime,
    /// Sequences in the batch.
    pub sequences: u32,
    /// Prompt tokens computed.
    pub prefill_tokens: u32,
    /// Decode tokens computed.
    pub decode_tokens: u32,
    /// KV blocks in use once the batch's blocks were reserved.
    pub kv_used_blocks: u64,
    /// Requests waiting when it started.
    pub waiting: u32,
    /// Power of each device during the batch, W.
    pub power_w: f64,
    /// Drafting the batch's verifications waited for, ns (0 without speculation).
    pub draft_ns: u64,
    /// Drafting that ran beside the batch (PEARL), ns.
    pub draft_beside_ns: u64,
}

/// Power and device count of a replica.
#[derive(Debug, Clone)]
pub struct ReplicaHardware {
    /// Devices per pipeline stage (the tensor-parallel degree).
    pub devices_per_stage: u32,
    /// Pipeline stages.
    pub stages: u32,
    /// Power of one device.
    pub power: PowerSpec,
}

impl ReplicaHardware {
    /// Devices of the replica.
    pub fn devices(&self) -> u32 {
        self.devices_per_stage * self.stages.max(1)
    }
}

/// A batch in flight.
#[derive(Debug)]
pub struct Batch {
    /// (slot, tokens computed).
    pub members: Vec<(usize, u64)>,
    /// When it leaves the last stage.
    pub done: SimTime,
}

/// Times at which a started batch frees the first stage and completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// When the first stage can take another batch.
    pub first_stage_free: SimTime,
    /// When the batch leaves the last stage.
    pub done: SimTime,
    /// Whether the pipeline can take another batch before this one completes.
    pub pipeline_has_room: bool,
}

/// Runs one worker's batches through the stages.
pub struct Executor {
    cost_model: Box<dyn CostModel>,
    stage_free_at: Vec<SimTime>,
    batches: VecDeque<Batch>,
    /// Member lists of completed batches, reused to avoid an allocation per iteration.
    spare_members: Vec<Vec<(usize, u64)>>,
    /// Share of the devices' compute this worker owns.
    compute_share: f64,
    /// Fraction of the devices' memory bandwidth the batch in flight uses.
    bandwidth_in_use: f64,
}

impl Executor {
    /// An executor pricing batches with `cost_model` over `stages` stages.
    pub fn new(cost_model: Box<dyn CostModel>, stages: usize) -> Self {
        Executor {
            cost_model,
            stage_free_at: vec![SimTime::ZERO; stages.max(1)],
            batches: VecDeque::new(),
            spare_members: Vec::new(),
            compute_share: 1.0,
            bandwidth_in_use: 0.0,
        }
    }

    /// Sets the share of the devices' compute this worker owns.
    pub fn set_compute_share(&mut self, share: f64) {
        self.compute_share = share.clamp(0.0, 1.0);
    }

    /// The share of the devices' compute this worker owns.
    pub fn compute_share(&self) -> f64 {
        self.compute_share
    }

    /// Whether the pipeline can start a batch at `now`.
    pub fn can_start(&self, now: SimTime) -> bool {
        self.batches.len() < self.stage_free_at.len() && self.stage_free_at[0] <= now
    }

    /// Whether any batch is in flight.
    pub fn busy(&self) -> bool {
        !self.batches.is_empty()
    }

    /// When the pipeline has room but its first stage is still busy: the time to try again.
    pub fn stage_free_wakeup(&self, now: SimTime) -> Option<SimTime> {
        (self.batches.len() < self.stage_free_at.len() && self.stage_free_at[0] > now).then_some(self.stage_free_at[0])
    }

    /// A member list to fill (reused).
    pub fn take_members(&mut self) -> Vec<(usize, u64)> {
        self.spare_members.pop().unwrap_or_default()
    }

    /// Returns an unused member list.
    pub fn return_members(&mut self, mut members: Vec<(usize, u64)>) {
        members.clear();
        self.spare_members.push(members);
    }

    /// The oldest batch in flight, which completes at `now`.
    pub fn complete(&mut self, now: SimTime) -> Batch {
        let batch = self.batches.pop_front().expect("a batch was in flight");
        debug_assert_eq!(batch.done, now, "batches complete in order");
        batch
    }

    /// Fraction of the devices' memory bandwidth this worker's batch in flight uses (0 when
    /// idle).
    pub fn bandwidth_in_use(&self) -> f64 {
        if self.busy() {
            self.bandwidth_in_use
        } else {
            0.0
        }
    }

    /// Prices `shape` while the replica's other worker uses `other_bandwidth` of the memory
    /// bandwidth, and sends `members` through the stages from `now`; returns the cost and the
    /// times. The batch gets the bandwidth the other leaves, but never less than this
    /// worker's compute share of it.
    pub fn start(
        &mut self,
        now: SimTime,
        shape: &BatchShape,
        members: Vec<(usize, u64)>,
        other_bandwidth: f64,
    ) -> (IterationCost, Started) {
        let share = ResourceShare {
            compute: self.compute_share,
            memory_bandwidth: (1.0 - other_bandwidth).max(self.compute_share).min(1.0),
        };
        let cost = self.cost_model.iteration_shared(shape, share);
        self.bandwidth_in_use = cost.memory_utilization * share.memory_bandwidth;
        let stages = self.stage_free_at.len();
        let mut ready = now;
        for stage in 0..stages {
            let start = ready.max(self.stage_free_at[stage]);
            let end = start + cost.duration_ns;
            self.stage_free_at[stage] = end;
            ready = if stage + 1 < stages { end + cost.transfer_ns } else { end };
        }
        self.batches.push_back(Batch { members, done: ready });
        let started = Started {
            first_stage_free: self.stage_free_at[0],
            done: ready,
            pipeline_has_room: self.batches.len() < stages,
        };
        (cost, started)
    }
}

/// Adds one batch of `cost` on `hardware` to `stats` (role `role`, worker owning `share` of
/// the compute); returns the power of each device during the batch, W.
pub fn account(
    stats: &mut ReplicaStats,
    role: Role,
    hardware: &ReplicaHardware,
    share: f64,
    batch: &BatchShape,
    cost: &IterationCost,
) -> f64 {
    let devices = f64::from(hardware.devices());
    let device_seconds = cost.duration_ns as f64 * 1e-9 * devices;
    // A worker owning a share of the chip idles that share and drives it at the batch's
    // activity; the whole-chip activity is the share times the worker's own.
    let power = if share >= 1.0 {
        hardware.power.power_w(cost.activity())
    } else {
        let idle = hardware.power.idle_w.get();
        share * idle + (hardware.power.power_w(share * cost.activity()) - idle)
    };
    let r = &mut stats.roles[role.index()];
    r.iterations += 1;
    r.busy_device_ns += cost.duration_ns as f64 * devices * share;
    r.busy_energy_j += power * device_seconds;
    r.compute_utilization_s += cost.compute_utilization * device_seconds * share;
    r.memory_utilization_s += cost.memory_utilization * device_seconds * share;
    // Verified tokens are decode work, computed as short chunks.
    stats.prefill_tokens += batch.prefill_tokens - batch.verify_tokens;
    stats.decode_tokens += batch.decode_tokens + batch.verify_tokens;
    power
}
