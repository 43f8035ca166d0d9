//! The scenario file format, as serde structs. Every struct rejects unknown fields; numbers
//! are range-checked as they are read (see `input::checked`). Defaults are what a vLLM user
//! would expect.

use crate::hardware::Dtype;
use crate::input::checked::{Count, Fraction, NonNegative, Positive};
use crate::model::WeightFormat;
use crate::serving::Policy;
use serde::{Deserialize, Serialize};

/// A scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name used in reports (default: the file name).
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of every random stream.
    #[serde(default)]
    pub seed: u64,
    /// Bundled model name or path to a Hugging Face config.json.
    pub model: String,
    /// Weight format (default: the model's published dtype, else bf16): bf16, fp16, fp8,
    /// fp8_block, int8, nvfp4, mxfp4, int4_awq (alias int4) or int4_gptq.
    #[serde(default)]
    pub dtype: Option<WeightFormat>,
    /// KV-cache dtype (default: the 16-bit type the model computes in): bf16, fp16, fp8, int8
    /// or fp4.
    #[serde(default)]
    pub kv_cache_dtype: Option<Dtype>,
    /// Where and how the model is served.
    pub deployment: DeploymentSection,
    /// The requests.
    pub workload: WorkloadSection,
    /// Service-level objectives for goodput.
    #[serde(default)]
    pub slo: SloSection,
    /// Output options.
    #[serde(default)]
    pub output: OutputSection,
    /// Nodes the pools are placed on (default: each replica on its own ideal node joined by
    /// the pool's `interconnect`).
    #[serde(default)]
    pub cluster: Option<ClusterSection>,
    /// Stop the simulation at this simulated time (default: when all requests are done).
    #[serde(default)]
    pub max_time_s: Option<Positive>,
}

/// Replica pools and the routers in front of them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSection {
    /// How new requests are spread over replicas (prefill replicas when disaggregated).
    #[serde(default)]
    pub router: RouterKind,
    /// How finished prompts are spread over decode replicas (default: least_kv_load).
    #[serde(default)]
    pub decode_router: Option<RouterKind>,
    /// How KV moves from prefill to decode replicas.
    #[serde(default)]
    pub kv_transfer: KvTransferSection,
    /// When replicas of a `switching` pool change role.
    #[serde(default)]
    pub role_switching: Option<RoleSwitchingSection>,
    /// Groups of identical replicas.
    pub pools: Vec<PoolSection>,
}

/// KV transfer between prefill and decode replicas.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KvTransferSection {
    /// Stream each layer's KV while the prompt's last chunk computes (Splitwise), instead of
    /// sending it all once the prompt is done.
    #[serde(default)]
    pub layerwise: bool,
}

/// Thresholds of role switching (Splitwise's mixed pool).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSwitchingSection {
    /// Seconds between checks.
    #[serde(default = "default_switch_interval")]
    pub interval_s: Positive,
    /// Prompt tokens waiting per prefill replica above which a decode replica becomes a
    /// prefill replica.
    #[serde(default = "default_prefill_queue_tokens")]
    pub prefill_queue_tokens: Count,
    /// KV occupancy of the decode replicas above which a prefill replica becomes a decode
    /// replica (a reservation waiting for room also triggers it).
    #[serde(default = "default_decode_occupancy")]
    pub decode_kv_occupancy: Fraction,
    /// Fewest replicas each role keeps.
    #[serde(default = "one")]
    pub min_per_role: Count,
}

impl Default for RoleSwitchingSection {
    fn default() -> Self {
        RoleSwitchingSection {
            interval_s: default_switch_interval(),
            prefill_queue_tokens: default_prefill_queue_tokens(),
            decode_kv_occupancy: default_decode_occupancy(),
            min_per_role: one(),
        }
    }
}

fn default_switch_interval() -> Positive {
    Positive::new(0.5).expect("positive")
}
fn default_prefill_queue_tokens() -> Count {
    Count::new(16_384).expect("count")
}
fn default_decode_occupancy() -> Fraction {
    Fraction::new(0.85).expect("fraction")
}

/// What a pool's replicas do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolRoleName {
    /// Prefill and decode on the same devices (vLLM's default).
    #[default]
    Colocated,
    /// Prompts only; KV moves to a decode pool.
    Prefill,
    /// Decoding of prompts computed by a prefill pool.
    Decode,
    /// Each replica's devices split between a prefill and a decode worker (semi-PD).
    SemiPd,
    /// Replicas that serve as prefill or decode machines and switch (Splitwise's mixed
    /// pool).
    Switching,
}

