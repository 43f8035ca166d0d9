//! Speculative decoding on a replica: what drafting a batch's tokens costs, how many of them
//! each sequence accepts, how long its next draft is, and the counters the summary reports.
//!
//! A speculating sequence's decode step verifies its last token and up to `k` drafted ones
//! (× the tree width) as one short chunk through the target's cost model; it accepts a leading
//! run drawn from its own random stream and produces that run plus one token. Drafting is
//! priced here: `k` sequential decode steps of the draft model or EAGLE/MTP layers (tree
//! drafts decode every candidate), one pass of Medusa heads, nothing for n-gram lookup, plus
//! the token exchange when the draft runs on a device of its own. This module does not form
//! batches or hold KV.

use super::acceptance::Acceptance;
use super::Sequence;
use crate::cost::CostModel;
use crate::model::BatchShape;

/// How a replica's drafts are priced.
pub enum DraftCost {
    /// No drafting work (n-gram lookup).
    Free,
    /// `depth` sequential decode steps of a draft priced by `cost`, plus `exchange_s` per
    /// step for tokens crossing to and from a draft device of its own.
    Sequential {
        /// The draft's cost model.
        cost: Box<dyn CostModel>,
        /// Token exchange per verification step, s.
        exchange_s: f64,
    },
    /// One pass of heads priced by `cost` (Medusa).
    OnePass {
        /// The heads' cost model.
        cost: Box<dyn CostModel>,
    },
}

/// Counters of one replica's speculation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpeculationStats {
    /// Sequence verifications (one per sequence per step).
    pub verifications: u64,
    /// Drafted positions verified (tree candidates counted once per position).
    pub drafted_tokens: u64,
    /// Of those, accepted.
    pub accepted_tokens: u64,
    /// Tokens produced by verifications (accepted + 1 each, capped at the output).
    pub produced_tokens: u64,
    /// Tokens verified and thrown away (rejected drafts and tree candidates).
    pub rejected_tokens: u64,
    /// Seconds of drafting, summed over batches.
    pub draft_s: f64,
    /// Seconds of steps that verified, summed over batches (drafting included when serial).
    pub verify_step_s: f64,
    /// Energy of the rejected tokens' share of those steps, J.
    pub wasted_energy_j: f64,
    /// Tokens verified only to pad a batch to its longest draft (counted in `rejected_tokens`).
    pub padding_tokens: u64,
}

/// A replica's speculation.
pub struct Speculator {
    draft_tokens: u64,
    adaptive: bool,
    tree_width: u64,
    overlap: bool,
    padded: bool,
    acceptance: Acceptance,
    draft_cost: DraftCost,
    stats: SpeculationStats,
}

impl Speculator {
    /// Drafts of `draft_tokens` (`tree_width` candidates each), accepted by `acceptance`,
    /// priced by `draft_cost`; `adaptive` adapts each sequence's length, `overlap` drafts
    /// beside verification.
    pub fn new(
        draft_tokens: u64,
        tree_width: u64,
        adaptive: bool,
        overlap: bool,
        acceptance: Acceptance,
        draft_cost: DraftCost,
    ) -> Self {
        Speculator {
            draft_tokens,
            adaptive,
            tree_width: tree_width.max(1),
            overlap,
            padded: false,
            acceptance,
            draft_cost,
            stats: SpeculationStats::default(),
        }
    }

    /// The same, padding every verification of a batch to its longest draft.
    pub fn padded(mut self, padded: bool) -> Self {
        self.padded = padded;
        self
    }

    /// Adds to `shape` the padding of verifications of `(context tokens, drafted
    /// positions)` to the longest (nothing when ragged); returns the padded tokens.
    pub fn pad(&mut self, shape: &mut BatchShape, drafts: &[(u64, u64)]) -> u64 {
        if !self.padded {
            return 0;
        }
        let deepest = drafts.iter().map(|&(_, depth)| depth).max().unwrap_or(0);
        let mut padding = 0;
        for &(context, depth) in drafts {
            let extra = (deepest - depth) * self.tree_width;
            if extra > 0 {
                shape.add_verify_padding(context + depth * self.tree_width, extra);
                padding += extra;
            }
        }
        self.stats.rejected_tokens += padding;
        self.stats.padding_tokens += padding;
        padding
    }

    /// Draft length of a new sequence.
    pub fn initial_draft_tokens(&self) -> u64 {
        self.draft_tokens
    }

    /// Candidates per drafted position.
    pub fn tree_width(&self) -> u64 {
        self.tree_width
    }

    /// Whether drafting runs beside verification.
    pub fn overlapped(&self) -> bool {
        self.overlap
    }

    /// Counters.
    pub fn stats(&self) -> SpeculationStats {
        self.stats
    }

