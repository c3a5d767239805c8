//! The agent and its training: PPO (clipped objective, GAE(lambda), value loss, entropy bonus,
//! minibatch epochs, gradient-norm clipping, observation normalisation, action masks on the logits)
//! and A2C (one pass, the plain policy gradient), over N vectorised environments; sampling and
//! greedy decisions from the networks' heads (the decision's layout and probabilities:
//! [`super::decision`]). Updates run on two threads; the result does not depend on scheduling.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

use super::checkpoint::Checkpoint;
use super::config::{ActionMode, AdvantageNormalization, AgentConfig, Algorithm, Credit, Encoder};
use super::decision::{
    action_index, allowed, argmax_allowed, decode_action, gaussian_log_prob, masked_log_softmax, per_service_action,
    per_service_allowed, per_service_log_softmax, sku_allowed, team_action, Choice, HALF_LN_2PI,
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
    /// How much of the returns' variance the critic's values explain, before the update:
    /// `1 - Var(returns - values) / Var(returns)`. 1 is a perfect critic, 0 one that predicts the
    /// mean, negative one worse than that (its advantages are then mostly noise).
    pub explained_variance: f64,
    /// The policy network's gradient norm before clipping (a graph agent's one network, critic
    /// included), mean over the update's minibatches.
    pub grad_norm: f64,
    /// The MLP critic's own gradient norm before clipping; `None` where the critic shares the
    /// policy's network (graph agents).
    pub critic_grad_norm: Option<f64>,
    /// Each head's part of `entropy` (they add up to it).
    pub heads: HeadEntropies,
}

/// Each head's part of a decision's entropy, nats, mean over samples: the replica deltas (the
/// joint service-and-delta choice, or the sum over services), the node type (counted on the
/// scale-ups that chose one, as in the total) and the CPU quota (the Gaussian's entropy). `None`:
/// the head is off.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HeadEntropies {
    pub replicas: f64,
    pub node_type: Option<f64>,
    pub quota: Option<f64>,
}

impl HeadEntropies {
    /// `self + w * other`, head by head (an average's running sum).
    fn add_scaled(&mut self, other: &HeadEntropies, w: f64) {
        self.replicas += w * other.replicas;
        add_present(&mut self.node_type, other.node_type.map(|b| w * b));
        add_present(&mut self.quota, other.quota.map(|b| w * b));
    }
}

/// Adds `b` to the running sum `a` of a statistic that not every network or head has: `None`
/// stays `None` until a value comes.
fn add_present(a: &mut Option<f64>, b: Option<f64>) {
    if let Some(b) = b {
        *a = Some(a.unwrap_or(0.0) + b);
    }
}

/// Shifts and scales `v` to mean 0 and standard deviation 1 (the deviation floored at 1e-8).
pub fn normalize(v: &mut [f64]) {
    let count = v.len() as f64;
    let mean = v.iter().sum::<f64>() / count;
    let std = (v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / count).sqrt().max(1e-8);
    v.iter_mut().for_each(|a| *a = (*a - mean) / std);
}

/// `adv` (`per` values per sample) with the samples of `chunk` normalised among themselves; the
/// others left as they are (a minibatch reads only its own).
fn minibatch_normalized(adv: &[f64], chunk: &[usize], per: usize) -> Vec<f64> {
    let mut mine: Vec<f64> = chunk.iter().flat_map(|&i| adv[i * per..(i + 1) * per].iter().copied()).collect();
    normalize(&mut mine);
    let mut all = adv.to_vec();
    for (k, &i) in chunk.iter().enumerate() {
        all[i * per..(i + 1) * per].copy_from_slice(&mine[k * per..(k + 1) * per]);
    }
    all
}

/// The mean over samples of `-x` (an entropy from summed `p log p` values).
fn mean_neg(x: &[f32]) -> f64 {
    -x.iter().map(|&v| v as f64).sum::<f64>() / x.len().max(1) as f64
}

