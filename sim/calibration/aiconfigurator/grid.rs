//! Latency grids: measured latencies on a rectangular grid of up to three log-spaced axes,
//! interpolated multilinearly in log space (log latency against log sizes), with a
//! conservative rule outside the grid.
//!
//! Log-log interpolation reproduces power laws exactly (a GEMM's time grows linearly in each
//! of m, n and k once it is compute-bound, so halfway between 2048 and 4096 in log space is
//! the geometric mean of the two times). Outside the grid: below an axis's smallest value the
//! edge latency is held (small kernels are launch-bound, they do not get faster), and above
//! its largest the edge latency grows as that axis's `growth_exponent` says (the work ratio:
//! 1 for GEMM sizes, 2 for a prompt's length in causal attention), which is what a kernel
//! already at its best efficiency does. This module is the data structure only; which axes a
//! table has is `convert`'s business and which operator asks is `times`'s.

use crate::error::Result;
use crate::input::YamlSource;
use serde::{Deserialize, Serialize};

/// Most axes a grid has.
pub const MAX_AXES: usize = 3;

/// One axis as written in a calibration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AxisFile {
    /// What the axis measures (with its unit), e.g. `m_tokens`.
    pub name: String,
    /// Increasing values above zero, separated by spaces.
    pub values: String,
    /// How latency grows past the largest value: latency ∝ (value / largest)^exponent.
    pub growth_exponent: f64,
}

/// A grid as written in a calibration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GridFile {
    /// The axes, outermost first.
    pub axes: Vec<AxisFile>,
    /// Cells measured (the rest were filled from their nearest measured cell by the rule
    /// outside the grid).
    pub measured_cells: usize,
    /// Latencies in µs, one line per combination of the outer axes, the innermost axis
    /// varying along each line (4 significant digits).
    pub latency_us: Vec<String>,
}

/// `value` with 4 significant digits and no trailing zeros (deterministic text for files).
pub fn format_significant(value: f64) -> String {
    if !(value.is_finite() && value > 0.0) {
        return format!("{value}");
    }
    let magnitude = value.log10().floor() as i32;
    let decimals = (3 - magnitude).max(0) as usize;
    let scale = 10f64.powi(magnitude - 3);
    let rounded = (value / scale).round() * scale;
    let text = format!("{rounded:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A grid ready for lookups: natural logs of axes and latencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    dims: usize,
    ln_axes: [Vec<f64>; MAX_AXES],
    exponents: [f64; MAX_AXES],
    strides: [usize; MAX_AXES],
    /// ln(latency in seconds), row-major.
    ln_latency_s: Vec<f64>,
}

impl Grid {
    /// A grid of `axes` (values increasing, above zero) with `latency_s` in row-major order.
    /// Err is a message for the caller to place.
    pub fn new(axes: &[(Vec<f64>, f64)], latency_s: &[f64]) -> Result<Grid, String> {
        if axes.is_empty() || axes.len() > MAX_AXES {
            return Err(format!("a grid has 1 to {MAX_AXES} axes, found {}", axes.len()));
        }
        let mut grid = Grid {
            dims: axes.len(),
            ln_axes: Default::default(),
            exponents: [0.0; MAX_AXES],
            strides: [0; MAX_AXES],
            ln_latency_s: Vec::with_capacity(latency_s.len()),
        };
        let mut cells = 1usize;
        for (d, (values, exponent)) in axes.iter().enumerate().rev() {
            if values.is_empty() {
                return Err(format!("axis {d} has no values"));
            }
            if values.iter().any(|v| !(v.is_finite() && *v > 0.0)) || values.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("axis {d}: values must be finite, above zero and increasing"));
            }
            if !(exponent.is_finite() && (0.0..=4.0).contains(exponent)) {
                return Err(format!("axis {d}: growth exponent {exponent} is outside 0..=4"));
            }
            grid.ln_axes[d] = values.iter().map(|v| v.ln()).collect();
            grid.exponents[d] = *exponent;
            grid.strides[d] = cells;
            cells = cells.saturating_mul(values.len());
        }
        if latency_s.len() != cells {
            return Err(format!(
                "expected {cells} latencies (the product of the axis lengths), found {}",
                latency_s.len()
            ));
        }
        if let Some(bad) = latency_s.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(format!("latency {bad} is not a finite positive number"));
        }
        grid.ln_latency_s.extend(latency_s.iter().map(|v| v.ln()));
        Ok(grid)
    }

    /// The grid of a calibration file's `field`. Each problem is placed at the axis, the
    /// exponent or the line of latencies at fault.
    pub fn from_file(file: &GridFile, source: &YamlSource, field: &str) -> Result<Grid> {
        let mut axes = Vec::with_capacity(file.axes.len());
        for (i, axis) in file.axes.iter().enumerate() {
            let at = format!("{field}.axes[{i}]");
            let values = parse_numbers(&axis.values)
                .map_err(|e| source.error(&format!("{at}.values"), format!("{}: {e}", axis.name)))?;
            if values.is_empty() {
                return Err(source.error(&format!("{at}.values"), format!("{}: the axis has no values", axis.name)));
            }
            if let Some(bad) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(source.error(
                    &format!("{at}.values"),
                    format!("{}: {bad} is not a finite number above zero", axis.name),
                ));
            }
            if let Some(pair) = values.windows(2).find(|w| w[0] >= w[1]) {
                return Err(source.error(
                    &format!("{at}.values"),
                    format!("{}: values must be increasing, but {} follows {}", axis.name, pair[1], pair[0]),
                ));
            }
            let exponent = axis.growth_exponent;
            if !(exponent.is_finite() && (0.0..=4.0).contains(&exponent)) {
                return Err(source.error(
                    &format!("{at}.growth_exponent"),
                    format!("{}: growth exponent {exponent} is outside 0..=4", axis.name),
                ));
            }
            axes.push((values, exponent));
        }
        if axes.is_empty() || axes.len() > MAX_AXES {
            return Err(source
                .error(&format!("{field}.axes"), format!("a grid has 1 to {MAX_AXES} axes, found {}", axes.len())));
        }
        let innermost = axes.last().map_or(0, |(v, _)| v.len());
        let lines = axes[..axes.len() - 1].iter().fold(1usize, |n, (v, _)| n.saturating_mul(v.len()));
        if file.latency_us.len() != lines {
            return Err(source.error(
                &format!("{field}.latency_us"),
                format!(
                    "expected {lines} lines of latencies (one per combination of the outer axes' values), found {}",
                    file.latency_us.len()
                ),
            ));
        }
        let mut latency_s = Vec::with_capacity(lines.saturating_mul(innermost));
        for (line, text) in file.latency_us.iter().enumerate() {
            let at = format!("{field}.latency_us[{line}]");
            let values = parse_numbers(text).map_err(|e| source.error(&at, e))?;
            if values.len() != innermost {
                return Err(source.error(
                    &at,
                    format!(
                        "expected {innermost} latencies, one per value of the innermost axis, found {}",
                        values.len()
                    ),
                ));
            }
            if let Some(bad) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(source.error(&at, format!("latency {bad} µs is not a finite number above zero")));
            }
            latency_s.extend(values.into_iter().map(|us| us * 1e-6));
        }
        Grid::new(&axes, &latency_s).map_err(|e| source.error(field, e))
    }

    /// Seconds at `coords` (one per axis, each above zero).
    #[inline]
    pub fn seconds(&self, coords: &[f64]) -> f64 {
        let mut base = [0usize; MAX_AXES];
        let mut frac = [0f64; MAX_AXES];
        let mut two = [false; MAX_AXES];
        let mut ln_scale = 0.0;
        for d in 0..self.dims {
            let axis = &self.ln_axes[d];
            let x = coords[d].max(f64::MIN_POSITIVE).ln();
            let last = axis.len() - 1;
            if x >= axis[last] {
                // Past the grid: the edge value, grown by the work ratio.
                base[d] = last;
                ln_scale += self.exponents[d] * (x - axis[last]);
            } else if x > axis[0] {
                let i = axis.partition_point(|&a| a <= x) - 1;
                base[d] = i;
                frac[d] = (x - axis[i]) / (axis[i + 1] - axis[i]);
                two[d] = true;
            }
            // Below the grid: the edge value held (base 0, no fraction).
        }
        let mut ln_value = 0.0;
        for corner in 0..(1usize << self.dims) {
            let mut weight = 1.0;
            let mut index = 0;
            for d in 0..self.dims {
                let upper = corner >> d & 1 == 1;
                if upper && !two[d] {
                    weight = 0.0;
                    break;
                }
                weight *= if upper {
                    frac[d]
                } else if two[d] {
                    1.0 - frac[d]
                } else {
                    1.0
                };
                index += (base[d] + usize::from(upper)) * self.strides[d];
            }
            if weight > 0.0 {
                ln_value += weight * self.ln_latency_s[index];
            }
        }
        (ln_value + ln_scale).exp()
    }
}

