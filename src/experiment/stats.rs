//! Statistics over seeds: mean, sample standard deviation, 95% confidence interval (Student t),
//! and Cliff's delta with its magnitude label (Romano et al. 2006 thresholds).

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Summary of one metric over runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Describe {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for a single value.
    pub std: f64,
    /// Half-width of the 95% confidence interval of the mean: `t(0.975, n-1) * std / sqrt(n)`;
    /// `None` with fewer than 2 values.
    pub ci95: Option<f64>,
}

pub fn describe(xs: &[f64]) -> Describe {
    let n = xs.len();
    if n == 0 {
        return Describe { n, mean: f64::NAN, std: f64::NAN, ci95: None };
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Describe { n, mean, std: 0.0, ci95: None };
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    Describe { n, mean, std, ci95: t_half_width(std, n, 0.95) }
}

/// Half-width of the two-sided `level` Student-t interval of a mean of `n` values whose sample
/// standard deviation is `std`: `t((1 + level) / 2, n - 1) * std / sqrt(n)`; `None` with fewer than
/// 2 values. `level` in (0, 1).
pub fn t_half_width(std: f64, n: usize, level: f64) -> Option<f64> {
    if n < 2 {
        return None;
    }
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("n >= 2 gives a valid t").inverse_cdf((1.0 + level) / 2.0);
    Some(t * std / (n as f64).sqrt())
}

/// The difference of two means from independent samples, with Welch's interval (unequal
/// variances; Welch-Satterthwaite degrees of freedom).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Welch {
    /// `mean(xs) - mean(ys)`.
    pub diff: f64,
    /// Its standard error, `sqrt(var(xs)/n_x + var(ys)/n_y)`.
    pub se: f64,
    pub df: f64,
    /// Half-width of the two-sided `level` interval: `t((1 + level) / 2, df) * se`.
    pub half_width: f64,
}

/// Welch's comparison of `xs` with `ys` at `level` in (0, 1); `None` unless both have at least 2
/// values and not both have zero variance.
pub fn welch(xs: &[f64], ys: &[f64], level: f64) -> Option<Welch> {
    let (x, y) = (describe(xs), describe(ys));
    if x.n < 2 || y.n < 2 {
        return None;
    }
    let (vx, vy) = (x.std * x.std / x.n as f64, y.std * y.std / y.n as f64);
    if vx + vy == 0.0 {
        return None;
    }
    let df = (vx + vy).powi(2) / (vx * vx / (x.n - 1) as f64 + vy * vy / (y.n - 1) as f64);
    let se = (vx + vy).sqrt();
    let t = StudentsT::new(0.0, 1.0, df).expect("df > 0 gives a valid t").inverse_cdf((1.0 + level) / 2.0);
    Some(Welch { diff: x.mean - y.mean, se, df, half_width: t * se })
}

/// Cliff's delta of `xs` against `ys`: `(#(x > y) - #(x < y)) / (m n)` over all pairs.
pub fn cliffs_delta(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.is_empty() || ys.is_empty() {
        return None;
    }
    let mut more = 0i64;
    let mut less = 0i64;
    for x in xs {
        for y in ys {
            if x > y {
                more += 1;
            } else if x < y {
                less += 1;
            }
        }
    }
    Some((more - less) as f64 / (xs.len() * ys.len()) as f64)
}

/// Magnitude of a Cliff's delta: |d| < 0.147 negligible, < 0.33 small, < 0.474 medium, else large.
pub fn magnitude(d: f64) -> &'static str {
    let a = d.abs();
    if a < 0.147 {
        "negligible"
    } else if a < 0.33 {
        "small"
    } else if a < 0.474 {
        "medium"
    } else {
        "large"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_by_hand() {
        // 10 values 1..=10: mean 5.5, sd sqrt(82.5/9) = 3.0277, t(0.975, 9) = 2.262157,
        // half-width 2.262157 * 3.0277 / sqrt(10) = 2.1659.
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        let d = describe(&xs);
        assert_eq!(d.mean, 5.5);
        assert!((d.std - (82.5f64 / 9.0).sqrt()).abs() < 1e-12);
        assert!((d.ci95.unwrap() - 2.262157 * (82.5f64 / 9.0).sqrt() / 10f64.sqrt()).abs() < 1e-5);
        assert_eq!(describe(&[4.0]).ci95, None);
    }

    #[test]
    fn welch_by_hand() {
        // Equal sizes and variances: {1,2,3} vs {4,5,6}, variance 1 each, se = sqrt(2/3),
        // df = (2/3)^2 / ((1/3)^2/2 + (1/3)^2/2) = 4, t(0.975, 4) = 2.776445.
        let w = welch(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0], 0.95).unwrap();
        assert_eq!(w.diff, -3.0);
        assert!((w.se - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((w.df - 4.0).abs() < 1e-12);
        assert!((w.half_width - 2.776445 * (2.0f64 / 3.0).sqrt()).abs() < 1e-5);
        // Unequal: {1,2,3,4} (variance 5/3) vs {2,4,6} (variance 4): vx = 5/12, vy = 4/3,
        // df = 1.75^2 / ((5/12)^2/3 + (4/3)^2/2) = 3.0625 / 0.946759 = 3.23468.
        let w = welch(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0], 0.95).unwrap();
        assert_eq!(w.diff, -1.5);
        assert!((w.se - 1.75f64.sqrt()).abs() < 1e-12);
        assert!((w.df - 3.23468).abs() < 1e-4, "{}", w.df);
        assert_eq!(welch(&[1.0], &[2.0, 3.0], 0.95), None);
        assert_eq!(welch(&[1.0, 1.0], &[2.0, 2.0], 0.95), None);
    }

    #[test]
    fn cliffs_delta_by_hand() {
        // {1,2,3} vs {2,3,4}: x > y in 1 pair (3 > 2), x < y in 6 pairs -> (1 - 6) / 9.
        let d = cliffs_delta(&[1.0, 2.0, 3.0], &[2.0, 3.0, 4.0]).unwrap();
        assert!((d - (-5.0 / 9.0)).abs() < 1e-12);
        assert_eq!(magnitude(d), "large");
        // {1,2,3,4} vs {3,4,5,6}... x>y: (4>3) = 1; x<y: 1:4, 2:4, 3:3 (4,5,6), 4:2 (5,6) -> 13.
        let d = cliffs_delta(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]).unwrap();
        assert!((d - (1.0 - 13.0) / 16.0).abs() < 1e-12);
        assert_eq!(magnitude(0.1), "negligible");
        assert_eq!(magnitude(-0.2), "small");
        assert_eq!(magnitude(0.4), "medium");
        assert_eq!(cliffs_delta(&[], &[1.0]), None);
    }
}
