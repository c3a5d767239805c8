//! Exact timings, derived by hand, with deterministic arrivals and constant demands.
//!
//! Scenario: one service `api`, 2 replicas, 1 slot each at 1 core, every call takes exactly 1 s,
//! one arrival per second (at 1.0, 2.0, 3.0, ...), round-robin, scale-up delay 10 s, no network
//! latency. Round-robin sends the arrival at 1.0 to instance 0 (busy until 2.0) and the one at
//! 2.0 to instance 1 (busy until 3.0).

use scalesim::app::PlatformOverhead;
use scalesim::autoscale::{Autoscaler, ScaleDecision};
use scalesim::backend::driver::Controller;
use scalesim::cluster::InstanceState;
use scalesim::engine::SimTime;
use scalesim::experiment::simulate;
use scalesim::metrics::{ActionsWriter, ClusterView};
use scalesim::sim::{Simulator, Sinks};

const YAML: &str = r#"
name: timings
slo_ms: 5000
horizon_s: 40
cluster:
  max_instances: 10
  skus: [ { name: small, cores: 2, memory_gib: 4, price_per_hour: 3.6 } ]
services:
  - { name: api, replicas: 2, min_replicas: 1, max_replicas: 5, cpu_request_m: 1000, cpu_limit_m: 1000,
      concurrency: 1, queue_capacity: 10, scale_up_delay_s: 10, demand: { dist: constant, ms: 1000 } }
request_types:
  - { name: r, call: { service: api } }
workload:
  arrivals: { process: deterministic }
  stages: [ { duration_s: 40, rps: 1 } ]
"#;

fn advance_to(sim: &mut Simulator, t: SimTime) {
    while sim.step_until(t).unwrap() {}
}

#[test]
fn drained_instance_takes_no_new_work_and_goes_with_its_server_after_its_last_request() {
    let sc = crate::scenario(YAML);
    let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
    advance_to(&mut sim, SimTime::from_millis(2500));
    // At 2.5 s instance 1 holds the request that arrived at 2.0 (done at 3.0).
    assert_eq!(sim.scaling().instance(1).outstanding, 1);
    sim.scale_down(1).unwrap();
    assert_eq!(sim.scaling().instance(1).state(), InstanceState::Draining);
    advance_to(&mut sim, SimTime::from_micros(2_999_999));
    assert_eq!(sim.scaling().instance(1).state(), InstanceState::Draining);
    advance_to(&mut sim, SimTime::from_secs(3));
    // Removed at exactly 3.0 s, when its last request completed, together with its server.
    let i1 = sim.scaling().instance(1);
    assert_eq!(i1.state(), InstanceState::Removed);
    assert_eq!(i1.removed_at(), Some(SimTime::from_secs(3)));
    assert_eq!(i1.served, 1, "a draining instance gets no new request");
    assert_eq!(sim.scaling().servers()[1].removed_at, Some(SimTime::from_secs(3)));
    // The arrival at 3.0 went to instance 0, the only Active one.
    assert_eq!(sim.scaling().instance(0).outstanding, 1);
    assert_eq!(sim.scaling().status_summary().servers, 1);
}

#[test]
fn scaled_up_instance_is_active_exactly_after_the_delay() {
    let sc = crate::scenario(YAML);
    let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
    advance_to(&mut sim, SimTime::from_secs(5));
    assert_eq!(sim.now(), SimTime::from_secs(5));
    let up = sim.scale_up(0, None).unwrap();
    // scaled up at t = 5 s with a 10 s delay: Active at 15 s.
    assert_eq!(up.ready_at, SimTime::from_secs(15));
    advance_to(&mut sim, SimTime::from_micros(14_999_999));
    let i = sim.scaling().instance(up.instance);
    assert_eq!(i.state(), InstanceState::Starting);
    assert_eq!((i.served, i.outstanding), (0, 0), "a Starting instance gets no request");
    advance_to(&mut sim, SimTime::from_secs(15));
    let i = sim.scaling().instance(up.instance);
    assert_eq!(i.state(), InstanceState::Active);
    assert_eq!(i.active_at(), Some(SimTime::from_secs(15)));
    // With three Active instances in round-robin, it serves one of the next three arrivals.
    advance_to(&mut sim, SimTime::from_secs(18));
    assert!(sim.scaling().instance(up.instance).served >= 1);
}

/// Asks for `target` replicas of service 0 at every decision from `from` on.
struct StepPolicy {
    from: SimTime,
    target: u32,
}

