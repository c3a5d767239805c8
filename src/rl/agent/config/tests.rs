//! By-hand tests of agent configs: what validation refuses, and what reaches the environment.

use super::*;

/// The training tick divides the decision interval, and is for fluid training only.
#[test]
fn the_fluid_tick_divides_the_decision_interval_and_is_only_for_fluid_training() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\ndecision_interval_s: 15\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    assert_eq!(parse("fluid_tick_s: 1\n").validate(), Ok(()));
    assert_eq!(parse("fluid_tick_s: 15\n").validate(), Ok(()));
    assert_eq!(parse("fluid_tick_s: 2.5\n").validate(), Ok(()));
    for extra in
        ["fluid_tick_s: 16\n", "fluid_tick_s: 0\n", "fluid_tick_s: 4\n", "fluid_tick_s: 1\nfidelity: request\n"]
    {
        assert_eq!(parse(extra).validate().unwrap_err().field, "fluid_tick_s", "{extra}");
    }
}

/// The fine-tune's tick obeys the training tick's rules, and comes with its steps.
#[test]
fn a_tick_fine_tune_has_steps_and_a_tick_that_divides_the_decision_interval() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\ndecision_interval_s: 15\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    assert_eq!(parse("fine_tune_fluid_tick_s: 1\ntick_fine_tune_steps: 100\n").validate(), Ok(()));
    for (extra, field) in [
        ("fine_tune_fluid_tick_s: 4\ntick_fine_tune_steps: 100\n", "fine_tune_fluid_tick_s"),
        ("fine_tune_fluid_tick_s: 30\ntick_fine_tune_steps: 100\n", "fine_tune_fluid_tick_s"),
        ("fine_tune_fluid_tick_s: 1\ntick_fine_tune_steps: 100\nfidelity: request\n", "fine_tune_fluid_tick_s"),
        ("fine_tune_fluid_tick_s: 1\n", "tick_fine_tune_steps"),
        ("tick_fine_tune_steps: 100\n", "tick_fine_tune_steps"),
    ] {
        assert_eq!(parse(extra).validate().unwrap_err().field, field, "{extra}");
    }
}

