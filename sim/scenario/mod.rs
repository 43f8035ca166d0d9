//! Scenarios: the YAML file that ties model, hardware, deployment, workload and SLOs together,
//! validated once into a [`Scenario`] whose parts are resolved and checked.
//!
//! After [`Scenario::load`] succeeds the rest of the program can trust every number: devices
//! and models exist, tensor-parallel degrees divide the heads, the model fits in memory with
//! room for KV, and the workload is non-empty. This module does not run anything.

mod memory;
mod placement;
pub mod schema;

pub use memory::{DoesNotFit, MemoryPlan, MemoryRequest};
pub use placement::{ParallelComm, ReplicaPlacement};

use crate::calibration::Calibration;
use crate::engine::SimTime;
use crate::error::Result;
use crate::hardware::{bundled_scenario, Catalog, DeviceProfile, Dtype, LinkProfile};
use crate::input::YamlSource;
use crate::metrics::Slo;
use crate::model::{ModelSpec, Parallelism};
use crate::serving::{RequestSpec, SchedulerConfig};
use crate::topology::Fabric;
use schema::{RouterKind, ScenarioFile};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Command-line settings that take precedence over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `seed`.
    pub seed: Option<u64>,
}

/// A pool of identical replicas, resolved and checked.
#[derive(Debug, Clone)]
pub struct PoolPlan {
    /// Name in reports.
    pub name: String,
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
    /// Host launch cost per kernel of the serving framework, s (0: not launch-bound).
    pub host_launch_s: f64,
    /// Where each replica runs and what its communication costs.
    pub placements: Vec<ReplicaPlacement>,
}

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name in reports.
    pub name: String,
    /// The file as read (echoed into outputs).
    pub file: ScenarioFile,
    /// Where it came from.
    pub origin: String,
    /// Seed of every random stream.
    pub seed: u64,
    /// The model.
    pub model: ModelSpec,
    /// Weight dtype.
    pub weight_dtype: Dtype,
    /// KV-cache dtype.
    pub kv_dtype: Dtype,
    /// Router policy.
    pub router: RouterKind,
    /// The devices and links everything runs on.
    pub fabric: Fabric,
    /// Replica pools.
    pub pools: Vec<PoolPlan>,
    /// Requests in arrival order.
    pub requests: Vec<RequestSpec>,
    /// SLOs.
    pub slo: Slo,
    /// Whether to keep every gap for token_gaps.csv.
    pub keep_token_gaps: bool,
    /// Whether to record every batch (for plots and traces).
    pub record_timeline: bool,
    /// Simulation horizon.
    pub max_time: Option<SimTime>,
    /// Things the user should know before trusting the run (printed by `run` and
    /// `validate`).
    pub warnings: Vec<String>,
}

/// The text of a bundled scenario; relative paths in it resolve against the project's
/// `scenarios/` folder (present in a checkout).
pub fn bundled_source(name: &str) -> Option<YamlSource> {
    let text = bundled_scenario(name)?;
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    Some(YamlSource::from_text(format!("<bundled scenarios/{name}.yaml>"), base, text.to_string()))
}

/// The scenario `servesim run` uses when given none.
pub const DEFAULT_SCENARIO: &str = "quickstart";

