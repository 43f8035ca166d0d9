//! A pool's speculative decoding, validated: how tokens are drafted (a draft model on the
//! pool's devices or a device of its own, EAGLE/MTP/Medusa heads, n-gram lookup), how many,
//! how they are accepted, and what the draft costs in memory beside the target.
//!
//! Memory: a draft on the pool's devices (weights and KV) or heads (weights, EAGLE/MTP KV)
//! come out of the target's KV budget, on every device of the replica (conservative when the
//! draft runs at a smaller TP). A draft on a device of its own must fit that device. This
//! module does not price anything.

use super::pools::{precision, weight_format};
use super::schema::{AcceptanceSection, SpeculationMethodName, SpeculationSection};
use super::MemoryPlan;
use crate::error::{csv_error, read_text, Error, Location, Result};
use crate::hardware::{Catalog, DeviceProfile, LinkProfile};
use crate::input::YamlSource;
use crate::model::{ModelSpec, Parallelism, Precision};
use crate::serving::AcceptanceModel;
use std::path::Path;
use std::sync::Arc;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Most tokens drafted per step (beyond any published configuration).
const MAX_DRAFT_TOKENS: u64 = 64;
/// Most candidates per drafted position of a tree.
const MAX_TREE_WIDTH: u64 = 16;

/// Where drafted tokens come from.
#[derive(Debug, Clone)]
// One per pool, built once: the size of the device profile in `Model` does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Drafter {
    /// A smaller model run `k` times per step.
    Model {
        /// The draft model.
        model: Arc<ModelSpec>,
        /// Its precision.
        precision: Precision,
        /// Its own device (one per replica), or None for the pool's devices.
        device: Option<DeviceProfile>,
        /// The link between its device and the target's (with `device`).
        link: Option<LinkProfile>,
        /// Its tensor parallelism.
        tensor_parallel: u64,
    },
    /// Layers on top of the target run `k` times per step (EAGLE, MTP): a model of the
    /// target's shape with `layers` decoder layers.
    Layers {
        /// That model.
        model: Arc<ModelSpec>,
    },
    /// Medusa: one pass of `layers` layers with one LM head per drafted position.
    Heads {
        /// A model of the target's shape with the heads' layers and `k` vocabularies.
        model: Arc<ModelSpec>,
    },
    /// N-gram or prompt lookup: no model.
    Lookup,
}

/// A pool's speculative decoding.
#[derive(Debug, Clone)]
pub struct SpeculationPlan {
    /// How tokens are drafted.
    pub drafter: Drafter,
    /// Tokens drafted per step (the most, when adaptive).
    pub draft_tokens: u64,
    /// Whether each sequence's draft length follows its recent acceptance.
    pub adaptive: bool,
    /// Candidates per drafted position (1: a chain).
    pub tree_width: u64,
    /// How drafted tokens are accepted.
    pub acceptance: AcceptanceModel,
    /// Rates scale by batch^(−batch_exponent).
    pub batch_exponent: f64,
    /// Whether drafting overlaps verification (PEARL).
    pub overlap: bool,
    /// Whether a batch pads every verification to its longest draft.
    pub padded: bool,
}

