//! Simulated time as an integer count of nanoseconds.
//!
//! Integer time makes event order exact: two events computed by different paths compare equal
//! only when they really are simultaneous. Conversions from floating-point seconds round to the
//! nearest nanosecond and are the only place where rounding happens.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A point in simulated time, in nanoseconds since the start of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(u64);

impl SimTime {
    /// The start of the run.
    pub const ZERO: SimTime = SimTime(0);
    /// The largest representable time (about 584 years).
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// A time of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: u64) -> Self {
        SimTime(nanos)
    }

    /// The time `seconds` after the start, rounded to the nearest nanosecond; negative or
    /// non-finite inputs saturate (callers validate inputs before they get here).
    pub fn from_secs_f64(seconds: f64) -> Self {
        SimTime(secs_to_nanos(seconds))
    }

    /// Nanoseconds since the start.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the start.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-9
    }

    /// `self + duration_ns`, saturating at [`SimTime::MAX`].
    pub fn after_nanos(self, duration_ns: u64) -> Self {
        SimTime(self.0.saturating_add(duration_ns))
    }

    /// Nanoseconds from `earlier` to `self` (zero if `earlier` is later).
    pub fn nanos_since(self, earlier: SimTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Converts a duration in seconds to whole nanoseconds (nearest; negative and NaN give 0).
pub fn secs_to_nanos(seconds: f64) -> u64 {
    if seconds.is_nan() || seconds <= 0.0 {
        0
    } else if seconds >= u64::MAX as f64 * 1e-9 {
        u64::MAX
    } else {
        (seconds * 1e9).round() as u64
    }
}

impl Add<u64> for SimTime {
    type Output = SimTime;
    fn add(self, duration_ns: u64) -> SimTime {
        self.after_nanos(duration_ns)
    }
}

impl AddAssign<u64> for SimTime {
    fn add_assign(&mut self, duration_ns: u64) {
        *self = self.after_nanos(duration_ns);
    }
}

impl Sub for SimTime {
    type Output = u64;
    fn sub(self, earlier: SimTime) -> u64 {
        self.nanos_since(earlier)
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.9}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_to_nearest_nanosecond() {
        assert_eq!(SimTime::from_secs_f64(1.5e-9).as_nanos(), 2);
        assert_eq!(SimTime::from_secs_f64(0.25).as_nanos(), 250_000_000);
        assert_eq!(SimTime::from_secs_f64(-3.0), SimTime::ZERO);
        assert_eq!(SimTime::from_secs_f64(f64::NAN), SimTime::ZERO);
        assert_eq!(SimTime::from_secs_f64(1e30), SimTime::MAX);
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(SimTime::MAX + 5, SimTime::MAX);
        assert_eq!(SimTime::from_nanos(3) - SimTime::from_nanos(10), 0);
    }
}
