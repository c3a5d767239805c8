//! RL agents: learning beats random on a small bottleneck chain (fluid fidelity), checkpoints
//! round-trip and refuse corruption, training is deterministic, agents run as policies.

use std::path::{Path, PathBuf};

use scalesim::engine::SimTime;
use scalesim::rl::agent::checkpoint::Checkpoint;
use scalesim::rl::agent::config::AgentConfig;
use scalesim::rl::agent::ppo::{evaluate, team_greedy, train, Agent};
use scalesim::rl::{Env, Randomization, SimFactory};
use scalesim::scenario::{Fidelity, Scenario};

/// s1 -> s2 -> s3, where s2's calls cost 4x the others: at 300 RPS s2 needs 2 instances
/// (250 visits/s each) and the others 1 (1,000/s each).
fn bottleneck() -> Scenario {
    let mut sc = crate::scenario(
        r#"
name: bottleneck
slo_ms: 100
horizon_s: 600
cluster:
  max_instances: 20
  skus: [ { name: s, cores: 4, memory_gib: 8, price_per_hour: 0.1 } ]
services:
  - { name: s1, replicas: 1, min_replicas: 1, max_replicas: 6, cpu_request_m: 1000, concurrency: 2, queue_capacity: 50, scale_up_delay_s: 10, demand: { dist: exponential, mean_ms: 1 } }
  - { name: s2, replicas: 1, min_replicas: 1, max_replicas: 6, cpu_request_m: 1000, concurrency: 2, queue_capacity: 50, scale_up_delay_s: 10, demand: { dist: exponential, mean_ms: 4 } }
  - { name: s3, replicas: 1, min_replicas: 1, max_replicas: 6, cpu_request_m: 1000, concurrency: 2, queue_capacity: 50, scale_up_delay_s: 10, demand: { dist: exponential, mean_ms: 1 } }
request_types:
  - { name: r, call: { service: s1, calls: [ { service: s2, calls: [ { service: s3 } ] } ] } }
workload:
  stages: [ { duration_s: 600, rps: 300 } ]
"#,
    );
    sc.fidelity = Fidelity::Fluid;
    sc.metrics.timeline_interval = SimTime::from_secs(15);
    sc.metrics.scrape_interval = SimTime::from_secs(15);
    sc
}

fn config_of(encoder: &str) -> AgentConfig {
    AgentConfig::load(&crate::root().join(format!("configs/agents/{encoder}_ppo.yaml"))).unwrap()
}

fn config() -> AgentConfig {
    config_of("mlp")
}

fn envs(n: usize) -> Vec<Env> {
    envs_splitting(n, None)
}

/// [`envs`] whose steps split their reward among the services with `service_credit`'s share
/// (`None`: not split).
fn envs_splitting(n: usize, service_credit: Option<f64>) -> Vec<Env> {
    (0..n)
        .map(|_| {
            let cfg = scalesim::rl::EnvConfig { service_credit, ..config().env_config() };
            Env::new(cfg, Box::new(SimFactory::new(vec![bottleneck()], Randomization::default())))
        })
        .collect()
}

/// The GAT config with the given credit.
fn gat_with(credit: scalesim::rl::agent::config::Credit) -> AgentConfig {
    let mut cfg = config_of("gat");
    cfg.credit = credit;
    cfg.validate().unwrap();
    cfg
}

fn trained_with(cfg: AgentConfig, seed: u64, steps: u64) -> Agent {
    let mut e = envs_splitting(cfg.envs, cfg.env_config().service_credit);
    e[0].reset(0).unwrap();
    let flat = e[0].layout().unwrap().flat_len();
    let mut agent = Agent::new(cfg, flat, seed);
    train(&mut agent, &mut e, seed, steps, &mut |_, _| Ok(())).unwrap();
    agent
}

fn trained(seed: u64, steps: u64) -> Agent {
    trained_with(config(), seed, steps)
}

#[test]
fn ppo_beats_random_and_scales_the_bottleneck() {
    learns("mlp", 48_000);
}

#[test]
fn gcn_ppo_learns() {
    learns("gcn", 48_000);
}

#[test]
fn gat_ppo_learns() {
    // The one-service GAT: it finds the bottleneck (the assertion of `learns_with`).
    let cfg = AgentConfig::load(&crate::root().join("configs/agents/gat_ppo_single.yaml")).unwrap();
    learns_with(cfg, 48_000);
}

/// The per-service GAT (`configs/agents/gat_ppo.yaml`) beats random on the bottleneck chain by a
/// quarter of random's reward. (It does not single out the bottleneck at this budget: its first
/// decision, before any metric differs between the three nodes, scales all three, and it holds.)
#[test]
fn per_service_gat_ppo_beats_random() {
    let agent = trained_with(config_of("gat"), 3, 24_000);
    let mut env = envs(1).pop().unwrap();
    let learned = evaluate(Some(&agent), &mut env, 100, 5).unwrap();
    let random = evaluate(None, &mut env, 100, 5).unwrap();
    assert!(learned > random + 0.25 * random.abs(), "trained {learned:.2} vs random {random:.2}");
}

/// Median over three training seeds of the greedy policy's mean episode reward on the bottleneck.
fn median_reward(cfg: &AgentConfig, steps: u64) -> f64 {
    let mut env = envs(1).pop().unwrap();
    let mut r: Vec<f64> = (1..=3)
        .map(|seed| evaluate(Some(&trained_with(cfg.clone(), seed, steps)), &mut env, 100, 5).unwrap())
        .collect();
    r.sort_by(f64::total_cmp);
    eprintln!("{:?} credit: rewards by seed, sorted: {r:?}", cfg.credit);
    r[1]
}

/// With credit per service, the per-service GAT learns more at the same budget than with the
/// shared reward: s2's decisions are judged by s2's own drops and replicas, not by a reward shared
/// with two services that should hold.
#[test]
fn per_service_credit_learns_more_than_a_shared_reward() {
    use scalesim::rl::agent::config::Credit;
    let (shared, own) =
        (median_reward(&gat_with(Credit::Shared), 24_000), median_reward(&gat_with(Credit::PerService), 24_000));
    assert!(own > shared + 0.1 * shared.abs(), "credit per service {own:.2} vs shared {shared:.2}");
}

