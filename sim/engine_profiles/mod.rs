//! Serving-engine profiles (`hardware-profiles/engines/*.yaml`): what a serving engine adds
//! to the devices it runs on — host work per step, CUDA-graph capture and kernel launches,
//! its scheduler's semantics, and its default knobs. A pool names its engine (default
//! `vllm-v1`).
//!
//! This module is the checked data only. The scheduler semantics become a batch policy in
//! `cluster` (the policies themselves live in `serving`), and the host and graph figures
//! become the cost model's host overheads there; nothing here prices or schedules.

use crate::error::Result;
use crate::input::checked::{Count, Fraction, NonNegative};
use crate::input::YamlSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an engine forms each step's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Batching {
    /// vLLM V1: running sequences first (decodes and prompt chunks alike), then new ones,
    /// within one token budget; prompt chunks and decodes share a step.
    ChunkedPrefill,
    /// SGLang and eager engines: a step is either a prefill step (new prompts, or the next
    /// chunk of one) whenever one can be admitted, or a decode step of every running
    /// sequence.
    PrefillFirst,
    /// TensorRT-LLM in-flight batching: every generating sequence plus context requests
    /// admitted up to `max_num_tokens`, each admission reserving its KV as the engine's
    /// capacity policy says.
    Inflight,
}

/// What an engine does when a running sequence needs a KV block and none is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preemption {
    /// Drop the victim's KV and recompute it later (vLLM's default, SGLang's retraction).
    Recompute,
    /// Copy the victim's KV to host memory over the device's host link and load it back
    /// before it resumes (needs a pool `kv_offload:` section, on a node with `host:` memory).
    Swap,
    /// Never: admission reserves enough that running sequences cannot run out.
    Never,
}

/// How much KV an admission reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvReservation {
    /// Blocks as tokens are computed (vLLM, SGLang).
    OnDemand,
    /// The whole sequence — prompt and every output token — at admission (TensorRT-LLM's
    /// GUARANTEED_NO_EVICT capacity policy).
    WholeOutput,
}

/// The prefix cache an engine keeps by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixCacheKind {
    /// No reuse across requests.
    None,
    /// vLLM automatic prefix caching and TensorRT-LLM block reuse: full KV blocks keyed by
    /// the hash of their prefix, LRU-evicted among blocks no sequence uses.
    BlockHash,
    /// SGLang's radix tree: the same reuse at token granularity, LRU-evicted leaves first.
    Radix,
}

/// How an engine's steps use CUDA graphs (or their equivalents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphMode {
    /// Every kernel is launched from the host, one by one.
    None,
    /// Decode-only steps of up to the largest capture size replay a captured graph, their
    /// batch padded up to the next capture size; other steps launch eagerly.
    DecodeOnly,
    /// vLLM V1's piecewise graphs: any step of up to the largest capture size in tokens runs
    /// its token-parallel layers from graphs padded to the next capture size; attention
    /// kernels are launched eagerly between the pieces.
    Piecewise,
    /// vLLM V1's default since 0.11: decode-only steps replay full graphs (padded in
    /// sequences), other steps piecewise graphs (padded in tokens).
    FullAndPiecewise,
}

/// The scheduler's semantics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSemantics {
    /// How steps are formed.
    pub batching: Batching,
    /// What happens when KV runs out.
    pub preemption: Preemption,
    /// What an admission reserves.
    pub kv_reservation: KvReservation,
    /// The default prefix cache.
    pub prefix_cache: PrefixCacheKind,
}

/// Host (CPU) work of each step.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostWork {
    /// Fixed host time per step: scheduling, input preparation, output processing, µs.
    pub step_us: NonNegative,
    /// Host time per sequence in the step: sampling bookkeeping, detokenisation, µs.
    pub per_sequence_us: NonNegative,
    /// Whether the host prepares step n+1 while the device runs step n (SGLang's overlap
    /// scheduler, vLLM's async scheduling): a step then takes the longer of the two, not
    /// their sum.
    pub overlapped: bool,
}

/// CUDA-graph capture and kernel launches.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Graphs {
    /// Which steps replay graphs.
    pub mode: GraphMode,
    /// Batch sizes (sequences for `decode_only`, tokens for `piecewise`) captured, ascending.
    #[serde(default)]
    pub capture_sizes: Vec<u64>,
    /// Host cost of launching one kernel outside a graph, µs: a step launched eagerly takes at
    /// least its kernels × this.
    pub kernel_launch_us: NonNegative,
}

