//! The replica counts the rules of an action ask for: the Kubernetes HPA formula's count at a CPU
//! target (on the served load, or on the offered load, refused visits counted), and the count a
//! multiplicative step moves to. Pure functions of a service's metrics; they know nothing of masks,
//! windows or backends.

use super::PeakSpan;

/// The Kubernetes HPA's replica count for a service at `target` CPU utilisation of request:
/// `ceil(active x utilisation / target)`, held at the current count (Active + Starting) within
/// the HPA's 10% tolerance, when no Active replica reports a utilisation, and, while replicas are
/// starting, against going below the current count (the HPA does not scale down pods it is still
/// waiting for); then clamped to the service's min and max replicas.
pub fn hpa_recommendation(sv: &crate::metrics::ServiceView, target: f64) -> i64 {
    recommendation_at(sv, target, sv.cpu_utilization)
}

/// The most of a service's offered load [`offered_utilization`] infers from its served load: a
/// tenth served (ten times the utilisation), so one window of near-total refusal (a service
/// with no room at all) does not ask for an unbounded count.
pub(super) const MOST_REFUSED_SHARE: f64 = 0.9;

/// The CPU utilisation (of request) a service's offered visits would cause: its utilisation
/// over the share of the window's visits it served, `utilisation / (1 - refused share)`, the
/// refused share held to at most `MOST_REFUSED_SHARE` (0.9). A saturated service runs at its CPU
/// limit whatever arrives; its refusals say how much more arrived. (Visits in a growing queue are
/// not counted: they are served later.)
pub fn offered_utilization(sv: &crate::metrics::ServiceView) -> Option<f64> {
    let refused = sv.error_rate.clamp(0.0, MOST_REFUSED_SHARE);
    sv.cpu_utilization.map(|u| u / (1.0 - refused))
}

/// A bound's count (the floor's, [`crate::rl::ActionConfig::hpa_floor`], or the ceiling's): the
/// HPA formula's count ([`hpa_recommendation`]) at the served load's utilisation or, when
/// `counts_refused`, at the utilisation the offered load would cause ([`offered_utilization`]:
/// the same when nothing was refused), times `scale` (the product of the window's [`peak_ratio`]
/// under [`crate::rl::ActionConfig::floor_peak_s`] and the forecast's rise under
/// [`crate::rl::ActionConfig::floor_forecast_s`] or `ceiling_forecast_s`; 1 without them, which
/// leaves the utilisation exactly as it was).
pub fn bound_recommendation(sv: &crate::metrics::ServiceView, target: f64, counts_refused: bool, scale: f64) -> i64 {
    let utilization = if counts_refused { offered_utilization(sv) } else { sv.cpu_utilization };
    recommendation_at(sv, target, utilization.map(|u| u * scale))
}

/// How much busier a `peak_len`-entry span of the last `window_len` entries of `rps_history`
/// (arrivals per second per interval, oldest first) is than those `window_len` entries on
/// average: the ratio of the span's mean to the window's mean, at least 1. The span is the
/// busiest one within the window, or the latest `peak_len` entries ([`PeakSpan`]). 1 for a window
/// with no arrivals or no history. A window shorter than `peak_len` entries is its own peak
/// (ratio 1).
///
/// Over a 15 s window of 1 s entries, nine seconds at 400 and six at 0: the window's mean is 240,
/// the busiest 6 s mean 400, ratio 5/3; the latest 6 s mean 0, ratio 1.
pub fn peak_ratio(rps_history: &[f64], window_len: usize, peak_len: usize, span: PeakSpan) -> f64 {
    let window = &rps_history[rps_history.len().saturating_sub(window_len)..];
    let mean = window.iter().sum::<f64>() / window.len().max(1) as f64;
    if mean <= 0.0 || peak_len == 0 || window.len() <= peak_len {
        return 1.0;
    }
    let peak = match span {
        PeakSpan::Busiest => busiest_mean(window, peak_len),
        PeakSpan::Latest => window[window.len() - peak_len..].iter().sum::<f64>() / peak_len as f64,
    };
    (peak / mean).max(1.0)
}

