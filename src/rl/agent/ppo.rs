//! Training: PPO (clipped objective, GAE(lambda), value loss, entropy bonus, minibatch epochs,
//! gradient-norm clipping, observation normalisation, action masks on the logits) and A2C (one
//! pass, the plain policy gradient), over N vectorised environments.
//!
//! The action is the gym-hpa one: `(service, delta replicas)` as one categorical over
//! `MAX_SERVICES x 5`, masked by the environment's action mask.

use std::path::Path;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::checkpoint::Checkpoint;
use super::graph::{GraphBatch, GraphKind, GraphNet, Taped};
use super::nn::{Actor, Adam, Critic, Dev, ObsNorm, Params, Shapes, ACTIONS, MAX_SERVICES, OBS_MAX};
use crate::engine::SimTime;
use crate::rl::{Action, ActionMask, Env, EnvConfig, EnvError, Observation, RewardConfig, DELTAS};
use crate::scenario::{ConfigError, ConfigText};

/// Hyper-parameters, from `configs/agents/*.yaml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default = "one")]
    pub format_version: u32,
    /// `mlp` (this build's encoder).
    pub encoder: String,
    /// `ppo` or `a2c`.
    pub algorithm: String,
    #[serde(default = "lr")]
    pub learning_rate: f64,
    #[serde(default = "gamma")]
    pub gamma: f64,
    #[serde(default = "lambda")]
    pub gae_lambda: f64,
    #[serde(default = "clip")]
    pub clip: f64,
    #[serde(default = "half")]
    pub value_coef: f64,
    #[serde(default = "ent")]
    pub entropy_coef: f64,
    #[serde(default = "half")]
    pub max_grad_norm: f64,
    #[serde(default = "epochs")]
    pub epochs: usize,
    #[serde(default = "minibatch")]
    pub minibatch: usize,
    #[serde(default = "rollout")]
    pub rollout_steps: usize,
    #[serde(default = "envs")]
    pub envs: usize,
    #[serde(default = "interval")]
    pub decision_interval_s: f64,
    /// `fluid` (fast, the default) or `request`.
    #[serde(default = "fluid")]
    pub fidelity: String,
    /// Environment steps between checkpoints.
    #[serde(default = "every")]
    pub checkpoint_every: u64,
    /// `weighted` (default), `cost`, `latency` or `multi`.
    #[serde(default = "weighted")]
    pub reward: String,
    /// 1: one agent scales every service. N > 1: a team of N agents, agent `p` scaling service `p`
    /// (the two-agent mode of LLM prompt and token pools: `team: 2`).
    #[serde(default = "one_usize")]
    pub team: usize,
}

fn one_usize() -> usize {
    1
}

