//! Search outputs: the raw plan rows (what shards write and `servesim merge` reads), and the
//! files derived from them — `search.csv` (every plan, ranked), `pareto.csv` (plans meeting
//! the SLO that no other beats on latency, energy and cost at once), `best.yaml` (the winner
//! as a runnable scenario) — plus the terminal table.
//!
//! Columns are keyed by axis name, so a new axis needs no new code here. A cell with no value
//! (a pruned plan's latency, a TPOT no request produced) is empty, never 0.

use super::evaluate::{CapacityLimit, PlanMetrics, PlanRow, PlanStatus, Pruned};
use super::spec::SearchSpec;
use crate::error::{csv_error, Error, Location, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Columns after the axis values.
const TAIL: [&str; 19] = [
    "label",
    "devices",
    "cost_per_hour_usd",
    "status",
    "pruned_because",
    "reason",
    "fraction_meeting_slo",
    "meets_slo",
    "ttft_p50_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p99_s",
    "e2e_mean_s",
    "e2e_p99_s",
    "output_tokens_per_s",
    "j_per_output_token",
    "usd_per_million_output_tokens",
    "capacity_rps",
    "capacity_limit",
];

/// The row columns of `spec`: the plan index, one per axis, then the figures.
pub fn columns(spec: &SearchSpec) -> Vec<String> {
    let mut columns = vec!["index".to_string()];
    columns.extend(spec.axes.axes.iter().map(|a| a.name.clone()));
    columns.extend(TAIL.iter().map(|c| c.to_string()));
    columns
}

// `{}` prints the shortest text that parses back to the same f64, so merged shards reproduce
// a single run bit for bit.
fn cell(value: Option<f64>) -> String {
    value.map_or_else(String::new, |x| format!("{x}"))
}

fn fields(row: &PlanRow) -> Vec<String> {
    let (status, category, reason) = match &row.status {
        PlanStatus::Simulated => ("simulated", String::new(), String::new()),
        PlanStatus::Pruned(p) => ("pruned", p.category.clone(), p.reason.clone()),
    };
    let m = &row.metrics;
    let mut out = vec![row.plan.index.to_string()];
    out.extend(row.plan.values.iter().cloned());
    out.extend([
        row.label.clone(),
        row.devices.map_or_else(String::new, |d| d.to_string()),
        cell(row.cost_per_hour_usd),
        status.to_string(),
        category,
        reason,
        cell(m.fraction_meeting_slo),
        row.meets_slo.to_string(),
        cell(m.ttft_p50_s),
        cell(m.ttft_p99_s),
        cell(m.tpot_p50_s),
        cell(m.tpot_p99_s),
        cell(m.e2e_mean_s),
        cell(m.e2e_p99_s),
        cell(m.output_tokens_per_s),
        cell(m.j_per_output_token),
        cell(m.usd_per_million_output_tokens),
        cell(m.capacity_rps),
        m.capacity_limit.map_or("", CapacityLimit::name).to_string(),
    ]);
    out
}

fn to_csv<H: AsRef<[u8]>>(header: &[H], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header).expect("in-memory write");
    for row in rows {
        writer.write_record(&row).expect("in-memory write");
    }
    String::from_utf8(writer.into_inner().expect("in-memory flush")).expect("utf-8")
}

/// The text of `rows.csv` for `rows`.
pub fn rows_text(spec: &SearchSpec, rows: &[PlanRow]) -> String {
    to_csv(&columns(spec), rows.iter().map(fields))
}

/// Writes raw plan rows (`rows.csv`).
pub fn write_rows(path: &Path, spec: &SearchSpec, rows: &[PlanRow]) -> Result<()> {
    std::fs::write(path, rows_text(spec, rows)).map_err(|e| Error::io(path, "cannot write", e))
}

