//! Randomised load shapes for training agents that must generalise: ramps, staircases, spikes,
//! diurnal curves and bursts, each drawn from a random stream, as a piecewise-constant rate in
//! 10-second steps (1-second steps for bursts of a few seconds) with a given mean over the horizon.
//! [`modulate_seconds`] switches any of them on and off at the scale of seconds, for training on
//! the clustered arrivals of request traces.
//!
//! None of these is a bundled evaluation load: no rush (a held plateau between two steep
//! ramps) and no trace window. The families and their ranges are chosen to cover what an
//! autoscaler meets (slow drifts, steps, short surges, periodic swings, on/off bursts) at loads
//! from a third to three times the mean.

use rand::Rng;

use super::RateSchedule;
use crate::engine::SimTime;

/// The families, in the order a draw picks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeKind {
    Ramp,
    Staircase,
    Spikes,
    Diurnal,
    Bursts,
}

impl ShapeKind {
    pub const ALL: [ShapeKind; 5] =
        [ShapeKind::Ramp, ShapeKind::Staircase, ShapeKind::Spikes, ShapeKind::Diurnal, ShapeKind::Bursts];

    pub fn name(self) -> &'static str {
        match self {
            ShapeKind::Ramp => "ramp",
            ShapeKind::Staircase => "staircase",
            ShapeKind::Spikes => "spikes",
            ShapeKind::Diurnal => "diurnal",
            ShapeKind::Bursts => "bursts",
        }
    }
}

/// Width of the piecewise-constant steps, seconds: 10, or 1 for bursts at the scale of seconds.
const STEP_S: f64 = 10.0;
const FINE_STEP_S: f64 = 1.0;

/// A shape of a random family over `[0, horizon_s)`, rescaled so that its mean rate is `mean_rps`.
pub fn random_shape<R: Rng>(rng: &mut R, mean_rps: f64, horizon_s: f64) -> (RateSchedule, ShapeKind) {
    let kind = ShapeKind::ALL[rng.gen_range(0..ShapeKind::ALL.len())];
    // Half the bursts come and go within seconds (a batch of requests, then quiet), as real
    // request traces do; the others last tens of seconds.
    let fine = kind == ShapeKind::Bursts && rng.gen_bool(0.5);
    let step_s = if fine { FINE_STEP_S } else { STEP_S };
    let steps = (horizon_s / step_s).ceil().max(1.0) as usize;
    let t = |k: usize| k as f64 * step_s / horizon_s.max(1e-9); // fraction of the horizon
    let level: Vec<f64> = match kind {
        ShapeKind::Ramp => {
            let (a, b) = (rng.gen_range(0.2..0.8), rng.gen_range(1.3..2.5));
            let (from, to) = if rng.gen_bool(0.5) { (a, b) } else { (b, a) };
            // The ramp takes a random share of the horizon, holding its ends before and after.
            let (s, e) = (rng.gen_range(0.0..0.4), rng.gen_range(0.6..1.0));
            (0..steps).map(|k| from + (to - from) * ((t(k) - s) / (e - s)).clamp(0.0, 1.0)).collect()
        }
        ShapeKind::Staircase => {
            let n = rng.gen_range(3..=6);
            let levels: Vec<f64> = (0..n).map(|_| rng.gen_range(0.3..2.2)).collect();
            (0..steps).map(|k| levels[((t(k) * n as f64) as usize).min(n - 1)]).collect()
        }
        ShapeKind::Spikes => {
            let base = rng.gen_range(0.4..0.9);
            let mut v = vec![base; steps];
            for _ in 0..rng.gen_range(1..=3) {
                let len = rng.gen_range(3..=12).min(steps);
                let at = rng.gen_range(0..=steps - len);
                let height = rng.gen_range(2.0..4.0);
                v[at..at + len].iter_mut().for_each(|x| *x = height);
            }
            v
        }
        ShapeKind::Diurnal => {
            let (amp, periods, phase) =
                (rng.gen_range(0.3..0.8), rng.gen_range(0.5..2.0), rng.gen_range(0.0..std::f64::consts::TAU));
            (0..steps).map(|k| 1.0 + amp * (std::f64::consts::TAU * periods * t(k) + phase).sin()).collect()
        }
        ShapeKind::Bursts => {
            let (low, high) = if fine {
                (rng.gen_range(0.0..0.3), rng.gen_range(3.0..8.0))
            } else {
                (rng.gen_range(0.3..0.8), rng.gen_range(1.6..3.0))
            };
            let mut v = Vec::with_capacity(steps);
            let mut on = rng.gen_bool(0.3);
            while v.len() < steps {
                let len = if on { rng.gen_range(2..=6) } else { rng.gen_range(3..=12) };
                v.extend(std::iter::repeat_n(if on { high } else { low }, len));
                on = !on;
            }
            v.truncate(steps);
            v
        }
    };
    let mean = level.iter().sum::<f64>() / steps as f64;
    let k = if mean > 0.0 { mean_rps / mean } else { 0.0 };
    let rows: Vec<(f64, f64)> = level.iter().enumerate().map(|(i, l)| (i as f64 * step_s, l * k)).collect();
    let mut schedule = RateSchedule::from_table(&rows, step_s);
    schedule.end = horizon_s;
    (schedule, kind)
}

