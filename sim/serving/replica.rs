//! The replica state machine: admission, batch formation with a token budget, KV allocation
//! with preemption, and the bookkeeping at the end of each iteration.
//!
//! Batch formation follows vLLM's V1 scheduler: every sequence needs `context − computed`
//! tokens (one for a decoding sequence, the rest of its prompt for a prefilling one), running
//! sequences are served first in admission order, chunks are cut to the remaining token
//! budget, and waiting requests are admitted only while KV blocks, budget and `max_num_seqs`
//! allow (and not at all in an iteration that had to preempt).

use super::{BlockPool, Policy, RequestSpec};
use crate::cost::{CostModel, IterationCost};
use crate::engine::SimTime;
use crate::metrics::{Recorder, RejectReason};
use crate::model::BatchShape;
use std::collections::BinaryHeap;

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

/// Counters a replica keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplicaStats {
    /// Iterations run.
    pub iterations: u64,
    /// Time spent running iterations, ns.
    pub busy_ns: u64,
    /// Energy of one device during iterations (excluding idle time), J.
    pub busy_energy_j: f64,
    /// ∫ compute utilisation dt, s.
    pub compute_utilization_s: f64,
    /// ∫ memory utilisation dt, s.
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

#[derive(Debug, Clone)]
struct Sequence {
    request: usize,
    key: (i64, u64),
    input_tokens: u32,
    /// Prompt plus tokens generated so far.
    context_tokens: u64,
    /// Tokens whose KV is in the cache.
    computed_tokens: u64,
    /// Prompt tokens never computed yet (recomputation does not count).
    fresh_prompt_tokens: u64,
    remaining_output: u64,
    blocks: u64,
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

/// One serving replica.
pub struct Replica {
    config: SchedulerConfig,
    cost_model: Box<dyn CostModel>,
    kv: BlockPool,
    devices: u32,
    idle_power_w: f64,
    max_power_w: f64,
    waiting: BinaryHeap<Waiting>,
    running: Vec<Sequence>,
    /// (index into `running`, tokens computed) of the iteration in flight.
    in_flight: Vec<(usize, u64)>,
    busy: bool,
    preempted_this_iteration: bool,
    outstanding_tokens: u64,
    last_change: SimTime,
    stats: ReplicaStats,
}

impl Replica {
    /// A replica of `devices` devices whose iterations are priced by `cost_model`, with a KV
    /// pool of `kv` and power between `idle_power_w` and `max_power_w` per device.
    pub fn new(
        config: SchedulerConfig,
        cost_model: Box<dyn CostModel>,
        kv: BlockPool,
        devices: u32,
        idle_power_w: f64,
        max_power_w: f64,
    ) -> Self {
        Replica {
            config,
            cost_model,
            kv,
            devices,
            idle_power_w,
            max_power_w,
            waiting: BinaryHeap::new(),
            running: Vec::new(),
            in_flight: Vec::new(),
            busy: false,
            preempted_this_iteration: false,
            outstanding_tokens: 0,
            last_change: SimTime::ZERO,
            stats: ReplicaStats::default(),
        }
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

    /// The KV pool.
    pub fn kv(&self) -> &BlockPool {
        &self.kv
    }

    /// Devices in this replica.
    pub fn devices(&self) -> u32 {
        self.devices
    }

    /// Idle power per device, W.
    pub fn idle_power_w(&self) -> f64 {
        self.idle_power_w
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

    /// A request arrives. Returns the duration of an iteration started by it, if any.
    pub fn on_arrival(
        &mut self,
        now: SimTime,
        request: usize,
        spec: &RequestSpec,
        recorder: &mut Recorder,
    ) -> Option<u64> {
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
            input_tokens: spec.input_tokens,
            context_tokens: spec.input_tokens.into(),
            computed_tokens: 0,
            fresh_prompt_tokens: spec.input_tokens.into(),
            remaining_output: spec.output_tokens.into(),
            blocks: 0,
        }));
        self.try_start(now, recorder)
    }

