//! A seeded fuzz test over every input kind the CLI reads: scenarios, policy configs, agent
//! configs, sweep files, traces and checkpoints. Each case mutates a bundled file (a number set to
//! an extreme, a line dropped or doubled, the file cut short, a value made huge or deep) and runs
//! the command that reads it, asserting:
//! - no panic and no abort (exit code 0 or 1 only; never 101 or a signal);
//! - no hang: every case ends within [`CASE_LIMIT`] (it is killed and reported otherwise);
//! - no exit 0 with inconsistent output: a run that succeeds leaves a whole run folder whose
//!   summary parses, holds no null, and conserves requests; a training leaves a loadable
//!   checkpoint; a failure leaves no folder and exactly one `error:` line.
//!
//! The cases are drawn from one seed, so a failure names a case that reproduces.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// The longest one case may take before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(20);

/// Cases per input kind: about a minute in all in CI (release build, 2 cores).
const CASES_PER_KIND: usize = 250;

/// Numbers that break careless code: zero, negatives, tiny, huge, non-finite, past integer ranges.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1e-9",
    "0.0000001",
    "1e308",
    "-1e308",
    ".nan",
    ".inf",
    "-.inf",
    "1e12",
    "4294967296",
    "18446744073709551616",
    "2.5",
    "''",
];

/// One mutation of a text file.
fn mutate_text(text: &str, rng: &mut Pcg64) -> (String, String) {
    let lines: Vec<&str> = text.lines().collect();
    let pick_line = |rng: &mut Pcg64| rng.gen_range(0..lines.len().max(1));
    match rng.gen_range(0..7) {
        // A number replaced by an extreme (the most telling mutation: drawn most often).
        0..=2 => {
            let numbers: Vec<(usize, usize)> = number_spans(text);
            if numbers.is_empty() {
                return (text.to_string(), "unchanged".into());
            }
            let (a, b) = numbers[rng.gen_range(0..numbers.len())];
            let v = EXTREMES.choose(rng).unwrap();
            (format!("{}{}{}", &text[..a], v, &text[b..]), format!("number `{}` at byte {a} -> {v}", &text[a..b]))
        }
        3 => {
            let i = pick_line(rng);
            let out: Vec<&str> = lines.iter().enumerate().filter(|(k, _)| *k != i).map(|(_, l)| *l).collect();
            (out.join("\n") + "\n", format!("line {} dropped", i + 1))
        }
        4 => {
            let i = pick_line(rng);
            let mut out = lines.clone();
            out.insert(i, lines.get(i).copied().unwrap_or(""));
            (out.join("\n") + "\n", format!("line {} doubled", i + 1))
        }
        5 => {
            let mut cut = rng.gen_range(0..text.len().max(1));
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            (text[..cut].to_string(), format!("cut at byte {cut}"))
        }
        _ => {
            let numbers = number_spans(text);
            if numbers.is_empty() {
                return (text.to_string(), "unchanged".into());
            }
            let (a, b) = numbers[rng.gen_range(0..numbers.len())];
            let v = if rng.gen_bool(0.5) {
                "x".repeat(100_000)
            } else {
                format!("{}1{}", "[".repeat(500), "]".repeat(500))
            };
            (format!("{}{}{}", &text[..a], v, &text[b..]), format!("number at byte {a} -> huge or deep value"))
        }
    }
}

/// Byte spans of the numbers in `text` (outside comments), for mutation.
fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split(" #").next().unwrap_or("");
        let b = code.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let starts = b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'));
            if starts {
                let j =
                    (i..b.len()).find(|&k| !(b[k].is_ascii_digit() || b[k] == b'.' || b[k] == b'e')).unwrap_or(b.len());
                out.push((offset + i, offset + j));
                i = j;
            } else {
                i += 1;
            }
        }
        offset += line.len();
    }
    out
}

struct Outcome {
    code: Option<i32>,
    text: String,
    elapsed: Duration,
}

/// Runs the CLI in `dir`, killing it past [`CASE_LIMIT`].
fn run(dir: &Path, args: &[String]) -> Outcome {
    let started = Instant::now();
    let mut child = Command::new(crate::bin())
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr).take(1 << 20), &mut s);
        s
    });
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > CASE_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break Some(-999);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Outcome { code, text: reader.join().unwrap_or_default(), elapsed: started.elapsed() }
}

