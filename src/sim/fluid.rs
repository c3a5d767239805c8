//! The fluid fidelity: a per-tick queueing model instead of simulating every request.
//!
//! Each timeline interval (tick) of length `dt`:
//! 1. Arrivals `A` in the tick: the integral of the workload's rate (rate workloads: the expected
//!    value) or the trace's count times its rate scale. The queues see `A`; the requests counted
//!    (arrived, completed, dropped, and so SLO violation and throughput) are a draw around it from
//!    the run's seed: Poisson for Poisson arrivals, normal with variance `A cv^2` for gamma gaps,
//!    none for deterministic arrivals and traces. So seeds differ as request-level runs do (a fluid
//!    sweep has confidence intervals), while the mean-field waits, which already carry the
//!    arrival variability through the Allen-Cunneen factor, do not count it twice (feeding noisy
//!    counts to the queues raised the mean latency at 90% utilisation from 85 to 131 ms, against
//!    85 ms at request fidelity).
//! 2. Per service, offered visits `lambda_s * dt = A * sum_k mix_k * visits_k,s` plus the backlog
//!    `B_s` carried from the last tick. Capacity `mu_s = active * concurrency * slot_cores / d_s`
//!    (`d_s` the mean CPU demand of a visit). Served `min(offered, mu_s * dt)`; what is left is the
//!    new backlog, and the part above the instances' queues (`active * queue_capacity`) is dropped
//!    (all of it with no Active instance).
//! 3. A visit's time at a service: mean service time `d / slot_cores`, plus the M/M/c wait of one
//!    instance (Erlang C, `c = concurrency`, arrival rate `lambda_s / active`) while it is stable,
//!    plus the time to drain the backlog `B_s / mu_s`, capped at the longest a full queue takes.
//!    From 90% load the queue's finite capacity decides instead: the stationary M/M/n/K wait (mean
//!    and spread), corrected for non-Markov traffic; overloaded, the backlog fills only up to that
//!    queue's stationary length and what arrives beyond it is dropped (see `finite_queue`).
//! 4. A request's latency composes its call tree (network latency per call; a sequential caller
//!    adds its callees, a parallel one takes the slowest). Its variance sums the visits' variances,
//!    each visit taken as exponential (exact for M/M/1). Latency percentiles and the SLO share come
//!    from a log-normal with that mean and variance.
//! 5. A request survives a tick if none of its visits is dropped: `prod_s (1 - q_s)^visits_k,s`,
//!    with `q_s` the share of service `s`'s offered visits dropped.
//!
//! CPU used (`served * d_s`), requests held (`lambda_s * R_s`, Little's law with `R_s` the visit's
//! time including its callees) and routed visits are credited to the Active instances equally, so
//! the metrics server, the policies and the ScalingManager work exactly as at request fidelity.
//! A Draining instance holds no backlog of its own here: it is removed at the end of the tick.

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::erf::erfc;

use rand_distr::{Distribution, Normal as NormalDist, Poisson};

use crate::app::{AppSpec, LoadBalancing};
use crate::cluster::InstanceState;
use crate::engine::SimRng;
use crate::engine::SimTime;
use crate::metrics::{DropKind, FluidRequests, GroundTruth, MetricsServer};
use crate::scaling::ScalingManager;
use crate::workload::{ArrivalProcess, ArrivalSource, Workload};

/// Bands of the latency distribution recorded into the run's histogram per tick, as
/// `(lower, upper)` quantiles: narrow in the tail, so p95 and p99 are represented.
const BANDS: [(f64, f64); 10] = [
    (0.0, 0.1),
    (0.1, 0.2),
    (0.2, 0.4),
    (0.4, 0.6),
    (0.6, 0.8),
    (0.8, 0.9),
    (0.9, 0.95),
    (0.95, 0.98),
    (0.98, 0.995),
    (0.995, 1.0),
];

/// One tick of the fluid model: the interval `[t0, t1)`, what it reads (the application, the SLO,
/// the horizon) and what it credits (the instances through the ScalingManager, the ground truth,
/// the metrics server).
pub struct FluidTick<'a> {
    pub t0: SimTime,
    pub t1: SimTime,
    pub horizon: SimTime,
    pub app: &'a AppSpec,
    pub slo: SimTime,
    pub scaling: &'a mut ScalingManager,
    pub truth: &'a mut GroundTruth,
    pub server: &'a mut MetricsServer,
}

