//! Pools resolved and checked one by one (device, model, parallel layout, calibration,
//! scheduler limits, memory, engine, prefix cache, speculation); the checks across pools are
//! in `deployment`.

use super::memory::{MemoryPlan, MemoryRequest};
use super::placement::ReplicaPlacement;
use super::schema::{PoolRoleName, PoolSection, ScenarioFile};
use crate::calibration::aiconfigurator::MeasuredTimes;
use crate::calibration::Calibration;
use crate::engine_profiles::{EngineProfile, PrefixCacheKind};
use crate::error::Result;
use crate::hardware::{Catalog, DeviceProfile, Dtype, LinkProfile};
use crate::input::YamlSource;
use crate::model::{ModelSpec, Parallelism, Precision, WeightFormat};
use crate::serving::{Role, SchedulerConfig};
use std::sync::Arc;

/// What a pool's replicas do, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRole {
    /// Prefill and decode on the same devices.
    Colocated,
    /// Prompts only; KV moves to a decode pool.
    Prefill,
    /// Decoding of prompts computed elsewhere.
    Decode,
    /// Each replica split between a prefill and a decode worker sharing its KV cache.
    SemiPd,
    /// Replicas switching between prefill and decode roles.
    Switching,
}

impl PoolRole {
    /// Whether the pool's replicas (may) hand finished prompts to decode replicas.
    pub fn hands_off(self) -> bool {
        matches!(self, PoolRole::Prefill | PoolRole::Switching)
    }

    /// Whether new requests may be routed to the pool.
    pub fn takes_new_requests(self) -> bool {
        self != PoolRole::Decode
    }

    /// Whether finished prompts may be routed to the pool.
    pub fn decodes_handoffs(self) -> bool {
        matches!(self, PoolRole::Decode | PoolRole::Switching)
    }

    /// Name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            PoolRole::Colocated => "colocated",
            PoolRole::Prefill => "prefill",
            PoolRole::Decode => "decode",
            PoolRole::SemiPd => "semi_pd",
            PoolRole::Switching => "switching",
        }
    }
}

/// A semi-PD split, resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemiPdPlan {
    /// Share of the compute the prefill worker owns.
    pub prefill_compute_share: f64,
    /// Run-time adjustment, if any.
    pub adapt: Option<ShareAdaptPlan>,
}

/// Run-time adjustment of a semi-PD split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareAdaptPlan {
    /// Seconds between adjustments.
    pub interval_s: f64,
    /// Change per adjustment.
    pub step: f64,
    /// Lowest prefill share.
    pub min_share: f64,
    /// Highest prefill share.
    pub max_share: f64,
}

/// A pool of identical replicas, resolved and checked.
#[derive(Debug, Clone)]
pub struct PoolPlan {
    /// Name in reports.
    pub name: String,
    /// What the replicas do.
    pub role: PoolRole,
    /// For a switching pool: replicas that start as prefill replicas.
    pub initial_prefill_replicas: u64,
    /// The model served.
    pub model: Arc<ModelSpec>,
    /// Weight format, what the GEMMs and attention compute in, and the KV-cache dtype.
    pub precision: Precision,
    /// Device profile.
    pub device: DeviceProfile,
    /// Replicas.
    pub replicas: u64,
    /// How each replica splits the model over its devices.
    pub parallelism: Parallelism,
    /// Link inside a replica.
    pub interconnect: Option<LinkProfile>,
    /// Batching limits.
    pub scheduler: SchedulerConfig,
    /// Memory split per device and KV capacity.
    pub memory: MemoryPlan,
    /// Fitted efficiency curves, when the pool names a calibration.
    pub calibration: Option<Arc<Calibration>>,
    /// The serving engine.
    pub engine: Arc<EngineProfile>,
    /// The prefix cache, when prompts reuse cached prefixes.
    pub prefix_cache: Option<PrefixCachePlan>,
    /// Measured operator times that take precedence over the roofline, if any.
    pub measured: Option<Arc<MeasuredTimes>>,
    /// Where operator times come from, in words (for reports).
    pub operator_data: String,
    /// Host launch cost per kernel outside graphs, s, when the pool overrides its engine's.
    pub host_launch_s: Option<f64>,
    /// The semi-PD split (role `semi_pd`).
    pub semi_pd: Option<SemiPdPlan>,
    /// Speculative decoding, when the pool speculates.
    pub speculation: Option<super::speculation::SpeculationPlan>,
    /// Where each replica runs and what its communication costs.
    pub placements: Vec<ReplicaPlacement>,
}

