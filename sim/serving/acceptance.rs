//! How many drafted tokens a speculative-decoding verification step accepts.
//!
//! A verification step of one sequence checks `k` drafted tokens; the sequence keeps a leading
//! run of `a ∈ [0, k]` of them and always emits `a + 1` tokens (the target model's own token
//! after the last accepted one: the bonus or the correction). This module only draws `a`; it
//! does not price the draft or the verification (that is the cost model, which is told how
//! many tokens verification checks by [`Acceptance::verified_tokens`]) nor decide `k`.
//!
//! Every model is reduced to conditional per-position rates: the probability that drafted
//! token `i` is accepted given tokens `< i` were. A step walks the positions and stops at the
//! first rejection, so the tree-width and batch-size adjustments act on one rate per position
//! whatever the model.
//!
//! Each request draws from its own stream, `stream_rng(seed, "acceptance/{request}")`, so a
//! request's acceptances do not depend on which other requests share its batches or in what
//! order the scheduler visits them. Bad parameters never panic here: they accept nothing, and
//! scenario loading rejects them first with [`AcceptanceModel::check`].

use crate::engine::{stream_rng, SimRng};
use rand::Rng;
use rand_distr::{Beta, Distribution};
use std::collections::HashMap;

/// How drafted tokens are accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum AcceptanceModel {
    /// Each drafted token accepted with probability `rate` given the previous ones were, so
    /// the accepted run is geometric (truncated at `k`).
    Bernoulli {
        /// Per-token acceptance probability.
        rate: f64,
    },
    /// Probability that drafted token `i` is accepted given tokens `< i` were: `rates[i]`;
    /// positions beyond the list are never accepted (a Medusa model has one head per position).
    PerPosition {
        /// Conditional rate of each position, first drafted token first.
        rates: Vec<f64>,
    },
    /// Probability of accepting exactly `a` drafted tokens, `a = 0..len-1` (sums to 1). When
    /// the list is longer than `k + 1` the mass above `k` goes to `k`: a step cannot accept more
    /// than it drafted.
    Empirical {
        /// `probabilities[a]` = P(exactly `a` accepted).
        probabilities: Vec<f64>,
    },
    /// Each request draws its own per-token rate once from Beta(`alpha`, `beta`) and is then
    /// Bernoulli with it: some prompts are easy to draft for, some hard.
    BetaPerRequest {
        /// First shape parameter (> 0).
        alpha: f64,
        /// Second shape parameter (> 0).
        beta: f64,
    },
}

impl AcceptanceModel {
    /// Why this model cannot be used with `k` drafted tokens per step, if it cannot.
    pub fn check(&self, k: u32) -> std::result::Result<(), String> {
        let probability = |what: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(format!("{what} is {value}; it must be a probability in [0, 1]"))
            }
        };
        match self {
            AcceptanceModel::Bernoulli { rate } => probability("the acceptance rate", *rate),
            AcceptanceModel::PerPosition { rates } => {
                if rates.len() > k as usize {
                    return Err(format!("a per-position list of {} rates is longer than k = {k}", rates.len()));
                }
                rates.iter().enumerate().try_for_each(|(i, &rate)| probability(&format!("rate {i}"), rate))
            }
            AcceptanceModel::Empirical { probabilities } => {
                if probabilities.is_empty() {
                    return Err("the empirical distribution is empty; give P(a accepted) for a = 0, 1, ...".into());
                }
                for (a, &p) in probabilities.iter().enumerate() {
                    if p.is_nan() || p < 0.0 {
                        return Err(format!("the probability of accepting {a} tokens is {p}; it must be ≥ 0"));
                    }
                }
                let total: f64 = probabilities.iter().sum();
                if (total - 1.0).abs() > 1e-6 {
                    return Err(format!("the empirical probabilities sum to {total}; they must sum to 1"));
                }
                Ok(())
            }
            AcceptanceModel::BetaPerRequest { alpha, beta } => {
                if alpha.is_finite() && beta.is_finite() && *alpha > 0.0 && *beta > 0.0 {
                    Ok(())
                } else {
                    Err(format!("Beta({alpha}, {beta}) is not a distribution; both parameters must be finite and > 0"))
                }
            }
        }
    }
}