pub struct FluidModel {
    source: ArrivalSource,
    /// Draws the counted arrivals around the expected ones (step 1).
    count_rng: SimRng,
    /// Mix weights, normalised.
    mix: Vec<f64>,
    /// Mean CPU demand of a visit to each service under the mix, core-seconds, and its squared
    /// coefficient of variation (the mixture's, over the calls that visit the service).
    demand: Vec<f64>,
    demand_cv2: Vec<f64>,
    /// Squared coefficient of variation of the gaps between arrivals: 1 for Poisson arrivals and
    /// traces, `cv^2` for gamma gaps, 0 for deterministic ones. Every service's visits are taken
    /// to arrive as variably as the requests (each request visits through its call tree).
    arrival_ca2: f64,
    /// Post-order of each request type's call tree (children before parents).
    order: Vec<Vec<u32>>,
    /// Per node: the call's mean CPU demand (core-seconds) and its squared coefficient of
    /// variation (static; kept here so each tick reads them instead of recomputing).
    node_demand: Vec<f64>,
    node_cv2: Vec<f64>,
    /// Per service: the CPU one worker slot gets this tick (the limit may change between ticks).
    slot: Vec<f64>,
    /// `1/k` for `k = 0..`: Erlang C's series multiplies by these instead of dividing (a division
    /// in its loop-carried chain made it a sixth of the step's time); grown on demand.
    inv: Vec<f64>,
    /// Per node: mean time and variance of the subtree rooted there (seconds, s^2).
    node_mean: Vec<f64>,
    node_var: Vec<f64>,
    /// Per node: probability a request gets there (no call dropped before it), from the last
    /// tick's drop shares; and the probability its subtree completes without a drop.
    node_reach: Vec<f64>,
    node_survive: Vec<f64>,
    /// Per service: visits per request under the mix, counting only visits that are reached.
    reached_visits: Vec<f64>,
    backlog: Vec<f64>,
    /// Per service: a visit's mean wait for a worker slot this tick, seconds.
    wait: Vec<f64>,
    wait_var: Vec<f64>,
    /// Per service: visit response time including callees, seconds.
    response: Vec<f64>,
    drop_share: Vec<f64>,
    // Per-tick scratch space, kept to allocate nothing per tick.
    visit_drops: Vec<f64>,
    resp_sum: Vec<f64>,
    resp_w: Vec<f64>,
    requests: FluidRequests,
    /// Replay position for trace workloads.
    next_trace: usize,
    /// Standard normal quantiles at the middle of each band.
    z: [f64; BANDS.len()],
    /// Requests in the system at the last tick (Little's law), for the end of the run.
    in_system: f64,
    /// Per service: the inputs of the last tick's queue model (offered visits, backlog, Active
    /// instances, slot cores, tick length; as bits) and its outputs (served, wait, wait variance,
    /// backlog cap). Between decisions a steady load gives the same inputs tick after tick, and
    /// the model is a pure function of them: the outputs are reused, bit for bit.
    queue_key: Vec<[u64; 5]>,
    queue_out: Vec<[f64; 4]>,
    /// Per request type, the last tick's latency and survival (valid while no service's queue
    /// changed): mean, log-normal mu and sigma, survival, share within the SLO.
    type_out: Vec<[f64; 5]>,
    type_out_valid: bool,
    /// Per service: the last finite-queue figures and their inputs (rate, servers, places, slot
    /// rate, variability; as bits).
    finite_memo: Vec<Option<([u64; 5], FiniteQueue)>>,
    /// Whether `reached_visits` (and the reach and survival per node) follow the current drop
    /// shares.
    reach_valid: bool,
}

