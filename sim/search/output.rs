//! Search outputs: the raw plan rows (what shards write and `servesim merge` reads), and the
//! files derived from them — `search.csv` (every plan, ranked), `pruned` reasons,
//! `pareto.csv` (plans meeting the SLO that no other beats on latency, energy and cost at
//! once), `best.yaml` (the winner as a runnable scenario) — plus the terminal table.

use super::evaluate::{PlanRow, PlanStatus};
use super::spec::{Plan, SearchSpec};
use crate::error::{Error, Result};
use crate::scenario::schema::RouterKind;
use crate::serving::Policy;
use std::fmt::Write as _;
use std::path::Path;

const COLUMNS: [&str; 27] = [
    "index",
    "device",
    "tensor_parallel",
    "pipeline_parallel",
    "replicas",
    "max_num_seqs",
    "max_num_batched_tokens",
    "policy",
    "router",
    "memory_utilization",
    "clock_ratio",
    "devices",
    "cost_per_hour_usd",
    "status",
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
];

fn name_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

fn fields(row: &PlanRow) -> Vec<String> {
    let p = &row.plan;
    // `{}` prints the shortest text that parses back to the same f64, so merged shards
    // reproduce a single run bit for bit.
    let f = |x: f64| format!("{x}");
    let (status, reason) = match &row.status {
        PlanStatus::Simulated => ("simulated".to_string(), String::new()),
        PlanStatus::Pruned(reason) => ("pruned".to_string(), reason.clone()),
    };
    vec![
        p.index.to_string(),
        p.device.clone(),
        p.tensor_parallel.to_string(),
        p.pipeline_parallel.to_string(),
        p.replicas.to_string(),
        p.max_num_seqs.to_string(),
        p.max_num_batched_tokens.to_string(),
        name_of(&p.policy),
        name_of(&p.router),
        f(p.memory_utilization),
        f(p.clock_ratio),
        row.devices.to_string(),
        f(row.cost_per_hour_usd),
        status,
        reason,
        f(row.fraction_meeting_slo),
        row.meets_slo.to_string(),
        f(row.ttft_p50_s),
        f(row.ttft_p99_s),
        f(row.tpot_p50_s),
        f(row.tpot_p99_s),
        f(row.e2e_mean_s),
        f(row.e2e_p99_s),
        f(row.output_tokens_per_s),
        f(row.j_per_output_token),
        f(row.usd_per_million_output_tokens),
        f(row.capacity_rps),
    ]
}

fn to_csv(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(header).expect("in-memory write");
    for row in rows {
        writer.write_record(&row).expect("in-memory write");
    }
    String::from_utf8(writer.into_inner().expect("in-memory flush")).expect("utf-8")
}

/// Writes raw plan rows (`rows.csv`).
pub fn write_rows(path: &Path, rows: &[PlanRow]) -> Result<()> {
    let text = to_csv(&COLUMNS, rows.iter().map(fields));
    std::fs::write(path, text).map_err(|e| Error::io(path, "cannot write", e))
}

