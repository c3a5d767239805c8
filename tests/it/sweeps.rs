//! Sweeps: the same results whatever the threads, shards or interruptions; bad sweep files fail
//! before any run; every chart is a real image of the expected size.

use std::path::{Path, PathBuf};
use std::process::Command;

fn write_sweep(dir: &Path, extra: &str) -> PathBuf {
    let chain = crate::root().join("scenarios/chain_5.yaml");
    let rush = crate::root().join("scenarios/online_boutique_rush.yaml");
    let text = format!(
        "name: small\nscenarios: [{}, {}]\nhorizon_s: 40\npolicies:\n  - {{ label: static, policy: static }}\n  - {{ label: hpa, policy: hpa }}\nseeds: [1, 2, 3]\nbaseline: static\naxes:\n  hpa.cpu_target: [40, 80]\n{extra}",
        chain.display(),
        rush.display()
    );
    let f = dir.join("sweep.yaml");
    std::fs::write(&f, text).unwrap();
    f
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(crate::bin()).args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn sweep(file: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["sweep", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = cli(&args);
    assert!(ok, "{stderr}");
    PathBuf::from(stdout.lines().last().unwrap())
}

fn summary(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("comparison_reports/all_experiments_summary.csv")).unwrap()
}

#[test]
fn jobs_shards_and_resume_give_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write_sweep(tmp.path(), "");
    let one = sweep(&f, &tmp.path().join("j1"), &["--jobs", "1"]);
    let two = sweep(&f, &tmp.path().join("j2"), &["--jobs", "2"]);
    let reference = summary(&one);
    // 2 scenarios x (static + hpa at 2 targets) x 3 seeds = 18 runs, header included.
    assert_eq!(String::from_utf8_lossy(&reference).lines().count(), 19);
    assert_eq!(reference, summary(&two));
    for name in ["statistics.csv", "statistics.md"] {
        assert_eq!(
            std::fs::read(one.join("comparison_reports").join(name)).unwrap(),
            std::fs::read(two.join("comparison_reports").join(name)).unwrap()
        );
    }
    // Two shards, merged.
    let s1 = sweep(&f, &tmp.path().join("shards"), &["--shard", "1/2"]);
    let s2 = sweep(&f, &tmp.path().join("shards"), &["--shard", "2/2"]);
    let merged = tmp.path().join("merged");
    let (ok, _, err) =
        cli(&["sweep-merge", s1.to_str().unwrap(), s2.to_str().unwrap(), "--out", merged.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(reference, summary(&merged));
    // A merge with a shard missing is refused.
    let (ok, _, err) = cli(&["sweep-merge", s1.to_str().unwrap(), "--out", tmp.path().join("half").to_str().unwrap()]);
    assert!(!ok && err.contains("in no shard"), "{err}");
    // An interruption: some runs never finished (their folders gone) and one was cut mid-write
    // (a staging folder left behind). Resuming finishes exactly the missing ones.
    let runs = two.join("runs");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    for d in dirs.iter().skip(7).step_by(3) {
        std::fs::remove_dir_all(d).unwrap();
    }
    let stale = runs.join(format!(".{}.partial", dirs[8].file_name().unwrap().to_string_lossy()));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("timeline.csv"), "half a file").unwrap();
    let kept = std::fs::metadata(dirs[0].join("summary.json")).unwrap().modified().unwrap();
    sweep(&f, tmp.path(), &["--resume", two.to_str().unwrap()]);
    assert_eq!(reference, summary(&two));
    assert!(!stale.exists());
    assert_eq!(
        std::fs::metadata(dirs[0].join("summary.json")).unwrap().modified().unwrap(),
        kept,
        "a finished run was redone"
    );
}

#[test]
fn a_killed_sweep_resumes_to_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write_sweep(tmp.path(), "");
    let full = sweep(&f, &tmp.path().join("full"), &["--jobs", "2"]);
    let out = tmp.path().join("killed");
    let mut child = Command::new(crate::bin())
        .args(["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--jobs", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few runs are done (or after 20 s at most).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let done = std::fs::read_dir(&out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_dir(e.ok()?.path().join("runs")).ok())
            .map_or(0, |d| d.count());
        if done >= 3 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let dir = std::fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
    sweep(&f, tmp.path(), &["--resume", dir.to_str().unwrap()]);
    assert_eq!(summary(&full), summary(&dir));
}

#[test]
fn bad_sweep_files_fail_before_any_run() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, must) in [("  scenario.rate_scale: []\n", "empty"), ("  policy.bogus: [1]\n", "unknown axis")] {
        let f = write_sweep(tmp.path(), extra);
        let out = tmp.path().join("o");
        let (ok, _, err) = cli(&["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
        assert!(!ok && err.contains(must) && err.contains("sweep.yaml"), "{err}");
        assert!(!out.exists(), "a run started");
    }
    let f = write_sweep(tmp.path(), "");
    let text = std::fs::read_to_string(&f).unwrap();
    for (bad, must) in [
        (text.replace("policy: hpa }", "policy: magic }"), "unknown policy `magic`"),
        (text.replace("policy: hpa }", "policy: hpa, config: nowhere/hpa.yaml }"), "does not exist"),
        (text.replace("baseline: static", "baseline: nobody"), "not a policy label"),
    ] {
        std::fs::write(&f, bad).unwrap();
        let out = tmp.path().join("o");
        let (ok, _, err) = cli(&["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
        assert!(!ok && err.contains(must), "{err}");
        assert!(!out.exists(), "a run started");
    }
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()))
}

#[test]
fn reports_draw_valid_images_of_the_expected_size() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write_sweep(tmp.path(), "");
    let dir = sweep(&f, &tmp.path().join("s"), &[]);
    let (ok, _, err) = cli(&["report", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    let run = std::fs::read_dir(dir.join("runs")).unwrap().next().unwrap().unwrap().path();
    let (ok, _, err) = cli(&["report", run.to_str().unwrap()]);
    assert!(ok, "{err}");
    let mut pngs = 0;
    let mut svgs = 0;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "png") {
                let bytes = std::fs::read(&p).unwrap();
                assert!(bytes.len() > 5000, "{} is nearly empty", p.display());
                assert_eq!(png_size(&bytes), (1100, 620), "{}", p.display());
                pngs += 1;
            } else if p.extension().is_some_and(|x| x == "svg") {
                let text = std::fs::read_to_string(&p).unwrap();
                assert!(
                    text.contains("<svg") && text.contains("width=\"1100\"") && text.contains("<text"),
                    "{}",
                    p.display()
                );
                svgs += 1;
            }
        }
    }
    // Sweep: 5 comparison charts + 2 scenarios x (replicas, SLO); run: 4 charts.
    assert_eq!((pngs, svgs), (13, 13));
    assert!(dir.join("index.html").is_file() && run.join("index.html").is_file());
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("<table>") && html.contains("comparison_slo_violation_pct.png"));
}