impl FluidModel {
    pub fn new(app: &AppSpec, workload: &Workload, count_rng: SimRng) -> FluidModel {
        let total: f64 = workload.mix.iter().sum();
        let mix: Vec<f64> = workload.mix.iter().map(|w| w / total).collect();
        let demand = app.mean_demand_core_s(&workload.mix).into_iter().map(|d| d.unwrap_or(0.0)).collect();
        let order = app
            .request_types
            .iter()
            .map(|rt| {
                let mut out = Vec::new();
                post_order(app, rt.root, &mut out);
                out
            })
            .collect();
        let n = app.services.len();
        // Mixture moments of the demand per service: E[D] and E[D^2] over the calls made.
        let (mut m1, mut m2, mut w) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for (k, rt) in app.request_types.iter().enumerate() {
            let mut stack = vec![rt.root];
            while let Some(node) = stack.pop() {
                let nd = &app.nodes[node as usize];
                let s = nd.service as usize;
                let mean = nd.demand.mean_core_us() / 1e6;
                m1[s] += mix[k] * mean;
                m2[s] += mix[k] * mean * mean * (1.0 + nd.demand.cv2());
                w[s] += mix[k];
                stack.extend_from_slice(app.children_of(node));
            }
        }
        let demand_cv2 = (0..n)
            .map(|s| if w[s] > 0.0 && m1[s] > 0.0 { (m2[s] / w[s]) / (m1[s] / w[s]).powi(2) - 1.0 } else { 1.0 })
            .collect();
        let std_normal = Normal::new(0.0, 1.0).expect("valid");
        let mut z = [0.0; BANDS.len()];
        for (zi, (lo, hi)) in z.iter_mut().zip(BANDS) {
            *zi = std_normal.inverse_cdf((lo + hi) / 2.0);
        }
        let arrival_ca2 = match &workload.source {
            ArrivalSource::Rate { process: ArrivalProcess::Gamma { cv, .. }, .. } => cv * cv,
            ArrivalSource::Rate { process: ArrivalProcess::Deterministic, .. } => 0.0,
            ArrivalSource::Rate { process: ArrivalProcess::Poisson, .. } | ArrivalSource::Replay { .. } => 1.0,
        };
        FluidModel {
            count_rng,
            source: workload.source.clone(),
            mix,
            demand,
            demand_cv2,
            arrival_ca2,
            order,
            node_demand: app.nodes.iter().map(|nd| nd.demand.mean_core_us() / 1e6).collect(),
            node_cv2: app.nodes.iter().map(|nd| nd.demand.cv2()).collect(),
            slot: vec![0.0; n],
            inv: Vec::new(),
            node_mean: vec![0.0; app.nodes.len()],
            node_var: vec![0.0; app.nodes.len()],
            node_reach: vec![0.0; app.nodes.len()],
            node_survive: vec![0.0; app.nodes.len()],
            reached_visits: vec![0.0; n],
            backlog: vec![0.0; n],
            wait: vec![0.0; n],
            wait_var: vec![0.0; n],
            response: vec![0.0; n],
            drop_share: vec![0.0; n],
            visit_drops: vec![0.0; n],
            resp_sum: vec![0.0; n],
            resp_w: vec![0.0; n],
            requests: FluidRequests::default(),
            next_trace: 0,
            z,
            in_system: 0.0,
            queue_key: vec![[u64::MAX; 5]; n],
            queue_out: vec![[0.0; 4]; n],
            type_out: vec![[0.0; 5]; app.request_types.len()],
            type_out_valid: false,
            finite_memo: vec![None; n],
            reach_valid: false,
        }
    }

    /// The requests counted in a tick whose expected arrivals are `expected` (step 1).
    fn counted(&mut self, expected: f64) -> f64 {
        if expected <= 0.0 {
            return 0.0;
        }
        match &self.source {
            ArrivalSource::Rate { process: ArrivalProcess::Poisson, .. } => {
                Poisson::new(expected).map_or(expected, |p| p.sample(&mut self.count_rng))
            }
            ArrivalSource::Rate { process: ArrivalProcess::Gamma { cv, .. }, .. } => {
                let sd = (expected * cv * cv).sqrt();
                NormalDist::new(expected, sd).map_or(expected, |n| n.sample(&mut self.count_rng).max(0.0).round())
            }
            ArrivalSource::Rate { process: ArrivalProcess::Deterministic, .. } | ArrivalSource::Replay { .. } => {
                expected
            }
        }
    }

    /// Visits waiting at service `s` (for the timeline's queue length).
    pub fn backlog(&self, s: usize) -> f64 {
        self.backlog[s]
    }

    /// Requests in the system at the last tick.
    pub fn in_system(&self) -> f64 {
        self.in_system
    }

    fn arrivals(&mut self, t0: SimTime, t1: SimTime, horizon: SimTime) -> f64 {
        let t1 = t1.min(horizon);
        match &self.source {
            ArrivalSource::Rate { schedule, .. } => schedule.expected_arrivals(t1) - schedule.expected_arrivals(t0),
            ArrivalSource::Replay { times, rate_scale, .. } => {
                let start = self.next_trace;
                while self.next_trace < times.len() && times[self.next_trace] < t1.0 {
                    self.next_trace += 1;
                }
                (self.next_trace - start) as f64 * rate_scale
            }
        }
    }