/// A semi-PD split of each replica's compute.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SemiPdSection {
    /// Share of the compute (SMs) the prefill worker owns; the decode worker owns the rest.
    pub prefill_compute_share: Fraction,
    /// Move the share toward the SLO's TTFT and TPOT targets at run time.
    #[serde(default)]
    pub adapt: Option<ShareAdaptSection>,
}

/// Run-time adjustment of a semi-PD split.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShareAdaptSection {
    /// Seconds between adjustments.
    #[serde(default = "default_adapt_interval")]
    pub interval_s: Positive,
    /// Change of the prefill share per adjustment.
    #[serde(default = "default_adapt_step")]
    pub step: Fraction,
    /// Lowest prefill share.
    #[serde(default = "default_min_share")]
    pub min_share: Fraction,
    /// Highest prefill share.
    #[serde(default = "default_max_share")]
    pub max_share: Fraction,
}

fn default_adapt_interval() -> Positive {
    Positive::new(2.0).expect("positive")
}
fn default_adapt_step() -> Fraction {
    Fraction::new(0.05).expect("fraction")
}
fn default_min_share() -> Fraction {
    Fraction::new(0.1).expect("fraction")
}
fn default_max_share() -> Fraction {
    Fraction::new(0.9).expect("fraction")
}

/// The machines of a cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Node profiles and how many of each; scale-out NICs join them through one non-blocking
    /// fabric switch.
    pub nodes: Vec<NodeCountSection>,
}

/// A node profile and a count.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCountSection {
    /// Bundled node name or path to a node profile.
    pub node: String,
    /// How many.
    #[serde(default = "one")]
    pub count: Count,
}

/// Router policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterKind {
    /// Replicas in turn.
    #[default]
    RoundRobin,
    /// The replica with the fewest prompt+output tokens still to produce.
    LeastOutstandingTokens,
    /// The less loaded of two replicas drawn at random.
    PowerOfTwo,
    /// The replica whose KV cache is least full (the default for decode replicas).
    LeastKvLoad,
    /// Cache-aware: the replica with the longest cached prompt prefix (by the router's own
    /// index of where prefixes went), balanced against outstanding tokens and KV use with
    /// BLIS's and llm-d's weights (prefix 3, queue 2, KV 2). Needs prefix hashes in the
    /// workload (Mooncake `hash_ids`); without them it balances load alone.
    PrefixAware,
}

/// A group of identical replicas.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// Name in reports (default: `pool<i>`).
    #[serde(default)]
    pub name: Option<String>,
    /// What the replicas do.
    #[serde(default)]
    pub role: PoolRoleName,
    /// The model this pool serves (default: the scenario's `model`).
    #[serde(default)]
    pub model: Option<String>,
    /// Weight format of this pool (default: the scenario's `dtype`).
    #[serde(default)]
    pub dtype: Option<WeightFormat>,
    /// KV-cache dtype of this pool (default: the scenario's `kv_cache_dtype`).
    #[serde(default)]
    pub kv_cache_dtype: Option<Dtype>,
    /// The prefill/decode split of each replica (role `semi_pd`).
    #[serde(default)]
    pub semi_pd: Option<SemiPdSection>,
    /// Replicas of a `switching` pool that start as prefill replicas (the rest start as
    /// decode replicas; default: half, rounded up).
    #[serde(default)]
    pub initial_prefill_replicas: Option<Count>,
    /// Bundled device name or path to a device profile.
    pub device: String,
    /// Replicas in the pool.
    #[serde(default = "one")]
    pub replicas: Count,
    /// Tensor-parallel degree (devices per replica).
    #[serde(default = "one")]
    pub tensor_parallel: Count,
    /// Pipeline stages per replica.
    #[serde(default = "one")]
    pub pipeline_parallel: Count,
    /// Link joining a replica's devices when there is no `cluster:` (required when a replica
    /// has more than one device).
    #[serde(default)]
    pub interconnect: Option<String>,
    /// Core clock relative to full (DVFS), one of the device profile's `power.dvfs` points or 1.
    #[serde(default = "full_clock")]
    pub clock_ratio: Fraction,
    /// Host (CPU) cost of launching one kernel in the serving framework, µs: an iteration takes
    /// at least kernels × this. Eager PyTorch without CUDA graphs is launch-bound at ~30–40 µs
    /// a kernel; engines that replay CUDA graphs (vLLM decode, TensorRT-LLM) are not (omit).
    #[serde(default)]
    pub host_launch_us: Option<NonNegative>,
    /// Fitted efficiency curves (`servesim calibrate` output): a bundled name or a path.
    #[serde(default)]
    pub calibration: Option<String>,
    /// Fraction of device memory serving may use (vLLM's gpu_memory_utilization; default:
    /// the engine's).
    #[serde(default)]
    pub memory_utilization: Option<Fraction>,
    /// The serving engine: a bundled engine profile (`vllm-v1`, `sglang`, `trtllm`,
    /// `eager-pytorch`) or a path to one (default `vllm-v1`).
    #[serde(default)]
    pub engine: Option<String>,
    /// Memory kept back per device for the runtime (CUDA context, graphs, communication
    /// buffers), GiB.
    #[serde(default = "default_runtime_reserve")]
    pub runtime_reserve_gib: NonNegative,
    /// Batching and queueing.
    #[serde(default)]
    pub scheduler: SchedulerSection,
    /// Reuse of cached prompt prefixes (default: the engine's).
    #[serde(default)]
    pub prefix_cache: Option<PrefixCacheSection>,
    /// Offloading KV to the host: swapped-out sequences and evicted prefix blocks go to host
    /// DRAM (and optionally NVMe) over the device's host link.
    #[serde(default)]
    pub kv_offload: Option<KvOffloadSection>,
    /// Speculative decoding: a draft proposes `k` tokens that the pool's model verifies in
    /// one step.
    #[serde(default)]
    pub speculation: Option<SpeculationSection>,
    /// Where operator times come from: `measured` (default: the bundled measured tables of
    /// this device and engine where they exist, the roofline for the rest), `roofline`, or a
    /// path to a file written by `servesim calibrate --aiconfigurator`.
    #[serde(default)]
    pub operator_data: Option<String>,
}

