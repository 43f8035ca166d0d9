//! Operator times looked up in a measured-operator calibration: the [`OperatorTimes`] the
//! roofline cost model asks before pricing an operator itself.
//!
//! Covered: dense GEMMs of a measured dtype, prefill and decode attention of a measured
//! (dtype, KV dtype, head dimension), and single-node all-reduces of a measured device count.
//! Declined (`None`, so the roofline prices them): MoE expert GEMMs (no per-GEMM shape),
//! formats AIConfigurator did not time (MXFP4, INT8 weight-only...), MLA's latent attention,
//! head dimensions not measured, all-reduces across nodes. Lookups allocate nothing; each is a
//! few binary searches and at most eight table reads.

use super::file::MeasuredFile;
use super::grid::{Grid, GridFile};
use crate::cost::{MeasuredContext, OperatorTimes};
use crate::error::Result;
use crate::hardware::Dtype;
use crate::input::YamlSource;
use crate::model::{AttentionHeads, OpShape, Operator, WeightFormat};

/// GEMM dtypes of AIConfigurator's tables, by their names there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GemmDtype {
    /// 16-bit (also used for fp16: the same tensor-core rate).
    Bfloat16,
    /// FP8 with per-tensor scales.
    Fp8,
    /// FP8 with 128 × 128 block scales.
    Fp8Block,
    /// NVFP4.
    Nvfp4,
    /// INT4 weight-only (AWQ / GPTQ kernels).
    Int4WeightOnly,
    /// INT8 weight-only (no servesim format uses it; kept for completeness).
    Int8WeightOnly,
    /// INT8 SmoothQuant (W8A8).
    SmoothQuant,
}

/// Every GEMM dtype, in the order of [`GemmDtype`].
pub const GEMM_DTYPES: [GemmDtype; 7] = [
    GemmDtype::Bfloat16,
    GemmDtype::Fp8,
    GemmDtype::Fp8Block,
    GemmDtype::Nvfp4,
    GemmDtype::Int4WeightOnly,
    GemmDtype::Int8WeightOnly,
    GemmDtype::SmoothQuant,
];

impl GemmDtype {
    /// The name in AIConfigurator's tables.
    pub fn name(self) -> &'static str {
        match self {
            GemmDtype::Bfloat16 => "bfloat16",
            GemmDtype::Fp8 => "fp8",
            GemmDtype::Fp8Block => "fp8_block",
            GemmDtype::Nvfp4 => "nvfp4",
            GemmDtype::Int4WeightOnly => "int4_wo",
            GemmDtype::Int8WeightOnly => "int8_wo",
            GemmDtype::SmoothQuant => "sq",
        }
    }

    /// The dtype named `name`.
    pub fn parse(name: &str) -> Option<GemmDtype> {
        GEMM_DTYPES.into_iter().find(|d| d.name() == name)
    }

    /// The table a GEMM of a deployment with weights stored as `weights` uses.
    pub fn of(weights: WeightFormat) -> Option<GemmDtype> {
        match weights {
            WeightFormat::Fp32 | WeightFormat::Bf16 | WeightFormat::Fp16 => Some(GemmDtype::Bfloat16),
            WeightFormat::Fp8 => Some(GemmDtype::Fp8),
            WeightFormat::Fp8Block => Some(GemmDtype::Fp8Block),
            WeightFormat::Int8 => Some(GemmDtype::SmoothQuant),
            WeightFormat::Nvfp4 => Some(GemmDtype::Nvfp4),
            WeightFormat::Int4Awq | WeightFormat::Int4Gptq => Some(GemmDtype::Int4WeightOnly),
            // AIConfigurator times no MXFP4 GEMM.
            WeightFormat::Mxfp4 => None,
        }
    }
}

/// Attention and KV-cache dtypes of AIConfigurator's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttentionDtype {
    /// 16-bit.
    Bfloat16,
    /// FP8.
    Fp8,
}

