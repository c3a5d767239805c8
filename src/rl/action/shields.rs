//! Whether an action's HPA shields (floor, ceiling, levels) and the switches that refine them fit
//! together, and whether a bound switched onto the load forecast has its horizon: checks the agent
//! config and the Python binding both call.

use super::{ActionConfig, Anchor, CeilingHold, PeakSpan, Stabilization};
use crate::engine::SimTime;

/// Why switching a bound onto the load forecast (`floor_reads_forecast`,
/// `ceiling_reads_forecast`) without a forecast horizon (`load_forecast_s`) is refused, if it is,
/// as `(field, why)`: the bound reads the observation's forecast and has no horizon of its own.
/// The agent config and the Python binding check alike, before the horizons reach an
/// [`ActionConfig`] (which cannot say that a switch is on without one).
pub fn check_forecast_switches(
    load_forecast_s: Option<f64>,
    floor_reads_forecast: bool,
    ceiling_reads_forecast: bool,
) -> Result<(), (&'static str, String)> {
    for (on, field) in
        [(floor_reads_forecast, "floor_reads_forecast"), (ceiling_reads_forecast, "ceiling_reads_forecast")]
    {
        if on && load_forecast_s.is_none() {
            return Err((field, "needs `load_forecast_s`: the horizon of the forecast it reads".into()));
        }
    }
    Ok(())
}