/// How this engine version's kernels compare with servesim's operator prices (the measured
/// tables where bundled — AIConfigurator measures recent engine versions, an older version's
/// kernels may be slower or faster — else the roofline): each operator's time is multiplied
/// by its kind's factor. Fitted, not assumed; 1 where nothing was fitted.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KernelScale {
    /// Dense GEMMs.
    #[serde(default = "unit")]
    pub gemm: f64,
    /// Prefill (context) attention.
    #[serde(default = "unit")]
    pub attention_prefill: f64,
    /// Decode (generation) attention.
    #[serde(default = "unit")]
    pub attention_decode: f64,
    /// MoE experts with at most 16 tokens each.
    #[serde(default = "unit")]
    pub experts_few_tokens: f64,
    /// MoE experts with at least 512 tokens each (log-interpolated in between).
    #[serde(default = "unit")]
    pub experts_many_tokens: f64,
    /// All-reduce.
    #[serde(default = "unit")]
    pub all_reduce: f64,
}

fn unit() -> f64 {
    1.0
}

impl Default for KernelScale {
    fn default() -> Self {
        KernelScale {
            gemm: 1.0,
            attention_prefill: 1.0,
            attention_decode: 1.0,
            experts_few_tokens: 1.0,
            experts_many_tokens: 1.0,
            all_reduce: 1.0,
        }
    }
}

/// Knobs a pool inherits unless its `scheduler:` section sets them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineDefaults {
    /// Most sequences per step (vLLM max_num_seqs, TensorRT-LLM max_batch_size, SGLang
    /// max_running_requests).
    pub max_num_seqs: Count,
    /// Token budget per step (vLLM max_num_batched_tokens, TensorRT-LLM max_num_tokens,
    /// SGLang chunked_prefill_size).
    pub max_num_batched_tokens: Count,
    /// Whether long prompts are split across steps.
    pub chunked_prefill: bool,
    /// Tokens per KV block (SGLang's page_size).
    pub block_size: Count,
    /// Fraction of device memory the engine takes (vLLM gpu_memory_utilization, SGLang
    /// mem_fraction_static, TensorRT-LLM free_gpu_memory_fraction applied to all memory).
    pub memory_utilization: Fraction,
}

/// One engine profile as read from a file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineProfile {
    /// Catalog key (= file stem).
    pub name: String,
    /// Human-readable name.
    pub display_name: String,
    /// The engine version the figures describe.
    pub version: String,
    /// The framework name of measured operator tables that apply to this engine
    /// (AIConfigurator's `trtllm`, `vllm`, `sglang`), if any.
    #[serde(default)]
    pub measured_framework: Option<String>,
    /// Scheduler semantics.
    pub scheduler: SchedulerSemantics,
    /// Host work per step.
    pub host: HostWork,
    /// Graphs and launches.
    pub graphs: Graphs,
    /// This version's kernels against servesim's operator prices.
    #[serde(default)]
    pub kernel_scale: KernelScale,
    /// For sliding-window models with grouped-query attention: the share of the extra KV reads
    /// of a kernel that reads each KV head once per query head (TensorRT-LLM 0.9: its XQA
    /// kernels had no sliding window, so such models ran the masked multi-head kernel; caches
    /// absorb part of the re-reads). 0: each KV head is read once.
    #[serde(default)]
    pub windowed_decode_reread_fraction: f64,
    /// Whether MoE expert GEMMs compute at 16 bits whatever the weight format (TensorRT-LLM
    /// 0.9: FP8 compute for Mixtral's experts arrived in 0.10). Measured tables then price
    /// them as 16-bit GEMMs; `kernel_scale.experts_few_tokens` carries what narrower weights
    /// save where the experts are bandwidth-bound.
    #[serde(default)]
    pub experts_at_16_bits: bool,
    /// Whether each residual add runs inside the RMSNorm kernel that follows it (vLLM's and
    /// SGLang's `fused_add_rms_norm`, TensorRT-LLM's fused layers); eager PyTorch launches
    /// the add as a kernel of its own.
    #[serde(default = "fused_by_default")]
    pub fused_residual_norm: bool,
    /// Default knobs.
    pub defaults: EngineDefaults,
    /// Field path → citation or `ESTIMATE:`/`FITTED:` note.
    pub sources: BTreeMap<String, String>,
}

fn fused_by_default() -> bool {
    true
}

/// Largest host time per step or per sequence accepted, µs (far beyond any engine; keeps
/// derived durations inside the nanosecond clock).
pub const HOST_US: (f64, f64) = (0.0, 1e6);
/// Range of a measured-time factor: an engine's kernels within 10× of the measured ones.
pub const KERNEL_SCALE: (f64, f64) = (0.1, 10.0);
/// Largest batch or token count an engine knob may name.
pub const MAX_KNOB: u64 = 1 << 24;

