//! The RL environment: observations count only Active instances, actions go through the
//! ScalingManager with its timing, masks hold, rewards match hand-derived values, and episodes are
//! reproducible.

use scalesim::engine::SimTime;
use scalesim::rl::action::Anchor;
use scalesim::rl::env::action_rng;
use scalesim::rl::{
    Action, ActionConfig, ActionMask, Env, EnvConfig, PeakSpan, Randomization, RewardConfig, ServiceAction, SimFactory,
    SlackBasis, VecEnv, DELTAS,
};
use scalesim::scenario::Scenario;
use scalesim::workload::ArrivalProcess;

/// One service, 1 core per instance (1 slot), every call exactly 50 ms, 10 arrivals per second
/// (at 0.1, 0.2, ...), scale-up delay 10 s.
fn tiny(replicas: u32) -> Scenario {
    tiny_stages(replicas, "[ { duration_s: 120, rps: 10 } ]")
}

/// [`tiny`] under the workload stages `stages` (YAML).
fn tiny_stages(replicas: u32, stages: &str) -> Scenario {
    crate::scenario(&format!(
        r#"
name: tiny
slo_ms: 1000
horizon_s: 120
cluster:
  max_instances: 6
  skus: [ {{ name: one, cores: 1, memory_gib: 4, price_per_hour: 1 }}, {{ name: half, cores: 0.5, memory_gib: 4, price_per_hour: 0.5 }} ]
services:
  - {{ name: api, replicas: {replicas}, min_replicas: 1, max_replicas: 5, cpu_request_m: 1000, concurrency: 1,
       scale_up_delay_s: 10, demand: {{ dist: constant, ms: 50 }} }}
request_types: [ {{ name: r, call: {{ service: api }} }} ]
workload:
  arrivals: {{ process: deterministic }}
  stages: {stages}
"#
    ))
}

fn env(sc: Scenario, interval_s: u64) -> Env {
    let cfg = EnvConfig { decision_interval: SimTime::from_secs(interval_s), ..Default::default() };
    Env::new(cfg, Box::new(SimFactory::new(vec![sc], Randomization::default())))
}

/// A 15 s decision environment on `sc` with `action`'s replica rules and neither the node-type
/// nor the quota head.
fn replica_env(action: ActionConfig, sc: Scenario) -> Env {
    let action = ActionConfig { node_type_head: false, quota_head: false, ..action };
    let cfg = EnvConfig { decision_interval: SimTime::from_secs(15), action, ..Default::default() };
    Env::new(cfg, Box::new(SimFactory::new(vec![sc], Randomization::default())))
}

fn one(delta: i32) -> Action {
    Action::One { service: 0, node_type: 0, delta, quota: 0.0 }
}

#[test]
fn agent_scale_up_starts_then_is_active_exactly_after_the_delay() {
    let mut e = env(tiny(1), 1);
    let obs = e.reset(1).unwrap();
    // Feature 0: Active / max (5); feature 1: Starting / max.
    assert_eq!((obs.service(0)[0], obs.service(0)[1]), (0.2, 0.0));
    let mut st = e.step(&one(1)).unwrap(); // at t = 0: +1, Active at 10 s
    assert_eq!(st.info.report.executed, vec!["api +1".to_string()]);
    for t in 1..10 {
        assert_eq!(st.obs.time_s, t as f64);
        assert_eq!(
            (st.obs.service(0)[0], st.obs.service(0)[1]),
            (0.2, 0.2),
            "at {t} s a Starting instance is not Active"
        );
        st = e.step(&one(0)).unwrap();
    }
    assert_eq!(st.obs.time_s, 10.0);
    assert_eq!((st.obs.service(0)[0], st.obs.service(0)[1]), (0.4, 0.0), "Active at exactly 10 s");
}

#[test]
fn draining_instances_are_not_active_in_observations() {
    let mut e = env(tiny(3), 1);
    e.reset(1).unwrap();
    let st = e.step(&one(-1)).unwrap();
    // 3 -> 2 Active; the drained one (idle or finishing a 50 ms call) is never counted as Active.
    assert_eq!(st.obs.service(0)[0], 0.4);
    assert!(st.obs.service(0)[2] <= 0.2);
}

#[test]
fn masked_actions_are_never_executed() {
    let mut e = env(tiny(1), 15);
    e.reset(1).unwrap();
    let mask: &ActionMask = e.mask().unwrap();
    // At min replicas 1: -1 and -2 masked; +2 allowed (room for 5 more instances).
    assert_eq!(mask.deltas[0], [false, false, true, true, true]);
    let st = e.step(&one(-1)).unwrap();
    assert!(st.info.report.executed.is_empty());
    assert_eq!(st.info.report.blocked.len(), 1, "{:?}", st.info.report);
    assert_eq!(st.obs.service(0)[0], 0.2, "replicas unchanged");
    // Node type `half` (0.5 cores) cannot hold a 1-core request: masked for scale-ups.
    assert_eq!(e.mask().unwrap().node_types[0], vec![true, false]);
    let st = e.step(&Action::One { service: 0, node_type: 1, delta: 1, quota: 0.0 }).unwrap();
    assert!(st.info.report.executed.is_empty() && st.info.report.blocked[0].contains("node type"));
    // The cluster maximum (6 instances) masks what would pass it.
    assert_eq!(DELTAS.len(), 5);
}

#[test]
fn per_service_actions_check_every_part_against_the_mask() {
    // Two services at 1 replica (min 1): one action for both, +1 for `api` and -1 for `db`. The
    // scale-up runs and is Active 10 s later; the scale-down is masked (min replicas) and
    // reported; a part for a service that does not exist is reported too.
    let mut sc = tiny(1);
    let mut db = sc.app.services[0].clone();
    db.name = "db".into();
    sc.app.services.push(db);
    let mut e = env(sc, 15);
    e.reset(1).unwrap();
    let part = |delta: i32| ServiceAction { node_type: 0, delta, quota: 0.0 };
    let st = e.step(&Action::All(vec![part(1), part(-1), part(1)])).unwrap();
    assert_eq!(st.info.report.executed, vec!["api +1".to_string()]);
    assert_eq!(st.info.report.blocked.len(), 2, "{:?}", st.info.report);
    assert!(st.info.report.blocked[0].starts_with("db -1: masked"), "{:?}", st.info.report);
    assert!(st.info.report.blocked[1].contains("does not exist"), "{:?}", st.info.report);
    // Feature 0: Active / max (5).
    assert_eq!((st.obs.service(0)[0], st.obs.service(1)[0]), (0.4, 0.2));
}

#[test]
fn reward_terms_match_hand_computed_values() {
    // 3 replicas, 10 requests/s of 50 ms: over [15 s, 30 s) 150 requests use 7.5 core-seconds of
    // 3 cores x 15 s = 45 allocated -> slack 1 - 7.5/45 = 0.8333. Demand 10/s, one instance serves
    // 1 / 0.05 = 20/s -> 1 needed, 2 extra over max 5 -> overshoot 0.4. No violation, no lag.
    // r = -(5*0 + 1*0.8333 + 3*0.4 + 2*0) = -2.0333.
    let mut e = env(tiny(3), 15);
    e.reset(1).unwrap();
    e.step(&one(0)).unwrap();
    let st = e.step(&one(0)).unwrap();
    let t = st.info.terms;
    assert_eq!(st.obs.time_s, 30.0);
    assert!((t.slack - (1.0 - 7.5 / 45.0)).abs() < 1e-9, "{t:?}");
    assert!((t.overshoot - 0.4).abs() < 1e-9, "{t:?}");
    assert_eq!((t.slo_violation, t.replica_lag), (0.0, 0.0));
    assert!((st.reward - -(1.0 - 7.5 / 45.0 + 1.2)).abs() < 1e-9, "{}", st.reward);
    // The gym-hpa cost goal: 3 replicas of max 5 -> -0.6.
    let cfg = EnvConfig { decision_interval: SimTime::from_secs(15), reward: RewardConfig::Cost, ..Default::default() };
    let mut e = Env::new(cfg, Box::new(SimFactory::new(vec![tiny(3)], Randomization::default())));
    e.reset(1).unwrap();
    assert!((e.step(&one(0)).unwrap().reward - -0.6).abs() < 1e-12);
}

