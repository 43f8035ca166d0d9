//! Role switching for a Splitwise-style mixed pool: replicas that serve as prefill or decode
//! machines and change role when one phase's queue builds up.
//!
//! Every interval the controller reads the gauges of every prefill and decode replica. When
//! prompt tokens waiting per prefill replica exceed the prefill threshold while the decode
//! side has room (no reservation waiting, KV occupancy under its threshold), it asks the
//! least-loaded switchable decode replica to become a prefill replica; when decode is short
//! of room (a reservation waiting or occupancy over the threshold) while prefill queues are
//! short, the reverse. At most one switch is asked per interval, each role keeps at least
//! `min_per_role` replicas, and a replica switches only once drained (see `replica`).

use super::executor::Role;
use super::messages::{Msg, ServingContext, ServingState};
use crate::engine::{Component, ComponentId, SimTime};

/// Thresholds of the role controller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwitchPolicy {
    /// Time between checks, ns.
    pub interval_ns: u64,
    /// Prompt tokens waiting per prefill replica above which prefill needs a replica.
    pub prefill_queue_tokens: u64,
    /// KV occupancy of the decode replicas above which decode needs a replica.
    pub decode_kv_occupancy: f64,
    /// Fewest replicas each role keeps.
    pub min_per_role: usize,
}

/// The controller component.
pub struct RoleController {
    policy: SwitchPolicy,
    /// The replicas it may switch: (index, component).
    switchable: Vec<(u32, ComponentId)>,
    /// Last arrival of the workload: ticks stop after it once every replica is idle.
    last_arrival: SimTime,
}

impl RoleController {
    /// A controller switching `switchable` replicas by `policy`.
    pub fn new(policy: SwitchPolicy, switchable: Vec<(u32, ComponentId)>, last_arrival: SimTime) -> Self {
        RoleController { policy, switchable, last_arrival }
    }

    /// The switch to ask for now, if any: (replica component, new role).
    fn decide(&self, state: &ServingState) -> Option<(ComponentId, Role)> {
        let board = &state.board;
        let of_role = |role: Role| board.iter().filter(move |g| g.role == role);
        let prefill_count = of_role(Role::Prefill).count();
        let decode_count = of_role(Role::Decode).count();
        // Replicas already draining toward the other role do not count toward the minimum.
        let staying = |role: Role| of_role(role).filter(|g| g.accepting).count();
        if prefill_count == 0 || decode_count == 0 {
            return None;
        }
        let prefill_queue =
            of_role(Role::Prefill).map(|g| g.pending_prefill_tokens).sum::<u64>() / prefill_count as u64;
        let used: u64 = of_role(Role::Decode).map(|g| g.kv_used_blocks).sum();
        let capacity: u64 = of_role(Role::Decode).map(|g| g.kv_capacity_blocks).sum();
        let occupancy = used as f64 / capacity.max(1) as f64;
        let reservations_waiting: u32 = of_role(Role::Decode).map(|g| g.pending_reservations).sum();
        let decode_short = reservations_waiting > 0 || occupancy > self.policy.decode_kv_occupancy;
        let candidates = |role: Role| {
            self.switchable.iter().filter(move |(i, _)| {
                let g = &board[*i as usize];
                g.role == role && g.accepting
            })
        };
        if prefill_queue > self.policy.prefill_queue_tokens
            && !decode_short
            && staying(Role::Decode) > self.policy.min_per_role
        {
            return candidates(Role::Decode)
                .min_by_key(|(i, _)| (board[*i as usize].kv_used_blocks, *i))
                .map(|&(_, id)| (id, Role::Prefill));
        }
        if decode_short
            && prefill_queue < self.policy.prefill_queue_tokens / 4
            && staying(Role::Prefill) > self.policy.min_per_role
        {
            return candidates(Role::Prefill)
                .min_by_key(|(i, _)| (board[*i as usize].pending_prefill_tokens, *i))
                .map(|&(_, id)| (id, Role::Decode));
        }
        None
    }
}

impl Component<Msg, ServingState> for RoleController {
    fn handle(&mut self, message: Msg, ctx: &mut ServingContext<'_>) {
        if message != Msg::Tick {
            debug_assert!(false, "the role controller got {message:?}");
            return;
        }
        if let Some((replica, role)) = self.decide(ctx.shared) {
            ctx.send(replica, Msg::SwitchRole(role));
        }
        let busy = ctx.shared.board.iter().any(|g| g.outstanding_tokens > 0 || g.pending_reservations > 0);
        if busy || ctx.now() < self.last_arrival {
            ctx.schedule_in(self.policy.interval_ns, Msg::Tick);
        }
    }
}
