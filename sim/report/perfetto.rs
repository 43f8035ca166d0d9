//! A Chrome trace-event JSON timeline of one run (opens in Perfetto and chrome://tracing):
//! a process per replica with a track per device (one slice per batch, with its size and
//! token counts; a semi-PD replica's decode worker has its own track per device), a track per
//! pipeline hand-off (the activation transfer between stages), role switches as instants with
//! the draining before them, a process of KV-transfer tracks (one per prefill → decode replica
//! pair, a slice per transfer), and each request as an async slice from arrival to its last
//! token with its queueing nested (split between its prefill and decode replicas when
//! disaggregated).
//!
//! With pipeline parallelism the record holds the batch's first-stage start and last-stage
//! end; the stages in between are drawn evenly spaced in that interval.

use crate::cluster::RunOutput;
use crate::error::{Error, Result};
use crate::metrics::RequestStatus;
use crate::scenario::Scenario;
use serde_json::{json, Value};
use std::path::Path;

/// Only events overlapping `[start_s, end_s]` are written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceWindow {
    /// Start, s.
    pub start_s: f64,
    /// End, s.
    pub end_s: f64,
}

impl TraceWindow {
    /// Everything.
    pub const ALL: TraceWindow = TraceWindow { start_s: 0.0, end_s: f64::INFINITY };

    /// Parses `START..END` (seconds; either side may be empty).
    pub fn parse(text: &str) -> std::result::Result<TraceWindow, String> {
        let (a, b) = text.split_once("..").ok_or_else(|| format!("expected START..END in seconds, found {text:?}"))?;
        let parse = |s: &str, default: f64| -> std::result::Result<f64, String> {
            if s.trim().is_empty() {
                Ok(default)
            } else {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| format!("{s:?} is not a time in seconds"))
            }
        };
        let window = TraceWindow { start_s: parse(a, 0.0)?, end_s: parse(b, f64::INFINITY)? };
        if window.end_s <= window.start_s {
            return Err(format!("the window {text:?} is empty"));
        }
        Ok(window)
    }

    fn overlaps(&self, start_s: f64, end_s: f64) -> bool {
        end_s >= self.start_s && start_s <= self.end_s
    }
}

/// Thread ids of a semi-PD replica's decode-worker tracks start here.
const DECODE_WORKER_TID: usize = 1_000_000;
/// Track of a replica's drafting (speculative decoding).
const DRAFT_TID: usize = 200_000;

fn us(seconds: f64) -> f64 {
    (seconds * 1e6 * 1000.0).round() / 1000.0
}

