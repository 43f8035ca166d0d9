//! The input edge: reading YAML files into typed structs with errors that carry the file, the
//! field path and the line.
//!
//! Everything user-written passes through here exactly once. serde does the structural work
//! (`deny_unknown_fields` everywhere, the checked number types of [`checked`] for ranges);
//! [`LineIndex`] maps field paths back to lines so that checks made after parsing (unknown
//! device names, a model that does not fit) can still point at the line. This module is not
//! where scenario semantics live; see `scenario`.

pub mod checked;
mod line_index;

pub use line_index::LineIndex;
// The YAML library is used through this module only, so that a maintained fork of the
// deprecated serde_yaml can replace it in one place.
pub use serde_yaml::with::singleton_map;
pub use serde_yaml::{Mapping as YamlMapping, Value as YamlValue};

/// `value` as YAML text.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> std::result::Result<String, String> {
    serde_yaml::to_string(value).map_err(|e| e.to_string())
}

/// `value` as a YAML document tree.
pub fn to_yaml_value<T: serde::Serialize>(value: &T) -> std::result::Result<YamlValue, String> {
    serde_yaml::to_value(value).map_err(|e| e.to_string())
}

/// A typed value from a YAML document tree (the message names the field at fault).
pub fn from_yaml_value<T: DeserializeOwned>(value: YamlValue) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = clean_message(&e.into_inner().to_string());
        if path.is_empty() || path == "." {
            message
        } else {
            format!("field `{path}`: {message}")
        }
    })
}

use crate::error::{read_text, Error, Location, Result};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A YAML document together with its origin and a field-path → line index.
#[derive(Debug, Clone)]
pub struct YamlSource {
    /// The name used in messages (the path as given, or `<bundled NAME>`).
    pub name: String,
    /// The folder relative paths inside the document are resolved against.
    pub base_dir: PathBuf,
    /// The text.
    pub text: String,
    index: LineIndex,
}

impl YamlSource {
    /// Reads `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = read_text(path)?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Self::from_text(path.display().to_string(), base_dir, text))
    }

    /// Wraps text that did not come from a file (bundled files, tests).
    pub fn from_text(name: impl Into<String>, base_dir: PathBuf, text: String) -> Self {
        let text = crate::error::strip_bom(text);
        let index = LineIndex::build(&text);
        YamlSource { name: name.into(), base_dir, text, index }
    }

    /// Deserializes the document into `T`, mapping serde errors to [`Error::Input`] with the
    /// field path and line.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        let has_content = self.text.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && l != "---"
        });
        if !has_content {
            return Err(Error::in_file(&self.name, "the file is empty"));
        }
        let deserializer = serde_yaml::Deserializer::from_str(&self.text);
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let message = clean_message(&inner.to_string());
            // A repeated key: point at the repeat, which the index saw.
            if message.contains("duplicate entry") || message.contains("duplicate field") {
                if let Some((field, line)) = self.index.duplicates().first() {
                    return Error::at(
                        Location { file: self.name.clone(), line: Some(*line), field: Some(field.clone()) },
                        message,
                    );
                }
            }
            let raw = inner.to_string();
            let syntax = raw.contains("while parsing") || raw.contains("while scanning");
            if syntax {
                // The parser's own position is the truth; the path is only where it was.
                let line = inner.location().map(|l| l.line());
                return Error::at(Location { file: self.name.clone(), line, field: None }, message);
            }
            let known_path = !path.is_empty() && path != "." && !path.contains('?');
            // serde_yaml places errors raised while reading a value at the start of the
            // enclosing mapping; the index knows the value's own line.
            let line = known_path
                .then(|| self.index.exact_line(&path))
                .flatten()
                .or_else(|| inner.location().map(|l| l.line()))
                .or_else(|| known_path.then(|| self.line_of(&path)).flatten());
            Error::at(Location { file: self.name.clone(), line, field: known_path.then_some(path) }, message)
        })
    }

    /// The line of `field` (or of its nearest parent that has one).
    pub fn line_of(&self, field: &str) -> Option<usize> {
        self.index.line_of(field)
    }

    /// An error about `field`, located by the index.
    pub fn error(&self, field: &str, message: impl Into<String>) -> Error {
        Error::at(
            Location { file: self.name.clone(), line: self.line_of(field), field: Some(field.to_string()) },
            message,
        )
    }

    /// Resolves a path written in the document relative to its folder.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        let path = Path::new(relative);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// serde_yaml prefixes messages with the field path and appends " at line L column C"; both
/// are printed separately, so they are cut here.
fn clean_message(message: &str) -> String {
    let mut message = match message.rfind(" at line ") {
        Some(pos) if message[pos..].contains(" column ") => &message[..pos],
        _ => message,
    };
    if let Some((prefix, rest)) = message.split_once(": ") {
        if !prefix.is_empty() && !prefix.contains(char::is_whitespace) && prefix != "invalid type" {
            message = rest;
        }
    }
    message.to_string()
}

/// Formats a list of names for "known ones are: ..." messages.
pub fn known_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().collect::<Vec<_>>().join(", ")
}
