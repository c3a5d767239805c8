//! The `Simulator`: a scenario's cluster and load at request (or fluid, or LLM) fidelity, as a
//! plain [`crate::backend::ClusterBackend`]. It knows no policy: the one controller loop
//! (`backend::driver`) advances it to each decision time, reads its metrics-server view and
//! applies decisions through its ScalingManager, as it does for every other backend.
//!
//! Everything that happens is one variant of the closed `Event` enum, handled by one exhaustive
//! `match`; a new kind of event does not compile until it is handled. Work that happens "at the same
//! time" as a handler (a callee's call after its caller's CPU work) is queued as an event, never run
//! re-entrantly, except the bookkeeping of a visit returning to its caller, which is a plain loop up
//! the call tree.
//!
//! Request flow: an `Arrival` creates a request and its root visit. A visit arrives at a service,
//! is routed by the load balancer to an Active instance, waits for a worker slot (bounded FIFO queue;
//! overflow drops the request), runs its CPU work (`demand / slot_cores`), then makes its calls
//! (sequentially, or all at once when the call says `parallel`), each after the network latency,
//! and completes when its last callee has returned. A dropped call fails the request: remaining
//! sequential calls are skipped, calls already made run to completion, and the request ends as
//! dropped once its root visit completes. Every request ends exactly once.

mod fluid;
mod llm;
mod slab;

pub use fluid::{erlang_c_wait, FluidModel};

use std::io::Write;

use rand::Rng;

use crate::app::{AppSpec, LoadBalancing};
use crate::cluster::InstanceId;
use crate::engine::{EventQueue, RngStreams, SimRng, SimTime};
use crate::metrics::{
    DropKind, GroundTruth, HeldOutside, IntervalMeter, LatencySummary, MetricsServer, RunFacts, Summary,
};
use crate::scaling::ScalingManager;
use crate::scenario::{Fidelity, MetricsConfig, Scenario};
use crate::workload::{ArrivalGenerator, RequestMix};
use slab::Slab;

pub use crate::metrics::RunTotals;

/// Everything that can happen. Payloads are slab handles, so an event is 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    /// The next external request arrives.
    Arrival,
    /// A visit reaches its service (after the network latency).
    VisitArrive(u32),
    /// A visit's own CPU work on its instance is done.
    WorkDone(u32),
    /// A visit's measured thread stall is over: its slot is free.
    StallDone(u32),
    /// A visit's measured call overhead is over: it makes its calls or completes.
    VisitResume(u32),
    /// A Starting instance's start-up time is over.
    InstanceReady(InstanceId),
    /// End of a timeline interval: record ground truth; scrape when a scrape is due.
    Tick,
    /// LLM: an idle prompt instance forms its next batch (at the end of an instant).
    LlmPrefillStart(InstanceId),
    /// LLM: a prompt instance finished prefilling its batch.
    LlmPrefillDone(InstanceId),
    /// LLM: a request's KV cache reached its token instance.
    LlmTransferDone(u32),
    /// LLM: a token instance finished a decode iteration.
    LlmIterationDone(InstanceId),
}

const NONE: u32 = u32::MAX;

/// The event queue's FIFO lanes (times never decrease within one): the arrival process, and
/// calls, which reach their callee after the app's one constant network latency.
const ARRIVAL_LANE: usize = 0;
const NETWORK_LANE: usize = 1;

#[derive(Clone, Copy, Debug)]
struct Request {
    arrived: SimTime,
    /// `NONE`, or the drop reason `kind * services + service` of the first failure.
    failed: u32,
}

#[derive(Clone, Copy, Debug)]
struct Visit {
    request: u32,
    node: u32,
    parent: u32,
    /// The instance serving it; `NONE` until routed (and for a dropped visit).
    instance: u32,
    arrived: SimTime,
    next_child: u32,
    pending: u32,
}

/// How a run serves its requests: each one simulated (request fidelity), the per-tick fluid model
/// (fluid fidelity), or the LLM prompt and token pools (scenarios with `llm:`). Request-level
/// serving lives in the Simulator's own handlers; the other two are models it delegates to.
// One per run, never moved on a hot path: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Serving {
    Requests,
    Fluid(FluidModel),
    Llm(llm::LlmModel),
}

