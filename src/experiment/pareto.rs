//! The Pareto evaluation of policies against the HPA front: per scenario and policy label, the
//! mean and 95% confidence interval over seeds of cost and SLO violation, the reversals per hour,
//! and the gap to the HPA front at the policy's cost (`pareto.csv`, `pareto.png`/`.svg`).
//!
//! Input: a folder whose every run folder (one with `summary.json`) lies under a first-level
//! folder named after the policy label: `ROOT/<label>/.../summary.json` (`scripts/agents_vs_hpa.sh`
//! writes `ROOT/<label>/<scenario>/s<seed>`). The scenario is the one the summary names.
//!
//! The front: the labels `hpa<N>` (CPU target N%), each at its mean (cost, SLO violation), of which
//! those no other front point beats on both are joined by straight lines in order of cost; beyond
//! its cheapest and dearest point it is flat (their SLO violation).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::stats::describe;
use super::{out_err, RunError};
use crate::metrics::Summary;
use crate::report::{ParetoPanel, ParetoPoint};

pub const PARETO_HEADER: &str =
    "scenario,policy,n,cost_mean,cost_ci95,slo_mean,slo_ci95,reversals_per_hour,front_slo_at_cost,slo_gap_pct";

/// One row of `pareto.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParetoRow {
    pub scenario: String,
    pub policy: String,
    pub n: usize,
    pub cost_mean: f64,
    pub cost_ci95: f64,
    pub slo_mean: f64,
    pub slo_ci95: f64,
    pub reversals_per_hour: f64,
    /// The front's SLO violation at `cost_mean` (NaN when the scenario has no front).
    pub front_slo_at_cost: f64,
    /// `100 * (slo_mean - front) / max(front, 1)`: negative is better than the front.
    pub slo_gap_pct: f64,
}

/// Whether `label` is a point of the HPA front (`hpa` followed by its CPU target).
pub fn is_front(label: &str) -> bool {
    label.strip_prefix("hpa").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The Pareto-efficient points of `points` (cost, slo), in order of cost.
pub fn front(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if out.last().is_none_or(|last| p.1 < last.1) {
            out.push(p);
        }
    }
    out
}

/// The front's SLO violation at `cost`: linear between its points, flat beyond its ends.
pub fn front_at(front: &[(f64, f64)], cost: f64) -> f64 {
    let (Some(first), Some(last)) = (front.first(), front.last()) else { return f64::NAN };
    if cost <= first.0 {
        return first.1;
    }
    if cost >= last.0 {
        return last.1;
    }
    let k = front.windows(2).position(|w| cost <= w[1].0).expect("cost lies inside the front");
    let ((x0, y0), (x1, y1)) = (front[k], front[k + 1]);
    y0 + (y1 - y0) * (cost - x0) / (x1 - x0)
}

/// `slo_gap_pct`: how far `slo` lies above (+) or below (-) the front's `front_slo`, in percent of
/// it (of 1 point where the front is below 1%, so that a near-zero front does not blow it up).
pub fn gap_pct(slo: f64, front_slo: f64) -> f64 {
    100.0 * (slo - front_slo) / front_slo.max(1.0)
}

/// Each scenario's front from per-(scenario, label) means `(scenario, label, cost, slo)`: the
/// Pareto-efficient points among the `hpa<N>` labels'.
pub fn fronts<'a>(means: impl IntoIterator<Item = (&'a str, &'a str, f64, f64)>) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut points: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (scenario, label, cost, slo) in means {
        if is_front(label) {
            points.entry(scenario.to_string()).or_default().push((cost, slo));
        }
    }
    points.into_iter().map(|(scenario, p)| (scenario, front(&p))).collect()
}

/// Every run under `root`, as `(label, summary)`; a folder without any is refused (nothing to
/// compare).
pub fn collect(root: &Path) -> Result<Vec<(String, Summary)>, RunError> {
    let mut found = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| out_err(&dir, e))?;
        for e in entries {
            let p = e.map_err(|e| out_err(&dir, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "summary.json") {
                found.push(p);
            }
        }
    }
    found.sort();
    let mut out = Vec::new();
    for p in found {
        let rel = p.strip_prefix(root).expect("found under root");
        let mut parts = rel.components();
        let label = parts.next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
        if parts.clone().count() < 2 {
            continue; // a summary.json directly in a label folder is not a run of this layout
        }
        let text = std::fs::read_to_string(&p).map_err(|e| out_err(&p, e))?;
        let summary: Summary = serde_json::from_str(&text).map_err(|e| out_err(&p, e))?;
        out.push((label, summary));
    }
    if out.is_empty() {
        return Err(out_err(root, "no run folders (summary.json) under <label>/ folders here"));
    }
    Ok(out)
}

