//! Aggregate figures of a run: request counts, latency distributions, throughput, goodput,
//! queue, KV occupancy, device utilisation, energy and cost.

use super::{Distribution, RequestStatus};
use crate::cluster::{ReplicaReport, RunOutput};
use crate::scenario::Scenario;
use crate::serving::{Role, RoleStats};
use serde::Serialize;
use std::collections::BTreeMap;

/// Service-level objectives; absent bounds always hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Slo {
    /// Time to first token, s.
    pub ttft_s: Option<f64>,
    /// Mean time per output token, s.
    pub tpot_s: Option<f64>,
    /// End-to-end latency, s.
    pub e2e_s: Option<f64>,
}

/// How requests ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequestCounts {
    /// All requests.
    pub total: u64,
    /// Finished.
    pub completed: u64,
    /// Refused at arrival.
    pub rejected: u64,
    /// Still in the system at the horizon.
    pub unfinished: u64,
    /// Rejections by reason.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Preemptions over all requests.
    pub preemptions: u64,
}

/// Latency distributions, s.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Arrival to first scheduled.
    pub queue_wait_s: Distribution,
    /// Time to first token.
    pub ttft_s: Distribution,
    /// Time per output token after the first, per request.
    pub tpot_s: Distribution,
    /// Every gap between consecutive tokens of a request.
    pub inter_token_s: Distribution,
    /// Arrival to last token.
    pub e2e_s: Distribution,
}

/// Rates over the simulated duration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ThroughputSummary {
    /// Completed requests per second (null when no time passed).
    pub requests_per_s: Option<f64>,
    /// Prompt tokens of completed requests per second.
    pub input_tokens_per_s: Option<f64>,
    /// Output tokens per second.
    pub output_tokens_per_s: Option<f64>,
}

/// Requests within the SLO.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GoodputSummary {
    /// The objectives.
    pub slo: Slo,
    /// Completed requests meeting every objective.
    pub requests_meeting_slo: u64,
    /// That count over all requests (rejected and unfinished ones count as misses).
    pub fraction_meeting_slo: Option<f64>,
    /// Requests meeting the SLO per second.
    pub goodput_requests_per_s: Option<f64>,
}

/// Waiting-queue statistics (for Little's law: mean waiting = arrival rate × mean wait).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueSummary {
    /// Time-averaged number of waiting requests, summed over replicas.
    pub mean_waiting_requests: Option<f64>,
    /// Admitted requests per second of simulated time.
    pub arrival_rate_per_s: Option<f64>,
}

/// KV-cache occupancy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KvSummary {
    /// Blocks over all replicas.
    pub capacity_blocks: u64,
    /// Tokens per block.
    pub block_size_tokens: u64,
    /// Highest occupancy of any replica, fraction.
    pub peak_occupancy: f64,
    /// Time-averaged occupancy over all replicas, fraction.
    pub mean_occupancy: Option<f64>,
}

/// Reuse of cached prompt prefixes (deployments with a prefix cache only).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PrefixCacheSummary {
    /// Prompt tokens of requests at their first admission.
    pub prompt_tokens: u64,
    /// Of those, tokens found cached (never computed).
    pub hit_tokens: u64,
    /// hit_tokens / prompt_tokens (null without prompts).
    pub hit_rate: Option<f64>,
    /// Cached prefix blocks evicted to make room.
    pub evictions: u64,
}

/// KV moved to and from host memory (deployments that offload KV only).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KvOffloadSummary {
    /// Sequences swapped out to host memory.
    pub swap_outs: u64,
    /// Sequences swapped back in.
    pub swap_ins: u64,
    /// KV blocks moved by swaps, both ways.
    pub swapped_blocks: u64,
    /// Prefix blocks loaded back from host DRAM instead of recomputed.
    pub prefix_blocks_from_host: u64,
    /// Prefix blocks loaded back from NVMe.
    pub prefix_blocks_from_nvme: u64,
    /// Seconds steps waited on host-link transfers, summed over replicas.
    pub transfer_s: f64,
}

