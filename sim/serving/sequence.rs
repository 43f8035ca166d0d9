//! A request as a replica holds it: its lifecycle and its token counts.
//!
//! Lifecycle: `Waiting` (queued, no KV) → `Running` (admitted: prefilling, then decoding) →
//! `Transferring` (a prefill replica holds its KV until the decode replica has it) →
//! `Done`; a running sequence that loses its KV to preemption goes back to `Waiting` with
//! its generated tokens appended to the prompt it must recompute (`preemptions` counts how
//! often). Whether a running sequence prefills or decodes follows from its counts.

use crate::records::PrefixSpan;

/// Where a sequence is in its life on one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Queued without KV (new, or preempted and to be recomputed).
    Waiting,
    /// Admitted: holds KV and is scheduled until done (or handed off).
    Running,
    /// Prefill done on a prefill replica; its KV is held until the decode replica has it.
    Transferring,
    /// Preempted with its KV swapped out to host memory; resumes where it stopped once its
    /// KV is loaded back.
    Swapped,
    /// Every token produced (or handed off).
    Done,
}

/// What a running sequence's next step computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Prompt tokens (first computation or recomputation after preemption).
    Prefill,
    /// One new token after the last.
    Decode,
    /// The last token plus drafted ones, verified together (speculative decoding).
    Verify,
}

/// One request on one replica.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Index of the request in the workload.
    pub request: usize,
    /// Queue-policy key: smaller is served earlier and preempted later.
    pub key: (i64, u64),
    /// Where it is in its life.
    pub lifecycle: Lifecycle,
    /// Prompt plus tokens generated so far.
    pub context_tokens: u64,
    /// Tokens whose KV is in the cache.
    pub computed_tokens: u64,
    /// Prompt tokens never computed yet (recomputation does not count).
    pub fresh_prompt_tokens: u64,
    /// Tokens still to generate.
    pub remaining_output: u64,
    /// KV blocks held (managed by the replica's `KvManager`).
    pub kv_blocks: u64,
    /// Whether it is in a batch now.
    pub in_flight: bool,
    /// Times it lost its KV.
    pub preemptions: u32,
    /// Its prompt's prefix-block hashes (none on replicas that keep no prefix cache).
    pub prefix: PrefixSpan,
    /// Leading prefix entries of the replica's cache it refers to.
    pub cached_entries: u32,
    /// KV blocks it uses through those entries (counted there, not in `kv_blocks`).
    pub shared_blocks: u64,
    /// KV blocks swapped out to host memory (0 unless swapped).
    pub swapped_blocks: u64,
    /// Positions to draft for its next verification (0: the pool does not speculate).
    pub draft_tokens: u64,
    /// Candidates drafted per position (tree drafts; 1: a chain).
    pub draft_width: u64,
    /// Overlapped drafting (PEARL): its next draft was made beside its last verification,
    /// which accepted every drafted token; after a rejection that draft is void and the next
    /// one is made serially, after the verdict.
    pub predrafted: bool,
    /// Batches formed without it while it was ready to decode (for grouping policies).
    pub waited_steps: u32,
}

impl Sequence {
    /// A new request of `input_tokens` prompt and `output_tokens` to generate.
    pub fn new(request: usize, key: (i64, u64), input_tokens: u64, output_tokens: u64) -> Self {
        Sequence {
            request,
            key,
            lifecycle: Lifecycle::Waiting,
            context_tokens: input_tokens,
            computed_tokens: 0,
            fresh_prompt_tokens: input_tokens,
            remaining_output: output_tokens,
            kv_blocks: 0,
            in_flight: false,
            preemptions: 0,
            prefix: PrefixSpan::default(),
            cached_entries: 0,
            shared_blocks: 0,
            swapped_blocks: 0,
            draft_tokens: 0,
            draft_width: 1,
            predrafted: false,
            waited_steps: 0,
        }
    }

    /// Tokens the next step must compute to produce a token.
    pub fn pending_tokens(&self) -> u64 {
        self.context_tokens - self.computed_tokens
    }

    /// What a step of `tokens` computes: a decode step is one token after a cached context;
    /// more than one then is a verification of drafted tokens.
    pub fn step_kind(&self, tokens: u64) -> StepKind {
        if self.pending_tokens() == 1 && self.computed_tokens > 0 {
            if tokens == 1 {
                StepKind::Decode
            } else {
                StepKind::Verify
            }
        } else {
            StepKind::Prefill
        }
    }

    /// Whether a step of `tokens` verifies drafted tokens.
    pub fn verifies(&self, tokens: u64) -> bool {
        self.step_kind(tokens) == StepKind::Verify
    }

    /// Tokens its next step computes within `budget`: the pending ones, or when decoding the
    /// last token plus the tokens to draft (never drafting past the requested output).
    pub fn step_tokens(&self, budget: u64) -> u64 {
        let pending = self.pending_tokens();
        if self.draft_tokens > 0 && pending == 1 && self.computed_tokens > 0 && budget > 0 {
            let width = self.draft_width.max(1);
            let positions = self.draft_tokens.min(self.remaining_output.saturating_sub(1)).min((budget - 1) / width);
            1 + positions * width
        } else {
            pending.min(budget)
        }
    }

    /// Records a verification of `tokens` (the last token and `tokens − 1` drafts) in which
    /// `accepted` drafts were accepted; returns the tokens it produced (accepted + 1: the
    /// target's own token after the last accepted one). Rejected drafts leave no KV (the
    /// caller trims it).
    pub fn advance_verified(&mut self, tokens: u64, accepted: u64) -> u32 {
        debug_assert!(accepted < tokens, "at most the drafted tokens are accepted");
        let produced = (accepted + 1).min(self.remaining_output);
        self.in_flight = false;
        // As in `advance`: the replica counts `min(tokens, fresh)` of them as prompt work done,
        // so they must leave the fresh count too (or the next step counts them again).
        self.fresh_prompt_tokens -= tokens.min(self.fresh_prompt_tokens);
        self.computed_tokens += produced;
        self.context_tokens += produced;
        self.remaining_output -= produced;
        produced as u32
    }

    /// Whether the next step is a decode step.
    pub fn is_decoding(&self) -> bool {
        self.step_kind(self.pending_tokens()) == StepKind::Decode
    }

    /// Records `tokens` computed; returns how many new tokens that produced (0 while a
    /// prompt chunk leaves more to compute, else 1).
    pub fn advance(&mut self, tokens: u64) -> u32 {
        self.in_flight = false;
        self.computed_tokens += tokens;
        self.fresh_prompt_tokens -= tokens.min(self.fresh_prompt_tokens);
        if self.computed_tokens == self.context_tokens {
            // The last position's logits give the next token.
            self.context_tokens += 1;
            self.remaining_output -= 1;
            1
        } else {
            0
        }
    }
}