/// The default weighted reward, changed by `set`.
fn weighted(set: impl FnOnce(&mut RewardConfig)) -> RewardConfig {
    let mut reward = RewardConfig::default();
    set(&mut reward);
    reward
}

/// The steps of `actions` on `tiny(1)` (one replica, max 5, min 1), decisions every 15 s, under
/// `reward`.
fn steps_on_one_replica(reward: RewardConfig, actions: &[Action]) -> Vec<scalesim::rl::Step> {
    let cfg = EnvConfig { decision_interval: SimTime::from_secs(15), reward, ..Default::default() };
    let mut e = Env::new(cfg, Box::new(SimFactory::new(vec![tiny(1)], Randomization::default())));
    e.reset(1).unwrap();
    actions.iter().map(|a| e.step(a).unwrap()).collect()
}

#[test]
fn the_change_term_charges_each_replica_the_action_moves() {
    // One replica, max 5, min 1. Actions +2 (1 -> 3: changes 2/5 = 0.4), -1 (3 -> 2: 0.2), none
    // (0), -1 (2 -> 1: 0.2), -1 (at the minimum: masked, 0). With weight 2 the reward is the
    // unweighted one minus 2 x changes, exactly; every other term is the same.
    let run = |weight: f64| {
        let reward = weighted(|w| {
            if let RewardConfig::Weighted { changes, .. } = w {
                *changes = weight;
            }
        });
        steps_on_one_replica(reward, &[one(2), one(-1), one(0), one(-1), one(-1)])
            .into_iter()
            .map(|st| (st.info.terms.changes, st.reward, st.info.report.replica_changes))
            .collect::<Vec<_>>()
    };
    let (plain, charged) = (run(0.0), run(2.0));
    let counts: Vec<u32> = plain.iter().map(|x| x.2).collect();
    assert_eq!(counts, vec![2, 1, 0, 1, 0]);
    for ((c, r0, _), (c2, r2, _)) in plain.iter().zip(&charged) {
        assert_eq!(c, c2, "the term does not depend on its weight");
        assert!((r2 - (r0 - 2.0 * c)).abs() < 1e-12, "{r2} vs {r0} - 2 x {c}");
    }
    let terms: Vec<f64> = plain.iter().map(|x| x.0).collect();
    assert_eq!(terms, vec![0.4, 0.2, 0.0, 0.2, 0.0]);
}

#[test]
fn the_reversal_term_charges_only_a_change_that_undoes_the_last_one() {
    // One replica, max 5, min 1. Actions +1 (1 -> 2), +1 (-> 3: same direction, no reversal),
    // -1 (-> 2: down after up, 1 reversal), 0, -1 (-> 1: down after down, none), +2 (-> 3: up
    // after down, 1), -1 (-> 2: 1). With weight 0.75 the reward is the unweighted one minus
    // 0.75 per reversal, exactly; the `changes` term counts every move alike.
    let run = |weight: f64| {
        let reward = weighted(|w| {
            if let RewardConfig::Weighted { reversals, .. } = w {
                *reversals = weight;
            }
        });
        steps_on_one_replica(reward, &[one(1), one(1), one(-1), one(0), one(-1), one(2), one(-1)])
            .into_iter()
            .map(|st| (st.info.terms.reversals, st.reward))
            .collect::<Vec<_>>()
    };
    let (plain, charged) = (run(0.0), run(0.75));
    let counts: Vec<u32> = plain.iter().map(|x| x.0).collect();
    assert_eq!(counts, vec![0, 0, 1, 0, 0, 1, 1]);
    for ((n, r0), (n2, r2)) in plain.iter().zip(&charged) {
        assert_eq!(n, n2, "the count does not depend on its weight");
        assert!((r2 - (r0 - 0.75 * *n as f64)).abs() < 1e-12, "{r2} vs {r0} - 0.75 x {n}");
    }
}

/// `front -> back`, one core and one slot each, 50 ms per call (20 visits/s an instance),
/// queues of 50, one replica each (max 4), `rps` requests per second.
fn pair(rps: u32) -> Scenario {
    crate::scenario(&format!(
        r#"
name: pair
slo_ms: 1000
horizon_s: 120
cluster:
  max_instances: 8
  skus: [ {{ name: one, cores: 1, memory_gib: 4, price_per_hour: 1 }} ]
services:
  - {{ name: front, replicas: 1, min_replicas: 1, max_replicas: 4, cpu_request_m: 1000, concurrency: 1, queue_capacity: 50,
       scale_up_delay_s: 10, demand: {{ dist: constant, ms: 50 }} }}
  - {{ name: back, replicas: 1, min_replicas: 1, max_replicas: 4, cpu_request_m: 1000, concurrency: 1, queue_capacity: 50,
       scale_up_delay_s: 10, demand: {{ dist: constant, ms: 50 }} }}
request_types: [ {{ name: r, call: {{ service: front, calls: [ {{ service: back }} ] }} }} ]
workload:
  arrivals: {{ process: deterministic }}
  stages: [ {{ duration_s: 120, rps: {rps} }} ]
"#
    ))
}

#[test]
fn blame_splits_drops_by_refused_visits_and_slow_requests_by_queue_length() {
    // Hand-set metrics on `pair`. Only drops: front refused 10% of 100 visits/s (10/s), back 30%
    // (30/s): 0.25 / 0.75. Then 1 dropped and 3 slow requests: blame = 0.25 x the drops' shares +
    // 0.75 x the queues' shares, where front at 10/s of its 20/s is M/M/1 at load 0.5 (mean queue
    // 0.5^2 / (1 - 0.5) = 0.5) and back, overloaded, has its whole queue, 50.
    let mut e = env(pair(10), 15);
    e.reset(1).unwrap();
    let backend = e.backend().unwrap();
    let mut view = backend.observe();
    (view.services[0].error_rate, view.services[0].rps) = (0.1, 100.0);
    (view.services[1].error_rate, view.services[1].rps) = (0.3, 100.0);
    let layout = e.layout().unwrap();
    let by_drops = scalesim::rl::reward::blame(layout, backend, &view, 1.0, 0.0);
    assert!((by_drops[0] - 0.25).abs() < 1e-12 && (by_drops[1] - 0.75).abs() < 1e-12, "{by_drops:?}");
    // Front at 10/s refuses 1/s, back at 33.3/s 10/s: drops split 1/11 and 10/11.
    (view.services[0].error_rate, view.services[0].rps) = (0.1, 10.0);
    (view.services[1].error_rate, view.services[1].rps) = (0.3, 100.0 / 3.0);
    let b = scalesim::rl::reward::blame(layout, backend, &view, 1.0, 3.0);
    let (front_drops, back_drops) = (1.0 / 11.0, 10.0 / 11.0);
    let (front_q, back_q) = (0.5 / 50.5, 50.0 / 50.5);
    assert!((b[0] - (0.25 * front_drops + 0.75 * front_q)).abs() < 1e-9, "{b:?}");
    assert!((b[1] - (0.25 * back_drops + 0.75 * back_q)).abs() < 1e-9, "{b:?}");
    assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    // Nothing refused or queued: equal shares.
    for sv in &mut view.services {
        (sv.error_rate, sv.rps) = (0.0, 0.0);
    }
    assert_eq!(scalesim::rl::reward::blame(layout, backend, &view, 2.0, 2.0), vec![0.5, 0.5]);
}