/// Reads raw plan rows written by [`write_rows`] for the same spec.
pub fn read_rows(path: &Path, spec: &SearchSpec) -> Result<Vec<PlanRow>> {
    let text = crate::error::read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().map_err(|e| csv_error(&file, &e))?.iter().map(String::from).collect();
    let expected = columns(spec);
    if header != expected {
        return Err(Error::at(
            Location { file: file.clone(), line: Some(1), field: None },
            format!(
                "the columns are not those of search {:?} (expected {}); was this shard run with another spec?",
                spec.name,
                expected.join(",")
            ),
        ));
    }
    let axes = spec.axes.axes.len();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(&file, &e))?;
        let line = record.position().map(|p| p.line() as usize);
        let bad = |column: &str, why: &str| {
            Error::at(Location { file: file.clone(), line, field: Some(column.to_string()) }, why.to_string())
        };
        let get = |name: &str| record.get(expected.iter().position(|c| c == name).expect("known column")).unwrap_or("");
        let num = |name: &str| -> Result<Option<f64>> {
            match get(name) {
                "" => Ok(None),
                text => text.parse::<f64>().map(Some).map_err(|_| bad(name, "not a number")),
            }
        };
        let index: u64 = get("index").parse().map_err(|_| bad("index", "not a plan index"))?;
        if index >= spec.plan_count() {
            return Err(bad(
                "index",
                &format!(
                    "plan {index} is not a plan of this spec (it has {} plans, 0 to {}); was this shard run with another spec?",
                    spec.plan_count(),
                    spec.plan_count().saturating_sub(1)
                ),
            ));
        }
        let plan = spec.plan(index);
        for (i, (axis, value)) in spec.axes.axes.iter().zip(&plan.values).enumerate().take(axes) {
            let written = record.get(1 + i).unwrap_or("");
            if written != value {
                return Err(bad(
                    &axis.name,
                    &format!(
                        "{written:?} differs from the spec's plan {index}, which has {value:?}; was this shard run with another spec?"
                    ),
                ));
            }
        }
        let status = match get("status") {
            "simulated" => PlanStatus::Simulated,
            "pruned" => {
                PlanStatus::Pruned(Pruned { category: get("pruned_because").into(), reason: get("reason").into() })
            }
            _ => return Err(bad("status", "expected simulated or pruned")),
        };
        let devices = match get("devices") {
            "" => None,
            text => Some(text.parse::<u64>().map_err(|_| bad("devices", "not a count"))?),
        };
        let capacity_limit = match get("capacity_limit") {
            "" => None,
            "bracketed" => Some(CapacityLimit::Bracketed),
            "not_reached" => Some(CapacityLimit::NotReached),
            _ => return Err(bad("capacity_limit", "expected bracketed or not_reached")),
        };
        rows.push(PlanRow {
            plan,
            label: get("label").to_string(),
            devices,
            cost_per_hour_usd: num("cost_per_hour_usd")?,
            status,
            meets_slo: get("meets_slo") == "true",
            metrics: PlanMetrics {
                fraction_meeting_slo: num("fraction_meeting_slo")?,
                ttft_p50_s: num("ttft_p50_s")?,
                ttft_p99_s: num("ttft_p99_s")?,
                tpot_p50_s: num("tpot_p50_s")?,
                tpot_p99_s: num("tpot_p99_s")?,
                e2e_mean_s: num("e2e_mean_s")?,
                e2e_p99_s: num("e2e_p99_s")?,
                output_tokens_per_s: num("output_tokens_per_s")?,
                j_per_output_token: num("j_per_output_token")?,
                usd_per_million_output_tokens: num("usd_per_million_output_tokens")?,
                capacity_rps: num("capacity_rps")?,
                capacity_limit,
            },
        });
    }
    Ok(rows)
}

/// The files and table derived from a complete set of rows.
#[derive(Debug, Clone)]
pub struct SearchOutputs {
    /// All rows, sorted by plan index.
    pub rows_csv: String,
    /// All plans ranked, with rank and objective value.
    pub search_csv: String,
    /// The Pareto front.
    pub pareto_csv: String,
    /// The best plan as a scenario, if any plan met the SLO.
    pub best_yaml: Option<String>,
    /// Terminal table of the top plans and counts.
    pub table: String,
    /// Plans simulated.
    pub simulated: usize,
    /// Why plans were pruned: category → (count, an example reason with its plan index).
    pub pruned: BTreeMap<String, (usize, String)>,
}

