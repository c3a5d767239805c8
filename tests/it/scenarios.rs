//! Every scenario under `scenarios/` validates and runs (short horizon), and conserves requests.

use scalesim::autoscale::StaticPolicy;
use scalesim::engine::SimTime;
use scalesim::scenario::load_scenario;
use scalesim::sim::{Simulator, Sinks};

#[test]
fn every_bundled_scenario_runs() {
    let mut files: Vec<_> = std::fs::read_dir(crate::root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "expected the bundled scenarios, found {files:?}");
    for f in files {
        let mut sc = load_scenario(&f).unwrap_or_else(|e| panic!("{e}"));
        sc.horizon = sc.horizon.min(SimTime::from_secs(60));
        let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
        // `run` fails if conservation is broken.
        let s = sim.run(&mut |_| {}).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let r = &s.requests;
        assert!(r.arrived > 50, "{}: only {} arrivals", f.display(), r.arrived);
        assert_eq!(r.arrived, r.completed + r.dropped + r.in_flight, "{}", f.display());
        assert!(s.cost > 0.0 && s.latency_ms.p50 > 0.0, "{}", f.display());
    }
}

#[test]
fn peak_brings_the_locust_load() {
    // 400 users at 50 users/s and a 1 s think time: 358,600 expected arrivals in 900 s (the ramp
    // loses 1,400); Poisson sd ~600, so +-1% is > 5 sd.
    let sc = load_scenario(&crate::root().join("scenarios/online_boutique_peak.yaml")).unwrap();
    let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
    let s = sim.run(&mut |_| {}).unwrap();
    let n = s.requests.arrived as f64;
    assert!((n - 358_600.0).abs() < 3586.0, "{n} arrivals");
}

#[test]
fn azure_trace_replays_every_request() {
    // 8,819 rows, the first at its own t = 0, the last without a final newline; rate_scale 20.
    let mut sc = load_scenario(&crate::root().join("scenarios/online_boutique_azure_trace.yaml")).unwrap();
    sc.horizon = sc.workload.duration;
    for s in &mut sc.app.services {
        // make every service huge so nothing is dropped and timing doesn't matter
        s.shape.queue_capacity = 1_000_000;
    }
    let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
    let s = sim.run(&mut |_| {}).unwrap();
    assert_eq!(s.requests.arrived, 8819 * 20);
}

#[test]
fn redis_followers_lag_grows_with_writes() {
    let sc = load_scenario(&crate::root().join("scenarios/redis_leader_follower.yaml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    scalesim::experiment::run_to_dir(&sc, Box::new(StaticPolicy), 1, &out, Default::default(), &mut |_| {}).unwrap();
    let text = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    let lag_at = |t: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{t},redis-follower,"))).unwrap();
        line.split(',').nth(11).unwrap().parse().unwrap()
    };
    // 10% writes: 200 writes/s before the rush, 800/s during it. Lag = 0.5 + 0.002 * writes/s:
    // about 0.9 ms and 2.1 ms (Poisson noise of a 1 s bucket: +-0.03 and +-0.06 ms).
    let (before, during) = (lag_at("60"), lag_at("200"));
    assert!((before - 0.9).abs() < 0.15, "{before}");
    assert!((during - 2.1).abs() < 0.25, "{during}");
}

/// Every bundled scenario exports a locustfile that Python compiles (`python3 -m py_compile`);
/// Online Boutique's sends the demo's real routes, never a placeholder.
#[test]
fn every_scenario_exports_a_locustfile_python_compiles() {
    let t = tempfile::tempdir().unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(crate::root().join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let out = t.path().join(format!("{}.py", p.file_stem().unwrap().to_string_lossy()));
        let o = std::process::Command::new(crate::bin())
            .args(["export-locust", p.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}: {}", p.display(), String::from_utf8_lossy(&o.stderr));
        let c =
            std::process::Command::new("python3").args(["-m", "py_compile", out.to_str().unwrap()]).output().unwrap();
        assert!(c.status.success(), "{}: {}", out.display(), String::from_utf8_lossy(&c.stderr));
        let py = std::fs::read_to_string(&out).unwrap();
        if p.to_string_lossy().contains("online_boutique") {
            assert!(py.contains("\"/cart/checkout\"") && !py.contains("edit it"), "{}", p.display());
        }
        n += 1;
    }
    assert!(n >= 10, "{n} scenarios");
}
