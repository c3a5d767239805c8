//! Training speed of the agents: environment steps per second of PPO on Online Boutique at fluid
//! fidelity (peak shape, 15 s decisions, 4 environments, the bundled hyper-parameters), one
//! rayon thread, updates included; GAT-PPO also with the whole action (node-type and quota heads).
//!
//! Run: `cargo bench --bench agents`

use std::path::Path;
use std::time::Instant;

use scalesim::engine::SimTime;
use scalesim::rl::agent::ppo::{train, Agent, AgentConfig};
use scalesim::rl::{Env, Randomization, SimFactory};
use scalesim::scenario::{load_scenario, Fidelity};

fn main() {
    let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
    let mut sc = load_scenario(Path::new("scenarios/online_boutique_peak.yaml")).expect("run from the project root");
    sc.fidelity = Fidelity::Fluid;
    sc.metrics.timeline_interval = SimTime::from_secs(15);
    sc.metrics.scrape_interval = SimTime::from_secs(15);
    // `SCALESIM_BENCH_ENCODERS=mlp,gat` runs a subset (for profiling one).
    // `gat_full_action` is GAT-PPO with the node-type and quota heads on.
    let only = std::env::var("SCALESIM_BENCH_ENCODERS").unwrap_or_else(|_| "mlp,gcn,gat,gat_full_action".into());
    for enc in ["mlp", "gcn", "gat", "gat_full_action"].into_iter().filter(|e| only.split(',').any(|o| o == *e)) {
        let file = match enc {
            "gat_full_action" => "configs/agents/gat_ppo_full_action.yaml".to_string(),
            _ => format!("configs/agents/{enc}_ppo.yaml"),
        };
        let cfg = AgentConfig::load(Path::new(&file)).unwrap();
        let mut envs: Vec<Env> = (0..cfg.envs)
            .map(|_| Env::new(cfg.env_config(), Box::new(SimFactory::new(vec![sc.clone()], Randomization::default()))))
            .collect();
        envs[0].reset(0).unwrap();
        let flat = envs[0].layout().unwrap().flat_len();
        let mut agent = Agent::new(cfg, flat, 1);
        let steps = 12_000;
        let start = Instant::now();
        train(&mut agent, &mut envs, 1, steps, &mut |_, _| Ok(())).unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!("{enc}-ppo on OB (fluid): {steps} steps in {secs:.2} s = {:.0} steps/s", steps as f64 / secs);
    }
}