/// A floor and a ceiling are CPU targets above 0 for per-service actions, the ceiling's
/// below the floor's.
#[test]
fn an_hpa_floor_and_ceiling_are_positive_targets_for_per_service_actions() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    let ok = parse("action: per_service\nhpa_floor: 1.0\n");
    assert_eq!((ok.validate(), ok.env_config().action.hpa_floor), (Ok(()), Some(1.0)));
    let band = parse("action: per_service\nhpa_floor: 1.0\nhpa_ceiling: 0.4\n").env_config().action;
    assert_eq!((band.hpa_floor, band.hpa_ceiling), (Some(1.0), Some(0.4)));
    assert_eq!(parse("action: per_service\nhpa_ceiling: 0.4\n").validate(), Ok(()));
    let refused = parse("action: per_service\nhpa_floor: 1.0\nfloor_counts_refused: true\n");
    assert_eq!((refused.validate(), refused.env_config().action.floor_counts_refused), (Ok(()), true));
    let busiest = parse("action: per_service\nhpa_floor: 1.0\nfloor_peak_s: 6\n");
    assert_eq!((busiest.validate(), busiest.env_config().action.floor_peak_s), (Ok(()), Some(6.0)));
    assert_eq!(busiest.env_config().action.floor_peak_reads, crate::rl::PeakSpan::Busiest);
    let latest = parse("action: per_service\nhpa_floor: 1.0\nfloor_peak_s: 6\nfloor_peak_reads: latest\n");
    assert_eq!((latest.validate(), latest.env_config().action.floor_peak_reads), (Ok(()), crate::rl::PeakSpan::Latest));
    let held = parse("action: per_service\nhpa_floor: 1.0\nfloor_holds_peak: true\ndownscale_stabilization_s: 60\n");
    assert_eq!((held.validate(), held.env_config().action.floor_holds_peak), (Ok(()), true));
    let peak =
        parse("action: per_service\nhpa_ceiling: 0.4\nceiling_holds_peak: true\ndownscale_stabilization_s: 60\n");
    assert_eq!((peak.validate(), peak.env_config().action.ceiling_hold), (Ok(()), crate::rl::CeilingHold::Peak));
    let needed = parse(
        "action: per_service\nhpa_ceiling: 0.4\nceiling_holds_while_needed: true\ndownscale_stabilization_s: 60\n",
    );
    assert_eq!(
        (needed.validate(), needed.env_config().action.ceiling_hold),
        (Ok(()), crate::rl::CeilingHold::WhileNeeded)
    );
    let renew = parse("action: per_service\nrenew_window_at_bound: true\ndownscale_stabilization_s: 300\n");
    assert_eq!((renew.validate(), renew.env_config().action.renew_at_bound), (Ok(()), true));
    let needed_renewal = parse(
        "action: per_service\nhpa_ceiling: 0.5\nrenew_window_at_bound: true\nrenew_only_while_needed: true\ndownscale_stabilization_s: 300\n",
    );
    assert_eq!((needed_renewal.validate(), needed_renewal.env_config().action.renew_only_while_needed), (Ok(()), true));
    for (extra, field) in [
        ("renew_window_at_bound: true\ndownscale_stabilization_s: 300\n", "renew_window_at_bound"),
        ("action: per_service\nrenew_window_at_bound: true\n", "renew_window_at_bound"),
        (
            "action: per_service\nrenew_window_at_bound: true\ndownscale_stabilization_s: 300\nsteps: multiplicative\n",
            "renew_window_at_bound",
        ),
        (
            "action: per_service\nrenew_window_at_bound: true\ndownscale_stabilization_s: 300\nanchor: hpa\n",
            "renew_window_at_bound",
        ),
        (
            "action: per_service\nrenew_window_at_bound: true\nrenew_only_while_needed: true\ndownscale_stabilization_s: 300\n",
            "renew_only_while_needed",
        ),
        (
            "action: per_service\nhpa_ceiling: 0.5\nrenew_only_while_needed: true\ndownscale_stabilization_s: 300\n",
            "renew_only_while_needed",
        ),
        ("action: per_service\nfloor_counts_refused: true\n", "floor_counts_refused"),
        ("action: per_service\nfloor_peak_s: 6\n", "floor_peak_s"),
        ("action: per_service\nhpa_floor: 1.0\nfloor_peak_s: 0.5\n", "floor_peak_s"),
        ("action: per_service\nhpa_floor: 1.0\nfloor_peak_reads: latest\n", "floor_peak_reads"),
        ("action: per_service\nfloor_holds_peak: true\ndownscale_stabilization_s: 60\n", "floor_holds_peak"),
        ("action: per_service\nhpa_floor: 1.0\nfloor_holds_peak: true\ndownscale_stabilization_s: 0\n", "floor_holds_peak"),
        ("action: per_service\nceiling_release_step: 2\n", "ceiling_release_step"),
        ("action: per_service\nhpa_ceiling: 0.4\nceiling_release_step: 0\n", "ceiling_release_step"),
        ("action: per_service\nceiling_holds_peak: true\ndownscale_stabilization_s: 60\n", "ceiling_holds_peak"),
        ("action: per_service\nhpa_ceiling: 0.4\nceiling_holds_peak: true\ndownscale_stabilization_s: 0\n", "ceiling_holds_peak"),
        ("action: per_service\nceiling_holds_while_needed: true\ndownscale_stabilization_s: 60\n", "ceiling_holds_while_needed"),
        (
            "action: per_service\nhpa_ceiling: 0.4\nceiling_holds_peak: true\nceiling_holds_while_needed: true\ndownscale_stabilization_s: 60\n",
            "ceiling_holds_while_needed",
        ),
        ("hpa_floor: 1.0\n", "hpa_floor"),
        ("action: per_service\nhpa_floor: 0\n", "hpa_floor"),
        ("action: per_service\nhpa_floor: -1\n", "hpa_floor"),
        ("hpa_ceiling: 0.4\n", "hpa_ceiling"),
        ("action: per_service\nhpa_ceiling: 0\n", "hpa_ceiling"),
        ("action: per_service\nhpa_ceiling: .nan\n", "hpa_ceiling"),
        ("action: per_service\nhpa_floor: 0.6\nhpa_ceiling: 0.6\n", "hpa_ceiling"),
        ("action: per_service\nhpa_floor: 0.6\nhpa_ceiling: 0.8\n", "hpa_ceiling"),
        (
            "action: per_service\nhpa_ceiling: 0.4\nstabilization: recommendations\ndownscale_stabilization_s: 60\n",
            "hpa_ceiling",
        ),
    ] {
        assert_eq!(parse(extra).validate().unwrap_err().field, field, "{extra}");
    }
}

