//! PPO and A2C by hand: estimates, losses, decisions and their log-probabilities.

use super::estimates::minibatch_normalized;
use super::training::Buffer;
use super::update::Minibatch;
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
        let quota = buf.choices.iter().map(|c| out.log_std[c.service()] as f64 + 0.5 + HALF_LN_2PI).sum::<f64>() / n;
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

/// `n` per-service decisions that `ag` samples at `obs` under `mask`, stored as a rollout stores
/// them (with each service's value when `credit`), and the input they were taken at.
fn per_service_rollout(
    ag: &mut Agent,
    obs: &Observation,
    mask: &ActionMask,
    n: usize,
    credit: bool,
) -> (Input, Buffer) {
    let x = ag.act_input(obs);
    let out = ag.evaluate_inputs(&[&x]).remove(0);
    let joint_ok = ag.allowed(mask);
    let mut buf = Buffer::default();
    for _ in 0..n {
        let (picks, slot_logps, ok) = ag.decide_per_service(&out, &joint_ok);
        buf.push_per_service(x.clone(), ok, picks, slot_logps, &out, credit);
    }
    (x, buf)
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
    let (x, buf) = per_service_rollout(&mut ag, &obs, &mask, 8, true);
    let out = ag.evaluate_inputs(&[&x]).remove(0);
    assert_eq!(out.service_values.len(), 3);
    assert!((out.value - out.service_values.iter().sum::<f64>()).abs() < 1e-9);
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

#[test]
fn ensemble_picks_by_hand() {
    // Two services, two members. Service 0: member A [0.5, 0.4, 0.1, 0, 0] picks -2, member B
    // [0.1, 0.45, 0.45, 0, 0] picks -1 (the tie to the lower index); summed [0.6, 0.85, 0.55]:
    // -1, which A alone would not pick. Service 1: delta +2 (index 4) is masked; A [0, 0, 0.2,
    // 0.3, 0.5] and B [0, 0, 0.6, 0.4, 0]: summed 0.8, 0.7 and 0.5 (masked): hold (index 2).
    let a = vec![0.5, 0.4, 0.1, 0.0, 0.0, 0.0, 0.0, 0.2, 0.3, 0.5];
    let b = vec![0.1, 0.45, 0.45, 0.0, 0.0, 0.0, 0.0, 0.6, 0.4, 0.0];
    let ok = [true, true, true, true, true, false, false, true, true, false];
    assert_eq!(ensemble_picks(&[a.clone(), b.clone()], &ok), vec![1, 2]);
    // One member: its own greedy picks (A: -2, and +1 once +2 is masked).
    assert_eq!(ensemble_picks(std::slice::from_ref(&a), &ok), vec![0, 3]);
    // Order does not matter; a slot with nothing allowed holds.
    assert_eq!(ensemble_picks(&[b, a], &ok), vec![1, 2]);
    assert_eq!(ensemble_picks(&[vec![0.2; 5]], &[false; 5]), vec![2]);
}

/// `target_kl`: an update whose first epoch moved the policy past the bound stops there, the same
/// update (weights and statistics) as one configured with a single epoch; a bound never reached
/// changes nothing.
#[test]
fn target_kl_stops_the_epochs_once_an_epoch_passes_it() {
    let obs = three_services();
    let mask = ActionMask::open(3, 1);
    let agent = |epochs: usize, target: &str| {
        let yaml = format!(
            "encoder: gat\nalgorithm: ppo\naction: per_service\nminibatch: 4\nlearning_rate: 0.01\nepochs: {epochs}\n{target}"
        );
        Agent::new(serde_yaml_ng::from_str(&yaml).unwrap(), obs.flat().len(), 5)
    };
    let (x, buf) = per_service_rollout(&mut agent(4, ""), &obs, &mask, 16, false);
    let adv: Vec<f64> = (0..16).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
    let returns: Vec<f64> = adv.iter().map(|a| a + 1.0).collect();
    let run = |epochs: usize, target: &str| {
        let mut ag = agent(epochs, target);
        let stats = ag.update(&buf, &adv, &returns);
        (stats, ag.evaluate_inputs(&[&x]).remove(0).joint)
    };
    let (all, all_joint) = run(4, "");
    let (loose, loose_joint) = run(4, "target_kl: 10");
    let (tight, tight_joint) = run(4, "target_kl: 1.0e-9");
    let (one, one_joint) = run(1, "");
    assert_eq!((all.epochs, loose.epochs, tight.epochs, one.epochs), (4.0, 4.0, 1.0, 1.0));
    assert_eq!((loose, &loose_joint), (all, &all_joint), "a bound never reached changes nothing");
    assert_eq!((tight, &tight_joint), (one, &one_joint), "stopped after one epoch = one epoch");
    // The first epoch's later minibatches ran after earlier steps: its mean KL is above 0.
    assert!(one.approx_kl > 1e-9 && all_joint != one_joint, "{one:?}");
}