/// `1 - Var(returns - values) / Var(returns)` (0 when the returns do not vary).
pub fn explained_variance(values: &[f64], returns: &[f64]) -> f64 {
    let n = returns.len().min(values.len());
    if n == 0 {
        return 0.0;
    }
    let var = |x: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = x.collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64
    };
    let var_ret = var(&mut returns[..n].iter().copied());
    if var_ret <= 0.0 {
        return 0.0;
    }
    1.0 - var(&mut returns[..n].iter().zip(&values[..n]).map(|(r, v)| r - v)) / var_ret
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

    /// The policy part of the loss (taped) and its statistics: the PPO clipped objective (or
    /// A2C's policy gradient) on the log-probability of the whole decision, and the entropy bonus
    /// of every head in use. `tape` joins the heads' tapes (the graph network's forward pass).
    fn policy_loss(
        &self,
        dev: &Dev,
        heads: Heads<OwnedTape<f32, Dev>>,
        tape: OwnedTape<f32, Dev>,
        mb: &Minibatch,
        ppo: bool,
    ) -> (Taped<()>, Vec<f32>, f64, HeadEntropies) {
        let b = mb.joint.len();
        let rows = |v: &[f32]| dev.tensor_from_vec(v.to_vec(), (b, v.len() / b));
        let col = |v: Vec<f32>| dev.tensor_from_vec(v, (b,));
        let idx = |v: &[usize]| dev.tensor_from_vec(v.to_vec(), (b,));
        let (joint, t1) = heads.joint.split_tape();
        let (sku, t2) = heads.sku.split_tape();
        let (mu, t3) = heads.mu.split_tape();
        let (log_std, t4) = heads.log_std.split_tape();
        let tape = tape.merge(t1).merge(t2).merge(t3).merge(t4);
        // The tape moves from op to op so that every op is recorded (a tensor's gradient is keyed
        // by its id, which its clones share; untaped operands of a taped op get theirs too).
        let (masked, tape) = (joint.put_tape(tape) + rows(&mb.joint_mask)).split_tape();
        let (lp, tape) = if self.per_service() {
            // One softmax per service slot: (B, S x 5) viewed as (B x S, 5) and back.
            let w = masked.shape().1;
            let (per_slot, tape) =
                masked.put_tape(tape).reshape_like(&(b * (w / 5), Const::<5>)).log_softmax::<Axis<1>>().split_tape();
            per_slot.put_tape(tape).reshape_like(&(b, w)).split_tape()
        } else {
            masked.put_tape(tape).log_softmax::<Axis<1>>().split_tape()
        };
        // The sum over every slot of p log p: the joint entropy, or per service the sum of the
        // services' entropies (independent choices).
        let (mut neg_ent, tape) =
            (lp.clone().put_tape(tape).exp() * lp.clone()).sum::<(usize,), Axis<1>>().split_tape();
        let mut heads = HeadEntropies { replicas: mean_neg(&neg_ent.as_vec()), ..Default::default() };
        if mb.slots > 0 {
            let (loss, logp_vec, entropy) = self.slot_policy_loss(dev, lp, neg_ent, tape, mb, ppo);
            return (loss, logp_vec, entropy, heads);
        }
        let (mut logp, mut tape) = if self.per_service() {
            (lp.put_tape(tape) * rows(&mb.onehot)).sum::<(usize,), Axis<1>>().split_tape()
        } else {
            lp.put_tape(tape).select(idx(&mb.joint)).split_tape()
        };
        if self.config.node_type_head {
            // Only a scale-up chose a node type: its log-probability and entropy count there.
            let used = col(mb.sku_used.clone());
            let (sl, t) = (sku.put_tape(tape) + rows(&mb.sku_mask)).log_softmax::<Axis<1>>().split_tape();
            let (sku_neg_ent, t) = (sl.clone().put_tape(t).exp() * sl.clone()).sum::<(usize,), Axis<1>>().split_tape();
            let counted: Vec<f32> = sku_neg_ent.as_vec().iter().zip(&mb.sku_used).map(|(e, u)| e * u).collect();
            heads.node_type = Some(mean_neg(&counted));
            let (sku_lp, t) = sl.put_tape(t).select(idx(&mb.sku)).split_tape();
            let (l, t) = (logp.put_tape(t) + sku_lp * used.clone()).split_tape();
            let (e, t) = (neg_ent.put_tape(t) + sku_neg_ent * used).split_tape();
            (logp, neg_ent, tape) = (l, e, t);
        }
        if self.config.quota_head {
            let (mu_s, t) = mu.put_tape(tape).select(idx(&mb.service)).split_tape();
            let (ls_s, t) = log_std.put_tape(t).select(idx(&mb.service)).split_tape();
            let (inv_sigma, t) = ls_s.clone().put_tape(t).negate().exp().split_tape();
            let (z, t) = ((mu_s.put_tape(t) - col(mb.u.clone())) * inv_sigma).split_tape();
            let (q_lp, t) = (z.put_tape(t).square() * -0.5 - ls_s.clone() - HALF_LN_2PI as f32).split_tape();
            let (l, t) = (logp.put_tape(t) + q_lp).split_tape();
            let gaussian: Vec<f32> = ls_s.as_vec().iter().map(|l| -(l + (0.5 + HALF_LN_2PI) as f32)).collect();
            heads.quota = Some(mean_neg(&gaussian));
            // The Gaussian's entropy, ln sigma + (1 + ln 2 pi) / 2, stands in for the squashed
            // one's (which has no closed form).
            let (e, t) = (neg_ent.put_tape(t) - ls_s - (0.5 + HALF_LN_2PI) as f32).split_tape();
            (logp, neg_ent, tape) = (l, e, t);
        }
        let (ent_term, tape, entropy) = self.entropy_bonus(neg_ent, tape);
        let logp_vec = logp.as_vec();
        let loss = -self.surrogate(dev, logp.put_tape(tape), mb, ppo).mean() + ent_term;
        (loss, logp_vec, entropy, heads)
    }

    /// The entropy bonus of a minibatch (`entropy_coef` x the mean of `neg_ent`, each sample's
    /// summed `p log p`; taped) and the mean entropy it reports.
    fn entropy_bonus(
        &self,
        neg_ent: Tensor<(usize,), f32, Dev>,
        tape: OwnedTape<f32, Dev>,
    ) -> (Tensor<(), f32, Dev>, OwnedTape<f32, Dev>, f64) {
        let entropy = mean_neg(&neg_ent.as_vec());
        let (ent_term, tape) = (neg_ent.put_tape(tape).mean() * self.entropy_coef_now as f32).split_tape();
        (ent_term, tape, entropy)
    }

    /// The policy-gradient objective of each element of `logp` (a decision's log-probability, or
    /// with credit per service a slot's) against `mb`'s advantages and old log-probabilities, laid
    /// out alike: PPO's clipped `min(r A, clip(r) A)`, or A2C's `logp A`.
    fn surrogate(&self, dev: &Dev, logp: Taped<(usize,)>, mb: &Minibatch, ppo: bool) -> Taped<(usize,)> {
        let eps = self.config.clip as f32;
        let col = |v: Vec<f32>| dev.tensor_from_vec(v, (mb.adv.len(),));
        let a = col(mb.adv.iter().map(|&x| x as f32).collect());
        if ppo {
            // Per-element bounds make min(r A, clip(r) A) a single use of r: for A >= 0 it is
            // A * min(r, 1 + eps), for A < 0 it is A * max(r, 1 - eps).
            let upper = col(mb.adv.iter().map(|&x| if x >= 0.0 { 1.0 + eps } else { 1e9 }).collect());
            let lower = col(mb.adv.iter().map(|&x| if x >= 0.0 { -1e9 } else { 1.0 - eps }).collect());
            let ratio = (logp - col(mb.logp_old.clone())).exp();
            ratio.minimum(upper).maximum(lower) * a
        } else {
            logp * a
        }
    }

    /// [`Self::policy_loss`] with credit per service: each service's delta has its own ratio,
    /// clipped on its own, and its own advantage; the objective is their sum, averaged over the
    /// minibatch (a service's gradient is what it would be alone). `lp` are the per-slot
    /// log-softmaxes `(B, S x 5)`, `neg_ent` the summed `p log p` per sample.
    fn slot_policy_loss(
        &self,
        dev: &Dev,
        lp: Tensor<(usize, usize), f32, Dev>,
        neg_ent: Tensor<(usize,), f32, Dev>,
        tape: OwnedTape<f32, Dev>,
        mb: &Minibatch,
        ppo: bool,
    ) -> (Taped<()>, Vec<f32>, f64) {
        let (b, slots) = (mb.joint.len(), mb.slots);
        let onehot = dev.tensor_from_vec(mb.onehot.clone(), (b, slots * 5));
        let (ent_term, tape, entropy) = self.entropy_bonus(neg_ent, tape);
        let (logp, tape) =
            (lp.put_tape(tape) * onehot).reshape_like(&(b * slots, Const::<5>)).sum::<(usize,), Axis<1>>().split_tape();
        // The decision's log-probability (the sum of its slots'), for the update's statistics.
        let logp_vec: Vec<f32> = logp.as_vec().chunks(slots).map(|c| c.iter().sum()).collect();
        let per_sample = 1.0 / b as f32;
        let loss = -(self.surrogate(dev, logp.put_tape(tape), mb, ppo).sum::<(), _>() * per_sample) + ent_term;
        (loss, logp_vec, entropy)
    }

    /// One PPO (or A2C) update on a rollout.
    fn update(&mut self, buf: &Buffer, adv: &[f64], returns: &[f64]) -> UpdateStats {
        let n = buf.inputs.len();
        let ppo = self.config.algorithm == Algorithm::Ppo;
        let (epochs, mb) = if ppo { (self.config.epochs, self.config.minibatch.min(n)) } else { (1, n) };
        // Normalised advantages (over every sample, and with credit per service every service).
        let mut adv = adv.to_vec();
        normalize(&mut adv);
        let per_minibatch = self.config.advantage_normalization == AdvantageNormalization::Minibatch;
        // Advantages per sample: one, or one per service (credit per service).
        let per = adv.len() / n.max(1);
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
                let local;
                let adv: &[f64] = if per_minibatch {
                    local = minibatch_normalized(&adv, chunk, per);
                    &local
                } else {
                    &adv
                };
                let out = match self.nets {
                    Nets::Mlp { .. } => self.mlp_minibatch(buf, chunk, adv, returns, ppo),
                    Nets::Graph(_) => self.graph_minibatch(buf, chunk, adv, returns),
                };
                let logp_vec = &out.logp;
                let (mut kl, mut clipped) = (0.0, 0.0);
                for (k, &i) in chunk.iter().enumerate() {
                    // d = log(old/new); with r = new/old = exp(-d), KL(old || new) is estimated
                    // by (r - 1) - log r (Schulman's k3): unbiased like the mean of d, and never
                    // negative, where the mean of d often is on a minibatch.
                    let d = buf.logps[i] - logp_vec[k] as f64;
                    kl += (-d).exp() - 1.0 + d;
                    if ((-d).exp() - 1.0).abs() > eps {
                        clipped += 1.0;
                    }
                }
                stats.policy_loss += out.policy_loss;
                stats.value_loss += out.value_loss;
                stats.entropy += out.entropy;
                stats.heads.add_scaled(&out.heads, 1.0);
                stats.grad_norm += out.grad_norm;
                add_present(&mut stats.critic_grad_norm, out.critic_grad_norm);
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
            stats.grad_norm /= batches;
            stats.critic_grad_norm = stats.critic_grad_norm.map(|c| c / batches);
            let mut heads = HeadEntropies::default();
            heads.add_scaled(&stats.heads, 1.0 / batches);
            stats.heads = heads;
        }
        stats.explained_variance = if buf.service_values.is_empty() {
            explained_variance(&buf.values, returns)
        } else {
            explained_variance(&buf.service_values.concat(), returns)
        };
        stats
    }
}

