//! Same scenario and seed: byte-identical run folders. Another seed: different ones.

use scalesim::engine::SimTime;
use scalesim::experiment::policies::build_policy;
use scalesim::experiment::{run_to_dir, RunOptions};
use scalesim::scenario::load_scenario;

fn run(seed: u64, dir: &std::path::Path) {
    let mut sc = load_scenario(&crate::root().join("scenarios/online_boutique_rush.yaml")).unwrap();
    sc.horizon = SimTime::from_secs(240); // through the start of the rush
    let policy = build_policy("static", None, &sc).unwrap();
    run_to_dir(&sc, policy, seed, dir, RunOptions::default(), &mut |_| {}).unwrap();
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    run(7, &a);
    run(7, &b);
    run(8, &c);
    for f in ["experiment_info.json", "summary.json", "timeline.csv", "actions.csv"] {
        let x = std::fs::read(a.join(f)).unwrap();
        let y = std::fs::read(b.join(f)).unwrap();
        assert!(!x.is_empty(), "{f} is empty");
        assert!(x == y, "{f} differs between two runs with the same seed");
    }
    let ta = std::fs::read(a.join("timeline.csv")).unwrap();
    let tc = std::fs::read(c.join("timeline.csv")).unwrap();
    assert!(ta != tc, "seeds 7 and 8 gave identical timelines");
    // No staging folder is left behind.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 3, "{left:?}");
}

#[test]
fn two_policies_on_one_seed_see_the_same_arrivals() {
    // Common random numbers: the arrival stream depends on the seed only, not on what else draws
    // random numbers. Two scenarios differing only in service demand see the same arrivals.
    let base = load_scenario(&crate::root().join("scenarios/online_boutique_offpeak.yaml")).unwrap();
    let mut slow = base.clone();
    for s in &mut slow.app.services {
        s.shape.concurrency = 1;
    }
    let run = |sc: &scalesim::scenario::Scenario| {
        let mut sc = sc.clone();
        sc.horizon = SimTime::from_secs(60);
        let mut sim = scalesim::sim::Simulator::new(&sc, 3, scalesim::sim::Sinks::discard()).unwrap();
        sim.run(&mut |_| {}).unwrap()
    };
    let (x, y) = (run(&base), run(&slow));
    assert_eq!(x.requests.arrived, y.requests.arrived);
    assert_ne!(x.latency_ms.mean, y.latency_ms.mean);
}