/// Why a fast floor ([`super::ActionConfig::fast_floor`]: `fast_floor_every_s` and the settings
/// `refining` it, each named with whether it is given) is refused, if it is, as `(field, why)`:
/// it needs a floor (`hpa_floor`: its target); it looks at least once a second and more than once
/// a decision, at a period that divides the decision interval (so the policy's decisions keep
/// their times); it reads 1 to 120 s (`reads_s`: the history a view keeps) and raises at a ratio
/// of 1 to 10 (`panic_ratio`); a refining setting without the period is refused. The agent config
/// checks the seconds before they become an [`super::ActionConfig`]; the Python binding alike.
pub fn check_fast_floor<const N: usize>(
    every_s: Option<f64>,
    refining: [(&'static str, bool); N],
    reads_s: Option<f64>,
    panic_ratio: Option<f64>,
    decision_interval_s: f64,
    hpa_floor: Option<f64>,
) -> Result<(), (&'static str, String)> {
    let Some(every) = every_s else {
        return match refining.iter().find(|(_, given)| *given) {
            Some(&(field, _)) => Err((field, "needs `fast_floor_every_s`: the fast floor it refines".into())),
            None => Ok(()),
        };
    };
    if hpa_floor.is_none() {
        return Err(("fast_floor_every_s", "needs `hpa_floor`: the fast floor counts at the floor's target".into()));
    }
    let looks = decision_interval_s / every;
    if !(every.is_finite() && every >= 1.0 && looks >= 2.0 && (looks - looks.round()).abs() < 1e-9) {
        return Err((
            "fast_floor_every_s",
            format!(
                "{every} s: the fast floor looks at least every 1 s, and at a period that divides the {decision_interval_s} s decision interval at least twice"
            ),
        ));
    }
    if let Some(r) = reads_s.filter(|r| !(r.is_finite() && (1.0..=crate::metrics::HISTORY_SPAN_S).contains(r))) {
        let most = crate::metrics::HISTORY_SPAN_S;
        return Err((
            "fast_floor_reads_s",
            format!("{r} s is outside 1..={most} s (the arrivals history a view keeps)"),
        ));
    }
    if let Some(r) = panic_ratio.filter(|r| !(r.is_finite() && (1.0..=10.0).contains(r))) {
        return Err(("fast_floor_panic_ratio", format!("{r} is outside 1..=10 (times the current count)")));
    }
    Ok(())
}

/// Why `action`'s HPA shields ([`ActionConfig::hpa_floor`], [`ActionConfig::hpa_ceiling`],
/// [`ActionConfig::hpa_levels`] and the switches that refine them) are not valid, alone or
/// together, if they are not, as `(field, why)`; `per_service`: every service gets its own delta.
/// Each target is a CPU target in (0, 10]; the ceiling's is below the floor's (a lower target
/// keeps more replicas); the levels fall from the leanest to the richest;
/// [`ActionConfig::floor_counts_refused`] and [`ActionConfig::floor_holds_peak`] (with a window)
/// need a floor, [`ActionConfig::ceiling_release_step`] (at least 1) and
/// [`ActionConfig::ceiling_hold`] (with a window) a ceiling. The agent config and the Python
/// binding check alike.
pub fn check_hpa_shields(action: &ActionConfig, per_service: bool) -> Result<(), (&'static str, String)> {
    let levels = action.hpa_levels.as_ref().map_or(&[][..], |l| &l[..]);
    let targets = [("hpa_floor", action.hpa_floor), ("hpa_ceiling", action.hpa_ceiling)]
        .into_iter()
        .filter_map(|(field, t)| t.map(|t| (field, t)))
        .chain(levels.iter().map(|&t| ("hpa_levels", t)));
    for (field, t) in targets {
        if !(t.is_finite() && t > 0.0 && t <= 10.0) {
            return Err((field, format!("{t} is outside 0 < target <= 10 (a CPU target, 1.0 = 100%)")));
        }
    }
    if let (Some(f), Some(c)) = (action.hpa_floor, action.hpa_ceiling) {
        if c >= f {
            return Err((
                "hpa_ceiling",
                format!("{c} is not below hpa_floor {f} (a lower CPU target keeps more replicas: the ceiling's)"),
            ));
        }
    }
    if action.ceiling_hold != CeilingHold::Off
        && (action.hpa_ceiling.is_none() || action.downscale_stabilization == SimTime::ZERO)
    {
        let field = match action.ceiling_hold {
            CeilingHold::Peak => "ceiling_holds_peak",
            _ => "ceiling_holds_while_needed",
        };
        return Err((
            field,
            "needs `hpa_ceiling` and a scale-down window (`downscale_stabilization_s`): it holds the ceiling over the window".into(),
        ));
    }
    if action.ceiling_release_step.is_some() && action.hpa_ceiling.is_none() {
        return Err(("ceiling_release_step", "needs `hpa_ceiling`: it slows the ceiling's release".into()));
    }
    if action.ceiling_release_step == Some(0) {
        return Err(("ceiling_release_step", "0 would never lower a count: use at least 1".into()));
    }
    if action.floor_holds_peak && (action.hpa_floor.is_none() || action.downscale_stabilization == SimTime::ZERO) {
        return Err((
            "floor_holds_peak",
            "needs `hpa_floor` and a scale-down window (`downscale_stabilization_s`): it holds the floor's peak over the window".into(),
        ));
    }
    if action.floor_counts_refused && action.hpa_floor.is_none() {
        return Err(("floor_counts_refused", "needs `hpa_floor`: it changes the floor's formula".into()));
    }
    if let Some(secs) = action.floor_peak_s {
        if action.hpa_floor.is_none() {
            return Err(("floor_peak_s", "needs `hpa_floor`: it changes the load the floor reads".into()));
        }
        if !(secs.is_finite() && secs >= 1.0) {
            return Err(("floor_peak_s", format!("{secs} s: the span the floor reads must be at least 1 s")));
        }
    }
    if action.floor_peak_reads != PeakSpan::Busiest && action.floor_peak_s.is_none() {
        return Err((
            "floor_peak_reads",
            "needs `floor_peak_s`: it chooses which span of that many seconds the floor reads".into(),
        ));
    }
    for (horizon, bound, field, needs) in [
        (action.floor_forecast_s, action.hpa_floor, "floor_reads_forecast", "hpa_floor"),
        (action.ceiling_forecast_s, action.hpa_ceiling, "ceiling_reads_forecast", "hpa_ceiling"),
    ] {
        let Some(secs) = horizon else { continue };
        if bound.is_none() {
            return Err((field, format!("needs `{needs}`: it changes the load that bound reads")));
        }
        let most = crate::rl::load_trend::MAX_HORIZON_S;
        if !(secs.is_finite() && secs > 0.0 && secs <= most) {
            return Err((field, format!("a forecast {secs} s ahead is outside 0 < horizon <= {most}")));
        }
    }
    let set = [
        ("hpa_floor", action.hpa_floor.is_some()),
        ("hpa_ceiling", action.hpa_ceiling.is_some()),
        ("hpa_levels", action.hpa_levels.is_some()),
    ];
    if let Some((field, _)) = set.iter().find(|(_, on)| *on && !per_service) {
        return Err((field, "needs per-service actions (`action: per_service`): it sets every service's count".into()));
    }
    let recommendations = action.stabilization == Stabilization::Recommendations;
    if action.hpa_ceiling.is_some() && recommendations {
        // The ceiling waits for the window after a scale-up; recommendations keep no such time.
        return Err(("hpa_ceiling", "takes `stabilization: after_scale_up`".into()));
    }
    if action.floor_holds_peak && recommendations {
        // The held floor is kept by the after-scale-up stabiliser, as a holding ceiling is.
        return Err(("floor_holds_peak", "takes `stabilization: after_scale_up`".into()));
    }
    if action.renew_at_bound {
        // A renewal restarts the window a scale-up starts; it holds the current count, so it
        // needs counts that move from the current one, one replica at a time.
        let conflict = if !per_service {
            Some("needs per-service actions (`action: per_service`)")
        } else if action.downscale_stabilization == SimTime::ZERO || recommendations {
            Some("needs a scale-down window (`downscale_stabilization_s`) with `stabilization: after_scale_up`")
        } else if action.multiplicative_steps || action.anchor != Anchor::Current || action.hpa_levels.is_some() {
            Some("takes `steps: additive` and `anchor: current`, without `hpa_levels`")
        } else {
            None
        };
        if let Some(why) = conflict {
            return Err(("renew_window_at_bound", why.into()));
        }
    }
    if action.renew_only_while_needed && (!action.renew_at_bound || action.hpa_ceiling.is_none()) {
        // It narrows the renewal to counts the ceiling's recommendation reaches.
        return Err((
            "renew_only_while_needed",
            "needs `renew_window_at_bound` and `hpa_ceiling`: it limits the renewal to counts the ceiling's recommendation reaches".into(),
        ));
    }
    if action.hpa_levels.is_some() {
        if levels.windows(2).any(|w| w[1] >= w[0]) {
            return Err((
                "hpa_levels",
                format!(
                    "{levels:?} do not fall from the leanest target (for -2) to the richest (for +2): each must be below the one before"
                ),
            ));
        }
        let conflict = if action.multiplicative_steps {
            Some("takes `steps: additive` (a level sets the count)")
        } else if recommendations {
            Some("takes `stabilization: after_scale_up`")
        } else if action.anchor != Anchor::Current {
            Some("takes `anchor: current` (a level is its own anchor)")
        } else if action.hpa_floor.is_some() || action.hpa_ceiling.is_some() {
            Some("takes no `hpa_floor` or `hpa_ceiling` (the leanest and richest levels are the band)")
        } else {
            None
        };
        if let Some(why) = conflict {
            return Err(("hpa_levels", why.into()));
        }
    }
    Ok(())
}
