//! ScalingManager unit tests with hand-derived expectations.

use super::*;
use crate::app::{Demand, LoadBalancing, ServiceSpec};
use crate::cluster::{InstanceShape, ServerSku};

fn app(min: u32, max: u32, delay_s: u64) -> (ClusterSpec, AppSpec) {
    let cluster = ClusterSpec {
        skus: vec![ServerSku { name: "small".into(), cores: 2.0, memory_gib: 4.0, price_per_hour: 0.36 }],
        max_instances: 4,
    };
    let svc = ServiceSpec {
        name: "cart".into(),
        sku: 0,
        initial_replicas: 1,
        min_replicas: min,
        max_replicas: max,
        shape: InstanceShape { cpu_request: 0.2, cpu_limit: 0.3, memory_mib: 64.0, concurrency: 2, queue_capacity: 10 },
        scale_up_delay: SimTime::from_secs(delay_s),
        load_balancing: LoadBalancing::RoundRobin,
        demand: Demand::constant(1.0),
        stateful: None,
        memory_idle_mib: 32.0,
        memory_per_request_mib: 1.0,
    };
    let app = AppSpec {
        services: vec![svc],
        nodes: vec![],
        children: vec![],
        request_types: vec![],
        network_latency: SimTime::ZERO,
        overhead: None,
    };
    (cluster, app)
}

#[test]
fn scale_up_is_active_after_the_delay_and_copies_the_shape() {
    let (c, a) = app(1, 3, 10);
    let mut m = ScalingManager::new(&c, &a);
    m.bootstrap(SimTime::ZERO, 0, 1);
    // scale at t = 5 s with a 10 s delay: ready at 15 s.
    let up = m.scale_up_full(SimTime::from_secs(5), 0, None).unwrap();
    assert_eq!(up.ready_at, SimTime::from_secs(15));
    assert_eq!(m.counts(0), ReplicaCounts { active: 1, starting: 1, draining: 0, pending: 0 });
    assert_eq!(m.instance(up.instance).shape, a.services[0].shape);
    assert!(m.mark_active(up.ready_at, up.instance));
    assert_eq!(m.active_instances(0), &[0, 1]);
    assert_eq!(m.status_summary(), StatusSummary { active: 2, starting: 0, draining: 0, servers: 2, total: 2 });
}

#[test]
fn limits_are_enforced_and_refusals_recorded() {
    let (c, a) = app(1, 2, 0);
    let mut m = ScalingManager::new(&c, &a);
    m.bootstrap(SimTime::ZERO, 0, 1);
    m.scale_up_full(SimTime::ZERO, 0, None).unwrap();
    let r = m.scale_up_full(SimTime::ZERO, 0, None).unwrap_err();
    assert_eq!(r, Refusal::MaxReplicas { service: "cart".into(), max: 2 });
    assert_eq!(r.to_string(), "blocked: cart at max_replicas 2");
    assert_eq!(m.refusals(), 1);
    let events: Vec<String> = m.take_events().map(|e| e.to_string()).collect();
    assert!(events.iter().any(|e| e.contains("added cart instance 1 on server 1")), "{events:?}");
    assert!(events.last().unwrap().contains("blocked: cart at max_replicas 2"));
}

#[test]
fn a_one_instance_scale_up_on_a_full_cluster_is_refused() {
    let (c, a) = app(1, 10, 0);
    let mut m = ScalingManager::new(&c, &a);
    m.bootstrap(SimTime::ZERO, 0, 4);
    let r = m.scale_up_full(SimTime::ZERO, 0, None).unwrap_err();
    assert_eq!(r, Refusal::ClusterFull { service: "cart".into(), max: 4 });
    assert_eq!(m.counts(0).pending, 0);
}

/// Kubernetes leaves pods the cluster has no room for Pending (`spec.replicas` counts them) and
/// schedules them, oldest first, when room frees; a scale-down deletes Pending pods first.
/// A pod asked for on another server type (a decision's `sku`) that waits Pending starts on that
/// type when room frees, as a pod keeps its node selector; one asked for on a type it does not
/// fit is refused at once, not left Pending.
#[test]
fn pending_pods_start_on_the_server_type_they_were_asked_on() {
    let (mut c, a) = app(1, 10, 30);
    c.skus.push(ServerSku { name: "big".into(), cores: 8.0, memory_gib: 32.0, price_per_hour: 1.2 });
    c.skus.push(ServerSku { name: "tiny".into(), cores: 0.1, memory_gib: 1.0, price_per_hour: 0.01 });
    let mut m = ScalingManager::new(&c, &a);
    m.bootstrap(SimTime::ZERO, 0, 4); // the cluster holds 4: full
    let t = SimTime::from_secs;
    let ch = m.set_replicas_on(t(10), 0, 5, Some(1));
    assert_eq!((ch.pending, ch.refused.clone()), (1, None));
    let ch = m.set_replicas_on(t(15), 0, 6, Some(2));
    assert!(ch.refused.is_some() && ch.pending == 0, "does not fit the tiny type: {ch:?}");
    // Room frees: the Pending pod starts on a big server.
    let victim = m.active_instances(0)[0];
    m.scale_down_full(t(20), victim).unwrap();
    let started = m.schedule_pending(t(20));
    assert_eq!(started.len(), 1);
    assert_eq!(m.servers()[started[0].server as usize].sku, 1);
}