/// HPA levels: five falling CPU targets, for per-service additive actions stabilised after
/// scale-ups, moving from the current count, with no floor or ceiling.
#[test]
fn hpa_levels_are_five_falling_targets_for_per_service_actions() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    let ok = parse("action: per_service\nhpa_levels: [1.0, 0.8, 0.6, 0.4, 0.2]\n");
    assert_eq!((ok.validate(), ok.env_config().action.hpa_levels), (Ok(()), Some([1.0, 0.8, 0.6, 0.4, 0.2])));
    let levels = "hpa_levels: [1.0, 0.8, 0.6, 0.4, 0.2]\n";
    for extra in [
        levels.to_string(),
        "action: per_service\nhpa_levels: [1.0, 0.8, 0.8, 0.4, 0.2]\n".into(),
        "action: per_service\nhpa_levels: [0.2, 0.4, 0.6, 0.8, 1.0]\n".into(),
        "action: per_service\nhpa_levels: [1.0, 0.8, 0.6, 0.4, 0]\n".into(),
        format!("action: per_service\nsteps: multiplicative\n{levels}"),
        format!("action: per_service\nanchor: hpa\n{levels}"),
        format!("action: per_service\nstabilization: recommendations\ndownscale_stabilization_s: 60\n{levels}"),
        format!("action: per_service\nhpa_floor: 1.0\n{levels}"),
    ] {
        assert_eq!(parse(&extra).validate().unwrap_err().field, "hpa_levels", "{extra}");
    }
    // Four targets are not five: refused when read.
    let four = serde_yaml_ng::from_str::<AgentConfig>(&format!("{base}hpa_levels: [1.0, 0.8, 0.6, 0.4]\n"));
    assert!(four.is_err());
}

#[test]
fn the_hpa_anchor_needs_per_service_additive_steps_stabilised_after_scale_ups() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\nanchor: hpa\n";
    let ok: AgentConfig = serde_yaml_ng::from_str(&format!("{base}action: per_service\n")).unwrap();
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(ok.env_config().action.anchor, crate::rl::action::Anchor::Hpa);
    for extra in [
        "",
        "action: per_service\nsteps: multiplicative\n",
        "action: per_service\nstabilization: recommendations\ndownscale_stabilization_s: 60\n",
    ] {
        let c: AgentConfig = serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap();
        assert_eq!(c.validate().unwrap_err().field, "anchor", "{extra}");
    }
}

/// `action: per_service` scores deltas only, for one agent: the other heads and teams are refused
/// by name.
#[test]
fn per_service_refuses_the_heads_it_has_not() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\naction: per_service\n";
    let ok: AgentConfig = serde_yaml_ng::from_str(base).unwrap();
    assert_eq!(ok.validate(), Ok(()));
    for (extra, field) in
        [("quota_head: true", "quota_head"), ("node_type_head: true", "node_type_head"), ("team: 2", "team")]
    {
        let c: AgentConfig = serde_yaml_ng::from_str(&format!("{base}{extra}\n")).unwrap();
        assert_eq!(c.validate().unwrap_err().field, field);
    }
}

/// `second_scale_quiet_up_to_s` shapes the second-scale bursts: without them, or outside
/// 3-600 s, it is refused by name.
#[test]
fn second_scale_quiet_needs_the_bursts_and_a_range() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\ntraining_loads: random_shapes\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    assert_eq!(parse("second_scale_bursts: 0.5\nsecond_scale_quiet_up_to_s: 40\n").validate(), Ok(()));
    for extra in [
        "second_scale_quiet_up_to_s: 40\n",
        "second_scale_bursts: 0.5\nsecond_scale_quiet_up_to_s: 2\n",
        "second_scale_bursts: 0.5\nsecond_scale_quiet_up_to_s: 601\n",
    ] {
        assert_eq!(parse(extra).validate().unwrap_err().field, "second_scale_quiet_up_to_s", "{extra}");
    }
}

/// `second_scale_bursts` is a share, and modulates random shapes only: set without them, or
/// outside 0-1, it is refused by name.
#[test]
fn second_scale_bursts_needs_random_shapes_and_a_share() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    assert_eq!(parse("training_loads: random_shapes\nsecond_scale_bursts: 0.5\n").validate(), Ok(()));
    for extra in ["second_scale_bursts: 0.5\n", "training_loads: random_shapes\nsecond_scale_bursts: 1.5\n"] {
        assert_eq!(parse(extra).validate().unwrap_err().field, "second_scale_bursts", "{extra}");
    }
}