impl Agent {
    /// One minibatch step of the MLP agent.
    /// Actor and critic are separate networks with separate optimisers: their updates run side by
    /// side on two threads (same arithmetic as one after the other, so the result does not depend
    /// on scheduling), each on its own device.
    fn mlp_minibatch(
        &mut self,
        buf: &Buffer,
        chunk: &[usize],
        adv: &[f64],
        returns: &[f64],
        ppo: bool,
    ) -> MinibatchOut {
        let Nets::Mlp { actor, critic } = &self.nets else { unreachable!("called for MLP agents") };
        let b = chunk.len();
        let xs: Vec<&Input> = chunk.iter().map(|&i| &buf.inputs[i]).collect();
        let batch = Minibatch::new(buf, chunk, adv);
        let ret: Vec<f32> = chunk.iter().map(|&i| returns[i] as f32).collect();
        let ret = self.par_dev.tensor_from_vec(ret, (b, Const::<1>));
        let vc = self.config.value_coef as f32;
        let x = self.flat_batch(&xs);
        let xc = self.par_dev.tensor_from_vec(x.as_vec(), *x.shape());
        let (mut actor, mut critic) = (actor.clone(), critic.clone());
        let mut actor_opt = std::mem::replace(&mut self.actor_opt, Adam::new(&[], 0.0, 0.0));
        let mut critic_opt = std::mem::replace(&mut self.critic_opt, Adam::new(&[], 0.0, 0.0));
        let this = &*self;
        let (mut out, (vloss_v, critic_norm)) = std::thread::scope(|scope| {
            let value_side = scope.spawn(|| {
                let v = critic.forward(xc.traced(Gradients::leaky()));
                let vloss = (v - ret).square().mean() * vc;
                let vloss_v = vloss.array() as f64;
                let norm = critic_opt.step(&mut critic, &mut vloss.backward());
                (vloss_v, norm)
            });
            let heads = actor.forward(x.traced(Gradients::leaky()), this.heads_on());
            let (loss, logp, entropy, heads) = this.policy_loss(&this.dev, heads, OwnedTape::default(), &batch, ppo);
            let policy_loss = loss.array() as f64;
            let grad_norm = actor_opt.step(&mut actor, &mut loss.backward());
            let out = MinibatchOut { policy_loss, logp, entropy, heads, grad_norm, ..Default::default() };
            (out, value_side.join().expect("the critic's update thread"))
        });
        self.actor_opt = actor_opt;
        self.critic_opt = critic_opt;
        self.nets = Nets::Mlp { actor, critic };
        out.value_loss = vloss_v;
        out.critic_grad_norm = Some(critic_norm);
        out
    }

