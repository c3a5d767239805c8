//! Sim-to-real validation: the same scenario and policy on the simulator and on a real backend,
//! and the gap between them.
//!
//! The gap is what a user needs to decide whether to trust the simulator for a scenario: per
//! service the mean CPU utilisation (points), Active replicas and scale decisions; end to end the
//! mean, p50 and p95 latency (relative error against the real backend) and the drops. The
//! acceptance bounds are the ones this project holds the simulator to: mean latency within 20%,
//! CPU utilisation within 10 points per service, scale decisions within 1.
//!
//! The simulator side replays the real platform's measured cost per visit (loopback transport and
//! scheduler stalls, `app::PlatformOverhead`): the comparison then tests the queueing, routing and
//! scaling model rather than the cost of HTTP on this machine. The gap without that replay is
//! reported too (`platform_overhead.*_unmodelled`), so the overhead's share is visible.
//!
//! Numbers and their formatting only (the two recordings come from `backend::driver`); it drives
//! no backend.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::Recording;
use crate::app::PlatformOverhead;

/// Bounds a validation is held to.
pub const LATENCY_REL_BOUND: f64 = 0.20;
pub const CPU_POINTS_BOUND: f64 = 10.0;
pub const DECISIONS_BOUND: usize = 1;

#[derive(Clone, Debug, Serialize)]
pub struct ServiceGap {
    pub service: String,
    pub sim_cpu_utilization_pct: Option<f64>,
    pub real_cpu_utilization_pct: Option<f64>,
    /// |sim - real|, percentage points.
    pub cpu_error_points: Option<f64>,
    pub sim_mean_active: f64,
    pub real_mean_active: f64,
    /// Mean over the samples of the service's p95 visit latency (ms), as the mesh reports it:
    /// where an end-to-end gap comes from.
    pub sim_p95_ms: f64,
    pub real_p95_ms: f64,
    pub sim_scale_decisions: usize,
    pub real_scale_decisions: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct LatencyGap {
    pub sim_ms: f64,
    pub real_ms: f64,
    /// (sim - real) / real.
    pub rel_error: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Gap {
    pub format_version: u32,
    pub scenario: String,
    pub policy: String,
    pub against: String,
    pub seed: u64,
    pub time_compression: f64,
    pub mean_latency: LatencyGap,
    pub p50_latency: LatencyGap,
    pub p95_latency: LatencyGap,
    pub sim_requests: u64,
    pub real_requests: u64,
    pub sim_dropped: u64,
    pub real_dropped: u64,
    pub sim_scale_decisions: usize,
    pub real_scale_decisions: usize,
    pub services: Vec<ServiceGap>,
    pub max_cpu_error_points: f64,
    /// Worker processes that died and were replaced during the real run.
    pub real_worker_failures: u64,
    pub sim_wall_s: f64,
    pub real_wall_s: f64,
    pub latency_within_bound: bool,
    pub cpu_within_bound: bool,
    pub decisions_within_bound: bool,
    /// The real platform's measured cost per visit, replayed by the simulator (absent when none
    /// was measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_overhead: Option<OverheadGap>,
}

/// What the measured platform overhead was, and the gap the simulator shows without it.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadGap {
    /// Requests (dispatch), visits sent to an idle worker (transport), answered visits (stall).
    pub dispatch_samples: usize,
    pub transport_samples: usize,
    pub stall_samples: usize,
    /// Scenario milliseconds per request (dispatch) and per visit.
    pub dispatch_mean_ms: f64,
    pub dispatch_p95_ms: f64,
    pub transport_mean_ms: f64,
    pub transport_p95_ms: f64,
    pub stall_mean_ms: f64,
    pub stall_p95_ms: f64,
    /// Mean stall with 1, 2, 3 and 4+ requests in flight (`null` where none was measured).
    pub stall_mean_ms_by_in_flight: Vec<Option<f64>>,
    /// The latency gaps of a simulator run that does not replay the overhead.
    pub mean_latency_rel_error_unmodelled: f64,
    pub p95_latency_rel_error_unmodelled: f64,
}

impl Gap {
    pub fn holds(&self) -> bool {
        self.latency_within_bound && self.cpu_within_bound && self.decisions_within_bound
    }

