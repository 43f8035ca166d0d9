//! Routers: the entry router picks the replica a new request goes to; with prefill/decode
//! disaggregation a decode router picks where a finished prompt's KV goes. Each reads the
//! gauges replicas publish and chooses by a [`RoutePolicy`].

use super::executor::Role;
use super::messages::{Msg, ReplicaGauge, ServingContext, ServingState};
use crate::engine::{stream_rng, Component, ComponentId, SimRng};
use crate::records::PrefixHashes;
use rand::Rng;
use std::sync::Arc;

/// Chooses among candidate replicas.
pub trait RoutePolicy: Send {
    /// The position in `candidates` (replica indices into `board`) of the chosen replica.
    /// Ties go to the earliest candidate.
    fn choose(&mut self, candidates: &[u32], board: &[ReplicaGauge]) -> usize;

    /// As [`RoutePolicy::choose`], for a request whose prompt has the prefix-block hashes
    /// `prefix` (empty when the workload has none); policies blind to prompts ignore them.
    fn choose_for(&mut self, prefix: &[u64], candidates: &[u32], board: &[ReplicaGauge]) -> usize {
        let _ = prefix;
        self.choose(candidates, board)
    }

    /// Told that a request with prefix hashes `prefix` went to `replica`.
    fn routed(&mut self, prefix: &[u64], replica: u32) {
        let _ = (prefix, replica);
    }
}

/// Candidates in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoutePolicy for RoundRobin {
    fn choose(&mut self, candidates: &[u32], _board: &[ReplicaGauge]) -> usize {
        let n = candidates.len();
        if n <= 1 {
            return 0;
        }
        let chosen = self.next % n;
        self.next = (self.next + 1) % n;
        chosen
    }
}

/// The candidate with the fewest prompt and output tokens still to produce.
#[derive(Debug, Default)]
pub struct LeastOutstandingTokens;

impl RoutePolicy for LeastOutstandingTokens {
    fn choose(&mut self, candidates: &[u32], board: &[ReplicaGauge]) -> usize {
        (0..candidates.len()).min_by_key(|&i| (board[candidates[i] as usize].outstanding_tokens, i)).unwrap_or(0)
    }
}

/// The candidate whose KV cache is least full (used over capacity), then with the fewest
/// reservations waiting.
#[derive(Debug, Default)]
pub struct LeastKvLoad;

impl RoutePolicy for LeastKvLoad {
    fn choose(&mut self, candidates: &[u32], board: &[ReplicaGauge]) -> usize {
        let load = |i: usize| {
            let g = &board[candidates[i] as usize];
            // Compare used/capacity exactly by cross-multiplication.
            (g.pending_reservations, u128::from(g.kv_used_blocks), u128::from(g.kv_capacity_blocks.max(1)))
        };
        let mut best = 0;
        for i in 1..candidates.len() {
            let (pa, ua, ca) = load(best);
            let (pb, ub, cb) = load(i);
            if (pb, ub * ca) < (pa, ua * cb) {
                best = i;
            }
        }
        best
    }
}

/// The less loaded (by outstanding tokens) of two candidates drawn at random.
#[derive(Debug)]
pub struct PowerOfTwo {
    rng: SimRng,
}

impl PowerOfTwo {
    /// Draws from the stream `name` of `seed`.
    pub fn new(seed: u64, name: &str) -> Self {
        PowerOfTwo { rng: stream_rng(seed, name) }
    }
}

impl RoutePolicy for PowerOfTwo {
    fn choose(&mut self, candidates: &[u32], board: &[ReplicaGauge]) -> usize {
        let n = candidates.len();
        if n <= 1 {
            return 0;
        }
        let a = self.rng.gen_range(0..n);
        let mut b = self.rng.gen_range(0..n - 1);
        if b >= a {
            b += 1;
        }
        let load = |i: usize| (board[candidates[i] as usize].outstanding_tokens, i);
        if load(a) <= load(b) {
            a
        } else {
            b
        }
    }
}

/// One replica a router may send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTarget {
    /// Replica index (into the board).
    pub replica: u32,
    /// Its component.
    pub component: ComponentId,
}

