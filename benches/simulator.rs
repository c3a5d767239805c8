//! Simulator speed and memory.
//!
//! 1. Online Boutique `peak` (400 RPS, 15 simulated minutes), single-threaded: with the scenario as
//!    bundled (static policy at min replicas: the frontend saturates and drops a third of the load)
//!    and with 7 replicas of every service (nothing dropped: every call of every request simulated).
//! 2. Wall time against simulated requests (1, 2 and 4 simulated hours at 400 RPS): linear.
//! 3. A 24-hour simulated run: resident memory and the simulator's pools every 4 simulated hours:
//!    flat.
//!
//! Run: `cargo bench --bench simulator`

use std::path::Path;
use std::time::Instant;

use scalesim::engine::SimTime;
use scalesim::scenario::{load_scenario, Scenario};
use scalesim::sim::{Simulator, Sinks};
use scalesim::workload::{ArrivalSource, RateSchedule};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn peak() -> Scenario {
    load_scenario(Path::new("scenarios/online_boutique_peak.yaml")).expect("run from the project root")
}

fn provisioned(mut sc: Scenario) -> Scenario {
    for s in &mut sc.app.services {
        s.initial_replicas = 7.min(s.max_replicas);
    }
    sc
}

/// A constant 400 RPS for `secs` seconds.
fn steady(mut sc: Scenario, secs: u64) -> Scenario {
    let (process, _) = match &sc.workload.source {
        ArrivalSource::Rate { process, schedule } => (*process, schedule.clone()),
        ArrivalSource::Replay { .. } => unreachable!("peak is a rate workload"),
    };
    let schedule = RateSchedule { starts: vec![0.0], rates: vec![400.0], end: secs as f64 };
    sc.workload.source = ArrivalSource::Rate { schedule, process };
    sc.workload.duration = SimTime::from_secs(secs);
    sc.horizon = SimTime::from_secs(secs);
    sc
}

fn time_run(sc: &Scenario) -> (f64, u64, u64) {
    let start = Instant::now();
    let mut sim = Simulator::new(sc, 1, Sinks::discard()).unwrap();
    let s = sim.run(&mut |_| {}).unwrap();
    (start.elapsed().as_secs_f64(), s.requests.arrived, s.events_processed)
}

fn main() {
    for (label, sc) in
        [("as bundled (static, 1 replica each)", peak()), ("7 replicas each (no drops)", provisioned(peak()))]
    {
        let best = (0..3).map(|_| time_run(&sc)).min_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
        println!(
            "OB peak, {label}: {:.3} s wall for 900 simulated s; {} requests, {} events ({:.2} M events/s, {:.0} k requests/s)",
            best.0,
            best.1,
            best.2,
            best.2 as f64 / best.0 / 1e6,
            best.1 as f64 / best.0 / 1e3
        );
    }
    println!("wall time vs simulated requests (OB, 400 RPS steady, 7 replicas):");
    let mut per_req = Vec::new();
    for hours in [1u64, 2, 4] {
        let (wall, reqs, _) = time_run(&steady(provisioned(peak()), hours * 3600));
        per_req.push(wall / reqs as f64);
        println!("  {hours} h: {reqs:>9} requests in {wall:>6.2} s wall ({:.0} ns/request)", wall / reqs as f64 * 1e9);
    }
    println!("24 h simulated (OB, 400 RPS steady, 7 replicas): memory every 4 simulated hours");
    let sc = steady(provisioned(peak()), 24 * 3600);
    let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
    let start = Instant::now();
    for h in (4..=24).step_by(4) {
        while sim.step_until(SimTime::from_secs(h * 3600)).unwrap() {}
        let (req_slots, visit_slots, pending) = sim.memory_footprint();
        println!(
            "  {h:>2} h: RSS {:>6} KiB; request slots {req_slots}, visit slots {visit_slots}, pending events {pending}; {:.1} s wall",
            rss_kib(),
            start.elapsed().as_secs_f64()
        );
    }
}