/// Every head on: the agent also picks the node type of a scale-up and resizes CPU limits. The
/// random baseline moves replicas only, as in the other learning tests.
#[test]
fn ppo_with_node_type_and_quota_heads_learns() {
    let mut cfg = config_of("mlp");
    cfg.node_type_head = true;
    cfg.quota_head = true;
    learns_with(cfg, 24_000);
}

fn learns(encoder: &str, steps: u64) {
    learns_with(config_of(encoder), steps)
}

/// Three training seeds: the median must beat random by a quarter of random's reward, and the
/// best must single out the bottleneck. One seed of three can collapse to never scaling s2 at
/// 24,000 steps: once the fluid model's saturated queues became finite M/M/n/K ones, the MLP's
/// seed 3 ended at -219 against random's -129 (seeds 1, 2, 4 and 5: -22 to -27), and two of the
/// one-service GAT's three seeds failed; at 48,000 steps every median learns.
fn learns_with(cfg: AgentConfig, steps: u64) {
    let encoder = cfg.encoder;
    let mut env = envs(1).pop().unwrap();
    let mut runs: Vec<(f64, Agent)> = (1..=3)
        .map(|seed| {
            let agent = trained_with(cfg.clone(), seed, steps);
            (evaluate(Some(&agent), &mut env, 100, 5).unwrap(), agent)
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    eprintln!("{encoder}: trained rewards by seed, sorted: {:?}", runs.iter().map(|r| r.0).collect::<Vec<_>>());
    let learned = runs[1].0;
    let agent = runs.pop().expect("three runs").1;
    let random = evaluate(None, &mut env, 100, 5).unwrap();
    eprintln!("{encoder}: mean episode reward: trained {learned:.2} (median of 3 seeds), random {random:.2}");
    assert!(learned > random + 0.25 * random.abs(), "{encoder}: trained {learned:.2} vs random {random:.2}");
    // Greedy rollout of the best seed: s2 (the bottleneck) ends with more replicas than s1, s3.
    let mut obs = env.reset(7).unwrap();
    loop {
        let mask = env.mask().unwrap().clone();
        let st = env.step(&team_greedy(std::slice::from_ref(&agent), &obs, &mask)).unwrap();
        obs = st.obs;
        if st.truncated {
            break;
        }
    }
    let active = |s: usize| obs.service(s)[0];
    assert!(
        active(1) > active(0) && active(1) > active(2),
        "{encoder}: s1 {} s2 {} s3 {}",
        active(0),
        active(1),
        active(2)
    );
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let full = AgentConfig::load(&crate::root().join("configs/agents/gat_ppo_full_action.yaml")).unwrap();
    let shared_gat = gat_with(scalesim::rl::agent::config::Credit::Shared);
    for cfg in [config_of("mlp"), config_of("gat"), full, shared_gat] {
        let name = format!("{} heads {}/{}", cfg.encoder, cfg.node_type_head, cfg.quota_head);
        let a = trained_with(cfg.clone(), 5, 1024).checkpoint();
        let b = trained_with(cfg.clone(), 5, 1024).checkpoint();
        assert_eq!(a, b, "{name}");
        let c = trained_with(cfg, 6, 1024).checkpoint();
        assert_ne!(a.actor, c.actor, "{name}");
    }
    // A request-fidelity configuration steps its environments side by side (here on the same
    // fluid environments): the networks, optimiser and normaliser come out the same.
    let mut side_by_side = config();
    side_by_side.fidelity = scalesim::rl::agent::config::TrainingFidelity::Request;
    let (a, b) = (trained_with(config(), 5, 1024).checkpoint(), trained_with(side_by_side, 5, 1024).checkpoint());
    assert_eq!((a.actor, a.critic, a.actor_opt, a.norm), (b.actor, b.critic, b.actor_opt, b.norm));
}

/// A per-service GAT agent with return normalisation trains, keeps its returns' statistics in
/// its checkpoint (read back exactly), and acts on every service at once.
#[test]
fn per_service_agents_with_normalised_returns_round_trip() {
    let mut cfg = config_of("gat");
    cfg.action = scalesim::rl::agent::config::ActionMode::PerService;
    cfg.normalize_returns = true;
    cfg.node_type_head = false;
    cfg.quota_head = false;
    let agent = trained_with(cfg, 3, 512);
    assert!(agent.returns.count >= 512.0 && agent.returns.std() > 0.0, "{:?}", agent.returns);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ps.ckpt");
    agent.checkpoint().save(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back.returns, agent.returns);
    assert_eq!(back, agent.checkpoint());
    let mut e = envs(1);
    let obs = e[0].reset(4).unwrap();
    let mask = e[0].mask().unwrap().clone();
    match team_greedy(std::slice::from_ref(&agent), &obs, &mask) {
        scalesim::rl::Action::All(v) => assert_eq!(v.len(), mask.deltas.len()),
        other => panic!("a per-service agent acts on every service: {other:?}"),
    }
}

#[test]
fn checkpoints_round_trip_and_refuse_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = trained(1, 512);
    let path = tmp.path().join("a.ckpt");
    agent.checkpoint().save(&path).unwrap();
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back, agent.checkpoint());
    assert_eq!(Agent::from_checkpoint(back, 9).checkpoint(), agent.checkpoint());
    let bytes = std::fs::read(&path).unwrap();
    for (name, data, must) in [
        ("truncated", bytes[..100].to_vec(), "truncated"),
        (
            "flipped",
            {
                let mut b = bytes.clone();
                let k = b.len() / 2;
                b[k] ^= 0xff;
                b
            },
            "corrupt",
        ),
        ("text", b"not a checkpoint at all, just some text".to_vec(), "not a scalesim checkpoint"),
        (
            "version",
            {
                let mut b = bytes.clone();
                b[8] = 9;
                b
            },
            "format version 9",
        ),
    ] {
        let p = tmp.path().join(format!("{name}.ckpt"));
        std::fs::write(&p, data).unwrap();
        let e = Checkpoint::load(&p).unwrap_err().to_string();
        assert!(e.contains(&format!("{name}.ckpt")) && e.contains(must), "{name}: {e}");
    }
}

