//! Output folders: a run, sweep or search owns the folder it writes into.
//!
//! Before any simulation starts, [`OutputFolder::claim`] checks that the folder can be created
//! and written, and that it is empty or holds only what an earlier servesim output of the same
//! kind wrote (recognised by its `servesim.json` manifest, or by every file bearing a name that
//! kind writes). Those files are removed, so a new run never sits beside stale plots or
//! timelines of an older one. Any other folder is refused with the reason. When the outputs are
//! written, [`OutputFolder::finish`] records them in the manifest, which `servesim plot` reads.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What wrote a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// `servesim run`.
    Run,
    /// `servesim sweep`.
    Sweep,
    /// `servesim search` or `servesim merge`.
    Search,
    /// `servesim search --shard I/N`.
    SearchShard,
}

/// Plot stems a run may draw (each as .svg and .png).
pub const RUN_PLOTS: [&str; 5] = ["latency_cdf", "ttft_vs_input", "throughput_queue", "kv_cache", "power"];
/// Plot stems a search draws.
pub const SEARCH_PLOTS: [&str; 2] = ["pareto_energy", "pareto_cost"];
/// Plot stems a sweep draws.
pub const SWEEP_PLOTS: [&str; 1] = ["knee"];

impl OutputKind {
    /// Name in messages.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Run => "run",
            OutputKind::Sweep => "sweep",
            OutputKind::Search => "search",
            OutputKind::SearchShard => "search shard",
        }
    }

    /// Whether this kind may write a file named `name`.
    fn writes(self, name: &str) -> bool {
        let plot = |stems: &[&str]| {
            stems.iter().any(|stem| name.strip_prefix(stem).is_some_and(|rest| rest == ".svg" || rest == ".png"))
        };
        match self {
            OutputKind::Run => {
                matches!(name, "summary.json" | "requests.csv" | "token_gaps.csv" | "timeline.csv" | "trace.json")
                    || plot(&RUN_PLOTS)
            }
            OutputKind::Sweep => name == "sweep.csv" || plot(&SWEEP_PLOTS),
            OutputKind::Search => {
                matches!(name, "rows.csv" | "search.csv" | "pareto.csv" | "best.yaml") || plot(&SEARCH_PLOTS)
            }
            OutputKind::SearchShard => name == "rows.csv",
        }
    }
}

/// The manifest file every output folder holds.
pub const MANIFEST: &str = "servesim.json";

/// The contents of `servesim.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// What wrote the folder.
    pub kind: OutputKind,
    /// The scenario, sweep or search name (plot titles).
    pub name: String,
    /// Files written, relative to the folder.
    pub files: Vec<String>,
}

impl Manifest {
    /// Reads the manifest of `dir`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        if !path.is_file() {
            return Ok(None);
        }
        let text = crate::error::read_text(&path)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::in_file(path.display().to_string(), format!("not a servesim manifest: {e}")))
    }
}

/// A folder claimed for one kind of output.
#[derive(Debug, Clone)]
pub struct OutputFolder {
    path: PathBuf,
    kind: OutputKind,
}

impl OutputFolder {
    /// Claims `path` for `kind`: creates it, or clears what an earlier output of the same kind
    /// wrote there; refuses a folder holding anything else.
    pub fn claim(path: &Path, kind: OutputKind) -> Result<OutputFolder> {
        let refuse = |why: String| {
            Error::in_file(
                path.display().to_string(),
                format!("cannot write the {} outputs here: {why}; choose another folder with --out", kind.name()),
            )
        };
        if path.exists() && !path.is_dir() {
            return Err(refuse("it exists and is not a folder".into()));
        }
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, "cannot read the output folder", e))?;
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(path, "cannot read the output folder", e))?;
                names.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
            }
            names.sort();
            let manifest = Manifest::read(path).ok().flatten();
            if let Some(manifest) = &manifest {
                if manifest.kind != kind {
                    return Err(refuse(format!(
                        "it holds the outputs of a {} ({}), not of a {}",
                        manifest.kind.name(),
                        manifest.name,
                        kind.name()
                    )));
                }
            }
            let foreign: Vec<&str> = names
                .iter()
                .filter(|(name, full)| name != MANIFEST && (!full.is_file() || !kind.writes(name)))
                .map(|(name, _)| name.as_str())
                .collect();
            if !foreign.is_empty() {
                let shown: Vec<&str> = foreign.iter().take(5).copied().collect();
                return Err(refuse(format!(
                    "the folder holds files a servesim {} does not write ({}{})",
                    kind.name(),
                    shown.join(", "),
                    if foreign.len() > 5 { ", ..." } else { "" }
                )));
            }
            for (_, full) in &names {
                std::fs::remove_file(full).map_err(|e| Error::io(full, "cannot remove the earlier output", e))?;
            }
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, "cannot create the output folder", e))?;
        let folder = OutputFolder { path: path.to_path_buf(), kind };
        // Writing the manifest now proves the folder is writable before any work starts.
        folder.write_manifest("", &[])?;
        Ok(folder)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn write_manifest(&self, name: &str, files: &[PathBuf]) -> Result<()> {
        let manifest = Manifest {
            kind: self.kind,
            name: name.to_string(),
            files: files
                .iter()
                .filter_map(|f| f.strip_prefix(&self.path).ok().map(|p| p.display().to_string()))
                .collect(),
        };
        let path = self.path.join(MANIFEST);
        let text = serde_json::to_string_pretty(&manifest).expect("manifest serializes") + "\n";
        std::fs::write(&path, text).map_err(|e| Error::io(&path, "cannot write", e))
    }

    /// Records the files written and the output's name.
    pub fn finish(&self, name: &str, files: &[PathBuf]) -> Result<()> {
        self.write_manifest(name, files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_is_cleared_for_a_new_run_and_foreign_folders_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let folder = OutputFolder::claim(&dir, OutputKind::Run).unwrap();
        std::fs::write(dir.join("timeline.csv"), "old").unwrap();
        std::fs::write(dir.join("kv_cache.png"), "old").unwrap();
        folder.finish("first", &[dir.join("timeline.csv"), dir.join("kv_cache.png")]).unwrap();
        OutputFolder::claim(&dir, OutputKind::Run).unwrap();
        assert!(!dir.join("timeline.csv").exists() && !dir.join("kv_cache.png").exists());
        let error = OutputFolder::claim(&dir, OutputKind::Search).unwrap_err().to_string();
        assert!(error.contains("outputs of a run"), "{error}");
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let error = OutputFolder::claim(&dir, OutputKind::Run).unwrap_err().to_string();
        assert!(error.contains("notes.txt") && dir.join("notes.txt").exists(), "{error}");
        let file = tmp.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        assert!(OutputFolder::claim(&file, OutputKind::Sweep).unwrap_err().to_string().contains("not a folder"));
    }
}