#[test]
fn pods_beyond_the_cluster_maximum_wait_pending_and_start_when_room_frees() {
    let (c, mut a) = app(1, 10, 30);
    let mut other = a.services[0].clone();
    other.name = "front".into();
    a.services.push(other);
    let mut m = ScalingManager::new(&c, &a);
    m.bootstrap(SimTime::ZERO, 0, 3); // cart: ids 0, 1, 2; the cluster holds 4
    m.bootstrap(SimTime::ZERO, 1, 1); // front: id 3
    let t = SimTime::from_secs;
    // cart 3 -> 5 at t=10: no room, both Pending; front 1 -> 2 at t=20 queues behind them.
    let ch = m.set_replicas(t(10), 0, 5);
    assert_eq!((ch.from, ch.to, ch.pending, ch.refused.clone()), (3, 5, 2, None));
    assert!(ch.started.is_empty());
    assert_eq!(m.counts(0), ReplicaCounts { active: 3, starting: 0, draining: 0, pending: 2 });
    assert_eq!(m.set_replicas(t(20), 1, 2).pending, 1);
    assert_eq!(m.refusals(), 0, "Pending is not a refusal");
    // cart 5 -> 4: one Pending cart pod is deleted; nothing else moves.
    let ch = m.set_replicas(t(30), 0, 4);
    assert_eq!((ch.from, ch.to), (5, 4));
    assert_eq!(m.counts(0), ReplicaCounts { active: 3, starting: 0, draining: 0, pending: 1 });
    assert_eq!(m.status_summary().total, 4);
    // cart 4 -> 3 deletes its remaining Pending pod first: no instance goes, no room frees.
    let ch = m.set_replicas(t(40), 0, 3);
    assert_eq!((ch.to, m.counts(0).pending, m.status_summary().total), (3, 0, 4));
    // Now a real removal: cart 3 -> 2 drains an idle instance at t=50, and front's Pending pod
    // (the oldest waiting) starts at once on the freed room, Active 30 s later.
    let ch = m.set_replicas(t(50), 0, 2);
    assert_eq!(ch.started.len(), 1);
    let up = ch.started[0];
    assert_eq!((m.instance(up.instance).service(), up.ready_at), (1, t(80)));
    assert_eq!(m.counts(1), ReplicaCounts { active: 1, starting: 1, draining: 0, pending: 0 });
    assert!(m.schedule_pending(t(60)).is_empty(), "no pod left waiting");
    let events: Vec<String> = m.take_events().map(|e| e.to_string()).collect();
    assert!(events.iter().any(|e| e.contains("2 cart pod(s) Pending")), "{events:?}");
    assert!(events.iter().any(|e| e.contains("deleted 1 Pending cart pod(s)")), "{events:?}");
}

#[test]
fn scale_down_cancels_starting_first_then_drains_least_loaded() {
    let (c, a) = app(1, 4, 30);
    let mut m = ScalingManager::new(&c, &a);
    m.bootstrap(SimTime::ZERO, 0, 3); // ids 0, 1, 2 active
    m.instance_mut(0).outstanding = 5;
    m.instance_mut(1).outstanding = 2;
    m.instance_mut(2).outstanding = 2;
    let up = m.scale_up_full(SimTime::from_secs(1), 0, None).unwrap(); // id 3 starting
                                                                       // 4 -> 2: cancel the Starting id 3, then drain the least-loaded Active: ids 1 and 2 tie at 2,
                                                                       // the lower id (1) goes.
    let ch = m.set_replicas(SimTime::from_secs(2), 0, 2);
    assert_eq!((ch.from, ch.to), (4, 2));
    assert_eq!(m.instance(up.instance).state, InstanceState::Removed);
    assert_eq!(m.instance(1).state, InstanceState::Draining);
    assert_eq!(m.active_instances(0), &[0, 2]);
    assert!(!m.mark_active(up.ready_at, up.instance), "a cancelled instance never becomes active");
    // The draining one goes when its work is done, with its server.
    assert!(!m.finish_drain(SimTime::from_secs(3), 1), "still holds 2 visits");
    m.instance_mut(1).outstanding = 0;
    assert!(m.finish_drain(SimTime::from_secs(4), 1));
    assert_eq!(m.servers()[1].removed_at, Some(SimTime::from_secs(4)));
    assert_eq!(m.status_summary(), StatusSummary { active: 2, starting: 0, draining: 0, servers: 2, total: 2 });
}

#[test]
fn min_replicas_blocks_scale_down() {
    let (c, a) = app(1, 3, 0);
    let mut m = ScalingManager::new(&c, &a);
    m.bootstrap(SimTime::ZERO, 0, 1);
    assert_eq!(m.scale_down_full(SimTime::ZERO, 0), Err(Refusal::MinReplicas { service: "cart".into(), min: 1 }));
    let ch = m.set_replicas(SimTime::ZERO, 0, 0);
    assert_eq!((ch.from, ch.to), (1, 1));
    assert!(ch.refused.is_some());
}

#[test]
fn cost_and_instance_seconds_from_history() {
    let (c, a) = app(1, 3, 0);
    let mut m = ScalingManager::new(&c, &a);
    m.bootstrap(SimTime::ZERO, 0, 1);
    let up = m.scale_up_full(SimTime::from_secs(600), 0, None).unwrap();
    m.mark_active(up.ready_at, up.instance);
    m.scale_down_full(SimTime::from_secs(1800), up.instance).unwrap(); // idle: removed at once
                                                                       // instance 0: 3600 s; instance 1: 1200 s -> 4800 instance-seconds.
    assert!((m.instance_seconds(SimTime::from_secs(3600)) - 4800.0).abs() < 1e-9);
    // 4800 s / 3600 * 0.36 $/h = 0.48
    assert!((m.cost(SimTime::from_secs(3600)) - 0.48).abs() < 1e-12);
}