/// Reads raw plan rows written by [`write_rows`].
pub fn read_rows(path: &Path) -> Result<Vec<PlanRow>> {
    let text = crate::error::read_text(path)?;
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::in_file(&file, format!("malformed row: {e}")))?;
        let line = record.position().map_or(0, |p| p.line());
        let bad = |column: &str| Error::in_file(&file, format!("line {line}: bad `{column}`"));
        let get = |i: usize| record.get(i).unwrap_or_default();
        let num = |i: usize| get(i).parse::<f64>().map_err(|_| bad(COLUMNS[i]));
        let int = |i: usize| get(i).parse::<u64>().map_err(|_| bad(COLUMNS[i]));
        let parse_enum = |i: usize| format!("\"{}\"", get(i));
        let policy: Policy = serde_json::from_str(&parse_enum(7)).map_err(|_| bad("policy"))?;
        let router: RouterKind = serde_json::from_str(&parse_enum(8)).map_err(|_| bad("router"))?;
        rows.push(PlanRow {
            plan: Plan {
                index: int(0)? as usize,
                device: get(1).to_string(),
                tensor_parallel: int(2)?,
                pipeline_parallel: int(3)?,
                replicas: int(4)?,
                max_num_seqs: int(5)?,
                max_num_batched_tokens: int(6)?,
                policy,
                router,
                memory_utilization: num(9)?,
                clock_ratio: num(10)?,
            },
            devices: int(11)?,
            cost_per_hour_usd: num(12)?,
            status: match get(13) {
                "simulated" => PlanStatus::Simulated,
                _ => PlanStatus::Pruned(get(14).to_string()),
            },
            fraction_meeting_slo: num(15)?,
            meets_slo: get(16) == "true",
            ttft_p50_s: num(17)?,
            ttft_p99_s: num(18)?,
            tpot_p50_s: num(19)?,
            tpot_p99_s: num(20)?,
            e2e_mean_s: num(21)?,
            e2e_p99_s: num(22)?,
            output_tokens_per_s: num(23)?,
            j_per_output_token: num(24)?,
            usd_per_million_output_tokens: num(25)?,
            capacity_rps: num(26)?,
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
}

impl SearchOutputs {
    /// Writes the files into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "cannot create output folder", e))?;
        let mut files =
            vec![("rows.csv", &self.rows_csv), ("search.csv", &self.search_csv), ("pareto.csv", &self.pareto_csv)];
        if let Some(best) = &self.best_yaml {
            files.push(("best.yaml", best));
        }
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, "cannot write", e))?;
        }
        Ok(())
    }
}

/// Ranks the rows of a whole search and derives every output.
pub fn finalize(spec: &SearchSpec, mut rows: Vec<PlanRow>) -> Result<SearchOutputs> {
    rows.sort_by_key(|r| r.plan.index);
    rows.dedup_by_key(|r| r.plan.index);
    if rows.len() != spec.plans.len() {
        return Err(Error::in_file(
            spec.name.clone(),
            format!("{} of {} plans have results; merge every shard", rows.len(), spec.plans.len()),
        ));
    }
    let objective = spec.file.objective;
    let metric = spec.file.latency_metric;
    let rank_key = |r: &PlanRow| -> (u8, f64) {
        match (&r.status, r.meets_slo) {
            (PlanStatus::Simulated, true) => (0, r.objective_value(objective, metric)),
            (PlanStatus::Simulated, false) => (1, -r.fraction_meeting_slo),
            (PlanStatus::Pruned(_), _) => (2, 0.0),
        }
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        let (ka, kb) = (rank_key(&rows[a]), rank_key(&rows[b]));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(rows[a].plan.index.cmp(&rows[b].plan.index))
    });
    let mut header: Vec<&str> = vec!["rank", "objective"];
    header.extend(COLUMNS);
    let search_csv = to_csv(
        &header,
        order.iter().enumerate().map(|(position, &i)| {
            let row = &rows[i];
            let simulated = row.status == PlanStatus::Simulated;
            let mut cells = vec![
                if simulated { (position + 1).to_string() } else { String::new() },
                if simulated { format!("{}", row.objective_value(objective, metric)) } else { String::new() },
            ];
            cells.extend(fields(row));
            cells
        }),
    );
    let good: Vec<&PlanRow> = rows.iter().filter(|r| r.status == PlanStatus::Simulated && r.meets_slo).collect();
    let point = |r: &PlanRow| [r.latency(metric), r.j_per_output_token, r.usd_per_million_output_tokens];
    let dominates = |a: &PlanRow, b: &PlanRow| {
        let (pa, pb) = (point(a), point(b));
        pa.iter().zip(&pb).all(|(x, y)| x <= y) && pa.iter().zip(&pb).any(|(x, y)| x < y)
    };
    let front: Vec<&PlanRow> = good.iter().copied().filter(|r| !good.iter().any(|o| dominates(o, r))).collect();
    let pareto_csv = to_csv(&COLUMNS, front.iter().map(|r| fields(r)));
    let best = order.first().map(|&i| &rows[i]).filter(|r| r.status == PlanStatus::Simulated && r.meets_slo);
    let best_yaml = match best {
        Some(row) => {
            let mut file = spec.scenario_file(&row.plan);
            // Make trace paths absolute: best.yaml lives in the output folder, not beside the base.
            if let Some(trace) = &mut file.workload.trace {
                let path = spec.base_source.resolve(&trace.path);
                trace.path = path.canonicalize().unwrap_or(path).display().to_string();
            }
            let yaml = serde_yaml::to_string(&file).map_err(|e| Error::in_file(spec.name.clone(), e.to_string()))?;
            Some(format!(
                "# Best plan ({}) of search {}: plan {}\n{yaml}",
                name_of(&objective),
                spec.name,
                row.plan.index
            ))
        }
        None => None,
    };
    let table = render_table(spec, &rows, &order, front.len());
    let rows_csv = to_csv(&COLUMNS, rows.iter().map(fields));
    Ok(SearchOutputs { rows_csv, search_csv, pareto_csv, best_yaml, table })
}

