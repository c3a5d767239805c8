//! The agent and its training: PPO (clipped objective, GAE(lambda), value loss, entropy bonus,
//! minibatch epochs, gradient-norm clipping, observation normalisation, action masks on the logits)
//! and A2C (one pass, the plain policy gradient), over N vectorised environments; sampling and
//! greedy decisions from the networks' heads (the decision's layout and probabilities:
//! [`super::decision`]). Updates run on two threads; the result does not depend on scheduling.
//!
//! Here: the agent, its networks and its decisions (sampled in training, greedy when deployed), and
//! a team's greedy action. In the submodules: the estimates the update rests on (`estimates.rs`:
//! GAE, the clipped objective, normalisation, explained variance, the update's statistics), the
//! losses and the minibatch updates (`update.rs`), and the training loop over the vectorised
//! environments (`training.rs`).

mod estimates;
mod training;
mod update;

pub use estimates::{clipped_objective, explained_variance, gae, normalize, HeadEntropies, UpdateStats};
pub use training::{train, train_team, LogRow, TeamCallback, TRAINING_LOG_HEADER};

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

use super::checkpoint::Checkpoint;
use super::config::{ActionMode, AdvantageNormalization, AgentConfig, Algorithm, Credit, Encoder};
use super::decision::{
    action_index, allowed, argmax_allowed, decode_action, ensemble_picks, gaussian_log_prob, masked_log_softmax,
    per_service_action, per_service_allowed, per_service_log_softmax, sku_allowed, team_action, Choice, HALF_LN_2PI,
};
use super::graph::{GraphBatch, GraphKind, GraphNet, Taped};
use super::nn::{
    Actor, Adam, Critic, Dev, Heads, HeadsOn, ObsNorm, Params, ReturnNorm, Shapes, ACTIONS, MAX_SERVICES, MAX_SKUS,
    OBS_MAX,
};
use crate::rl::{Action, ActionMask, Env, EnvError, Observation};

/// What the policy network says about one observation.
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs {
    /// Logits of the joint action (`MAX_SERVICES x 5` for the MLP, `services x 5` for graphs).
    pub joint: Vec<f32>,
    /// Node-type logits (`MAX_SKUS` for the MLP, one per server type for graphs).
    pub sku: Vec<f32>,
    /// Per service: the quota head's mean and log standard deviation.
    pub mu: Vec<f32>,
    pub log_std: Vec<f32>,
    /// The state's value (with credit per service: the sum of the services' values).
    pub value: f64,
    /// Credit per service: each service's value (empty otherwise).
    pub service_values: Vec<f64>,
}

/// Splits a batch's heads and values (one per observation, or one per service of each) into one
/// [`Outputs`] per observation.
fn outputs<T: Tape<f32, Dev>>(heads: Heads<T>, values: Vec<f32>) -> Vec<Outputs> {
    let b = heads.joint.shape().0;
    let per_obs = values.len() / b.max(1);
    let values: Vec<Vec<f64>> = values.chunks(per_obs.max(1)).map(|c| c.iter().map(|&v| v as f64).collect()).collect();
    let rows = |v: Vec<f32>| -> Vec<Vec<f32>> {
        let w = v.len() / b.max(1);
        v.chunks(w.max(1)).map(|c| c.to_vec()).collect()
    };
    let (joint, sku, mu, log_std) =
        (rows(heads.joint.as_vec()), rows(heads.sku.as_vec()), rows(heads.mu.as_vec()), rows(heads.log_std.as_vec()));
    joint
        .into_iter()
        .zip(sku)
        .zip(mu.into_iter().zip(log_std))
        .zip(values)
        .map(|(((joint, sku), (mu, log_std)), v)| Outputs {
            joint,
            sku,
            mu,
            log_std,
            value: v.iter().sum(),
            service_values: if per_obs > 1 { v } else { Vec::new() },
        })
        .collect()
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
    /// The discounted returns' running statistics (`normalize_returns`).
    pub returns: ReturnNorm,
    pub steps: u64,
    /// Length of the application's flat observation (checked on load).
    pub flat_len: usize,
    rng: rand_pcg::Pcg64Mcg,
    /// The device of the second thread of a data-parallel update. Its own allocation
    /// book-keeping: tensors of one device share reference counts, which two threads would
    /// contend for on every operation (measured: slower than one thread).
    par_dev: Dev,
    /// Graph encoders: the second thread's copy of the network, on `par_dev`, refreshed before
    /// each minibatch (kept, so that it is not built and randomly initialised every time).
    par_net: Option<GraphNet>,
    /// The steps the learning-rate and entropy schedules run over (the training's `--steps` in
    /// all); 0: the end of the current [`train_team`] call.
    pub schedule_horizon: u64,
    /// The entropy coefficient of the next update (`entropy_coef`, or its schedule's value).
    entropy_coef_now: f64,
}