#[test]
fn service_rewards_add_up_to_the_reward_and_charge_each_its_own_replicas() {
    // `pair` at 30 RPS overloads both services (20/s each). Decisions every 15 s: front +2, back
    // holds, then nothing. Every step's parts add up to its reward; with only capacity priced
    // (12 per replica-hour), each service pays for its own replicas: front 3 x 12 x 15/3600 =
    // 0.15 once its two start, back 1 x 12 x 15/3600 = 0.05. With `shared` 1 every part is the
    // mean.
    let run = |reward: RewardConfig, shared: f64| {
        let cfg = EnvConfig {
            decision_interval: SimTime::from_secs(15),
            reward,
            service_credit: Some(shared),
            ..Default::default()
        };
        let mut e = Env::new(cfg, Box::new(SimFactory::new(vec![pair(30)], Randomization::default())));
        e.reset(1).unwrap();
        let act = |front: i32| {
            Action::All(vec![
                ServiceAction { node_type: 0, delta: front, quota: 0.0 },
                ServiceAction { node_type: 0, delta: 0, quota: 0.0 },
            ])
        };
        [act(2), act(0), act(0)].iter().map(|a| e.step(a).unwrap()).collect::<Vec<_>>()
    };
    for st in run(RewardConfig::default(), 0.0).iter().chain(&run(
        weighted(|w| {
            if let RewardConfig::Weighted { changes, reversals, capacity, .. } = w {
                (*changes, *reversals, *capacity) = (2.0, 0.5, 6.0);
            }
        }),
        0.0,
    )) {
        let parts = &st.info.service_rewards;
        assert_eq!(parts.len(), 2);
        assert!((parts.iter().sum::<f64>() - st.reward).abs() < 1e-9, "{parts:?} vs {}", st.reward);
        assert!(st.info.terms.slo_violation > 0.0, "the load overloads the pair");
    }
    let capacity_only = RewardConfig::Weighted {
        slo: 0.0,
        slack: 0.0,
        overshoot: 0.0,
        lag: 0.0,
        changes: 0.0,
        reversals: 0.0,
        capacity: 12.0,
        slack_basis: SlackBasis::Request,
    };
    for st in run(capacity_only, 0.0) {
        let p = &st.info.service_rewards;
        assert!((p[0] - -0.15).abs() < 1e-12 && (p[1] - -0.05).abs() < 1e-12, "{p:?}");
    }
    for st in run(RewardConfig::default(), 1.0) {
        let p = &st.info.service_rewards;
        assert!((p[0] - st.reward / 2.0).abs() < 1e-12 && (p[1] - st.reward / 2.0).abs() < 1e-12, "{p:?}");
    }
    // Not asked for: not split.
    assert!(steps_on_one_replica(RewardConfig::default(), &[one(0)])[0].info.service_rewards.is_empty());
}

#[test]
fn scale_downs_stay_masked_for_the_stabilisation_window_after_a_scale_up() {
    // Window 60 s, decisions every 15 s. +1 at t = 0; scale-downs are masked at 15, 30 and 45 s
    // (a -1 asked for at 15 s is blocked, not executed) and allowed again at 60 s; scale-ups never.
    let cfg = EnvConfig {
        decision_interval: SimTime::from_secs(15),
        action: ActionConfig { downscale_stabilization: SimTime::from_secs(60), ..Default::default() },
        ..Default::default()
    };
    let mut e = Env::new(cfg, Box::new(SimFactory::new(vec![tiny(2)], Randomization::default())));
    e.reset(1).unwrap();
    assert!(e.mask().unwrap().allows_delta(0, -1), "no scale-up yet");
    let st = e.step(&one(1)).unwrap();
    assert_eq!(st.info.report.scaled_up, vec![0]);
    let mut down_allowed = vec![];
    let st = e.step(&one(-1)).unwrap();
    assert!(st.info.report.executed.is_empty(), "{:?}", st.info.report);
    assert!(st.info.report.blocked[0].contains("masked"), "{:?}", st.info.report);
    for _ in 0..4 {
        let m = e.mask().unwrap();
        assert!(m.allows_delta(0, 1));
        down_allowed.push((e.backend().unwrap().now().as_secs_f64(), m.allows_delta(0, -1)));
        e.step(&one(0)).unwrap();
    }
    assert_eq!(down_allowed, vec![(30.0, false), (45.0, false), (60.0, true), (75.0, true)]);
}