/// `credit: per_service` needs per-service decisions and a graph encoder; `credit_shared` needs
/// it and is a share: each refused by name. The share reaches the environment.
#[test]
fn per_service_credit_needs_per_service_graph_decisions() {
    let parse = |text: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("format_version: 1\n{text}")).unwrap() };
    let ok = parse("encoder: gat\nalgorithm: ppo\naction: per_service\ncredit: per_service\ncredit_shared: 0.25\n");
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(ok.env_config().service_credit, Some(0.25));
    assert_eq!(parse("encoder: gat\nalgorithm: ppo\n").env_config().service_credit, None);
    // (And `steps` reaches the action executor the same way.)
    assert!(parse("encoder: gat\nalgorithm: ppo\nsteps: multiplicative\n").env_config().action.multiplicative_steps);
    assert!(!ok.env_config().action.multiplicative_steps);
    for (text, field) in [
        ("encoder: gat\nalgorithm: ppo\ncredit: per_service\n", "credit"),
        ("encoder: mlp\nalgorithm: ppo\naction: per_service\ncredit: per_service\n", "credit"),
        ("encoder: gat\nalgorithm: ppo\naction: per_service\ncredit_shared: 0.5\n", "credit_shared"),
        ("encoder: gat\nalgorithm: ppo\naction: per_service\ncredit: per_service\ncredit_shared: 2\n", "credit_shared"),
    ] {
        assert_eq!(parse(text).validate().unwrap_err().field, field, "{text}");
    }
}

/// Weights left out keep their defaults; those given reach the environment's reward.
#[test]
fn reward_weights_reach_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    let base = "format_version: 1\nencoder: mlp\nalgorithm: ppo\n";
    std::fs::write(
        &path,
        format!("{base}reward_weights: {{ slack: 2, changes: 0.5, reversals: 0.25, capacity: 12 }}\n"),
    )
    .unwrap();
    let reward = AgentConfig::load(&path).unwrap().env_config().reward;
    let want = RewardConfig::Weighted {
        slo: 5.0,
        slack: 2.0,
        overshoot: 3.0,
        lag: 2.0,
        changes: 0.5,
        reversals: 0.25,
        capacity: 12.0,
        slack_basis: SlackBasis::Request,
    };
    assert_eq!(reward, want);
    std::fs::write(&path, base).unwrap();
    assert_eq!(AgentConfig::load(&path).unwrap().env_config().reward, RewardConfig::default());
}

/// A load forecast's horizon is positive and at most an hour, reaches the environment, and is
/// written into a checkpoint's config only when set.
#[test]
fn a_load_forecast_has_a_horizon_of_up_to_an_hour() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    let on = parse("load_forecast_s: 30\n");
    assert_eq!((on.validate(), on.env_config().load_forecast_s), (Ok(()), Some(30.0)));
    assert_eq!(parse("").env_config().load_forecast_s, None);
    for extra in ["load_forecast_s: 0\n", "load_forecast_s: -5\n", "load_forecast_s: 3601\n", "load_forecast_s: .nan\n"]
    {
        assert_eq!(parse(extra).validate().unwrap_err().field, "load_forecast_s", "{extra}");
    }
    // The words the Python binding also gives (`rl::observation::check_spans`).
    assert_eq!(
        parse("load_forecast_s: 3601\n").validate().unwrap_err().message,
        "3601 is outside 0 < load_forecast_s <= 3600"
    );
    assert!(serde_yaml_ng::to_string(&on).unwrap().contains("load_forecast_s: 30"));
    assert!(!serde_yaml_ng::to_string(&parse("")).unwrap().contains("load_forecast_s"));
}

/// A burst count's span is 1 to 120 seconds (the view's history), reaches the environment, is
/// refused beside a quota head (both want the CPU-limit feature), and is written into a
/// checkpoint's config only when set.
#[test]
fn a_burst_count_reads_up_to_the_views_history() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    let on = parse("burst_count_s: 5\n");
    assert_eq!((on.validate(), on.env_config().burst_count_s), (Ok(()), Some(5.0)));
    assert_eq!(parse("").env_config().burst_count_s, None);
    assert_eq!(parse("burst_count_s: 120\n").validate(), Ok(()));
    for extra in ["burst_count_s: 0.5\n", "burst_count_s: -5\n", "burst_count_s: 121\n", "burst_count_s: .nan\n"] {
        assert_eq!(parse(extra).validate().unwrap_err().field, "burst_count_s", "{extra}");
    }
    assert_eq!(
        parse("burst_count_s: 121\n").validate().unwrap_err().message,
        "121 is outside 1 <= burst_count_s <= 120"
    );
    assert_eq!(parse("burst_count_s: 5\nquota_head: true\n").validate().unwrap_err().field, "burst_count_s");
    assert!(serde_yaml_ng::to_string(&on).unwrap().contains("burst_count_s: 5"));
    assert!(!serde_yaml_ng::to_string(&parse("")).unwrap().contains("burst_count_s"));
}