/// Why an application is too large for the MLP's fixed-width input and heads (`None`: it fits).
/// Graph encoders have no such limit.
pub fn mlp_too_small(layout: &crate::rl::observation::ObservationLayout) -> Option<String> {
    (layout.services > MAX_SERVICES || layout.flat_len() > OBS_MAX || layout.skus > MAX_SKUS).then(|| {
        format!(
            "{} services, {} observation features and {} server types; the MLP network takes at most {MAX_SERVICES}, {OBS_MAX} and {MAX_SKUS}",
            layout.services,
            layout.flat_len(),
            layout.skus
        )
    })
}

/// The observations of graph inputs.
fn graph_inputs<'a>(xs: &[&'a Input]) -> Vec<&'a Observation> {
    xs.iter()
        .map(|x| match x {
            Input::Graph(o) => o,
            Input::Flat(_) => unreachable!("graph encoders get graph inputs"),
        })
        .collect()
}

/// The graph kind of an encoder name.
pub fn graph_kind(encoder: Encoder) -> Option<GraphKind> {
    match encoder {
        Encoder::Gcn => Some(GraphKind::Gcn),
        Encoder::Gat => Some(GraphKind::Gat),
        Encoder::Mlp => None,
    }
}

impl Agent {
    pub fn new(config: AgentConfig, flat_len: usize, seed: u64) -> Self {
        let dev = Dev::seed_from_u64(seed);
        let par_dev = Dev::default();
        let (nets, actor_opt, critic_opt) = match graph_kind(config.encoder) {
            Some(kind) => {
                let net = GraphNet::new(&dev, kind);
                let opt = Adam::new(&net.shapes(), config.learning_rate, config.max_grad_norm);
                (Nets::Graph(net), opt, Adam::new(&[], config.learning_rate, config.max_grad_norm))
            }
            None => {
                let heads_dev = Dev::seed_from_u64(crate::engine::stream_seed(seed, "agent/heads") as u64);
                // The critic draws its initial weights from `dev` (after the actor, as before there
                // were two devices) and lives on `par_dev`, where its updates run.
                let (actor, critic) = (Actor::new(&dev, &heads_dev), Critic::new(&dev).on_device(&par_dev));
                let a = Adam::new(&actor.shapes(), config.learning_rate, config.max_grad_norm);
                let c = Adam::new(&critic.shapes(), config.learning_rate, config.max_grad_norm);
                (Nets::Mlp { actor, critic }, a, c)
            }
        };
        let config_entropy = config.entropy_coef;
        Agent {
            rng: rand_pcg::Pcg64Mcg::new(crate::engine::stream_seed(seed, "agent/sampling")),
            par_dev,
            par_net: None,
            config,
            dev,
            nets,
            actor_opt,
            critic_opt,
            norm: ObsNorm::new(OBS_MAX),
            returns: ReturnNorm::default(),
            steps: 0,
            flat_len,
            schedule_horizon: 0,
            entropy_coef_now: config_entropy,
        }
    }