    /// Advances the model over `[t0, t1)`: credits instances and ground truth as a request-level
    /// run would have.
    // The per-service loops index several parallel per-service arrays at once; an iterator over one
    // of them would read worse.
    #[allow(clippy::needless_range_loop)]
    pub fn advance(&mut self, tick: FluidTick<'_>) {
        let FluidTick { t0, t1, horizon, app, slo, scaling, truth, server } = tick;
        let dt = (t1 - t0).as_secs_f64();
        if dt <= 0.0 {
            return;
        }
        let n = app.services.len();
        let arrivals = self.arrivals(t0, t1, horizon);
        let counted = self.counted(arrivals);
        self.update_reach(app);
        let mut visit_drops = std::mem::take(&mut self.visit_drops);
        let mut queues_changed = false;
        for s in 0..n {
            let spec = &app.services[s];
            let offered_new: f64 = arrivals * self.reached_visits[s];
            let lambda = offered_new / dt;
            let offered = offered_new + self.backlog[s];
            let active = scaling.counts(s).active as f64;
            let c = spec.shape.concurrency as f64;
            let slot = spec.shape.slot_cores();
            self.slot[s] = slot;
            let d = self.demand[s];
            let svc = d / slot;
            let full_queues = active * spec.shape.queue_capacity as f64;
            let key =
                [offered_new.to_bits(), self.backlog[s].to_bits(), active.to_bits(), slot.to_bits(), dt.to_bits()];
            // `queue_cap`: the most backlog the service keeps; beyond it, visits are dropped.
            // Compared field by field: an array compare calls memcmp, a tenth of a cached tick.
            let same = (0..5).all(|i| self.queue_key[s][i] == key[i]);
            let (served, wait, wait_var, queue_cap) = if same {
                let [a, b, c, d] = self.queue_out[s];
                (a, b, c, d)
            } else if active == 0.0 || d <= 0.0 {
                (if active == 0.0 { 0.0 } else { offered }, 0.0, 0.0, full_queues)
            } else {
                let mu_slot = 1.0 / svc;
                let mu = active * c * mu_slot;
                let served = offered.min(mu * dt);
                let max_wait = spec.shape.queue_capacity as f64 / (c * mu_slot);
                let per_instance = lambda / active;
                // M/M/c wait: with probability C an exponential of rate c*mu - lambda, so
                // E[W] = C / (c mu - lambda) and Var[W] = E[W]^2 (2 - C) / C; scaled by the
                // Allen-Cunneen factor (ca^2 + cs^2) / 2 for the real arrival and service
                // variability. Least-outstanding balancing behaves like one shared queue over all
                // instances; round-robin hands each instance every n-th arrival, a gap of n gaps
                // (ca^2 / n: Erlang-n streams for Poisson arrivals); random thinning to a share
                // p = 1/n gives 1 + p (ca^2 - 1) (Poisson stays Poisson). An unstable queue has no
                // steady state: its wait is the backlog's, below.
                let ca = self.arrival_ca2;
                let (servers, rate, ca2) = match spec.load_balancing {
                    LoadBalancing::LeastOutstanding => (active * c, lambda, ca),
                    LoadBalancing::RoundRobin => (c, per_instance, ca / active),
                    LoadBalancing::Random => (c, per_instance, 1.0 + (ca - 1.0) / active),
                };
                let factor = (ca2 + self.demand_cv2[s]) / 2.0;
                // Near or above saturation the queue's finite capacity shapes the wait: an M/M/n/K
                // queue at load 1.03 holds about half its places on average, where the backlog
                // alone (a fluid queue) would fill every place and give every visit the longest
                // wait, with no spread (fluid overstated violations under overload that way).
                // One pooled queue (least outstanding) or one per instance.
                let (places, queues) = match spec.load_balancing {
                    LoadBalancing::LeastOutstanding => (full_queues, 1.0),
                    _ => (spec.shape.queue_capacity as f64, active),
                };
                let finite = (rate >= NEAR_SATURATION * servers * mu_slot).then(|| {
                    // Its inputs stay put while an overloaded backlog moves (the queue key above
                    // changes, this does not): kept per service, bit for bit.
                    let key =
                        [rate.to_bits(), servers.to_bits(), places.to_bits(), mu_slot.to_bits(), factor.to_bits()];
                    match &self.finite_memo[s] {
                        Some((k, f)) if *k == key => *f,
                        _ => {
                            let f = finite_queue(servers as u32, places as u32, rate, mu_slot, factor);
                            self.finite_memo[s] = Some((key, f));
                            f
                        }
                    }
                });
                let (mmc, mmc_var) = if let (Some(f), true) = (finite, rate < servers * mu_slot) {
                    (f.wait, f.wait_var)
                } else if rate < servers * mu_slot {
                    let c = servers as u32;
                    if self.inv.len() <= c as usize {
                        self.inv = (0..=c as usize * 2).map(|k| if k == 0 { 0.0 } else { 1.0 / k as f64 }).collect();
                    }
                    let (w, pw) = erlang_c_with(c, rate, mu_slot, &self.inv);
                    let var = if pw > 0.0 { w * w * (2.0 - pw) / pw } else { 0.0 };
                    (w * factor, var * factor * factor)
                } else {
                    (0.0, 0.0)
                };
                // Draining the backlog takes B / mu, the same for every visit: no variance.
                let backlog_wait = (offered - served) / mu;
                let wait = mmc + backlog_wait;
                match finite {
                    // Overloaded: the backlog fills up to the finite queue's stationary length
                    // (what arrives beyond it is what that queue turns away), and the wait
                    // spreads as that queue's does.
                    Some(f) if rate >= servers * mu_slot => {
                        let cap = f.mean_queue * queues;
                        if wait >= f.wait {
                            (served, f.wait, f.wait_var, cap)
                        } else {
                            (served, wait, mmc_var, cap)
                        }
                    }
                    _ if wait >= max_wait => (served, max_wait, 0.0, full_queues),
                    _ => (served, wait, mmc_var, full_queues),
                }
            };
            if !same {
                self.queue_key[s] = key;
                self.queue_out[s] = [served, wait, wait_var, queue_cap];
                queues_changed = true;
            }
            let mut left = offered - served;
            let dropped = if active == 0.0 { left } else { (left - queue_cap).max(0.0) };
            left -= dropped;
            self.backlog[s] = left;
            // The share of this tick's arrivals that were dropped (the backlog is made of visits
            // that were already admitted).
            let share = if offered_new > 0.0 { (dropped / offered_new).min(1.0) } else { 0.0 };
            if share.to_bits() != self.drop_share[s].to_bits() {
                self.drop_share[s] = share;
                self.reach_valid = false;
            }
            visit_drops[s] = dropped;
            self.wait[s] = wait;
            self.wait_var[s] = wait_var;
            // Credit the Active instances.
            let share = if active > 0.0 { 1.0 / active } else { 0.0 };
            let (cpu, routed) = (served * d * 1e6 * share, (offered_new * share).round() as u64);
            for i in 0..scaling.active_instances(s).len() {
                let id = scaling.active_instances(s)[i];
                let inst = scaling.instance_mut(id);
                inst.cpu_used += cpu;
                inst.routed += routed;
            }
            truth.fluid_visits(s, offered_new, served, dropped);
        }
        // Call trees: mean and variance of every subtree, per request type.
        let net = app.network_latency.as_secs_f64();
        let ln_slo = slo.as_secs_f64().ln();
        let latency_points = truth.records_distributions();
        let (mut resp_sum, mut resp_w) = (std::mem::take(&mut self.resp_sum), std::mem::take(&mut self.resp_w));
        resp_sum.iter_mut().for_each(|x| *x = 0.0);
        resp_w.iter_mut().for_each(|x| *x = 0.0);
        let mut requests = std::mem::take(&mut self.requests);
        requests.clear();
        // With every queue as it was, every call tree's latency and survival are too.
        let reuse = self.type_out_valid && !queues_changed;
        for k in 0..self.order.len() {
            let a_k = counted * self.mix[k];
            if reuse {
                let [mean, mu_ln, sigma, survive, within] = self.type_out[k];
                Self::count_requests(&mut requests, a_k, dt, mean, survive, within);
                if latency_points {
                    self.push_latency_points(&mut requests, a_k * survive, mu_ln, sigma);
                }
                continue;
            }
            for i in 0..self.order[k].len() {
                let node = self.order[k][i];
                let nd = &app.nodes[node as usize];
                let s = nd.service as usize;
                let slot = self.slot[s];
                let own_svc = if slot > 0.0 { self.node_demand[node as usize] / slot } else { 0.0 };
                // The call's own service time (its demand distribution's variance), plus the wait's.
                let (mut m, mut v) =
                    (self.wait[s] + own_svc, own_svc * own_svc * self.node_cv2[node as usize] + self.wait_var[s]);
                let kids = app.children_of(node);
                if nd.parallel {
                    if let Some(&slow) =
                        kids.iter().max_by(|a, b| self.node_mean[**a as usize].total_cmp(&self.node_mean[**b as usize]))
                    {
                        m += net + self.node_mean[slow as usize];
                        v += self.node_var[slow as usize];
                    }
                } else {
                    for &ch in kids {
                        m += net + self.node_mean[ch as usize];
                        v += self.node_var[ch as usize];
                    }
                }
                self.node_mean[node as usize] = m;
                self.node_var[node as usize] = v;
                resp_sum[s] += self.mix[k] * m;
                resp_w[s] += self.mix[k];
            }
            let root = app.request_types[k].root as usize;
            let (mean, var) = (self.node_mean[root], self.node_var[root]);
            let survive = self.subtree_survival(app, k);
            // Log-normal with this mean and variance: sigma^2 = ln(1 + var/mean^2).
            let s2 = if mean > 0.0 { (1.0 + var / (mean * mean)).ln() } else { 0.0 };
            let (mu_ln, sigma) = (mean.max(1e-9).ln() - s2 / 2.0, s2.sqrt());
            let within = if sigma > 0.0 {
                0.5 * erfc(-(ln_slo - mu_ln) / (sigma * std::f64::consts::SQRT_2))
            } else if mean <= slo.as_secs_f64() {
                1.0
            } else {
                0.0
            };
            self.type_out[k] = [mean, mu_ln, sigma, survive, within];
            Self::count_requests(&mut requests, a_k, dt, mean, survive, within);
            if latency_points {
                self.push_latency_points(&mut requests, a_k * survive, mu_ln, sigma);
            }
        }
        self.type_out_valid = true;
        // Request drops, attributed to services in proportion to the visits they dropped.
        let total_visit_drops: f64 = visit_drops.iter().sum();
        let dropped_requests = requests.arrived - requests.completed;
        for s in 0..n {
            if total_visit_drops > 0.0 && visit_drops[s] > 0.0 {
                let kind = if scaling.counts(s).active == 0 { DropKind::NoActiveInstance } else { DropKind::QueueFull };
                requests.drops.push((kind, s, dropped_requests * visit_drops[s] / total_visit_drops));
            }
        }
        for s in 0..n {
            if !reuse {
                self.response[s] = if resp_w[s] > 0.0 { resp_sum[s] / resp_w[s] } else { 0.0 };
            }
            let held = arrivals * self.reached_visits[s] / dt * self.response[s];
            let active = scaling.active_instances(s).len();
            let share = if active == 0 { 0.0 } else { held / active as f64 };
            let (area, outstanding) = (share * (t1 - t0).0 as f64, share.round() as u32);
            for i in 0..active {
                let id = scaling.active_instances(s)[i];
                let inst = scaling.instance_mut(id);
                inst.add_fluid_held(area, t1, outstanding);
            }
            if let Some(p95) = truth.fluid_service_latency(s, self.response[s]) {
                server.record_fluid_p95(s, p95, self.served_visits(s, truth));
            }
        }
        self.in_system = requests.in_system;
        truth.fluid_requests(t1, &requests);
        self.visit_drops = visit_drops;
        self.resp_sum = resp_sum;
        self.resp_w = resp_w;
        self.requests = requests;
        // Draining instances finish within the tick.
        if scaling.status_summary().draining > 0 {
            let draining: Vec<u32> =
                scaling.instances().iter().filter(|i| i.state() == InstanceState::Draining).map(|i| i.id()).collect();
            for id in draining {
                scaling.instance_mut(id).outstanding = 0;
                scaling.finish_drain(t1, id);
            }
        }
    }

