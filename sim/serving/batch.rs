//! Batch formation: which sequences run in a replica's next iteration, and with how many
//! tokens each. [`BatchPolicy`] is the seam; [`VllmV1`] is vLLM V1's scheduler (and, with
//! whole-output reservations and no preemption, TensorRT-LLM's in-flight batching);
//! `PrefillFirst` (SGLang, eager engines) is in `prefill_first`.
//!
//! The policy works on a replica's [`SchedulerState`] (waiting queue, running sequences in
//! admission order, KV manager) within a worker's [`Scope`] (everything, or only prefill or
//! only decode work when one replica's devices are split between a prefill and a decode
//! worker). It does not price batches (that is the executor) or route requests.

use super::{KvManager, Lifecycle, Policy, Sequence};
use crate::engine::SimTime;
use crate::engine_profiles::KvReservation;
use crate::model::BatchShape;
use crate::records::Recorder;
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
    /// What an admission reserves.
    pub reservation: KvReservation,
    /// Speculation-aware grouping (EXSpec-style): the replica keeps up to twice as many
    /// running sequences as a batch holds, and each batch takes the decoding sequence that
    /// waited longest with those whose draft lengths are closest to its own, so a padded
    /// verification pads little. Otherwise batches follow admission order.
    pub group_by_draft_length: bool,
}

impl SchedulerConfig {
    /// Most running sequences per batch slot (pipeline stages aside).
    fn running_pool_factor(&self) -> usize {
        if self.group_by_draft_length {
            2
        } else {
            1
        }
    }
}

impl SchedulerConfig {
    /// Tokens of KV to reserve when admitting `sequence` to have `computed_tokens` computed
    /// after its first step.
    pub fn admission_tokens(&self, sequence: &Sequence, computed_tokens: u64) -> u64 {
        match self.reservation {
            KvReservation::OnDemand => computed_tokens,
            KvReservation::WholeOutput => sequence.context_tokens + sequence.remaining_output,
        }
    }
}

/// A waiting sequence, ordered by its policy key (smallest first).
#[derive(Debug)]
pub struct Waiting(pub Sequence);

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

/// The sequences of one replica and its KV cache.
#[derive(Debug)]
pub struct SchedulerState {
    /// Limits.
    pub config: SchedulerConfig,
    /// Queued sequences, by policy key.
    pub waiting: BinaryHeap<Waiting>,
    /// Admitted sequences by slot.
    pub slots: Vec<Option<Sequence>>,
    /// Slots free for reuse.
    pub free_slots: Vec<usize>,
    /// Slots of running sequences, in admission order.
    pub running: Vec<usize>,
    /// Sequences preempted with their KV swapped to host memory, in preemption order.
    pub swapped: std::collections::VecDeque<Sequence>,
    /// The KV cache.
    pub kv: KvManager,
    /// Pipeline stages (each may hold a batch of `max_num_seqs`).
    pub stages: usize,
    /// Preemptions so far.
    pub preemptions: u64,
    /// Prompt tokens found in the prefix cache at admission since the replica last took
    /// them (they will never be computed here).
    pub prefix_hit_credit: u64,
    /// Prompt tokens of first admissions, and how many of them the prefix cache held.
    pub prefix_counts: (u64, u64),
}

impl SchedulerState {
    /// An empty state.
    pub fn new(config: SchedulerConfig, kv: KvManager, stages: usize) -> Self {
        SchedulerState {
            config,
            waiting: BinaryHeap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            running: Vec::new(),
            swapped: std::collections::VecDeque::new(),
            kv,
            stages: stages.max(1),
            preemptions: 0,
            prefix_hit_credit: 0,
            prefix_counts: (0, 0),
        }
    }

    /// The sequence in `slot`.
    pub fn sequence(&self, slot: usize) -> &Sequence {
        self.slots[slot].as_ref().expect("occupied slot")
    }

    /// The sequence in `slot`, mutably.
    pub fn sequence_mut(&mut self, slot: usize) -> &mut Sequence {
        self.slots[slot].as_mut().expect("occupied slot")
    }

