//! The `servesim` command line: parses arguments into the options of `servesim::commands` and
//! reports errors. Everything else lives in the library.

use clap::{Parser, Subcommand};
use servesim::commands::{
    self, AiconfiguratorOptions, CalibrateOptions, MergeOptions, RunOptions, SearchOptions, SweepOptions,
    ValidateOptions,
};
use servesim::error::Error;
use servesim::report::TraceWindow;
use servesim::search::{Shard, DEFAULT_MAX_PLANS};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Simulate a scenario and write summary.json and requests.csv (a progress bar shows on a
    /// terminal).
    Run {
        /// Scenario YAML file; without one, the bundled `quickstart` scenario runs.
        scenario: Option<PathBuf>,
        /// Output folder (default: reports/<scenario name>). It must be empty or hold an
        /// earlier run's outputs, which are replaced.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed for every random stream (overrides the file's `seed`).
        #[arg(long, allow_negative_numbers = true)]
        seed: Option<u64>,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
        /// Also write timeline.csv and draw plots (SVG and PNG) into the output folder.
        #[arg(long)]
        plots: bool,
        /// Also write timeline.csv and trace.json, a Chrome trace-event timeline for Perfetto.
        #[arg(long)]
        trace: bool,
        /// Keep only trace events overlapping START..END seconds (implies --trace).
        #[arg(long, value_name = "START..END", allow_hyphen_values = true)]
        trace_window: Option<String>,
    },
    /// Re-draw the plots of a run, sweep or search output folder without simulating.
    Plot {
        /// Output folder of `servesim run --plots`, `sweep` or `search`.
        dir: PathBuf,
    },
    /// Run a scenario at several loads (multiples of its arrival rate) and draw the latency
    /// vs. load curve; writes sweep.csv and knee.svg/png.
    Sweep {
        /// Scenario YAML file (default: the bundled quickstart).
        scenario: Option<PathBuf>,
        /// Load multipliers: 2 replays the workload twice as fast.
        #[arg(
            long,
            value_delimiter = ',',
            allow_hyphen_values = true,
            default_value = "0.25,0.5,0.75,1,1.25,1.5,1.75,2"
        )]
        loads: Vec<f64>,
        /// Output folder (default: reports/sweep-<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check scenario files or search specs (and the traces and profiles they name) without
    /// running them; search specs report their plan count and an estimated time.
    Validate {
        /// Scenario or search spec YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Largest search accepted.
        #[arg(long, default_value_t = DEFAULT_MAX_PLANS)]
        max_plans: u64,
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
        /// Worker threads (default and maximum: the machine's cores); results do not depend on
        /// it.
        #[arg(long, allow_negative_numbers = true)]
        threads: Option<usize>,
        /// Evaluate only shard I of N (plan i belongs to shard i mod N), for job arrays;
        /// combine the shards' folders with `servesim merge`.
        #[arg(long, allow_hyphen_values = true)]
        shard: Option<String>,
        /// Refuse specs with more plans than this.
        #[arg(long, default_value_t = DEFAULT_MAX_PLANS)]
        max_plans: u64,
        /// Print nothing but errors and progress.
        #[arg(long, short)]
        quiet: bool,
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
        /// Refuse specs with more plans than this.
        #[arg(long, default_value_t = DEFAULT_MAX_PLANS)]
        max_plans: u64,
    },
    /// Fit a device's efficiency curves (and its machines' collective curves) to measured
    /// operator and network timings in Vidur's profiling format; write a calibration file that
    /// pools use with `calibration: FILE`. With --aiconfigurator, convert AIConfigurator's
    /// measured operator tables (one system, engine and version) into a measured-operator
    /// calibration instead.
    Calibrate {
        /// Device profile the calibration is for and, without --measured-on, the measurements
        /// were taken on (bundled name).
        #[arg(long)]
        device: String,
        /// Device profile the measurements were taken on when it is not --device (bundled
        /// name): the curves are fitted against its peaks and carried to --device as the same
        /// fraction of each kernel's roofline bound (e.g. H100 SXM timings for H200: same
        /// compute, faster memory).
        #[arg(long, conflicts_with = "aiconfigurator")]
        measured_on: Option<String>,
        /// Folder(s) searched recursively for Vidur compute profiles (`mlp.csv`, or gzipped
        /// `mlp.csv.gz`).
        #[arg(long, required_unless_present = "aiconfigurator", conflicts_with = "aiconfigurator")]
        compute: Vec<PathBuf>,
        /// Folder of Vidur network profiles (`all_reduce.csv`, `send_recv.csv`, plain or
        /// gzipped).
        #[arg(long, conflicts_with = "aiconfigurator")]
        network: Option<PathBuf>,
        /// Node profile the network measurements were taken on (bundled name).
        #[arg(long, default_value = "dgx-a100")]
        node: String,
        /// AIConfigurator's `systems/data` folder (from the aiconfigurator-core package), or one
        /// system's folder inside it.
        #[arg(long, requires = "engine")]
        aiconfigurator: Option<PathBuf>,
        /// Serving engine whose kernels to convert: trtllm, vllm (vllm-v1) or sglang.
        #[arg(long, requires = "aiconfigurator")]
        engine: Option<String>,
        /// Engine version (default: the latest with GEMM and attention tables).
        #[arg(long, requires = "aiconfigurator")]
        version: Option<String>,
        /// Also write an evenly spread sample of the measured rows held out of the grids (CSV;
        /// gzipped if the name ends in .gz).
        #[arg(long, requires = "aiconfigurator")]
        held_out: Option<PathBuf>,
        /// Output calibration file (YAML).
        #[arg(long)]
        out: PathBuf,
    },
}

