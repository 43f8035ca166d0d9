//! Search axes as data: each axis is a named path into the scenario document with a list of
//! values, and a plan is one value per axis.
//!
//! An axis name is either a full path into the scenario (`deployment.pools[1].replicas`,
//! `deployment.router`, `seed`), a pool field prefixed by the pool's name (`prefill.replicas`),
//! or, when the base has a single pool, the bare field (`tensor_parallel`, `max_num_seqs`).
//! Plans are never materialised: plan `i` is decoded from its index in mixed radix, the last
//! axis varying fastest, so a spec of any size can be counted and sharded. This module only
//! edits documents; validating the result is `scenario`'s job.

use crate::input::{YamlMapping as Mapping, YamlValue as Value};

/// Pool fields an axis may name without a path, with where they live inside a pool section.
const POOL_FIELDS: [(&str, &str); 10] = [
    ("device", "device"),
    ("tensor_parallel", "tensor_parallel"),
    ("pipeline_parallel", "pipeline_parallel"),
    ("replicas", "replicas"),
    ("max_num_seqs", "scheduler.max_num_seqs"),
    ("max_num_batched_tokens", "scheduler.max_num_batched_tokens"),
    ("policy", "scheduler.policy"),
    ("memory_utilization", "memory_utilization"),
    ("clock_ratio", "clock_ratio"),
    ("calibration", "calibration"),
];

/// Scenario-wide fields an axis may name without a path.
const SCENARIO_FIELDS: [(&str, &str); 1] = [("router", "deployment.router")];

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// One axis: its name as written, the path it edits, and its values.
#[derive(Debug, Clone)]
pub struct Axis {
    /// The name as written in the spec (also the CSV column).
    pub name: String,
    /// The resolved path, e.g. `deployment.pools[0].scheduler.max_num_seqs`.
    pub path: String,
    steps: Vec<Step>,
    /// The values to try, in order.
    pub values: Vec<Value>,
}

/// A scalar as it appears in CSV cells and tables.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        // Sections and lists (an axis over a whole section, e.g. a pool's speculation
        // draft) on one line, in YAML flow style, so that they fit a CSV cell and a table.
        Value::Sequence(items) => format!("[{}]", items.iter().map(flow_text).collect::<Vec<_>>().join(", ")),
        Value::Mapping(map) => format!(
            "{{{}}}",
            map.iter().map(|(k, v)| format!("{}: {}", flow_text(k), flow_text(v))).collect::<Vec<_>>().join(", ")
        ),
        other => crate::input::to_yaml(other).unwrap_or_default().trim().to_string(),
    }
}

/// `value` inside a flow collection: null spelt out, text quoted where YAML needs it.
fn flow_text(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::String(s)
            if s.is_empty()
                || s.contains([',', ':', '{', '}', '[', ']', '#', '"', '\'', '\n'])
                || s.trim() != s
                || s.parse::<f64>().is_ok()
                || matches!(s.as_str(), "null" | "~" | "true" | "false") =>
        {
            format!("{s:?}")
        }
        other => value_text(other),
    }
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(pos) => (&part[..pos], &part[pos..]),
            None => (part, ""),
        };
        if key.is_empty() {
            return Err(format!("{path:?} is not a field path (expected e.g. deployment.pools[0].replicas)"));
        }
        steps.push(Step::Key(key.to_string()));
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']').ok_or_else(|| format!("{path:?}: unclosed `[`"))?;
            let index: usize =
                inner[..close].parse().map_err(|_| format!("{path:?}: `{}` is not an index", &inner[..close]))?;
            steps.push(Step::Index(index));
            rest = &inner[close + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("{path:?}: unexpected `{rest}`"));
        }
    }
    Ok(steps)
}