impl Serving {
    /// Requests waiting at service `s` now, where the model keeps its own queues (the fluid
    /// backlog, the LLM pools' queues); `None`: the instances' queues are the count.
    fn queue_len(&self, s: usize) -> Option<u32> {
        match self {
            Serving::Requests => None,
            Serving::Fluid(f) => Some(f.backlog(s).round() as u32),
            Serving::Llm(m) => Some(m.queue_len(s)),
        }
    }
}

/// Where a run's streams go.
pub struct Sinks {
    /// `None`: no timeline (nothing is formatted).
    pub timeline: Option<Box<dyn Write + Send>>,
    /// Readable scaling events (`--log-events`).
    pub events: Option<Box<dyn Write + Send>>,
    /// `requests.csv`: request-level counts per interval.
    pub requests: Option<Box<dyn Write + Send>>,
}

impl Sinks {
    /// Discards everything (benchmarks, tests that only need the summary).
    pub fn discard() -> Sinks {
        Sinks { timeline: None, events: None, requests: None }
    }
}

/// Progress reported at every timeline interval.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub now: SimTime,
    pub horizon: SimTime,
    pub arrived: u64,
    pub in_flight: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("writing run output: {0}")]
    Io(#[from] std::io::Error),
    #[error("conservation broken: arrived {arrived} != completed {completed} + dropped {dropped} + in flight {in_flight} (requests held: {held})")]
    Conservation { arrived: u64, completed: u64, dropped: u64, in_flight: u64, held: u64 },
}

pub struct Simulator {
    scenario_name: String,
    app: AppSpec,
    slo: SimTime,
    metrics_cfg: MetricsConfig,
    horizon: SimTime,
    seed: u64,
    now: SimTime,
    queue: EventQueue<Event>,
    scaling: ScalingManager,
    arrivals: ArrivalGenerator,
    mix_rng: SimRng,
    mix: RequestMix,
    /// Draws of the platform overhead (`AppSpec::overhead`); unused without one, so runs
    /// without it are unchanged.
    overhead_rng: SimRng,
    svc_rng: Vec<SimRng>,
    lb_rng: Vec<SimRng>,
    rr_next: Vec<u32>,
    requests: Slab<Request>,
    visits: Slab<Visit>,
    truth: GroundTruth,
    server: MetricsServer,
    last_tick: SimTime,
    /// Closes each timeline interval from the instances' counters; knows which instances to track.
    meter: IntervalMeter,
    /// What the serving model holds outside the instances, per service, at an interval's end.
    outside: Vec<HeldOutside>,
    /// Role-switch time of LLM pool migrations.
    llm_switch_delay: SimTime,
    event_log: Option<Box<dyn Write + Send>>,
    events_processed: u64,
    /// How requests are served: one by one, as a fluid, or through LLM pools.
    serving: Serving,
    /// Knative's activator: visits to a scale-to-zero service (`min_replicas: 0`) that has no
    /// Active instance wait here, are counted in its concurrency (so an autoscaler sees demand and
    /// scales from zero), and go to the first instance that becomes Active.
    activator: Vec<std::collections::VecDeque<u32>>,
    /// Time-integral of each activator's length (visit-us), and when it was last brought up to date.
    activator_area: Vec<f64>,
    activator_since: SimTime,
    activator_mark: Vec<f64>,
}

