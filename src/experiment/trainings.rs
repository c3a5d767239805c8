//! Comparison of policies over trainings (`scalesim trainings`): from run folders
//! `ROOT/<label>/<load>/s<seed>`, each training's mean gap to the HPA front over every load (a
//! trained policy's seed is its training), then each label's mean and spread over its trainings
//! and its difference from a reference label's, with a 95% interval over trainings.
//!
//! Why over trainings and not over loads (`scalesim compare`): trainings of one config differ by
//! 13-17 points of mean gap (reports/agents_vs_hpa/results.md, round 30b), more than most changes
//! tried. An interval over loads holds the trainings fixed, so it says whether *these* ten
//! trainings beat *those* ten, not whether one config beats another. Here the unit is the
//! training: labels with the same seeds are paired by seed (a paired t-interval: a change to the
//! choice among trainings, or two policies from one training, share their seed's luck); labels
//! with different seeds are compared by Welch's interval.
//!
//! The gap of one run: `slo_gap_pct` of its own cost and SLO violation against its load's front
//! (the `hpa<N>` labels' means over their seeds, joined as `scalesim pareto` joins them). Every
//! load with a front must have a run of every training, and every load run must have a front:
//! a training's mean over other loads than another's would not compare.
//!
//! Every label that is not a front point is compared, baselines included: a baseline's seeds are
//! its replicates as a trained policy's are (other random streams of the same load), so KPA run at
//! three seeds has three "trainings" here.
//!
//! Owns: per-training means and their comparison. Knows nothing of how the runs were made.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::pareto::{self, front_at, gap_pct, is_front};
use super::stats::{describe, t_half_width, welch};
use super::RunError;

/// What a comparison needs of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPoint {
    pub label: String,
    pub scenario: String,
    pub seed: u64,
    pub cost: f64,
    pub slo: f64,
}

/// One training (a label's seed) over every load.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingMean {
    pub policy: String,
    pub seed: u64,
    pub loads: usize,
    /// Mean over the loads of the run's gap to its load's front.
    pub gap_mean: f64,
    pub cost_mean: f64,
    pub slo_mean: f64,
}

/// How a label's trainings were set against the reference's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    /// The same seeds: per-seed differences, paired t-interval.
    Seed,
    /// Other seeds: Welch's interval on the two sets of training means.
    Welch,
}

impl Pairing {
    pub fn name(self) -> &'static str {
        match self {
            Pairing::Seed => "seed",
            Pairing::Welch => "welch",
        }
    }
}

/// A label over its trainings, against the reference's.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingComparison {
    pub policy: String,
    pub trainings: usize,
    pub loads: usize,
    /// Mean and sample standard deviation of its trainings' mean gaps.
    pub gap_mean: f64,
    pub gap_sd: f64,
    /// Its `gap_mean` minus the reference's (0 for the reference).
    pub diff_mean: f64,
    /// Half-width of the 95% interval of `diff_mean` (Bonferroni over `comparisons`: each at
    /// `1 - 0.05 / comparisons`); NaN where the trainings are too few for one.
    pub diff_ci95: f64,
    pub pairing: Pairing,
    /// Paired only: seeds whose training is better (lower gap) or worse than the reference's by
    /// more than [`super::compare::TIE_PCT`].
    pub better: Option<usize>,
    pub worse: Option<usize>,
    pub comparisons: usize,
}

pub const TRAININGS_HEADER: &str = "policy,seed,loads,gap_mean,cost_mean,slo_mean";
pub const COMPARISON_HEADER: &str =
    "policy,trainings,loads,gap_mean,gap_sd,diff_mean,diff_ci95,pairing,better,worse,comparisons";