    /// One minibatch step of a graph agent.
    /// Data parallel on two threads: each half of the minibatch gets its own forward and backward
    /// pass; every loss is a mean, so the minibatch's gradient is the halves' gradients weighted by
    /// their sizes, summed in a fixed order (the result does not depend on scheduling).
    fn graph_minibatch(&mut self, buf: &Buffer, chunk: &[usize], adv: &[f64], returns: &[f64]) -> MinibatchOut {
        let Nets::Graph(g) = &self.nets else { unreachable!("called for graph agents") };
        let b = chunk.len();
        // The second thread works on its own copy of the network, on its own device.
        let mut g2 = self.par_net.take().unwrap_or_else(|| g.on_device(&self.par_dev));
        g2.set(&g.get());
        let this = &*self;
        let parts: Vec<&[usize]> = chunk.chunks(b.div_ceil(2).max(1)).collect();
        let halves: Vec<PartGradients> = std::thread::scope(|scope| {
            let second = parts.get(1).map(|&p| {
                let (g2, dev2) = (&g2, &this.par_dev);
                scope.spawn(move || this.graph_gradients(g2, dev2, buf, p, adv, returns))
            });
            let first = this.graph_gradients(g, &this.dev, buf, parts[0], adv, returns);
            std::iter::once(first).chain(second.map(|h| h.join().expect("the second half's gradient thread"))).collect()
        });
        let weight = |h: &PartGradients| h.len as f64 / b as f64;
        let mut grads = halves[0].grads.clone();
        let w0 = weight(&halves[0]) as f32;
        grads.iter_mut().flatten().for_each(|x| *x *= w0);
        for h in &halves[1..] {
            let w = weight(h) as f32;
            for (acc, part) in grads.iter_mut().zip(&h.grads) {
                acc.iter_mut().zip(part).for_each(|(a, x)| *a += w * x);
            }
        }
        let mut g = g.clone();
        let grad_norm = self.actor_opt.step_with(&mut g, grads);
        self.nets = Nets::Graph(g);
        self.par_net = Some(g2);
        let avg = |f: &dyn Fn(&PartGradients) -> f64| halves.iter().map(|h| weight(h) * f(h)).sum::<f64>();
        let mut heads = HeadEntropies::default();
        halves.iter().for_each(|h| heads.add_scaled(&h.heads, weight(h)));
        MinibatchOut {
            policy_loss: avg(&|h| h.loss),
            value_loss: avg(&|h| h.value_loss),
            logp: halves.iter().flat_map(|h| h.logp.iter().copied()).collect(),
            entropy: avg(&|h| h.entropy),
            heads,
            grad_norm,
            critic_grad_norm: None,
        }
    }
}

/// What one minibatch step reports.
#[derive(Default)]
struct MinibatchOut {
    policy_loss: f64,
    value_loss: f64,
    /// The decisions' log-probabilities under the network before the step.
    logp: Vec<f32>,
    entropy: f64,
    heads: HeadEntropies,
    grad_norm: f64,
    critic_grad_norm: Option<f64>,
}

/// One part of a minibatch's gradient (data-parallel graph updates), with its statistics.
struct PartGradients {
    len: usize,
    grads: Vec<Vec<f32>>,
    loss: f64,
    value_loss: f64,
    entropy: f64,
    heads: HeadEntropies,
    logp: Vec<f32>,
}

