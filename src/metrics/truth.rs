//! Ground truth: per-interval, per-service rows of `timeline.csv`, the run-wide accumulators, and
//! the run summary computed from them (`GroundTruth::summary`). Its fields are private: the serving
//! models report events through its methods, and readers get `totals()` and the summary.
//!
//! Definitions (each computed exactly as written here, and repeated in `docs/metrics.md`):
//! - `rps_in`: visits arriving at the service in the interval / interval length.
//! - `completed`, `dropped`: visits to the service that completed / were dropped in the interval.
//! - `cpu_util`: CPU used by the service's instances in the interval / (CPU request x time those
//!   instances were Active or Draining in the interval); 0 when none served.
//! - `p95_ms`: 95th percentile of the service's response time (visit arrival at the service to the
//!   visit's completion, callees included) of visits completed in the interval.
//! - replica counts: at the end of the interval.

use std::io::Write;

use hdrhistogram::Histogram;

use super::{
    latency_histogram, nearest_rank, quantile_ms, record_latency, LatencySummary, LlmSummary, RequestCounts,
    ScalingLagSummary, ServiceSummary, Summary, SUMMARY_FORMAT_VERSION,
};
use crate::engine::SimTime;

/// Version of `timeline.csv`'s columns; its last column carries it on every row.
pub const TIMELINE_FORMAT_VERSION: u32 = 1;
/// `requests.csv`: request-level counts per interval, for SLO-over-time charts.
pub const REQUESTS_HEADER: &str = "time_s,arrived,completed,dropped,violating,violation_pct,format_version";

pub const TIMELINE_HEADER: &str = "time_s,service,replicas_active,replicas_starting,replicas_draining,rps_in,completed,dropped,cpu_util,p95_ms,queue_len,replication_lag_ms,format_version";

/// Writes `x` with exactly `decimals` decimals (rounded half away from zero), as `{:.N}` would,
/// through integer formatting: `{:.N}` on floats takes the slow exact path and showed up as a
/// tenth of a fluid run's time.
fn write_fixed(w: &mut dyn Write, x: f64, decimals: u32) -> std::io::Result<()> {
    let scale = 10i64.pow(decimals);
    if !x.is_finite() || x.abs() >= (i64::MAX / scale) as f64 {
        return write!(w, "{:.*}", decimals as usize, x);
    }
    let n = (x * scale as f64).round() as i64;
    let sign = if n < 0 { "-" } else { "" };
    let n = n.unsigned_abs();
    write!(w, "{sign}{}.{:0width$}", n / scale as u64, n % scale as u64, width = decimals as usize)
}

/// Why a request was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropKind {
    QueueFull = 0,
    NoActiveInstance = 1,
    /// An LLM request whose KV cache exceeds a token instance's capacity.
    TooLarge = 2,
}

impl DropKind {
    pub const ALL: [DropKind; 3] = [DropKind::QueueFull, DropKind::NoActiveInstance, DropKind::TooLarge];
    pub fn describe(self, service: &str) -> String {
        match self {
            DropKind::QueueFull => format!("queue full at {service}"),
            DropKind::NoActiveInstance => format!("no active instance of {service}"),
            DropKind::TooLarge => format!("KV cache larger than a {service} instance holds"),
        }
    }
}

/// What the fluid model says about the requests of one tick (real numbers, not counts).
#[derive(Clone, Debug, Default)]
pub struct FluidRequests {
    pub arrived: f64,
    pub completed: f64,
    pub within_slo: f64,
    pub latency_sum_us: f64,
    /// Requests in the system during the tick (Little's L).
    pub in_system: f64,
    pub drops: Vec<(DropKind, usize, f64)>,
    /// Points of the latency distribution: `(latency_us, weight in requests)`.
    pub latency_points: Vec<(f64, f64)>,
}

