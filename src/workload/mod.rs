//! Workloads: Locust-style load shapes and trace replay, turned into arrival times by a seeded
//! arrival process, plus the request-type mix.
//!
//! This module knows what arrives and when; it never knows what a request does inside the
//! application (that is `app/`) or how it is served (`sim/`).

mod arrivals;
mod random_shape;
mod shape;
mod trace;

pub use arrivals::{ArrivalGenerator, ArrivalProcess};
pub use random_shape::{modulate_seconds, random_shape, ShapeKind};
pub use shape::{RateSchedule, Stage, StageLevel};
pub use trace::{parse_time_us, read_trace, resolve_path, TraceData, TraceError, TraceFormat, TraceSpec};

use std::sync::Arc;

use crate::engine::SimTime;

/// Where arrivals come from.
#[derive(Clone, Debug)]
pub enum ArrivalSource {
    /// A rate over time (stages or a per-second rate table) and a process that draws the times.
    Rate { schedule: RateSchedule, process: ArrivalProcess },
    /// Recorded arrival times (microseconds from the start), replayed as they are; with
    /// `rate_scale` k each becomes `floor(k)` or `floor(k) + 1` arrivals (see `trace.rs`).
    Replay { times: Arc<Vec<u64>>, rate_scale: f64, tokens: Option<Arc<Vec<(u32, u32)>>> },
}

/// A resolved workload.
#[derive(Clone, Debug)]
pub struct Workload {
    pub source: ArrivalSource,
    /// Request-type weights, indexed like `AppSpec::request_types`.
    pub mix: Vec<f64>,
    /// When the last stage or the trace ends.
    pub duration: SimTime,
}

/// Draws a request type by the workload's mix weights (cumulative shares, searched linearly: mixes
/// have a handful of types).
#[derive(Clone, Debug, PartialEq)]
pub struct RequestMix {
    cdf: Vec<f64>,
}

impl RequestMix {
    pub fn new(weights: &[f64]) -> RequestMix {
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        RequestMix {
            cdf: weights
                .iter()
                .map(|w| {
                    acc += w / total;
                    acc
                })
                .collect(),
        }
    }

    /// The request type a draw from `rng` picks. With one type nothing is drawn: the `mix`
    /// stream is this mix's own, so skipping the draw changes no other stream.
    #[inline]
    pub fn sample<R: rand::Rng>(&self, rng: &mut R) -> usize {
        if self.cdf.len() == 1 {
            0
        } else {
            self.pick(rng.gen())
        }
    }

    /// The request type a uniform draw `u` in [0, 1) picks.
    fn pick(&self, u: f64) -> usize {
        self.cdf.iter().position(|&c| u < c).unwrap_or(self.cdf.len() - 1)
    }
}

impl Workload {
    /// Mean arrival rate (requests/s) over `[0, duration)`.
    pub fn mean_rate(&self) -> f64 {
        let d = self.duration.as_secs_f64();
        if d <= 0.0 {
            return 0.0;
        }
        match &self.source {
            ArrivalSource::Rate { schedule, .. } => schedule.expected_arrivals(self.duration) / d,
            ArrivalSource::Replay { times, rate_scale, .. } => times.len() as f64 * rate_scale / d,
        }
    }
}
