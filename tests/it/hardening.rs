//! The hardening issue's reproductions, one test each: no lost folder, no mixed run, no panic,
//! no hang, no runaway, no NaN in an output. Numbers in test names follow the issue's items.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use scalesim::experiment::outdir::lock_folder;
use scalesim::rl::agent::checkpoint::Checkpoint;
use scalesim::rl::agent::config::AgentConfig;
use scalesim::rl::agent::ppo::Agent;

fn cli_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(crate::bin()).current_dir(dir).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout)
}

/// Refused: non-zero exit, one error line, no panic, and every `needle` in the message.
fn assert_refused(o: &Output, needles: &[&str]) {
    let t = text(o);
    assert!(!o.status.success(), "accepted: {t}");
    assert_eq!(o.status.code(), Some(1), "not a clean error exit: {t}");
    assert!(!t.contains("panicked"), "panicked: {t}");
    for n in needles {
        assert!(t.contains(n), "error lacks `{n}`: {t}");
    }
}

fn sc(name: &str) -> String {
    crate::root().join("scenarios").join(name).display().to_string()
}

fn hidden_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Items 1 and 3: `--out .` inside a run folder works like any path; a rerun over a run folder
/// holding the user's files is refused without --force and keeps them with it.
#[test]
fn item1_3_out_dot_and_foreign_files() {
    let t = tempfile::tempdir().unwrap();
    let peak = sc("chain_5.yaml");
    assert!(cli_in(t.path(), &["run", &peak, "--horizon", "20", "--out", "r", "-q"]).status.success());
    let r = t.path().join("r");
    std::fs::write(r.join("NOTES"), "n").unwrap();
    let o = cli_in(&r, &["run", &peak, "--horizon", "20", "--out", ".", "-q"]);
    assert_refused(&o, &["NOTES", "--force"]);
    assert_eq!(std::fs::read_to_string(r.join("NOTES")).unwrap(), "n");
    assert!(r.join("summary.json").is_file(), "a refused rerun leaves the earlier run whole");
    let o = cli_in(&r, &["run", &peak, "--horizon", "30", "--seed", "9", "--out", ".", "--force", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(r.join("NOTES")).unwrap(), "n");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seed"], 9, "the folder holds the new run");
    assert!(hidden_entries(t.path()).is_empty(), "nothing hidden beside the run folder");
    assert!(hidden_entries(&r).is_empty(), "no staging folder left inside it");
    // A folder of the user's own files is never a run target, --force or not.
    std::fs::create_dir(t.path().join("thesis")).unwrap();
    std::fs::write(t.path().join("thesis/ch1.tex"), "x").unwrap();
    let o = cli_in(t.path(), &["run", &peak, "--horizon", "5", "--out", "thesis", "--force", "-q"]);
    assert_refused(&o, &["not a scalesim run folder"]);
}

/// Item 2: a second writer to a folder in use is refused at once, for runs and sweeps alike.
#[test]
fn item2_a_second_writer_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("busy");
    std::fs::create_dir(&d).unwrap();
    let _held = lock_folder(&d).unwrap();
    let o = cli_in(t.path(), &["run", &sc("chain_5.yaml"), "--horizon", "5", "--out", "busy", "-q"]);
    assert_refused(&o, &["another scalesim process is writing to this folder"]);
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "the refused run wrote nothing");
    let sweep = t.path().join("s.yaml");
    std::fs::write(
        &sweep,
        format!(
            "name: s\nscenarios: [{}]\npolicies: [{{label: static, policy: static}}]\nseeds: [1]\nhorizon_s: 5\n",
            sc("chain_5.yaml")
        ),
    )
    .unwrap();
    let o = cli_in(t.path(), &["sweep", sweep.to_str().unwrap(), "--resume", "busy", "-q"]);
    assert_refused(&o, &["another scalesim process"]);
}

