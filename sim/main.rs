//! The `servesim` command line.

use clap::{Parser, Subcommand};
use servesim::cluster::simulate;
use servesim::hardware::{Catalog, Dtype, BUNDLED_MODELS};
use servesim::metrics::Summary;
use servesim::model::ModelSpec;
use servesim::report::{
    plot_dir, plot_knee, plot_run, render_summary_table, write_run, write_trace, SweepPoint, TraceWindow,
};
use servesim::scenario::{Overrides, Scenario, DEFAULT_SCENARIO};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Deterministic discrete-event simulator of LLM inference serving.
#[derive(Parser)]
#[command(name = "servesim", version, about, long_about = None)]
struct Cli {
    /// Without a command, `servesim` runs the bundled quickstart scenario (`servesim run`).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a scenario and write summary.json and requests.csv.
    Run {
        /// Scenario YAML file; without one, the bundled `quickstart` scenario runs.
        scenario: Option<PathBuf>,
        /// Output folder (default: reports/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed for every random stream (overrides the file's `seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
        /// Also draw plots (SVG and PNG) into the output folder.
        #[arg(long)]
        plots: bool,
        /// Also write trace.json, a Chrome trace-event timeline for Perfetto.
        #[arg(long)]
        trace: bool,
        /// Keep only trace events overlapping START..END seconds (implies --trace).
        #[arg(long, value_name = "START..END")]
        trace_window: Option<String>,
    },
    /// Re-draw the plots of a run, sweep or search output folder without simulating.
    Plot {
        /// Output folder of `servesim run`, `sweep` or `search`.
        dir: PathBuf,
    },
    /// Run a scenario at several loads (multiples of its arrival rate) and draw the latency
    /// vs. load curve; writes sweep.csv and knee.svg/png.
    Sweep {
        /// Scenario YAML file (default: the bundled quickstart).
        scenario: Option<PathBuf>,
        /// Load multipliers: 2 replays the workload twice as fast.
        #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.75,1,1.25,1.5,1.75,2")]
        loads: Vec<f64>,
        /// Output folder (default: reports/sweep-<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check scenario files or search specs (and the traces and profiles they name) without
    /// running them.
    Validate {
        /// Scenario YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the bundled devices, links, nodes, models and calibrations.
    Profiles,
    /// Search deployment plans: simulate every combination of a search spec's axes (pruning
    /// infeasible ones with their reasons) and rank them; writes search.csv, pareto.csv,
    /// rows.csv and best.yaml.
    Search {
        /// Search spec YAML.
        spec: PathBuf,
        /// Output folder (default: reports/search-<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads (default: all cores); results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// Evaluate only shard I of N (plan i belongs to shard i mod N), for job arrays;
        /// combine the shards' folders with `servesim merge`.
        #[arg(long)]
        shard: Option<String>,
    },
    /// Combine the output folders of a sharded search into the files one run would write.
    Merge {
        /// The search spec the shards ran.
        spec: PathBuf,
        /// Shard output folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Fit a device's efficiency curves (and its machines' collective curves) to measured
    /// operator and network timings in Vidur's profiling format; write a calibration file that
    /// pools use with `calibration: FILE`.
    Calibrate {
        /// Device profile the measurements were taken on (bundled name).
        #[arg(long)]
        device: String,
        /// Folder(s) searched recursively for Vidur compute profiles (`mlp.csv`, or gzipped
        /// `mlp.csv.gz`).
        #[arg(long, required = true)]
        compute: Vec<PathBuf>,
        /// Folder of Vidur network profiles (`all_reduce.csv`, `send_recv.csv`, plain or
        /// gzipped).
        #[arg(long)]
        network: Option<PathBuf>,
        /// Node profile the network measurements were taken on (bundled name).
        #[arg(long, default_value = "dgx-a100")]
        node: String,
        /// Output calibration file (YAML).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run {
        scenario: None,
        out: None,
        seed: None,
        quiet: false,
        plots: false,
        trace: false,
        trace_window: None,
    });
    let result = match command {
        Command::Run { scenario, out, seed, quiet, plots, trace, trace_window } => {
            run(scenario, out, seed, quiet, plots, trace, trace_window.as_deref())
        }
        Command::Plot { dir } => plot(&dir),
        Command::Sweep { scenario, loads, out } => sweep(scenario, &loads, out),
        Command::Validate { files } => validate(&files),
        Command::Profiles => profiles(),
        Command::Search { spec, out, threads, shard } => search(&spec, out, threads, shard.as_deref()),
        Command::Merge { spec, shards, out } => merge(&spec, &shards, &out),
        Command::Calibrate { device, compute, network, node, out } => {
            calibrate(&device, &compute, network.as_deref(), &node, &out)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&PathBuf>, overrides: &Overrides) -> anyhow::Result<Scenario> {
    Ok(match path {
        Some(path) => Scenario::load(path, overrides)?,
        None => Scenario::bundled(DEFAULT_SCENARIO, overrides).expect("the quickstart scenario is bundled")?,
    })
}

fn run(
    path: Option<PathBuf>,
    out: Option<PathBuf>,
    seed: Option<u64>,
    quiet: bool,
    plots: bool,
    trace: bool,
    trace_window: Option<&str>,
) -> anyhow::Result<()> {
    let overrides = Overrides { seed };
    let window = match trace_window {
        Some(text) => Some(TraceWindow::parse(text).map_err(|e| anyhow::anyhow!("--trace-window: {e}"))?),
        None if trace => Some(TraceWindow::ALL),
        None => None,
    };
    let mut scenario = load(path.as_ref(), &overrides)?;
    scenario.record_timeline = plots || window.is_some();
    let started = Instant::now();
    let output = simulate(&scenario);
    let wall_s = started.elapsed().as_secs_f64();
    let summary = Summary::compute(&scenario, &output);
    let out_dir = out.unwrap_or_else(|| PathBuf::from("reports").join(&scenario.name));
    let written = write_run(&out_dir, &summary, &output)?;
    let mut extra = Vec::new();
    if let Some(window) = window {
        let path = out_dir.join("trace.json");
        write_trace(&path, &scenario, &output, window)?;
        extra.push(path);
    }
    if plots {
        let started = Instant::now();
        extra.extend(plot_run(&out_dir)?);
        if !quiet {
            eprintln!("plotted in {:.2} s", started.elapsed().as_secs_f64());
        }
    }
    if !quiet {
        print!("{}", render_summary_table(&summary));
        println!();
        println!("wrote {} and {}", written.summary.display(), written.requests.display());
        for path in written.token_gaps.iter().chain(&written.timeline).chain(&extra) {
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
    Ok(())
}

/// Peak resident memory of this process (Linux), MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn validate(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failures = 0;
    for file in files {
        // A search spec (it has `axes:`) is checked as one, with its base scenario.
        let is_search = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| serde_yaml::from_str::<serde_yaml::Value>(&text).ok())
            .is_some_and(|value| value.get("axes").is_some());
        if is_search {
            match servesim::search::SearchSpec::load(file) {
                Ok(spec) => println!(
                    "ok: {}: search spec over {} plans, base {} with {} requests",
                    file.display(),
                    spec.plans.len(),
                    spec.base_source.name,
                    spec.requests.len()
                ),
                Err(error) => {
                    eprintln!("error: {error}");
                    failures += 1;
                }
            }
            continue;
        }
        match Scenario::load(file, &Overrides::default()) {
            Ok(scenario) => {
                let pools: Vec<String> = scenario
                    .pools
                    .iter()
                    .map(|p| {
                        format!(
                            "{} × {} TP{} ({} KV blocks/replica)",
                            p.replicas, p.device.name, p.tensor_parallel, p.memory.kv_capacity_blocks
                        )
                    })
                    .collect();
                println!(
                    "ok: {}: {} on {}; {} requests",
                    file.display(),
                    scenario.model.name,
                    pools.join(" + "),
                    scenario.requests.len()
                );
            }
            Err(error) => {
                eprintln!("error: {error}");
                failures += 1;
            }
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} of {} files failed validation", files.len());
    }
    Ok(())
}

fn plot(dir: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let files = plot_dir(dir)?;
    for file in &files {
        println!("wrote {}", file.display());
    }
    eprintln!("plotted {} files in {:.2} s", files.len(), started.elapsed().as_secs_f64());
    Ok(())
}

fn sweep(path: Option<PathBuf>, loads: &[f64], out: Option<PathBuf>) -> anyhow::Result<()> {
    use rayon::prelude::*;
    use servesim::engine::SimTime;
    if loads.is_empty() || loads.iter().any(|l| !l.is_finite() || *l <= 0.0) {
        anyhow::bail!("--loads: give positive multipliers, e.g. 0.5,1,2");
    }
    let scenario = load(path.as_ref(), &Overrides::default())?;
    let out = out.unwrap_or_else(|| PathBuf::from("reports").join(format!("sweep-{}", scenario.name)));
    let span = scenario.requests.last().map_or(0.0, |r| r.arrival.as_secs_f64());
    let base_rate = if span > 0.0 { scenario.requests.len() as f64 / span } else { 0.0 };
    let points: Vec<(f64, Summary)> = loads
        .par_iter()
        .map(|&load| {
            let mut scaled = scenario.clone();
            for request in &mut scaled.requests {
                request.arrival = SimTime::from_secs_f64(request.arrival.as_secs_f64() / load);
            }
            let output = simulate(&scaled);
            (load, Summary::compute(&scaled, &output))
        })
        .collect();
    std::fs::create_dir_all(&out)?;
    let mut csv = String::from(
        "load,offered_rps,ttft_p50_s,ttft_p99_s,tpot_p50_s,tpot_p99_s,e2e_p50_s,e2e_p99_s,fraction_meeting_slo,output_tokens_per_s\n",
    );
    let mut sweep_points = Vec::new();
    for (load, s) in &points {
        let l = &s.latency;
        csv += &format!(
            "{load},{},{},{},{},{},{},{},{},{}\n",
            base_rate * load,
            l.ttft_s.p50,
            l.ttft_s.p99,
            l.tpot_s.p50,
            l.tpot_s.p99,
            l.e2e_s.p50,
            l.e2e_s.p99,
            s.goodput.fraction_meeting_slo,
            s.throughput.output_tokens_per_s
        );
        sweep_points.push(SweepPoint {
            offered_rps: base_rate * load,
            ttft_p50_s: l.ttft_s.p50,
            ttft_p99_s: l.ttft_s.p99,
            tpot_p50_s: l.tpot_s.p50,
            tpot_p99_s: l.tpot_s.p99,
            fraction_meeting_slo: s.goodput.fraction_meeting_slo,
        });
        println!(
            "load {load:>5.2}× ({:>7.2} req/s): TTFT p50 {:.3} s p99 {:.3} s, TPOT p50 {:.4} s p99 {:.4} s, {:.1}% within SLO",
            base_rate * load,
            l.ttft_s.p50,
            l.ttft_s.p99,
            l.tpot_s.p50,
            l.tpot_s.p99,
            s.goodput.fraction_meeting_slo * 100.0
        );
    }
    std::fs::write(out.join("sweep.csv"), csv)?;
    for file in plot_knee(&out, &scenario.name, &sweep_points)? {
        println!("wrote {}", file.display());
    }
    println!("wrote {}", out.join("sweep.csv").display());
    Ok(())
}

fn search(
    spec_path: &std::path::Path,
    out: Option<PathBuf>,
    threads: Option<usize>,
    shard: Option<&str>,
) -> anyhow::Result<()> {
    use servesim::search::{finalize, run_plans, write_rows, SearchSpec, Shard};
    let spec = SearchSpec::load(spec_path)?;
    let shard = match shard {
        Some(text) => Shard::parse(text).map_err(|e| anyhow::anyhow!("--shard: {e}"))?,
        None => Shard::ALL,
    };
    let out = out.unwrap_or_else(|| PathBuf::from("reports").join(format!("search-{}", spec.name)));
    let count = spec.plans.iter().filter(|p| shard.contains(p.index)).count();
    eprintln!(
        "search {}: {} plans ({} in shard {}/{}), {} requests per simulation",
        spec.name,
        spec.plans.len(),
        count,
        shard.index,
        shard.count,
        spec.requests.len()
    );
    let bar = indicatif::ProgressBar::new(count as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} plans, {elapsed} elapsed, ETA {eta}")
            .expect("valid template"),
    );
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n.max(1));
    }
    let pool = builder.build()?;
    let started = Instant::now();
    let rows = pool.install(|| run_plans(&spec, shard, &|| bar.inc(1)));
    bar.finish_and_clear();
    eprintln!("evaluated {count} plans in {:.1} s", started.elapsed().as_secs_f64());
    std::fs::create_dir_all(&out)?;
    if shard.count > 1 {
        write_rows(&out.join("rows.csv"), &rows)?;
        println!(
            "wrote {} (shard {}/{}); combine shards with `servesim merge`",
            out.join("rows.csv").display(),
            shard.index,
            shard.count
        );
        return Ok(());
    }
    let outputs = finalize(&spec, rows)?;
    outputs.write(&out)?;
    servesim::report::plot_search(&out)?;
    print!("{}", outputs.table);
    println!(
        "wrote {}/{{search.csv, pareto.csv, rows.csv, pareto_energy.svg/png, pareto_cost.svg/png{}}}",
        out.display(),
        if outputs.best_yaml.is_some() { ", best.yaml" } else { "" }
    );
    Ok(())
}

fn merge(spec_path: &std::path::Path, shards: &[PathBuf], out: &std::path::Path) -> anyhow::Result<()> {
    use servesim::search::{finalize, read_rows, SearchSpec};
    let spec = SearchSpec::load(spec_path)?;
    let mut rows = Vec::new();
    for dir in shards {
        rows.extend(read_rows(&dir.join("rows.csv"))?);
    }
    let outputs = finalize(&spec, rows)?;
    outputs.write(out)?;
    servesim::report::plot_search(out)?;
    print!("{}", outputs.table);
    println!("wrote {}", out.display());
    Ok(())
}

/// Appends the files named `name` (or gzipped, `name.gz`) under `dir`, recursively, in path order.
fn find_files(dir: &std::path::Path, name: &str, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: cannot read folder: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            find_files(&path, name, found)?;
        } else if servesim::error::uncompressed_name(&path) == Some(name) {
            found.push(path);
        }
    }
    Ok(())
}