    /// Puts `sequence` in a slot (not yet in the running list); returns the slot.
    pub fn insert(&mut self, sequence: Sequence) -> usize {
        match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot] = Some(sequence);
                slot
            }
            None => {
                self.slots.push(Some(sequence));
                self.slots.len() - 1
            }
        }
    }

    /// Empties `slot`, returning its sequence.
    pub fn remove(&mut self, slot: usize) -> Sequence {
        let sequence = self.slots[slot].take().expect("occupied slot");
        self.free_slots.push(slot);
        sequence
    }

    /// Whether any sequence is waiting or running.
    pub fn has_work(&self) -> bool {
        !self.waiting.is_empty() || !self.running.is_empty() || !self.swapped.is_empty()
    }
}

/// Which work a worker takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Prefill and decode (one worker per replica).
    All,
    /// Prompt computation only; admits waiting sequences.
    Prefill,
    /// Decode steps only; admits nothing.
    Decode,
}

impl Scope {
    /// Whether a worker of this scope runs `sequence`'s next step.
    pub fn takes(self, sequence: &Sequence) -> bool {
        match self {
            Scope::All => true,
            Scope::Prefill => !sequence.is_decoding(),
            Scope::Decode => sequence.is_decoding(),
        }
    }

    /// Whether a worker of this scope admits waiting sequences.
    pub fn admits(self) -> bool {
        self != Scope::Decode
    }
}

/// Picks the sequences of a worker's next batch.
pub trait BatchPolicy: Send {
    /// Fills `members` with (slot, tokens) of the next batch of a worker of `scope` and
    /// returns its shape (empty when there is nothing to run). Reserves the batch's KV blocks,
    /// marks members in flight and tells `recorder` when a request is first scheduled.
    fn form_batch(
        &mut self,
        state: &mut SchedulerState,
        scope: Scope,
        now: SimTime,
        recorder: &mut Recorder,
        members: &mut Vec<(usize, u64)>,
    ) -> BatchShape;
}

/// vLLM V1's scheduler: every sequence needs `context − computed` tokens (one when decoding,
/// the rest of its prompt when prefilling); running sequences go first in admission order,
/// each cut to the remaining token budget; a sequence that needs a block when none is free
/// preempts the running sequence the queue policy values least (never one already in a
/// batch), which loses its KV and re-queues to recompute; then waiting sequences are admitted
/// while budget, `max_num_seqs` and free blocks allow — not at all in an iteration that had
/// to preempt.
#[derive(Debug, Default)]
pub struct VllmV1 {
    preempted_this_iteration: bool,
}

impl BatchPolicy for VllmV1 {
    fn form_batch(
        &mut self,
        state: &mut SchedulerState,
        scope: Scope,
        now: SimTime,
        recorder: &mut Recorder,
        members: &mut Vec<(usize, u64)>,
    ) -> BatchShape {
        let mut batch = self.form_once(state, scope, now, recorder, members);
        // vLLM re-runs its scheduler every step; an event-driven replica must not go idle on
        // an empty batch whose only outcome was a preemption: the blocks it freed let the
        // next attempt make progress.
        while batch.is_empty() && self.preempted_this_iteration {
            batch = self.form_once(state, scope, now, recorder, members);
        }
        batch
    }
}

impl VllmV1 {
    fn form_once(
        &mut self,
        state: &mut SchedulerState,
        scope: Scope,
        now: SimTime,
        recorder: &mut Recorder,
        members: &mut Vec<(usize, u64)>,
    ) -> BatchShape {
        let mut batch = BatchShape::default();
        let mut budget = state.config.max_num_batched_tokens;
        self.preempted_this_iteration = false;
        let group = if state.config.group_by_draft_length { group_by_draft_length(state) } else { None };
        let mut index = 0;
        let max_seqs = state.config.max_num_seqs as usize;
        while index < state.running.len() && budget > 0 && members.len() < max_seqs {
            let slot = state.running[index];
            let sequence = state.sequence(slot);
            let outside_group = group.is_some_and(|draft| {
                sequence.is_decoding() && sequence.draft_tokens.abs_diff(draft) > GROUP_DRAFT_SPREAD
            });
            if sequence.in_flight || !scope.takes(sequence) || outside_group {
                index += 1;
                continue;
            }
            let tokens = sequence.step_tokens(budget);
            if !reserve_blocks(state, index, tokens, recorder, &mut self.preempted_this_iteration) {
                break; // the sequence itself was preempted: nothing later can run either
            }
            add_to_batch(state, &mut batch, members, slot, tokens, now, recorder);
            budget -= tokens;
            index += 1;
        }
        if !self.preempted_this_iteration {
            resume_swapped(state, scope, &mut batch, members, &mut budget, now, recorder);
        }
        if !self.preempted_this_iteration && scope.admits() && state.swapped.is_empty() {
            admit(state, &mut batch, members, &mut budget, now, recorder);
        }
        if state.config.group_by_draft_length {
            count_waits(state);
        }
        batch
    }
}

