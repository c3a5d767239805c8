//! Prints one RL-environment episode as the Rust side steps it, for the Python binding's
//! cross-check (`python/tests`): the same scenario, episode seed and actions must give the same
//! observations and rewards from Python.
//!
//! Usage: `env_trajectory SCENARIO EPISODE_SEED single|per_service|agent:CONFIG ACTIONS`, where ACTIONS is a
//! `;`-separated list of steps, each a `,`-separated list of action integers (the Python
//! encoding: one `service * 5 + delta index`, or one delta index per service). Prints one line per
//! step, `reward<TAB>flat observation`, every number in Rust's shortest round-trip form; the first
//! line is the reset's observation with an empty reward. Fluid fidelity, 15 s decisions, the
//! weighted reward, node-type and quota heads off: `scalesim.make_env`'s defaults. With
//! `agent:CONFIG` (an agent config file), the environment `scalesim train --agent CONFIG` trains
//! in instead (`make_env(..., agent_config=CONFIG)`); its action is per service or single as the
//! config says.
//!
//! `env_trajectory SCENARIO EPISODE_SEED single --bench STEPS` instead times STEPS steps of the
//! single action cycle `0, 1, ..., services*5 - 1` (episodes reset as they end) and prints
//! steps per second: the Rust side of `python/bench.py`.

use std::path::{Path, PathBuf};

use scalesim::rl::agent::config::{ActionMode, AgentConfig};
use scalesim::rl::{Action, ActionConfig, Env, EnvConfig, Randomization, ServiceAction, SimFactory, DELTAS};
use scalesim::scenario::{load_scenario, Fidelity};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: env_trajectory SCENARIO EPISODE_SEED single|per_service|agent:CONFIG ACTIONS");
        std::process::exit(2);
    }
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{e}");
        std::process::exit(1)
    };
    let seed: u64 = args[2].parse().expect("an integer seed");
    let (mut env, per_service) = match args[3].strip_prefix("agent:") {
        Some(file) => {
            use scalesim::experiment::train::{load_scenarios, training_env};
            let agent = AgentConfig::load(Path::new(file)).unwrap_or_else(|e| fail(&e));
            let files = [PathBuf::from(&args[1])];
            let scenarios = load_scenarios(&files, agent.fidelity.scenario(), &agent).unwrap_or_else(|e| fail(&e));
            (training_env(&agent, &scenarios), agent.action == ActionMode::PerService)
        }
        None => {
            let mut sc = load_scenario(Path::new(&args[1])).unwrap_or_else(|e| fail(&e));
            sc.fidelity = Fidelity::Fluid;
            let config = EnvConfig {
                action: ActionConfig { node_type_head: false, quota_head: false, ..Default::default() },
                ..Default::default()
            };
            let env = Env::new(config, Box::new(SimFactory::new(vec![sc], Randomization::default())));
            (env, args[3] == "per_service")
        }
    };
    let obs = env.reset(seed).expect("reset");
    if args[4].starts_with("--bench") {
        let steps: u64 = args[4].trim_start_matches("--bench").trim().parse().unwrap_or(100_000);
        let n = obs.services.len() / scalesim::rl::observation::SERVICE_FEATURES;
        let started = std::time::Instant::now();
        let mut episode = seed;
        for k in 0..steps {
            let a = (k % (n as u64 * 5)) as usize;
            let action = Action::One { service: a / 5, node_type: 0, delta: DELTAS[a % 5], quota: 0.0 };
            let st = env.step(&action).expect("step");
            if st.truncated || st.terminated {
                episode += 1;
                env.reset(episode).expect("reset");
            }
        }
        println!("{:.0}", steps as f64 / started.elapsed().as_secs_f64());
        return;
    }
    let line = |o: &scalesim::rl::Observation| o.flat().iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(",");
    println!("\t{}", line(&obs));
    for step in args[4].split(';').filter(|s| !s.is_empty()) {
        let a: Vec<i64> = step.split(',').map(|x| x.parse().expect("an integer action")).collect();
        let action = if per_service {
            Action::All(
                a.iter().map(|&d| ServiceAction { node_type: 0, delta: DELTAS[d as usize], quota: 0.0 }).collect(),
            )
        } else {
            Action::One { service: (a[0] / 5) as usize, node_type: 0, delta: DELTAS[(a[0] % 5) as usize], quota: 0.0 }
        };
        let st = env.step(&action).expect("step");
        println!("{:?}\t{}", st.reward, line(&st.obs));
        if st.truncated || st.terminated {
            break;
        }
    }
}