impl Autoscaler for StepPolicy {
    fn name(&self) -> String {
        "step".into()
    }
    fn period(&self) -> SimTime {
        SimTime::from_secs(15)
    }
    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        if view.now >= self.from {
            out.push(ScaleDecision::replicas(0, self.target, "step".into()));
        }
    }
}

#[test]
fn policy_decisions_go_through_the_scaling_manager_with_the_same_timing() {
    let sc = crate::scenario(YAML);
    let policy = StepPolicy { from: SimTime::from_secs(15), target: 4 };
    let (sim, s) = simulate(&sc, Box::new(policy), 1, Sinks::discard(), ActionsWriter::discard()).unwrap();
    // Decision at 15 s: 2 -> 4, the two new instances (ids 2 and 3) Active at 25 s.
    for id in [2, 3] {
        assert_eq!(sim.scaling().instance(id).created_at(), SimTime::from_secs(15));
        assert_eq!(sim.scaling().instance(id).active_at(), Some(SimTime::from_secs(25)));
    }
    assert_eq!(s.replica_changes, 1);
    // Cost by hand: 2 servers x 40 s + 2 servers x 25 s = 130 server-seconds at 3.6/h -> 0.13.
    assert!((s.cost - 0.13).abs() < 1e-9, "cost {}", s.cost);
    // 39 arrivals (1.0 .. 39.0), each takes exactly 1 s: all complete by 40 s, no queueing
    // because an instance is free every time.
    assert_eq!((s.requests.arrived, s.requests.completed, s.requests.in_flight), (39, 39, 0));
    assert!((s.latency_ms.mean - 1000.0).abs() < 1e-9);
}

/// At 15 s: 3 replicas of service 0, the new one on server type 1, and a CPU limit of 1.5 cores.
struct TypedPolicy;

impl Autoscaler for TypedPolicy {
    fn name(&self) -> String {
        "typed".into()
    }
    fn period(&self) -> SimTime {
        SimTime::from_secs(15)
    }
    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        if view.now == SimTime::from_secs(15) {
            out.push(ScaleDecision {
                sku: Some(1),
                cpu_limit: Some(1.5),
                ..ScaleDecision::replicas(0, 3, "typed".into())
            });
        }
    }
}

#[test]
fn a_decision_rents_its_server_type_and_resizes_the_cpu_limit() {
    // Two types: `small` (2 cores, 3.6/h, the service's) and `big` (4 cores, 7.2/h).
    let yaml = YAML.replace(
        "skus: [ { name: small, cores: 2, memory_gib: 4, price_per_hour: 3.6 } ]",
        "skus: [ { name: small, cores: 2, memory_gib: 4, price_per_hour: 3.6 }, { name: big, cores: 4, memory_gib: 8, price_per_hour: 7.2 } ]",
    );
    assert_ne!(yaml, YAML);
    let sc = crate::scenario(&yaml);
    let dir = tempfile::tempdir().unwrap();
    let actions = std::fs::File::create(dir.path().join("actions.csv")).unwrap();
    let actions = ActionsWriter::new(Box::new(actions)).unwrap();
    let (sim, s) = simulate(&sc, Box::new(TypedPolicy), 1, Sinks::discard(), actions).unwrap();
    let new = sim.scaling().instance(2);
    assert_eq!(sim.scaling().servers()[new.server() as usize].sku, 1, "the new replica rents a `big` server");
    for id in 0..2 {
        assert_eq!(sim.scaling().servers()[sim.scaling().instance(id).server() as usize].sku, 0);
    }
    // The limit applies to the live instances and the new one.
    assert_eq!(sim.scaling().shape(0).cpu_limit, 1.5);
    assert!((0..3).all(|id| sim.scaling().instance(id).shape.cpu_limit == 1.5));
    // Cost by hand: 2 small servers x 40 s at 3.6/h (0.08) + 1 big x 25 s at 7.2/h (0.05) = 0.13.
    assert!((s.cost - 0.13).abs() < 1e-9, "cost {}", s.cost);
    drop(sim);
    let actions = std::fs::read_to_string(dir.path().join("actions.csv")).unwrap();
    assert!(actions.contains("15.000,api,2,3,3,typed; cpu limit 1000m -> 1500m,"), "{actions}");
}

fn fan_out(parallel: bool) -> f64 {
    fan_out_run(parallel, None).latency_ms.mean
}

