//! The terminal summary table.

use crate::metrics::{Distribution, Summary};
use std::fmt::Write;

fn ms(d: &Distribution) -> String {
    if d.count == 0 {
        return format!("{:>10} {:>10} {:>10} {:>10} {:>10}", "-", "-", "-", "-", "-");
    }
    format!(
        "{:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
        d.mean * 1e3,
        d.p50 * 1e3,
        d.p90 * 1e3,
        d.p99 * 1e3,
        d.max * 1e3
    )
}

/// Renders the summary as a fixed-width table.
pub fn render_summary_table(summary: &Summary) -> String {
    let mut out = String::new();
    let r = &summary.requests;
    let _ = writeln!(out, "scenario {}  (model {}, seed {})", summary.scenario, summary.model, summary.seed);
    let _ = writeln!(
        out,
        "requests  {} total, {} completed, {} rejected, {} unfinished, {} preemptions; simulated {:.1} s",
        r.total, r.completed, r.rejected, r.unfinished, r.preemptions, summary.duration_s
    );
    for (reason, count) in &r.rejected_by_reason {
        let _ = writeln!(out, "          rejected {count}: {reason}");
    }
    let _ = writeln!(out);
    let _ =
        writeln!(out, "{:<16} {:>10} {:>10} {:>10} {:>10} {:>10}", "latency (ms)", "mean", "p50", "p90", "p99", "max");
    let l = &summary.latency;
    for (name, d) in [
        ("queue wait", &l.queue_wait_s),
        ("TTFT", &l.ttft_s),
        ("TPOT", &l.tpot_s),
        ("inter-token", &l.inter_token_s),
        ("end-to-end", &l.e2e_s),
    ] {
        let _ = writeln!(out, "{name:<16} {}", ms(d));
    }
    let _ = writeln!(out);
    let t = &summary.throughput;
    let _ = writeln!(
        out,
        "throughput      {:.2} req/s, {:.0} input tok/s, {:.0} output tok/s",
        t.requests_per_s, t.input_tokens_per_s, t.output_tokens_per_s
    );
    let g = &summary.goodput;
    let _ = writeln!(
        out,
        "goodput         {:.2} req/s within SLO ({:.1}% of requests; ttft ≤ {}, tpot ≤ {}, e2e ≤ {})",
        g.goodput_requests_per_s,
        g.fraction_meeting_slo * 100.0,
        g.slo.ttft_s.map_or("-".into(), |v| format!("{v} s")),
        g.slo.tpot_s.map_or("-".into(), |v| format!("{v} s")),
        g.slo.e2e_s.map_or("-".into(), |v| format!("{v} s")),
    );
    let k = &summary.kv_cache;
    let _ = writeln!(
        out,
        "KV cache        {} blocks × {} tokens; peak {:.1}%, mean {:.1}%",
        k.capacity_blocks,
        k.block_size_tokens,
        k.peak_occupancy * 100.0,
        k.mean_occupancy * 100.0
    );
    for d in &summary.devices {
        let _ = writeln!(
            out,
            "pool {:<10} {} × {} (TP {}): busy {:.1}%, compute {:.1}%, memory bw {:.1}%, {} iterations",
            d.pool,
            d.devices,
            d.device,
            d.tensor_parallel,
            d.busy_fraction * 100.0,
            d.mean_compute_utilization * 100.0,
            d.mean_memory_utilization * 100.0,
            d.iterations
        );
    }
    let e = &summary.energy;
    let _ = writeln!(
        out,
        "energy          {:.0} kJ, {:.3} J/output token, {:.1} J/request, mean {:.0} W/device",
        e.total_j / 1e3,
        e.j_per_output_token,
        e.j_per_request,
        e.mean_power_w
    );
    let _ = writeln!(
        out,
        "cost            ${:.4} total, ${:.3} per million output tokens",
        e.cost_usd, e.usd_per_million_output_tokens
    );
    out
}
