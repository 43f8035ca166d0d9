//! What serving components say to each other, and the state they share: the workload, the
//! request records, the gauges replicas publish for routers (as a real router scrapes its
//! replicas' metrics), and logs of KV transfers and role switches.

use super::executor::{IterationRecord, Role};
use super::RequestSpec;
use crate::engine::{ComponentId, Context, SimTime};
use crate::records::Recorder;

/// Index of a request in the workload.
pub type RequestIndex = u32;

/// A request's KV to move from a prefill replica to a decode replica.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferOrder {
    /// The request.
    pub request: RequestIndex,
    /// Prefill replica (index) and component.
    pub from_replica: u32,
    /// Its component.
    pub from: ComponentId,
    /// Decode replica (index).
    pub to_replica: u32,
    /// Its component.
    pub to: ComponentId,
    /// Tokens whose KV moves.
    pub tokens: u64,
    /// Set when the KV streams layer by layer while the prompt's last chunk computes.
    pub streaming: Option<Streaming>,
}

/// A transfer that starts while its last prompt chunk is still computing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Streaming {
    /// Share of the KV already computed (earlier chunks), sendable at once.
    pub ready_fraction: f64,
    /// When the last chunk's iteration ends (its last layer's KV is then produced).
    pub produced_at: SimTime,
    /// Layers per stage whose KV is produced one after another.
    pub layers: u64,
}

/// Messages between serving components.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// Source, to itself: request i arrives now.
    Arrive(RequestIndex),
    /// Entry router: place a new request.
    Route(RequestIndex),
    /// Decode router: a request finished its prompt on `from` and needs a decode replica.
    RouteDecode {
        /// The request.
        request: RequestIndex,
        /// The prefill replica holding its KV.
        from: ComponentId,
    },
    /// Replica: take a new request.
    Admit(RequestIndex),
    /// Decode replica: reserve room for a request's KV, held by `from`.
    Reserve {
        /// The request.
        request: RequestIndex,
        /// The prefill replica holding its KV.
        from: ComponentId,
    },
    /// Prefill replica: `decode` has reserved room for a request's KV: send it.
    Reserved {
        /// The request.
        request: RequestIndex,
        /// The decode replica's component.
        decode: ComponentId,
        /// Its index.
        decode_replica: u32,
    },
    /// Network: move KV.
    Transfer(Box<TransferOrder>),
    /// Network, to itself: the next flow finishes now.
    FlowsDue,
    /// Network, to itself: a streamed transfer's last layer has been produced.
    Produced(u64),
    /// Decode replica: a request's KV has arrived.
    KvArrived(RequestIndex),
    /// Prefill replica: a request's KV has left.
    KvSent(RequestIndex),
    /// Replica, to itself: worker w's oldest batch completed.
    BatchDone(u8),
    /// Replica, to itself: worker w's first pipeline stage became free.
    StageFree(u8),
    /// Replica, to itself (end of instant): form batches now that the instant's messages are in.
    Wake,
    /// Replica: switch to this role once drained.
    SwitchRole(Role),
    /// A component's periodic check, to itself.
    Tick,
}

/// What a replica publishes about its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaGauge {
    /// Prompt and output tokens not yet produced by requests routed here.
    pub outstanding_tokens: u64,
    /// KV blocks in use (reservations included).
    pub kv_used_blocks: u64,
    /// KV blocks in all.
    pub kv_capacity_blocks: u64,
    /// Requests waiting.
    pub waiting: u32,
    /// Prompt tokens waiting or still to compute.
    pub pending_prefill_tokens: u64,
    /// KV reservations it could not grant yet.
    pub pending_reservations: u32,
    /// Its role now.
    pub role: Role,
    /// False while it drains before a role switch.
    pub accepting: bool,
}

impl ReplicaGauge {
    /// An idle replica of `role` with `kv_capacity_blocks`.
    pub fn idle(role: Role, kv_capacity_blocks: u64) -> Self {
        ReplicaGauge {
            outstanding_tokens: 0,
            kv_used_blocks: 0,
            kv_capacity_blocks,
            waiting: 0,
            pending_prefill_tokens: 0,
            pending_reservations: 0,
            role,
            accepting: true,
        }
    }
}

/// One KV transfer as it happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransferRecord {
    /// The request.
    pub request: RequestIndex,
    /// Prefill replica.
    pub from_replica: u32,
    /// Decode replica.
    pub to_replica: u32,
    /// When the first byte could move.
    pub start: SimTime,
    /// When the last byte arrived.
    pub end: SimTime,
    /// Bytes moved.
    pub bytes: f64,
    /// Whether it streamed during prefill.
    pub streamed: bool,
}

/// A replica changing role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSwitch {
    /// The replica.
    pub replica: u32,
    /// When the switch was asked for.
    pub asked: SimTime,
    /// When it took effect (the replica had drained).
    pub at: SimTime,
    /// The role it left.
    pub from: Role,
    /// The role it took.
    pub to: Role,
}

/// KV-transfer figures of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransferLog {
    /// Durations of transfers, s (from the first byte's chance to move to the last byte's
    /// arrival).
    pub durations_s: Vec<f64>,
    /// Time each handed-off request waited for a decode replica to reserve room, s.
    pub decode_wait_s: Vec<f64>,
    /// Bytes moved in all.
    pub bytes_moved: f64,
    /// Every transfer, when a timeline is recorded.
    pub records: Option<Vec<TransferRecord>>,
}

/// State shared by all serving components of one run.
#[derive(Debug, Clone)]
pub struct ServingState {
    /// The workload, in arrival order.
    pub requests: Vec<RequestSpec>,
    /// Per-request records.
    pub recorder: Recorder,
    /// Gauges by replica index.
    pub board: Vec<ReplicaGauge>,
    /// KV transfers.
    pub transfers: TransferLog,
    /// Every batch, when a timeline is recorded.
    pub timeline: Option<Vec<IterationRecord>>,
    /// Role switches.
    pub role_switches: Vec<RoleSwitch>,
}

/// The context serving components get.
pub type ServingContext<'a> = Context<'a, Msg, ServingState>;
