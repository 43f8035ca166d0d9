//! The KV-transfer network: moves a finished prompt's KV cache from its prefill replica's
//! devices to its decode replica's devices over the placed routes of the fabric.
//!
//! A transfer is a set of flows, one per (sending device, receiving device) pair: every KV
//! unit (a layer's key/value head, or MLA's latent) goes from the first prefill device that
//! holds it to every decode device that holds it, so differing tensor- and pipeline-parallel
//! layouts reshard on the way. All flows in flight — of every transfer, between any replicas —
//! share the ports they cross (max-min fair, see `topology::FlowSet`), so many prefill
//! replicas sending into one decode node's NIC contend. A streamed transfer (layer-wise, as
//! Splitwise does) starts with its last prompt chunk's iteration: the KV of earlier chunks
//! moves at once, the chunk's KV moves no faster than its layers are computed, and its last
//! layer's share moves when the iteration ends. The transfer is done when its last flow's
//! last byte arrives (plus the route's latency); then the decode replica gets the request and
//! the prefill replica frees its KV.

use super::messages::{Msg, ServingContext, ServingState, TransferOrder, TransferRecord};
use crate::engine::{Component, EventId, SimTime};
use crate::hardware::Dtype;
use crate::model::{ModelSpec, Parallelism};
use crate::topology::{Fabric, FlowSet};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where a replica keeps its KV: its devices (stage-major) and how the model is split.
#[derive(Debug, Clone)]
pub struct KvLayout {
    /// Fabric device indices, stage by stage.
    pub devices: Vec<usize>,
    /// The split.
    pub parallelism: Parallelism,
    /// The model.
    pub model: Arc<ModelSpec>,
    /// KV-cache dtype.
    pub kv_dtype: Dtype,
}

/// Bytes per token each (sending device, receiving device) pair moves between two layouts.
pub fn kv_flows(from: &KvLayout, to: &KvLayout) -> Vec<(usize, usize, f64)> {
    let model = &from.model;
    let unit_bytes = Parallelism::kv_unit_bytes(model, from.kv_dtype);
    let (p, d) = (from.parallelism, to.parallelism);
    let mut bytes: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for sp in 0..p.pipeline {
        let sending_layers = p.stage_layers(model, sp);
        for sd in 0..d.pipeline {
            let receiving = d.stage_layers(model, sd);
            let overlap =
                sending_layers.end.min(receiving.end).saturating_sub(sending_layers.start.max(receiving.start));
            if overlap == 0 {
                continue;
            }
            for unit in 0..Parallelism::kv_units(model) {
                let Some(sender) = (0..p.tensor).find(|&r| p.kv_units_of_rank(model, r).contains(&unit)) else {
                    continue;
                };
                let source = from.devices[(sp * p.tensor + sender) as usize];
                for receiver in (0..d.tensor).filter(|&q| d.kv_units_of_rank(model, q).contains(&unit)) {
                    let destination = to.devices[(sd * d.tensor + receiver) as usize];
                    *bytes.entry((source, destination)).or_default() += overlap as f64 * unit_bytes;
                }
            }
        }
    }
    bytes.into_iter().map(|((a, b), v)| (a, b, v)).collect()
}

/// A pair's flow plan: its route's ports and latency, and bytes per token.
#[derive(Debug, Clone)]
struct PairPlan {
    ports: Vec<usize>,
    latency_ns: u64,
    bytes_per_token: f64,
}

/// A streamed transfer's flows capped at the production rate, and the last layer's share per
/// route (ports, bytes), sent once the last chunk's iteration ends.
#[derive(Debug)]
struct Production {
    capped: Vec<u64>,
    last_layer: Vec<(Vec<usize>, f64)>,
}

#[derive(Debug)]
struct Transfer {
    order: TransferOrder,
    flows_left: usize,
    latency_ns: u64,
    start: SimTime,
    bytes: f64,
    /// Set while the last chunk computes.
    streaming: Option<Production>,
}

/// The network component.
pub struct Network {
    fabric: Arc<Fabric>,
    layouts: Vec<KvLayout>,
    flows: FlowSet,
    plans: BTreeMap<(u32, u32), Vec<PairPlan>>,
    transfers: BTreeMap<u64, Transfer>,
    flow_owner: BTreeMap<u64, u64>,
    next_transfer: u64,
    next_flow: u64,
    due: Option<(SimTime, EventId)>,
    pending_produced: Vec<(SimTime, u64)>,
}

impl Network {
    /// A network over `fabric` for replicas laid out as `layouts` (by replica index).
    pub fn new(fabric: Arc<Fabric>, layouts: Vec<KvLayout>) -> Self {
        let flows = FlowSet::new(fabric.port_bandwidths());
        Network {
            fabric,
            layouts,
            flows,
            plans: BTreeMap::new(),
            transfers: BTreeMap::new(),
            flow_owner: BTreeMap::new(),
            next_transfer: 0,
            next_flow: 0,
            due: None,
            pending_produced: Vec::new(),
        }
    }

    /// The flows between two replicas (validated to have routes when the cluster was built).
    fn plan(&mut self, from: u32, to: u32) -> &[PairPlan] {
        let (fabric, layouts) = (&self.fabric, &self.layouts);
        self.plans.entry((from, to)).or_insert_with(|| {
            kv_flows(&layouts[from as usize], &layouts[to as usize])
                .into_iter()
                .map(|(a, b, bytes_per_token)| {
                    let route = fabric.route(a, b).unwrap_or_default();
                    let latency_s: f64 = route.iter().map(|&e| fabric.port(e).latency_s).sum();
                    PairPlan {
                        ports: route.iter().map(|e| e.index()).collect(),
                        latency_ns: crate::engine::secs_to_nanos(latency_s),
                        bytes_per_token,
                    }
                })
                .collect()
        })
    }