/// Writes `trace.json` for `run` of `scenario`.
pub fn write_trace(path: &Path, scenario: &Scenario, run: &RunOutput, window: TraceWindow) -> Result<()> {
    let mut events: Vec<Value> = Vec::new();
    let devices = scenario.fabric.devices();
    let placements: Vec<(&crate::scenario::PoolPlan, &crate::scenario::ReplicaPlacement)> =
        scenario.pools.iter().flat_map(|pool| pool.placements.iter().map(move |p| (pool, p))).collect();
    for (replica, (pool, placement)) in placements.iter().enumerate() {
        let pid = replica + 1;
        events.push(json!({"name": "process_name", "ph": "M", "pid": pid,
            "args": {"name": format!("replica {replica} ({} × {}, TP{} PP{})", placement.devices.len(), pool.device.name, pool.parallelism.tensor, pool.parallelism.pipeline)}}));
        for (position, &device) in placement.devices.iter().enumerate() {
            let stage = position as u64 / pool.parallelism.tensor;
            events.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": device + 1,
                "args": {"name": format!("{} (stage {stage})", devices[device].label())}}));
            if pool.semi_pd.is_some() {
                events
                    .push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": DECODE_WORKER_TID + device + 1,
                    "args": {"name": format!("{} (stage {stage}, decode worker)", devices[device].label())}}));
            }
        }
        for boundary in 1..pool.parallelism.pipeline {
            events.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": 100_000 + boundary,
                "args": {"name": format!("link stage {} → {boundary}", boundary - 1)}}));
        }
        events.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": "requests"}}));
    }
    let mut drafted = std::collections::BTreeSet::new();
    for record in run.timeline.iter().flatten() {
        let (start, done) = (record.start.as_secs_f64(), record.done.as_secs_f64());
        if !window.overlaps(start, done) {
            continue;
        }
        let (pool, placement) = placements[record.replica as usize];
        let pid = record.replica as usize + 1;
        let stages = pool.parallelism.pipeline.max(1);
        let stage_s = record.stage_ns as f64 * 1e-9;
        // Stage k starts at an even share of the slack between the first stage's start and
        // the last stage's end.
        let gap =
            if stages > 1 { ((done - start) - stage_s * stages as f64).max(0.0) / (stages - 1) as f64 } else { 0.0 };
        let args = json!({"sequences": record.sequences, "prefill_tokens": record.prefill_tokens,
            "decode_tokens": record.decode_tokens, "kv_blocks_used": record.kv_used_blocks, "waiting": record.waiting,
            "role": record.role.name()});
        let worker_tid = if record.worker > 0 { DECODE_WORKER_TID } else { 0 };
        // Drafting has a track of its own: drafts the batch waited for come before the
        // verification, overlapped ones (PEARL) run beside it.
        let (draft_s, beside_s) = (record.draft_ns as f64 * 1e-9, record.draft_beside_ns as f64 * 1e-9);
        let speculating = record.draft_ns + record.draft_beside_ns > 0;
        let (name, verify_start) = if speculating { ("verify", start + draft_s) } else { ("batch", start) };
        if speculating {
            if drafted.insert(pid) {
                let device = match pool.speculation.as_ref().map(|s| &s.drafter) {
                    Some(crate::scenario::Drafter::Model { device: Some(device), .. }) => device.name.clone(),
                    _ => pool.device.name.clone(),
                };
                events.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": DRAFT_TID,
                    "args": {"name": format!("draft ({device})")}}));
            }
            for (slice, from, seconds) in [("draft", start, draft_s), ("draft ahead", verify_start, beside_s)] {
                if seconds > 0.0 {
                    events.push(json!({"name": slice, "cat": "speculation", "ph": "X", "pid": pid, "tid": DRAFT_TID,
                        "ts": us(from), "dur": us(seconds), "args": {"sequences": record.sequences}}));
                }
            }
        }
        let stage_s = (stage_s - (verify_start - start)).max(0.0);
        for (position, &device) in placement.devices.iter().enumerate() {
            let stage = position as u64 / pool.parallelism.tensor;
            let stage_start = verify_start + stage as f64 * (stage_s + gap);
            events.push(json!({"name": name, "cat": "batch", "ph": "X", "pid": pid, "tid": worker_tid + device + 1,
                "ts": us(stage_start), "dur": us(stage_s), "args": args}));
        }
        for boundary in 1..stages {
            let from = verify_start + (boundary - 1) as f64 * (stage_s + gap) + stage_s;
            events.push(
                json!({"name": "activations", "cat": "transfer", "ph": "X", "pid": pid, "tid": 100_000 + boundary,
                "ts": us(from), "dur": us(gap), "args": {"tokens": record.prefill_tokens + record.decode_tokens}}),
            );
        }
    }
    for switch in &run.role_switches {
        let (asked, at) = (switch.asked.as_secs_f64(), switch.at.as_secs_f64());
        if !window.overlaps(asked, at) {
            continue;
        }
        let pid = switch.replica as usize + 1;
        let name = format!("{} → {}", switch.from.name(), switch.to.name());
        events.push(json!({"name": format!("draining for {name}"), "cat": "role", "ph": "X", "pid": pid, "tid": 0,
            "ts": us(asked), "dur": us(at - asked)}));
        events.push(json!({"name": format!("role switch {name}"), "cat": "role", "ph": "i", "s": "p", "pid": pid,
            "tid": 0, "ts": us(at)}));
    }
    let transfers_pid = placements.len() + 1;
    if let Some(records) = &run.transfers.records {
        if !records.is_empty() {
            events.push(
                json!({"name": "process_name", "ph": "M", "pid": transfers_pid, "args": {"name": "KV transfers"}}),
            );
        }
        let mut named = std::collections::BTreeSet::new();
        for transfer in records {
            let (start, end) = (transfer.start.as_secs_f64(), transfer.end.as_secs_f64());
            if !window.overlaps(start, end) {
                continue;
            }
            let tid = transfer.from_replica as usize * placements.len() + transfer.to_replica as usize + 1;
            if named.insert(tid) {
                let link = |replica: u32| {
                    let (_, placement) = placements[replica as usize];
                    devices[placement.devices[0]].label()
                };
                events.push(json!({"name": "thread_name", "ph": "M", "pid": transfers_pid, "tid": tid,
                    "args": {"name": format!("replica {} ({}) → replica {} ({})", transfer.from_replica,
                        link(transfer.from_replica), transfer.to_replica, link(transfer.to_replica))}}));
            }
            events.push(json!({"name": format!("KV of request {}", transfer.request), "cat": "kv_transfer", "ph": "X",
                "pid": transfers_pid, "tid": tid, "ts": us(start), "dur": us(end - start),
                "args": {"bytes": transfer.bytes, "streamed": transfer.streamed}}));
        }
    }
    for record in run.recorder.records() {
        let (Some(replica), Some(last)) = (record.replica, record.last_token) else { continue };
        let arrival = record.spec.arrival.as_secs_f64();
        if record.status != RequestStatus::Completed || !window.overlaps(arrival, last.as_secs_f64()) {
            continue;
        }
        if let (Some(decode), Some(arrived)) = (record.decode_replica, record.transfer_end) {
            let id = record.spec.id;
            events.push(json!({"name": format!("request {id} decoding"), "cat": "request", "ph": "b", "id": id,
                "pid": decode as usize + 1, "tid": 0, "ts": us(arrived.as_secs_f64())}));
            events.push(json!({"name": format!("request {id} decoding"), "cat": "request", "ph": "e", "id": id,
                "pid": decode as usize + 1, "tid": 0, "ts": us(last.as_secs_f64())}));
        }
        // On a prefill replica the request's slice ends with its first token.
        let last = match (record.decode_replica, record.first_token) {
            (Some(_), Some(first)) => first,
            _ => last,
        };
        let pid = replica as usize + 1;
        let id = record.spec.id;
        let name = format!("request {id}");
        let args = json!({"input_tokens": record.spec.input_tokens, "output_tokens": record.spec.output_tokens, "preemptions": record.preemptions});
        events.push(json!({"name": name, "cat": "request", "ph": "b", "id": id, "pid": pid, "tid": 0, "ts": us(arrival), "args": args}));
        if let Some(scheduled) = record.first_scheduled {
            events.push(json!({"name": "queued", "cat": "request", "ph": "b", "id": id, "pid": pid, "tid": 0, "ts": us(arrival)}));
            events.push(json!({"name": "queued", "cat": "request", "ph": "e", "id": id, "pid": pid, "tid": 0, "ts": us(scheduled.as_secs_f64())}));
        }
        if let Some(first) = record.first_token {
            events.push(json!({"name": "first token", "cat": "request", "ph": "n", "id": id, "pid": pid, "tid": 0, "ts": us(first.as_secs_f64())}));
        }
        events.push(json!({"name": name, "cat": "request", "ph": "e", "id": id, "pid": pid, "tid": 0, "ts": us(last.as_secs_f64())}));
    }
    let trace = json!({
        "displayTimeUnit": "ms",
        "otherData": {"scenario": scenario.name, "seed": scenario.seed,
            "window_s": [window.start_s, if window.end_s.is_finite() { json!(window.end_s) } else { Value::Null }]},
        "traceEvents": events,
    });
    let text = serde_json::to_string(&trace).expect("trace serializes");
    std::fs::write(path, text).map_err(|e| Error::io(path, "cannot write", e))
}
