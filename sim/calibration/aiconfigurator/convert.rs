//! Conversion of AIConfigurator's operator tables (one system, framework and framework
//! version) into a measured-operator calibration: latency grids on a subset of the measured
//! configurations, with the other measured rows held out to say how well the grids predict.
//!
//! For `servesim calibrate --aiconfigurator` and the test that regenerates the bundled files;
//! nothing here runs during a simulation. Which rows make the grid (the rest are held out):
//!
//! - GEMM (per dtype): m a power of two, a multiple of 16 up to 256 or a multiple of 512; n and
//!   k powers of two. Held out: the odd m (tile boundaries such as 33 or 4353) and the n and
//!   k of real models that are not powers of two (768, 5120, 7168, 12288...).
//! - Context attention (per attention dtype, KV dtype, head dimension; no sliding window):
//!   cells over (query heads per KV head, sequences × query heads, prompt tokens), each the
//!   median of the rows with a power-of-two value on every axis. The kernels' time depends on
//!   the heads and sequences through their product (one thread block per head and sequence),
//!   which is what lets three axes replace five. Held out: rows with any other value
//!   (e.g. 5 query heads per KV head, 40 heads, 1536 tokens). Head dimensions 64, 128 and 256
//!   only (see [`STANDARD_HEAD_DIMS`]).
//! - Generation attention (per KV dtype, head dimension): the same over (query heads per KV
//!   head, sequences × KV heads, KV tokens = isl + step).
//! - All-reduce (per device count): message sizes of an odd power of two; the even ones are
//!   held out.
//!
//! Grid cells with no measurement are filled from the nearest measured cell by the grid's
//! rule outside its range (held below, grown by the work ratio above). When one configuration
//! was measured more than once (several kernels) the first row counts, as in AIConfigurator.

use super::file::{AllReduceGrid, AttentionGrid, HeldOutError, MeasuredFile, TableProvenance};
use super::grid::{format_significant, AxisFile, GridFile};
use super::held_out::{held_out_errors, HeldOutRow};
use super::parquet::ParquetTable;
use super::times::{AttentionDtype, GemmDtype, MeasuredTimes};
use crate::error::{Error, Location, Result};
use crate::input::{YamlSource, YamlValue};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// AIConfigurator system names and the servesim device profiles they are.
pub const SYSTEMS: [(&str, &str); 9] = [
    ("a100_sxm", "a100-sxm-80gb"),
    ("b200_sxm", "b200"),
    ("b300_sxm", "b300"),
    ("gb200", "gb200"),
    ("gb300", "gb300"),
    ("h100_sxm", "h100-sxm"),
    ("h200_sxm", "h200"),
    ("l40s", "l40s"),
    ("rtx_pro_6000_server", "rtx-pro-6000"),
];

/// The frameworks AIConfigurator times kernels of.
pub const FRAMEWORKS: [&str; 3] = ["sglang", "trtllm", "vllm"];

/// Head dimensions converted. AIConfigurator also sweeps 192 and 512, the query-key widths
/// of MLA-style models, whose attention servesim prices by the roofline (MLA declines); they
/// are left out to keep the files small.
pub const STANDARD_HEAD_DIMS: [i64; 3] = [64, 128, 256];

/// Held-out rows kept per table for the bundled test data (evenly spread over the table).
pub const HELD_OUT_SAMPLE: usize = 240;

const LICENCE: &str = "Apache-2.0; measurements Copyright (c) 2026 NVIDIA CORPORATION & AFFILIATES (AIConfigurator, aiconfigurator-core on PyPI); see NOTICE";

/// What to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// AIConfigurator's `systems/data` folder, or one system's folder inside it.
    pub data: PathBuf,
    /// servesim device profile.
    pub device: String,
    /// `trtllm`, `vllm` or `sglang`.
    pub framework: String,
    /// Framework version (default: the latest with both GEMM and attention tables).
    pub version: Option<String>,
    /// The output file's name, recorded in `generated_by`.
    pub out_name: String,
}

/// A conversion's result.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The calibration.
    pub file: MeasuredFile,
    /// An evenly spread sample of the held-out rows (at most [`HELD_OUT_SAMPLE`] per table).
    pub held_out_sample: Vec<HeldOutRow>,
}

