//! The replica state machine: admission, batch formation with a token budget, KV allocation
//! with preemption, pipelining over stages, and the bookkeeping when a batch completes.
//!
//! Batch formation follows vLLM's V1 scheduler: every sequence needs `context − computed`
//! tokens (one for a decoding sequence, the rest of its prompt for a prefilling one), running
//! sequences are served first in admission order, chunks are cut to the remaining token
//! budget, and waiting requests are admitted only while KV blocks, budget and `max_num_seqs`
//! allow (and not at all in an iteration that had to preempt).
//!
//! With `stages` pipeline stages up to `stages` batches are in flight (vLLM's virtual
//! engines); a sequence is in at most one of them, and a batch enters a stage when both it has
//! left the previous stage (plus the activation transfer) and the stage is free.

use super::{BlockPool, Policy, RequestSpec};
use crate::cost::{CostModel, IterationCost};
use crate::engine::SimTime;
use crate::metrics::{Recorder, RejectReason};
use crate::model::BatchShape;
use std::collections::{BinaryHeap, VecDeque};

/// Batch and queue limits of a replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchedulerConfig {
    /// Most sequences in one batch.
    pub max_num_seqs: u64,
    /// Token budget of one iteration.
    pub max_num_batched_tokens: u64,
    /// Whether long prompts are split across iterations.
    pub chunked_prefill: bool,
    /// Longest sequence (prompt + output) accepted.
    pub max_model_len: u64,
    /// Waiting-queue order.
    pub policy: Policy,
}

/// Counters a replica keeps about itself. Device-weighted figures are summed over the
/// replica's devices (a stage of a TP-4 replica busy for 1 s adds 4 device-seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplicaStats {
    /// Batches run.
    pub iterations: u64,
    /// Device-time spent computing, ns.
    pub busy_device_ns: u64,
    /// Energy of all devices while computing, J.
    pub busy_energy_j: f64,
    /// ∫ compute utilisation over device-time, s.
    pub compute_utilization_s: f64,
    /// ∫ memory utilisation over device-time, s.
    pub memory_utilization_s: f64,
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
}

/// One batch as it ran, for timelines and plots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterationRecord {
    /// Replica index (set by the cluster).
    pub replica: u32,
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

#[derive(Debug, Clone)]
struct Sequence {
    request: usize,
    key: (i64, u64),
    /// Prompt plus tokens generated so far.
    context_tokens: u64,
    /// Tokens whose KV is in the cache.
    computed_tokens: u64,
    /// Prompt tokens never computed yet (recomputation does not count).
    fresh_prompt_tokens: u64,
    remaining_output: u64,
    blocks: u64,
    in_flight: bool,
}

#[derive(Debug)]
struct Waiting(Sequence);

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.key.cmp(&self.0.key) // smallest key on top of the max-heap
    }
}

#[derive(Debug)]
struct Batch {
    /// (slot, tokens computed).
    members: Vec<(usize, u64)>,
    done: SimTime,
}

/// Power and device count of a replica.
#[derive(Debug, Clone)]
pub struct ReplicaHardware {
    /// Devices per pipeline stage (the tensor-parallel degree).
    pub devices_per_stage: u32,
    /// Pipeline stages.
    pub stages: u32,
    /// Power of one device.
    pub power: crate::hardware::PowerSpec,
}

/// One serving replica.
pub struct Replica {
    config: SchedulerConfig,
    cost_model: Box<dyn CostModel>,
    kv: BlockPool,
    hardware: ReplicaHardware,
    waiting: BinaryHeap<Waiting>,
    /// Running sequences by slot; `running` lists occupied slots in admission order.
    slots: Vec<Option<Sequence>>,
    free_slots: Vec<usize>,
    running: Vec<usize>,
    batches: VecDeque<Batch>,
    /// Member lists of completed batches, reused to avoid an allocation per iteration.
    spare_members: Vec<Vec<(usize, u64)>>,
    stage_free_at: Vec<SimTime>,
    preempted_this_iteration: bool,
    timeline: Option<Vec<IterationRecord>>,
    outstanding_tokens: u64,
    last_change: SimTime,
    stats: ReplicaStats,
}