impl AttentionDtype {
    /// The name in AIConfigurator's tables.
    pub fn name(self) -> &'static str {
        match self {
            AttentionDtype::Bfloat16 => "bfloat16",
            AttentionDtype::Fp8 => "fp8",
        }
    }

    /// The dtype named `name`.
    pub fn parse(name: &str) -> Option<AttentionDtype> {
        [AttentionDtype::Bfloat16, AttentionDtype::Fp8].into_iter().find(|d| d.name() == name)
    }

    /// The table dtype of servesim's `dtype`, where measured.
    pub fn of(dtype: Dtype) -> Option<AttentionDtype> {
        match dtype {
            Dtype::Bf16 | Dtype::Fp16 => Some(AttentionDtype::Bfloat16),
            Dtype::Fp8 => Some(AttentionDtype::Fp8),
            _ => None,
        }
    }
}

/// Measured operator times of one device and framework.
#[derive(Debug, Clone)]
pub struct MeasuredTimes {
    /// The file without its grids (provenance and held-out errors).
    provenance: MeasuredFile,
    gemm: [Option<Grid>; GEMM_DTYPES.len()],
    /// (attention dtype, KV dtype, head dim) → grid over (query heads per KV head, sequences ×
    /// query heads, tokens).
    context: Vec<(AttentionDtype, AttentionDtype, u64, Grid)>,
    /// (KV dtype, head dim) → grid over (query heads per KV head, sequences × KV heads, KV
    /// tokens).
    generation: Vec<(AttentionDtype, u64, Grid)>,
    /// Devices → grid over the per-device buffer in bytes.
    all_reduce: Vec<(u64, Grid)>,
}

fn grid_axes(source: &YamlSource, field: &str, grid: &GridFile, expected: usize) -> Result<Grid> {
    if grid.axes.len() != expected {
        return Err(
            source.error(&format!("{field}.axes"), format!("expected {expected} axes, found {}", grid.axes.len()))
        );
    }
    Grid::from_file(grid, source, field)
}

fn attention_dtype(source: &YamlSource, field: &str, name: &str) -> Result<AttentionDtype> {
    AttentionDtype::parse(name)
        .ok_or_else(|| source.error(field, format!("unknown attention dtype {name:?}; known: bfloat16, fp8")))
}

impl MeasuredTimes {
    /// Parses and checks a measured-operator calibration.
    pub fn from_source(source: &YamlSource) -> Result<MeasuredTimes> {
        let mut file: MeasuredFile = source.parse().map_err(|error| match error {
            // Another kind of file (a device profile, a `servesim calibrate` efficiency
            // calibration...) fails on its first unknown or missing field: say what it is
            // not. An empty file or a syntax error (no field) keeps its own error.
            crate::error::Error::Input { location: crate::error::Location { field: Some(_), .. }, .. }
                if !source.has_field("source") =>
            {
                source.error(
                    "source",
                    "not a measured-operator calibration (it has no `source: aiconfigurator`): give a file written by `servesim calibrate --aiconfigurator`",
                )
            }
            other => other,
        })?;
        if file.source != "aiconfigurator" {
            return Err(source.error("source", format!("unknown source {:?}; known: aiconfigurator", file.source)));
        }
        let mut gemm: [Option<Grid>; GEMM_DTYPES.len()] = Default::default();
        for (name, grid) in &file.gemm {
            let field = format!("gemm.{name}");
            let dtype = GemmDtype::parse(name).ok_or_else(|| {
                source.error(
                    &field,
                    format!("unknown GEMM dtype {name:?}; known: {}", GEMM_DTYPES.map(GemmDtype::name).join(", ")),
                )
            })?;
            gemm[dtype as usize] = Some(grid_axes(source, &field, grid, 3)?);
        }
        let mut context = Vec::new();
        for (i, entry) in file.context_attention.iter().enumerate() {
            let field = format!("context_attention[{i}]");
            let attn = attention_dtype(source, &format!("{field}.attn_dtype"), &entry.attn_dtype)?;
            let kv = attention_dtype(source, &format!("{field}.kv_cache_dtype"), &entry.kv_cache_dtype)?;
            if context.iter().any(|(a, k, h, _)| (*a, *k, *h) == (attn, kv, entry.head_dim)) {
                return Err(source.error(&field, "a second grid for the same dtypes and head dimension"));
            }
            context.push((attn, kv, entry.head_dim, grid_axes(source, &format!("{field}.grid"), &entry.grid, 3)?));
        }
        let mut generation = Vec::new();
        for (i, entry) in file.generation_attention.iter().enumerate() {
            let field = format!("generation_attention[{i}]");
            attention_dtype(source, &format!("{field}.attn_dtype"), &entry.attn_dtype)?;
            let kv = attention_dtype(source, &format!("{field}.kv_cache_dtype"), &entry.kv_cache_dtype)?;
            if generation.iter().any(|(k, h, _)| (*k, *h) == (kv, entry.head_dim)) {
                return Err(source.error(&field, "a second grid for the same KV dtype and head dimension"));
            }
            generation.push((kv, entry.head_dim, grid_axes(source, &format!("{field}.grid"), &entry.grid, 3)?));
        }
        let mut all_reduce = Vec::new();
        for (i, entry) in file.all_reduce.iter().enumerate() {
            let field = format!("all_reduce[{i}]");
            if entry.gpus < 2 || all_reduce.iter().any(|(g, _)| *g == entry.gpus) {
                return Err(source.error(&format!("{field}.gpus"), "expected a device count of 2 or more, once"));
            }
            all_reduce.push((entry.gpus, grid_axes(source, &format!("{field}.grid"), &entry.grid, 1)?));
        }
        file.gemm.clear();
        file.context_attention.clear();
        file.generation_attention.clear();
        file.all_reduce.clear();
        Ok(MeasuredTimes { provenance: file, gemm, context, generation, all_reduce })
    }