/// PEP 440-like order of version strings (`1.3.0rc10` < `1.3.0rc20` < `1.3.0` < `1.3.0.post1`).
pub fn version_order(version: &str) -> (Vec<u64>, u8, u64, u64) {
    let mut release = Vec::new();
    let mut rest = version;
    loop {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            break;
        }
        release.push(rest[..digits].parse().unwrap_or(u64::MAX));
        rest = &rest[digits..];
        match rest.strip_prefix('.') {
            Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) => rest = after,
            _ => break,
        }
    }
    let rest = rest.trim_start_matches(['.', '-', '_']);
    let number = |s: &str| s.trim_start_matches(|c: char| !c.is_ascii_digit()).parse::<u64>().unwrap_or(0);
    let (phase, n, post) = if rest.is_empty() {
        (4, 0, 0)
    } else if rest.starts_with("post") {
        (4, 0, number(rest) + 1)
    } else if rest.starts_with("rc") {
        (3, number(rest), 0)
    } else if rest.starts_with('b') {
        (2, number(rest), 0)
    } else if rest.starts_with('a') {
        (1, number(rest), 0)
    } else {
        (0, number(rest), 0)
    };
    (release, phase, n, post)
}

fn subfolders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The system folder and its name.
fn system_dir(options: &ConvertOptions) -> Result<(PathBuf, String)> {
    let data = &options.data;
    if !data.is_dir() {
        return Err(Error::usage("--aiconfigurator", format!("{}: not a folder", data.display())));
    }
    if data.join("gemm").is_dir() || data.join("attention").is_dir() {
        let name = data.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok((data.clone(), name));
    }
    let Some((system, _)) = SYSTEMS.iter().find(|(_, device)| *device == options.device) else {
        return Err(Error::usage(
            "--device",
            format!(
                "no AIConfigurator system is known for device {:?} (known: {}); give the system's folder itself to --aiconfigurator",
                options.device,
                SYSTEMS.map(|(s, d)| format!("{d} = {s}")).join(", ")
            ),
        ));
    };
    let dir = data.join(system);
    if !dir.is_dir() {
        return Err(Error::usage(
            "--aiconfigurator",
            format!(
                "{} has no folder {system} ({}); give AIConfigurator's systems/data folder or a system folder (one holding gemm/ and attention/)",
                data.display(),
                match subfolders(data) {
                    found if found.is_empty() => "it has no subfolders".to_string(),
                    found => format!("it has: {}", found.join(", ")),
                }
            ),
        ));
    }
    Ok((dir, system.to_string()))
}

/// The latest version folder of `op/framework` not after `at_most`.
fn latest_version(system: &Path, op: &str, framework: &str, at_most: Option<&str>) -> Option<String> {
    subfolders(&system.join(op).join(framework))
        .into_iter()
        .filter(|v| at_most.is_none_or(|max| version_order(v) <= version_order(max)))
        .max_by_key(|v| version_order(v))
}

fn collection_meta(dir: &Path) -> Result<YamlValue> {
    let path = dir.join("collection_meta.yaml");
    if !path.is_file() {
        return Ok(YamlValue::Null);
    }
    YamlSource::from_file(&path)?.parse()
}

/// The version of the `aiconfigurator-core` package `data` was unpacked from, read from the
/// wheel's `*.dist-info/METADATA` beside the package folder.
fn package_version(data: &Path) -> String {
    for dir in data.ancestors().take(6) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("aiconfigurator_core-") && name.ends_with(".dist-info") {
                if let Ok(text) = std::fs::read_to_string(entry.path().join("METADATA")) {
                    if let Some(v) = text.lines().find_map(|l| l.strip_prefix("Version: ")) {
                        return v.trim().to_string();
                    }
                }
            }
        }
    }
    "unknown".to_string()
}

/// A measured row: the grid cell it belongs to when every coordinate is a grid value, and
/// the held-out row it is otherwise.
struct Sample {
    cell: Option<[u64; 3]>,
    latency_s: f64,
    row: HeldOutRow,
}

/// A grid built from samples.
struct Built {
    file: GridFile,
    rows_in_grid: usize,
}