#[test]
fn not_a_report_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = cli(&["report", tmp.path().to_str().unwrap()]);
    assert!(!ok && err.contains("neither a run folder"), "{err}");
}

#[test]
fn a_training_log_gets_its_curve() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let f = crate::root().join("scenarios/chain_5.yaml");
    let (ok, _, err) = cli(&["run", f.to_str().unwrap(), "--horizon", "20", "--out", run.to_str().unwrap(), "-q"]);
    assert!(ok, "{err}");
    let mut log = String::from(
        "step,mean_episode_reward,policy_loss,value_loss,entropy,approx_kl,clip_fraction,format_version\n",
    );
    for i in 1..=20 {
        log.push_str(&format!("{},{},0.1,0.2,1.0,0.01,0.1,1\n", i * 512, -100.0 + 4.0 * i as f64));
    }
    std::fs::write(run.join("training_log.csv"), log).unwrap();
    let (ok, _, err) = cli(&["report", run.to_str().unwrap()]);
    assert!(ok, "{err}");
    let png = std::fs::read(run.join("charts/training.png")).unwrap();
    assert_eq!(png_size(&png), (1100, 620));
}

/// A fluid sweep over three seeds has confidence intervals: fluid runs draw their counted
/// arrivals from the seed, so the seeds' SLO violations differ and the 95% interval is not a
/// point.
#[test]
fn a_fluid_sweep_over_three_seeds_has_non_zero_intervals() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("fluid.yaml");
    let peak = crate::root().join("scenarios/online_boutique_peak.yaml");
    let text = format!(
        "name: fl\nscenarios: [{}]\nhorizon_s: 120\nfidelity: fluid\npolicies:\n  - {{ label: hpa, policy: hpa }}\nseeds: [1, 2, 3]\n",
        peak.display()
    );
    std::fs::write(&f, text).unwrap();
    let out = sweep(&f, &tmp.path().join("out"), &[]);
    let stats = std::fs::read_to_string(out.join("comparison_reports/statistics.csv")).unwrap();
    let row = stats.lines().find(|l| l.contains(",slo_violation_pct,")).expect("an SLO row");
    let cells: Vec<&str> = row.split(',').collect();
    let (n, std, low, high): (u32, f64, f64, f64) =
        (cells[4].parse().unwrap(), cells[6].parse().unwrap(), cells[7].parse().unwrap(), cells[8].parse().unwrap());
    assert_eq!(n, 3);
    assert!(std > 0.0 && high - low > 0.0, "{row}");
}