    /// Records the overhead the simulator replayed, and the latency gaps of `unmodelled` (the
    /// simulator run without it) against `real`.
    pub fn with_overhead(mut self, overhead: &PlatformOverhead, unmodelled: &Recording, real: &Recording) -> Gap {
        let (dispatch_mean_ms, dispatch_p95_ms) = overhead.dispatch.stats_ms();
        let (transport_mean_ms, transport_p95_ms) = overhead.transport.stats_ms();
        let (stall_mean_ms, stall_p95_ms) = overhead.stall.stats_ms();
        self.platform_overhead = Some(OverheadGap {
            dispatch_samples: overhead.dispatch.len(),
            dispatch_mean_ms,
            dispatch_p95_ms,
            transport_samples: overhead.transport.len(),
            stall_samples: overhead.stall.len(),
            stall_mean_ms_by_in_flight: overhead.stall.bucket_means_ms(),
            transport_mean_ms,
            transport_p95_ms,
            stall_mean_ms,
            stall_p95_ms,
            mean_latency_rel_error_unmodelled: latency_gap(unmodelled.latency_ms.mean, real.latency_ms.mean).rel_error,
            p95_latency_rel_error_unmodelled: latency_gap(unmodelled.latency_ms.p95, real.latency_ms.p95).rel_error,
        });
        self
    }
}

fn latency_gap(sim: f64, real: f64) -> LatencyGap {
    LatencyGap { sim_ms: sim, real_ms: real, rel_error: if real > 0.0 { (sim - real) / real } else { 0.0 } }
}

/// The gap between a simulator run and a real one of the same scenario and policy.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    scenario: &str,
    against: &str,
    seed: u64,
    time_compression: f64,
    sim: &Recording,
    real: &Recording,
    real_worker_failures: u64,
) -> Gap {
    let per_service_decisions =
        |log: &Recording, s: usize| log.decisions.iter().filter(|d| d.service == s && d.from != d.to).count();
    let services: Vec<ServiceGap> = sim
        .services
        .iter()
        .enumerate()
        .map(|(s, name)| {
            let (a, b) = (sim.mean_cpu_utilization(s), real.mean_cpu_utilization(s));
            ServiceGap {
                service: name.clone(),
                sim_cpu_utilization_pct: a.map(|v| v * 100.0),
                real_cpu_utilization_pct: b.map(|v| v * 100.0),
                cpu_error_points: a.zip(b).map(|(a, b)| (a - b).abs() * 100.0),
                sim_mean_active: sim.mean_active(s),
                real_mean_active: real.mean_active(s),
                sim_p95_ms: sim.mean_p95_ms(s),
                real_p95_ms: real.mean_p95_ms(s),
                sim_scale_decisions: per_service_decisions(sim, s),
                real_scale_decisions: per_service_decisions(real, s),
            }
        })
        .collect();
    let max_cpu = services.iter().filter_map(|s| s.cpu_error_points).fold(0.0, f64::max);
    let mean = latency_gap(sim.latency_ms.mean, real.latency_ms.mean);
    let (sd, rd) = (sim.scale_decisions(), real.scale_decisions());
    Gap {
        format_version: 1,
        scenario: scenario.into(),
        policy: sim.policy.clone(),
        against: against.into(),
        seed,
        time_compression,
        latency_within_bound: mean.rel_error.abs() <= LATENCY_REL_BOUND,
        mean_latency: mean,
        p50_latency: latency_gap(sim.latency_ms.p50, real.latency_ms.p50),
        p95_latency: latency_gap(sim.latency_ms.p95, real.latency_ms.p95),
        sim_requests: sim.totals.arrived,
        real_requests: real.totals.arrived,
        sim_dropped: sim.totals.dropped,
        real_dropped: real.totals.dropped,
        sim_scale_decisions: sd,
        real_scale_decisions: rd,
        cpu_within_bound: max_cpu <= CPU_POINTS_BOUND,
        decisions_within_bound: sd.abs_diff(rd) <= DECISIONS_BOUND,
        services,
        max_cpu_error_points: max_cpu,
        real_worker_failures,
        sim_wall_s: sim.wall_s,
        real_wall_s: real.wall_s,
        platform_overhead: None,
    }
}