fn is_power_of_two(v: i64) -> bool {
    v > 0 && (v & (v - 1)) == 0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn build_grid(axes: &[(&str, f64)], samples: &[Sample]) -> Option<Built> {
    let dims = axes.len();
    let mut cells: BTreeMap<[u64; 3], Vec<f64>> = BTreeMap::new();
    for sample in samples {
        if let Some(cell) = sample.cell {
            cells.entry(cell).or_default().push(sample.latency_s);
        }
    }
    if cells.is_empty() {
        return None;
    }
    let rows_in_grid = cells.values().map(Vec::len).sum();
    let values: Vec<Vec<u64>> =
        (0..dims).map(|d| cells.keys().map(|c| c[d]).collect::<BTreeSet<_>>().into_iter().collect()).collect();
    let lengths: Vec<usize> = values.iter().map(Vec::len).collect();
    let total: usize = lengths.iter().product();
    let index_of = |flat: usize| {
        let mut index = [0usize; 3];
        let mut rest = flat;
        for d in (0..dims).rev() {
            index[d] = rest % lengths[d];
            rest /= lengths[d];
        }
        index
    };
    let mut measured: Vec<Option<f64>> = vec![None; total];
    for (cell, latencies) in &mut cells {
        let mut flat = 0;
        for d in 0..dims {
            flat = flat * lengths[d] + values[d].binary_search(&cell[d]).unwrap_or(0);
        }
        measured[flat] = Some(median(latencies));
    }
    let known: Vec<(usize, [usize; 3], f64)> =
        measured.iter().enumerate().filter_map(|(flat, v)| v.map(|v| (flat, index_of(flat), v))).collect();
    let mut latency_s = Vec::with_capacity(total);
    for (flat, value) in measured.iter().enumerate() {
        if let Some(v) = value {
            latency_s.push(*v);
            continue;
        }
        // The nearest measured cell (fewest index steps; the first in order on ties), carried
        // here by the rule outside a grid: held where this cell is smaller, grown by the work
        // ratio where it is larger.
        let here = index_of(flat);
        let distance = |other: &[usize; 3]| (0..dims).map(|d| here[d].abs_diff(other[d])).sum::<usize>();
        let (_, there, v) = known.iter().min_by_key(|(f, other, _)| (distance(other), *f))?;
        let mut scaled = *v;
        for d in 0..dims {
            let (x, x0) = (values[d][here[d]] as f64, values[d][there[d]] as f64);
            if x > x0 {
                scaled *= (x / x0).powf(axes[d].1);
            }
        }
        latency_s.push(scaled);
    }
    let inner = lengths[dims - 1];
    let latency_us = latency_s
        .chunks(inner)
        .map(|line| line.iter().map(|s| format_significant(s * 1e6)).collect::<Vec<_>>().join(" "))
        .collect();
    let file = GridFile {
        axes: axes
            .iter()
            .zip(&values)
            .map(|((name, exponent), values)| AxisFile {
                name: name.to_string(),
                values: values.iter().map(u64::to_string).collect::<Vec<_>>().join(" "),
                growth_exponent: *exponent,
            })
            .collect(),
        measured_cells: cells.len(),
        latency_us,
    };
    Some(Built { file, rows_in_grid })
}

/// Evenly spread rows of `rows` (sorted), at most `count`.
fn spread(mut rows: Vec<HeldOutRow>, count: usize) -> Vec<HeldOutRow> {
    rows.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    if rows.len() <= count {
        return rows;
    }
    let n = rows.len();
    (0..count).map(|i| rows[i * n / count].clone()).collect()
}

fn dtype_error(table: &ParquetTable, column: &str, value: &str, known: &str) -> Error {
    Error::at(
        Location { file: table.file.clone(), line: None, field: Some(column.to_string()) },
        format!("unknown dtype {value:?}; known: {known}"),
    )
}

fn no_rows(table: &ParquetTable, what: &str) -> Error {
    Error::in_file(&table.file, format!("no rows servesim can use ({what})"))
}

/// Largest size accepted on any axis (far beyond any measured table).
const MAX_SIZE: i64 = 1 << 40;

/// The GEMM samples of a table, by dtype. int8 weight-only GEMMs are skipped: no servesim
/// weight format runs them.
fn gemm_samples(table: &ParquetTable) -> Result<(BTreeMap<GemmDtype, Vec<Sample>>, usize)> {
    let dtypes = table.strings("gemm_dtype")?;
    let (m, n, k) = (table.ints("m", (1, MAX_SIZE))?, table.ints("n", (1, MAX_SIZE))?, table.ints("k", (1, MAX_SIZE))?);
    let latency = table.positive_floats("latency")?;
    let known = super::times::GEMM_DTYPES.map(GemmDtype::name).join(", ");
    let mut seen = BTreeSet::new();
    let mut by_dtype: BTreeMap<GemmDtype, Vec<Sample>> = BTreeMap::new();
    let mut used = 0;
    for i in 0..table.rows() {
        let dtype = GemmDtype::parse(&dtypes[i]).ok_or_else(|| dtype_error(table, "gemm_dtype", &dtypes[i], &known))?;
        if dtype == GemmDtype::Int8WeightOnly || !seen.insert((dtype, m[i], n[i], k[i])) {
            continue;
        }
        used += 1;
        let on_m = is_power_of_two(m[i]) || (m[i] % 16 == 0 && m[i] <= 256) || m[i] % 512 == 0;
        let on_grid = on_m && is_power_of_two(n[i]) && is_power_of_two(k[i]);
        let (mu, nu, ku) = (m[i] as u64, n[i] as u64, k[i] as u64);
        by_dtype.entry(dtype).or_default().push(Sample {
            cell: on_grid.then_some([mu, nu, ku]),
            latency_s: latency[i] * 1e-3,
            row: HeldOutRow {
                table: "gemm".into(),
                dtype: dtype.name().into(),
                m: mu,
                n: nu,
                k: ku,
                latency_s: latency[i] * 1e-3,
                ..HeldOutRow::default()
            },
        });
    }
    Ok((by_dtype, used))
}

/// Attention samples by (attention dtype, KV dtype, head dim), for context (`generation`
/// false) or generation tables.
#[allow(clippy::type_complexity)]
fn attention_samples(
    table: &ParquetTable,
    generation: bool,
) -> Result<(BTreeMap<(AttentionDtype, AttentionDtype, u64), Vec<Sample>>, usize)> {
    let count = (1, MAX_SIZE);
    let batch = table.ints("batch_size", count)?;
    let isl = table.ints("isl", count)?;
    let heads = table.ints("num_heads", count)?;
    let kv_heads = table.ints("num_key_value_heads", count)?;
    let head_dim = table.ints("head_dim", count)?;
    let window = table.ints_or("window_size", (0, MAX_SIZE), 0)?;
    let step = table.ints_or("step", (0, MAX_SIZE), 0)?;
    let attn = table.strings_or("attn_dtype", "bfloat16")?;
    let kv = table.strings("kv_cache_dtype")?;
    let latency = table.positive_floats("latency")?;
    let known = "bfloat16, fp8";
    let mut seen = BTreeSet::new();
    let mut out: BTreeMap<(AttentionDtype, AttentionDtype, u64), Vec<Sample>> = BTreeMap::new();
    let mut used = 0;
    for i in 0..table.rows() {
        let a = AttentionDtype::parse(&attn[i]).ok_or_else(|| dtype_error(table, "attn_dtype", &attn[i], known))?;
        let k = AttentionDtype::parse(&kv[i]).ok_or_else(|| dtype_error(table, "kv_cache_dtype", &kv[i], known))?;
        // servesim models full attention; context tables time whole prompts (step 0).
        let standard = STANDARD_HEAD_DIMS.contains(&head_dim[i]);
        if !standard || window[i] != 0 || (!generation && step[i] != 0) || heads[i] % kv_heads[i] != 0 {
            continue;
        }
        let key = (a, k, head_dim[i] as u64);
        if !seen.insert((key, batch[i], isl[i], heads[i], kv_heads[i], step[i])) {
            continue;
        }
        used += 1;
        let ratio = heads[i] / kv_heads[i];
        let tokens = isl[i] + step[i];
        let width = batch[i] * if generation { kv_heads[i] } else { heads[i] };
        let on_grid = is_power_of_two(ratio) && is_power_of_two(width) && is_power_of_two(tokens);
        out.entry(key).or_default().push(Sample {
            cell: on_grid.then_some([ratio as u64, width as u64, tokens as u64]),
            latency_s: latency[i] * 1e-3,
            row: HeldOutRow {
                table: if generation { "generation_attention" } else { "context_attention" }.into(),
                dtype: a.name().into(),
                kv_dtype: k.name().into(),
                head_dim: head_dim[i] as u64,
                batch: batch[i] as u64,
                tokens: tokens as u64,
                heads: heads[i] as u64,
                kv_heads: kv_heads[i] as u64,
                latency_s: latency[i] * 1e-3,
                ..HeldOutRow::default()
            },
        });
    }
    Ok((out, used))
}

/// All-reduce samples by device count (eager-mode kernels skipped, as AIConfigurator does:
/// serving engines run all-reduces inside CUDA graphs).
fn all_reduce_samples(table: &ParquetTable) -> Result<(BTreeMap<u64, Vec<Sample>>, usize)> {
    let gpus = table.ints("num_gpus", (1, 1 << 20))?;
    let size = table.ints("message_size", (1, MAX_SIZE))?;
    let latency = table.positive_floats("latency")?;
    let kernel = table.strings_or("kernel_source", "")?;
    let backend = table.strings_or("backend", "")?;
    let mut seen = BTreeSet::new();
    let mut out: BTreeMap<u64, Vec<Sample>> = BTreeMap::new();
    let mut used = 0;
    for i in 0..table.rows() {
        if kernel[i].ends_with("_eager") || backend[i].ends_with("_eager") || gpus[i] < 2 {
            continue;
        }
        if !seen.insert((gpus[i], size[i])) {
            continue;
        }
        used += 1;
        // message_size counts 16-bit elements.
        let bytes = size[i] as u64 * 2;
        let on_grid = is_power_of_two(size[i]) && size[i].trailing_zeros() % 2 == 1;
        out.entry(gpus[i] as u64).or_default().push(Sample {
            cell: on_grid.then_some([bytes, 0, 0]),
            latency_s: latency[i] * 1e-3,
            row: HeldOutRow {
                table: "all_reduce".into(),
                gpus: gpus[i] as u64,
                message_bytes: bytes,
                latency_s: latency[i] * 1e-3,
                ..HeldOutRow::default()
            },
        });
    }
    Ok((out, used))
}

fn relative(system: &Path, path: &Path) -> String {
    path.strip_prefix(system).unwrap_or(path).display().to_string()
}

/// Converts one system × framework × version.
pub fn convert(options: &ConvertOptions) -> Result<Conversion> {
    if !FRAMEWORKS.contains(&options.framework.as_str()) {
        return Err(Error::usage(
            "--engine",
            format!("unknown framework {:?}; AIConfigurator times {}", options.framework, FRAMEWORKS.join(", ")),
        ));
    }
    let (system, system_name) = system_dir(options)?;
    let fw = options.framework.as_str();
    let versions: Vec<String> = subfolders(&system.join("gemm").join(fw))
        .into_iter()
        .filter(|v| system.join("attention").join(fw).join(v).is_dir())
        .collect();
    let version = match &options.version {
        Some(v) if versions.contains(v) => v.clone(),
        requested => {
            let latest = versions.iter().max_by_key(|v| version_order(v)).cloned();
            match (requested, latest) {
                (None, Some(latest)) => latest,
                _ => {
                    return Err(Error::usage(
                        if requested.is_some() { "--version" } else { "--engine" },
                        format!(
                            "{}: no {fw} version with both GEMM and attention tables{} (versions with both: {})",
                            system.display(),
                            requested.as_ref().map(|v| format!(" is {v}")).unwrap_or_default(),
                            if versions.is_empty() { "none".to_string() } else { versions.join(", ") }
                        ),
                    ))
                }
            }
        }
    };
    let mut tables = BTreeMap::new();
    let mut held_out = Vec::new();
    let mut sample = Vec::new();
    let mut provenance = |name: &str, table: &ParquetTable, dir: &Path, used: usize, in_grid: usize| -> Result<()> {
        tables.insert(
            name.to_string(),
            TableProvenance {
                file: relative(&system, Path::new(&table.file)),
                rows: table.rows(),
                rows_used: used,
                rows_in_grid: in_grid,
                collection_meta: collection_meta(dir)?,
            },
        );
        Ok(())
    };

    // GEMMs.
    let dir = system.join("gemm").join(fw).join(&version);
    let table = ParquetTable::read(&dir.join("gemm_perf.parquet"))?;
    let (by_dtype, used) = gemm_samples(&table)?;
    let mut gemm = BTreeMap::new();
    let mut in_grid = 0;
    for (dtype, samples) in &by_dtype {
        let axes = [("m_tokens", 1.0), ("n_outputs", 1.0), ("k_inputs", 1.0)];
        if let Some(built) = build_grid(&axes, samples) {
            in_grid += built.rows_in_grid;
            gemm.insert(dtype.name().to_string(), built.file);
            let rows: Vec<HeldOutRow> = samples.iter().filter(|s| s.cell.is_none()).map(|s| s.row.clone()).collect();
            sample.extend(spread(rows.clone(), HELD_OUT_SAMPLE));
            held_out.extend(rows);
        }
    }
    if gemm.is_empty() {
        return Err(no_rows(&table, "GEMMs of a dtype servesim uses"));
    }
    provenance("gemm", &table, &dir, used, in_grid)?;

    // Attention.
    let dir = system.join("attention").join(fw).join(&version);
    let mut attention = [Vec::new(), Vec::new()];
    for (slot, generation) in [(0, false), (1, true)] {
        let name = if generation { "generation_attention" } else { "context_attention" };
        let table = ParquetTable::read(&dir.join(format!("{name}_perf.parquet")))?;
        let (by_key, used) = attention_samples(&table, generation)?;
        let axes = if generation {
            [("query_heads_per_kv_head", 0.0), ("sequences_x_kv_heads", 1.0), ("kv_tokens", 1.0)]
        } else {
            [("query_heads_per_kv_head", 0.0), ("sequences_x_query_heads", 1.0), ("prompt_tokens", 2.0)]
        };
        let mut in_grid = 0;
        let mut rows = Vec::new();
        for ((attn, kv, head_dim), samples) in &by_key {
            if let Some(built) = build_grid(&axes, samples) {
                in_grid += built.rows_in_grid;
                attention[slot].push(AttentionGrid {
                    attn_dtype: attn.name().into(),
                    kv_cache_dtype: kv.name().into(),
                    head_dim: *head_dim,
                    grid: built.file,
                });
                rows.extend(samples.iter().filter(|s| s.cell.is_none()).map(|s| s.row.clone()));
            }
        }
        if attention[slot].is_empty() {
            return Err(no_rows(&table, "full attention with whole groups of query heads per KV head"));
        }
        sample.extend(spread(rows.clone(), HELD_OUT_SAMPLE));
        held_out.extend(rows);
        provenance(name, &table, &dir, used, in_grid)?;
    }
    let [context_attention, generation_attention] = attention;

    // All-reduce: the framework's own kernels, from this version or the latest before it.
    let mut all_reduce = Vec::new();
    if let Some(comm_version) = latest_version(&system, "comm", fw, Some(&version)) {
        let dir = system.join("comm").join(fw).join(&comm_version);
        let path = dir.join("custom_allreduce_perf.parquet");
        if path.is_file() {
            let table = ParquetTable::read(&path)?;
            let (by_gpus, used) = all_reduce_samples(&table)?;
            let mut in_grid = 0;
            let mut rows = Vec::new();
            for (gpus, samples) in &by_gpus {
                if let Some(built) = build_grid(&[("message_bytes", 1.0)], samples) {
                    in_grid += built.rows_in_grid;
                    all_reduce.push(AllReduceGrid { gpus: *gpus, grid: built.file });
                    rows.extend(samples.iter().filter(|s| s.cell.is_none()).map(|s| s.row.clone()));
                }
            }
            sample.extend(spread(rows.clone(), HELD_OUT_SAMPLE));
            held_out.extend(rows);
            provenance("all_reduce", &table, &dir, used, in_grid)?;
        }
    }

    let mut file = MeasuredFile {
        source: "aiconfigurator".into(),
        aiconfigurator_version: package_version(&system),
        licence: LICENCE.into(),
        system: system_name,
        device: options.device.clone(),
        framework: fw.to_string(),
        framework_version: version.clone(),
        generated_by: format!(
            "servesim calibrate --aiconfigurator <aiconfigurator_core>/systems/data --device {} --engine {fw} --version {version} --out {}",
            options.device, options.out_name
        ),
        method: "grids of measured latencies on log-spaced axes, interpolated multilinearly in log space; held out of the grids and used for held_out_error: GEMM rows with an odd m or an n or k not a power of two; attention rows with a head ratio, sequences x heads or token count not a power of two; all-reduce sizes of an even power of two (see sim/calibration/aiconfigurator/convert.rs)".into(),
        tables,
        held_out_error: BTreeMap::new(),
        gemm,
        context_attention,
        generation_attention,
        all_reduce,
    };
    // Errors are those of the file as written and read back (4-digit latencies included).
    let text = crate::input::to_yaml(&file).map_err(|e| Error::in_file(&options.out_name, e))?;
    let times = MeasuredTimes::from_source(&YamlSource::from_text(&options.out_name, PathBuf::new(), text))?;
    file.held_out_error = held_out_errors(&held_out, &|op, context| {
        use crate::cost::OperatorTimes;
        times.seconds(op, context)
    })
    .into_iter()
    .map(|(table, e)| (table, HeldOutError { rows: e.rows, median: round4(e.median), p90: round4(e.p90) }))
    .collect();
    Ok(Conversion { file, held_out_sample: sample })
}

/// Four decimals: error fractions printed to 0.01 %.
fn round4(value: f64) -> f64 {
    (value * 1e4).round() / 1e4
}