    /// Adds `a_k` requests of one type, with the type's latency and survival, to the tick's counts.
    fn count_requests(requests: &mut FluidRequests, a_k: f64, dt: f64, mean: f64, survive: f64, within: f64) {
        let completed = a_k * survive;
        requests.arrived += a_k;
        requests.completed += completed;
        requests.within_slo += completed * within;
        requests.latency_sum_us += completed * mean * 1e6;
        requests.in_system += a_k / dt * mean;
    }

    /// The tick's latency distribution of `completed` requests of one type, by quantile band.
    fn push_latency_points(&self, requests: &mut FluidRequests, completed: f64, mu_ln: f64, sigma: f64) {
        for (z, (lo, hi)) in self.z.iter().zip(BANDS) {
            requests.latency_points.push(((mu_ln + sigma * z).exp() * 1e6, completed * (hi - lo)));
        }
    }

    fn served_visits(&self, s: usize, truth: &GroundTruth) -> f64 {
        truth.fluid_served(s)
    }
}

impl FluidModel {
    /// Probability of completing the subtree at each node of type `k` without a drop, with this
    /// tick's drop shares; returns the root's.
    fn subtree_survival(&mut self, app: &AppSpec, k: usize) -> f64 {
        for &node in &self.order[k] {
            let nd = &app.nodes[node as usize];
            let mut p = 1.0 - self.drop_share[nd.service as usize];
            for &c in app.children_of(node) {
                p *= self.node_survive[c as usize];
            }
            self.node_survive[node as usize] = p;
        }
        self.node_survive[app.request_types[k].root as usize]
    }