    /// Sets the learning rate and the entropy coefficient for the next update from their linear
    /// schedules (`learning_rate_end`, `entropy_coef_end`) at `steps / horizon` of the way; a
    /// config without schedules keeps both constant.
    pub fn apply_schedules(&mut self, horizon: u64) {
        let done = (self.steps as f64 / horizon.max(1) as f64).min(1.0);
        let along = |start: f64, end: Option<f64>| end.map_or(start, |end| start + (end - start) * done);
        if self.config.learning_rate_end.is_some() {
            let lr = along(self.config.learning_rate, self.config.learning_rate_end);
            self.actor_opt.lr = lr;
            self.critic_opt.lr = lr;
        }
        self.entropy_coef_now = along(self.config.entropy_coef, self.config.entropy_coef_end);
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
        a.returns = ck.returns.clone();
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
            returns: self.returns.clone(),
        }
    }

    /// The network input for an observation met in training: the MLP's normaliser learns it
    /// first. (Acting on an observation: [`Self::act_input`].)
    pub fn learn_input(&mut self, obs: &Observation) -> Input {
        match self.nets {
            Nets::Mlp { .. } => {
                let f = obs.flat();
                self.norm.update(&f);
                Input::Flat(self.norm.apply(&f))
            }
            Nets::Graph(_) => Input::Graph(obs.clone()),
        }
    }

    fn flat_batch(&self, xs: &[&Input]) -> Tensor<(usize, Const<OBS_MAX>), f32, Dev> {
        // Row by row with slice copies (a flattening iterator went element by element).
        let mut flat: Vec<f32> = Vec::with_capacity(xs.len() * OBS_MAX);
        for x in xs {
            match x {
                Input::Flat(v) => flat.extend_from_slice(v),
                Input::Graph(o) => flat.extend_from_slice(&self.norm.apply(&o.flat())),
            }
        }
        self.dev.tensor_from_vec(flat, (xs.len(), Const::<OBS_MAX>))
    }

    fn graph_batch(&self, xs: &[&Input]) -> GraphBatch {
        GraphBatch::new(&self.dev, &graph_inputs(xs))
    }

    /// The optional heads this agent's configuration uses.
    pub fn heads_on(&self) -> HeadsOn {
        HeadsOn {
            node_type: self.config.node_type_head,
            quota: self.config.quota_head,
            service_values: self.per_service_credit(),
        }
    }

    /// The policy network's outputs and the state value of each input.
    pub fn evaluate_inputs(&self, xs: &[&Input]) -> Vec<Outputs> {
        match &self.nets {
            Nets::Mlp { actor, critic } => {
                let x = self.flat_batch(xs);
                let values = critic.forward(x.clone()).as_vec();
                outputs(actor.forward(x, self.heads_on()), values)
            }
            Nets::Graph(g) => {
                // Acting needs no tape: nothing is recorded for a backward pass.
                let (heads, v) = g.forward(&self.graph_batch(xs), NoneTape, self.heads_on());
                outputs(heads, v.as_vec())
            }
        }
    }

    /// Allowed joint actions for this agent's action layout.
    pub fn allowed(&self, mask: &ActionMask) -> Vec<bool> {
        match self.nets {
            Nets::Mlp { .. } => allowed(mask).to_vec(),
            Nets::Graph(_) => mask.deltas.iter().flat_map(|r| r.iter().copied()).collect(),
        }
    }

    /// The network input for acting (not learning) on one observation: the normaliser as it is.
    pub fn act_input(&self, obs: &Observation) -> Input {
        match self.nets {
            Nets::Mlp { .. } => Input::Flat(self.norm.apply(&obs.flat())),
            Nets::Graph(_) => Input::Graph(obs.clone()),
        }
    }

    /// The greedy decision (each head's mode among the allowed) for one observation, with the
    /// joint actions `joint_ok` allows.
    pub fn decide_greedy(&self, obs: &Observation, mask: &ActionMask, joint_ok: &[bool]) -> Choice {
        let out = self.evaluate_inputs(&[&self.act_input(obs)]).remove(0);
        let joint = argmax_allowed(&out.joint, joint_ok).unwrap_or(action_index(0, 2));
        let mut choice = Choice { joint, sku: None, u: None };
        if self.config.node_type_head && choice.delta() > 0 {
            choice.sku = argmax_allowed(&out.sku, &sku_allowed(mask, choice.service(), out.sku.len()));
        }
        if self.config.quota_head {
            choice.u = out.mu.get(choice.service()).copied();
        }
        choice
    }

    /// The greedy decision for one observation, over every allowed joint action.
    pub fn act_greedy(&self, obs: &Observation, mask: &ActionMask) -> Choice {
        self.decide_greedy(obs, mask, &self.allowed(mask))
    }

    /// Whether every service picks its own delta at each decision (`action: per_service`).
    pub fn per_service(&self) -> bool {
        self.config.action == ActionMode::PerService
    }

    /// Whether each service's decision is judged by its own part of the reward, against its own
    /// value (`credit: per_service`).
    pub fn per_service_credit(&self) -> bool {
        self.config.credit == Credit::PerService
    }

    /// Per-service mode: the greedy action (each service's most likely allowed delta).
    pub fn act_greedy_per_service(&self, obs: &Observation, mask: &ActionMask) -> Action {
        let out = self.evaluate_inputs(&[&self.act_input(obs)]).remove(0);
        let ok = per_service_allowed(&self.allowed(mask));
        let picks: Vec<u8> =
            out.joint.chunks(5).zip(ok.chunks(5)).map(|(l, a)| argmax_allowed(l, a).unwrap_or(2) as u8).collect();
        per_service_action(&picks, mask.deltas.len())
    }

    /// Per-service mode: every slot's probabilities of the deltas `ok` allows (masked softmax
    /// per slot, 5 per slot; `ok` as [`per_service_allowed`] makes it).
    pub fn per_service_probabilities(&self, obs: &Observation, ok: &[bool]) -> Vec<f64> {
        let out = self.evaluate_inputs(&[&self.act_input(obs)]).remove(0);
        per_service_log_softmax(&out.joint, ok).into_iter().map(f64::exp).collect()
    }

    /// Per-service mode: samples every slot's delta; returns the delta index of each slot, each
    /// slot's log-probability (the decision's is their sum) and the mask it was sampled under.
    fn decide_per_service(&mut self, out: &Outputs, joint_ok: &[bool]) -> (Vec<u8>, Vec<f64>, Vec<bool>) {
        let ok = per_service_allowed(joint_ok);
        let lp = per_service_log_softmax(&out.joint, &ok);
        let mut picks = Vec::with_capacity(lp.len() / 5);
        let mut slot_logps = Vec::with_capacity(lp.len() / 5);
        for row in lp.chunks(5) {
            let d = self.sample(row);
            slot_logps.push(row[d]);
            picks.push(d as u8);
        }
        (picks, slot_logps, ok)
    }

    /// Samples every head in use; returns the decision, its log-probability and the node-type
    /// mask it was sampled under.
    fn decide_sampled(&mut self, out: &Outputs, joint_ok: &[bool], mask: &ActionMask) -> (Choice, f64, Vec<bool>) {
        let lp = masked_log_softmax(&out.joint, joint_ok);
        let joint = self.sample(&lp);
        let mut logp = lp[joint];
        let mut choice = Choice { joint, sku: None, u: None };
        let sku_ok = sku_allowed(mask, choice.service(), out.sku.len());
        if self.config.node_type_head && choice.delta() > 0 && sku_ok.iter().any(|&ok| ok) {
            let lk = masked_log_softmax(&out.sku, &sku_ok);
            let k = self.sample(&lk);
            logp += lk[k];
            choice.sku = Some(k);
        }
        if self.config.quota_head {
            let s = choice.service();
            let (mu, log_std) = (out.mu[s] as f64, out.log_std[s] as f64);
            let u = (mu + log_std.exp() * self.standard_normal()) as f32;
            logp += gaussian_log_prob(u as f64, mu, log_std);
            choice.u = Some(u);
        }
        (choice, logp, sku_ok)
    }

    /// A standard normal draw (Box-Muller on two uniforms of the agent's stream).
    fn standard_normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.gen::<f64>();
        let u2: f64 = self.rng.gen();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
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