/// Every training's mean over the loads: one per (label, seed) of the labels that are not front
/// points, in order of label then seed.
pub fn per_training(runs: &[RunPoint]) -> Result<Vec<TrainingMean>, String> {
    // The front: each hpa<N> label's mean per load over its seeds.
    let mut sums: BTreeMap<(&str, &str), (f64, f64, usize)> = BTreeMap::new();
    for r in runs.iter().filter(|r| is_front(&r.label)) {
        let e = sums.entry((&r.scenario, &r.label)).or_insert((0.0, 0.0, 0));
        *e = (e.0 + r.cost, e.1 + r.slo, e.2 + 1);
    }
    let fronts = pareto::fronts(sums.iter().map(|(&(s, l), &(c, v, n))| (s, l, c / n as f64, v / n as f64)));
    let mut by_training: BTreeMap<(&str, u64), BTreeMap<&str, &RunPoint>> = BTreeMap::new();
    for r in runs.iter().filter(|r| !is_front(&r.label)) {
        if !fronts.contains_key(&r.scenario) {
            return Err(format!("{}: the load {} has runs but no HPA front (no hpa<N> runs)", r.label, r.scenario));
        }
        if by_training.entry((&r.label, r.seed)).or_default().insert(&r.scenario, r).is_some() {
            return Err(format!("{} seed {}: two runs on the load {}", r.label, r.seed, r.scenario));
        }
    }
    let mut out = Vec::new();
    for ((label, seed), loads) in by_training {
        if let Some(missing) = fronts.keys().find(|s| !loads.contains_key(s.as_str())) {
            return Err(format!(
                "{label} seed {seed}: no run on the load {missing} (every load with a front needs one)"
            ));
        }
        let n = loads.len() as f64;
        let gap = loads.values().map(|r| gap_pct(r.slo, front_at(&fronts[&r.scenario], r.cost))).sum::<f64>() / n;
        out.push(TrainingMean {
            policy: label.to_string(),
            seed,
            loads: loads.len(),
            gap_mean: gap,
            cost_mean: loads.values().map(|r| r.cost).sum::<f64>() / n,
            slo_mean: loads.values().map(|r| r.slo).sum::<f64>() / n,
        });
    }
    Ok(out)
}

/// Every label of `means` against `reference`'s trainings, the reference first, then the others
/// in name order.
/// With `unpaired`, Welch's interval throughout: trainings of two configs at the same seeds
/// draw unrelated streams, so their seeds pair nothing and Welch's interval is the honest one.
pub fn compare(
    means: &[TrainingMean],
    reference: &str,
    comparisons: usize,
    unpaired: bool,
) -> Result<Vec<TrainingComparison>, String> {
    let mut by_label: BTreeMap<&str, BTreeMap<u64, f64>> = BTreeMap::new();
    let mut loads = 0;
    for m in means {
        by_label.entry(&m.policy).or_default().insert(m.seed, m.gap_mean);
        loads = m.loads; // the same for every training: per_training refuses a missing load
    }
    let Some(reference_gaps) = by_label.get(reference) else {
        let known: Vec<&str> = by_label.keys().copied().collect();
        return Err(format!("--against {reference}: no such policy among the trainings ({})", known.join(", ")));
    };
    let level = 1.0 - 0.05 / comparisons as f64;
    let mut order: Vec<&str> = vec![reference];
    order.extend(by_label.keys().copied().filter(|l| *l != reference));
    let mut out = Vec::new();
    for label in order {
        let gaps = &by_label[label];
        let values: Vec<f64> = gaps.values().copied().collect();
        let own = describe(&values);
        let same_seeds = gaps.keys().collect::<BTreeSet<_>>() == reference_gaps.keys().collect::<BTreeSet<_>>();
        // The reference against itself is always "paired": a difference of 0 on every seed.
        let paired = same_seeds && (!unpaired || label == reference);
        let (pairing, diff_mean, diff_ci95, better, worse) = if paired {
            let diffs: Vec<f64> = gaps.iter().map(|(s, g)| g - reference_gaps[s]).collect();
            let d = describe(&diffs);
            let half = t_half_width(d.std, d.n, level).unwrap_or(f64::NAN);
            let tie = super::compare::TIE_PCT;
            let better = diffs.iter().filter(|x| **x < -tie).count();
            let worse = diffs.iter().filter(|x| **x > tie).count();
            (Pairing::Seed, d.mean, half, Some(better), Some(worse))
        } else {
            let reference_values: Vec<f64> = reference_gaps.values().copied().collect();
            let diff = own.mean - describe(&reference_values).mean;
            let half = welch(&values, &reference_values, level).map_or(f64::NAN, |w| w.half_width);
            (Pairing::Welch, diff, half, None, None)
        };
        out.push(TrainingComparison {
            policy: label.to_string(),
            trainings: own.n,
            loads,
            gap_mean: own.mean,
            gap_sd: own.std,
            diff_mean,
            diff_ci95,
            pairing,
            better,
            worse,
            comparisons,
        });
    }
    Ok(out)
}

