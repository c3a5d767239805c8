//! Environment speed: decision steps per second with a uniformly random agent on Online Boutique.
//!
//! - fluid fidelity, 15 s decisions, with the timeline interval set to the decision interval
//!   (training needs no per-second rows);
//! - request fidelity at 400 RPS (`peak`), 15 s decisions, one environment and one per core
//!   stepped side by side; and 400 RPS into a single service;
//! - on request (`SCALESIM_BENCH_CASES=scale`), how request fidelity scales with environments
//!   side by side, up to eight per core.
//!
//! Run: `cargo bench --bench rl_env`

use std::path::Path;
use std::time::Instant;

use scalesim::engine::SimTime;
use scalesim::rl::env::action_rng;
use scalesim::rl::{Action, Env, EnvConfig, Randomization, SimFactory, VecEnv};
use scalesim::scenario::{load_scenario, parse_scenario, Fidelity, Scenario};

fn steps_per_second(sc: Scenario, min_steps: u64) -> (f64, u64) {
    let start = Instant::now();
    let steps = random_episodes(sc, 7, min_steps);
    (steps as f64 / start.elapsed().as_secs_f64(), steps)
}

/// Runs whole episodes of a uniformly random agent until `min_steps` steps; returns the steps.
fn random_episodes(sc: Scenario, rng_seed: u64, min_steps: u64) -> u64 {
    let mut env = Env::new(EnvConfig::default(), Box::new(SimFactory::new(vec![sc], Randomization::default())));
    let mut rng = action_rng(rng_seed);
    let mut steps = 0u64;
    let mut seed = 0;
    while steps < min_steps {
        env.reset(seed).unwrap();
        seed += 1;
        let n = env.layout().unwrap().services;
        loop {
            let st = env.step(&Action::random(&mut rng, n)).unwrap();
            steps += 1;
            if st.truncated {
                break;
            }
        }
    }
    steps
}

/// Steps per second (all together) of `n` environments on `n` threads, each running its own
/// random agent with no step in common: the environments' own throughput, without the
/// vectorised wrapper's wait for every environment at every step.
fn independent_steps_per_second(sc: Scenario, n: usize, min_steps_each: u64) -> (f64, u64) {
    let start = Instant::now();
    let steps: u64 = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..n)
            .map(|t| {
                scope.spawn({
                    let sc = sc.clone();
                    move || random_episodes(sc, 7 + t as u64, min_steps_each)
                })
            })
            .collect();
        runs.into_iter().map(|h| h.join().expect("an environment thread")).sum()
    });
    (steps as f64 / start.elapsed().as_secs_f64(), steps)
}

/// Steps per second (all environments together) of `n` environments stepped side by side.
fn vec_steps_per_second(sc: Scenario, n: usize, min_steps: u64) -> (f64, u64) {
    let envs = (0..n)
        .map(|_| Env::new(EnvConfig::default(), Box::new(SimFactory::new(vec![sc.clone()], Randomization::default()))));
    let mut v = VecEnv::new(envs.collect(), 0).parallel(true);
    v.reset().unwrap();
    let services = v.envs[0].layout().unwrap().services;
    let mut rng = action_rng(7);
    let mut steps = 0u64;
    let start = Instant::now();
    while steps < min_steps {
        let actions: Vec<Action> = (0..n).map(|_| Action::random(&mut rng, services)).collect();
        steps += v.step(&actions).unwrap().len() as u64;
    }
    (steps as f64 / start.elapsed().as_secs_f64(), steps)
}

fn main() {
    // `SCALESIM_BENCH_CASES=fluid,one` runs a subset (for profiling one): `fluid`, `ob` (request
    // fidelity on OB), `one` (request fidelity, one service), `scale` (not run by default: OB at
    // request fidelity with 1, 2, 4, ... environments side by side, up to eight per core).
    let cases = std::env::var("SCALESIM_BENCH_CASES").unwrap_or_else(|_| "fluid,ob,one".into());
    let on = |case: &str| cases.split(',').any(|c| c == case);
    let peak = load_scenario(Path::new("scenarios/online_boutique_peak.yaml")).expect("run from the project root");
    if on("fluid") {
        let mut fluid = peak.clone();
        fluid.fidelity = Fidelity::Fluid;
        fluid.metrics.timeline_interval = SimTime::from_secs(15);
        let (sps, n) = steps_per_second(fluid, 60_000);
        println!("fluid, OB peak, 15 s decisions, random agent: {sps:>9.0} steps/s ({n} steps)");
    }
    if on("ob") {
        let (sps, n) = steps_per_second(peak.clone(), 300);
        println!("request, OB peak (400 RPS), 15 s decisions, random agent: {sps:>9.0} steps/s ({n} steps)");
        let threads = std::thread::available_parallelism().map_or(1, |c| c.get());
        let (sps, n) = vec_steps_per_second(peak.clone(), threads, 600);
        println!(
            "request, OB peak (400 RPS), {threads} environments side by side (VecEnv::parallel): {sps:>9.0} steps/s ({n} steps)"
        );
    }
    if on("scale") {
        // Request fidelity on OB with 1, 2, 4, ... environments side by side, up to eight per core:
        // how the vectorised environment scales (`VecEnv::parallel`, one thread per core).
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let mut counts: Vec<usize> =
            std::iter::successors(Some(1), |n| Some(n * 2)).take_while(|&n| n < cores).collect();
        // Then more environments than cores: the cores take them from a shared queue, so a
        // step waits less for the slowest environment.
        counts.extend([cores, 2 * cores, 4 * cores, 8 * cores]);
        for &n in &counts {
            let (sps, steps) = vec_steps_per_second(peak.clone(), n, (150 * n as u64).max(300));
            println!("request, OB peak (400 RPS), {n:>2} environments side by side on {cores} cores: {sps:>7.0} steps/s ({steps} steps)");
        }
        for n in counts.into_iter().filter(|&n| n <= cores) {
            let (sps, steps) = independent_steps_per_second(peak.clone(), n, 300);
            println!("request, OB peak (400 RPS), {n:>2} independent environments, one per thread, on {cores} cores: {sps:>7.0} steps/s ({steps} steps)");
        }
    }
    if on("one") {
        // The same rate into one service (no call graph): what the engine does per request when
        // a request is one call rather than OB's ~6.7.
        let one = parse_scenario(ONE_SERVICE, Path::new("one_service.yaml")).expect("valid scenario");
        let (sps, n) = steps_per_second(one, 1_000);
        println!("request, one service (400 RPS), 15 s decisions, random agent: {sps:>9.0} steps/s ({n} steps)");
    }
}

const ONE_SERVICE: &str = r#"
name: one_service_400rps
slo_ms: 100
horizon_s: 900
cluster:
  max_instances: 20
  skus: [ { name: e2-standard-2, cores: 2, memory_gib: 8, price_per_hour: 0.067 } ]
services:
  - { name: api, replicas: 4, min_replicas: 1, max_replicas: 10, cpu_request_m: 500, cpu_limit_m: 1000,
      concurrency: 4, queue_capacity: 100, scale_up_delay_s: 10, demand: { dist: exponential, mean_ms: 5 } }
request_types: [ { name: r, call: { service: api } } ]
workload:
  stages: [ { duration_s: 900, rps: 400 } ]
"#;