impl Agent {
    /// The gradient of the graph network's loss (policy loss + c_v * value loss, one tape) on the
    /// samples `part` of `buf`.
    fn graph_gradients(
        &self,
        g: &GraphNet,
        dev: &Dev,
        buf: &Buffer,
        part: &[usize],
        adv: &[f64],
        returns: &[f64],
    ) -> PartGradients {
        let ppo = self.config.algorithm == Algorithm::Ppo;
        let xs: Vec<&Input> = part.iter().map(|&i| &buf.inputs[i]).collect();
        let batch = Minibatch::new(buf, part, adv);
        // One return per sample, or per service of each (credit per service).
        let per = returns.len() / buf.inputs.len().max(1);
        let ret: Vec<f32> =
            part.iter().flat_map(|&i| returns[i * per..(i + 1) * per].iter().map(|&r| r as f32)).collect();
        let ret = dev.tensor_from_vec(ret, (part.len() * per, Const::<1>));
        let (heads, value) =
            g.forward(&GraphBatch::new(dev, &graph_inputs(&xs)), OwnedTape::default(), self.heads_on());
        let (value, tape) = value.split_tape();
        let (loss, logp, entropy, heads) = self.policy_loss(dev, heads, tape, &batch, ppo);
        let loss_v = loss.array() as f64;
        let (loss, tape) = loss.split_tape();
        let vloss = (value.put_tape(tape) - ret).square().mean() * self.config.value_coef as f32;
        let value_loss = vloss.array() as f64;
        let mut grads = (vloss + loss).backward();
        PartGradients { len: part.len(), grads: g.grads(&mut grads), loss: loss_v, value_loss, entropy, heads, logp }
    }
}

/// A minibatch of a rollout as the loss reads it: masks as 0 / -1e9 addends, the decisions'
/// parts, the log-probabilities they were sampled with, and the normalised advantages.
struct Minibatch {
    joint_mask: Vec<f32>,
    sku_mask: Vec<f32>,
    joint: Vec<usize>,
    service: Vec<usize>,
    sku: Vec<usize>,
    /// 1 where the node-type head chose (a scale-up), else 0.
    sku_used: Vec<f32>,
    u: Vec<f32>,
    /// Per-service mode: 1 at each slot's chosen delta, in the joint logits' layout.
    onehot: Vec<f32>,
    logp_old: Vec<f32>,
    adv: Vec<f64>,
    /// Credit per service: the services per sample, and `logp_old` and `adv` are per service
    /// (sample-major); 0 otherwise.
    slots: usize,
}

impl Minibatch {
    fn new(buf: &Buffer, chunk: &[usize], adv: &[f64]) -> Minibatch {
        let addend = |ok: &bool| if *ok { 0.0f32 } else { -1e9 };
        let pick = |f: &dyn Fn(&Choice) -> usize| chunk.iter().map(|&i| f(&buf.choices[i])).collect::<Vec<usize>>();
        let slots = buf.service_values.first().map_or(0, Vec::len);
        Minibatch {
            joint_mask: chunk.iter().flat_map(|&i| buf.masks[i].iter().map(addend)).collect(),
            sku_mask: chunk.iter().flat_map(|&i| buf.sku_masks[i].iter().map(addend)).collect(),
            joint: pick(&|c| c.joint),
            service: pick(&|c| c.service()),
            sku: pick(&|c| c.sku.unwrap_or(0)),
            sku_used: chunk.iter().map(|&i| if buf.choices[i].sku.is_some() { 1.0 } else { 0.0 }).collect(),
            u: chunk.iter().map(|&i| buf.choices[i].u.unwrap_or(0.0)).collect(),
            onehot: if buf.picks.is_empty() {
                Vec::new()
            } else {
                chunk
                    .iter()
                    .flat_map(|&i| {
                        buf.picks[i].iter().flat_map(|&d| (0..5u8).map(move |k| if k == d { 1.0 } else { 0.0 }))
                    })
                    .collect()
            },
            logp_old: if slots > 0 {
                chunk.iter().flat_map(|&i| buf.slot_logps[i].iter().map(|&l| l as f32)).collect()
            } else {
                chunk.iter().map(|&i| buf.logps[i] as f32).collect()
            },
            adv: if slots > 0 {
                chunk.iter().flat_map(|&i| adv[i * slots..(i + 1) * slots].iter().copied()).collect()
            } else {
                chunk.iter().map(|&i| adv[i]).collect()
            },
            slots,
        }
    }
}

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
    "step,mean_episode_reward,episodes,policy_loss,value_loss,entropy,approx_kl,clip_fraction,explained_variance,grad_norm,critic_grad_norm,entropy_replicas,entropy_node_type,entropy_quota,stage,format_version";

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
    /// Allowed joint actions, and allowed node types for the chosen service.
    masks: Vec<Vec<bool>>,
    sku_masks: Vec<Vec<bool>>,
    choices: Vec<Choice>,
    /// Per-service mode: the delta index each service slot chose (empty otherwise).
    picks: Vec<Vec<u8>>,
    /// Per-service mode: each slot's log-probability (`logps` holds their sum).
    slot_logps: Vec<Vec<f64>>,
    logps: Vec<f64>,
    values: Vec<f64>,
    /// Credit per service: each service's value (empty otherwise).
    service_values: Vec<Vec<f64>>,
    finals: Vec<Option<Input>>,
}

