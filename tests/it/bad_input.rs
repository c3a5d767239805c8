//! Bad input gets one clear error naming the file and the line, row or field; a non-zero exit; and
//! no run folder that looks complete.

use std::path::Path;
use std::process::Command;

fn run_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(crate::bin()).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

/// Writes a broken copy of the chain scenario and runs it, expecting failure and no run folder.
fn expect_refusal(dir: &Path, name: &str, yaml: &str, must_contain: &[&str]) {
    let file = dir.join(name);
    std::fs::write(&file, yaml).unwrap();
    let out = dir.join(format!("{name}.out"));
    let (ok, text) = run_cli(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!ok, "{name} was accepted");
    assert!(!text.contains("panicked"), "{name} panicked: {text}");
    for m in must_contain {
        assert!(text.contains(m), "error for {name} lacks `{m}`: {text}");
    }
    assert!(text.lines().filter(|l| l.starts_with("error")).count() == 1, "one error line expected: {text}");
    assert!(!out.exists(), "{name}: a run folder was created");
    assert!(!dir.join(format!(".{name}.out.partial")).exists(), "{name}: a staging folder was left");
}

fn chain() -> String {
    std::fs::read_to_string(crate::root().join("scenarios/chain_5.yaml")).unwrap()
}

#[test]
fn unknown_field_names_file_field_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = chain().replace("slo_ms: 100", "slo_ms: 100\nslo_msec: 100");
    let line = yaml.lines().position(|l| l.starts_with("slo_msec")).unwrap() + 1;
    expect_refusal(tmp.path(), "unknown.yaml", &yaml, &["unknown.yaml", "slo_msec", &format!("line {line}")]);
}

#[test]
fn negative_rate_names_the_field_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = chain().replace("rps: 400", "rps: -3");
    let line = yaml.lines().position(|l| l.contains("rps: -3")).unwrap() + 1;
    expect_refusal(tmp.path(), "negative.yaml", &yaml, &["negative.yaml", "rps", "-3", &format!("line {line}")]);
}

#[test]
fn call_to_unknown_service_names_it_and_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let ob = std::fs::read_to_string(crate::root().join("scenarios/online_boutique_offpeak.yaml")).unwrap();
    let yaml = ob.replacen("- { service: paymentservice }", "- { service: paymnet }", 1);
    let line = yaml.lines().position(|l| l.contains("paymnet")).unwrap() + 1;
    expect_refusal(
        tmp.path(),
        "unknown_service.yaml",
        &yaml,
        &["unknown_service.yaml", "paymnet", &format!("line {line}")],
    );
}

#[test]
fn malformed_trace_row_names_file_row_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("t.csv"), "timestamp\n0.0\n0.5\n1.x\n2.0\n").unwrap();
    let yaml = chain().split("workload:").next().unwrap().to_string()
        + "workload:\n  trace: { file: t.csv, format: requests }\n";
    expect_refusal(tmp.path(), "trace.yaml", &yaml, &["t.csv", "line 4", "timestamp", "1.x"]);
}

#[test]
fn bad_cli_values_are_refused() {
    let f = crate::root().join("scenarios/chain_5.yaml");
    let (ok, text) = run_cli(&["run", f.to_str().unwrap(), "--horizon", "-5"]);
    assert!(!ok && text.contains("--horizon"), "{text}");
    let (ok, text) = run_cli(&["run", f.to_str().unwrap(), "--policy", "magic"]);
    assert!(!ok && text.contains("unknown policy `magic`"), "{text}");
    let (ok, text) = run_cli(&["run", "no/such/file.yaml"]);
    assert!(!ok && text.contains("no/such/file.yaml"), "{text}");
}

#[test]
fn refuses_to_replace_a_folder_that_is_not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "precious").unwrap();
    let f = crate::root().join("scenarios/chain_5.yaml");
    let (ok, text) = run_cli(&["run", f.to_str().unwrap(), "--horizon", "5", "--out", out.to_str().unwrap()]);
    assert!(!ok && text.contains("not a scalesim run folder"), "{text}");
    assert!(out.join("notes.txt").exists());
}

#[test]
fn validate_reports_ok_and_errors() {
    let f = crate::root().join("scenarios/online_boutique_peak.yaml");
    let (ok, text) = run_cli(&["validate", f.to_str().unwrap()]);
    assert!(ok && text.contains("ok"), "{text}");
}

#[test]
fn bad_backend_settings_name_the_field_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let with = |section: &str| format!("{}\nbackends:\n{section}", chain());
    let cases: [(&str, String, &[&str]); 5] = [
        (
            "namespace.yaml",
            with("  kubernetes:\n    namespace: Prod/../kube-system\n    deployments: { s1: s1 }\n"),
            &["namespace.yaml", "backends.kubernetes.namespace", "line", "not a valid namespace"],
        ),
        (
            "service.yaml",
            with("  kubernetes:\n    namespace: shop\n    deployments: { cart: cart }\n"),
            &["service.yaml", "backends.kubernetes.deployments.cart", "not a service"],
        ),
        (
            "deployment.yaml",
            with("  kubernetes:\n    namespace: shop\n    deployments: { s1: 'S1 /scale' }\n"),
            &["deployment.yaml", "backends.kubernetes.deployments.s1", "not a valid Deployment name"],
        ),
        (
            "preset.yaml",
            with("  kubernetes:\n    namespace: shop\n    deployments: { s1: s1 }\n    prometheus: { url: 'http://127.0.0.1:9090', preset: consul }\n"),
            &["preset.yaml", "backends.kubernetes.prometheus.preset", "istio, linkerd, scalesim"],
        ),
        (
            "compression.yaml",
            with("  local: { time_compression: 5000 }\n"),
            &["compression.yaml", "backends.local.time_compression", "line"],
        ),
    ];
    for (name, yaml, must) in cases {
        expect_refusal(tmp.path(), name, &yaml, must);
    }
}

#[test]
fn bad_agent_config_names_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(crate::root().join("configs/agents/gat_ppo_full_action.yaml")).unwrap();
    let scenario = crate::root().join("scenarios/chain_5.yaml");
    for (name, from, to, field, says) in [
        ("basis.yaml", "slack_basis: limit", "slack_basis: requests", "slack_basis", "expected `request` or `limit`"),
        ("encoder.yaml", "encoder: gat", "encoder: rnn", "encoder", "expected one of `mlp`, `gcn`, `gat`"),
        (
            "changes.yaml",
            "encoder: gat",
            "encoder: gat\nreward_weights: { changes: -1 }",
            "reward_weights.changes",
            "-1 is outside 0 <= weight",
        ),
        ("weights.yaml", "encoder: gat", "encoder: gat\nreward_weights: { slo: 5, cost: 1 }", "cost", "unknown field"),
    ] {
        let file = tmp.path().join(name);
        assert!(good.contains(from));
        std::fs::write(&file, good.replace(from, to)).unwrap();
        let out = tmp.path().join(format!("{name}.out"));
        let (ok, text) = run_cli(&[
            "train",
            "--agent",
            file.to_str().unwrap(),
            "--scenario",
            scenario.to_str().unwrap(),
            "--steps",
            "64",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!ok && !text.contains("panicked"), "{name}: {text}");
        for m in [name, field, says, "line"] {
            assert!(text.contains(m), "error for {name} lacks `{m}`: {text}");
        }
        assert!(!out.join("checkpoint.ckpt").exists(), "{name}: no checkpoint");
    }
}
