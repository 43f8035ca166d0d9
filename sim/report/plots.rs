//! Plots (plotters), each written as SVG and PNG. PNG text uses the DejaVu Sans font embedded
//! in the binary, so it renders on machines without any fonts installed.
//!
//! Plots are drawn from the files a run, sweep or search wrote (`requests.csv`,
//! `timeline.csv`, `summary.json`, `sweep.csv`, `search.csv`), so `servesim plot DIR`
//! re-plots without simulating again. Empty data gives a plot that says so, never a panic.

use super::folder::{Manifest, OutputKind, MANIFEST};
use crate::error::{csv_error, read_text, Error, Location, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Once;

type PlotResult = std::result::Result<(), Box<dyn StdError>>;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let font: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, font);
    });
}

/// Draws `draw` into `<stem>.svg` and `<stem>.png`.
macro_rules! both {
    ($stem:expr, $size:expr, $draw:ident, $($arg:expr),*) => {{
        register_font();
        let svg = $stem.with_extension("svg");
        let png = $stem.with_extension("png");
        {
            let root = SVGBackend::new(&svg, $size).into_drawing_area();
            $draw(&root, $($arg),*).map_err(|e| plot_error(&svg, e))?;
            root.present().map_err(|e| plot_error(&svg, Box::new(e)))?;
        }
        {
            let root = BitMapBackend::new(&png, $size).into_drawing_area();
            $draw(&root, $($arg),*).map_err(|e| plot_error(&png, e))?;
            root.present().map_err(|e| plot_error(&png, Box::new(e)))?;
        }
        vec![svg, png]
    }};
}

fn plot_error(path: &Path, error: Box<dyn StdError>) -> Error {
    Error::in_file(path.display().to_string(), format!("cannot draw the plot: {error}"))
}

/// A CSV file as rows of column → value.
fn read_table(path: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(&file, &e))?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&file, &e))?;
        rows.push(headers.iter().zip(record.iter()).map(|(h, v)| (h.to_string(), v.to_string())).collect());
    }
    Ok(rows)
}

fn number(row: &BTreeMap<String, String>, column: &str) -> Option<f64> {
    row.get(column).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite())
}

fn empty_note<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str, note: &str) -> PlotResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(title.to_string(), (20, 20), ("sans-serif", 20).into_font()))?;
    area.draw(&Text::new(note.to_string(), (w as i32 / 4, h as i32 / 2), ("sans-serif", 18).into_font()))?;
    Ok(())
}

/// One row of timeline.csv.
#[derive(Debug, Clone, Copy, Default)]
struct Batch {
    replica: u64,
    start_s: f64,
    stage_s: f64,
    done_s: f64,
    prefill_tokens: f64,
    decode_tokens: f64,
    kv_used_blocks: f64,
    kv_capacity_blocks: f64,
    waiting: f64,
    power_w: f64,
    idle_power_w: f64,
    devices: f64,
}

/// Reads timeline.csv into typed rows (it has a row per batch: hundreds of thousands).
fn read_timeline(path: &Path) -> Result<Vec<Batch>> {
    let file = path.display().to_string();
    let text = read_text(path)?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| csv_error(&file, &e))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::at(
                Location { file: file.clone(), line: Some(1), field: None },
                format!("column `{name}` is missing"),
            )
        })
    };
    let columns = [
        column("replica")?,
        column("start_s")?,
        column("stage_s")?,
        column("done_s")?,
        column("prefill_tokens")?,
        column("decode_tokens")?,
        column("kv_used_blocks")?,
        column("kv_capacity_blocks")?,
        column("waiting")?,
        column("power_w")?,
        column("idle_power_w")?,
        column("devices")?,
    ];
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(|e| csv_error(&file, &e))? {
        let v: Vec<f64> = columns.iter().map(|&c| record.get(c).and_then(|x| x.parse().ok()).unwrap_or(0.0)).collect();
        rows.push(Batch {
            replica: v[0] as u64,
            start_s: v[1],
            stage_s: v[2],
            done_s: v[3],
            prefill_tokens: v[4],
            decode_tokens: v[5],
            kv_used_blocks: v[6],
            kv_capacity_blocks: v[7],
            waiting: v[8],
            power_w: v[9],
            idle_power_w: v[10],
            devices: v[11],
        });
    }
    Ok(rows)
}

