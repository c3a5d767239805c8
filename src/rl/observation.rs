//! The state collector: what an agent observes, as a heterogeneous graph.
//!
//! Node sets: services (`SERVICE_FEATURES` each), server SKUs (`SKU_FEATURES`); edges: the call
//! graph's distinct `caller -> callee` service pairs (`EDGE_FEATURES`); plus `GLOBAL_FEATURES`
//! scalars. Every feature is in [0, 1] (clamped). Layout, by index:
//!
//! Service: 0 Active replicas / max, 1 Starting / max, 2 Draining / max, 3 CPU utilisation of
//! request / 2, 4 memory utilisation of request, 5 RPS in / capacity at max replicas, 6 p95 / SLO
//! / 2, 7 queue length / (Active x queue capacity), 8 HPA-formula desired replicas / max
//! (`ceil(active * utilisation / hpa_target)`, as gym-hpa exposes), 9 stateful flag,
//! 10 replication lag / SLO, 11 CPU limit / SKU cores.
//!
//! Edge: 0 call rate / callee capacity at max replicas, 1 callee p95 / SLO / 2, 2 callee error rate.
//!
//! SKU: 0 free cores (free instance slots x SKU cores / (max instances x largest SKU's cores)),
//! 1 free memory (likewise), 2 price / highest price.
//!
//! Global: 0 mean CPU utilisation of request over services with Active pods / 2, 1 SLO violation
//! share over the last decision interval, 2 live instances / max instances.
//!
//! Only Active instances count as capacity; Starting and Draining are their own features.
//!
//! With a load forecast in the layout ([`ObservationLayout::with_load_forecast`],
//! [`super::load_trend`]), feature 8 is the HPA formula's count for the load forecast ahead instead
//! of the current one; nothing else changes.
//!
//! With a burst count in the layout ([`ObservationLayout::with_burst_count`]), feature 11 is the
//! HPA formula's count for the busiest few seconds of arrivals in the view's history (the last
//! [`crate::metrics::HISTORY_SPAN_S`]), over max, instead of the CPU limit over the SKU's cores: a
//! memory of the bursts the current interval no longer shows. The slot is the one a service's
//! constant shape fills (the limit changes only under a quota head, which refuses the burst
//! count), so the networks and their checkpoints keep their shapes.

use crate::app::AppSpec;
use crate::cluster::ClusterSpec;
use crate::metrics::ClusterView;

pub const SERVICE_FEATURES: usize = 12;
pub const EDGE_FEATURES: usize = 3;
pub const SKU_FEATURES: usize = 3;
pub const GLOBAL_FEATURES: usize = 3;
/// The index of the HPA-formula service feature (the one a load forecast moves).
pub const HPA_DESIRED: usize = 8;
/// The index of the service feature a burst count takes (the CPU limit over the SKU's cores
/// without one).
pub const BURST_COUNT: usize = 11;

/// Static facts the collector needs about an application.
#[derive(Clone, Debug)]
pub struct ObservationLayout {
    pub services: usize,
    pub skus: usize,
    /// `(caller, callee)` service pairs, each once, in first-seen order.
    pub edges: std::sync::Arc<[(usize, usize)]>,
    /// Share of the callee's visits that come from this edge (under the mix).
    edge_share: Vec<f64>,
    mean_demand: Vec<f64>,
    pub hpa_target: f64,
    /// The HPA-formula feature counts for each service's load forecast this many seconds ahead
    /// ([`super::load_trend`]); `None`: for the current load.
    pub load_forecast_s: Option<f64>,
    /// Feature [`BURST_COUNT`] is the HPA formula's count for the busiest this-many seconds of
    /// each service's arrivals in the view's history; `None`: the CPU limit over the SKU's cores.
    pub burst_count_s: Option<f64>,
}

/// Why an observation span is refused, if one is, as `(field, why)`: `load_forecast_s` is a
/// horizon up to [`super::load_trend::MAX_HORIZON_S`] (which the bounds that read the forecast
/// share with the observation), `burst_count_s` at least one second (the simulator's interval) and
/// at most the view's history ([`crate::metrics::HISTORY_SPAN_S`]). The agent config and the
/// Python binding both check with it, so the two refuse alike.
pub fn check_spans(load_forecast_s: Option<f64>, burst_count_s: Option<f64>) -> Result<(), (&'static str, String)> {
    if let Some(h) = load_forecast_s {
        let most = super::load_trend::MAX_HORIZON_S;
        if !(h.is_finite() && h > 0.0 && h <= most) {
            return Err(("load_forecast_s", format!("{h} is outside 0 < load_forecast_s <= {most}")));
        }
    }
    if let Some(span) = burst_count_s {
        let most = crate::metrics::HISTORY_SPAN_S;
        if !(span.is_finite() && (1.0..=most).contains(&span)) {
            return Err(("burst_count_s", format!("{span} is outside 1 <= burst_count_s <= {most}")));
        }
    }
    Ok(())
}