use std::io::Read as _;

/// Checks one case's outcome; `out` is the run or training folder the command was given.
fn check(case: &str, o: &Outcome, out: Option<&Path>, kind: Kind) -> Result<(), String> {
    let say = |what: &str| Err(format!("{case}: {what} (exit {:?}, {:?})\n{}", o.code, o.elapsed, clip(&o.text)));
    match o.code {
        Some(-999) => return say("hung past the case limit"),
        Some(0) | Some(1) => {}
        _ => return say("crashed (not exit 0 or 1)"),
    }
    if o.text.contains("panicked") {
        return say("panicked");
    }
    if o.code == Some(1) {
        if o.text.lines().filter(|l| l.starts_with("error:")).count() != 1 {
            return say("failed without exactly one error line");
        }
        if o.text.len() > 10_000 {
            return say("error message over 10 KB");
        }
        if let Some(d) = out.filter(|d| d.exists()) {
            let complete = d.join("summary.json").exists() || d.join("checkpoint.ckpt").exists();
            if complete && kind != Kind::Checkpoint {
                return say("failed but left a complete-looking folder");
            }
        }
        return Ok(());
    }
    // Exit 0: the output must be whole and consistent.
    let Some(d) = out else { return Ok(()) };
    match kind {
        Kind::Train => {
            if let Err(e) = scalesim::rl::agent::checkpoint::Checkpoint::load(&d.join("checkpoint.ckpt")) {
                return say(&format!("trained but its checkpoint does not load: {e}"));
            }
            let log = std::fs::read_to_string(d.join("training_log.csv")).unwrap_or_default();
            if log.to_lowercase().contains("nan") || log.contains("inf") {
                return say("training log holds NaN or inf");
            }
        }
        Kind::Sweep => {
            if !d.read_dir().map(|mut r| r.next().is_some()).unwrap_or(false) {
                return say("sweep exited 0 and wrote nothing");
            }
        }
        _ => {
            let text = std::fs::read_to_string(d.join("summary.json"))
                .map_err(|e| format!("{case}: exit 0 without summary.json: {e}"))?;
            if text.contains("null") || text.contains("NaN") {
                return say("summary.json holds null or NaN");
            }
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{case}: summary.json unreadable: {e}"))?;
            let r = &v["requests"];
            let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX);
            if n("arrived") != n("completed") + n("dropped") + n("in_flight") {
                return say("summary.json does not conserve requests");
            }
            if !d.join("experiment_info.json").is_file() || !d.join("timeline.csv").is_file() {
                return say("run folder incomplete");
            }
        }
    }
    Ok(())
}

