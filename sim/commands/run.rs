//! `servesim run`: simulate one scenario and write its outputs.

use super::progress::{Progress, ProgressMode};
use crate::cluster::simulate_observed;
use crate::error::{Error, Result};
use crate::metrics::Summary;
use crate::report::{plot_run, render_summary_table, write_run, write_trace, OutputFolder, OutputKind, TraceWindow};
use crate::scenario::{Overrides, Scenario, DEFAULT_SCENARIO};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `servesim run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Scenario file (None: the bundled quickstart).
    pub scenario: Option<PathBuf>,
    /// Output folder (None: `reports/<scenario name>`).
    pub out: Option<PathBuf>,
    /// Overrides the file's seed.
    pub seed: Option<u64>,
    /// Print nothing but errors.
    pub quiet: bool,
    /// Draw plots.
    pub plots: bool,
    /// Write `trace.json` for events overlapping this window.
    pub trace: Option<TraceWindow>,
}

/// Loads the scenario at `path`, or the bundled quickstart.
pub fn load_scenario(path: Option<&Path>, overrides: &Overrides) -> Result<Scenario> {
    match path {
        Some(path) => Scenario::load(path, overrides),
        None => Scenario::bundled(DEFAULT_SCENARIO, overrides).expect("the quickstart scenario is bundled"),
    }
}

/// Prints the scenario's warnings to stderr.
pub fn print_warnings(scenario: &Scenario) {
    for warning in &scenario.warnings {
        eprintln!("warning: {warning}");
    }
}

/// An error when no request of `scenario` can be served (every pool would reject each one);
/// a warning line when only some cannot.
pub fn check_servable(scenario: &Scenario) -> Result<Option<String>> {
    let unservable = scenario.unservable_requests();
    let total = scenario.requests.len() as u64;
    let example = unservable.example.unwrap_or_default();
    if unservable.count == total {
        return Err(Error::in_file(
            scenario.origin.clone(),
            format!(
                "no request can be served: all {total} would be rejected at arrival (e.g. {example}); raise max_model_len, give the pool more memory, or shorten the requests"
            ),
        ));
    }
    Ok((unservable.count > 0).then(|| {
        format!(
            "{} of {total} requests cannot be served by any pool and will be rejected (e.g. {example})",
            unservable.count
        )
    }))
}

/// Runs a scenario and writes its outputs; returns the summary.
pub fn run(options: &RunOptions) -> Result<Summary> {
    let overrides = Overrides { seed: options.seed };
    let mut scenario = load_scenario(options.scenario.as_deref(), &overrides)?;
    let warning = check_servable(&scenario)?;
    scenario.record_timeline = options.plots || options.trace.is_some();
    let out = options.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(&scenario.name));
    let folder = OutputFolder::claim(&out, OutputKind::Run)?;
    if !options.quiet {
        print_warnings(&scenario);
        if let Some(warning) = &warning {
            eprintln!("warning: {warning}");
        }
    }
    let mode = if options.quiet { ProgressMode::Hidden } else { ProgressMode::BarOnly };
    let progress = Progress::new("requests", scenario.requests.len() as u64, mode);
    let started = Instant::now();
    let output = simulate_observed(&scenario, &mut |p| {
        let wall = started.elapsed().as_secs_f64().max(1e-9);
        progress.set(
            p.finished_requests,
            format!("(simulated {:.1} s, {:.0} requests/s)", p.now.as_secs_f64(), p.finished_requests as f64 / wall),
        );
    });
    progress.finish();
    let wall_s = started.elapsed().as_secs_f64();
    let summary = Summary::compute(&scenario, &output);
    let written = write_run(&folder, &summary, &output)?;
    let mut files = written.all();
    if let Some(window) = options.trace {
        let path = folder.join("trace.json");
        write_trace(&path, &scenario, &output, window)?;
        files.push(path);
    }
    if options.plots {
        let started = Instant::now();
        files.extend(plot_run(folder.path())?);
        if !options.quiet {
            eprintln!("plotted in {:.2} s", started.elapsed().as_secs_f64());
        }
    }
    folder.finish(&scenario.name, &files)?;
    if !options.quiet {
        print!("{}", render_summary_table(&summary));
        println!();
        for path in &files {
            println!("wrote {}", path.display());
        }
        let memory = peak_memory_mib().map_or_else(String::new, |mib| format!(", peak memory {mib:.0} MiB"));
        eprintln!(
            "simulated {} requests ({} events) in {:.3} s wall: {:.0} requests/s, {:.2} M events/s{memory}",
            summary.requests.total,
            summary.events,
            wall_s,
            summary.requests.total as f64 / wall_s,
            summary.events as f64 / wall_s / 1e6
        );
    }
    if summary.requests.rejected == summary.requests.total {
        let reasons: Vec<String> =
            summary.requests.rejected_by_reason.iter().map(|(reason, count)| format!("{count} {reason}")).collect();
        return Err(Error::in_file(
            scenario.origin.clone(),
            format!(
                "every request was rejected ({}); the router sent them to replicas that cannot hold them; outputs are in {}",
                reasons.join(", "),
                folder.path().display()
            ),
        ));
    }
    Ok(summary)
}

/// Peak resident memory of this process (Linux), MiB.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
