//! How the tokens of one MoE layer spread over expert-parallel devices: expert popularity
//! (uniform, Zipf or Dirichlet skew), where experts sit ([`ExpertPlacement`]: contiguous, round
//! robin, EPLB-style replication of hot experts), per-iteration token counts drawn from a
//! caller's deterministic stream, and the exact expectations they are checked against.
//!
//! Pure arithmetic: no I/O, no clock; randomness only from the `rand::Rng` the caller passes
//! (the serving layer hands in one of the engine's seeded streams).
//!
//! Routing semantics: each token picks `k` **distinct** experts by successive sampling without
//! replacement in proportion to the popularity weights (the first pick ∝ w, the next ∝ w over
//! the experts not yet picked, …; equivalently Gumbel-top-k / order sampling with exponential
//! keys `E_i / w_i`). An expert with several replicas splits its tokens evenly among them (the
//! remainder of the division goes to the first replicas in placement order).
//!
//! Exact quantities (see each function for its method):
//! - [`expected_max_load_uniform`]: E[max bin] for `n` balls thrown independently and uniformly
//!   into `m` bins (= top-1 routing over devices with equal shares);
//! - [`inclusion_probabilities`]: P(expert i is among a token's k distinct picks) under the
//!   successive sampling above, by one-dimensional quadrature of the order-sampling integral;
//! - [`PlacedExperts::device_shares`]: each device's expected share of the token–expert
//!   selections, from those inclusion probabilities.

use crate::error::{Error, Result};
use rand::Rng;

fn invalid(message: impl Into<String>) -> Error {
    Error::in_file("<moe routing>", message)
}

/// How popular each expert is (the routing distribution of one layer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RoutingSkew {
    /// Every expert equally likely.
    Uniform,
    /// Expert of popularity rank r (0 = hottest) has weight ∝ 1/(r+1)^s. Unshuffled, expert i
    /// has rank i, so the hot experts are the low-numbered ones (contiguous placement then
    /// puts them all on the first device: the worst case); `shuffled` assigns ranks to experts
    /// by a seeded permutation drawn from the caller's stream, so hot experts land anywhere.
    Zipf {
        /// Exponent s ≥ 0 (0 is uniform).
        s: f64,
        /// Permute which expert gets which rank.
        shuffled: bool,
    },
    /// Weights drawn once per layer from a symmetric Dirichlet(α) over the experts (small α:
    /// a few experts take most tokens; large α: close to uniform).
    Dirichlet {
        /// Concentration α > 0.
        alpha: f64,
    },
}

impl RoutingSkew {
    /// The popularity weights of one layer's `experts` (they sum to 1). Uniform and unshuffled
    /// Zipf draw nothing from `rng`; shuffled Zipf and Dirichlet draw from it, so pass the
    /// layer's own stream to draw once per layer.
    pub fn layer_weights(&self, experts: usize, rng: &mut impl Rng) -> Result<Vec<f64>> {
        if experts == 0 {
            return Err(invalid("a MoE layer needs at least one expert"));
        }
        let mut weights = match *self {
            RoutingSkew::Uniform => vec![1.0; experts],
            RoutingSkew::Zipf { s, shuffled } => {
                if !(s.is_finite() && s >= 0.0) {
                    return Err(invalid(format!("Zipf exponent must be finite and at least 0, got {s}")));
                }
                let mut w: Vec<f64> = (0..experts).map(|r| (r as f64 + 1.0).powf(-s)).collect();
                if shuffled {
                    // Fisher–Yates with the caller's stream.
                    for i in (1..experts).rev() {
                        let j = rng.gen_range(0..=i);
                        w.swap(i, j);
                    }
                }
                w
            }
            RoutingSkew::Dirichlet { alpha } => {
                if !(alpha.is_finite() && alpha > 0.0) {
                    return Err(invalid(format!("Dirichlet α must be finite and greater than 0, got {alpha}")));
                }
                // Gamma(α) draws in log space: ln G(α) = ln G(α+1) + ln(U)/α, so small α cannot
                // underflow every weight to 0; then normalise by log-sum-exp.
                let gamma = rand_distr::Gamma::new(alpha + 1.0, 1.0).map_err(|e| invalid(e.to_string()))?;
                let logs: Vec<f64> = (0..experts)
                    .map(|_| {
                        let g: f64 = rng.sample(gamma);
                        let u: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
                        g.max(f64::MIN_POSITIVE).ln() + u.ln() / alpha
                    })
                    .collect();
                let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                logs.iter().map(|l| (l - top).exp()).collect()
            }
        };
        let total: f64 = weights.iter().sum();
        for w in &mut weights {
            *w /= total;
        }
        Ok(weights)
    }
}

