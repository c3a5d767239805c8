//! The training loop: rollouts of a team of agents over N vectorised environments (sampled
//! decisions, rewards, episode ends), then one update per agent, and a log row per update. The
//! losses are `update.rs`'s.

use super::estimates::{add_present, gae};
// The parent's imports: the networks, the decisions, dfdx.
use super::*;

/// One row of `training_log.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogRow {
    pub step: u64,
    /// The mean reward of the last 10 episodes finished (NaN before the first).
    pub mean_episode_reward: f64,
    /// Episodes finished since this call to [`train_team`] began: a resumed training, and a
    /// request fine-tune's first rollout, count from 0 again (their episodes are new ones).
    pub episodes: u64,
    pub stats: UpdateStats,
}

pub const TRAINING_LOG_HEADER: &str =
    "step,mean_episode_reward,episodes,policy_loss,value_loss,entropy,approx_kl,clip_fraction,epochs,explained_variance,grad_norm,critic_grad_norm,entropy_replicas,entropy_node_type,entropy_quota,stage,format_version";

/// Trains `agent` on `envs` for `steps` environment steps (over all environments), calling
/// `on_update` after every rollout and update.
pub fn train(
    agent: &mut Agent,
    envs: &mut [Env],
    seed: u64,
    steps: u64,
    on_update: &mut dyn FnMut(&Agent, &LogRow) -> Result<(), EnvError>,
) -> Result<(), EnvError> {
    train_team(std::slice::from_mut(agent), envs, seed, steps, &mut |team, row| on_update(&team[0], row))
}

/// Called after every update of a team with its agents and the log row.
pub type TeamCallback<'a> = dyn FnMut(&[Agent], &LogRow) -> Result<(), EnvError> + 'a;

/// One agent's share of a rollout.
#[derive(Default)]
pub(super) struct Buffer {
    pub(super) inputs: Vec<Input>,
    /// Allowed joint actions, and allowed node types for the chosen service.
    pub(super) masks: Vec<Vec<bool>>,
    pub(super) sku_masks: Vec<Vec<bool>>,
    pub(super) choices: Vec<Choice>,
    /// Per-service mode: the delta index each service slot chose (empty otherwise).
    pub(super) picks: Vec<Vec<u8>>,
    /// Per-service mode: each slot's log-probability (`logps` holds their sum).
    pub(super) slot_logps: Vec<Vec<f64>>,
    pub(super) logps: Vec<f64>,
    pub(super) values: Vec<f64>,
    /// Credit per service: each service's value (empty otherwise).
    pub(super) service_values: Vec<Vec<f64>>,
    pub(super) finals: Vec<Option<Input>>,
}

impl Buffer {
    /// Records one per-service decision: its input, mask, each slot's pick and log-probability,
    /// and the values it was taken with (each service's too with credit per service).
    pub(super) fn push_per_service(
        &mut self,
        input: Input,
        ok: Vec<bool>,
        picks: Vec<u8>,
        slot_logps: Vec<f64>,
        out: &Outputs,
        credit: bool,
    ) {
        self.inputs.push(input);
        self.masks.push(ok);
        self.sku_masks.push(Vec::new());
        // The one-service decision's fields hold a placeholder: the decision is in `picks`.
        self.choices.push(Choice { joint: action_index(0, 2), sku: None, u: None });
        self.picks.push(picks);
        self.logps.push(slot_logps.iter().sum());
        self.slot_logps.push(slot_logps);
        self.values.push(out.value);
        if credit {
            self.service_values.push(out.service_values.clone());
        }
    }
}