/// When the last batch left the pipeline, s (at least 1 ns, so bins have a width).
fn timeline_end(timeline: &[Batch]) -> f64 {
    timeline.iter().map(|r| r.done_s).fold(0.0, f64::max).max(1e-9)
}

/// Data a run's plots need.
struct RunData {
    title: String,
    ttft: Vec<f64>,
    tpot: Vec<f64>,
    e2e: Vec<f64>,
    input_vs_ttft: Vec<(f64, f64)>,
    slo: [Option<f64>; 3],
    timeline: Vec<Batch>,
}

/// The empirical CDF, thinned to at most 2,000 steps (more are not visible).
fn cdf(mut values: Vec<f64>) -> Vec<(f64, f64)> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let stride = n.div_ceil(2000).max(1);
    let mut points: Vec<(f64, f64)> =
        values.iter().enumerate().step_by(stride).map(|(i, v)| (*v, (i + 1) as f64 / n as f64)).collect();
    if let Some(last) = values.last() {
        points.push((*last, 1.0));
    }
    points
}

fn draw_cdfs<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &RunData) -> PlotResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (top, rest) = root.split_vertically(40);
    top.draw(&Text::new(format!("{}: latency CDFs", data.title), (10, 10), ("sans-serif", 22).into_font()))?;
    let panels = rest.split_evenly((1, 3));
    let series =
        [("TTFT", &data.ttft, data.slo[0]), ("TPOT", &data.tpot, data.slo[1]), ("end-to-end", &data.e2e, data.slo[2])];
    for (area, (name, values, slo)) in panels.iter().zip(series) {
        if values.is_empty() {
            empty_note(area, name, "no completed requests")?;
            continue;
        }
        let points = cdf(values.clone());
        let max = points.last().map_or(1.0, |p| p.0).max(slo.unwrap_or(0.0)).max(1e-6) * 1.05;
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{name} ({} requests)", values.len()), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..max, 0f64..1.0f64)?;
        chart.configure_mesh().x_desc("seconds").y_desc("fraction of requests").draw()?;
        chart.draw_series(LineSeries::new(points, BLUE.stroke_width(2)))?;
        if let Some(bound) = slo {
            chart
                .draw_series(LineSeries::new(vec![(bound, 0.0), (bound, 1.0)], RED.stroke_width(2)))?
                .label(format!("SLO {bound} s"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
            chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
        }
    }
    Ok(())
}

fn draw_scatter<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &RunData) -> PlotResult
where
    DB::ErrorType: 'static,
{
    if data.input_vs_ttft.is_empty() {
        return empty_note(root, "prompt length vs TTFT", "no completed requests");
    }
    root.fill(&WHITE)?;
    let max_x = data.input_vs_ttft.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let max_y = data.input_vs_ttft.iter().map(|p| p.1).fold(1e-6, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(root)
        .caption(format!("{}: prompt length vs TTFT", data.title), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y)?;
    chart.configure_mesh().x_desc("input tokens").y_desc("TTFT (s)").draw()?;
    // At most 5,000 points (every k-th request), so the SVG stays small.
    let stride = data.input_vs_ttft.len().div_ceil(5000).max(1);
    chart.draw_series(
        data.input_vs_ttft.iter().step_by(stride).map(|&(x, y)| Circle::new((x, y), 2, BLUE.mix(0.4).filled())),
    )?;
    Ok(())
}

/// Per-bin sums over the timeline: bins of `width` seconds from 0 to `end`.
fn bins(end: f64) -> (usize, f64) {
    let count = 200usize;
    (count, (end / count as f64).max(1e-9))
}

/// Stacked panels of values binned over simulated time (bin i covers [i·width, (i+1)·width)).
fn time_series_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[(&str, &[f64], &str)],
    width: f64,
    end: f64,
    color: RGBColor,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let areas = root.split_evenly((panels.len(), 1));
    for (area, (name, values, unit)) in areas.iter().zip(panels) {
        let max = values.iter().copied().fold(1e-9, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{title}: {name}"), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..end, 0f64..max)?;
        chart.configure_mesh().x_desc("simulated time (s)").y_desc(*unit).draw()?;
        let points = values.iter().enumerate().map(|(i, v)| ((i as f64 + 0.5) * width, *v));
        chart.draw_series(LineSeries::new(points, color))?;
    }
    Ok(())
}

fn draw_load<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &RunData) -> PlotResult
where
    DB::ErrorType: 'static,
{
    if data.timeline.is_empty() {
        return empty_note(root, "throughput and queue", "no batches were run");
    }
    let end = timeline_end(&data.timeline);
    let (n, width) = bins(end);
    let mut tokens = vec![0.0; n];
    let mut waiting: Vec<BTreeMap<u64, f64>> = vec![BTreeMap::new(); n];
    for r in &data.timeline {
        tokens[((r.done_s / width) as usize).min(n - 1)] += (r.decode_tokens + r.prefill_tokens) / width;
        waiting[((r.start_s / width) as usize).min(n - 1)].insert(r.replica, r.waiting);
    }
    let queue: Vec<f64> = waiting.iter().map(|m| m.values().sum()).collect();
    let panels: [(&str, &[f64], &str); 2] =
        [("tokens computed per second", &tokens, "tokens/s"), ("requests waiting", &queue, "requests")];
    time_series_panels(root, &data.title, &panels, width, end, BLUE)
}

