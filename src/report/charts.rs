//! Chart drawing. Each chart is drawn by one generic function, for PNG and SVG alike.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::ErrorBarOrientV;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;

const SIZE: (u32, u32) = (1100, 620);

/// Font sizes, one set for every chart (the family is the bundled font registered as "sans-serif").
const TITLE_FONT: (&str, u32) = ("sans-serif", 24);
const AXIS_DESC_FONT: (&str, u32) = ("sans-serif", 17);
const LABEL_FONT: (&str, u32) = ("sans-serif", 15);
const LEGEND_FONT: (&str, u32) = ("sans-serif", 14);

/// A named line of `(x, y)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One bar of a comparison chart: a mean with an optional 95% CI.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub group: String,
    pub label: String,
    pub mean: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 12] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(0, 0, 128),
        RGBColor(128, 0, 0),
    ];
    C[i % C.len()]
}

type DrawResult = Result<(), String>;

/// Axis numbers without noise: whole numbers plain, others with up to 2 decimals.
fn fmt_num(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 || v.abs() >= 100.0 {
        format!("{:.0}", v)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

const LEGEND_WIDTH: u32 = 230;

/// Splits `root` into the plot (left) and a legend panel (right), so a legend never covers data.
fn split<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let (w, _) = root.dim_in_pixel();
    root.split_horizontally(w.saturating_sub(LEGEND_WIDTH))
}

/// Draws legend entries (`name`, colour, filled box or line) down the panel.
fn legend<DB: DrawingBackend>(panel: &DrawingArea<DB, Shift>, entries: &[(String, RGBColor, bool)]) -> DrawResult {
    let style = TextStyle::from(LEGEND_FONT.into_font()).color(&BLACK);
    for (i, (name, c, filled)) in entries.iter().enumerate() {
        let y = 60 + i as i32 * 22;
        if *filled {
            panel.draw(&Rectangle::new([(8, y - 6), (26, y + 6)], c.filled())).map_err(|e| e.to_string())?;
        } else {
            panel.draw(&PathElement::new(vec![(6, y), (28, y)], c.stroke_width(3))).map_err(|e| e.to_string())?;
        }
        let label: String = if name.chars().count() > 24 {
            name.chars().take(23).chain(std::iter::once('…')).collect()
        } else {
            name.clone()
        };
        panel.draw(&Text::new(label, (36, y - 8), style.clone())).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The longest prefix ending in `_` that every name shares (e.g. `online_boutique_`).
fn common_prefix(names: &[&str]) -> usize {
    let Some(first) = names.first() else { return 0 };
    let mut n = first.len();
    for s in names {
        n = n.min(first.bytes().zip(s.bytes()).take_while(|(a, b)| a == b).count());
    }
    first[..n].rfind('_').map_or(0, |i| i + 1)
}

fn err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Draw { path: path.display().to_string(), message: e.to_string() }
}

macro_rules! on_backend {
    ($path:expr, $f:ident ( $($arg:expr),* )) => {{
        let path: &Path = $path;
        let result = if path.extension().is_some_and(|e| e == "svg") {
            let root = SVGBackend::new(path, SIZE).into_drawing_area();
            $f(&root, $($arg),*).and_then(|_| root.present().map_err(|e| e.to_string()))
        } else {
            let root = BitMapBackend::new(path, SIZE).into_drawing_area();
            $f(&root, $($arg),*).and_then(|_| root.present().map_err(|e| e.to_string()))
        };
        result.map_err(|e| err(path, e))
    }};
}

/// The x range and the y range of `series` (finite points only), as drawn: see [`y_range`].
fn bounds(series: &[&Series]) -> (f64, f64, f64, f64) {
    let mut b = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        for &(x, y) in &s.points {
            if x.is_finite() && y.is_finite() {
                b = (b.0.min(x), b.1.max(x), b.2.min(y), b.3.max(y));
            }
        }
    }
    if !b.0.is_finite() {
        return (0.0, 1.0, 0.0, 1.0);
    }
    if b.1 <= b.0 {
        b.1 = b.0 + 1.0;
    }
    let (y0, y1) = y_range(b.2, b.3);
    (b.0, b.1, y0, y1)
}

/// The y axis for data from `lo` to `hi`: from 0 when every value is >= 0 (counts, rates,
/// percentages read best from zero), else from just below the lowest value (training rewards are
/// negative: an axis from 0 would show them as a flat line at the bottom); 8% headroom on the
/// open ends.
pub(super) fn y_range(lo: f64, hi: f64) -> (f64, f64) {
    if lo >= 0.0 {
        return (0.0, if hi > 0.0 { hi * 1.08 } else { 1.0 });
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1e-9) };
    let pad = span * 0.08;
    (lo - pad, if hi >= 0.0 { hi + pad } else { (hi + pad).min(0.0) })
}