impl Replica {
    /// A replica whose iterations are priced by `cost_model`, with a KV pool of `kv`.
    pub fn new(
        config: SchedulerConfig,
        cost_model: Box<dyn CostModel>,
        kv: BlockPool,
        hardware: ReplicaHardware,
    ) -> Self {
        let stages = hardware.stages.max(1) as usize;
        Replica {
            config,
            cost_model,
            kv,
            hardware,
            waiting: BinaryHeap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            running: Vec::new(),
            batches: VecDeque::new(),
            spare_members: Vec::new(),
            stage_free_at: vec![SimTime::ZERO; stages],
            preempted_this_iteration: false,
            timeline: None,
            outstanding_tokens: 0,
            last_change: SimTime::ZERO,
            stats: ReplicaStats::default(),
        }
    }

    /// Keeps a record of every batch (for plots and traces; off by default to save memory).
    pub fn record_timeline(&mut self) {
        self.timeline.get_or_insert_with(Vec::new);
    }

    /// The batches recorded so far.
    pub fn take_timeline(&mut self) -> Vec<IterationRecord> {
        self.timeline.take().unwrap_or_default()
    }

    /// Prompt and output tokens not yet produced by requests routed here (the
    /// least-outstanding-tokens router's measure of load).
    pub fn outstanding_tokens(&self) -> u64 {
        self.outstanding_tokens
    }