fn one() -> u32 {
    1
}
fn lr() -> f64 {
    3e-4
}
fn gamma() -> f64 {
    0.99
}
fn lambda() -> f64 {
    0.95
}
fn clip() -> f64 {
    0.2
}
fn half() -> f64 {
    0.5
}
fn ent() -> f64 {
    0.01
}
fn epochs() -> usize {
    4
}
fn minibatch() -> usize {
    64
}
fn rollout() -> usize {
    128
}
fn envs() -> usize {
    4
}
fn interval() -> f64 {
    15.0
}
fn fluid() -> String {
    "fluid".into()
}
fn every() -> u64 {
    8192
}
fn weighted() -> String {
    "weighted".into()
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let cfg = ConfigText::read(path)?;
        let c: AgentConfig = cfg.parse()?;
        let err = |field: &str, message: String| cfg.invalid(field, message);
        if c.format_version != 1 {
            return Err(err("format_version", format!("is {}; this build reads 1", c.format_version)));
        }
        if !matches!(c.encoder.as_str(), "mlp" | "gcn" | "gat") {
            return Err(err("encoder", format!("`{}`: expected mlp, gcn or gat", c.encoder)));
        }
        if !matches!(c.algorithm.as_str(), "ppo" | "a2c") {
            return Err(err("algorithm", format!("`{}`: expected ppo or a2c", c.algorithm)));
        }
        if !matches!(c.fidelity.as_str(), "fluid" | "request") {
            return Err(err("fidelity", format!("`{}`: expected fluid or request", c.fidelity)));
        }
        if !matches!(c.reward.as_str(), "weighted" | "cost" | "latency" | "multi") {
            return Err(err("reward", format!("`{}`: expected weighted, cost, latency or multi", c.reward)));
        }
        for (v, f) in [(c.learning_rate, "learning_rate"), (c.decision_interval_s, "decision_interval_s")] {
            if !(v.is_finite() && v > 0.0) {
                return Err(err(f, format!("{v} must be > 0")));
            }
        }
        for (v, f) in [(c.gamma, "gamma"), (c.gae_lambda, "gae_lambda"), (c.clip, "clip")] {
            if !(0.0..=1.0).contains(&v) {
                return Err(err(f, format!("{v} is outside [0, 1]")));
            }
        }
        for (v, f) in
            [(c.epochs, "epochs"), (c.minibatch, "minibatch"), (c.rollout_steps, "rollout_steps"), (c.envs, "envs")]
        {
            if v == 0 {
                return Err(err(f, "must be at least 1".into()));
            }
        }
        Ok(c)
    }

    pub fn env_config(&self) -> EnvConfig {
        EnvConfig {
            decision_interval: SimTime::from_secs_f64(self.decision_interval_s),
            reward: match self.reward.as_str() {
                "cost" => RewardConfig::Cost,
                "latency" => RewardConfig::Latency,
                "multi" => RewardConfig::Multi { lambda: 1.0 },
                _ => RewardConfig::default(),
            },
            action: crate::rl::ActionConfig { node_type_head: false, quota_head: false, ..Default::default() },
            ..Default::default()
        }
    }
}

/// The joint action index of `(service, delta index)`.
pub fn action_index(service: usize, delta_index: usize) -> usize {
    service * 5 + delta_index
}

/// The environment action of a joint index.
pub fn decode_action(a: usize) -> Action {
    Action::One { service: a / 5, node_type: 0, delta: DELTAS[a % 5], quota: 0.0 }
}

/// Which joint actions the mask allows (services beyond the application's are never allowed).
pub fn allowed(mask: &ActionMask) -> [bool; ACTIONS] {
    let mut out = [false; ACTIONS];
    for (s, row) in mask.deltas.iter().enumerate().take(MAX_SERVICES) {
        for (d, &ok) in row.iter().enumerate() {
            out[action_index(s, d)] = ok;
        }
    }
    out
}

