//! `servesim validate`: check scenario files and search specs (and everything they name)
//! without simulating.

use super::run::check_servable;
use crate::error::{Error, Result};
use crate::input::YamlSource;
use crate::scenario::{Overrides, Scenario};
use crate::search::{duration_text, SearchSpec};
use std::path::{Path, PathBuf};

/// What a YAML input file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A scenario.
    Scenario,
    /// A search spec (it has `base:` or `axes:`).
    SearchSpec,
}

/// Tells a scenario from a search spec by its top-level keys, as the line index read them:
/// without expanding aliases, and up to a syntax error if the file has one. The loader of the
/// kind found then reports the file's first problem, exactly as `run` or `search` would (a
/// spec whose syntax error comes before `base:` and `axes:` is read as a scenario, whose
/// loader meets that syntax error).
pub fn detect(path: &Path) -> Result<InputKind> {
    let source = YamlSource::from_file(path)?;
    let is_search = source.has_field("axes") || source.has_field("base");
    Ok(if is_search { InputKind::SearchSpec } else { InputKind::Scenario })
}

/// What `servesim validate` was asked to check.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Scenario files or search specs.
    pub files: Vec<PathBuf>,
    /// Largest search accepted.
    pub max_plans: u64,
}

/// One line about one valid file.
fn check(path: &Path, max_plans: u64) -> Result<String> {
    match detect(path)? {
        InputKind::SearchSpec => {
            let spec = SearchSpec::load(path, max_plans)?;
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            Ok(format!(
                "ok: {}: search spec over {} plans (about {} on {threads} cores), base {} with {} requests",
                path.display(),
                spec.plan_count(),
                duration_text(spec.estimated_seconds(threads)),
                spec.base_source.name,
                spec.requests.len()
            ))
        }
        InputKind::Scenario => {
            let scenario = Scenario::load(path, &Overrides::default())?;
            super::run::print_warnings(&scenario);
            if let Some(warning) = check_servable(&scenario)? {
                eprintln!("warning: {warning}");
            }
            let pools: Vec<String> = scenario
                .pools
                .iter()
                .map(|p| {
                    format!(
                        "{} × {} TP{} PP{} ({} KV blocks/replica)",
                        p.replicas,
                        p.device.name,
                        p.parallelism.tensor,
                        p.parallelism.pipeline,
                        p.memory.kv_capacity_blocks
                    )
                })
                .collect();
            Ok(format!(
                "ok: {}: {} on {}; {} requests",
                path.display(),
                scenario.model.name,
                pools.join(" + "),
                scenario.requests.len()
            ))
        }
    }
}

/// Checks every file, printing `ok` lines and errors; fails when any file fails.
pub fn validate(options: &ValidateOptions) -> Result<()> {
    let mut failures = 0;
    for file in &options.files {
        match check(file, options.max_plans) {
            Ok(line) => println!("{line}"),
            Err(error) => {
                eprintln!("error: {error}");
                failures += 1;
            }
        }
    }
    if failures > 0 {
        return Err(Error::usage("validate", format!("{failures} of {} files failed validation", options.files.len())));
    }
    Ok(())
}