fn render_table(spec: &SearchSpec, rows: &[PlanRow], order: &[usize], pareto: usize) -> String {
    let mut out = String::new();
    let simulated = rows.iter().filter(|r| r.status == PlanStatus::Simulated).count();
    let meeting = rows.iter().filter(|r| r.meets_slo).count();
    let _ = writeln!(
        out,
        "search {}: {} plans, {} pruned, {} simulated, {} meet the SLO ({:.0}% of requests), {} on the Pareto front; objective {}",
        spec.name,
        rows.len(),
        rows.len() - simulated,
        simulated,
        meeting,
        spec.file.slo.min_fraction.get() * 100.0,
        pareto,
        name_of(&spec.file.objective)
    );
    let _ = writeln!(
        out,
        "{:>4} {:>5} {:<14} {:>3} {:>3} {:>4} {:>5} {:>6} {:>5} {:>7} {:>6} {:>9} {:>9} {:>8} {:>8} {:>9}",
        "rank",
        "plan",
        "device",
        "tp",
        "pp",
        "reps",
        "seqs",
        "tokens",
        "clock",
        "$/h",
        "SLO%",
        "TTFT99 s",
        "TPOT99 s",
        "J/tok",
        "$/Mtok",
        "cap req/s"
    );
    let top = spec.file.top.map_or(10, |t| t.get() as usize);
    for (position, &i) in order.iter().take(top).enumerate() {
        let r = &rows[i];
        if r.status != PlanStatus::Simulated {
            break;
        }
        let p = &r.plan;
        let _ = writeln!(
            out,
            "{:>4} {:>5} {:<14} {:>3} {:>3} {:>4} {:>5} {:>6} {:>5.2} {:>7.2} {:>6.1} {:>9.3} {:>9.4} {:>8.3} {:>8.3} {:>9.2}",
            position + 1,
            p.index,
            p.device,
            p.tensor_parallel,
            p.pipeline_parallel,
            p.replicas,
            p.max_num_seqs,
            p.max_num_batched_tokens,
            p.clock_ratio,
            r.cost_per_hour_usd,
            r.fraction_meeting_slo * 100.0,
            r.ttft_p99_s,
            r.tpot_p99_s,
            r.j_per_output_token,
            r.usd_per_million_output_tokens,
            r.capacity_rps
        );
    }
    let reasons: std::collections::BTreeMap<String, usize> = rows
        .iter()
        .filter_map(|r| if let PlanStatus::Pruned(reason) = &r.status { Some(reason) } else { None })
        .fold(std::collections::BTreeMap::new(), |mut counts, reason| {
            let kind = reason.split(':').next().unwrap_or(reason).to_string();
            *counts.entry(kind).or_insert(0) += 1;
            counts
        });
    for (reason, count) in reasons {
        let _ = writeln!(out, "pruned {count}: {reason}");
    }
    out
}
