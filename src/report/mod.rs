//! Reports: charts (PNG and SVG, with plotters) and an `index.html`, for a run folder or a sweep
//! folder. The only module that knows plotters.
//!
//! A run gets: replicas per service over time (step lines) with the load on a second axis; SLO
//! violation over time (10 s bins); RPS; the latency CDF (log x); training curves when a
//! `training_log.csv` is present. A sweep gets: comparison bars with 95% CI error bars per metric
//! and scenario; total replicas and SLO violation over time per policy for every scenario (first
//! seed of each); and the statistics table.

mod charts;
mod data;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

pub use charts::{Bar, ParetoPanel, ParetoPoint, Series};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Makes the bundled DejaVu Sans the charts' `sans-serif` (plotters draws no text without a font,
/// and the machine's fonts are not to be relied on).
pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        // The bundled font is a valid TrueType file; failing here would be a build defect.
        let _ = plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT);
    });
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path} row {row}: {message}")]
    Data { path: String, row: usize, message: String },
    #[error("drawing {path}: {message}")]
    Draw { path: String, message: String },
    #[error("{0}: neither a run folder (summary.json), a sweep folder (sweep_manifest.json), a validation folder (validation.json) nor a training folder (training_log.csv)")]
    NotAReport(String),
}

pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Io { path: path.display().to_string(), message: e.to_string() }
}

/// Draws the charts and `index.html` of a run or sweep folder; returns the files written.
pub fn report(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    register_font();
    if dir.join("sweep_manifest.json").is_file() {
        sweep_report(dir)
    } else if dir.join("validation.json").is_file() {
        validation_report(dir)
    } else if dir.join("summary.json").is_file() {
        run_report(dir)
    } else if dir.join("training_log.csv").is_file() {
        training_report(dir)
    } else {
        Err(ReportError::NotAReport(dir.display().to_string()))
    }
}

/// The overlay charts of a sim-vs-real validation, per service a (simulator, real) pair: Active
/// replicas (steps) and CPU utilisation, the simulator solid and the real backend dashed.
pub fn validation_charts(
    dir: &Path,
    replicas: &[(Series, Series)],
    cpu: &[(Series, Series)],
) -> Result<Vec<PathBuf>, ReportError> {
    register_font();
    let mut files = both(dir, "validation_replicas", |p| {
        charts::paired(p, "Active replicas: simulator (solid) vs real (dashed)", "replicas", replicas, true)
    })?;
    files.extend(both(dir, "validation_cpu", |p| {
        charts::paired(
            p,
            "CPU utilisation of request: simulator (solid) vs real (dashed)",
            "utilisation (%)",
            cpu,
            false,
        )
    })?);
    Ok(files)
}

/// `pareto.png` and `pareto.svg` in `dir`: cost against SLO violation per scenario.
pub fn pareto_charts(dir: &Path, panels: &[ParetoPanel]) -> Result<Vec<PathBuf>, ReportError> {
    register_font();
    both(dir, "pareto", |p| charts::pareto(p, "Cost vs SLO violation (mean, 95% CI over seeds)", panels))
}

fn both(dir: &Path, stem: &str, draw: impl Fn(&Path) -> Result<(), ReportError>) -> Result<Vec<PathBuf>, ReportError> {
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    draw(&png)?;
    draw(&svg)?;
    Ok(vec![png, svg])
}

fn run_report(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let out = dir.join("charts");
    fs::create_dir_all(&out).map_err(|e| io_err(&out, e))?;
    let mut files = run_charts(dir, "", &out)?;
    let training = dir.join("training_log.csv");
    if training.is_file() {
        let curve = data::training_curve(&training)?;
        files.extend(both(&out, "training", |p| {
            charts::lines_against(
                p,
                "Training curve",
                "environment steps",
                "mean episode reward",
                std::slice::from_ref(&curve),
            )
        })?);
    }
    let body = run_summary_html(&dir.join("summary.json"))? + &file_links(dir, &RUN_FILES);
    write_index(dir, "Run", &body, "charts", &mut files)?;
    Ok(files)
}

