//! The Pareto evaluation: `scalesim pareto` over run folders grouped by policy label, checked
//! against the definitions of `front_slo_at_cost` and `slo_gap_pct` recomputed from the rows.

use std::process::Command;

fn run(out: &std::path::Path, label: &str, policy: &[&str], seed: u32) {
    let sc = crate::root().join("scenarios/online_boutique_rush.yaml");
    let st = Command::new(crate::bin())
        .arg("run")
        .arg(&sc)
        .args(policy)
        .args(["--seed", &seed.to_string(), "--horizon", "300", "-q", "--out"])
        .arg(out.join(label).join("rush").join(format!("s{seed}")))
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn pareto_rows_follow_their_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs");
    let cfg = |n: u32| crate::root().join(format!("configs/policies/hpa_cpu{n}.yaml")).display().to_string();
    for seed in [1, 2] {
        for n in [20, 60, 150] {
            let c = cfg(n);
            run(&root, &format!("hpa{n}"), &["--policy", "hpa", "--policy-config", &c], seed);
        }
        run(&root, "static", &["--policy", "static"], seed);
    }
    let out = dir.path().join("report");
    let o = Command::new(crate::bin()).arg("pareto").arg(&root).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("pareto.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "scenario,policy,n,cost_mean,cost_ci95,slo_mean,slo_ci95,reversals_per_hour,front_slo_at_cost,slo_gap_pct"
    );
    let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(String::from).collect()).collect();
    assert_eq!(rows.len(), 4);
    let num = |r: &Vec<String>, k: usize| r[k].parse::<f64>().unwrap();
    // The front, recomputed: the hpa rows not beaten on both cost and SLO, in order of cost.
    let mut front: Vec<(f64, f64)> =
        rows.iter().filter(|r| r[1].starts_with("hpa")).map(|r| (num(r, 3), num(r, 5))).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut kept: Vec<(f64, f64)> = Vec::new();
    for p in front {
        if kept.last().is_none_or(|l| p.1 < l.1) {
            kept.push(p);
        }
    }
    let at = |c: f64| {
        if c <= kept[0].0 {
            return kept[0].1;
        }
        if c >= kept[kept.len() - 1].0 {
            return kept[kept.len() - 1].1;
        }
        let k = kept.windows(2).position(|w| c <= w[1].0).unwrap();
        let ((x0, y0), (x1, y1)) = (kept[k], kept[k + 1]);
        y0 + (y1 - y0) * (c - x0) / (x1 - x0)
    };
    for r in &rows {
        assert_eq!(r[0], "online_boutique_rush");
        assert_eq!(r[2], "2", "two seeds per label");
        let front = at(num(r, 3));
        assert!((num(r, 8) - front).abs() < 1e-3, "{r:?}: front {front}");
        let gap = 100.0 * (num(r, 5) - front) / front.max(1.0);
        assert!((num(r, 9) - gap).abs() < 0.01, "{r:?}: gap {gap}");
        assert!(num(r, 4) >= 0.0 && num(r, 6) >= 0.0);
    }
    // Static keeps one replica per service on a load that needs more: above the front.
    let st = rows.iter().find(|r| r[1] == "static").unwrap();
    assert!(num(st, 9) > 20.0, "{st:?}");
    for f in ["pareto.png", "pareto.svg"] {
        assert!(std::fs::metadata(out.join(f)).unwrap().len() > 1000, "{f}");
    }
}

#[test]
fn pareto_refuses_a_folder_without_runs() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(crate::bin()).arg("pareto").arg(dir.path()).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no run folders"), "{err}");
    assert!(!err.contains("panicked"));
}