/// The runs under `root` (`ROOT/<label>/<load>/s<seed>/summary.json`).
pub fn collect(root: &Path) -> Result<Vec<RunPoint>, RunError> {
    Ok(pareto::collect(root)?
        .into_iter()
        .map(|(label, s)| RunPoint {
            label,
            scenario: s.scenario,
            seed: s.seed,
            cost: s.cost,
            slo: s.slo_violation_pct,
        })
        .collect())
}

pub fn trainings_csv(means: &[TrainingMean]) -> String {
    let mut s = format!("{TRAININGS_HEADER}\n");
    for m in means {
        s.push_str(&format!(
            "{},{},{},{:.4},{:.6},{:.4}\n",
            m.policy, m.seed, m.loads, m.gap_mean, m.cost_mean, m.slo_mean
        ));
    }
    s
}

fn count(x: Option<usize>) -> String {
    x.map_or(String::new(), |n| n.to_string())
}

pub fn comparison_csv(rows: &[TrainingComparison]) -> String {
    let mut s = format!("{COMPARISON_HEADER}\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{:.4},{:.4},{:.4},{:.4},{},{},{},{}\n",
            r.policy,
            r.trainings,
            r.loads,
            r.gap_mean,
            r.gap_sd,
            r.diff_mean,
            r.diff_ci95,
            r.pairing.name(),
            count(r.better),
            count(r.worse),
            r.comparisons
        ));
    }
    s
}

