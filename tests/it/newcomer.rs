//! What a new user tripped over, one test each (the chart and index tests are in `report.rs`).

use std::process::Command;

fn cli(args: &[&str]) -> (bool, String) {
    let o = Command::new(crate::bin()).args(args).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout))
}

fn sc(name: &str) -> String {
    crate::root().join("scenarios").join(name).display().to_string()
}

/// `--seed -1` gets a plain message, not clap's "use `-- -1`" tip.
#[test]
fn negative_seed_says_seeds_are_non_negative() {
    let (ok, text) = cli(&["run", &sc("chain_5.yaml"), "--seed", "-1"]);
    assert!(!ok);
    assert!(text.contains("seeds are whole numbers from 0") && !text.contains("-- -1"), "{text}");
}

/// Every subcommand's every argument has a description, and `--policy` lists the policies.
#[test]
fn help_describes_every_argument_and_lists_policies() {
    let mut missing = Vec::new();
    for sub in [
        "run",
        "validate-backend",
        "env",
        "sweep",
        "sweep-merge",
        "report",
        "train",
        "eval",
        "export-locust",
        "validate",
    ] {
        let (ok, text) = cli(&[sub, "--help"]);
        assert!(ok, "{sub}");
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let arg = l.trim_start().starts_with('-') || l.trim_start().starts_with('<');
            if !arg || l.contains("Print help") {
                continue;
            }
            // clap prints the description on the same line (short help) or the next (long help).
            let same = l.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            let next = lines.get(i + 1).is_some_and(|n| n.starts_with("          ") && !n.trim().is_empty());
            if !(same || next) {
                missing.push(format!("{sub}: `{}`", l.trim()));
            }
        }
    }
    assert!(missing.is_empty(), "arguments without a description: {missing:#?}");
    let (_, text) = cli(&["run", "--help"]);
    for p in ["static", "random", "hpa", "kpa", "target", "agent:CHECKPOINT"] {
        assert!(text.contains(p), "run --help lacks {p}");
    }
}

/// An empty config file says it is empty.
#[test]
fn an_empty_file_says_so() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("empty.yaml");
    std::fs::write(&f, "# nothing here\n\n").unwrap();
    let (ok, text) = cli(&["validate", f.to_str().unwrap()]);
    assert!(!ok && text.contains("empty.yaml: the file is empty"), "{text}");
}

/// A shard's summary line counts its own runs, and says how many the grid has.
#[test]
fn a_shard_counts_its_own_runs() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("s.yaml");
    std::fs::write(
        &f,
        format!(
            "name: s\nscenarios: [{}]\npolicies: [{{label: static, policy: static}}, {{label: hpa, policy: hpa}}]\nseeds: {{from: 1, to: 6}}\nhorizon_s: 5\n",
            sc("chain_5.yaml")
        ),
    )
    .unwrap();
    let out = t.path().join("o");
    let (ok, text) = cli(&["sweep", f.to_str().unwrap(), "--shard", "1/2", "--out", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains(": 6 runs (of 12 in the grid)"), "{text}");
}

/// `env` numbers episodes from 1 on screen as in its log, and logs actions in words with names.
#[test]
fn env_episodes_and_actions_read_the_same_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let log = t.path().join("ep.csv");
    let (ok, text) = cli(&[
        "env",
        &sc("online_boutique_peak.yaml"),
        "--fidelity",
        "fluid",
        "--episodes",
        "2",
        "--log",
        log.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("episode 1 (") && text.contains("episode 2 (") && !text.contains("episode 0 ("), "{text}");
    let mut r = csv::Reader::from_path(&log).unwrap();
    let h = r.headers().unwrap().clone();
    let (ep, act) = (h.iter().position(|c| c == "episode").unwrap(), h.iter().position(|c| c == "action").unwrap());
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let episodes: std::collections::BTreeSet<&str> = rows.iter().map(|x| x.get(ep).unwrap()).collect();
    assert_eq!(episodes.into_iter().collect::<Vec<_>>(), ["1", "2"]);
    let services = ["frontend", "productcatalogservice", "cartservice", "currencyservice", "redis-cart", "adservice"];
    for x in &rows {
        let a = x.get(act).unwrap();
        assert!(!a.contains("One {") && !a.contains("service:"), "a debug string: {a}");
        assert!(a == "no change" || a.contains(" +") || a.contains(" -"), "{a}");
    }
    assert!(rows.iter().any(|x| services.iter().any(|s| x.get(act).unwrap().starts_with(s))));
}
