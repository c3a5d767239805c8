//! CPU demand of one visit, as a distribution of core-time.
//!
//! A demand is what a visit would take on one full core. An instance's worker slot runs at
//! `InstanceShape::slot_cores()` cores, so the visit's service time is `demand / slot_cores`: halving
//! a service's CPU limit doubles its service times.

use rand::Rng;
use rand_distr::{Distribution, Exp, Gamma, LogNormal};

/// Core-time of one visit, in core-microseconds.
#[derive(Clone, Copy, Debug)]
pub enum Demand {
    Constant { mean_us: f64 },
    Exponential { mean_us: f64, dist: Exp<f64> },
    LogNormal { mean_us: f64, cv: f64, dist: LogNormal<f64> },
    Gamma { mean_us: f64, cv: f64, dist: Gamma<f64> },
}

impl PartialEq for Demand {
    fn eq(&self, other: &Self) -> bool {
        self.describe() == other.describe()
    }
}

impl Demand {
    /// Every value is exactly `mean_ms`.
    pub fn constant(mean_ms: f64) -> Demand {
        Demand::Constant { mean_us: mean_ms * 1000.0 }
    }

    /// Exponential with the given mean (CV 1). `mean_ms` must be > 0.
    pub fn exponential(mean_ms: f64) -> Demand {
        let mean_us = mean_ms * 1000.0;
        Demand::Exponential { mean_us, dist: Exp::new(1.0 / mean_us).expect("validated: mean > 0") }
    }

    /// Log-normal with the given mean and coefficient of variation: `sigma^2 = ln(1 + cv^2)`,
    /// `mu = ln(mean) - sigma^2 / 2`.
    pub fn lognormal(mean_ms: f64, cv: f64) -> Demand {
        let mean_us = mean_ms * 1000.0;
        let s2 = (1.0 + cv * cv).ln();
        let dist = LogNormal::new(mean_us.ln() - s2 / 2.0, s2.sqrt()).expect("validated: mean > 0, cv > 0");
        Demand::LogNormal { mean_us, cv, dist }
    }

    /// Gamma with the given mean and coefficient of variation: shape `1/cv^2`, scale `mean*cv^2`.
    pub fn gamma(mean_ms: f64, cv: f64) -> Demand {
        let mean_us = mean_ms * 1000.0;
        let dist = Gamma::new(1.0 / (cv * cv), mean_us * cv * cv).expect("validated: mean > 0, cv > 0");
        Demand::Gamma { mean_us, cv, dist }
    }

    pub fn mean_core_us(&self) -> f64 {
        match *self {
            Demand::Constant { mean_us }
            | Demand::Exponential { mean_us, .. }
            | Demand::LogNormal { mean_us, .. }
            | Demand::Gamma { mean_us, .. } => mean_us,
        }
    }

    /// Squared coefficient of variation (variance / mean^2).
    pub fn cv2(&self) -> f64 {
        match *self {
            Demand::Constant { .. } => 0.0,
            Demand::Exponential { .. } => 1.0,
            Demand::LogNormal { cv, .. } | Demand::Gamma { cv, .. } => cv * cv,
        }
    }

    /// Draws one demand, core-microseconds.
    #[inline]
    pub fn sample<R: Rng>(&self, rng: &mut R) -> f64 {
        match self {
            Demand::Constant { mean_us } => *mean_us,
            Demand::Exponential { dist, .. } => dist.sample(rng),
            Demand::LogNormal { dist, .. } => dist.sample(rng),
            Demand::Gamma { dist, .. } => dist.sample(rng),
        }
    }

    /// A one-line description, e.g. `exponential(mean 1.5 ms)`.
    pub fn describe(&self) -> String {
        match *self {
            Demand::Constant { mean_us } => format!("constant({} ms)", mean_us / 1000.0),
            Demand::Exponential { mean_us, .. } => {
                format!("exponential(mean {} ms)", mean_us / 1000.0)
            }
            Demand::LogNormal { mean_us, cv, .. } => {
                format!("lognormal(mean {} ms, cv {cv})", mean_us / 1000.0)
            }
            Demand::Gamma { mean_us, cv, .. } => {
                format!("gamma(mean {} ms, cv {cv})", mean_us / 1000.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sample_mean_cv(d: Demand) -> (f64, f64) {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64;
        (m, var.sqrt() / m)
    }

    #[test]
    fn distributions_have_the_mean_and_cv_asked_for() {
        for (d, cv) in
            [(Demand::exponential(2.0), 1.0), (Demand::lognormal(2.0, 0.5), 0.5), (Demand::gamma(2.0, 2.0), 2.0)]
        {
            let (m, c) = sample_mean_cv(d);
            assert!((m - 2000.0).abs() / 2000.0 < 0.02, "{}: mean {m}", d.describe());
            assert!((c - cv).abs() / cv < 0.05, "{}: cv {c}", d.describe());
        }
        assert_eq!(Demand::constant(1.5).sample(&mut rand_pcg::Pcg64Mcg::seed_from_u64(1)), 1500.0);
    }
}