/// How experts are assigned to devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertPlacement {
    /// Experts `[d·E/D, (d+1)·E/D)` on device d (E/D rounded as `e·D/E`).
    Contiguous,
    /// Expert e on device `e mod D`.
    RoundRobin,
    /// EPLB-style (DeepSeek's expert-parallel load balancer): `redundant` extra replicas go
    /// one at a time to the expert with the largest load per replica; then all replicas,
    /// heaviest first, go to the least-loaded device that has a free slot and does not hold
    /// that expert yet (slots per device: ⌈(E + redundant)/D⌉). Replicas split their expert's
    /// tokens evenly.
    Eplb {
        /// Extra replicas beyond one per expert.
        redundant: usize,
    },
}

/// Experts mapped onto devices: for each expert, the devices holding a replica of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedExperts {
    devices: usize,
    replicas: Vec<Vec<usize>>,
}

impl ExpertPlacement {
    /// Places `load.len()` experts on `devices` devices. `load` is each expert's expected
    /// load (e.g. its popularity weight); only EPLB reads it.
    pub fn place(&self, load: &[f64], devices: usize) -> Result<PlacedExperts> {
        let experts = load.len();
        if experts == 0 || devices == 0 {
            return Err(invalid("placement needs at least one expert and one device"));
        }
        if load.iter().any(|l| !(l.is_finite() && *l >= 0.0)) {
            return Err(invalid("expert loads must be finite and at least 0"));
        }
        let replicas = match *self {
            ExpertPlacement::Contiguous => (0..experts).map(|e| vec![e * devices / experts]).collect(),
            ExpertPlacement::RoundRobin => (0..experts).map(|e| vec![e % devices]).collect(),
            ExpertPlacement::Eplb { redundant } => {
                let slots = (experts + redundant).div_ceil(devices);
                if redundant > experts * (devices - 1) {
                    return Err(invalid(format!(
                        "{redundant} redundant experts cannot be placed: {experts} experts on {devices} devices hold at most one replica of each expert per device"
                    )));
                }
                let mut count = vec![1usize; experts];
                for _ in 0..redundant {
                    // The expert with the most load per replica that can still take one more
                    // (a replica per device at most); ties: the lowest index.
                    let mut best: Option<usize> = None;
                    for e in 0..experts {
                        if count[e] >= devices {
                            continue;
                        }
                        let per = |x: usize| load[x] / count[x] as f64;
                        if best.is_none_or(|b| per(e) > per(b)) {
                            best = Some(e);
                        }
                    }
                    count[best.expect("checked: some expert has room")] += 1;
                }
                let mut items: Vec<(f64, usize)> =
                    (0..experts).flat_map(|e| std::iter::repeat_n((load[e] / count[e] as f64, e), count[e])).collect();
                // Heaviest first; ties by expert index (stable sort keeps the order above).
                items.sort_by(|a, b| b.0.total_cmp(&a.0));
                let mut device_load = vec![0.0f64; devices];
                let mut used = vec![0usize; devices];
                let mut replicas: Vec<Vec<usize>> = vec![Vec::new(); experts];
                for (weight, e) in items {
                    let target = (0..devices)
                        .filter(|&d| used[d] < slots && !replicas[e].contains(&d))
                        .min_by(|&a, &b| device_load[a].total_cmp(&device_load[b]).then(used[a].cmp(&used[b])))
                        .ok_or_else(|| invalid("EPLB packing ran out of slots"))?;
                    device_load[target] += weight;
                    used[target] += 1;
                    replicas[e].push(target);
                }
                replicas
            }
        };
        Ok(PlacedExperts { devices, replicas })
    }
}

impl PlacedExperts {
    /// Number of devices.
    pub fn devices(&self) -> usize {
        self.devices
    }

    /// Number of experts (not counting replicas).
    pub fn experts(&self) -> usize {
        self.replicas.len()
    }

    /// The devices holding expert `e`, in placement order.
    pub fn replicas_of(&self, e: usize) -> &[usize] {
        &self.replicas[e]
    }

    /// Expert copies (originals and replicas) each device holds.
    pub fn experts_per_device(&self) -> Vec<usize> {
        let mut held = vec![0; self.devices];
        for devices in &self.replicas {
            for &d in devices {
                held[d] += 1;
            }
        }
        held
    }

