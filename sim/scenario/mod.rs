//! Scenarios: the YAML file that ties model, hardware, deployment, workload and SLOs together,
//! validated once into a [`Scenario`] whose parts are resolved and checked.
//!
//! After [`Scenario::load`] succeeds the rest of the program can trust every number: devices
//! and models exist, tensor-parallel degrees divide the heads, the model fits in memory with
//! room for KV, and the workload is non-empty. This module does not run anything.

mod deployment;
mod memory;
mod offload;
mod placement;
mod pools;
pub mod schema;
mod speculation;

pub use memory::{DoesNotFit, MemoryPlan, MemoryRequest};
pub use offload::OffloadPlan;
pub use placement::{ParallelComm, ReplicaPlacement};
pub use pools::{PoolPlan, PoolRole, PrefixCachePlan, SemiPdPlan, ShareAdaptPlan};
pub use schema::RouterKind;
pub use speculation::{medusa_position_rates, Drafter, SpeculationPlan};

use crate::engine::SimTime;
use crate::error::Result;
use crate::hardware::{bundled_scenario, Catalog, Dtype};
use crate::input::YamlSource;
use crate::metrics::Slo;
use crate::model::{ModelSpec, WeightFormat};
use crate::records::{PrefixHashes, RequestSpec};
use crate::topology::Fabric;
use schema::ScenarioFile;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Command-line settings that take precedence over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `seed`.
    pub seed: Option<u64>,
}

/// When replicas of a switching pool change role.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwitchingPlan {
    /// Seconds between checks.
    pub interval_s: f64,
    /// Prompt tokens waiting per prefill replica that call for another prefill replica.
    pub prefill_queue_tokens: u64,
    /// Decode KV occupancy that calls for another decode replica.
    pub decode_kv_occupancy: f64,
    /// Fewest replicas each role keeps.
    pub min_per_role: usize,
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
    /// The model (pools may name their own).
    pub model: ModelSpec,
    /// Weight format of the scenario's model (pools may override it).
    pub weights: WeightFormat,
    /// KV-cache dtype of the first pool.
    pub kv_dtype: Dtype,
    /// Router policy for new requests.
    pub router: RouterKind,
    /// Router policy for finished prompts (disaggregated deployments).
    pub decode_router: RouterKind,
    /// Whether KV streams layer by layer during the last prompt chunk.
    pub kv_streaming: bool,
    /// Role switching, when a pool switches.
    pub switching: Option<SwitchingPlan>,
    /// The devices and links everything runs on.
    pub fabric: Fabric,
    /// Replica pools.
    pub pools: Vec<PoolPlan>,
    /// Requests in arrival order.
    pub requests: Vec<RequestSpec>,
    /// Their prompts' prefix-block hashes.
    pub prefixes: Arc<PrefixHashes>,
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
    /// locations and the folder relative paths resolve against; `workload`, when given,
    /// replaces loading the workload again.
    pub fn from_parsed(
        file: ScenarioFile,
        source: &YamlSource,
        overrides: &Overrides,
        workload: Option<crate::workload::Workload>,
        catalog: &Catalog,
    ) -> Result<Scenario> {
        if let Some(name) = &file.name {
            check_plain_name(name).map_err(|message| source.error("name", message))?;
        }
        let model = Arc::new(catalog.model(&file.model, source, "model")?);
        let weights = pools::weight_format(&model, file.dtype);
        if file.deployment.pools.is_empty() {
            return Err(source.error("deployment.pools", "list at least one pool of replicas"));
        }
        let defaults = pools::PoolDefaults { model: &model, weights: file.dtype, kv_dtype: file.kv_cache_dtype };
        let mut pools = Vec::new();
        for (index, pool) in file.deployment.pools.iter().enumerate() {
            pools.push(pools::resolve_pool(index, pool, &file, source, catalog, &defaults)?);
        }
        deployment::check_deployment(&pools, source)?;
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
        deployment::check_routes(&pools, &fabric, source)?;
        for (index, (pool, section)) in pools.iter_mut().zip(&file.deployment.pools).enumerate() {
            let field = format!("deployment.pools[{index}].kv_offload");
            let engine_swaps = pool.engine.scheduler.preemption == crate::engine_profiles::Preemption::Swap;
            let Some(offload) = &section.kv_offload else {
                if engine_swaps {
                    return Err(source.error(
                        &field,
                        format!(
                            "engine {} preempts by swapping KV to host memory: give the pool a `kv_offload:` section",
                            pool.engine.name
                        ),
                    ));
                }
                continue;
            };
            for placement in &mut pool.placements {
                placement.offload = Some(offload::offload_plan(
                    offload,
                    engine_swaps,
                    placement,
                    &pool.memory,
                    &fabric,
                    catalog,
                    source,
                    &field,
                )?);
            }
        }
        let switching = pools.iter().any(|p| p.role == PoolRole::Switching).then(|| {
            let section = file.deployment.role_switching.clone().unwrap_or_default();
            SwitchingPlan {
                interval_s: section.interval_s.get(),
                prefill_queue_tokens: section.prefill_queue_tokens.get(),
                decode_kv_occupancy: section.decode_kv_occupancy.get(),
                min_per_role: section.min_per_role.get() as usize,
            }
        });
        let seed = overrides.seed.unwrap_or(file.seed);
        let crate::workload::Workload { requests, prefixes, warnings } = match workload {
            Some(workload) => workload,
            None => crate::workload::load(&file.workload, source, seed)?,
        };
        // Checked whenever the trace hashes prompts, even if none of its prompts fills a hash
        // block, so that whether a scenario is accepted does not depend on its prompt lengths.
        if prefixes.block_tokens > 0 {
            for (index, pool) in pools.iter().enumerate() {
                let block = pool.memory.block_size_tokens;
                if pool.prefix_cache.is_some() && u64::from(prefixes.block_tokens) % block != 0 {
                    return Err(source.error(
                        &format!("deployment.pools[{index}].scheduler.block_size"),
                        format!(
                            "the trace hashes prompts in blocks of {} tokens, which KV blocks of {block} tokens do not divide; use a block size dividing {} or turn the prefix cache off",
                            prefixes.block_tokens, prefixes.block_tokens
                        ),
                    ));
                }
            }
        }
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
            model: (*model).clone(),
            weights,
            kv_dtype: pools[0].precision.kv,
            router: file.deployment.router,
            decode_router: file.deployment.decode_router.unwrap_or(RouterKind::LeastKvLoad),
            kv_streaming: file.deployment.kv_transfer.layerwise,
            switching,
            fabric,
            pools,
            requests,
            prefixes,
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
