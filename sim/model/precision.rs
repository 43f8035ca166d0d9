//! Numeric precision of a served model: how its weights are stored (with their scales), what
//! its GEMMs compute in, what its KV cache is stored in, and what attention computes in.
//!
//! Weight formats follow what serving engines run: 16-bit; FP8 (E4M3) with per-tensor or
//! per-block (128 × 128) scales and FP8 activations (W8A8); INT8 with INT8 activations
//! (SmoothQuant W8A8); NVFP4 and MXFP4 (4-bit floats with a scale per 16 or 32 elements) with
//! 4-bit activations; and INT4 weight-only (AWQ, GPTQ: group-128 scales and zeros) with 16-bit
//! activations, dequantised on the fly. This module does not know devices; whether a device
//! can run a precision is checked where devices and models meet (`scenario`).

use crate::hardware::Dtype;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightFormat {
    /// 32-bit floats (served as 16-bit; see `Precision::resolve`).
    Fp32,
    /// bfloat16.
    Bf16,
    /// IEEE half.
    Fp16,
    /// FP8 E4M3 with one scale per tensor; FP8 activations.
    Fp8,
    /// FP8 E4M3 with one scale per 128 × 128 block (DeepSeek-V3 style); FP8 activations.
    Fp8Block,
    /// INT8 with INT8 activations (SmoothQuant).
    Int8,
    /// NVFP4: E2M1 with an FP8 scale per 16 elements and a per-tensor scale; FP4 activations.
    Nvfp4,
    /// MXFP4: E2M1 with an E8M0 scale per 32 elements; FP4 activations.
    Mxfp4,
    /// INT4 weight-only (AWQ) with 16-bit scale and zero per 128 weights; 16-bit activations.
    #[serde(alias = "int4")]
    Int4Awq,
    /// INT4 weight-only (GPTQ) with 16-bit scale and zero per 128 weights; 16-bit activations.
    Int4Gptq,
}

impl WeightFormat {
    /// Bytes per weight, scales included.
    pub fn bytes_per_param(self) -> f64 {
        match self {
            WeightFormat::Fp32 => 4.0,
            WeightFormat::Bf16 | WeightFormat::Fp16 => 2.0,
            WeightFormat::Fp8 | WeightFormat::Int8 => 1.0,
            // One fp32 scale per 128 × 128 block.
            WeightFormat::Fp8Block => 1.0 + 4.0 / (128.0 * 128.0),
            // One fp8 scale per 16 elements.
            WeightFormat::Nvfp4 => 0.5 + 1.0 / 16.0,
            // One e8m0 scale per 32 elements.
            WeightFormat::Mxfp4 => 0.5 + 1.0 / 32.0,
            // A 16-bit scale and a 16-bit zero per group of 128.
            WeightFormat::Int4Awq | WeightFormat::Int4Gptq => 0.5 + 4.0 / 128.0,
        }
    }

    /// Whether the weights are expanded to 16 bits inside the GEMM (weight-only formats).
    pub fn dequantized(self) -> bool {
        matches!(self, WeightFormat::Int4Awq | WeightFormat::Int4Gptq)
    }

    /// The name used in files.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::Fp32 => "fp32",
            WeightFormat::Bf16 => "bf16",
            WeightFormat::Fp16 => "fp16",
            WeightFormat::Fp8 => "fp8",
            WeightFormat::Fp8Block => "fp8_block",
            WeightFormat::Int8 => "int8",
            WeightFormat::Nvfp4 => "nvfp4",
            WeightFormat::Mxfp4 => "mxfp4",
            WeightFormat::Int4Awq => "int4_awq",
            WeightFormat::Int4Gptq => "int4_gptq",
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The precision of one deployment of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Precision {
    /// How weights are stored.
    pub weights: WeightFormat,
    /// What GEMMs compute in (their tensor-core dtype): the activation format of W8A8 and W4A4
    /// formats, 16-bit for 16-bit and weight-only formats.
    pub gemm: Dtype,
    /// What the KV cache is stored in.
    pub kv: Dtype,
    /// What attention computes in: FP8 when the KV cache and the GEMMs are 8-bit or narrower
    /// floats and the device runs FP8 (FlashAttention-3 FP8), else 16-bit.
    pub attention: Dtype,
}

impl Precision {
    /// The precision of weights stored as `weights` (16-bit kind `half` for 16-bit compute)
    /// with the KV cache in `kv`, on a device that runs `can_run`.
    pub fn resolve(weights: WeightFormat, half: Dtype, kv: Dtype, can_run: &dyn Fn(Dtype) -> bool) -> Precision {
        let gemm = match weights {
            WeightFormat::Fp8 | WeightFormat::Fp8Block => Dtype::Fp8,
            WeightFormat::Int8 => Dtype::Int8,
            WeightFormat::Nvfp4 | WeightFormat::Mxfp4 => Dtype::Fp4,
            WeightFormat::Fp32 | WeightFormat::Bf16 | WeightFormat::Fp16 => half,
            WeightFormat::Int4Awq | WeightFormat::Int4Gptq => half,
        };
        let narrow_float = matches!(gemm, Dtype::Fp8 | Dtype::Fp4);
        let attention = if kv == Dtype::Fp8 && narrow_float && can_run(Dtype::Fp8) { Dtype::Fp8 } else { half };
        Precision { weights, gemm, kv, attention }
    }

    /// Everything in the 16-bit type `half` (fp16 or bf16).
    pub fn sixteen_bit(half: Dtype) -> Precision {
        let weights = if half == Dtype::Fp16 { WeightFormat::Fp16 } else { WeightFormat::Bf16 };
        Precision { weights, gemm: half, kv: half, attention: half }
    }

    /// Bytes of an activation element entering or leaving a GEMM.
    pub fn activation_bytes(&self) -> f64 {
        self.gemm.bytes().clamp(0.5, 2.0)
    }

    /// The dtypes a device must run for this precision.
    pub fn required(&self) -> [Dtype; 2] {
        [self.gemm, self.attention]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_resolve_to_their_compute_dtypes() {
        let hopper = |d: Dtype| d != Dtype::Fp4;
        let p = Precision::resolve(WeightFormat::Fp8, Dtype::Bf16, Dtype::Fp8, &hopper);
        assert_eq!((p.gemm, p.attention, p.activation_bytes()), (Dtype::Fp8, Dtype::Fp8, 1.0));
        let p = Precision::resolve(WeightFormat::Int4Awq, Dtype::Fp16, Dtype::Fp16, &hopper);
        assert_eq!((p.gemm, p.attention), (Dtype::Fp16, Dtype::Fp16));
        assert!((WeightFormat::Int4Awq.bytes_per_param() - 0.53125).abs() < 1e-12);
        // FP8 KV with 16-bit GEMMs keeps 16-bit attention (the cache is dequantised).
        let p = Precision::resolve(WeightFormat::Bf16, Dtype::Bf16, Dtype::Fp8, &hopper);
        assert_eq!(p.attention, Dtype::Bf16);
        let p = Precision::resolve(WeightFormat::Nvfp4, Dtype::Bf16, Dtype::Fp8, &|_| true);
        assert_eq!((p.gemm, p.attention), (Dtype::Fp4, Dtype::Fp8));
    }
}