/// Which stage of a request a router places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// New requests, to replicas whose role is colocated or prefill.
    Entry,
    /// Finished prompts, to replicas whose role is decode.
    Decode,
}

/// A router component.
pub struct Router {
    stage: Stage,
    policy: Box<dyn RoutePolicy>,
    targets: Vec<RouteTarget>,
    candidates: Vec<u32>,
    chosen: Vec<usize>,
    prefixes: Arc<PrefixHashes>,
}

impl Router {
    /// A router of `stage` over `targets`, choosing by `policy`.
    pub fn new(stage: Stage, policy: Box<dyn RoutePolicy>, targets: Vec<RouteTarget>) -> Self {
        Router { stage, policy, targets, candidates: Vec::new(), chosen: Vec::new(), prefixes: Arc::default() }
    }

    /// Shows the policy each request's prompt-prefix hashes (entry routers of workloads that
    /// carry them).
    pub fn with_prefixes(mut self, prefixes: Arc<PrefixHashes>) -> Self {
        self.prefixes = prefixes;
        self
    }

    /// The target for the next request: among replicas now in a role this stage serves and
    /// accepting work (a replica draining for a role switch is not), or among all targets of
    /// that role if every one is draining.
    fn pick(&mut self, request: u32, state: &ServingState) -> RouteTarget {
        let serves = |role: Role| match self.stage {
            Stage::Entry => role != Role::Decode,
            Stage::Decode => role == Role::Decode,
        };
        self.candidates.clear();
        self.chosen.clear();
        for (position, target) in self.targets.iter().enumerate() {
            let gauge = &state.board[target.replica as usize];
            if serves(gauge.role) && gauge.accepting {
                self.candidates.push(target.replica);
                self.chosen.push(position);
            }
        }
        if self.candidates.is_empty() {
            for (position, target) in self.targets.iter().enumerate() {
                if serves(state.board[target.replica as usize].role) {
                    self.candidates.push(target.replica);
                    self.chosen.push(position);
                }
            }
        }
        if self.candidates.is_empty() {
            // Only while a role switch is in flight; the controller keeps one of each role.
            self.candidates.extend(self.targets.iter().map(|t| t.replica));
            self.chosen.extend(0..self.targets.len());
        }
        let prefix = match state.requests.get(request as usize) {
            Some(spec) if self.stage == Stage::Entry => self.prefixes.of(spec.prefix),
            _ => &[],
        };
        let choice = self.policy.choose_for(prefix, &self.candidates, &state.board);
        let target = self.targets[self.chosen[choice]];
        self.policy.routed(prefix, target.replica);
        target
    }
}

impl Component<Msg, ServingState> for Router {
    fn handle(&mut self, message: Msg, ctx: &mut ServingContext<'_>) {
        match message {
            Msg::Route(request) => {
                let target = self.pick(request, ctx.shared);
                ctx.shared.recorder.routed(request as usize, target.replica);
                ctx.send(target.component, Msg::Admit(request));
            }
            Msg::RouteDecode { request, from } => {
                let target = self.pick(request, ctx.shared);
                ctx.shared.recorder.routed_for_decode(request as usize, target.replica);
                ctx.send(target.component, Msg::Reserve { request, from });
            }
            other => debug_assert!(false, "a router got {other:?}"),
        }
    }
}

/// Feeds the workload's arrivals one at a time (each schedules the next), so the event queue
/// stays small however long the trace.
pub struct RequestSource {
    router: ComponentId,
}

impl RequestSource {
    /// A source feeding `router`.
    pub fn new(router: ComponentId) -> Self {
        RequestSource { router }
    }
}

impl Component<Msg, ServingState> for RequestSource {
    fn handle(&mut self, message: Msg, ctx: &mut ServingContext<'_>) {
        if let Msg::Arrive(request) = message {
            if let Some(next) = ctx.shared.requests.get(request as usize + 1) {
                let at = next.arrival;
                ctx.schedule_at(at, Msg::Arrive(request + 1));
            }
            ctx.send(self.router, Msg::Route(request));
        }
    }
}
