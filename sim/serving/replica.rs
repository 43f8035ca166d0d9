//! A serving replica as a component: it owns its sequences, KV cache, batch policy and
//! workers, and reacts to the messages routers, the network and its own timers send.
//!
//! A replica has a role. **Colocated**: a request's prompt and decode run here. **Prefill**:
//! the prompt runs here and its first token is sampled here (TTFT ends on the prefill
//! replica, as in Splitwise and DistServe); the KV then stays held until the decode replica
//! has it. **Decode**: it reserves room for a finished prompt's KV (a request waits on the
//! prefill side, holding its KV, while no decode replica has room: backpressure), takes the
//! sequence when the KV arrives and decodes it; a sequence preempted here is recomputed here,
//! as vLLM does. A replica may switch roles: it stops taking new work, drains, then switches.
//!
//! A replica has one worker (one batch loop over all its devices) or, with semi-PD, two
//! sharing its weights, KV cache and sequences: a prefill worker owning a share of the
//! compute and a decode worker owning the rest. Batch formation is deferred to the end of an
//! instant when more messages are due at it, so that requests arriving together are batched
//! together.

use super::batch::{BatchPolicy, SchedulerState, Scope, Waiting};
use super::executor::{account, Executor, IterationRecord, ReplicaHardware, ReplicaStats, Role};
use super::messages::{
    Msg, ReplicaGauge, RequestIndex, RoleSwitch, ServingContext, ServingState, Streaming, TransferOrder,
};
use super::speculation::Speculator;
use super::{Lifecycle, Sequence};
use crate::engine::{Component, ComponentId, SimTime};
use crate::records::RejectReason;
use std::collections::{BTreeMap, VecDeque};

/// Share of a decode replica's KV blocks kept free when granting reservations (vLLM's
/// watermark), so that running sequences can grow without being preempted at once.
const RESERVATION_WATERMARK: f64 = 0.01;

/// One batch loop of a replica.
pub struct Worker {
    /// The work it takes.
    pub scope: Scope,
    /// Its pipeline and cost model.
    pub executor: Executor,
    /// Whether a completed batch asked for a first-stage wake-up check.
    check_stage_free: bool,
}

impl Worker {
    /// A worker of `scope` running `executor`.
    pub fn new(scope: Scope, executor: Executor) -> Self {
        Worker { scope, executor, check_stage_free: false }
    }
}

/// How the prefill/decode split of a semi-PD replica adapts to its targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareControl {
    /// Seconds between adjustments.
    pub interval_ns: u64,
    /// Change of the prefill share per adjustment.
    pub step: f64,
    /// Lowest prefill share.
    pub min: f64,
    /// Highest prefill share.
    pub max: f64,
    /// TTFT target, s.
    pub ttft_s: f64,
    /// Time-per-token target, s.
    pub tpot_s: f64,
}

/// Where a disaggregated replica sends its finished prompts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Handoff {
    /// The decode router.
    pub decode_router: ComponentId,
    /// The KV-transfer network.
    pub network: ComponentId,
    /// Whether KV streams layer by layer during the last prompt chunk.
    pub streaming: bool,
    /// Layers per pipeline stage (the streaming granularity).
    pub layers_per_stage: u64,
}

/// A sequence on a prefill replica between its last prompt chunk and the end of its transfer.
#[derive(Debug, Clone, Copy)]
struct Outgoing {
    slot: usize,
    /// The last chunk's iteration is still running (streaming asks for a decode replica then).
    in_flight: bool,
    /// For streaming: share of the KV already computed, and when the rest is.
    streaming: Option<(f64, SimTime)>,
    transfer_sent: bool,
}

#[derive(Debug, Clone, Copy)]
struct PendingReservation {
    request: RequestIndex,
    from: ComponentId,
    since: SimTime,
}