impl PoolPlan {
    /// The role replica `replica` of the pool starts in.
    pub fn initial_role(&self, replica: u64) -> Role {
        match self.role {
            PoolRole::Colocated | PoolRole::SemiPd => Role::Colocated,
            PoolRole::Prefill => Role::Prefill,
            PoolRole::Decode => Role::Decode,
            PoolRole::Switching if replica < self.initial_prefill_replicas => Role::Prefill,
            PoolRole::Switching => Role::Decode,
        }
    }

    /// Devices of all its replicas.
    pub fn devices(&self) -> u64 {
        self.replicas * self.parallelism.devices()
    }
}

/// A pool's prefix cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixCachePlan {
    /// Most KV blocks cached prefixes may hold, or None for the unlimited what-if.
    pub capacity_blocks: Option<u64>,
    /// Whether requests wait for prefixes being computed.
    pub share_in_flight: bool,
}

/// The engine a pool runs when it names none.
pub const DEFAULT_ENGINE: &str = "vllm-v1";

/// The scenario's defaults a pool may override.
pub(super) struct PoolDefaults<'a> {
    pub model: &'a Arc<ModelSpec>,
    pub weights: Option<WeightFormat>,
    pub kv_dtype: Option<Dtype>,
}

/// The weight format given, else the model's published dtype (fp32 checkpoints are served at
/// 16 bits).
pub(super) fn weight_format(model: &ModelSpec, weights: Option<WeightFormat>) -> WeightFormat {
    weights.unwrap_or(match model.published_dtype {
        Some(Dtype::Fp16) => WeightFormat::Fp16,
        Some(Dtype::Fp8) => WeightFormat::Fp8,
        _ => WeightFormat::Bf16,
    })
}

/// The 16-bit type a pool computes in: fp16 for fp16 weights or a device without bf16.
fn half_dtype(weights: WeightFormat, device: &DeviceProfile) -> Dtype {
    if weights == WeightFormat::Fp16 || (!device.runs(Dtype::Bf16) && device.runs(Dtype::Fp16)) {
        Dtype::Fp16
    } else {
        Dtype::Bf16
    }
}

/// The precision of `weights` with a `kv` cache (default: the 16-bit compute type) on
/// `device`; an error at `field` when the device cannot run what that needs.
pub(super) fn precision(
    weights: WeightFormat,
    kv: Option<Dtype>,
    device: &DeviceProfile,
    source: &YamlSource,
    field: &str,
) -> Result<Precision> {
    let half = half_dtype(weights, device);
    let kv = kv.unwrap_or(half);
    let serves_kv = [Dtype::Fp32, Dtype::Bf16, Dtype::Fp16, Dtype::Fp8, Dtype::Int8, Dtype::Fp4];
    if !serves_kv.contains(&kv) {
        return Err(source.error(
            &format!("{field}kv_cache_dtype"),
            format!(
                "kv_cache_dtype {kv} is not a KV-cache format serving engines use; use bf16, fp16, fp8, int8 or fp4"
            ),
        ));
    }
    let precision = Precision::resolve(weights, half, kv, &|d| device.runs(d));
    for dtype in precision.required() {
        if !device.runs(dtype) {
            return Err(source.error(
                &format!("{field}dtype"),
                format!(
                    "{} cannot run {weights} weights: they compute in {dtype}, which the device profile gives no peak for; it runs {} (choose a weight format those cover, e.g. {})",
                    device.name,
                    device.dtypes(),
                    if device.runs(Dtype::Fp8) { "fp8 or int4_awq" } else { "bf16 or int4_awq" }
                ),
            ));
        }
    }
    Ok(precision)
}

