//! The fast floor: between an agent's decisions, every few seconds, each service whose count is
//! below what its latest seconds of arrivals need at the HPA floor's target is raised to that
//! count. Knative's autoscaler reads a 6 s panic window beside its 60 s stable one for the same
//! reason: a step in the load should be answered within seconds, while the policy decides every
//! 15 s. The fast floor only raises; it keeps no count of its own (the scale-down window that
//! follows every scale-up, and the policy, decide how long the replicas stay). Here: its settings
//! ([`FastFloor`]), the count it asks for ([`fast_floor_count`]) and the raises a view calls for
//! ([`fast_floor_raises`]). It knows nothing of backends or policies: the environment and the
//! deployed agent execute the raises, each its own way.

use super::counts::MOST_REFUSED_SHARE;
use crate::engine::SimTime;
use crate::metrics::{ClusterView, PodPhase, ServiceView};

/// Knative's panic window (10% of its 60 s stable window): what the fast floor reads unless
/// told otherwise.
const DEFAULT_READS_S: f64 = 6.0;

/// The fast floor's settings ([`crate::rl::ActionConfig::fast_floor`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FastFloor {
    /// Time between its looks, within a decision interval (which it divides).
    pub every: SimTime,
    /// The span of latest arrivals it reads, seconds.
    pub reads_s: f64,
    /// It raises a service only when its count is at least this many times the current one (1:
    /// whenever it is above), as Knative panics only when its panic window asks for twice the
    /// ready pods: noise in a few seconds of arrivals raises nothing.
    pub panic_ratio: f64,
    /// Its raises leave the scale-down window as it was (false: each restarts the window, as any
    /// scale-up does), so the policy and the ceiling may give the replicas back at the next
    /// decision.
    pub leaves_window: bool,
}

impl FastFloor {
    /// Looks every `every`, reading the latest `reads_s` seconds; raises whenever it is above the
    /// count, each raise restarting the scale-down window.
    pub fn new(every: SimTime, reads_s: f64) -> FastFloor {
        FastFloor { every, reads_s, panic_ratio: 1.0, leaves_window: false }
    }

    /// From the settings as an agent config or the Python binding gives them (checked before by
    /// [`super::check_fast_floor`]): a period in seconds, and a span and ratio that default to
    /// 6 s (Knative's panic window) and 1.
    pub fn from_settings(every_s: f64, reads_s: Option<f64>, panic_ratio: Option<f64>, leaves_window: bool) -> Self {
        FastFloor {
            every: SimTime::from_secs_f64(every_s),
            reads_s: reads_s.unwrap_or(DEFAULT_READS_S),
            panic_ratio: panic_ratio.unwrap_or(1.0),
            leaves_window,
        }
    }
}

/// The count service `sv`'s latest `reads_s` seconds of arrivals need at `target` CPU (of
/// request), as the floor's HPA formula counts it at the last scrape, scaled by the load since:
/// `ceil(U x r_latest / r_scraped / target)`, where `U` is the summed utilisation of the Active
/// pods at the last scrape (over the share of visits served when `counts_refused`, as
/// [`super::offered_utilization`]), `r_scraped` the mean arrival rate over the scrape's window
/// and `r_latest` over the latest `reads_s` seconds; clamped to the service's min and max.
///
/// The load basis is the scrape's, fixed until the next one: replicas that start between
/// scrapes change neither `U` nor the rates, so the count asks for no more at each look (a
/// count from the Active pods times the scraped mean utilisation would grow with every pod that
/// became ready). None where the view cannot say: no per-interval history, no arrivals in the
/// scrape's window, or no Active pod with a metric.
pub fn fast_floor_count(
    view: &ClusterView,
    sv: &ServiceView,
    target: f64,
    counts_refused: bool,
    reads_s: f64,
) -> Option<i64> {
    let interval = view.history_interval.as_secs_f64();
    if interval <= 0.0 {
        return None;
    }
    let entries = |secs: f64| (secs / interval).round() as usize;
    let history = &sv.rps_history;
    // The scrape's window ends `now - scraped_at` before the latest entry.
    let end = history.len().checked_sub(entries(view.now.saturating_sub(view.scraped_at).as_secs_f64()))?;
    let scraped = &history[end.saturating_sub(entries(view.window.as_secs_f64()).max(1))..end];
    let latest = &history[history.len().saturating_sub(entries(reads_s).max(1))..];
    let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    let (r_scraped, r_latest) = (mean(scraped), mean(latest));
    if scraped.is_empty() || r_scraped <= 0.0 {
        return None;
    }
    let mut reporting = sv.pods.iter().filter(|p| p.state == PodPhase::Active).filter_map(|p| p.cpu_utilization);
    let first = reporting.next()?;
    let used = first + reporting.sum::<f64>();
    let refused = if counts_refused { sv.error_rate.clamp(0.0, MOST_REFUSED_SHARE) } else { 0.0 };
    let wanted = (used / (1.0 - refused) * r_latest / r_scraped / target).ceil() as i64;
    Some(wanted.clamp(sv.min_replicas as i64, sv.max_replicas as i64))
}