    /// Each device's expected share of the selections when expert e is selected with
    /// probability `inclusion[e]` per token (the shares sum to 1): Σ over its replicas of
    /// `inclusion[e] / replicas(e)`, divided by Σ inclusion.
    pub fn device_shares(&self, inclusion: &[f64]) -> Vec<f64> {
        let mut share = vec![0.0; self.devices];
        for (e, devices) in self.replicas.iter().enumerate() {
            for &d in devices {
                share[d] += inclusion[e] / devices.len() as f64;
            }
        }
        let total: f64 = share.iter().sum();
        share.iter().map(|s| s / total).collect()
    }

    /// Splits per-expert token counts over the replicas: `count / r` each, the remainder to
    /// the first replicas. Returns tokens per device.
    pub fn device_loads(&self, per_expert: &[u64]) -> Vec<u64> {
        let mut load = vec![0u64; self.devices];
        for (e, devices) in self.replicas.iter().enumerate() {
            let r = devices.len() as u64;
            for (i, &d) in devices.iter().enumerate() {
                load[d] += per_expert[e] / r + u64::from((i as u64) < per_expert[e] % r);
            }
        }
        load
    }
}

/// The token counts of one layer in one iteration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerLoad {
    /// Tokens routed to each expert (each token counts once per expert it picks).
    pub per_expert: Vec<u64>,
    /// Token–expert selections each device computes (replicas split their expert's share).
    pub per_device: Vec<u64>,
}

impl LayerLoad {
    /// Largest device load over the mean device load (1 = perfectly balanced).
    pub fn max_over_mean(&self) -> f64 {
        let max = self.per_device.iter().copied().max().unwrap_or(0) as f64;
        let mean = self.per_device.iter().sum::<u64>() as f64 / self.per_device.len().max(1) as f64;
        if mean > 0.0 {
            max / mean
        } else {
            1.0
        }
    }
}

/// Routes `tokens` tokens, each to `k` distinct experts picked by successive sampling in
/// proportion to `weights`, drawing from `rng`; counts per expert and per device.
///
/// Sampling: binary search on the cumulative weights, redrawing a pick that is already taken
/// (rejection from the full distribution conditioned on the untaken experts is exactly the
/// next step of successive sampling); after 64 rejections in a row it falls back to an exact
/// linear scan over the untaken weights. Experts of weight 0 are never picked, so `k` may not
/// exceed the experts of positive weight.
pub fn route_tokens(
    tokens: u64,
    k: usize,
    weights: &[f64],
    placed: &PlacedExperts,
    rng: &mut impl Rng,
) -> Result<LayerLoad> {
    let experts = weights.len();
    if placed.experts() != experts {
        return Err(invalid(format!("{experts} weights for {} placed experts", placed.experts())));
    }
    let positive = weights.iter().filter(|w| **w > 0.0).count();
    if k == 0 || k > positive {
        return Err(invalid(format!("top-k of {k} needs 1 ≤ k ≤ {positive} (the experts of positive weight)")));
    }
    let mut cumulative = Vec::with_capacity(experts);
    let mut total = 0.0;
    for &w in weights {
        total += w;
        cumulative.push(total);
    }
    let mut per_expert = vec![0u64; experts];
    let mut picked: Vec<usize> = Vec::with_capacity(k);
    for _ in 0..tokens {
        picked.clear();
        while picked.len() < k {
            let mut choice = None;
            for _ in 0..64 {
                let x = rng.gen::<f64>() * total;
                let e = cumulative.partition_point(|&c| c <= x).min(experts - 1);
                if weights[e] > 0.0 && !picked.contains(&e) {
                    choice = Some(e);
                    break;
                }
            }
            let e = match choice {
                Some(e) => e,
                None => {
                    let left: f64 = (0..experts).filter(|e| !picked.contains(e)).map(|e| weights[e]).sum();
                    let mut x = rng.gen::<f64>() * left;
                    let mut last = None;
                    let mut found = None;
                    for e in (0..experts).filter(|e| !picked.contains(e) && weights[*e] > 0.0) {
                        last = Some(e);
                        if x < weights[e] {
                            found = Some(e);
                            break;
                        }
                        x -= weights[e];
                    }
                    found.or(last).expect("k ≤ experts of positive weight")
                }
            };
            picked.push(e);
            per_expert[e] += 1;
        }
    }
    let per_device = placed.device_loads(&per_expert);
    Ok(LayerLoad { per_expert, per_device })
}