/// `timelines: first_seed | none`: the statistics are byte-identical to the full sweep's; only
/// the first seed's runs (or none) keep `timeline.csv`, `timeline_all.csv` holds exactly the full
/// table's rows of those runs (none: no table), `report` draws the same charts from the first
/// seed (none: the bars only, and says why). A value it does not know is refused by name.
#[test]
fn a_sweep_keeps_the_timelines_it_is_told_to() {
    let tmp = tempfile::tempdir().unwrap();
    let make = |name: &str, extra: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let dir = sweep(&write_sweep(&d, extra), &d.join("out"), &["--jobs", "2"]);
        let (ok, _, err) = cli(&["report", dir.to_str().unwrap()]);
        assert!(ok, "{err}");
        dir
    };
    let (all, first, none) =
        (make("all", ""), make("first", "timelines: first_seed\n"), make("none", "timelines: none\n"));
    for f in ["all_experiments_summary.csv", "statistics.csv", "statistics.md"] {
        let read = |d: &Path| std::fs::read(d.join("comparison_reports").join(f)).unwrap();
        assert_eq!(read(&all), read(&first), "{f}");
        assert_eq!(read(&all), read(&none), "{f}");
    }
    let timelines = |d: &Path| -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = std::fs::read_dir(d.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p.join("timeline.csv").is_file()))
            .collect();
        v.sort();
        v
    };
    let kept: Vec<(String, bool)> = timelines(&first);
    assert_eq!(kept.len(), 18);
    for (run, has) in &kept {
        assert_eq!(*has, run.ends_with("_s1"), "{run}");
    }
    assert!(timelines(&all).iter().all(|(_, has)| *has) && timelines(&none).iter().all(|(_, has)| !*has));
    let table = |d: &Path| std::fs::read_to_string(d.join("comparison_reports/timeline_all.csv")).unwrap();
    let full = table(&all);
    let seed_one: Vec<&str> =
        full.lines().enumerate().filter(|(i, l)| *i == 0 || l.split(',').nth(4) == Some("1")).map(|(_, l)| l).collect();
    assert!(seed_one.len() > 100 && seed_one.len() < full.lines().count() / 2);
    assert_eq!(table(&first).lines().collect::<Vec<_>>(), seed_one);
    assert!(!none.join("comparison_reports/timeline_all.csv").exists());
    let charts = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d.join("charts"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(charts(&all), charts(&first));
    let bars_only = charts(&none);
    assert!(bars_only.len() == 10 && bars_only.iter().all(|c| c.starts_with("comparison_")), "{bars_only:?}");
    let index = std::fs::read_to_string(none.join("index.html")).unwrap();
    assert!(index.contains("timelines: none") && !index.contains("timeline_all.csv"), "no reason given");

    let f = write_sweep(tmp.path(), "timelines: some\n");
    let out = tmp.path().join("o");
    let (ok, _, err) = cli(&["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert!(!ok && err.contains("sweep.yaml") && err.contains("timelines") && err.contains("first_seed"), "{err}");
    assert!(!out.exists(), "a run started");
}