impl EngineProfile {
    /// Parses and checks an engine profile.
    pub fn from_source(source: &YamlSource) -> Result<EngineProfile> {
        let profile: EngineProfile = source.parse()?;
        source.check_range("host.step_us", profile.host.step_us.get(), HOST_US, " µs")?;
        source.check_range("host.per_sequence_us", profile.host.per_sequence_us.get(), HOST_US, " µs")?;
        source.check_range("graphs.kernel_launch_us", profile.graphs.kernel_launch_us.get(), HOST_US, " µs")?;
        let scale = &profile.kernel_scale;
        for (field, value) in [
            ("kernel_scale.gemm", scale.gemm),
            ("kernel_scale.attention_prefill", scale.attention_prefill),
            ("kernel_scale.attention_decode", scale.attention_decode),
            ("kernel_scale.experts_few_tokens", scale.experts_few_tokens),
            ("kernel_scale.experts_many_tokens", scale.experts_many_tokens),
            ("kernel_scale.all_reduce", scale.all_reduce),
        ] {
            source.check_within(
                field,
                value,
                KERNEL_SCALE,
                "",
                "a factor on servesim's operator times: this engine's kernels within 10× of them either way",
            )?;
        }
        source.check_within(
            "windowed_decode_reread_fraction",
            profile.windowed_decode_reread_fraction,
            (0.0, 1.0),
            "",
            "a share of the extra KV reads: 0 reads each KV head once, 1 once per query head",
        )?;
        if let Some(framework) = &profile.measured_framework {
            let known = crate::calibration::aiconfigurator::FRAMEWORKS;
            if !known.contains(&framework.as_str()) {
                return Err(source.error(
                    "measured_framework",
                    format!(
                        "unknown framework {framework:?}: measured tables are of {} (AIConfigurator's names); omit the field for an engine without measured tables",
                        known.join(", ")
                    ),
                ));
            }
        }
        let knobs = [
            ("defaults.max_num_seqs", profile.defaults.max_num_seqs.get()),
            ("defaults.max_num_batched_tokens", profile.defaults.max_num_batched_tokens.get()),
            ("defaults.block_size", profile.defaults.block_size.get()),
        ];
        for (field, value) in knobs {
            if value > MAX_KNOB {
                return Err(source.error(field, format!("{value} is out of range: expected at most {MAX_KNOB}")));
            }
        }
        let sizes = &profile.graphs.capture_sizes;
        match profile.graphs.mode {
            GraphMode::None if !sizes.is_empty() => {
                return Err(source.error("graphs.capture_sizes", "graphs.mode none captures nothing: remove the sizes"))
            }
            GraphMode::DecodeOnly | GraphMode::Piecewise | GraphMode::FullAndPiecewise if sizes.is_empty() => {
                return Err(source.error(
                    "graphs.capture_sizes",
                    "list the captured batch sizes, ascending (e.g. [1, 2, 4, 8, 16, 32])",
                ))
            }
            _ => {}
        }
        for (i, pair) in sizes.windows(2).enumerate() {
            if pair[1] <= pair[0] {
                return Err(source.error(
                    &format!("graphs.capture_sizes[{}]", i + 1),
                    format!("capture sizes must rise: {} follows {}", pair[1], pair[0]),
                ));
            }
        }
        if let Some((i, &size)) = sizes.iter().enumerate().find(|(_, &s)| s == 0 || s > MAX_KNOB) {
            return Err(source.error(
                &format!("graphs.capture_sizes[{i}]"),
                format!("{size} is out of range: expected 1..={MAX_KNOB}"),
            ));
        }
        if profile.scheduler.preemption == Preemption::Never
            && profile.scheduler.kv_reservation != KvReservation::WholeOutput
        {
            return Err(source.error(
                "scheduler.preemption",
                "an engine that never preempts must reserve each sequence's whole output at admission (kv_reservation: whole_output), or running sequences could run out of KV",
            ));
        }
        let undocumented: Vec<&str> = ["scheduler", "host", "graphs", "defaults"]
            .into_iter()
            .filter(|section| !profile.sources.keys().any(|k| k == section || k.starts_with(&format!("{section}."))))
            .collect();
        if !undocumented.is_empty() {
            return Err(source.error(
                "sources",
                format!("give a source (citation, ESTIMATE: or FITTED:) for: {}", undocumented.join(", ")),
            ));
        }
        Ok(profile)
    }

    /// The capture size a graph step of `size` is padded to, if a captured graph covers it.
    pub fn padded_capture_size(&self, size: u64) -> Option<u64> {
        let sizes = &self.graphs.capture_sizes;
        let at = sizes.partition_point(|&s| s < size);
        sizes.get(at).copied()
    }
}