impl ObservationLayout {
    pub fn new(app: &AppSpec, mix: &[f64], hpa_target: f64, skus: usize) -> Self {
        let n = app.services.len();
        let mut edges: Vec<(usize, usize)> = Vec::new();
        let mut edge_w: Vec<f64> = Vec::new();
        let mut visits = vec![0.0; n];
        for (k, rt) in app.request_types.iter().enumerate() {
            visits[app.nodes[rt.root as usize].service as usize] += mix[k];
            let mut stack = vec![rt.root];
            while let Some(node) = stack.pop() {
                let from = app.nodes[node as usize].service as usize;
                for &c in app.children_of(node) {
                    let to = app.nodes[c as usize].service as usize;
                    visits[to] += mix[k];
                    match edges.iter().position(|&e| e == (from, to)) {
                        Some(i) => edge_w[i] += mix[k],
                        None => {
                            edges.push((from, to));
                            edge_w.push(mix[k]);
                        }
                    }
                    stack.push(c);
                }
            }
        }
        let edge_share = edges
            .iter()
            .zip(&edge_w)
            .map(|(&(_, to), w)| if visits[to] > 0.0 { w / visits[to] } else { 0.0 })
            .collect();
        let mean_demand: Vec<f64> = app.mean_demand_core_s(mix).into_iter().map(|d| d.unwrap_or(0.0)).collect();
        ObservationLayout {
            services: n,
            skus,
            edges: edges.into(),
            edge_share,
            mean_demand,
            hpa_target,
            load_forecast_s: None,
            burst_count_s: None,
        }
    }

    /// This layout with the HPA-formula feature counting for the load forecast `horizon_s` ahead
    /// (`None`: for the current load).
    pub fn with_load_forecast(self, horizon_s: Option<f64>) -> Self {
        ObservationLayout { load_forecast_s: horizon_s, ..self }
    }

    /// This layout with feature [`BURST_COUNT`] counting for the busiest `span_s` seconds of
    /// arrivals in the view's history (`None`: the CPU limit over the SKU's cores).
    pub fn with_burst_count(self, span_s: Option<f64>) -> Self {
        ObservationLayout { burst_count_s: span_s, ..self }
    }

    /// The HPA formula's count, over max, for service `s`'s busiest `span_s` seconds of arrivals
    /// in `sv.rps_history` (entries `interval_s` apart; the current rate where that is higher or
    /// there is no history): `ceil(rate x mean CPU demand per visit / (CPU request x target))`,
    /// the count at which that rate would load the service at the HPA target. Read from the rate
    /// and the application's demand, not from the measured utilisation, which a saturated
    /// service caps at its limit and a quiet one reads as 0 whatever passed before.
    fn burst_count(
        &self,
        app: &AppSpec,
        s: usize,
        sv: &crate::metrics::ServiceView,
        interval_s: f64,
        span_s: f64,
    ) -> f32 {
        let span_len = if interval_s > 0.0 { (span_s / interval_s).round().max(1.0) as usize } else { 1 };
        let rate = crate::rl::action::busiest_mean(&sv.rps_history, span_len).max(sv.rps);
        let per_replica = app.services[s].shape.cpu_request * self.hpa_target;
        let max = sv.max_replicas.max(1) as f64;
        if per_replica <= 0.0 {
            return 1.0;
        }
        unit((rate * self.mean_demand[s] / per_replica).ceil().min(max) / max)
    }

    pub fn flat_len(&self) -> usize {
        self.services * SERVICE_FEATURES + self.edges.len() * EDGE_FEATURES + self.skus * SKU_FEATURES + GLOBAL_FEATURES
    }

    /// Visits/s `service` can serve with `active` instances at CPU limit `limit`.
    pub fn capacity(&self, app: &AppSpec, service: usize, active: u32, limit: f64) -> f64 {
        let s = &app.services[service];
        let slot = (limit / s.shape.concurrency as f64).min(1.0);
        let d = self.mean_demand[service];
        if d > 0.0 {
            active as f64 * s.shape.concurrency as f64 * slot / d
        } else {
            f64::INFINITY
        }
    }
}