/// The floor and the ceiling read the observation's forecast horizon, each only when asked, and
/// need that horizon and their bound.
#[test]
fn bounds_read_the_forecast_at_the_observations_horizon() {
    let base =
        "format_version: 1\nencoder: gat\nalgorithm: ppo\naction: per_service\nhpa_floor: 1.0\nhpa_ceiling: 0.5\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    let both = parse("load_forecast_s: 30\nfloor_reads_forecast: true\nceiling_reads_forecast: true\n");
    let action = both.env_config().action;
    assert_eq!((both.validate(), action.floor_forecast_s, action.ceiling_forecast_s), (Ok(()), Some(30.0), Some(30.0)));
    let ceiling = parse("load_forecast_s: 30\nceiling_reads_forecast: true\n").env_config().action;
    assert_eq!((ceiling.floor_forecast_s, ceiling.ceiling_forecast_s), (None, Some(30.0)));
    let observed_only = parse("load_forecast_s: 30\n").env_config().action;
    assert_eq!((observed_only.floor_forecast_s, observed_only.ceiling_forecast_s), (None, None));
    for (yaml, field) in [
        ("floor_reads_forecast: true\n", "floor_reads_forecast"),
        ("ceiling_reads_forecast: true\n", "ceiling_reads_forecast"),
    ] {
        assert_eq!(parse(yaml).validate().unwrap_err().field, field, "no horizon: {yaml}");
    }
    let no_bounds = "format_version: 1\nencoder: gat\nalgorithm: ppo\naction: per_service\nload_forecast_s: 30\n";
    for (extra, field) in [
        ("floor_reads_forecast: true\n", "floor_reads_forecast"),
        ("ceiling_reads_forecast: true\nhpa_floor: 1.0\n", "ceiling_reads_forecast"),
    ] {
        let config: AgentConfig = serde_yaml_ng::from_str(&format!("{no_bounds}{extra}")).unwrap();
        assert_eq!(config.validate().unwrap_err().field, field, "no bound: {extra}");
    }
    let yaml = serde_yaml_ng::to_string(&both).unwrap();
    assert!(yaml.contains("floor_reads_forecast: true") && yaml.contains("ceiling_reads_forecast: true"));
    assert!(!serde_yaml_ng::to_string(&parse("")).unwrap().contains("reads_forecast"));
}

