//! Metrics, in two separate views:
//! - **ground truth** ([`GroundTruth`]): what really happened, per timeline interval and per service,
//!   and the run summary (SLO violation, slack, scaling lag, cost, CAF, oscillation, latency
//!   percentiles). Only reports read it.
//! - **what a controller sees** ([`MetricsServer`] producing a [`ClusterView`]): CPU rates scraped
//!   every scrape interval as a metrics-server computes them, RPS and p95 over the last window, and
//!   replica counts. Policies get only this view.
//!
//! This module computes and formats numbers; it never changes the cluster and never decides anything.

pub mod gap;
mod interval;
mod recording;
mod server;
mod summary;
mod truth;
mod view;

pub use interval::{HeldOutside, IntervalMeter};
pub use recording::{
    ActionsWriter, DecisionRecord, Recording, RunTotals, Sample, ServiceSample, ACTIONS_FORMAT_VERSION, ACTIONS_HEADER,
};
pub use server::MetricsServer;
pub use summary::{
    nearest_rank, Compared, LatencySummary, LlmSummary, Percentiles, RequestCounts, ScalingLagSummary, ServiceSummary,
    Summary, COMPARED, SUMMARY_FORMAT_VERSION,
};
pub use truth::{
    DropKind, FluidRequests, GroundTruth, IntervalRow, RunFacts, REQUESTS_HEADER, TIMELINE_FORMAT_VERSION,
    TIMELINE_HEADER,
};
pub use view::{ClusterView, LlmPodMetrics, PodPhase, PodView, ServiceView, HISTORY_LEN, HISTORY_SPAN_S};

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to one hour (longer values are clamped to one hour),
/// with `sigfig` significant digits. The histogram starts small and grows to the largest value
/// recorded: the same buckets as one sized for an hour up front, without allocating and zeroing
/// that (a fluid RL episode builds dozens and records into few).
pub fn latency_histogram(sigfig: u8) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 2, sigfig).expect("static histogram bounds are valid");
    h.auto(true);
    h
}

/// Records `us` into `h`, clamped to [1 us, 1 h] so a pathological value can never fail.
#[inline]
pub fn record_latency(h: &mut Histogram<u64>, us: u64) {
    let v = us.clamp(1, 3_600_000_000);
    // `record` grows the histogram (`saturating_record` would clamp to its current top instead);
    // it only fails when memory does, and then the sample is lost rather than the run.
    let _ = h.record(v);
}

/// The value at quantile `q` in milliseconds, 0 for an empty histogram.
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}
