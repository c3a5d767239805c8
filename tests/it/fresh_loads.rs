//! `scripts/fresh_loads.py`: loads no agent setting was chosen on, written outside the bundled
//! scenarios; the published ones reproduce results.md's tables, a seed draws new ones.

use std::path::Path;
use std::process::Command;

use scalesim::scenario::load_scenario;

/// The published set's loads; a drawn set (`--seed`) has these and [`SURGE`].
const FILES: [&str; 3] = ["fresh_mmpp.yaml", "fresh_spikes.yaml", "fresh_gamma_wave.yaml"];
const SURGE: &str = "fresh_surge.yaml";

fn drawn_files() -> Vec<&'static str> {
    FILES.iter().copied().chain([SURGE]).collect()
}

fn write_loads(out: &Path, seed: Option<u64>) {
    let mut cmd = Command::new("python3");
    cmd.arg(crate::root().join("scripts/fresh_loads.py")).arg(out);
    if let Some(s) = seed {
        cmd.args(["--seed", &s.to_string()]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The loads of `seed` with every name prefixed (`--prefix`), as pools and the drawn validation
/// loads are written.
fn write_prefixed_loads(out: &Path, seed: u64, prefix: &str) {
    let o = Command::new("python3")
        .arg(crate::root().join("scripts/fresh_loads.py"))
        .arg(out)
        .args(["--seed", &seed.to_string(), "--prefix", prefix])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn contents(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = FILES.iter().map(|f| dir.join(f)).collect();
    if dir.join(SURGE).exists() {
        files.push(dir.join(SURGE));
    }
    files.push(dir.join("traces/mmpp_fresh.csv"));
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn fresh_loads_are_scenarios_the_repository_does_not_bundle_and_a_seed_redraws_them() {
    let tmp = tempfile::tempdir().unwrap();
    let published = tmp.path().join("published");
    write_loads(&published, None);
    let bundled: Vec<String> = std::fs::read_dir(crate::root().join("scenarios"))
        .unwrap()
        .chain(std::fs::read_dir(crate::root().join("scenarios/validation")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| load_scenario(&p).unwrap().name)
        .collect();
    for f in FILES {
        let sc = load_scenario(&published.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(sc.name.starts_with("fresh_") && !bundled.contains(&sc.name), "{f}: {}", sc.name);
    }
    // The published loads: the MMPP trace of seed 777001 at 40 rows/s (35,911 rows, the last at
    // 899.995 s), five spikes over 180 users.
    let trace = std::fs::read_to_string(published.join("traces/mmpp_fresh.csv")).unwrap();
    assert_eq!(trace.lines().count(), 1 + 35_911);
    assert_eq!(trace.lines().last(), Some("899.995"));
    let spikes = std::fs::read_to_string(published.join("fresh_spikes.yaml")).unwrap();
    let users: Vec<&str> =
        spikes.lines().filter_map(|l| l.split("users: ").nth(1)).map(|r| r.split([',', ' ']).next().unwrap()).collect();
    assert_eq!(users, ["180", "600", "180", "750", "180", "500", "180", "700", "180", "650", "180"]);
    assert!(!published.join(SURGE).exists(), "the published set has no surge");
    // A seed draws other loads, the same ones every time.
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    write_loads(&a, Some(11));
    write_loads(&b, Some(11));
    write_loads(&c, Some(12));
    assert_eq!(contents(&a), contents(&b));
    let (ca, cc, cp) = (contents(&a), contents(&c), contents(&published));
    assert_eq!((ca.len(), cc.len()), (5, 5), "a drawn set is four loads and a trace");
    for k in 0..ca.len() {
        assert!(ca[k] != cc[k], "file {k} is the same for seeds 11 and 12");
        assert!(k == 4 || ca[k] != cp[k], "file {k} is the same for seed 11 and the published set");
    }
    for f in drawn_files() {
        load_scenario(&a.join(f)).unwrap_or_else(|e| panic!("seed 11, {f}: {e}"));
    }
}

/// A drawn surge: a base, then one or two surges, each ramped up (a spawn rate, 30-150 s; never a
/// step), held 180-360 s at 400-750 users, ramped down to the base and followed by 90-180 s there.
#[test]
fn a_drawn_surge_ramps_to_a_level_held_for_minutes() {
    let tmp = tempfile::tempdir().unwrap();
    for seed in [11, 12, 13, 14] {
        let dir = tmp.path().join(seed.to_string());
        write_loads(&dir, Some(seed));
        let text = std::fs::read_to_string(dir.join(SURGE)).unwrap();
        let field = |line: &str, key: &str| -> Option<f64> {
            let rest = line.split(&format!("{key}: ")).nth(1)?;
            rest.split([',', ' ', '}']).next()?.parse().ok()
        };
        let stages: Vec<(f64, f64, Option<f64>)> = text
            .lines()
            .filter(|l| l.trim_start().starts_with("- { duration_s:"))
            .map(|l| (field(l, "duration_s").unwrap(), field(l, "users").unwrap(), field(l, "spawn_rate")))
            .collect();
        let surges = (stages.len() - 1) / 4;
        assert!(matches!(surges, 1 | 2) && stages.len() == 1 + 4 * surges, "seed {seed}: {stages:?}");
        let base = stages[0].1;
        assert!((100.0..=180.0).contains(&base), "seed {seed}: base {base}");
        for s in stages[1..].chunks(4) {
            let (up, hold, down, rest) = (s[0], s[1], s[2], s[3]);
            let peak = up.1;
            assert!((400.0..=750.0).contains(&peak) && hold.1 == peak && hold.2.is_none(), "seed {seed}: {s:?}");
            assert!((180.0..=360.0).contains(&hold.0), "seed {seed}: held {} s", hold.0);
            for (ramp, to) in [(up, peak), (down, base)] {
                assert!((30.0..=150.0).contains(&ramp.0) && ramp.1 == to, "seed {seed}: {ramp:?}");
                // The spawn rate makes the ramp last its stage (rounded to 0.01 user/s).
                let rate = ramp.2.expect("a ramp has a spawn rate");
                assert!(((peak - base) / ramp.0 - rate).abs() <= 0.005 + 1e-9, "seed {seed}: {ramp:?}");
            }
            assert!(rest.1 == base && (90.0..=180.0).contains(&rest.0), "seed {seed}: {rest:?}");
        }
        let sc = load_scenario(&dir.join(SURGE)).unwrap();
        assert!(sc.description.contains("surges ramped to"), "{}", sc.description);
    }
}

/// `--prefix` lets several drawn sets share one folder: every scenario name, file and trace gets
/// the prefix, the loads themselves are those of the seed, and a prefix that cannot name a file
/// is refused.
#[test]
fn a_prefix_puts_several_drawn_sets_in_one_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (plain, pool) = (tmp.path().join("plain"), tmp.path().join("pool"));
    write_loads(&plain, Some(11));
    for (seed, prefix) in [(11, "d11"), (12, "d12")] {
        write_prefixed_loads(&pool, seed, prefix);
    }
    for f in drawn_files() {
        for prefix in ["d11", "d12"] {
            let sc = load_scenario(&pool.join(format!("{prefix}_{f}"))).unwrap_or_else(|e| panic!("{prefix} {f}: {e}"));
            assert_eq!(sc.name, format!("{prefix}_{}", f.trim_end_matches(".yaml")));
        }
        // The same load as without the prefix: only the names differ.
        let with = std::fs::read_to_string(pool.join(format!("d11_{f}"))).unwrap();
        let without = std::fs::read_to_string(plain.join(f)).unwrap();
        assert_eq!(with.replace("d11_", ""), without, "{f}");
    }
    assert_eq!(
        std::fs::read(pool.join("traces/d11_mmpp_fresh.csv")).unwrap(),
        std::fs::read(plain.join("traces/mmpp_fresh.csv")).unwrap()
    );
    let o = Command::new("python3")
        .arg(crate::root().join("scripts/fresh_loads.py"))
        .arg(tmp.path().join("bad"))
        .args(["--prefix", "a/b"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--prefix 'a/b'"), "{err}");
    assert!(!tmp.path().join("bad").exists(), "a refused prefix wrote files");
}

/// `scripts/drawn_pool.sh`: draws a pool (four loads a seed), trains and evaluates the agents
/// with `scripts/agents_vs_hpa.sh` on it, and compares them: each `compare.csv` difference is the
/// mean over the pool's loads of the `pareto.csv` gaps, recomputed here, its interval corrected
/// for two comparisons (two variants beside the reference). A seed that is not a number is
/// refused before anything runs.
#[test]
fn a_drawn_pool_trains_evaluates_and_compares_agents() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pool");
    let pool = |seeds: &str| {
        Command::new("bash")
            .arg(crate::root().join("scripts/drawn_pool.sh"))
            .env("AGENTS", "mlp gcn gat")
            .env("EVAL_ARGS_gat", "--fast-floor-every-s 3 --fast-floor-panic-ratio 2")
            .env("POOL_SEEDS", seeds)
            .env("SEEDS", "1")
            .env("STEPS", "256")
            .env("SELECT_SCENARIOS", "")
            .env("HPA_TARGETS", "60 100")
            .env("OUT", &out)
            .output()
            .unwrap()
    };
    let o = pool("5");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let loads: Vec<String> = drawn_files().iter().map(|f| format!("d5_{}", f.trim_end_matches(".yaml"))).collect();
    let pareto = std::fs::read_to_string(out.join("pareto.csv")).unwrap();
    let gap = |scenario: &str, policy: &str| -> f64 {
        let row = pareto
            .lines()
            .find(|l| l.starts_with(&format!("{scenario},{policy},")))
            .unwrap_or_else(|| panic!("no {scenario} {policy} row in\n{pareto}"));
        row.rsplit(',').next().unwrap().parse().unwrap()
    };
    let compare = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    let rows: Vec<Vec<&str>> = compare.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let policies = ["gat-ppo", "gcn-ppo", "hpa100", "hpa60", "kpa", "mlp-ppo", "target"];
    // Every load, then each of the four families (one load each), families in name order.
    let families = ["all", "gamma_wave", "mmpp", "spikes", "surge"];
    let labels: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    let want: Vec<(&str, &str)> = families.iter().flat_map(|f| policies.iter().map(move |p| (*f, *p))).collect();
    assert_eq!(labels, want, "{compare}");
    for r in &rows {
        let in_family: Vec<&String> =
            loads.iter().filter(|l| r[0] == "all" || l.ends_with(&format!("_fresh_{}", r[0]))).collect();
        assert_eq!((r[2], r[10]), (in_family.len().to_string().as_str(), "2"), "{compare}");
        let want = in_family.iter().map(|l| gap(l, r[1]) - gap(l, "mlp-ppo")).sum::<f64>() / in_family.len() as f64;
        let got: f64 = r[4].parse().unwrap();
        assert!((got - want).abs() < 0.006, "{} on {}: diff {got} against {want} recomputed", r[1], r[0]);
    }
    // Over trainings (one per agent here, seed 1): each training's mean gap over the pool is the
    // mean of its pareto.csv gaps, and every policy is held against mlp-ppo by Welch's interval.
    let per = std::fs::read_to_string(out.join("per_training.csv")).unwrap();
    for agent in ["gat-ppo", "gcn-ppo", "mlp-ppo"] {
        let row = per.lines().find(|l| l.starts_with(&format!("{agent},1,"))).unwrap_or_else(|| panic!("{per}"));
        let got: f64 = row.split(',').nth(3).unwrap().parse().unwrap();
        let want = loads.iter().map(|l| gap(l, agent)).sum::<f64>() / loads.len() as f64;
        assert!((got - want).abs() < 0.006, "{agent}: {got} against {want} from pareto.csv");
    }
    let trainings = std::fs::read_to_string(out.join("trainings.csv")).unwrap();
    let first: Vec<&str> = trainings.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((first[0], first[1], first[2]), ("mlp-ppo", "1", "4"), "{trainings}");
    assert!(trainings.lines().skip(2).all(|l| l.contains(",welch,")), "{trainings}");
    // A pool's runs keep their summaries and no timelines (KEEP_TIMELINES defaults to 0 here).
    let run = out.join(format!("runs/gat-ppo/{}/s1", loads[0]));
    assert!(run.join("summary.json").is_file() && !run.join("timeline.csv").exists(), "{}", run.display());
    // EVAL_ARGS_gat reach gat's runs (a fast floor deployed beside it), and no other agent's.
    let info = |agent: &str| {
        std::fs::read_to_string(out.join(format!("runs/{agent}/{}/s1/experiment_info.json", loads[0]))).unwrap()
    };
    assert!(info("gat-ppo").contains("fast floor every 3 s, at 2x"), "{}", info("gat-ppo"));
    assert!(!info("gcn-ppo").contains("fast floor"), "{}", info("gcn-ppo"));
    let o = pool("5 x");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("POOL_SEEDS: `x` is not a seed"), "{err}");
}

/// `scripts/agents_vs_hpa.sh` at its smallest: the MLP at seed 1 trained for 256 steps, the slow
/// wave as the one validation load, HPA 60% as the front, evaluated on the bursty staircase with
/// no timelines; `vars` on top (a later value of a variable replaces an earlier one).
fn small_script(out: &Path, vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("bash");
    cmd.arg(crate::root().join("scripts/agents_vs_hpa.sh"))
        .env("AGENTS", "mlp")
        .env("SEEDS", "1")
        .env("STEPS", "256")
        .env("SELECT_SCENARIOS", crate::root().join("scenarios/validation/ob_slow_wave.yaml"))
        .env("SELECT_DRAWN_SEEDS", "")
        .env("HPA_TARGETS", "60")
        .env("EVAL_SCENARIOS", crate::root().join("scenarios/validation/ob_staircase_bursty.yaml"))
        .env("KEEP_TIMELINES", "0")
        .env("OUT", out);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `scripts/drawn_pool.sh` with picks alone (`AGENTS=""`, two PICKS labels of one selection):
/// nothing trains, one comparison is counted (the label beside the reference, by default the
/// first), and `PAIRED=1` pairs them by seed: the same picks at the same seeds differ by exactly
/// 0 on every seed. No arm at all, and a PAIRED that is not 0 or 1, are refused before anything
/// is written.
#[test]
fn a_drawn_pool_of_picks_alone_is_paired_by_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let o = small_script(&first, &[("SEEDS", "1 2"), ("RESTARTS", "1")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let selection = first.join("select/selection.csv").display().to_string();
    let pool = |out: &Path, vars: &[(&str, &str)]| {
        let mut cmd = Command::new("bash");
        cmd.arg(crate::root().join("scripts/drawn_pool.sh"))
            .env("AGENTS", "")
            .env("PICKS", format!("a={selection} b={selection}"))
            .env("POOL_SEEDS", "5")
            .env("SEEDS", "1 2")
            .env("BASELINE_SEEDS", "1")
            .env("SELECT_SCENARIOS", "")
            .env("HPA_TARGETS", "60 100")
            .env("OUT", out);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = tmp.path().join("pool");
    let o = pool(&out, &[("PAIRED", "1")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_dir(out.join("train")).unwrap().count(), 0, "a pool of picks trained");
    let trainings = std::fs::read_to_string(out.join("trainings.csv")).unwrap();
    let row = |label: &str| -> Vec<String> {
        let line =
            trainings.lines().find(|l| l.starts_with(&format!("{label},"))).unwrap_or_else(|| panic!("{trainings}"));
        line.split(',').map(str::to_string).collect()
    };
    // policy,trainings,loads,gap_mean,gap_sd,diff_mean,diff_ci95,pairing,better,worse,comparisons
    let b = row("b");
    assert_eq!(
        (&b[1][..], &b[2][..], &b[5][..], &b[7][..], &b[10][..]),
        ("2", "4", "0.0000", "seed", "1"),
        "{trainings}"
    );
    assert_eq!(row("a")[3], b[3], "{trainings}");
    let compare = std::fs::read_to_string(out.join("compare.csv")).unwrap();
    let all_b = compare.lines().find(|l| l.starts_with("all,b,")).unwrap_or_else(|| panic!("{compare}"));
    assert!(all_b.ends_with(",1") && all_b.contains(",0.00,0.00,0,0,"), "{compare}");

    let never = tmp.path().join("never");
    for (vars, why) in [
        (&[("PICKS", "")][..], "drawn_pool: no arm to compare: set AGENTS or PICKS"),
        (&[("PAIRED", "yes")][..], "drawn_pool: PAIRED: `yes` is not 0 or 1"),
    ] {
        let o = pool(&never, vars);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(why), "{vars:?}: {err}");
    }
    assert!(!never.exists(), "a refused setting wrote files");
}

/// `scripts/agents_vs_hpa.sh` picks checkpoints on the validation loads it is given and on the
/// four that `scripts/fresh_loads.py` draws for each seed of SELECT_DRAWN_SEEDS: those are
/// written to OUT/select_loads/ exactly as the script draws them, and each of the five gets its
/// HPA front in OUT/select/; each seed trains eight times (RESTARTS defaults to 8 with a
/// selection) and every checkpoint is screened at fluid fidelity (SELECT_SCREEN's default). A drawn validation load is refused as an evaluation load even from
/// another folder (scenarios are compared by content), and so is a seed that is not a number,
/// both before anything trains.
#[test]
fn checkpoint_selection_adds_the_drawn_validation_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let script = |eval: &Path, drawn_seeds: &str| {
        Command::new("bash")
            .arg(crate::root().join("scripts/agents_vs_hpa.sh"))
            .env("AGENTS", "mlp")
            .env("SEEDS", "1")
            .env("STEPS", "256")
            .env("SELECT_SCENARIOS", crate::root().join("scenarios/validation/ob_slow_wave.yaml"))
            .env("SELECT_DRAWN_SEEDS", drawn_seeds)
            .env("HPA_TARGETS", "60")
            .env("EVAL_SCENARIOS", eval)
            .env("OUT", &out)
            .output()
            .unwrap()
    };
    let o = script(&crate::root().join("scenarios/validation/ob_staircase_bursty.yaml"), "5");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let by_hand = tmp.path().join("by_hand");
    write_prefixed_loads(&by_hand, 5, "d5");
    let drawn = out.join("select_loads");
    let names: std::collections::BTreeSet<String> = std::fs::read_dir(&drawn)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(names, drawn_files().iter().map(|f| format!("d5_{f}")).collect());
    for f in names.iter().map(String::as_str).chain(["traces/d5_mmpp_fresh.csv"]) {
        assert_eq!(std::fs::read(drawn.join(f)).unwrap(), std::fs::read(by_hand.join(f)).unwrap(), "{f}");
    }
    for stem in names.iter().map(|n| n.trim_end_matches(".yaml")).chain(["ob_slow_wave"]) {
        let front = out.join(format!("select/runs/hpa60/{stem}/s1"));
        assert!(front.join("summary.json").exists(), "no HPA front for the validation load {stem}");
        // Selection runs are read through pareto.csv only: no timelines.
        assert!(!front.join("timeline.csv").exists(), "a selection run kept its timeline");
    }
    // Eight restarts per seed by default where there is a selection to choose among them, screened
    // at fluid fidelity.
    for k in 0..8 {
        let r = if k == 0 { "mlp_s1".to_string() } else { format!("mlp_s1_r{k}") };
        assert!(out.join("train").join(&r).join("checkpoint.ckpt").is_file(), "no training {r}");
    }
    assert!(!out.join("train/mlp_s1_r8").exists(), "a ninth restart");
    assert!(out.join("select/screen/runs/mlp_s1_r7_atfinal/ob_slow_wave/s1/summary.json").is_file(), "no fluid screen");
    // The evaluation runs keep theirs by default (KEEP_TIMELINES=1: charts are drawn from them).
    let eval = out.join("runs/mlp-ppo/ob_staircase_bursty/s1");
    assert!(eval.join("timeline.csv").is_file() && eval.join("requests.csv").is_file(), "{}", eval.display());

    let copy = tmp.path().join("elsewhere/spikes.yaml");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(drawn.join("d5_fresh_spikes.yaml"), &copy).unwrap();
    let o = script(&copy, "5");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("spikes.yaml is both an evaluation scenario and a training or selection one"), "{err}");
    let o = script(&crate::root().join("scenarios/validation/ob_staircase_bursty.yaml"), "5 x");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("SELECT_DRAWN_SEEDS: `x` is not a seed"), "{err}");
    // A setting the script does not know is refused before anything is written, naming it.
    let refused = |var: &str, value: &str, why: &str| {
        let o = Command::new("bash")
            .arg(crate::root().join("scripts/agents_vs_hpa.sh"))
            .env(var, value)
            .env("OUT", tmp.path().join("never"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(2) && err.contains(why), "{err}");
    };
    refused("KEEP_TIMELINES", "no", "KEEP_TIMELINES: `no` is neither 0 nor 1");
    refused("SELECT_RULE", "best", "SELECT_RULE: `best` is neither gap nor calm");
    assert!(!tmp.path().join("never").exists(), "a refused setting wrote files");
}

/// `RESTARTS=2`: each seed trains twice (restart 1 with the seed plus 100000, byte for byte the
/// training `scalesim train` makes with that seed), both run on the validation load with the
/// agent's seed, and the one with the lower gap there is the agent evaluated; the baselines run
/// with BASELINE_SEEDS only. Another run evaluates that pick under a label of its own (PICKS), and
/// under a second label with flags of that label's own (EVAL_ARGS_<LABEL>). A
/// restart count that is not a whole number from 1, restarts with nothing to select them by, and
/// a PICKS entry that is malformed, names no selection.csv, lacks a seed's pick or takes a label
/// already in use (another pick's, an agent's) are refused before anything is written.
#[test]
fn restarts_train_each_seed_again_and_keep_the_best_on_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let script = small_script;
    let o = script(&out, &[("RESTARTS", "2"), ("BASELINE_SEEDS", "3")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Restart 1 is the training of seed 100001.
    let by_hand = tmp.path().join("by_hand");
    let o = Command::new(crate::bin())
        .current_dir(crate::root())
        .args(["train", "--agent", "configs/agents/mlp_ppo.yaml", "--steps", "256", "--seed", "100001", "-q"])
        .args([
            "--scenario",
            "scenarios/online_boutique_offpeak.yaml",
            "--scenario",
            "scenarios/online_boutique_peak.yaml",
        ])
        .args(["--scenario", "scenarios/online_boutique_fluctuating.yaml", "--out"])
        .arg(&by_hand)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    let (r0, r1) = (out.join("train/mlp_s1/checkpoint.ckpt"), out.join("train/mlp_s1_r1/checkpoint.ckpt"));
    assert_eq!(bytes(&r1), bytes(&by_hand.join("checkpoint.ckpt")), "restart 1 is not seed 100001's training");
    assert_ne!(bytes(&r0), bytes(&r1), "the two restarts trained alike");

    // The selection: both restarts' gaps on the one validation load, the lower one selected.
    let gap_of = |label: &str| -> f64 {
        let pareto = std::fs::read_to_string(out.join("select/pareto.csv")).unwrap();
        let row = pareto.lines().find(|l| l.starts_with(&format!("ob_slow_wave,{label},"))).unwrap();
        row.rsplit(',').next().unwrap().parse().unwrap()
    };
    let (g0, g1) = (gap_of("mlp_s1_atfinal"), gap_of("mlp_s1_r1_atfinal"));
    assert_ne!(g0, g1, "a tie would not show which restart is kept");
    let selection = std::fs::read_to_string(out.join("select/selection.csv")).unwrap();
    let rows: Vec<Vec<&str>> = selection.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{selection}");
    for (row, gap) in rows.iter().zip([g0, g1]) {
        assert_eq!(row[3], "checkpoint.ckpt", "{selection}");
        assert!((row[4].parse::<f64>().unwrap() - gap).abs() < 1e-3, "{selection}");
        assert_eq!(row[6], if gap == g0.min(g1) { "yes" } else { "no" }, "{selection}");
    }
    assert_eq!((rows[0][2], rows[1][2]), ("0", "1"), "{selection}");
    let best = if g1 < g0 { &r1 } else { &r0 };
    assert_eq!(bytes(&out.join("train/mlp_s1/selected.ckpt")), bytes(best));

    // The agent ran with its seed; the baselines with BASELINE_SEEDS.
    let seeds = |policy: &str| -> Vec<String> {
        let dir = out.join(format!("runs/{policy}/ob_staircase_bursty"));
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(seeds("mlp-ppo"), ["s1"]);
    for p in ["hpa60", "kpa", "target"] {
        assert_eq!(seeds(p), ["s3"], "{p}");
    }

    // Another run evaluates this one's pick under a label of its own (PICKS): the same checkpoint,
    // seed and load, so the same summary byte for byte.
    let picks = format!("old={}", out.join("select/selection.csv").display());
    let again = tmp.path().join("again");
    // With no agent of its own (AGENTS=""), nothing trains and nothing is selected.
    // The same picks under a second label run with flags of their own (EVAL_ARGS_<LABEL>; here
    // the fluid model, as the MLP's config has no floor for a fast floor to count at).
    let both = format!("{picks} {}", picks.replacen("old=", "ff=", 1));
    let o = script(
        &again,
        &[("PICKS", &both), ("AGENTS", ""), ("BASELINE_SEEDS", "3"), ("EVAL_ARGS_ff", "--fidelity fluid")],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!again.join("select").exists(), "a run without agents selected");
    assert_eq!(std::fs::read_dir(again.join("train")).unwrap().count(), 0, "a run without agents trained");
    let summary =
        |root: &Path, label: &str| bytes(&root.join("runs").join(label).join("ob_staircase_bursty/s1/summary.json"));
    assert_eq!(summary(&again, "old"), summary(&out, "mlp-ppo"), "PICKS did not run the pick");
    let info = |label: &str| {
        std::fs::read_to_string(again.join(format!("runs/{label}/ob_staircase_bursty/s1/experiment_info.json")))
            .unwrap()
    };
    assert!(info("ff").contains(r#""fidelity": "fluid""#), "{}", info("ff"));
    assert!(info("old").contains(r#""fidelity": "request""#), "{}", info("old"));
    let pareto = std::fs::read_to_string(again.join("pareto.csv")).unwrap();
    assert!(pareto.lines().any(|l| l.starts_with("ob_staircase_bursty,old,1,")), "{pareto}");

    let never = tmp.path().join("never");
    let absent = format!("old={}", tmp.path().join("absent.csv").display());
    let (dup, as_agent) = (format!("{picks} {picks}"), picks.replacen("old=", "mlp-ppo=", 1));
    for (vars, why) in [
        (&[("PICKS", "old")][..], "PICKS: `old` is not LABEL=SELECTION_CSV"),
        (&[("PICKS", dup.as_str())][..], "PICKS: the label `old` is already another policy's or pick's"),
        (&[("PICKS", as_agent.as_str())][..], "PICKS: the label `mlp-ppo` is already another policy's or pick's"),
        (&[("PICKS", absent.as_str())][..], "absent.csv is not a selection.csv this script wrote"),
        (&[("PICKS", picks.as_str()), ("SEEDS", "2")][..], "has 0 selected checkpoints for seed 2, not one"),
        (&[("RESTARTS", "0")][..], "RESTARTS for mlp: `0` is not a whole number from 1"),
        (&[("RESTARTS_mlp", "x")][..], "RESTARTS for mlp: `x` is not a whole number from 1"),
        (
            &[("RESTARTS", "2"), ("SELECT_SCENARIOS", "")][..],
            "SELECT_SCENARIOS is empty: nothing to choose a restart by",
        ),
        (&[("RESTARTS", "2"), ("SEEDS", "100000")][..], "SEEDS: `100000` is not a seed below 100000"),
    ] {
        let o = script(&never, vars);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(2) && err.contains(why), "{vars:?}: {err}");
        assert!(!never.exists(), "{vars:?}: a refused setting wrote files");
    }
}

/// The validation loads, the restarts' selection labels and their training folders in the
/// staged-selection tests below.
const STAGED_LOADS: [&str; 2] = ["ob_slow_wave", "ob_flash_crowds"];
const STAGED_LABELS: [&str; 3] = ["mlp_s1_atfinal", "mlp_s1_r1_atfinal", "mlp_s1_r2_atfinal"];
const STAGED_TRAININGS: [&str; 3] = ["mlp_s1", "mlp_s1_r1", "mlp_s1_r2"];

/// `scripts/agents_vs_hpa.sh` as the staged-selection tests run it: the MLP at seed 1 trained
/// three times for 256 steps (each with its final checkpoint only), [`STAGED_LOADS`] as the
/// validation loads, HPA 60% as their front, the baselines at seed 1: [`small_script`] with
/// those, and `vars` on top.
fn staged_script(out: &Path, vars: &[(&str, &str)]) -> std::process::Output {
    let loads: Vec<String> = STAGED_LOADS
        .iter()
        .map(|v| crate::root().join(format!("scenarios/validation/{v}.yaml")).display().to_string())
        .collect();
    let loads = loads.join(" ");
    let mut all = vec![("RESTARTS", "3"), ("SELECT_SCENARIOS", loads.as_str()), ("BASELINE_SEEDS", "1")];
    all.extend_from_slice(vars);
    small_script(out, &all)
}

/// A policy's gap on a load in a pareto.csv (its last column), if it ran there.
fn gap_in(pareto: &str, load: &str, label: &str) -> Option<f64> {
    let row = pareto.lines().find(|l| l.starts_with(&format!("{load},{label},")))?;
    Some(row.rsplit(',').next().unwrap().parse().unwrap())
}

/// The labels ranked as the script ranks them: lowest score first, ties to the label last in
/// name order.
fn ranked(mut scored: Vec<(&'static str, f64)>) -> Vec<(&'static str, f64)> {
    scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(a.0)));
    scored
}

/// `selection.csv`'s rows, checked against each label's expected mean gap, load count and
/// fidelity, and the pick (`selected` and the copied checkpoint) against `best`.
fn assert_selection(out: &Path, expected: &[(&str, f64, &str, &str)], best: &str) {
    let selection = std::fs::read_to_string(out.join("select/selection.csv")).unwrap();
    assert!(selection.starts_with(
        "agent,seed,restart,checkpoint,mean_gap_pct,within_2x_hpa60_reversals,selected,validation_loads,fidelity\n"
    ));
    let rows: Vec<Vec<&str>> = selection.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), STAGED_LABELS.len(), "{selection}");
    for (row, label) in rows.iter().zip(STAGED_LABELS) {
        let &(_, gap, loads, fidelity) = expected.iter().find(|e| e.0 == label).unwrap();
        assert!((row[4].parse::<f64>().unwrap() - gap).abs() < 1e-3, "{label}: {selection}");
        assert_eq!((row[7], row[8]), (loads, fidelity), "{label}: {selection}");
        assert_eq!(row[6], if label == best { "yes" } else { "no" }, "{label}: {selection}");
    }
    let training = STAGED_TRAININGS[STAGED_LABELS.iter().position(|l| *l == best).unwrap()];
    assert_eq!(
        std::fs::read(out.join("train/mlp_s1/selected.ckpt")).unwrap(),
        std::fs::read(out.join("train").join(training).join("checkpoint.ckpt")).unwrap()
    );
}

/// A staged selection at request fidelity (`SELECT_SCREEN=request SELECT_FIRST=1 SELECT_KEEP=2`,
/// three restarts): every restart's checkpoint runs on the first validation load; the two best
/// there (by gap, ties to the label last in name order) also run on the second, and the pick is
/// the lower mean gap over both of those two. `selection.csv` gives each checkpoint's mean over
/// the loads it ran on, and how many. A first stage longer than the validation loads, and a
/// count kept of 0, are refused before anything is written.
#[test]
fn a_staged_selection_runs_only_the_best_of_the_first_loads_on_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = staged_script(&out, &[("SELECT_SCREEN", "request"), ("SELECT_FIRST", "1"), ("SELECT_KEEP", "2")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let pareto = std::fs::read_to_string(out.join("select/pareto.csv")).unwrap();
    let [first, second] = STAGED_LOADS;
    let on_first = ranked(STAGED_LABELS.iter().map(|l| (*l, gap_in(&pareto, first, l).unwrap())).collect());
    let (kept, dropped) = (&on_first[..2], on_first[2]);
    for (label, _) in kept {
        assert!(gap_in(&pareto, second, label).is_some(), "{label} was kept but did not run on the second load");
    }
    assert!(gap_in(&pareto, second, dropped.0).is_none(), "{} ran on the second load", dropped.0);
    assert!(!out.join("select/runs").join(dropped.0).join(second).exists());

    let mean = |label: &str| (gap_in(&pareto, first, label).unwrap() + gap_in(&pareto, second, label).unwrap()) / 2.0;
    let best = ranked(kept.iter().map(|(l, _)| (*l, mean(l))).collect())[0].0;
    let mut expected = vec![(dropped.0, dropped.1, "1", "request")];
    expected.extend(kept.iter().map(|(l, _)| (*l, mean(l), "2", "request")));
    assert_selection(&out, &expected, best);

    let never = tmp.path().join("never");
    for (vars, why) in [
        (&[("SELECT_FIRST", "3")][..], "SELECT_FIRST: `3` is not a number of validation loads from 1 to 2"),
        (&[("SELECT_FIRST", "x")][..], "SELECT_FIRST: `x` is not a number of validation loads from 1 to 2"),
        (&[("SELECT_KEEP", "0")][..], "SELECT_KEEP: `0` is not a whole number from 1"),
        (&[("SELECT_SCREEN", "coarse")][..], "SELECT_SCREEN: `coarse` is neither request nor fluid"),
    ] {
        let o = staged_script(&never, vars);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(2) && err.contains(why), "{vars:?}: {err}");
        assert!(!never.exists(), "{vars:?}: a refused setting wrote files");
    }
}

/// `SELECT_SCREEN=fluid`: every restart's checkpoint runs on every validation load at fluid
/// fidelity (with the HPA fronts, in OUT/select/screen/), the SELECT_KEEP best by their fluid
/// mean gap run on every load at request fidelity, and the pick is the best of those there.
/// `selection.csv` says which figures are which.
#[test]
fn a_fluid_screen_runs_every_checkpoint_at_fluid_fidelity_and_the_best_at_request() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = staged_script(&out, &[("SELECT_SCREEN", "fluid"), ("SELECT_KEEP", "2")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    let (screen, request) = (read("select/screen/pareto.csv"), read("select/pareto.csv"));
    let mean_in = |pareto: &str, label: &str| -> Option<f64> {
        Some((gap_in(pareto, STAGED_LOADS[0], label)? + gap_in(pareto, STAGED_LOADS[1], label)?) / 2.0)
    };
    let fidelity_of = |run: &str| -> String {
        let info = read(&format!("{run}/experiment_info.json"));
        info.split("\"fidelity\": \"").nth(1).unwrap().split('"').next().unwrap().to_string()
    };
    // The screen: all three on both loads, at fluid fidelity, beside fluid fronts.
    for v in STAGED_LOADS {
        assert_eq!(fidelity_of(&format!("select/screen/runs/hpa60/{v}/s1")), "fluid");
        assert_eq!(fidelity_of(&format!("select/screen/runs/{}/{v}/s1", STAGED_LABELS[0])), "fluid");
    }
    let screened = ranked(STAGED_LABELS.iter().map(|l| (*l, mean_in(&screen, l).unwrap())).collect());
    let (kept, dropped) = (&screened[..2], screened[2]);
    // The kept two, and only they, at request fidelity on both loads.
    for (label, _) in kept {
        assert!(mean_in(&request, label).is_some(), "{label} was kept but did not run at request fidelity");
        assert_eq!(fidelity_of(&format!("select/runs/{label}/{}/s1", STAGED_LOADS[0])), "request");
    }
    assert!(!out.join("select/runs").join(dropped.0).exists(), "{} ran at request fidelity", dropped.0);

    let best = ranked(kept.iter().map(|(l, _)| (*l, mean_in(&request, l).unwrap())).collect())[0].0;
    let mut expected = vec![(dropped.0, dropped.1, "2", "fluid")];
    expected.extend(kept.iter().map(|(l, _)| (*l, mean_in(&request, l).unwrap(), "2", "request")));
    assert_selection(&out, &expected, best);
}