/// Resolves and checks pool `index` of `file`.
pub(super) fn resolve_pool(
    index: usize,
    pool: &PoolSection,
    file: &ScenarioFile,
    source: &YamlSource,
    catalog: &Catalog,
    defaults: &PoolDefaults,
) -> Result<PoolPlan> {
    let field = format!("deployment.pools[{index}]");
    let model = match &pool.model {
        Some(reference) => Arc::new(catalog.model(reference, source, &format!("{field}.model"))?),
        None => defaults.model.clone(),
    };
    let weights = weight_format(&model, pool.dtype.or(defaults.weights));
    let device = catalog.device(&pool.device, source, &format!("{field}.device"))?;
    let device = device.at_clock(pool.clock_ratio.get()).ok_or_else(|| {
        source.error(
            &format!("{field}.clock_ratio"),
            format!(
                "{} has no DVFS point at clock ratio {}; it offers: 1{}",
                device.name,
                pool.clock_ratio,
                device.power.dvfs.iter().map(|p| format!(", {}", p.clock_ratio)).collect::<String>()
            ),
        )
    })?;
    // A pool's own dtype is its error; an inherited one is the scenario's.
    let dtype_field =
        if pool.dtype.is_some() || pool.kv_cache_dtype.is_some() { format!("{field}.") } else { String::new() };
    let precision = precision(weights, pool.kv_cache_dtype.or(defaults.kv_dtype), &device, source, &dtype_field)?;
    let parallelism = Parallelism::new(pool.tensor_parallel.get(), pool.pipeline_parallel.get());
    parallelism.check(&model).map_err(|(what, message)| source.error(&format!("{field}.{what}"), message))?;
    let interconnect = match &pool.interconnect {
        Some(link) => Some(catalog.link(link, source, &format!("{field}.interconnect"))?),
        None if file.cluster.is_none() && parallelism.devices() > 1 => {
            return Err(source.error(
                &format!("{field}.interconnect"),
                format!(
                    "tensor_parallel {} × pipeline_parallel {} needs a link between the devices: add `interconnect:` (bundled links: {}) or describe the machines under `cluster:`",
                    parallelism.tensor,
                    parallelism.pipeline,
                    crate::input::known_list(catalog.links.keys().map(String::as_str))
                ),
            ));
        }
        None => None,
    };
    let calibration = match &pool.calibration {
        Some(reference) => {
            let calibration = catalog.calibration(reference, source, &format!("{field}.calibration"))?;
            if calibration.device != device.name {
                return Err(source.error(
                    &format!("{field}.calibration"),
                    format!(
                        "the calibration is for device {:?}, but the pool runs on {:?}",
                        calibration.device, device.name
                    ),
                ));
            }
            Some(Arc::new(calibration))
        }
        None => None,
    };
    let max_model_len = pool.scheduler.max_model_len.map_or(model.max_context_tokens, |c| c.get());
    if max_model_len > model.max_context_tokens {
        // vLLM refuses this too: positions past the trained context are undefined.
        return Err(source.error(
            &format!("{field}.scheduler.max_model_len"),
            format!(
                "max_model_len {max_model_len} exceeds the context window of {} ({} tokens, its max_position_embeddings)",
                model.name, model.max_context_tokens
            ),
        ));
    }
    if let Some(host_launch_us) = pool.host_launch_us {
        source.check_range(
            &format!("{field}.host_launch_us"),
            host_launch_us.get(),
            crate::hardware::OVERHEAD_US,
            " µs",
        )?;
    }
    let engine_field = format!("{field}.engine");
    let engine = Arc::new(catalog.engine(pool.engine.as_deref().unwrap_or(DEFAULT_ENGINE), source, &engine_field)?);
    let defaults = &engine.defaults;
    let chunked_prefill = pool.scheduler.chunked_prefill.unwrap_or(defaults.chunked_prefill);
    let max_num_batched_tokens = match pool.scheduler.max_num_batched_tokens {
        Some(tokens) => tokens.get(),
        // Without chunking a whole prompt must fit one step: the engine's budget grows to the
        // longest sequence.
        None if !chunked_prefill => defaults.max_num_batched_tokens.get().max(max_model_len),
        None => defaults.max_num_batched_tokens.get(),
    };
    if !chunked_prefill && max_num_batched_tokens < max_model_len {
        // As in vLLM: without chunking, a whole (re)computed sequence must fit in one
        // iteration, or a preempted request could never be scheduled again.
        return Err(source.error(
            &format!("{field}.scheduler.chunked_prefill"),
            format!(
                "with chunked_prefill off, max_num_batched_tokens ({max_num_batched_tokens}) must be at least max_model_len ({max_model_len}); raise it, lower max_model_len, or turn chunked_prefill on"
            ),
        ));
    }
    let knob_limit = crate::engine_profiles::MAX_KNOB;
    for (knob, value) in [
        ("max_num_seqs", pool.scheduler.max_num_seqs),
        ("max_num_batched_tokens", pool.scheduler.max_num_batched_tokens),
        ("block_size", pool.scheduler.block_size),
    ] {
        if let Some(value) = value.filter(|v| v.get() > knob_limit) {
            return Err(source.error(
                &format!("{field}.scheduler.{knob}"),
                format!("{value} is out of range for {}: expected at most {knob_limit}", engine.name),
            ));
        }
    }
    let scheduler = SchedulerConfig {
        max_num_seqs: pool.scheduler.max_num_seqs.unwrap_or(defaults.max_num_seqs).get(),
        max_num_batched_tokens,
        chunked_prefill,
        max_model_len,
        policy: pool.scheduler.policy,
        reservation: engine.scheduler.kv_reservation,
        group_by_draft_length: pool
            .speculation
            .as_ref()
            .is_some_and(|s| s.batching == super::schema::SpeculativeBatching::Grouped),
    };
    let memory = MemoryPlan::new(&MemoryRequest {
        model: &model,
        device: &device,
        weights,
        kv_dtype: precision.kv,
        parallelism,
        memory_utilization: pool.memory_utilization.unwrap_or(defaults.memory_utilization).get(),
        runtime_reserve_gib: pool.runtime_reserve_gib.get(),
        scheduler: &scheduler,
        block_size_tokens: pool.scheduler.block_size.unwrap_or(defaults.block_size).get(),
    })
    .map_err(|e| source.error(&format!("{field}.{}", e.field), e.message))?;
    let mut memory = memory;
    let speculation = match &pool.speculation {
        Some(section) => Some(super::speculation::speculation_plan(
            section,
            &model,
            precision,
            parallelism,
            &device,
            &mut memory,
            scheduler.max_num_seqs * scheduler.max_model_len,
            catalog,
            source,
            &format!("{field}.speculation"),
        )?),
        None => None,
    };
    let prefix_cache = prefix_cache_plan(pool, &engine, &memory, &field, source)?;
    let (measured, operator_data) = operator_data(pool, &engine, &device, &field, source)?;
    let role = match pool.role {
        PoolRoleName::Colocated => PoolRole::Colocated,
        PoolRoleName::Prefill => PoolRole::Prefill,
        PoolRoleName::Decode => PoolRole::Decode,
        PoolRoleName::SemiPd => PoolRole::SemiPd,
        PoolRoleName::Switching => PoolRole::Switching,
    };
    let semi_pd = match (&pool.semi_pd, role) {
        (Some(split), PoolRole::SemiPd) => {
            let share = split.prefill_compute_share.get();
            if share <= 0.0 || share >= 1.0 {
                return Err(source.error(
                    &format!("{field}.semi_pd.prefill_compute_share"),
                    format!("{share} leaves a worker no compute: give a share strictly between 0 and 1"),
                ));
            }
            let adapt = match &split.adapt {
                Some(adapt) => {
                    let (min, max) = (adapt.min_share.get(), adapt.max_share.get());
                    if !(0.0 < min && min <= share && share <= max && max < 1.0) {
                        return Err(source.error(
                            &format!("{field}.semi_pd.adapt"),
                            format!("need 0 < min_share ≤ prefill_compute_share ≤ max_share < 1; found {min} ≤ {share} ≤ {max}"),
                        ));
                    }
                    if file.slo.ttft_s.is_none() || file.slo.tpot_s.is_none() {
                        return Err(source.error(
                            &format!("{field}.semi_pd.adapt"),
                            "adapting the split steers toward the TTFT and TPOT targets: give both `slo.ttft_s` and `slo.tpot_s`",
                        ));
                    }
                    Some(ShareAdaptPlan {
                        interval_s: adapt.interval_s.get(),
                        step: adapt.step.get(),
                        min_share: min,
                        max_share: max,
                    })
                }
                None => None,
            };
            Some(SemiPdPlan { prefill_compute_share: share, adapt })
        }
        (None, PoolRole::SemiPd) => {
            return Err(source.error(
                &format!("{field}.semi_pd"),
                "a semi_pd pool needs `semi_pd: { prefill_compute_share: 0.5 }` (the prefill worker's share of the compute)",
            ))
        }
        (Some(_), _) => {
            return Err(source.error(&format!("{field}.semi_pd"), "`semi_pd` applies only to pools with `role: semi_pd`"))
        }
        (None, _) => None,
    };
    let replicas = pool.replicas.get();
    let initial_prefill_replicas = match (role, pool.initial_prefill_replicas) {
        (PoolRole::Switching, Some(count)) => {
            if count.get() >= replicas {
                return Err(source.error(
                    &format!("{field}.initial_prefill_replicas"),
                    format!("{count} of {replicas} replicas would leave none to start as decode replicas"),
                ));
            }
            count.get()
        }
        (PoolRole::Switching, None) => {
            if replicas < 2 {
                return Err(source.error(
                    &format!("{field}.replicas"),
                    "a switching pool needs at least 2 replicas: one of each role",
                ));
            }
            replicas.div_ceil(2).min(replicas - 1)
        }
        (_, Some(_)) => {
            return Err(source.error(
                &format!("{field}.initial_prefill_replicas"),
                "`initial_prefill_replicas` applies only to pools with `role: switching`",
            ))
        }
        (_, None) => 0,
    };
    Ok(PoolPlan {
        name: pool.name.clone().unwrap_or_else(|| format!("pool{index}")),
        role,
        initial_prefill_replicas,
        model,
        precision,
        device,
        replicas,
        parallelism,
        interconnect,
        scheduler,
        memory,
        calibration,
        prefix_cache,
        measured,
        operator_data,
        engine,
        host_launch_s: pool.host_launch_us.map(|v| v.get() * 1e-6),
        semi_pd,
        speculation,
        placements: Vec::new(),
    })
}

