//! servesim: a deterministic discrete-event simulator of LLM inference serving.
//!
//! Data flows one way: a scenario file is validated into a [`scenario::Scenario`], built into a
//! [`cluster::Cluster`], run on the [`engine`], and its records aggregated by [`metrics`] and
//! written by [`report`]. See ARCHITECTURE.md for the module map and invariants.

#![warn(missing_docs)]

pub mod calibration;
pub mod cluster;
pub mod commands;
pub mod cost;
pub mod engine;
pub mod engine_profiles;
pub mod error;
pub mod fidelity;
pub mod hardware;
pub mod input;
pub mod metrics;
pub mod model;
pub mod records;
pub mod report;
pub mod scenario;
pub mod search;
pub mod serving;
pub mod topology;
pub mod workload;

pub use error::{Error, Result};
