//! `scripts/reaction_limit.sh`: the HPA front next to its fast and instant what-ifs.

use std::process::Command;

/// On rush (seed 1), at 60% and 150%: deciding every second lowers the SLO violation below the
/// front's, and replicas that serve at once lower it further; the front's own rows have a gap of
/// 0. (Measured when the script was written: 6.76 / 3.01 / 0.34% at 60%, 22.62 / 8.93 / 1.26% at
/// 150%.)
#[test]
fn reaction_limit_orders_the_front_fast_and_instant_hpas() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("rl");
    let o = Command::new("bash")
        .arg(crate::root().join("scripts/reaction_limit.sh"))
        .arg("scenarios/online_boutique_rush.yaml")
        .arg(&out)
        .envs([("TARGETS", "60 150"), ("WINDOWS", "300"), ("SEEDS", "1"), ("SCALESIM", crate::bin())])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let mut lines = summary.lines();
    assert_eq!(
        lines.next(),
        Some(
            "variant,target_pct,downscale_window_s,cost_mean,slo_mean,reversals_per_hour,front_slo_at_cost,slo_gap_pct"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let slo = |variant: &str, target: &str| -> (f64, f64) {
        let r = rows.iter().find(|r| r[0] == variant && r[1] == target).unwrap_or_else(|| panic!("{summary}"));
        (r[4].parse().unwrap(), r[7].parse().unwrap())
    };
    for target in ["60", "150"] {
        let (front, front_gap) = slo("front", target);
        let (fast, fast_gap) = slo("fast", target);
        let (instant, instant_gap) = slo("instant", target);
        assert_eq!(front_gap, 0.0, "{summary}");
        assert!(instant < fast && fast < front && instant_gap < fast_gap && fast_gap < 0.0, "{summary}");
    }
    assert_eq!(std::fs::read_to_string(out.join("reaction_limit.csv")).unwrap().lines().count(), 1 + 6);
}
