//! Flows sharing ports: the bytes in flight between devices, with rates set by max-min
//! fairness (progressive filling) over the ports they cross, so that every flow crossing a
//! port gets an equal share of it unless it is limited elsewhere, and a flow may be capped
//! (e.g. at the rate its data is produced).
//!
//! Time is integer nanoseconds; rates are bytes per nanosecond. The set is advanced to an
//! instant, then asked when its next flow finishes; callers schedule that instant. This module
//! knows nothing of requests or KV caches.

use crate::engine::SimTime;
use std::collections::BTreeMap;

/// One flow.
#[derive(Debug, Clone)]
struct Flow {
    ports: Vec<usize>,
    remaining: f64,
    cap: Option<f64>,
    rate: f64,
}

/// Flows in flight over ports of fixed capacity.
#[derive(Debug, Clone)]
pub struct FlowSet {
    capacity: Vec<f64>,
    flows: BTreeMap<u64, Flow>,
    updated: SimTime,
}

/// Bytes below which a flow counts as done (rounding of rate × time).
const DONE_BYTES: f64 = 1e-3;

impl FlowSet {
    /// Ports with the given capacities, bytes per second.
    pub fn new(port_bytes_per_s: Vec<f64>) -> Self {
        FlowSet {
            capacity: port_bytes_per_s.into_iter().map(|c| c * 1e-9).collect(),
            flows: BTreeMap::new(),
            updated: SimTime::ZERO,
        }
    }

    /// Whether no flow is in flight.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Moves every flow's bytes forward to `now` at its current rate.
    pub fn advance(&mut self, now: SimTime) {
        let dt = (now - self.updated) as f64;
        if dt > 0.0 {
            for flow in self.flows.values_mut() {
                flow.remaining -= flow.rate * dt;
            }
        }
        self.updated = now;
    }

    /// Adds flow `id` of `bytes` over `ports` at `now`, capped at `cap_bytes_per_s` if given.
    pub fn add(&mut self, now: SimTime, id: u64, ports: Vec<usize>, bytes: f64, cap_bytes_per_s: Option<f64>) {
        self.advance(now);
        self.flows.insert(id, Flow { ports, remaining: bytes, cap: cap_bytes_per_s.map(|c| c * 1e-9), rate: 0.0 });
        self.rebalance();
    }

    /// Lifts flow `id`'s cap at `now`.
    pub fn uncap(&mut self, now: SimTime, id: u64) {
        self.advance(now);
        if let Some(flow) = self.flows.get_mut(&id) {
            flow.cap = None;
        }
        self.rebalance();
    }

    /// Removes and returns the flows finished by `now` (after advancing to it).
    pub fn take_finished(&mut self, now: SimTime) -> Vec<u64> {
        self.advance(now);
        let done: Vec<u64> = self.flows.iter().filter(|(_, f)| f.remaining <= DONE_BYTES).map(|(&id, _)| id).collect();
        if !done.is_empty() {
            for id in &done {
                self.flows.remove(id);
            }
            self.rebalance();
        }
        done
    }

    /// When the next flow finishes, at current rates.
    pub fn next_finish(&self) -> Option<SimTime> {
        self.flows
            .values()
            .filter_map(|f| {
                if f.remaining <= DONE_BYTES {
                    Some(0)
                } else if f.rate > 0.0 {
                    Some((f.remaining / f.rate).ceil() as u64)
                } else {
                    None
                }
            })
            .min()
            .map(|delay| self.updated + delay)
    }

    /// The current rate of flow `id`, bytes per second.
    pub fn rate_bytes_per_s(&self, id: u64) -> Option<f64> {
        self.flows.get(&id).map(|f| f.rate * 1e9)
    }

    /// Max-min fair rates by progressive filling: raise every unfrozen flow's rate equally
    /// until a port saturates or a flow reaches its cap, freeze those, repeat.
    fn rebalance(&mut self) {
        let mut residual = self.capacity.clone();
        let mut frozen: BTreeMap<u64, bool> = BTreeMap::new();
        for (&id, flow) in self.flows.iter_mut() {
            flow.rate = 0.0;
            // A flow with no port (source and destination on one device) is not limited by
            // the network; give it its cap or an effectively unlimited rate.
            if flow.ports.is_empty() {
                flow.rate = flow.cap.unwrap_or(f64::MAX / 4.0);
                frozen.insert(id, true);
            } else {
                frozen.insert(id, false);
            }
        }
        loop {
            let mut crossing = vec![0usize; residual.len()];
            let mut any = false;
            for (id, flow) in &self.flows {
                if !frozen[id] {
                    any = true;
                    for &port in &flow.ports {
                        crossing[port] += 1;
                    }
                }
            }
            if !any {
                break;
            }
            let mut step = f64::INFINITY;
            for (port, &count) in crossing.iter().enumerate() {
                if count > 0 {
                    step = step.min(residual[port] / count as f64);
                }
            }
            for (id, flow) in &self.flows {
                if !frozen[id] {
                    if let Some(cap) = flow.cap {
                        step = step.min(cap - flow.rate);
                    }
                }
            }
            let step = step.max(0.0);
            for (id, flow) in self.flows.iter_mut() {
                if !frozen[id] {
                    flow.rate += step;
                    for &port in &flow.ports {
                        residual[port] -= step;
                    }
                }
            }
            for (id, flow) in &self.flows {
                if frozen[id] {
                    continue;
                }
                let saturated = flow.ports.iter().any(|&p| residual[p] <= self.capacity[p] * 1e-12);
                let capped = flow.cap.is_some_and(|cap| flow.rate >= cap * (1.0 - 1e-12));
                if saturated || capped {
                    frozen.insert(*id, true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: f64 = 1e9;

    #[test]
    fn flows_through_one_port_share_it_equally_and_finish_in_n_times_the_time() {
        let mut set = FlowSet::new(vec![50.0 * GB, 400.0 * GB, 400.0 * GB]);
        // Three flows from different sources into port 0.
        for id in 0..3 {
            set.add(SimTime::ZERO, id, vec![1 + (id as usize % 2), 0], 1e9, None);
        }
        for id in 0..3 {
            assert!((set.rate_bytes_per_s(id).unwrap() - 50.0 * GB / 3.0).abs() < 1.0);
        }
        let finish = set.next_finish().unwrap();
        assert!((finish.as_secs_f64() - 3.0 * 1e9 / (50.0 * GB)).abs() < 1e-9);
        assert_eq!(set.take_finished(finish).len(), 3);
    }

    #[test]
    fn a_flow_limited_elsewhere_leaves_its_share_to_the_others() {
        let mut set = FlowSet::new(vec![100.0 * GB, 10.0 * GB]);
        set.add(SimTime::ZERO, 0, vec![0, 1], 1e9, None); // bottlenecked by port 1
        set.add(SimTime::ZERO, 1, vec![0], 1e9, None);
        assert!((set.rate_bytes_per_s(0).unwrap() - 10.0 * GB).abs() < 1.0);
        assert!((set.rate_bytes_per_s(1).unwrap() - 90.0 * GB).abs() < 1.0);
        set.add(SimTime::ZERO, 2, vec![0], 1e9, Some(5.0 * GB));
        assert!((set.rate_bytes_per_s(2).unwrap() - 5.0 * GB).abs() < 1.0);
        assert!((set.rate_bytes_per_s(1).unwrap() - 85.0 * GB).abs() < 1.0);
        set.uncap(SimTime::from_nanos(1000), 2);
        assert!((set.rate_bytes_per_s(2).unwrap() - 45.0 * GB).abs() < 1.0);
    }
}