impl FluidRequests {
    /// Empties it for the next tick, keeping its buffers.
    pub fn clear(&mut self) {
        let (mut drops, mut points) = (std::mem::take(&mut self.drops), std::mem::take(&mut self.latency_points));
        drops.clear();
        points.clear();
        *self = FluidRequests { drops, latency_points: points, ..Default::default() };
    }
}

/// Running totals of the fluid model, turned into counts as they cross whole numbers.
#[derive(Clone, Debug, Default)]
struct FluidTotals {
    arrived: f64,
    completed: f64,
    within_slo: f64,
    drops: Vec<f64>,
    point_carry: Vec<f64>,
    visits: Vec<[f64; 3]>,
    served_tick: Vec<f64>,
    /// The interval's p95 per service, computed from the model (no per-interval histogram).
    p95_ms: Vec<Option<f64>>,
}

/// One row of `timeline.csv`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntervalRow {
    pub time_s: f64,
    pub service: usize,
    pub active: u32,
    pub starting: u32,
    pub draining: u32,
    pub rps_in: f64,
    pub completed: u64,
    pub dropped: u64,
    pub cpu_util: f64,
    pub p95_ms: f64,
    pub queue_len: u32,
    pub replication_lag_ms: f64,
}

/// Run-wide totals of one service.
#[derive(Clone, Debug, Default)]
pub struct ServiceTotals {
    pub arrived: u64,
    pub completed: u64,
    pub dropped: u64,
    pub latency_sum_us: f64,
    pub cpu_used_core_us: f64,
    /// Request x time Active or Draining (core-us): the denominator of utilisation.
    pub cpu_serving_core_us: f64,
    /// Sum over intervals of active replicas x interval length (replica-us), for the mean.
    pub active_replica_us: f64,
    pub replication_lag_sum: f64,
    pub intervals: u64,
}

/// Tracks one service's under-provisioning episodes for the scaling-lag metric.
#[derive(Clone, Debug)]
struct LagTracker {
    ring: Vec<u64>,
    pos: usize,
    filled: usize,
    sum: u64,
    since: Option<SimTime>,
}

/// What a run's summary needs besides the ground truth: the run's identity, and what only the
/// cluster knows (its cost, instance-hours and refusals) or the engine counts.
pub struct RunFacts<'a> {
    pub now: SimTime,
    pub scenario: &'a str,
    pub policy: &'a str,
    pub seed: u64,
    pub slo: SimTime,
    pub cost: f64,
    pub instance_hours: f64,
    pub refused_actions: u64,
    pub events_processed: u64,
    pub llm: Option<LlmSummary>,
}

pub struct GroundTruth {
    names: Vec<String>,
    slo_us: u64,
    interval_us: u64,
    // ---- per-interval accumulators, reset at every interval end
    tick_arrivals: Vec<u64>,
    tick_completed: Vec<u64>,
    tick_dropped: Vec<u64>,
    tick_writes: Vec<u64>,
    tick_hist: Vec<Histogram<u64>>,
    // ---- run-wide
    svc: Vec<ServiceTotals>,
    svc_hist: Vec<Histogram<u64>>,
    req_hist: Histogram<u64>,
    /// Record latency distributions (the histograms above). Off for RL training, where only
    /// counts, means and the metrics server's view are read: the summary's percentiles are then 0.
    distributions: bool,
    arrived: u64,
    completed: u64,
    dropped: u64,
    within_slo: u64,
    latency_sum_us: f64,
    /// Drops by `(kind, service)`: index `kind * services + service`.
    drops: Vec<u64>,
    in_flight: u64,
    /// Integral of `in_flight` over time (request-microseconds), exact in integers; the fluid
    /// model's real-valued share is `in_flight_area_fluid`.
    in_flight_area_us: u128,
    in_flight_area_fluid: f64,
    in_flight_since: SimTime,
    cpu_used_total: f64,
    cpu_alloc_total: f64,
    /// CPU limit x time of every instance (core-microseconds).
    cpu_limit_total: f64,
    lag: Vec<LagTracker>,
    lag_episodes_s: Vec<f64>,
    lag_open_at_end: u32,
    last_direction: Vec<i8>,
    reversals: u64,
    decisions: u64,
    replica_changes: u64,
    /// `None`: rows are not formatted at all (training, benchmarks).
    timeline: Option<Box<dyn Write + Send>>,
    interval_whole_secs: bool,
    fluid: FluidTotals,
    last_lag: Vec<f64>,
    requests_out: Option<Box<dyn Write + Send>>,
    /// `(arrived, completed, dropped, within_slo)` at the last interval end.
    last_counts: (u64, u64, u64, u64),
}

