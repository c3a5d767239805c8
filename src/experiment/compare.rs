//! Paired comparison of policies across loads: reads `pareto.csv` tables and, for each policy,
//! sets its gap to the HPA front on every load (`slo_gap_pct`) against a reference policy's on
//! the same load (`scalesim compare`).
//!
//! Why paired over loads: a setting is chosen on many loads at once, and loads differ far more
//! than seeds do (a gap of -60% on one MMPP trace and 0% on a smooth wave). The seeds' intervals
//! in `pareto.csv` say how sure each cell is; whether one policy is better than another *over a
//! family of loads* is a question about the per-load differences, whose mean and 95% Student-t
//! interval this module reports. With a handful of loads that interval is wide: three loads
//! decided four choices in a row here that fifteen loads reversed
//! (`reports/agents_vs_hpa/results.md`). When several policies are each held against the
//! reference to pick one, `comparisons` widens every interval by Bonferroni's correction (each at
//! `1 - 0.05 / comparisons`), so that all of them hold together with 95% confidence.
//!
//! By family: loads drawn by `scripts/fresh_loads.py` are named `[PREFIX_]fresh_FAMILY` (an MMPP
//! trace, spikes, a gamma wave, a surge). A setting that wins on one family can lose another (the
//! renewal at the bound lost the spikes and won the surges), so with `by_family` every policy is
//! also compared within each family; loads not named so fall in the family `other`.
//!
//! Owns: reading `pareto.csv` (one clear error per bad file, line and field) and the comparison.
//! Knows nothing of runs or of how the tables were made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::pareto::PARETO_HEADER;
use super::stats::{describe, t_half_width};
use super::{out_err, RunError};

/// One `pareto.csv` cell a comparison needs.
#[derive(Clone, Debug, PartialEq)]
pub struct GapCell {
    pub slo_gap_pct: f64,
    pub reversals_per_hour: f64,
    pub cost_mean: f64,
}

/// A policy against the reference, over the loads both have.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The loads compared: [`ALL_LOADS`] or one family's (see [`family_of`]).
    pub family: String,
    pub policy: String,
    pub loads: usize,
    pub gap_mean: f64,
    /// Mean of the per-load `slo_gap_pct(policy) - slo_gap_pct(reference)`.
    pub diff_mean: f64,
    /// Half-width of its 95% Student-t interval (0 with one load); family-wise over
    /// `comparisons`: each interval at `1 - 0.05 / comparisons` (Bonferroni).
    pub diff_ci95: f64,
    /// How many comparisons the intervals are corrected for (1: none).
    pub comparisons: usize,
    /// Loads where the policy's gap is below (better) or above (worse) the reference's by more
    /// than `TIE_PCT` points.
    pub better: usize,
    pub worse: usize,
    pub reversals_per_hour_mean: f64,
    /// Mean over loads of the policy's `cost_mean` over the reference's on the same load (1 for
    /// the reference): what a gap was bought with.
    pub cost_ratio_mean: f64,
}

/// The `family` of the rows over every load.
pub const ALL_LOADS: &str = "all";

/// The family of loads not drawn by `scripts/fresh_loads.py`.
pub const OTHER_FAMILY: &str = "other";

/// A load's family: `FAMILY` in a name `fresh_FAMILY` or `PREFIX_fresh_FAMILY`
/// (`scripts/fresh_loads.py`), otherwise [`OTHER_FAMILY`].
pub fn family_of(scenario: &str) -> &str {
    let start = if scenario.starts_with("fresh_") { Some(0) } else { scenario.find("_fresh_").map(|i| i + 1) };
    match start.map(|i| &scenario[i + "fresh_".len()..]) {
        Some(family) if !family.is_empty() => family,
        _ => OTHER_FAMILY,
    }
}

/// Differences this small are ties: `pareto.csv` writes gaps to 0.01 point.
pub const TIE_PCT: f64 = 0.01;

pub const COMPARE_HEADER: &str =
    "family,policy,loads,gap_mean,diff_mean,diff_ci95,better,worse,reversals_per_hour_mean,cost_ratio_mean,comparisons";

