//! Baseline autoscalers end to end: the HPA reacts to the rush and comes back down, every policy
//! config bundled loads, and bad policy configs are refused with a clear error.

use std::process::Command;

use scalesim::experiment::policies::build_policy;
use scalesim::experiment::{run_to_dir, RunOptions};
use scalesim::metrics::Summary;
use scalesim::scenario::load_scenario;

fn rush(policy: &str, dir: &std::path::Path) -> Summary {
    let sc = load_scenario(&crate::root().join("scenarios/online_boutique_rush.yaml")).unwrap();
    let p = build_policy(policy, None, &sc).unwrap();
    run_to_dir(&sc, p, 3, dir, RunOptions::default(), &mut |_| {}).unwrap()
}

/// Mean of `replicas_active` summed over services, for rows with `from <= time_s < to`.
fn mean_replicas(timeline: &str, from: f64, to: f64) -> f64 {
    let mut per_second = std::collections::BTreeMap::<u64, f64>::new();
    for line in timeline.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let t: f64 = f[0].parse().unwrap();
        if (from..to).contains(&t) {
            *per_second.entry(t as u64).or_default() += f[2].parse::<f64>().unwrap();
        }
    }
    per_second.values().sum::<f64>() / per_second.len() as f64
}

#[test]
fn hpa_scales_up_for_the_rush_and_back_down_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let hpa = rush("hpa", &tmp.path().join("hpa"));
    let stat = rush("static", &tmp.path().join("static"));
    let timeline = std::fs::read_to_string(tmp.path().join("hpa/timeline.csv")).unwrap();
    let (before, during, after) = (
        mean_replicas(&timeline, 120.0, 180.0),
        mean_replicas(&timeline, 420.0, 480.0),
        mean_replicas(&timeline, 840.0, 900.0),
    );
    assert!(during > 2.0 * before, "replicas before {before}, during {during}");
    // The scale-down stabilisation window is 300 s: the rush ends at 480 s, replicas come down
    // from 780 s on.
    assert!(after < 0.6 * during, "replicas during {during}, after {after}");
    assert!(
        hpa.slo_violation_pct * 4.0 < stat.slo_violation_pct,
        "SLO violation: hpa {}% vs static {}%",
        hpa.slo_violation_pct,
        stat.slo_violation_pct
    );
    let actions = std::fs::read_to_string(tmp.path().join("hpa/actions.csv")).unwrap();
    assert!(actions.lines().any(|l| l.contains("stabilised")), "no stabilised decision logged");
    // Go's path without `behavior` (horizontal.go, normalizeDesiredReplicas): the rush ends at
    // 480 s, and the 480 s sync's high recommendation still counts at 780 s (a sample exactly
    // 300 s old is not Before the cutoff), so frontend's first scale-down after the rush is at
    // 795 s; its scale-up at 195 s is capped at max(2 x 2, 4) = 4.
    let frontend: Vec<Vec<&str>> =
        actions.lines().filter(|l| l.contains(",frontend,")).map(|l| l.split(',').collect()).collect();
    let first_down = frontend
        .iter()
        .find(|f| f[0].parse::<f64>().unwrap() > 480.0 && f[3].parse::<u32>().unwrap() < f[2].parse::<u32>().unwrap())
        .expect("frontend scales down after the rush");
    assert_eq!(first_down[0], "795.000");
    let up = frontend.iter().find(|f| f[0] == "195.000").unwrap();
    assert_eq!((up[2], up[3]), ("2", "4"));
    assert!(actions.lines().any(|l| l.contains("limited by")), "no rate/bound limit logged");
}

