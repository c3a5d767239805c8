//! Sweeps on a real single-node Slurm (started by `.ci/slurm.sh`, which sets `SLURM_CONF`): the
//! job array of shards and the merge job of `configs/distributed/slurm_sweep.sh`, checked byte for
//! byte against `scalesim sweep --jobs 1`; a failed shard named by the merge job; a second
//! submission resuming without redoing finished runs.
//!
//! Without `SLURM_CONF` the test says so and passes, unless `SCALESIM_REQUIRE_SLURM=1` (set by
//! `.ci/slurm.sh start`), where a missing Slurm is a failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

fn slurm_available() -> bool {
    let present = std::env::var_os("SLURM_CONF").is_some()
        && Command::new("sinfo").arg("-h").output().is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var("SCALESIM_REQUIRE_SLURM").as_deref() != Ok("1"),
            "SCALESIM_REQUIRE_SLURM=1 but no Slurm answers (SLURM_CONF unset or sinfo fails)"
        );
        eprintln!("slurm test skipped: no SLURM_CONF (run `eval \"$(.ci/slurm.sh start DIR)\"` first)");
    }
    present
}

/// Every file under `dir`, by path relative to it.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Submits the sweep with the script; returns the merge job's id.
fn submit(sweep: &Path, shards: u32, out: &Path) -> String {
    let o = Command::new(crate::root().join("configs/distributed/slurm_sweep.sh"))
        .args([sweep.to_str().unwrap(), &shards.to_string(), out.to_str().unwrap()])
        .env("SCALESIM_BIN", crate::bin())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "slurm_sweep.sh failed: {stdout}{}", String::from_utf8_lossy(&o.stderr));
    let id = stdout.lines().last().unwrap_or("").trim().to_string();
    assert!(id.chars().all(|c| c.is_ascii_digit()) && !id.is_empty(), "last line is not a job id: {stdout}");
    id
}