fn fan_out_run(parallel: bool, overhead: Option<PlatformOverhead>) -> scalesim::metrics::Summary {
    let yaml = format!(
        r#"
name: fanout
slo_ms: 1000
horizon_s: 10
network_latency_ms: 1
cluster:
  max_instances: 10
  skus: [ {{ name: small, cores: 2, memory_gib: 4, price_per_hour: 1 }} ]
services:
  - {{ name: front, cpu_request_m: 1000, demand: {{ dist: constant, ms: 10 }} }}
  - {{ name: a, cpu_request_m: 1000, demand: {{ dist: constant, ms: 30 }} }}
  - {{ name: b, cpu_request_m: 1000, demand: {{ dist: constant, ms: 50 }} }}
request_types:
  - name: r
    call: {{ service: front, parallel: {parallel}, calls: [ {{ service: a }}, {{ service: b }} ] }}
workload:
  arrivals: {{ process: deterministic }}
  stages: [ {{ duration_s: 10, rps: 1 }} ]
"#
    );
    let mut sc = crate::scenario(&yaml);
    sc.app.overhead = overhead.map(std::sync::Arc::new);
    let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
    let s = sim.run(&mut |_| {}).unwrap();
    assert_eq!(s.requests.completed, 9);
    s
}

/// A real platform's measured overhead, replayed (`validate-backend`): constant samples of a 2 ms
/// stall, a 3 ms transport and a 5 ms dispatch, all taken with one request in flight (as here:
/// one arrival per second, each done in about 0.1 s). Sequential: front's 10 ms, its stall and
/// transport, plus the request's dispatch; then a (1 + 30 + 2 + 3) and b (1 + 50 + 2 + 3):
/// 10 + 2 + 3 + 5 + 36 + 56 = 112 ms. The stall holds the slot but burns no CPU: front's CPU
/// utilisation stays its 10 ms of work per second over a 1-core limit.
#[test]
fn a_replayed_platform_overhead_adds_its_stall_transport_and_dispatch() {
    let mut o = PlatformOverhead::default();
    o.stall.push(1, 2_000);
    o.transport.push(1, 3_000);
    o.dispatch.push(1, 5_000);
    let with = fan_out_run(false, Some(o));
    assert!((with.latency_ms.mean - 112.0).abs() < 1e-9, "{}", with.latency_ms.mean);
    let without = fan_out_run(false, None);
    let front = |s: &scalesim::metrics::Summary| s.services.iter().find(|x| x.name == "front").unwrap().cpu_util;
    assert!((front(&with) - front(&without)).abs() < 1e-12, "{} vs {}", front(&with), front(&without));
    assert!(front(&without) > 0.0);
}

#[test]
fn parallel_fan_out_waits_for_the_slowest_callee() {
    // front's own 10 ms, then a (1 ms network + 30 ms) and b (1 + 50 ms):
    // parallel: 10 + max(31, 51) = 61 ms; sequential: 10 + 31 + 51 = 92 ms.
    assert!((fan_out(true) - 61.0).abs() < 1e-9, "{}", fan_out(true));
    assert!((fan_out(false) - 92.0).abs() < 1e-9, "{}", fan_out(false));
}