/// Validates `section` of a pool serving `target` at `target_precision` with `parallelism`
/// on `device`, whose replicas run at most `running_tokens` tokens of sequences at once
/// (max_num_seqs × max_model_len), and takes the draft's memory out of `memory`.
#[allow(clippy::too_many_arguments)]
pub(super) fn speculation_plan(
    section: &SpeculationSection,
    target: &Arc<ModelSpec>,
    target_precision: Precision,
    parallelism: Parallelism,
    device: &DeviceProfile,
    memory: &mut MemoryPlan,
    running_tokens: u64,
    catalog: &Catalog,
    source: &YamlSource,
    field: &str,
) -> Result<SpeculationPlan> {
    let draft_tokens = section.k.get();
    if draft_tokens > MAX_DRAFT_TOKENS {
        return Err(source.error(
            &format!("{field}.k"),
            format!("k = {draft_tokens} drafted tokens per step is out of range: expected 1 to {MAX_DRAFT_TOKENS}"),
        ));
    }
    let tree_width = section.tree_width.map_or(1, |w| w.get());
    if tree_width > MAX_TREE_WIDTH {
        return Err(source.error(
            &format!("{field}.tree_width"),
            format!("{tree_width} candidates per position is out of range: expected 1 to {MAX_TREE_WIDTH}"),
        ));
    }
    let (acceptance, batch_exponent) =
        acceptance_model(&section.acceptance, draft_tokens, source, &format!("{field}.acceptance"))?;
    let head_layers = section.head_layers.map(|l| l.get());
    if section.draft.is_some() != (section.method == SpeculationMethodName::DraftModel) {
        return Err(source.error(
            &format!("{field}.draft"),
            "`draft:` names the draft model of `method: draft_model`, and only of it",
        ));
    }
    if head_layers.is_some()
        && !matches!(
            section.method,
            SpeculationMethodName::Eagle | SpeculationMethodName::Mtp | SpeculationMethodName::Medusa
        )
    {
        return Err(
            source.error(&format!("{field}.head_layers"), "`head_layers` applies to eagle, mtp and medusa heads")
        );
    }
    let layers_model = |layers: u64, vocab_copies: u64| {
        let mut spec = (**target).clone();
        spec.name = format!("{} heads", target.name);
        spec.layers = layers.min(target.layers);
        spec.vocab_size = target.vocab_size * vocab_copies;
        if let Some(moe) = &mut spec.moe {
            moe.moe_layers = moe.moe_layers.min(spec.layers);
        }
        Arc::new(spec)
    };
    let tp = parallelism.tensor as f64;
    let drafter = match section.method {
        SpeculationMethodName::Ngram => Drafter::Lookup,
        SpeculationMethodName::Eagle | SpeculationMethodName::Mtp => {
            let model = layers_model(head_layers.unwrap_or(1), 1);
            // The heads share the target's embedding and LM head; their layers and KV are new.
            let weights =
                (model.weight_bytes(weight_format(&model, None)) - model.embedding_params() as f64 * 2.0) / tp;
            let kv_per_token =
                Parallelism::new(parallelism.tensor, 1).kv_bytes_per_token_per_device(&model, target_precision.kv);
            take_memory(memory, weights, kv_per_token, device, source, field, "the EAGLE/MTP heads")?;
            Drafter::Layers { model }
        }
        SpeculationMethodName::Medusa => {
            let model = layers_model(head_layers.unwrap_or(1), draft_tokens);
            // One residual block and one LM head per drafted position; no KV.
            let h = target.hidden_size as f64;
            let params = draft_tokens as f64 * (h * h + h * target.vocab_size as f64);
            take_memory(memory, params * 2.0 / tp, 0.0, device, source, field, "the Medusa heads")?;
            Drafter::Heads { model }
        }
        SpeculationMethodName::DraftModel => {
            let draft = section.draft.as_ref().expect("checked above");
            let draft_field = format!("{field}.draft");
            let model = Arc::new(catalog.model(&draft.model, source, &format!("{draft_field}.model"))?);
            if model.vocab_size != target.vocab_size {
                return Err(source.error(
                    &format!("{draft_field}.model"),
                    format!(
                        "draft {} has a vocabulary of {} tokens and the target {} one of {}: a draft must share the target's tokenizer",
                        model.name, model.vocab_size, target.name, target.vocab_size
                    ),
                ));
            }
            let weights = weight_format(&model, draft.dtype);
            let draft_tp = draft.tensor_parallel.map_or(1, |t| t.get());
            let own_device = match &draft.device {
                Some(name) => Some(catalog.device(name, source, &format!("{draft_field}.device"))?),
                None => None,
            };
            if own_device.is_some() && draft_tp != 1 {
                return Err(source.error(
                    &format!("{draft_field}.tensor_parallel"),
                    format!("a draft on a device of its own runs on that one device: tensor_parallel must be 1, found {draft_tp}"),
                ));
            }
            if own_device.is_none() && draft_tp != 1 && draft_tp != parallelism.tensor {
                return Err(source.error(
                    &format!("{draft_field}.tensor_parallel"),
                    format!(
                        "a draft on the pool's devices runs at tensor_parallel 1 or the pool's {}; found {draft_tp}",
                        parallelism.tensor
                    ),
                ));
            }
            let draft_parallelism = Parallelism::new(draft_tp, 1);
            draft_parallelism
                .check(&model)
                .map_err(|(what, message)| source.error(&format!("{draft_field}.{what}"), message))?;
            let draft_device = own_device.as_ref().unwrap_or(device);
            let dtype_field = format!("{draft_field}.");
            let precision = precision(weights, None, draft_device, source, &dtype_field)?;
            let weight_bytes = model.weight_bytes(weights) / draft_tp as f64;
            let kv_per_token = draft_parallelism.kv_bytes_per_token_per_device(&model, precision.kv);
            let link = match (&own_device, &draft.link) {
                (Some(_), Some(link)) => Some(catalog.link(link, source, &format!("{draft_field}.link"))?),
                (Some(_), None) => {
                    return Err(source.error(
                        &format!("{draft_field}.link"),
                        format!(
                            "a draft on a device of its own exchanges tokens with the target: name the link between them (bundled links: {})",
                            crate::input::known_list(catalog.links.keys().map(String::as_str))
                        ),
                    ))
                }
                (None, Some(_)) => {
                    return Err(source.error(
                        &format!("{draft_field}.link"),
                        "`link` applies to a draft on a device of its own (`device:`)",
                    ))
                }
                (None, None) => None,
            };
            match &own_device {
                Some(own) => {
                    // Its weights, a runtime reserve, and KV for the tokens the target can
                    // hold of sequences running at once (the draft only drafts for those).
                    let draft_tokens_held = memory_tokens(memory).min(running_tokens);
                    let usable = own.memory.capacity_gib.get() * GIB * 0.9;
                    let needed = weight_bytes + GIB + kv_per_token * draft_tokens_held as f64;
                    if needed > usable {
                        return Err(source.error(
                            &format!("{draft_field}.device"),
                            format!(
                                "draft {} does not fit on {}: {:.1} GiB of weights plus KV for the {} tokens of the pool's running sequences and a 1 GiB reserve need {:.1} GiB of its {:.1} GiB usable",
                                model.name,
                                own.name,
                                weight_bytes / GIB,
                                draft_tokens_held,
                                needed / GIB,
                                usable / GIB
                            ),
                        ));
                    }
                }
                None => take_memory(
                    memory,
                    weight_bytes,
                    kv_per_token,
                    device,
                    source,
                    &format!("{draft_field}.model"),
                    &format!("draft {}", model.name),
                )?,
            }
            Drafter::Model { model, precision, device: own_device, link, tensor_parallel: draft_tp }
        }
    };
    Ok(SpeculationPlan {
        drafter,
        draft_tokens,
        adaptive: section.adaptive,
        tree_width,
        acceptance,
        batch_exponent,
        overlap: section.overlap,
        padded: section.batching != super::schema::SpeculativeBatching::Ragged,
    })
}

