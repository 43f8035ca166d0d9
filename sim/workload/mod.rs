//! Workloads: requests replayed from traces (Azure, Mooncake, plain CSV) or generated from
//! arrival processes and length distributions.
//!
//! The output is a list of [`RequestSpec`] sorted by arrival (ties keep file order). Each
//! random quantity has its own stream, so changing the length distribution does not move the
//! arrival times. This module does not know how requests are served.

mod synthetic;
mod trace;

pub use trace::{read_trace, TraceRow};

use crate::engine::{secs_to_nanos, SimTime};
use crate::error::Result;
use crate::input::YamlSource;
use crate::records::{PrefixHashes, PrefixSpan, RequestSpec};
use crate::scenario::schema::WorkloadSection;
use std::sync::Arc;

/// Latest arrival accepted, s (about 31.7 years): later ones are surely a unit mistake.
pub const MAX_ARRIVAL_S: f64 = 1e9;

/// Most tokens one prompt or output may have (what a request records); larger lengths are
/// refused, never clamped.
pub const MAX_TOKENS: u64 = u32::MAX as u64;

/// The requests of a workload, with what the user should know about how they were read.
#[derive(Debug, Clone, Default)]
pub struct Workload {
    /// Requests in arrival order.
    pub requests: Vec<RequestSpec>,
    /// Their prompts' prefix-block hashes.
    pub prefixes: Arc<PrefixHashes>,
    /// Things worth a warning (e.g. trace rows out of arrival order, which were sorted).
    pub warnings: Vec<String>,
}

/// Builds the request list of `section` (written in `source`) under `seed`.
pub fn load(section: &WorkloadSection, source: &YamlSource, seed: u64) -> Result<Workload> {
    let workload = match (&section.synthetic, &section.trace) {
        (Some(synthetic), None) => Workload {
            requests: synthetic::generate(synthetic, source, seed)?,
            prefixes: Arc::default(),
            warnings: Vec::new(),
        },
        (None, Some(trace)) => {
            let path = source.resolve(&trace.path);
            let limit = trace.limit.map(|l| usize::try_from(l.get()).unwrap_or(usize::MAX));
            let rows =
                read_trace(trace.format, &path, limit).map_err(|e| source.file_error("workload.trace.path", e))?;
            let mut warnings = Vec::new();
            let out_of_order = out_of_order(&rows);
            if let Some((count, first_line)) = out_of_order {
                warnings.push(format!(
                    "{}: {count} rows arrive earlier than the row before them (the first at line {first_line}); servesim replays requests sorted by arrival",
                    path.display()
                ));
            }
            let time_scale = trace.time_scale.get();
            let (first, last) =
                rows.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| (lo.min(r.arrival_ns), hi.max(r.arrival_ns)));
            let span_s = (i128::from(last) - i128::from(first)) as f64 * 1e-9;
            if span_s * time_scale > MAX_ARRIVAL_S {
                return Err(source.error(
                    "workload.trace.time_scale",
                    format!(
                        "the trace spans {span_s:.3e} s, which time_scale {time_scale} stretches to {:.3e} s, beyond the {MAX_ARRIVAL_S:.0e} s (about 31 years) servesim accepts",
                        span_s * time_scale
                    ),
                ));
            }
            let (requests, prefixes) = from_rows_with_prefixes(rows, time_scale, MOONCAKE_HASH_BLOCK_TOKENS);
            Workload { requests, prefixes: Arc::new(prefixes), warnings }
        }
        (None, None) => {
            return Err(source.error("workload", "give either `synthetic:` or `trace:`"));
        }
        (Some(_), Some(_)) => {
            return Err(source.error("workload.trace", "give either `synthetic:` or `trace:`, not both"));
        }
    };
    if workload.requests.is_empty() {
        return Err(source.error("workload", "the workload has no requests"));
    }
    Ok(workload)
}

/// Rows whose arrival is earlier than the previous row's: their count and the first's line.
fn out_of_order(rows: &[TraceRow]) -> Option<(u64, u64)> {
    let mut count = 0;
    let mut first = None;
    for pair in rows.windows(2) {
        if pair[1].arrival_ns < pair[0].arrival_ns {
            count += 1;
            first.get_or_insert(pair[1].line);
        }
    }
    first.map(|line| (count, line))
}

/// Prompt tokens per hash of Mooncake's `hash_ids` (its FAST'25 release hashes 512-token
/// blocks).
pub const MOONCAKE_HASH_BLOCK_TOKENS: u32 = 512;

/// Requests from trace rows: arrivals relative to the earliest row, scaled by `time_scale`,
/// sorted stably by arrival.
pub fn from_rows(rows: impl IntoIterator<Item = TraceRow>, time_scale: f64) -> Vec<RequestSpec> {
    from_rows_with_prefixes(rows, time_scale, MOONCAKE_HASH_BLOCK_TOKENS).0
}

/// The same, with the rows' prefix hashes of `block_tokens` each. Only hashes of full blocks
/// are kept: a last, partial block cannot be shared with a longer prompt.
pub fn from_rows_with_prefixes(
    rows: impl IntoIterator<Item = TraceRow>,
    time_scale: f64,
    block_tokens: u32,
) -> (Vec<RequestSpec>, PrefixHashes) {
    let rows: Vec<TraceRow> = rows.into_iter().collect();
    let mut prefixes = PrefixHashes { block_tokens, hashes: Vec::new() };
    let spans: Vec<PrefixSpan> = rows
        .iter()
        .map(|row| {
            let full_blocks = (row.input_tokens / block_tokens.max(1)) as usize;
            let kept = &row.prefix_hashes[..row.prefix_hashes.len().min(full_blocks)];
            let span = PrefixSpan { start: prefixes.hashes.len() as u32, blocks: kept.len() as u32 };
            prefixes.hashes.extend_from_slice(kept);
            span
        })
        .collect();
    let start = rows.iter().map(|r| r.arrival_ns).min().unwrap_or(0);
    // Readers bound each arrival to MAX_ARRIVAL_S of its own clock's range, so differences fit.
    let mut requests: Vec<RequestSpec> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| RequestSpec {
            id: index as u64,
            arrival: SimTime::from_nanos(secs_to_nanos(
                (i128::from(row.arrival_ns) - i128::from(start)) as f64 * 1e-9 * time_scale,
            )),
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
            priority: row.priority,
            prefix: spans[index],
        })
        .collect();
    requests.sort_by_key(|r| (r.arrival, r.id));
    (requests, prefixes)
}