/// Speculative decoding (deployments that speculate only).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpeculationSummary {
    /// Sequence verifications.
    pub verifications: u64,
    /// Drafted positions verified.
    pub drafted_tokens: u64,
    /// Of those, accepted.
    pub accepted_tokens: u64,
    /// Accepted over drafted (null without verifications).
    pub acceptance_rate: Option<f64>,
    /// Tokens produced per verification (accepted + 1; null without verifications).
    pub tokens_per_step: Option<f64>,
    /// Seconds of drafting, summed over batches and replicas.
    pub draft_s: f64,
    /// Seconds of the steps that verified (drafting included when serial).
    pub verify_step_s: f64,
    /// Tokens verified and thrown away (rejected drafts, unused tree candidates).
    pub rejected_tokens: u64,
    /// Energy of the rejected tokens' share of the verifying steps, J.
    pub wasted_energy_j: f64,
    /// Tokens verified only to pad batches to their longest draft (`batching: padded`).
    pub padding_tokens: u64,
    /// FLOPs of the rejected tokens: 2 per active parameter of the target per token
    /// (attention over the context not counted).
    pub wasted_flops: f64,
}

/// One pool's devices.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeviceSummary {
    /// Pool name.
    pub pool: String,
    /// What the pool's replicas do.
    pub role: String,
    /// Device profile name.
    pub device: String,
    /// Replicas.
    pub replicas: u64,
    /// Devices in the pool.
    pub devices: u64,
    /// Tensor-parallel degree.
    pub tensor_parallel: u64,
    /// Pipeline stages.
    pub pipeline_parallel: u64,
    /// KV blocks per replica.
    pub kv_capacity_blocks_per_replica: u64,
    /// The serving engine.
    pub engine: String,
    /// Where its operator times come from.
    pub operator_data: String,
    /// Fraction of time iterations were running.
    pub busy_fraction: Option<f64>,
    /// Time-averaged fraction of peak FLOP/s.
    pub mean_compute_utilization: Option<f64>,
    /// Time-averaged fraction of peak memory bandwidth.
    pub mean_memory_utilization: Option<f64>,
    /// Iterations.
    pub iterations: u64,
    /// Energy of the pool's devices, J.
    pub energy_j: f64,
    /// Device-hours used.
    pub device_hours: f64,
    /// Cost of those hours, USD.
    pub cost_usd: f64,
}

/// The devices while in one role (a switching replica counts in each role for the time it
/// spent in it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RoleSummary {
    /// colocated, prefill or decode.
    pub role: String,
    /// Devices in the role on average over the run.
    pub mean_devices: Option<f64>,
    /// Fraction of their time iterations were running.
    pub busy_fraction: Option<f64>,
    /// Iterations.
    pub iterations: u64,
    /// Energy, J.
    pub energy_j: f64,
    /// Device-hours in the role.
    pub device_hours: f64,
    /// Their cost, USD.
    pub cost_usd: f64,
}

/// How prompts moved from prefill to decode replicas.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DisaggregationSummary {
    /// KV transfer durations, from the first byte's chance to move to the last byte's arrival.
    pub transfer_s: Distribution,
    /// KV bytes moved.
    pub kv_bytes_moved: f64,
    /// Time finished prompts waited for a decode replica to reserve room (their KV held on the
    /// prefill replica meanwhile).
    pub decode_wait_s: Distribution,
    /// Role switches of switching pools.
    pub role_switches: u64,
}

/// Energy and cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EnergySummary {
    /// All devices, J.
    pub total_j: f64,
    /// Per output token, J (null when no token was produced).
    pub j_per_output_token: Option<f64>,
    /// Per prompt or output token, J.
    pub j_per_token: Option<f64>,
    /// Per completed request, J.
    pub j_per_request: Option<f64>,
    /// Mean power of all devices, W.
    pub mean_power_w: Option<f64>,
    /// Cost of all device-hours, USD.
    pub cost_usd: f64,
    /// Cost per million output tokens, USD.
    pub usd_per_million_output_tokens: Option<f64>,
}