    /// Which calls a request reaches, with the last tick's drop shares: a dropped call ends the
    /// request's sequence (later sequential calls are skipped, as at request fidelity), so services
    /// behind a dropping one see less load.
    fn update_reach(&mut self, app: &AppSpec) {
        // A pure function of the drop shares: unchanged shares (most ticks: no drops at all) leave
        // it as it is.
        if self.reach_valid {
            return;
        }
        self.reach_valid = true;
        self.reached_visits.iter_mut().for_each(|v| *v = 0.0);
        for k in 0..self.order.len() {
            self.subtree_survival(app, k);
            let root = app.request_types[k].root as usize;
            self.node_reach[root] = 1.0;
            // Reversed post-order visits parents before their children.
            for i in (0..self.order[k].len()).rev() {
                let node = self.order[k][i];
                let nd = &app.nodes[node as usize];
                let reach = self.node_reach[node as usize];
                self.reached_visits[nd.service as usize] += self.mix[k] * reach;
                let mut p = reach * (1.0 - self.drop_share[nd.service as usize]);
                for &c in app.children_of(node) {
                    self.node_reach[c as usize] = p;
                    if !nd.parallel {
                        p *= self.node_survive[c as usize];
                    }
                }
            }
        }
    }
}

fn post_order(app: &AppSpec, node: u32, out: &mut Vec<u32>) {
    for &c in app.children_of(node) {
        post_order(app, c, out);
    }
    out.push(node);
}

