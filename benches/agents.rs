//! Training speed of the agents: environment steps per second of PPO on Online Boutique at fluid
//! fidelity (peak shape, 15 s decisions, 4 environments, the bundled hyper-parameters), updates
//! included, as `scalesim train` runs it: dfdx's matrix products on one thread, the update on two
//! (the MLP's actor and critic side by side; a graph network's minibatch in two halves), with the
//! allocator kept from returning memory to the kernel; GAT-PPO also with the whole action
//! (node-type and quota heads), and with the shared reward in place of its credit per service
//! (`gat_shared`: what the per-service split, values and advantages cost).
//!
//! Each agent trains three times (fresh agent, same seed); the median and the best are printed,
//! since a shared 2-core VM's speed drifts between runs.
//!
//! Run: `cargo bench --bench agents`

use std::path::Path;
use std::time::Instant;

use scalesim::engine::SimTime;
use scalesim::rl::agent::config::AgentConfig;
use scalesim::rl::agent::ppo::{train, Agent};
use scalesim::rl::{Env, Randomization, SimFactory};
use scalesim::scenario::{load_scenario, Fidelity};

fn main() {
    // As `scalesim train` does: dfdx would otherwise spread each small matrix product over rayon's
    // threads, which costs more than it saves at these sizes.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
    scalesim::rl::agent::allocator::keep_freed_memory();
    let mut sc = load_scenario(Path::new("scenarios/online_boutique_peak.yaml")).expect("run from the project root");
    sc.fidelity = Fidelity::Fluid;
    sc.metrics.timeline_interval = SimTime::from_secs(15);
    sc.metrics.scrape_interval = SimTime::from_secs(15);
    // `SCALESIM_BENCH_ENCODERS=mlp,gat` runs a subset (for profiling one); `gat_full_action` is
    // GAT-PPO with the node-type and quota heads on, `gat_shared` with the shared reward.
    let all = ["mlp", "gcn", "gat", "gat_shared", "gat_full_action"];
    let only = std::env::var("SCALESIM_BENCH_ENCODERS").unwrap_or_else(|_| all.join(","));
    for enc in all.into_iter().filter(|e| only.split(',').any(|o| o == *e)) {
        let file = match enc {
            "gat_full_action" => "configs/agents/gat_ppo_full_action.yaml".to_string(),
            "gat_shared" => "configs/agents/gat_ppo.yaml".to_string(),
            _ => format!("configs/agents/{enc}_ppo.yaml"),
        };
        let mut cfg = AgentConfig::load(Path::new(&file)).unwrap();
        if enc == "gat_shared" {
            cfg.credit = scalesim::rl::agent::config::Credit::Shared;
        }
        let steps = 12_000;
        let mut rates: Vec<f64> = (0..3)
            .map(|_| {
                let mut envs: Vec<Env> = (0..cfg.envs)
                    .map(|_| {
                        Env::new(
                            cfg.env_config(),
                            Box::new(SimFactory::new(vec![sc.clone()], Randomization::default())),
                        )
                    })
                    .collect();
                envs[0].reset(0).unwrap();
                let flat = envs[0].layout().unwrap().flat_len();
                let mut agent = Agent::new(cfg.clone(), flat, 1);
                let start = Instant::now();
                train(&mut agent, &mut envs, 1, steps, &mut |_, _| Ok(())).unwrap();
                steps as f64 / start.elapsed().as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "{enc}-ppo on OB (fluid): {steps} steps x 3: median {:.0} steps/s, best {:.0} (runs {:.0} / {:.0} / {:.0})",
            rates[1], rates[2], rates[0], rates[1], rates[2]
        );
    }
}
