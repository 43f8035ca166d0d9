//! The cluster router: picks a replica for each arriving request.

use crate::engine::{stream_rng, SimRng};
use crate::scenario::schema::RouterKind;
use crate::serving::Replica;
use rand::Rng;

/// Routing state.
pub struct Router {
    kind: RouterKind,
    next: usize,
    rng: SimRng,
}

impl Router {
    /// A router of `kind`; power-of-two draws from its own stream of `seed`.
    pub fn new(kind: RouterKind, seed: u64) -> Self {
        Router { kind, next: 0, rng: stream_rng(seed, "router") }
    }

    /// The replica for the next request. Ties go to the lowest index.
    pub fn choose(&mut self, replicas: &[Replica]) -> usize {
        let n = replicas.len();
        if n <= 1 {
            return 0;
        }
        match self.kind {
            RouterKind::RoundRobin => {
                let chosen = self.next % n;
                self.next = (self.next + 1) % n;
                chosen
            }
            RouterKind::LeastOutstandingTokens => {
                (0..n).min_by_key(|&i| (replicas[i].outstanding_tokens(), i)).expect("replicas exist")
            }
            RouterKind::PowerOfTwo => {
                let a = self.rng.gen_range(0..n);
                let mut b = self.rng.gen_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                let load = |i: usize| (replicas[i].outstanding_tokens(), i);
                if load(a) <= load(b) {
                    a
                } else {
                    b
                }
            }
        }
    }
}