/// P(expert i is among a token's `k` distinct picks) under successive sampling ∝ `weights`,
/// for every expert (they sum to k).
///
/// Method: successive sampling equals order sampling with keys `X_j = E_j / w_j`, `E_j` iid
/// Exp(1): the k smallest keys are the picks. So `π_i = ∫₀^∞ w_i e^{−w_i x} · P(fewer than k
/// other keys < x) dx`, where the other keys fall below x independently with probability
/// `1 − e^{−w_j x}` (a Poisson-binomial count, computed by a DP truncated at k). Substituting
/// `v = 1 − e^{−w_i x}` gives `π_i = ∫₀¹ P(N_{−i}(x(v)) < k) dv`, a bounded monotone integrand,
/// integrated by the midpoint rule on `points` nodes (error O(points⁻²); 2,000 points agree
/// with 4,000 to < 1e-6 in the tests). k = 1 gives w_i exactly. Cost: experts² × k × points.
pub fn inclusion_probabilities(weights: &[f64], k: usize, points: usize) -> Vec<f64> {
    let experts = weights.len();
    let total: f64 = weights.iter().sum();
    let w: Vec<f64> = weights.iter().map(|x| x / total).collect();
    if k == 1 {
        return w;
    }
    let mut pi = vec![0.0; experts];
    let mut dp = vec![0.0f64; k];
    for i in 0..experts {
        if w[i] <= 0.0 {
            continue;
        }
        let mut sum = 0.0;
        for p in 0..points {
            let v = (p as f64 + 0.5) / points as f64;
            let x = -(1.0 - v).ln() / w[i];
            // dp[c] = P(exactly c of the other keys below x), for c < k.
            dp.iter_mut().for_each(|d| *d = 0.0);
            dp[0] = 1.0;
            for (j, &wj) in w.iter().enumerate() {
                if j == i || wj <= 0.0 {
                    continue;
                }
                let q = -(-wj * x).exp_m1(); // 1 − e^{−w_j x}
                for c in (1..k).rev() {
                    dp[c] = dp[c] * (1.0 - q) + dp[c - 1] * q;
                }
                dp[0] *= 1.0 - q;
            }
            sum += dp.iter().sum::<f64>();
        }
        pi[i] = sum / points as f64;
    }
    pi
}

/// ln n!.
fn ln_factorial(n: u64) -> f64 {
    (2..=n).map(|k| (k as f64).ln()).sum()
}

/// The expected maximum number of balls in any bin when `n` balls are thrown independently
/// and uniformly into `m` bins, computed exactly (up to f64 rounding, ~1e-12 absolute).
///
/// Method (Poissonisation, exact by conditioning): let `Y_1..Y_m` be iid Poisson(λ = n/m);
/// the bin counts are distributed as the `Y` conditioned on `ΣY = n`. So
/// `P(max ≤ c) = F(c)^m · P(Z_1 + … + Z_m = n) / P(Poisson(n) = n)`, where `F(c) = P(Y ≤ c)` and
/// `Z` is Poisson(λ) truncated to `[0, c]`. The m-fold convolution of Z's pmf is evaluated at n
/// by a discrete Fourier transform of length `L = m·c + 1` (longer than the sum's support, so
/// nothing aliases): `P(ΣZ = n) = (1/L) Σ_ω φ(ω)^m e^{2πiωn/L}` with `φ(ω) = Σ_j p_j e^{−2πiωj/L}`,
/// direct sums with a cosine/sine table (O(L·c) per c, no FFT needed). Then
/// `E[max] = Σ_{c≥0} P(max > c)`, summed from `c = ⌈n/m⌉` (below it P(max > c) = 1) until the
/// term falls under 1e-12.
pub fn expected_max_load_uniform(n: u64, m: u64) -> f64 {
    if n == 0 || m == 0 {
        return 0.0;
    }
    if m == 1 {
        return n as f64;
    }
    let lambda = n as f64 / m as f64;
    let ln_lambda = lambda.ln();
    // ln P(Poisson(n) = n).
    let ln_center = -(n as f64) + n as f64 * (n as f64).ln() - ln_factorial(n);
    let start = n.div_ceil(m);
    let mut expected = start as f64;
    let mut ln_fact = vec![0.0f64; 1];
    for c in start..n {
        while ln_fact.len() <= c as usize {
            let j = ln_fact.len();
            ln_fact.push(ln_fact[j - 1] + (j as f64).ln());
        }
        let pmf: Vec<f64> = (0..=c as usize).map(|j| (-lambda + j as f64 * ln_lambda - ln_fact[j]).exp()).collect();
        let f: f64 = pmf.iter().sum();
        let z: Vec<f64> = pmf.iter().map(|p| p / f).collect();
        let len = (m * c + 1) as usize;
        let table: Vec<(f64, f64)> = (0..len)
            .map(|t| {
                let angle = 2.0 * std::f64::consts::PI * t as f64 / len as f64;
                (angle.cos(), angle.sin())
            })
            .collect();
        // φ(L−ω) is the conjugate of φ(ω), so the terms for ω and L−ω have equal real parts:
        // sum ω ≤ L/2 and count the mirrored ones twice.
        let mut at_n = 0.0;
        for omega in 0..=len / 2 {
            let mirrored = if omega == 0 || 2 * omega == len { 1.0 } else { 2.0 };
            // φ(ω) = Σ_j z_j e^{−2πiωj/L}
            let (mut re, mut im) = (0.0, 0.0);
            for (j, &zj) in z.iter().enumerate() {
                let (cos, sin) = table[(omega * j) % len];
                re += zj * cos;
                im -= zj * sin;
            }
            // φ^m by repeated squaring.
            let (mut pr, mut pi) = (1.0, 0.0);
            let (mut br, mut bi) = (re, im);
            let mut e = m;
            while e > 0 {
                if e & 1 == 1 {
                    (pr, pi) = (pr * br - pi * bi, pr * bi + pi * br);
                }
                (br, bi) = (br * br - bi * bi, 2.0 * br * bi);
                e >>= 1;
            }
            // × e^{2πiωn/L}, real part.
            let (cos, sin) = table[(omega * n as usize) % len];
            at_n += mirrored * (pr * cos - pi * sin);
        }
        let at_n = (at_n / len as f64).max(0.0);
        let below = if at_n > 0.0 { (m as f64 * f.ln() + at_n.ln() - ln_center).exp().min(1.0) } else { 0.0 };
        let above = 1.0 - below;
        expected += above;
        if above < 1e-12 {
            break;
        }
    }
    expected
}