/// The table of `runs`: one row per (scenario, label), in order of scenario then label.
pub fn table(runs: &[(String, Summary)]) -> Vec<ParetoRow> {
    let mut groups: BTreeMap<(String, String), Vec<&Summary>> = BTreeMap::new();
    for (label, s) in runs {
        groups.entry((s.scenario.clone(), label.clone())).or_default().push(s);
    }
    let mut rows = Vec::new();
    for ((scenario, label), xs) in &groups {
        let cost = describe(&xs.iter().map(|s| s.cost).collect::<Vec<_>>());
        let slo = describe(&xs.iter().map(|s| s.slo_violation_pct).collect::<Vec<_>>());
        let rev = describe(&xs.iter().map(|s| s.oscillation_per_hour).collect::<Vec<_>>());
        rows.push(ParetoRow {
            scenario: scenario.clone(),
            policy: label.clone(),
            n: xs.len(),
            cost_mean: cost.mean,
            cost_ci95: cost.ci95.unwrap_or(0.0),
            slo_mean: slo.mean,
            slo_ci95: slo.ci95.unwrap_or(0.0),
            reversals_per_hour: rev.mean,
            front_slo_at_cost: f64::NAN,
            slo_gap_pct: f64::NAN,
        });
    }
    let fronts = fronts(rows.iter().map(|r| (r.scenario.as_str(), r.policy.as_str(), r.cost_mean, r.slo_mean)));
    for r in &mut rows {
        r.front_slo_at_cost = front_at(fronts.get(&r.scenario).map_or(&[][..], |v| v), r.cost_mean);
        r.slo_gap_pct = gap_pct(r.slo_mean, r.front_slo_at_cost);
    }
    rows
}

/// `pareto.csv` text.
pub fn csv_text(rows: &[ParetoRow]) -> String {
    let mut s = format!("{PARETO_HEADER}\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{:.6},{:.6},{:.4},{:.4},{:.2},{:.4},{:.2}\n",
            r.scenario,
            r.policy,
            r.n,
            r.cost_mean,
            r.cost_ci95,
            r.slo_mean,
            r.slo_ci95,
            r.reversals_per_hour,
            r.front_slo_at_cost,
            r.slo_gap_pct
        ));
    }
    s
}

/// The chart panels of `rows`: one per scenario.
pub fn panels(rows: &[ParetoRow]) -> Vec<ParetoPanel> {
    let mut out: Vec<ParetoPanel> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|p| p.scenario != r.scenario) {
            out.push(ParetoPanel { scenario: r.scenario.clone(), points: Vec::new(), front: Vec::new() });
        }
        out.last_mut().expect("pushed").points.push(ParetoPoint {
            label: r.policy.clone(),
            cost: r.cost_mean,
            cost_ci: r.cost_ci95,
            slo: r.slo_mean,
            slo_ci: r.slo_ci95,
        });
    }
    for p in &mut out {
        let pts: Vec<(f64, f64)> = p.points.iter().filter(|x| is_front(&x.label)).map(|x| (x.cost, x.slo)).collect();
        p.front = front(&pts);
    }
    out
}

/// `scalesim pareto ROOT --out OUT`: writes `OUT/pareto.csv`, `OUT/pareto.png` and `.svg`.
pub fn write(root: &Path, out: &Path) -> Result<Vec<ParetoRow>, RunError> {
    let runs = collect(root)?;
    let rows = table(&runs);
    std::fs::create_dir_all(out).map_err(|e| out_err(out, e))?;
    let p = out.join("pareto.csv");
    std::fs::write(&p, csv_text(&rows)).map_err(|e| out_err(&p, e))?;
    crate::report::pareto_charts(out, &panels(&rows)).map_err(|e| out_err(out, e))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_keeps_undominated_points_and_interpolates() {
        // (0.5, 9) is beaten by (0.4, 8): dropped.
        let f = front(&[(0.6, 2.0), (0.2, 20.0), (0.5, 9.0), (0.4, 8.0)]);
        assert_eq!(f, vec![(0.2, 20.0), (0.4, 8.0), (0.6, 2.0)]);
        assert_eq!(front_at(&f, 0.1), 20.0);
        assert_eq!(front_at(&f, 0.9), 2.0);
        assert!((front_at(&f, 0.3) - 14.0).abs() < 1e-12);
        assert!((front_at(&f, 0.5) - 5.0).abs() < 1e-12);
        assert!(front_at(&[], 0.5).is_nan());
    }

    #[test]
    fn front_labels_are_hpa_and_a_number() {
        assert!(is_front("hpa60") && is_front("hpa150"));
        assert!(!is_front("hpa") && !is_front("hpa60b") && !is_front("gat-ppo") && !is_front("kpa"));
    }
}
