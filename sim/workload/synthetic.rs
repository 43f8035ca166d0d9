//! Synthetic workloads: arrival processes and length distributions from rand_distr.

use crate::engine::{secs_to_nanos, stream_rng, SimRng, SimTime};
use crate::error::Result;
use crate::input::YamlSource;
use crate::records::RequestSpec;
use crate::scenario::schema::{ArrivalSection, LengthSection, SyntheticSection, TraceField};
use rand::Rng;
use rand_distr::{Distribution, Exp, Gamma, LogNormal};

/// Most requests one synthetic workload may hold (memory for records is ~150 bytes each).
const MAX_REQUESTS: u64 = 50_000_000;

/// Generates the requests of `section` under `seed`.
pub fn generate(section: &SyntheticSection, source: &YamlSource, seed: u64) -> Result<Vec<RequestSpec>> {
    if section.requests.get() > MAX_REQUESTS {
        return Err(source.error(
            "workload.synthetic.requests",
            format!(
                "{} requests is more than servesim simulates in one run ({MAX_REQUESTS}); split the workload or use a trace",
                section.requests
            ),
        ));
    }
    let count = section.requests.get() as usize;
    let mut input = LengthSampler::new(&section.input_tokens, source, "workload.synthetic.input_tokens")?;
    let mut output = LengthSampler::new(&section.output_tokens, source, "workload.synthetic.output_tokens")?;
    let mut arrivals = ArrivalSampler::new(&section.arrival, source)?;
    let mut arrival_rng = stream_rng(seed, "workload/arrivals");
    let mut input_rng = stream_rng(seed, "workload/input_tokens");
    let mut output_rng = stream_rng(seed, "workload/output_tokens");
    let mut requests = Vec::with_capacity(count);
    for id in 0..count {
        let arrival = arrivals.next(&mut arrival_rng);
        if arrival.as_secs_f64() > super::MAX_ARRIVAL_S {
            return Err(source.error(
                "workload.synthetic.arrival",
                format!(
                    "request {id} would arrive after {:.3e} s, beyond the {:.0e} s (about 31 years) servesim accepts; is rate_per_s too small?",
                    arrival.as_secs_f64(),
                    super::MAX_ARRIVAL_S
                ),
            ));
        }
        requests.push(RequestSpec {
            id: id as u64,
            arrival,
            input_tokens: input.sample(&mut input_rng),
            output_tokens: output.sample(&mut output_rng),
            priority: 0,
            prefix: crate::records::PrefixSpan::default(),
        });
    }
    Ok(requests)
}

enum Gap {
    Exponential(Exp<f64>),
    Gamma(Gamma<f64>),
    Constant(f64),
}

struct ArrivalSampler {
    gap: Gap,
    /// (on, off) lengths in ns for on/off processes.
    on_off_ns: Option<(u64, u64)>,
    /// Time on the "on" clock (excluding pauses), ns.
    busy_clock_ns: u64,
}

impl ArrivalSampler {
    fn new(section: &ArrivalSection, source: &YamlSource) -> Result<Self> {
        let field = "workload.synthetic.arrival";
        let invalid = |e: &dyn std::fmt::Display| source.error(field, format!("invalid arrival process: {e}"));
        let (gap, on_off_ns) = match section {
            ArrivalSection::Poisson { rate_per_s } => {
                (Gap::Exponential(Exp::new(rate_per_s.get()).map_err(|e| invalid(&e))?), None)
            }
            ArrivalSection::Gamma { rate_per_s, cv } => {
                // Mean 1/rate, CV cv: shape 1/cv², scale cv²/rate.
                let shape = 1.0 / (cv.get() * cv.get());
                let scale = cv.get() * cv.get() / rate_per_s.get();
                (Gap::Gamma(Gamma::new(shape, scale).map_err(|e| invalid(&e))?), None)
            }
            ArrivalSection::Constant { rate_per_s } => (Gap::Constant(1.0 / rate_per_s.get()), None),
            ArrivalSection::OnOff { rate_per_s, on_s, off_s } => {
                // Bursts and pauses run on the nanosecond clock: shorter ones would round to
                // nothing, longer ones could only place arrivals past MAX_ARRIVAL_S.
                for (name, seconds) in [("on_s", on_s.get()), ("off_s", off_s.get())] {
                    if !(1e-9..=super::MAX_ARRIVAL_S).contains(&seconds) {
                        return Err(source.error(
                            field,
                            format!(
                                "{name} ({seconds} s) must lie between 1e-9 s (the simulator's 1 ns clock) and {:.0e} s",
                                super::MAX_ARRIVAL_S
                            ),
                        ));
                    }
                }
                (
                    Gap::Exponential(Exp::new(rate_per_s.get()).map_err(|e| invalid(&e))?),
                    Some((secs_to_nanos(on_s.get()).max(1), secs_to_nanos(off_s.get()))),
                )
            }
        };
        Ok(ArrivalSampler { gap, on_off_ns, busy_clock_ns: 0 })
    }

    fn next(&mut self, rng: &mut SimRng) -> SimTime {
        let gap_s = match &self.gap {
            Gap::Exponential(d) => d.sample(rng),
            Gap::Gamma(d) => d.sample(rng),
            Gap::Constant(g) => *g,
        };
        self.busy_clock_ns = self.busy_clock_ns.saturating_add(secs_to_nanos(gap_s));
        match self.on_off_ns {
            None => SimTime::from_nanos(self.busy_clock_ns),
            Some((on, off)) => {
                // Arrivals happen on the "on" clock; each completed burst adds a pause.
                let bursts = self.busy_clock_ns / on;
                SimTime::from_nanos(self.busy_clock_ns.saturating_add(bursts.saturating_mul(off)))
            }
        }
    }
}

