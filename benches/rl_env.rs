//! Environment speed: decision steps per second with a uniformly random agent on Online Boutique.
//!
//! - fluid fidelity, 15 s decisions, with the timeline interval set to the decision interval
//!   (training needs no per-second rows);
//! - request fidelity at 400 RPS (`peak`), 15 s decisions.
//!
//! Run: `cargo bench --bench rl_env`

use std::path::Path;
use std::time::Instant;

use scalesim::engine::SimTime;
use scalesim::rl::env::action_rng;
use scalesim::rl::{Action, Env, EnvConfig, Randomization, SimFactory};
use scalesim::scenario::{load_scenario, Fidelity, Scenario};

fn steps_per_second(sc: Scenario, min_steps: u64) -> (f64, u64) {
    let mut env = Env::new(EnvConfig::default(), Box::new(SimFactory::new(vec![sc], Randomization::default())));
    let mut rng = action_rng(7);
    let mut steps = 0u64;
    let mut seed = 0;
    let start = Instant::now();
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
    (steps as f64 / start.elapsed().as_secs_f64(), steps)
}

fn main() {
    let peak = load_scenario(Path::new("scenarios/online_boutique_peak.yaml")).expect("run from the project root");
    let mut fluid = peak.clone();
    fluid.fidelity = Fidelity::Fluid;
    fluid.metrics.timeline_interval = SimTime::from_secs(15);
    let (sps, n) = steps_per_second(fluid, 60_000);
    println!("fluid, OB peak, 15 s decisions, random agent: {sps:>9.0} steps/s ({n} steps)");
    if std::env::var("SCALESIM_BENCH_FLUID_ONLY").is_ok() {
        return;
    }
    let (sps, n) = steps_per_second(peak, 300);
    println!("request, OB peak (400 RPS), 15 s decisions, random agent: {sps:>9.0} steps/s ({n} steps)");
}
