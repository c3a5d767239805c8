//! Arrival processes: from a rate schedule (or a recorded trace) to arrival times.
//!
//! Rate-driven arrivals use the time-change construction: the process draws unit-mean gaps in
//! "operational time" (the integral of the rate), and each gap is mapped back to clock time through
//! the piecewise-constant rate. With exponential gaps this is exactly a non-homogeneous Poisson
//! process; with constant gaps it is evenly spaced arrivals; with gamma gaps it is a renewal process
//! of the chosen coefficient of variation. Segments at rate 0 are skipped without drawing.

use rand::Rng;
use rand_distr::{Distribution, Exp1, Gamma};

use super::{ArrivalSource, RateSchedule};
use crate::engine::{SimRng, SimTime};

/// How inter-arrival gaps are drawn (in operational time, unit mean).
#[derive(Clone, Copy, Debug)]
pub enum ArrivalProcess {
    Poisson,
    Deterministic,
    /// Gamma gaps with coefficient of variation `cv` (1.0 is Poisson; > 1 burstier).
    Gamma {
        cv: f64,
        dist: Gamma<f64>,
    },
}

impl ArrivalProcess {
    pub fn gamma(cv: f64) -> ArrivalProcess {
        ArrivalProcess::Gamma { cv, dist: Gamma::new(1.0 / (cv * cv), cv * cv).expect("validated: cv > 0") }
    }

    fn unit_gap(&self, rng: &mut SimRng) -> f64 {
        match self {
            ArrivalProcess::Poisson => Exp1.sample(rng),
            ArrivalProcess::Deterministic => 1.0,
            ArrivalProcess::Gamma { dist, .. } => dist.sample(rng),
        }
    }

    pub fn name(&self) -> String {
        match self {
            ArrivalProcess::Poisson => "poisson".into(),
            ArrivalProcess::Deterministic => "deterministic".into(),
            ArrivalProcess::Gamma { cv, .. } => format!("gamma(cv {cv})"),
        }
    }
}

/// Yields arrival times in order; owns the `arrivals` random stream.
pub struct ArrivalGenerator {
    source: ArrivalSource,
    rng: SimRng,
    /// Rate mode: current clock time (s) and segment.
    t: f64,
    seg: usize,
    /// Rate mode: the current segment's end and rate, so that an arrival inside it (nearly all)
    /// skips the segment walk. A rate of 0 sends the next arrival down the walk.
    seg_end: f64,
    seg_rate: f64,
    /// Replay mode: next index into the recorded times, and copies of the current one still due.
    next: usize,
    copies_left: u32,
}

impl ArrivalGenerator {
    pub fn new(source: ArrivalSource, rng: SimRng) -> Self {
        ArrivalGenerator { source, rng, t: 0.0, seg: 0, seg_end: 0.0, seg_rate: 0.0, next: 0, copies_left: 0 }
    }

    /// The trace row of the last arrival returned (replayed workloads), for per-request data such
    /// as token counts.
    pub fn last_row(&self) -> Option<usize> {
        match self.source {
            ArrivalSource::Replay { .. } if self.next > 0 => Some(self.next - 1),
            _ => None,
        }
    }

    /// The next arrival time, or `None` when the workload is over.
    pub fn next_arrival(&mut self) -> Option<SimTime> {
        match &self.source {
            ArrivalSource::Replay { times, rate_scale, .. } => loop {
                if self.copies_left > 0 {
                    self.copies_left -= 1;
                    return Some(SimTime(times[self.next - 1]));
                }
                times.get(self.next)?;
                self.next += 1;
                self.copies_left = if *rate_scale == 1.0 {
                    1
                } else {
                    let whole = rate_scale.floor();
                    whole as u32 + u32::from(self.rng.gen::<f64>() < rate_scale - whole)
                };
            },
            ArrivalSource::Rate { schedule, process } => {
                let gap = process.unit_gap(&mut self.rng);
                // The same arithmetic as `advance`'s first step, so the times are identical.
                let rate = self.seg_rate;
                if rate > 0.0 && gap < (self.seg_end - self.t) * rate {
                    self.t += gap / rate;
                    return Some(SimTime::from_secs_f64(self.t));
                }
                let (t, seg) = advance(schedule, self.t, self.seg, gap)?;
                self.t = t;
                self.seg = seg;
                self.seg_end = schedule.segment_end(seg);
                self.seg_rate = schedule.rates[seg];
                Some(SimTime::from_secs_f64(t))
            }
        }
    }
}