/// Draws `pts` as a polyline of separate two-point segments. Plotters joins a wide polyline's
/// segments with miter joins, which on spiky data (a per-second RPS series) shoot far past the
/// plot area in bitmaps; separate segments have no joins.
fn draw_polyline<DB: DrawingBackend, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    pts: &[(f64, f64)],
    style: ShapeStyle,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart.draw_series(pts.windows(2).map(|w| PathElement::new(vec![w[0], w[1]], style))).map_err(|e| e.to_string())?;
    Ok(())
}

/// Step lines (a value holds until the next point), with an optional second series on a right axis.
pub fn step_lines(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[Series],
    right: Option<&Series>,
) -> Result<(), ReportError> {
    on_backend!(path, draw_steps(title, y_label, series, right))
}

fn step_points(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(pts.len() * 2);
    for (i, &(x, y)) in pts.iter().enumerate() {
        if i > 0 {
            out.push((x, pts[i - 1].1));
        }
        out.push((x, y));
    }
    out
}

/// The chart's mesh and axis labels, in the house style, over a linear or a log x axis.
fn mesh<DB: DrawingBackend, X>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, RangedCoordf64>>,
    x_desc: &str,
    y_label: &str,
) -> DrawResult
where
    X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_label)
        .x_label_formatter(&fmt_num)
        .y_label_formatter(&fmt_num)
        .label_style(LABEL_FONT)
        .axis_desc_style(AXIS_DESC_FONT)
        .draw()
        .map_err(|e| e.to_string())
}