impl Simulator {
    /// Builds a run at t = 0: initial replicas Active, first arrival and tick scheduled.
    pub fn new(scenario: &Scenario, seed: u64, sinks: Sinks) -> Result<Self, SimError> {
        let streams = RngStreams::new(seed);
        let app = scenario.app.clone();
        let n = app.services.len();
        let names: Vec<String> = app.services.iter().map(|s| s.name.clone()).collect();
        let window_intervals = (scenario.metrics.scrape_interval.0 / scenario.metrics.timeline_interval.0) as usize;
        let mut truth = GroundTruth::new(
            names.clone(),
            scenario.slo,
            scenario.metrics.timeline_interval,
            window_intervals,
            sinks.timeline,
        );
        truth.write_header()?;
        if let Some(w) = sinks.requests {
            truth.with_requests_output(w)?;
        }
        let mean_demand = app.mean_demand_core_s(&scenario.workload.mix);
        let capacity_per_instance = app
            .services
            .iter()
            .zip(&mean_demand)
            .map(|(s, d)| match d {
                Some(d) if *d > 0.0 => s.shape.concurrency as f64 * s.shape.slot_cores() / d,
                _ => f64::INFINITY,
            })
            .collect();
        let mut sim = Simulator {
            scenario_name: scenario.name.clone(),
            slo: scenario.slo,
            metrics_cfg: scenario.metrics,
            horizon: scenario.horizon,
            seed,
            now: SimTime::ZERO,
            queue: EventQueue::with_lanes(1024, 2),
            scaling: ScalingManager::new(&scenario.cluster, &app),
            arrivals: ArrivalGenerator::new(scenario.workload.source.clone(), streams.stream("arrivals")),
            mix_rng: streams.stream("mix"),
            mix: RequestMix::new(&scenario.workload.mix),
            svc_rng: app.services.iter().map(|s| streams.stream(&format!("svc/{}", s.name))).collect(),
            lb_rng: app.services.iter().map(|s| streams.stream(&format!("lb/{}", s.name))).collect(),
            overhead_rng: streams.stream("platform-overhead"),
            rr_next: vec![0; n],
            requests: Slab::new(),
            visits: Slab::new(),
            server: MetricsServer::new(&names, scenario.metrics.scrape_interval, scenario.metrics.timeline_interval),
            truth,
            last_tick: SimTime::ZERO,
            llm_switch_delay: scenario.llm.as_ref().map_or(SimTime::ZERO, |l| l.switch_delay),
            meter: IntervalMeter::new(capacity_per_instance),
            outside: vec![HeldOutside::default(); n],
            event_log: sinks.events,
            events_processed: 0,
            serving: match (&scenario.llm, scenario.fidelity) {
                (Some(spec), _) => {
                    let tokens = match &scenario.workload.source {
                        crate::workload::ArrivalSource::Replay { tokens, .. } => tokens.clone(),
                        _ => None,
                    };
                    Serving::Llm(llm::LlmModel::new(spec.clone(), tokens, streams.stream("llm/token_sizes")))
                }
                (None, Fidelity::Fluid) => {
                    Serving::Fluid(FluidModel::new(&app, &scenario.workload, streams.stream("fluid/arrival_counts")))
                }
                (None, Fidelity::Request) => Serving::Requests,
            },
            activator: vec![std::collections::VecDeque::new(); n],
            activator_area: vec![0.0; n],
            activator_since: SimTime::ZERO,
            activator_mark: vec![0.0; n],
            app,
        };
        for s in 0..n {
            let replicas = sim.app.services[s].initial_replicas;
            sim.scaling.bootstrap(SimTime::ZERO, s, replicas);
        }
        sim.track_new_instances();
        sim.flush_scaling_events()?;
        // A baseline scrape at t = 0, so the first window's CPU rates exist at the first scrape.
        sim.server.scrape(SimTime::ZERO, &sim.scaling, &sim.app, sim.meter.tracked());
        if !matches!(sim.serving, Serving::Fluid(_)) {
            if let Some(t) = sim.arrivals.next_arrival() {
                if t < sim.horizon {
                    sim.queue.push_fifo(ARRIVAL_LANE, t, Event::Arrival);
                }
            }
        }
        sim.queue.push(sim.metrics_cfg.timeline_interval.min(sim.horizon), Event::Tick);
        Ok(sim)
    }

    pub fn now(&self) -> SimTime {
        self.now
    }

    pub fn scaling(&self) -> &ScalingManager {
        &self.scaling
    }

    /// What a controller would see now (the last scrape's metrics, live replica states).
    pub fn view(&self) -> crate::metrics::ClusterView {
        self.server.view(self.now, &self.scaling, &self.app, self.meter.tracked())
    }

    /// [`Simulator::view`] into `out`, reusing its buffers.
    pub fn view_into(&self, out: &mut crate::metrics::ClusterView) {
        self.server.view_into(self.now, &self.scaling, &self.app, self.meter.tracked(), out)
    }