/// A pool's KV offload to host memory.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KvOffloadSection {
    /// Host DRAM per replica for offloaded KV, GiB (default: the replica's share of its
    /// node's `host.memory_gib`, by accelerators).
    #[serde(default)]
    pub cpu_gib: Option<Positive>,
    /// Local NVMe per replica for prefix blocks evicted from host DRAM, GiB (default: none;
    /// at most the replica's share of its node's `host.nvme.capacity_gib`).
    #[serde(default)]
    pub nvme_gib: Option<Positive>,
    /// Preempt by swapping KV to host DRAM instead of the engine's default.
    #[serde(default)]
    pub swap_preemption: Option<bool>,
}

/// How a speculative pool drafts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeculationMethodName {
    /// A second, smaller model (`draft:`), on the pool's devices or on a device of its own.
    DraftModel,
    /// EAGLE heads: `head_layers` decoder layers run `k` times on the target's devices.
    Eagle,
    /// Multi-token prediction modules (DeepSeek-V3): as EAGLE.
    Mtp,
    /// Medusa heads: one pass of `head_layers` layers and `k` LM heads for all positions.
    Medusa,
    /// N-gram / prompt lookup: drafting costs nothing.
    Ngram,
}

/// The draft model of `method: draft_model`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DraftSection {
    /// Model name or folder (its vocabulary must be the target's).
    pub model: String,
    /// Weight format (default: the model's).
    #[serde(default)]
    pub dtype: Option<WeightFormat>,
    /// A device profile of its own, one per replica (default: the pool's devices).
    #[serde(default)]
    pub device: Option<String>,
    /// Tensor parallelism of the draft: 1, or the pool's when on the pool's devices.
    #[serde(default)]
    pub tensor_parallel: Option<Count>,
    /// The link tokens cross between the draft's device and the target's (with `device`).
    #[serde(default)]
    pub link: Option<String>,
}

/// How drafted tokens are accepted: exactly one of the fields.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptanceSection {
    /// Each drafted token accepted with this probability, given the ones before were.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Per drafted position, the probability it is accepted given the ones before were (at
    /// most `k` values; later positions are never accepted).
    #[serde(default)]
    pub per_position: Option<Vec<f64>>,
    /// Medusa head accuracies from a W&B export such as `medusa_acc.csv`.
    #[serde(default)]
    pub medusa: Option<MedusaAccuracySection>,
    /// Probability of accepting exactly 0, 1, 2, ... drafted tokens.
    #[serde(default)]
    pub accepted_length: Option<Vec<f64>>,
    /// A per-request rate drawn from Beta(alpha, beta).
    #[serde(default)]
    pub beta: Option<BetaSection>,
    /// Rates scale by batch^(−batch_exponent) (default 0: no dependence on batch size).
    #[serde(default)]
    pub batch_exponent: Option<f64>,
}