impl SearchOutputs {
    /// The pruning reasons in words, one line per category with its count and an example.
    pub fn pruned_lines(&self) -> Vec<String> {
        self.pruned
            .iter()
            .map(|(category, (count, example))| format!("pruned {count}: {category} (e.g. {example})"))
            .collect()
    }

    /// Writes the files into `dir` (which must exist).
    pub fn write(&self, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
        let mut files =
            vec![("rows.csv", &self.rows_csv), ("search.csv", &self.search_csv), ("pareto.csv", &self.pareto_csv)];
        if let Some(best) = &self.best_yaml {
            files.push(("best.yaml", best));
        }
        let mut written = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, "cannot write", e))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Ranks the rows of a whole search and derives every output.
pub fn finalize(spec: &SearchSpec, mut rows: Vec<PlanRow>) -> Result<SearchOutputs> {
    rows.sort_by_key(|r| r.plan.index);
    rows.dedup_by_key(|r| r.plan.index);
    if rows.len() as u64 != spec.plan_count() {
        return Err(Error::in_file(
            spec.source.name.clone(),
            format!("{} of {} plans have results; merge every shard", rows.len(), spec.plan_count()),
        ));
    }
    let objective = spec.file.objective;
    let metric = spec.file.latency_metric;
    // Plans meeting the SLO first, by objective (a plan missing the objective's figure
    // after those that have it); then plans missing the SLO, closest first; then pruned ones.
    let rank_key = |r: &PlanRow| -> (u8, f64) {
        match (&r.status, r.meets_slo) {
            (PlanStatus::Simulated, true) => match r.objective_value(objective, metric) {
                Some(value) => (0, value),
                None => (1, 0.0),
            },
            (PlanStatus::Simulated, false) => (2, -r.metrics.fraction_meeting_slo.unwrap_or(0.0)),
            (PlanStatus::Pruned(_), _) => (3, 0.0),
        }
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (rank_key(&rows[a]), rank_key(&rows[b]));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(rows[a].plan.index.cmp(&rows[b].plan.index))
    });
    let mut header: Vec<String> = vec!["rank".into(), "objective".into()];
    header.extend(columns(spec));
    let search_csv = to_csv(
        &header,
        order.iter().enumerate().map(|(position, &i)| {
            let row = &rows[i];
            let simulated = row.status == PlanStatus::Simulated;
            let mut cells = vec![
                if simulated { (position + 1).to_string() } else { String::new() },
                if simulated { cell(row.objective_value(objective, metric)) } else { String::new() },
            ];
            cells.extend(fields(row));
            cells
        }),
    );
    let good: Vec<&PlanRow> = rows.iter().filter(|r| r.status == PlanStatus::Simulated && r.meets_slo).collect();
    let point = |r: &PlanRow| -> Option<[f64; 3]> {
        Some([r.latency(metric)?, r.metrics.j_per_output_token?, r.metrics.usd_per_million_output_tokens?])
    };
    let dominates = |a: &PlanRow, b: &PlanRow| match (point(a), point(b)) {
        (Some(pa), Some(pb)) => pa.iter().zip(&pb).all(|(x, y)| x <= y) && pa.iter().zip(&pb).any(|(x, y)| x < y),
        _ => false,
    };
    let front: Vec<&PlanRow> =
        good.iter().copied().filter(|r| point(r).is_some() && !good.iter().any(|o| dominates(o, r))).collect();
    let pareto_csv = to_csv(&columns(spec), front.iter().map(|r| fields(r)));
    let best = order.first().map(|&i| &rows[i]).filter(|r| rank_key(r).0 == 0);
    let best_yaml = match best {
        Some(row) => {
            let mut file = spec.scenario_file(row.plan.index).map_err(|e| Error::in_file(spec.name.clone(), e))?;
            // Make trace paths absolute: best.yaml lives in the output folder, not beside the base.
            if let Some(trace) = &mut file.workload.trace {
                let path = spec.base_source.resolve(&trace.path);
                trace.path = path.canonicalize().unwrap_or(path).display().to_string();
            }
            let yaml = crate::input::to_yaml(&file).map_err(|e| Error::in_file(spec.name.clone(), e))?;
            Some(format!(
                "# Best plan ({}) of search {}: plan {} ({})\n{yaml}",
                objective_name(spec),
                spec.name,
                row.plan.index,
                row.label
            ))
        }
        None => None,
    };
    let mut pruned: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for row in &rows {
        if let PlanStatus::Pruned(p) = &row.status {
            let entry =
                pruned.entry(p.category.clone()).or_insert((0, format!("plan {}: {}", row.plan.index, p.reason)));
            entry.0 += 1;
        }
    }
    let simulated = rows.iter().filter(|r| r.status == PlanStatus::Simulated).count();
    let mut outputs = SearchOutputs {
        rows_csv: to_csv(&columns(spec), rows.iter().map(fields)),
        search_csv,
        pareto_csv,
        best_yaml,
        table: String::new(),
        simulated,
        pruned,
    };
    outputs.table = render_table(spec, &rows, &order, front.len(), &outputs);
    Ok(outputs)
}