impl GroundTruth {
    /// Cumulative counts since the start (what rewards and real-backend comparisons read).
    pub fn totals(&self) -> super::RunTotals {
        super::RunTotals {
            arrived: self.arrived,
            completed: self.completed,
            dropped: self.dropped,
            within_slo: self.within_slo,
            latency_sum_us: self.latency_sum_us,
            cpu_used_core_us: self.cpu_used_total,
            cpu_alloc_core_us: self.cpu_alloc_total,
            cpu_limit_core_us: self.cpu_limit_total,
        }
    }

    /// The end-to-end latency of the requests completed so far.
    pub fn request_latency(&self) -> LatencySummary {
        LatencySummary::from_histogram(&self.req_hist, self.latency_sum_us, self.completed)
    }

    /// Adds one interval's CPU: used, and request x time and limit x time of every instance that
    /// existed (core-microseconds).
    pub fn add_cpu(&mut self, used: f64, alloc: f64, limit: f64) {
        self.cpu_used_total += used;
        self.cpu_alloc_total += alloc;
        self.cpu_limit_total += limit;
    }

    /// Service `s`'s visits arrived, dropped and writes in the interval being closed.
    pub fn tick_counts(&self, s: usize) -> (u64, u64, u64) {
        (self.tick_arrivals[s], self.tick_dropped[s], self.tick_writes[s])
    }

    /// The run summary at `facts.now`. Definitions: `docs/metrics.md`.
    pub fn summary(&mut self, facts: RunFacts<'_>) -> Summary {
        let now = facts.now;
        let horizon_s = now.as_secs_f64();
        let mean_in_system = self.mean_in_system(now);
        let t = &*self;
        let finished = t.completed + t.dropped;
        let violations = t.dropped + (t.completed - t.within_slo);
        let cost = facts.cost;
        let services = (0..t.names.len())
            .map(|s| {
                let tot = &t.svc[s];
                ServiceSummary {
                    name: t.names[s].clone(),
                    arrived: tot.arrived,
                    completed: tot.completed,
                    dropped: tot.dropped,
                    mean_latency_ms: if tot.completed > 0 {
                        tot.latency_sum_us / tot.completed as f64 / 1000.0
                    } else {
                        0.0
                    },
                    p95_ms: quantile_ms(t.service_hist(s), 0.95),
                    cpu_util: if tot.cpu_serving_core_us > 0.0 {
                        tot.cpu_used_core_us / tot.cpu_serving_core_us
                    } else {
                        0.0
                    },
                    mean_active_replicas: if now.0 > 0 { tot.active_replica_us / now.0 as f64 } else { 0.0 },
                    mean_replication_lag_ms: if tot.intervals > 0 {
                        tot.replication_lag_sum / tot.intervals as f64
                    } else {
                        0.0
                    },
                }
            })
            .collect();
        let pct = |a: f64, b: f64| if b > 0.0 { 100.0 * a / b } else { 0.0 };
        Summary {
            format_version: SUMMARY_FORMAT_VERSION,
            scenario: facts.scenario.to_string(),
            policy: facts.policy.to_string(),
            seed: facts.seed,
            horizon_s,
            requests: RequestCounts {
                arrived: t.arrived,
                completed: t.completed,
                dropped: t.dropped,
                in_flight: t.in_flight(),
                dropped_by_reason: t.drop_reasons().into_iter().collect(),
            },
            latency_ms: LatencySummary::from_histogram(&t.req_hist, t.latency_sum_us, t.completed),
            slo_ms: facts.slo.as_millis_f64(),
            slo_violation_pct: pct(violations as f64, finished as f64),
            resource_slack_pct: pct(t.cpu_alloc_total - t.cpu_used_total, t.cpu_alloc_total),
            scaling_lag_s: ScalingLagSummary {
                mean: if t.lag_episodes_s.is_empty() {
                    0.0
                } else {
                    t.lag_episodes_s.iter().sum::<f64>() / t.lag_episodes_s.len() as f64
                },
                p95: nearest_rank(&t.lag_episodes_s, 0.95),
                episodes: t.lag_episodes_s.len() as u64,
                open_at_end: t.lag_open_at_end,
            },
            cost,
            instance_hours: facts.instance_hours,
            caf: if cost > 0.0 { t.within_slo as f64 / cost } else { 0.0 },
            oscillation_per_hour: if horizon_s > 0.0 { t.reversals as f64 / (horizon_s / 3600.0) } else { 0.0 },
            throughput_rps: if horizon_s > 0.0 { t.completed as f64 / horizon_s } else { 0.0 },
            mean_requests_in_system: mean_in_system,
            policy_decisions: t.decisions,
            replica_changes: t.replica_changes,
            refused_actions: facts.refused_actions,
            events_processed: facts.events_processed,
            services,
            llm: facts.llm,
        }
    }