/// One observation. Feature matrices are row-major (`[node][feature]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub services: Vec<f32>,
    pub edges: Vec<f32>,
    /// Shared with the layout: the graph's structure does not change within an episode.
    pub edge_index: std::sync::Arc<[(usize, usize)]>,
    pub skus: Vec<f32>,
    pub global: Vec<f32>,
    /// Simulated time of the observation, seconds.
    pub time_s: f64,
}

impl Observation {
    /// The flat vector an MLP takes: services, edges, SKUs, global, in that order.
    pub fn flat(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(self.services.len() + self.edges.len() + self.skus.len() + self.global.len());
        v.extend_from_slice(&self.services);
        v.extend_from_slice(&self.edges);
        v.extend_from_slice(&self.skus);
        v.extend_from_slice(&self.global);
        v
    }

    pub fn service(&self, s: usize) -> &[f32] {
        &self.services[s * SERVICE_FEATURES..(s + 1) * SERVICE_FEATURES]
    }
}

fn unit(x: f64) -> f32 {
    if x.is_finite() {
        x.clamp(0.0, 1.0) as f32
    } else {
        1.0
    }
}

/// The HPA-formula feature: `ceil(active x utilisation / target)`, at most `max`, over `max`.
fn hpa_desired(active: u32, utilization: f64, target: f64, max: u32) -> f32 {
    let max = max.max(1) as f64;
    unit((active as f64 * utilization / target).ceil().min(max) / max)
}

/// Collects an observation from what a controller sees (the view) and the static description of the
/// application and cluster: the same function serves training and a deployed agent, so both see
/// the same features.
pub fn collect(
    layout: &ObservationLayout,
    view: &ClusterView,
    app: &AppSpec,
    cluster: &ClusterSpec,
    slo_ms: f64,
) -> Observation {
    let mut services = Vec::with_capacity(layout.services * SERVICE_FEATURES);
    // How much busier each service will be at the forecast's horizon (1 without a forecast).
    let load_ratio = |sv| super::load_trend::load_ratio_ahead(view, sv, layout.load_forecast_s);
    let (mut util_sum, mut util_n) = (0.0, 0);
    for (s, sv) in view.services.iter().enumerate() {
        let spec = &app.services[s];
        let max = sv.max_replicas.max(1) as f64;
        let limit = sv.cpu_limit_cores;
        let util = sv.cpu_utilization.unwrap_or(0.0);
        if sv.counts.active > 0 {
            util_sum += util;
            util_n += 1;
        }
        let (mut mem, mut mem_n) = (0.0, 0);
        for p in sv.pods.iter().filter(|p| p.state == crate::metrics::PodPhase::Active) {
            if let Some(m) = p.memory_mib {
                mem += m / sv.memory_request_mib;
                mem_n += 1;
            }
        }
        let cap_max = layout.capacity(app, s, sv.max_replicas, limit);
        let queue_room = (sv.counts.active.max(1) as f64) * spec.shape.queue_capacity.max(1) as f64;
        let sku_cores = cluster.skus[spec.sku].cores;
        services.extend_from_slice(&[
            unit(sv.counts.active as f64 / max),
            unit(sv.counts.starting as f64 / max),
            unit(sv.counts.draining as f64 / max),
            unit(util / 2.0),
            unit(if mem_n > 0 { mem / mem_n as f64 } else { 0.0 }),
            unit(sv.rps / cap_max),
            unit(sv.p95_ms / slo_ms / 2.0),
            unit(sv.queue_len as f64 / queue_room),
            hpa_desired(sv.counts.active, util * load_ratio(sv), layout.hpa_target, sv.max_replicas),
            if spec.stateful.is_some() { 1.0 } else { 0.0 },
            unit(sv.replication_lag_ms / slo_ms),
            match layout.burst_count_s {
                Some(span_s) => layout.burst_count(app, s, sv, view.history_interval.as_secs_f64(), span_s),
                None => unit(limit / sku_cores),
            },
        ]);
    }
    let mut edges = Vec::with_capacity(layout.edges.len() * EDGE_FEATURES);
    for (i, &(_, to)) in layout.edges.iter().enumerate() {
        let sv = &view.services[to];
        let cap_max = layout.capacity(app, to, sv.max_replicas, sv.cpu_limit_cores);
        edges.extend_from_slice(&[
            unit(sv.rps * layout.edge_share[i] / cap_max),
            unit(sv.p95_ms / slo_ms / 2.0),
            unit(sv.error_rate),
        ]);
    }
    let (live, max_instances) = view.instances;
    let free = max_instances.saturating_sub(live) as f64;
    let max_cores = cluster.skus.iter().map(|k| k.cores).fold(0.0, f64::max);
    let max_mem = cluster.skus.iter().map(|k| k.memory_gib).fold(0.0, f64::max);
    let max_price = cluster.skus.iter().map(|k| k.price_per_hour).fold(0.0, f64::max);
    let mut skus = Vec::with_capacity(layout.skus * SKU_FEATURES);
    for k in &cluster.skus {
        skus.extend_from_slice(&[
            unit(free * k.cores / (max_instances as f64 * max_cores)),
            unit(free * k.memory_gib / (max_instances as f64 * max_mem)),
            unit(if max_price > 0.0 { k.price_per_hour / max_price } else { 0.0 }),
        ]);
    }
    let global = vec![
        unit(if util_n > 0 { util_sum / util_n as f64 / 2.0 } else { 0.0 }),
        unit(view.slo_violation),
        unit(live as f64 / max_instances.max(1) as f64),
    ];
    Observation { services, edges, edge_index: layout.edges.clone(), skus, global, time_s: view.now.as_secs_f64() }
}