enum LengthKind {
    Fixed(u32),
    Uniform(u32, u32),
    LogNormal(LogNormal<f64>),
    Exponential(Exp<f64>),
    Empirical(Vec<u32>),
}

struct LengthSampler {
    kind: LengthKind,
    min: u32,
    max: u32,
}

/// `value` of `field` as a token count, refused above [`super::MAX_TOKENS`] rather than
/// clamped.
fn tokens(source: &YamlSource, field: &str, value: u64) -> Result<u32> {
    u32::try_from(value).ok().filter(|&v| u64::from(v) <= super::MAX_TOKENS).ok_or_else(|| {
        source.error(field, format!("{value} tokens is more than the {} servesim accepts", super::MAX_TOKENS))
    })
}

/// A distribution's mean of `field`, at most [`super::MAX_TOKENS`].
fn mean_tokens(source: &YamlSource, field: &str, mean: f64) -> Result<f64> {
    if mean > super::MAX_TOKENS as f64 {
        return Err(source
            .error(field, format!("a mean of {mean} tokens is more than the {} servesim accepts", super::MAX_TOKENS)));
    }
    Ok(mean)
}

impl LengthSampler {
    /// The sampler of `section`, written at `field` (errors name the distribution's own fields,
    /// e.g. `FIELD.uniform.min`).
    fn new(section: &LengthSection, source: &YamlSource, field: &str) -> Result<Self> {
        let at = |name: &str| format!("{field}.{name}");
        let invalid =
            |name: &str, e: &dyn std::fmt::Display| source.error(&at(name), format!("invalid distribution: {e}"));
        let (kind, min, max) = match section {
            LengthSection::Fixed { value } => {
                (LengthKind::Fixed(tokens(source, &at("fixed.value"), value.get())?), 1, u32::MAX)
            }
            LengthSection::Uniform { min, max } => {
                let lo = tokens(source, &at("uniform.min"), min.get())?;
                let hi = tokens(source, &at("uniform.max"), max.get())?;
                if lo > hi {
                    return Err(source.error(&at("uniform.min"), format!("min ({lo}) exceeds max ({hi})")));
                }
                (LengthKind::Uniform(lo, hi), 1, u32::MAX)
            }
            LengthSection::Lognormal { mean, cv, min, max } => {
                let mean = mean_tokens(source, &at("lognormal.mean"), mean.get())?;
                let d = LogNormal::from_mean_cv(mean, cv.get()).map_err(|e| invalid("lognormal", &e))?;
                let lo = min.map_or(Ok(1), |m| tokens(source, &at("lognormal.min"), m.get()))?;
                let hi = max.map_or(Ok(u32::MAX), |m| tokens(source, &at("lognormal.max"), m.get()))?;
                if lo > hi {
                    return Err(source.error(&at("lognormal.min"), format!("min ({lo}) exceeds max ({hi})")));
                }
                (LengthKind::LogNormal(d), lo, hi)
            }
            LengthSection::Exponential { mean, max } => {
                let mean = mean_tokens(source, &at("exponential.mean"), mean.get())?;
                let d = Exp::new(1.0 / mean).map_err(|e| invalid("exponential", &e))?;
                let hi = max.map_or(Ok(u32::MAX), |m| tokens(source, &at("exponential.max"), m.get()))?;
                (LengthKind::Exponential(d), 1, hi)
            }
            LengthSection::Empirical { values, trace, field: which } => {
                let values: Vec<u32> = match (values, trace) {
                    (Some(values), None) if !values.is_empty() => values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| tokens(source, &at(&format!("empirical.values[{i}]")), v.get()))
                        .collect::<Result<_>>()?,
                    (Some(_), None) => return Err(source.error(&at("empirical.values"), "the list is empty")),
                    (None, Some(trace)) => {
                        let which = which.ok_or_else(|| {
                            source
                                .error(field, "say which trace column to draw from: `field: input` or `field: output`")
                        })?;
                        let limit = trace.limit.map(|l| usize::try_from(l.get()).unwrap_or(usize::MAX));
                        let rows = super::read_trace(trace.format, &source.resolve(&trace.path), limit)
                            .map_err(|e| source.file_error(&at("empirical.trace.path"), e))?;
                        rows.iter()
                            .map(|r| match which {
                                TraceField::Input => r.input_tokens,
                                TraceField::Output => r.output_tokens,
                            })
                            .collect()
                    }
                    _ => return Err(source.error(field, "give exactly one of `values:` or `trace:`")),
                };
                (LengthKind::Empirical(values), 1, u32::MAX)
            }
        };
        Ok(LengthSampler { kind, min, max })
    }

    fn sample(&mut self, rng: &mut SimRng) -> u32 {
        let raw = match &self.kind {
            LengthKind::Fixed(v) => return *v,
            LengthKind::Uniform(lo, hi) => return rng.gen_range(*lo..=*hi),
            LengthKind::Empirical(values) => return values[rng.gen_range(0..values.len())],
            LengthKind::LogNormal(d) => d.sample(rng),
            LengthKind::Exponential(d) => d.sample(rng),
        };
        let rounded = raw.ceil();
        let clamped = rounded.clamp(f64::from(self.min), f64::from(self.max));
        clamped as u32
    }
}
