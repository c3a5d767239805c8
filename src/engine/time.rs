//! Integer simulated time.
//!
//! Time is a count of microseconds since the start of the run. Integers make event order exact: two
//! events scheduled for "the same time" really compare equal, and no float epsilon can reorder them.

use std::fmt;

/// A point in simulated time (or a duration), in whole microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    pub const MAX: SimTime = SimTime(u64::MAX);
    pub const MICROS_PER_SEC: u64 = 1_000_000;

    pub const fn from_micros(us: u64) -> Self {
        SimTime(us)
    }

    pub const fn from_secs(s: u64) -> Self {
        SimTime(s * Self::MICROS_PER_SEC)
    }

    pub const fn from_millis(ms: u64) -> Self {
        SimTime(ms * 1000)
    }

    /// Converts seconds to microseconds, rounding to the nearest microsecond. Negative and non-finite
    /// inputs saturate (0 and `MAX`); callers validate user input before it gets here.
    pub fn from_secs_f64(s: f64) -> Self {
        if s.is_nan() || s <= 0.0 {
            return SimTime::ZERO;
        }
        let us = (s * Self::MICROS_PER_SEC as f64).round();
        if us >= u64::MAX as f64 {
            SimTime::MAX
        } else {
            SimTime(us as u64)
        }
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / Self::MICROS_PER_SEC as f64
    }

    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Whole seconds, rounded down.
    pub const fn whole_secs(self) -> u64 {
        self.0 / Self::MICROS_PER_SEC
    }

    pub const fn saturating_add(self, d: SimTime) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }

    pub const fn saturating_sub(self, d: SimTime) -> SimTime {
        SimTime(self.0.saturating_sub(d.0))
    }
}

impl std::ops::Add for SimTime {
    type Output = SimTime;
    fn add(self, rhs: SimTime) -> SimTime {
        SimTime(self.0 + rhs.0)
    }
}

impl std::ops::Sub for SimTime {
    type Output = SimTime;
    fn sub(self, rhs: SimTime) -> SimTime {
        SimTime(self.0 - rhs.0)
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        assert_eq!(SimTime::from_secs(15).as_micros(), 15_000_000);
        assert_eq!(SimTime::from_secs_f64(0.0000015).as_micros(), 2); // 1.5 us rounds to 2
        assert_eq!(SimTime::from_secs_f64(-3.0), SimTime::ZERO);
        assert_eq!(SimTime::from_millis(250).as_secs_f64(), 0.25);
        assert_eq!(SimTime::from_secs(7).whole_secs(), 7);
    }
}