/// A `validate-backend` folder: the gap table, the overlay charts it already holds, and each
/// side's run charts and summary (`sim_*` and `local_*` files, the run-folder schema).
fn validation_report(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let out = dir.join("charts");
    fs::create_dir_all(&out).map_err(|e| io_err(&out, e))?;
    let mut files = Vec::new();
    let mut body = String::new();
    let md = dir.join("validation.md");
    if md.is_file() {
        let text = fs::read_to_string(&md).map_err(|e| io_err(&md, e))?;
        body.push_str("<h2>Simulator against the real backend</h2>\n");
        for table in text.split("\n\n").filter(|t| t.trim_start().starts_with('|')) {
            body.push_str(&markdown_table(table));
        }
    }
    for side in ["sim", "local"] {
        let prefix = format!("{side}_");
        if !dir.join(format!("{prefix}summary.json")).is_file() {
            continue;
        }
        files.extend(run_charts(dir, &prefix, &out)?);
        body.push_str(&format!("<h1>{side}</h1>\n"));
        body.push_str(&run_summary_html(&dir.join(format!("{prefix}summary.json")))?);
    }
    let names: Vec<String> = ["validation.json", "validation.md", "replicas_compared.csv"]
        .iter()
        .map(|s| s.to_string())
        .chain(["sim", "local"].iter().flat_map(|side| {
            ["summary.json", "timeline.csv", "actions.csv", "requests.csv"].map(|f| format!("{side}_{f}"))
        }))
        .collect();
    body.push_str(&file_links(dir, &names.iter().map(String::as_str).collect::<Vec<_>>()));
    // The overlay charts validate-backend drew sit in the folder itself.
    for name in ["validation_replicas.png", "validation_cpu.png"].iter().filter(|f| dir.join(f).is_file()) {
        body.push_str(&format!("<img src=\"{name}\" style=\"max-width:100%\">\n"));
    }
    write_index(dir, "Validation", &body, "charts", &mut files)?;
    Ok(files)
}

/// The charts of one run's files (`PREFIXtimeline.csv`, `PREFIXrequests.csv`, and
/// `PREFIXlatency.csv` when there is one) into `out`, named with the same prefix.
fn run_charts(dir: &Path, prefix: &str, out: &Path) -> Result<Vec<PathBuf>, ReportError> {
    // Every caller charts a run folder (its summary is there): a missing timeline is a
    // `--no-timeline` run (or a file removed since), which has nothing to chart over time.
    let timeline_path = dir.join(format!("{prefix}timeline.csv"));
    if !timeline_path.is_file() {
        return Err(io_err(
            &timeline_path,
            "not in this run folder (a run made with --no-timeline has no timeline to chart; run it again without)",
        ));
    }
    let timeline = data::Timeline::read(&timeline_path)?;
    let requests = data::Requests::read(&dir.join(format!("{prefix}requests.csv")))?;
    let mut files = Vec::new();
    let replicas: Vec<Series> =
        timeline.services.iter().map(|(name, pts)| Series { name: name.clone(), points: pts.clone() }).collect();
    let load = Series { name: "load (requests/s)".into(), points: requests.rps.clone() };
    files.extend(both(out, &format!("{prefix}replicas"), |p| {
        charts::step_lines(p, "Active replicas per service", "replicas", &replicas, Some(&load))
    })?);
    files.extend(both(out, &format!("{prefix}slo_violation"), |p| {
        charts::lines(
            p,
            "SLO violation over time (10 s bins)",
            "requests over the SLO or dropped (%)",
            &[Series { name: "SLO violation".into(), points: requests.violation_bins(10.0) }],
            false,
        )
    })?);
    files.extend(both(out, &format!("{prefix}rps"), |p| {
        charts::lines(
            p,
            "Requests per second",
            "requests/s",
            &[load.clone(), Series { name: "completed (requests/s)".into(), points: requests.completed.clone() }],
            false,
        )
    })?);
    // Real backends record latency quantiles, not the distribution: no latency.csv, no CDF.
    let latency = dir.join(format!("{prefix}latency.csv"));
    if latency.is_file() {
        let cdf = data::read_pairs(&latency)?;
        files.extend(both(out, &format!("{prefix}latency_cdf"), |p| {
            charts::lines(
                p,
                "End-to-end latency distribution",
                "cumulative fraction of requests",
                &[Series { name: "latency CDF".into(), points: cdf.clone() }],
                true,
            )
        })?);
    }
    Ok(files)
}