/// Tree drafts: `width` candidates per position. A position is accepted if any of its
/// candidates is, `1 − (1 − p)^width` for a per-token probability `p` (the candidates are
/// taken as independent, an optimistic shortcut: real siblings are correlated); verification
/// checks `width × depth` tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeShape {
    /// Candidates per position; 1 is a chain.
    pub width: u32,
}

/// One request's random stream and, for [`AcceptanceModel::BetaPerRequest`], its rate.
#[derive(Debug, Clone)]
struct RequestStream {
    rng: SimRng,
    rate: Option<f64>,
}

/// Draws accepted-token counts for every request of a replica (or a whole run).
///
/// Rates may depend on batch size: each per-token rate is multiplied by
/// `batch^(-batch_exponent)` (batch ≥ 1) and clamped to [0, 1] before the tree widens it.
#[derive(Debug, Clone)]
pub struct Acceptance {
    model: AcceptanceModel,
    tree: TreeShape,
    batch_exponent: f64,
    seed: u64,
    /// For [`AcceptanceModel::Empirical`]: the conditional rate of each position,
    /// P(a > i) / P(a ≥ i), so that empirical draws walk positions like the other models.
    empirical_rates: Vec<f64>,
    /// Lookup only; nothing iterates it, so its order never reaches an output.
    streams: HashMap<u64, RequestStream>,
}

impl Acceptance {
    /// An acceptance model with `tree_width` candidates per position (1 = chain), rates scaled
    /// by `batch^(-batch_exponent)`, and streams derived from the scenario `seed`.
    pub fn new(model: AcceptanceModel, tree_width: u32, batch_exponent: f64, seed: u64) -> Self {
        let empirical_rates = match &model {
            AcceptanceModel::Empirical { probabilities } => conditional_rates(probabilities),
            _ => Vec::new(),
        };
        Acceptance {
            model,
            tree: TreeShape { width: tree_width },
            batch_exponent,
            seed,
            empirical_rates,
            streams: HashMap::new(),
        }
    }

    /// The model drawn from.
    pub fn model(&self) -> &AcceptanceModel {
        &self.model
    }

    /// The draft tree's shape.
    pub fn tree(&self) -> TreeShape {
        self.tree
    }

    /// Tokens one verification of a draft `drafted` positions deep checks: `width × drafted`.
    pub fn verified_tokens(&self, drafted: u32) -> u64 {
        u64::from(self.tree.width) * u64::from(drafted)
    }

    /// Accepted drafted tokens for `request`'s next verification of `drafted` tokens in a
    /// batch of `batch` sequences. Draws from the request's own stream, created on first use
    /// from `stream_rng(seed, "acceptance/{request}")`.
    pub fn draw(&mut self, request: u64, drafted: u32, batch: u32) -> u32 {
        let scale = self.batch_scale(batch);
        let seed = self.seed;
        let stream = self
            .streams
            .entry(request)
            .or_insert_with(|| RequestStream { rng: stream_rng(seed, &format!("acceptance/{request}")), rate: None });
        if let AcceptanceModel::BetaPerRequest { alpha, beta } = self.model {
            if stream.rate.is_none() {
                // Invalid parameters (which `check` rejects at load) accept nothing.
                let rate = Beta::new(alpha, beta).map_or(0.0, |d| d.sample(&mut stream.rng));
                stream.rate = Some(rate);
            }
        }
        let request_rate = stream.rate.unwrap_or(0.0);
        let mut accepted = 0;
        for position in 0..drafted as usize {
            let rate = widen(
                scaled(base_rate(&self.model, &self.empirical_rates, position, request_rate), scale),
                self.tree.width,
            );
            // `<` with a NaN rate is false: a malformed rate accepts nothing.
            if stream.rng.gen::<f64>() < rate {
                accepted += 1;
            } else {
                break;
            }
        }
        accepted
    }

    /// Forgets a finished request's stream, so memory stays bounded by the requests in flight.
    pub fn finish(&mut self, request: u64) {
        self.streams.remove(&request);
    }

    /// Requests with a live stream (drawn from and not yet finished).
    pub fn live_streams(&self) -> usize {
        self.streams.len()
    }