fn draw_kv<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &RunData) -> PlotResult
where
    DB::ErrorType: 'static,
{
    if data.timeline.is_empty() {
        return empty_note(root, "KV-cache occupancy", "no batches were run");
    }
    root.fill(&WHITE)?;
    let end = timeline_end(&data.timeline);
    // Highest occupancy per replica in each of 400 time bins.
    let bins_count = 400usize;
    let width = end / bins_count as f64;
    let mut peaks: BTreeMap<u64, Vec<Option<f64>>> = BTreeMap::new();
    for r in &data.timeline {
        let bin = ((r.start_s / width) as usize).min(bins_count - 1);
        let slot = &mut peaks.entry(r.replica).or_insert_with(|| vec![None; bins_count])[bin];
        let occupancy = r.kv_used_blocks / r.kv_capacity_blocks.max(1.0);
        *slot = Some(slot.map_or(occupancy, |p: f64| p.max(occupancy)));
    }
    let by_replica: BTreeMap<u64, Vec<(f64, f64)>> = peaks
        .into_iter()
        .map(|(replica, bins)| {
            let points =
                bins.iter().enumerate().filter_map(|(i, v)| v.map(|v| ((i as f64 + 0.5) * width, v))).collect();
            (replica, points)
        })
        .collect();
    let mut chart = ChartBuilder::on(root)
        .caption(format!("{}: KV-cache occupancy per replica", data.title), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end, 0f64..1.05f64)?;
    chart.configure_mesh().x_desc("simulated time (s)").y_desc("fraction of blocks in use").draw()?;
    for (i, (replica, points)) in by_replica.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color))?
            .label(format!("replica {replica}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
    Ok(())
}

fn draw_power<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, data: &RunData) -> PlotResult
where
    DB::ErrorType: 'static,
{
    if data.timeline.is_empty() {
        return empty_note(root, "utilisation and power", "no batches were run");
    }
    let end = timeline_end(&data.timeline);
    let (n, width) = bins(end);
    // Busy device-seconds and extra (above idle) energy per bin; idle power of every device.
    let mut busy = vec![0.0; n];
    let mut extra_energy = vec![0.0; n];
    let mut idle_w: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for r in &data.timeline {
        let (start, devices, idle, power) = (r.start_s, r.devices, r.idle_power_w, r.power_w);
        idle_w.insert(r.replica, (idle, devices));
        let mut t = start;
        let stop = start + r.stage_s;
        while t < stop {
            let bin = ((t / width) as usize).min(n - 1);
            let bin_end = ((bin + 1) as f64 * width).min(stop);
            let span = (bin_end - t).max(0.0);
            busy[bin] += span * devices;
            extra_energy[bin] += span * devices * (power - idle);
            if bin_end <= t {
                break;
            }
            t = bin_end;
        }
    }
    let total_devices: f64 = idle_w.values().map(|(_, d)| d).sum::<f64>().max(1.0);
    let base_w: f64 = idle_w.values().map(|(w, d)| w * d).sum();
    let utilisation: Vec<f64> = busy.iter().map(|b| (b / (width * total_devices)).min(1.0)).collect();
    let power: Vec<f64> = extra_energy.iter().map(|e| base_w + e / width).collect();
    let panels: [(&str, &[f64], &str); 2] =
        [("device busy fraction (all devices)", &utilisation, "fraction"), ("power of all devices", &power, "W")];
    time_series_panels(root, &data.title, &panels, width, end, RED)
}