/// Scale from zero through the activator. One request at 1.0 s to a service at 0 replicas
/// (`min_replicas: 0`) under the KPA with scale to zero: the activator holds it and reports it as
/// concurrency (1 request over [1, 2) s); the KPA's tick at 2.0 s sees a stable concurrency of
/// 1/2 (two 1-s intervals of history), so ceil(0.5 / 7) = 1 pod; it is Active at 2.0 + 5 = 7.0 s
/// and serves the request in 10 ms: latency 6.01 s, nothing dropped. Without scale to zero nothing
/// would ever start and the request would wait in the activator until the end.
#[test]
fn the_activator_holds_requests_while_a_service_scales_from_zero() {
    use scalesim::autoscale::{KpaConfig, KpaPolicy};
    let sc = crate::scenario(
        r#"
name: from_zero
slo_ms: 10000
horizon_s: 20
cluster:
  max_instances: 5
  skus: [ { name: small, cores: 2, memory_gib: 4, price_per_hour: 3.6 } ]
services:
  - { name: fn, replicas: 0, min_replicas: 0, max_replicas: 3, cpu_request_m: 1000, cpu_limit_m: 1000,
      concurrency: 1, queue_capacity: 10, scale_up_delay_s: 5, demand: { dist: constant, ms: 10 } }
request_types:
  - { name: r, call: { service: fn } }
network_latency_ms: 0
workload:
  arrivals: { process: deterministic }
  stages: [ { duration_s: 1.5, rps: 1 } ]
"#,
    );
    let mut cfg = KpaConfig::defaults(&sc);
    cfg.enable_scale_to_zero = true;
    let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
    let mut kpa = KpaPolicy::new(cfg);
    let mut control = Controller::new(&sim, "sim", &mut kpa, ActionsWriter::discard());
    control.run_until(&mut sim, SimTime::from_millis(6999), &mut |_| {}).unwrap();
    assert_eq!(sim.scaling().counts(0).starting, 1, "scaled up at the 2-s tick, still starting");
    assert_eq!(sim.totals().completed, 0);
    control.run_until(&mut sim, SimTime::from_secs(8), &mut |_| {}).unwrap();
    let t = sim.totals();
    assert_eq!((t.arrived, t.completed, t.dropped), (1, 1, 0));
    assert!((t.latency_sum_us - 6_010_000.0).abs() < 1.0, "latency {} us", t.latency_sum_us);

    // With scale to zero off the KPA keeps one pod, so the service never sits at zero: the same
    // request is served by the instance started at the first tick.
    let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
    let mut kpa = KpaPolicy::new(KpaConfig::defaults(&sc));
    let mut control = Controller::new(&sim, "sim", &mut kpa, ActionsWriter::discard());
    control.run_until(&mut sim, SimTime::from_secs(8), &mut |_| {}).unwrap();
    assert_eq!(sim.totals().completed, 1);
}

/// Two scripted decisions on a cluster of at most 3 instances holding `api` x2 and `aux` x1:
/// at 15 s `api` 2 -> 3, which has no room and stays Pending (as Kubernetes leaves an
/// unschedulable pod: the decision stands, `spec.replicas` counts it); at 30 s `aux` 1 -> 0, whose
/// idle instance goes at once, and the Pending `api` pod starts on the freed room, Active 10 s
/// later (40 s).
struct RoomPolicy;

impl Autoscaler for RoomPolicy {
    fn name(&self) -> String {
        "room".into()
    }
    fn period(&self) -> SimTime {
        SimTime::from_secs(15)
    }
    fn decide(&mut self, view: &ClusterView, out: &mut Vec<ScaleDecision>) {
        if view.now == SimTime::from_secs(15) {
            out.push(ScaleDecision::replicas(0, 3, "up".into()));
        }
        if view.now == SimTime::from_secs(30) {
            assert_eq!(view.services[0].counts.pending, 1, "the policy sees its Pending pod");
            out.push(ScaleDecision::replicas(1, 0, "down".into()));
        }
    }
}

#[test]
fn a_pod_without_room_stays_pending_and_starts_when_room_frees() {
    let yaml = YAML.replace("max_instances: 10", "max_instances: 3").replace(
        "request_types:",
        "  - { name: aux, replicas: 1, min_replicas: 0, cpu_request_m: 1000, cpu_limit_m: 1000, \
         demand: { dist: constant, ms: 1 } }\nrequest_types:",
    );
    let sc = crate::scenario(&yaml);
    assert_eq!(sc.app.services.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let actions = std::fs::File::create(dir.path().join("actions.csv")).unwrap();
    let actions = ActionsWriter::new(Box::new(actions)).unwrap();
    let (sim, s) = simulate(&sc, Box::new(RoomPolicy), 1, Sinks::discard(), actions).unwrap();
    // Instances 0, 1 (api), 2 (aux); the Pending pod becomes instance 3 at 30 s.
    let placed = sim.scaling().instance(3);
    assert_eq!(
        (placed.service(), placed.created_at(), placed.active_at()),
        (0, SimTime::from_secs(30), Some(SimTime::from_secs(40)))
    );
    assert_eq!(sim.scaling().instance(2).state(), InstanceState::Removed);
    assert_eq!(sim.scaling().refusals(), 0, "Pending is not a refusal");
    // Cost by hand: api 2 x 40 s + aux 30 s + the placed pod 10 s = 120 server-seconds at
    // 3.6/h -> 0.12 (a Pending pod rents nothing).
    assert!((s.cost - 0.12).abs() < 1e-9, "cost {}", s.cost);
    drop(sim);
    let actions = std::fs::read_to_string(dir.path().join("actions.csv")).unwrap();
    assert!(actions.contains("15.000,api,2,3,3,up,1 pod(s) Pending: no room in the cluster,"), "{actions}");
    assert!(actions.contains("30.000,aux,1,0,0,down,,"), "{actions}");
}