impl Buffer {
    /// Records one per-service decision: its input, mask, each slot's pick and log-probability,
    /// and the values it was taken with (each service's too with credit per service).
    fn push_per_service(
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
    fn gaussian_log_prob_by_hand() {
        // N(0, 1) at 0.5: -0.125 - ln(2 pi) / 2 = -1.043939; N(1, e^-1) at 1.5: z = 0.5 e =
        // 1.359141, -z^2 / 2 + 1 - 0.918939 = -0.842571.
        assert!((gaussian_log_prob(0.5, 0.0, 0.0) - -1.043_938_533).abs() < 1e-8);
        assert!((gaussian_log_prob(1.5, 1.0, -1.0) - -0.842_570_5).abs() < 1e-6);
    }

    /// Three services in a chain, two server types; every feature in [0, 1].
    fn three_services() -> Observation {
        let f = |seed: f32| (0..crate::rl::observation::SERVICE_FEATURES).map(move |i| (seed + i as f32 * 0.37) % 1.0);
        Observation {
            services: f(0.1).chain(f(0.5)).chain(f(0.8)).collect(),
            edges: vec![0.4, 0.2, 0.1, 0.7, 0.5, 0.0],
            edge_index: vec![(0, 1), (1, 2)].into(),
            skus: vec![0.5, 0.25, 1.0, 0.2, 0.6, 0.4],
            global: vec![0.3, 0.1, 0.2],
            time_s: 0.0,
        }
    }

    fn full_action(encoder: &str) -> AgentConfig {
        serde_yaml_ng::from_str(&format!("encoder: {encoder}\nalgorithm: ppo\nnode_type_head: true\nquota_head: true"))
            .unwrap()
    }

    /// Decisions sampled with every head, their log-probabilities as the rollout stored them,
    /// and the same log-probabilities as the loss recomputes them from the network.
    fn sampled_and_recomputed(encoder: &str, mask: &ActionMask) -> (Buffer, Vec<f32>) {
        let obs = three_services();
        let mut ag = Agent::new(full_action(encoder), obs.flat().len(), 5);
        let x = ag.act_input(&obs);
        let out = ag.evaluate_inputs(&[&x]).remove(0);
        let joint_ok = ag.allowed(mask);
        let mut buf = Buffer::default();
        for _ in 0..200 {
            let (c, logp, sku_mask) = ag.decide_sampled(&out, &joint_ok, mask);
            buf.inputs.push(x.clone());
            buf.masks.push(joint_ok.clone());
            buf.sku_masks.push(sku_mask);
            buf.choices.push(c);
            buf.logps.push(logp);
        }
        let (recomputed, _, _) = loss_log_probabilities(&ag, &buf);
        (buf, recomputed)
    }

    /// The log-probabilities of `buf`'s decisions as the loss recomputes them from the network,
    /// and the entropy it reports, in all and by head.
    fn loss_log_probabilities(ag: &Agent, buf: &Buffer) -> (Vec<f32>, f64, HeadEntropies) {
        let chunk: Vec<usize> = (0..buf.inputs.len()).collect();
        let mb = Minibatch::new(buf, &chunk, &vec![1.0; chunk.len()]);
        let xs: Vec<&Input> = buf.inputs.iter().collect();
        let (heads, tape) = match &ag.nets {
            Nets::Mlp { actor, .. } => {
                (actor.forward(ag.flat_batch(&xs).traced(Gradients::leaky()), ag.heads_on()), OwnedTape::default())
            }
            Nets::Graph(g) => {
                let (heads, value) = g.forward(&ag.graph_batch(&xs), OwnedTape::default(), ag.heads_on());
                (heads, value.split_tape().1)
            }
        };
        let (_, recomputed, entropy, by_head) = ag.policy_loss(&ag.dev, heads, tape, &mb, true);
        (recomputed, entropy, by_head)
    }

    #[test]
    fn advantage_normalization_by_hand() {
        // [1, 2, 3]: mean 2, standard deviation sqrt(2/3); (x - 2) / sqrt(2/3) = -1.2247, 0, 1.2247.
        let mut v = vec![1.0, 2.0, 3.0];
        normalize(&mut v);
        let z = (1.5f64).sqrt();
        assert!((v[0] + z).abs() < 1e-12 && v[1].abs() < 1e-12 && (v[2] - z).abs() < 1e-12, "{v:?}");
        // Per minibatch: samples 2 and 0 (two values each) normalised among themselves,
        // [10, 20 | 0, 0 | 30, 40] -> samples 0 and 2 over {10, 20, 30, 40}: mean 25, sd sqrt(125).
        let all = minibatch_normalized(&[10.0, 20.0, 0.0, 0.0, 30.0, 40.0], &[2, 0], 2);
        let s = 125f64.sqrt();
        let want = [-15.0 / s, -5.0 / s, 0.0, 0.0, 5.0 / s, 15.0 / s];
        assert!(all.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{all:?}");
    }

    #[test]
    fn learning_rate_and_entropy_schedules_by_hand() {
        let cfg: AgentConfig = serde_yaml_ng::from_str(
            "encoder: mlp\nalgorithm: ppo\nlearning_rate: 0.001\nlearning_rate_end: 0.0001\nentropy_coef: 0.01\nentropy_coef_end: 0.0",
        )
        .unwrap();
        let mut ag = Agent::new(cfg.clone(), 40, 1);
        // A quarter of the way: 0.001 - 0.25 x 0.0009 = 0.000775; 0.01 - 0.25 x 0.01 = 0.0075.
        ag.steps = 250;
        ag.apply_schedules(1000);
        assert!((ag.actor_opt.lr - 0.000775).abs() < 1e-15 && (ag.critic_opt.lr - 0.000775).abs() < 1e-15);
        assert!((ag.entropy_coef_now - 0.0075).abs() < 1e-15);
        // Past the horizon: the end values.
        ag.steps = 2000;
        ag.apply_schedules(1000);
        assert!((ag.actor_opt.lr - 0.0001).abs() < 1e-15 && ag.entropy_coef_now.abs() < 1e-15);
        // Without schedules: constant.
        let mut plain = Agent::new(AgentConfig { learning_rate_end: None, entropy_coef_end: None, ..cfg }, 40, 1);
        plain.steps = 500;
        plain.apply_schedules(1000);
        assert_eq!((plain.actor_opt.lr, plain.entropy_coef_now), (0.001, 0.01));
    }

    #[test]
    fn each_heads_entropy_by_hand_and_their_sum() {
        // The setting of the test below: every head on, some choices masked. By hand from the
        // network's outputs: the joint softmax's entropy; each scale-up's node-type softmax
        // entropy (0 for the other decisions); the chosen service's Gaussian,
        // ln sigma + (1 + ln 2 pi) / 2.
        let mut mask = ActionMask::open(3, 2);
        mask.node_types[1][0] = false;
        mask.deltas[1][4] = false;
        let h = |lp: &[f64]| -lp.iter().filter(|l| l.is_finite()).map(|l| l.exp() * l).sum::<f64>();
        for encoder in ["mlp", "gat"] {
            let (buf, _) = sampled_and_recomputed(encoder, &mask);
            let obs = three_services();
            let ag = Agent::new(full_action(encoder), obs.flat().len(), 5);
            let x = ag.act_input(&obs);
            let out = ag.evaluate_inputs(&[&x]).remove(0);
            let (_, entropy, by_head) = loss_log_probabilities(&ag, &buf);
            let n = buf.choices.len() as f64;
            let replicas = h(&masked_log_softmax(&out.joint, &ag.allowed(&mask)));
            let node_type = buf
                .choices
                .iter()
                .filter(|c| c.sku.is_some())
                .map(|c| h(&masked_log_softmax(&out.sku, &sku_allowed(&mask, c.service(), out.sku.len()))))
                .sum::<f64>()
                / n;
            let quota =
                buf.choices.iter().map(|c| out.log_std[c.service()] as f64 + 0.5 + HALF_LN_2PI).sum::<f64>() / n;
            assert!((by_head.replicas - replicas).abs() < 1e-4, "{encoder}: {} vs {replicas}", by_head.replicas);
            assert!((by_head.node_type.unwrap() - node_type).abs() < 1e-4, "{encoder}: {by_head:?} vs {node_type}");
            assert!((by_head.quota.unwrap() - quota).abs() < 1e-4, "{encoder}: {by_head:?} vs {quota}");
            assert!(node_type > 0.01 && replicas > 1.0, "{encoder}: the heads are not degenerate");
            let sum = by_head.replicas + by_head.node_type.unwrap() + by_head.quota.unwrap();
            assert!((sum - entropy).abs() < 1e-4, "{encoder}: the parts {sum} vs the total {entropy}");
        }
    }

    #[test]
    fn stored_log_probabilities_are_what_the_loss_computes_with_every_head() {
        // Service 1 fits only server type 1; its +2 is masked.
        let mut mask = ActionMask::open(3, 2);
        mask.node_types[1][0] = false;
        mask.deltas[1][4] = false;
        for encoder in ["mlp", "gat"] {
            let (buf, recomputed) = sampled_and_recomputed(encoder, &mask);
            // PPO's first ratio is exactly 1: the rollout and the loss agree on every head's part.
            for (k, c) in buf.choices.iter().enumerate() {
                assert!(
                    (buf.logps[k] - recomputed[k] as f64).abs() < 1e-4,
                    "{encoder} {c:?}: {} vs {}",
                    buf.logps[k],
                    recomputed[k]
                );
            }
            let ups: Vec<&Choice> = buf.choices.iter().filter(|c| c.delta() > 0).collect();
            assert!(ups.len() > 20 && ups.iter().all(|c| c.sku.is_some()), "{encoder}: a scale-up picks a type");
            assert!(buf.choices.iter().filter(|c| c.delta() <= 0).all(|c| c.sku.is_none()));
            // Masked: type 0 for service 1, +2 for service 1, types beyond the scenario's two.
            assert!(ups.iter().filter(|c| c.service() == 1).all(|c| c.sku == Some(1)), "{encoder}");
            assert!(buf.choices.iter().all(|c| c.joint != action_index(1, 4) && c.sku.unwrap_or(0) < 2));
            assert!(ups.iter().any(|c| c.sku == Some(0)) && ups.iter().any(|c| c.sku == Some(1)), "{encoder}");
            // Quotas are tanh-squashed samples, spread over (-1, 1).
            let q: Vec<f32> = buf.choices.iter().map(Choice::quota).collect();
            assert!(q.iter().all(|v| v.abs() < 1.0) && q.iter().any(|&v| v > 0.2) && q.iter().any(|&v| v < -0.2));
        }
    }

    /// Per-service mode: every service samples its own delta; the stored log-probability is the
    /// sum of the services' and the loss recomputes it; the entropy is the sum of the services'.
    #[test]
    fn per_service_decisions_sum_the_services_log_probabilities() {
        let obs = three_services();
        let mut mask = ActionMask::open(3, 2);
        mask.deltas[0] = [false, false, true, true, true]; // service 0 at its minimum
        mask.deltas[2][4] = false;
        for encoder in ["mlp", "gat"] {
            let config: AgentConfig =
                serde_yaml_ng::from_str(&format!("encoder: {encoder}\nalgorithm: ppo\naction: per_service")).unwrap();
            let mut ag = Agent::new(config, obs.flat().len(), 5);
            let x = ag.act_input(&obs);
            let out = ag.evaluate_inputs(&[&x]).remove(0);
            let joint_ok = ag.allowed(&mask);
            let mut buf = Buffer::default();
            for _ in 0..300 {
                let (picks, slot_logps, ok) = ag.decide_per_service(&out, &joint_ok);
                let logp: f64 = slot_logps.iter().sum();
                // By hand: the sum over slots of each slot's own masked log-softmax.
                let by_hand: f64 = picks
                    .iter()
                    .enumerate()
                    .map(|(s, &d)| masked_log_softmax(&out.joint[s * 5..s * 5 + 5], &ok[s * 5..s * 5 + 5])[d as usize])
                    .sum();
                assert!((logp - by_hand).abs() < 1e-9);
                buf.push_per_service(x.clone(), ok, picks, slot_logps, &out, false);
            }
            // Masked deltas are never picked; padding slots of the MLP always hold.
            assert!(buf.picks.iter().all(|p| p[0] >= 2 && p[2] != 4 && p[3..].iter().all(|&d| d == 2)));
            // Every service moves in both directions in some decisions (they choose independently).
            assert!(buf.picks.iter().any(|p| p[1] < 2) && buf.picks.iter().any(|p| p[1] > 2 && p[2] > 2));
            let (recomputed, entropy, _) = loss_log_probabilities(&ag, &buf);
            for (k, lp) in buf.logps.iter().enumerate() {
                assert!((lp - recomputed[k] as f64).abs() < 1e-4, "{encoder}: {lp} vs {}", recomputed[k]);
            }
            let by_hand: f64 = per_service_log_softmax(&out.joint, &buf.masks[0])
                .iter()
                .filter(|l| l.is_finite())
                .map(|l| -l.exp() * l)
                .sum();
            assert!((entropy - by_hand).abs() < 1e-4, "{encoder}: entropy {entropy} vs {by_hand}");
        }
    }

    /// Credit per service: the network gives a value per service; each slot's stored
    /// log-probability is what the loss recomputes; and at the rollout's own policy (every ratio
    /// 1, inside the clip) the loss is, by hand, `-(sum of the advantages) / B - c_e x entropy`.
    #[test]
    fn per_service_credit_has_a_value_and_an_advantage_per_service() {
        let obs = three_services();
        let mask = ActionMask::open(3, 1);
        let config: AgentConfig = serde_yaml_ng::from_str(
            "encoder: gat\nalgorithm: ppo\naction: per_service\ncredit: per_service\nentropy_coef: 0.05",
        )
        .unwrap();
        let mut ag = Agent::new(config, obs.flat().len(), 5);
        let x = ag.act_input(&obs);
        let out = ag.evaluate_inputs(&[&x]).remove(0);
        assert_eq!(out.service_values.len(), 3);
        assert!((out.value - out.service_values.iter().sum::<f64>()).abs() < 1e-9);
        let joint_ok = ag.allowed(&mask);
        let mut buf = Buffer::default();
        for _ in 0..8 {
            let (picks, slot_logps, ok) = ag.decide_per_service(&out, &joint_ok);
            buf.push_per_service(x.clone(), ok, picks, slot_logps, &out, true);
        }
        // Advantages per (sample, service), sample-major.
        let adv: Vec<f64> = (0..24).map(|i| ((i * 7) % 5) as f64 - 1.5).collect();
        let chunk: Vec<usize> = (0..8).collect();
        let mb = Minibatch::new(&buf, &chunk, &adv);
        assert_eq!((mb.slots, mb.adv.len(), mb.logp_old.len()), (3, 24, 24));
        let Nets::Graph(g) = &ag.nets else { unreachable!() };
        let (heads, value) =
            g.forward(&ag.graph_batch(&buf.inputs.iter().collect::<Vec<_>>()), OwnedTape::default(), ag.heads_on());
        assert_eq!(value.shape().0, 24, "a value per service of each sample");
        let (loss, logp, entropy, _) = ag.policy_loss(&ag.dev, heads, value.split_tape().1, &mb, true);
        for (k, lp) in logp.iter().enumerate() {
            assert!((buf.logps[k] - *lp as f64).abs() < 1e-4, "{} vs {lp}", buf.logps[k]);
        }
        let by_hand = -adv.iter().sum::<f64>() / 8.0 - 0.05 * entropy;
        assert!((loss.array() as f64 - by_hand).abs() < 1e-4, "{} vs {by_hand}", loss.array());
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

    /// Returns 1, 2, 3, 4 (variance 1.25). Values equal to them: 1. Values 1.5, 2, 3, 3.5:
    /// residuals -0.5, 0, 0, 0.5, variance 0.125, so 1 - 0.125 / 1.25 = 0.9. A constant value:
    /// residual variance equals the returns' own, 0. Constant returns: 0 by definition.
    #[test]
    fn explained_variance_by_hand() {
        let r = [1.0, 2.0, 3.0, 4.0];
        assert!((explained_variance(&r, &r) - 1.0).abs() < 1e-12);
        assert!((explained_variance(&[1.5, 2.0, 3.0, 3.5], &r) - 0.9).abs() < 1e-12);
        assert!(explained_variance(&[2.0; 4], &r).abs() < 1e-12);
        assert_eq!(explained_variance(&[1.0, 2.0], &[3.0, 3.0]), 0.0);
    }
}
