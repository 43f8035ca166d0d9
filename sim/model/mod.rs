//! Model architectures read from Hugging Face `config.json` files, and what follows from them:
//! parameter bytes, KV-cache bytes per token, and the FLOPs and bytes of each operator of an
//! iteration.
//!
//! This module is pure arithmetic on the architecture; it does not know about devices or time
//! (that is `cost`).

mod hf_config;
pub mod moe_routing;
mod ops;
mod parallel;
mod precision;
mod spec;

pub use ops::{AttentionHeads, BatchShape, OpKind, OpShape, Operator, OperatorPlan};
pub use parallel::Parallelism;
pub use precision::{Precision, WeightFormat};
pub use spec::{MlaSpec, ModelSpec, MoeSpec};