fn draw_steps<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    series: &[Series],
    right: Option<&Series>,
) -> DrawResult {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (plot, panel) = split(root);
    let root = &plot;
    let refs: Vec<&Series> = series.iter().collect();
    let (x0, x1, y0, y1) = bounds(&refs);
    let (_, _, r0, r1) = right.map(|r| bounds(&[r])).unwrap_or((0.0, 1.0, 0.0, 1.0));
    let y1 = y1.max(y0 + 1.0);
    let mut chart = ChartBuilder::on(root)
        .caption(title, TITLE_FONT)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .right_y_label_area_size(if right.is_some() { 72 } else { 0 })
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?
        .set_secondary_coord(x0..x1, r0..r1.max(r0 + 1.0));
    mesh(&mut chart, "time (s)", y_label)?;
    let mut entries = Vec::new();
    if let Some(r) = right {
        chart
            .configure_secondary_axes()
            .y_desc(r.name.as_str())
            .y_label_formatter(&fmt_num)
            .label_style(LABEL_FONT)
            .axis_desc_style(AXIS_DESC_FONT)
            .draw()
            .map_err(|e| e.to_string())?;
        let grey = RGBColor(170, 170, 170);
        chart
            .draw_secondary_series(LineSeries::new(r.points.iter().copied(), grey.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        entries.push((r.name.clone(), grey, false));
    }
    // Services often hold the same count: each line is lifted by a fraction of a pixel-row per
    // series (0.4% of the axis), so lines at equal values lie side by side instead of hiding each
    // other. The shift is far below one replica and the axis labels are unchanged.
    let lift = (y1 - y0) * 0.004;
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = step_points(&s.points).into_iter().map(|(x, y)| (x, y + lift * i as f64)).collect();
        draw_polyline(&mut chart, &pts, c.stroke_width(2))?;
        entries.push((s.name.clone(), c, false));
    }
    legend(&panel, &entries)
}

/// Pairs of series over time, one colour per pair: the first solid, the second dashed (a
/// simulator run and a real one). `steps`: values hold until the next point.
pub fn paired(
    path: &Path,
    title: &str,
    y_label: &str,
    pairs: &[(Series, Series)],
    steps: bool,
) -> Result<(), ReportError> {
    on_backend!(path, draw_paired(title, y_label, pairs, steps))
}

fn draw_paired<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    pairs: &[(Series, Series)],
    steps: bool,
) -> DrawResult {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (plot, panel) = split(root);
    let refs: Vec<&Series> = pairs.iter().flat_map(|(a, b)| [a, b]).collect();
    let (x0, x1, y0, y1) = bounds(&refs);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, TITLE_FONT)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1.max(y0 + 1.0))
        .map_err(|e| e.to_string())?;
    mesh(&mut chart, "time (s)", y_label)?;
    let shape = |pts: &[(f64, f64)]| if steps { step_points(pts) } else { pts.to_vec() };
    let mut entries = Vec::new();
    for (i, (solid, dashed)) in pairs.iter().enumerate() {
        let c = color(i);
        draw_polyline(&mut chart, &shape(&solid.points), c.stroke_width(3))?;
        chart
            .draw_series(DashedLineSeries::new(shape(&dashed.points), 8, 6, c.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        entries.push((format!("{} (solid)", solid.name), c, false));
        entries.push((format!("{} (dashed)", dashed.name), c, false));
    }
    legend(&panel, &entries)
}

/// Plain lines over time; `log_x` draws the x axis on a log scale (latency CDFs), labelled in ms.
pub fn lines(path: &Path, title: &str, y_label: &str, series: &[Series], log_x: bool) -> Result<(), ReportError> {
    on_backend!(path, draw_lines(title, "time (s)", y_label, series, log_x))
}

/// Plain lines against `x_desc` (training curves: against environment steps).
pub fn lines_against(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), ReportError> {
    on_backend!(path, draw_lines(title, x_desc, y_label, series, false))
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> DrawResult {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (plot, panel) = split(root);
    let root = &plot;
    let refs: Vec<&Series> = series.iter().collect();
    let (x0, x1, y0, y1) = bounds(&refs);
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, TITLE_FONT).margin(16).x_label_area_size(48).y_label_area_size(64);
    macro_rules! finish {
        ($chart:expr, $xdesc:expr) => {{
            let mut chart = $chart;
            mesh(&mut chart, $xdesc, y_label)?;
            let mut entries = Vec::new();
            for (i, s) in series.iter().enumerate() {
                let c = color(i);
                let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| !log_x || p.0 > 0.0).collect();
                draw_polyline(&mut chart, &pts, c.stroke_width(2))?;
                entries.push((s.name.clone(), c, false));
            }
            legend(&panel, &entries)
        }};
    }
    if log_x {
        let lo =
            series.iter().flat_map(|s| s.points.iter()).map(|p| p.0).filter(|x| *x > 0.0).fold(f64::INFINITY, f64::min);
        let lo = if lo.is_finite() { lo } else { 0.1 };
        let chart =
            builder.build_cartesian_2d((lo..x1.max(lo * 10.0)).log_scale(), 0.0..1.0).map_err(|e| e.to_string())?;
        finish!(chart, "latency (ms, log scale)")
    } else {
        let chart = builder.build_cartesian_2d(x0..x1, y0..y1.max(y0 + 1e-9)).map_err(|e| e.to_string())?;
        finish!(chart, x_desc)
    }
}

/// Bars grouped by `group`, with 95% CI error bars.
pub fn bars(path: &Path, title: &str, y_label: &str, bars: &[Bar]) -> Result<(), ReportError> {
    on_backend!(path, draw_bars(title, y_label, bars))
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    bars: &[Bar],
) -> DrawResult {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (plot, panel) = split(root);
    let mut groups: Vec<&str> = Vec::new();
    let mut labels: Vec<&str> = Vec::new();
    for b in bars {
        if !groups.contains(&b.group.as_str()) {
            groups.push(&b.group);
        }
        if !labels.contains(&b.label.as_str()) {
            labels.push(&b.label);
        }
    }
    let cut = common_prefix(&groups);
    let slot = labels.len() as f64 + 1.0; // one empty slot between groups
    let width = groups.len() as f64 * slot;
    let top = bars.iter().map(|b| b.high.unwrap_or(b.mean).max(b.mean)).fold(0.0, f64::max).max(1e-9) * 1.12;
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, TITLE_FONT)
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..width, 0.0..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&fmt_num)
        .x_desc(if cut > 0 { format!("scenario ({}...)", &groups[0][..cut]) } else { "scenario".to_string() })
        .y_desc(y_label)
        .label_style(LABEL_FONT)
        .axis_desc_style(AXIS_DESC_FONT)
        .draw()
        .map_err(|e| e.to_string())?;
    // Group names under the axis, centred on their bars.
    let style = TextStyle::from(LABEL_FONT.into_font()).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
    for (g, name) in groups.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(g as f64 * slot + slot / 2.0, 0.0));
        plot.draw(&Text::new(name[cut..].to_string(), (px, py + 6), style.clone())).map_err(|e| e.to_string())?;
    }
    let mut entries = Vec::new();
    for (li, label) in labels.iter().enumerate() {
        let c = color(li);
        let mine: Vec<&Bar> = bars.iter().filter(|b| b.label == *label).collect();
        let x_of = |b: &Bar| groups.iter().position(|g| *g == b.group).unwrap_or(0) as f64 * slot + 0.5 + li as f64;
        chart
            .draw_series(mine.iter().map(|b| Rectangle::new([(x_of(b), 0.0), (x_of(b) + 0.9, b.mean)], c.filled())))
            .map_err(|e| e.to_string())?;
        let errs: Vec<ErrorBar<f64, f64, ErrorBarOrientV<f64, f64>>> = mine
            .iter()
            .filter_map(|b| {
                Some(ErrorBar::new_vertical(x_of(b) + 0.45, b.low?.max(0.0), b.mean, b.high?, BLACK.stroke_width(1), 8))
            })
            .collect();
        chart.draw_series(errs).map_err(|e| e.to_string())?;
        entries.push((label.to_string(), c, true));
    }
    legend(&panel, &entries)
}