/// Item 4: default run folders differ when what was run differs, and are the same when it is not.
#[test]
fn item4_default_names_are_unique_to_what_was_run() {
    let t = tempfile::tempdir().unwrap();
    let cfg = |n: &str| crate::root().join("configs/policies").join(n).display().to_string();
    let run = |c: &str, h: &str| {
        let o = cli_in(
            t.path(),
            &[
                "run",
                &sc("chain_5.yaml"),
                "--policy",
                "hpa",
                "--policy-config",
                &cfg(c),
                "--seed",
                "3",
                "--horizon",
                h,
                "-q",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    };
    run("hpa_cpu40.yaml", "30");
    run("hpa_cpu80.yaml", "30");
    run("hpa_cpu80.yaml", "40");
    run("hpa_cpu80.yaml", "40");
    let mut names: Vec<String> = std::fs::read_dir(t.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "three different runs, the fourth a rerun: {names:?}");
    assert!(names.iter().any(|n| n.starts_with("chain_5_hpa_hpa_cpu40_seed3_")), "{names:?}");
}

fn agent_config_with(t: &Path, line: &str) -> String {
    let base = std::fs::read_to_string(crate::root().join("configs/agents/mlp_ppo.yaml")).unwrap();
    let key = line.split(':').next().unwrap();
    let text: String = base.lines().filter(|l| !l.starts_with(&format!("{key}:"))).map(|l| format!("{l}\n")).collect();
    let p = t.join(format!("{key}.yaml"));
    std::fs::write(&p, format!("{text}{line}\n")).unwrap();
    p.display().to_string()
}

/// Item 5: NaN, infinite, negative and absurd coefficients are refused, naming field and line.
#[test]
fn item5_agent_config_numbers_are_validated() {
    let t = tempfile::tempdir().unwrap();
    for (line, field) in [
        ("entropy_coef: .nan", "entropy_coef"),
        ("learning_rate: 1e308", "learning_rate"),
        ("value_coef: -1", "value_coef"),
        ("max_grad_norm: .inf", "max_grad_norm"),
        ("decision_interval_s: 0", "decision_interval_s"),
        ("rollout_steps: 0", "rollout_steps"),
        ("arrival_cv: [3, 1]", "arrival_cv"),
        ("arrival_cv: [0, 2]", "arrival_cv"),
        ("learning_rate_end: 2", "learning_rate_end"),
        ("entropy_coef_end: -0.1", "entropy_coef_end"),
    ] {
        let cfg = agent_config_with(t.path(), line);
        let lines = std::fs::read_to_string(&cfg).unwrap().lines().count();
        let o = cli_in(
            t.path(),
            &["train", "--agent", &cfg, "--scenario", &sc("chain_5.yaml"), "--steps", "300", "--out", "x", "-q"],
        );
        assert_refused(&o, &[field, &format!("line {lines}")]);
        assert!(!t.path().join("x").exists(), "{line}: a training folder was created");
    }
}

/// Item 5 (second half): a network with NaN weights is never written as a checkpoint.
#[test]
fn item5_non_finite_weights_are_not_checkpointed() {
    let t = tempfile::tempdir().unwrap();
    let cfg = AgentConfig::load(&crate::root().join("configs/agents/mlp_ppo.yaml")).unwrap();
    let mut ck = Agent::new(cfg, 40, 1).checkpoint();
    ck.actor[0][3] = f32::NAN;
    let e = ck.save(&t.path().join("c.ckpt")).unwrap_err().to_string();
    assert!(e.contains("the actor holds NaN"), "{e}");
    assert!(!t.path().join("c.ckpt").exists());
}

/// Items 6 and 14: a horizon or interval below the engine's resolution is refused by name; the
/// shortest valid horizon writes no null.
#[test]
fn item6_14_durations_below_resolution() {
    let t = tempfile::tempdir().unwrap();
    let o = cli_in(t.path(), &["run", &sc("online_boutique_peak.yaml"), "--horizon", "1e-9", "--out", "a", "-q"]);
    assert_refused(&o, &["--horizon", "1 us"]);
    let o = cli_in(t.path(), &["run", &sc("online_boutique_peak.yaml"), "--horizon", "0.000001", "--out", "b", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = std::fs::read_to_string(t.path().join("b/summary.json")).unwrap();
    let info = std::fs::read_to_string(t.path().join("b/experiment_info.json")).unwrap();
    for (name, body) in [("summary", &s), ("experiment_info", &info)] {
        assert!(!body.contains("null") && !body.contains("NaN"), "{name}: {body}");
    }
    let llm = std::fs::read_to_string(crate::root().join("scenarios/llm_azure_code.yaml")).unwrap();
    let trace = crate::root().join("traces/azure_llm_code_2023.csv");
    let bad = llm
        .replace("../traces/azure_llm_code_2023.csv", trace.to_str().unwrap())
        .replace("scrape_interval_s: 15", "scrape_interval_s: 1.0e-09");
    let f = t.path().join("llm.yaml");
    std::fs::write(&f, bad).unwrap();
    let o = cli_in(t.path(), &["validate", f.to_str().unwrap()]);
    assert_refused(&o, &["scrape_interval_s", "1 us"]);
}

/// Item 7: an unbounded sweep range is refused quickly, with its size.
#[test]
fn item7_sweep_grid_is_bounded() {
    let t = tempfile::tempdir().unwrap();
    for seeds in ["{from: 0, to: 1e300}", "{from: 0, to: 1e12}", "{from: 0, to: .inf}"] {
        let f = t.path().join("s.yaml");
        std::fs::write(
            &f,
            format!(
                "name: s\nscenarios: [{}]\npolicies: [{{label: static, policy: static}}]\nseeds: {seeds}\nhorizon_s: 1\n",
                sc("chain_5.yaml")
            ),
        )
        .unwrap();
        let started = Instant::now();
        let o = cli_in(t.path(), &["sweep", f.to_str().unwrap(), "--out", "o", "-q"]);
        assert_refused(&o, &["seeds"]);
        assert!(started.elapsed().as_secs_f64() < 5.0, "{seeds}: took {:?}", started.elapsed());
    }
    // The product of axes and seeds is bounded too.
    let f = t.path().join("g.yaml");
    std::fs::write(
        &f,
        format!(
            "name: g\nscenarios: [{}]\npolicies: [{{label: hpa, policy: hpa}}]\nseeds: {{from: 0, to: 9999}}\n\
             horizon_s: 1\naxes:\n  hpa.cpu_target: {{from: 1, to: 200}}\n",
            sc("chain_5.yaml")
        ),
    )
    .unwrap();
    assert_refused(&cli_in(t.path(), &["sweep", f.to_str().unwrap(), "--out", "o", "-q"]), &["2000000 runs"]);
}

fn small_checkpoint(dir: &Path) -> std::path::PathBuf {
    let cfg = AgentConfig::load(&crate::root().join("configs/agents/mlp_ppo.yaml")).unwrap();
    let p = dir.join("checkpoint.ckpt");
    Agent::new(cfg, 40, 1).checkpoint().save(&p).unwrap();
    p
}

/// Item 8: a header length past the file's size (checksum recomputed) is an error, not a panic.
#[test]
fn item8_checkpoint_lengths_are_checked() {
    let t = tempfile::tempdir().unwrap();
    let p = small_checkpoint(t.path());
    let mut bytes = std::fs::read(&p).unwrap();
    for len in [u64::MAX, u64::MAX - 19, bytes.len() as u64] {
        bytes[12..20].copy_from_slice(&len.to_le_bytes());
        crate::reseal_checkpoint(&mut bytes);
        std::fs::write(&p, &bytes).unwrap();
        let e = Checkpoint::load(&p).unwrap_err().to_string();
        assert!(e.contains("header length") && e.contains("checkpoint.ckpt"), "{e}");
    }
}

/// Item 9: the agent config stored in a checkpoint is validated like a file's.
#[test]
fn item9_stored_config_is_validated() {
    let t = tempfile::tempdir().unwrap();
    let p = small_checkpoint(t.path());
    let bytes = std::fs::read(&p).unwrap();
    let hlen = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[20..20 + hlen].to_vec()).unwrap();
    for (from, to, field) in [
        ("\"minibatch\":64", "\"minibatch\":0", "minibatch"),
        ("\"rollout_steps\":64", "\"rollout_steps\":0", "rollout_steps"),
        ("\"envs\":4", "\"envs\":0", "envs"),
        ("\"decision_interval_s\":15.0", "\"decision_interval_s\":0.0", "decision_interval_s"),
    ] {
        assert!(header.contains(from), "{from} not in {header}");
        let h = header.replace(from, to);
        let mut b = bytes[..12].to_vec();
        b.extend_from_slice(&(h.len() as u64).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(&bytes[20 + hlen..]);
        crate::reseal_checkpoint(&mut b);
        std::fs::write(&p, &b).unwrap();
        let e = Checkpoint::load(&p).unwrap_err().to_string();
        assert!(e.contains("stored agent config") && e.contains(field), "{e}");
        // The CLI paths that read it: eval, and a resumed training.
        let o =
            cli_in(t.path(), &["eval", "--checkpoint", p.to_str().unwrap(), "--scenario", &sc("chain_5.yaml"), "-q"]);
        assert_refused(&o, &[field]);
        let o = cli_in(
            t.path(),
            &["train", "--resume", t.path().to_str().unwrap(), "--scenario", &sc("chain_5.yaml"), "-q"],
        );
        assert_refused(&o, &[field]);
    }
}

/// Item 10: deeply nested YAML is refused before parsing, in every config kind.
#[test]
fn item10_deep_yaml_is_refused_fast() {
    let t = tempfile::tempdir().unwrap();
    let deep = format!("a: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    let f = t.path().join("deep.yaml");
    std::fs::write(&f, &deep).unwrap();
    let f = f.to_str().unwrap();
    let chain = sc("chain_5.yaml");
    for args in [
        vec!["validate", f],
        vec!["run", &chain, "--policy", "hpa", "--policy-config", f, "--horizon", "5", "-q"],
        vec!["train", "--agent", f, "--scenario", &chain, "--steps", "10", "-q"],
        vec!["sweep", f, "-q"],
    ] {
        let started = Instant::now();
        let o = cli_in(t.path(), &args);
        assert_refused(&o, &["nested more than 100 levels"]);
        assert!(started.elapsed().as_secs_f64() < 2.0, "{args:?}: {:?}", started.elapsed());
    }
}

/// Item 11: absurd work is refused with the numbers and the flag that allows it.
#[test]
fn item11_absurd_work_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let chain = std::fs::read_to_string(crate::root().join("scenarios/chain_5.yaml")).unwrap();
    let f = t.path().join("huge.yaml");
    std::fs::write(&f, chain.replace("rps: 400", "rps: 1e308")).unwrap();
    let o = cli_in(t.path(), &["run", f.to_str().unwrap(), "--horizon", "300", "-q"]);
    assert_refused(&o, &["refusing to run", "an infinite number of requests"]);
    std::fs::write(&f, chain.replace("rps: 400", "rps: 1e7")).unwrap();
    let o = cli_in(t.path(), &["run", f.to_str().unwrap(), "--horizon", "300", "-q"]);
    assert_refused(&o, &["1.200e9 requests", "1e9", "--allow-large"]);
    let o = cli_in(t.path(), &["run", &sc("chain_5.yaml"), "--horizon", "1e30", "-q"]);
    assert_refused(&o, &["--horizon", "past the end of the simulator's clock"]);
    let o = cli_in(t.path(), &["run", &sc("chain_5.yaml"), "--horizon", "1e6", "-q"]);
    assert_refused(&o, &["a horizon of 1000000 s", "604800 s (one week)", "--allow-large"]);
    assert!(!t.path().join("runs").exists(), "refused runs leave no folder");
}

/// Item 12: a bad 5 MB field in a trace is quoted in a short error.
#[test]
fn item12_long_values_are_quoted_short() {
    let t = tempfile::tempdir().unwrap();
    let trace = t.path().join("big.csv");
    std::fs::write(
        &trace,
        format!("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.0000000,{}x,3\n", "9".repeat(5_000_000)),
    )
    .unwrap();
    let llm = std::fs::read_to_string(crate::root().join("scenarios/llm_azure_code.yaml")).unwrap();
    let f = t.path().join("llm.yaml");
    std::fs::write(&f, llm.replace("../traces/azure_llm_code_2023.csv", trace.to_str().unwrap())).unwrap();
    let o = cli_in(t.path(), &["validate", f.to_str().unwrap()]);
    assert_refused(&o, &["big.csv line 2", "ContextTokens", "(5000001 characters)"]);
    assert!(text(&o).len() < 1_000, "{} bytes of error", text(&o).len());
}

/// Item 13: resume checks the topology and the config, counts --steps in all and reports what it
/// trained; zero steps or episodes are refused.
#[test]
fn item13_training_and_resume() {
    let t = tempfile::tempdir().unwrap();
    let agent = crate::root().join("configs/agents/mlp_ppo.yaml").display().to_string();
    let peak = sc("online_boutique_peak.yaml");
    let o = cli_in(t.path(), &["train", "--agent", &agent, "--scenario", &peak, "--steps", "600", "--out", "tr", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let steps = |dir: &str| Checkpoint::load(&t.path().join(dir).join("checkpoint.ckpt")).unwrap().steps;
    assert_eq!(steps("tr"), 768, "600 steps round up to whole rollouts of 64 x 4");
    let o = cli_in(t.path(), &["train", "--resume", "tr", "--scenario", &sc("chain_5.yaml"), "--steps", "1200", "-q"]);
    assert_refused(&o, &["an MLP agent runs only on the application it learned"]);
    let other = agent_config_with(t.path(), "learning_rate: 0.001");
    let o =
        cli_in(t.path(), &["train", "--resume", "tr", "--agent", &other, "--scenario", &peak, "--steps", "1200", "-q"]);
    assert_refused(&o, &["differs in learning_rate"]);
    let o = cli_in(t.path(), &["train", "--resume", "tr", "--agent", &agent, "--scenario", &peak, "--steps", "1200"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(steps("tr"), 1280, "--steps counts in all: 768 + two rollouts reach 1,200");
    assert!(text(&o).contains("512 steps in"), "{}", text(&o));
    let o = cli_in(t.path(), &["train", "--resume", "tr", "--scenario", &peak, "--steps", "1000"]);
    assert!(o.status.success() && text(&o).contains("nothing to do"), "{}", text(&o));
    assert_eq!(steps("tr"), 1280);
    let log = std::fs::read_to_string(t.path().join("tr/training_log.csv")).unwrap();
    assert!(!log.to_lowercase().contains("nan"), "{log}");
    // approx_kl is logged by the non-negative estimator (r - 1) - log r.
    let kl_col = log.lines().next().unwrap().split(',').position(|c| c == "approx_kl").unwrap();
    for row in log.lines().skip(1) {
        let kl: f64 = row.split(',').nth(kl_col).unwrap().parse().unwrap();
        assert!(kl >= 0.0, "approx_kl {kl} < 0 in {row}");
    }
    // A log of an older format (format 4: no `epochs` column) is not appended to.
    let log_path = t.path().join("tr/training_log.csv");
    let old = log.replacen(",clip_fraction,epochs,", ",clip_fraction,", 1);
    assert_ne!(old, log);
    std::fs::write(&log_path, &old).unwrap();
    let o =
        cli_in(t.path(), &["train", "--resume", "tr", "--agent", &agent, "--scenario", &peak, "--steps", "1600", "-q"]);
    assert_refused(&o, &["training_log.csv: line 1", "`epochs`"]);
    assert_eq!((std::fs::read_to_string(&log_path).unwrap(), steps("tr")), (old, 1280));
    let o = cli_in(t.path(), &["train", "--agent", &agent, "--scenario", &peak, "--steps", "0", "--out", "z", "-q"]);
    assert_refused(&o, &["--steps", "at least 1"]);
    let o = cli_in(t.path(), &["env", &peak, "--episodes", "0"]);
    assert_refused(&o, &["--episodes"]);
}

/// Item 13 (teams): a member checkpoint of another team is refused.
#[test]
fn item13_team_members_belong_to_one_team() {
    let t = tempfile::tempdir().unwrap();
    let lead = small_checkpoint(t.path());
    let gat = AgentConfig::load(&crate::root().join("configs/agents/gat_ppo.yaml")).unwrap();
    let member = scalesim::rl::agent::policy::member_path(&lead, 1);
    Agent::new(gat, 40, 1).checkpoint().save(&member).unwrap();
    let ck = Checkpoint::load(&lead).unwrap();
    let e = scalesim::rl::agent::policy::load_member(&lead, 1, &ck).unwrap_err().to_string();
    assert!(e.contains("not a member of the team") && e.contains("gat"), "{e}");
}

/// A pasted HPA manifest naming a service the scenario lacks: the error points at
/// `scaleTargetRef.name`'s line, not at `metadata.name`'s (which holds the same name).
#[test]
fn hpa_manifest_error_points_at_the_faulty_field() {
    let t = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(crate::root().join("configs/policies/hpa_manifests_example.yaml")).unwrap();
    // The second manifest's names, metadata and target alike, become `cartt`.
    let bad = text.replacen("name: productcatalogservice", "name: cartt", 2);
    let f = t.path().join("hpa.yaml");
    std::fs::write(&f, &bad).unwrap();
    let want = bad.lines().position(|l| l.contains("scaleTargetRef") && l.contains("cartt")).unwrap() + 1;
    let o = cli_in(
        t.path(),
        &[
            "run",
            &sc("online_boutique_peak.yaml"),
            "--policy",
            "hpa",
            "--policy-config",
            f.to_str().unwrap(),
            "--horizon",
            "5",
            "-q",
        ],
    );
    assert_refused(&o, &["scaleTargetRef.name", &format!("line {want}:"), "`cartt` is not a service"]);
}

/// An interrupted run (Ctrl-C, or a scheduler's SIGTERM) removes its unfinished folder: no hidden
/// `.partial`, no empty run folder, an exit status that says it was interrupted.
#[test]
fn an_interrupted_run_leaves_nothing_behind() {
    let t = tempfile::tempdir().unwrap();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut child = Command::new(crate::bin())
            .current_dir(t.path())
            .args(["run", &sc("online_boutique_peak.yaml"), "--horizon", "86400", "--out", "runs/long", "-q"])
            .spawn()
            .unwrap();
        // Wait until the run is writing (its staging folder exists), then interrupt it.
        let staging = t.path().join("runs/long/.partial");
        let started = Instant::now();
        while !staging.exists() && started.elapsed().as_secs() < 20 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(staging.exists(), "the run never started writing");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(128 + sig), "exit status of a run interrupted by signal {sig}");
        assert!(!t.path().join("runs").exists(), "signal {sig}: the unfinished run's folders are gone");
    }
}