    pub fn new(
        names: Vec<String>,
        slo: SimTime,
        interval: SimTime,
        window_intervals: usize,
        timeline: Option<Box<dyn Write + Send>>,
    ) -> Self {
        let n = names.len();
        GroundTruth {
            slo_us: slo.0,
            interval_us: interval.0,
            tick_arrivals: vec![0; n],
            tick_completed: vec![0; n],
            tick_dropped: vec![0; n],
            tick_writes: vec![0; n],
            tick_hist: (0..n).map(|_| latency_histogram(2)).collect(),
            svc: vec![ServiceTotals::default(); n],
            svc_hist: (0..n).map(|_| latency_histogram(2)).collect(),
            req_hist: latency_histogram(3),
            distributions: true,
            arrived: 0,
            completed: 0,
            dropped: 0,
            within_slo: 0,
            latency_sum_us: 0.0,
            drops: vec![0; n * DropKind::ALL.len()],
            in_flight: 0,
            in_flight_area_us: 0,
            in_flight_area_fluid: 0.0,
            in_flight_since: SimTime::ZERO,
            cpu_used_total: 0.0,
            cpu_alloc_total: 0.0,
            cpu_limit_total: 0.0,
            lag: (0..n)
                .map(|_| LagTracker { ring: vec![0; window_intervals.max(1)], pos: 0, filled: 0, sum: 0, since: None })
                .collect(),
            lag_episodes_s: Vec::new(),
            lag_open_at_end: 0,
            last_direction: vec![0; n],
            reversals: 0,
            decisions: 0,
            replica_changes: 0,
            timeline,
            interval_whole_secs: interval.0 % SimTime::MICROS_PER_SEC == 0,
            fluid: FluidTotals {
                drops: vec![0.0; n * DropKind::ALL.len()],
                visits: vec![[0.0; 3]; n],
                served_tick: vec![0.0; n],
                p95_ms: vec![None; n],
                ..Default::default()
            },
            last_lag: vec![0.0; n],
            requests_out: None,
            last_counts: (0, 0, 0, 0),
            names,
        }
    }

    /// Replication lag of each service at the last interval, ms.
    pub fn last_replication_lag(&self) -> &[f64] {
        &self.last_lag
    }