/// One policy's point on a Pareto chart: mean cost and SLO violation with their 95% CIs.
#[derive(Clone, Debug, PartialEq)]
pub struct ParetoPoint {
    pub label: String,
    pub cost: f64,
    pub cost_ci: f64,
    pub slo: f64,
    pub slo_ci: f64,
}

/// One scenario's panel: its points and the front (cost ascending) drawn as a line.
#[derive(Clone, Debug, PartialEq)]
pub struct ParetoPanel {
    pub scenario: String,
    pub points: Vec<ParetoPoint>,
    pub front: Vec<(f64, f64)>,
}

/// Cost (x) against SLO violation (y), one panel per scenario side by side, 95% CIs as error
/// bars both ways, the front as a line; one colour per policy label across panels.
pub fn pareto(path: &Path, title: &str, panels: &[ParetoPanel]) -> Result<(), ReportError> {
    on_backend!(path, draw_pareto(title, panels))
}

fn draw_pareto<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, panels: &[ParetoPanel]) -> DrawResult {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (plot, legend_panel) = split(root);
    let plot = plot.titled(title, TITLE_FONT).map_err(|e| e.to_string())?;
    let mut labels: Vec<&str> = Vec::new();
    for p in panels.iter().flat_map(|p| &p.points) {
        if !labels.contains(&p.label.as_str()) {
            labels.push(&p.label);
        }
    }
    let areas = plot.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(&areas) {
        let xs = panel.points.iter().flat_map(|p| [p.cost - p.cost_ci, p.cost + p.cost_ci]);
        let ys = panel.points.iter().flat_map(|p| [p.slo - p.slo_ci, p.slo + p.slo_ci]);
        let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        let y1 = ys.fold(0.0f64, f64::max).max(1e-6) * 1.1;
        let pad = ((x1 - x0) * 0.08).max(1e-6);
        let (x0, x1) = if x0.is_finite() { (x0 - pad, x1 + pad) } else { (0.0, 1.0) };
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.scenario, AXIS_DESC_FONT)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_label_formatter(&fmt_num)
            .y_label_formatter(&fmt_num)
            .x_desc("cost ($)")
            .y_desc("SLO violation (%)")
            .label_style(LABEL_FONT)
            .axis_desc_style(AXIS_DESC_FONT)
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(panel.front.iter().copied(), BLACK.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        for p in &panel.points {
            let c = color(labels.iter().position(|l| *l == p.label).unwrap_or(0));
            let style = c.stroke_width(2);
            chart
                .draw_series([ErrorBar::new_vertical(
                    p.cost,
                    (p.slo - p.slo_ci).max(0.0),
                    p.slo,
                    p.slo + p.slo_ci,
                    style,
                    8,
                )])
                .map_err(|e| e.to_string())?;
            chart
                .draw_series([ErrorBar::new_horizontal(
                    p.slo,
                    p.cost - p.cost_ci,
                    p.cost,
                    p.cost + p.cost_ci,
                    style,
                    8,
                )])
                .map_err(|e| e.to_string())?;
            chart.draw_series([Circle::new((p.cost, p.slo), 5, c.filled())]).map_err(|e| e.to_string())?;
        }
    }
    let mut entries: Vec<(String, RGBColor, bool)> =
        labels.iter().enumerate().map(|(i, l)| (l.to_string(), color(i), true)).collect();
    entries.push(("HPA front".into(), BLACK, false));
    legend(&legend_panel, &entries)
}