/// The comparison as the terminal shows it.
pub fn table_text(rows: &[TrainingComparison]) -> String {
    let mut s = String::new();
    for r in rows {
        let split = match (r.better, r.worse) {
            (Some(b), Some(w)) => format!("  better {b} / worse {w}"),
            _ => String::new(),
        };
        s.push_str(&format!(
            "{:<16} trainings={:<3} loads={:<3} gap {:+7.2}% (sd {:5.2})  diff {:+7.2} ± {:5.2} ({}){split}\n",
            r.policy,
            r.trainings,
            r.loads,
            r.gap_mean,
            r.gap_sd,
            r.diff_mean,
            r.diff_ci95,
            r.pairing.name()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, scenario: &str, seed: u64, cost: f64, slo: f64) -> RunPoint {
        RunPoint { label: label.into(), scenario: scenario.into(), seed, cost, slo }
    }

    /// Two loads. Load a: hpa20 at (1, 10) and (1, 14) over two seeds -> mean (1, 12); hpa60 at
    /// (2, 2). Load b: hpa20 (1, 20), hpa60 (3, 0.5).
    fn fronts_and(agents: &[RunPoint]) -> Vec<RunPoint> {
        let mut runs = vec![
            run("hpa20", "a", 1, 1.0, 10.0),
            run("hpa20", "a", 2, 1.0, 14.0),
            run("hpa60", "a", 1, 2.0, 2.0),
            run("hpa20", "b", 1, 1.0, 20.0),
            run("hpa60", "b", 1, 3.0, 0.5),
        ];
        runs.extend_from_slice(agents);
        runs
    }

    #[test]
    fn a_training_mean_is_its_runs_gaps_against_each_loads_front() {
        // x seed 1: on a at cost 1.5 the front is 12 + (2 - 12) * 0.5 = 7, slo 3.5: gap -50%;
        // on b at cost 2 the front is 20 - 19.5 / 2 = 10.25, slo 10.25: gap 0. Mean -25.
        // x seed 2: on a at cost 4 (beyond the front: 2), slo 1: gap 100 * (1 - 2) / 2 = -50;
        // on b at cost 0.5 (below: 20), slo 30: gap +50. Mean 0.
        let runs = fronts_and(&[
            run("x", "a", 1, 1.5, 3.5),
            run("x", "b", 1, 2.0, 10.25),
            run("x", "a", 2, 4.0, 1.0),
            run("x", "b", 2, 0.5, 30.0),
        ]);
        let m = per_training(&runs).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].policy.as_str(), m[0].seed, m[0].loads), ("x", 1, 2));
        assert!((m[0].gap_mean + 25.0).abs() < 1e-9, "{}", m[0].gap_mean);
        assert!(m[1].gap_mean.abs() < 1e-9, "{}", m[1].gap_mean);
        assert!((m[1].cost_mean - 2.25).abs() < 1e-12 && (m[1].slo_mean - 15.5).abs() < 1e-12);
    }

    #[test]
    fn missing_loads_and_loads_without_a_front_are_refused() {
        let err = per_training(&fronts_and(&[run("x", "a", 1, 1.0, 1.0)])).unwrap_err();
        assert!(err.contains("x seed 1: no run on the load b"), "{err}");
        let err = per_training(&fronts_and(&[run("x", "c", 1, 1.0, 1.0)])).unwrap_err();
        assert!(err.contains("the load c has runs but no HPA front"), "{err}");
    }

    fn mean(policy: &str, seed: u64, gap: f64) -> TrainingMean {
        TrainingMean { policy: policy.into(), seed, loads: 4, gap_mean: gap, cost_mean: 0.3, slo_mean: 1.0 }
    }

    #[test]
    fn same_seeds_pair_and_other_seeds_take_welch() {
        let means = [
            mean("ref", 1, -10.0),
            mean("ref", 2, -20.0),
            mean("ref", 3, -30.0),
            // Paired: differences -1, -3, +1 -> mean -1, sd 2, t(0.975, 2) = 4.302653,
            // half-width 4.302653 * 2 / sqrt(3) = 4.968276.
            mean("b", 1, -11.0),
            mean("b", 2, -23.0),
            mean("b", 3, -29.0),
            // Other seeds: {-40, -50, -60} against {-10, -20, -30}: diff -30, equal variances
            // (100) and sizes: df 4, se sqrt(200/3), t(0.975, 4) = 2.776445.
            mean("c", 7, -40.0),
            mean("c", 8, -50.0),
            mean("c", 9, -60.0),
        ];
        let rows = compare(&means, "ref", 1, false).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.policy.as_str()).collect();
        assert_eq!(names, ["ref", "b", "c"]);
        assert_eq!(
            (rows[0].diff_mean, rows[0].pairing, rows[0].better, rows[0].worse),
            (0.0, Pairing::Seed, Some(0), Some(0))
        );
        assert!((rows[0].gap_mean + 20.0).abs() < 1e-12 && (rows[0].gap_sd - 10.0).abs() < 1e-12);
        let b = &rows[1];
        assert_eq!((b.pairing, b.better, b.worse, b.trainings, b.loads), (Pairing::Seed, Some(2), Some(1), 3, 4));
        assert!((b.diff_mean + 1.0).abs() < 1e-12);
        assert!((b.diff_ci95 - 4.302653 * 2.0 / 3f64.sqrt()).abs() < 1e-5, "{}", b.diff_ci95);
        let c = &rows[2];
        assert_eq!((c.pairing, c.better, c.worse), (Pairing::Welch, None, None));
        assert!((c.diff_mean + 30.0).abs() < 1e-12);
        assert!((c.diff_ci95 - 2.776445 * (200.0f64 / 3.0).sqrt()).abs() < 1e-4, "{}", c.diff_ci95);
        // Two comparisons: each interval at 97.5% (t(0.9875, 2) = 6.205347 for the paired one).
        let rows = compare(&means, "ref", 2, false).unwrap();
        assert!((rows[1].diff_ci95 - 6.205347 * 2.0 / 3f64.sqrt()).abs() < 1e-5, "{}", rows[1].diff_ci95);
        // Unpaired: b by Welch too ({-11, -23, -29} against {-10, -20, -30}).
        let rows = compare(&means, "ref", 1, true).unwrap();
        let want = welch(&[-11.0, -23.0, -29.0], &[-10.0, -20.0, -30.0], 0.95).unwrap().half_width;
        assert_eq!((rows[0].pairing, rows[1].pairing, rows[1].better), (Pairing::Seed, Pairing::Welch, None));
        assert!((rows[1].diff_mean + 1.0).abs() < 1e-12 && (rows[1].diff_ci95 - want).abs() < 1e-12);
        let err = compare(&means, "nope", 1, false).unwrap_err();
        assert!(err.contains("--against nope: no such policy among the trainings (b, c, ref)"), "{err}");
    }
}