/// Everything a replica is built from.
pub struct ReplicaSetup {
    /// Index among all replicas (the router board's index).
    pub index: u32,
    /// Role at the start.
    pub role: Role,
    /// Sequences and KV cache.
    pub state: SchedulerState,
    /// Batch formation.
    pub policy: Box<dyn BatchPolicy>,
    /// One worker, or a prefill and a decode worker (semi-PD).
    pub workers: Vec<Worker>,
    /// Devices and power.
    pub hardware: ReplicaHardware,
    /// Where finished prompts go (prefill and switching replicas).
    pub handoff: Option<Handoff>,
    /// Semi-PD share adaptation.
    pub share_control: Option<ShareControl>,
    /// Speculative decoding, when the pool speculates.
    pub speculator: Option<Speculator>,
}

/// A serving replica.
pub struct Replica {
    index: u32,
    role: Role,
    switch_to: Option<(Role, SimTime)>,
    role_since: SimTime,
    state: SchedulerState,
    policy: Box<dyn BatchPolicy>,
    workers: Vec<Worker>,
    hardware: ReplicaHardware,
    stats: ReplicaStats,
    outstanding_tokens: u64,
    outstanding_prompt_tokens: u64,
    last_change: SimTime,
    wake_pending: bool,
    handoff: Option<Handoff>,
    outgoing: BTreeMap<RequestIndex, Outgoing>,
    reservations: VecDeque<PendingReservation>,
    incoming: BTreeMap<RequestIndex, Sequence>,
    share_control: Option<ShareControl>,
    window_ttft: (f64, u64),
    window_decode: (f64, u64),
    speculator: Option<Speculator>,
    /// Per worker: the energy and tokens of the batch in flight (for wasted-work shares).
    batch_energy: Vec<(f64, f64, u64, u64)>,
}

impl Replica {
    /// A replica from its parts.
    pub fn new(setup: ReplicaSetup) -> Self {
        Replica {
            index: setup.index,
            role: setup.role,
            switch_to: None,
            role_since: SimTime::ZERO,
            state: setup.state,
            policy: setup.policy,
            hardware: setup.hardware,
            stats: ReplicaStats::default(),
            outstanding_tokens: 0,
            outstanding_prompt_tokens: 0,
            last_change: SimTime::ZERO,
            wake_pending: false,
            handoff: setup.handoff,
            outgoing: BTreeMap::new(),
            reservations: VecDeque::new(),
            incoming: BTreeMap::new(),
            share_control: setup.share_control,
            window_ttft: (0.0, 0),
            window_decode: (0.0, 0),
            batch_energy: vec![(0.0, 0.0, 0, 0); setup.workers.len()],
            speculator: setup.speculator,
            workers: setup.workers,
        }
    }

    /// Index among all replicas.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Its role now.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The KV cache.
    pub fn kv(&self) -> &super::KvManager {
        &self.state.kv
    }

    /// Devices and power.
    pub fn hardware(&self) -> &ReplicaHardware {
        &self.hardware
    }

    /// Counters so far.
    pub fn stats(&self) -> ReplicaStats {
        let mut stats = self.stats;
        stats.preemptions = self.state.preemptions;
        (stats.prompt_tokens_admitted, stats.prefix_hit_tokens) = self.state.prefix_counts;
        stats.prefix_evictions = self.state.kv.prefix_cache().map_or(0, |c| c.stats().evictions);
        stats.tiers = self.state.kv.tiers().map(|t| t.stats()).unwrap_or_default();
        stats.speculation = self.speculator.as_ref().map(Speculator::stats).unwrap_or_default();
        stats
    }

    /// Gives a new sequence its draft length when the replica speculates.
    fn speculate(&self, sequence: &mut Sequence) {
        if let Some(speculator) = &self.speculator {
            sequence.draft_tokens = speculator.initial_draft_tokens();
            sequence.draft_width = speculator.tree_width();
        }
    }

    /// Requests waiting or running, held for transfer or awaiting KV.
    pub fn active_requests(&self) -> usize {
        self.state.waiting.len()
            + self.state.running.len()
            + self.state.swapped.len()
            + self.outgoing.len()
            + self.incoming.len()
    }

