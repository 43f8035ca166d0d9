//! `servesim sweep`: one scenario at several multiples of its arrival rate, in parallel, and
//! the latency-vs-load knee curve.

use super::progress::{Progress, ProgressMode};
use super::run::{check_servable, load_scenario, print_warnings};
use crate::cluster::simulate;
use crate::engine::SimTime;
use crate::error::{Error, Result};
use crate::metrics::Summary;
use crate::report::{plot_knee, OutputFolder, OutputKind, SweepPoint};
use crate::scenario::Overrides;
use crate::workload::MAX_ARRIVAL_S;
use rayon::prelude::*;
use std::path::PathBuf;

/// What `servesim sweep` was asked to do.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Scenario file (None: the bundled quickstart).
    pub scenario: Option<PathBuf>,
    /// Load multipliers: 2 replays the workload twice as fast.
    pub loads: Vec<f64>,
    /// Output folder (None: `reports/sweep-<scenario name>`).
    pub out: Option<PathBuf>,
    /// Print nothing but errors.
    pub quiet: bool,
}

/// One load level's figures.
#[derive(Debug, Clone)]
pub struct SweepRow {
    /// The multiplier.
    pub load: f64,
    /// Offered requests per second (None when the workload spans no time).
    pub offered_rps: Option<f64>,
    /// The run's summary.
    pub summary: Summary,
}

fn cell(value: Option<f64>) -> String {
    value.map_or_else(String::new, |v| format!("{v}"))
}

/// Runs the sweep and writes `sweep.csv` and the knee plot.
pub fn sweep(options: &SweepOptions) -> Result<Vec<SweepRow>> {
    let loads = &options.loads;
    if loads.is_empty() || loads.iter().any(|l| !l.is_finite() || *l <= 0.0) {
        return Err(Error::usage("--loads", "give positive multipliers, e.g. 0.5,1,2"));
    }
    let scenario = load_scenario(options.scenario.as_deref(), &Overrides::default())?;
    if let Some(warning) = check_servable(&scenario)? {
        eprintln!("warning: {warning}");
    }
    let span = scenario.requests.last().map_or(0.0, |r| r.arrival.as_secs_f64());
    let smallest = loads.iter().copied().fold(f64::INFINITY, f64::min);
    if span / smallest > MAX_ARRIVAL_S {
        return Err(Error::usage(
            "--loads",
            format!(
                "at load {smallest} the workload's {span:.1} s of arrivals would stretch to {:.3e} s, beyond the {MAX_ARRIVAL_S:.0e} s servesim simulates; use loads of at least {:.3e}",
                span / smallest,
                span / MAX_ARRIVAL_S
            ),
        ));
    }
    let out = options.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(format!("sweep-{}", scenario.name)));
    let folder = OutputFolder::claim(&out, OutputKind::Sweep)?;
    if !options.quiet {
        print_warnings(&scenario);
    }
    let base_rate = (span > 0.0).then(|| scenario.requests.len() as f64 / span);
    let mode = if options.quiet { ProgressMode::Hidden } else { ProgressMode::BarOnly };
    let progress = Progress::new("loads", loads.len() as u64, mode);
    let rows: Vec<SweepRow> = loads
        .par_iter()
        .map(|&load| {
            let mut scaled = scenario.clone();
            for request in &mut scaled.requests {
                request.arrival = SimTime::from_secs_f64(request.arrival.as_secs_f64() / load);
            }
            let output = simulate(&scaled);
            progress.inc(1);
            SweepRow { load, offered_rps: base_rate.map(|r| r * load), summary: Summary::compute(&scaled, &output) }
        })
        .collect();
    progress.finish();
    let mut csv = String::from(
        "load,offered_rps,ttft_p50_s,ttft_p99_s,tpot_p50_s,tpot_p99_s,e2e_p50_s,e2e_p99_s,fraction_meeting_slo,output_tokens_per_s\n",
    );
    let mut points = Vec::new();
    for row in &rows {
        let s = &row.summary;
        let l = &s.latency;
        csv += &format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            row.load,
            cell(row.offered_rps),
            cell(l.ttft_s.p50),
            cell(l.ttft_s.p99),
            cell(l.tpot_s.p50),
            cell(l.tpot_s.p99),
            cell(l.e2e_s.p50),
            cell(l.e2e_s.p99),
            cell(s.goodput.fraction_meeting_slo),
            cell(s.throughput.output_tokens_per_s)
        );
        if let Some(offered_rps) = row.offered_rps {
            points.push(SweepPoint {
                offered_rps,
                ttft_p50_s: l.ttft_s.p50,
                ttft_p99_s: l.ttft_s.p99,
                tpot_p50_s: l.tpot_s.p50,
                tpot_p99_s: l.tpot_s.p99,
                fraction_meeting_slo: s.goodput.fraction_meeting_slo,
            });
        }
        if !options.quiet {
            let show = |v: Option<f64>, scale: f64, decimals: usize| {
                v.map_or_else(|| "-".to_string(), |v| format!("{:.*}", decimals, v * scale))
            };
            println!(
                "load {:>5.2}× ({:>7} req/s): TTFT p50 {} s p99 {} s, TPOT p50 {} s p99 {} s, {}% within SLO",
                row.load,
                show(row.offered_rps, 1.0, 2),
                show(l.ttft_s.p50, 1.0, 3),
                show(l.ttft_s.p99, 1.0, 3),
                show(l.tpot_s.p50, 1.0, 4),
                show(l.tpot_s.p99, 1.0, 4),
                show(s.goodput.fraction_meeting_slo, 100.0, 1)
            );
        }
    }
    let csv_path = folder.join("sweep.csv");
    std::fs::write(&csv_path, csv).map_err(|e| Error::io(&csv_path, "cannot write", e))?;
    let mut files = vec![csv_path];
    files.extend(plot_knee(folder.path(), &scenario.name, &points)?);
    folder.finish(&scenario.name, &files)?;
    if !options.quiet {
        for file in &files {
            println!("wrote {}", file.display());
        }
    }
    Ok(rows)
}