/// The highest mean of `span_len` consecutive entries of `rates`: the busiest span's rate. The
/// mean of them all when there are fewer; 0 for none or a span of 0. Over (0, 0, 0, 3, 3, 6) with
/// a span of 3: 4.
pub fn busiest_mean(rates: &[f64], span_len: usize) -> f64 {
    if rates.is_empty() || span_len == 0 {
        return 0.0;
    }
    let span = span_len.min(rates.len());
    rates.windows(span).map(|w| w.iter().sum::<f64>()).fold(0.0, f64::max) / span as f64
}

fn recommendation_at(sv: &crate::metrics::ServiceView, target: f64, utilization: Option<f64>) -> i64 {
    let current = (sv.counts.active + sv.counts.starting) as i64;
    let (min, max) = (sv.min_replicas as i64, sv.max_replicas as i64);
    let Some(util) = utilization.filter(|_| sv.counts.active > 0) else {
        return current.clamp(min, max);
    };
    let ratio = util / target;
    let wanted = if (ratio - 1.0).abs() <= 0.1 { current } else { (sv.counts.active as f64 * ratio).ceil() as i64 };
    let wanted = if sv.counts.starting > 0 { wanted.max(current) } else { wanted };
    wanted.clamp(min, max)
}

/// The replica count a delta of `delta` (-2..=2) asks for from `current` with multiplicative
/// steps: x1.5 for +1 and x2 for +2 (rounded up), x0.75 for -1 and x0.5 for -2 (rounded down),
/// and at least the additive step either way; then clamped to `[min, max]` and, going up, to
/// `current + room` (the cluster's free instance slots). With 3 replicas: +1 -> 5, +2 -> 6,
/// -1 -> 2, -2 -> 1. The HPA moves as far in one sync (it doubles under its default policy);
/// steps of one or two replicas take four decisions to go from 1 to 7.
pub fn multiplied_target(current: i64, delta: i32, min: i64, max: i64, room: i64) -> i64 {
    let c = current as f64;
    let target = match delta {
        1 => ((c * 1.5).ceil() as i64).max(current + 1),
        2 => ((c * 2.0).ceil() as i64).max(current + 2),
        -1 => ((c * 0.75).floor() as i64).min(current - 1),
        -2 => ((c * 0.5).floor() as i64).min(current - 2),
        _ => current + delta as i64,
    };
    if delta > 0 {
        target.min(max).min(current + room.max(0))
    } else {
        target.max(min)
    }
}

#[cfg(test)]
mod tests {
    use super::{busiest_mean, multiplied_target, peak_ratio, PeakSpan};

    /// An older entry of 1,000, then nine seconds at 400 and six at 0.
    fn passed_burst() -> Vec<f64> {
        let mut burst = vec![1000.0];
        burst.extend([400.0; 9]);
        burst.extend([0.0; 6]);
        burst
    }

    /// By hand: nine seconds at 400 and six at 0 (a 15 s window of 1 s entries) have a mean of
    /// 240; the busiest 6 s, 400 (ratio 5/3); the busiest 10 s, (9 x 400 + 0) / 10 = 360 (ratio
    /// 1.5). Only the last `window_len` entries count: an older 1,000 changes nothing. An even
    /// load is its own peak (1); so are no arrivals, no history, and a span as long as the window.
    #[test]
    fn peak_ratio_by_hand() {
        let busiest = |h: &[f64], w, p| peak_ratio(h, w, p, PeakSpan::Busiest);
        let burst = passed_burst();
        assert!((busiest(&burst, 15, 6) - 5.0 / 3.0).abs() < 1e-12);
        assert!((busiest(&burst, 15, 10) - 1.5).abs() < 1e-12);
        assert_eq!(busiest(&[7.0; 15], 15, 5), 1.0);
        assert_eq!((busiest(&[0.0; 15], 15, 5), busiest(&[], 15, 5)), (1.0, 1.0));
        assert_eq!((busiest(&burst, 15, 15), busiest(&burst[10..], 15, 6)), (1.0, 1.0));
        // A window of six entries with a span of three: (0, 0, 0, 3, 3, 6): mean 2, busiest 4.
        assert!((busiest(&[9.0, 0.0, 0.0, 0.0, 3.0, 3.0, 6.0], 6, 3) - 2.0).abs() < 1e-12);
    }

