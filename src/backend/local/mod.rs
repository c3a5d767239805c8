//! The local backend: a real, small cluster on this machine, the reference the simulator is
//! validated against.
//!
//! Every instance is a `scalesim worker` OS process serving HTTP on loopback and burning each
//! visit's CPU demand ([`worker`]); a router in this process walks each request's call tree over
//! the workers, fed by an open-loop load generator replaying the scenario's arrival times on the
//! wall clock ([`router`]). The [`ScalingManager`] keeps the books exactly as in the simulator
//! (states, counts, bounds), and this module reconciles processes to it: a scale-up spawns a
//! worker, which turns Active once it answers its readiness probe and the scenario's start-up time
//! has passed; a draining instance leaves the routing table at once and its process ends when its
//! last visit returns. A worker that dies is detected (exit status, or a refused connection), its
//! visits fail, and a replacement starts, as a ReplicaSet would.
//!
//! Metrics come from the workers the way metrics-server gets them from cAdvisor: each worker's
//! `process_cpu_seconds_total` is scraped every timeline interval and fed to the same
//! [`MetricsServer`] the simulator uses, so policies see the same kind of view on both.
//!
//! Time compression `k`: scenario time runs `k` times faster than the wall clock and every CPU
//! demand is divided by `k`, so utilisations are unchanged and a 4-minute scenario takes 1 minute
//! at `k = 4`. All times this module reports are scenario times.

pub mod process;
pub mod router;
pub mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{BackendError, ClusterBackend, ScaleResult};
use crate::app::AppSpec;
use crate::cluster::{ClusterSpec, InstanceId, InstanceState};
use crate::engine::{RngStreams, SimTime};
use crate::metrics::RunTotals;
use crate::metrics::{ClusterView, LatencySummary, MetricsServer};
use crate::scaling::{Refusal, ReplicaChange, ReplicaCounts, ScalingManager};
use crate::scenario::{MetricsConfig, Scenario};
use crate::workload::{ArrivalGenerator, RequestMix};
use process::WorkerProcess;
use router::{Endpoint, Shared};

/// How long a stopped run waits for requests still in flight before it ends the workers.
const DRAIN_AT_END: Duration = Duration::from_secs(5);
/// The control loop's longest sleep: state changes are noticed within this much wall time.
const POLL: Duration = Duration::from_millis(2);

#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// The `scalesim` executable to start workers from.
    pub worker_exe: PathBuf,
    /// Scenario seconds per wall second (>= 1 compresses).
    pub time_compression: f64,
    pub seed: u64,
    /// Print worker starts, failures and ends to stderr.
    pub verbose: bool,
    /// Keep this Prometheus `file_sd` targets file listing every worker's metrics endpoint,
    /// labelled `namespace="local"`, `deployment=<service>`, `pod=<service>-<instance>`.
    pub prometheus_targets: Option<PathBuf>,
}

/// The `namespace` label of the workers' Prometheus targets.
pub const TARGETS_NAMESPACE: &str = "local";

struct Worker {
    process: WorkerProcess,
    /// When the scenario's start-up time has passed (Active no earlier).
    ready_at: SimTime,
    probed: bool,
}

pub struct LocalBackend {
    app: AppSpec,
    cluster: ClusterSpec,
    metrics_cfg: MetricsConfig,
    horizon: SimTime,
    opts: LocalOptions,
    scaling: ScalingManager,
    server: MetricsServer,
    shared: Arc<Shared>,
    workers: BTreeMap<InstanceId, Worker>,
    tracked: Vec<InstanceId>,
    start: Instant,
    now: SimTime,
    next_tick: SimTime,
    loadgen: Option<JoinHandle<()>>,
    /// Cumulative CPU of each instance at the last tick (scenario core-us), for the totals.
    cpu_mark: BTreeMap<InstanceId, f64>,
    cpu_used_total: f64,
    cpu_alloc_total: f64,
    cpu_limit_total: f64,
    last_finished: (u64, u64),
    no_lag: Vec<f64>,
    failures: u64,
    probe: ureq::Agent,
}

