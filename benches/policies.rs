//! Cost of one policy decision, per service, on a realistic view: Online Boutique (11 services)
//! after 300 simulated seconds of the `peak` load with 3 replicas of each service.
//!
//! Run: `cargo bench --bench policies`

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use scalesim::autoscale::ScaleDecision;
use scalesim::engine::SimTime;
use scalesim::experiment::policies::build_policy;
use scalesim::scenario::load_scenario;
use scalesim::sim::{Simulator, Sinks};

fn main() {
    let mut sc = load_scenario(Path::new("scenarios/online_boutique_peak.yaml")).expect("run from the project root");
    for s in &mut sc.app.services {
        s.initial_replicas = 3;
    }
    let mut sim = Simulator::new(&sc, 1, Sinks::discard()).unwrap();
    while sim.step_until(SimTime::from_secs(300)).unwrap() {}
    let view = sim.view();
    let services = view.services.len();
    let pods: usize = view.services.iter().map(|s| s.pods.len()).sum();
    for name in ["hpa", "kpa", "target"] {
        let mut policy = build_policy(name, None, &sc).unwrap();
        let mut out: Vec<ScaleDecision> = Vec::with_capacity(services);
        let iters = 20_000;
        // The clock advances by a sync period per call, as in a run, so the policies' memories
        // (stabilisation windows, scale events) stay as small as they are in a run.
        let mut v = view.clone();
        let start = Instant::now();
        for i in 0..iters {
            v.now = SimTime::from_secs(300 + 15 * i as u64);
            out.clear();
            policy.decide(black_box(&v), &mut out);
            black_box(&out);
        }
        let per_call = start.elapsed().as_secs_f64() / iters as f64;
        println!(
            "{name:>6}: {:.2} us per decision over {services} services ({pods} pods): {:.3} us per service",
            per_call * 1e6,
            per_call * 1e6 / services as f64
        );
    }
}