/// Draws every plot of a run folder (requests.csv, summary.json, and timeline.csv if present).
pub fn plot_run(dir: &Path) -> Result<Vec<PathBuf>> {
    let summary: serde_json::Value = serde_json::from_str(&read_text(&dir.join("summary.json"))?).map_err(|e| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        let file = dir.join("summary.json").display().to_string();
        Error::at(Location { file, line: Some(e.line()), field: None }, format!("not a servesim summary: {message}"))
    })?;
    let requests = read_table(&dir.join("requests.csv"))?;
    let timeline_path = dir.join("timeline.csv");
    let timeline = if timeline_path.is_file() { read_timeline(&timeline_path)? } else { Vec::new() };
    let completed: Vec<&BTreeMap<String, String>> =
        requests.iter().filter(|r| r.get("status").map(String::as_str) == Some("completed")).collect();
    let slo = |key: &str| summary["goodput"]["slo"][key].as_f64();
    let data = RunData {
        title: summary["scenario"].as_str().unwrap_or("run").to_string(),
        ttft: completed.iter().filter_map(|r| number(r, "ttft_s")).collect(),
        tpot: completed.iter().filter_map(|r| number(r, "tpot_s")).collect(),
        e2e: completed.iter().filter_map(|r| number(r, "e2e_s")).collect(),
        input_vs_ttft: completed
            .iter()
            .filter_map(|r| Some((number(r, "input_tokens")?, number(r, "ttft_s")?)))
            .collect(),
        slo: [slo("ttft_s"), slo("tpot_s"), slo("e2e_s")],
        timeline,
    };
    let mut files = Vec::new();
    files.extend(both!(dir.join("latency_cdf"), (1500, 480), draw_cdfs, &data));
    files.extend(both!(dir.join("ttft_vs_input"), (900, 600), draw_scatter, &data));
    files.extend(both!(dir.join("throughput_queue"), (1100, 700), draw_load, &data));
    files.extend(both!(dir.join("kv_cache"), (1100, 500), draw_kv, &data));
    files.extend(both!(dir.join("power"), (1100, 700), draw_power, &data));
    Ok(files)
}

/// One load level of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// Offered load, requests per second.
    pub offered_rps: f64,
    /// TTFT p50 and p99, s (None: no request had a first token at this load).
    pub ttft_p50_s: Option<f64>,
    /// TTFT p99, s.
    pub ttft_p99_s: Option<f64>,
    /// TPOT p50, s.
    pub tpot_p50_s: Option<f64>,
    /// TPOT p99, s.
    pub tpot_p99_s: Option<f64>,
    /// Fraction of requests within the SLO.
    pub fraction_meeting_slo: Option<f64>,
}

