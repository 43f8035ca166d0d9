//! Per-request milestones as the simulation produces them.

use super::RequestSpec;
use super::{GapLog, LogHistogram};
use crate::engine::SimTime;
use std::fmt;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Still waiting or running when the simulation stopped.
    Unfinished,
    /// All output tokens generated.
    Completed,
    /// Refused at arrival.
    Rejected,
}

impl RequestStatus {
    /// Name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            RequestStatus::Unfinished => "unfinished",
            RequestStatus::Completed => "completed",
            RequestStatus::Rejected => "rejected",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RejectReason {
    /// Prompt plus output exceed the model's context window.
    ExceedsContextWindow {
        /// Tokens the request needs.
        tokens: u64,
        /// The window.
        limit: u64,
    },
    /// The whole sequence could never fit in the replica's KV cache.
    ExceedsKvCapacity {
        /// Blocks the request needs.
        blocks_needed: u64,
        /// Blocks the replica has.
        capacity_blocks: u64,
    },
}

impl RejectReason {
    /// A short category name, for counts in the summary.
    pub fn category(&self) -> &'static str {
        match self {
            RejectReason::ExceedsContextWindow { .. } => "exceeds_context_window",
            RejectReason::ExceedsKvCapacity { .. } => "exceeds_kv_capacity",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::ExceedsContextWindow { tokens, limit } => {
                write!(f, "needs {tokens} tokens but the context window is {limit}")
            }
            RejectReason::ExceedsKvCapacity { blocks_needed, capacity_blocks } => {
                write!(f, "needs {blocks_needed} KV blocks but the replica has {capacity_blocks}")
            }
        }
    }
}

/// Everything recorded about one request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The request as specified.
    pub spec: RequestSpec,
    /// Replica it was routed to (its prefill replica when disaggregated).
    pub replica: Option<u32>,
    /// Replica it was decoded on, when its prompt ran elsewhere. A request visits at most
    /// these two replicas (preemption recomputes where the request is).
    pub decode_replica: Option<u32>,
    /// When its KV started moving to the decode replica.
    pub transfer_start: Option<SimTime>,
    /// When its KV arrived there.
    pub transfer_end: Option<SimTime>,
    /// When its first step on the decode replica started.
    pub first_decode: Option<SimTime>,
    /// Outcome.
    pub status: RequestStatus,
    /// Why it was rejected.
    pub reject_reason: Option<RejectReason>,
    /// First time any of its tokens were computed.
    pub first_scheduled: Option<SimTime>,
    /// When its first output token was produced.
    pub first_token: Option<SimTime>,
    /// When its latest output token was produced.
    pub last_token: Option<SimTime>,
    /// Output tokens produced.
    pub tokens_emitted: u32,
    /// Times it was preempted.
    pub preemptions: u32,
    /// Prompt tokens found in a prefix cache when it was first admitted (not computed).
    pub cached_prompt_tokens: u32,
    /// Longest gap between consecutive output tokens, ns.
    pub max_gap_ns: u64,
}

impl RequestRecord {
    /// Seconds from arrival to first scheduling.
    pub fn queue_wait_s(&self) -> Option<f64> {
        self.first_scheduled.map(|t| (t - self.spec.arrival) as f64 * 1e-9)
    }

    /// Time to first token, s.
    pub fn ttft_s(&self) -> Option<f64> {
        self.first_token.map(|t| (t - self.spec.arrival) as f64 * 1e-9)
    }

    /// End-to-end latency, s (completed requests only).
    pub fn e2e_s(&self) -> Option<f64> {
        match self.status {
            RequestStatus::Completed => self.last_token.map(|t| (t - self.spec.arrival) as f64 * 1e-9),
            _ => None,
        }
    }

    /// Mean time per output token after the first, s (completed requests with ≥ 2 tokens).
    pub fn tpot_s(&self) -> Option<f64> {
        match (self.status, self.first_token, self.last_token) {
            (RequestStatus::Completed, Some(first), Some(last)) if self.tokens_emitted >= 2 => {
                Some((last - first) as f64 * 1e-9 / f64::from(self.tokens_emitted - 1))
            }
            _ => None,
        }
    }
}

/// Collects request records during a run.
#[derive(Debug, Clone)]
pub struct Recorder {
    records: Vec<RequestRecord>,
    /// Inter-token gaps of all requests.
    gaps: LogHistogram,
    token_gaps: Option<Vec<GapLog>>,
    finished: u64,
}