/// The greedy joint action of a team (one agent, or one per service) for one observation.
pub fn team_greedy(team: &[Agent], obs: &Observation, mask: &ActionMask) -> Action {
    let m = team.len();
    if m == 1 && team[0].per_service() {
        return team[0].act_greedy_per_service(obs, mask);
    }
    let choices: Vec<Choice> = team
        .iter()
        .enumerate()
        .map(|(p, ag)| {
            let mut c = ag.decide_greedy(obs, mask, &team_mask(ag, mask, p, m));
            if m > 1 && c.service() != p {
                // Nothing allowed for this member's service: it holds.
                c = Choice { joint: action_index(p.min(MAX_SERVICES - 1), 2), sku: None, u: None };
            }
            c
        })
        .collect();
    team_action(&choices)
}

/// Per-service mode: an ensemble's greedy action (the members' probabilities summed per slot:
/// [`ensemble_picks`]). The members share one agent config, so one mask serves them all.
pub fn ensemble_greedy(members: &[Agent], obs: &Observation, mask: &ActionMask) -> Action {
    let services = mask.deltas.len();
    let Some(lead) = members.first() else {
        // No member: every service holds.
        return per_service_action(&vec![2; services], services);
    };
    let ok = per_service_allowed(&lead.allowed(mask));
    let probabilities: Vec<Vec<f64>> = members.iter().map(|m| m.per_service_probabilities(obs, &ok)).collect();
    per_service_action(&ensemble_picks(&probabilities, &ok), services)
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
            let action = match agent {
                Some(ag) => team_greedy(std::slice::from_ref(ag), &obs, &mask),
                None => {
                    let ok = allowed(&mask);
                    let choices: Vec<usize> = (0..ACTIONS).filter(|&a| ok[a]).collect();
                    decode_action(choices[rng.gen_range(0..choices.len())])
                }
            };
            let st = env.step(&action)?;
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
mod tests;