    /// Requests waiting or running.
    pub fn active_requests(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    /// Requests waiting.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// The KV pool.
    pub fn kv(&self) -> &BlockPool {
        &self.kv
    }

    /// Devices and power.
    pub fn hardware(&self) -> &ReplicaHardware {
        &self.hardware
    }

    /// Counters so far.
    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    /// Brings the time integrals up to `now`.
    pub fn advance_to(&mut self, now: SimTime) {
        let dt = (now - self.last_change) as f64 * 1e-9;
        if dt > 0.0 {
            self.stats.waiting_area += self.waiting.len() as f64 * dt;
            self.stats.kv_block_area += self.kv.used_blocks() as f64 * dt;
            self.last_change = now;
        }
    }

    /// A request arrives; returns the batch it started, if any.
    pub fn on_arrival(
        &mut self,
        now: SimTime,
        request: usize,
        spec: &RequestSpec,
        recorder: &mut Recorder,
    ) -> Option<Started> {
        self.advance_to(now);
        let total = u64::from(spec.input_tokens) + u64::from(spec.output_tokens);
        let blocks_needed = self.kv.blocks_for(total);
        let rejection = if total > self.config.max_model_len {
            Some(RejectReason::ExceedsContextWindow { tokens: total, limit: self.config.max_model_len })
        } else if blocks_needed > self.kv.capacity_blocks() {
            Some(RejectReason::ExceedsKvCapacity { blocks_needed, capacity_blocks: self.kv.capacity_blocks() })
        } else {
            None
        };
        if let Some(reason) = rejection {
            recorder.reject(request, reason);
            return None;
        }
        self.outstanding_tokens += total;
        self.waiting.push(Waiting(Sequence {
            request,
            key: self.config.policy.key(spec.input_tokens, spec.priority, request as u64),
            context_tokens: spec.input_tokens.into(),
            computed_tokens: 0,
            fresh_prompt_tokens: spec.input_tokens.into(),
            remaining_output: spec.output_tokens.into(),
            blocks: 0,
            in_flight: false,
        }));
        self.try_start(now, recorder)
    }

    /// The first pipeline stage became free; returns the batch started, if any.
    pub fn on_stage_free(&mut self, now: SimTime, recorder: &mut Recorder) -> Option<Started> {
        self.advance_to(now);
        self.try_start(now, recorder)
    }

    /// The oldest batch in flight completed at `now`; returns the batch started next, if any.
    pub fn on_batch_done(&mut self, now: SimTime, recorder: &mut Recorder) -> Option<Started> {
        self.advance_to(now);
        let batch = self.batches.pop_front().expect("a batch was in flight");
        debug_assert_eq!(batch.done, now, "batches complete in order");
        let mut finished_any = false;
        let mut members = batch.members;
        for &(slot, tokens) in &members {
            let sequence = self.slots[slot].as_mut().expect("in-flight sequences stay in their slot");
            sequence.in_flight = false;
            sequence.computed_tokens += tokens;
            let fresh = tokens.min(sequence.fresh_prompt_tokens);
            sequence.fresh_prompt_tokens -= fresh;
            self.outstanding_tokens -= fresh;
            if sequence.computed_tokens == sequence.context_tokens {
                // The last position's logits give the next token.
                sequence.context_tokens += 1;
                sequence.remaining_output -= 1;
                self.outstanding_tokens -= 1;
                recorder.token(sequence.request, now);
                if sequence.remaining_output == 0 {
                    self.kv.release(sequence.blocks);
                    self.slots[slot] = None;
                    self.free_slots.push(slot);
                    finished_any = true;
                }
            }
        }
        members.clear();
        self.spare_members.push(members);
        if finished_any {
            let slots = &self.slots;
            self.running.retain(|&slot| slots[slot].is_some());
        }
        self.try_start(now, recorder)
    }

    /// When the pipeline has room but its first stage is still busy: the time to try again.
    pub fn stage_free_wakeup(&self, now: SimTime) -> Option<SimTime> {
        (self.batches.len() < self.stage_free_at.len() && self.stage_free_at[0] > now).then_some(self.stage_free_at[0])
    }

    /// Starts a batch if the first stage is free, the pipeline has room and there is work.
    fn try_start(&mut self, now: SimTime, recorder: &mut Recorder) -> Option<Started> {
        let stages = self.stage_free_at.len();
        if self.batches.len() >= stages || self.stage_free_at[0] > now {
            return None;
        }
        let mut members = self.spare_members.pop().unwrap_or_default();
        let mut batch = self.form_batch(now, recorder, &mut members);
        // vLLM re-runs its scheduler every step; an event-driven replica must not go idle on
        // an empty batch whose only outcome was a preemption: the blocks it freed let the
        // next attempt make progress.
        while batch.is_empty() && self.preempted_this_iteration {
            batch = self.form_batch(now, recorder, &mut members);
        }
        if batch.is_empty() {
            self.spare_members.push(members);
            return None;
        }
        let cost = self.cost_model.iteration(&batch);
        self.account(&batch, &cost);
        let mut ready = now;
        for stage in 0..stages {
            let start = ready.max(self.stage_free_at[stage]);
            let end = start + cost.duration_ns;
            self.stage_free_at[stage] = end;
            ready = if stage + 1 < stages { end + cost.transfer_ns } else { end };
        }
        if let Some(timeline) = &mut self.timeline {
            timeline.push(IterationRecord {
                replica: 0,
                start: now,
                stage_ns: cost.duration_ns,
                done: ready,
                sequences: members.len() as u32,
                prefill_tokens: batch.prefill_tokens as u32,
                decode_tokens: batch.decode_tokens as u32,
                kv_used_blocks: self.kv.used_blocks(),
                waiting: self.waiting.len() as u32,
                power_w: self.hardware.power.power_w(cost.activity()),
            });
        }
        self.batches.push_back(Batch { members, done: ready });
        Some(Started {
            first_stage_free: self.stage_free_at[0],
            done: ready,
            pipeline_has_room: self.batches.len() < stages,
        })
    }

    fn account(&mut self, batch: &BatchShape, cost: &IterationCost) {
        let devices = f64::from(self.hardware.devices_per_stage * self.hardware.stages.max(1));
        let device_seconds = cost.duration_ns as f64 * 1e-9 * devices;
        let power = self.hardware.power.power_w(cost.activity());
        self.stats.iterations += 1;
        self.stats.busy_device_ns += (cost.duration_ns as f64 * devices) as u64;
        self.stats.busy_energy_j += power * device_seconds;
        self.stats.compute_utilization_s += cost.compute_utilization * device_seconds;
        self.stats.memory_utilization_s += cost.memory_utilization * device_seconds;
        self.stats.prefill_tokens += batch.prefill_tokens;
        self.stats.decode_tokens += batch.decode_tokens;
    }

    /// Picks this iteration's work: running sequences first, then admissions.
    fn form_batch(&mut self, now: SimTime, recorder: &mut Recorder, members: &mut Vec<(usize, u64)>) -> BatchShape {
        let mut batch = BatchShape::default();
        let mut budget = self.config.max_num_batched_tokens;
        self.preempted_this_iteration = false;
        let mut index = 0;
        let max_seqs = self.config.max_num_seqs as usize;
        while index < self.running.len() && budget > 0 && members.len() < max_seqs {
            let slot = self.running[index];
            let sequence = self.slots[slot].as_ref().expect("running slots are occupied");
            if sequence.in_flight {
                index += 1;
                continue;
            }
            let tokens = (sequence.context_tokens - sequence.computed_tokens).min(budget);
            if !self.reserve_blocks(index, tokens, recorder) {
                break; // the sequence itself was preempted: nothing later can run either
            }
            self.add_to_batch(&mut batch, members, slot, tokens, now, recorder);
            budget -= tokens;
            index += 1;
        }
        if !self.preempted_this_iteration {
            self.admit(&mut batch, members, &mut budget, now, recorder);
        }
        batch
    }

    /// Makes room for `tokens` more tokens of `running[index]`, preempting the sequences the
    /// policy values least among those not yet in any batch. False if `running[index]` itself
    /// had to go.
    fn reserve_blocks(&mut self, index: usize, tokens: u64, recorder: &mut Recorder) -> bool {
        let slot = self.running[index];
        loop {
            let sequence = self.slots[slot].as_ref().expect("occupied");
            let extra = self.kv.blocks_for(sequence.computed_tokens + tokens).saturating_sub(sequence.blocks);
            if self.kv.try_allocate(extra) {
                self.slots[slot].as_mut().expect("occupied").blocks += extra;
                return true;
            }
            let victim = (index..self.running.len())
                .filter(|&i| !self.slots[self.running[i]].as_ref().expect("occupied").in_flight || i == index)
                .max_by_key(|&i| self.slots[self.running[i]].as_ref().expect("occupied").key)
                .expect("index is a candidate");
            self.preempt(victim, recorder);
            if victim == index {
                return false;
            }
        }
    }

    /// Preemption by recompute: the sequence loses its KV and goes back to the waiting queue
    /// with its generated tokens appended to the prompt it must recompute.
    fn preempt(&mut self, index: usize, recorder: &mut Recorder) {
        let slot = self.running.remove(index);
        let mut sequence = self.slots[slot].take().expect("occupied");
        self.free_slots.push(slot);
        self.kv.release(sequence.blocks);
        sequence.blocks = 0;
        sequence.computed_tokens = 0;
        recorder.preempted(sequence.request);
        self.stats.preemptions += 1;
        self.preempted_this_iteration = true;
        self.waiting.push(Waiting(sequence));
    }

    fn admit(
        &mut self,
        batch: &mut BatchShape,
        members: &mut Vec<(usize, u64)>,
        budget: &mut u64,
        now: SimTime,
        recorder: &mut Recorder,
    ) {
        // As vLLM's virtual engines, each pipeline stage's batch may hold max_num_seqs.
        let max_running = self.config.max_num_seqs as usize * self.stage_free_at.len();
        while *budget > 0 && self.running.len() < max_running && members.len() < self.config.max_num_seqs as usize {
            let Some(Waiting(head)) = self.waiting.peek() else { break };
            let needed = head.context_tokens - head.computed_tokens;
            if !self.config.chunked_prefill && needed > *budget {
                break;
            }
            let tokens = needed.min(*budget);
            let blocks = self.kv.blocks_for(tokens);
            if !self.kv.try_allocate(blocks) {
                break; // admission only when blocks are free
            }
            let Waiting(mut sequence) = self.waiting.pop().expect("peeked");
            sequence.blocks = blocks;
            let slot = match self.free_slots.pop() {
                Some(slot) => {
                    self.slots[slot] = Some(sequence);
                    slot
                }
                None => {
                    self.slots.push(Some(sequence));
                    self.slots.len() - 1
                }
            };
            self.running.push(slot);
            self.add_to_batch(batch, members, slot, tokens, now, recorder);
            *budget -= tokens;
        }
    }

    fn add_to_batch(
        &mut self,
        batch: &mut BatchShape,
        members: &mut Vec<(usize, u64)>,
        slot: usize,
        tokens: u64,
        now: SimTime,
        recorder: &mut Recorder,
    ) {
        let sequence = self.slots[slot].as_mut().expect("occupied");
        let completes = sequence.computed_tokens + tokens == sequence.context_tokens;
        if tokens == 1 && completes && sequence.computed_tokens > 0 {
            batch.add_decode(sequence.context_tokens);
        } else {
            batch.add_prefill_chunk(sequence.computed_tokens, tokens, completes);
        }
        sequence.in_flight = true;
        recorder.scheduled(sequence.request, now);
        members.push((slot, tokens));
    }
}
