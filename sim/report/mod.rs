//! Writing a run's results: `summary.json`, `requests.csv`, `token_gaps.csv`, `timeline.csv`
//! and the terminal table, into an output folder the run owns (see [`OutputFolder`]). Output is
//! a pure function of the records, so equal runs give equal bytes.

mod folder;
mod perfetto;
mod plots;
mod table;

pub use folder::{Manifest, OutputFolder, OutputKind, MANIFEST};
pub use perfetto::{write_trace, TraceWindow};
pub use plots::{plot_dir, plot_knee, plot_run, plot_search, SweepPoint};
pub use table::render_summary_table;

use crate::cluster::RunOutput;
use crate::error::{Error, Result};
use crate::metrics::{Recorder, Summary};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Paths written by [`write_run`].
#[derive(Debug, Clone)]
pub struct WrittenFiles {
    /// summary.json.
    pub summary: PathBuf,
    /// requests.csv.
    pub requests: PathBuf,
    /// token_gaps.csv, when gaps were kept.
    pub token_gaps: Option<PathBuf>,
    /// timeline.csv, when batches were recorded (`--plots` or `--trace`).
    pub timeline: Option<PathBuf>,
}

impl WrittenFiles {
    /// Every file written.
    pub fn all(&self) -> Vec<PathBuf> {
        let mut files = vec![self.summary.clone(), self.requests.clone()];
        files.extend(self.token_gaps.iter().cloned());
        files.extend(self.timeline.iter().cloned());
        files
    }
}

fn create(path: &Path) -> Result<BufWriter<fs::File>> {
    fs::File::create(path).map(BufWriter::new).map_err(|e| Error::io(path, "cannot create file", e))
}

/// Writes the run's files into the claimed folder `folder`.
pub fn write_run(folder: &OutputFolder, summary: &Summary, run: &RunOutput) -> Result<WrittenFiles> {
    let recorder = &run.recorder;
    let dir = folder.path();
    let summary_path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(summary).expect("summary serializes");
    fs::write(&summary_path, json + "\n").map_err(|e| Error::io(&summary_path, "cannot write", e))?;

    let requests_path = dir.join("requests.csv");
    write_requests(&requests_path, recorder).map_err(|e| Error::io(&requests_path, "cannot write", e))?;

    let token_gaps = match recorder.token_gaps() {
        Some(logs) => {
            let path = dir.join("token_gaps.csv");
            write_gaps(&path, recorder, logs).map_err(|e| Error::io(&path, "cannot write", e))?;
            Some(path)
        }
        None => None,
    };
    let timeline = match &run.timeline {
        None => None,
        Some(timeline) => {
            let path = dir.join("timeline.csv");
            write_timeline(&path, run, timeline).map_err(|e| Error::io(&path, "cannot write", e))?;
            Some(path)
        }
    };
    Ok(WrittenFiles { summary: summary_path, requests: requests_path, token_gaps, timeline })
}

fn write_timeline(path: &Path, run: &RunOutput, timeline: &[crate::serving::IterationRecord]) -> std::io::Result<()> {
    let mut out = create(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    writeln!(
        out,
        "replica,start_s,stage_s,done_s,sequences,prefill_tokens,decode_tokens,kv_used_blocks,kv_capacity_blocks,waiting,power_w,idle_power_w,devices"
    )?;
    for r in timeline {
        let replica = &run.replicas[r.replica as usize];
        writeln!(
            out,
            "{},{:.9},{:.9},{:.9},{},{},{},{},{},{},{:.3},{:.3},{}",
            r.replica,
            r.start.as_secs_f64(),
            r.stage_ns as f64 * 1e-9,
            r.done.as_secs_f64(),
            r.sequences,
            r.prefill_tokens,
            r.decode_tokens,
            r.kv_used_blocks,
            replica.kv_capacity_blocks,
            r.waiting,
            r.power_w,
            replica.idle_power_w,
            replica.devices
        )?;
    }
    out.flush()
}

fn opt(value: Option<f64>) -> String {
    value.map_or_else(String::new, |v| format!("{v:.9}"))
}

fn write_requests(path: &Path, recorder: &Recorder) -> std::io::Result<()> {
    let mut out = create(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    writeln!(
        out,
        "id,arrival_s,input_tokens,output_tokens,replica,status,reject_reason,queue_wait_s,ttft_s,tpot_s,max_inter_token_s,e2e_s,tokens_emitted,preemptions,decode_replica,transfer_start_s,transfer_end_s,first_decode_s,cached_prompt_tokens"
    )?;
    for record in recorder.records() {
        let reason = record.reject_reason.map(|r| format!("\"{r}\"")).unwrap_or_default();
        let max_gap = (record.tokens_emitted >= 2).then_some(record.max_gap_ns as f64 * 1e-9);
        writeln!(
            out,
            "{},{:.9},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            record.spec.id,
            record.spec.arrival.as_secs_f64(),
            record.spec.input_tokens,
            record.spec.output_tokens,
            record.replica.map_or_else(String::new, |r| r.to_string()),
            record.status.name(),
            reason,
            opt(record.queue_wait_s()),
            opt(record.ttft_s()),
            opt(record.tpot_s()),
            opt(max_gap),
            opt(record.e2e_s()),
            record.tokens_emitted,
            record.preemptions,
            record.decode_replica.map_or_else(String::new, |r| r.to_string()),
            opt(record.transfer_start.map(|t| t.as_secs_f64())),
            opt(record.transfer_end.map(|t| t.as_secs_f64())),
            opt(record.first_decode.map(|t| t.as_secs_f64())),
            record.cached_prompt_tokens,
        )?;
    }
    out.flush()
}

fn write_gaps(path: &Path, recorder: &Recorder, logs: &[crate::metrics::GapLog]) -> std::io::Result<()> {
    let mut out = create(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    writeln!(out, "id,inter_token_gaps_ms")?;
    for (record, log) in recorder.records().iter().zip(logs) {
        write!(out, "{},", record.spec.id)?;
        for (i, gap) in log.iter().enumerate() {
            if i > 0 {
                out.write_all(b" ")?;
            }
            write!(out, "{:.6}", gap as f64 * 1e-6)?;
        }
        writeln!(out)?;
    }
    out.flush()
}
