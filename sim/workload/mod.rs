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
use crate::error::{Error, Result};
use crate::input::YamlSource;
use crate::scenario::schema::WorkloadSection;
use crate::serving::RequestSpec;

/// Latest arrival accepted, s (about 31.7 years): later ones are surely a unit mistake.
pub const MAX_ARRIVAL_S: f64 = 1e9;

/// Builds the request list of `section` (written in `source`) under `seed`.
pub fn load(section: &WorkloadSection, source: &YamlSource, seed: u64) -> Result<Vec<RequestSpec>> {
    let requests = match (&section.synthetic, &section.trace) {
        (Some(synthetic), None) => synthetic::generate(synthetic, source, seed)?,
        (None, Some(trace)) => {
            let path = source.resolve(&trace.path);
            let rows =
                read_trace(trace.format, &path).map_err(|e| wrap_file_error(source, "workload.trace.path", e))?;
            let limit = trace.limit.map_or(usize::MAX, |l| l.get() as usize);
            from_rows(rows.into_iter().take(limit), trace.time_scale.get())
        }
        (None, None) => {
            return Err(source.error("workload", "give either `synthetic:` or `trace:`"));
        }
        (Some(_), Some(_)) => {
            return Err(source.error("workload.trace", "give either `synthetic:` or `trace:`, not both"));
        }
    };
    if requests.is_empty() {
        return Err(source.error("workload", "the workload has no requests"));
    }
    Ok(requests)
}

/// A missing trace file is the scenario's error (it names the path); a malformed row is the
/// trace file's own error (it names the row).
fn wrap_file_error(source: &YamlSource, field: &str, error: Error) -> Error {
    match error {
        Error::Io { .. } => source.error(field, error.to_string()),
        other => other,
    }
}

/// Requests from trace rows: arrivals relative to the earliest row, scaled by `time_scale`,
/// sorted stably by arrival.
pub fn from_rows(rows: impl IntoIterator<Item = TraceRow>, time_scale: f64) -> Vec<RequestSpec> {
    let rows: Vec<TraceRow> = rows.into_iter().collect();
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
        })
        .collect();
    requests.sort_by_key(|r| (r.arrival, r.id));
    requests
}
