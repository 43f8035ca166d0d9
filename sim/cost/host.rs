//! What the serving engine adds to an iteration's device time: host work per step, and kernel
//! launches from the host where no captured graph replays them.
//!
//! A step whose batch a captured graph covers runs padded up to the graph's size; otherwise
//! its kernels are launched one by one and the step cannot finish before the host has
//! launched them all. Host work per step (scheduling, input preparation, sampling
//! bookkeeping, detokenisation) adds to the device time, or hides under it when the engine
//! overlaps the two. This module knows nothing of engine files (that is `engines`).

/// Which steps replay captured graphs.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum GraphPlan {
    /// None: every kernel is launched from the host.
    #[default]
    Eager,
    /// Decode-only steps of up to the largest size (sequences) replay whole graphs.
    DecodeOnly(Vec<u64>),
    /// Steps of up to the largest size (tokens) replay the token-parallel layers as graphs;
    /// attention kernels are launched between the pieces.
    Piecewise(Vec<u64>),
    /// Decode-only steps replay whole graphs, other steps piecewise ones (same sizes).
    FullAndPiecewise(Vec<u64>),
}

/// How one step of a batch is launched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Every kernel from the host.
    Eager,
    /// One graph for the whole step.
    Graph,
    /// Graph pieces with attention kernels launched between them.
    Piecewise,
}

/// The host side of a serving engine, in seconds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostOverheads {
    /// Fixed host time per step.
    pub step_s: f64,
    /// Host time per sequence in the step.
    pub per_sequence_s: f64,
    /// Whether host work overlaps the previous step's device work.
    pub overlapped: bool,
    /// Graph capture.
    pub graphs: GraphPlan,
    /// Host cost of one kernel launched outside a graph.
    pub kernel_launch_s: f64,
}

fn padded(sizes: &[u64], size: u64) -> Option<u64> {
    sizes.get(sizes.partition_point(|&s| s < size)).copied()
}

impl HostOverheads {
    /// How a step of `prefill_tokens` prompt tokens and `decode_tokens` decodes is launched,
    /// and the token count its token-parallel operators run over (padded to a graph).
    pub fn launch(&self, prefill_tokens: u64, decode_tokens: u64) -> (Launch, u64) {
        let tokens = prefill_tokens + decode_tokens;
        match &self.graphs {
            GraphPlan::DecodeOnly(sizes) if prefill_tokens == 0 => match padded(sizes, decode_tokens) {
                Some(size) => (Launch::Graph, size),
                None => (Launch::Eager, tokens),
            },
            GraphPlan::FullAndPiecewise(sizes) if prefill_tokens == 0 => match padded(sizes, decode_tokens) {
                Some(size) => (Launch::Graph, size),
                None => (Launch::Eager, tokens),
            },
            GraphPlan::Piecewise(sizes) | GraphPlan::FullAndPiecewise(sizes) => match padded(sizes, tokens) {
                Some(size) => (Launch::Piecewise, size),
                None => (Launch::Eager, tokens),
            },
            _ => (Launch::Eager, tokens),
        }
    }

    /// Host time of a step of `sequences` sequences.
    pub fn host_s(&self, sequences: u64) -> f64 {
        self.step_s + self.per_sequence_s * sequences as f64
    }

    /// A step's duration from its device time and host time.
    pub fn combine(&self, device_s: f64, host_s: f64) -> f64 {
        if self.overlapped {
            device_s.max(host_s)
        } else {
            device_s + host_s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_pad_the_steps_they_cover_and_only_those() {
        let host = HostOverheads { graphs: GraphPlan::DecodeOnly(vec![1, 2, 4, 8]), ..Default::default() };
        assert_eq!(host.launch(0, 3), (Launch::Graph, 4));
        assert_eq!(host.launch(0, 9), (Launch::Eager, 9), "beyond the largest capture");
        assert_eq!(host.launch(5, 3), (Launch::Eager, 8), "a prompt chunk runs eagerly");
        let host = HostOverheads { graphs: GraphPlan::Piecewise(vec![8, 16, 512]), ..Default::default() };
        assert_eq!(host.launch(100, 3), (Launch::Piecewise, 512));
        assert_eq!(host.launch(600, 0), (Launch::Eager, 600));
        let overlapped = HostOverheads { overlapped: true, ..Default::default() };
        assert_eq!(overlapped.combine(2.0, 3.0), 3.0);
        assert_eq!(HostOverheads::default().combine(2.0, 3.0), 5.0);
    }
}
