//! Reading run and sweep outputs back for charts.

use std::fs;
use std::path::{Path, PathBuf};

use super::charts::{Bar, Series};
use super::{io_err, ReportError};

pub fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn reader(path: &Path) -> Result<(csv::Reader<fs::File>, csv::StringRecord), ReportError> {
    let mut r = csv::Reader::from_path(path).map_err(|e| io_err(path, e))?;
    let h = r.headers().map_err(|e| io_err(path, e))?.clone();
    Ok((r, h))
}

fn col(path: &Path, h: &csv::StringRecord, name: &str) -> Result<usize, ReportError> {
    h.iter().position(|c| c == name).ok_or_else(|| ReportError::Data {
        path: path.display().to_string(),
        row: 1,
        message: format!("no `{name}` column"),
    })
}

fn num(path: &Path, row: usize, rec: &csv::StringRecord, i: usize) -> Result<f64, ReportError> {
    rec.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| ReportError::Data {
        path: path.display().to_string(),
        row,
        message: format!("column {} is not a number: `{}`", i + 1, rec.get(i).unwrap_or("")),
    })
}

pub struct Timeline {
    /// `(service, [(time_s, active replicas)])`, services in file order.
    pub services: Vec<(String, Vec<(f64, f64)>)>,
}

impl Timeline {
    pub fn read(path: &Path) -> Result<Timeline, ReportError> {
        let (mut r, h) = reader(path)?;
        let (t, s, a) = (col(path, &h, "time_s")?, col(path, &h, "service")?, col(path, &h, "replicas_active")?);
        let mut services: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| io_err(path, e))?;
            let name = rec.get(s).unwrap_or("").to_string();
            let pt = (num(path, i + 2, &rec, t)?, num(path, i + 2, &rec, a)?);
            match services.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(pt),
                None => services.push((name, vec![pt])),
            }
        }
        Ok(Timeline { services })
    }

    /// Active replicas summed over services, per time.
    pub fn total_active(&self) -> Vec<(f64, f64)> {
        let Some((_, first)) = self.services.first() else { return Vec::new() };
        let mut total: Vec<(f64, f64)> = first.iter().map(|&(t, _)| (t, 0.0)).collect();
        for (_, pts) in &self.services {
            for (i, &(_, v)) in pts.iter().enumerate() {
                if let Some(x) = total.get_mut(i) {
                    x.1 += v;
                }
            }
        }
        total
    }
}

pub struct Requests {
    pub rps: Vec<(f64, f64)>,
    pub completed: Vec<(f64, f64)>,
    /// `(time_s, finished, violating)` per interval.
    rows: Vec<(f64, f64, f64)>,
}

impl Requests {
    pub fn read(path: &Path) -> Result<Requests, ReportError> {
        let (mut r, h) = reader(path)?;
        let (t, a, c, d, v) = (
            col(path, &h, "time_s")?,
            col(path, &h, "arrived")?,
            col(path, &h, "completed")?,
            col(path, &h, "dropped")?,
            col(path, &h, "violating")?,
        );
        let mut raw = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| io_err(path, e))?;
            let row = i + 2;
            raw.push([
                num(path, row, &rec, t)?,
                num(path, row, &rec, a)?,
                num(path, row, &rec, c)?,
                num(path, row, &rec, d)?,
                num(path, row, &rec, v)?,
            ]);
        }
        let step = if raw.len() >= 2 { raw[1][0] - raw[0][0] } else { 1.0 };
        Ok(Requests {
            rps: raw.iter().map(|x| (x[0], x[1] / step)).collect(),
            completed: raw.iter().map(|x| (x[0], x[2] / step)).collect(),
            rows: raw.iter().map(|x| (x[0], x[2] + x[3], x[4])).collect(),
        })
    }

    /// Share (%) of finished requests over the SLO or dropped, in bins of `width` seconds.
    pub fn violation_bins(&self, width: f64) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64, f64)> = Vec::new();
        for &(t, fin, vio) in &self.rows {
            let b = (t / width).floor() * width;
            match out.last_mut() {
                Some(last) if last.0 == b => {
                    last.1 += fin;
                    last.2 += vio;
                }
                _ => out.push((b, fin, vio)),
            }
        }
        out.into_iter().map(|(t, f, v)| (t, if f > 0.0 { 100.0 * v / f } else { 0.0 })).collect()
    }
}

/// The first two columns of a CSV file as numbers.
pub fn read_pairs(path: &Path) -> Result<Vec<(f64, f64)>, ReportError> {
    let (mut r, _) = reader(path)?;
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| io_err(path, e))?;
        out.push((num(path, i + 2, &rec, 0)?, num(path, i + 2, &rec, 1)?));
    }
    Ok(out)
}