    /// By hand: (0, 0, 0, 3, 3, 6) has its busiest three at 4, its busiest one at 6, and as one
    /// span of six (or of more than six), 2; nothing, or a span of 0, is 0.
    #[test]
    fn busiest_mean_by_hand() {
        let rates = [0.0, 0.0, 0.0, 3.0, 3.0, 6.0];
        assert_eq!((busiest_mean(&rates, 3), busiest_mean(&rates, 1)), (4.0, 6.0));
        assert_eq!((busiest_mean(&rates, 6), busiest_mean(&rates, 10)), (2.0, 2.0));
        assert_eq!((busiest_mean(&[], 3), busiest_mean(&rates, 0)), (0.0, 0.0));
    }

    /// By hand, the latest span: the burst above has passed (its latest 6 s are quiet, ratio 1;
    /// its latest 10 s, 4 x 400 / 10 = 160 against 240, also 1); the same burst still arriving
    /// (six quiet seconds, then nine at 400) reads 400 / 240 = 5/3 over 6 s and 360 / 240 = 1.5
    /// over 10 s, as the busiest span does. In (0, 0, 0, 3, 3, 6) the latest three, mean 4,
    /// against 2: ratio 2; the latest one, 6: ratio 3. An even load and no arrivals read 1.
    #[test]
    fn latest_peak_ratio_by_hand() {
        let latest = |h: &[f64], w, p| peak_ratio(h, w, p, PeakSpan::Latest);
        let passed = passed_burst();
        assert_eq!((latest(&passed, 15, 6), latest(&passed, 15, 10)), (1.0, 1.0));
        let mut arriving = vec![0.0; 6];
        arriving.extend([400.0; 9]);
        assert!((latest(&arriving, 15, 6) - 5.0 / 3.0).abs() < 1e-12);
        assert!((latest(&arriving, 15, 10) - 1.5).abs() < 1e-12);
        let rising = [9.0, 0.0, 0.0, 0.0, 3.0, 3.0, 6.0];
        assert!((latest(&rising, 6, 3) - 2.0).abs() < 1e-12);
        assert!((latest(&rising, 6, 1) - 3.0).abs() < 1e-12);
        assert_eq!((latest(&[7.0; 15], 15, 5), latest(&[0.0; 15], 15, 5)), (1.0, 1.0));
    }

    /// By hand, min 1, max 7, room 10: from 3, +1 -> ceil(4.5) = 5, +2 -> 6, -1 -> floor(2.25) =
    /// 2, -2 -> floor(1.5) = 1; from 1, +1 -> max(ceil(1.5), 2) = 2, +2 -> 3 (the additive step is
    /// the least); from 5, +2 -> 10, clamped to 7, and with 1 free slot to 6; from 2, -2 -> the
    /// minimum, 1; 0 holds.
    #[test]
    fn multiplicative_steps_by_hand() {
        let t = |current, delta| multiplied_target(current, delta, 1, 7, 10);
        assert_eq!((t(3, 1), t(3, 2), t(3, -1), t(3, -2)), (5, 6, 2, 1));
        assert_eq!((t(1, 1), t(1, 2)), (2, 3));
        assert_eq!((t(5, 2), multiplied_target(5, 2, 1, 7, 1)), (7, 6));
        assert_eq!((t(2, -2), t(4, 0)), (1, 4));
    }
}