/// `scalesim train` with `cfg` on one scenario; the run must succeed.
fn cli_train(cfg: &Path, scenario: &Path, steps: u64, seed: u64, out: &Path) {
    let o = std::process::Command::new(crate::bin())
        .args(["train", "--agent", cfg.to_str().unwrap(), "--scenario", scenario.to_str().unwrap()])
        .args(["--steps", &steps.to_string(), "--seed", &seed.to_string(), "--out", out.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn cli_train_eval_and_agent_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tr");
    let bin = crate::bin();
    let chain = crate::root().join("scenarios/chain_5.yaml");
    let cfg = crate::root().join("configs/agents/mlp_ppo.yaml");
    cli_train(&cfg, &chain, 600, 2, &out);
    let log = std::fs::read_to_string(out.join("training_log.csv")).unwrap();
    assert!(log.starts_with("step,mean_episode_reward") && log.lines().count() >= 3, "{log}");
    let ck = out.join("checkpoint.ckpt");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let e = run(&[
        "eval",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--scenario",
        chain.to_str().unwrap(),
        "--seed",
        "3",
        "--out",
        tmp.path().join("ev").to_str().unwrap(),
    ]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    assert!(tmp.path().join("ev/summary.json").is_file());
    let policy = format!("agent:{}", ck.display());
    let r = run(&[
        "run",
        chain.to_str().unwrap(),
        "--policy",
        &policy,
        "--seed",
        "3",
        "--out",
        tmp.path().join("ru").to_str().unwrap(),
        "-q",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // The agent's decisions are in actions.csv.
    let actions = std::fs::read_to_string(tmp.path().join("ru/actions.csv")).unwrap();
    assert!(actions.lines().skip(1).all(|l| l.contains("agent:")) && actions.lines().count() > 5);
    // A checkpoint for another application is refused with a clear error, no panic.
    let ob = crate::root().join("scenarios/online_boutique_rush.yaml");
    let bad =
        run(&["run", ob.to_str().unwrap(), "--policy", &policy, "--out", tmp.path().join("bad").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("checkpoint.ckpt") && !err.contains("panicked"), "{err}");
}

#[test]
fn cli_eval_runs_an_ensemble_of_checkpoints() {
    // `eval --checkpoint A --checkpoint B`: each service's delta is the one the members'
    // probabilities favour together (ensemble_picks_by_hand has the arithmetic). A checkpoint
    // with itself decides as it does alone; the members' order does not matter; a member of
    // another config (here another learning rate), or of the one-service action, is refused
    // naming its file.
    let tmp = tempfile::tempdir().unwrap();
    let chain = crate::root().join("scenarios/chain_5.yaml");
    let agents = crate::root().join("configs/agents");
    let gat = std::fs::read_to_string(agents.join("gat_ppo.yaml")).unwrap();
    let other = tmp.path().join("other.yaml");
    std::fs::write(&other, gat.replace("learning_rate: 0.001\n", "learning_rate: 0.002\n")).unwrap();
    for (name, cfg, seed) in
        [("a", agents.join("gat_ppo.yaml"), 2), ("b", agents.join("gat_ppo.yaml"), 3), ("g", other, 2)]
    {
        cli_train(&cfg, &chain, 512, seed, &tmp.path().join(name));
    }
    cli_train(&agents.join("gat_ppo_single.yaml"), &chain, 256, 2, &tmp.path().join("single"));
    let ck = |name: &str| tmp.path().join(name).join("checkpoint.ckpt").display().to_string();
    let eval = |members: &[&str], out: &str| {
        let mut args = vec!["eval".to_string()];
        for m in members {
            args.extend(["--checkpoint".to_string(), ck(m)]);
        }
        let out = tmp.path().join(out);
        args.extend(
            ["--scenario", chain.to_str().unwrap(), "--seed", "3", "-q", "--out", out.to_str().unwrap()]
                .map(String::from),
        );
        let o = std::process::Command::new(crate::bin()).args(&args).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned(), out)
    };
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    let (code, err, alone) = eval(&["a"], "alone");
    assert_eq!(code, Some(0), "{err}");
    let (code, err, twice) = eval(&["a", "a"], "twice");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(read(&alone, "actions.csv"), read(&twice, "actions.csv"));
    assert!(read(&twice, "actions.csv").lines().count() > 5);
    let (code, err, ab) = eval(&["a", "b"], "ab");
    assert_eq!(code, Some(0), "{err}");
    let (code, err, ba) = eval(&["b", "a"], "ba");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(read(&ab, "actions.csv"), read(&ba, "actions.csv"));
    assert!(
        read(&ab, "experiment_info.json").contains(&format!("{},{}", ck("a"), ck("b"))),
        "the run names its members"
    );
    for (members, file, must) in [(["a", "g"], "g", "agent config differs"), (["a", "single"], "single", "per service")]
    {
        let (code, err, out) = eval(&members, "refused");
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(&ck(file)) && err.contains(must) && !err.contains("panicked"), "{err}");
        assert!(!out.join("summary.json").exists());
    }
}

#[test]
fn two_agent_llm_team_trains_runs_and_reports() {
    // One agent per pool (prompt, token), trained together; the team runs as a policy and its run
    // folder gets the usual outputs and charts.
    let tmp = tempfile::tempdir().unwrap();
    let bin = crate::bin();
    let sc = crate::root().join("scenarios/llm_azure_code.yaml");
    let cfg = crate::root().join("configs/agents/llm_two_agent_ppo.yaml");
    let out = tmp.path().join("team");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    cli_train(&cfg, &sc, 512, 4, &out);
    assert!(out.join("checkpoint.ckpt").is_file() && out.join("checkpoint_member1.ckpt").is_file());
    let policy = format!("agent:{}", out.join("checkpoint.ckpt").display());
    let r = run(&[
        "run",
        sc.to_str().unwrap(),
        "--policy",
        &policy,
        "--seed",
        "2",
        "--out",
        tmp.path().join("r").to_str().unwrap(),
        "-q",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let actions = std::fs::read_to_string(tmp.path().join("r/actions.csv")).unwrap();
    assert!(actions.contains(",prompt,") && actions.contains(",token,"), "both pools decided");
    let rep = run(&["report", tmp.path().join("r").to_str().unwrap()]);
    assert!(rep.status.success() && tmp.path().join("r/charts/replicas.png").is_file());
    // The team needs a scenario with as many services as agents.
    let chain = crate::root().join("scenarios/chain_5.yaml");
    let bad =
        run(&["run", chain.to_str().unwrap(), "--policy", &policy, "--out", tmp.path().join("bad").to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("team of 2"));
}

#[test]
fn cli_full_action_agent_picks_types_and_resizes_limits() {
    // The original design's action end to end: train GAT-PPO with the node-type and quota heads on
    // the two-type chain, then run it as a policy: its decisions carry a type for scale-ups and a
    // CPU-limit resize, both applied and written to actions.csv.
    let tmp = tempfile::tempdir().unwrap();
    let bin = crate::bin();
    let sc = crate::root().join("scenarios/chain_5_two_types.yaml");
    let cfg = crate::root().join("configs/agents/gat_ppo_full_action.yaml");
    let out = tmp.path().join("tr");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    cli_train(&cfg, &sc, 1024, 1, &out);
    let policy = format!("agent:{}", out.join("checkpoint.ckpt").display());
    let r =
        run(&["run", sc.to_str().unwrap(), "--policy", &policy, "--out", tmp.path().join("r").to_str().unwrap(), "-q"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let actions = std::fs::read_to_string(tmp.path().join("r/actions.csv")).unwrap();
    let rows: Vec<&str> = actions.lines().skip(1).collect();
    assert!(rows.len() > 5, "{actions}");
    // Every decision resizes (a tanh-Gaussian's mode is never exactly 0); the limit moves by at
    // most quota_step_cores = 100m per decision.
    for row in &rows {
        let cut = row.split("; cpu limit ").nth(1).unwrap_or_else(|| panic!("no resize in {row}"));
        let ms: Vec<i64> = cut.split(['m', ' ', '-', '>', '"', ',']).filter_map(|t| t.parse().ok()).take(2).collect();
        assert!(ms.len() == 2 && (ms[1] - ms[0]).abs() <= 100, "{row}");
    }
    for row in rows.iter().filter(|r| r.contains(" +1 ") || r.contains(" +2 ")) {
        assert!(row.contains(" on e2-standard-"), "a scale-up names its server type: {row}");
    }
}

/// Scale-downs that follow a scale-up of the same service within `window_s`, from an actions.csv.
fn quick_reversals(actions_csv: &str, window_s: f64) -> (usize, usize) {
    let mut last_up: std::collections::HashMap<String, f64> = Default::default();
    let (mut ups, mut quick) = (0, 0);
    for line in actions_csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (t, service, from, to): (f64, &str, u32, u32) =
            (f[0].parse().unwrap(), f[1], f[2].parse().unwrap(), f[3].parse().unwrap());
        if to > from {
            ups += 1;
            last_up.insert(service.to_string(), t);
        } else if to < from && last_up.get(service).is_some_and(|&u| t < u + window_s) {
            quick += 1;
        }
    }
    (ups, quick)
}

/// `scalesim run SCENARIO --policy agent:CHECKPOINT --seed 1` into `out`; its `actions.csv`.
fn cli_run_agent(scenario: &Path, checkpoint: &Path, out: &Path) -> String {
    let policy = format!("agent:{}", checkpoint.display());
    let o = std::process::Command::new(crate::bin())
        .args(["run", scenario.to_str().unwrap(), "--policy", &policy, "--seed", "1", "-q", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out.join("actions.csv")).unwrap()
}

#[test]
fn a_deployed_agent_keeps_the_scale_down_stabilisation_it_trained_with() {
    // A briefly trained agent (near random) with and without a 60 s window: run as a policy, the
    // windowed one never scales a service down within 60 s of scaling it up; the other one does.
    // Whether a near-random greedy policy reverses at all depends on its initial weights, so the
    // first training seed (of 1-5) whose unwindowed agent reverses quickly is the one compared.
    let tmp = tempfile::tempdir().unwrap();
    let chain = crate::root().join("scenarios/chain_5.yaml");
    let base = std::fs::read_to_string(crate::root().join("configs/agents/mlp_ppo.yaml")).unwrap();
    let trained_run = |window: u32, seed: u64| {
        let cfg = tmp.path().join(format!("w{window}_s{seed}.yaml"));
        std::fs::write(&cfg, format!("{base}\ndownscale_stabilization_s: {window}\n")).unwrap();
        let out = tmp.path().join(format!("tr{window}_s{seed}"));
        cli_train(&cfg, &chain, 300, seed, &out);
        let run = tmp.path().join(format!("run{window}_s{seed}"));
        quick_reversals(&cli_run_agent(&chain, &out.join("checkpoint.ckpt"), &run), 60.0)
    };
    let seed = (1..=5).find(|&seed| trained_run(0, seed).1 > 0);
    let seed = seed.expect("without a window, an agent of seeds 1-5 reverses within 60 s");
    let (ups60, quick60) = trained_run(60, seed);
    assert!(
        ups60 > 0 && quick60 == 0,
        "with a 60 s window (seed {seed}): {ups60} scale-ups, {quick60} quick reversals"
    );
}

/// `configs/agents/gat_ppo.yaml`'s text without its lines that set one of `keys`.
fn gat_config_without(keys: &[&str]) -> String {
    let base = std::fs::read_to_string(crate::root().join("configs/agents/gat_ppo.yaml")).unwrap();
    let set = |l: &str| keys.iter().any(|k| l.strip_prefix(k).is_some_and(|rest| rest.starts_with(':')));
    base.lines().filter(|l| !set(l)).map(|l| format!("{l}\n")).collect()
}

/// `actions.csv` of the GAT config, without its floor, ceiling and renewal at the bound, and with
/// `extra` lines (each replacing the config's own line for its key), trained 256 steps on
/// `chain_5` (seed 1) and run there as a policy.
fn deployed_gat_actions(dir: &Path, extra: &str) -> String {
    deployed_gat_actions_on(dir, extra, "scenarios/chain_5.yaml")
}

/// As [`deployed_gat_actions`], run on `scenario` (a GAT runs on any graph).
fn deployed_gat_actions_on(dir: &Path, extra: &str, scenario: &str) -> String {
    let chain = crate::root().join("scenarios/chain_5.yaml");
    let cfg = dir.join("agent.yaml");
    let mut keys: Vec<&str> = extra.lines().filter_map(|l| l.split_once(':').map(|(k, _)| k)).collect();
    keys.extend([
        "hpa_floor",
        "floor_counts_refused",
        "floor_holds_peak",
        "hpa_ceiling",
        "ceiling_release_step",
        "renew_window_at_bound",
    ]);
    std::fs::write(&cfg, format!("{}\n{extra}\n", gat_config_without(&keys))).unwrap();
    let out = dir.join("tr");
    cli_train(&cfg, &chain, 256, 1, &out);
    cli_run_agent(&crate::root().join(scenario), &out.join("checkpoint.ckpt"), &dir.join("run"))
}

/// `anchor: hpa`, deployed: every decision moves a service to the HPA's count plus the delta the
/// agent chose (its reason names both), and some of those HPA counts are not the current count.
#[test]
fn a_deployed_agent_on_the_hpa_anchor_moves_from_the_hpa_count() {
    let tmp = tempfile::tempdir().unwrap();
    // Without the config's floor, which would raise some counts above the anchor plus the delta.
    let actions = deployed_gat_actions(tmp.path(), "anchor: hpa");
    let (mut rows, mut off_current) = (0, 0);
    for line in actions.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (from, desired, reason) = (f[2].parse::<i64>().unwrap(), f[4].parse::<i64>().unwrap(), f[5]);
        let (delta, anchor) = reason
            .strip_prefix("agent: ")
            .and_then(|r| r.split_once(" from the HPA's "))
            .map(|(d, a)| (d.rsplit(' ').next().unwrap().parse::<i64>().unwrap(), a.parse::<i64>().unwrap()))
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(desired, anchor + delta, "{line}");
        rows += 1;
        // Where the HPA's count is not the current one, the delta moved from the HPA's.
        off_current += (anchor != from) as usize;
    }
    assert!(rows > 0 && off_current > 0, "{rows} decisions, {off_current} from an HPA count other than the current");
}

/// The decisions in `actions` (`actions.csv`) whose reason says `marker` and the count after it
/// (the reason is quoted: it holds a comma), as `(from, desired)`; each desired count is that
/// named count.
fn bound_decisions(actions: &str, marker: &str) -> Vec<(i64, i64)> {
    let mut out = vec![];
    for line in actions.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (from, desired) = (f[2].parse::<i64>().unwrap(), f[4].parse::<i64>().unwrap());
        if let Some((_, rest)) = line.split_once(marker) {
            assert_eq!(desired, rest.split(['"', ' ']).next().unwrap().parse::<i64>().unwrap(), "{line}");
            out.push((from, desired));
        }
    }
    out
}

/// `hpa_floor`, deployed: a decision that would leave a service below the HPA's count at the
/// floor's target is raised to it (the reason names the floor, and the desired count is it).
#[test]
fn a_deployed_agent_is_raised_to_its_hpa_floor() {
    let tmp = tempfile::tempdir().unwrap();
    // A low target, so that the floor rises above what a barely trained agent keeps.
    let actions = deployed_gat_actions(tmp.path(), "hpa_floor: 0.3");
    let raised = bound_decisions(&actions, ", raised to the HPA floor ");
    assert!(!raised.is_empty(), "no decision was raised to the floor:\n{actions}");
    assert!(raised.iter().all(|(from, desired)| desired > from), "{raised:?}");
}

/// `hpa_ceiling`, deployed: once a service's window has passed, a decision that would keep it
/// above the HPA's count at the ceiling's target is lowered to it (the reason names the
/// ceiling, and the desired count is it).
#[test]
fn a_deployed_agent_is_lowered_to_its_hpa_ceiling() {
    let tmp = tempfile::tempdir().unwrap();
    // A lean target and a short window, so that a barely trained agent's spare replicas are
    // above the ceiling within the run.
    let actions = deployed_gat_actions(tmp.path(), "hpa_ceiling: 0.9\ndownscale_stabilization_s: 30");
    let lowered = bound_decisions(&actions, ", lowered to the HPA ceiling ");
    assert!(!lowered.is_empty(), "no decision was lowered to the ceiling:\n{actions}");
    assert!(lowered.iter().all(|(from, desired)| desired < from), "{lowered:?}");
}

/// `ceiling_release_step`, deployed: every decision lowered to the ceiling goes down by exactly
/// the step (the HPA's count at 90% is far below a barely trained agent's spare replicas) or to
/// the ceiling, never by more, and says so.
#[test]
fn a_deployed_agent_releases_at_most_its_step_to_the_ceiling() {
    let tmp = tempfile::tempdir().unwrap();
    let actions =
        deployed_gat_actions(tmp.path(), "hpa_ceiling: 0.9\ndownscale_stabilization_s: 30\nceiling_release_step: 1");
    let lowered = bound_decisions(&actions, ", lowered to the HPA ceiling ");
    assert!(!lowered.is_empty(), "no decision was lowered to the ceiling:\n{actions}");
    assert!(lowered.iter().all(|(from, desired)| *desired == from - 1), "{lowered:?}");
    assert!(actions.lines().filter(|l| l.contains("lowered to")).all(|l| l.contains("(at most 1 a decision)")));
}

/// `hpa_levels`, deployed: every decision names the level it chose, one of the config's five,
/// and the levels move services both ways (as the HPA at each target would).
#[test]
fn a_deployed_agent_on_hpa_levels_names_its_level() {
    let tmp = tempfile::tempdir().unwrap();
    let actions = deployed_gat_actions(tmp.path(), "hpa_levels: [1.0, 0.8, 0.6, 0.4, 0.2]");
    let (mut ups, mut downs) = (0, 0);
    for line in actions.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (from, to) = (f[2].parse::<i64>().unwrap(), f[3].parse::<i64>().unwrap());
        let level = f[5].split_once(" the HPA's count at ").map(|(_, l)| l.trim_end_matches("% CPU"));
        assert!(matches!(level, Some("100" | "80" | "60" | "40" | "20")), "{line}");
        ups += (to > from) as usize;
        downs += (to < from) as usize;
    }
    assert!(ups > 0 && downs > 0, "{ups} scale-ups, {downs} scale-downs:\n{actions}");
}

/// A graph agent's training batches one graph shape: scenarios of two shapes are refused by
/// name (they used to panic in the tensor library).
#[test]
fn graph_training_refuses_scenarios_of_two_shapes() {
    let t = tempfile::tempdir().unwrap();
    let sc = |f: &str| crate::root().join("scenarios").join(f).display().to_string();
    let o = std::process::Command::new(crate::bin())
        .args(["train", "--agent"])
        .arg(crate::root().join("configs/agents/gat_ppo.yaml"))
        .args(["--scenario", &sc("chain_5.yaml"), "--scenario", &sc("chain_5_two_types.yaml")])
        .args(["--steps", "256", "-q", "--out"])
        .arg(t.path().join("tr"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("chain_5_two_types.yaml") && err.contains("2 server types"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `configs/agents/mlp_ppo.yaml` written to `dir/NAME.yaml` with its `fidelity:` line replaced
/// by `lines`.
fn mlp_variant(dir: &Path, name: &str, lines: &str) -> PathBuf {
    let base = std::fs::read_to_string(crate::root().join("configs/agents/mlp_ppo.yaml")).unwrap();
    let kept: String = base.lines().filter(|l| !l.starts_with("fidelity:")).map(|l| format!("{l}\n")).collect();
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, format!("{kept}{lines}\n")).unwrap();
    p
}

/// A training log's rows without their `stage` column, and the stages.
struct LogRows {
    rows: Vec<String>,
    stages: Vec<String>,
}

/// The rows of `training_log.csv` of a 512-step training (seed 3) of `cfg` on `scenario`, into
/// `dir/NAME`.
fn training_log_rows(dir: &Path, name: &str, cfg: &Path, scenario: &Path) -> LogRows {
    let out = dir.join(name);
    cli_train(cfg, scenario, 512, 3, &out);
    let text = std::fs::read_to_string(out.join("training_log.csv")).unwrap();
    let stage = text.lines().next().unwrap().split(',').position(|c| c == "stage").expect("a stage column");
    let (mut rows, mut stages) = (vec![], vec![]);
    for line in text.lines().skip(1) {
        let mut cells: Vec<&str> = line.split(',').collect();
        stages.push(cells.remove(stage).to_string());
        rows.push(cells.join(","));
    }
    LogRows { rows, stages }
}

/// The training logs (two rollouts each) of a fine-tune's test: `plain` trains as before the
/// fine-tune, `tuned` as the fine-tune does throughout, `all` fine-tunes every step and `half`
/// the last half. A fine-tune of every step is the tuned training; half of one is the plain
/// training until the switch and not after it. Each row names its stage: `stage` for a
/// fine-tune's.
fn assert_fine_tune_logs(plain: &LogRows, tuned: &LogRows, all: &LogRows, half: &LogRows, stage: &str) {
    assert_eq!((plain.rows.len(), half.rows.len()), (2, 2), "two rollouts of 64 x 4 steps");
    assert_ne!(plain.rows, tuned.rows, "the two trainings must differ for this test to mean anything");
    assert_eq!(all.rows, tuned.rows, "a fine-tune of every step is the tuned training");
    assert_eq!(half.rows[0], plain.rows[0], "before the switch: the plain training");
    assert_ne!(half.rows[1], plain.rows[1], "after the switch: the fine-tune");
    let stages = |l: &LogRows| l.stages.join(" ");
    assert_eq!((stages(plain), stages(tuned)), ("train train".to_string(), "train train".to_string()));
    assert_eq!((stages(all), stages(half)), (format!("{stage} {stage}"), format!("train {stage}")));
}

/// `request_fine_tune_steps`: a training's last steps run at request fidelity. Over all of its
/// steps it logs exactly what a `fidelity: request` training logs; over the last half, its first
/// half logs what the fluid training logs and its second half does not.
#[test]
fn request_fine_tune_runs_the_last_steps_at_request_fidelity() {
    let tmp = tempfile::tempdir().unwrap();
    let variant = |name: &str, lines: &str| mlp_variant(tmp.path(), name, lines);
    let chain = crate::root().join("scenarios/chain_5.yaml");
    let log = |name: &str, cfg: &Path| training_log_rows(tmp.path(), name, cfg, &chain);
    let fluid = log("fluid", &variant("fluid", "fidelity: fluid"));
    let request = log("request", &variant("request", "fidelity: request"));
    let all = log("all", &variant("all", "fidelity: fluid\nrequest_fine_tune_steps: 512"));
    let half = log("half", &variant("half", "fidelity: fluid\nrequest_fine_tune_steps: 256"));
    assert_fine_tune_logs(&fluid, &request, &all, &half, "request_fine_tune");
    // Without --quiet the switch is announced.
    let o = std::process::Command::new(crate::bin())
        .args(["train", "--agent", variant("say", "fidelity: fluid\nrequest_fine_tune_steps: 256").to_str().unwrap()])
        .args([
            "--scenario",
            chain.to_str().unwrap(),
            "--steps",
            "512",
            "--out",
            tmp.path().join("say").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("steps 256 to 512: fine-tuning at request fidelity"), "{err}");
    // A request-fidelity training has nothing to fine-tune: refused, naming the field.
    let bad = variant("bad", "fidelity: request\nrequest_fine_tune_steps: 100");
    let o = std::process::Command::new(crate::bin())
        .args(["train", "--agent", bad.to_str().unwrap(), "--scenario", chain.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("request_fine_tune_steps") && err.contains("fluid"), "{err}");
}

/// `tick_fine_tune_steps`: a training's last steps run the fluid model at
/// `fine_tune_fluid_tick_s`. A fine-tune of every step is a training at that tick; over the last
/// half, the first half is the plain training and the second is not.
#[test]
fn tick_fine_tune_runs_the_last_steps_at_the_finer_tick() {
    let tmp = tempfile::tempdir().unwrap();
    let variant = |name: &str, lines: &str| mlp_variant(tmp.path(), name, &format!("fidelity: fluid\n{lines}"));
    // Bursts of a few seconds, so that a 1 s tick sees what a 15 s one averages away.
    let scenario = crate::root().join("scenarios/online_boutique_azure_trace.yaml");
    let log = |name: &str, cfg: &Path| training_log_rows(tmp.path(), name, cfg, &scenario);
    let plain = log("plain", &variant("plain", ""));
    let fine = log("fine", &variant("fine", "fluid_tick_s: 1"));
    let all = log("all", &variant("all", "fine_tune_fluid_tick_s: 1\ntick_fine_tune_steps: 512"));
    let half = log("half", &variant("half", "fine_tune_fluid_tick_s: 1\ntick_fine_tune_steps: 256"));
    assert_fine_tune_logs(&plain, &fine, &all, &half, "tick_fine_tune");
}

/// `training_log.csv` (format 5) carries the gradient norms and each head's entropy: the MLP's
/// critic has its own norm, a graph agent's critic shares its network (empty cell); heads that are
/// off leave their column empty; the heads' parts add up to the entropy.
#[test]
fn training_log_has_gradient_norms_and_entropy_by_head() {
    let tmp = tempfile::tempdir().unwrap();
    let root = crate::root();
    for (cfg, scenario, critic, extra_heads) in [
        ("configs/agents/mlp_ppo.yaml", "scenarios/chain_5.yaml", true, false),
        ("configs/agents/gat_ppo_full_action.yaml", "scenarios/chain_5_two_types.yaml", false, true),
    ] {
        let out = tmp.path().join(cfg.replace('/', "_"));
        cli_train(&root.join(cfg), &root.join(scenario), 512, 1, &out);
        let text = std::fs::read_to_string(out.join("training_log.csv")).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|c| *c == name).unwrap_or_else(|| panic!("{cfg}: no {name}"));
        for line in lines {
            let row: Vec<&str> = line.split(',').collect();
            let num = |name: &str| row[col(name)].parse::<f64>().ok();
            assert_eq!((row[col("stage")], row[col("format_version")]), ("train", "5"));
            assert_eq!(num("epochs"), Some(4.0), "{cfg}: every epoch runs without target_kl: {line}");
            let norm = num("grad_norm").unwrap();
            assert!(norm.is_finite() && norm > 0.0, "{cfg}: {line}");
            assert_eq!(num("critic_grad_norm").is_some(), critic, "{cfg}: {line}");
            assert_eq!(num("entropy_node_type").is_some(), extra_heads, "{cfg}: {line}");
            assert_eq!(num("entropy_quota").is_some(), extra_heads, "{cfg}: {line}");
            let parts: f64 =
                ["entropy_replicas", "entropy_node_type", "entropy_quota"].iter().filter_map(|c| num(c)).sum();
            let total = num("entropy").unwrap();
            assert!((parts - total).abs() < 1e-4, "{cfg}: parts {parts} vs entropy {total} in {line}");
        }
    }
}

/// Schedules, per-minibatch advantages and a target KL from the CLI: a training's last update runs
/// at the schedule's end (the checkpoint's optimiser holds `learning_rate_end`), a tight target KL
/// stops updates after fewer epochs (the log's `epochs` column), and the options change what is
/// learned.
#[test]
fn ppo_options_train_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(crate::root().join("configs/agents/mlp_ppo.yaml")).unwrap();
    let chain = crate::root().join("scenarios/chain_5.yaml");
    let train_with = |name: &str, lines: &str| {
        let cfg = tmp.path().join(format!("{name}.yaml"));
        std::fs::write(&cfg, format!("{base}{lines}\n")).unwrap();
        let out = tmp.path().join(name);
        cli_train(&cfg, &chain, 512, 2, &out);
        Checkpoint::load(&out.join("checkpoint.ckpt")).unwrap()
    };
    let plain = train_with("plain", "");
    let scheduled = train_with("scheduled", "learning_rate_end: 0.00001\nentropy_coef_end: 0.0");
    let per_mb = train_with("per_mb", "advantage_normalization: minibatch");
    let bounded = train_with("bounded", "target_kl: 0.0001");
    let log = std::fs::read_to_string(tmp.path().join("bounded/training_log.csv")).unwrap();
    let header: Vec<&str> = log.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|c| *c == "epochs").unwrap();
    let epochs: Vec<f64> = log.lines().skip(1).map(|l| l.split(',').nth(at).unwrap().parse().unwrap()).collect();
    assert!(epochs.iter().all(|&e| (1.0..=4.0).contains(&e)), "{epochs:?}");
    assert!(epochs.iter().any(|&e| e < 4.0), "the bound stops some update early: {epochs:?}");
    assert_ne!(plain.actor, bounded.actor, "the target KL changes what is learned");
    assert!((scheduled.actor_opt.lr - 0.00001).abs() < 1e-15, "last update at the end: {}", scheduled.actor_opt.lr);
    assert!((scheduled.critic_opt.lr - 0.00001).abs() < 1e-15);
    assert_eq!(plain.actor_opt.lr, plain.config.learning_rate, "no schedule: constant");
    assert_ne!(plain.actor, scheduled.actor, "the schedules change what is learned");
    assert_ne!(plain.actor, per_mb.actor, "per-minibatch advantages change what is learned");
}

/// Zero-shot across graphs (issue 20): the GAT config trained on `chain_5` alone (five services)
/// for 100,000 decisions, run on Online Boutique peak (eleven it never saw), beats static and the
/// uniform random agent there on SLO violation, and costs less than the random agent. Seed 1:
/// 2.10% at $0.363, against static's 99.75% and random's 44.59% at $0.587 (measured with the
/// config's held floor, 50% ceiling and renewal at the bound; $0.398 without the renewal). Most of the SLO is the config's HPA floor (4,096 decisions give 2.10% too, at
/// $0.52); training shows in the cost.
#[test]
fn a_gat_trained_on_a_chain_beats_static_and_random_on_online_boutique() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = crate::root().join("scenarios/chain_5.yaml");
    cli_train(&crate::root().join("configs/agents/gat_ppo.yaml"), &chain, 100_000, 1, &tmp.path().join("tr"));
    let peak = crate::root().join("scenarios/online_boutique_peak.yaml");
    let run = |policy: &str, name: &str| -> (f64, f64) {
        let out = tmp.path().join(name);
        let o = std::process::Command::new(crate::bin())
            .args(["run", peak.to_str().unwrap(), "--policy", policy, "--seed", "1", "-q", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{policy}: {}", String::from_utf8_lossy(&o.stderr));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        (s["slo_violation_pct"].as_f64().unwrap(), s["cost"].as_f64().unwrap())
    };
    let ck = tmp.path().join("tr/checkpoint.ckpt");
    let (agent, agent_cost) = run(&format!("agent:{}", ck.display()), "agent");
    let (fixed, _) = run("static", "static");
    let (random, random_cost) = run("random", "random");
    assert!(
        agent < fixed && agent < random && agent_cost < random_cost,
        "agent {agent}% at ${agent_cost}, static {fixed}%, random {random}% at ${random_cost}"
    );
    assert!(agent < 5.0 && random > 20.0, "agent {agent}%, random {random}%");
}

/// `renew_window_at_bound`, deployed on rush (its load falls at 480 s, leaving counts above the
/// ceiling): a +1 at a service's bound holds its count, says so, and no decision lowers that
/// service within 30 s (the window) of it. (This barely trained agent asks for +1 at nearly every
/// decision, so the window's restart itself, which only a later hold would show, is the
/// environment test's `a_plus_one_at_the_bound_renews_the_window_when_asked`: the deployed agent
/// and the environment share the mask and the stabiliser.)
#[test]
fn a_deployed_agent_renews_its_window_at_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let actions = deployed_gat_actions_on(
        tmp.path(),
        "renew_window_at_bound: true\nhpa_ceiling: 0.9\ndownscale_stabilization_s: 30",
        "scenarios/online_boutique_rush.yaml",
    );
    let rows: Vec<(f64, String, i64, i64, bool)> = actions
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let (time, service) = (f[0].parse::<f64>().unwrap(), f[1].to_string());
            let (from, to) = (f[2].parse::<i64>().unwrap(), f[3].parse::<i64>().unwrap());
            (time, service, from, to, line.contains("held at its bound (scale-down window renewed)"))
        })
        .collect();
    let renewals: Vec<&(f64, String, i64, i64, bool)> = rows.iter().filter(|r| r.4).collect();
    assert!(!renewals.is_empty(), "no renewal:\n{actions}");
    for (t, service, from, to, _) in &renewals {
        assert_eq!(from, to, "a renewal moved {service} at {t}");
        let lowered = rows.iter().find(|r| &r.1 == service && r.0 > *t && r.0 < t + 30.0 && r.3 < r.2);
        assert!(lowered.is_none(), "{service} renewed at {t} s, lowered at {:?}", lowered.map(|r| r.0));
    }
}

/// `eval --fast-floor-every-s`: a fast floor deployed beside an agent trained without one. Its
/// raises fall between the agent's 15 s decisions, the run names it (and whether its raises leave
/// the scale-down window), and it is refused as an agent config's would be, naming the flag: a
/// period that does not divide the decision interval, or an agent config without `hpa_floor` (the
/// one-service GAT).
#[test]
fn cli_eval_deploys_a_fast_floor_beside_a_trained_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let chain = crate::root().join("scenarios/chain_5.yaml");
    let agents = crate::root().join("configs/agents");
    cli_train(&agents.join("gat_ppo.yaml"), &chain, 512, 2, &tmp.path().join("gat"));
    cli_train(&agents.join("gat_ppo_single.yaml"), &chain, 256, 2, &tmp.path().join("single"));
    let crowds = crate::root().join("scenarios/validation/ob_flash_crowds.yaml");
    let eval = |name: &str, flags: &[&str]| {
        let out = tmp.path().join(format!("{name}{}", flags.len()));
        let ck = tmp.path().join(name).join("checkpoint.ckpt");
        let o = std::process::Command::new(crate::bin())
            .args(["eval", "--checkpoint", ck.to_str().unwrap(), "--scenario", crowds.to_str().unwrap()])
            .args(["--seed", "1", "-q", "--no-timeline", "--out", out.to_str().unwrap()])
            .args(flags)
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned(), out)
    };
    let (code, err, out) = eval("gat", &["--fast-floor-every-s", "3", "--fast-floor-panic-ratio", "2"]);
    assert_eq!(code, Some(0), "{err}");
    let info = std::fs::read_to_string(out.join("experiment_info.json")).unwrap();
    assert!(info.contains("fast floor every 3 s, at 2x"), "{info}");
    let actions = std::fs::read_to_string(out.join("actions.csv")).unwrap();
    let mut fast = 0;
    for row in csv::Reader::from_reader(actions.as_bytes()).records() {
        let f = row.unwrap();
        let t: f64 = f[0].parse().unwrap();
        let at_decision = (t / 15.0 - (t / 15.0).round()).abs() < 1e-9;
        let raise = f[5].contains("raised to the fast floor");
        assert!(raise != at_decision, "{}", f.iter().collect::<Vec<_>>().join("|"));
        fast += raise as u32;
    }
    assert!(fast > 0, "no fast raise on the flash crowds");
    let (_, _, plain) = eval("gat", &[]);
    assert!(!std::fs::read_to_string(plain.join("actions.csv")).unwrap().contains("fast floor"));
    let leaves = ["--fast-floor-every-s", "3", "--fast-floor-panic-ratio", "2", "--fast-floor-leaves-window"];
    let (code, err, out) = eval("gat", &leaves);
    assert_eq!(code, Some(0), "{err}");
    let info = std::fs::read_to_string(out.join("experiment_info.json")).unwrap();
    assert!(info.contains("fast floor every 3 s, at 2x, leaving the window"), "{info}");
    // Without a fast floor to leave it, the flag is refused before anything runs (clap's usage
    // error), naming the flag it needs.
    let (code, err, out) = eval("gat", &["--fast-floor-leaves-window"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--fast-floor-every-s") && !out.join("summary.json").exists(), "{err}");
    for (name, flags, must) in [
        ("gat", &["--fast-floor-every-s", "4"][..], "--fast-floor-every-s"),
        ("single", &["--fast-floor-every-s", "3"][..], "hpa_floor"),
    ] {
        let (code, err, out) = eval(name, flags);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(must) && !err.contains("panicked"), "{err}");
        assert!(!out.join("summary.json").exists());
    }
}
