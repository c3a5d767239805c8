//! The load forecast an agent may observe (`load_forecast_s` in an agent config): each service's
//! arrival rate extrapolated a fixed time ahead along its trend over the last minute.
//!
//! Every other observation feature is the current interval's, yet what separates a policy from the
//! HPA's front is capacity ready before a rise and given back after it, which is about where the
//! load goes. With a forecast on, the HPA-formula feature ([`super::observation::HPA_DESIRED`])
//! becomes the HPA formula's count for the forecast load:
//! `ceil(active x utilisation x forecast / rps / target)`. The feature's slot and scale are kept,
//! so the networks and their checkpoints keep their shapes; with a flat load it equals the plain
//! feature.
//!
//! Forecast: the service's rate over the metrics window plus the least-squares slope of its
//! per-interval rates over the last [`TREND_WINDOW_S`], times the horizon; never below 0. The
//! rates are the view's `rps_history`: the simulator and the local backend keep it; where a
//! backend keeps none, as the Kubernetes one, the forecast is the current rate and the feature the
//! plain one. A straight line over a minute rather than a smoothed trend with constants to tune
//! (Holt's): it has no parameter but the horizon, and a minute of one-second rates averages away
//! the second-scale noise of bursty arrivals.
//!
//! Reads only the view; the collector ([`super::observation::collect`]) scales the feature by
//! [`load_ratio`], so training and a deployed agent see the same forecast, and the action mask's
//! floor and ceiling may read the same ratio (`floor_reads_forecast`, `ceiling_reads_forecast`).
//! Never knows what the agent or the mask does with it.

use crate::metrics::{ClusterView, ServiceView};

/// How far back the trend looks, seconds.
pub const TREND_WINDOW_S: f64 = 60.0;

/// The longest forecast horizon a config may ask for, seconds: an hour ahead is past any scale-up
/// an agent waits for, and a line fitted over a minute says nothing that far.
pub const MAX_HORIZON_S: f64 = 3_600.0;

/// The least-squares slope of `rates`, one every `interval_s` seconds, in rate per second; 0 with
/// fewer than two.
pub fn slope(rates: &[f64], interval_s: f64) -> f64 {
    let n = rates.len();
    if n < 2 || interval_s <= 0.0 {
        return 0.0;
    }
    // Times 0, 1, ..., n-1 intervals: their mean is (n-1)/2 and sum of squared deviations
    // n(n^2-1)/12.
    let nf = n as f64;
    let mean_i = (nf - 1.0) / 2.0;
    let mean_r = rates.iter().sum::<f64>() / nf;
    let num: f64 = rates.iter().enumerate().map(|(i, r)| (i as f64 - mean_i) * (r - mean_r)).sum();
    let den = nf * (nf * nf - 1.0) / 12.0;
    num / den / interval_s
}

/// Service `sv`'s arrival rate `horizon_s` ahead: its rate plus the slope of its last
/// [`TREND_WINDOW_S`] of per-interval rates (intervals of `interval_s`) times the horizon, at
/// least 0. The current rate when the view keeps no history.
pub fn forecast(sv: &ServiceView, interval_s: f64, horizon_s: f64) -> f64 {
    if interval_s <= 0.0 {
        return sv.rps;
    }
    let entries = ((TREND_WINDOW_S / interval_s).round() as usize).max(2);
    let recent = &sv.rps_history[sv.rps_history.len().saturating_sub(entries)..];
    (sv.rps + slope(recent, interval_s) * horizon_s).max(0.0)
}

/// How much busier service `sv` will be `horizon_s` ahead: its forecast over its current rate;
/// 1 with no arrivals (utilisation cannot be moved in proportion to a rate of 0).
pub fn load_ratio(sv: &ServiceView, interval_s: f64, horizon_s: f64) -> f64 {
    if sv.rps > 0.0 {
        forecast(sv, interval_s, horizon_s) / sv.rps
    } else {
        1.0
    }
}

/// [`load_ratio`] of service `sv` at the view's history interval, `horizon_s` ahead; 1 without a
/// horizon. What the observation and the action mask's bounds read.
pub fn load_ratio_ahead(view: &ClusterView, sv: &ServiceView, horizon_s: Option<f64>) -> f64 {
    horizon_s.map_or(1.0, |h| load_ratio(sv, view.history_interval.as_secs_f64(), h))
}

#[cfg(test)]
pub(crate) mod tests;
