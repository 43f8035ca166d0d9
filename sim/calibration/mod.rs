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
pub use fit::{errors_by_operator, fit_compute, operator_samples, predict, OperatorSample};
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
