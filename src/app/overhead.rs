//! The serving platform's own cost per visit, as measured on a real backend: what a call costs
//! besides the service's CPU work and the scenario's network latency.
//!
//! On the local backend every visit is an HTTP exchange over loopback handled by a worker thread,
//! on a machine whose cores the workers share with the router. Three measured quantities come of
//! it:
//!
//! - **dispatch**: from a request's scheduled arrival to its first call leaving (the load
//!   generator's hand-off to a request thread), once per request;
//! - **transport**: the exchange itself (request write, kernel hand-off, the worker's parser and
//!   thread wake-up, the reply), taken from visits sent to an idle worker, so that no wait behind
//!   another request is counted;
//! - **stall**: wall time a worker thread holds a visit beyond its CPU demand, because the OS ran
//!   another thread on its core (preemption), taken from every visit.
//!
//! Each grows with how busy the machine is: on `chain_local_small` the mean stall is 0.5 ms of
//! scenario time with one request in flight, 5 ms with two and 15 ms with three or more. So every
//! sample is kept with the number of requests in flight when it was taken (buckets 1, 2, 3 and
//! 4+), and a draw takes a sample of the bucket the simulator is in at that moment.
//!
//! The simulator replays them (`validate-backend`): after a visit's CPU work its slot stays held
//! for a stall draw, burning no CPU (a preempted thread holds its request but uses no CPU); then
//! its caller resumes a transport draw later (plus a dispatch draw for a request's first visit).
//!
//! This module knows nothing of processes, HTTP or the event queue.

use rand::Rng;

/// Requests-in-flight buckets: 1, 2, 3, and 4 or more (0 counts as 1).
pub const LOAD_BUCKETS: usize = 4;

/// At most this many samples of one kind and bucket are kept (a 10-minute run at 200 visits/s):
/// later samples overwrite earlier ones in turn, so a long run keeps a spread over its length.
pub const MAX_SAMPLES: usize = 120_000;

/// Measured samples of one kind, scenario microseconds, by requests in flight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OverheadSamples {
    by_load: [Vec<u64>; LOAD_BUCKETS],
    seen: [u64; LOAD_BUCKETS],
}

fn bucket(in_flight: u64) -> usize {
    (in_flight.max(1) as usize).min(LOAD_BUCKETS) - 1
}

impl OverheadSamples {
    /// Adds one measurement taken with `in_flight` requests in flight.
    pub fn push(&mut self, in_flight: u64, value_us: u64) {
        let b = bucket(in_flight);
        let samples = &mut self.by_load[b];
        if samples.len() < MAX_SAMPLES {
            samples.push(value_us);
        } else {
            samples[(self.seen[b] % MAX_SAMPLES as u64) as usize] = value_us;
        }
        self.seen[b] += 1;
    }

    pub fn len(&self) -> usize {
        self.by_load.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A sample taken at `in_flight` requests in flight; from the nearest bucket below that has
    /// samples (else the nearest above) when that bucket has none; 0 without any sample.
    pub fn draw<R: Rng>(&self, in_flight: u64, rng: &mut R) -> u64 {
        let b = bucket(in_flight);
        let found = (0..=b).rev().chain(b + 1..LOAD_BUCKETS).map(|k| &self.by_load[k]).find(|v| !v.is_empty());
        found.map_or(0, |v| v[rng.gen_range(0..v.len())])
    }

    /// Mean and 95th percentile (nearest rank) over every bucket, milliseconds; zeros when empty.
    pub fn stats_ms(&self) -> (f64, f64) {
        let mut all: Vec<u64> = self.by_load.iter().flatten().copied().collect();
        if all.is_empty() {
            return (0.0, 0.0);
        }
        let mean = mean_us(&all);
        all.sort_unstable();
        let rank = ((0.95 * all.len() as f64).ceil() as usize).clamp(1, all.len());
        (mean / 1000.0, all[rank - 1] as f64 / 1000.0)
    }

    /// Mean of each bucket, milliseconds (`None` for an empty one).
    pub fn bucket_means_ms(&self) -> Vec<Option<f64>> {
        self.by_load.iter().map(|v| (!v.is_empty()).then(|| mean_us(v) / 1000.0)).collect()
    }
}

/// Mean of a non-empty slice of microsecond samples.
fn mean_us(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len() as f64
}

/// Measured per-request and per-visit overhead of a real platform.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlatformOverhead {
    pub dispatch: OverheadSamples,
    pub transport: OverheadSamples,
    pub stall: OverheadSamples,
}

