//! A log-linear histogram of nanosecond durations (HDR-histogram layout): values below 1024 ns
//! are exact, larger ones fall in buckets 1/1024 of their power of two wide. Reported
//! percentiles are bucket midpoints, so their relative error is at most 1/2048 (0.05%); the
//! count, sum (hence mean) and max are exact. Memory is fixed (about 450 KiB) however many
//! values are added, which is why inter-token gaps (one per generated token) use it.

const SUB_BITS: u32 = 10;
const SUB: u64 = 1 << SUB_BITS;

/// A histogram of u64 values.
#[derive(Debug, Clone)]
pub struct LogHistogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    max: u64,
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram { counts: vec![0; ((64 - SUB_BITS as u64 + 1) * SUB) as usize], count: 0, sum: 0, max: 0 }
    }
}

fn index_of(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // ≥ SUB_BITS
    let shift = exponent - SUB_BITS;
    let sub = (value >> shift) - SUB;
    (SUB + u64::from(shift) * SUB + sub) as usize
}

fn midpoint_of(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let shift = (index - SUB) / SUB;
    let sub = (index - SUB) % SUB;
    let lower = (SUB + sub) << shift;
    lower + ((1u64 << shift) >> 1)
}

impl LogHistogram {
    /// Adds `count` occurrences of `value`.
    pub fn add(&mut self, value: u64, count: u64) {
        self.counts[index_of(value)] += count;
        self.count += count;
        self.sum += u128::from(value) * u128::from(count);
        self.max = self.max.max(value);
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact mean.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// Exact maximum.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Nearest-rank percentile `p` in [0, 1] (bucket midpoint, capped at the exact max).
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return midpoint_of(index).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_half_a_bucket_of_exact() {
        let values: Vec<u64> = (0..20_000u64).map(|i| (i * 7919 % 20_000) * 1_337 + 17).collect();
        let mut histogram = LogHistogram::default();
        for &v in &values {
            histogram.add(v, 1);
        }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for p in [0.5, 0.9, 0.95, 0.99, 1.0] {
            let exact = sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
            let approx = histogram.percentile(p);
            let error = (approx as f64 - exact as f64).abs() / exact as f64;
            assert!(error <= 1.0 / 2048.0 + 1e-12, "p{p}: {approx} vs {exact}");
        }
        assert_eq!(histogram.max(), *sorted.last().unwrap());
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        assert!((histogram.mean() - mean).abs() < 1e-6);
    }

    #[test]
    fn small_values_are_exact() {
        for v in [0u64, 1, 1023, 1024, 1025, 4096, u64::MAX] {
            let i = index_of(v);
            let mid = midpoint_of(i);
            assert!(mid.abs_diff(v) as f64 <= (v as f64 / 2048.0).max(0.0) + 1.0, "{v} -> {mid}");
        }
    }
}