    /// Expected accepted drafted tokens of one verification of `drafted` tokens in a batch of
    /// `batch`: Σ_{i=1..k} Π_{j<i} r_j over the adjusted per-position rates (Bernoulli
    /// Σ p^i; empirical Σ a·p_a with the cap). For Beta it is the expectation over Beta of the
    /// Bernoulli sum, Σ_i E[p^i] = Σ_i Π_{m<i} (α+m)/(α+β+m) for a chain whose batch factor
    /// needs no clamping, and by quadrature over the Beta density otherwise.
    pub fn expected_accepted(&self, drafted: u32, batch: u32) -> f64 {
        let scale = self.batch_scale(batch);
        let width = self.tree.width;
        if let AcceptanceModel::BetaPerRequest { alpha, beta } = self.model {
            if self.model.check(drafted).is_err() {
                return 0.0;
            }
            if width == 1 && (0.0..=1.0).contains(&scale) {
                // E[(s·p)^i] = s^i E[p^i], and E[p^i] = Π_{m<i} (α+m)/(α+β+m).
                let mut moment = 1.0;
                let mut sum = 0.0;
                for m in 0..drafted {
                    let m = f64::from(m);
                    moment *= scale * (alpha + m) / (alpha + beta + m);
                    sum += moment;
                }
                return sum;
            }
            return beta_expectation(alpha, beta, |p| {
                let rate = widen(scaled(p, scale), width);
                let (mut run, mut sum) = (1.0, 0.0);
                for _ in 0..drafted {
                    run *= rate;
                    sum += run;
                }
                sum
            });
        }
        let (mut run, mut sum) = (1.0, 0.0);
        for position in 0..drafted as usize {
            run *= widen(scaled(base_rate(&self.model, &self.empirical_rates, position, 0.0), scale), width);
            sum += run;
        }
        sum
    }

    /// The factor `batch^(-batch_exponent)`; exactly 1 at batch 1 (or 0, taken as 1).
    fn batch_scale(&self, batch: u32) -> f64 {
        if batch <= 1 {
            1.0
        } else {
            f64::from(batch).powf(-self.batch_exponent)
        }
    }
}

/// The model's conditional rate of `position` before batch and tree adjustments.
fn base_rate(model: &AcceptanceModel, empirical_rates: &[f64], position: usize, request_rate: f64) -> f64 {
    match model {
        AcceptanceModel::Bernoulli { rate } => *rate,
        AcceptanceModel::PerPosition { rates } => rates.get(position).copied().unwrap_or(0.0),
        AcceptanceModel::Empirical { .. } => empirical_rates.get(position).copied().unwrap_or(0.0),
        AcceptanceModel::BetaPerRequest { .. } => request_rate,
    }
}

/// `rate × scale` clamped to [0, 1]; NaN stays NaN (and then accepts nothing).
fn scaled(rate: f64, scale: f64) -> f64 {
    (rate * scale).clamp(0.0, 1.0)
}

/// A position's rate when `width` independent candidates each succeed with `rate`.
fn widen(rate: f64, width: u32) -> f64 {
    if width == 1 {
        rate
    } else {
        1.0 - (1.0 - rate).powi(width.min(i32::MAX as u32) as i32)
    }
}

/// P(a > i) / P(a ≥ i) for each position `i` of an exactly-`a` distribution; 0 where no mass
/// is left. Walking positions with these rates and stopping at `k` reproduces the
/// distribution with the mass above `k` moved to `k`.
fn conditional_rates(probabilities: &[f64]) -> Vec<f64> {
    let mut rates = Vec::with_capacity(probabilities.len().saturating_sub(1));
    let mut at_least: f64 = probabilities.iter().sum();
    for &p in &probabilities[..probabilities.len().saturating_sub(1)] {
        let more = at_least - p;
        rates.push(if at_least > 0.0 { (more / at_least).clamp(0.0, 1.0) } else { 0.0 });
        at_least = more;
    }
    rates
}