    /// Scales `service` up by one instance through the ScalingManager and schedules its readiness
    /// (for controllers that change one instance at a time, e.g. an RL action executor).
    pub fn scale_up(
        &mut self,
        service: usize,
        sku: Option<usize>,
    ) -> Result<crate::scaling::ScaleUp, crate::scaling::Refusal> {
        let up = self.scaling.scale_up_full(self.now, service, sku)?;
        self.queue.push(up.ready_at, Event::InstanceReady(up.instance));
        self.track_new_instances();
        Ok(up)
    }

    /// Scales `service` down by one instance: the newest Starting one, else the least-loaded Active.
    pub fn scale_down_service(&mut self, service: usize) -> Result<crate::scaling::ScaleDown, crate::scaling::Refusal> {
        match self.scaling.pick_scale_down(service) {
            Some(id) => self.scale_down(id),
            None => Err(crate::scaling::Refusal::MinReplicas {
                service: self.app.services[service].name.clone(),
                min: self.app.services[service].min_replicas,
            }),
        }
    }

    /// Moves the least-loaded Active instance of `from` to the role of `to` on its server (LLM
    /// pools), Active after the scenario's switch delay.
    pub fn migrate(&mut self, from: usize, to: usize) -> Result<crate::scaling::ScaleUp, crate::scaling::Refusal> {
        let delay = self.llm_switch_delay;
        let victim = self
            .scaling
            .active_instances(from)
            .iter()
            .copied()
            .min_by_key(|&id| (self.scaling.instance(id).outstanding, id));
        let Some(id) = victim else {
            return Err(crate::scaling::Refusal::MinReplicas {
                service: self.app.services[from].name.clone(),
                min: self.app.services[from].min_replicas,
            });
        };
        let up = self.scaling.migrate(self.now, id, to, delay)?;
        self.queue.push(up.ready_at, Event::InstanceReady(up.instance));
        self.track_new_instances();
        Ok(up)
    }

    /// Moves `service` toward `desired` replicas through the ScalingManager (what a policy
    /// decision does), scheduling the readiness of the instances it starts.
    pub fn apply_replicas(&mut self, service: usize, desired: u32) -> crate::scaling::ReplicaChange {
        self.apply_replicas_on(service, desired, None)
    }

    /// [`Self::apply_replicas`], new instances renting servers of `sku` (`None`: the service's own).
    pub fn apply_replicas_on(
        &mut self,
        service: usize,
        desired: u32,
        sku: Option<usize>,
    ) -> crate::scaling::ReplicaChange {
        let change = self.scaling.set_replicas_on(self.now, service, desired, sku);
        for up in &change.started {
            self.queue.push(up.ready_at, Event::InstanceReady(up.instance));
        }
        self.truth.record_change(service, change.from, change.to);
        self.track_new_instances();
        change
    }

    /// Stops recording latency distributions: for RL training, which reads counts, means and the
    /// metrics server's view only. The summary's and timeline's latency percentiles are then 0;
    /// counts, means, SLO violation and everything a controller sees are unchanged.
    pub fn skip_distributions(&mut self) {
        self.truth.skip_distributions();
    }

    /// The end-to-end latency of completed requests so far: mean and quantiles.
    pub fn request_latency(&self) -> LatencySummary {
        self.truth.request_latency()
    }

    /// Resizes `service`'s CPU limit in place; returns the limit applied (clamped to the request
    /// and the SKU's cores).
    pub fn set_cpu_limit(&mut self, service: usize, cores: f64) -> f64 {
        self.scaling.set_cpu_limit(self.now, service, cores)
    }

    /// Runs until `until` (inclusive), ticks included: a controller deciding at `until` sees
    /// every event at `until`, the scrape of a tick at `until` among them.
    pub fn advance_to(&mut self, until: SimTime) -> Result<(), SimError> {
        // Scaling events of the decisions applied since the last event go to the log first.
        self.flush_scaling_events()?;
        while self.step_until(until)? {}
        if self.now < until {
            self.now = until.min(self.horizon);
        }
        Ok(())
    }

    pub fn horizon(&self) -> SimTime {
        self.horizon
    }

    pub fn app(&self) -> &AppSpec {
        &self.app
    }

    /// Running totals since the start, for per-interval rewards: requests, CPU, cost.
    pub fn totals(&self) -> RunTotals {
        self.truth.totals()
    }

    /// The end-to-end latency distribution so far: `(latency_ms, cumulative fraction)`.
    pub fn latency_cdf(&self) -> Vec<(f64, f64)> {
        self.truth.latency_cdf()
    }

