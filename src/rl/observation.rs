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

use crate::app::AppSpec;
use crate::cluster::ClusterSpec;
use crate::metrics::ClusterView;

pub const SERVICE_FEATURES: usize = 12;
pub const EDGE_FEATURES: usize = 3;
pub const SKU_FEATURES: usize = 3;
pub const GLOBAL_FEATURES: usize = 3;
/// The index of the HPA-formula service feature (the one a load forecast moves).
pub const HPA_DESIRED: usize = 8;

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
        }
    }

    /// This layout with the HPA-formula feature counting for the load forecast `horizon_s` ahead
    /// (`None`: for the current load).
    pub fn with_load_forecast(self, horizon_s: Option<f64>) -> Self {
        ObservationLayout { load_forecast_s: horizon_s, ..self }
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
            unit(limit / sku_cores),
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
