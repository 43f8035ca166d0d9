//! Distribution statistics with one percentile definition used everywhere: nearest rank
//! (the smallest value with at least p% of the samples at or below it), which always returns
//! an observed value.

use serde::Serialize;

/// Mean, percentiles and max of a sample. Over zero samples every statistic is `None`
/// (`null` in JSON): there is no such value, and 0 would read as a measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Distribution {
    /// Samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

/// Values with multiplicities, e.g. run-length-coded inter-token gaps.
#[derive(Debug, Clone, Default)]
pub struct WeightedValues {
    pairs: Vec<(f64, u64)>,
}

impl WeightedValues {
    /// Adds `count` copies of `value`.
    pub fn add(&mut self, value: f64, count: u64) {
        if count > 0 {
            self.pairs.push((value, count));
        }
    }

    /// The statistics of the values added so far.
    pub fn distribution(mut self) -> Distribution {
        let count: u64 = self.pairs.iter().map(|(_, c)| c).sum();
        if count == 0 {
            return Distribution::default();
        }
        self.pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let sum: f64 = self.pairs.iter().map(|(v, c)| v * *c as f64).sum();
        let at = |p: f64| {
            let rank = ((p * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (value, c) in &self.pairs {
                seen += c;
                if seen >= rank {
                    return Some(*value);
                }
            }
            self.pairs.last().map(|(v, _)| *v)
        };
        Distribution {
            count,
            mean: Some(sum / count as f64),
            p50: at(0.50),
            p90: at(0.90),
            p95: at(0.95),
            p99: at(0.99),
            max: self.pairs.last().map(|(v, _)| *v),
        }
    }
}

impl Distribution {
    /// Statistics of a histogram of nanoseconds, in seconds.
    pub fn of_histogram_ns(histogram: &super::LogHistogram) -> Distribution {
        if histogram.count() == 0 {
            return Distribution::default();
        }
        let seconds = |ns: u64| Some(ns as f64 * 1e-9);
        Distribution {
            count: histogram.count(),
            mean: Some(histogram.mean() * 1e-9),
            p50: seconds(histogram.percentile(0.50)),
            p90: seconds(histogram.percentile(0.90)),
            p95: seconds(histogram.percentile(0.95)),
            p99: seconds(histogram.percentile(0.99)),
            max: seconds(histogram.max()),
        }
    }

    /// Statistics of plain values.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Distribution {
        let mut weighted = WeightedValues::default();
        for value in values {
            weighted.add(value, 1);
        }
        weighted.distribution()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Distribution::of((1..=100).map(f64::from));
        assert_eq!((d.p50, d.p90, d.p99, d.max, d.mean), (Some(50.0), Some(90.0), Some(99.0), Some(100.0), Some(50.5)));
        let mut w = WeightedValues::default();
        w.add(2.0, 9);
        w.add(10.0, 1);
        let d = w.distribution();
        assert_eq!((d.count, d.p50, d.p90, d.p95, d.max), (10, Some(2.0), Some(2.0), Some(10.0), Some(10.0)));
        let empty = Distribution::of([]);
        assert_eq!(empty.count, 0);
        assert_eq!((empty.mean, empty.p50, empty.p99, empty.max), (None, None, None, None));
    }
}