/// Trains a team of agents that act together on every step and share the reward: one agent (all
/// services), or one agent per service (`team[p]` scales service `p`; the two-agent mode of the
/// LLM pools). Each agent keeps its own critic, advantages and update.
pub fn train_team(
    team: &mut [Agent],
    envs: &mut [Env],
    seed: u64,
    steps: u64,
    on_update: &mut TeamCallback,
) -> Result<(), EnvError> {
    let n = envs.len();
    let m = team.len();
    let t_len = team[0].config.rollout_steps;
    let mut episode = vec![0u64; n];
    let mut current: Vec<Observation> = Vec::with_capacity(n);
    // Environment i runs seeds seed*1000 + i + n*k: distinct per environment and episode.
    let start = team[0].steps;
    let ep_seed = |i: usize, k: u64| seed.wrapping_mul(1000).wrapping_add(i as u64 + n as u64 * k).wrapping_add(start);
    for (i, e) in envs.iter_mut().enumerate() {
        current.push(e.reset(ep_seed(i, 0))?);
    }
    let mut ep_reward = vec![0.0; n];
    // Each environment's discounted return so far (`normalize_returns`); with credit per service,
    // each service's.
    let mut discounted = vec![0.0; n];
    let credit = m == 1 && team[0].per_service_credit();
    let mut service_discounted: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut finished: Vec<f64> = Vec::new();
    let target = team[0].steps + steps;
    // A request-level step simulates thousands of requests (milliseconds): worth a thread each. A
    // fluid step takes microseconds, less than handing it to another thread. The environments
    // know which they run (a fluid training's request fine-tune included).
    let parallel_steps = envs.iter().any(Env::heavy_steps);
    while team[0].steps < target {
        let mut bufs: Vec<Buffer> = (0..m).map(|_| Buffer::default()).collect();
        let (mut rews, mut term, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        // Credit per service: each step's reward split among the services.
        let mut service_rews: Vec<Vec<f64>> = Vec::new();
        // Rollout, time-major: index t * n + i.
        for _t in 0..t_len {
            let mut xs: Vec<Vec<Input>> = Vec::with_capacity(m);
            let mut outs: Vec<Vec<Outputs>> = Vec::with_capacity(m);
            for ag in team.iter_mut() {
                let x: Vec<Input> = current.iter().map(|o| ag.learn_input(o)).collect();
                outs.push(ag.evaluate_inputs(&x.iter().collect::<Vec<_>>()));
                xs.push(x);
            }
            // Every environment's decision first (the agents' sampling streams in environment
            // order), then every step: the environments are independent, so stepping them side by
            // side changes nothing but the time.
            let mut actions = Vec::with_capacity(n);
            for i in 0..n {
                if m == 1 && team[0].per_service() {
                    let env_mask = envs[i].mask().expect("reset");
                    let ok = team[0].allowed(env_mask);
                    let (picks, slot_logps, ok) = team[0].decide_per_service(&outs[0][i], &ok);
                    actions.push(per_service_action(&picks, env_mask.deltas.len()));
                    bufs[0].push_per_service(xs[0][i].clone(), ok, picks, slot_logps, &outs[0][i], credit);
                    continue;
                }
                let mut choices = Vec::with_capacity(m);
                for (p, ag) in team.iter_mut().enumerate() {
                    let env_mask = envs[i].mask().expect("reset");
                    let mask = team_mask(ag, env_mask, p, m);
                    let (choice, logp, sku_mask) = ag.decide_sampled(&outs[p][i], &mask, env_mask);
                    let b = &mut bufs[p];
                    b.inputs.push(xs[p][i].clone());
                    b.masks.push(mask);
                    b.sku_masks.push(sku_mask);
                    b.choices.push(choice);
                    b.logps.push(logp);
                    b.values.push(outs[p][i].value);
                    choices.push(choice);
                }
                actions.push(team_action(&choices));
            }
            let next_seeds: Vec<u64> = (0..n).map(|i| ep_seed(i, episode[i] + 1)).collect();
            let stepped = crate::rl::env::step_all(envs, &actions, &next_seeds, parallel_steps);
            for (i, result) in stepped.into_iter().enumerate() {
                let (mut st, reset_obs) = result?;
                ep_reward[i] += st.reward;
                rews.push(st.reward);
                term.push(st.terminated);
                let done = st.terminated || st.truncated;
                if credit {
                    let parts = &st.info.service_rewards;
                    let deciding = bufs[0].service_values.last().map_or(0, Vec::len);
                    if parts.len() != deciding {
                        return Err(EnvError::Stopped(format!(
                            "credit per service: a step split its reward among {} services, the agent decides for {deciding}",
                            parts.len(),
                        )));
                    }
                    if team[0].config.normalize_returns {
                        let d = &mut service_discounted[i];
                        d.resize(parts.len(), 0.0);
                        for (acc, &r) in d.iter_mut().zip(parts) {
                            *acc = *acc * team[0].config.gamma + r;
                            team[0].returns.update(*acc);
                            if done {
                                *acc = 0.0;
                            }
                        }
                    }
                    service_rews.push(std::mem::take(&mut st.info.service_rewards));
                } else if team[0].config.normalize_returns {
                    discounted[i] = discounted[i] * team[0].config.gamma + st.reward;
                    for ag in team.iter_mut() {
                        ag.returns.update(discounted[i]);
                    }
                    if done {
                        discounted[i] = 0.0;
                    }
                }
                ends.push(done);
                for (p, ag) in team.iter_mut().enumerate() {
                    bufs[p].finals.push(done.then(|| ag.act_input(&st.obs)));
                }
                match reset_obs {
                    Some(first) => {
                        finished.push(ep_reward[i]);
                        ep_reward[i] = 0.0;
                        episode[i] += 1;
                        current[i] = first;
                    }
                    None => current[i] = st.obs,
                }
            }
            for ag in team.iter_mut() {
                ag.steps += n as u64;
            }
        }
        let mut stats = UpdateStats::default();
        for (p, ag) in team.iter_mut().enumerate() {
            let b = &bufs[p];
            // V(s_{t+1}): the next step's value in the same environment, the final observation's
            // at a truncation, the current observation's after the last step.
            // Each step's values and rewards as columns: one, or one per service (credit per
            // service, `cols` services), in the time-major order of the rollout.
            let cols = if credit { b.service_values.first().map_or(1, Vec::len) } else { 1 };
            let values_of = |o: &Outputs| if credit { o.service_values.clone() } else { vec![o.value] };
            let last: Vec<Input> = current.iter().map(|o| ag.act_input(o)).collect();
            let last_vals: Vec<Vec<f64>> =
                ag.evaluate_inputs(&last.iter().collect::<Vec<_>>()).iter().map(values_of).collect();
            let len = b.inputs.len();
            let stored: Vec<Vec<f64>> =
                if credit { b.service_values.clone() } else { b.values.iter().map(|&v| vec![v]).collect() };
            let next_vals: Vec<Vec<f64>> = (0..len)
                .map(|k| match &b.finals[k] {
                    Some(f) => values_of(&ag.evaluate_inputs(&[f])[0]),
                    None if k + n < len => stored[k + n].clone(),
                    None => last_vals[k % n].clone(),
                })
                .collect();
            // Rewards over the returns' standard deviation (one scale for the whole rollout).
            let scale = |r: f64| if ag.config.normalize_returns { ag.returns.scale(r) } else { r };
            let rews: Vec<Vec<f64>> = if credit {
                service_rews.iter().map(|row| row.iter().map(|&r| scale(r)).collect()).collect()
            } else {
                rews.iter().map(|&r| vec![scale(r)]).collect()
            };
            // GAE per environment (the rollout interleaves them) and column; advantages and
            // returns come out sample-major, `k * cols + c`.
            let mut adv = vec![0.0; len * cols];
            let mut ret = vec![0.0; len * cols];
            for i in 0..n {
                let ks: Vec<usize> = (i..len).step_by(n).collect();
                let pickb = |v: &[bool]| ks.iter().map(|&k| v[k]).collect::<Vec<bool>>();
                for c in 0..cols {
                    let pick = |v: &[Vec<f64>]| ks.iter().map(|&k| v[k][c]).collect::<Vec<f64>>();
                    let (a, r) = gae(
                        &pick(&rews),
                        &pick(&stored),
                        &pick(&next_vals),
                        &pickb(&term),
                        &pickb(&ends),
                        ag.config.gamma,
                        ag.config.gae_lambda,
                    );
                    for (j, &k) in ks.iter().enumerate() {
                        adv[k * cols + c] = a[j];
                        ret[k * cols + c] = r[j];
                    }
                }
            }
            ag.apply_schedules(if ag.schedule_horizon > 0 { ag.schedule_horizon } else { target });
            let s = ag.update(b, &adv, &ret);
            stats.policy_loss += s.policy_loss / m as f64;
            stats.value_loss += s.value_loss / m as f64;
            stats.entropy += s.entropy / m as f64;
            stats.approx_kl += s.approx_kl / m as f64;
            stats.clip_fraction += s.clip_fraction / m as f64;
            stats.epochs += s.epochs / m as f64;
            stats.explained_variance += s.explained_variance / m as f64;
            stats.grad_norm += s.grad_norm / m as f64;
            add_present(&mut stats.critic_grad_norm, s.critic_grad_norm.map(|c| c / m as f64));
            stats.heads.add_scaled(&s.heads, 1.0 / m as f64);
        }
        let recent = &finished[finished.len().saturating_sub(10)..];
        let mean = if recent.is_empty() { f64::NAN } else { recent.iter().sum::<f64>() / recent.len() as f64 };
        on_update(
            team,
            &LogRow { step: team[0].steps, mean_episode_reward: mean, episodes: finished.len() as u64, stats },
        )?;
    }
    Ok(())
}
