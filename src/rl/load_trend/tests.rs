use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::engine::SimTime;
use crate::metrics::{ClusterView, ServiceView};
use crate::rl::observation::{collect, ObservationLayout, HPA_DESIRED};

#[test]
fn slope_of_a_straight_line_is_its_rise_per_second() {
    // 3 + 2t sampled every 0.5 s: slope 2 per second; a constant has none; one point has none.
    let line: Vec<f64> = (0..9).map(|i| 3.0 + 2.0 * (i as f64 * 0.5)).collect();
    assert!((slope(&line, 0.5) - 2.0).abs() < 1e-12);
    assert_eq!(slope(&[5.0; 7], 1.0), 0.0);
    assert_eq!(slope(&[5.0], 1.0), 0.0);
    // Hand-computed least squares for 1, 3, 2 at 1 s: times -1, 0, 1 about their mean,
    // rates -1, 1, 0 about theirs: (1 + 0 + 0) / 2 = 0.5.
    assert!((slope(&[1.0, 3.0, 2.0], 1.0) - 0.5).abs() < 1e-12);
}

fn peak() -> crate::scenario::Scenario {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/online_boutique_peak.yaml");
    crate::scenario::load_scenario(&file).unwrap()
}

fn service(rps: f64, history: Vec<f64>) -> ServiceView {
    let mut sv = ServiceView::unobserved(Arc::from("s"), &peak().app.services[0]);
    sv.rps = rps;
    sv.rps_history = history;
    sv
}

#[test]
fn the_forecast_follows_the_last_minute_only() {
    // 120 one-second rates: a steep rise, then a minute rising 1 rps/s to 100. The window sees only
    // the minute: 100 + 1 x 30 = 130.
    let mut history: Vec<f64> = (0..60).map(|i| i as f64 * 5.0).collect();
    history.extend((0..60).map(|i| 41.0 + i as f64));
    assert!((forecast(&service(100.0, history.clone()), 1.0, 30.0) - 130.0).abs() < 1e-9);
    // At 15 s intervals the minute is four entries: 55, 70, 85, 100 rise 1 rps/s.
    let coarse = vec![0.0, 0.0, 55.0, 70.0, 85.0, 100.0];
    assert!((forecast(&service(100.0, coarse), 15.0, 30.0) - 130.0).abs() < 1e-9);
    // A fall is cut at 0; no history, or no interval, is the current rate.
    let falling: Vec<f64> = (0..60).map(|i| 70.0 - i as f64).collect();
    assert_eq!(forecast(&service(11.0, falling), 1.0, 30.0), 0.0);
    assert_eq!(forecast(&service(42.0, Vec::new()), 1.0, 30.0), 42.0);
    assert_eq!(forecast(&service(42.0, history), 0.0, 30.0), 42.0);
}

/// Online Boutique peak with every service at 4 replicas, 60% CPU and a flat 100 rps over the last
/// minute of per-second rates (a forecast of the current load); the action mask's tests share it.
pub(crate) fn steady_boutique() -> (crate::scenario::Scenario, ClusterView) {
    let sc = peak();
    let mut view = ClusterView {
        services: sc.app.services.iter().map(|s| ServiceView::unobserved(Arc::from(s.name.as_str()), s)).collect(),
        history_interval: SimTime::from_secs(1),
        now: SimTime::from_secs(120),
        ..Default::default()
    };
    for sv in &mut view.services {
        sv.counts.active = 4;
        sv.cpu_utilization = Some(0.6);
        sv.rps = 100.0;
        sv.rps_history = vec![100.0; 60];
    }
    (sc, view)
}

#[test]
fn the_hpa_feature_counts_for_the_forecast_load() {
    let (sc, mut view) = steady_boutique();
    let layout = ObservationLayout::new(&sc.app, &sc.workload.mix, 0.6, sc.cluster.skus.len());
    let ahead = layout.clone().with_load_forecast(Some(30.0));
    let plain = collect(&layout, &view, &sc.app, &sc.cluster, 500.0);
    let flat = collect(&ahead, &view, &sc.app, &sc.cluster, 500.0);
    assert_eq!(flat, plain, "a flat load's forecast is the current load");

    // Service 0's last minute rose 1 rps/s to 100: 130 in 30 s, utilisation 0.6 x 1.3 = 0.78,
    // ceil(4 x 0.78 / 0.6) = ceil(5.2) = 6 replicas of its maximum. Only feature 8 moves.
    view.services[0].rps_history = (0..60).map(|i| 41.0 + i as f64).collect();
    let plain = collect(&layout, &view, &sc.app, &sc.cluster, 500.0);
    let rising = collect(&ahead, &view, &sc.app, &sc.cluster, 500.0);
    let max = sc.app.services[0].max_replicas as f32;
    assert!(max >= 6.0);
    assert_eq!(rising.services[HPA_DESIRED], 6.0 / max);
    assert_eq!(plain.services[HPA_DESIRED], 4.0 / max);
    let moved: Vec<usize> = (0..plain.services.len()).filter(|&i| plain.services[i] != rising.services[i]).collect();
    assert_eq!(moved, vec![HPA_DESIRED]);
    // The ratio itself: 130 / 100; 1 with no arrivals.
    assert!((load_ratio(&view.services[0], 1.0, 30.0) - 1.3).abs() < 1e-12);
    view.services[0].rps = 0.0;
    assert_eq!(load_ratio(&view.services[0], 1.0, 30.0), 1.0);
}
