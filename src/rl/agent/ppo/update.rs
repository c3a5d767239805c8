//! The update: the policy, value and entropy losses on one tape per network, minibatch epochs
//! over a rollout's buffer, gradient-norm clipping, and the graph networks' data-parallel
//! gradients (two threads, the same arithmetic whatever the scheduling). It reads a rollout; it
//! never steps an environment.

use super::estimates::{add_present, explained_variance, mean_neg, minibatch_normalized, normalize};
use super::training::Buffer;
// The parent's imports: the networks, the decisions, dfdx.
use super::*;

impl Agent {
    /// The policy part of the loss (taped) and its statistics: the PPO clipped objective (or
    /// A2C's policy gradient) on the log-probability of the whole decision, and the entropy bonus
    /// of every head in use. `tape` joins the heads' tapes (the graph network's forward pass).
    pub(super) fn policy_loss(
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
    pub(super) fn update(&mut self, buf: &Buffer, adv: &[f64], returns: &[f64]) -> UpdateStats {
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
            stats.epochs += 1.0;
            // This epoch's mean KL, each minibatch's measured before its own step.
            let (mut epoch_kl, mut epoch_batches) = (0.0, 0.0);
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
                epoch_kl += kl / b as f64;
                epoch_batches += 1.0;
            }
            if self.config.target_kl.is_some_and(|target| epoch_kl / epoch_batches > target) {
                break;
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
pub(super) struct Minibatch {
    pub(super) joint_mask: Vec<f32>,
    pub(super) sku_mask: Vec<f32>,
    pub(super) joint: Vec<usize>,
    pub(super) service: Vec<usize>,
    pub(super) sku: Vec<usize>,
    /// 1 where the node-type head chose (a scale-up), else 0.
    pub(super) sku_used: Vec<f32>,
    pub(super) u: Vec<f32>,
    /// Per-service mode: 1 at each slot's chosen delta, in the joint logits' layout.
    pub(super) onehot: Vec<f32>,
    pub(super) logp_old: Vec<f32>,
    pub(super) adv: Vec<f64>,
    /// Credit per service: the services per sample, and `logp_old` and `adv` are per service
    /// (sample-major); 0 otherwise.
    pub(super) slots: usize,
}

impl Minibatch {
    pub(super) fn new(buf: &Buffer, chunk: &[usize], adv: &[f64]) -> Minibatch {
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
