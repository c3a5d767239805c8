//! Load shapes: Locust-style stages and per-second rate tables, as a piecewise-constant rate.

use crate::engine::SimTime;

/// The level a stage asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StageLevel {
    /// Locust users; each sends one request per `think_time_s` on average.
    Users(f64),
    /// Requests per second directly.
    Rps(f64),
}

/// One Locust-style stage: hold a level for `duration`, ramping to it from the previous level at
/// `spawn_rate` (users or RPS per second) as Locust's spawn rate does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub duration_s: f64,
    pub level: StageLevel,
    /// `None`: jump to the level at once.
    pub spawn_rate: Option<f64>,
}

/// A piecewise-constant arrival rate: `rates[k]` requests/s on `[starts[k], starts[k+1])`, and the
/// last rate until `end`.
#[derive(Clone, Debug, PartialEq)]
pub struct RateSchedule {
    pub starts: Vec<f64>,
    pub rates: Vec<f64>,
    pub end: f64,
}

impl RateSchedule {
    /// Builds the rate of Locust-style stages. A ramp moves the level by `spawn_rate` at the start of
    /// each second of the stage until the target is reached (the first stage starts from 0), so
    /// with spawn rate 50 a stage of 400 users runs at 50, 100, ..., 400 users over its first 8 s.
    pub fn from_stages(stages: &[Stage], think_time_s: f64) -> RateSchedule {
        let mut starts = Vec::new();
        let mut rates = Vec::new();
        let mut t = 0.0;
        let mut level = 0.0; // in the stage's own unit (users or rps)
        for st in stages {
            let (target, per_user) = match st.level {
                StageLevel::Users(u) => (u, 1.0 / think_time_s),
                StageLevel::Rps(r) => (r, 1.0),
            };
            let end = t + st.duration_s;
            match st.spawn_rate {
                Some(rate) if rate > 0.0 && level != target => {
                    let mut s = t;
                    while s < end && level != target {
                        level = if target > level { (level + rate).min(target) } else { (level - rate).max(target) };
                        starts.push(s);
                        rates.push(level * per_user);
                        s += 1.0;
                    }
                }
                _ => {
                    level = target;
                    starts.push(t);
                    rates.push(level * per_user);
                }
            }
            t = end;
        }
        let mut sched = RateSchedule { starts, rates, end: t };
        sched.merge_equal_neighbours();
        sched
    }

    /// A per-second (or any step) rate table: rows of `(time_s, rps)`, each rate holding until the
    /// next row; the last holds for `last_step` seconds.
    pub fn from_table(rows: &[(f64, f64)], last_step: f64) -> RateSchedule {
        let starts: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let rates: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let end = rows.last().map(|r| r.0 + last_step).unwrap_or(0.0);
        let mut s = RateSchedule { starts, rates, end };
        s.merge_equal_neighbours();
        s
    }

    fn merge_equal_neighbours(&mut self) {
        let mut starts = Vec::with_capacity(self.starts.len());
        let mut rates: Vec<f64> = Vec::with_capacity(self.rates.len());
        for (&s, &r) in self.starts.iter().zip(&self.rates) {
            if rates.last() == Some(&r) {
                continue;
            }
            starts.push(s);
            rates.push(r);
        }
        self.starts = starts;
        self.rates = rates;
    }

    /// The rate at time `t` seconds (0 outside the schedule).
    pub fn rate_at(&self, t: f64) -> f64 {
        if t < 0.0 || t >= self.end || self.starts.is_empty() || t < self.starts[0] {
            return 0.0;
        }
        let k = self.starts.partition_point(|&s| s <= t) - 1;
        self.rates[k]
    }

    /// End of segment `k`.
    pub fn segment_end(&self, k: usize) -> f64 {
        self.starts.get(k + 1).copied().unwrap_or(self.end)
    }

    /// Expected arrivals on `[0, until)`: the integral of the rate.
    pub fn expected_arrivals(&self, until: SimTime) -> f64 {
        let u = until.as_secs_f64();
        (0..self.starts.len())
            .map(|k| {
                let a = self.starts[k];
                let b = self.segment_end(k).min(u);
                if b > a {
                    (b - a) * self.rates[k]
                } else {
                    0.0
                }
            })
            .sum()
    }

    /// Multiplies every rate by `k`.
    pub fn scale_rates(&mut self, k: f64) {
        for r in &mut self.rates {
            *r *= k;
        }
    }

    /// Stretches time by `k` (2.0: everything takes twice as long).
    pub fn scale_time(&mut self, k: f64) {
        for s in &mut self.starts {
            *s *= k;
        }
        self.end *= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locust_ramp_rises_by_spawn_rate_each_second() {
        // 400 users at 50 users/s with a 1 s think time: 50, 100, ..., 400 RPS over the first 8 s.
        let s = RateSchedule::from_stages(
            &[Stage { duration_s: 900.0, level: StageLevel::Users(400.0), spawn_rate: Some(50.0) }],
            1.0,
        );
        assert_eq!(s.rate_at(0.5), 50.0);
        assert_eq!(s.rate_at(7.5), 400.0);
        assert_eq!(s.rate_at(899.9), 400.0);
        assert_eq!(s.rate_at(900.0), 0.0);
        // 400 * 900 minus the ramp's shortfall (350+300+...+0 = 1400) = 358,600
        assert!((s.expected_arrivals(SimTime::from_secs(900)) - 358_600.0).abs() < 1e-6);
    }

    #[test]
    fn rush_shape_jumps_without_spawn_rate() {
        let s = RateSchedule::from_stages(
            &[
                Stage { duration_s: 180.0, level: StageLevel::Rps(100.0), spawn_rate: None },
                Stage { duration_s: 300.0, level: StageLevel::Rps(800.0), spawn_rate: None },
                Stage { duration_s: 420.0, level: StageLevel::Rps(100.0), spawn_rate: None },
            ],
            1.0,
        );
        assert_eq!(s.rate_at(179.999), 100.0);
        assert_eq!(s.rate_at(180.0), 800.0);
        assert_eq!(s.rate_at(480.0), 100.0);
        // 100*180 + 800*300 + 100*420 = 300,000
        assert!((s.expected_arrivals(SimTime::from_secs(900)) - 300_000.0).abs() < 1e-6);
    }

    #[test]
    fn table_rates_hold_until_the_next_row() {
        let s = RateSchedule::from_table(&[(0.0, 10.0), (1.0, 20.0), (2.0, 20.0), (3.0, 5.0)], 1.0);
        assert_eq!(s.rate_at(2.5), 20.0);
        assert_eq!(s.rate_at(3.5), 5.0);
        assert_eq!(s.rate_at(4.0), 0.0);
        assert!((s.expected_arrivals(SimTime::from_secs(10)) - 55.0).abs() < 1e-9);
    }
}