#[test]
fn on_recommendations_a_scale_down_goes_only_as_low_as_the_highest_recommendation_in_the_window() {
    // Window 60 s, decisions every 15 s, one replica. Asked: +2 at 0 s (recommends 3), then -1 at
    // every decision. At 15, 30 and 45 s the recommendation of 0 s (3) is in the window: held. At
    // 60 s it has left (0 + 60 <= 60): the window holds 2, 2, 2, 2 -> down to 2. At 75 s the
    // recommendations of 15-60 s (2) are in it: held; nothing is masked meanwhile.
    let cfg = EnvConfig {
        decision_interval: SimTime::from_secs(15),
        action: ActionConfig {
            downscale_stabilization: SimTime::from_secs(60),
            stabilization: scalesim::rl::action::Stabilization::Recommendations,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut e = Env::new(cfg, Box::new(SimFactory::new(vec![tiny(1)], Randomization::default())));
    e.reset(1).unwrap();
    let mut replicas = Vec::new();
    for delta in [2, -1, -1, -1, -1, -1] {
        assert!(e.mask().unwrap().allows_delta(0, -1) || replicas.is_empty(), "nothing masked but the minimum");
        let st = e.step(&one(delta)).unwrap();
        let held = st.info.report.blocked.iter().any(|b| b.contains("held at +0 by the scale-down stabilisation"));
        let c = e.backend().unwrap().observe().services[0].counts;
        replicas.push((c.active + c.starting, held));
    }
    assert_eq!(replicas, vec![(3, false), (3, true), (3, true), (3, true), (2, false), (2, true)]);
}

#[test]
fn multiplicative_steps_move_a_service_by_its_size() {
    // One replica, max 5, decisions every 15 s, multiplicative steps: +2 from 1 -> 3 (the additive
    // step is the least), +1 from 3 -> ceil(4.5) = 5, -2 from 5 -> floor(2.5) = 2; each replica
    // moved is one executed +1 / -1.
    let cfg = EnvConfig {
        decision_interval: SimTime::from_secs(15),
        action: ActionConfig { multiplicative_steps: true, ..Default::default() },
        ..Default::default()
    };
    let mut e = Env::new(cfg, Box::new(SimFactory::new(vec![tiny(1)], Randomization::default())));
    e.reset(1).unwrap();
    let mut seen = Vec::new();
    for delta in [2, 1, -2] {
        let st = e.step(&one(delta)).unwrap();
        let c = e.backend().unwrap().observe().services[0].counts;
        seen.push((c.active + c.starting, st.info.report.replica_changes));
    }
    assert_eq!(seen, vec![(3, 2), (5, 2), (2, 3)]);
}

/// Every service's part of a per-service action: `delta`, on the service's own SKU.
fn every(delta: i32) -> Action {
    Action::All(vec![ServiceAction { node_type: 0, delta, quota: 0.0 }])
}

#[test]
fn under_the_hpa_anchor_each_delta_moves_from_the_hpa_count() {
    // `tiny` on one replica: 10 requests/s of 50 ms use half its core. At an HPA target of 20%
    // the HPA asks for ceil(1 x 0.5 / 0.2) = 3. Before the first metric the anchor is the current
    // count: a delta of 0 holds at 1. Then every delta of the row is allowed (1..=5 within min 1,
    // max 5 and the room), and -1 asks for 3 - 1 = 2: one scale-up.
    let cfg = EnvConfig {
        decision_interval: SimTime::from_secs(15),
        hpa_target: 0.2,
        action: ActionConfig {
            anchor: Anchor::Hpa,
            node_type_head: false,
            quota_head: false,
            downscale_stabilization: SimTime::from_secs(60),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut e = Env::new(cfg, Box::new(SimFactory::new(vec![tiny(1)], Randomization::default())));
    e.reset(1).unwrap();
    assert_eq!(e.mask().unwrap().anchor, vec![1]);
    assert_eq!(e.step(&every(0)).unwrap().info.report.replica_changes, 0);
    let m = e.mask().unwrap();
    assert_eq!((m.anchor[0], m.deltas[0]), (3, [true; 5]));
    let st = e.step(&every(-1)).unwrap();
    assert_eq!((st.info.report.scaled_up.clone(), st.info.report.replica_changes), (vec![0], 1));
    // The delta from the anchor (at least the current 2, raised so by the window) to the maximum.
    let to_max = 5 - e.mask().unwrap().anchor[0];
    assert!((0..=2).contains(&to_max), "anchor {}", 5 - to_max);
    let st = e.step(&every(to_max as i32)).unwrap();
    let replicas = |e: &Env| {
        let c = e.backend().unwrap().observe().services[0].counts;
        (c.active + c.starting) as i64
    };
    assert_eq!(replicas(&e), 5, "{:?}", st.info.report);
    // Within the 60 s window after that scale-up (30 s to 90 s), the anchor is raised to the
    // current 5 whenever the HPA asks for less (it does once the new replicas report), so 0 holds
    // and every scale-down is masked.
    let hpa = |e: &Env| {
        let sv = &e.backend().unwrap().observe().services[0];
        ((sv.counts.active as f64 * sv.cpu_utilization.unwrap() / 0.2).ceil() as i64).clamp(1, 5)
    };
    let mut asked_less = false;
    while e.backend().unwrap().now() < SimTime::from_secs(90) {
        asked_less |= hpa(&e) < 5;
        let m = e.mask().unwrap();
        assert_eq!((m.anchor[0], m.deltas[0]), (5, [false, false, true, false, false]));
        assert_eq!(e.step(&every(0)).unwrap().info.report.replica_changes, 0);
    }
    assert!(asked_less);
    // 60 s after the scale-up: the anchor is the HPA's count again, and 0 scales down to it.
    let (anchor, wanted) = (e.mask().unwrap().anchor[0], hpa(&e));
    assert_eq!(anchor, wanted);
    assert!(wanted < 5, "the HPA's count {wanted}");
    e.step(&every(0)).unwrap();
    assert_eq!(replicas(&e), wanted);
}

#[test]
fn under_an_hpa_floor_no_count_goes_below_the_hpas() {
    // `tiny` on one replica: 10 requests/s of 50 ms use half its core; at a floor target of 20%
    // the HPA asks for ceil(1 x 0.5 / 0.2) = 3. Before the first metric the floor is the current
    // count (1). Then -2 and -1 are masked (they ask for less than 3), and 0 asks for the floor:
    // two scale-ups. +1 from 1 asks for 2, raised to 3 as well.
    let mut e = replica_env(ActionConfig { hpa_floor: Some(0.2), ..Default::default() }, tiny(1));
    e.reset(1).unwrap();
    assert_eq!((e.mask().unwrap().floor.clone(), e.mask().unwrap().anchor.clone()), (vec![1], vec![1]));
    assert_eq!(e.step(&every(0)).unwrap().info.report.replica_changes, 0);
    let m = e.mask().unwrap();
    assert_eq!((m.floor[0], m.anchor[0], m.deltas[0]), (3, 1, [false, false, true, true, true]));
    let blocked = e.step(&every(-1)).unwrap().info.report;
    assert_eq!(blocked.replica_changes, 0, "a delta below the floor is masked: {blocked:?}");
    let st = e.step(&every(0)).unwrap();
    assert_eq!(st.info.report.replica_changes, 2, "{:?}", st.info.report);
    let c = e.backend().unwrap().observe().services[0].counts;
    assert_eq!(c.active + c.starting, 3);
    // The same from one replica with +1: raised to the floor, not to 2.
    let mut e = replica_env(ActionConfig { hpa_floor: Some(0.2), ..Default::default() }, tiny(1));
    e.reset(1).unwrap();
    e.step(&every(0)).unwrap();
    assert_eq!(e.step(&every(1)).unwrap().info.report.replica_changes, 2);
}

/// `tiny` on one replica under 10 requests/s of 50 ms (half a core) for 30 s, then 2/s, with
/// `action`'s shields and a 60 s scale-down window; reset (seed 1).
fn falling_load_env(action: ActionConfig) -> Env {
    let sc = tiny_stages(1, "[ { duration_s: 30, rps: 10 }, { duration_s: 90, rps: 2 } ]");
    let mut e = replica_env(ActionConfig { downscale_stabilization: SimTime::from_secs(60), ..action }, sc);
    e.reset(1).unwrap();
    e
}

/// Holds (delta 0) every decision until the service scales down, and returns when that decision
/// was made (s); it must be before `by_s`.
fn first_scale_down_at(e: &mut Env, by_s: f64) -> f64 {
    loop {
        let now = e.backend().unwrap().now().as_secs_f64();
        let report = e.step(&every(0)).unwrap().info.report;
        if report.replica_changes > 0 {
            assert_eq!(report.scaled_down, vec![0], "at {now}: {report:?}");
            return now;
        }
        assert!(now < by_s, "not lowered by {by_s} s");
    }
}

#[test]
fn a_ceiling_that_holds_gives_replicas_back_a_window_after_the_load_fell() {
    // Under `falling_load_env`, a +1 at 15 s opens the 60 s window; the load falls at 30 s.
    // The decision at 30 s still sees the load before the fall (its CPU window is 15-30 s): the
    // ceiling there is 4, above the 2 replicas then. From 45 s on it is 1. Holding every
    // decision, the plain ceiling lowers the count at the first decision after the window (75 s);
    // holding its peak, or holding while needed (the 30 s recommendation reached the count), the
    // ceiling stays up while the 30 s decision is within the last 60 s: lowered at 90 s.
    use scalesim::rl::CeilingHold;
    let env_with = |hold: CeilingHold| {
        let mut e =
            falling_load_env(ActionConfig { hpa_ceiling: Some(0.25), ceiling_hold: hold, ..Default::default() });
        e.step(&every(0)).unwrap();
        assert_eq!(e.step(&every(1)).unwrap().info.report.replica_changes, 1);
        e
    };
    let first_lowered_at = |hold: CeilingHold| first_scale_down_at(&mut env_with(hold), 105.0);
    let lowered: Vec<f64> =
        [CeilingHold::Off, CeilingHold::Peak, CeilingHold::WhileNeeded].into_iter().map(first_lowered_at).collect();
    assert_eq!(lowered, [75.0, 90.0, 90.0]);
    // At 45 s the ceiling's own recommendation is 1, but the service is within its window at 2
    // replicas. A +1 there: the peak (4) leaves room for it; holding while needed keeps the count
    // and no more, as the plain ceiling does.
    let one_more_at_45s = |hold: CeilingHold| {
        let mut e = env_with(hold);
        e.step(&every(0)).unwrap(); // the 30 s decision
        e.step(&every(1)).unwrap().info.report.replica_changes
    };
    let grown: Vec<u32> =
        [CeilingHold::Off, CeilingHold::Peak, CeilingHold::WhileNeeded].into_iter().map(one_more_at_45s).collect();
    assert_eq!(grown, [0, 1, 0]);
}

#[test]
fn a_plus_one_at_the_bound_renews_the_window_when_asked() {
    // Under `falling_load_env` with a ceiling at 25%: a +1 at 15 s opens the 60 s window (2
    // replicas); from 45 s the ceiling's recommendation is 1, raised to the current 2 within the
    // window, so a +1 asks above the ceiling. Plainly it is masked, and the ceiling lowers the
    // count at the first decision after the window (75 s, as in the test above). With
    // `renew_at_bound` the +1 is allowed at 45 s (+2 is not), moves nothing, and restarts the
    // window: the count is lowered at 105 s (45 + 60).
    let first_lowered_at = |renew: bool, plus_one_at_45s: bool| {
        let mut e =
            falling_load_env(ActionConfig { hpa_ceiling: Some(0.25), renew_at_bound: renew, ..Default::default() });
        e.step(&every(0)).unwrap();
        assert_eq!(e.step(&every(1)).unwrap().info.report.replica_changes, 1);
        e.step(&every(0)).unwrap(); // the 30 s decision
        let row = e.mask().unwrap().deltas[0];
        assert_eq!(row, [false, false, true, renew, false], "at 45 s");
        if plus_one_at_45s {
            let report = e.step(&every(1)).unwrap().info.report;
            let renewed = if renew { vec![0] } else { vec![] };
            assert_eq!((report.replica_changes, report.renewed.clone()), (0, renewed), "{report:?}");
        }
        first_scale_down_at(&mut e, 115.0)
    };
    assert_eq!(first_lowered_at(false, false), 75.0);
    assert_eq!(first_lowered_at(false, true), 75.0, "a masked +1 renews nothing");
    assert_eq!(first_lowered_at(true, false), 75.0, "holding is not renewing");
    assert_eq!(first_lowered_at(true, true), 105.0);
    // At the max (5 replicas, no ceiling) +1 renews too; below it, +1 scales up as before.
    let mut e = replica_env(
        ActionConfig { renew_at_bound: true, downscale_stabilization: SimTime::from_secs(60), ..Default::default() },
        tiny_stages(5, "[ { duration_s: 120, rps: 2 } ]"),
    );
    e.reset(1).unwrap();
    assert_eq!(e.mask().unwrap().deltas[0], [true, true, true, true, false]);
    assert_eq!(e.step(&every(-1)).unwrap().info.report.replica_changes, 1);
    let report = e.step(&every(1)).unwrap().info.report;
    assert_eq!((report.scaled_up.clone(), report.renewed.clone()), (vec![0], vec![]), "{report:?}");
}

#[test]
fn a_floor_that_holds_its_peak_keeps_a_bursts_count_for_a_window() {
    // Under `falling_load_env`, a floor at 25% CPU. The 15 s decision sees half a core on one replica: floor
    // ceil(1 x 0.5 / 0.25) = 2. The 30 s decision sees it on two: 4. From 45 s the load is a
    // tenth of a core: the plain floor is 1. Holding its peak, the floor stays at 4 while the
    // 30 s decision is within the last 60 s (45, 60 and 75 s) and is 1 again at 90 s.
    let floors = |holds_peak: bool| {
        let mut e = falling_load_env(ActionConfig {
            hpa_floor: Some(0.25),
            floor_holds_peak: holds_peak,
            ..Default::default()
        });
        let mut seen = vec![e.mask().unwrap().floor[0]];
        for _ in 0..7 {
            e.step(&every(0)).unwrap();
            seen.push(e.mask().unwrap().floor[0]);
        }
        seen
    };
    assert_eq!(floors(false), [1, 2, 4, 1, 1, 1, 1, 1]);
    assert_eq!(floors(true), [1, 2, 4, 4, 4, 4, 1, 1]);
}

#[test]
fn a_ceiling_release_step_lowers_a_count_a_step_at_a_time() {
    // Five replicas of `tiny` under 2 requests/s (a tenth of a core) never scale up, so no window
    // holds the ceiling: at 25% CPU it is ceil(5 x 0.02 / 0.25) = 1 once the first metrics are in
    // (15 s; before them it is the current count). Holding, the plain ceiling lowers 5 -> 1 at
    // 15 s; with a release step of 2 the count goes 5 -> 3 at 15 s and 3 -> 1 at 30 s.
    let counts_after_holds = |step: Option<u32>| {
        let sc = tiny_stages(5, "[ { duration_s: 120, rps: 2 } ]");
        let action = ActionConfig { hpa_ceiling: Some(0.25), ceiling_release_step: step, ..Default::default() };
        let mut e = replica_env(action, sc);
        e.reset(1).unwrap();
        (0..3)
            .map(|_| {
                e.step(&every(0)).unwrap();
                let c = e.backend().unwrap().observe().services[0].counts;
                c.active + c.starting
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(counts_after_holds(None), vec![5, 1, 1]);
    assert_eq!(counts_after_holds(Some(2)), vec![5, 3, 1]);
    // Holding its peak over a 60 s window, the ceiling stays at the count it saw before the
    // metrics (5, at 0 s) until 60 s, then steps 5 -> 3 -> 1. What it remembers is the ceiling
    // before the step, so the 3 it stepped to at 60 s does not hold 3 for another window.
    let sc = tiny_stages(5, "[ { duration_s: 120, rps: 2 } ]");
    let action = ActionConfig {
        hpa_ceiling: Some(0.25),
        ceiling_release_step: Some(2),
        ceiling_hold: scalesim::rl::CeilingHold::Peak,
        downscale_stabilization: SimTime::from_secs(60),
        ..Default::default()
    };
    let mut e = replica_env(action, sc);
    e.reset(1).unwrap();
    let counts: Vec<u32> = (0..6)
        .map(|_| {
            e.step(&every(0)).unwrap();
            let c = e.backend().unwrap().observe().services[0].counts;
            c.active + c.starting
        })
        .collect();
    assert_eq!(counts, [5, 5, 5, 5, 3, 1]);
}

#[test]
fn a_floor_that_counts_refused_visits_asks_for_what_the_arrivals_need() {
    // One replica of one core serves one 50 ms visit at a time (20/s) and queues one more; 40
    // arrive each second, evenly, so from the start every other one finds the queue full: about
    // half the window's visits are refused while the CPU runs at 100% of its request. At a floor
    // target of 100% the plain HPA formula is within its tolerance of the target and keeps 1 (a
    // saturated service never grows); counting the refused visits, the utilisation the arrivals
    // would cause is 1.0 / (1 - 0.5) = 2, and the floor asks for ceil(1 x 2 / 1.0) = 2. At a
    // target of 50%: 2 and 4.
    let sc = crate::scenario(
        r#"
name: saturated
slo_ms: 1000
horizon_s: 120
cluster: { max_instances: 6, skus: [ { name: one, cores: 1, memory_gib: 4, price_per_hour: 1 } ] }
services:
  - { name: api, replicas: 1, min_replicas: 1, max_replicas: 5, cpu_request_m: 1000, concurrency: 1, queue_capacity: 1,
      scale_up_delay_s: 10, demand: { dist: constant, ms: 50 } }
request_types: [ { name: r, call: { service: api } } ]
workload: { arrivals: { process: deterministic }, stages: [ { duration_s: 120, rps: 40 } ] }
"#,
    );
    let floor_after_one_window = |target: f64, counts_refused: bool| {
        let action =
            ActionConfig { hpa_floor: Some(target), floor_counts_refused: counts_refused, ..Default::default() };
        let mut e = replica_env(action, sc.clone());
        e.reset(1).unwrap();
        e.step(&every(0)).unwrap();
        let sv = &e.backend().unwrap().observe().services[0];
        assert!((sv.error_rate - 0.5).abs() < 0.01, "refused share {}", sv.error_rate);
        assert!((sv.cpu_utilization.unwrap() - 1.0).abs() < 0.01, "utilisation {:?}", sv.cpu_utilization);
        e.mask().unwrap().floor[0]
    };
    assert_eq!((floor_after_one_window(1.0, false), floor_after_one_window(1.0, true)), (1, 2));
    assert_eq!((floor_after_one_window(0.5, false), floor_after_one_window(0.5, true)), (2, 4));
}

/// The floor of `tiny` (one replica) at a 30% target after the first 15 s window of `sc`, the
/// floor reading `span` over `peak_s` seconds (the window's mean without). Every load it is given
/// carries 75 arrivals of 50 ms in that window: a utilisation of 0.25, checked.
fn floor_after_one_window(sc: &Scenario, peak_s: Option<f64>, span: PeakSpan) -> i64 {
    let action =
        ActionConfig { hpa_floor: Some(0.3), floor_peak_s: peak_s, floor_peak_reads: span, ..Default::default() };
    let mut e = replica_env(action, sc.clone());
    e.reset(1).unwrap();
    e.step(&every(0)).unwrap();
    let sv = &e.backend().unwrap().observe().services[0];
    assert!((sv.cpu_utilization.unwrap() - 0.25).abs() < 0.01, "utilisation {:?}", sv.cpu_utilization);
    e.mask().unwrap().floor[0]
}

#[test]
fn a_floor_that_reads_the_busiest_seconds_asks_for_a_short_bursts_capacity() {
    // `tiny` under 15 requests/s for 5 s, then none for 10 s: over the first 15 s window one
    // replica is busy 75 x 50 ms = 3.75 s, a utilisation of 0.25. At a floor target of 30% the
    // window's mean asks for ceil(1 x 0.25 / 0.3) = 1. The busiest 5 s carry all 75 arrivals,
    // three times the window's mean rate (15 against 5 a second): 0.75 / 0.3 = 2.5, a floor of 3.
    // The busiest 10 s hold them too: 7.5 a second, 1.5 times the mean, 0.375 / 0.3 = 1.25: 2.
    // A span of the whole window (15 s) or more is its own mean: 1.
    let sc = tiny_stages(1, "[ { duration_s: 5, rps: 15 }, { duration_s: 115, rps: 0 } ]");
    let floors = [None, Some(5.0), Some(10.0), Some(15.0), Some(60.0)]
        .map(|peak_s| floor_after_one_window(&sc, peak_s, PeakSpan::Busiest));
    assert_eq!(floors, [1, 3, 2, 1, 1]);
}

#[test]
fn a_floor_that_reads_the_latest_seconds_asks_only_while_the_burst_lasts() {
    // The burst above, once in the first 5 s of the 15 s window (it has passed when the floor is
    // read) and once in the last 5 s (still arriving). Each carries 75 arrivals: a utilisation of
    // 0.25 and, at 30%, a floor of 1 from the window's mean. Read over the latest 5 s, the passed
    // burst is quiet (ratio 1: a floor of 1) and the arriving one three times the mean (3, as
    // the busiest 5 s). Over the latest 10 s: none of the passed burst (1), all of the arriving
    // one at 1.5 times the mean (0.375 / 0.3 = 1.25: 2).
    let passed = tiny_stages(1, "[ { duration_s: 5, rps: 15 }, { duration_s: 115, rps: 0 } ]");
    let arriving =
        tiny_stages(1, "[ { duration_s: 10, rps: 0 }, { duration_s: 5, rps: 15 }, { duration_s: 105, rps: 0 } ]");
    let floors = [(&passed, 5.0), (&passed, 10.0), (&arriving, 5.0), (&arriving, 10.0)]
        .map(|(sc, secs)| floor_after_one_window(sc, Some(secs), PeakSpan::Latest));
    assert_eq!(floors, [1, 1, 3, 2]);
}

#[test]
fn under_an_hpa_ceiling_no_scale_up_goes_above_the_hpas() {
    // `tiny` on one replica of max 5: 10 requests/s of 50 ms use half its core. At a ceiling
    // target of 25% the HPA asks for ceil(1 x 0.5 / 0.25) = 2: from 1, +1 (2) is allowed and +2
    // (3) is masked. Before the first metric the ceiling is the current count, so no scale-up is
    // allowed. From 2 (each at a quarter of a core, on the ceiling's target) +1 and +2 are masked
    // and 0 holds.
    let mut e = replica_env(ActionConfig { hpa_ceiling: Some(0.25), ..Default::default() }, tiny(1));
    e.reset(1).unwrap();
    let m = e.mask().unwrap();
    assert_eq!((m.ceiling[0], m.deltas[0]), (1, [false, false, true, false, false]));
    e.step(&every(0)).unwrap();
    let m = e.mask().unwrap();
    assert_eq!((m.ceiling[0], m.deltas[0]), (2, [false, false, true, true, false]));
    let blocked = e.step(&every(2)).unwrap().info.report;
    assert_eq!(blocked.replica_changes, 0, "a scale-up above the ceiling is masked: {blocked:?}");
    assert_eq!(e.step(&every(1)).unwrap().info.report.replica_changes, 1);
    // Once both report (a 15 s start-up delay at most), the ceiling holds at 2.
    for _ in 0..2 {
        e.step(&every(0)).unwrap();
    }
    let m = e.mask().unwrap();
    assert_eq!((m.current[0], m.ceiling[0]), (2, 2));
    assert_eq!(m.deltas[0][3..], [false, false]);
    // Without a ceiling the same mask allows +2 from 1.
    let mut open = Env::new(
        EnvConfig { decision_interval: SimTime::from_secs(15), ..Default::default() },
        Box::new(SimFactory::new(vec![tiny(1)], Randomization::default())),
    );
    open.reset(1).unwrap();
    open.step(&every(0)).unwrap();
    assert_eq!(open.mask().unwrap().deltas[0], [false, false, true, true, true]);
}

#[test]
fn an_hpa_ceiling_lowers_spare_replicas_once_the_window_has_passed() {
    // As `tiny`, but the load falls from 10 to 2 requests/s at 30 s. +1 at 15 s (ceiling 2, as
    // above) opens a 60 s window. After the fall two replicas use 0.1 cores: the HPA at 25% asks
    // for ceil(2 x 0.05 / 0.25) = 1. Within the window holds keep 2; the first hold after it
    // (at 75 s) is lowered to the ceiling: one scale-down.
    let sc = tiny_stages(1, "[ { duration_s: 30, rps: 10 }, { duration_s: 90, rps: 2 } ]");
    let mut e = replica_env(
        ActionConfig { hpa_ceiling: Some(0.25), downscale_stabilization: SimTime::from_secs(60), ..Default::default() },
        sc,
    );
    e.reset(1).unwrap();
    e.step(&every(0)).unwrap();
    assert_eq!(e.step(&every(1)).unwrap().info.report.replica_changes, 1);
    while e.backend().unwrap().now() < SimTime::from_secs(75) {
        let (now, m) = (e.backend().unwrap().now(), e.mask().unwrap());
        // (At 30 s the CPU window still holds the load before the fall: the ceiling is 4.)
        assert!(m.current[0] == 2 && m.ceiling[0] >= 2, "at {now:?}: {m:?}");
        assert_eq!(e.step(&every(0)).unwrap().info.report.replica_changes, 0, "at {now:?}");
    }
    assert_eq!(e.mask().unwrap().ceiling[0], 1);
    assert_eq!(e.step(&every(0)).unwrap().info.report.replica_changes, 1);
    let c = e.backend().unwrap().observe().services[0].counts;
    assert_eq!(c.active + c.starting, 1);
}

#[test]
fn under_hpa_levels_each_delta_asks_for_the_hpas_count_at_its_target() {
    // `tiny` on one replica: 10 requests/s of 50 ms use half its core. At the levels 100, 80, 60,
    // 40 and 20% the HPA asks for ceil(0.5 / t) = 1, 1, 1, 2 and 3 replicas. Before the first
    // metric every level is the current count. +2 asks for 3: two scale-ups. Within the 60 s
    // window after it every level below 3 holds 3; after it, with the three at a sixth of a core
    // each, -2 (100%: ceil(3 x 0.167 / 1) = 1) scales down to one.
    let mut e = replica_env(
        ActionConfig {
            hpa_levels: Some([1.0, 0.8, 0.6, 0.4, 0.2]),
            downscale_stabilization: SimTime::from_secs(60),
            ..Default::default()
        },
        tiny(1),
    );
    e.reset(1).unwrap();
    assert_eq!(e.mask().unwrap().levels, vec![[1; 5]]);
    e.step(&every(0)).unwrap();
    assert_eq!(e.mask().unwrap().levels, vec![[1, 1, 1, 2, 3]]);
    assert_eq!(e.step(&every(2)).unwrap().info.report.replica_changes, 2);
    while e.backend().unwrap().now() < SimTime::from_secs(75) {
        // (At 30 s the CPU window still holds the single replica's half core: 20% asks for 5.)
        let levels = e.mask().unwrap().levels[0];
        assert_eq!(levels[..4], [3; 4], "at {:?}", e.backend().unwrap().now());
        assert_eq!(e.step(&every(-2)).unwrap().info.report.replica_changes, 0);
    }
    assert_eq!(e.mask().unwrap().levels, vec![[1, 1, 1, 2, 3]]);
    assert_eq!(e.step(&every(-2)).unwrap().info.report.replica_changes, 2);
    let c = e.backend().unwrap().observe().services[0].counts;
    assert_eq!(c.active + c.starting, 1);
}

#[test]
fn slack_against_limits_charges_a_raised_limit() {
    // As `tiny`, with 0.5-core requests and 1-core limits: over [15 s, 30 s) 150 requests use 7.5
    // core-seconds. Against requests (3 x 0.5 x 15 = 22.5) slack is 1 - 7.5/22.5 = 0.6667;
    // against limits (3 x 1 x 15 = 45) it is 1 - 7.5/45 = 0.8333. A quota of -1 at 30 s (step 0.5
    // cores) lowers the limit to 0.5: over [30 s, 45 s) the limit slack is 1 - 7.5/22.5 again.
    let mut sc = tiny(3);
    sc.app.services[0].shape.cpu_request = 0.5;
    sc.app.services[0].shape.cpu_limit = 1.0;
    let run = |basis: SlackBasis| {
        let cfg = EnvConfig {
            decision_interval: SimTime::from_secs(15),
            reward: RewardConfig::weighted(basis),
            action: ActionConfig { quota_head: true, quota_step_cores: 0.5, ..Default::default() },
            ..Default::default()
        };
        let mut e = Env::new(cfg, Box::new(SimFactory::new(vec![sc.clone()], Randomization::default())));
        e.reset(1).unwrap();
        e.step(&one(0)).unwrap(); // [0 s, 15 s)
        let before = e.step(&one(0)).unwrap().info.terms; // [15 s, 30 s)
        let after = e.step(&Action::One { service: 0, node_type: 0, delta: 0, quota: -1.0 }).unwrap().info.terms;
        (before.slack, after.slack)
    };
    let (request, _) = run(SlackBasis::Request);
    assert!((request - (1.0 - 7.5 / 22.5)).abs() < 1e-9, "{request}");
    let (limit, lowered) = run(SlackBasis::Limit);
    assert!((limit - (1.0 - 7.5 / 45.0)).abs() < 1e-9, "{limit}");
    // Requests in service at the resize finish at the new speed: allow one request's share.
    assert!((lowered - (1.0 - 7.5 / 22.5)).abs() < 0.01, "{lowered}");
}

fn episode(e: &mut Env, seed: u64) -> Vec<(f64, Vec<f32>)> {
    e.reset(seed).unwrap();
    let mut rng = action_rng(seed);
    let mut out = vec![];
    loop {
        let n = e.layout().unwrap().services;
        let st = e.step(&Action::random(&mut rng, n)).unwrap();
        out.push((st.reward, st.obs.flat()));
        if st.truncated {
            return out;
        }
    }
}

#[test]
fn reset_with_a_seed_replays_the_episode_and_randomises_the_load() {
    let sc = scalesim::scenario::load_scenario(&crate::root().join("scenarios/online_boutique_rush.yaml")).unwrap();
    let mut fluid = sc.clone();
    fluid.fidelity = scalesim::scenario::Fidelity::Fluid;
    let r = Randomization { rate_scale: (0.5, 1.5), start_offset_s: (0.0, 120.0), ..Default::default() };
    let mk = || Env::new(EnvConfig::default(), Box::new(SimFactory::new(vec![sc.clone(), fluid.clone()], r)));
    let (mut a, mut b) = (mk(), mk());
    let x = episode(&mut a, 42);
    let y = episode(&mut b, 42);
    assert_eq!(x, y);
    let flat_len = a.layout().unwrap().flat_len();
    assert_eq!(x[0].1.len(), flat_len);
    assert!(x.iter().all(|(_, o)| o.iter().all(|v| (0.0..=1.0).contains(v))), "features outside [0, 1]");
    let labels: std::collections::BTreeSet<String> = (0..6)
        .map(|s| {
            let mut e = mk();
            e.reset(s).unwrap();
            e.episode_label().unwrap().to_string()
        })
        .collect();
    assert!(labels.len() >= 5, "randomisation gave {labels:?}");
}

#[test]
fn second_scale_bursts_switch_a_random_shape_on_and_off_and_keep_its_mean() {
    // With share 1 every episode's random shape is modulated in 1-second steps with the same mean
    // as the unmodulated shape of the same seed; with share 0 the stream is untouched (the same
    // shape as before the option existed).
    let sc = scalesim::scenario::load_scenario(&crate::root().join("scenarios/online_boutique_peak.yaml")).unwrap();
    let factory = |share: f64| {
        SimFactory::new(
            vec![sc.clone()],
            Randomization {
                rate_scale: (1.0, 1.0),
                start_offset_s: (0.0, 0.0),
                random_shapes: true,
                second_scale_bursts: share,
                ..Default::default()
            },
        )
    };
    let rates = |share: f64, seed: u64| {
        let (s, label) = factory(share).episode_scenario(seed).unwrap();
        let scalesim::workload::ArrivalSource::Rate { schedule, .. } = s.workload.source else { panic!("a rate load") };
        (schedule, label, s.horizon)
    };
    for seed in 0..8 {
        let (plain, label, horizon) = rates(0.0, seed);
        let (bursty, blabel, _) = rates(1.0, seed);
        assert_eq!(blabel, format!("{label} +1s bursts"));
        let mean = |s: &scalesim::workload::RateSchedule| s.expected_arrivals(horizon) / horizon.as_secs_f64();
        assert!((mean(&plain) - mean(&bursty)).abs() < 1e-6 * mean(&plain), "seed {seed}");
        // Changes on whole seconds (equal neighbours merge), and many of them: runs last 1-12 s.
        assert!(bursty.starts.iter().all(|t| t.fract() == 0.0), "changes on whole seconds");
        assert!(bursty.starts.len() as f64 > horizon.as_secs_f64() / 12.0, "{} changes", bursty.starts.len());
        let peak = bursty.rates.iter().cloned().fold(0.0, f64::max);
        assert!(peak > 1.5 * mean(&plain), "seed {seed}: busiest second {peak} vs mean {}", mean(&plain));
    }
}

#[test]
fn arrival_cv_gives_each_episode_gamma_gaps_from_its_range() {
    // Off: the scenario's Poisson arrivals and the old stream (the same shape and label). On: gamma
    // gaps whose cv lies in the range and varies with the seed, on the same shape.
    let sc = scalesim::scenario::load_scenario(&crate::root().join("scenarios/online_boutique_peak.yaml")).unwrap();
    let draw = |cv: Option<(f64, f64)>, seed: u64| {
        let r = Randomization { random_shapes: true, arrival_cv: cv, ..Randomization::default() };
        let (s, label) = SimFactory::new(vec![sc.clone()], r).episode_scenario(seed).unwrap();
        let scalesim::workload::ArrivalSource::Rate { schedule, process } = s.workload.source else {
            panic!("a rate load")
        };
        (schedule, process, label)
    };
    let mut drawn = Vec::new();
    for seed in 0..12 {
        let (plain, process, label) = draw(None, seed);
        assert_eq!(process.name(), "poisson");
        let (shape, gamma, glabel) = draw(Some((1.0, 3.0)), seed);
        assert_eq!(shape, plain, "seed {seed}: the same shape");
        let ArrivalProcess::Gamma { cv, .. } = gamma else { panic!("seed {seed}: {}", gamma.name()) };
        assert!((1.0..=3.0).contains(&cv), "cv {cv}");
        assert_eq!(glabel, format!("{label} cv {cv:.2}"));
        drawn.push(cv);
        let (_, fixed, _) = draw(Some((2.5, 2.5)), seed);
        assert_eq!(fixed.name(), "gamma(cv 2.5)");
    }
    drawn.sort_by(f64::total_cmp);
    assert!(drawn[11] - drawn[0] > 1.0, "cv varies with the seed: {drawn:?}");
}

#[test]
fn vectorised_environments_step_the_same_on_one_thread_or_several() {
    // Three environments at request fidelity over an episode boundary (8 decisions of 15 s per
    // 120 s episode), random actions: the parallel wrapper's steps equal the sequential one's,
    // reward for reward and observation for observation, resets included.
    let run = |parallel: bool| {
        let envs = (0..3).map(|_| env(tiny(2), 15)).collect();
        let mut v = VecEnv::new(envs, 40).parallel(parallel);
        v.reset().unwrap();
        let mut rng = action_rng(9);
        let mut out = Vec::new();
        for _ in 0..20 {
            let actions: Vec<Action> = (0..3).map(|_| Action::random(&mut rng, 1)).collect();
            for st in v.step(&actions).unwrap() {
                let ended = st.info.final_observation.as_ref().map(|o| o.flat());
                out.push((st.reward, st.obs.flat(), ended));
            }
        }
        out
    };
    let (one, several) = (run(false), run(true));
    assert_eq!(one.len(), 60);
    assert!(one.iter().filter(|s| s.2.is_some()).count() >= 6, "episodes ended and reset");
    assert_eq!(one, several);
}

/// With a load forecast, the observation's HPA-formula feature counts for the load ahead: the same
/// as without on a flat load, higher just after the load triples, and no other feature moves.
#[test]
fn a_load_forecast_raises_the_hpa_feature_on_a_rise_and_nothing_else() {
    let sc = tiny_stages(3, "[ { duration_s: 60, rps: 10 }, { duration_s: 60, rps: 30 } ]");
    let with = |forecast: Option<f64>| {
        let action = ActionConfig { node_type_head: false, quota_head: false, ..Default::default() };
        let cfg = EnvConfig { action, load_forecast_s: forecast, ..Default::default() };
        let mut e = Env::new(cfg, Box::new(SimFactory::new(vec![sc.clone()], Randomization::default())));
        let mut obs = vec![e.reset(1).unwrap()];
        for _ in 0..5 {
            obs.push(e.step(&one(0)).unwrap().obs);
        }
        obs
    };
    let (plain, ahead) = (with(None), with(Some(30.0)));
    const HPA: usize = scalesim::rl::observation::HPA_DESIRED;
    for (p, a) in plain.iter().zip(&ahead) {
        let (mut p, mut a) = (p.clone(), a.clone());
        if p.time_s <= 60.0 {
            assert_eq!(p, a, "flat load at {} s", p.time_s);
        }
        p.services[HPA] = 0.0;
        a.services[HPA] = 0.0;
        assert_eq!(p, a, "only the HPA feature may differ at {} s", p.time_s);
    }
    // At 75 s the last minute held 45 s of 10 rps and 15 s of 30: the trend is rising.
    let at75 = plain.iter().position(|o| o.time_s == 75.0).unwrap();
    assert!(
        ahead[at75].services[HPA] > plain[at75].services[HPA],
        "forecast {} vs plain {}",
        ahead[at75].services[HPA],
        plain[at75].services[HPA]
    );
}

#[test]
fn a_fast_floor_raises_a_service_within_seconds_of_a_step_and_only_then() {
    // `tiny` (one replica, 50 ms a visit) at 5 arrivals a second for 15 s, then 20: the first
    // scrape (15 s) reads a utilisation of 5 x 0.05 = 0.25, a floor at 50% of ceil(0.5) = 1. The
    // fast floor looks every 3 s between decisions. At 18 s its latest 6 s carried (3 x 5 + 3 x
    // 20) / 6 = 12.5 a second against the scrape's 5: 0.25 x 2.5 / 0.5 = 1.25, raised to 2; at
    // 21 s, 24 s and 27 s all six seconds read 20 (0.25 x 4 / 0.5 = 2): no more. Before the first
    // scrape no pod has a metric, so the first step raises nothing. Without the fast floor the
    // count waits for the next decision. The new replica is Active 10 s after its raise (28 s).
    let sc = tiny_stages(1, "[ { duration_s: 15, rps: 5 }, { duration_s: 105, rps: 20 } ]");
    let fast = scalesim::rl::action::FastFloor::new(SimTime::from_secs(3), 6.0);
    let run = |fast_floor| {
        let mut e = replica_env(ActionConfig { hpa_floor: Some(0.5), fast_floor, ..Default::default() }, sc.clone());
        e.reset(1).unwrap();
        let first = e.step(&every(0)).unwrap();
        let second = e.step(&every(0)).unwrap();
        let counts = e.backend().unwrap().counts(0);
        (first.info.report, second.info.report, counts)
    };
    let (first, second, counts) = run(Some(fast));
    assert_eq!((first.replica_changes, first.executed.len()), (0, 0), "{:?}", first.executed);
    assert_eq!(second.replica_changes, 1);
    assert_eq!(second.executed, vec!["fast floor: api 1 -> 2".to_string(), "api +1".to_string()]);
    assert_eq!(second.scaled_up, vec![0]);
    assert_eq!((counts.active, counts.starting), (2, 0));
    let (_, plain, counts) = run(None);
    assert_eq!((plain.replica_changes, counts.active, counts.starting), (0, 1, 0));
}

#[test]
fn a_fast_raise_restarts_the_scale_down_window_unless_it_leaves_it() {
    // `tiny` at 5 arrivals a second, 20 for six seconds from 15 s, then 5 again, under a floor at
    // 50% and a 60 s scale-down window. As above, the fast floor raises 1 -> 2 at 18 s. At the
    // decision at 45 s the scrape of [30 s, 45 s) reads 0.25 cores over two replicas: a floor of
    // ceil(2 x 0.125 / 0.5) = 1, so only the window can hold the second replica. A raise that
    // restarts the window (until 78 s) masks -1 there; one that leaves it does not.
    let sc = tiny_stages(1, "[ { duration_s: 15, rps: 5 }, { duration_s: 6, rps: 20 }, { duration_s: 99, rps: 5 } ]");
    let may_scale_down_at_45_s = |leaves_window| {
        let fast = scalesim::rl::action::FastFloor {
            leaves_window,
            ..scalesim::rl::action::FastFloor::new(SimTime::from_secs(3), 6.0)
        };
        let action = ActionConfig {
            hpa_floor: Some(0.5),
            fast_floor: Some(fast),
            downscale_stabilization: SimTime::from_secs(60),
            ..Default::default()
        };
        let mut e = replica_env(action, sc.clone());
        e.reset(1).unwrap();
        let raised: u32 = (0..3).map(|_| e.step(&every(0)).unwrap().info.report.replica_changes).sum();
        assert_eq!((raised, e.mask().unwrap().floor[0], e.mask().unwrap().current[0]), (1, 1, 2));
        e.mask().unwrap().allows_delta(0, -1)
    };
    assert_eq!((may_scale_down_at_45_s(false), may_scale_down_at_45_s(true)), (false, true));
}