    /// Replication lag (ms) of each stateful service at the last interval; 0 for others.
    pub fn replication_lag_ms(&self) -> &[f64] {
        self.truth.last_replication_lag()
    }

    /// Scales `instance` down through the ScalingManager (cancel if Starting, drain if Active).
    pub fn scale_down(&mut self, instance: InstanceId) -> Result<crate::scaling::ScaleDown, crate::scaling::Refusal> {
        self.scaling.scale_down_full(self.now, instance)
    }

    /// High-water marks of the request and visit slabs and the event queue's current length: the
    /// memory a run holds grows with these, not with the number of requests simulated.
    pub fn memory_footprint(&self) -> (usize, usize, usize) {
        (self.requests.capacity_used(), self.visits.capacity_used(), self.queue.len())
    }

    /// Runs to the horizon with no controller (the initial replicas stay), calling `progress` at
    /// every timeline interval, and returns the summary (its `policy` is `none`).
    pub fn run(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<Summary, SimError> {
        while self.step_until(self.horizon)? {
            progress(&Progress {
                now: self.now,
                horizon: self.horizon,
                arrived: self.truth.totals().arrived,
                in_flight: self.truth.in_flight(),
            });
        }
        self.finish("none")
    }

    /// Handles events up to and including `until`, stopping after each timeline tick. Returns false
    /// once no event at or before `until` is left.
    pub fn step_until(&mut self, until: SimTime) -> Result<bool, SimError> {
        while let Some((t, ev)) = self.queue.pop_until(until) {
            self.now = t;
            self.events_processed += 1;
            match ev {
                Event::Arrival => self.on_arrival(),
                Event::VisitArrive(v) => self.visit_arrive(v),
                Event::WorkDone(v) => self.on_work_done(v),
                Event::StallDone(v) => {
                    let id = self.visits[v].instance;
                    let inst = self.scaling.instance_mut(id);
                    inst.stalled = inst.stalled.saturating_sub(1);
                    self.free_slot(v, id)
                }
                Event::VisitResume(v) => self.proceed(v),
                Event::InstanceReady(i) => {
                    if self.scaling.mark_active(self.now, i) {
                        self.release_activator(self.scaling.instance(i).service());
                    }
                    self.flush_scaling_events()?;
                }
                Event::Tick => {
                    self.on_tick()?;
                    return Ok(true);
                }
                Event::LlmPrefillStart(i) => {
                    if let Serving::Llm(m) = &mut self.serving {
                        m.on_prefill_start(self.now, i, &mut self.scaling, &mut self.queue);
                    }
                }
                Event::LlmPrefillDone(i) => {
                    if let Serving::Llm(m) = &mut self.serving {
                        m.on_prefill_done(self.now, i, &mut self.scaling, &mut self.truth, &mut self.queue);
                    }
                }
                Event::LlmTransferDone(r) => {
                    if let Serving::Llm(m) = &mut self.serving {
                        m.on_transfer_done(self.now, r, &mut self.scaling, &mut self.queue);
                    }
                }
                Event::LlmIterationDone(i) => {
                    if let Serving::Llm(m) = &mut self.serving {
                        m.on_iteration_done(self.now, i, &mut self.scaling, &mut self.truth, &mut self.queue);
                    }
                }
            }
        }
        Ok(false)
    }

    // ---- requests ------------------------------------------------------------------------------

    fn on_arrival(&mut self) {
        if let Serving::Llm(m) = &mut self.serving {
            // The next arrival is queued first, so that one at this same instant is handled
            // before the batch that this one may start is formed.
            let row = self.arrivals.last_row();
            if let Some(t) = self.arrivals.next_arrival() {
                if t < self.horizon {
                    self.queue.push_fifo(ARRIVAL_LANE, t, Event::Arrival);
                }
            }
            m.on_arrival(self.now, row, &mut self.scaling, &mut self.truth, &mut self.queue);
            return;
        }
        let ty = self.mix.sample(&mut self.mix_rng);
        let req = self.requests.insert(Request { arrived: self.now, failed: NONE });
        self.truth.request_arrived(self.now);
        let root = self.app.request_types[ty].root;
        let v = self.visits.insert(Visit {
            request: req,
            node: root,
            parent: NONE,
            instance: NONE,
            arrived: self.now,
            next_child: 0,
            pending: 0,
        });
        self.visit_arrive(v);
        if let Some(t) = self.arrivals.next_arrival() {
            if t < self.horizon {
                self.queue.push_fifo(ARRIVAL_LANE, t, Event::Arrival);
            }
        }
    }

    fn pick_instance(&mut self, s: usize) -> Option<InstanceId> {
        let list = self.scaling.active_instances(s);
        if list.is_empty() {
            return None;
        }
        Some(match self.app.services[s].load_balancing {
            LoadBalancing::RoundRobin => {
                // `k % len` only when the list shrank: a division per visit is a measurable cost.
                let mut k = self.rr_next[s] as usize;
                if k >= list.len() {
                    k %= list.len();
                }
                self.rr_next[s] = (k + 1) as u32;
                list[k]
            }
            LoadBalancing::LeastOutstanding => {
                let sc = &self.scaling;
                *list.iter().min_by_key(|&&id| (sc.instance(id).outstanding, id)).expect("non-empty")
            }
            LoadBalancing::Random => list[self.lb_rng[s].gen_range(0..list.len())],
        })
    }

    fn visit_arrive(&mut self, v: u32) {
        let node = &self.app.nodes[self.visits[v].node as usize];
        let s = node.service as usize;
        self.truth.visit_arrived(s, node.write);
        self.route_visit(v, s);
    }

    /// Sends visit `v` to an Active instance of `s`; with none, to the activator of a scale-to-zero
    /// service (bounded by the service's queue capacity), else it is dropped.
    fn route_visit(&mut self, v: u32, s: usize) {
        let Some(id) = self.pick_instance(s) else {
            let spec = &self.app.services[s];
            if spec.min_replicas == 0 && self.activator[s].len() < spec.shape.queue_capacity as usize {
                self.integrate_activators();
                self.activator[s].push_back(v);
                return;
            }
            return self.drop_visit(v, DropKind::NoActiveInstance, s);
        };
        let inst = self.scaling.instance_mut(id);
        if inst.busy + inst.stalled < inst.shape.concurrency {
            inst.acquire(self.now);
            let visit = &mut self.visits[v];
            visit.instance = id;
            visit.arrived = self.now;
            self.start_work(v, id);
        } else if inst.queue.len() < inst.shape.queue_capacity as usize {
            inst.acquire(self.now);
            inst.queue.push_back(v);
            let visit = &mut self.visits[v];
            visit.instance = id;
            visit.arrived = self.now;
        } else {
            self.drop_visit(v, DropKind::QueueFull, s);
        }
    }

    /// Brings the activators' length integrals up to now.
    fn integrate_activators(&mut self) {
        let dt = self.now.saturating_sub(self.activator_since).0 as f64;
        if dt > 0.0 {
            for (area, q) in self.activator_area.iter_mut().zip(&self.activator) {
                *area += q.len() as f64 * dt;
            }
        }
        self.activator_since = self.now;
    }

    /// An instance of `s` became Active: the visits its activator holds go to it (and its peers).
    fn release_activator(&mut self, s: usize) {
        if self.activator[s].is_empty() {
            return;
        }
        self.integrate_activators();
        while let Some(v) = self.activator[s].pop_front() {
            self.route_visit(v, s);
        }
    }

    fn start_work(&mut self, v: u32, id: InstanceId) {
        let node = &self.app.nodes[self.visits[v].node as usize];
        let s = node.service as usize;
        let demand = node.demand.sample(&mut self.svc_rng[s]);
        let inst = self.scaling.instance_mut(id);
        inst.integrate_cpu(self.now);
        inst.busy += 1;
        let service_us = inst.service_us(demand);
        self.queue.push(self.now + SimTime(service_us), Event::WorkDone(v));
    }

    fn on_work_done(&mut self, v: u32) {
        let id = self.visits[v].instance;
        let inst = self.scaling.instance_mut(id);
        inst.integrate_cpu(self.now);
        inst.busy -= 1;
        inst.served += 1;
        if let Some(overhead) = &self.app.overhead {
            // A real platform's thread stall: the slot stays held, burning no CPU.
            let stall = overhead.stall(self.requests.live() as u64, &mut self.overhead_rng);
            if stall > 0 {
                inst.stalled += 1;
                self.queue.push(self.now + SimTime(stall), Event::StallDone(v));
                return;
            }
        }
        self.free_slot(v, id)
    }

    /// Visit `v` gives its slot on `id` to the next queued visit and moves on (after the platform's
    /// call overhead, when one is replayed).
    fn free_slot(&mut self, v: u32, id: InstanceId) {
        if let Some(next) = self.scaling.instance_mut(id).queue.pop_front() {
            self.start_work(next, id);
        }
        if let Some(overhead) = &self.app.overhead {
            let root = self.visits[v].parent == NONE;
            let delay = SimTime(overhead.call(root, self.requests.live() as u64, &mut self.overhead_rng));
            // Not a FIFO lane: delays are drawn, so their times are not in order.
            self.queue.push(self.now + delay, Event::VisitResume(v));
            return;
        }
        self.proceed(v)
    }

    /// After a visit's own work, or when a callee returns: make the next call(s), or complete.
    fn proceed(&mut self, v: u32) {
        let visit = self.visits[v];
        let node = &self.app.nodes[visit.node as usize];
        let failed = self.requests[visit.request].failed != NONE;
        if failed || visit.next_child >= node.n_children {
            if visit.pending == 0 {
                self.complete(v);
            }
            return;
        }
        let first = node.first_child;
        let (from, to) =
            if node.parallel { (visit.next_child, node.n_children) } else { (visit.next_child, visit.next_child + 1) };
        let at = self.now + self.app.network_latency;
        for k in from..to {
            let child_node = self.app.children[(first + k) as usize];
            let c = self.visits.insert(Visit {
                request: visit.request,
                node: child_node,
                parent: v,
                instance: NONE,
                arrived: at,
                next_child: 0,
                pending: 0,
            });
            self.queue.push_fifo(NETWORK_LANE, at, Event::VisitArrive(c));
        }
        let visit = &mut self.visits[v];
        visit.pending += to - from;
        visit.next_child = to;
    }

    /// A visit is done (served, or dropped): account for it and return to the caller. A draining
    /// instance whose last visit this was is removed here; its events are logged at the next tick.
    fn complete(&mut self, v: u32) {
        let visit = self.visits[v];
        self.visits.remove(v);
        if visit.instance != NONE {
            let s = self.app.nodes[visit.node as usize].service as usize;
            let latency = (self.now - visit.arrived).0;
            self.truth.visit_completed(s, latency);
            self.server.record_latency(s, latency);
            let inst = self.scaling.instance_mut(visit.instance);
            inst.release(self.now);
            if inst.outstanding == 0 && inst.state() == crate::cluster::InstanceState::Draining {
                self.scaling.finish_drain(self.now, visit.instance);
            }
        }
        if visit.parent != NONE {
            let parent = &mut self.visits[visit.parent];
            parent.pending -= 1;
            if parent.pending == 0 {
                self.proceed(visit.parent);
            }
            return;
        }
        let req = self.requests[visit.request];
        self.requests.remove(visit.request);
        if req.failed == NONE {
            self.truth.request_completed(self.now, (self.now - req.arrived).0);
        } else {
            let n = self.app.services.len() as u32;
            let kind = if req.failed / n == DropKind::QueueFull as u32 {
                DropKind::QueueFull
            } else {
                DropKind::NoActiveInstance
            };
            self.truth.request_dropped(self.now, kind, (req.failed % n) as usize);
        }
    }

    fn drop_visit(&mut self, v: u32, kind: DropKind, s: usize) {
        self.truth.visit_dropped(s);
        let r = self.visits[v].request;
        if self.requests[r].failed == NONE {
            self.requests[r].failed = kind as u32 * self.app.services.len() as u32 + s as u32;
        }
        self.visits[v].instance = NONE;
        self.complete(v);
    }

    // ---- ticks and decisions -------------------------------------------------------------------

    /// Starts Pending pods the cluster now has room for (checked at every tick: a removal frees
    /// room at any time, and the pods wait at most one timeline interval for it, as they wait
    /// for the scheduler's retry on Kubernetes).
    fn place_pending(&mut self) {
        let placed = self.scaling.schedule_pending(self.now);
        if !placed.is_empty() {
            for up in &placed {
                self.queue.push(up.ready_at, Event::InstanceReady(up.instance));
            }
            self.track_new_instances();
        }
    }

    fn track_new_instances(&mut self) {
        self.meter.track_new_instances(&self.scaling);
    }

    fn on_tick(&mut self) -> Result<(), SimError> {
        let (t0, t1) = (self.last_tick, self.now);
        if let Serving::Fluid(f) = &mut self.serving {
            f.advance(fluid::FluidTick {
                t0,
                t1,
                horizon: self.horizon,
                app: &self.app,
                slo: self.slo,
                scaling: &mut self.scaling,
                truth: &mut self.truth,
                server: &mut self.server,
            });
        }
        self.integrate_activators();
        for (s, o) in self.outside.iter_mut().enumerate() {
            *o = HeldOutside {
                held_area: self.activator_area[s] - self.activator_mark[s],
                queued: self.activator[s].len() as u32,
                queue_override: self.serving.queue_len(s),
            };
            self.activator_mark[s] = self.activator_area[s];
        }
        self.meter.close(t0, t1, &mut self.scaling, &self.app, &mut self.truth, &mut self.server, &self.outside)?;
        if t1.0 % self.metrics_cfg.scrape_interval.0 == 0 {
            self.server.scrape(t1, &self.scaling, &self.app, self.meter.tracked());
            if let Serving::Llm(m) = &self.serving {
                for &id in self.meter.tracked() {
                    let inst = self.scaling.instance(id);
                    if inst.is_live() {
                        self.server.set_llm_pod(id, m.pod_metrics(id, inst.service()));
                    }
                }
            }
        }
        self.meter.forget_removed(&self.scaling);
        self.place_pending();
        self.last_tick = t1;
        if t1 < self.horizon {
            let next = (t1 + self.metrics_cfg.timeline_interval).min(self.horizon);
            self.queue.push(next, Event::Tick);
        }
        self.flush_scaling_events()
    }

    fn flush_scaling_events(&mut self) -> Result<(), SimError> {
        match &mut self.event_log {
            Some(w) => {
                for e in self.scaling.take_events() {
                    writeln!(w, "{e}")?;
                }
            }
            None => {
                self.scaling.take_events();
            }
        }
        Ok(())
    }

    // ---- the end -------------------------------------------------------------------------------

    /// Ends the run at the horizon: flushes the outputs, checks that every request is accounted
    /// for, and returns the summary, naming `policy` as the controller that drove it.
    pub fn finish(&mut self, policy: &str) -> Result<Summary, SimError> {
        let now = self.horizon.max(self.now);
        self.now = now;
        self.truth.close_lag(now);
        self.truth.flush()?;
        self.flush_scaling_events()?;
        if let Some(w) = &mut self.event_log {
            w.flush()?;
        }
        if let Serving::Fluid(f) = &self.serving {
            self.truth.fluid_finish(f.in_system());
        }
        let (t, in_flight) = (self.truth.totals(), self.truth.in_flight());
        let held = match &self.serving {
            Serving::Fluid(_) => in_flight,
            Serving::Llm(m) => m.live_requests(),
            Serving::Requests => self.requests.live() as u64,
        };
        if t.arrived != t.finished() + in_flight || held != in_flight {
            return Err(SimError::Conservation {
                arrived: t.arrived,
                completed: t.completed,
                dropped: t.dropped,
                in_flight,
                held,
            });
        }
        Ok(self.summary(policy))
    }

    /// The run summary. Definitions: `docs/metrics.md`; computed by the ground truth
    /// ([`GroundTruth::summary`]), from what only the cluster knows (cost, instance-hours,
    /// refusals) and the run's facts.
    pub fn summary(&mut self, policy: &str) -> Summary {
        let now = self.now;
        let facts = RunFacts {
            now,
            scenario: &self.scenario_name,
            policy,
            seed: self.seed,
            slo: self.slo,
            cost: self.scaling.cost(now),
            instance_hours: self.scaling.instance_seconds(now) / 3600.0,
            refused_actions: self.scaling.refusals(),
            events_processed: self.events_processed,
            llm: match &self.serving {
                Serving::Llm(m) => Some(m.summary()),
                _ => None,
            },
        };
        self.truth.summary(facts)
    }
}
