//! Metrics, in two separate views:
//! - **ground truth** ([`GroundTruth`]): what really happened, per timeline interval and per service,
//!   and the run summary (SLO violation, slack, scaling lag, cost, CAF, oscillation, latency
//!   percentiles). Only reports read it.
//! - **what a controller sees** ([`MetricsServer`] producing a [`ClusterView`]): CPU rates scraped
//!   every scrape interval as a metrics-server computes them, RPS and p95 over the last window, and
//!   replica counts. Policies get only this view.
//!
//! This module computes and formats numbers; it never changes the cluster and never decides anything.

mod server;
mod summary;
mod truth;
mod view;

pub use server::MetricsServer;
pub use summary::{
    nearest_rank, LatencySummary, LlmSummary, Percentiles, RequestCounts, ScalingLagSummary, ServiceSummary, Summary,
    SUMMARY_FORMAT_VERSION,
};
pub use truth::{DropKind, FluidRequests, GroundTruth, IntervalRow, TIMELINE_FORMAT_VERSION, TIMELINE_HEADER};
pub use view::{ClusterView, PodView, ServiceView, HISTORY_LEN};

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to one hour, with three significant digits
/// (0.1% resolution). Longer values are clamped to one hour.
pub fn latency_histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, sigfig).expect("static histogram bounds are valid")
}

/// Records `us` into `h`, clamping to the histogram's range so a pathological value can never fail.
#[inline]
pub fn record_latency(h: &mut Histogram<u64>, us: u64) {
    let v = us.clamp(1, 3_600_000_000);
    h.saturating_record(v);
}

/// The value at quantile `q` in milliseconds, 0 for an empty histogram.
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}