fn draw_knee<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, points: &[SweepPoint]) -> PlotResult
where
    DB::ErrorType: 'static,
{
    if points.is_empty() {
        return empty_note(root, "latency vs load", "no load levels");
    }
    root.fill(&WHITE)?;
    let halves = root.split_evenly((1, 2));
    let max_x = points.iter().map(|p| p.offered_rps).fold(1e-9, f64::max) * 1.05;
    type Pick = fn(&SweepPoint) -> Option<f64>;
    let panels: [(&str, [(&str, Pick); 2]); 2] = [
        ("TTFT", [("p50", |p| p.ttft_p50_s), ("p99", |p| p.ttft_p99_s)]),
        ("TPOT", [("p50", |p| p.tpot_p50_s), ("p99", |p| p.tpot_p99_s)]),
    ];
    for (area, (name, lines)) in halves.iter().zip(panels) {
        let max_y = points.iter().flat_map(|p| [lines[0].1(p), lines[1].1(p)]).flatten().fold(1e-9, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{title}: {name} vs offered load"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_x, (max_y / 1e4).max(1e-6)..max_y)?;
        chart.configure_mesh().x_desc("offered load (requests/s)").y_desc(format!("{name} (s)")).draw()?;
        for (i, (label, pick)) in lines.iter().enumerate() {
            let color = if i == 0 { BLUE } else { RED };
            chart
                .draw_series(LineSeries::new(
                    points.iter().filter_map(|p| Some((p.offered_rps, pick(p)?))),
                    color.stroke_width(2),
                ))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(
                points.iter().filter_map(|p| Some(Circle::new((p.offered_rps, pick(p)?), 3, color.filled()))),
            )?;
        }
        chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
    }
    Ok(())
}

/// Draws the knee curve of a sweep into `dir`.
pub fn plot_knee(dir: &Path, title: &str, points: &[SweepPoint]) -> Result<Vec<PathBuf>> {
    Ok(both!(dir.join("knee"), (1300, 500), draw_knee, title, points))
}

struct SearchPoint {
    plan: u64,
    label: String,
    latency: f64,
    energy: f64,
    cost: f64,
    pareto: bool,
    rank: Option<u64>,
}

fn draw_pareto<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    points: &[SearchPoint],
    use_cost: bool,
) -> PlotResult
where
    DB::ErrorType: 'static,
{
    if points.is_empty() {
        return empty_note(root, "Pareto front", "no plan met the SLO");
    }
    root.fill(&WHITE)?;
    let y = |p: &SearchPoint| if use_cost { p.cost } else { p.energy };
    let max_x = points.iter().map(|p| p.latency).fold(1e-9, f64::max) * 1.1;
    let max_y = points.iter().map(y).fold(1e-9, f64::max) * 1.1;
    let y_name = if use_cost { "cost per million output tokens (USD)" } else { "energy per output token (J)" };
    let mut chart = ChartBuilder::on(root)
        .caption(format!("{title}: latency vs {}", if use_cost { "cost" } else { "energy" }), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y)?;
    chart.configure_mesh().x_desc("TTFT p99 (s)").y_desc(y_name).draw()?;
    chart
        .draw_series(
            points.iter().filter(|p| !p.pareto).map(|p| Circle::new((p.latency, y(p)), 3, BLACK.mix(0.25).filled())),
        )?
        .label("plans meeting the SLO")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, BLACK.mix(0.25).filled()));
    let mut front: Vec<&SearchPoint> = points.iter().filter(|p| p.pareto).collect();
    front.sort_by(|a, b| a.latency.total_cmp(&b.latency));
    chart
        .draw_series(front.iter().map(|p| Circle::new((p.latency, y(p)), 5, RED.filled())))?
        .label("Pareto front")
        .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
    for p in points.iter().filter(|p| p.rank == Some(1) || (p.pareto && front.len() <= 12)) {
        let name =
            if p.label.is_empty() { format!("plan {}", p.plan) } else { format!("{} (plan {})", p.label, p.plan) };
        let label = if p.rank == Some(1) { format!("{name}, best") } else { name };
        chart.draw_series(std::iter::once(Text::new(label, (p.latency, y(p)), ("sans-serif", 13).into_font())))?;
    }
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
    Ok(())
}