/// Log-probabilities of the masked softmax of `logits` (masked actions: -inf, probability 0).
pub fn masked_log_softmax(logits: &[f32], allowed: &[bool]) -> Vec<f64> {
    let max = logits.iter().zip(allowed).filter(|(_, &a)| a).map(|(&l, _)| l as f64).fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logits.iter().zip(allowed).filter(|(_, &a)| a).map(|(&l, _)| (l as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    logits.iter().zip(allowed).map(|(&l, &a)| if a { l as f64 - lse } else { f64::NEG_INFINITY }).collect()
}

/// Generalised advantage estimation. `values[t]` is V(s_t); `next_values[t]` is V(s_{t+1}) for the
/// next state of the same episode (the final observation's value when the episode was truncated
/// there, so truncation is not mistaken for a terminal state); `terminal[t]` cuts the bootstrap and
/// `episode_end[t]` cuts the advantage chain.
pub fn gae(
    rewards: &[f64],
    values: &[f64],
    next_values: &[f64],
    terminal: &[bool],
    episode_end: &[bool],
    gamma: f64,
    lambda: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = rewards.len();
    let mut adv = vec![0.0; n];
    let mut next_adv = 0.0;
    for t in (0..n).rev() {
        let boot = if terminal[t] { 0.0 } else { next_values[t] };
        let delta = rewards[t] + gamma * boot - values[t];
        let carry = if episode_end[t] { 0.0 } else { next_adv };
        adv[t] = delta + gamma * lambda * carry;
        next_adv = adv[t];
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

/// The PPO clipped surrogate for one sample: `min(r A, clip(r, 1-eps, 1+eps) A)`.
pub fn clipped_objective(ratio: f64, adv: f64, eps: f64) -> f64 {
    (ratio * adv).min(ratio.clamp(1.0 - eps, 1.0 + eps) * adv)
}

/// Statistics of one update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UpdateStats {
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub clip_fraction: f64,
}

/// The networks of an agent.
// One agent holds one of these: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Nets {
    /// Separate actor and critic MLPs over the padded flat observation.
    Mlp { actor: Actor, critic: Critic },
    /// One graph encoder (GCN or GAT) with actor and value heads.
    Graph(GraphNet),
}

/// What a network takes for one decision: the normalised, padded flat observation (MLP) or the
/// graph observation (GCN, GAT: its features are in [0, 1] by construction).
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Flat(Vec<f32>),
    Graph(Observation),
}

/// An actor-critic agent with its optimisers and observation normaliser.
pub struct Agent {
    pub config: AgentConfig,
    pub dev: Dev,
    pub nets: Nets,
    /// The actor's optimiser (the graph network's, for graph encoders).
    pub actor_opt: Adam,
    /// The critic's optimiser (unused, and empty, for graph encoders).
    pub critic_opt: Adam,
    pub norm: ObsNorm,
    pub steps: u64,
    /// Length of the application's flat observation (checked on load).
    pub flat_len: usize,
    rng: rand_pcg::Pcg64Mcg,
}

/// The graph kind of an encoder name.
pub fn graph_kind(encoder: &str) -> Option<GraphKind> {
    match encoder {
        "gcn" => Some(GraphKind::Gcn),
        "gat" => Some(GraphKind::Gat),
        _ => None,
    }
}

impl Agent {
    pub fn new(config: AgentConfig, flat_len: usize, seed: u64) -> Self {
        let dev = Dev::seed_from_u64(seed);
        let (nets, actor_opt, critic_opt) = match graph_kind(&config.encoder) {
            Some(kind) => {
                let net = GraphNet::new(&dev, kind);
                let opt = Adam::new(&net.shapes(), config.learning_rate, config.max_grad_norm);
                (Nets::Graph(net), opt, Adam::new(&[], config.learning_rate, config.max_grad_norm))
            }
            None => {
                let (actor, critic) = (Actor::new(&dev), Critic::new(&dev));
                let a = Adam::new(&actor.shapes(), config.learning_rate, config.max_grad_norm);
                let c = Adam::new(&critic.shapes(), config.learning_rate, config.max_grad_norm);
                (Nets::Mlp { actor, critic }, a, c)
            }
        };
        Agent {
            rng: rand_pcg::Pcg64Mcg::new(crate::engine::stream_seed(seed, "agent/sampling")),
            config,
            dev,
            nets,
            actor_opt,
            critic_opt,
            norm: ObsNorm::new(OBS_MAX),
            steps: 0,
            flat_len,
        }
    }

    /// The parameter shapes of the actor part and the critic part (empty for graph encoders).
    pub fn shapes(&self) -> (Shapes, Shapes) {
        match &self.nets {
            Nets::Mlp { actor, critic } => (actor.shapes(), critic.shapes()),
            Nets::Graph(g) => (g.shapes(), Vec::new()),
        }
    }

    pub fn from_checkpoint(ck: Checkpoint, seed: u64) -> Self {
        let mut a = Agent::new(ck.config.clone(), ck.flat_len, seed);
        match &mut a.nets {
            Nets::Mlp { actor, critic } => {
                actor.set(&ck.actor);
                critic.set(&ck.critic);
            }
            Nets::Graph(g) => g.set(&ck.actor),
        }
        a.actor_opt = ck.actor_opt.clone();
        a.critic_opt = ck.critic_opt.clone();
        a.norm = ck.norm.clone();
        a.steps = ck.steps;
        a
    }

    pub fn checkpoint(&self) -> Checkpoint {
        let (actor, critic) = match &self.nets {
            Nets::Mlp { actor, critic } => (actor.get(), critic.get()),
            Nets::Graph(g) => (g.get(), Vec::new()),
        };
        Checkpoint {
            config: self.config.clone(),
            flat_len: self.flat_len,
            steps: self.steps,
            actor,
            critic,
            actor_opt: self.actor_opt.clone(),
            critic_opt: self.critic_opt.clone(),
            norm: self.norm.clone(),
        }
    }

    /// The network input for an observation (updating the normaliser when `learn`).
    pub fn input(&mut self, obs: &Observation, learn: bool) -> Input {
        match self.nets {
            Nets::Mlp { .. } => {
                let f = obs.flat();
                if learn {
                    self.norm.update(&f);
                }
                Input::Flat(self.norm.apply(&f))
            }
            Nets::Graph(_) => Input::Graph(obs.clone()),
        }
    }

    fn flat_batch(&self, xs: &[&Input]) -> Tensor<(usize, Const<OBS_MAX>), f32, Dev> {
        let flat: Vec<f32> = xs
            .iter()
            .flat_map(|x| match x {
                Input::Flat(v) => v.clone(),
                Input::Graph(o) => self.norm.apply(&o.flat()),
            })
            .collect();
        self.dev.tensor_from_vec(flat, (xs.len(), Const::<OBS_MAX>))
    }

    fn graph_batch(&self, xs: &[&Input]) -> GraphBatch {
        let obs: Vec<&Observation> = xs
            .iter()
            .map(|x| match x {
                Input::Graph(o) => o,
                Input::Flat(_) => unreachable!("graph encoders get graph inputs"),
            })
            .collect();
        GraphBatch::new(&self.dev, &obs)
    }

    /// Logits (one row per input: `MAX_SERVICES x 5` for the MLP, `services x 5` for graphs) and
    /// state values.
    pub fn evaluate_inputs(&self, xs: &[&Input]) -> (Vec<Vec<f32>>, Vec<f64>) {
        let (logits, values, width) = match &self.nets {
            Nets::Mlp { actor, critic } => {
                let x = self.flat_batch(xs);
                (actor.forward(x.clone()).as_vec(), critic.forward(x).as_vec(), ACTIONS)
            }
            Nets::Graph(g) => {
                let batch = self.graph_batch(xs);
                let (l, v) = g.forward(&batch, Gradients::leaky());
                (l.as_vec(), v.as_vec(), batch.n * 5)
            }
        };
        (logits.chunks(width).map(|c| c.to_vec()).collect(), values.into_iter().map(f64::from).collect())
    }

    /// Allowed joint actions for this agent's action layout.
    pub fn allowed(&self, mask: &ActionMask) -> Vec<bool> {
        match self.nets {
            Nets::Mlp { .. } => allowed(mask).to_vec(),
            Nets::Graph(_) => mask.deltas.iter().flat_map(|r| r.iter().copied()).collect(),
        }
    }

    /// The greedy action (highest probability among the allowed) for one observation.
    pub fn act_greedy(&self, obs: &Observation, mask: &ActionMask) -> usize {
        let x = match self.nets {
            Nets::Mlp { .. } => Input::Flat(self.norm.apply(&obs.flat())),
            Nets::Graph(_) => Input::Graph(obs.clone()),
        };
        let (logits, _) = self.evaluate_inputs(&[&x]);
        let ok = self.allowed(mask);
        (0..ok.len())
            .filter(|&a| ok[a])
            .max_by(|&a, &b| logits[0][a].total_cmp(&logits[0][b]).then(b.cmp(&a)))
            .unwrap_or(action_index(0, 2))
    }

    fn sample(&mut self, logp: &[f64]) -> usize {
        let u: f64 = self.rng.gen();
        let mut acc = 0.0;
        let mut last = 0;
        for (a, &l) in logp.iter().enumerate() {
            if l.is_finite() {
                acc += l.exp();
                last = a;
                if u < acc {
                    return a;
                }
            }
        }
        last
    }

    /// The policy part of the loss on `logits` (taped), and its statistics: the PPO clipped
    /// objective (or A2C's policy gradient) and the entropy bonus.
    #[allow(clippy::too_many_arguments)]
    fn policy_loss(
        &self,
        logits: Tensor<(usize, usize), f32, Dev, OwnedTape<f32, Dev>>,
        mask: Vec<f32>,
        chunk: &[usize],
        actions: &[usize],
        logp_old: &[f64],
        adv: &[f64],
        ppo: bool,
    ) -> (Taped<()>, Vec<f32>, f64) {
        let b = chunk.len();
        let width = mask.len() / b;
        let eps = self.config.clip as f32;
        let mask = self.dev.tensor_from_vec(mask, (b, width));
        let acts = self.dev.tensor_from_vec(chunk.iter().map(|&i| actions[i]).collect::<Vec<usize>>(), (b,));
        let old = self.dev.tensor_from_vec(chunk.iter().map(|&i| logp_old[i] as f32).collect::<Vec<f32>>(), (b,));
        let a = self.dev.tensor_from_vec(chunk.iter().map(|&i| adv[i] as f32).collect::<Vec<f32>>(), (b,));
        // Per-sample bounds make min(r A, clip(r) A) a single use of r: for A >= 0 it is
        // A * min(r, 1 + eps), for A < 0 it is A * max(r, 1 - eps).
        let upper = self.dev.tensor_from_vec(
            chunk.iter().map(|&i| if adv[i] >= 0.0 { 1.0 + eps } else { 1e9 }).collect::<Vec<f32>>(),
            (b,),
        );
        let lower = self.dev.tensor_from_vec(
            chunk.iter().map(|&i| if adv[i] >= 0.0 { -1e9 } else { 1.0 - eps }).collect::<Vec<f32>>(),
            (b,),
        );
        // The tape moves between the uses of the log-probabilities so that every op is recorded
        // (a tensor's gradient is keyed by its id, which its clones share).
        let logp_all = (logits + mask).log_softmax::<Axis<1>>();
        let (lp, tape) = logp_all.split_tape();
        let neg_ent = (lp.clone().put_tape(tape).exp() * lp.clone()).sum::<(usize,), Axis<1>>();
        let ent_term = neg_ent.mean() * (self.config.entropy_coef as f32);
        let (ent_term, tape) = ent_term.split_tape();
        let logp = lp.clone().put_tape(tape).select(acts);
        let (logp_v, tape) = logp.split_tape();
        let logp_vec = logp_v.as_vec();
        let entropy = -(ent_term.array() as f64) / self.config.entropy_coef.max(1e-12);
        let loss = if ppo {
            let ratio = (logp_v.put_tape(tape) - old).exp();
            -(ratio.minimum(upper).maximum(lower) * a).mean() + ent_term
        } else {
            -(logp_v.put_tape(tape) * a).mean() + ent_term
        };
        (loss, logp_vec, entropy)
    }

    /// One PPO (or A2C) update on a rollout.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        inputs: &[Input],
        masks: &[Vec<bool>],
        actions: &[usize],
        logp_old: &[f64],
        adv: &[f64],
        returns: &[f64],
    ) -> UpdateStats {
        let n = inputs.len();
        let ppo = self.config.algorithm == "ppo";
        let (epochs, mb) = if ppo { (self.config.epochs, self.config.minibatch.min(n)) } else { (1, n) };
        // Normalised advantages.
        let mean = adv.iter().sum::<f64>() / n as f64;
        let std = (adv.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n as f64).sqrt().max(1e-8);
        let adv: Vec<f64> = adv.iter().map(|a| (a - mean) / std).collect();
        let mut idx: Vec<usize> = (0..n).collect();
        let mut stats = UpdateStats::default();
        let mut batches = 0.0;
        let eps = self.config.clip;
        for _ in 0..epochs {
            for i in (1..n).rev() {
                let j = self.rng.gen_range(0..=i);
                idx.swap(i, j);
            }
            for chunk in idx.chunks(mb) {
                let b = chunk.len();
                let xs: Vec<&Input> = chunk.iter().map(|&i| &inputs[i]).collect();
                let mask: Vec<f32> =
                    chunk.iter().flat_map(|&i| masks[i].iter().map(|&ok| if ok { 0.0 } else { -1e9 })).collect();
                let ret: Vec<f32> = chunk.iter().map(|&i| returns[i] as f32).collect();
                let ret = self.dev.tensor_from_vec(ret, (b, Const::<1>));
                let vc = self.config.value_coef as f32;
                let (loss_v, vloss_v, logp_vec, entropy) = match &self.nets {
                    Nets::Mlp { actor, critic } => {
                        let x = self.flat_batch(&xs);
                        let logits = actor.forward(x.clone().traced(Gradients::leaky())).realize::<(usize, usize)>();
                        let (loss, logp_vec, entropy) =
                            self.policy_loss(logits, mask, chunk, actions, logp_old, &adv, ppo);
                        let loss_v = loss.array() as f64;
                        let grads = loss.backward();
                        let mut actor = actor.clone();
                        self.actor_opt.step(&mut actor, &grads);
                        let v = critic.forward(x.traced(Gradients::leaky()));
                        let vloss = (v - ret).square().mean() * vc;
                        let vloss_v = vloss.array() as f64;
                        let grads = vloss.backward();
                        let mut critic = critic.clone();
                        self.critic_opt.step(&mut critic, &grads);
                        self.nets = Nets::Mlp { actor, critic };
                        (loss_v, vloss_v, logp_vec, entropy)
                    }
                    Nets::Graph(g) => {
                        // One network, one tape: loss = policy loss + c_v * value loss.
                        let batch = self.graph_batch(&xs);
                        let (logits, value) = g.forward(&batch, Gradients::leaky());
                        let (value, tape) = value.split_tape();
                        let (logits, _) = logits.split_tape();
                        let (loss, logp_vec, entropy) =
                            self.policy_loss(logits.put_tape(tape), mask, chunk, actions, logp_old, &adv, ppo);
                        let loss_v = loss.array() as f64;
                        let (loss, tape) = loss.split_tape();
                        let vloss = (value.put_tape(tape) - ret).square().mean() * vc;
                        let vloss_v = vloss.array() as f64;
                        let grads = (vloss + loss).backward();
                        let mut g = g.clone();
                        self.actor_opt.step(&mut g, &grads);
                        self.nets = Nets::Graph(g);
                        (loss_v, vloss_v, logp_vec, entropy)
                    }
                };
                let (mut kl, mut clipped) = (0.0, 0.0);
                for (k, &i) in chunk.iter().enumerate() {
                    let d = logp_old[i] - logp_vec[k] as f64;
                    kl += d;
                    if ((-d).exp() - 1.0).abs() > eps {
                        clipped += 1.0;
                    }
                }
                stats.policy_loss += loss_v;
                stats.value_loss += vloss_v;
                stats.entropy += entropy;
                stats.approx_kl += kl / b as f64;
                stats.clip_fraction += clipped / b as f64;
                batches += 1.0;
            }
        }
        if batches > 0.0 {
            stats.policy_loss /= batches;
            stats.value_loss /= batches;
            stats.entropy /= batches;
            stats.approx_kl /= batches;
            stats.clip_fraction /= batches;
        }
        stats
    }
}