/// The measured operator times `pool` uses, and a description of where its operator times
/// come from.
fn operator_data(
    pool: &PoolSection,
    engine: &EngineProfile,
    device: &DeviceProfile,
    field: &str,
    source: &YamlSource,
) -> Result<(Option<Arc<MeasuredTimes>>, String)> {
    let roofline = |why: &str| format!("roofline ({why})");
    let field = format!("{field}.operator_data");
    let times: Arc<MeasuredTimes> = match pool.operator_data.as_deref().unwrap_or("measured") {
        "roofline" => return Ok((None, roofline("operator_data: roofline"))),
        "measured" => {
            let Some(framework) = &engine.measured_framework else {
                return Ok((None, roofline(&format!("no measured tables for engine {}", engine.name))));
            };
            match crate::hardware::bundled_measured_for_framework(&device.name, framework)? {
                Some(times) => times,
                None => {
                    return Ok((
                        None,
                        roofline(&format!("no bundled measured tables for {} with {framework}", device.name)),
                    ))
                }
            }
        }
        path => {
            let choices = "operator_data is `measured`, `roofline` or the path of a file written by `servesim calibrate --aiconfigurator`";
            if path.trim().is_empty() {
                return Err(source.error(&field, format!("empty: {choices}")));
            }
            let resolved = source.resolve(path);
            let times = crate::hardware::measured_file(&resolved).map_err(|e| match e {
                crate::error::Error::Io { .. } => source.error(&field, format!("{e} ({choices})")),
                other => other,
            })?;
            let measured_on = &times.provenance().device;
            if *measured_on != device.name {
                return Err(source.error(
                    &field,
                    format!(
                        "{path} holds operator times measured on {measured_on:?} (AIConfigurator system {:?}), but the pool runs on {:?}; give tables of that device, or `roofline`",
                        times.provenance().system,
                        device.name
                    ),
                ));
            }
            Arc::new(times)
        }
    };
    if pool.clock_ratio.get() != 1.0 {
        // The tables were measured at full clock; DVFS is the roofline's to price.
        return Ok((None, roofline("measured tables are at full clock; clock_ratio is not 1")));
    }
    let p = times.provenance();
    let description = format!(
        "measured where covered ({} {} {} {}), roofline for the rest",
        p.source, p.system, p.framework, p.framework_version
    );
    Ok((Some(times), description))
}

