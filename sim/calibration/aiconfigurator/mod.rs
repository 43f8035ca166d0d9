//! Measured operator times from NVIDIA AIConfigurator's operator database (Apache-2.0,
//! published in the `aiconfigurator-core` package): kernels timed on real GPUs with TensorRT-LLM,
//! vLLM and SGLang.
//!
//! `servesim calibrate --aiconfigurator` converts one system × framework × version of those
//! Parquet tables ([`convert`]) into a compact calibration file ([`MeasuredFile`]: latency
//! grids with provenance and held-out errors); the bundled ones are embedded from
//! `hardware-profiles/calibrations/aiconfigurator/`. [`MeasuredTimes`] answers the cost
//! model's [`crate::cost::OperatorTimes`] questions from such a file, and the roofline prices
//! what it declines. Not here: MoE, MLA and communication other than single-node all-reduce,
//! which AIConfigurator also times but servesim's operators do not yet map onto.

mod convert;
mod file;
mod grid;
mod held_out;
mod parquet;
mod times;

pub use convert::{convert, version_order, Conversion, ConvertOptions, FRAMEWORKS, HELD_OUT_SAMPLE, SYSTEMS};
pub use file::{AllReduceGrid, AttentionGrid, HeldOutError, MeasuredFile, TableProvenance};
pub use grid::{format_significant, AxisFile, Grid, GridFile};
pub use held_out::{held_out_errors, read_held_out, write_held_out, ErrorSummary, HeldOutRow};
pub use parquet::ParquetTable;
pub use times::{AttentionDtype, GemmDtype, MeasuredTimes, GEMM_DTYPES};
