//! `scripts/held_capacity.py`: a run's SLO violation split at a time, and per-service allocations
//! held from the start under the static policy.

use std::path::Path;
use std::process::{Command, Output};

use scalesim::scenario::load_scenario;

fn held_capacity(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(crate::root().join("scripts/held_capacity.py"))
        .args(args)
        .env("SCALESIM", crate::bin())
        .current_dir(crate::root())
        .output()
        .unwrap()
}

/// `(cost, slo %, points before, points from)` of each row of the script's CSV.
fn rows(o: &Output) -> Vec<[f64; 4]> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("run,policy,seeds,cost,slo_violation_pct,points_0_180s,points_180s_end"));
    lines
        .map(|l| {
            let f: Vec<f64> = l.rsplitn(5, ',').take(4).map(|x| x.parse().unwrap()).collect();
            [f[3], f[2], f[1], f[0]]
        })
        .collect()
}

/// On rush (seed 1), split at 180 s (the rush starts then): the scenario's one replica each, and
/// the frontend and product catalogue held at 7 and 4. Holding costs more and lowers the
/// violation, both before and from 180 s; the two parts add up to the violation; the written
/// scenario is valid and has the counts; `split` of its run folder gives its row; a service the
/// scenario lacks and a count of 0 are refused, naming them.
#[test]
fn held_allocations_cost_more_and_split_their_violation_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("held");
    let out_s = out.to_str().unwrap();
    let o = held_capacity(&[
        "static",
        "scenarios/online_boutique_rush.yaml",
        out_s,
        "--alloc",
        "frontend=1",
        "--alloc",
        "frontend=7,productcatalogservice=4",
        "--seeds",
        "1",
        "--at",
        "180",
    ]);
    let r = rows(&o);
    assert_eq!(r.len(), 2);
    let (one, held) = (r[0], r[1]);
    assert!(held[0] > one[0] && held[1] < one[1], "{r:?}");
    assert!(held[2] <= one[2] && held[3] < one[3], "{r:?}");
    for row in &r {
        assert!((row[2] + row[3] - row[1]).abs() < 1e-3, "{row:?}");
    }
    let sc = load_scenario(&out.join("frontend7-productcatalogservice4.yaml")).unwrap();
    let counts: Vec<u32> = sc.app.services.iter().map(|s| s.initial_replicas).collect();
    assert_eq!(&counts[..3], &[7, 4, 1]);
    let run = Path::new(out_s).join("runs/frontend7-productcatalogservice4/s1");
    let split = rows(&held_capacity(&["split", "--at", "180", run.to_str().unwrap()]));
    assert_eq!(split, vec![held]);
    for (alloc, named) in [("fronted=7", "no service `fronted`"), ("frontend=0", "`frontend=0`")] {
        let o = held_capacity(&["static", "scenarios/online_boutique_rush.yaml", out_s, "--alloc", alloc]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(named) && err.lines().count() == 1, "{err}");
    }
}