    fn add_flow(&mut self, now: SimTime, transfer: u64, ports: Vec<usize>, bytes: f64, cap: Option<f64>) -> u64 {
        let id = self.next_flow;
        self.next_flow += 1;
        self.flows.add(now, id, ports, bytes, cap);
        self.flow_owner.insert(id, transfer);
        id
    }

    fn start(&mut self, now: SimTime, order: TransferOrder) {
        let id = self.next_transfer;
        self.next_transfer += 1;
        let plan = self.plan(order.from_replica, order.to_replica).to_vec();
        let tokens = order.tokens as f64;
        let latency_ns = plan.iter().map(|p| p.latency_ns).max().unwrap_or(0);
        let bytes: f64 = plan.iter().map(|p| p.bytes_per_token * tokens).sum();
        let mut transfer =
            Transfer { order: order.clone(), flows_left: 0, latency_ns, start: now, bytes, streaming: None };
        match order.streaming {
            None => {
                for pair in &plan {
                    self.add_flow(now, id, pair.ports.clone(), pair.bytes_per_token * tokens, None);
                    transfer.flows_left += 1;
                }
            }
            Some(streaming) => {
                let layers = streaming.layers.max(1) as f64;
                let duration_s = (streaming.produced_at - now) as f64 * 1e-9;
                let mut capped = Vec::new();
                let mut last_layer = Vec::new();
                for pair in &plan {
                    let total = pair.bytes_per_token * tokens;
                    let ready = total * streaming.ready_fraction;
                    let chunk = total - ready;
                    if ready > 0.0 {
                        self.add_flow(now, id, pair.ports.clone(), ready, None);
                        transfer.flows_left += 1;
                    }
                    // All but the last layer's share, no faster than the layers compute.
                    let produced = chunk * (layers - 1.0) / layers;
                    if produced > 0.0 {
                        let cap = if duration_s > 0.0 { Some(produced / duration_s) } else { None };
                        capped.push(self.add_flow(now, id, pair.ports.clone(), produced, cap));
                        transfer.flows_left += 1;
                    }
                    last_layer.push((pair.ports.clone(), chunk - produced));
                    transfer.flows_left += 1;
                }
                transfer.streaming = Some(Production { capped, last_layer });
            }
        }
        self.transfers.insert(id, transfer);
        if order.streaming.is_some() {
            // The last layer's KV exists when the iteration ends.
            let at = order.streaming.map_or(now, |s| s.produced_at.max(now));
            self.schedule_produced(id, at);
        }
    }

    fn schedule_produced(&mut self, id: u64, at: SimTime) {
        self.pending_produced.push((at, id));
    }

    /// Reschedules the next flow completion, cancelling the stale one.
    fn reschedule(&mut self, ctx: &mut ServingContext<'_>) {
        for (at, id) in std::mem::take(&mut self.pending_produced) {
            ctx.schedule_at(at, Msg::Produced(id));
        }
        let next = self.flows.next_finish();
        match (self.due, next) {
            (Some((at, _)), Some(next)) if at == next => {}
            (due, next) => {
                if let Some((_, event)) = due {
                    ctx.cancel(event);
                }
                self.due = next.map(|at| (at, ctx.schedule_at(at.max(ctx.now()), Msg::FlowsDue)));
            }
        }
    }

    fn finish_flows(&mut self, ctx: &mut ServingContext<'_>) {
        let now = ctx.now();
        for flow in self.flows.take_finished(now) {
            let Some(transfer_id) = self.flow_owner.remove(&flow) else { continue };
            let done = {
                let transfer = self.transfers.get_mut(&transfer_id).expect("owned flow's transfer");
                transfer.flows_left -= 1;
                transfer.flows_left == 0
            };
            if done {
                let transfer = self.transfers.remove(&transfer_id).expect("present");
                let arrived = now + transfer.latency_ns;
                let order = &transfer.order;
                let state: &mut ServingState = ctx.shared;
                state.recorder.transfer_ended(order.request as usize, arrived);
                state.transfers.durations_s.push((arrived - transfer.start) as f64 * 1e-9);
                state.transfers.bytes_moved += transfer.bytes;
                if let Some(records) = &mut state.transfers.records {
                    records.push(TransferRecord {
                        request: order.request,
                        from_replica: order.from_replica,
                        to_replica: order.to_replica,
                        start: transfer.start,
                        end: arrived,
                        bytes: transfer.bytes,
                        streamed: order.streaming.is_some(),
                    });
                }
                ctx.send_at(order.to, arrived, Msg::KvArrived(order.request));
                ctx.send_at(order.from, arrived, Msg::KvSent(order.request));
            }
        }
    }
}

impl Component<Msg, ServingState> for Network {
    fn handle(&mut self, message: Msg, ctx: &mut ServingContext<'_>) {
        let now = ctx.now();
        match message {
            Msg::Transfer(order) => {
                ctx.shared.recorder.transfer_started(order.request as usize, now);
                self.start(now, *order);
            }
            Msg::FlowsDue => {
                self.due = None;
            }
            Msg::Produced(id) => {
                if let Some(transfer) = self.transfers.get_mut(&id) {
                    if let Some(Production { capped, last_layer }) = transfer.streaming.take() {
                        for flow in capped {
                            self.flows.uncap(now, flow);
                        }
                        for (ports, bytes) in last_layer {
                            self.add_flow(now, id, ports, bytes, None);
                        }
                    }
                }
            }
            other => debug_assert!(false, "the network got {other:?}"),
        }
        self.finish_flows(ctx);
        self.reschedule(ctx);
    }
}