#[test]
fn every_bundled_policy_config_loads_and_runs() {
    let ob = load_scenario(&crate::root().join("scenarios/online_boutique_offpeak.yaml")).unwrap();
    let llm = load_scenario(&crate::root().join("scenarios/llm_azure_code.yaml")).unwrap();
    let mut n = 0;
    for e in std::fs::read_dir(crate::root().join("configs/policies")).unwrap() {
        let path = e.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        // Configs for LLM pools name the pools' services.
        let sc = if stem.contains("llm") { &llm } else { &ob };
        let name = stem.split('_').next().unwrap().to_string();
        let policy = build_policy(&name, Some(&path), sc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut short = sc.clone();
        short.horizon = scalesim::engine::SimTime::from_secs(60);
        let (sinks, actions) = (scalesim::sim::Sinks::discard(), scalesim::metrics::ActionsWriter::discard());
        scalesim::experiment::simulate(&short, policy, 1, sinks, actions).unwrap();
        n += 1;
    }
    assert!(n >= 7, "{n} configs");
}

#[test]
fn pasted_manifests_resolve_to_their_services() {
    use scalesim::autoscale::hpa::{spec::load_config, MetricRule, ObjectSignal, PodSignal, ResourceName, Target};
    let sc = load_scenario(&crate::root().join("scenarios/online_boutique_offpeak.yaml")).unwrap();
    let cfg = load_config(&crate::root().join("configs/policies/hpa_manifests_example.yaml"), &sc).unwrap();
    let names: Vec<&str> = cfg.hpas.iter().map(|h| sc.app.services[h.service].name.as_str()).collect();
    assert_eq!(names, ["frontend", "productcatalogservice", "cartservice"]);
    let fe = &cfg.hpas[0];
    assert_eq!(fe.metrics[0], MetricRule::Resource { name: ResourceName::Cpu, target: Target::Utilization(60) });
    assert_eq!(fe.metrics[1], MetricRule::Pods { signal: PodSignal::Rps, target: 120.0 });
    assert_eq!(
        fe.behavior.as_ref().expect("the example manifest has behavior").scale_down.stabilization_window.whole_secs(),
        120
    );
    assert_eq!(
        cfg.hpas[1].metrics[0],
        MetricRule::Object { signal: ObjectSignal::P95LatencyMs, target: Target::Value(20.0) }
    );
    // 40Mi = 40 * 1048576 bytes; minReplicas defaults to the service's (1).
    assert_eq!(
        cfg.hpas[2].metrics[0],
        MetricRule::Resource { name: ResourceName::Memory, target: Target::AverageValue(41943040.0) }
    );
    assert_eq!((cfg.hpas[2].min, cfg.hpas[2].max), (1, 5));
}

fn refused(policy: &str, yaml: &str, must: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("policy.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = tmp.path().join("run");
    let sc = crate::root().join("scenarios/online_boutique_offpeak.yaml");
    let o = Command::new(crate::bin())
        .args([
            "run",
            sc.to_str().unwrap(),
            "--policy",
            policy,
            "--policy-config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "accepted: {yaml}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(text.contains("policy.yaml"), "error does not name the file: {text}");
    for m in must {
        assert!(text.contains(m), "error lacks `{m}`: {text}");
    }
    assert!(!out.exists());
}

#[test]
fn bad_policy_configs_name_the_file_and_field() {
    refused("hpa", "default:\n  maxReplicas: 7\n  tolerence: 0.2\n", &["tolerence"]);
    refused(
        "hpa",
        "default:\n  metrics:\n    - type: Resource\n      resource: { name: cpu, target: { type: Utilization, averageUtilization: 0 } }\n",
        &["averageUtilization", "line 4"],
    );
    refused("hpa", "default:\n  minReplicas: 5\n  maxReplicas: 2\n", &["minReplicas", "line 2"]);
    refused(
        "hpa",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nspec:\n  scaleTargetRef: { name: fronted }\n  maxReplicas: 3\n",
        &["scaleTargetRef.name", "fronted", "line 4"],
    );
    refused("kpa", "stable_window_s: -60\n", &["stable_window_s"]);
    refused("target", "target: 0\n", &["target", "line 1"]);
    refused("target", "min_replicas: 4\nmax_replicas: 2\n", &["min_replicas"]);
}

/// An HPA spec without `behavior` takes Go's older path and one with `behavior: {}` the behavior
/// path with Kubernetes' defaults; `actions.csv` says which decided. From Go's rules on OB rush
/// at seed 3 (issue repro): frontend goes 2 -> 4 at 195 s without behavior
/// (`convertDesiredReplicasWithRules`: max(2 x 2, 4)), and 2 -> 6 with it
/// (`calculateScaleUpLimitWithScalingRules`: max(2 + 4, 2 x 2) = 6).
#[test]
fn hpa_paths_with_and_without_behavior() {
    let t = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(crate::root().join("configs/policies/hpa_cpu60.yaml")).unwrap();
    let with = t.path().join("with.yaml");
    std::fs::write(&with, cfg.replace("  maxReplicas: 7\n", "  maxReplicas: 7\n  behavior: {}\n")).unwrap();
    let sc = crate::root().join("scenarios/online_boutique_rush.yaml");
    let mut rows = Vec::new();
    for (name, file) in [("without", crate::root().join("configs/policies/hpa_cpu60.yaml")), ("with", with)] {
        let out = t.path().join(name);
        let o = std::process::Command::new(crate::bin())
            .args(["run", sc.to_str().unwrap(), "--policy", "hpa", "--policy-config", file.to_str().unwrap()])
            .args(["--seed", "3", "--horizon", "240", "--out", out.to_str().unwrap(), "-q"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let actions = std::fs::read_to_string(out.join("actions.csv")).unwrap();
        let row = actions.lines().find(|l| l.starts_with("195.000,frontend,")).unwrap().to_string();
        let tag = if name == "with" { "[behavior]" } else { "[no behavior]" };
        assert!(actions.lines().skip(1).all(|l| l.contains(tag)), "{name}: every decision tagged {tag}");
        rows.push(row);
    }
    assert!(rows[0].starts_with("195.000,frontend,2,4,"), "{}", rows[0]);
    assert!(rows[1].starts_with("195.000,frontend,2,6,"), "{}", rows[1]);
}

/// `mean_active_replicas` over a horizon that is not a whole number of timeline intervals: the
/// last, shorter interval weighs only its length (was 1.000833 for one fixed replica at 600.5 s).
#[test]
fn mean_active_replicas_is_exact_for_a_partial_last_interval() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("r");
    let sc = crate::root().join("scenarios/chain_5.yaml");
    let o = std::process::Command::new(crate::bin())
        .args(["run", sc.to_str().unwrap(), "--horizon", "600.5", "--out", out.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let yaml = std::fs::read_to_string(&sc).unwrap();
    for svc in s["services"].as_array().unwrap() {
        let m = svc["mean_active_replicas"].as_f64().unwrap();
        assert!((m - m.round()).abs() < 1e-12, "{}: {m} for a fixed replica count", svc["name"]);
    }
    assert!(yaml.contains("replicas"));
    let info = std::fs::read_to_string(out.join("experiment_info.json")).unwrap();
    assert!(info.contains("\"requests.csv\": 1") && info.contains("\"latency.csv\": 1"), "{info}");
}

/// The `random` baseline: on rush, every decision moves a service by at most two replicas within
/// its bounds, says so in `actions.csv`, and the run is the same for a seed and another for
/// another seed (its stream comes from the run's seed, not the scenario's). It takes no config.
#[test]
fn the_random_policy_moves_each_service_at_most_two_within_its_bounds_from_the_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = load_scenario(&crate::root().join("scenarios/online_boutique_rush.yaml")).unwrap();
    let run = |seed: u64, name: &str| {
        let p = build_policy("random", None, &sc).unwrap();
        let dir = tmp.path().join(name);
        run_to_dir(&sc, p, seed, &dir, RunOptions::default(), &mut |_| {}).unwrap();
        std::fs::read_to_string(dir.join("actions.csv")).unwrap()
    };
    let (a, again, other) = (run(3, "a"), run(3, "again"), run(4, "other"));
    assert_eq!(a, again);
    assert_ne!(a, other);
    let bounds: std::collections::HashMap<&str, (i64, i64)> =
        sc.app.services.iter().map(|s| (s.name.as_str(), (s.min_replicas as i64, s.max_replicas as i64))).collect();
    let mut moves = 0;
    for line in a.lines().skip(1) {
        // time_s,service,from,to,desired,reason,blocked,format_version
        let f: Vec<&str> = line.split(',').collect();
        let (from, desired): (i64, i64) = (f[2].parse().unwrap(), f[4].parse().unwrap());
        let (min, max) = bounds[f[1]];
        assert!((1..=2).contains(&(desired - from).abs()) && (min..=max).contains(&desired), "{line}");
        assert!(f[5].starts_with("uniform random delta "), "{line}");
        moves += 1;
    }
    // 11 services, 60 decisions: most draws (4 of 5 deltas) move a service not at a bound.
    assert!(moves > 300, "{moves} moves");
    let cfg = tmp.path().join("random.yaml");
    std::fs::write(&cfg, "seed: 1\n").unwrap();
    let err = build_policy("random", Some(&cfg), &sc).err().unwrap().to_string();
    assert!(err.contains("random") && err.contains("random.yaml"), "{err}");
}

/// `shields`: an agent config's shields with every delta 0. On rush under the bundled GAT config,
/// every change is the floor's raise to its count or the ceiling's release (each row's reason
/// says which, and the count is the one it names), every other decision holds, the replicas follow the
/// rush (at least 1.5x during it than before), and the run repeats byte for byte. It needs a
/// per-service agent config.
#[test]
fn the_shields_policy_moves_a_count_only_to_its_floor_or_ceiling() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = load_scenario(&crate::root().join("scenarios/online_boutique_rush.yaml")).unwrap();
    let gat = crate::root().join("configs/agents/gat_ppo.yaml");
    let run = |name: &str| {
        let p = build_policy("shields", Some(&gat), &sc).unwrap();
        assert_eq!(p.name(), "shields");
        let dir = tmp.path().join(name);
        run_to_dir(&sc, p, 3, &dir, RunOptions::default(), &mut |_| {}).unwrap();
        (std::fs::read_to_string(dir.join("actions.csv")).unwrap(), dir)
    };
    let ((actions, dir), (again, _)) = (run("a"), run("again"));
    assert_eq!(actions, again);
    let (mut raised, mut lowered) = (0, 0);
    // time_s,service,from,to,desired,reason,blocked,format_version (reasons with commas quoted)
    for row in csv::Reader::from_reader(actions.as_bytes()).records() {
        let f = row.unwrap();
        let line = f.iter().collect::<Vec<_>>().join("|");
        let (from, desired, reason) = (f[2].parse::<i64>().unwrap(), f[4].parse::<i64>().unwrap(), &f[5]);
        assert!(reason.starts_with(&format!("shields: {} +0", &f[1])), "{line}");
        let named = |marker: &str| {
            reason.split_once(marker).map(|(_, rest)| rest.split([' ', ',']).next().unwrap().parse::<i64>().unwrap())
        };
        if let Some(floor) = named("raised to the HPA floor ") {
            assert!(desired == floor && desired > from, "{line}");
            raised += 1;
        } else if let Some(ceiling) = named("lowered to the HPA ceiling ") {
            assert!(desired == ceiling && desired < from, "{line}");
            lowered += 1;
        } else {
            // A hold: the agent policies log every service's decision, changed or not.
            assert_eq!(desired, from, "a change neither the floor's nor the ceiling's: {line}");
        }
    }
    assert!(raised > 0 && lowered > 0, "{raised} raises, {lowered} releases");
    let timeline = std::fs::read_to_string(dir.join("timeline.csv")).unwrap();
    let (before, during) = (mean_replicas(&timeline, 120.0, 180.0), mean_replicas(&timeline, 240.0, 480.0));
    assert!(during >= 1.5 * before, "{before} replicas before the rush, {during} during it");
    let none = build_policy("shields", None, &sc).err().unwrap().to_string();
    assert!(none.contains("needs a configuration file"), "{none}");
    let single = crate::root().join("configs/agents/gat_ppo_single.yaml");
    let err = build_policy("shields", Some(&single), &sc).err().unwrap().to_string();
    assert!(err.contains("gat_ppo_single.yaml") && err.contains("action") && err.contains("per_service"), "{err}");
}

/// `shields` under a fast floor (every 3 s, the latest 6 s): the decisions keep their 15 s times
/// (every hold, floor raise and ceiling release is at a multiple of 15 s), and between them the
/// only changes are raises to the fast floor, each to the count its reason names and above the
/// count before. On rush some are made (the step at 180 s), and the run repeats byte for byte.
#[test]
fn a_fast_floor_raises_between_the_decisions_and_leaves_their_times() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = load_scenario(&crate::root().join("scenarios/online_boutique_rush.yaml")).unwrap();
    let gat = std::fs::read_to_string(crate::root().join("configs/agents/gat_ppo.yaml")).unwrap();
    let cfg = tmp.path().join("fast.yaml");
    // Deployed only (not in training): the deployed policy, this one, raises all the same.
    std::fs::write(
        &cfg,
        format!("{gat}\nfast_floor_every_s: 3\nfast_floor_reads_s: 6\nfast_floor_deployed_only: true\n"),
    )
    .unwrap();
    let run = |name: &str| {
        let dir = tmp.path().join(name);
        let p = build_policy("shields", Some(&cfg), &sc).unwrap();
        run_to_dir(&sc, p, 3, &dir, RunOptions::default(), &mut |_| {}).unwrap();
        std::fs::read_to_string(dir.join("actions.csv")).unwrap()
    };
    let (actions, again) = (run("a"), run("again"));
    assert_eq!(actions, again);
    let mut fast = 0;
    for row in csv::Reader::from_reader(actions.as_bytes()).records() {
        let f = row.unwrap();
        let line = f.iter().collect::<Vec<_>>().join("|");
        let (t, from, desired, reason) =
            (f[0].parse::<f64>().unwrap(), f[2].parse::<i64>().unwrap(), f[4].parse::<i64>().unwrap(), &f[5]);
        let at_decision = (t / 15.0 - (t / 15.0).round()).abs() < 1e-9;
        match reason.split_once("raised to the fast floor ") {
            Some((_, rest)) => {
                assert!(!at_decision, "a fast raise at a decision's time: {line}");
                let named: i64 = rest.split(' ').next().unwrap().parse().unwrap();
                assert!(desired == named && desired > from, "{line}");
                fast += 1;
            }
            None => assert!(at_decision && reason.starts_with(&format!("shields: {} +0", &f[1])), "{line}"),
        }
    }
    assert!(fast > 0, "no fast raise on rush");
}