fn calibrate(
    device_name: &str,
    compute: &[PathBuf],
    network: Option<&std::path::Path>,
    node_name: &str,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use servesim::calibration::{
        errors_by_operator, fit_compute, fit_network, network_errors_by_band, operator_samples, read_vidur_compute,
        read_vidur_network, Calibration,
    };
    let catalog = Catalog::bundled()?;
    let device = catalog.devices.get(device_name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown device {device_name:?}; bundled devices are: {}",
            catalog.devices.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let mut files = Vec::new();
    for dir in compute {
        find_files(dir, "mlp.csv", &mut files)?;
    }
    if files.is_empty() {
        anyhow::bail!(
            "no mlp.csv or mlp.csv.gz found under {}",
            compute.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let mut samples = Vec::new();
    for file in &files {
        eprintln!("reading {}", file.display());
        samples.extend(operator_samples(&read_vidur_compute(file)?));
    }
    eprintln!("fitting {} operator measurements", samples.len());
    let efficiency = fit_compute(&samples, device);
    let operator_error =
        errors_by_operator(&samples, device, &efficiency).into_iter().map(|(op, (_, e))| (op, e)).collect();
    let mut fitted_from: Vec<String> = compute.iter().map(|p| p.display().to_string()).collect();
    let (mut collectives, mut collective_error, mut node_used) = (Vec::new(), Default::default(), None);
    if let Some(dir) = network {
        let node = catalog.nodes.get(node_name).ok_or_else(|| anyhow::anyhow!("unknown node {node_name:?}"))?;
        let network_samples = read_vidur_network(dir)?;
        eprintln!("fitting {} collective measurements on {node_name}", network_samples.len());
        collectives = fit_network(&network_samples, node, &catalog.links);
        collective_error = network_errors_by_band(&network_samples, &collectives, node, &catalog.links)
            .into_iter()
            .map(|(band, (_, e))| (band, e))
            .collect();
        fitted_from.push(dir.display().to_string());
        node_used = Some(node_name.to_string());
    }
    let mut command = format!("servesim calibrate --device {device_name}");
    for dir in compute {
        command += &format!(" --compute {}", dir.display());
    }
    if let Some(dir) = network {
        command += &format!(" --network {} --node {node_name}", dir.display());
    }
    command += &format!(" --out {}", out.display());
    let calibration = Calibration {
        device: device_name.to_string(),
        generated_by: command,
        fitted_from,
        operator_samples: samples.len(),
        operator_error,
        efficiency,
        node: node_used,
        collectives,
        collective_error,
    };
    let text = serde_yaml::to_string(&calibration)?;
    let header = "# Written by `servesim calibrate` (see generated_by); regenerate rather than edit.\n";
    std::fs::write(out, format!("{header}{text}"))
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", out.display()))?;
    for (op, error) in &calibration.operator_error {
        eprintln!("  {op:<26} in-sample median |error| {:.1}%", error * 100.0);
    }
    for (band, error) in &calibration.collective_error {
        eprintln!("  collectives {band:<12} in-sample median |error| {:.1}%", error * 100.0);
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn profiles() -> anyhow::Result<()> {
    let catalog = Catalog::bundled()?;
    println!("devices ({}):", catalog.devices.len());
    println!(
        "  {:<16} {:<4} {:>10} {:>9} {:>9} {:>7} {:>8}  description",
        "name", "kind", "bf16 TF/s", "mem GiB", "GB/s", "max W", "$/hour"
    );
    for device in catalog.devices.values() {
        println!(
            "  {:<16} {:<4} {:>10.1} {:>9.0} {:>9.0} {:>7.0} {:>8.2}  {}",
            device.name,
            format!("{:?}", device.kind).to_lowercase(),
            device.peak_flops(Dtype::Bf16) / 1e12,
            device.memory.capacity_gib.get(),
            device.memory.bandwidth_gbs.get(),
            device.power.max_w.get(),
            device.price_per_hour_usd.get(),
            device.display_name
        );
    }
    println!("\nlinks ({}):", catalog.links.len());
    println!("  {:<24} {:<10} {:>10} {:>11}  description", "name", "kind", "GB/s/dir", "latency µs");
    for link in catalog.links.values() {
        println!(
            "  {:<24} {:<10} {:>10.1} {:>11.2}  {}",
            link.name,
            format!("{:?}", link.kind).to_lowercase(),
            link.bandwidth_gbs_per_direction.get(),
            link.latency_us.get(),
            link.display_name
        );
    }
    println!("\nnodes ({}):", catalog.nodes.len());
    for node in catalog.nodes.values() {
        let devices: Vec<String> = node.devices.iter().map(|g| format!("{} × {}", g.count, g.device)).collect();
        let links: Vec<String> =
            node.interconnects.iter().map(|i| format!("{} ({:?})", i.link, i.topology).to_lowercase()).collect();
        let nic = node.scale_out.as_ref().map_or(String::new(), |s| format!("; NICs {}", s.link));
        println!("  {:<20} {}; {}{nic}", node.name, devices.join(" + "), links.join(", "));
    }
    println!("\ncalibrations ({}):", servesim::hardware::BUNDLED_CALIBRATIONS.len());
    for (name, _) in servesim::hardware::BUNDLED_CALIBRATIONS {
        println!("  {name}");
    }
    println!("\nmodels ({}):", BUNDLED_MODELS.len());
    println!(
        "  {:<16} {:<14} {:>9} {:>9} {:>14} {:>9}",
        "name", "architecture", "params B", "active B", "KV KiB/token", "context"
    );
    for (name, text) in BUNDLED_MODELS {
        let model = ModelSpec::from_hf_config(name, name, text)?;
        println!(
            "  {:<16} {:<14} {:>9.2} {:>9.2} {:>14.1} {:>9}",
            name,
            model.architecture,
            model.parameter_count() as f64 / 1e9,
            model.active_parameter_count() as f64 / 1e9,
            model.kv_bytes_per_token(Dtype::Bf16) / 1024.0,
            model.max_context_tokens
        );
    }
    Ok(())
}