    /// Brings the time integrals up to `now`.
    pub fn advance_to(&mut self, now: SimTime) {
        let dt = (now - self.last_change) as f64 * 1e-9;
        if dt > 0.0 {
            self.stats.waiting_area += self.state.waiting.len() as f64 * dt;
            self.stats.kv_block_area += self.state.kv.used_blocks() as f64 * dt;
            self.last_change = now;
        }
    }

    /// Closes the integrals and the current role's time at `end`.
    pub fn finish(&mut self, end: SimTime) {
        self.advance_to(end);
        self.stats.roles[self.role.index()].role_ns += end - self.role_since;
        self.role_since = end;
    }

    /// The compute share of each worker (1 for a single worker).
    pub fn compute_shares(&self) -> Vec<f64> {
        self.workers.iter().map(|w| w.executor.compute_share()).collect()
    }

    fn gauge(&self) -> ReplicaGauge {
        let pool = self.state.kv.pool();
        ReplicaGauge {
            outstanding_tokens: self.outstanding_tokens,
            kv_used_blocks: self.state.kv.used_blocks(),
            kv_capacity_blocks: pool.capacity_blocks(),
            waiting: self.state.waiting.len() as u32,
            pending_prefill_tokens: self.outstanding_prompt_tokens,
            pending_reservations: self.reservations.len() as u32,
            role: self.role,
            accepting: self.switch_to.is_none(),
        }
    }

    /// Asks for a batch at the end of the instant, when a worker could start one.
    fn request_wake(&mut self, ctx: &mut ServingContext<'_>) {
        let now = ctx.now();
        if !self.wake_pending && self.workers.iter().any(|w| w.executor.can_start(now)) {
            self.wake_pending = true;
            ctx.schedule_late(Msg::Wake);
        }
    }

    /// Forms batches now, or at the end of the instant when more messages are still due.
    fn start_soon(&mut self, ctx: &mut ServingContext<'_>) {
        if ctx.more_due_now() {
            if !self.wake_pending {
                self.wake_pending = true;
                ctx.schedule_late(Msg::Wake);
            }
        } else {
            self.try_start_all(ctx);
        }
    }

    fn try_start_all(&mut self, ctx: &mut ServingContext<'_>) {
        let now = ctx.now();
        for w in 0..self.workers.len() {
            let started = self.try_start(w, ctx);
            let worker = &mut self.workers[w];
            if std::mem::take(&mut worker.check_stage_free) && !started {
                // A pipeline slot opened while the first stage is still busy.
                if let Some(at) = worker.executor.stage_free_wakeup(now) {
                    ctx.schedule_at(at, Msg::StageFree(w as u8));
                }
            }
        }
    }