/// Moves `gap` units of operational time forward from clock time `t` in segment `seg`.
fn advance(s: &RateSchedule, mut t: f64, mut seg: usize, mut gap: f64) -> Option<(f64, usize)> {
    if s.starts.is_empty() {
        return None;
    }
    if t < s.starts[0] {
        t = s.starts[0];
    }
    loop {
        if seg >= s.starts.len() {
            return None;
        }
        let end = s.segment_end(seg);
        let rate = s.rates[seg];
        if rate > 0.0 {
            let room = (end - t) * rate;
            if gap < room {
                return Some((t + gap / rate, seg));
            }
            gap -= room;
        }
        seg += 1;
        t = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngStreams;
    use crate::workload::{Stage, StageLevel};

    fn count(process: ArrivalProcess, rate: f64, secs: f64, seed: u64) -> (usize, Vec<f64>) {
        let schedule = RateSchedule::from_stages(
            &[Stage { duration_s: secs, level: StageLevel::Rps(rate), spawn_rate: None }],
            1.0,
        );
        let mut g = ArrivalGenerator::new(ArrivalSource::Rate { schedule, process }, RngStreams::new(seed).stream("a"));
        let mut times = Vec::new();
        while let Some(t) = g.next_arrival() {
            times.push(t.as_secs_f64());
        }
        (times.len(), times)
    }

    #[test]
    fn poisson_count_and_gap_cv() {
        // 100/s for 1000 s: 100,000 expected, sd 316; 4 sd is 1,265.
        let (n, t) = count(ArrivalProcess::Poisson, 100.0, 1000.0, 1);
        assert!((n as f64 - 100_000.0).abs() < 1265.0, "{n}");
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let sd = (gaps.iter().map(|g| (g - m) * (g - m)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!((sd / m - 1.0).abs() < 0.02, "cv {}", sd / m);
    }

    #[test]
    fn deterministic_is_evenly_spaced() {
        // 4/s for 10 s: arrivals at 0.25, 0.5, ..., 9.75 (the one due at exactly 10 s is past the end).
        let (n, t) = count(ArrivalProcess::Deterministic, 4.0, 10.0, 1);
        assert_eq!(n, 39);
        assert!((t[0] - 0.25).abs() < 1e-9 && (t[38] - 9.75).abs() < 1e-9);
    }

    #[test]
    fn gamma_gaps_have_the_cv_asked_for() {
        let (_, t) = count(ArrivalProcess::gamma(2.0), 100.0, 2000.0, 5);
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let sd = (gaps.iter().map(|g| (g - m) * (g - m)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!((sd / m - 2.0).abs() < 0.1, "cv {}", sd / m);
        assert!((m - 0.01).abs() < 0.0005, "mean gap {m}");
    }

    #[test]
    fn zero_rate_segments_are_skipped() {
        let s = RateSchedule::from_table(&[(0.0, 0.0), (5.0, 2.0)], 1.0);
        let mut g = ArrivalGenerator::new(
            ArrivalSource::Rate { schedule: s, process: ArrivalProcess::Deterministic },
            RngStreams::new(1).stream("a"),
        );
        assert_eq!(g.next_arrival(), Some(SimTime::from_secs_f64(5.5)));
        assert_eq!(g.next_arrival(), None); // the one due at 6.0 is past the end
    }
}
