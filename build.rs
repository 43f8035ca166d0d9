//! Embeds the bundled hardware profiles, calibrations (measured operator tables included),
//! model configs and scenarios into the binary so that
//! `servesim` runs from any folder. Adding a file to one of these folders needs no code change.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Picks the files of a folder that belong in a table, with their catalog names.
type Picker = dyn Fn(&Path) -> Option<(String, PathBuf)>;

fn collect(dir: &Path, pick: &Picker) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if let Some(item) = pick(&entry.path()) {
                found.push(item);
            }
        }
    }
    found.sort();
    found
}

fn yaml_files(path: &Path) -> Option<(String, PathBuf)> {
    let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    is_yaml.then(|| (path.file_stem().unwrap().to_string_lossy().into_owned(), path.to_path_buf()))
}

fn model_configs(path: &Path) -> Option<(String, PathBuf)> {
    let config = path.join("config.json");
    config.is_file().then(|| (path.file_name().unwrap().to_string_lossy().into_owned(), config))
}

fn table(out: &mut String, name: &str, items: &[(String, PathBuf)]) {
    writeln!(out, "/// Bundled files: (catalog name, file text).").unwrap();
    writeln!(out, "pub static {name}: &[(&str, &str)] = &[").unwrap();
    for (key, path) in items {
        let absolute = path.canonicalize().unwrap();
        writeln!(out, "    ({key:?}, include_str!({:?})),", absolute.display().to_string()).unwrap();
    }
    writeln!(out, "];").unwrap();
}

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut out = String::new();
    let groups: [(&str, &str, &Picker); 8] = [
        ("BUNDLED_DEVICES", "hardware-profiles/devices", &yaml_files),
        ("BUNDLED_LINKS", "hardware-profiles/links", &yaml_files),
        ("BUNDLED_MODELS", "models", &model_configs),
        ("BUNDLED_NODES", "hardware-profiles/nodes", &yaml_files),
        ("BUNDLED_CALIBRATIONS", "hardware-profiles/calibrations", &yaml_files),
        ("BUNDLED_ENGINES", "hardware-profiles/engines", &yaml_files),
        ("BUNDLED_MEASURED", "hardware-profiles/calibrations/aiconfigurator", &yaml_files),
        ("BUNDLED_SCENARIOS", "scenarios", &yaml_files),
    ];
    for (name, dir, pick) in groups {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let items = collect(&dir, pick);
        for (_, path) in &items {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        table(&mut out, name, &items);
    }
    let out_path = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bundled.rs");
    fs::write(out_path, out).unwrap();
}