/// The cells of the `pareto.csv` files `paths`, by (scenario, policy). A scenario's rows must come
/// from one file: the same scenario in two tables is refused (its front would be two fronts).
pub fn read_tables(paths: &[PathBuf]) -> Result<BTreeMap<(String, String), GapCell>, RunError> {
    let mut cells = BTreeMap::new();
    let mut scenario_file: BTreeMap<String, &Path> = BTreeMap::new();
    let names: Vec<&str> = PARETO_HEADER.split(',').collect();
    let column = |name: &str| names.iter().position(|n| *n == name).expect("a pareto.csv column");
    let (gap_at, reversals_at, cost_at) = (column("slo_gap_pct"), column("reversals_per_hour"), column("cost_mean"));
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| out_err(path, e))?;
        let mut lines = text.lines();
        match lines.next() {
            Some(h) if h.trim_end() == PARETO_HEADER => {}
            other => {
                let got = crate::text::clip_quote(other.unwrap_or(""));
                return Err(out_err(
                    path,
                    format!("line 1: expected the pareto.csv header `{PARETO_HEADER}`, found `{got}`"),
                ));
            }
        }
        for (k, line) in lines.enumerate() {
            let at = k + 2;
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != names.len() {
                return Err(out_err(
                    path,
                    format!("line {at}: {} fields where the header has {}", fields.len(), names.len()),
                ));
            }
            // Every number is parsed once and checked, not only the two used: a table with a
            // damaged cell is refused rather than half read. (The first two columns are text.)
            let mut numbers = vec![f64::NAN; names.len()];
            for i in 2..names.len() {
                numbers[i] = fields[i].parse::<f64>().map_err(|_| {
                    let v = crate::text::clip_quote(fields[i]);
                    out_err(path, format!("line {at}: `{}`: `{v}` is not a number", names[i]))
                })?;
            }
            let (scenario, policy) = (fields[0].to_string(), fields[1].to_string());
            let cell = GapCell {
                slo_gap_pct: numbers[gap_at],
                reversals_per_hour: numbers[reversals_at],
                cost_mean: numbers[cost_at],
            };
            if let Some(first) = scenario_file.get(&scenario) {
                if *first != path.as_path() {
                    return Err(out_err(
                        path,
                        format!("line {at}: scenario `{scenario}` is also in {}; give each load once", first.display()),
                    ));
                }
            }
            scenario_file.insert(scenario.clone(), path);
            if cells.insert((scenario.clone(), policy.clone()), cell).is_some() {
                return Err(out_err(path, format!("line {at}: a second row for `{scenario}`, `{policy}`")));
            }
        }
    }
    Ok(cells)
}

/// Every policy of `cells` against `reference`, over the loads where both have a row, in order
/// of policy name (family [`ALL_LOADS`]); with `by_family`, then the same within each family of
/// loads, families in name order; every interval corrected for `comparisons` (at least 1).
/// Fails when the reference has no row.
pub fn compare(
    cells: &BTreeMap<(String, String), GapCell>,
    reference: &str,
    by_family: bool,
    comparisons: usize,
) -> Result<Vec<Comparison>, String> {
    if comparisons == 0 {
        return Err("comparisons: must be at least 1".into());
    }
    let reference_cell: BTreeMap<&str, &GapCell> =
        cells.iter().filter(|((_, p), _)| p == reference).map(|((s, _), c)| (s.as_str(), c)).collect();
    if reference_cell.is_empty() {
        let known: std::collections::BTreeSet<&str> = cells.keys().map(|(_, p)| p.as_str()).collect();
        let known: Vec<&str> = known.into_iter().collect();
        return Err(format!("no rows for the reference policy `{reference}`; the tables have {}", known.join(", ")));
    }
    let mut rows = compare_within(cells, &reference_cell, ALL_LOADS, comparisons, |_| true);
    if by_family {
        let families: std::collections::BTreeSet<&str> = reference_cell.keys().map(|s| family_of(s)).collect();
        for family in families {
            rows.extend(compare_within(cells, &reference_cell, family, comparisons, |s| family_of(s) == family));
        }
    }
    Ok(rows)
}

/// The rows of one set of loads (those `in_set` keeps), labelled `family`.
fn compare_within(
    cells: &BTreeMap<(String, String), GapCell>,
    reference: &BTreeMap<&str, &GapCell>,
    family: &str,
    comparisons: usize,
    in_set: impl Fn(&str) -> bool,
) -> Vec<Comparison> {
    let level = 1.0 - 0.05 / comparisons as f64;
    // (policy's cell, reference's cell) per load both have.
    let mut by_policy: BTreeMap<&str, Vec<(&GapCell, &GapCell)>> = BTreeMap::new();
    for ((scenario, policy), c) in cells {
        if let Some(&r) = reference.get(scenario.as_str()).filter(|_| in_set(scenario)) {
            by_policy.entry(policy).or_default().push((c, r));
        }
    }
    by_policy
        .into_iter()
        .map(|(policy, xs)| {
            let diffs: Vec<f64> = xs.iter().map(|(c, r)| c.slo_gap_pct - r.slo_gap_pct).collect();
            let d = describe(&diffs);
            let mean = |f: &dyn Fn(&(&GapCell, &GapCell)) -> f64| xs.iter().map(f).sum::<f64>() / xs.len() as f64;
            Comparison {
                family: family.to_string(),
                policy: policy.to_string(),
                loads: xs.len(),
                gap_mean: mean(&|(c, _)| c.slo_gap_pct),
                diff_mean: d.mean,
                diff_ci95: t_half_width(d.std, d.n, level).unwrap_or(0.0),
                comparisons,
                better: diffs.iter().filter(|&&x| x < -TIE_PCT).count(),
                worse: diffs.iter().filter(|&&x| x > TIE_PCT).count(),
                reversals_per_hour_mean: mean(&|(c, _)| c.reversals_per_hour),
                cost_ratio_mean: mean(&|(c, r)| cost_ratio(c.cost_mean, r.cost_mean)),
            }
        })
        .collect()
}