#[cfg(test)]
mod tests {
    use super::*;

    /// E[max] by enumerating all m^n outcomes.
    fn brute(n: u32, m: u32) -> f64 {
        let outcomes = (m as u64).pow(n);
        let mut total = 0u64;
        for mut code in 0..outcomes {
            let mut bins = vec![0u64; m as usize];
            for _ in 0..n {
                bins[(code % m as u64) as usize] += 1;
                code /= m as u64;
            }
            total += bins.into_iter().max().unwrap();
        }
        total as f64 / outcomes as f64
    }

    #[test]
    fn expected_max_matches_enumeration() {
        for (n, m) in [(1, 2), (3, 2), (5, 3), (6, 4), (7, 3), (8, 2)] {
            let exact = expected_max_load_uniform(n as u64, m as u64);
            let want = brute(n, m);
            assert!((exact - want).abs() < 1e-9, "n={n} m={m}: {exact} vs {want}");
        }
    }

    #[test]
    fn inclusion_of_two_of_three_matches_the_closed_form() {
        // P(i in top-2 of 3) = 1 − P(i last) = 1 − Σ_{j≠i} w_j/1 · w_l/(1 − w_j) (l the third).
        let w = [0.5, 0.3, 0.2];
        let pi = inclusion_probabilities(&w, 2, 4000);
        for (i, &got) in pi.iter().enumerate() {
            let others: Vec<usize> = (0..3).filter(|&j| j != i).collect();
            let last =
                w[others[0]] * w[others[1]] / (1.0 - w[others[0]]) + w[others[1]] * w[others[0]] / (1.0 - w[others[1]]);
            assert!((got - (1.0 - last)).abs() < 1e-6, "{i}: {got} vs {}", 1.0 - last);
        }
    }

    #[test]
    fn eplb_gives_the_hottest_expert_replicas_on_distinct_devices() {
        let w = RoutingSkew::Zipf { s: 1.2, shuffled: false }
            .layer_weights(16, &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1))
            .unwrap();
        let placed = ExpertPlacement::Eplb { redundant: 4 }.place(&w, 4).unwrap();
        assert!(placed.replicas_of(0).len() > 1);
        let mut devices = placed.replicas_of(0).to_vec();
        devices.dedup();
        assert_eq!(devices.len(), placed.replicas_of(0).len());
        assert_eq!(placed.experts_per_device(), vec![5, 5, 5, 5]);
    }
}
