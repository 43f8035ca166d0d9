//! The module map of ARCHITECTURE.md, enforced: each module may use only the modules listed
//! for it here. The engine uses nothing of the crate; serving components know neither the
//! scenario file, search, reports nor commands; nothing but the binary uses `commands`. A new
//! dependency is a design decision: add it here, with ARCHITECTURE.md, or restructure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the crate modules it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("engine", &[]),
    ("input", &["error"]),
    ("records", &["engine"]),
    ("model", &["error", "hardware"]),
    ("engine_profiles", &["calibration", "error", "input"]),
    ("hardware", &["calibration", "engine_profiles", "error", "input", "model"]),
    ("topology", &["cost", "engine", "hardware"]),
    ("cost", &["engine", "hardware", "model", "scenario", "topology"]),
    ("calibration", &["cost", "error", "hardware", "input", "model", "scenario", "topology"]),
    ("serving", &["cost", "engine", "engine_profiles", "hardware", "model", "records", "topology"]),
    ("workload", &["engine", "error", "input", "records", "scenario"]),
    (
        "scenario",
        &[
            "calibration",
            "engine",
            "engine_profiles",
            "error",
            "hardware",
            "input",
            "metrics",
            "model",
            "records",
            "serving",
            "topology",
            "workload",
        ],
    ),
    ("cluster", &["cost", "engine", "engine_profiles", "model", "records", "scenario", "serving"]),
    ("metrics", &["cluster", "records", "scenario", "serving"]),
    ("fidelity", &["calibration", "cluster", "cost", "error", "hardware", "input", "model", "scenario"]),
    ("report", &["cluster", "error", "metrics", "scenario", "serving"]),
    ("search", &["cluster", "engine", "error", "hardware", "input", "metrics", "records", "scenario", "workload"]),
    (
        "commands",
        &[
            "calibration",
            "cluster",
            "engine",
            "error",
            "hardware",
            "input",
            "metrics",
            "model",
            "report",
            "scenario",
            "search",
            "workload",
        ],
    ),
];

/// Every `crate::<module>` a module's files mention (code and doc links alike).
fn uses(dir: &Path, module: &str, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            uses(&path, module, found);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("crate::") {
                let name: String = text[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    found.insert(name);
                }
            }
        }
    }
}

#[test]
fn modules_use_only_what_the_architecture_allows() {
    let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim");
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(m, deps)| (*m, deps.iter().copied().collect())).collect();
    let mut violations = Vec::new();
    for entry in std::fs::read_dir(&sim).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let module = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(may_use) = allowed.get(module.as_str()) else {
            violations.push(format!("sim/{module}/ is not in the module map of tests/architecture.rs"));
            continue;
        };
        let mut found = BTreeSet::new();
        uses(&path, &module, &mut found);
        for used in found {
            if !may_use.contains(used.as_str()) {
                violations.push(format!("{module} uses {used}, which the architecture does not allow"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // The two rules everything else rests on.
    assert!(allowed["engine"].is_empty(), "the engine must know nothing of LLM serving");
    for forbidden in ["search", "report", "commands", "scenario"] {
        assert!(!allowed["serving"].contains(forbidden), "serving must not use {forbidden}");
    }
    for (module, deps) in &allowed {
        assert!(*module == "commands" || !deps.contains("commands"), "{module} must not use commands");
    }
}

#[test]
fn the_rule_catches_a_violation() {
    // Guard against a scanner that finds nothing: the serving module does use the engine.
    let mut found = BTreeSet::new();
    uses(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sim/serving"), "serving", &mut found);
    assert!(found.contains("engine") && found.contains("records"), "{found:?}");
    assert!(!found.contains("search"));
}