impl PlatformOverhead {
    /// One visit's thread stall with `in_flight` requests in flight (0 without samples).
    pub fn stall<R: Rng>(&self, in_flight: u64, rng: &mut R) -> u64 {
        self.stall.draw(in_flight, rng)
    }

    /// One visit's call overhead: a transport draw, plus a dispatch draw for a request's first
    /// visit (`root`).
    pub fn call<R: Rng>(&self, root: bool, in_flight: u64, rng: &mut R) -> u64 {
        let transport = self.transport.draw(in_flight, rng);
        if root {
            transport + self.dispatch.draw(in_flight, rng)
        } else {
            transport
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RngStreams;
    use std::collections::BTreeSet;

    fn set(f: &mut dyn FnMut() -> u64) -> Vec<u64> {
        (0..200).map(|_| f()).collect::<BTreeSet<_>>().into_iter().collect()
    }

    #[test]
    fn draws_come_from_the_bucket_of_the_load_and_a_root_call_adds_a_dispatch() {
        let mut o = PlatformOverhead::default();
        o.dispatch.push(1, 7);
        for (load, v) in [(1, 100), (1, 200), (2, 1000), (9, 40_000)] {
            o.transport.push(load, v);
        }
        o.stall.push(0, 0);
        o.stall.push(2, 5000);
        let mut rng = RngStreams::new(1).stream("overhead");
        assert_eq!(set(&mut || o.call(false, 1, &mut rng)), vec![100, 200]);
        assert_eq!(set(&mut || o.call(false, 2, &mut rng)), vec![1000]);
        // 3 in flight has no samples: the nearest bucket below (2) answers; 4+ has its own.
        assert_eq!(set(&mut || o.call(false, 3, &mut rng)), vec![1000]);
        assert_eq!(set(&mut || o.call(false, 12, &mut rng)), vec![40_000]);
        // Dispatch only has bucket 1: every load above falls back to it.
        assert_eq!(set(&mut || o.call(true, 2, &mut rng)), vec![1007]);
        assert_eq!(set(&mut || o.stall(1, &mut rng)), vec![0]);
        assert_eq!(set(&mut || o.stall(3, &mut rng)), vec![5000]);
        let none = PlatformOverhead::default();
        assert_eq!((none.stall(1, &mut rng), none.call(true, 1, &mut rng)), (0, 0));
    }

    #[test]
    fn an_empty_bucket_below_falls_back_to_the_nearest_above() {
        let mut s = OverheadSamples::default();
        s.push(3, 30);
        s.push(4, 40);
        let mut rng = RngStreams::new(2).stream("overhead");
        assert_eq!(set(&mut || s.draw(1, &mut rng)), vec![30]);
    }

    #[test]
    fn stats_are_mean_and_nearest_rank_p95_over_all_buckets() {
        let mut s = OverheadSamples::default();
        for k in 1..=20u64 {
            s.push(k % 3, k * 1000);
        }
        // Mean of 1..20 ms is 10.5 ms; rank ceil(0.95 * 20) = 19 -> 19 ms.
        assert_eq!(s.stats_ms(), (10.5, 19.0));
        assert_eq!(s.len(), 20);
        assert_eq!(OverheadSamples::default().stats_ms(), (0.0, 0.0));
        // Bucket 1 holds k % 3 in {0, 1}: 1,3,4,6,7,9,10,12,13,15,16,18,19 (mean 10.2 ms).
        let means = s.bucket_means_ms();
        assert!((means[0].unwrap() - 133.0 / 13.0).abs() < 1e-9);
        assert_eq!(means[3], None);
    }

    #[test]
    fn beyond_the_cap_samples_overwrite_in_turn() {
        let mut s = OverheadSamples::default();
        for k in 0..(MAX_SAMPLES as u64 + 3) {
            s.push(1, k);
        }
        assert_eq!(s.len(), MAX_SAMPLES);
        let m = MAX_SAMPLES as u64;
        assert_eq!(&s.by_load[0][..4], &[m, m + 1, m + 2, 3]);
    }
}