/// The data files of a run folder that its index links to.
const RUN_FILES: [&str; 7] = [
    "summary.json",
    "experiment_info.json",
    "timeline.csv",
    "actions.csv",
    "requests.csv",
    "latency.csv",
    "training_log.csv",
];

/// Links to the files of `names` that `dir` holds.
fn file_links(dir: &Path, names: &[&str]) -> String {
    let links: Vec<String> =
        names.iter().filter(|n| dir.join(n).is_file()).map(|n| format!("<a href=\"{n}\">{n}</a>")).collect();
    if links.is_empty() {
        return String::new();
    }
    format!("<p>Data: {}</p>\n", links.join(" &middot; "))
}

/// A run's headline metrics (from its `summary.json`, at `p`) as a table, then its per-service table.
fn run_summary_html(p: &Path) -> Result<String, ReportError> {
    let p = p.to_path_buf();
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&p).map_err(|e| io_err(&p, e))?).map_err(|e| io_err(&p, e))?;
    let num = |x: &serde_json::Value| x.as_f64().map_or_else(|| x.to_string(), charts_num);
    let rows: [(&str, String); 12] = [
        ("scenario", v["scenario"].as_str().unwrap_or("").to_string()),
        ("policy", v["policy"].as_str().unwrap_or("").to_string()),
        ("seed", v["seed"].to_string()),
        ("horizon (s)", num(&v["horizon_s"])),
        (
            "requests arrived / completed / dropped",
            format!("{} / {} / {}", v["requests"]["arrived"], v["requests"]["completed"], v["requests"]["dropped"]),
        ),
        ("SLO violation (%)", num(&v["slo_violation_pct"])),
        (
            "latency mean / p95 / p99 (ms)",
            format!(
                "{} / {} / {}",
                num(&v["latency_ms"]["mean"]),
                num(&v["latency_ms"]["p95"]),
                num(&v["latency_ms"]["p99"])
            ),
        ),
        ("cost ($)", num(&v["cost"])),
        ("resource slack (%)", num(&v["resource_slack_pct"])),
        ("scaling lag mean (s)", num(&v["scaling_lag_s"]["mean"])),
        ("oscillation (reversals/h)", num(&v["oscillation_per_hour"])),
        ("policy decisions / replica changes", format!("{} / {}", v["policy_decisions"], v["replica_changes"])),
    ];
    let mut html = String::from("<h2>Summary</h2>\n<table>\n");
    for (k, val) in rows {
        let _ = writeln!(html, "<tr><th style=\"text-align:left\">{}</th><td>{}</td></tr>", escape(k), escape(&val));
    }
    html.push_str("</table>\n");
    if let Some(services) = v["services"].as_array() {
        html.push_str("<h2>Services</h2>\n<table>\n<tr><th>service</th><th>arrived</th><th>dropped</th><th>mean latency (ms)</th><th>p95 (ms)</th><th>CPU utilisation</th><th>mean active replicas</th></tr>\n");
        for s in services {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(s["name"].as_str().unwrap_or("")),
                s["arrived"],
                s["dropped"],
                num(&s["mean_latency_ms"]),
                num(&s["p95_ms"]),
                num(&s["cpu_util"]),
                num(&s["mean_active_replicas"])
            );
        }
        html.push_str("</table>\n");
    }
    Ok(html)
}