impl Axis {
    /// Resolves the axis `name` against the base scenario document `base`.
    pub fn new(name: &str, values: Vec<Value>, base: &Value) -> Result<Axis, String> {
        let pools: Vec<Option<String>> = base
            .get("deployment")
            .and_then(|d| d.get("pools"))
            .and_then(Value::as_sequence)
            .map(|pools| pools.iter().map(|p| p.get("name").and_then(Value::as_str).map(String::from)).collect())
            .unwrap_or_default();
        let pool_field = |field: &str| POOL_FIELDS.iter().find(|(alias, _)| *alias == field).map(|(_, f)| *f);
        let path = if let Some((_, path)) = SCENARIO_FIELDS.iter().find(|(alias, _)| *alias == name) {
            path.to_string()
        } else if let Some(field) = pool_field(name) {
            if pools.len() != 1 {
                return Err(format!(
                    "the base has {} pools, so `{name}` is ambiguous: prefix the pool's name (e.g. `{}.{name}`) or give the path (`deployment.pools[0].{field}`)",
                    pools.len(),
                    pools.first().cloned().flatten().unwrap_or_else(|| "prefill".into())
                ));
            }
            format!("deployment.pools[0].{field}")
        } else if let Some((pool_name, field)) =
            name.split_once('.').filter(|(p, _)| pools.iter().any(|n| n.as_deref() == Some(*p)))
        {
            let index = pools.iter().position(|n| n.as_deref() == Some(pool_name)).expect("found above");
            let field = pool_field(field).unwrap_or(field);
            format!("deployment.pools[{index}].{field}")
        } else if name.contains('.') || name.contains('[') || base.get(name).is_some() {
            name.to_string()
        } else {
            return Err(format!(
                "unknown axis `{name}`; use a pool field ({}), `router`, a pool's name and field (`decode.replicas`), or a path into the scenario (`deployment.pools[1].replicas`)",
                POOL_FIELDS.iter().map(|(alias, _)| *alias).collect::<Vec<_>>().join(", ")
            ));
        };
        let steps = parse_path(&path)?;
        if values.is_empty() {
            return Err("the axis lists no values; give at least one or remove it".into());
        }
        let axis = Axis { name: name.to_string(), path, steps, values };
        // The path must lead somewhere in the base (a missing leaf is fine: optional fields
        // are absent until set).
        let mut probe = base.clone();
        axis.set(&mut probe, &Value::Null)?;
        Ok(axis)
    }

    /// Whether the axis sets a pool's device (`deployment.pools[i].device`), the device its
    /// replicas are placed on, rather than another field named `device` (a draft model's).
    pub fn sets_pool_device(&self) -> bool {
        matches!(
            self.steps.as_slice(),
            [Step::Key(d), Step::Key(p), Step::Index(_), Step::Key(f)] if d == "deployment" && p == "pools" && f == "device"
        )
    }

    /// Writes `value` at the axis path inside `document`.
    pub fn set(&self, document: &mut Value, value: &Value) -> Result<(), String> {
        let mut here = document;
        let last = self.steps.len() - 1;
        for (position, step) in self.steps.iter().enumerate() {
            let walked = || {
                let shown: Vec<String> = self.steps[..position]
                    .iter()
                    .map(|s| match s {
                        Step::Key(k) => k.clone(),
                        Step::Index(i) => format!("[{i}]"),
                    })
                    .collect();
                shown.join(".").replace(".[", "[")
            };
            here = match step {
                Step::Key(key) => {
                    if here.is_null() && position > 0 {
                        *here = Value::Mapping(Mapping::new());
                    }
                    let Value::Mapping(map) = here else {
                        return Err(format!("`{}` is not a section, so `{key}` cannot be set inside it", walked()));
                    };
                    let key = Value::String(key.clone());
                    if position == last {
                        map.insert(key, value.clone());
                        return Ok(());
                    }
                    map.entry(key).or_insert(Value::Null)
                }
                Step::Index(index) => {
                    let Value::Sequence(items) = here else {
                        return Err(format!("`{}` is not a list in the base scenario", walked()));
                    };
                    let len = items.len();
                    let item = items.get_mut(*index).ok_or_else(|| {
                        format!("`{}` has {len} entries in the base scenario, so [{index}] does not exist", walked())
                    })?;
                    if position == last {
                        *item = value.clone();
                        return Ok(());
                    }
                    item
                }
            };
        }
        Ok(())
    }
}

/// The axes of a search, in the order the spec lists them.
#[derive(Debug, Clone, Default)]
pub struct AxisSet {
    /// The axes.
    pub axes: Vec<Axis>,
}

impl AxisSet {
    /// Number of plans (the product of the axes' lengths), or None above u64.
    pub fn plan_count(&self) -> Option<u64> {
        self.axes.iter().try_fold(1u64, |count, axis| count.checked_mul(axis.values.len() as u64))
    }

    /// The value index of each axis for plan `index` (the last axis varies fastest).
    pub fn decode(&self, mut index: u64) -> Vec<usize> {
        let mut choice = vec![0; self.axes.len()];
        for (slot, axis) in choice.iter_mut().zip(&self.axes).rev() {
            let len = axis.values.len() as u64;
            *slot = (index % len) as usize;
            index /= len;
        }
        choice
    }

