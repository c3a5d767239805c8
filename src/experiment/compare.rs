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
//! (`reports/agents_vs_hpa/results.md`).
//!
//! Owns: reading `pareto.csv` (one clear error per bad file, line and field) and the comparison.
//! Knows nothing of runs or of how the tables were made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::pareto::PARETO_HEADER;
use super::stats::describe;
use super::{out_err, RunError};

/// One `pareto.csv` cell a comparison needs.
#[derive(Clone, Debug, PartialEq)]
pub struct GapCell {
    pub slo_gap_pct: f64,
    pub reversals_per_hour: f64,
}

/// A policy against the reference, over the loads both have.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub policy: String,
    pub loads: usize,
    pub gap_mean: f64,
    /// Mean of the per-load `slo_gap_pct(policy) - slo_gap_pct(reference)`.
    pub diff_mean: f64,
    /// Half-width of its 95% Student-t interval (0 with one load).
    pub diff_ci95: f64,
    /// Loads where the policy's gap is below (better) or above (worse) the reference's by more
    /// than `TIE_PCT` points.
    pub better: usize,
    pub worse: usize,
    pub reversals_per_hour_mean: f64,
}

/// Differences this small are ties: `pareto.csv` writes gaps to 0.01 point.
pub const TIE_PCT: f64 = 0.01;

pub const COMPARE_HEADER: &str = "policy,loads,gap_mean,diff_mean,diff_ci95,better,worse,reversals_per_hour_mean";

/// The cells of the `pareto.csv` files `paths`, by (scenario, policy). A scenario's rows must come
/// from one file: the same scenario in two tables is refused (its front would be two fronts).
pub fn read_tables(paths: &[PathBuf]) -> Result<BTreeMap<(String, String), GapCell>, RunError> {
    let mut cells = BTreeMap::new();
    let mut scenario_file: BTreeMap<String, &Path> = BTreeMap::new();
    let names: Vec<&str> = PARETO_HEADER.split(',').collect();
    let column = |name: &str| names.iter().position(|n| *n == name).expect("a pareto.csv column");
    let (gap_at, reversals_at) = (column("slo_gap_pct"), column("reversals_per_hour"));
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
            let cell = GapCell { slo_gap_pct: numbers[gap_at], reversals_per_hour: numbers[reversals_at] };
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
/// of policy name. Fails when the reference has no row.
pub fn compare(cells: &BTreeMap<(String, String), GapCell>, reference: &str) -> Result<Vec<Comparison>, String> {
    let reference_gap: BTreeMap<&str, f64> =
        cells.iter().filter(|((_, p), _)| p == reference).map(|((s, _), c)| (s.as_str(), c.slo_gap_pct)).collect();
    if reference_gap.is_empty() {
        let known: std::collections::BTreeSet<&str> = cells.keys().map(|(_, p)| p.as_str()).collect();
        let known: Vec<&str> = known.into_iter().collect();
        return Err(format!("no rows for the reference policy `{reference}`; the tables have {}", known.join(", ")));
    }
    let mut by_policy: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for ((scenario, policy), c) in cells {
        if let Some(&r) = reference_gap.get(scenario.as_str()) {
            by_policy.entry(policy).or_default().push((c.slo_gap_pct, r, c.reversals_per_hour));
        }
    }
    Ok(by_policy
        .into_iter()
        .map(|(policy, xs)| {
            let diffs: Vec<f64> = xs.iter().map(|&(g, r, _)| g - r).collect();
            let d = describe(&diffs);
            let mean = |f: fn(&(f64, f64, f64)) -> f64| xs.iter().map(f).sum::<f64>() / xs.len() as f64;
            Comparison {
                policy: policy.to_string(),
                loads: xs.len(),
                gap_mean: mean(|x| x.0),
                diff_mean: d.mean,
                diff_ci95: d.ci95.unwrap_or(0.0),
                better: diffs.iter().filter(|&&x| x < -TIE_PCT).count(),
                worse: diffs.iter().filter(|&&x| x > TIE_PCT).count(),
                reversals_per_hour_mean: mean(|x| x.2),
            }
        })
        .collect())
}

/// `compare.csv` text.
pub fn csv_text(rows: &[Comparison]) -> String {
    let mut s = format!("{COMPARE_HEADER}\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{:.2},{:.2},{:.2},{},{},{:.2}\n",
            r.policy, r.loads, r.gap_mean, r.diff_mean, r.diff_ci95, r.better, r.worse, r.reversals_per_hour_mean
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(gap: f64, rev: f64) -> GapCell {
        GapCell { slo_gap_pct: gap, reversals_per_hour: rev }
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
        let rows = compare(&cells, "b").unwrap();
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
        let e = compare(&cells, "hpa60").unwrap_err();
        assert!(e.contains("`hpa60`") && e.contains("a, b, c"), "{e}");
    }
}
