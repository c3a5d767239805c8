//! The numbers a PPO or A2C update rests on, each a pure function tested by hand: generalised
//! advantage estimates, the clipped objective, advantage normalisation (per rollout or per
//! minibatch), explained variance, and the statistics an update reports. No networks, no
//! environments.

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
    /// The epochs the update ran: `epochs`, or fewer where `target_kl` stopped it (mean over a
    /// team's agents).
    pub epochs: f64,
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
    pub(super) fn add_scaled(&mut self, other: &HeadEntropies, w: f64) {
        self.replicas += w * other.replicas;
        add_present(&mut self.node_type, other.node_type.map(|b| w * b));
        add_present(&mut self.quota, other.quota.map(|b| w * b));
    }
}

/// Adds `b` to the running sum `a` of a statistic that not every network or head has: `None`
/// stays `None` until a value comes.
pub(super) fn add_present(a: &mut Option<f64>, b: Option<f64>) {
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
pub(super) fn minibatch_normalized(adv: &[f64], chunk: &[usize], per: usize) -> Vec<f64> {
    let mut mine: Vec<f64> = chunk.iter().flat_map(|&i| adv[i * per..(i + 1) * per].iter().copied()).collect();
    normalize(&mut mine);
    let mut all = adv.to_vec();
    for (k, &i) in chunk.iter().enumerate() {
        all[i * per..(i + 1) * per].copy_from_slice(&mine[k * per..(k + 1) * per]);
    }
    all
}

/// The mean over samples of `-x` (an entropy from summed `p log p` values).
pub(super) fn mean_neg(x: &[f32]) -> f64 {
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