/// E[f(p)] for p ~ Beta(α, β), for a bounded `f`, by Gauss–Legendre quadrature. The interval
/// is split at 1/2 and each half substituted (p = u^{1/α} below, 1 − p = v^{1/β} above) so the
/// density's endpoint singularities vanish from the integrand; the normalisation is computed
/// by the same rule, so its error largely cancels.
fn beta_expectation(alpha: f64, beta: f64, f: impl Fn(f64) -> f64) -> f64 {
    // 5-point Gauss–Legendre on [-1, 1].
    const NODES: [(f64, f64); 5] = [
        (0.0, 0.568_888_888_888_888_9),
        (-0.538_469_310_105_683, 0.478_628_670_499_366_5),
        (0.538_469_310_105_683, 0.478_628_670_499_366_5),
        (-0.906_179_845_938_664, 0.236_926_885_056_189_1),
        (0.906_179_845_938_664, 0.236_926_885_056_189_1),
    ];
    const PANELS: usize = 400;
    let (mut weighted, mut total) = (0.0, 0.0);
    // Lower half: p = u^{1/α}, u ∈ [0, 2^-α]; p^{α-1} dp = du/α, leaving (1-p)^{β-1}.
    // Upper half: 1 - p = v^{1/β}, v ∈ [0, 2^-β]; (1-p)^{β-1} dp = -dv/β, leaving p^{α-1}.
    let halves: [(f64, f64, bool); 2] = [(alpha, beta, false), (beta, alpha, true)];
    for (own, other, upper) in halves {
        let end = 0.5f64.powf(own);
        let width = end / PANELS as f64;
        for panel in 0..PANELS {
            let middle = (panel as f64 + 0.5) * width;
            for (x, w) in NODES {
                let u = middle + 0.5 * width * x;
                let t = u.powf(1.0 / own);
                let p = if upper { 1.0 - t } else { t };
                let density = (1.0 - t).powf(other - 1.0) / own * w * 0.5 * width;
                weighted += f(p) * density;
                total += density;
            }
        }
    }
    if total > 0.0 {
        weighted / total
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empirical_conditional_rates_move_the_mass_above_k_to_k() {
        let probabilities = vec![0.1, 0.2, 0.3, 0.4];
        let model = AcceptanceModel::Empirical { probabilities };
        let acceptance = Acceptance::new(model, 1, 0.0, 1);
        // k = 3: Σ a·p_a = 0.2 + 0.6 + 1.2; k = 1: the mass of 1, 2, 3 is all at 1.
        assert!((acceptance.expected_accepted(3, 1) - 2.0).abs() < 1e-12);
        assert!((acceptance.expected_accepted(1, 1) - 0.9).abs() < 1e-12);
        assert!((acceptance.expected_accepted(8, 1) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn beta_quadrature_agrees_with_the_closed_form() {
        for (alpha, beta) in [(0.5, 0.5), (2.0, 1.0), (8.0, 2.0), (1.0, 3.0)] {
            let acceptance = Acceptance::new(AcceptanceModel::BetaPerRequest { alpha, beta }, 1, 0.0, 1);
            let closed = acceptance.expected_accepted(6, 1);
            let quadrature = beta_expectation(alpha, beta, |p| (1..=6).map(|i| p.powi(i)).sum());
            assert!((closed - quadrature).abs() < 1e-4 * closed, "Beta({alpha}, {beta}): {closed} vs {quadrature}");
        }
    }

    #[test]
    fn batch_size_lowers_rates_and_bad_input_accepts_nothing() {
        let acceptance = Acceptance::new(AcceptanceModel::Bernoulli { rate: 0.8 }, 1, 0.5, 1);
        // Batch 4 halves the rate: Σ_{i=1..2} 0.4^i.
        assert!((acceptance.expected_accepted(2, 4) - 0.56).abs() < 1e-12);
        let mut nan = Acceptance::new(AcceptanceModel::Bernoulli { rate: f64::NAN }, 1, 0.0, 1);
        assert_eq!(nan.draw(1, 4, 1), 0);
        let mut bad_beta = Acceptance::new(AcceptanceModel::BetaPerRequest { alpha: -1.0, beta: 1.0 }, 1, 0.0, 1);
        assert_eq!(bad_beta.draw(1, 4, 1), 0);
        assert_eq!(bad_beta.expected_accepted(4, 1), 0.0);
        let mut infinite =
            Acceptance::new(AcceptanceModel::BetaPerRequest { alpha: f64::INFINITY, beta: 1.0 }, 2, 0.0, 1);
        assert!(infinite.draw(1, 4, 1) <= 4);
        let mut odd = Acceptance::new(AcceptanceModel::Bernoulli { rate: 0.5 }, 0, f64::NAN, 1);
        assert_eq!(odd.draw(1, 4, 0), 0);
        assert_eq!(odd.draw(1, 4, 8), 0);
        let mut empty = Acceptance::new(AcceptanceModel::Empirical { probabilities: vec![] }, 2, 0.0, 1);
        assert_eq!(empty.draw(1, 4, 1), 0);
    }
}