/// Replica counts and CPU utilisation of both runs side by side, one row per sample and service.
pub fn write_side_by_side(path: &Path, sim: &Recording, real: &Recording) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record([
        "time_s",
        "service",
        "sim_active",
        "real_active",
        "sim_starting",
        "real_starting",
        "sim_cpu_utilization",
        "real_cpu_utilization",
    ])?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |u| format!("{u:.4}"));
    for (a, b) in sim.samples.iter().zip(&real.samples) {
        for (s, name) in sim.services.iter().enumerate() {
            let (x, y) = (&a.services[s], &b.services[s]);
            w.write_record([
                format!("{:.3}", a.time_s),
                name.clone(),
                x.active.to_string(),
                y.active.to_string(),
                x.starting.to_string(),
                y.starting.to_string(),
                opt(x.cpu_utilization),
                opt(y.cpu_utilization),
            ])?;
        }
    }
    w.flush()
}

/// A readable summary of the gap (Markdown).
pub fn markdown(gap: &Gap) -> String {
    let mark = |ok: bool| if ok { "within bound" } else { "OUT OF BOUND" };
    let mut s = String::new();
    let _ = writeln!(s, "# Validation: `{}` with `{}`, simulator vs {}\n", gap.scenario, gap.policy, gap.against);
    let _ = writeln!(
        s,
        "Seed {}, time compression {} (real run {:.1} s wall, simulator {:.2} s).\n",
        gap.seed, gap.time_compression, gap.real_wall_s, gap.sim_wall_s
    );
    let _ = writeln!(s, "| metric | simulator | {} | error |\n|---|---|---|---|", gap.against);
    for (name, l) in
        [("mean latency (ms)", &gap.mean_latency), ("p50 (ms)", &gap.p50_latency), ("p95 (ms)", &gap.p95_latency)]
    {
        let _ = writeln!(s, "| {name} | {:.2} | {:.2} | {:+.1}% |", l.sim_ms, l.real_ms, l.rel_error * 100.0);
    }
    let _ = writeln!(s, "| requests | {} | {} | |", gap.sim_requests, gap.real_requests);
    let _ = writeln!(s, "| dropped | {} | {} | |", gap.sim_dropped, gap.real_dropped);
    let _ = writeln!(
        s,
        "| scale decisions | {} | {} | {} |",
        gap.sim_scale_decisions,
        gap.real_scale_decisions,
        gap.sim_scale_decisions.abs_diff(gap.real_scale_decisions)
    );
    let _ = writeln!(
        s,
        "\n| service | CPU util sim (%) | CPU util {0} (%) | error (points) | mean active sim | mean active {0} \
         | visit p95 sim (ms) | visit p95 {0} (ms) |",
        gap.against
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for g in &gap.services {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {:.1} |",
            g.service,
            opt(g.sim_cpu_utilization_pct),
            opt(g.real_cpu_utilization_pct),
            opt(g.cpu_error_points),
            g.sim_mean_active,
            g.real_mean_active,
            g.sim_p95_ms,
            g.real_p95_ms
        );
    }
    let _ = writeln!(
        s,
        "\nBounds: mean latency within {:.0}%: {}; CPU within {:.0} points: {}; scale decisions within {}: {}.",
        LATENCY_REL_BOUND * 100.0,
        mark(gap.latency_within_bound),
        CPU_POINTS_BOUND,
        mark(gap.cpu_within_bound),
        DECISIONS_BOUND,
        mark(gap.decisions_within_bound)
    );
    if let Some(o) = &gap.platform_overhead {
        let _ = writeln!(
            s,
            "\nThe simulator replays the {0} platform's measured cost per visit (scenario time): dispatch \
             {9:.2} ms mean, {10:.2} ms p95 ({11} requests); transport {1:.2} ms mean, {2:.2} ms p95 ({3} visits \
             to idle workers); stall beyond the CPU demand {4:.2} ms mean, {5:.2} ms p95 ({6} visits). Without \
             it the latency errors are {7:+.1}% (mean) and {8:+.1}% (p95).",
            gap.against,
            o.transport_mean_ms,
            o.transport_p95_ms,
            o.transport_samples,
            o.stall_mean_ms,
            o.stall_p95_ms,
            o.stall_samples,
            o.mean_latency_rel_error_unmodelled * 100.0,
            o.p95_latency_rel_error_unmodelled * 100.0,
            o.dispatch_mean_ms,
            o.dispatch_p95_ms,
            o.dispatch_samples
        );
    }
    if gap.real_worker_failures > 0 {
        let _ = writeln!(
            s,
            "\n{} worker process(es) died during the real run and were replaced.",
            gap.real_worker_failures
        );
    }
    s
}