    /// Also write `requests.csv` rows to `w`.
    pub fn with_requests_output(&mut self, w: Box<dyn Write + Send>) -> std::io::Result<()> {
        let mut w = w;
        writeln!(w, "{REQUESTS_HEADER}")?;
        self.requests_out = Some(w);
        Ok(())
    }

    /// Writes the request-level row of the interval that starts at `t0` (call once per interval,
    /// after its requests are counted). Violating = dropped + completed slower than the SLO.
    pub fn write_requests_row(&mut self, t0: SimTime) -> std::io::Result<()> {
        let now = (self.arrived, self.completed, self.dropped, self.within_slo);
        let (a0, c0, d0, w0) = std::mem::replace(&mut self.last_counts, now);
        let Some(w) = &mut self.requests_out else { return Ok(()) };
        let (arrived, completed, dropped) = (now.0 - a0, now.1.saturating_sub(c0), now.2 - d0);
        let violating = dropped + completed.saturating_sub(now.3.saturating_sub(w0));
        let finished = completed + dropped;
        if self.interval_whole_secs {
            write!(w, "{}", t0.whole_secs())?;
        } else {
            write_fixed(w, t0.as_secs_f64(), 3)?;
        }
        write!(w, ",{arrived},{completed},{dropped},{violating},")?;
        write_fixed(w, if finished > 0 { 100.0 * violating as f64 / finished as f64 } else { 0.0 }, 3)?;
        writeln!(w, ",{TIMELINE_FORMAT_VERSION}")
    }

    /// The end-to-end latency distribution as `(latency_ms, cumulative fraction)` at
    /// logarithmically spaced points (5% apart), for CDF charts.
    pub fn latency_cdf(&self) -> Vec<(f64, f64)> {
        let total = self.req_hist.len();
        if total == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut seen = 0u64;
        for v in self.req_hist.iter_log(1, 1.05) {
            seen += v.count_since_last_iteration();
            if v.count_since_last_iteration() > 0 || out.is_empty() {
                out.push((v.value_iterated_to() as f64 / 1000.0, seen as f64 / total as f64));
            }
        }
        out
    }

    pub fn write_header(&mut self) -> std::io::Result<()> {
        match &mut self.timeline {
            Some(w) => writeln!(w, "{TIMELINE_HEADER}"),
            None => Ok(()),
        }
    }

    #[inline]
    fn track_in_flight(&mut self, now: SimTime) {
        self.in_flight_area_us += self.in_flight as u128 * (now.0 - self.in_flight_since.0) as u128;
        self.in_flight_since = now;
    }

    #[inline]
    pub fn request_arrived(&mut self, now: SimTime) {
        self.track_in_flight(now);
        self.arrived += 1;
        self.in_flight += 1;
    }

    #[inline]
    pub fn request_completed(&mut self, now: SimTime, latency_us: u64) {
        self.track_in_flight(now);
        self.in_flight -= 1;
        self.completed += 1;
        self.latency_sum_us += latency_us as f64;
        if latency_us <= self.slo_us {
            self.within_slo += 1;
        }
        if self.distributions {
            record_latency(&mut self.req_hist, latency_us);
        }
    }

    /// A request completed whose SLO compliance the caller judged (LLM: TTFT and TBT).
    pub fn request_completed_judged(&mut self, now: SimTime, latency_us: u64, within_slo: bool) {
        self.track_in_flight(now);
        self.in_flight -= 1;
        self.completed += 1;
        self.latency_sum_us += latency_us as f64;
        self.within_slo += u64::from(within_slo);
        if self.distributions {
            record_latency(&mut self.req_hist, latency_us);
        }
    }

    #[inline]
    pub fn request_dropped(&mut self, now: SimTime, kind: DropKind, service: usize) {
        self.track_in_flight(now);
        self.in_flight -= 1;
        self.dropped += 1;
        self.drops[kind as usize * self.names.len() + service] += 1;
    }