fn objective_name(spec: &SearchSpec) -> String {
    serde_json::to_value(spec.file.objective).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

fn render_table(
    spec: &SearchSpec,
    rows: &[PlanRow],
    order: &[usize],
    pareto: usize,
    outputs: &SearchOutputs,
) -> String {
    let mut out = String::new();
    let meeting = rows.iter().filter(|r| r.meets_slo).count();
    let _ = writeln!(
        out,
        "search {}: {} plans, {} pruned, {} simulated, {} meet the SLO ({:.0}% of requests), {} on the Pareto front; objective {}",
        spec.name,
        rows.len(),
        rows.len() - outputs.simulated,
        outputs.simulated,
        meeting,
        spec.file.slo.min_fraction.get() * 100.0,
        pareto,
        objective_name(spec)
    );
    let _ = writeln!(
        out,
        "{:>4} {:>6} {:>8} {:>6} {:>9} {:>9} {:>8} {:>8} {:>10}  plan",
        "rank", "plan", "$/h", "SLO%", "TTFT99 s", "TPOT99 s", "J/tok", "$/Mtok", "cap req/s"
    );
    let show = |value: Option<f64>, decimals: usize| value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"));
    let top = spec.file.top.map_or(10, |t| t.get() as usize);
    for (position, &i) in order.iter().take(top).enumerate() {
        let r = &rows[i];
        if r.status != PlanStatus::Simulated {
            break;
        }
        let m = &r.metrics;
        let capacity = match (m.capacity_rps, m.capacity_limit) {
            (Some(c), Some(CapacityLimit::NotReached)) => format!("≥{c:.2}"),
            (c, _) => show(c, 2),
        };
        let values: Vec<String> =
            spec.axes.axes.iter().zip(&r.plan.values).map(|(a, v)| format!("{}={v}", a.name)).collect();
        let _ = writeln!(
            out,
            "{:>4} {:>6} {:>8} {:>6} {:>9} {:>9} {:>8} {:>8} {:>10}  {} ({})",
            position + 1,
            r.plan.index,
            show(r.cost_per_hour_usd, 2),
            show(m.fraction_meeting_slo.map(|f| f * 100.0), 1),
            show(m.ttft_p99_s, 3),
            show(m.tpot_p99_s, 4),
            show(m.j_per_output_token, 3),
            show(m.usd_per_million_output_tokens, 3),
            capacity,
            r.label,
            values.join(" ")
        );
    }
    let not_reached = rows.iter().filter(|r| r.metrics.capacity_limit == Some(CapacityLimit::NotReached)).count();
    if not_reached > 0 {
        let _ = writeln!(
            out,
            "capacity not reached for {not_reached} plans: they met the SLO even with the whole workload arriving at once, so their capacity is at least the figure shown (≥); use a longer or heavier base workload"
        );
    }
    for line in outputs.pruned_lines() {
        let _ = writeln!(out, "{line}");
    }
    out
}
