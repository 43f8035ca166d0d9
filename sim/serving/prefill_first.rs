//! SGLang's (and eager engines') batch formation: a step is either a prefill step or a
//! decode step, never both. A prefill step is formed whenever there is prompt work: first the
//! next chunks of prompts already admitted, then waiting requests while the token budget,
//! `max_num_seqs` and free blocks allow. Otherwise every running sequence decodes one token;
//! when a decode needs a block and none is free, the running sequence the queue policy values
//! least (and not in a batch) is retracted — its KV dropped, to be recomputed — as SGLang's
//! `retract_decode` does.
//!
//! This module picks work only; pricing is the executor's.

use super::batch::{add_to_batch, admit, reserve_blocks, resume_swapped, BatchPolicy, SchedulerState, Scope};
use crate::engine::SimTime;
use crate::model::BatchShape;
use crate::records::Recorder;

/// Prefill steps first, decode steps otherwise.
#[derive(Debug, Default)]
pub struct PrefillFirst;

impl BatchPolicy for PrefillFirst {
    fn form_batch(
        &mut self,
        state: &mut SchedulerState,
        scope: Scope,
        now: SimTime,
        recorder: &mut Recorder,
        members: &mut Vec<(usize, u64)>,
    ) -> BatchShape {
        if scope != Scope::Decode {
            let batch = prefill_step(state, scope, now, recorder, members);
            if !batch.is_empty() {
                return batch;
            }
        }
        if scope == Scope::Prefill {
            return BatchShape::default();
        }
        decode_step(state, now, recorder, members)
    }
}

fn prefill_step(
    state: &mut SchedulerState,
    scope: Scope,
    now: SimTime,
    recorder: &mut Recorder,
    members: &mut Vec<(usize, u64)>,
) -> BatchShape {
    let mut batch = BatchShape::default();
    let mut budget = state.config.max_num_batched_tokens;
    let max_seqs = state.config.max_num_seqs as usize;
    let mut index = 0;
    let mut preempted = false;
    // Prompts already admitted continue first (their next chunk).
    while index < state.running.len() && budget > 0 && members.len() < max_seqs {
        let slot = state.running[index];
        let sequence = state.sequence(slot);
        if sequence.in_flight || sequence.is_decoding() {
            index += 1;
            continue;
        }
        let tokens = sequence.pending_tokens().min(budget);
        if !state.config.chunked_prefill && tokens < sequence.pending_tokens() {
            break;
        }
        if !reserve_blocks(state, index, tokens, recorder, &mut preempted) {
            break;
        }
        add_to_batch(state, &mut batch, members, slot, tokens, now, recorder);
        budget -= tokens;
        index += 1;
    }
    if !preempted && scope.admits() && state.swapped.is_empty() {
        admit(state, &mut batch, members, &mut budget, now, recorder);
    }
    batch
}

fn decode_step(
    state: &mut SchedulerState,
    now: SimTime,
    recorder: &mut Recorder,
    members: &mut Vec<(usize, u64)>,
) -> BatchShape {
    let mut batch = BatchShape::default();
    let max_seqs = state.config.max_num_seqs as usize;
    let mut index = 0;
    let mut preempted = false;
    let mut budget = state.config.max_num_batched_tokens;
    resume_swapped(state, Scope::Decode, &mut batch, members, &mut budget, now, recorder);
    while index < state.running.len() && members.len() < max_seqs {
        let slot = state.running[index];
        let sequence = state.sequence(slot);
        if sequence.in_flight || !sequence.is_decoding() {
            index += 1;
            continue;
        }
        // One token, or the last one and its drafts when the pool speculates.
        let tokens = sequence.step_tokens(u64::MAX);
        if !reserve_blocks(state, index, tokens, recorder, &mut preempted) {
            // It was retracted itself: `index` now names the next sequence.
            continue;
        }
        add_to_batch(state, &mut batch, members, slot, tokens, now, recorder);
        index += 1;
    }
    batch
}