impl LocalBackend {
    /// Starts the initial workers, waits for them to be ready, and starts the clock and the load.
    pub fn start(scenario: &Scenario, opts: LocalOptions) -> Result<LocalBackend, BackendError> {
        if scenario.llm.is_some() {
            return Err(BackendError::Unsupported(format!(
                "scenario `{}` is an LLM serving scenario; the local backend runs call-graph applications only",
                scenario.name
            )));
        }
        if !(opts.time_compression >= 1.0 && opts.time_compression <= 1000.0) {
            return Err(BackendError::Unsupported(format!(
                "time compression {} is outside 1..=1000",
                opts.time_compression
            )));
        }
        let app = scenario.app.clone();
        let streams = RngStreams::new(opts.seed);
        let names: Vec<String> = app.services.iter().map(|s| s.name.clone()).collect();
        let lb_rng = names.iter().map(|n| streams.stream(&format!("lb/{n}"))).collect();
        let demand_rng = names.iter().map(|n| streams.stream(&format!("svc/{n}"))).collect();
        let shared = Arc::new(Shared::new(app.clone(), opts.time_compression, scenario.slo, lb_rng, demand_rng));
        let mut backend = LocalBackend {
            cluster: scenario.cluster.clone(),
            metrics_cfg: scenario.metrics,
            horizon: scenario.horizon,
            scaling: ScalingManager::new(&scenario.cluster, &app),
            server: MetricsServer::new(&names, scenario.metrics.scrape_interval, scenario.metrics.timeline_interval),
            shared,
            workers: BTreeMap::new(),
            tracked: Vec::new(),
            start: Instant::now(),
            now: SimTime::ZERO,
            next_tick: scenario.metrics.timeline_interval,
            loadgen: None,
            cpu_mark: BTreeMap::new(),
            cpu_used_total: 0.0,
            cpu_alloc_total: 0.0,
            cpu_limit_total: 0.0,
            last_finished: (0, 0),
            no_lag: vec![0.0; app.services.len()],
            failures: 0,
            probe: ureq::AgentBuilder::new().timeout(Duration::from_millis(500)).build(),
            opts,
            app,
        };
        for s in 0..backend.app.services.len() {
            backend.scaling.bootstrap(SimTime::ZERO, s, backend.app.services[s].initial_replicas);
        }
        let initial: Vec<InstanceId> = backend.scaling.instances().iter().map(|i| i.id()).collect();
        for id in initial {
            backend.spawn_worker(id, SimTime::ZERO)?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while !backend.probe_ready(id) {
                if Instant::now() > deadline {
                    return Err(BackendError::Local(format!("worker of instance {id} never answered its probe")));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            backend.workers.get_mut(&id).expect("just spawned").probed = true;
        }
        backend.sync_routes();
        backend.scaling.take_events();
        backend.scrape_workers();
        backend.server.scrape(SimTime::ZERO, &backend.scaling, &backend.app, &backend.tracked);
        let mix = RequestMix::new(&scenario.workload.mix);
        let arrivals = ArrivalGenerator::new(scenario.workload.source.clone(), streams.stream("arrivals"));
        let (shared, horizon, mix_rng) = (backend.shared.clone(), backend.horizon, streams.stream("mix"));
        // Sleeps of the router's threads (inherited by every thread started from here) end
        // within a microsecond instead of the default 50: each overshoot would be counted as
        // latency, multiplied by the compression.
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and only affects the calling thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        backend.start = Instant::now();
        let start = backend.start;
        backend.loadgen = Some(
            std::thread::Builder::new()
                .name("load-generator".into())
                .spawn(move || router::generate_load(shared, arrivals, mix_rng, mix, horizon, start))
                .map_err(|e| BackendError::Local(format!("starting the load generator: {e}")))?,
        );
        Ok(backend)
    }

    /// Worker processes that died during the run (each was replaced).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The cost per visit the router measured so far (see `app::PlatformOverhead`).
    pub fn platform_overhead(&self) -> crate::app::PlatformOverhead {
        self.shared.lock().overhead.clone()
    }

    /// Process ids of the live workers, by instance.
    pub fn worker_pids(&self) -> Vec<(InstanceId, u32)> {
        self.workers.iter().map(|(&id, w)| (id, w.process.pid())).collect()
    }

    fn clock(&self) -> SimTime {
        SimTime((self.start.elapsed().as_secs_f64() * 1e6 * self.opts.time_compression) as u64)
    }

    fn log(&self, msg: impl FnOnce() -> String) {
        if self.opts.verbose {
            eprintln!("[{:>10.3}s] {}", self.now.as_secs_f64(), msg());
        }
    }

    fn spawn_worker(&mut self, id: InstanceId, ready_at: SimTime) -> Result<(), BackendError> {
        let inst = self.scaling.instance(id);
        let (service, shape) = (inst.service(), inst.shape);
        let process = match WorkerProcess::spawn(&self.opts.worker_exe, shape.concurrency) {
            Ok(p) => p,
            Err(e) => {
                self.scaling.remove_failed(self.now, id);
                return Err(BackendError::Local(e));
            }
        };
        self.log(|| {
            format!("started worker pid {} for {} instance {id}", process.pid(), self.app.services[service].name)
        });
        self.shared.lock().endpoints.insert(
            id,
            Endpoint {
                service,
                work: process.work,
                concurrency: shape.concurrency,
                queue_capacity: shape.queue_capacity,
                slot_cores: shape.slot_cores(),
                working: 0,
                outstanding: 0,
                routed: 0,
                failed: false,
            },
        );
        self.workers.insert(id, Worker { process, ready_at, probed: false });
        self.tracked.push(id);
        Ok(())
    }

    fn probe_ready(&self, id: InstanceId) -> bool {
        let Some(w) = self.workers.get(&id) else { return false };
        let url = format!("http://{}/ready", w.process.control);
        self.probe.get(&url).call().is_ok()
    }

    /// Rewrites the Prometheus targets file (atomically: a reader never sees half a file).
    fn write_targets(&self) {
        let Some(path) = &self.opts.prometheus_targets else { return };
        let targets: Vec<serde_json::Value> = self
            .workers
            .iter()
            .map(|(&id, w)| {
                let service = &self.app.services[self.scaling.instance(id).service()].name;
                serde_json::json!({
                    "targets": [w.process.control.to_string()],
                    "labels": { "namespace": TARGETS_NAMESPACE, "deployment": service, "pod": format!("{service}-{id}") }
                })
            })
            .collect();
        let tmp = path.with_extension("json.tmp");
        let written = std::fs::write(&tmp, serde_json::Value::Array(targets).to_string())
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            eprintln!("warning: cannot write Prometheus targets {}: {e}", path.display());
        }
    }

    /// Routing follows the ScalingManager: only Active instances with a worker take visits.
    fn sync_routes(&mut self) {
        self.write_targets();
        let shared = self.shared.clone();
        fill_routes(&self.scaling, &mut shared.lock());
    }

    /// Runs a scale-down decision of the books with routing held still. The router's lock is
    /// held while every instance's outstanding visits are copied into the books, the decision is
    /// made (an Active instance with none is removed at once, one with some drains) and the
    /// routes are rebuilt from it: a visit picks its instance and counts itself outstanding under
    /// that lock, so none reaches an instance between the count the decision read and its leaving
    /// the routes. (The books' counts were copied at the last reconcile: a stale 0 removed
    /// instances with visits in flight, whose stopped workers never answered them.)
    fn decide_with_routes_held<T>(&mut self, decide: impl FnOnce(&mut ScalingManager, SimTime) -> T) -> T {
        let shared = self.shared.clone();
        let decided = {
            let mut st = shared.lock();
            for (&id, ep) in &st.endpoints {
                self.scaling.instance_mut(id).outstanding = ep.outstanding;
            }
            let decided = decide(&mut self.scaling, self.now);
            fill_routes(&self.scaling, &mut st);
            decided
        };
        self.write_targets();
        decided
    }

    /// Brings processes in line with the books: Starting ones become Active when probed and due,
    /// drained ones end, dead ones are replaced, removed ones are stopped.
    fn reconcile(&mut self) -> Result<(), BackendError> {
        let now = self.now;
        let ids: Vec<InstanceId> = self.workers.keys().copied().collect();
        let mut changed = false;
        for id in ids {
            let state = self.scaling.instance(id).state();
            // Read under one lock with the routes: a visit takes an instance from the routes and
            // counts itself outstanding under that lock, so an instance out of the routes with
            // nothing outstanding gets no visit after this read.
            let (failed, outstanding, routed, routable) = {
                let st = self.shared.lock();
                let routable = st.active.iter().any(|list| list.contains(&id));
                st.endpoints.get(&id).map_or((true, 0, 0, routable), |e| (e.failed, e.outstanding, e.routed, routable))
            };
            let exited = self.workers.get_mut(&id).is_some_and(|w| w.process.has_exited());
            if state != InstanceState::Removed && (failed || exited) {
                self.replace_failed(id)?;
                changed = true;
                continue;
            }
            let inst = self.scaling.instance_mut(id);
            inst.outstanding = outstanding;
            inst.routed = routed;
            match state {
                InstanceState::Starting => {
                    let w = &self.workers[&id];
                    let probed = w.probed || self.probe_ready(id);
                    let due = w.ready_at <= now;
                    self.workers.get_mut(&id).expect("listed").probed = probed;
                    if probed && due && self.scaling.mark_active(now, id) {
                        self.log(|| format!("instance {id} is active"));
                        changed = true;
                    }
                }
                InstanceState::Draining if outstanding == 0 && !routable => {
                    self.scaling.finish_drain(now, id);
                    self.end_worker(id);
                    changed = true;
                }
                InstanceState::Removed => {
                    self.end_worker(id);
                    changed = true;
                }
                _ => {}
            }
        }
        // Room freed by a removal goes to pods waiting for it.
        let placed = self.scaling.schedule_pending(now);
        if !placed.is_empty() {
            self.spawn_started(&placed)?;
        } else if changed {
            self.sync_routes();
        }
        Ok(())
    }

    fn end_worker(&mut self, id: InstanceId) {
        if let Some(mut w) = self.workers.remove(&id) {
            w.process.stop();
            self.log(|| format!("ended worker of instance {id}"));
        }
        self.shared.lock().endpoints.remove(&id);
    }

    fn replace_failed(&mut self, id: InstanceId) -> Result<(), BackendError> {
        let service = self.scaling.instance(id).service();
        let now = self.now;
        eprintln!(
            "[{:>10.3}s] worker of {} instance {id} is gone; its requests failed; starting a replacement",
            now.as_secs_f64(),
            self.app.services[service].name
        );
        self.failures += 1;
        self.shared.lock().endpoints.remove(&id);
        self.workers.remove(&id);
        self.scaling.remove_failed(now, id);
        self.sync_routes();
        if let Ok(up) = self.scaling.scale_up_full(now, service, None) {
            self.spawn_worker(up.instance, up.ready_at)?;
        }
        Ok(())
    }

    /// Reads every live worker's CPU counter into its instance (scenario core-us).
    fn scrape_workers(&mut self) {
        let k = self.opts.time_compression;
        for (&id, w) in &self.workers {
            let url = format!("http://{}/metrics", w.process.control);
            let Some(text) = self.probe.get(&url).call().ok().and_then(|r| r.into_string().ok()) else {
                continue;
            };
            if let Some(cpu_s) = worker::parse_metric(&text, "process_cpu_seconds_total") {
                self.scaling.instance_mut(id).cpu_used = cpu_s * 1e6 * k;
            }
        }
    }

    /// One timeline interval ends at `t`: scrape the workers, feed the metrics server.
    fn tick(&mut self, t: SimTime) {
        let t0 = t.saturating_sub(self.metrics_cfg.timeline_interval);
        self.scrape_workers();
        let n = self.app.services.len();
        let (mut alloc, mut limit) = (0.0, 0.0);
        let mut held = vec![0.0; n];
        for &id in &self.tracked {
            let inst = self.scaling.instance(id);
            let mark = self.cpu_mark.entry(id).or_insert(0.0);
            self.cpu_used_total += inst.cpu_used - *mark;
            *mark = inst.cpu_used;
            let end = inst.removed_at().unwrap_or(t).min(t);
            let from = inst.created_at().max(t0);
            if end > from {
                alloc += inst.shape.cpu_request * (end - from).0 as f64;
                limit += inst.shape.cpu_limit * (end - from).0 as f64;
            }
            if inst.is_live() {
                held[inst.service()] += inst.outstanding as f64;
            }
        }
        self.cpu_alloc_total += alloc;
        self.cpu_limit_total += limit;
        let (arrivals, dropped, latencies, totals) = {
            let mut st = self.shared.lock();
            (
                std::mem::replace(&mut st.arrivals, vec![0; n]),
                std::mem::replace(&mut st.dropped, vec![0; n]),
                std::mem::take(&mut st.visit_latencies),
                st.totals,
            )
        };
        for (s, us) in latencies {
            self.server.record_latency(s, us);
        }
        for s in 0..n {
            self.server.add_interval(s, arrivals[s], dropped[s], held[s]);
        }
        let finished = totals.completed + totals.dropped;
        let violating = totals.dropped + (totals.completed - totals.within_slo);
        let (f0, v0) = std::mem::replace(&mut self.last_finished, (finished, violating));
        self.server.add_requests(finished.saturating_sub(f0), violating.saturating_sub(v0));
        if t.0 % self.metrics_cfg.scrape_interval.0 == 0 {
            self.server.scrape(t, &self.scaling, &self.app, &self.tracked);
        }
        let sc = &self.scaling;
        self.tracked.retain(|&id| sc.instance(id).is_live());
    }

    fn spawn_started(&mut self, started: &[crate::scaling::ScaleUp]) -> Result<(), BackendError> {
        for up in started {
            self.spawn_worker(up.instance, up.ready_at)?;
        }
        self.sync_routes();
        Ok(())
    }
}

/// The router's routes from the books: each service's Active instances whose worker has not
/// failed.
fn fill_routes(scaling: &ScalingManager, st: &mut router::RouterState) {
    for s in 0..st.active.len() {
        let list: Vec<InstanceId> = scaling
            .active_instances(s)
            .iter()
            .copied()
            .filter(|id| st.endpoints.get(id).is_some_and(|e| !e.failed))
            .collect();
        st.active[s] = list;
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Workers end when their handles drop (see `process`).
    }
}

impl ClusterBackend for LocalBackend {
    fn now(&self) -> SimTime {
        self.now
    }
    fn horizon(&self) -> SimTime {
        self.horizon
    }
    fn app(&self) -> &AppSpec {
        &self.app
    }
    fn cluster(&self) -> &ClusterSpec {
        &self.cluster
    }
    fn observe(&self) -> ClusterView {
        self.server.view(self.now, &self.scaling, &self.app, &self.tracked)
    }
    fn counts(&self, service: usize) -> ReplicaCounts {
        self.scaling.counts(service)
    }
    fn cpu_limit(&self, service: usize) -> f64 {
        self.scaling.shape(service).cpu_limit
    }
    fn scale_up(&mut self, service: usize, sku: Option<usize>) -> ScaleResult {
        let up = self.scaling.scale_up_full(self.now, service, sku)?;
        self.spawn_started(&[up]).map_err(|e| {
            eprintln!("{e}");
            Refusal::NotScalable { instance: up.instance, state: "failed to start" }
        })
    }
    fn scale_down(&mut self, service: usize) -> ScaleResult {
        let decided = self.decide_with_routes_held(|scaling, now| {
            scaling.pick_scale_down(service).map(|id| scaling.scale_down_full(now, id))
        });
        let Some(result) = decided else {
            let s = &self.app.services[service];
            return Err(Refusal::MinReplicas { service: s.name.clone(), min: s.min_replicas });
        };
        result.map(|_| ())
    }
    fn set_replicas_on(
        &mut self,
        service: usize,
        desired: u32,
        sku: Option<usize>,
    ) -> Result<ReplicaChange, BackendError> {
        // Every worker is a process on this machine: the SKU only decides the books (cost).
        let change = self.decide_with_routes_held(|scaling, now| scaling.set_replicas_on(now, service, desired, sku));
        self.spawn_started(&change.started)?;
        self.reconcile()?;
        Ok(change)
    }
    fn set_cpu_limit(&mut self, service: usize, cores: f64) -> f64 {
        let applied = self.scaling.set_cpu_limit(self.now, service, cores);
        let slot = self.scaling.shape(service).slot_cores();
        for e in self.shared.lock().endpoints.values_mut().filter(|e| e.service == service) {
            e.slot_cores = slot;
        }
        applied
    }
    fn migrate(&mut self, from: usize, _to: usize) -> ScaleResult {
        Err(Refusal::NotScalable { instance: from as InstanceId, state: "not migratable on the local backend" })
    }
    fn advance(&mut self, until: SimTime) -> Result<(), BackendError> {
        let until = until.min(self.horizon);
        loop {
            self.now = self.clock().min(until).max(self.now);
            self.reconcile()?;
            while self.next_tick <= self.now {
                let t = self.next_tick;
                self.tick(t);
                self.next_tick = t + self.metrics_cfg.timeline_interval;
            }
            if self.now >= until {
                break;
            }
            let left = Duration::from_secs_f64((until - self.now).as_secs_f64() / self.opts.time_compression);
            std::thread::sleep(left.min(POLL));
        }
        self.scaling.take_events();
        Ok(())
    }
    fn totals(&self) -> RunTotals {
        let t = self.shared.lock().totals;
        RunTotals {
            arrived: t.arrived,
            completed: t.completed,
            dropped: t.dropped,
            within_slo: t.within_slo,
            latency_sum_us: t.latency_sum_us,
            cpu_used_core_us: self.cpu_used_total,
            cpu_alloc_core_us: self.cpu_alloc_total,
            cpu_limit_core_us: self.cpu_limit_total,
        }
    }
    fn latency(&self) -> LatencySummary {
        let st = self.shared.lock();
        LatencySummary::from_histogram(&st.latency, st.totals.latency_sum_us, st.totals.completed)
    }
    fn replication_lag_ms(&self) -> &[f64] {
        &self.no_lag
    }
    fn instances(&self) -> (u32, u32) {
        (self.scaling.status_summary().total, self.cluster.max_instances)
    }
    fn usage(&self) -> Option<(f64, f64)> {
        Some((self.scaling.cost(self.now), self.scaling.instance_seconds(self.now) / 3600.0))
    }
    /// Stops the load, waits (a bounded time) for requests in flight, and ends every worker.
    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.loadgen.take() {
            let _ = h.join();
        }
        let deadline = Instant::now() + DRAIN_AT_END;
        while self.shared.lock().in_flight > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for (_, mut w) in std::mem::take(&mut self.workers) {
            w.process.stop();
        }
    }
}