    /// The values of plan `index`, one per axis.
    pub fn values(&self, index: u64) -> Vec<&Value> {
        self.decode(index).into_iter().zip(&self.axes).map(|(i, axis)| &axis.values[i]).collect()
    }

    /// `base` with plan `index`'s values written in.
    pub fn apply(&self, base: &Value, index: u64) -> Result<Value, String> {
        let mut document = base.clone();
        for (axis, value) in self.axes.iter().zip(self.values(index)) {
            axis.set(&mut document, value).map_err(|e| format!("axis `{}`: {e}", axis.name))?;
        }
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        crate::input::YamlSource::from_text("test", Default::default(), String::from(
            "deployment:\n  router: round_robin\n  pools:\n    - name: prefill\n      device: h100-sxm\n      scheduler: {max_num_seqs: 8}\n    - name: decode\n      device: a100\n",
        ))
        .parse()
        .unwrap()
    }

    fn numbers(values: &[u64]) -> Vec<Value> {
        values.iter().map(|&v| Value::from(v)).collect()
    }

    #[test]
    fn only_a_pools_own_device_is_a_placement_axis_and_sections_print_on_one_line() {
        let base = base();
        let pool_device = Axis::new("prefill.device", vec![Value::from("h200")], &base).unwrap();
        assert!(pool_device.sets_pool_device());
        let draft_device =
            Axis::new("deployment.pools[0].speculation.draft.device", vec![Value::from("h200")], &base).unwrap();
        assert!(!draft_device.sets_pool_device());
        let section: Value =
            serde_yaml::from_str("{model: llama-3.2-1b, device: null, link: 'a: b', k: [1, '2']}").unwrap();
        assert_eq!(value_text(&section), r#"{model: llama-3.2-1b, device: null, link: "a: b", k: [1, "2"]}"#);
        let reread: Value = serde_yaml::from_str(&value_text(&section)).unwrap();
        assert_eq!(reread, section);
    }

    #[test]
    fn names_resolve_to_paths() {
        let base = base();
        let axis = Axis::new("decode.replicas", numbers(&[1, 2]), &base).unwrap();
        assert_eq!(axis.path, "deployment.pools[1].replicas");
        let axis = Axis::new("prefill.max_num_seqs", numbers(&[4]), &base).unwrap();
        assert_eq!(axis.path, "deployment.pools[0].scheduler.max_num_seqs");
        assert!(Axis::new("replicas", numbers(&[1]), &base).unwrap_err().contains("ambiguous"));
        assert!(Axis::new("deployment.pools[5].replicas", numbers(&[1]), &base).unwrap_err().contains("2 entries"));
        assert!(Axis::new("warp_speed", numbers(&[1]), &base).unwrap_err().contains("unknown axis"));
    }

    #[test]
    fn plans_decode_in_mixed_radix_with_the_last_axis_fastest() {
        let base = base();
        let set = AxisSet {
            axes: vec![
                Axis::new("prefill.replicas", numbers(&[1, 2, 3]), &base).unwrap(),
                Axis::new("deployment.pools[1].tensor_parallel", numbers(&[1, 2]), &base).unwrap(),
            ],
        };
        assert_eq!(set.plan_count(), Some(6));
        let decoded: Vec<Vec<usize>> = (0..6).map(|i| set.decode(i)).collect();
        assert_eq!(decoded, vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1], vec![2, 0], vec![2, 1]]);
        let document = set.apply(&base, 5).unwrap();
        let pools = document["deployment"]["pools"].as_sequence().unwrap();
        assert_eq!(pools[0]["replicas"], Value::from(3u64));
        assert_eq!(pools[1]["tensor_parallel"], Value::from(2u64));
    }

    #[test]
    fn huge_spaces_are_counted_without_materialising_them() {
        let base = base();
        let wide: Vec<Value> = (0..100_000u64).map(Value::from).collect();
        let set = AxisSet {
            axes: (0..3).map(|_| Axis::new("deployment.pools[0].replicas", wide.clone(), &base).unwrap()).collect(),
        };
        assert_eq!(set.plan_count(), Some(1_000_000_000_000_000));
        assert_eq!(set.decode(999_999_999_999_999), vec![99_999, 99_999, 99_999]);
        let too_many = AxisSet { axes: (0..4).map(|_| set.axes[0].clone()).collect() };
        assert_eq!(too_many.plan_count(), None);
    }
}