fn clip(s: &str) -> String {
    s.chars().take(2_000).collect()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Scenario,
    Policy,
    Agent,
    Sweep,
    Trace,
    Checkpoint,
    Train,
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(crate::root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

/// The policy a config file belongs to, from its name.
fn policy_of(file: &Path) -> &'static str {
    let n = file.file_name().unwrap().to_string_lossy();
    if n.starts_with("kpa") {
        "kpa"
    } else if n.starts_with("target") {
        "target"
    } else {
        "hpa"
    }
}

/// Absolute paths for every relative file a bundled scenario names, so a mutated copy in a
/// temporary folder still finds its trace.
fn absolutise(text: &str) -> String {
    text.replace("../traces/", &format!("{}/", crate::root().join("traces").display()))
}

#[test]
fn fuzz_every_input_kind_no_panic_hang_or_inconsistent_success() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let mut rng = Pcg64::seed_from_u64(20_261_128);
    let chain = crate::root().join("scenarios/chain_5.yaml").display().to_string();
    let scenarios = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(crate::root().join("scenarios"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        v.sort();
        v
    };
    let policies = files("configs/policies");
    let agents = files("configs/agents");
    let trace_text = std::fs::read_to_string(crate::root().join("traces/azure_llm_code_2023.csv")).unwrap();
    // A small trace keeps LLM runs short: the first 200 rows.
    let trace_head: String = trace_text.lines().take(200).map(|l| format!("{l}\n")).collect();
    let llm = absolutise(&std::fs::read_to_string(crate::root().join("scenarios/llm_azure_code.yaml")).unwrap());
    // The LLM scenario over `trace` (written into `dir`): returns the scenario's path.
    let llm_with_trace = |dir: &Path, trace: &str| -> PathBuf {
        let tr = dir.join("t.csv");
        std::fs::write(&tr, trace).unwrap();
        let bundled = format!("{}/azure_llm_code_2023.csv", crate::root().join("traces").display());
        let s = dir.join("llm.yaml");
        std::fs::write(&s, llm.replace(&bundled, tr.to_str().unwrap())).unwrap();
        s
    };
    let sweep_text = format!(
        "format_version: 1\nname: fz\nscenarios: [{chain}]\npolicies:\n  - {{ label: static, policy: static }}\n  - {{ label: hpa, policy: hpa }}\nseeds: {{ from: 1, to: 2 }}\nhorizon_s: 5\naxes:\n  hpa.cpu_target: [40, 80]\n"
    );
    let ckpt_dir = dir.join("ck");
    std::fs::create_dir(&ckpt_dir).unwrap();
    let cfg =
        scalesim::rl::agent::config::AgentConfig::load(&crate::root().join("configs/agents/mlp_ppo.yaml")).unwrap();
    let ck_path = ckpt_dir.join("checkpoint.ckpt");
    let ob = scalesim::scenario::load_scenario(&crate::root().join("scenarios/online_boutique_peak.yaml")).unwrap();
    let layout = scalesim::rl::ObservationLayout::new(&ob.app, &ob.workload.mix, 0.6, ob.cluster.skus.len());
    scalesim::rl::agent::ppo::Agent::new(cfg, layout.flat_len(), 1).checkpoint().save(&ck_path).unwrap();
    let ck_bytes = std::fs::read(&ck_path).unwrap();

    let mut failures = Vec::new();
    let mut count = 0;
    let mut accepted: std::collections::BTreeMap<String, usize> = Default::default();
    let started = Instant::now();
    for kind in [Kind::Scenario, Kind::Policy, Kind::Agent, Kind::Sweep, Kind::Trace, Kind::Checkpoint] {
        for i in 0..CASES_PER_KIND {
            let case_dir = dir.join(format!("{kind:?}_{i}"));
            std::fs::create_dir(&case_dir).unwrap();
            let out = case_dir.join("out");
            let o = out.display().to_string();
            let (args, what, check_kind): (Vec<String>, String, Kind) = match kind {
                Kind::Scenario => {
                    let src = scenarios.choose(&mut rng).unwrap();
                    let (text, m) = mutate_text(&absolutise(&std::fs::read_to_string(src).unwrap()), &mut rng);
                    let f = case_dir.join("s.yaml");
                    std::fs::write(&f, text).unwrap();
                    let args = ["run", f.to_str().unwrap(), "--horizon", "5", "--out", &o, "-q"];
                    (args.map(String::from).to_vec(), format!("{}: {m}", src.display()), kind)
                }
                Kind::Policy => {
                    let src = policies.choose(&mut rng).unwrap();
                    let (text, m) = mutate_text(&std::fs::read_to_string(src).unwrap(), &mut rng);
                    let f = case_dir.join("p.yaml");
                    std::fs::write(&f, text).unwrap();
                    let scen = if policy_of(src) == "hpa" {
                        crate::root().join("scenarios/online_boutique_peak.yaml").display().to_string()
                    } else {
                        chain.clone()
                    };
                    let args = [
                        "run",
                        &scen,
                        "--policy",
                        policy_of(src),
                        "--policy-config",
                        f.to_str().unwrap(),
                        "--horizon",
                        "20",
                        "--out",
                        &o,
                        "-q",
                    ];
                    (args.map(String::from).to_vec(), format!("{}: {m}", src.display()), kind)
                }
                Kind::Agent => {
                    let src = agents.choose(&mut rng).unwrap();
                    let (text, m) = mutate_text(&std::fs::read_to_string(src).unwrap(), &mut rng);
                    let f = case_dir.join("a.yaml");
                    std::fs::write(&f, text).unwrap();
                    // The team configs need Online Boutique (one agent per service); the LLM one
                    // its pools. Fluid or request, 64 steps is one short rollout.
                    let scen = if src.to_string_lossy().contains("llm") {
                        llm_with_trace(&case_dir, &trace_head).display().to_string()
                    } else {
                        crate::root().join("scenarios/online_boutique_peak.yaml").display().to_string()
                    };
                    let args = [
                        "train",
                        "--agent",
                        f.to_str().unwrap(),
                        "--scenario",
                        &scen,
                        "--steps",
                        "64",
                        "--out",
                        &o,
                        "-q",
                    ];
                    (args.map(String::from).to_vec(), format!("{}: {m}", src.display()), Kind::Train)
                }
                Kind::Sweep => {
                    let (text, m) = mutate_text(&sweep_text, &mut rng);
                    let f = case_dir.join("sw.yaml");
                    std::fs::write(&f, text).unwrap();
                    let args = ["sweep", f.to_str().unwrap(), "--out", &o, "--jobs", "1", "-q"];
                    (args.map(String::from).to_vec(), format!("sweep: {m}"), kind)
                }
                Kind::Trace => {
                    let (text, m) = mutate_text(&trace_head, &mut rng);
                    let s = llm_with_trace(&case_dir, &text);
                    let args = ["run", s.to_str().unwrap(), "--horizon", "60", "--out", &o, "-q"];
                    (args.map(String::from).to_vec(), format!("trace: {m}"), kind)
                }
                Kind::Checkpoint | Kind::Train => {
                    let mut b = ck_bytes.clone();
                    let hlen = u64::from_le_bytes(b[12..20].try_into().unwrap()) as usize;
                    let m = match rng.gen_range(0..5) {
                        // A weight changed, checksum recomputed: a loadable but different (maybe
                        // infinite or huge) network; it must be refused or run to a whole folder.
                        4 => {
                            let k = rng.gen_range(20 + hlen..b.len() - 8);
                            b[k] ^= 1 << rng.gen_range(0..8);
                            crate::reseal_checkpoint(&mut b);
                            format!("payload bit flipped at byte {k}, resealed")
                        }
                        0 => {
                            let k = rng.gen_range(0..b.len());
                            b[k] ^= 1 << rng.gen_range(0..8);
                            format!("bit flipped at byte {k}")
                        }
                        1 => {
                            let k = rng.gen_range(0..b.len());
                            b.truncate(k);
                            format!("cut at byte {k}")
                        }
                        // Header edits with the checksum recomputed: only validation can tell.
                        2 => {
                            let header = String::from_utf8_lossy(&b[20..20 + hlen]).into_owned();
                            let (h, m) = mutate_text(&header, &mut rng);
                            let mut nb = b[..12].to_vec();
                            nb.extend_from_slice(&(h.len() as u64).to_le_bytes());
                            nb.extend_from_slice(h.as_bytes());
                            nb.extend_from_slice(&b[20 + hlen..]);
                            b = nb;
                            crate::reseal_checkpoint(&mut b);
                            format!("header: {m}, resealed")
                        }
                        _ => {
                            let v: u64 = *[u64::MAX, u64::MAX - 19, 0, (b.len() as u64) * 2].choose(&mut rng).unwrap();
                            b[12..20].copy_from_slice(&v.to_le_bytes());
                            crate::reseal_checkpoint(&mut b);
                            format!("header length {v}, resealed")
                        }
                    };
                    let ck = case_dir.join("c.ckpt");
                    std::fs::write(&ck, b).unwrap();
                    let args = [
                        "eval",
                        "--checkpoint",
                        ck.to_str().unwrap(),
                        "--scenario",
                        &crate::root().join("scenarios/online_boutique_peak.yaml").display().to_string(),
                        "--out",
                        &o,
                        "-q",
                    ];
                    (args.map(String::from).to_vec(), format!("checkpoint: {m}"), Kind::Checkpoint)
                }
            };
            let outcome = run(&case_dir, &args);
            count += 1;
            *accepted.entry(format!("{kind:?}")).or_insert(0) += usize::from(outcome.code == Some(0));
            let label = format!("case {kind:?} #{i} ({what})");
            if let Err(e) = check(&label, &outcome, Some(&out), check_kind) {
                failures.push(e);
            }
            let _ = std::fs::remove_dir_all(&case_dir);
        }
    }
    eprintln!(
        "fuzz: {count} cases in {:.1} s, {} failed; accepted (exit 0) per kind: {accepted:?}",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} of {count} cases failed:\n{}", failures.len(), failures.join("\n\n"));
}