impl Recorder {
    /// Records for `requests` (in arrival order); `keep_token_gaps` keeps every gap of every
    /// request for `token_gaps.csv`.
    pub fn new(requests: &[RequestSpec], keep_token_gaps: bool) -> Self {
        let records = requests
            .iter()
            .map(|spec| RequestRecord {
                spec: *spec,
                replica: None,
                decode_replica: None,
                transfer_start: None,
                transfer_end: None,
                first_decode: None,
                status: RequestStatus::Unfinished,
                reject_reason: None,
                first_scheduled: None,
                first_token: None,
                last_token: None,
                tokens_emitted: 0,
                preemptions: 0,
                cached_prompt_tokens: 0,
                max_gap_ns: 0,
            })
            .collect();
        let token_gaps = keep_token_gaps.then(|| vec![GapLog::default(); requests.len()]);
        Recorder { records, gaps: LogHistogram::default(), token_gaps, finished: 0 }
    }

    /// Notes the replica a request was sent to.
    pub fn routed(&mut self, request: usize, replica: u32) {
        self.records[request].replica = Some(replica);
    }

    /// Notes the replica a request's decode was sent to.
    pub fn routed_for_decode(&mut self, request: usize, replica: u32) {
        self.records[request].decode_replica = Some(replica);
    }

    /// Notes when a request's KV started moving.
    pub fn transfer_started(&mut self, request: usize, now: SimTime) {
        self.records[request].transfer_start = Some(now);
    }

    /// Notes when a request's KV arrived.
    pub fn transfer_ended(&mut self, request: usize, now: SimTime) {
        self.records[request].transfer_end = Some(now);
    }

    /// Notes a step of a request on its decode replica (the first one is kept).
    pub fn decode_step(&mut self, request: usize, now: SimTime) {
        let record = &mut self.records[request];
        if record.first_decode.is_none() {
            record.first_decode = Some(now);
        }
    }

    /// Refuses a request.
    pub fn reject(&mut self, request: usize, reason: RejectReason) {
        let record = &mut self.records[request];
        record.status = RequestStatus::Rejected;
        record.reject_reason = Some(reason);
        self.finished += 1;
    }

    /// Notes that a request's tokens are being computed at `now`.
    pub fn scheduled(&mut self, request: usize, now: SimTime) {
        let record = &mut self.records[request];
        if record.first_scheduled.is_none() {
            record.first_scheduled = Some(now);
        }
    }

    /// Records an output token of `request` at `now`; returns true when it was the first one.
    pub fn token(&mut self, request: usize, now: SimTime) -> bool {
        let record = &mut self.records[request];
        if let Some(previous) = record.last_token {
            let gap = now - previous;
            record.max_gap_ns = record.max_gap_ns.max(gap);
            self.gaps.add(gap, 1);
            if let Some(logs) = &mut self.token_gaps {
                logs[request].push(gap);
            }
        } else {
            record.first_token = Some(now);
        }
        let first = record.last_token.is_none();
        record.last_token = Some(now);
        record.tokens_emitted += 1;
        if record.tokens_emitted >= record.spec.output_tokens {
            record.status = RequestStatus::Completed;
            self.finished += 1;
        }
        first
    }

    /// Counts a preemption.
    pub fn preempted(&mut self, request: usize) {
        self.records[request].preemptions += 1;
    }

    /// Records that `tokens` of `request`'s prompt were found in a prefix cache at its first
    /// admission.
    pub fn prefix_hit(&mut self, request: usize, tokens: u64) {
        let record = &mut self.records[request];
        record.cached_prompt_tokens = record.cached_prompt_tokens.max(tokens.min(u64::from(u32::MAX)) as u32);
    }

    /// Requests completed or rejected so far.
    pub fn finished(&self) -> u64 {
        self.finished
    }

    /// All records, in arrival order.
    pub fn records(&self) -> &[RequestRecord] {
        &self.records
    }

    /// Inter-token gaps of all requests.
    pub fn gaps(&self) -> &LogHistogram {
        &self.gaps
    }

    /// Per-request gap logs, when kept.
    pub fn token_gaps(&self) -> Option<&[GapLog]> {
        self.token_gaps.as_deref()
    }
}