/// The label of a (policy, parameter point) in every chart of a sweep, bars and lines alike:
/// `hpa cpu_target=40` (each axis by its last name part).
pub fn series_label(policy: &str, params: &[(&str, &str)]) -> String {
    std::iter::once(policy.to_string())
        .chain(params.iter().map(|(a, v)| format!("{}={v}", a.rsplit('.').next().unwrap_or(a))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The columns of a `training_log.csv` a training report draws: (column, chart title, y label).
pub const TRAINING_COLUMNS: [(&str, &str, &str); 9] = [
    ("mean_episode_reward", "Mean episode reward (last 10 episodes)", "reward"),
    ("policy_loss", "Policy loss", "loss"),
    ("value_loss", "Value loss", "loss"),
    ("entropy", "Policy entropy", "entropy (nats)"),
    ("approx_kl", "Approximate KL divergence per update", "KL"),
    ("clip_fraction", "Fraction of samples clipped", "fraction"),
    ("epochs", "PPO epochs run per update (fewer where target_kl stopped them)", "epochs"),
    ("explained_variance", "Explained variance of the returns by the critic", "1 - Var(R - V) / Var(R)"),
    ("grad_norm", "Gradient norm of the policy network, before clipping", "L2 norm"),
];

/// Each of `columns` of a `training_log.csv` against its `step` column, one series per stage
/// (`stage` column, since format 4: a fine-tune's rows are drawn apart from the training's, each named
/// after its stage; one series named `column` when the log has one stage or no such column).
/// Empty cells (no episode finished yet) are skipped; a column the log lacks gives no series.
pub fn training_series(path: &Path, columns: &[&str]) -> Result<Vec<Vec<Series>>, ReportError> {
    let (mut r, h) = reader(path)?;
    let s = col(path, &h, "step")?;
    let stage_col = col(path, &h, "stage").ok();
    let idx: Vec<Option<usize>> = columns.iter().map(|c| col(path, &h, c).ok()).collect();
    let mut stages: Vec<String> = Vec::new();
    // [column]: (stage, point), in the log's order.
    let mut points: Vec<Vec<(usize, (f64, f64))>> = vec![Vec::new(); columns.len()];
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| io_err(path, e))?;
        let x = num(path, i + 2, &rec, s)?;
        let stage = stage_col.and_then(|c| rec.get(c)).unwrap_or("");
        let at = stages.iter().position(|st| st == stage).unwrap_or_else(|| {
            stages.push(stage.to_string());
            stages.len() - 1
        });
        for (k, c) in idx.iter().enumerate() {
            if let Some(c) = c {
                if let Ok(y) = num(path, i + 2, &rec, *c) {
                    points[k].push((at, (x, y)));
                }
            }
        }
    }
    Ok(columns
        .iter()
        .zip(idx)
        .zip(points)
        .map(|((name, c), pts)| {
            if c.is_none() {
                return Vec::new();
            }
            // The chart's title names the column; the legend (which cuts long labels) the stage.
            let by_stage: Vec<Series> = (0..stages.len())
                .filter_map(|st| {
                    let mine: Vec<(f64, f64)> = pts.iter().filter(|(at, _)| *at == st).map(|p| p.1).collect();
                    (!mine.is_empty()).then(|| Series { name: stages[st].clone(), points: mine })
                })
                .collect();
            if stages.len() > 1 && !by_stage.is_empty() {
                by_stage
            } else {
                // One stage (or no number at all): one line named after the column.
                vec![Series { name: name.to_string(), points: pts.into_iter().map(|p| p.1).collect() }]
            }
        })
        .collect())
}

/// Mean episode reward against steps, from a `training_log.csv`.
pub fn training_curve(path: &Path) -> Result<Series, ReportError> {
    let (mut r, h) = reader(path)?;
    let s = col(path, &h, "step")?;
    let y = col(path, &h, "mean_episode_reward").or_else(|_| col(path, &h, "episode_reward"))?;
    let mut points = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| io_err(path, e))?;
        if let (Ok(a), Ok(b)) = (num(path, i + 2, &rec, s), num(path, i + 2, &rec, y)) {
            points.push((a, b));
        }
    }
    Ok(Series { name: "mean episode reward".into(), points })
}

struct StatRow {
    scenario: String,
    label: String,
    metric: String,
    mean: f64,
    low: Option<f64>,
    high: Option<f64>,
}

/// `statistics.csv` rows.
pub struct Stats {
    rows: Vec<StatRow>,
    metrics: Vec<String>,
}