/// The prefix cache of `pool` (its section over its engine's default), checked against the
/// KV pool it shares.
fn prefix_cache_plan(
    pool: &PoolSection,
    engine: &EngineProfile,
    memory: &MemoryPlan,
    field: &str,
    source: &YamlSource,
) -> Result<Option<PrefixCachePlan>> {
    let section = pool.prefix_cache.clone().unwrap_or_default();
    let kind = engine.scheduler.prefix_cache;
    let enabled = section.enabled.unwrap_or(kind != PrefixCacheKind::None);
    let field = format!("{field}.prefix_cache");
    if !enabled {
        if section.capacity_tokens.is_some() || section.unlimited {
            return Err(source.error(
                &format!("{field}.enabled"),
                "the prefix cache is off (enabled: false, or the engine keeps none) yet a capacity is given: turn it on with `enabled: true` or drop the capacity",
            ));
        }
        return Ok(None);
    }
    let pool_tokens = memory.kv_capacity_blocks * memory.block_size_tokens;
    let capacity_blocks = match (section.capacity_tokens, section.unlimited) {
        (Some(_), true) => {
            return Err(source
                .error(&format!("{field}.unlimited"), "give either `capacity_tokens` or `unlimited: true`, not both"))
        }
        (Some(tokens), false) => {
            if tokens.get() > pool_tokens {
                return Err(source.error(
                    &format!("{field}.capacity_tokens"),
                    format!(
                        "a prefix cache of {tokens} tokens is larger than the KV pool it lives in ({pool_tokens} tokens: {} blocks of {}); lower it, or use `unlimited: true` for the what-if bound",
                        memory.kv_capacity_blocks, memory.block_size_tokens
                    ),
                ));
            }
            if tokens.get() < memory.block_size_tokens {
                return Err(source.error(
                    &format!("{field}.capacity_tokens"),
                    format!(
                        "a prefix cache of {tokens} tokens holds not one KV block ({} tokens); give at least {}, or turn the cache off with `enabled: false`",
                        memory.block_size_tokens, memory.block_size_tokens
                    ),
                ));
            }
            Some(tokens.get() / memory.block_size_tokens)
        }
        (None, false) => Some(memory.kv_capacity_blocks),
        (None, true) => None,
    };
    Ok(Some(PrefixCachePlan {
        capacity_blocks,
        share_in_flight: section.share_in_flight.unwrap_or(kind == PrefixCacheKind::Radix),
    }))
}