    /// Reads a measured-operator calibration file.
    pub fn from_file(path: &std::path::Path) -> Result<MeasuredTimes> {
        let mut magic = [0u8; 4];
        let parquet = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok_and(|()| &magic == b"PAR1");
        if parquet {
            return Err(crate::error::Error::in_file(
                path.display().to_string(),
                "a Parquet table, not a measured-operator calibration: convert AIConfigurator's tables with `servesim calibrate --aiconfigurator` and give the YAML file it writes",
            ));
        }
        Self::from_source(&YamlSource::from_file(path)?)
    }

    /// The file's provenance and held-out errors (its grids left out).
    pub fn provenance(&self) -> &MeasuredFile {
        &self.provenance
    }

    /// Whether the file has a GEMM table of `dtype`.
    pub fn has_gemm(&self, dtype: GemmDtype) -> bool {
        self.gemm[dtype as usize].is_some()
    }

    fn gemm_seconds(&self, op: &Operator, context: &MeasuredContext, m: u64, n: u64, k: u64) -> Option<f64> {
        let dtype = if op.unquantized { GemmDtype::Bfloat16 } else { GemmDtype::of(context.precision.weights)? };
        if m == 0 || n == 0 || k == 0 {
            return None;
        }
        let grid = self.gemm[dtype as usize].as_ref()?;
        Some(grid.seconds(&[m as f64, n as f64, k as f64]))
    }

    fn ratio(heads: &AttentionHeads) -> Option<f64> {
        // MLA attends over a compressed latent with its own kernels, not these.
        if heads.latent || heads.query == 0 || heads.kv == 0 || heads.kv > heads.query {
            return None;
        }
        Some(heads.query as f64 / heads.kv as f64)
    }