#[cfg(test)]
mod tests {
    use super::{collect, ObservationLayout, BURST_COUNT, SERVICE_FEATURES};
    use crate::rl::load_trend::tests::steady_boutique;

    /// By hand, on Online Boutique's frontend (0.8 ms of CPU a visit, a request of 0.1 cores, at
    /// most 7 replicas) at the HPA target of 60%, where a replica holds 0.06 / 0.0008 = 75 visits
    /// a second: a flat 100 a second counts ceil(1.33) = 2 replicas; five seconds at 400 within the
    /// last two minutes count ceil(5.33) = 6, read over a 5 s span, and over a 10 s span (five at
    /// 400, five at 100: 250) ceil(3.33) = 4; one second at 1,000 over a 1 s span would be 14,
    /// held at the maximum (7, so 1). With no history the current rate counts. Only feature 11
    /// moves, and without the burst count it is the CPU limit over the SKU's cores.
    #[test]
    fn the_burst_count_is_the_hpa_count_for_the_busiest_seconds() {
        let (sc, mut view) = steady_boutique();
        assert_eq!(sc.app.mean_demand_core_s(&sc.workload.mix)[0], Some(0.0008));
        assert_eq!((sc.app.services[0].shape.cpu_request, sc.app.services[0].max_replicas), (0.1, 7));
        let layout = ObservationLayout::new(&sc.app, &sc.workload.mix, 0.6, sc.cluster.skus.len());
        let five = layout.clone().with_burst_count(Some(5.0));
        let feature = |l: &ObservationLayout, v: &crate::metrics::ClusterView| {
            collect(l, v, &sc.app, &sc.cluster, 500.0).services[BURST_COUNT]
        };
        let sku_cores = sc.cluster.skus[sc.app.services[0].sku].cores;
        assert_eq!(feature(&layout, &view), (0.2 / sku_cores) as f32);
        let flat = collect(&five, &view, &sc.app, &sc.cluster, 500.0);
        assert_eq!(flat.services[BURST_COUNT], 2.0 / 7.0);

        view.services[0].rps_history[30..35].fill(400.0);
        let bursty = collect(&five, &view, &sc.app, &sc.cluster, 500.0);
        assert_eq!(bursty.services[BURST_COUNT], 6.0 / 7.0);
        let moved: Vec<usize> = (0..flat.services.len()).filter(|&i| flat.services[i] != bursty.services[i]).collect();
        assert_eq!(moved, vec![BURST_COUNT], "only service 0's burst count moves (of {SERVICE_FEATURES} a service)");
        assert_eq!(feature(&layout.clone().with_burst_count(Some(10.0)), &view), 4.0 / 7.0);
        view.services[0].rps_history[50] = 1_000.0;
        assert_eq!(feature(&layout.clone().with_burst_count(Some(1.0)), &view), 1.0);

        view.services[0].rps_history.clear();
        assert_eq!(feature(&five, &view), 2.0 / 7.0);
    }
}