/// Space-separated numbers.
fn parse_numbers(text: &str) -> Result<Vec<f64>, String> {
    text.split_whitespace().map(|word| word.parse::<f64>().map_err(|_| format!("{word:?} is not a number"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_laws_are_exact_inside_and_work_grows_outside() {
        // latency = 1e-9 × m × n on a coarse grid.
        let m = vec![1.0, 16.0, 256.0];
        let n = vec![2.0, 64.0];
        let values: Vec<f64> = m.iter().flat_map(|a| n.iter().map(move |b| 1e-9 * a * b)).collect();
        let grid = Grid::new(&[(m, 1.0), (n, 0.0)], &values).unwrap();
        let at = |a: f64, b: f64| grid.seconds(&[a, b]);
        assert!((at(4.0, 8.0) / (1e-9 * 32.0) - 1.0).abs() < 1e-12);
        // Above m's largest value latency grows with m; above n's it is held (exponent 0).
        assert!((at(1024.0, 64.0) / (1e-9 * 1024.0 * 64.0) - 1.0).abs() < 1e-12);
        assert!((at(256.0, 1024.0) / (1e-9 * 256.0 * 64.0) - 1.0).abs() < 1e-12);
        // Below the grid the edge is held.
        assert!((at(0.5, 1.0) / (1e-9 * 2.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(format_significant(13.4049), "13.4");
        assert_eq!(format_significant(2.50104), "2.501");
        assert_eq!(format_significant(280_012.0), "280000");
        assert_eq!(format_significant(0.012346), "0.01235");
        assert_eq!(format_significant(999.96), "1000");
    }

    #[test]
    fn bad_grids_are_refused() {
        assert!(Grid::new(&[(vec![2.0, 1.0], 1.0)], &[1.0, 1.0]).is_err());
        assert!(Grid::new(&[(vec![1.0, 2.0], 1.0)], &[1.0]).is_err());
        assert!(Grid::new(&[(vec![1.0, 2.0], 1.0)], &[1.0, f64::NAN]).is_err());
    }
}