    fn prefill_seconds(
        &self,
        context: &MeasuredContext,
        sequences: u64,
        query_tokens: f64,
        kv_tokens: f64,
        heads: &AttentionHeads,
    ) -> Option<f64> {
        let attn = AttentionDtype::of(context.precision.attention)?;
        let kv = AttentionDtype::of(context.precision.kv)?;
        let ratio = Self::ratio(heads)?;
        if sequences == 0 || !(query_tokens >= 1.0 && kv_tokens >= query_tokens) {
            return None;
        }
        // An engine that measured no FP8 attention compute over this cache (vLLM: FP8 KV is
        // dequantised on load) runs it at 16 bits: its 16-bit table over the same cache.
        let table =
            |attn: AttentionDtype| self.context.iter().find(|(a, k, h, _)| (*a, *k, *h) == (attn, kv, heads.head_dim));
        let (_, _, _, grid) = table(attn).or_else(|| table(AttentionDtype::Bfloat16))?;
        // The tables time whole prompts. A chunk after a cached prefix does the part of the
        // causal square of its full length that the prefix does not (AIConfigurator's own
        // correction): (L² − P²) / L² of a prompt of length L.
        let full_s = grid.seconds(&[ratio, (sequences * heads.query) as f64, kv_tokens]);
        let prefix = kv_tokens - query_tokens;
        let chunk_s = full_s * (kv_tokens * kv_tokens - prefix * prefix) / (kv_tokens * kv_tokens);
        // A short chunk after a long prefix (a verification of drafted tokens, a small last
        // chunk) still reads every cached token once: no faster than one decode query per
        // sequence over the same cache.
        let read_s = self.decode_seconds(context, sequences, kv_tokens, heads).unwrap_or(0.0);
        Some(chunk_s.max(read_s))
    }

    fn decode_seconds(
        &self,
        context: &MeasuredContext,
        sequences: u64,
        kv_tokens: f64,
        heads: &AttentionHeads,
    ) -> Option<f64> {
        let kv = AttentionDtype::of(context.precision.kv)?;
        let ratio = Self::ratio(heads)?;
        // NaN fails the test as well as values below one token.
        if sequences == 0 || kv_tokens.partial_cmp(&1.0).is_none_or(|o| o.is_lt()) {
            return None;
        }
        let (_, _, grid) = self.generation.iter().find(|(k, h, _)| (*k, *h) == (kv, heads.head_dim))?;
        Some(grid.seconds(&[ratio, (sequences * heads.kv) as f64, kv_tokens]))
    }

    fn all_reduce_seconds(&self, context: &MeasuredContext, bytes: f64) -> Option<f64> {
        // The tables are measured inside one node.
        if !context.single_node || bytes.partial_cmp(&0.0).is_none_or(|o| o.is_le()) {
            return None;
        }
        let (_, grid) = self.all_reduce.iter().find(|(g, _)| *g == context.tensor_parallel)?;
        Some(grid.seconds(&[bytes]))
    }
}

impl OperatorTimes for MeasuredTimes {
    fn seconds(&self, op: &Operator, context: &MeasuredContext) -> Option<f64> {
        match op.shape {
            OpShape::None => None,
            OpShape::Gemm { m, n, k } => self.gemm_seconds(op, context, m, n, k),
            OpShape::Experts { experts_hit, tokens_per_expert, hidden, intermediate, up_matrices } => {
                // Each expert hit as its own pair of GEMMs over its tokens: grouped-GEMM kernels
                // run about as the dense GEMMs of those shapes (a named shortcut; the MoE
                // tables are not converted).
                let m = tokens_per_expert.ceil().max(1.0) as u64;
                let up = self.gemm_seconds(op, context, m, up_matrices * intermediate, hidden)?;
                let down = self.gemm_seconds(op, context, m, hidden, intermediate)?;
                Some(experts_hit * (up + down))
            }
            OpShape::PrefillAttention { sequences, query_tokens, kv_tokens, heads } => {
                self.prefill_seconds(context, sequences, query_tokens, kv_tokens, &heads)
            }
            OpShape::DecodeAttention { sequences, kv_tokens, heads } => {
                self.decode_seconds(context, sequences, kv_tokens, &heads)
            }
            OpShape::AllReduce { bytes } => self.all_reduce_seconds(context, bytes),
        }
    }

    fn source(&self) -> String {
        let p = &self.provenance;
        format!("{} {} {} {}", p.source, p.system, p.framework, p.framework_version)
    }
}