/// `shape` switched on and off at the scale of seconds, as real request traces arrive: clusters
/// of requests lasting 1-3 seconds, then 1 to `longest_quiet` (drawn from 3 to `quiet_up_to_s`,
/// at least 3) seconds at 0-15% of the level; the result keeps `shape`'s mean over
/// `[0, horizon_s)`. The envelope still moves as `shape` does, so an episode teaches both the
/// slow trend and the second-scale surges on top of it, in 1-second steps. The longer the quiet,
/// the higher and sparser the surges (the same mean in fewer seconds).
pub fn modulate_seconds<R: Rng>(rng: &mut R, shape: &RateSchedule, horizon_s: f64, quiet_up_to_s: u32) -> RateSchedule {
    let seconds = horizon_s.ceil().max(1.0) as usize;
    let longest_quiet = rng.gen_range(3..=quiet_up_to_s.max(3) as usize);
    let quiet_level = rng.gen_range(0.0..0.15);
    let mut on = rng.gen_bool(0.5);
    let mut gate = Vec::with_capacity(seconds);
    while gate.len() < seconds {
        let len = if on { rng.gen_range(1..=3) } else { rng.gen_range(1..=longest_quiet) };
        gate.extend(std::iter::repeat_n(if on { 1.0 } else { quiet_level }, len));
        on = !on;
    }
    gate.truncate(seconds);
    let raw: Vec<f64> = gate.iter().enumerate().map(|(i, g)| g * shape.rate_at(i as f64 + 0.5)).collect();
    let (before, after) = (
        shape.expected_arrivals(SimTime::from_secs_f64(horizon_s)),
        raw.iter().enumerate().map(|(i, r)| r * (horizon_s - i as f64).min(1.0)).sum::<f64>(),
    );
    let k = if after > 0.0 { before / after } else { 0.0 };
    let rows: Vec<(f64, f64)> = raw.iter().enumerate().map(|(i, r)| (i as f64, r * k)).collect();
    let mut schedule = RateSchedule::from_table(&rows, 1.0);
    schedule.end = horizon_s;
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_family_appears_with_the_mean_asked_for() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let (s, kind) = random_shape(&mut rng, 50.0, 600.0);
            seen.insert(kind.name());
            let mean = s.expected_arrivals(crate::engine::SimTime::from_secs(600)) / 600.0;
            assert!((mean - 50.0).abs() < 1e-6, "{} mean {mean}", kind.name());
            assert!(s.rates.iter().all(|r| r.is_finite() && *r >= 0.0));
            assert_eq!(s.end, 600.0);
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
    }

    #[test]
    fn the_same_stream_gives_the_same_shape() {
        let a = random_shape(&mut rand_pcg::Pcg64Mcg::seed_from_u64(3), 10.0, 900.0);
        let b = random_shape(&mut rand_pcg::Pcg64Mcg::seed_from_u64(3), 10.0, 900.0);
        assert_eq!(a, b);
    }

    #[test]
    fn second_scale_modulation_keeps_the_mean_and_switches_within_seconds() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(11);
        for _ in 0..50 {
            let (shape, _) = random_shape(&mut rng, 80.0, 600.0);
            let m = modulate_seconds(&mut rng, &shape, 600.0, 12);
            let mean = mean_rate(&m);
            assert!((mean - 80.0).abs() < 1e-6, "mean {mean}");
            assert_eq!(m.end, 600.0);
            assert!(m.rates.iter().all(|r| r.is_finite() && *r >= 0.0));
            // Quiet seconds (at most 15% of the envelope) and surges alternate: the busiest
            // second is well above the mean.
            let peak = peak_rate(&m);
            assert!(peak > 1.5 * 80.0, "peak {peak}");
        }
    }

    /// `m`'s mean rate over its 600 s.
    fn mean_rate(m: &RateSchedule) -> f64 {
        m.expected_arrivals(crate::engine::SimTime::from_secs(600)) / 600.0
    }

    /// `m`'s busiest second.
    fn peak_rate(m: &RateSchedule) -> f64 {
        m.rates.iter().cloned().fold(0.0, f64::max)
    }

    /// The longest run of quiet seconds (below the mean) in `m`'s 1-second rates, read second by
    /// second (equal neighbours are merged in the schedule).
    fn longest_quiet(m: &RateSchedule, mean: f64) -> usize {
        let (mut longest, mut run) = (0, 0);
        for i in 0..m.end as usize {
            run = if m.rate_at(i as f64 + 0.5) < mean { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        longest
    }

    #[test]
    fn longer_quiet_gaps_make_sparser_higher_surges_with_the_same_mean() {
        // On a flat shape at 80/s, surges last 1-3 s. Quiet gaps drawn up to 12 s never exceed
        // 12 s; drawn up to 40 s, they exceed it in some episodes, and the busiest second is
        // higher on average (the same arrivals in fewer seconds).
        let flat = RateSchedule::from_table(&[(0.0, 80.0)], 600.0);
        let draw = |up_to: u32| -> Vec<RateSchedule> {
            let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
            (0..40).map(|_| modulate_seconds(&mut rng, &flat, 600.0, up_to)).collect()
        };
        let (short, long) = (draw(12), draw(40));
        for m in short.iter().chain(&long) {
            let mean = mean_rate(m);
            assert!((mean - 80.0).abs() < 1e-6, "mean {mean}");
        }
        assert!(short.iter().all(|m| longest_quiet(m, 80.0) <= 12));
        assert!(long.iter().any(|m| longest_quiet(m, 80.0) > 12));
        let mean_peak = |ms: &[RateSchedule]| ms.iter().map(peak_rate).sum::<f64>() / ms.len() as f64;
        assert!(mean_peak(&long) > 1.5 * mean_peak(&short), "{} vs {}", mean_peak(&long), mean_peak(&short));
    }
}