/// Tokens of KV the pool's plan caches.
fn memory_tokens(memory: &MemoryPlan) -> u64 {
    memory.kv_capacity_blocks * memory.block_size_tokens
}

/// Takes `weight_bytes` and `kv_bytes_per_token` more per device out of the KV budget.
fn take_memory(
    memory: &mut MemoryPlan,
    weight_bytes: f64,
    kv_bytes_per_token: f64,
    device: &DeviceProfile,
    source: &YamlSource,
    field: &str,
    what: &str,
) -> Result<()> {
    let kv_bytes = memory.kv_bytes - weight_bytes;
    let per_token = memory.kv_bytes_per_token + kv_bytes_per_token;
    let blocks =
        if kv_bytes > 0.0 { (kv_bytes / (per_token * memory.block_size_tokens as f64)).floor() as u64 } else { 0 };
    if blocks == 0 {
        return Err(source.error(
            field,
            format!(
                "no room beside the target on {} for {what}: {:.2} GiB of weights per device leave no room for KV (the target left {:.2} GiB)",
                device.name,
                weight_bytes / GIB,
                memory.kv_bytes / GIB
            ),
        ));
    }
    memory.weight_bytes += weight_bytes;
    memory.kv_bytes = kv_bytes;
    memory.kv_bytes_per_token = per_token;
    memory.kv_capacity_blocks = blocks;
    Ok(())
}

