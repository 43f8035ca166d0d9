//! The terminal summary table.

use crate::metrics::{Distribution, Summary};
use std::fmt::Write;

/// `value` scaled and printed with `decimals`, or "-" when there is no value (a statistic
/// over no samples).
fn num(value: Option<f64>, scale: f64, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{:.*}", decimals, v * scale))
}

fn ms(d: &Distribution) -> String {
    let cell = |v: Option<f64>| format!("{:>10}", num(v, 1e3, 2));
    [d.mean, d.p50, d.p90, d.p99, d.max].into_iter().map(cell).collect::<Vec<_>>().join(" ")
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
        "throughput      {} req/s, {} input tok/s, {} output tok/s",
        num(t.requests_per_s, 1.0, 2),
        num(t.input_tokens_per_s, 1.0, 0),
        num(t.output_tokens_per_s, 1.0, 0)
    );
    let g = &summary.goodput;
    let _ = writeln!(
        out,
        "goodput         {} req/s within SLO ({}% of requests; ttft ≤ {}, tpot ≤ {}, e2e ≤ {})",
        num(g.goodput_requests_per_s, 1.0, 2),
        num(g.fraction_meeting_slo, 100.0, 1),
        g.slo.ttft_s.map_or("-".into(), |v| format!("{v} s")),
        g.slo.tpot_s.map_or("-".into(), |v| format!("{v} s")),
        g.slo.e2e_s.map_or("-".into(), |v| format!("{v} s")),
    );
    let k = &summary.kv_cache;
    let _ = writeln!(
        out,
        "KV cache        {} blocks × {} tokens; peak {:.1}%, mean {}%",
        k.capacity_blocks,
        k.block_size_tokens,
        k.peak_occupancy * 100.0,
        num(k.mean_occupancy, 100.0, 1)
    );
    if let Some(p) = &summary.prefix_cache {
        let _ = writeln!(
            out,
            "prefix cache    {}% of {} prompt tokens found cached; {} evictions",
            num(p.hit_rate, 100.0, 1),
            p.prompt_tokens,
            p.evictions
        );
    }
    if let Some(o) = &summary.kv_offload {
        let _ = writeln!(
            out,
            "KV offload      {} swapped out, {} back in; {} prefix blocks loaded from host, {} from NVMe; {:.3} s of transfers",
            o.swap_outs, o.swap_ins, o.prefix_blocks_from_host, o.prefix_blocks_from_nvme, o.transfer_s
        );
    }
    if let Some(sp) = &summary.speculation {
        let _ = writeln!(
            out,
            "speculation     {}% of {} drafted tokens accepted, {} tokens per verification; drafting {:.3} s of {:.3} s verifying steps; {} tokens rejected ({:.3e} FLOPs, {:.0} J)",
            num(sp.acceptance_rate, 100.0, 1),
            sp.drafted_tokens,
            num(sp.tokens_per_step, 1.0, 2),
            sp.draft_s,
            sp.verify_step_s,
            sp.rejected_tokens,
            sp.wasted_flops,
            sp.wasted_energy_j
        );
    }
    for d in &summary.devices {
        let role = if d.role == "colocated" { String::new() } else { format!(" {}", d.role) };
        let _ = writeln!(
            out,
            "pool {:<10} {} × {} (TP {}{role}): busy {}%, compute {}%, memory bw {}%, {} iterations",
            d.pool,
            d.devices,
            d.device,
            d.tensor_parallel,
            num(d.busy_fraction, 100.0, 1),
            num(d.mean_compute_utilization, 100.0, 1),
            num(d.mean_memory_utilization, 100.0, 1),
            d.iterations
        );
    }
    if summary.roles.len() > 1 {
        for r in &summary.roles {
            let _ = writeln!(
                out,
                "role {:<10} {} devices on average: busy {}%, {:.0} kJ, ${:.4}",
                r.role,
                num(r.mean_devices, 1.0, 1),
                num(r.busy_fraction, 100.0, 1),
                r.energy_j / 1e3,
                r.cost_usd
            );
        }
    }
    if let Some(d) = &summary.disaggregation {
        let _ = writeln!(
            out,
            "KV transfer     {} transfers, {:.2} GB moved; time p50 {} ms, p99 {} ms; decode wait p99 {} ms; {} role switches",
            d.transfer_s.count,
            d.kv_bytes_moved / 1e9,
            num(d.transfer_s.p50, 1e3, 2),
            num(d.transfer_s.p99, 1e3, 2),
            num(d.decode_wait_s.p99, 1e3, 2),
            d.role_switches
        );
    }
    let e = &summary.energy;
    let _ = writeln!(
        out,
        "energy          {:.0} kJ, {} J/output token, {} J/request, mean {} W/device",
        e.total_j / 1e3,
        num(e.j_per_output_token, 1.0, 3),
        num(e.j_per_request, 1.0, 1),
        num(e.mean_power_w, 1.0, 0)
    );
    let _ = writeln!(
        out,
        "cost            ${:.4} total, ${} per million output tokens",
        e.cost_usd,
        num(e.usd_per_million_output_tokens, 1.0, 3)
    );
    out
}