impl Scenario {
    /// Loads and validates the scenario file at `path`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario> {
        let source = YamlSource::from_file(path)?;
        Self::from_source(&source, overrides)
    }

    /// Loads a bundled scenario by name (relative paths resolve against the project's
    /// `scenarios/` folder when it exists, e.g. in a checkout).
    pub fn bundled(name: &str, overrides: &Overrides) -> Option<Result<Scenario>> {
        Some(Self::from_source(&bundled_source(name)?, overrides))
    }

    /// Validates a parsed source.
    pub fn from_source(source: &YamlSource, overrides: &Overrides) -> Result<Scenario> {
        let file: ScenarioFile = source.parse()?;
        Self::from_parsed(file, source, overrides, None, &Catalog::bundled()?)
    }

    /// Validates an already-parsed file (as plan search builds them). `source` gives error
    /// locations and the folder relative paths resolve against; `requests`, when given,
    /// replaces loading the workload again.
    pub fn from_parsed(
        file: ScenarioFile,
        source: &YamlSource,
        overrides: &Overrides,
        requests: Option<Vec<RequestSpec>>,
        catalog: &Catalog,
    ) -> Result<Scenario> {
        if let Some(name) = &file.name {
            check_plain_name(name).map_err(|message| source.error("name", message))?;
        }
        let model = catalog.model(&file.model, source, "model")?;
        let weight_dtype = file.dtype.or(model.published_dtype).unwrap_or(Dtype::Bf16);
        let weight_dtype = if weight_dtype == Dtype::Fp32 { Dtype::Bf16 } else { weight_dtype };
        let kv_dtype = file.kv_cache_dtype.unwrap_or(match weight_dtype {
            Dtype::Fp16 => Dtype::Fp16,
            _ => Dtype::Bf16,
        });
        if file.deployment.pools.is_empty() {
            return Err(source.error("deployment.pools", "list at least one pool of replicas"));
        }
        let mut pools = Vec::new();
        for (index, pool) in file.deployment.pools.iter().enumerate() {
            let field = format!("deployment.pools[{index}]");
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
            let parallelism = Parallelism::new(pool.tensor_parallel.get(), pool.pipeline_parallel.get());
            parallelism.check(&model).map_err(|(what, message)| source.error(&format!("{field}.{what}"), message))?;
            let (tensor_parallel, pipeline_parallel) = (parallelism.tensor, parallelism.pipeline);
            let interconnect = match &pool.interconnect {
                Some(link) => Some(catalog.link(link, source, &format!("{field}.interconnect"))?),
                None if file.cluster.is_none() && parallelism.devices() > 1 => {
                    return Err(source.error(
                        &format!("{field}.interconnect"),
                        format!(
                            "tensor_parallel {tensor_parallel} × pipeline_parallel {pipeline_parallel} needs a link between the devices: add `interconnect:` (bundled links: {}) or describe the machines under `cluster:`",
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
            if !pool.scheduler.chunked_prefill && pool.scheduler.max_num_batched_tokens.get() < max_model_len {
                // As in vLLM: without chunking, a whole (re)computed sequence must fit in one
                // iteration, or a preempted request could never be scheduled again.
                return Err(source.error(
                    &format!("{field}.scheduler.chunked_prefill"),
                    format!(
                        "with chunked_prefill off, max_num_batched_tokens ({}) must be at least max_model_len ({max_model_len}); raise it, lower max_model_len, or turn chunked_prefill on",
                        pool.scheduler.max_num_batched_tokens
                    ),
                ));
            }
            let scheduler = SchedulerConfig {
                max_num_seqs: pool.scheduler.max_num_seqs.get(),
                max_num_batched_tokens: pool.scheduler.max_num_batched_tokens.get(),
                chunked_prefill: pool.scheduler.chunked_prefill,
                max_model_len,
                policy: pool.scheduler.policy,
            };
            let memory = MemoryPlan::new(&MemoryRequest {
                model: &model,
                device: &device,
                weight_dtype,
                kv_dtype,
                parallelism,
                memory_utilization: pool.memory_utilization.get(),
                runtime_reserve_gib: pool.runtime_reserve_gib.get(),
                scheduler: &scheduler,
                block_size_tokens: pool.scheduler.block_size.get(),
            })
            .map_err(|e| source.error(&format!("{field}.{}", e.field), e.message))?;
            pools.push(PoolPlan {
                name: pool.name.clone().unwrap_or_else(|| format!("pool{index}")),
                device,
                replicas: pool.replicas.get(),
                parallelism,
                interconnect,
                scheduler,
                memory,
                calibration,
                host_launch_s: pool.host_launch_us.map_or(0.0, |v| v.get() * 1e-6),
                placements: Vec::new(),
            });
        }
        let demands: Vec<placement::PoolDemand> = pools
            .iter()
            .map(|p| placement::PoolDemand {
                device: &p.device,
                replicas: p.replicas,
                tensor_parallel: p.parallelism.tensor,
                pipeline_parallel: p.parallelism.pipeline,
                interconnect: p.interconnect.as_ref(),
                calibration: p.calibration.as_deref(),
            })
            .collect();
        let fabric = placement::build_fabric(&file, source, catalog, &demands)?;
        let placements = placement::place(&fabric, source, &demands)?;
        for (pool, placements) in pools.iter_mut().zip(placements) {
            pool.placements = placements;
        }
        let seed = overrides.seed.unwrap_or(file.seed);
        let (requests, warnings) = match requests {
            Some(requests) => (requests, Vec::new()),
            None => {
                let workload = crate::workload::load(&file.workload, source, seed)?;
                (workload.requests, workload.warnings)
            }
        };
        let name = match &file.name {
            Some(name) => name.clone(),
            None => plain_name_from(
                &Path::new(&source.name).file_stem().map_or("scenario".into(), |s| s.to_string_lossy().into_owned()),
            ),
        };
        Ok(Scenario {
            name,
            origin: source.name.clone(),
            seed,
            model,
            weight_dtype,
            kv_dtype,
            router: file.deployment.router,
            fabric,
            pools,
            requests,
            slo: Slo {
                ttft_s: file.slo.ttft_s.map(|v| v.get()),
                tpot_s: file.slo.tpot_s.map(|v| v.get()),
                e2e_s: file.slo.e2e_s.map(|v| v.get()),
            },
            keep_token_gaps: file.output.token_gaps,
            record_timeline: false,
            max_time: file.max_time_s.map(|t| SimTime::from_secs_f64(t.get())),
            warnings,
            file,
        })
    }
}

/// Why `name` cannot name an output folder, if it cannot: names become `reports/<name>`, so
/// they must be one plain path component.
pub fn check_plain_name(name: &str) -> std::result::Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(['.', '-'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a plain name: use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.' or '-' (the name becomes the output folder reports/<name>; choose another folder with --out)"
        ))
    }
}

/// `text` made into a plain name (other characters become '-').
pub fn plain_name_from(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .take(128)
        .collect();
    while name.starts_with(['.', '-']) {
        name.remove(0);
    }
    if name.is_empty() {
        "scenario".into()
    } else {
        name
    }
}

/// Requests no pool of a scenario can serve.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unservable {
    /// How many.
    pub count: u64,
    /// Why the first of them cannot be served, in words.
    pub example: Option<String>,
}

impl Scenario {
    /// The requests that every pool would reject at arrival: longer than its context window,
    /// or needing more KV blocks than a replica has.
    pub fn unservable_requests(&self) -> Unservable {
        let mut unservable = Unservable::default();
        for request in &self.requests {
            let tokens = u64::from(request.input_tokens) + u64::from(request.output_tokens);
            let why_not = |pool: &PoolPlan| {
                let blocks = tokens.div_ceil(pool.memory.block_size_tokens.max(1));
                if tokens > pool.scheduler.max_model_len {
                    Some(format!(
                        "request {} needs {tokens} tokens but pool {} accepts at most {} (max_model_len)",
                        request.id, pool.name, pool.scheduler.max_model_len
                    ))
                } else if blocks > pool.memory.kv_capacity_blocks {
                    Some(format!(
                        "request {} needs {blocks} KV blocks but a replica of pool {} has {}",
                        request.id, pool.name, pool.memory.kv_capacity_blocks
                    ))
                } else {
                    None
                }
            };
            let reasons: Vec<Option<String>> = self.pools.iter().map(why_not).collect();
            if reasons.iter().all(Option::is_some) {
                unservable.count += 1;
                if unservable.example.is_none() {
                    unservable.example = reasons.into_iter().flatten().next();
                }
            }
        }
        unservable
    }
}