/// Most a grouped batch's draft lengths differ from its anchor's.
const GROUP_DRAFT_SPREAD: u64 = 1;

/// Orders the running decoding sequences not in a batch for the next one (in the positions
/// they hold; prefilling sequences keep theirs): first the one that waited the most steps,
/// then the others by how far their draft length is from its own, longest waits first; and
/// returns the anchor's draft length (None when no sequence decodes). The batch takes those
/// within `GROUP_DRAFT_SPREAD` of it.
fn group_by_draft_length(state: &mut SchedulerState) -> Option<u64> {
    let positions: Vec<usize> = (0..state.running.len())
        .filter(|&i| {
            let sequence = state.sequence(state.running[i]);
            sequence.is_decoding() && !sequence.in_flight
        })
        .collect();
    let &anchor = positions.iter().max_by_key(|&&i| (state.sequence(state.running[i]).waited_steps, usize::MAX - i))?;
    let anchor_draft = state.sequence(state.running[anchor]).draft_tokens;
    let mut slots: Vec<usize> = positions.iter().map(|&i| state.running[i]).collect();
    slots.sort_by_key(|&slot| {
        let sequence = state.sequence(slot);
        (sequence.draft_tokens.abs_diff(anchor_draft), std::cmp::Reverse(sequence.waited_steps))
    });
    for (&position, slot) in positions.iter().zip(slots) {
        state.running[position] = slot;
    }
    Some(anchor_draft)
}

/// Counts a step of waiting for every running decoding sequence left out of the batch just
/// formed, and clears it for those in.
fn count_waits(state: &mut SchedulerState) {
    for i in 0..state.running.len() {
        let slot = state.running[i];
        let sequence = state.sequence_mut(slot);
        if sequence.in_flight {
            sequence.waited_steps = 0;
        } else if sequence.is_decoding() {
            sequence.waited_steps += 1;
        }
    }
}

/// Makes room for `tokens` more tokens of `running[index]`, preempting the sequences the
/// policy values least among those at `index` or later that are not in any batch (setting
/// `preempted`). False if `running[index]` itself had to go.
pub(super) fn reserve_blocks(
    state: &mut SchedulerState,
    index: usize,
    tokens: u64,
    recorder: &mut Recorder,
    preempted: &mut bool,
) -> bool {
    let slot = state.running[index];
    loop {
        let sequence = state.slots[slot].as_mut().expect("occupied");
        if state.kv.grow(sequence, tokens) {
            return true;
        }
        let victim = (index..state.running.len())
            .filter(|&i| !state.sequence(state.running[i]).in_flight || i == index)
            .max_by_key(|&i| state.sequence(state.running[i]).key)
            .expect("index is a candidate");
        preempt(state, victim, recorder);
        *preempted = true;
        if victim == index {
            return false;
        }
    }
}

/// Preemption: by swap when the replica has host tiers that swap and room in them (the
/// sequence waits, KV in host memory, to resume where it stopped), else by recompute (it
/// loses its KV and goes back to the waiting queue with its generated tokens appended to the
/// prompt it must recompute).
pub(super) fn preempt(state: &mut SchedulerState, index: usize, recorder: &mut Recorder) {
    let slot = state.running.remove(index);
    let mut sequence = state.remove(slot);
    if state.kv.swap_out(&mut sequence) {
        sequence.preemptions += 1;
        sequence.lifecycle = Lifecycle::Swapped;
        recorder.preempted(sequence.request);
        state.preemptions += 1;
        state.swapped.push_back(sequence);
        return;
    }
    state.kv.free(&mut sequence);
    sequence.computed_tokens = 0;
    sequence.preemptions += 1;
    sequence.lifecycle = Lifecycle::Waiting;
    recorder.preempted(sequence.request);
    state.preemptions += 1;
    state.waiting.push(Waiting(sequence));
}