impl Stats {
    pub fn read(path: &Path) -> Result<Stats, ReportError> {
        let (mut r, h) = reader(path)?;
        let idx = |n: &str| col(path, &h, n);
        let (sc, po, pa, me, mean, lo, hi) = (
            idx("scenario")?,
            idx("policy")?,
            idx("params")?,
            idx("metric")?,
            idx("mean")?,
            idx("ci95_low")?,
            idx("ci95_high")?,
        );
        let mut rows = Vec::new();
        let mut metrics = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| io_err(path, e))?;
            let params: Vec<(&str, &str)> =
                rec.get(pa).unwrap_or("").split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
            let label = series_label(rec.get(po).unwrap_or(""), &params);
            let m = rec.get(me).unwrap_or("").to_string();
            let opt = |j: usize| rec.get(j).and_then(|v| v.parse::<f64>().ok());
            rows.push(StatRow {
                scenario: rec.get(sc).unwrap_or("").to_string(),
                label,
                metric: m.clone(),
                mean: num(path, i + 2, &rec, mean)?,
                low: opt(lo),
                high: opt(hi),
            });
            if !metrics.contains(&m) {
                metrics.push(m);
            }
        }
        Ok(Stats { rows, metrics })
    }

    pub fn bars(&self, metric: &str) -> Vec<Bar> {
        if !self.metrics.iter().any(|m| m == metric) {
            return Vec::new();
        }
        self.rows
            .iter()
            .filter(|r| r.metric == metric)
            .map(|r| Bar { group: r.scenario.clone(), label: r.label.clone(), mean: r.mean, low: r.low, high: r.high })
            .collect()
    }
}

/// One run per (scenario, policy, params): the first complete one in grid order (the first
/// seed's) that kept its timeline.
pub struct RunRef {
    pub scenario: String,
    pub label: String,
    pub seed: u64,
    pub dir: PathBuf,
}

pub fn first_seed_runs(sweep: &Path) -> Result<Vec<RunRef>, ReportError> {
    let grid = read_grid(sweep)?;
    let mut out: Vec<RunRef> = Vec::new();
    for s in grid {
        let values: Vec<String> = s.params.iter().map(|(_, v)| v.to_string()).collect();
        let params: Vec<(&str, &str)> =
            s.params.iter().zip(&values).map(|((a, _), v)| (a.as_str(), v.as_str())).collect();
        let label = series_label(&s.policy, &params);
        let dir = sweep.join("runs").join(&s.dir);
        // A run without its timeline (a sweep's `timelines: first_seed` or `none`) has nothing
        // to chart over time.
        let charted = dir.join("summary.json").is_file() && dir.join("timeline.csv").is_file();
        if !charted || out.iter().any(|r| r.scenario == s.scenario && r.label == label) {
            continue;
        }
        out.push(RunRef { scenario: s.scenario, label, seed: s.seed, dir });
    }
    Ok(out)
}

/// One run of a sweep's grid, as `sweep_manifest.json` records it.
#[derive(serde::Deserialize)]
struct GridRun {
    dir: String,
    scenario: String,
    policy: String,
    #[serde(default)]
    params: Vec<(String, f64)>,
    seed: u64,
}

/// The grid of the sweep in `sweep`, in grid order.
fn read_grid(sweep: &Path) -> Result<Vec<GridRun>, ReportError> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        grid: Vec<GridRun>,
    }
    let p = sweep.join("sweep_manifest.json");
    let m: Manifest =
        serde_json::from_str(&fs::read_to_string(&p).map_err(|e| io_err(&p, e))?).map_err(|e| io_err(&p, e))?;
    Ok(m.grid)
}

/// One run of a sweep, for the sweep's index.
pub struct RunEntry {
    pub dir: String,
    pub scenario: String,
    pub policy: String,
    pub seed: u64,
    /// The checkpoint of an `agent:` policy, as the sweep file names it.
    pub checkpoint: Option<String>,
}

/// Every run of the sweep in `sweep` (grid order), with the checkpoint of agent policies read
/// from the sweep file's copy.
pub fn all_runs(sweep: &Path) -> Result<Vec<RunEntry>, ReportError> {
    let grid = read_grid(sweep)?;
    let yaml: serde_yaml_ng::Value = fs::read_to_string(sweep.join("sweep.yaml"))
        .ok()
        .and_then(|t| serde_yaml_ng::from_str(&t).ok())
        .unwrap_or_default();
    let checkpoint_of = |label: &str| -> Option<String> {
        yaml["policies"].as_sequence()?.iter().find_map(|p| {
            let name = p["policy"].as_str()?;
            let l = p["label"].as_str().unwrap_or(name);
            (l == label).then(|| name.strip_prefix("agent:").map(str::to_string)).flatten()
        })
    };
    Ok(grid
        .into_iter()
        .map(|s| RunEntry {
            checkpoint: checkpoint_of(&s.policy),
            dir: s.dir,
            scenario: s.scenario,
            policy: s.policy,
            seed: s.seed,
        })
        .collect())
}