/// `cost / reference_cost`; 1 when both are 0 (two policies that spent nothing), infinite when
/// only the reference spent nothing.
fn cost_ratio(cost: f64, reference_cost: f64) -> f64 {
    if reference_cost == 0.0 {
        if cost == 0.0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        cost / reference_cost
    }
}

/// One row's values as `compare.csv` writes them, in [`COMPARE_HEADER`]'s order.
fn fields(r: &Comparison) -> [String; 11] {
    [
        r.family.clone(),
        r.policy.clone(),
        r.loads.to_string(),
        format!("{:.2}", r.gap_mean),
        format!("{:.2}", r.diff_mean),
        format!("{:.2}", r.diff_ci95),
        r.better.to_string(),
        r.worse.to_string(),
        format!("{:.2}", r.reversals_per_hour_mean),
        format!("{:.3}", r.cost_ratio_mean),
        r.comparisons.to_string(),
    ]
}

/// `compare.csv` text.
pub fn csv_text(rows: &[Comparison]) -> String {
    let mut s = format!("{COMPARE_HEADER}\n");
    for r in rows {
        s.push_str(&fields(r).join(","));
        s.push('\n');
    }
    s
}

/// The same rows for a terminal: a heading before each family's rows, the difference with its
/// interval as `+d ± h`.
pub fn table_text(rows: &[Comparison]) -> String {
    let mut s = String::new();
    let mut family = None;
    for r in rows {
        if family != Some(&r.family) {
            family = Some(&r.family);
            let corrected = match r.comparisons {
                1 => String::new(),
                k => format!("; intervals Bonferroni-corrected for {k} comparisons"),
            };
            s.push_str(&format!(
                "{:<16} {:>5} {:>9} {:>18} {:>13} {:>7} {:>7}   ({} loads{corrected})\n",
                "policy", "loads", "gap", "gap - reference", "better/worse", "rev/h", "cost", r.family
            ));
        }
        let [_, policy, loads, gap, diff, ci, better, worse, reversals, cost, _] = fields(r);
        let diff = if r.diff_mean >= 0.0 { format!("+{diff}") } else { diff };
        s.push_str(&format!(
            "{policy:<16} {loads:>5} {gap:>8}% {diff:>9} ± {ci:>6}  {better:>6}/{worse:<6} {reversals:>7} {cost:>6}x\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(gap: f64, rev: f64) -> GapCell {
        GapCell { slo_gap_pct: gap, reversals_per_hour: rev, cost_mean: 0.3 }
    }

    #[test]
    fn differences_are_paired_per_load_with_a_t_interval() {
        let mut cells = BTreeMap::new();
        for (s, a, b) in [("l1", -10.0, -4.0), ("l2", 5.0, 6.0), ("l3", -30.0, -10.0), ("l4", 0.0, 0.0)] {
            cells.insert((s.to_string(), "a".to_string()), cell(a, 10.0));
            cells.insert((s.to_string(), "b".to_string()), cell(b, 2.0));
        }
        // `c` has a row on one load only; it is compared on that load.
        cells.insert(("l1".to_string(), "c".to_string()), cell(-14.0, 0.0));
        let rows = compare(&cells, "b", false, 1).unwrap();
        assert_eq!(rows.iter().map(|r| r.policy.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        // a - b per load: -6, -1, -20, 0: mean -6.75; sample sd sqrt(((-6+6.75)^2 + (5.75)^2 +
        // (-13.25)^2 + (6.75)^2) / 3) = sqrt(254.75 / 3) = 9.2150; t(0.975, 3) = 3.182446;
        // half-width 3.182446 * 9.2150 / 2 = 14.663.
        let a = &rows[0];
        assert_eq!((a.loads, a.better, a.worse), (4, 3, 0));
        assert!((a.gap_mean - (-35.0 / 4.0)).abs() < 1e-12);
        assert!((a.diff_mean + 6.75).abs() < 1e-12);
        assert!((a.diff_ci95 - 3.182446 * (254.75f64 / 3.0).sqrt() / 2.0).abs() < 1e-4, "{}", a.diff_ci95);
        assert_eq!(a.reversals_per_hour_mean, 10.0);
        let b = &rows[1];
        assert_eq!((b.diff_mean, b.diff_ci95, b.better, b.worse), (0.0, 0.0, 0, 0));
        let c = &rows[2];
        assert_eq!((c.loads, c.diff_mean, c.diff_ci95, c.better), (1, -10.0, 0.0, 1));
        assert!(rows.iter().all(|r| r.family == ALL_LOADS && r.cost_ratio_mean == 1.0));
        let e = compare(&cells, "hpa60", false, 1).unwrap_err();
        assert!(e.contains("`hpa60`") && e.contains("a, b, c"), "{e}");
        // Two comparisons (Bonferroni): each interval at 97.5%, t(0.9875, 3) = 4.176535 (by
        // numerical integration of the t density): half-width 4.176535 * 9.2150 / 2 = 19.243.
        let two = compare(&cells, "b", false, 2).unwrap();
        assert!((two[0].diff_ci95 - 4.176535 * (254.75f64 / 3.0).sqrt() / 2.0).abs() < 1e-4, "{}", two[0].diff_ci95);
        assert!(two.iter().all(|r| r.comparisons == 2) && two[0].diff_mean == a.diff_mean);
        assert!(compare(&cells, "b", false, 0).unwrap_err().contains("at least 1"));
    }

    #[test]
    fn a_load_family_is_what_follows_fresh_in_its_name() {
        assert_eq!(family_of("d301_fresh_gamma_wave"), "gamma_wave");
        assert_eq!(family_of("fresh_mmpp"), "mmpp");
        assert_eq!(family_of("a-b_fresh_surge"), "surge");
        for other in ["ob_flash_crowds", "refresh_mmpp", "d1_fresh_", "fresh", "online_boutique_rush"] {
            assert_eq!(family_of(other), OTHER_FAMILY, "{other}");
        }
    }

    #[test]
    fn by_family_each_family_is_compared_on_its_own_loads() {
        let mut cells = BTreeMap::new();
        // (load, a's gap, a's cost, reference's gap, reference's cost)
        for (s, ga, ca, gr, cr) in [
            ("d1_fresh_spikes", -40.0, 0.2, -10.0, 0.4),
            ("d2_fresh_spikes", -20.0, 0.3, -10.0, 0.3),
            ("d1_fresh_surge", 6.0, 0.5, 2.0, 0.4),
            ("ob_slow_wave", 0.0, 0.0, 0.0, 0.0),
        ] {
            cells.insert(
                (s.to_string(), "a".to_string()),
                GapCell { slo_gap_pct: ga, reversals_per_hour: 3.0, cost_mean: ca },
            );
            cells.insert(
                (s.to_string(), "r".to_string()),
                GapCell { slo_gap_pct: gr, reversals_per_hour: 1.0, cost_mean: cr },
            );
        }
        let rows = compare(&cells, "r", true, 1).unwrap();
        let labels: Vec<(&str, &str, usize)> =
            rows.iter().map(|r| (r.family.as_str(), r.policy.as_str(), r.loads)).collect();
        assert_eq!(
            labels,
            [
                ("all", "a", 4),
                ("all", "r", 4),
                ("other", "a", 1),
                ("other", "r", 1),
                ("spikes", "a", 2),
                ("spikes", "r", 2),
                ("surge", "a", 1),
                ("surge", "r", 1)
            ]
        );
        // all: differences -30, -10, +4, 0: mean -9; cost ratios 0.5, 1, 1.25 and 1 (both spent
        // nothing): mean 0.9375.
        assert!((rows[0].diff_mean + 9.0).abs() < 1e-12 && (rows[0].cost_ratio_mean - 0.9375).abs() < 1e-12);
        assert_eq!((rows[0].better, rows[0].worse), (2, 1));
        // spikes: -30 and -10: mean -20, sd sqrt(200) = 14.142; t(0.975, 1) = 12.706205: half-width
        // 12.706205 * 14.142 / sqrt(2) = 127.06; gap mean -30; cost ratio (0.5 + 1) / 2.
        let spikes = &rows[4];
        assert!((spikes.diff_mean + 20.0).abs() < 1e-12 && (spikes.gap_mean + 30.0).abs() < 1e-12);
        assert!((spikes.diff_ci95 - 127.06205).abs() < 1e-3, "{}", spikes.diff_ci95);
        assert!((spikes.cost_ratio_mean - 0.75).abs() < 1e-12);
        assert_eq!((rows[6].diff_mean, rows[6].cost_ratio_mean), (4.0, 1.25));
        assert_eq!(cost_ratio(0.1, 0.0), f64::INFINITY);
    }
}
