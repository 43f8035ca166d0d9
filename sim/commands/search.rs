//! `servesim search` and `servesim merge`: plan search over a spec, whole or sharded.

use super::progress::{Progress, ProgressMode};
use crate::error::{Error, Result};
use crate::report::{plot_search, OutputFolder, OutputKind};
use crate::search::{duration_text, finalize, read_rows, run_plans, write_rows, SearchOutputs, SearchSpec, Shard};
use std::path::PathBuf;
use std::time::Instant;

/// What `servesim search` was asked to do.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// The spec.
    pub spec: PathBuf,
    /// Output folder (None: `reports/search-<name>`).
    pub out: Option<PathBuf>,
    /// Worker threads (None: every core).
    pub threads: Option<usize>,
    /// Which plans to evaluate.
    pub shard: Shard,
    /// Largest search accepted.
    pub max_plans: u64,
    /// Print nothing but errors and progress.
    pub quiet: bool,
}

/// Worker threads for `requested`: at most the machine's cores (more only adds switching).
pub fn thread_count(requested: Option<usize>) -> Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match requested {
        None => Ok(cores),
        Some(0) => Err(Error::usage("--threads", "give at least 1 thread")),
        Some(n) if n > cores => {
            eprintln!("--threads {n}: capped at {cores}, the cores this machine has");
            Ok(cores)
        }
        Some(n) => Ok(n),
    }
}

/// The error when every plan was pruned: the reasons in words, grouped.
fn all_pruned(spec: &SearchSpec, outputs: &SearchOutputs) -> Error {
    Error::in_file(
        spec.source.name.clone(),
        format!(
            "every one of the {} plans was pruned, so nothing was simulated:\n  {}",
            spec.plan_count(),
            outputs.pruned_lines().join("\n  ")
        ),
    )
}

/// Writes a whole search's outputs and plots into `folder`, prints the table.
fn write_outputs(spec: &SearchSpec, outputs: &SearchOutputs, folder: &OutputFolder, quiet: bool) -> Result<()> {
    let mut files = outputs.write(folder.path())?;
    files.extend(plot_search(folder.path(), &spec.name)?);
    folder.finish(&spec.name, &files)?;
    if !quiet {
        print!("{}", outputs.table);
        println!("wrote {} files into {}", files.len(), folder.path().display());
    }
    if outputs.simulated == 0 {
        return Err(all_pruned(spec, outputs));
    }
    Ok(())
}

/// Runs a search (or one shard of it).
pub fn search(options: &SearchOptions) -> Result<()> {
    let spec = SearchSpec::load(&options.spec, options.max_plans)?;
    let shard = options.shard;
    let threads = thread_count(options.threads)?;
    let out = options.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(format!("search-{}", spec.name)));
    let kind = if shard.count > 1 { OutputKind::SearchShard } else { OutputKind::Search };
    let folder = OutputFolder::claim(&out, kind)?;
    let count = shard.plans(spec.plan_count()).count() as u64;
    eprintln!(
        "search {}: {} plans ({count} in shard {}/{}), {} requests per simulation, {threads} threads; about {}",
        spec.name,
        spec.plan_count(),
        shard.index,
        shard.count,
        spec.requests.len(),
        duration_text(spec.estimated_seconds(threads) * count as f64 / spec.plan_count().max(1) as f64)
    );
    let progress = Progress::new("plans", count, ProgressMode::BarOrLines);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::usage("--threads", format!("cannot start {threads} threads: {e}")))?;
    let started = Instant::now();
    let rows = pool.install(|| run_plans(&spec, shard, &|| progress.inc(1)));
    progress.finish();
    eprintln!("evaluated {count} plans in {:.1} s", started.elapsed().as_secs_f64());
    if shard.count > 1 {
        let path = folder.join("rows.csv");
        write_rows(&path, &spec, &rows)?;
        folder.finish(&spec.name, std::slice::from_ref(&path))?;
        println!(
            "wrote {} (shard {}/{}); combine shards with `servesim merge`",
            path.display(),
            shard.index,
            shard.count
        );
        return Ok(());
    }
    let outputs = finalize(&spec, rows)?;
    write_outputs(&spec, &outputs, &folder, options.quiet)
}

/// What `servesim merge` was asked to do.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// The spec the shards ran.
    pub spec: PathBuf,
    /// Shard output folders.
    pub shards: Vec<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Largest search accepted.
    pub max_plans: u64,
}

/// Combines shard folders into the files one run writes.
pub fn merge(options: &MergeOptions) -> Result<()> {
    let spec = SearchSpec::load(&options.spec, options.max_plans)?;
    let mut rows = Vec::new();
    // Plan index → the file that gave it, so a plan given twice (a shard named twice, or
    // overlapping shards) is refused rather than silently dropped.
    let mut given: std::collections::BTreeMap<u64, PathBuf> = std::collections::BTreeMap::new();
    for dir in &options.shards {
        if !dir.is_dir() {
            let why = if dir.exists() { "is not a folder" } else { "folder not found" };
            return Err(Error::in_file(
                dir.display().to_string(),
                format!("{why}: give the output folders of `servesim search --shard I/N`"),
            ));
        }
        let path = dir.join("rows.csv");
        if !path.is_file() {
            return Err(Error::in_file(
                dir.display().to_string(),
                "holds no rows.csv: give the output folders of `servesim search --shard I/N`",
            ));
        }
        for row in read_rows(&path, &spec)? {
            if let Some(earlier) = given.insert(row.plan.index, path.clone()) {
                return Err(Error::in_file(
                    path.display().to_string(),
                    format!(
                        "plan {} is also in {}: was a shard given twice? give each shard's folder once",
                        row.plan.index,
                        earlier.display()
                    ),
                ));
            }
            rows.push(row);
        }
    }
    let folder = OutputFolder::claim(&options.out, OutputKind::Search)?;
    let outputs = finalize(&spec, rows)?;
    write_outputs(&spec, &outputs, &folder, false)
}