/// A number for a table: up to 4 significant decimals, no noise.
fn charts_num(f: f64) -> String {
    if f == f.round() && f.abs() < 1e15 {
        format!("{f:.0}")
    } else {
        let s = format!("{f:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A training folder (`scalesim train --out DIR`): reward, value and policy loss, entropy, KL and
/// clip fraction against environment steps, and an index with the agent's config and checkpoints.
fn training_report(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let out = dir.join("charts");
    fs::create_dir_all(&out).map_err(|e| io_err(&out, e))?;
    let log = dir.join("training_log.csv");
    let columns: Vec<&str> = data::TRAINING_COLUMNS.iter().map(|c| c.0).collect();
    let series = data::training_series(&log, &columns)?;
    let mut files = Vec::new();
    for ((column, title, y_label), s) in data::TRAINING_COLUMNS.iter().zip(series) {
        if s.is_empty() {
            continue;
        }
        files.extend(both(&out, &format!("training_{column}"), |p| {
            charts::lines_against(p, title, "environment steps", y_label, &s)
        })?);
    }
    let mut body = String::new();
    if let Ok(cfg) = fs::read_to_string(dir.join("agent.yaml")) {
        let _ = write!(body, "<h2>Agent</h2>\n<pre>{}</pre>\n", escape(&cfg));
    }
    let mut checkpoints: Vec<String> = fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".ckpt"))
        .collect();
    checkpoints.sort();
    let names: Vec<&str> = std::iter::once("training_log.csv").chain(checkpoints.iter().map(String::as_str)).collect();
    body.push_str(&file_links(dir, &names));
    write_index(dir, "Training", &body, "charts", &mut files)?;
    Ok(files)
}

fn sweep_report(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    // Charts go beside `comparison_reports/`, not into it: that folder holds the sweep's data, the
    // same bytes whether or not a report was drawn (a merged Slurm sweep is checked against a
    // local one by comparing it).
    let out = dir.join("charts");
    fs::create_dir_all(&out).map_err(|e| io_err(&out, e))?;
    let stats = data::Stats::read(&dir.join("comparison_reports").join("statistics.csv"))?;
    let mut files = Vec::new();
    for c in crate::metrics::COMPARED {
        let (metric, label) = (c.column, c.label);
        let bars: Vec<Bar> = stats.bars(metric);
        if bars.is_empty() {
            continue;
        }
        files.extend(both(&out, &format!("comparison_{metric}"), |p| {
            charts::bars(p, &format!("{label} by policy (mean, 95% CI)"), label, &bars)
        })?);
    }
    let runs = data::first_seed_runs(dir)?;
    let untimed = if runs.is_empty() {
        "<p>No charts over time: the sweep kept no run's timeline (<code>timelines: none</code>).</p>\n"
    } else {
        ""
    };
    let mut scenarios: Vec<&String> = runs.iter().map(|r| &r.scenario).collect();
    scenarios.dedup();
    for sc in scenarios {
        let group: Vec<&data::RunRef> = runs.iter().filter(|r| &r.scenario == sc).collect();
        let mut replicas = Vec::new();
        let mut slo = Vec::new();
        let mut load = None;
        for r in &group {
            let t = data::Timeline::read(&r.dir.join("timeline.csv"))?;
            let q = data::Requests::read(&r.dir.join("requests.csv"))?;
            replicas.push(Series { name: r.label.clone(), points: t.total_active() });
            slo.push(Series { name: r.label.clone(), points: q.violation_bins(10.0) });
            load.get_or_insert(Series { name: "load (requests/s)".into(), points: q.rps.clone() });
        }
        let name = data::sanitize(sc);
        files.extend(both(&out, &format!("replicas_{name}"), |p| {
            charts::step_lines(
                p,
                &format!("{sc}: total Active replicas (seed {})", group[0].seed),
                "replicas",
                &replicas,
                load.as_ref(),
            )
        })?);
        files.extend(both(&out, &format!("slo_violation_{name}"), |p| {
            charts::lines(
                p,
                &format!("{sc}: SLO violation over time, 10 s bins (seed {})", group[0].seed),
                "requests over the SLO or dropped (%)",
                &slo,
                false,
            )
        })?);
    }
    let md = fs::read_to_string(dir.join("comparison_reports").join("statistics.md")).unwrap_or_default();
    let mut body = markdown_table(&md);
    body.push_str(untimed);
    body.push_str(
        &file_links(
            &dir.join("comparison_reports"),
            &["statistics.csv", "statistics.md", "all_experiments_summary.csv", "timeline_all.csv"],
        )
        .replace("href=\"", "href=\"comparison_reports/"),
    );
    body.push_str(&run_links(dir)?);
    write_index(dir, "Sweep", &body, "charts", &mut files)?;
    Ok(files)
}

/// A table of the sweep's runs, each linked to its folder (its `index.html` once reported), and
/// to the training folder of an agent policy's checkpoint.
fn run_links(dir: &Path) -> Result<String, ReportError> {
    let runs = data::all_runs(dir)?;
    let mut html = String::from(
        "<h2>Runs</h2>\n<table>\n<tr><th>run</th><th>scenario</th><th>policy</th><th>seed</th><th>training</th></tr>\n",
    );
    for r in runs {
        let target = if dir.join("runs").join(&r.dir).join("index.html").is_file() {
            format!("runs/{}/index.html", r.dir)
        } else {
            format!("runs/{}/", r.dir)
        };
        let training = r
            .checkpoint
            .as_deref()
            .and_then(|c| Path::new(c).parent())
            .map(|t| {
                format!("<a href=\"{}\">{}</a>", escape(&t.display().to_string()), escape(&t.display().to_string()))
            })
            .unwrap_or_default();
        let _ = writeln!(
            html,
            "<tr><td style=\"text-align:left\"><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{training}</td></tr>",
            escape(&target),
            escape(&r.dir),
            escape(&r.scenario),
            escape(&r.policy),
            r.seed
        );
    }
    html.push_str("</table>\n");
    Ok(html)
}

/// Writes `dir/index.html`: a page titled `kind` and the folder's name, `body`, then every PNG of
/// `charts` (which lie in `dir/chart_folder`); adds the page to `charts`.
fn write_index(
    dir: &Path,
    kind: &str,
    body: &str,
    chart_folder: &str,
    charts: &mut Vec<PathBuf>,
) -> Result<(), ReportError> {
    let images: Vec<String> = charts
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
        .filter_map(|f| f.file_name())
        .map(|name| format!("{chart_folder}/{}", name.to_string_lossy()))
        .collect();
    let title = format!("{kind} {}", dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let index = dir.join("index.html");
    fs::write(&index, page(&title, body, &images)).map_err(|e| io_err(&index, e))?;
    charts.push(index);
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Markdown pipe table as an HTML table.
fn markdown_table(md: &str) -> String {
    let mut html = String::from("<table>\n");
    for (i, line) in md.lines().filter(|l| l.starts_with('|')).enumerate() {
        if i == 1 {
            continue; // the |---| separator
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        let tag = if i == 0 { "th" } else { "td" };
        html.push_str("<tr>");
        for c in cells {
            let _ = write!(html, "<{tag}>{}</{tag}>", escape(c));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    html
}

fn page(title: &str, body: &str, images: &[String]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}img{{max-width:100%;margin:1em 0;display:block}}</style></head>\n<body><h1>{t}</h1>\n{body}\n",
        t = escape(title)
    );
    for img in images {
        let _ = writeln!(html, "<img src=\"{img}\" alt=\"{img}\">");
    }
    html.push_str("</body></html>\n");
    html
}