    /// Starts a batch on worker `w` if its first stage is free and there is work.
    fn try_start(&mut self, w: usize, ctx: &mut ServingContext<'_>) -> bool {
        let now = ctx.now();
        if !self.workers[w].executor.can_start(now) {
            return false;
        }
        let scope = self.workers[w].scope;
        let mut members = self.workers[w].executor.take_members();
        let state: &mut ServingState = ctx.shared;
        let mut shape = self.policy.form_batch(&mut self.state, scope, now, &mut state.recorder, &mut members);
        // Swaps and prefix loads the batch needed happen before it computes.
        shape.host_transfer_s += self.state.kv.take_transfer_s();
        if let (Some(speculator), true) = (&mut self.speculator, shape.verifications > 0) {
            let verifying = members.iter().map(|&(slot, tokens)| (self.state.sequence(slot), tokens));
            self.batch_energy[w].3 = speculator.draft_for(&mut shape, verifying);
        }
        // Prompt tokens found cached are work this replica will never do.
        let credit = std::mem::take(&mut self.state.prefix_hit_credit);
        self.outstanding_tokens -= credit;
        self.outstanding_prompt_tokens -= credit;
        if shape.is_empty() {
            self.workers[w].executor.return_members(members);
            return false;
        }
        if self.role == Role::Decode {
            for &(slot, _) in &members {
                state.recorder.decode_step(self.state.sequence(slot).request, now);
            }
        }
        let early_handoffs: Vec<(RequestIndex, usize, f64)> = match self.handoff {
            Some(handoff) if handoff.streaming && self.role == Role::Prefill => members
                .iter()
                .filter_map(|&(slot, tokens)| {
                    let sequence = self.state.sequence(slot);
                    let completes = sequence.computed_tokens + tokens == sequence.context_tokens;
                    (completes && sequence.remaining_output > 1).then(|| {
                        let ready = sequence.computed_tokens as f64 / sequence.context_tokens as f64;
                        (sequence.request as RequestIndex, slot, ready)
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let other_bandwidth: f64 = self
            .workers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != w)
            .map(|(_, worker)| worker.executor.bandwidth_in_use())
            .sum();
        let sequences = members.len() as u32;
        let worker = &mut self.workers[w];
        let share = worker.executor.compute_share();
        let (cost, started) = worker.executor.start(now, &shape, members, other_bandwidth);
        let power = account(&mut self.stats, self.role, &self.hardware, share, &shape, &cost);
        if shape.verifications > 0 {
            let seconds = cost.duration_ns as f64 * 1e-9;
            let devices = f64::from(self.hardware.devices_per_stage * self.hardware.stages);
            let padding = self.batch_energy[w].3;
            self.batch_energy[w] = (seconds, power * seconds * devices, shape.total_tokens(), padding);
        }
        if w == 1 {
            self.window_decode.0 += cost.duration_ns as f64 * 1e-9;
            self.window_decode.1 += 1;
        }
        if let Some(timeline) = &mut state.timeline {
            timeline.push(IterationRecord {
                replica: self.index,
                worker: w as u8,
                role: self.role,
                start: now,
                stage_ns: cost.duration_ns,
                done: started.done,
                sequences,
                // Verified tokens are decode work, computed as short chunks.
                prefill_tokens: (shape.prefill_tokens - shape.verify_tokens) as u32,
                decode_tokens: (shape.decode_tokens + shape.verify_tokens) as u32,
                kv_used_blocks: self.state.kv.used_blocks(),
                waiting: self.state.waiting.len() as u32,
                power_w: power,
                draft_ns: crate::engine::secs_to_nanos(shape.draft_s),
                draft_beside_ns: crate::engine::secs_to_nanos(shape.draft_overlap_s),
            });
        }
        ctx.schedule_at(started.done, Msg::BatchDone(w as u8));
        if started.pipeline_has_room && started.first_stage_free < started.done {
            ctx.schedule_at(started.first_stage_free, Msg::StageFree(w as u8));
        }
        if let Some(handoff) = self.handoff {
            for (request, slot, ready) in early_handoffs {
                self.outgoing.insert(
                    request,
                    Outgoing { slot, in_flight: true, streaming: Some((ready, started.done)), transfer_sent: false },
                );
                ctx.send(handoff.decode_router, Msg::RouteDecode { request, from: ctx.me() });
            }
        }
        true
    }

    fn on_admit(&mut self, request: RequestIndex, ctx: &mut ServingContext<'_>) {
        let spec = ctx.shared.requests[request as usize];
        let (input, output) = (u64::from(spec.input_tokens), u64::from(spec.output_tokens));
        let total = input + output;
        // A prefill replica holds the prompt's KV only.
        let held = if self.role == Role::Prefill { input } else { total };
        let blocks_needed = self.state.kv.blocks_for(held);
        let capacity_blocks = self.state.kv.pool().capacity_blocks();
        let rejection = if total > self.state.config.max_model_len {
            Some(RejectReason::ExceedsContextWindow { tokens: total, limit: self.state.config.max_model_len })
        } else if blocks_needed > capacity_blocks {
            Some(RejectReason::ExceedsKvCapacity { blocks_needed, capacity_blocks })
        } else {
            None
        };
        if let Some(reason) = rejection {
            ctx.shared.recorder.reject(request as usize, reason);
            return;
        }
        self.outstanding_tokens += if self.role == Role::Prefill { input + 1 } else { total };
        self.outstanding_prompt_tokens += input;
        let key = self.state.config.policy.key(spec.input_tokens, spec.priority, u64::from(request));
        let mut sequence = Sequence::new(request as usize, key, input, output);
        if self.state.kv.prefix_cache().is_some() {
            sequence.prefix = spec.prefix;
        }
        self.speculate(&mut sequence);
        self.state.waiting.push(Waiting(sequence));
        self.request_wake(ctx);
    }

    fn on_batch_done(&mut self, w: usize, ctx: &mut ServingContext<'_>) {
        let now = ctx.now();
        let batch = self.workers[w].executor.complete(now);
        let mut finished_any = false;
        let mut members = batch.members;
        let state: &mut ServingState = ctx.shared;
        let mut handoffs = Vec::new();
        let verifications = match &self.speculator {
            Some(_) => {
                members.iter().filter(|&&(slot, tokens)| self.state.sequence(slot).verifies(tokens)).count() as u64
            }
            None => 0,
        };
        let mut rejected_tokens = 0;
        for &(slot, tokens) in &members {
            let sequence = self.state.slots[slot].as_mut().expect("in-flight sequences stay in their slot");
            let fresh = tokens.min(sequence.fresh_prompt_tokens);
            self.outstanding_tokens -= fresh;
            self.outstanding_prompt_tokens -= fresh;
            let emitted = match &mut self.speculator {
                Some(speculator) if sequence.verifies(tokens) => {
                    let (produced, rejected) = speculator.verified(sequence, tokens, verifications);
                    rejected_tokens += rejected;
                    // The rejected drafts' KV is rolled back.
                    self.state.kv.trim(sequence);
                    produced
                }
                _ => sequence.advance(tokens),
            };
            self.state.kv.on_computed(sequence);
            for _ in 0..emitted {
                self.outstanding_tokens -= 1;
                if state.recorder.token(sequence.request, now) {
                    let ttft = (now - state.requests[sequence.request].arrival) as f64 * 1e-9;
                    self.window_ttft.0 += ttft;
                    self.window_ttft.1 += 1;
                }
            }
            if sequence.remaining_output == 0 {
                self.state.kv.free(sequence);
                sequence.lifecycle = Lifecycle::Done;
                finished_any = true;
                if let Some(speculator) = &mut self.speculator {
                    speculator.finish(sequence.request);
                }
            } else if emitted > 0 && self.role == Role::Prefill && self.handoff.is_some() {
                // Its remaining output was never counted here: the decode replica counts it.
                sequence.lifecycle = Lifecycle::Transferring;
                handoffs.push((sequence.request as RequestIndex, slot));
                finished_any = true;
            }
        }
        self.workers[w].executor.return_members(std::mem::take(&mut members));
        if let (Some(speculator), true) = (&mut self.speculator, verifications > 0) {
            let (seconds, energy_j, batch_tokens, padding) = std::mem::take(&mut self.batch_energy[w]);
            speculator.step_done(seconds, energy_j, batch_tokens, rejected_tokens + padding);
        }
        if finished_any {
            let slots = &mut self.state.slots;
            let mut done = Vec::new();
            self.state.running.retain(|&slot| {
                let lifecycle = slots[slot].as_ref().expect("running slot").lifecycle;
                if lifecycle == Lifecycle::Done {
                    done.push(slot);
                }
                lifecycle == Lifecycle::Running
            });
            for slot in done {
                self.state.remove(slot);
            }
        }
        let handoff = self.handoff;
        for (request, slot) in handoffs {
            match self.outgoing.get_mut(&request) {
                Some(outgoing) => {
                    // Streamed: the decode replica was asked for when the chunk started.
                    outgoing.in_flight = false;
                }
                None => {
                    self.outgoing
                        .insert(request, Outgoing { slot, in_flight: false, streaming: None, transfer_sent: false });
                    let router = handoff.expect("handoffs need a decode router").decode_router;
                    ctx.send(router, Msg::RouteDecode { request, from: ctx.me() });
                }
            }
        }
        self.workers[w].check_stage_free = true;
        self.grant_reservations(ctx);
        self.maybe_switch(ctx);
        self.start_soon(ctx);
    }

    fn on_reserved(
        &mut self,
        request: RequestIndex,
        decode: ComponentId,
        decode_replica: u32,
        ctx: &mut ServingContext<'_>,
    ) {
        let Some(handoff) = self.handoff else { return };
        let Some(outgoing) = self.outgoing.get_mut(&request) else { return };
        let spec = ctx.shared.requests[request as usize];
        let streaming = match (outgoing.in_flight, outgoing.streaming) {
            (true, Some((ready_fraction, produced_at))) => {
                Some(Streaming { ready_fraction, produced_at, layers: handoff.layers_per_stage })
            }
            _ => None,
        };
        outgoing.transfer_sent = true;
        let order = TransferOrder {
            request,
            from_replica: self.index,
            from: ctx.me(),
            to_replica: decode_replica,
            to: decode,
            tokens: u64::from(spec.input_tokens),
            streaming,
        };
        ctx.send(handoff.network, Msg::Transfer(Box::new(order)));
    }

    fn on_kv_sent(&mut self, request: RequestIndex, ctx: &mut ServingContext<'_>) {
        if let Some(outgoing) = self.outgoing.remove(&request) {
            let mut sequence = self.state.remove(outgoing.slot);
            self.state.kv.free(&mut sequence);
            self.maybe_switch(ctx);
            self.request_wake(ctx);
        }
    }

    fn on_reserve(&mut self, request: RequestIndex, from: ComponentId, ctx: &mut ServingContext<'_>) {
        self.reservations.push_back(PendingReservation { request, from, since: ctx.now() });
        self.grant_reservations(ctx);
    }

    /// Grants waiting reservations in arrival order while blocks (above the watermark) allow.
    fn grant_reservations(&mut self, ctx: &mut ServingContext<'_>) {
        let now = ctx.now();
        while let Some(&pending) = self.reservations.front() {
            let spec = ctx.shared.requests[pending.request as usize];
            let (input, output) = (u64::from(spec.input_tokens), u64::from(spec.output_tokens));
            let pool = self.state.kv.pool();
            let capacity_blocks = pool.capacity_blocks();
            let whole = self.state.kv.blocks_for(input + output);
            let rejection = if input + output > self.state.config.max_model_len {
                Some(RejectReason::ExceedsContextWindow {
                    tokens: input + output,
                    limit: self.state.config.max_model_len,
                })
            } else if whole > capacity_blocks {
                Some(RejectReason::ExceedsKvCapacity { blocks_needed: whole, capacity_blocks })
            } else {
                None
            };
            if let Some(reason) = rejection {
                self.reservations.pop_front();
                ctx.shared.recorder.reject(pending.request as usize, reason);
                ctx.send(pending.from, Msg::KvSent(pending.request));
                continue;
            }
            let blocks = self.state.kv.blocks_for(input);
            let watermark = (capacity_blocks as f64 * RESERVATION_WATERMARK) as u64;
            if pool.free_blocks() < blocks + watermark {
                break;
            }
            let reserved = self.state.kv.reserve(input).expect("free blocks were checked");
            self.reservations.pop_front();
            let key = self.state.config.policy.key(spec.input_tokens, spec.priority, u64::from(pending.request));
            let mut sequence = Sequence::new(pending.request as usize, key, input, output);
            // The prompt's KV arrives; its first token was produced on the prefill replica.
            sequence.computed_tokens = input;
            sequence.context_tokens = input + 1;
            sequence.fresh_prompt_tokens = 0;
            sequence.remaining_output = output - 1;
            sequence.kv_blocks = reserved;
            self.speculate(&mut sequence);
            self.incoming.insert(pending.request, sequence);
            ctx.shared.transfers.decode_wait_s.push((now - pending.since) as f64 * 1e-9);
            ctx.send(
                pending.from,
                Msg::Reserved { request: pending.request, decode: ctx.me(), decode_replica: self.index },
            );
        }
    }

    fn on_kv_arrived(&mut self, request: RequestIndex, ctx: &mut ServingContext<'_>) {
        if let Some(mut sequence) = self.incoming.remove(&request) {
            sequence.lifecycle = Lifecycle::Running;
            self.outstanding_tokens += sequence.remaining_output;
            let slot = self.state.insert(sequence);
            self.state.running.push(slot);
            self.request_wake(ctx);
        }
    }

    /// Switches role once drained of every sequence of the old one.
    fn maybe_switch(&mut self, ctx: &mut ServingContext<'_>) {
        let Some((to, asked)) = self.switch_to else { return };
        let drained = !self.state.has_work()
            && self.outgoing.is_empty()
            && self.incoming.is_empty()
            && self.reservations.is_empty()
            && self.workers.iter().all(|w| !w.executor.busy());
        if !drained {
            return;
        }
        let now = ctx.now();
        self.stats.roles[self.role.index()].role_ns += now - self.role_since;
        self.role_since = now;
        ctx.shared.role_switches.push(RoleSwitch { replica: self.index, asked, at: now, from: self.role, to });
        self.stats.role_switches += 1;
        self.role = to;
        self.switch_to = None;
    }

    fn on_tick(&mut self, ctx: &mut ServingContext<'_>) {
        let Some(control) = self.share_control else { return };
        let (ttft_sum, ttft_count) = std::mem::take(&mut self.window_ttft);
        let (decode_sum, decode_count) = std::mem::take(&mut self.window_decode);
        if ttft_count > 0 && decode_count > 0 && self.workers.len() == 2 {
            // Move compute toward the phase further behind its target.
            let ttft_pressure = ttft_sum / ttft_count as f64 / control.ttft_s;
            let tpot_pressure = decode_sum / decode_count as f64 / control.tpot_s;
            let share = self.workers[0].executor.compute_share();
            let share = if ttft_pressure > tpot_pressure { share + control.step } else { share - control.step };
            let share = share.clamp(control.min, control.max);
            self.workers[0].executor.set_compute_share(share);
            self.workers[1].executor.set_compute_share(1.0 - share);
        }
        if self.active_requests() > 0 || ctx.now() < ctx.shared.requests.last().map_or(SimTime::ZERO, |r| r.arrival) {
            ctx.schedule_in(control.interval_ns, Msg::Tick);
        }
    }
}

impl Component<Msg, ServingState> for Replica {
    fn handle(&mut self, message: Msg, ctx: &mut ServingContext<'_>) {
        self.advance_to(ctx.now());
        match message {
            Msg::Admit(request) => self.on_admit(request, ctx),
            Msg::Wake => {
                self.wake_pending = false;
                self.try_start_all(ctx);
            }
            Msg::BatchDone(w) => self.on_batch_done(w as usize, ctx),
            Msg::StageFree(w) => {
                if ctx.more_due_now() {
                    self.request_wake(ctx);
                } else {
                    self.try_start(w as usize, ctx);
                }
            }
            Msg::Reserve { request, from } => self.on_reserve(request, from, ctx),
            Msg::Reserved { request, decode, decode_replica } => self.on_reserved(request, decode, decode_replica, ctx),
            Msg::KvSent(request) => self.on_kv_sent(request, ctx),
            Msg::KvArrived(request) => self.on_kv_arrived(request, ctx),
            Msg::SwitchRole(role) => {
                if role != self.role {
                    self.switch_to = Some((role, ctx.now()));
                    self.maybe_switch(ctx);
                }
            }
            Msg::Tick => self.on_tick(ctx),
            other => debug_assert!(false, "a replica got {other:?}"),
        }
        let gauge = self.gauge();
        ctx.shared.board[self.index as usize] = gauge;
    }
}