/// Everything `summary.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Model name.
    pub model: String,
    /// Simulated time from 0 to the last event, s.
    pub duration_s: f64,
    /// Request outcomes.
    pub requests: RequestCounts,
    /// Latencies.
    pub latency: LatencySummary,
    /// Throughput.
    pub throughput: ThroughputSummary,
    /// Goodput.
    pub goodput: GoodputSummary,
    /// Queue.
    pub queue: QueueSummary,
    /// KV cache.
    pub kv_cache: KvSummary,
    /// Prefix reuse, when a pool keeps a prefix cache.
    pub prefix_cache: Option<PrefixCacheSummary>,
    /// Host-memory traffic, when a pool offloads KV.
    pub kv_offload: Option<KvOffloadSummary>,
    /// Speculative decoding, when a pool speculates.
    pub speculation: Option<SpeculationSummary>,
    /// Pools.
    pub devices: Vec<DeviceSummary>,
    /// Devices by role.
    pub roles: Vec<RoleSummary>,
    /// KV transfers and waits (disaggregated deployments only).
    pub disaggregation: Option<DisaggregationSummary>,
    /// Energy and cost.
    pub energy: EnergySummary,
    /// Engine events delivered.
    pub events: u64,
}

impl Summary {
    /// Aggregates a run of `scenario`.
    pub fn compute(scenario: &Scenario, run: &RunOutput) -> Summary {
        let records = run.recorder.records();
        let duration_s = run.engine.end_time.as_secs_f64();
        let per_s = |x: f64| ratio(x, duration_s);

        let mut counts = RequestCounts { total: records.len() as u64, ..Default::default() };
        let mut input_tokens = 0u64;
        let mut output_tokens = 0u64;
        let mut meeting = 0u64;
        for record in records {
            counts.preemptions += u64::from(record.preemptions);
            output_tokens += u64::from(record.tokens_emitted);
            match record.status {
                RequestStatus::Completed => {
                    counts.completed += 1;
                    input_tokens += u64::from(record.spec.input_tokens);
                    let slo = &scenario.slo;
                    let within = |bound: Option<f64>, value: Option<f64>| match (bound, value) {
                        (None, _) | (Some(_), None) => true,
                        (Some(b), Some(v)) => v <= b,
                    };
                    if within(slo.ttft_s, record.ttft_s())
                        && within(slo.tpot_s, record.tpot_s())
                        && within(slo.e2e_s, record.e2e_s())
                    {
                        meeting += 1;
                    }
                }
                RequestStatus::Rejected => {
                    counts.rejected += 1;
                    let reason = record.reject_reason.map_or("unknown", |r| r.category());
                    *counts.rejected_by_reason.entry(reason.to_string()).or_default() += 1;
                }
                RequestStatus::Unfinished => counts.unfinished += 1,
            }
        }

        let latency = LatencySummary {
            queue_wait_s: Distribution::of(records.iter().filter_map(|r| r.queue_wait_s())),
            ttft_s: Distribution::of(records.iter().filter_map(|r| r.ttft_s())),
            tpot_s: Distribution::of(records.iter().filter_map(|r| r.tpot_s())),
            inter_token_s: Distribution::of_histogram_ns(run.recorder.gaps()),
            e2e_s: Distribution::of(records.iter().filter_map(|r| r.e2e_s())),
        };

        let admitted = records.iter().filter(|r| r.status != RequestStatus::Rejected).count();
        let queue = QueueSummary {
            mean_waiting_requests: per_s(run.replicas.iter().map(|r| r.stats.waiting_area).sum()),
            arrival_rate_per_s: per_s(admitted as f64),
        };

        let capacity: u64 = run.replicas.iter().map(|r| r.kv_capacity_blocks).sum();
        let kv_cache = KvSummary {
            capacity_blocks: capacity,
            block_size_tokens: scenario.pools.first().map_or(0, |p| p.memory.block_size_tokens),
            peak_occupancy: run
                .replicas
                .iter()
                .map(|r| r.kv_peak_blocks as f64 / r.kv_capacity_blocks.max(1) as f64)
                .fold(0.0, f64::max),
            mean_occupancy: if capacity > 0 {
                per_s(run.replicas.iter().map(|r| r.stats.kv_block_area).sum()).map(|x| x / capacity as f64)
            } else {
                None
            },
        };

        // Only workloads whose prompts carry prefix hashes can reuse anything.
        let caching = scenario.pools.iter().any(|p| p.prefix_cache.is_some()) && !scenario.prefixes.is_empty();
        let prefix_cache = caching.then(|| {
            let prompt_tokens: u64 = run.replicas.iter().map(|r| r.stats.prompt_tokens_admitted).sum();
            let hit_tokens: u64 = run.replicas.iter().map(|r| r.stats.prefix_hit_tokens).sum();
            PrefixCacheSummary {
                prompt_tokens,
                hit_tokens,
                hit_rate: ratio(hit_tokens as f64, prompt_tokens as f64),
                evictions: run.replicas.iter().map(|r| r.stats.prefix_evictions).sum(),
            }
        });

        let offloading = scenario.pools.iter().any(|p| p.placements.iter().any(|r| r.offload.is_some()));
        let kv_offload = offloading.then(|| {
            let mut s = KvOffloadSummary::default();
            for r in &run.replicas {
                let t = &r.stats.tiers;
                s.swap_outs += t.swap_outs;
                s.swap_ins += t.swap_ins;
                s.swapped_blocks += t.swapped_blocks;
                s.prefix_blocks_from_host += t.loaded_from_host_blocks;
                s.prefix_blocks_from_nvme += t.loaded_from_nvme_blocks;
                s.transfer_s += t.transfer_s;
            }
            s
        });

        let speculating = scenario.pools.iter().any(|p| p.speculation.is_some());
        let speculation = speculating.then(|| {
            let mut s = SpeculationSummary::default();
            let mut produced = 0;
            for r in &run.replicas {
                let t = &r.stats.speculation;
                s.verifications += t.verifications;
                s.drafted_tokens += t.drafted_tokens;
                s.accepted_tokens += t.accepted_tokens;
                s.rejected_tokens += t.rejected_tokens;
                s.draft_s += t.draft_s;
                s.verify_step_s += t.verify_step_s;
                s.wasted_energy_j += t.wasted_energy_j;
                s.padding_tokens += t.padding_tokens;
                produced += t.produced_tokens;
                // A token through the target costs ~2 FLOPs per active parameter (attention
                // over the context left out).
                let model = &scenario.pools[r.pool].model;
                s.wasted_flops += t.rejected_tokens as f64 * 2.0 * model.active_parameter_count() as f64;
            }
            s.acceptance_rate = (s.drafted_tokens > 0).then(|| s.accepted_tokens as f64 / s.drafted_tokens as f64);
            s.tokens_per_step = (s.verifications > 0).then(|| produced as f64 / s.verifications as f64);
            s
        });

        // Energy of one replica in one role: busy energy plus idle power over the rest of
        // its device-time in that role.
        let role_energy = |r: &ReplicaReport, role: &RoleStats| {
            let idle_device_s =
                (f64::from(r.devices) * role.role_ns as f64 * 1e-9 - role.busy_device_ns * 1e-9).max(0.0);
            role.busy_energy_j + r.idle_power_w * idle_device_s
        };
        let mut devices = Vec::new();
        for (pool_index, pool) in scenario.pools.iter().enumerate() {
            let members: Vec<_> = run.replicas.iter().filter(|r| r.pool == pool_index).collect();
            let device_seconds: f64 = members.iter().map(|r| f64::from(r.devices) * duration_s).sum();
            let sum = |pick: &dyn Fn(&RoleStats) -> f64| -> f64 {
                members.iter().flat_map(|r| r.stats.roles.iter()).map(pick).sum()
            };
            let busy_s = sum(&|role| role.busy_device_ns * 1e-9);
            let energy_j: f64 =
                members.iter().flat_map(|r| r.stats.roles.iter().map(move |role| role_energy(r, role))).sum();
            let device_count = pool.devices();
            let device_hours = device_count as f64 * duration_s / 3600.0;
            let of_device_time = |x: f64| ratio(x, device_seconds);
            devices.push(DeviceSummary {
                pool: pool.name.clone(),
                role: pool.role.name().to_string(),
                device: pool.device.name.clone(),
                replicas: pool.replicas,
                devices: device_count,
                tensor_parallel: pool.parallelism.tensor,
                pipeline_parallel: pool.parallelism.pipeline,
                kv_capacity_blocks_per_replica: pool.memory.kv_capacity_blocks,
                engine: pool.engine.name.clone(),
                operator_data: pool.operator_data.clone(),
                busy_fraction: of_device_time(busy_s),
                mean_compute_utilization: of_device_time(sum(&|role| role.compute_utilization_s)),
                mean_memory_utilization: of_device_time(sum(&|role| role.memory_utilization_s)),
                iterations: members.iter().map(|r| r.stats.iterations()).sum(),
                energy_j,
                device_hours,
                cost_usd: device_hours * pool.device.price_per_hour_usd.get(),
            });
        }
        let mut roles = Vec::new();
        for role in Role::ALL {
            let mut summary = RoleSummary { role: role.name().to_string(), ..RoleSummary::default() };
            let mut device_seconds = 0.0;
            let mut busy_s = 0.0;
            for r in &run.replicas {
                let stats = &r.stats.roles[role.index()];
                if stats.role_ns == 0 {
                    continue;
                }
                let seconds = f64::from(r.devices) * stats.role_ns as f64 * 1e-9;
                device_seconds += seconds;
                busy_s += stats.busy_device_ns * 1e-9;
                summary.energy_j += role_energy(r, stats);
                summary.iterations += stats.iterations;
                let price = scenario.pools[r.pool].device.price_per_hour_usd.get();
                summary.cost_usd += seconds / 3600.0 * price;
                summary.device_hours += seconds / 3600.0;
            }
            if device_seconds > 0.0 {
                summary.mean_devices = ratio(device_seconds, duration_s);
                summary.busy_fraction = ratio(busy_s, device_seconds);
                roles.push(summary);
            }
        }
        let transfers = &run.transfers;
        let disaggregation = (scenario.pools.iter().any(|p| p.role.hands_off())).then(|| DisaggregationSummary {
            transfer_s: Distribution::of(transfers.durations_s.iter().copied()),
            kv_bytes_moved: transfers.bytes_moved,
            decode_wait_s: Distribution::of(transfers.decode_wait_s.iter().copied()),
            role_switches: run.role_switches.len() as u64,
        });
        let total_j: f64 = devices.iter().map(|d| d.energy_j).sum();
        let cost_usd: f64 = devices.iter().map(|d| d.cost_usd).sum();
        let per = |x: f64, n: u64| ratio(x, n as f64);
        let device_count: u64 = devices.iter().map(|d| d.devices).sum();
        let energy = EnergySummary {
            total_j,
            j_per_output_token: per(total_j, output_tokens),
            j_per_token: per(total_j, output_tokens + input_tokens),
            j_per_request: per(total_j, counts.completed),
            mean_power_w: per_s(total_j).and_then(|w| per(w, device_count)),
            cost_usd,
            usd_per_million_output_tokens: per(cost_usd * 1e6, output_tokens),
        };

        Summary {
            scenario: scenario.name.clone(),
            seed: scenario.seed,
            model: scenario.model.name.clone(),
            duration_s,
            throughput: ThroughputSummary {
                requests_per_s: per_s(counts.completed as f64),
                input_tokens_per_s: per_s(input_tokens as f64),
                output_tokens_per_s: per_s(output_tokens as f64),
            },
            goodput: GoodputSummary {
                slo: scenario.slo,
                requests_meeting_slo: meeting,
                fraction_meeting_slo: per(meeting as f64, counts.total),
                goodput_requests_per_s: per_s(meeting as f64),
            },
            requests: counts,
            latency,
            queue,
            kv_cache,
            prefix_cache,
            kv_offload,
            speculation,
            devices,
            roles,
            disaggregation,
            energy,
            events: run.engine.events_delivered,
        }
    }
}

/// `numerator / denominator`, or None when the denominator is zero (a statistic over no
/// samples or no time has no value).
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}
