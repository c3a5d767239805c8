//! An agent's decision and its probabilities, independent of the network that scores it: the
//! joint `(service, delta)` index layout, masks, masked log-softmax, the quota head's Gaussian
//! log-density, and the environment action a decision becomes.
//!
//! The action: `(service, delta replicas)` as one categorical over `services x 5` (the gym-hpa
//! action), masked by the environment's action mask; with `node_type_head`, a categorical over
//! server types for a scale-up (masked to the types the chosen service fits); with `quota_head`,
//! the CPU-quota delta `tanh(u)` of a Gaussian `u ~ N(mu_s, sigma_s)` scored on the chosen
//! service. The policy factorises: `log pi(a) = log pi(service, delta) + [delta > 0] log
//! pi(type | service) + log N(u; mu_s, sigma_s)`. The tanh's Jacobian does not depend on the
//! parameters, so it cancels in PPO's ratio and is left out of the stored log-probabilities.

use super::nn::{ACTIONS, MAX_SERVICES};
use crate::rl::{Action, ActionMask, ServiceAction, DELTAS};

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

/// `ln(2 pi) / 2`.
pub const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// The log-density of `u` under `N(mu, exp(log_std)^2)`.
pub fn gaussian_log_prob(u: f64, mu: f64, log_std: f64) -> f64 {
    let z = (u - mu) / log_std.exp();
    -0.5 * z * z - log_std - HALF_LN_2PI
}

/// One agent's decision for one observation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// The joint `(service, delta)` index.
    pub joint: usize,
    /// The server type the node-type head chose (only for a scale-up with the head on).
    pub sku: Option<usize>,
    /// The quota head's Gaussian sample before tanh (`None`: the head is off).
    pub u: Option<f32>,
}

impl Choice {
    pub fn service(&self) -> usize {
        self.joint / 5
    }

    pub fn delta(&self) -> i32 {
        DELTAS[self.joint % 5]
    }

    /// The quota action in (-1, 1).
    pub fn quota(&self) -> f32 {
        self.u.map_or(0.0, f32::tanh)
    }

    pub fn service_action(&self) -> ServiceAction {
        ServiceAction { node_type: self.sku.unwrap_or(0), delta: self.delta(), quota: self.quota() }
    }
}

/// Which node types the head may pick for a scale-up of `service`: those that exist and that the
/// service's instance fits (`width` = the head's width).
pub fn sku_allowed(mask: &ActionMask, service: usize, width: usize) -> Vec<bool> {
    let row = mask.node_types.get(service);
    (0..width).map(|j| row.and_then(|r| r.get(j)).copied().unwrap_or(false)).collect()
}

/// Index of the largest allowed value (ties: the lowest index).
pub fn argmax_allowed(values: &[f32], ok: &[bool]) -> Option<usize> {
    (0..values.len().min(ok.len())).filter(|&a| ok[a]).max_by(|&a, &b| values[a].total_cmp(&values[b]).then(b.cmp(&a)))
}

/// Log-probabilities of the masked softmax of `logits` (masked actions: -inf, probability 0).
pub fn masked_log_softmax(logits: &[f32], allowed: &[bool]) -> Vec<f64> {
    let max = logits.iter().zip(allowed).filter(|(_, &a)| a).map(|(&l, _)| l as f64).fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logits.iter().zip(allowed).filter(|(_, &a)| a).map(|(&l, _)| (l as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    logits.iter().zip(allowed).map(|(&l, &a)| if a { l as f64 - lse } else { f64::NEG_INFINITY }).collect()
}

/// Per-service mode: the allowed deltas of every service slot (`joint_ok`'s layout, 5 per slot).
/// A slot with nothing allowed (a padding slot of the MLP, past the application's services) may
/// only hold (delta 0), so that every slot has a choice of probability 1 and adds nothing to the
/// log-probability or the entropy.
pub fn per_service_allowed(joint_ok: &[bool]) -> Vec<bool> {
    let mut ok = joint_ok.to_vec();
    for row in ok.chunks_mut(5) {
        if !row.iter().any(|&a| a) {
            row[2] = true;
        }
    }
    ok
}

/// Per-service mode: the masked log-softmax of each slot's 5 logits on its own.
pub fn per_service_log_softmax(logits: &[f32], allowed: &[bool]) -> Vec<f64> {
    logits.chunks(5).zip(allowed.chunks(5)).flat_map(|(l, a)| masked_log_softmax(l, a)).collect()
}

/// Per-service mode, an ensemble's greedy picks: each slot's allowed delta with the highest
/// probability summed over the members (`probabilities[m]` is member `m`'s per-slot softmax, in
/// `per_service_log_softmax`'s layout). Summed probabilities, not logits: a member that is sure
/// counts no more than one, so one member's extreme does not outvote the others. Ties go to the
/// lowest delta index, as [`argmax_allowed`]'s; a slot with nothing allowed holds (index 2).
pub fn ensemble_picks(probabilities: &[Vec<f64>], allowed: &[bool]) -> Vec<u8> {
    let mut sum = vec![0.0f64; allowed.len()];
    for member in probabilities {
        for (t, p) in sum.iter_mut().zip(member) {
            *t += p;
        }
    }
    let sum: Vec<f32> = sum.iter().map(|&p| p as f32).collect();
    sum.chunks(5).zip(allowed.chunks(5)).map(|(p, a)| argmax_allowed(p, a).unwrap_or(2) as u8).collect()
}

/// Per-service mode: the environment action of one delta index per slot (slots past
/// `services` are padding and left out).
pub fn per_service_action(picks: &[u8], services: usize) -> Action {
    Action::All(
        picks
            .iter()
            .take(services)
            .map(|&d| ServiceAction { node_type: 0, delta: DELTAS[d as usize], quota: 0.0 })
            .collect(),
    )
}

/// The environment action of a team's choices.
pub fn team_action(choices: &[Choice]) -> Action {
    match choices {
        [c] => {
            let a = c.service_action();
            Action::One { service: c.service(), node_type: a.node_type, delta: a.delta, quota: a.quota }
        }
        _ => Action::All(choices.iter().map(Choice::service_action).collect()),
    }
}