    /// Prices the drafting of the verifications among `members` (sequences and their step's
    /// tokens) into `shape`, and pads them when batching pads; returns the padded tokens.
    /// Overlapped (PEARL), a sequence whose last verification accepted its whole draft was
    /// drafted for beside that step; every other draft comes before this one.
    pub fn draft_for<'a>(&mut self, shape: &mut BatchShape, members: impl Iterator<Item = (&'a Sequence, u64)>) -> u64 {
        let (mut serial, mut beside) = (Vec::new(), Vec::new());
        for (sequence, tokens) in members.filter(|(sequence, tokens)| sequence.verifies(*tokens)) {
            let draft = (sequence.context_tokens, (tokens - 1) / self.tree_width);
            if self.overlap && sequence.predrafted {
                beside.push(draft);
            } else {
                serial.push(draft);
            }
        }
        shape.draft_s = self.draft_seconds(&serial);
        shape.draft_overlap_s = self.draft_seconds(&beside);
        serial.extend(beside);
        self.pad(shape, &serial)
    }

    /// Settles the verification of `tokens` by `sequence` in a batch of `batch` verifications:
    /// draws its accepted run, advances it, sets its next draft; returns (tokens produced,
    /// tokens rejected). The caller rolls the rejected KV back.
    pub fn verified(&mut self, sequence: &mut Sequence, tokens: u64, batch: u64) -> (u32, u64) {
        let depth = (tokens - 1) / sequence.draft_width.max(1);
        let (accepted, rejected) = self.verify(sequence.request, depth, batch);
        let produced = sequence.advance_verified(tokens, accepted);
        self.produced(u64::from(produced));
        sequence.draft_tokens = self.next_draft_tokens(depth, accepted);
        // Drafts made beside this step assumed every drafted token accepted.
        sequence.predrafted = self.overlap && accepted == depth;
        (produced, rejected)
    }

    /// Seconds to draft for verifications of `(context tokens, drafted positions)`.
    pub fn draft_seconds(&mut self, drafts: &[(u64, u64)]) -> f64 {
        let deepest = drafts.iter().map(|&(_, depth)| depth).max().unwrap_or(0);
        let width = self.tree_width;
        let seconds = match &mut self.draft_cost {
            DraftCost::Free => 0.0,
            DraftCost::Sequential { cost, exchange_s } => {
                let mut total = 0.0;
                for step in 0..deepest {
                    let mut shape = BatchShape::default();
                    for &(context, _) in drafts.iter().filter(|&&(_, depth)| depth > step) {
                        for _ in 0..width {
                            shape.add_decode(context + step);
                        }
                    }
                    total += cost.iteration(&shape).duration_ns as f64 * 1e-9;
                }
                total + if deepest > 0 { *exchange_s } else { 0.0 }
            }
            DraftCost::OnePass { cost } => {
                let mut shape = BatchShape::default();
                for &(context, _) in drafts.iter().filter(|&&(_, depth)| depth > 0) {
                    shape.add_decode(context);
                }
                if shape.is_empty() {
                    0.0
                } else {
                    cost.iteration(&shape).duration_ns as f64 * 1e-9
                }
            }
        };
        self.stats.draft_s += seconds;
        seconds
    }

    /// Records a step of `seconds` that verified, whose energy was `energy_j`, with
    /// `verified_tokens` tokens in all.
    pub fn step_done(&mut self, seconds: f64, energy_j: f64, batch_tokens: u64, rejected_tokens: u64) {
        self.stats.verify_step_s += seconds;
        if batch_tokens > 0 {
            self.stats.wasted_energy_j += energy_j * rejected_tokens as f64 / batch_tokens as f64;
        }
    }

    /// The drafted positions `request` accepts of a verification of `depth` positions in a
    /// batch of `batch` verifications, and the counters; returns (accepted, rejected tokens).
    pub fn verify(&mut self, request: usize, depth: u64, batch: u64) -> (u64, u64) {
        let accepted = u64::from(self.acceptance.draw(request as u64, depth as u32, batch.max(1) as u32)).min(depth);
        let rejected = depth * self.tree_width - accepted;
        self.stats.verifications += 1;
        self.stats.drafted_tokens += depth;
        self.stats.accepted_tokens += accepted;
        self.stats.rejected_tokens += rejected;
        (accepted, rejected)
    }

    /// Records `produced` tokens of a verification.
    pub fn produced(&mut self, produced: u64) {
        self.stats.produced_tokens += produced;
    }

    /// The next draft length of a sequence that drafted `depth` and accepted `accepted`:
    /// longer after a fully accepted draft, shorter after one mostly rejected (adaptive),
    /// else the configured length.
    pub fn next_draft_tokens(&self, depth: u64, accepted: u64) -> u64 {
        if !self.adaptive || depth == 0 {
            return self.draft_tokens;
        }
        if accepted == depth {
            (depth + 1).min(self.draft_tokens)
        } else if 2 * accepted < depth {
            (depth - 1).max(1)
        } else {
            depth
        }
    }

    /// Forgets a finished request.
    pub fn finish(&mut self, request: usize) {
        self.acceptance.finish(request as u64);
    }
}