/// Mean wait in queue of M/M/c (seconds): `C(c, a) / (c mu - lambda)`, `a = lambda / mu`.
pub fn erlang_c_wait(c: u32, lambda: f64, mu: f64) -> f64 {
    erlang_c(c, lambda, mu).0
}

/// `(mean wait, probability of waiting)` of M/M/c.
fn erlang_c(c: u32, lambda: f64, mu: f64) -> (f64, f64) {
    let inv: Vec<f64> = (0..=c as usize).map(|k| if k == 0 { 0.0 } else { 1.0 / k as f64 }).collect();
    erlang_c_with(c, lambda, mu, &inv)
}

/// Load (of the servers' capacity) from which a tick's wait comes from the finite queue.
const NEAR_SATURATION: f64 = 0.9;

/// Stationary M/M/n/K figures: `n` servers, `places` waiting places.
#[derive(Clone, Copy, Debug, PartialEq)]
struct FiniteQueue {
    /// Mean and variance of an admitted arrival's wait, seconds.
    wait: f64,
    wait_var: f64,
    /// Mean number waiting.
    mean_queue: f64,
}

/// M/M/n/K with `n` servers of rate `mu` each and `places` waiting places, at arrival rate
/// `lambda`. State `j` (in system) has probability proportional to `a^j / j!` up to `n` and
/// `p_n rho^(j - n)` above (`a = lambda / mu`, `rho = a / n`), computed in logs (`rho^K`
/// overflows for long queues). `variability` is the Allen-Cunneen factor `(ca^2 + cs^2) / 2`:
/// the queue above `n` moves as a random walk whose stationary law decays as `rho^j` for Markov
/// arrivals and services, and as `rho^(j / variability)` for others (a diffusion's exponential
/// law has scale `variance / (2 drift)`, proportional to `ca^2 + cs^2`); 1 is exact M/M/n/K.
/// Round-robin's Erlang arrivals (`ca^2 = 1/7` over 7 instances) keep a saturated queue fuller
/// than Poisson ones would: Online Boutique's frontend at load 1.03 (7 instances of 4 slots and
/// 100 places) holds about 590 visits at request fidelity; this gives 566, and 497 with
/// `variability` 1. An arrival that sees `j >= n` (and is admitted, `j < n + K`) waits
/// for `j - n + 1` departures at rate `n mu`: an Erlang wait with mean `(j - n + 1) / (n mu)` and
/// variance `(j - n + 1) / (n mu)^2`.
fn finite_queue(n: u32, places: u32, lambda: f64, mu: f64, variability: f64) -> FiniteQueue {
    let (n, k) = (n.max(1) as usize, places as usize);
    let a = lambda / mu;
    let ln_a = a.ln();
    let ln_rho = (a / n as f64).ln() / variability.max(1e-3);
    // ln p_j, unnormalised; walked twice (its largest value first) rather than stored: this runs
    // per service and tick near saturation, with n + K up to thousands.
    let ln_p = || {
        (0..=n + k).scan(0.0, move |l, j| {
            if j > 0 {
                *l += if j <= n { ln_a - (j as f64).ln() } else { ln_rho };
            }
            Some(*l)
        })
    };
    let top = ln_p().fold(f64::NEG_INFINITY, f64::max);
    let rate = n as f64 * mu;
    let (mut total, mut admitted, mut m1, mut m2, mut queue) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (j, l) in ln_p().enumerate() {
        let pj = (l - top).exp();
        total += pj;
        if j >= n {
            queue += (j - n) as f64 * pj;
        }
        if j < n + k {
            admitted += pj;
            if j >= n {
                let r = (j - n + 1) as f64;
                // E[W | j] and E[W^2 | j] of an Erlang(r, rate).
                m1 += pj * r / rate;
                m2 += pj * (r * (r + 1.0)) / (rate * rate);
            }
        }
    }
    let wait = if admitted > 0.0 { m1 / admitted } else { 0.0 };
    let second = if admitted > 0.0 { m2 / admitted } else { 0.0 };
    FiniteQueue { wait, wait_var: (second - wait * wait).max(0.0), mean_queue: queue / total }
}