/// Draws the Pareto plots of a search folder (search.csv and pareto.csv).
pub fn plot_search(dir: &Path, title: &str) -> Result<Vec<PathBuf>> {
    let rows = read_table(&dir.join("search.csv"))?;
    let pareto: Vec<u64> =
        read_table(&dir.join("pareto.csv"))?.iter().filter_map(|r| number(r, "index")).map(|v| v as u64).collect();
    // The latency axis is the objective's latency metric when that is latency, else TTFT p99.
    let points: Vec<SearchPoint> = rows
        .iter()
        .filter(|r| r.get("meets_slo").map(String::as_str) == Some("true"))
        .filter_map(|r| {
            let plan = number(r, "index")? as u64;
            Some(SearchPoint {
                plan,
                label: r.get("label").cloned().unwrap_or_default(),
                latency: number(r, "ttft_p99_s")?,
                energy: number(r, "j_per_output_token")?,
                cost: number(r, "usd_per_million_output_tokens")?,
                pareto: pareto.contains(&plan),
                rank: number(r, "rank").map(|v| v as u64),
            })
        })
        .collect();
    let mut files = Vec::new();
    files.extend(both!(dir.join("pareto_energy"), (1000, 650), draw_pareto, title, &points, false));
    files.extend(both!(dir.join("pareto_cost"), (1000, 650), draw_pareto, title, &points, true));
    Ok(files)
}

/// Re-draws the plots of an output folder of `servesim run`, `sweep` or `search`; a folder
/// lacking files the plots need is an error naming them.
pub fn plot_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let folder = dir.display().to_string();
    let manifest = Manifest::read(dir)?.ok_or_else(|| {
        Error::in_file(
            &folder,
            format!(
                "nothing to plot: the folder has no {MANIFEST}, so it is not the output folder of `servesim run`, `sweep` or `search`"
            ),
        )
    })?;
    let (needed, hint): (&[&str], &str) = match manifest.kind {
        OutputKind::Run => (
            &["summary.json", "requests.csv", "timeline.csv"],
            "timeline.csv is written only when the run draws plots or a trace: rerun it with `servesim run --plots` (or --trace)",
        ),
        OutputKind::Sweep => (&["sweep.csv"], "rerun the sweep"),
        OutputKind::Search => (&["search.csv", "pareto.csv"], "rerun the search or merge its shards"),
        OutputKind::SearchShard => (&[], ""),
    };
    if manifest.kind == OutputKind::SearchShard {
        return Err(Error::in_file(
            &folder,
            "this is one shard of a search (rows.csv only): combine the shards with `servesim merge`, then plot the merged folder",
        ));
    }
    let missing: Vec<&str> = needed.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
    if !missing.is_empty() {
        return Err(Error::in_file(
            &folder,
            format!(
                "cannot plot this {}: {} missing; {hint}",
                manifest.kind.name(),
                if missing.len() == 1 { format!("{} is", missing[0]) } else { format!("{} are", missing.join(", ")) }
            ),
        ));
    }
    match manifest.kind {
        OutputKind::Search => plot_search(dir, &manifest.name),
        OutputKind::Sweep => {
            let rows = read_table(&dir.join("sweep.csv"))?;
            let points: Vec<SweepPoint> = rows
                .iter()
                .filter_map(|r| {
                    Some(SweepPoint {
                        offered_rps: number(r, "offered_rps")?,
                        ttft_p50_s: number(r, "ttft_p50_s"),
                        ttft_p99_s: number(r, "ttft_p99_s"),
                        tpot_p50_s: number(r, "tpot_p50_s"),
                        tpot_p99_s: number(r, "tpot_p99_s"),
                        fraction_meeting_slo: number(r, "fraction_meeting_slo"),
                    })
                })
                .collect();
            plot_knee(dir, &manifest.name, &points)
        }
        _ => plot_run(dir),
    }
}