/// One row of `training_log.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogRow {
    pub step: u64,
    pub mean_episode_reward: f64,
    pub episodes: u64,
    pub stats: UpdateStats,
}

pub const TRAINING_LOG_HEADER: &str =
    "step,mean_episode_reward,episodes,policy_loss,value_loss,entropy,approx_kl,clip_fraction,format_version";

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
struct Buffer {
    inputs: Vec<Input>,
    masks: Vec<Vec<bool>>,
    actions: Vec<usize>,
    logps: Vec<f64>,
    values: Vec<f64>,
    finals: Vec<Option<Input>>,
}

/// The allowed joint actions of team member `member` of `size`: a lone agent may act on any
/// service; in a team, member `p` acts on service `p` only (the two-agent mode of LLM pools: one
/// policy per pool).
fn team_mask(agent: &Agent, mask: &ActionMask, member: usize, size: usize) -> Vec<bool> {
    let mut ok = agent.allowed(mask);
    if size > 1 {
        for (a, v) in ok.iter_mut().enumerate() {
            if a / 5 != member {
                *v = false;
            }
        }
    }
    ok
}

/// The environment action of a team's choices.
fn team_action(choices: &[usize]) -> Action {
    if choices.len() == 1 {
        return decode_action(choices[0]);
    }
    Action::All(
        choices.iter().map(|&a| crate::rl::ServiceAction { node_type: 0, delta: DELTAS[a % 5], quota: 0.0 }).collect(),
    )
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
    let mut finished: Vec<f64> = Vec::new();
    let target = team[0].steps + steps;
    while team[0].steps < target {
        let mut bufs: Vec<Buffer> = (0..m).map(|_| Buffer::default()).collect();
        let (mut rews, mut term, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        // Rollout, time-major: index t * n + i.
        for _t in 0..t_len {
            let mut xs: Vec<Vec<Input>> = Vec::with_capacity(m);
            let mut outs = Vec::with_capacity(m);
            for ag in team.iter_mut() {
                let x: Vec<Input> = current.iter().map(|o| ag.input(o, true)).collect();
                outs.push(ag.evaluate_inputs(&x.iter().collect::<Vec<_>>()));
                xs.push(x);
            }
            for i in 0..n {
                let mut choices = Vec::with_capacity(m);
                for (p, ag) in team.iter_mut().enumerate() {
                    let mask = team_mask(ag, envs[i].mask().expect("reset"), p, m);
                    let lp = masked_log_softmax(&outs[p].0[i], &mask);
                    let a = ag.sample(&lp);
                    let b = &mut bufs[p];
                    b.inputs.push(xs[p][i].clone());
                    b.masks.push(mask);
                    b.actions.push(a);
                    b.logps.push(lp[a]);
                    b.values.push(outs[p].1[i]);
                    choices.push(a);
                }
                let st = envs[i].step(&team_action(&choices))?;
                ep_reward[i] += st.reward;
                rews.push(st.reward);
                term.push(st.terminated);
                let done = st.terminated || st.truncated;
                ends.push(done);
                for (p, ag) in team.iter_mut().enumerate() {
                    bufs[p].finals.push(done.then(|| ag.input(&st.obs, false)));
                }
                if done {
                    finished.push(ep_reward[i]);
                    ep_reward[i] = 0.0;
                    episode[i] += 1;
                    current[i] = envs[i].reset(ep_seed(i, episode[i]))?;
                } else {
                    current[i] = st.obs;
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
            let last: Vec<Input> = current.iter().map(|o| ag.input(o, false)).collect();
            let (_, last_vals) = ag.evaluate_inputs(&last.iter().collect::<Vec<_>>());
            let len = b.inputs.len();
            let next_vals: Vec<f64> = (0..len)
                .map(|k| match &b.finals[k] {
                    Some(f) => ag.evaluate_inputs(&[f]).1[0],
                    None if k + n < len => b.values[k + n],
                    None => last_vals[k % n],
                })
                .collect();
            // GAE per environment (the rollout interleaves them).
            let mut adv = vec![0.0; len];
            let mut ret = vec![0.0; len];
            for i in 0..n {
                let ks: Vec<usize> = (i..len).step_by(n).collect();
                let pick = |v: &[f64]| ks.iter().map(|&k| v[k]).collect::<Vec<f64>>();
                let pickb = |v: &[bool]| ks.iter().map(|&k| v[k]).collect::<Vec<bool>>();
                let (a, r) = gae(
                    &pick(&rews),
                    &pick(&b.values),
                    &pick(&next_vals),
                    &pickb(&term),
                    &pickb(&ends),
                    ag.config.gamma,
                    ag.config.gae_lambda,
                );
                for (j, &k) in ks.iter().enumerate() {
                    adv[k] = a[j];
                    ret[k] = r[j];
                }
            }
            let s = ag.update(&b.inputs, &b.masks, &b.actions, &b.logps, &adv, &ret);
            stats.policy_loss += s.policy_loss / m as f64;
            stats.value_loss += s.value_loss / m as f64;
            stats.entropy += s.entropy / m as f64;
            stats.approx_kl += s.approx_kl / m as f64;
            stats.clip_fraction += s.clip_fraction / m as f64;
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

/// The greedy joint action of a team (one agent, or one per service) for one observation.
pub fn team_greedy(team: &[Agent], obs: &Observation, mask: &ActionMask) -> Action {
    let m = team.len();
    let choices: Vec<usize> = team
        .iter()
        .enumerate()
        .map(|(p, ag)| {
            let ok = team_mask(ag, mask, p, m);
            let x = match ag.nets {
                Nets::Mlp { .. } => Input::Flat(ag.norm.apply(&obs.flat())),
                Nets::Graph(_) => Input::Graph(obs.clone()),
            };
            let (logits, _) = ag.evaluate_inputs(&[&x]);
            (0..ok.len())
                .filter(|&a| ok[a])
                .max_by(|&a, &b| logits[0][a].total_cmp(&logits[0][b]).then(b.cmp(&a)))
                .unwrap_or(action_index(p.min(MAX_SERVICES - 1), 2))
        })
        .collect();
    team_action(&choices)
}

/// Mean episode reward of the greedy policy (`agent: None`: uniformly random among allowed actions)
/// over `episodes` episodes.
pub fn evaluate(agent: Option<&Agent>, env: &mut Env, seed: u64, episodes: u64) -> Result<f64, EnvError> {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ 0x5eed);
    let mut total = 0.0;
    for k in 0..episodes {
        let mut obs = env.reset(seed + k)?;
        loop {
            let mask = env.mask().expect("reset").clone();
            let a = match agent {
                Some(ag) => ag.act_greedy(&obs, &mask),
                None => {
                    let ok = allowed(&mask);
                    let choices: Vec<usize> = (0..ACTIONS).filter(|&a| ok[a]).collect();
                    choices[rng.gen_range(0..choices.len())]
                }
            };
            let st = env.step(&decode_action(a))?;
            total += st.reward;
            obs = st.obs;
            if st.truncated || st.terminated {
                break;
            }
        }
    }
    Ok(total / episodes as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_by_hand() {
        // Two steps, gamma 0.5, lambda 0.5, no episode end; V = [1, 2], V(s2) = 4, r = [1, 1].
        // delta1 = 1 + 0.5*4 - 2 = 1; A1 = 1.
        // delta0 = 1 + 0.5*2 - 1 = 1; A0 = 1 + 0.25*1 = 1.25. Returns = A + V = [2.25, 3].
        let (a, r) = gae(&[1.0, 1.0], &[1.0, 2.0], &[2.0, 4.0], &[false, false], &[false, false], 0.5, 0.5);
        assert_eq!(a, vec![1.25, 1.0]);
        assert_eq!(r, vec![2.25, 3.0]);
        // A terminal first step: no bootstrap, no carry: A0 = 1 - 1 = 0.
        let (a, _) = gae(&[1.0, 1.0], &[1.0, 2.0], &[2.0, 4.0], &[true, false], &[true, false], 0.5, 0.5);
        assert_eq!(a[0], 0.0);
    }

    #[test]
    fn clipped_objective_by_hand() {
        // eps 0.2: ratio 1.5, A = 2 -> min(3, 1.2*2 = 2.4) = 2.4; A = -2 -> min(-3, -2.4) = -3;
        // ratio 0.5, A = -2 -> min(-1, 0.8*-2 = -1.6) = -1.6.
        assert!((clipped_objective(1.5, 2.0, 0.2) - 2.4).abs() < 1e-12);
        assert!((clipped_objective(1.5, -2.0, 0.2) - -3.0).abs() < 1e-12);
        assert!((clipped_objective(0.5, -2.0, 0.2) - -1.6).abs() < 1e-12);
    }

    #[test]
    fn masked_actions_get_zero_probability() {
        let logits = [3.0f32, 1.0, 2.0, 5.0];
        let ok = [true, false, true, false];
        let lp = masked_log_softmax(&logits, &ok);
        assert_eq!(lp[1], f64::NEG_INFINITY);
        assert_eq!(lp[3].exp(), 0.0);
        // The allowed two renormalise: p0 = e^3 / (e^3 + e^2).
        assert!((lp[0].exp() - 3f64.exp() / (3f64.exp() + 2f64.exp())).abs() < 1e-12);
    }
}