/// [`erlang_c`] with `inv[k] = 1/k` for `k < c` given.
fn erlang_c_with(c: u32, lambda: f64, mu: f64, inv: &[f64]) -> (f64, f64) {
    if lambda <= 0.0 {
        return (0.0, 0.0);
    }
    let a = lambda / mu;
    let rho = a / c as f64;
    if rho >= 1.0 {
        return (f64::INFINITY, 1.0);
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for &inv_k in &inv[1..c as usize] {
        term *= a * inv_k;
        sum += term;
    }
    // c (1 - rho) = c - a; the two last divisions are independent of each other.
    let top = term * a / (c as f64 - a);
    let denom = sum + top;
    (top / (denom * (c as f64 * mu - lambda)), top / denom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_queue_matches_a_hand_solved_m_m_1_1() {
        // One server, one waiting place, lambda = mu = 1: states 0, 1, 2 each 1/3. Admitted
        // arrivals see 0 (no wait) or 1 (an exponential wait of mean 1): W = 1/2,
        // E[W^2] = (1/2) * 2 = 1, Var = 3/4; the mean number waiting is 1/3.
        let f = finite_queue(1, 1, 1.0, 1.0, 1.0);
        assert!((f.wait - 0.5).abs() < 1e-12, "{f:?}");
        assert!((f.wait_var - 0.75).abs() < 1e-12, "{f:?}");
        assert!((f.mean_queue - 1.0 / 3.0).abs() < 1e-12, "{f:?}");
    }

    #[test]
    fn less_variable_traffic_keeps_a_saturated_queue_fuller() {
        // lambda = 2, mu = 1, n = 1, K = 1. Markov: p proportional to 1, 2, 4 -> queue 4/7. With
        // variability 1/2 the step above n is rho^2 = 4: 1, 2, 8 -> queue 8/11.
        let m = finite_queue(1, 1, 2.0, 1.0, 1.0);
        let less = finite_queue(1, 1, 2.0, 1.0, 0.5);
        assert!((m.mean_queue - 4.0 / 7.0).abs() < 1e-12, "{m:?}");
        assert!((less.mean_queue - 8.0 / 11.0).abs() < 1e-12, "{less:?}");
    }
}