fn trace_window(trace: bool, window: Option<String>) -> Result<Option<TraceWindow>, Error> {
    match window {
        Some(text) => TraceWindow::parse(&text).map(Some).map_err(|e| Error::usage("--trace-window", e)),
        None => Ok(trace.then_some(TraceWindow::ALL)),
    }
}

fn dispatch(command: Command) -> Result<(), Error> {
    match command {
        Command::Run { scenario, out, seed, quiet, plots, trace, trace_window: window } => {
            let trace = trace_window(trace, window)?;
            commands::run(&RunOptions { scenario, out, seed, quiet, plots, trace }).map(|_| ())
        }
        Command::Plot { dir } => {
            for file in servesim::report::plot_dir(&dir)? {
                println!("wrote {}", file.display());
            }
            Ok(())
        }
        Command::Sweep { scenario, loads, out, quiet } => {
            commands::sweep(&SweepOptions { scenario, loads, out, quiet }).map(|_| ())
        }
        Command::Validate { files, max_plans } => commands::validate(&ValidateOptions { files, max_plans }),
        Command::Profiles => {
            print!("{}", commands::profiles()?);
            Ok(())
        }
        Command::Search { spec, out, threads, shard, max_plans, quiet } => {
            let shard = match shard {
                Some(text) => Shard::parse(&text).map_err(|e| Error::usage("--shard", e))?,
                None => Shard::ALL,
            };
            commands::search(&SearchOptions { spec, out, threads, shard, max_plans, quiet })
        }
        Command::Merge { spec, shards, out, max_plans } => {
            commands::merge(&MergeOptions { spec, shards, out, max_plans })
        }
        Command::Calibrate { device, aiconfigurator: Some(data), engine, version, held_out, out, .. } => {
            let options = AiconfiguratorOptions {
                data,
                device,
                engine: engine.unwrap_or_default(),
                version,
                out: out.clone(),
                held_out,
            };
            let file = commands::calibrate_aiconfigurator(&options)?;
            println!(
                "wrote {} ({} {} {} on {})",
                out.display(),
                file.system,
                file.framework,
                file.framework_version,
                file.device
            );
            Ok(())
        }
        Command::Calibrate { device, measured_on, compute, network, node, out, .. } => {
            let options = CalibrateOptions { device, measured_on, compute, network, node, out: out.clone() };
            let calibration = commands::calibrate(&options)?;
            println!("wrote {} ({} operator measurements)", out.display(), calibration.operator_samples);
            Ok(())
        }
    }
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
    match dispatch(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