/// Medusa head accuracies.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MedusaAccuracySection {
    /// The CSV file.
    pub path: String,
    /// The run (`Name` column), e.g. `7b`.
    pub run: String,
}

/// Beta parameters.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BetaSection {
    /// α > 0.
    pub alpha: f64,
    /// β > 0.
    pub beta: f64,
}

/// A pool's speculative decoding.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpeculationSection {
    /// How tokens are drafted.
    pub method: SpeculationMethodName,
    /// Tokens drafted per step (the most, when adaptive).
    pub k: Count,
    /// Adapt each sequence's draft length to its recent acceptance (between 1 and `k`).
    #[serde(default)]
    pub adaptive: bool,
    /// Tree drafts: candidates per position (1: a chain).
    #[serde(default)]
    pub tree_width: Option<Count>,
    /// The draft model (`method: draft_model`).
    #[serde(default)]
    pub draft: Option<DraftSection>,
    /// Decoder layers of EAGLE, MTP or Medusa heads (default 1).
    #[serde(default)]
    pub head_layers: Option<Count>,
    /// Acceptance of drafted tokens.
    pub acceptance: AcceptanceSection,
    /// Draft the next tokens while the current ones are verified (PEARL) instead of after.
    /// Those drafts assume the whole current draft is accepted: after a rejection they are
    /// void, and the sequence's next draft is made serially, after the verdict.
    #[serde(default)]
    pub overlap: bool,
    /// How a batch verifies drafts of different lengths: `ragged` (each its own, default),
    /// `padded` (every sequence to the batch's longest draft, as batched speculation without
    /// ragged kernels does) or `grouped` (padded, batches grouped by draft length).
    #[serde(default)]
    pub batching: SpeculativeBatching,
}

/// How a batch verifies drafts of different lengths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeculativeBatching {
    /// Each sequence verifies its own draft.
    #[default]
    Ragged,
    /// Every sequence verifies as many positions as the batch's longest draft; the padding
    /// is computed and thrown away.
    Padded,
    /// Padded, but each batch groups sequences of similar draft length (EXSpec): the
    /// replica keeps up to twice a batch of running sequences and each batch takes the one
    /// that waited longest with those whose draft lengths are closest to its own.
    Grouped,
}

/// A pool's prefix cache.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixCacheSection {
    /// Whether prompts reuse cached prefixes (default: the engine's).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Most prompt tokens the cache may hold (default: the whole KV pool, which cached
    /// prefixes share with running sequences); at most the KV pool.
    #[serde(default)]
    pub capacity_tokens: Option<Count>,
    /// A what-if bound: every computed prefix stays findable and takes no KV memory.
    #[serde(default)]
    pub unlimited: bool,
    /// Whether a request waits for a prefix another request is computing rather than
    /// computing it again (default: on for the radix cache, off for block hashes).
    #[serde(default)]
    pub share_in_flight: Option<bool>,
}

fn one() -> Count {
    Count::new(1).expect("1 is a count")
}
fn full_clock() -> Fraction {
    Fraction::new(1.0).expect("1 is a fraction")
}
fn default_runtime_reserve() -> NonNegative {
    NonNegative::new(1.0).expect("1.0 is non-negative")
}

/// Batching limits (vLLM names).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSection {
    /// Waiting-queue order.
    #[serde(default)]
    pub policy: Policy,
    /// Most sequences per batch (default: the engine's).
    #[serde(default)]
    pub max_num_seqs: Option<Count>,
    /// Token budget per iteration (default: the engine's; without chunked prefill at least
    /// max_model_len).
    #[serde(default)]
    pub max_num_batched_tokens: Option<Count>,
    /// Split long prompts across iterations (default: the engine's).
    #[serde(default)]
    pub chunked_prefill: Option<bool>,
    /// Tokens per KV block (default: the engine's).
    #[serde(default)]
    pub block_size: Option<Count>,
    /// Longest accepted sequence (default: the model's context window).
    #[serde(default)]
    pub max_model_len: Option<Count>,
}

/// Where requests come from: exactly one of `synthetic` or `trace`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSection {
    /// Generated requests.
    #[serde(default)]
    pub synthetic: Option<SyntheticSection>,
    /// Replayed requests.
    #[serde(default)]
    pub trace: Option<TraceSection>,
}

