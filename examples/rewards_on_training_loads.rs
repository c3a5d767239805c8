//! Scores a policy on an agent config's own training loads, in the reward it trains on: is a
//! trained agent better than the HPA where it learned? (It tells an optimisation failure, behind
//! the HPA on its own loads, from a failure to generalise, ahead there and behind elsewhere.)
//!
//! Usage: `rewards_on_training_loads AGENT_CONFIG POLICY EPISODES SCENARIO...`, where POLICY is
//! `hpaNN` (the Kubernetes HPA formula at NN% CPU: every service follows its recommendation, the
//! `anchor: hpa` action with every delta 0) or a checkpoint file (acting greedily). The episodes
//! are the training's (the config's random shapes, bursts and fluid tick around the SCENARIO
//! files), seeds 1,000,000 onwards, so every policy meets the same loads. Prints the mean per
//! episode of the reward, of the steps' SLO-violation shares, and of the replica-hours.
//!
//! `cargo run --release --example rewards_on_training_loads -- configs/agents/gat_ppo.yaml hpa60 40 \
//!   scenarios/online_boutique_offpeak.yaml scenarios/online_boutique_peak.yaml scenarios/online_boutique_fluctuating.yaml`

use std::path::{Path, PathBuf};

use scalesim::experiment::train::{load_scenarios, training_randomization};
use scalesim::rl::action::Anchor;
use scalesim::rl::agent::checkpoint::Checkpoint;
use scalesim::rl::agent::config::AgentConfig;
use scalesim::rl::agent::ppo::{team_greedy, Agent};
use scalesim::rl::observation::SERVICE_FEATURES;
use scalesim::rl::{Action, Env, ServiceAction, SimFactory};

fn fail(message: String) -> ! {
    eprintln!("rewards_on_training_loads: {message}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        fail("usage: rewards_on_training_loads AGENT_CONFIG POLICY EPISODES SCENARIO...".into());
    }
    let config = AgentConfig::load(Path::new(&args[0])).unwrap_or_else(|e| fail(e.to_string()));
    let episodes: u64 = args[2].parse().unwrap_or_else(|_| fail(format!("EPISODES: `{}` is not a count", args[2])));
    let files: Vec<PathBuf> = args[3..].iter().map(PathBuf::from).collect();
    let scenarios = load_scenarios(&files, config.fidelity.scenario(), &config).unwrap_or_else(|e| fail(e.to_string()));
    let mut env_config = config.env_config();
    let agent = match args[1].strip_prefix("hpa") {
        Some(target) => {
            let pct: f64 = target.parse().unwrap_or_else(|_| fail(format!("POLICY: `{}` is not hpaNN", args[1])));
            env_config.action.anchor = Anchor::Hpa;
            env_config.hpa_target = pct / 100.0;
            None
        }
        None => {
            let ck = Checkpoint::load(Path::new(&args[1])).unwrap_or_else(|e| fail(e.to_string()));
            Some(Agent::from_checkpoint(ck, 0))
        }
    };
    let factory = SimFactory::new(scenarios, training_randomization(&config));
    let mut env = Env::new(env_config, Box::new(factory));
    let (mut reward, mut slo, mut replica_hours) = (0.0, 0.0, 0.0);
    for episode in 0..episodes {
        let mut obs = env.reset(1_000_000 + episode).unwrap_or_else(|e| fail(e.to_string()));
        loop {
            let action = match &agent {
                Some(a) => team_greedy(std::slice::from_ref(a), &obs, env.mask().expect("reset")),
                None => {
                    let hold = ServiceAction { node_type: 0, delta: 0, quota: 0.0 };
                    Action::All(vec![hold; obs.services.len() / SERVICE_FEATURES])
                }
            };
            let step = env.step(&action).unwrap_or_else(|e| fail(e.to_string()));
            reward += step.reward;
            slo += step.info.terms.slo_violation;
            replica_hours += step.info.terms.replica_hours;
            if step.truncated || step.terminated {
                break;
            }
            obs = step.obs;
        }
    }
    let n = episodes.max(1) as f64;
    println!(
        "{}: reward {:.2}, SLO-violation shares {:.3}, replica-hours {:.3} (means of {episodes} episodes)",
        args[1],
        reward / n,
        slo / n,
        replica_hours / n
    );
}