/// The services `fast` raises in `view`, with the count each is raised to (above its current
/// Active + Starting count, and at least [`FastFloor::panic_ratio`] times it), in service order;
/// the cluster's free instance slots are given out in that order, and a service that gets none
/// is left out.
pub fn fast_floor_raises(view: &ClusterView, target: f64, counts_refused: bool, fast: &FastFloor) -> Vec<(usize, i64)> {
    let mut room = view.instances.1 as i64 - view.instances.0 as i64;
    let mut raises = Vec::new();
    for (s, sv) in view.services.iter().enumerate() {
        let current = (sv.counts.active + sv.counts.starting) as i64;
        let Some(wanted) = fast_floor_count(view, sv, target, counts_refused, fast.reads_s) else { continue };
        let to = wanted.min(current + room.max(0));
        if to > current && wanted as f64 >= fast.panic_ratio * current as f64 {
            room -= to - current;
            raises.push((s, to));
        }
    }
    raises
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PodView;

    /// Every 3 s over the latest 6 s, raising whenever it is above the count.
    const SIX: FastFloor =
        FastFloor { every: SimTime(3_000_000), reads_s: 6.0, panic_ratio: 1.0, leaves_window: false };

    fn pod(id: u32, state: PodPhase, utilization: Option<f64>) -> PodView {
        PodView {
            id,
            state,
            created_at: SimTime::ZERO,
            ready_at: None,
            cpu_cores: utilization.map(|u| u * 0.5),
            cpu_utilization: utilization,
            outstanding: 0,
            memory_mib: None,
            rps: None,
            llm: None,
        }
    }

    /// A service of 1..=10 replicas with 3 Active pods at 60%, 80% and 100% CPU (summed: 2.4) and
    /// one Draining at 90%, scraped at 15 s over a 15 s window of 1 s entries at 100 rps; then
    /// `after` seconds of `rate` arrivals; `now` = 15 s + `after`.
    fn scraped_then(after: usize, rate: f64) -> ClusterView {
        let (_, mut view) = crate::rl::load_trend::tests::steady_boutique();
        view.window = SimTime::from_secs(15);
        view.history_interval = SimTime::from_secs(1);
        view.scraped_at = SimTime::from_secs(15);
        view.now = SimTime::from_secs(15 + after as u64);
        view.instances = (4, 100);
        let sv = &mut view.services[0];
        (sv.min_replicas, sv.max_replicas) = (1, 10);
        sv.counts.active = 3;
        sv.counts.starting = 0;
        sv.pods = vec![
            pod(0, PodPhase::Active, Some(0.6)),
            pod(1, PodPhase::Active, Some(0.8)),
            pod(2, PodPhase::Active, Some(1.0)),
            pod(3, PodPhase::Draining, Some(0.9)),
        ];
        sv.error_rate = 0.0;
        let mut history = vec![100.0; 15];
        history.extend(std::iter::repeat_n(rate, after));
        sv.rps_history = history;
        view.services.truncate(1);
        view
    }

    /// By hand: 3 s after the scrape, arrivals stepped from 100 to 250 rps. The latest 6 s read
    /// (3 x 100 + 3 x 250) / 6 = 175 rps against 100 scraped; the Active pods' 2.4 (the Draining
    /// one does not count) needs ceil(2.4 x 1.75 / 1.0) = 5 at 100% CPU: raised 3 -> 5. Six
    /// seconds after, all 6 s read 250: ceil(2.4 x 2.5) = 6. With a fifth refused at the scrape
    /// and refusals counted, 2.4 / 0.8 = 3 x 2.5 = 7.5 -> 8. Steady arrivals ask for ceil(2.4) = 3:
    /// no raise; at 60% CPU they ask for 4. Clamped to the max (10): 2.4 x 10 = 24 -> 10.
    #[test]
    fn fast_floor_counts_by_hand() {
        let count = |view: &ClusterView, target, refused, reads| {
            fast_floor_count(view, &view.services[0], target, refused, reads)
        };
        let step = scraped_then(3, 250.0);
        assert_eq!(count(&step, 1.0, false, 6.0), Some(5));
        assert_eq!(fast_floor_raises(&step, 1.0, false, &SIX), vec![(0, 5)]);
        let mut served = scraped_then(6, 250.0);
        assert_eq!(count(&served, 1.0, false, 6.0), Some(6));
        served.services[0].error_rate = 0.2;
        assert_eq!((count(&served, 1.0, true, 6.0), count(&served, 1.0, false, 6.0)), (Some(8), Some(6)));
        let steady = scraped_then(6, 100.0);
        assert_eq!((count(&steady, 1.0, false, 6.0), count(&steady, 0.6, false, 6.0)), (Some(3), Some(4)));
        assert!(fast_floor_raises(&steady, 1.0, false, &SIX).is_empty());
        assert_eq!(count(&scraped_then(6, 1000.0), 1.0, false, 6.0), Some(10));
        // A panic ratio: 3 -> 5 is 1.67 times the count: raised at 1.5, not at 2 (Knative's 200%),
        // where 3 -> 6 (all six seconds at 250) is.
        let ratio = |r| FastFloor { panic_ratio: r, ..SIX };
        assert_eq!(fast_floor_raises(&step, 1.0, false, &ratio(1.5)), vec![(0, 5)]);
        assert!(fast_floor_raises(&step, 1.0, false, &ratio(2.0)).is_empty());
        assert_eq!(fast_floor_raises(&scraped_then(6, 250.0), 1.0, false, &ratio(2.0)), vec![(0, 6)]);
    }

    /// Replicas that started or became ready since the scrape change nothing (the load basis is
    /// the scrape's): with 5 replicas already (3 Active, 2 Starting) the step above asks for 5, no
    /// raise. The cluster's room caps a raise (1 free slot: 3 -> 4), and none is raised without
    /// room. No raise without a basis: no history, no arrivals scraped, no Active pod reporting.
    #[test]
    fn the_fast_floor_raises_only_what_the_scrape_and_the_room_allow() {
        let mut started = scraped_then(3, 250.0);
        started.services[0].counts.starting = 2;
        assert!(fast_floor_raises(&started, 1.0, false, &SIX).is_empty());
        let mut crowded = scraped_then(3, 250.0);
        crowded.instances = (99, 100);
        assert_eq!(fast_floor_raises(&crowded, 1.0, false, &SIX), vec![(0, 4)]);
        crowded.instances = (100, 100);
        assert!(fast_floor_raises(&crowded, 1.0, false, &SIX).is_empty());
        let count = |view: &ClusterView| fast_floor_count(view, &view.services[0], 1.0, false, 6.0);
        let mut bare = scraped_then(3, 250.0);
        bare.history_interval = SimTime::ZERO;
        assert_eq!(count(&bare), None);
        let mut quiet = scraped_then(3, 250.0);
        quiet.services[0].rps_history[..15].iter_mut().for_each(|r| *r = 0.0);
        assert_eq!(count(&quiet), None);
        let mut unreported = scraped_then(3, 250.0);
        unreported.services[0].pods.iter_mut().for_each(|p| p.cpu_utilization = None);
        assert_eq!(count(&unreported), None);
    }
}