/// A generated workload.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSection {
    /// Number of requests.
    pub requests: Count,
    /// Arrival process, e.g. `{ poisson: { rate_per_s: 8 } }`.
    #[serde(with = "crate::input::singleton_map")]
    pub arrival: ArrivalSection,
    /// Prompt lengths, e.g. `{ lognormal: { mean: 1024, cv: 1 } }`.
    #[serde(with = "crate::input::singleton_map")]
    pub input_tokens: LengthSection,
    /// Output lengths.
    #[serde(with = "crate::input::singleton_map")]
    pub output_tokens: LengthSection,
}

/// Arrival processes, written as a one-key map: `{ gamma: { rate_per_s: 8, cv: 2 } }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ArrivalSection {
    /// Exponential inter-arrival times.
    Poisson {
        /// Mean arrivals per second.
        rate_per_s: Positive,
    },
    /// Gamma inter-arrival times with coefficient of variation `cv` (1 = Poisson, > 1 bursty).
    Gamma {
        /// Mean arrivals per second.
        rate_per_s: Positive,
        /// Coefficient of variation of the inter-arrival time.
        cv: Positive,
    },
    /// Evenly spaced arrivals.
    Constant {
        /// Arrivals per second.
        rate_per_s: Positive,
    },
    /// Poisson arrivals during `on_s`-long bursts separated by `off_s` of silence.
    OnOff {
        /// Mean arrivals per second while on.
        rate_per_s: Positive,
        /// Length of a burst, s.
        on_s: Positive,
        /// Length of a pause, s.
        off_s: Positive,
    },
}

/// Token-length distributions, written as a one-key map (`{ fixed: { value: 512 } }`); samples are rounded up to whole tokens and clamped to
/// `[min, max]` (min defaults to 1).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LengthSection {
    /// Always `value`.
    Fixed {
        /// The length.
        value: Count,
    },
    /// Uniform integers in `[min, max]`.
    Uniform {
        /// Smallest.
        min: Count,
        /// Largest.
        max: Count,
    },
    /// Log-normal with the given mean and coefficient of variation.
    Lognormal {
        /// Mean length.
        mean: Positive,
        /// Coefficient of variation.
        cv: Positive,
        /// Clamp below.
        #[serde(default)]
        min: Option<Count>,
        /// Clamp above.
        #[serde(default)]
        max: Option<Count>,
    },
    /// Exponential with the given mean, rounded up (a geometric distribution).
    Exponential {
        /// Mean length.
        mean: Positive,
        /// Clamp above.
        #[serde(default)]
        max: Option<Count>,
    },
    /// Drawn uniformly from listed values or from a column of a trace.
    Empirical {
        /// Values to draw from.
        #[serde(default)]
        values: Option<Vec<Count>>,
        /// A trace to draw from instead.
        #[serde(default)]
        trace: Option<TraceSection>,
        /// Which column of the trace: `input` or `output`.
        #[serde(default)]
        field: Option<TraceField>,
    },
}

/// Which length of a trace row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceField {
    /// Prompt tokens.
    Input,
    /// Output tokens.
    Output,
}

/// A trace to replay.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSection {
    /// File format.
    pub format: TraceFormat,
    /// Path, relative to the scenario file.
    pub path: String,
    /// Multiplier on inter-arrival times: 0.5 replays twice as fast, 2 half as fast.
    #[serde(default = "unit_scale")]
    pub time_scale: Positive,
    /// Replay only the first `limit` requests.
    #[serde(default)]
    pub limit: Option<Count>,
}

fn unit_scale() -> Positive {
    Positive::new(1.0).expect("positive")
}

/// Supported trace formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormat {
    /// Azure LLM inference trace: `TIMESTAMP,ContextTokens,GeneratedTokens`.
    Azure,
    /// Mooncake JSONL: `timestamp` (ms), `input_length`, `output_length`, `hash_ids`.
    Mooncake,
    /// Plain CSV: `arrival_s,input_tokens,output_tokens[,priority]`.
    Csv,
}

/// Service-level objectives; a request meets the SLO when every given bound holds.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloSection {
    /// Bound on time to first token, s.
    #[serde(default)]
    pub ttft_s: Option<Positive>,
    /// Bound on mean time per output token, s.
    #[serde(default)]
    pub tpot_s: Option<Positive>,
    /// Bound on end-to-end latency, s.
    #[serde(default)]
    pub e2e_s: Option<Positive>,
}

/// Output options.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Write every inter-token gap of every request to `token_gaps.csv`.
    #[serde(default)]
    pub token_gaps: bool,
}
