//! Serving components: replicas, routers, the KV-transfer network and the role controller,
//! which talk through the engine's messages and share a [`ServingState`].
//!
//! A replica is split into its parts: the public [`Sequence`] with its lifecycle, the
//! [`KvManager`] over a [`BlockPool`], a [`BatchPolicy`] ([`VllmV1`] first) that picks each
//! iteration's work, and [`Executor`]s that price batches with a cost model and pass them
//! through the pipeline stages. A step reports how many tokens each sequence emitted. This
//! module does not wire components together (that is `cluster`) nor aggregate metrics (that
//! is `metrics`); it reports per-request milestones to a [`crate::records::Recorder`].

mod acceptance;
mod batch;
mod controller;
mod executor;
mod kv_cache;
mod kv_tiers;
mod messages;
mod network;
mod policy;
mod prefill_first;
mod prefix_cache;
mod prefix_router;
mod replica;
mod router;
mod sequence;
mod speculation;

pub use acceptance::{Acceptance, AcceptanceModel, TreeShape};
pub use batch::{BatchPolicy, SchedulerConfig, SchedulerState, Scope, VllmV1, Waiting};
pub use controller::{RoleController, SwitchPolicy};
pub use executor::{
    account, Batch, Executor, IterationRecord, ReplicaHardware, ReplicaStats, Role, RoleStats, Started,
};
pub use kv_cache::{BlockPool, KvManager};
pub use kv_tiers::{HostTiers, Tier, TierSpec, TierStats};
pub use messages::{
    Msg, ReplicaGauge, RequestIndex, RoleSwitch, ServingContext, ServingState, Streaming, TransferLog, TransferOrder,
    TransferRecord,
};
pub use network::{kv_flows, KvLayout, Network};
pub use policy::Policy;
pub use prefill_first::PrefillFirst;
pub use prefix_cache::{CacheCapacity, Insertion, PrefixCache, PrefixCacheStats, PrefixLookup};
pub use prefix_router::{PrefixAware, ScorerWeights};
pub use replica::{Handoff, Replica, ReplicaSetup, ShareControl, Worker};
pub use router::{
    LeastKvLoad, LeastOutstandingTokens, PowerOfTwo, RequestSource, RoundRobin, RoutePolicy, RouteTarget, Router, Stage,
};
pub use sequence::{Lifecycle, Sequence, StepKind};
pub use speculation::{DraftCost, SpeculationStats, Speculator};

pub use crate::records::RequestSpec;