/// Brings swapped-out sequences back, oldest first, while budget, `max_num_seqs` and free
/// blocks allow, and puts their next step in the batch.
pub(super) fn resume_swapped(
    state: &mut SchedulerState,
    scope: Scope,
    batch: &mut BatchShape,
    members: &mut Vec<(usize, u64)>,
    budget: &mut u64,
    now: SimTime,
    recorder: &mut Recorder,
) {
    let max_seqs = state.config.max_num_seqs as usize;
    let max_running = max_seqs * state.stages * state.config.running_pool_factor();
    while *budget > 0 && state.running.len() < max_running && members.len() < max_seqs {
        let Some(front) = state.swapped.front() else { break };
        if !scope.takes(front) {
            break;
        }
        let tokens = front.step_tokens(*budget);
        let growth = state.kv.blocks_for(front.computed_tokens + tokens).saturating_sub(front.swapped_blocks);
        if front.swapped_blocks + growth > state.kv.free_blocks() {
            break;
        }
        let mut sequence = state.swapped.pop_front().expect("peeked");
        let back = state.kv.swap_in(&mut sequence);
        debug_assert!(back, "free blocks were checked");
        let grown = state.kv.grow(&mut sequence, tokens);
        debug_assert!(grown, "free blocks were checked");
        sequence.lifecycle = Lifecycle::Running;
        let slot = state.insert(sequence);
        state.running.push(slot);
        add_to_batch(state, batch, members, slot, tokens, now, recorder);
        *budget -= tokens;
    }
}

/// Admits waiting sequences in queue order while the budget, `max_num_seqs` and free blocks
/// allow (blocks as the reservation mode says).
pub(super) fn admit(
    state: &mut SchedulerState,
    batch: &mut BatchShape,
    members: &mut Vec<(usize, u64)>,
    budget: &mut u64,
    now: SimTime,
    recorder: &mut Recorder,
) {
    // As vLLM's virtual engines, each pipeline stage's batch may hold max_num_seqs.
    let max_seqs = state.config.max_num_seqs as usize;
    let max_running = max_seqs * state.stages * state.config.running_pool_factor();
    while *budget > 0 && state.running.len() < max_running && members.len() < max_seqs {
        let Some(Waiting(head)) = state.waiting.peek() else { break };
        let lookup = state.kv.lookup(head);
        if lookup.wait {
            break; // its prefix is being computed by another sequence: reuse it when done
        }
        let hit_tokens = state.kv.hit_tokens(lookup);
        let needed = head.pending_tokens() - hit_tokens;
        if !state.config.chunked_prefill && needed > *budget {
            break;
        }
        let tokens = needed.min(*budget);
        let reserve = state.config.admission_tokens(head, hit_tokens + tokens);
        if !state.kv.can_admit(head, lookup, reserve) {
            break; // admission only when blocks are free
        }
        let Waiting(mut sequence) = state.waiting.pop().expect("peeked");
        let first_admission = sequence.fresh_prompt_tokens == sequence.context_tokens;
        let admitted = state.kv.admit(&mut sequence, lookup, reserve);
        debug_assert!(admitted, "free blocks were checked");
        if first_admission {
            state.prefix_counts.0 += sequence.fresh_prompt_tokens;
            state.prefix_counts.1 += hit_tokens;
            if hit_tokens > 0 {
                recorder.prefix_hit(sequence.request, hit_tokens);
            }
        }
        // Cached prompt tokens are never computed here.
        let credited = hit_tokens.min(sequence.fresh_prompt_tokens);
        sequence.fresh_prompt_tokens -= credited;
        state.prefix_hit_credit += credited;
        sequence.lifecycle = Lifecycle::Running;
        let slot = state.insert(sequence);
        state.running.push(slot);
        add_to_batch(state, batch, members, slot, tokens, now, recorder);
        *budget -= tokens;
    }
}

/// Puts `tokens` of the sequence in `slot` into the batch.
pub(super) fn add_to_batch(
    state: &mut SchedulerState,
    batch: &mut BatchShape,
    members: &mut Vec<(usize, u64)>,
    slot: usize,
    tokens: u64,
    now: SimTime,
    recorder: &mut Recorder,
) {
    let sequence = state.sequence_mut(slot);
    let completes = sequence.computed_tokens + tokens == sequence.context_tokens;
    match sequence.step_kind(tokens) {
        super::StepKind::Decode => batch.add_decode(sequence.context_tokens),
        super::StepKind::Verify => batch.add_verify(sequence.computed_tokens, tokens),
        super::StepKind::Prefill => batch.add_prefill_chunk(sequence.computed_tokens, tokens, completes),
    }
    sequence.in_flight = true;
    recorder.scheduled(sequence.request, now);
    members.push((slot, tokens));
}
