//! How one replica splits a model over its devices: tensor parallelism inside a stage, pipeline
//! stages over the layers, and (room for) expert parallelism.
//!
//! Every per-device size that depends on the split is derived here, once, so that the memory
//! plan, the operator plan and the reports agree: devices per replica, layers per stage, and
//! the key/value heads each device holds. This module does not place devices (that is
//! `scenario::placement`) or price anything (that is `cost`).

use super::ModelSpec;
use crate::hardware::Dtype;
use serde::Serialize;

/// The parallel layout of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parallelism {
    /// Devices per pipeline stage, sharing every layer's heads and MLP columns.
    pub tensor: u64,
    /// Pipeline stages, each holding a contiguous share of the layers.
    pub pipeline: u64,
}

impl Default for Parallelism {
    fn default() -> Self {
        Parallelism::SINGLE
    }
}

impl Parallelism {
    /// One device holding the whole model.
    pub const SINGLE: Parallelism = Parallelism { tensor: 1, pipeline: 1 };

    /// `tensor` devices per stage, `pipeline` stages (each at least 1).
    pub fn new(tensor: u64, pipeline: u64) -> Self {
        Parallelism { tensor: tensor.max(1), pipeline: pipeline.max(1) }
    }

    /// Devices of one replica.
    pub fn devices(&self) -> u64 {
        self.tensor * self.pipeline
    }

    /// Layers of the largest stage (the first stages take the remainder).
    pub fn layers_per_stage(&self, model: &ModelSpec) -> u64 {
        model.layers.div_ceil(self.pipeline)
    }

    /// Share of the model's layers the largest stage holds.
    pub fn stage_fraction(&self, model: &ModelSpec) -> f64 {
        self.layers_per_stage(model) as f64 / model.layers as f64
    }

    /// Key/value heads each device of a stage holds. As in vLLM, when the tensor-parallel
    /// degree exceeds the model's KV heads every device keeps (a replica of) at least one.
    pub fn kv_heads_per_device(&self, model: &ModelSpec) -> u64 {
        (model.kv_heads / self.tensor).max(1)
    }

    /// KV-cache elements one device stores per token per layer: its KV heads, or the whole
    /// MLA latent (shared by all heads, so every tensor-parallel rank holds all of it).
    pub fn kv_elements_per_token_per_layer_per_device(&self, model: &ModelSpec) -> u64 {
        match &model.mla {
            Some(_) => model.kv_elements_per_token_per_layer(),
            None => 2 * self.kv_heads_per_device(model) * model.head_dim,
        }
    }

    /// KV-cache bytes one device stores per token: its heads of its stage's layers.
    pub fn kv_bytes_per_token_per_device(&self, model: &ModelSpec, dtype: Dtype) -> f64 {
        (self.layers_per_stage(model) * self.kv_elements_per_token_per_layer_per_device(model)) as f64 * dtype.bytes()
    }

    /// Layers of pipeline stage `stage`, as a range of layer indices (the first stages take
    /// the rounded-up share).
    pub fn stage_layers(&self, model: &ModelSpec, stage: u64) -> std::ops::Range<u64> {
        let per_stage = self.layers_per_stage(model);
        let start = (stage * per_stage).min(model.layers);
        start..((stage + 1) * per_stage).min(model.layers)
    }

    /// Units the KV cache of one layer splits into over tensor-parallel ranks: the KV heads,
    /// or one for MLA's latent (which every rank holds whole).
    pub fn kv_units(model: &ModelSpec) -> u64 {
        if model.mla.is_some() {
            1
        } else {
            model.kv_heads
        }
    }

    /// KV units of one layer held by tensor-parallel rank `rank`: a contiguous range of heads,
    /// one head shared with other ranks when the degree exceeds the heads, or the whole MLA
    /// latent.
    pub fn kv_units_of_rank(&self, model: &ModelSpec, rank: u64) -> std::ops::Range<u64> {
        let units = Self::kv_units(model);
        if model.mla.is_some() {
            return 0..1;
        }
        if self.tensor <= units {
            let per_rank = units / self.tensor;
            rank * per_rank..(rank + 1) * per_rank
        } else {
            let head = rank * units / self.tensor;
            head..head + 1
        }
    }