    /// The iteration in flight has finished at `now`. Returns the duration of the next
    /// iteration, if one starts.
    pub fn on_iteration_done(&mut self, now: SimTime, recorder: &mut Recorder) -> Option<u64> {
        self.advance_to(now);
        self.busy = false;
        for &(index, tokens) in &self.in_flight {
            let sequence = &mut self.running[index];
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
                    sequence.blocks = 0;
                }
            }
        }
        self.in_flight.clear();
        self.running.retain(|s| s.remaining_output > 0);
        self.try_start(now, recorder)
    }

    /// Starts an iteration if idle and there is work; returns its duration.
    fn try_start(&mut self, now: SimTime, recorder: &mut Recorder) -> Option<u64> {
        if self.busy {
            return None;
        }
        let batch = self.form_batch(now, recorder);
        if batch.is_empty() {
            return None;
        }
        let cost = self.cost_model.iteration(&batch);
        self.account(&batch, &cost);
        self.busy = true;
        Some(cost.duration_ns)
    }

    fn account(&mut self, batch: &BatchShape, cost: &IterationCost) {
        let seconds = cost.duration_ns as f64 * 1e-9;
        let power = self.idle_power_w + (self.max_power_w - self.idle_power_w) * cost.activity();
        self.stats.iterations += 1;
        self.stats.busy_ns += cost.duration_ns;
        self.stats.busy_energy_j += power * seconds;
        self.stats.compute_utilization_s += cost.compute_utilization * seconds;
        self.stats.memory_utilization_s += cost.memory_utilization * seconds;
        self.stats.prefill_tokens += batch.prefill_tokens;
        self.stats.decode_tokens += batch.decode_tokens;
    }

    /// Picks this iteration's work: running sequences first, then admissions.
    fn form_batch(&mut self, now: SimTime, recorder: &mut Recorder) -> BatchShape {
        let mut batch = BatchShape::default();
        let mut budget = self.config.max_num_batched_tokens;
        self.preempted_this_iteration = false;
        let mut index = 0;
        while index < self.running.len() && budget > 0 {
            let needed = self.running[index].context_tokens - self.running[index].computed_tokens;
            let tokens = needed.min(budget);
            if !self.reserve_blocks(index, tokens, recorder) {
                break; // the sequence itself was preempted: nothing later can run either
            }
            self.add_to_batch(&mut batch, index, tokens, now, recorder);
            budget -= tokens;
            index += 1;
        }
        if !self.preempted_this_iteration {
            self.admit(&mut batch, &mut budget, now, recorder);
        }
        batch
    }

    /// Makes room for `tokens` more tokens of `running[index]`, preempting the sequences the
    /// policy values least (never one already in this batch). False if `running[index]`
    /// itself had to go.
    fn reserve_blocks(&mut self, index: usize, tokens: u64, recorder: &mut Recorder) -> bool {
        loop {
            let sequence = &self.running[index];
            let extra = self.kv.blocks_for(sequence.computed_tokens + tokens).saturating_sub(sequence.blocks);
            if self.kv.try_allocate(extra) {
                self.running[index].blocks += extra;
                return true;
            }
            let victim = (index..self.running.len()).max_by_key(|&i| self.running[i].key).expect("index is in range");
            self.preempt(victim, recorder);
            if victim == index {
                return false;
            }
        }
    }

    /// Preemption by recompute: the sequence loses its KV and goes back to the waiting queue
    /// with its generated tokens appended to the prompt it must recompute.
    fn preempt(&mut self, index: usize, recorder: &mut Recorder) {
        let mut sequence = self.running.remove(index);
        self.kv.release(sequence.blocks);
        sequence.blocks = 0;
        sequence.computed_tokens = 0;
        recorder.preempted(sequence.request);
        self.stats.preemptions += 1;
        self.preempted_this_iteration = true;
        self.waiting.push(Waiting(sequence));
    }

    fn admit(&mut self, batch: &mut BatchShape, budget: &mut u64, now: SimTime, recorder: &mut Recorder) {
        while *budget > 0 && (self.running.len() as u64) < self.config.max_num_seqs {
            let Some(Waiting(head)) = self.waiting.peek() else {
                break;
            };
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
            self.running.push(sequence);
            let index = self.running.len() - 1;
            self.add_to_batch(batch, index, tokens, now, recorder);
            *budget -= tokens;
        }
    }

    fn add_to_batch(
        &mut self,
        batch: &mut BatchShape,
        index: usize,
        tokens: u64,
        now: SimTime,
        recorder: &mut Recorder,
    ) {
        let sequence = &self.running[index];
        let completes = sequence.computed_tokens + tokens == sequence.context_tokens;
        if tokens == 1 && completes && sequence.computed_tokens > 0 {
            batch.add_decode(sequence.context_tokens);
        } else {
            batch.add_prefill_chunk(sequence.computed_tokens, tokens, completes);
        }
        recorder.scheduled(sequence.request, now);
        self.in_flight.push((index, tokens));
    }

    /// Whether an iteration is running.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// Prompt tokens of the request at the head of the waiting queue (for tests and reports).
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// The scheduler configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    #[doc(hidden)]
    pub fn input_tokens_running(&self) -> impl Iterator<Item = u32> + '_ {
        self.running.iter().map(|s| s.input_tokens)
    }
}
