//! Reports as a user sees them: chart axes read back from the SVGs, line pixels inside the PNG's
//! frame, the index pages' tables and links, the tidy sweep table, and the HTML index rendered in a
//! real headless Chromium (when `chromium` is installed; `.ci/run` installs it and sets
//! `SCALESIM_REQUIRE_CHROMIUM=1`).

use std::path::Path;
use std::process::Command;

fn cli(args: &[&str]) -> (bool, String) {
    let o = Command::new(crate::bin()).args(args).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout))
}

/// The SVG's text elements as `(x, y, text)`.
fn svg_texts(svg: &str) -> Vec<(f64, f64, String)> {
    let attr = |tag: &str, name: &str| -> f64 {
        tag.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    svg.split("<text")
        .skip(1)
        .filter_map(|part| {
            let (tag, rest) = part.split_once('>')?;
            let text = rest.split("</text>").next()?.trim().to_string();
            Some((attr(tag, "x"), attr(tag, "y"), text))
        })
        .collect()
}

/// The plot frame `(left, top, right, bottom)` of a chart SVG: the extent of its mesh lines.
fn frame(svg: &str) -> (f64, f64, f64, f64) {
    let mut f = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for line in svg.split("<line").skip(1) {
        let get = |n: &str| {
            line.split(&format!(" {n}=\"")).nth(1).and_then(|r| r.split('"').next()).and_then(|v| v.parse::<f64>().ok())
        };
        if let (Some(x1), Some(y1), Some(x2), Some(y2)) = (get("x1"), get("y1"), get("x2"), get("y2")) {
            f = (f.0.min(x1.min(x2)), f.1.min(y1.min(y2)), f.2.max(x1.max(x2)), f.3.max(y1.max(y2)));
        }
    }
    f
}

/// The numbers labelling the y axis (left of the frame) of a chart SVG.
fn y_ticks(svg: &str) -> Vec<f64> {
    let (left, top, _, bottom) = frame(svg);
    svg_texts(svg)
        .into_iter()
        .filter(|(x, y, _)| *x < left && *y >= top - 12.0 && *y <= bottom + 12.0)
        .filter_map(|(_, _, t)| t.parse::<f64>().ok())
        .collect()
}

fn write_training_log(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut log = String::from(
        "step,mean_episode_reward,episodes,policy_loss,value_loss,entropy,approx_kl,clip_fraction,explained_variance,format_version\n",
    );
    // No episode finished at the first update (an empty reward cell), then rewards -240 -> -80.
    log.push_str("512,,0,0.05,300.0,2.2,0.001,0.0,-0.3,2\n");
    for i in 1..=20u32 {
        let r = -240.0 + 8.0 * i as f64;
        log.push_str(&format!("{},{r},{i},-0.01,{},2.1,0.004,0.08,0.5,2\n", 512 + i * 512, 300.0 / i as f64));
    }
    std::fs::write(dir.join("training_log.csv"), log).unwrap();
    std::fs::write(dir.join("agent.yaml"), "encoder: mlp\nalgorithm: ppo\n").unwrap();
    std::fs::write(dir.join("checkpoint.ckpt"), "x").unwrap();
}

/// `report` on a training folder: six curves against steps, each y axis fitted to its data
/// (negative rewards read as negative), and an index linking the log and checkpoints.
#[test]
fn training_folder_report_has_curves_with_true_axes() {
    let t = tempfile::tempdir().unwrap();
    let tr = t.path().join("tr");
    write_training_log(&tr);
    let (ok, out) = cli(&["report", tr.to_str().unwrap()]);
    assert!(ok, "{out}");
    for c in [
        "mean_episode_reward",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "explained_variance",
    ] {
        for ext in ["png", "svg"] {
            assert!(tr.join(format!("charts/training_{c}.{ext}")).is_file(), "training_{c}.{ext}");
        }
    }
    let svg = std::fs::read_to_string(tr.join("charts/training_mean_episode_reward.svg")).unwrap();
    let ticks = y_ticks(&svg);
    assert!(ticks.len() >= 4, "y ticks: {ticks:?}");
    let (lo, hi) = ticks.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, &v| (a.0.min(v), a.1.max(v)));
    assert!((-260.0..=-220.0).contains(&lo), "lowest y tick {lo} (data from -232): {ticks:?}");
    assert!((-100.0..=-60.0).contains(&hi), "highest y tick {hi} (data up to -80): {ticks:?}");
    assert!(svg.contains("environment steps") && !svg.contains("time (s)"), "x axis is steps");
    let x_labels: Vec<f64> = svg_texts(&svg)
        .into_iter()
        .filter(|(_, y, _)| *y > frame(&svg).3)
        .filter_map(|(_, _, t)| t.parse().ok())
        .collect();
    assert!(x_labels.iter().any(|&x| x >= 10_000.0), "x axis reaches the last step (10,752): {x_labels:?}");
    let value = std::fs::read_to_string(tr.join("charts/training_value_loss.svg")).unwrap();
    let v = y_ticks(&value);
    assert!(v.iter().all(|&x| x >= 0.0) && v.iter().any(|&x| x >= 300.0), "value loss axis from 0 to >= 300: {v:?}");
    let index = std::fs::read_to_string(tr.join("index.html")).unwrap();
    for want in ["training_log.csv", "checkpoint.ckpt", "encoder: mlp", "charts/training_entropy.png"] {
        assert!(index.contains(want), "index lacks {want}");
    }
}

