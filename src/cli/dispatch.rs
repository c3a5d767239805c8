//! Runs one subcommand: calls the library with the parsed arguments and prints what a user reads.

use std::time::Instant;

use anyhow::{Context, Result};

use super::args::{BackendKind, Cli, Command, RealBackend};
use super::support::{default_out, ensemble_out, load_with_horizon, local_options, seconds_bar, sim_backend_label};
use scalesim::engine::SimTime;
use scalesim::experiment::backend_run::{run_kubernetes_to_dir, run_local_to_dir, validate_to_dir, ValidationPolicies};
use scalesim::experiment::policies::PolicyChoice;
use scalesim::experiment::progress::Progress;
use scalesim::experiment::{run_to_dir, RunOptions};
use scalesim::scenario::load_scenario;

pub(crate) fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Worker { concurrency, parent } => {
            scalesim::backend::local::worker::serve(concurrency, parent).context("worker")?;
            Ok(())
        }
        Command::ValidateBackend {
            scenario,
            policy,
            policy_config,
            against: RealBackend::Local,
            seed,
            out,
            force,
            time_compression,
            prometheus_targets,
            verbose,
            quiet,
        } => {
            let sc = load_scenario(&scenario)?;
            let seed = seed.unwrap_or(sc.seed);
            let policies = ValidationPolicies {
                real: policy.build(policy_config.as_deref(), &sc)?,
                sim: policy.build(policy_config.as_deref(), &sc)?,
                sim_unmodelled: policy.build(policy_config.as_deref(), &sc)?,
            };
            let out = out.unwrap_or_else(|| {
                default_out("validate_", &scenario, &sc, &policy, policy_config.as_deref(), seed, "local")
            });
            let mut opts = local_options(time_compression, verbose, policy_config.as_ref(), prometheus_targets)?;
            opts.force = force;
            let bar = seconds_bar(quiet, sc.horizon, "s");
            let gap = validate_to_dir(&sc, policies, seed, &out, &opts, &mut |which, t, _| {
                bar.set_message(which.to_string());
                bar.set_position(t.whole_secs());
            })
            .with_context(|| format!("validating {} against the local backend", scenario.display()))?;
            bar.finish();
            if !quiet {
                print!("{}", scalesim::metrics::gap::markdown(&gap));
                eprintln!("{}: validation.json, validation.md, replicas_compared.csv, charts", out.display());
            }
            // The folder is written either way (it is the evidence); the exit status carries the
            // verdict, so scripts and CI can act on it.
            if !gap.holds() {
                anyhow::bail!(
                    "the simulator is OUT OF BOUND against the local backend (latency {}, CPU {}, decisions {}); see {}",
                    if gap.latency_within_bound { "ok" } else { "out" },
                    if gap.cpu_within_bound { "ok" } else { "out" },
                    if gap.decisions_within_bound { "ok" } else { "out" },
                    out.join("validation.md").display()
                );
            }
            Ok(())
        }
        Command::Run { no_timeline: true, backend: BackendKind::Local | BackendKind::Kubernetes, .. } => {
            // A real backend's timeline is its only record of what happened: never skipped.
            anyhow::bail!("--no-timeline: only for --backend sim")
        }
        Command::Run { fidelity: Some(_), backend: BackendKind::Local | BackendKind::Kubernetes, .. } => {
            // A real backend serves every request; there is no model to choose.
            anyhow::bail!("--fidelity: only for --backend sim")
        }
        Command::Run {
            scenario,
            policy,
            policy_config,
            seed,
            out,
            force,
            horizon,
            quiet,
            backend: BackendKind::Kubernetes,
            time_compression,
            kube,
            ..
        } => {
            if time_compression.is_some() || seed.is_some() {
                anyhow::bail!("--time-compression and --seed: not for a real cluster (it runs in real time)");
            }
            let sc = load_with_horizon(&scenario, horizon)?;
            let pol = policy.build(policy_config.as_deref(), &sc)?;
            let out = out.unwrap_or_else(|| {
                default_out("", &scenario, &sc, &policy, policy_config.as_deref(), sc.seed, "kubernetes")
            });
            let opts = scalesim::backend::kubernetes::KubeOptions {
                connection: kube.connection()?,
                dry_run: kube.dry_run,
                log: Box::new(std::io::stderr()),
            };
            let bar = seconds_bar(quiet, sc.horizon, "s");
            let config = policy_config.as_ref().map(|p| p.display().to_string());
            let log = run_kubernetes_to_dir(&sc, pol, &out, opts, config.as_deref(), force, &mut |t, _| {
                bar.set_position(t.whole_secs())
            })
            .with_context(|| format!("running {} on the Kubernetes backend", scenario.display()))?;
            bar.finish();
            if !quiet {
                eprintln!("{}: {} scale decisions over {:.0} s", out.display(), log.scale_decisions(), log.wall_s);
            }
            Ok(())
        }
        Command::Run {
            scenario,
            policy,
            policy_config,
            seed,
            out,
            force,
            horizon,
            allow_large,
            log_events,
            no_timeline: _,
            fidelity: _,
            quiet,
            backend: BackendKind::Local,
            time_compression,
            prometheus_targets,
            kube,
        } => {
            kube.refuse_unless_kubernetes()?;
            let sc = load_with_horizon(&scenario, horizon)?;
            let seed = seed.unwrap_or(sc.seed);
            let pol = policy.build(policy_config.as_deref(), &sc)?;
            let out = out
                .unwrap_or_else(|| default_out("", &scenario, &sc, &policy, policy_config.as_deref(), seed, "local"));
            let mut opts = local_options(time_compression, log_events, policy_config.as_ref(), prometheus_targets)?;
            opts.force = force;
            opts.allow_large = allow_large;
            let bar = seconds_bar(quiet, sc.horizon, "scenario-s");
            let log = run_local_to_dir(&sc, pol, seed, &out, &opts, &mut |t, _| bar.set_position(t.whole_secs()))
                .with_context(|| format!("running {} on the local backend", scenario.display()))?;
            bar.finish();
            if !quiet {
                let t = &log.totals;
                eprintln!(
                    "{}: {} arrived, {} completed, {} dropped; mean {:.1} ms, p95 {:.1} ms; {} scale decisions; {:.1} s wall",
                    out.display(),
                    t.arrived,
                    t.completed,
                    t.dropped,
                    log.latency_ms.mean,
                    log.latency_ms.p95,
                    log.scale_decisions(),
                    log.wall_s
                );
            }
            Ok(())
        }
        Command::Run {
            scenario,
            policy,
            policy_config,
            seed,
            out,
            force,
            horizon,
            allow_large,
            log_events,
            no_timeline,
            fidelity,
            quiet,
            backend: BackendKind::Sim,
            time_compression,
            prometheus_targets,
            kube,
        } => {
            if time_compression.is_some() || prometheus_targets.is_some() {
                anyhow::bail!("--time-compression and --prometheus-targets: only for --backend local");
            }
            kube.refuse_unless_kubernetes()?;
            let mut sc = load_with_horizon(&scenario, horizon)?;
            let backend = sim_backend_label(&mut sc, fidelity);
            let seed = seed.unwrap_or(sc.seed);
            let pol = policy.build(policy_config.as_deref(), &sc)?;
            let out = out
                .unwrap_or_else(|| default_out("", &scenario, &sc, &policy, policy_config.as_deref(), seed, &backend));
            let bar = seconds_bar(quiet, sc.horizon, "sim-s");
            let options = RunOptions {
                event_log: if log_events { Some(Box::new(std::io::stderr())) } else { None },
                policy_config: policy_config.as_ref().map(|p| p.display().to_string()),
                force,
                allow_large,
                no_timeline,
            };
            let started = Instant::now();
            let summary = run_to_dir(&sc, pol, seed, &out, options, &mut |p| {
                if p.now.0 % SimTime::MICROS_PER_SEC == 0 {
                    bar.set_position(p.now.whole_secs());
                    if bar.wants_message() {
                        bar.set_message(format!("{} arrived, {} in flight", p.arrived, p.in_flight));
                    }
                }
            })
            .with_context(|| format!("running {}", scenario.display()))?;
            bar.finish();
            if !quiet {
                let r = &summary.requests;
                eprintln!(
                    "{}: {} arrived, {} completed, {} dropped; p95 {:.1} ms; SLO violation {:.2}%; cost {:.4}; {:.2} s wall",
                    out.display(),
                    r.arrived,
                    r.completed,
                    r.dropped,
                    summary.latency_ms.p95,
                    summary.slo_violation_pct,
                    summary.cost,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Env {
            scenarios,
            episodes,
            seed,
            interval,
            fidelity,
            rate_scale,
            start_offset,
            random_shapes,
            log,
        } => {
            use scalesim::rl::{Action, Env, EnvConfig, Randomization, SimFactory};
            if !(interval.is_finite() && interval >= scalesim::rl::agent::config::MIN_INTERVAL_S) {
                anyhow::bail!("--interval: must be a number of seconds >= 0.001, got {interval}");
            }
            if episodes == 0 {
                anyhow::bail!("--episodes: must be at least 1");
            }
            let fidelity = fidelity.map(|f| f.fidelity());
            let mut list = Vec::new();
            for f in &scenarios {
                let mut sc = load_scenario(f)?;
                if let Some(fi) = fidelity {
                    sc.fidelity = fi;
                }
                list.push(sc);
            }
            let randomization = Randomization {
                rate_scale: rate_scale.unwrap_or((1.0, 1.0)),
                start_offset_s: start_offset.unwrap_or((0.0, 0.0)),
                random_shapes,
                ..Default::default()
            };
            let cfg = EnvConfig { decision_interval: SimTime::from_secs_f64(interval), ..Default::default() };
            let mut env = Env::new(cfg, Box::new(SimFactory::new(list, randomization)));
            if let Some(path) = &log {
                let f = std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
                env.log_episodes_to(Box::new(std::io::BufWriter::new(f)))?;
            }
            let mut rng = scalesim::rl::env::action_rng(seed);
            let started = Instant::now();
            let mut total_steps = 0u64;
            for ep in 0..episodes {
                env.reset(seed + ep)?;
                let n = env.layout().map_or(1, |l| l.services);
                let (mut reward, mut steps) = (0.0, 0u64);
                loop {
                    let st = env.step(&Action::random(&mut rng, n))?;
                    reward += st.reward;
                    steps += 1;
                    if st.truncated || st.terminated {
                        break;
                    }
                }
                total_steps += steps;
                // Numbered from 1, as in the episode log's `episode` column.
                println!(
                    "episode {} ({}): {steps} steps, total reward {reward:.3}",
                    ep + 1,
                    env.episode_label().unwrap_or("?")
                );
            }
            drop(env); // flushes the log
            let secs = started.elapsed().as_secs_f64();
            println!("{total_steps} steps in {secs:.2} s ({:.0} steps/s)", total_steps as f64 / secs.max(1e-9));
            Ok(())
        }
        Command::Sweep { file, jobs, out, resume, shard, quiet } => {
            use scalesim::experiment::sweep::{run_sweep, Sweep, SweepOptions};
            let sweep = Sweep::load(&file)?;
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            if jobs == 0 {
                anyhow::bail!("--jobs: must be at least 1");
            }
            let dir = match resume {
                Some(d) => d,
                None => {
                    let mut name = sweep.folder_name();
                    if let Some(s) = shard {
                        name.push_str(&format!("_shard{}of{}", s.k, s.n));
                    }
                    out.join(name)
                }
            };
            let bar = Progress::new(quiet, 0, "runs");
            let started = Instant::now();
            let mine = std::sync::atomic::AtomicUsize::new(0);
            let result = run_sweep(&sweep, &dir, &SweepOptions { jobs, shard }, &|done, total| {
                mine.store(total, std::sync::atomic::Ordering::Relaxed);
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish();
            result?;
            if !quiet {
                let runs = mine.into_inner();
                let of =
                    if shard.is_some() { format!(" (of {} in the grid)", sweep.grid.len()) } else { String::new() };
                eprintln!(
                    "{}: {runs} runs{of}, {:.1} s wall with {jobs} jobs",
                    dir.display(),
                    started.elapsed().as_secs_f64()
                );
            }
            println!("{}", dir.display());
            Ok(())
        }
        Command::SweepMerge { shards, out } => {
            if out.exists() {
                anyhow::bail!("{}: already exists; name a new folder", out.display());
            }
            scalesim::experiment::sweep::merge_shards(&shards, &out)?;
            println!("{}", out.display());
            Ok(())
        }
        Command::Report { dir } => {
            let files = scalesim::report::report(&dir)?;
            println!("{}: {} files; open {}", dir.display(), files.len(), dir.join("index.html").display());
            Ok(())
        }
        Command::Pareto { root, out } => {
            let out = out.unwrap_or_else(|| root.clone());
            let rows = scalesim::experiment::pareto::write(&root, &out)?;
            for r in &rows {
                println!(
                    "{:<28} {:<12} n={:<3} cost {:.3}±{:.3}  SLO {:.2}±{:.2}%  front {:.2}%  gap {:+.0}%",
                    r.scenario,
                    r.policy,
                    r.n,
                    r.cost_mean,
                    r.cost_ci95,
                    r.slo_mean,
                    r.slo_ci95,
                    r.front_slo_at_cost,
                    r.slo_gap_pct
                );
            }
            println!("{}", out.join("pareto.csv").display());
            Ok(())
        }
        Command::Compare { tables, against, out, by_family, comparisons } => {
            use scalesim::experiment::compare;
            let cells = compare::read_tables(&tables)?;
            let rows =
                compare::compare(&cells, &against, by_family, comparisons as usize).map_err(anyhow::Error::msg)?;
            if let Some(out) = &out {
                std::fs::write(out, compare::csv_text(&rows)).with_context(|| format!("writing {}", out.display()))?;
            }
            print!("{}", compare::table_text(&rows));
            if let Some(out) = &out {
                println!("{}", out.display());
            }
            Ok(())
        }
        Command::Trainings { root, against, out, per_training, unpaired, comparisons } => {
            use scalesim::experiment::trainings;
            let runs = trainings::collect(&root)?;
            let means = trainings::per_training(&runs).map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
            let rows =
                trainings::compare(&means, &against, comparisons as usize, unpaired).map_err(anyhow::Error::msg)?;
            for (path, text) in
                [(&per_training, trainings::trainings_csv(&means)), (&out, trainings::comparison_csv(&rows))]
            {
                if let Some(path) = path {
                    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
                }
            }
            print!("{}", trainings::table_text(&rows));
            Ok(())
        }
        Command::Train { agent, scenarios, steps, seed, out, resume, quiet } => {
            use scalesim::experiment::train::{train, TrainRequest};
            let req = TrainRequest { agent_config: agent, scenarios, steps, seed, out, resume };
            let bar = Progress::new(quiet, steps, "steps");
            let started = Instant::now();
            let done = train(&req, &bar)?;
            let ck = done.dir.join("checkpoint.ckpt");
            if !quiet {
                let secs = started.elapsed().as_secs_f64();
                if done.trained == 0 {
                    eprintln!(
                        "{}: already trained {} steps (--steps {steps}); nothing to do",
                        done.dir.display(),
                        done.total
                    );
                } else {
                    let reward = done
                        .last_reward
                        .map_or("no episode finished yet".into(), |r| format!("mean episode reward {r:.3}"));
                    eprintln!(
                        "{}: {} steps in {secs:.1} s ({:.0} steps/s; whole rollouts), {} in all; {reward}",
                        done.dir.display(),
                        done.trained,
                        done.trained as f64 / secs.max(1e-9),
                        done.total
                    );
                }
            }
            println!("{}", ck.display());
            Ok(())
        }
        Command::Eval {
            checkpoints,
            scenario,
            seed,
            out,
            force,
            no_timeline,
            fidelity,
            quiet,
            fast_floor_every_s,
            fast_floor_reads_s,
            fast_floor_panic_ratio,
            fast_floor_leaves_window,
        } => {
            let mut sc = load_scenario(&scenario)?;
            let backend = sim_backend_label(&mut sc, fidelity);
            let seed = seed.unwrap_or(sc.seed);
            let mut policy = scalesim::rl::agent::policy::AgentPolicy::load_ensemble(&checkpoints, &sc)?;
            let mut deployed = String::new();
            if let Some(every) = fast_floor_every_s {
                let fast = scalesim::rl::agent::policy::DeployedFastFloor {
                    every_s: every,
                    reads_s: fast_floor_reads_s,
                    panic_ratio: fast_floor_panic_ratio,
                    leaves_window: fast_floor_leaves_window,
                };
                policy.deploy_fast_floor(fast).map_err(anyhow::Error::msg)?;
                deployed = format!(" + {fast}");
            }
            let out = out.unwrap_or_else(|| match checkpoints.as_slice() {
                [one] => default_out("", &scenario, &sc, &PolicyChoice::Agent(one.clone()), None, seed, &backend),
                members => ensemble_out(&scenario, &sc, members, seed, &backend),
            });
            let named: Vec<String> = checkpoints.iter().map(|c| c.display().to_string()).collect();
            let options = RunOptions {
                event_log: None,
                policy_config: Some(format!("{}{deployed}", named.join(","))),
                force,
                allow_large: false,
                no_timeline,
            };
            let bar = seconds_bar(quiet, sc.horizon, "sim-s");
            let s = run_to_dir(&sc, Box::new(policy), seed, &out, options, &mut |p| {
                if p.now.0 % SimTime::MICROS_PER_SEC == 0 {
                    bar.set_position(p.now.whole_secs());
                }
            })?;
            bar.finish();
            if !quiet {
                eprintln!("{}: SLO violation {:.2}%, cost {:.4}", out.display(), s.slo_violation_pct, s.cost);
            }
            Ok(())
        }
        Command::ExportLocust { scenario, think_time, out } => {
            if !(think_time.is_finite() && think_time > 0.0) {
                anyhow::bail!("--think-time: must be > 0, got {think_time}");
            }
            let sc = load_scenario(&scenario)?;
            let py = scalesim::scenario::locust::locustfile(&sc, think_time);
            match out {
                Some(p) => std::fs::write(&p, py).with_context(|| format!("{}: cannot write", p.display()))?,
                None => print!("{py}"),
            }
            Ok(())
        }
        Command::Validate { file } => {
            let sc = load_scenario(&file)?;
            println!(
                "{}: ok: scenario `{}`, {} services, {} request types, horizon {} s",
                file.display(),
                sc.name,
                sc.app.services.len(),
                sc.app.request_types.len(),
                sc.horizon.as_secs_f64()
            );
            Ok(())
        }
    }
}