    #[inline]
    pub fn visit_arrived(&mut self, service: usize, write: bool) {
        self.tick_arrivals[service] += 1;
        self.tick_writes[service] += u64::from(write);
    }

    #[inline]
    pub fn visit_completed(&mut self, service: usize, latency_us: u64) {
        self.tick_completed[service] += 1;
        self.svc[service].latency_sum_us += latency_us as f64;
        // Recorded into both histograms here rather than adding the interval's histogram into the
        // run's at every interval: `Histogram::add` walks every bucket, and profiling showed it
        // dominating short-interval runs.
        if self.distributions {
            record_latency(&mut self.tick_hist[service], latency_us);
            record_latency(&mut self.svc_hist[service], latency_us);
        }
    }

    #[inline]
    pub fn visit_dropped(&mut self, service: usize) {
        self.tick_dropped[service] += 1;
    }

    /// Fluid fidelity: one tick's visits to service `s` (arrived, served, dropped; real numbers).
    pub fn fluid_visits(&mut self, s: usize, arrived: f64, served: f64, dropped: f64) {
        let v = &mut self.fluid.visits[s];
        let whole = |cum: &mut f64, add: f64| -> u64 {
            let before = cum.floor();
            *cum += add;
            (cum.floor() - before) as u64
        };
        self.tick_arrivals[s] += whole(&mut v[0], arrived);
        self.tick_completed[s] += whole(&mut v[1], served);
        self.tick_dropped[s] += whole(&mut v[2], dropped);
        self.fluid.served_tick[s] = served;
    }

    /// Fluid fidelity: the service's response times this tick, taken as exponential with mean
    /// `mean_s`: recorded at a few quantiles, each with its share of the visits served. Returns the
    /// p95 (ms), `None` when nothing was served.
    pub fn fluid_service_latency(&mut self, s: usize, mean_s: f64) -> Option<f64> {
        // Quantile bands (lower, upper) of the exponential, narrow in the tail.
        const BANDS: [(f64, f64); 5] = [(0.0, 0.5), (0.5, 0.8), (0.8, 0.93), (0.93, 0.98), (0.98, 1.0)];
        let served = self.fluid.served_tick[s];
        if served <= 0.0 || mean_s <= 0.0 {
            return None;
        }
        // p95 of an exponential: mean * ln(20).
        let p95 = mean_s * 20f64.ln() * 1000.0;
        self.fluid.p95_ms[s] = Some(p95);
        if !self.distributions {
            return Some(p95);
        }
        for (lo, hi) in BANDS {
            let q = (lo + hi) / 2.0;
            let v = ((-mean_s * (1.0 - q).ln() * 1e6) as u64).clamp(1, 3_600_000_000);
            let _ = self.svc_hist[s].record_n(v, ((served * (hi - lo)).round() as u64).max(1));
        }
        Some(p95)
    }

    /// Fluid fidelity: visits to `s` served in the current tick.
    pub fn fluid_served(&self, s: usize) -> f64 {
        self.fluid.served_tick[s]
    }

    /// Fluid fidelity: one tick's requests. Counts follow the running real totals; requests end in
    /// the tick they arrive (the fluid model's latencies are far shorter than a tick), and those
    /// still in the system at the end are set aside by [`GroundTruth::fluid_finish`].
    pub fn fluid_requests(&mut self, now: SimTime, r: &FluidRequests) {
        let dt = (now.0 - self.in_flight_since.0) as f64;
        self.in_flight_area_fluid += r.in_system * dt;
        self.in_flight_since = now;
        let f = &mut self.fluid;
        f.arrived += r.arrived;
        f.completed += r.completed;
        f.within_slo += r.within_slo;
        for &(kind, s, x) in &r.drops {
            f.drops[kind as usize * self.names.len() + s] += x;
        }
        self.arrived = f.arrived.round() as u64;
        for (d, x) in self.drops.iter_mut().zip(&f.drops) {
            *d = x.round() as u64;
        }
        self.dropped = self.drops.iter().sum::<u64>().min(self.arrived);
        self.completed = self.arrived - self.dropped;
        self.within_slo = (f.within_slo.round() as u64).min(self.completed);
        self.latency_sum_us += r.latency_sum_us;
        if !self.distributions {
            return;
        }
        f.point_carry.resize(r.latency_points.len(), 0.0);
        for (i, &(v, w)) in r.latency_points.iter().enumerate() {
            f.point_carry[i] += w;
            let n = f.point_carry[i].floor();
            if n >= 1.0 {
                f.point_carry[i] -= n;
                let _ = self.req_hist.record_n((v as u64).clamp(1, 3_600_000_000), n as u64);
            }
        }
    }