/// A log with stages (format 4): a fine-tune's rows are drawn as their own line, and the legend
/// names the stages; a log of one stage keeps one line named after its column.
#[test]
fn a_training_report_draws_each_stage_apart() {
    let t = tempfile::tempdir().unwrap();
    let tr = t.path().join("tr");
    std::fs::create_dir_all(&tr).unwrap();
    let mut log = String::from("step,mean_episode_reward,episodes,entropy,stage,format_version\n");
    for i in 1..=8u32 {
        let stage = if i <= 5 { "train" } else { "request_fine_tune" };
        log.push_str(&format!("{},{},{i},{},{stage},4\n", i * 256, -100.0 + i as f64, 2.0 - 0.1 * i as f64));
    }
    std::fs::write(tr.join("training_log.csv"), &log).unwrap();
    let (ok, out) = cli(&["report", tr.to_str().unwrap()]);
    assert!(ok, "{out}");
    let legend = |file: &str| -> Vec<String> {
        let svg = std::fs::read_to_string(tr.join("charts").join(file)).unwrap();
        let right = frame(&svg).2;
        svg_texts(&svg).into_iter().filter(|(x, _, _)| *x > right + 20.0).map(|(_, _, t)| t).collect()
    };
    assert_eq!(legend("training_entropy.svg"), ["train", "request_fine_tune"]);
    // One stage: one line, named after the column.
    std::fs::write(tr.join("training_log.csv"), log.replace("request_fine_tune", "train")).unwrap();
    let (ok, out) = cli(&["report", tr.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert_eq!(legend("training_entropy.svg"), ["entropy"]);
}

fn png_pixels(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let px = buf[..info.buffer_size()].chunks(step).map(|c| [c[0], c[1], c[2]]).collect();
    (info.width, info.height, px)
}

/// A run's report: no line pixel outside the plot frame (wide polylines used to spike past it on
/// spiky per-second data), a metrics table and links to the CSVs in the index.
#[test]
fn run_report_lines_stay_in_the_frame_and_index_has_a_table() {
    let t = tempfile::tempdir().unwrap();
    let run = t.path().join("run");
    let sc = crate::root().join("scenarios/online_boutique_rush.yaml");
    let (ok, out) = cli(&["run", sc.to_str().unwrap(), "--policy", "hpa", "--out", run.to_str().unwrap(), "-q"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&["report", run.to_str().unwrap()]);
    assert!(ok, "{out}");
    let svg = std::fs::read_to_string(run.join("charts/rps.svg")).unwrap();
    let (left, top, right, bottom) = frame(&svg);
    let (w, h, px) = png_pixels(&run.join("charts/rps.png"));
    // The two series' colours (tab10 blue and orange), anywhere outside the frame (2 px slack for
    // the line width), except the legend panel on the right.
    let series = [[31u8, 119, 180], [255, 127, 14]];
    let mut outside = 0;
    for y in 0..h {
        for x in 0..(right as u32 + 2).min(w) {
            let inside = (x as f64) >= left - 2.0
                && (x as f64) <= right + 2.0
                && (y as f64) >= top - 2.0
                && (y as f64) <= bottom + 2.0;
            if !inside && series.contains(&px[(y * w + x) as usize]) {
                outside += 1;
            }
        }
    }
    assert_eq!(outside, 0, "line pixels outside the plot frame {left},{top}..{right},{bottom}");
    let ticks = y_ticks(&svg);
    let requests = std::fs::read_to_string(run.join("requests.csv")).unwrap();
    let data_max = requests
        .lines()
        .skip(1)
        .flat_map(|l| l.split(',').skip(1).take(2).map(|v| v.parse::<f64>().unwrap()).collect::<Vec<_>>())
        .fold(0.0, f64::max);
    let top = ticks.iter().cloned().fold(0.0, f64::max);
    assert!(data_max > 700.0 && top + 100.0 >= data_max, "RPS axis (top tick {top}) covers the data (max {data_max})");
    let index = std::fs::read_to_string(run.join("index.html")).unwrap();
    let table = index.find("<table").expect("a metrics table");
    assert!(index.find("<pre").is_none_or(|p| p > table), "the table comes before any raw text");
    for want in
        ["SLO violation (%)", "cost ($)", "href=\"timeline.csv\"", "href=\"actions.csv\"", "charts/replicas.png"]
    {
        assert!(index.contains(want), "index lacks {want}");
    }
}

/// A sweep: `comparison_reports/timeline_all.csv` holds every run's timeline with its run id,
/// scenario, policy, parameters and seed; the sweep's index links every run.
#[test]
fn sweep_has_a_tidy_timeline_table_and_links_its_runs() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("s.yaml");
    std::fs::write(
        &f,
        format!(
            "name: tidy\nscenarios: [{}]\npolicies: [{{label: static, policy: static}}, {{label: hpa, policy: hpa}}]\n\
             seeds: {{from: 1, to: 2}}\nbaseline: static\nhorizon_s: 60\naxes:\n  hpa.cpu_target: [40, 80]\n",
            crate::root().join("scenarios/chain_5.yaml").display()
        ),
    )
    .unwrap();
    let out = t.path().join("o");
    let (ok, o) = cli(&["sweep", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"]);
    assert!(ok, "{o}");
    let dir = std::fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
    let text = std::fs::read_to_string(dir.join("comparison_reports/timeline_all.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("run_id,scenario,policy,params,seed,time_s,service,"), "{header}");
    assert!(header.ends_with(",format_version"));
    let rows: Vec<&str> = lines.collect();
    // 6 runs (static x 2 seeds, hpa x 2 targets x 2 seeds) x 60 intervals (0..59 s) x 5 services.
    let one = std::fs::read_to_string(
        dir.join("runs")
            .join(std::fs::read_dir(dir.join("runs")).unwrap().next().unwrap().unwrap().file_name())
            .join("timeline.csv"),
    )
    .unwrap();
    let per_run = one.lines().count() - 1;
    assert_eq!(rows.len(), 6 * per_run);
    assert!(rows.iter().any(|r| r.starts_with("5,chain_5,hpa,\"hpa.cpu_target=80\",2,")), "{}", rows[rows.len() - 1]);
    let cols = header.split(',').count();
    assert!(rows.iter().all(|r| r.split(',').count() == cols));
    let (ok, o) = cli(&["report", dir.to_str().unwrap()]);
    assert!(ok, "{o}");
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    for d in std::fs::read_dir(dir.join("runs")).unwrap() {
        let name = d.unwrap().file_name().to_string_lossy().into_owned();
        assert!(index.contains(&format!("href=\"runs/{name}/")), "index lacks a link to {name}");
    }
    assert!(index.contains("comparison_reports/timeline_all.csv"));
    // One label per (policy, parameter point) in every chart: the bars' legend and the lines'.
    let legend = |file: &str| -> Vec<String> {
        let svg = std::fs::read_to_string(dir.join("charts").join(file)).unwrap();
        let right = frame(&svg).2;
        let mut v: Vec<String> =
            svg_texts(&svg).into_iter().filter(|(x, _, _)| *x > right + 20.0).map(|(_, _, t)| t).collect();
        v.sort();
        v
    };
    let bars = legend("comparison_slo_violation_pct.svg");
    assert_eq!(bars, ["hpa cpu_target=40", "hpa cpu_target=80", "static"]);
    assert_eq!(legend("slo_violation_chain_5.svg"), bars);
}

fn chromium() -> Option<String> {
    let found = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()));
    if found.is_none() {
        assert!(
            std::env::var("SCALESIM_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "SCALESIM_REQUIRE_CHROMIUM=1 but no chromium on PATH"
        );
        eprintln!("headless-browser test skipped: no chromium (apt-get install chromium)");
    }
    found.map(String::from)
}

/// The run's `index.html` rendered by a real headless Chromium: a screenshot of the page's size,
/// white page background, dark table text near the top and the charts' series colours below it.
#[test]
fn run_index_renders_in_headless_chromium() {
    let Some(browser) = chromium() else { return };
    let t = tempfile::tempdir().unwrap();
    let run = t.path().join("run");
    let sc = crate::root().join("scenarios/online_boutique_peak.yaml");
    let (ok, out) = cli(&["run", sc.to_str().unwrap(), "--policy", "hpa", "--out", run.to_str().unwrap(), "-q"]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&["report", run.to_str().unwrap()]);
    assert!(ok, "{out}");
    let shot = t.path().join("shot.png");
    let profile = t.path().join("profile");
    let o = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400",
            &format!("file://{}", run.join("index.html").display()),
        ])
        .output()
        .unwrap();
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&o.stderr));
    let (w, h, px) = png_pixels(&shot);
    assert_eq!((w, h), (1200, 2400));
    let at = |x: u32, y: u32| px[(y * w + x) as usize];
    assert_eq!(at(5, 5), [255, 255, 255], "white page background");
    let dark = |p: [u8; 3]| p.iter().all(|&c| c < 90);
    let text_rows = (0..400).filter(|&y| (0..600).any(|x| dark(at(x, y)))).count();
    assert!(text_rows > 50, "title and summary table drawn near the top ({text_rows} rows with text)");
    let blue = px.iter().filter(|p| **p == [31, 119, 180]).count();
    assert!(blue > 500, "the charts' first series colour appears ({blue} pixels): the images loaded");
}

/// `--no-timeline`: the same run without its two streams. What it keeps is byte-identical to the
/// full run's; the info file does not list the missing files; `report` refuses the folder naming
/// the file and the flag; a real backend refuses the flag.
#[test]
fn no_timeline_keeps_the_summary_and_drops_the_streams() {
    let t = tempfile::tempdir().unwrap();
    let (full, lean) = (t.path().join("full"), t.path().join("lean"));
    let sc = crate::root().join("scenarios/online_boutique_rush.yaml");
    let sc = sc.to_str().unwrap();
    let args = ["run", sc, "--policy", "hpa", "--horizon", "240", "--seed", "3", "-q", "--out"];
    let (ok, out) = cli(&[&args[..], &[full.to_str().unwrap()]].concat());
    assert!(ok, "{out}");
    let (ok, out) = cli(&[&args[..], &[lean.to_str().unwrap(), "--no-timeline"]].concat());
    assert!(ok, "{out}");
    for f in ["summary.json", "actions.csv", "latency.csv"] {
        let (a, b) = (std::fs::read(full.join(f)).unwrap(), std::fs::read(lean.join(f)).unwrap());
        assert!(!a.is_empty() && a == b, "{f} differs with --no-timeline");
    }
    for f in ["timeline.csv", "requests.csv"] {
        assert!(full.join(f).is_file(), "the full run lacks {f}");
        assert!(!lean.join(f).exists(), "--no-timeline wrote {f}");
    }
    let info = |d: &std::path::Path| std::fs::read_to_string(d.join("experiment_info.json")).unwrap();
    assert!(info(&full).contains("\"timeline.csv\": 1") && info(&full).contains("\"requests.csv\": 1"));
    assert!(!info(&lean).contains("timeline.csv") && !info(&lean).contains("requests.csv"), "{}", info(&lean));
    assert!(info(&lean).contains("\"actions.csv\""));
    let (ok, out) = cli(&["report", lean.to_str().unwrap()]);
    assert!(!ok, "report charted a run without a timeline");
    assert!(out.contains("timeline.csv") && out.contains("--no-timeline") && !out.contains("panicked"), "{out}");
    // The same flag on eval (an agent's run) is covered by the pool scripts; on a real backend it
    // is refused before anything starts.
    let refused = t.path().join("refused");
    let (ok, out) = cli(&["run", sc, "--backend", "local", "--no-timeline", "-q", "--out", refused.to_str().unwrap()]);
    assert!(!ok && out.contains("--no-timeline: only for --backend sim"), "{out}");
    assert!(!refused.exists(), "a refused run left a folder");
}