    /// Bytes of one KV unit of one layer per token.
    pub fn kv_unit_bytes(model: &ModelSpec, dtype: Dtype) -> f64 {
        model.kv_elements_per_token_per_layer() as f64 / Self::kv_units(model) as f64 * dtype.bytes()
    }

    /// Why this layout cannot split `model`, if it cannot: the heads must divide evenly over a
    /// stage's devices, the KV heads must either divide evenly or be replicated whole, and
    /// every stage needs a layer. Returns (field, message).
    pub fn check(&self, model: &ModelSpec) -> Result<(), (&'static str, String)> {
        let tp = self.tensor;
        if model.attention_heads % tp != 0 {
            return Err((
                "tensor_parallel",
                format!(
                    "tensor_parallel {tp} does not divide the {} attention heads of {}",
                    model.attention_heads, model.name
                ),
            ));
        }
        if model.mla.is_none() {
            let kv = model.kv_heads;
            let even = if tp <= kv { kv % tp == 0 } else { tp % kv == 0 };
            if !even {
                return Err((
                    "tensor_parallel",
                    format!(
                        "tensor_parallel {tp} cannot split the {kv} key/value heads of {}: below {kv} it must divide them, above it must be a multiple of them (each device then holds a replica of one)",
                        model.name
                    ),
                ));
            }
        }
        if self.pipeline > model.layers {
            return Err((
                "pipeline_parallel",
                format!("{} stages exceed the {} layers of {}", self.pipeline, model.layers, model.name),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama_8b() -> ModelSpec {
        let text = crate::hardware::BUNDLED_MODELS.iter().find(|(n, _)| *n == "llama-3.1-8b").expect("bundled").1;
        ModelSpec::from_hf_config("llama-3.1-8b", "bundled", text).expect("valid")
    }

    #[test]
    fn pipeline_stages_hold_their_share_of_the_kv_cache() {
        let model = llama_8b();
        let one = Parallelism::new(1, 1).kv_bytes_per_token_per_device(&model, Dtype::Bf16);
        assert_eq!(one, 2.0 * 32.0 * 8.0 * 128.0 * 2.0);
        assert_eq!(Parallelism::new(1, 2).kv_bytes_per_token_per_device(&model, Dtype::Bf16), one / 2.0);
        // 32 layers over 3 stages: the largest stage has 11.
        assert_eq!(Parallelism::new(1, 3).kv_bytes_per_token_per_device(&model, Dtype::Bf16), one * 11.0 / 32.0);
    }

    #[test]
    fn every_kv_unit_of_every_layer_has_a_home() {
        let model = llama_8b();
        for (tp, pp) in [(1, 1), (2, 1), (8, 4), (16, 3)] {
            let p = Parallelism::new(tp, pp);
            let layers: u64 = (0..pp).map(|s| p.stage_layers(&model, s).count() as u64).sum();
            assert_eq!(layers, model.layers);
            for unit in 0..Parallelism::kv_units(&model) {
                assert!((0..tp).any(|r| p.kv_units_of_rank(&model, r).contains(&unit)), "TP{tp}: head {unit}");
            }
        }
        assert_eq!(Parallelism::new(16, 1).kv_units_of_rank(&model, 15), 7..8);
        assert_eq!(Parallelism::kv_unit_bytes(&model, Dtype::Bf16), 2.0 * 128.0 * 2.0);
    }

    #[test]
    fn kv_heads_are_replicated_when_tensor_parallelism_exceeds_them() {
        let model = llama_8b();
        let per_device = |tp| Parallelism::new(tp, 1).kv_bytes_per_token_per_device(&model, Dtype::Bf16);
        assert_eq!(per_device(8), per_device(1) / 8.0);
        assert_eq!(per_device(16), per_device(8), "each of 16 devices keeps one of the 8 KV heads");
        assert_eq!(per_device(32), per_device(8));
        assert!(Parallelism::new(16, 1).check(&model).is_ok());
        assert!(Parallelism::new(3, 1).check(&model).is_err());
    }
}
