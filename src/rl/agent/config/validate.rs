//! [`AgentConfig::validate`]: every field of an agent config checked, by name, with the reason,
//! for a config read from a file and for one stored in a checkpoint alike.

use super::*;

/// A bound that passes validation, standing in for an absent `target_kl`.
const TARGET_KL_ANY: f64 = 0.01;

impl AgentConfig {
    /// Checks every field: names among the known ones, numbers finite and in the range where
    /// training means something. The same check applies to a config read from a file and to the
    /// one stored in a checkpoint.
    pub fn validate(&self) -> Result<(), Invalid> {
        let c = self;
        let err = |field: &str, message: String| Err(Invalid { field: field.to_string(), message });
        if c.format_version != 1 {
            return err("format_version", format!("is {}; this build reads 1", c.format_version));
        }
        // (value, field, lowest allowed (inclusive unless 0), highest allowed): the upper bounds
        // are far past any useful setting and only stop values that make every weight NaN
        // (a learning rate of 1e308) or a run that cannot end.
        let ranges: [(f64, &str, f64, bool, f64); 17] = [
            (c.learning_rate, "learning_rate", 0.0, false, 1.0),
            (c.decision_interval_s, "decision_interval_s", MIN_INTERVAL_S, true, 86_400.0),
            (c.fluid_tick_s.unwrap_or(c.decision_interval_s), "fluid_tick_s", 0.1, true, c.decision_interval_s),
            (
                c.fine_tune_fluid_tick_s.unwrap_or(c.decision_interval_s),
                "fine_tune_fluid_tick_s",
                0.1,
                true,
                c.decision_interval_s,
            ),
            (c.quota_step_cores, "quota_step_cores", 0.0, false, 1_000.0),
            (c.value_coef, "value_coef", 0.0, true, 1_000.0),
            (c.entropy_coef, "entropy_coef", 0.0, true, 1_000.0),
            (c.max_grad_norm, "max_grad_norm", 0.0, false, 1e6),
            (c.gamma, "gamma", 0.0, true, 1.0),
            (c.gae_lambda, "gae_lambda", 0.0, true, 1.0),
            (c.clip, "clip", 0.0, true, 1.0),
            (c.downscale_stabilization_s, "downscale_stabilization_s", 0.0, true, 86_400.0),
            (c.second_scale_bursts, "second_scale_bursts", 0.0, true, 1.0),
            (c.credit_shared, "credit_shared", 0.0, true, 1.0),
            (c.learning_rate_end.unwrap_or(c.learning_rate), "learning_rate_end", 0.0, true, 1.0),
            (c.entropy_coef_end.unwrap_or(c.entropy_coef), "entropy_coef_end", 0.0, true, 1_000.0),
            (c.target_kl.unwrap_or(TARGET_KL_ANY), "target_kl", 0.0, false, 10.0),
        ];
        for (v, f, lo, inclusive, hi) in ranges {
            let above = if inclusive { v >= lo } else { v > lo };
            if !(v.is_finite() && above && v <= hi) {
                let op = if inclusive { "<=" } else { "<" };
                return err(f, format!("{v} is outside {lo} {op} {f} <= {hi}"));
            }
        }
        crate::rl::observation::check_spans(c.load_forecast_s, c.burst_count_s)
            .map_err(|(field, why)| Invalid { field: field.to_string(), message: why })?;
        let w = &c.reward_weights;
        for (v, f) in [
            (w.slo, "slo"),
            (w.slack, "slack"),
            (w.overshoot, "overshoot"),
            (w.lag, "lag"),
            (w.changes, "changes"),
            (w.reversals, "reversals"),
            (w.capacity, "capacity"),
        ] {
            if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
                return err(&format!("reward_weights.{f}"), format!("{v} is outside 0 <= weight <= 1000000"));
            }
        }
        // Sizes: at least one, and bounded so that a rollout's buffers fit in memory.
        for (v, f, hi) in [
            (c.epochs, "epochs", 10_000),
            (c.minibatch, "minibatch", 1 << 20),
            (c.rollout_steps, "rollout_steps", 1 << 20),
            (c.envs, "envs", 1_024),
            (c.team, "team", 1_024),
        ] {
            if !(1..=hi).contains(&v) {
                return err(f, format!("{v} is outside 1 <= {f} <= {hi}"));
            }
        }
        if c.rollout_steps * c.envs > 1 << 22 {
            return err(
                "rollout_steps",
                format!("rollout_steps x envs = {} is over 4194304 steps per update", c.rollout_steps * c.envs),
            );
        }
        if c.target_kl.is_some() && c.algorithm != Algorithm::Ppo {
            return err("target_kl", "needs `algorithm: ppo` (an A2C update runs one pass, nothing to stop)".into());
        }
        if c.checkpoint_every == 0 {
            return err("checkpoint_every", "must be at least 1".into());
        }
        // Ranges drawn from per episode: the rate factor and the arrivals' coefficient of variation.
        for (range, field) in [(c.rate_scale, "rate_scale"), (c.arrival_cv, "arrival_cv")] {
            let Some([lo, hi]) = range else { continue };
            if !(lo.is_finite() && hi.is_finite() && (0.1..=10.0).contains(&lo) && lo <= hi && hi <= 10.0) {
                return err(field, format!("[{lo}, {hi}] is not a range 0.1 <= lo <= hi <= 10"));
            }
        }
        if c.fluid_tick_s.is_some() && c.fidelity == TrainingFidelity::Request {
            return err("fluid_tick_s", "needs `fidelity: fluid` (request fidelity has no ticks)".into());
        }
        for (tick, field) in [(c.fluid_tick_s, "fluid_tick_s"), (c.fine_tune_fluid_tick_s, "fine_tune_fluid_tick_s")] {
            let Some(tick) = tick else { continue };
            // Every scrape (one per decision) must fall on a tick's end, in the simulator's
            // microseconds.
            let (decision, tick_us) = (SimTime::from_secs_f64(c.decision_interval_s), SimTime::from_secs_f64(tick));
            if tick_us.0 == 0 || decision.0 % tick_us.0 != 0 {
                return err(
                    field,
                    format!("{tick} s does not divide decision_interval_s ({} s)", c.decision_interval_s),
                );
            }
        }
        if c.fine_tune_fluid_tick_s.is_some() != (c.tick_fine_tune_steps > 0) {
            return err(
                "tick_fine_tune_steps",
                "and fine_tune_fluid_tick_s go together: the fine-tune's steps and its fluid tick".into(),
            );
        }
        if c.fine_tune_fluid_tick_s.is_some() && c.fidelity == TrainingFidelity::Request {
            return err("fine_tune_fluid_tick_s", "needs `fidelity: fluid` (request fidelity has no ticks)".into());
        }
        if c.request_fine_tune_steps > 0 && c.fidelity == TrainingFidelity::Request {
            return err(
                "request_fine_tune_steps",
                "needs `fidelity: fluid` (a training at request fidelity has nothing to fine-tune)".into(),
            );
        }
        if let Some(q) = c.second_scale_quiet_up_to_s {
            if c.second_scale_bursts == 0.0 {
                return err("second_scale_quiet_up_to_s", "needs `second_scale_bursts` above 0".into());
            }
            if !(3..=600).contains(&q) {
                return err(
                    "second_scale_quiet_up_to_s",
                    format!("{q} is outside 3 <= second_scale_quiet_up_to_s <= 600"),
                );
            }
        }
        if c.second_scale_bursts > 0.0 && c.training_loads != TrainingLoads::RandomShapes {
            // It modulates the random shapes; silently ignoring it would train on other loads
            // than the config says.
            return err("second_scale_bursts", "needs `training_loads: random_shapes`".into());
        }
        if c.action == ActionMode::PerService {
            // The per-service heads score replica deltas only; a node type or quota per service
            // would need heads of their own.
            for (on, f) in [(c.node_type_head, "node_type_head"), (c.quota_head, "quota_head")] {
                if on {
                    return err(f, "must be false with `action: per_service`".into());
                }
            }
            if c.team != 1 {
                return err("team", "must be 1 with `action: per_service` (one agent scales every service)".into());
            }
        }
        if c.anchor == crate::rl::action::Anchor::Hpa {
            // Every service must move each decision for the HPA's count to be followed; a
            // multiplicative step or a recommendation window would move from another count.
            if c.action != ActionMode::PerService {
                return err(
                    "anchor",
                    "`hpa` needs `action: per_service` (every service moves from its HPA count)".into(),
                );
            }
            if c.steps == Steps::Multiplicative {
                return err("anchor", "`hpa` moves from the HPA's count: it takes `steps: additive`".into());
            }
            if c.stabilization == crate::rl::action::Stabilization::Recommendations {
                return err("anchor", "`hpa` takes `stabilization: after_scale_up`".into());
            }
        }
        let per_service = c.action == ActionMode::PerService;
        if c.ceiling_holds_peak && c.ceiling_holds_while_needed {
            return err(
                "ceiling_holds_while_needed",
                "choose one hold: `ceiling_holds_peak` already holds the ceiling over the window".into(),
            );
        }
        if c.burst_count_s.is_some() && c.quota_head {
            return err(
                "burst_count_s",
                "takes the observation's CPU-limit feature, which `quota_head` needs: choose one".into(),
            );
        }
        let forecast = crate::rl::action::check_forecast_switches(
            c.load_forecast_s,
            c.floor_reads_forecast,
            c.ceiling_reads_forecast,
        );
        if let Err((field, why)) = forecast {
            return err(field, why);
        }
        let fast_floor = crate::rl::action::check_fast_floor(
            c.fast_floor_every_s,
            [
                ("fast_floor_reads_s", c.fast_floor_reads_s.is_some()),
                ("fast_floor_panic_ratio", c.fast_floor_panic_ratio.is_some()),
                ("fast_floor_leaves_window", c.fast_floor_leaves_window),
                ("fast_floor_deployed_only", c.fast_floor_deployed_only),
            ],
            c.fast_floor_reads_s,
            c.fast_floor_panic_ratio,
            c.decision_interval_s,
            c.hpa_floor,
        );
        if let Err((field, why)) = fast_floor {
            return err(field, why);
        }
        if let Err((field, why)) = crate::rl::action::check_hpa_shields(&c.env_config().action, per_service) {
            return err(field, why);
        }
        if c.stabilization == crate::rl::action::Stabilization::Recommendations && c.downscale_stabilization_s == 0.0 {
            return err("stabilization", "`recommendations` needs a window: set `downscale_stabilization_s`".into());
        }
        if c.credit == Credit::PerService {
            if c.action != ActionMode::PerService {
                return err("credit", "`per_service` needs `action: per_service` (a decision per service)".into());
            }
            if !c.encoder.is_graph() {
                return err(
                    "credit",
                    "`per_service` needs a graph encoder (gcn or gat): its nodes give the values".into(),
                );
            }
        } else if c.credit_shared > 0.0 {
            return err("credit_shared", "needs `credit: per_service`".into());
        }
        Ok(())
    }
}