/// Waits until job `id` has left the queue (ended), at most five minutes.
fn wait_for(id: &str) {
    let started = Instant::now();
    loop {
        let o = Command::new("squeue").args(["-h", "-j", id]).output().unwrap();
        if String::from_utf8_lossy(&o.stdout).trim().is_empty() {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "job {id} still queued or running after 300 s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn comparison_reports(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(&dir.join("comparison_reports"))
}

fn mtimes(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    files_under(dir)
        .keys()
        .filter(|p| p.ends_with("summary.json"))
        .map(|p| (p.clone(), std::fs::metadata(dir.join(p)).unwrap().modified().unwrap()))
        .collect()
}

#[test]
fn slurm_array_sweep_merges_byte_for_byte_and_resumes_after_a_failed_shard() {
    if !slurm_available() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let sweep = t.path().join("sweep.yaml");
    std::fs::write(
        &sweep,
        format!(
            "format_version: 1\nname: slurmtest\nscenarios: [{}]\npolicies:\n  - {{ label: static, policy: static }}\n  \
             - {{ label: hpa, policy: hpa }}\nseeds: {{ from: 1, to: 12 }}\nbaseline: static\nhorizon_s: 60\n",
            crate::root().join("scenarios/chain_5.yaml").display()
        ),
    )
    .unwrap();
    // The reference: one process, one job.
    let refs = t.path().join("ref");
    let o = Command::new(crate::bin())
        .args(["sweep", sweep.to_str().unwrap(), "--jobs", "1", "--out", refs.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ref_dir = std::fs::read_dir(&refs).unwrap().next().unwrap().unwrap().path();
    let want = comparison_reports(&ref_dir);
    assert!(want.len() >= 3, "reference reports: {:?}", want.keys());

    // 24 runs in 4 array tasks, then the merge job.
    let dist = t.path().join("dist");
    let merge = submit(&sweep, 4, &dist);
    wait_for(&merge);
    let log = std::fs::read_to_string(dist.join("logs/merge.out")).unwrap_or_default();
    assert!(dist.join("merged/index.html").is_file(), "merge job left no report; its log:\n{log}");
    assert_eq!(comparison_reports(&dist.join("merged")), want, "merged reports differ from --jobs 1");
    let runs = std::fs::read_dir(dist.join("merged/runs")).unwrap().count();
    assert_eq!(runs, 24);

    // A shard that fails (its folder holds something that is not its sweep) is named by the merge
    // job, and nothing is merged.
    let broken = t.path().join("broken");
    std::fs::create_dir_all(broken.join("shards/shard2of4")).unwrap();
    std::fs::write(broken.join("shards/shard2of4/sweep_manifest.json"), "not a manifest").unwrap();
    let merge = submit(&sweep, 4, &broken);
    wait_for(&merge);
    let log = std::fs::read_to_string(broken.join("logs/merge.out")).unwrap();
    assert!(log.contains("shard 2 of 4 failed") && log.contains("shard_2.out"), "merge log:\n{log}");
    assert!(!broken.join("merged").exists(), "a failed shard must not give a merged folder");
    let before = mtimes(&broken.join("shards/shard1of4"));
    assert_eq!(before.len(), 6, "shard 1 finished its 6 runs: {before:?}");

    // The same command again, once the cause is gone, resumes: shard 1's runs are not redone.
    std::fs::remove_dir_all(broken.join("shards/shard2of4")).unwrap();
    let merge = submit(&sweep, 4, &broken);
    wait_for(&merge);
    let log = std::fs::read_to_string(broken.join("logs/merge.out")).unwrap();
    assert_eq!(comparison_reports(&broken.join("merged")), want, "resumed merge differs; log:\n{log}");
    assert_eq!(mtimes(&broken.join("shards/shard1of4")), before, "finished runs were redone");
}

/// The Kubernetes Indexed Job manifest against the `batch/v1` Job schema (the fields and types the
/// API server would check, for the parts the manifest uses), and its command against the grid:
/// index I runs shard I+1 of `completions`.
#[test]
fn k8s_indexed_job_manifest_is_a_valid_job() {
    use serde_yaml_ng::Value;
    let text = std::fs::read_to_string(crate::root().join("configs/distributed/k8s_indexed_job.yaml")).unwrap();
    let job: Value = serde_yaml_ng::from_str(&text).unwrap();
    let keys = |v: &Value, allowed: &[&str], what: &str| {
        let m = v.as_mapping().unwrap_or_else(|| panic!("{what} is not a mapping"));
        for k in m.keys() {
            let k = k.as_str().unwrap();
            assert!(allowed.contains(&k), "{what}: `{k}` is not a field of the schema");
        }
    };
    keys(&job, &["apiVersion", "kind", "metadata", "spec"], "Job");
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(
        name.len() <= 63 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "metadata.name `{name}` is not a DNS-1123 label"
    );
    let spec = &job["spec"];
    keys(
        spec,
        &[
            "activeDeadlineSeconds",
            "backoffLimit",
            "backoffLimitPerIndex",
            "completionMode",
            "completions",
            "manualSelector",
            "maxFailedIndexes",
            "parallelism",
            "podFailurePolicy",
            "selector",
            "suspend",
            "template",
            "ttlSecondsAfterFinished",
        ],
        "JobSpec",
    );
    assert_eq!(spec["completionMode"], "Indexed");
    let completions = spec["completions"].as_u64().expect("an Indexed Job needs completions");
    let parallelism = spec["parallelism"].as_u64().unwrap_or(1);
    assert!(completions >= 1 && parallelism >= 1 && parallelism <= completions);
    assert!(spec["backoffLimit"].as_u64().is_some());
    let pod = &spec["template"]["spec"];
    keys(pod, &["restartPolicy", "containers", "volumes", "nodeSelector", "tolerations", "affinity"], "PodSpec");
    assert!(
        matches!(pod["restartPolicy"].as_str(), Some("Never" | "OnFailure")),
        "a Job's pods restart Never or OnFailure"
    );
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    keys(c, &["name", "image", "workingDir", "command", "args", "resources", "volumeMounts", "env"], "Container");
    assert!(c["name"].as_str().is_some() && c["image"].as_str().is_some());
    for (k, v) in c["resources"].as_mapping().unwrap() {
        assert!(matches!(k.as_str(), Some("requests" | "limits")));
        keys(v, &["cpu", "memory"], "resources");
    }
    let mounts: Vec<&str> =
        c["volumeMounts"].as_sequence().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    let volumes: Vec<&str> =
        pod["volumes"].as_sequence().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert!(mounts.iter().all(|m| volumes.contains(m)), "every volumeMount names a volume");
    let script = c["args"][0].as_str().unwrap();
    let n = format!("/{completions}");
    assert!(script.contains(&format!("--shard $((JOB_COMPLETION_INDEX + 1)){n}")), "{script}");
    assert!(script.contains(&format!("shard$((JOB_COMPLETION_INDEX + 1))of{completions}")), "{script}");
    assert!(text.contains(&format!("sweep-merge /results/shards/shard*of{completions}")), "merge command documented");
}