/// The acceptance model of `section` for drafts of `k` tokens, and its batch exponent.
fn acceptance_model(
    section: &AcceptanceSection,
    k: u64,
    source: &YamlSource,
    field: &str,
) -> Result<(AcceptanceModel, f64)> {
    let mut models = Vec::new();
    if let Some(rate) = section.rate {
        models.push(("rate", AcceptanceModel::Bernoulli { rate }));
    }
    if let Some(rates) = &section.per_position {
        models.push(("per_position", AcceptanceModel::PerPosition { rates: rates.clone() }));
    }
    if let Some(medusa) = &section.medusa {
        let path = source.resolve(&medusa.path);
        // A file that cannot be read, a run it lacks, or too few heads for `k` are the
        // scenario's errors (at the field that asks for them); a bad cell is the file's own
        // error, at its line.
        let heads = medusa_head_count(&path).map_err(|e| source.file_error(&format!("{field}.medusa.path"), e))?;
        if (heads as u64) < k {
            return Err(source.error(
                &format!("{}.k", field.strip_suffix(".acceptance").unwrap_or(field)),
                format!(
                    "k = {k} drafted tokens need one Medusa head each, but {} has top-1 accuracies for {heads} heads (`train/medusa0_top1` onwards)",
                    medusa.path
                ),
            ));
        }
        let rates = medusa_position_rates(&path, &medusa.run, k as usize).map_err(|e| match e {
            Error::Input { location: Location { line: None, .. }, message } => {
                source.error(&format!("{field}.medusa.run"), format!("{}: {message}", medusa.path))
            }
            e => e,
        })?;
        models.push(("medusa", AcceptanceModel::PerPosition { rates }));
    }
    if let Some(probabilities) = &section.accepted_length {
        models.push(("accepted_length", AcceptanceModel::Empirical { probabilities: probabilities.clone() }));
    }
    if let Some(beta) = section.beta {
        models.push(("beta", AcceptanceModel::BetaPerRequest { alpha: beta.alpha, beta: beta.beta }));
    }
    let (name, model) = match models.len() {
        1 => models.pop().expect("one"),
        0 => {
            return Err(source.error(
                field,
                "give one acceptance model: `rate`, `per_position`, `medusa`, `accepted_length` or `beta`",
            ))
        }
        _ => {
            return Err(source.error(
                field,
                format!(
                    "give one acceptance model, not {}",
                    models.iter().map(|(n, _)| format!("`{n}`")).collect::<Vec<_>>().join(" and ")
                ),
            ))
        }
    };
    model.check(k as u32).map_err(|message| source.error(&format!("{field}.{name}"), message))?;
    let batch_exponent = section.batch_exponent.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&batch_exponent) {
        return Err(source.error(
            &format!("{field}.batch_exponent"),
            format!("{batch_exponent} is out of range: expected 0 to 2 (rates scale by batch^-exponent)"),
        ));
    }
    Ok((model, batch_exponent))
}

/// How many heads (consecutive `train/medusa{i}_top1` columns from 0) a Medusa export has.
fn medusa_head_count(path: &Path) -> Result<usize> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(&file, &e))?;
    Ok((0..).take_while(|i| headers.iter().any(|h| h == format!("train/medusa{i}_top1"))).count())
}

/// Conditional per-position rates from a Medusa training export (`medusa_acc.csv`: a W&B
/// table with a `Name` column naming the run, e.g. `7b`, and `train/medusa{i}_top1` columns).
///
/// Each head's top-1 accuracy is the marginal probability that head `i`'s token is right.
/// The conversion assumes the events are nested (head `i` right ⇒ every head before it right),
/// the *nested-heads shortcut*: r_0 = p_0, r_i = min(1, p_i / p_{i−1}). It is optimistic —
/// with independent heads the chance of a run reaching `i` would be the product of the
/// marginals, lower than p_i — so it gives an upper bound on Medusa's acceptance.
pub fn medusa_position_rates(path: &Path, run_name: &str, heads: usize) -> Result<Vec<f64>> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(&file, &e))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::at(
                Location { file: file.clone(), line: Some(1), field: Some(name.to_string()) },
                format!("the export has no `{name}` column"),
            )
        })
    };
    let name_column = column("Name")?;
    let accuracy_columns =
        (0..heads).map(|i| column(&format!("train/medusa{i}_top1")).map(|c| (i, c))).collect::<Result<Vec<_>>>()?;
    let mut runs = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&file, &e))?;
        let name = record.get(name_column).unwrap_or("");
        if name != run_name {
            runs.push(name.to_string());
            continue;
        }
        let line = record.position().map(|p| p.line() as usize);
        let mut rates = Vec::with_capacity(heads);
        let mut previous = 1.0;
        for &(head, c) in &accuracy_columns {
            let field = headers.get(c).unwrap_or("").to_string();
            let cell = record.get(c).unwrap_or("");
            let accuracy = cell.trim().parse::<f64>().ok().filter(|v| (0.0..=1.0).contains(v)).ok_or_else(|| {
                Error::at(
                    Location { file: file.clone(), line, field: Some(field) },
                    format!(
                        "head {head}'s top-1 accuracy of run `{run_name}` is `{cell}`; it must be a number in [0, 1]"
                    ),
                )
            })?;
            rates.push(if previous > 0.0 { (accuracy / previous).min(1.0) } else { 0.0 });
            previous = accuracy;
        }
        return Ok(rates);
    }
    Err(Error::in_file(file, format!("no run named `{run_name}`; the export's runs are: {}", runs.join(", "))))
}