/// The fast floor: its period, span (6 s unless set), panic ratio (1 unless set) and window
/// switch reach the action settings; it needs a floor, a period of at least 1 s dividing the
/// decision interval at least twice, a span of 1..=120 s and a ratio of 1..=10; each refining
/// setting alone is refused. Written into a checkpoint's config only when set.
#[test]
fn a_fast_floor_looks_at_a_divisor_of_the_decision_interval() {
    let base = "format_version: 1\nencoder: gat\nalgorithm: ppo\naction: per_service\n";
    let parse = |extra: &str| -> AgentConfig { serde_yaml_ng::from_str(&format!("{base}{extra}")).unwrap() };
    let on = parse("hpa_floor: 1.0\nfast_floor_every_s: 3\n");
    let fast = crate::rl::action::FastFloor::new(SimTime::from_secs(3), 6.0);
    assert_eq!((on.validate(), on.env_config().action.fast_floor), (Ok(()), Some(fast)));
    let wide = parse("hpa_floor: 1.0\nfast_floor_every_s: 5\nfast_floor_reads_s: 10\n").env_config().action;
    assert_eq!(wide.fast_floor.map(|f| (f.every, f.reads_s)), Some((SimTime::from_secs(5), 10.0)));
    assert_eq!(parse("hpa_floor: 1.0\n").env_config().action.fast_floor, None);
    // Deployed only: the training environment has none, the deployed agent has it.
    let deployed = parse("hpa_floor: 1.0\nfast_floor_every_s: 3\nfast_floor_deployed_only: true\n");
    assert_eq!(
        (deployed.validate(), deployed.env_config().action.fast_floor, deployed.deployed_fast_floor()),
        (Ok(()), None, Some(fast))
    );
    let knative =
        parse("hpa_floor: 1.0\nfast_floor_every_s: 3\nfast_floor_panic_ratio: 2\nfast_floor_leaves_window: true\n");
    let fast_knative = crate::rl::action::FastFloor { panic_ratio: 2.0, leaves_window: true, ..fast };
    assert_eq!((knative.validate(), knative.env_config().action.fast_floor), (Ok(()), Some(fast_knative)));
    for (extra, field) in [
        ("fast_floor_every_s: 3\n", "fast_floor_every_s"),
        ("hpa_floor: 1.0\nfast_floor_every_s: 4\n", "fast_floor_every_s"),
        ("hpa_floor: 1.0\nfast_floor_every_s: 15\n", "fast_floor_every_s"),
        ("hpa_floor: 1.0\nfast_floor_every_s: 0.5\ndecision_interval_s: 1\n", "fast_floor_every_s"),
        ("hpa_floor: 1.0\nfast_floor_reads_s: 6\n", "fast_floor_reads_s"),
        ("hpa_floor: 1.0\nfast_floor_every_s: 3\nfast_floor_reads_s: 200\n", "fast_floor_reads_s"),
        ("hpa_floor: 1.0\nfast_floor_every_s: 3\nfast_floor_reads_s: 0.5\n", "fast_floor_reads_s"),
        ("hpa_floor: 1.0\nfast_floor_panic_ratio: 2\n", "fast_floor_panic_ratio"),
        ("hpa_floor: 1.0\nfast_floor_leaves_window: true\n", "fast_floor_leaves_window"),
        ("hpa_floor: 1.0\nfast_floor_deployed_only: true\n", "fast_floor_deployed_only"),
        ("hpa_floor: 1.0\nfast_floor_every_s: 3\nfast_floor_panic_ratio: 0.5\n", "fast_floor_panic_ratio"),
    ] {
        assert_eq!(parse(extra).validate().unwrap_err().field, field, "{extra}");
    }
    assert!(serde_yaml_ng::to_string(&on).unwrap().contains("fast_floor_every_s: 3"));
    assert!(!serde_yaml_ng::to_string(&parse("")).unwrap().contains("fast_floor"));
}

/// `target_kl` is a positive bound up to 10, for PPO only, written into a checkpoint's config only
/// when set.
#[test]
fn a_target_kl_is_a_positive_bound_for_ppo() {
    let parse = |algorithm: &str, extra: &str| -> AgentConfig {
        serde_yaml_ng::from_str(&format!("format_version: 1\nencoder: gat\nalgorithm: {algorithm}\n{extra}")).unwrap()
    };
    let on = parse("ppo", "target_kl: 0.02\n");
    assert_eq!((on.validate(), on.target_kl), (Ok(()), Some(0.02)));
    for extra in ["target_kl: 0\n", "target_kl: -0.01\n", "target_kl: 11\n", "target_kl: .nan\n"] {
        assert_eq!(parse("ppo", extra).validate().unwrap_err().field, "target_kl", "{extra}");
    }
    let a2c = parse("a2c", "target_kl: 0.02\n").validate().unwrap_err();
    assert_eq!(a2c.field, "target_kl");
    assert!(a2c.message.contains("algorithm: ppo"), "{}", a2c.message);
    assert!(serde_yaml_ng::to_string(&on).unwrap().contains("target_kl: 0.02"));
    assert!(!serde_yaml_ng::to_string(&parse("ppo", "")).unwrap().contains("target_kl"));
}

/// `rate_scale` is a range 0.1 <= lo <= hi <= 10, written into a checkpoint's config only when
/// set (`experiment::train`'s tests show it reaching the training).
#[test]
fn a_rate_scale_is_a_range() {
    let parse = |extra: &str| -> AgentConfig {
        serde_yaml_ng::from_str(&format!("format_version: 1\nencoder: gat\nalgorithm: ppo\n{extra}")).unwrap()
    };
    let on = parse("rate_scale: [0.5, 2.0]\n");
    assert_eq!((on.validate(), on.rate_scale), (Ok(()), Some([0.5, 2.0])));
    for extra in ["rate_scale: [0.05, 1]\n", "rate_scale: [2, 1]\n", "rate_scale: [1, 11]\n", "rate_scale: [.nan, 1]\n"]
    {
        assert_eq!(parse(extra).validate().unwrap_err().field, "rate_scale", "{extra}");
    }
    assert!(serde_yaml_ng::to_string(&on).unwrap().contains("rate_scale"));
    assert!(!serde_yaml_ng::to_string(&parse("")).unwrap().contains("rate_scale"));
}
