//! Measured data servesim is judged against: readers for Vidur's operator profiles and
//! comparisons of the cost model with them.
//!
//! Nothing here runs during a simulation except reading a [`Calibration`] file and looking up
//! measured operator times ([`aiconfigurator::MeasuredTimes`]); the rest is for fidelity
//! checks and `servesim calibrate`.

pub mod aiconfigurator;
mod file;
mod fit;
mod network;
mod vidur;

pub use file::Calibration;
pub use fit::{carry_compute, errors_by_operator, fit_compute, operator_samples, predict, OperatorSample};
pub use network::{fit_network, network_errors_by_band, read_vidur_network, CollectiveCurve, NetworkSample};
pub use vidur::{read_vidur_compute, VidurComputeRow, VidurModelShape};

/// Median of absolute percentage errors (as a fraction) of (predicted, measured) pairs.
pub fn median_absolute_percentage_error(pairs: &[(f64, f64)]) -> f64 {
    let mut errors: Vec<f64> = pairs.iter().filter(|(_, m)| *m > 0.0).map(|(p, m)| ((p - m) / m).abs()).collect();
    if errors.is_empty() {
        return f64::NAN;
    }
    errors.sort_by(f64::total_cmp);
    let n = errors.len();
    if n % 2 == 1 {
        errors[n / 2]
    } else {
        (errors[n / 2 - 1] + errors[n / 2]) / 2.0
    }
}

/// Seconds a static batch of `batch` prompts of `input_tokens` takes to produce `output_tokens`
/// each (TensorRT-LLM's gptSessionBenchmark): one context step for the whole batch, then
/// `output_tokens − 1` decode steps whose context grows (priced every 16 steps at the middle
/// of the stride).
pub fn static_batch_seconds(
    cost: &mut dyn crate::cost::CostModel,
    batch: u64,
    input_tokens: u64,
    output_tokens: u64,
) -> f64 {
    let mut shape = crate::model::BatchShape::default();
    for _ in 0..batch {
        shape.add_prefill_chunk(0, input_tokens, true);
    }
    let mut seconds = cost.iteration(&shape).duration_ns as f64 * 1e-9;
    const STRIDE: u64 = 16;
    let mut step = 1;
    while step < output_tokens {
        let steps = STRIDE.min(output_tokens - step);
        let mut shape = crate::model::BatchShape::default();
        for _ in 0..batch {
            shape.add_decode(input_tokens + step + steps / 2);
        }
        seconds += cost.iteration(&shape).duration_ns as f64 * 1e-9 * steps as f64;
        step += steps;
    }
    seconds
}