    /// Fluid fidelity: the requests in the system at the end of the run are in flight.
    pub fn fluid_finish(&mut self, in_system: f64) {
        let held = (in_system.round() as u64).min(self.completed);
        self.in_flight = held;
        self.completed -= held;
        self.within_slo = self.within_slo.min(self.completed);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Stops recording latency distributions (see the `distributions` field).
    pub fn skip_distributions(&mut self) {
        self.distributions = false;
    }

    /// Whether latency distributions are recorded (the fluid model computes its latency points
    /// only then).
    pub fn records_distributions(&self) -> bool {
        self.distributions
    }

    /// Time-average number of requests in the system up to `now` (Little's L).
    pub fn mean_in_system(&mut self, now: SimTime) -> f64 {
        self.track_in_flight(now);
        if now.0 == 0 {
            0.0
        } else {
            (self.in_flight_area_us as f64 + self.in_flight_area_fluid) / now.0 as f64
        }
    }

    /// Drops by reason, described, in a stable order.
    pub fn drop_reasons(&self) -> Vec<(String, u64)> {
        let n = self.names.len();
        let mut out = Vec::new();
        for k in DropKind::ALL {
            for s in 0..n {
                let c = self.drops[k as usize * n + s];
                if c > 0 {
                    out.push((k.describe(&self.names[s]), c));
                }
            }
        }
        out
    }

    /// Closes one interval for one service: writes its row and folds it into the run totals.
    /// `cpu_used` and `cpu_serving` are core-us in the interval; `length_us` is how long it really
    /// lasted (the last interval of a horizon that is not a whole number of intervals is shorter,
    /// and weighs only its length in the mean of Active replicas).
    pub fn close_interval(
        &mut self,
        mut row: IntervalRow,
        cpu_used: f64,
        cpu_serving: f64,
        length_us: u64,
    ) -> std::io::Result<()> {
        let s = row.service;
        let secs = self.interval_us as f64 / 1e6;
        row.rps_in = self.tick_arrivals[s] as f64 / secs;
        row.completed = self.tick_completed[s];
        row.dropped = self.tick_dropped[s];
        row.cpu_util = if cpu_serving > 0.0 { cpu_used / cpu_serving } else { 0.0 };
        row.p95_ms = self.fluid.p95_ms[s].take().unwrap_or_else(|| quantile_ms(&self.tick_hist[s], 0.95));
        let t = &mut self.svc[s];
        t.arrived += self.tick_arrivals[s];
        t.completed += self.tick_completed[s];
        t.dropped += self.tick_dropped[s];
        t.cpu_used_core_us += cpu_used;
        t.cpu_serving_core_us += cpu_serving;
        t.active_replica_us += row.active as f64 * length_us as f64;
        t.replication_lag_sum += row.replication_lag_ms;
        self.last_lag[s] = row.replication_lag_ms;
        t.intervals += 1;
        let Some(w) = &mut self.timeline else { return Ok(()) };
        if self.interval_whole_secs {
            write!(w, "{}", row.time_s as u64)?;
        } else {
            write_fixed(w, row.time_s, 3)?;
        }
        write!(w, ",{},{},{},{},", self.names[s], row.active, row.starting, row.draining)?;
        write_fixed(w, row.rps_in, 3)?;
        write!(w, ",{},{},", row.completed, row.dropped)?;
        write_fixed(w, row.cpu_util, 4)?;
        w.write_all(b",")?;
        write_fixed(w, row.p95_ms, 3)?;
        write!(w, ",{},", row.queue_len)?;
        write_fixed(w, row.replication_lag_ms, 3)?;
        writeln!(w, ",{TIMELINE_FORMAT_VERSION}")
    }

    /// Resets the per-interval accumulators (after the metrics server has taken its copy).
    pub fn reset_interval(&mut self) {
        for s in 0..self.names.len() {
            self.tick_arrivals[s] = 0;
            self.tick_completed[s] = 0;
            self.tick_dropped[s] = 0;
            self.tick_writes[s] = 0;
            if !self.tick_hist[s].is_empty() {
                self.tick_hist[s].reset();
            }
        }
    }

    /// Scaling lag: an episode starts at the end of the first interval in which the service's demand
    /// (visits/s averaged over the last scrape window) exceeds the capacity of its Active instances
    /// (`active * concurrency * slot_cores / mean demand per visit`), and ends at the end of the first
    /// interval in which capacity covers demand again.
    pub fn track_lag(&mut self, service: usize, now: SimTime, capacity_rps: f64) {
        let secs = self.interval_us as f64 / 1e6;
        let l = &mut self.lag[service];
        let arrivals = self.tick_arrivals[service];
        l.sum = l.sum + arrivals - l.ring[l.pos];
        l.ring[l.pos] = arrivals;
        l.pos = (l.pos + 1) % l.ring.len();
        l.filled = (l.filled + 1).min(l.ring.len());
        let demand = l.sum as f64 / (l.filled as f64 * secs);
        let short = demand > capacity_rps;
        match (short, l.since) {
            (true, None) => l.since = Some(now),
            (false, Some(start)) => {
                self.lag_episodes_s.push((now - start).as_secs_f64());
                l.since = None;
            }
            _ => {}
        }
    }

    /// Closes episodes still open at the end of the run (counted up to `now`, censored).
    pub fn close_lag(&mut self, now: SimTime) {
        for l in &mut self.lag {
            if let Some(start) = l.since.take() {
                self.lag_episodes_s.push((now - start).as_secs_f64());
                self.lag_open_at_end += 1;
            }
        }
    }

    /// Records a policy decision's replica change for the oscillation count.
    pub fn record_change(&mut self, service: usize, from: u32, to: u32) {
        self.decisions += 1;
        if to == from {
            return;
        }
        self.replica_changes += 1;
        let dir: i8 = if to > from { 1 } else { -1 };
        let last = &mut self.last_direction[service];
        if *last != 0 && *last != dir {
            self.reversals += 1;
        }
        *last = dir;
    }

    pub fn service_hist(&self, s: usize) -> &Histogram<u64> {
        &self.svc_hist[s]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(w) = &mut self.requests_out {
            w.flush()?;
        }
        match &mut self.timeline {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::write_fixed;

    #[test]
    fn fixed_formatting_matches_std() {
        for (x, d) in [(0.0, 3), (1.23456, 3), (-0.0004, 3), (-2.5, 4), (123456.7891, 3), (0.99995, 4), (7.0, 1)] {
            let mut out = Vec::new();
            write_fixed(&mut out, x, d).unwrap();
            let got = String::from_utf8(out).unwrap();
            let want = format!("{:.*}", d as usize, x);
            // std rounds half to even on exact binary ties; neither case occurs in these values.
            assert_eq!(
                got.trim_start_matches('-').parse::<f64>().unwrap(),
                want.trim_start_matches('-').parse::<f64>().unwrap(),
                "{x}"
            );
        }
    }
}