/// `scalesim compare`: per-load differences of `slo_gap_pct` against a reference, recomputed by
/// hand from two small tables; a load in two tables and a damaged cell are refused by file and
/// line.
#[test]
fn compare_pairs_gaps_by_load_across_tables() {
    let dir = tempfile::tempdir().unwrap();
    let header =
        "scenario,policy,n,cost_mean,cost_ci95,slo_mean,slo_ci95,reversals_per_hour,front_slo_at_cost,slo_gap_pct";
    let row = |s: &str, p: &str, rev: f64, gap: f64| format!("{s},{p},10,0.3,0.01,5.0,0.5,{rev:.2},5.0,{gap:.2}");
    let t1 = dir.path().join("one.csv");
    let t2 = dir.path().join("two.csv");
    std::fs::write(&t1, [header.to_string(), row("l1", "agent", 4.0, -20.0), row("l1", "hpa60", 2.0, 0.0)].join("\n"))
        .unwrap();
    let more = [row("l2", "agent", 8.0, 10.0), row("l2", "hpa60", 2.0, 0.0), row("l3", "agent", 6.0, -50.0)];
    std::fs::write(&t2, format!("{header}\n{}\n{}\n", more.join("\n"), row("l3", "hpa60", 2.0, 0.0))).unwrap();
    let out = dir.path().join("compare.csv");
    let o = Command::new(crate::bin())
        .arg("compare")
        .args([&t1, &t2])
        .args(["--against", "hpa60", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // agent - hpa60: -20, +10, -50: mean -20; sd sqrt((0 + 900 + 900) / 2) = 30; t(0.975, 2) =
    // 4.302653: half-width 4.302653 * 30 / sqrt(3) = 74.52.
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "family,policy,loads,gap_mean,diff_mean,diff_ci95,better,worse,reversals_per_hour_mean,cost_ratio_mean,comparisons\n\
         all,agent,3,-20.00,-20.00,74.52,2,1,6.00,1.000,1\n\
         all,hpa60,3,0.00,0.00,0.00,0,0,2.00,1.000,1\n"
    );
    // Two comparisons: t(0.9875, 2) = 6.205347 (by numerical integration of the t density):
    // half-width 6.205347 * 30 / sqrt(3) = 107.48; 0 is refused.
    let compare = |extra: &[&str]| {
        Command::new(crate::bin())
            .arg("compare")
            .args([&t1, &t2])
            .args(["--against", "hpa60"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = compare(&["--comparisons", "2", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let two = std::fs::read_to_string(&out).unwrap();
    assert!(two.contains("all,agent,3,-20.00,-20.00,107.48,2,1,6.00,1.000,2\n"), "{two}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("Bonferroni-corrected for 2 comparisons"));
    assert!(!compare(&["--comparisons", "0"]).status.success());
    // The same load in both tables.
    std::fs::write(&t2, format!("{header}\n{}\n", row("l1", "agent", 4.0, -20.0))).unwrap();
    let o = Command::new(crate::bin()).arg("compare").args([&t1, &t2]).args(["--against", "hpa60"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("two.csv: line 2: scenario `l1` is also in"), "{err}");
    // A damaged cell, even one the comparison does not use.
    std::fs::write(&t2, format!("{header}\nl9,agent,10,0.3,0.01,5.0,0.5,1.0,n/a,2.0\n")).unwrap();
    let o = Command::new(crate::bin()).arg("compare").arg(&t2).args(["--against", "agent"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("line 2: `front_slo_at_cost`: `n/a` is not a number"), "{err}");
}

/// `scalesim trainings`: each (label, seed) is one training; its mean gap over the loads is
/// recomputed here from the runs' summaries and the front, labels with the reference's seeds are
/// paired by seed (the interval recomputed from the differences) and others compared by Welch.
/// A reference that is not there is refused by name.
#[test]
fn trainings_are_compared_by_seed_or_by_welch() {
    use scalesim::experiment::pareto::{front, front_at, gap_pct};
    use scalesim::experiment::stats::{describe, welch};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runs");
    let cfg = |n: u32| crate::root().join(format!("configs/policies/hpa_cpu{n}.yaml")).display().to_string();
    for n in [20, 60, 150] {
        let c = cfg(n);
        run(&root, &format!("hpa{n}"), &["--policy", "hpa", "--policy-config", &c], 1);
    }
    let kpa = crate::root().join("configs/policies/kpa.yaml").display().to_string();
    let target = crate::root().join("configs/policies/target.yaml").display().to_string();
    for seed in [1, 2, 3] {
        run(&root, "kpa", &["--policy", "kpa", "--policy-config", &kpa], seed);
        run(&root, "target", &["--policy", "target", "--policy-config", &target], seed);
    }
    for seed in [4, 5] {
        run(&root, "static", &["--policy", "static"], seed);
    }
    let (out, per) = (dir.path().join("trainings.csv"), dir.path().join("per_training.csv"));
    let o = Command::new(crate::bin())
        .arg("trainings")
        .arg(&root)
        .args(["--against", "kpa", "--out"])
        .arg(&out)
        .arg("--per-training")
        .arg(&per)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let summary = |label: &str, seed: u32| -> (f64, f64) {
        let p = root.join(format!("{label}/rush/s{seed}/summary.json"));
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        (v["cost"].as_f64().unwrap(), v["slo_violation_pct"].as_f64().unwrap())
    };
    let f = front(&[20, 60, 150].map(|n| summary(&format!("hpa{n}"), 1)));
    let gap = |label: &str, seed: u32| {
        let (c, s) = summary(label, seed);
        gap_pct(s, front_at(&f, c))
    };
    let per = std::fs::read_to_string(&per).unwrap();
    let mut lines = per.lines();
    assert_eq!(lines.next().unwrap(), "policy,seed,loads,gap_mean,cost_mean,slo_mean");
    let want: Vec<(&str, u32)> = vec![
        ("kpa", 1),
        ("kpa", 2),
        ("kpa", 3),
        ("static", 4),
        ("static", 5),
        ("target", 1),
        ("target", 2),
        ("target", 3),
    ];
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.iter().map(|r| (r[0], r[1].parse().unwrap())).collect::<Vec<(&str, u32)>>(), want, "{per}");
    for r in &rows {
        let g = gap(r[0], r[1].parse().unwrap());
        assert!((r[3].parse::<f64>().unwrap() - g).abs() < 1e-3, "{r:?}: gap {g}");
        assert_eq!(r[2], "1");
    }

    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "policy,trainings,loads,gap_mean,gap_sd,diff_mean,diff_ci95,pairing,better,worse,comparisons"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), ["kpa", "static", "target"], "{text}");
    let num = |r: &Vec<&str>, k: usize| r[k].parse::<f64>().unwrap();
    let kpa_gaps: Vec<f64> = (1..=3).map(|s| gap("kpa", s)).collect();
    // target: paired by seed with kpa.
    let diffs: Vec<f64> = (1..=3).map(|s| gap("target", s) - gap("kpa", s)).collect();
    let d = describe(&diffs);
    let t = &rows[2];
    assert_eq!((t[1], t[7], t[10]), ("3", "seed", "1"), "{text}");
    assert!((num(t, 5) - d.mean).abs() < 1e-3 && (num(t, 6) - d.ci95.unwrap()).abs() < 1e-3, "{text}: {d:?}");
    let better = diffs.iter().filter(|x| **x < -0.01).count().to_string();
    assert_eq!(t[8], better, "{text}");
    // static: other seeds, Welch.
    let static_gaps: Vec<f64> = (4..=5).map(|s| gap("static", s)).collect();
    let s = &rows[1];
    assert_eq!((s[1], s[7], s[8], s[9]), ("2", "welch", "", ""), "{text}");
    let want = describe(&static_gaps).mean - describe(&kpa_gaps).mean;
    assert!((num(s, 5) - want).abs() < 1e-3, "{text}");
    let w = welch(&static_gaps, &kpa_gaps, 0.95).unwrap();
    assert!((num(s, 6) - w.half_width).abs() < 1e-3, "{text}: {w:?}");

    let o = Command::new(crate::bin()).arg("trainings").arg(&root).args(["--against", "gat-ppo"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--against gat-ppo: no such policy"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
