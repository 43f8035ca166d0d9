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
                let (line, message) = syntax_error(&raw, inner.location().map(|l| l.line()));
                return Error::at(Location { file: self.name.clone(), line, field: None }, message);
            }
            if raw.contains("more than one document") {
                return Error::at(
                    Location { file: self.name.clone(), line: self.index.second_document(), field: None },
                    "a second YAML document starts here (after `---`); servesim reads one document per file",
                );
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

    /// Whether the document has exactly `field` (read without expanding aliases, and up to a
    /// syntax error if there is one).
    pub fn has_field(&self, field: &str) -> bool {
        self.index.exact_line(field).is_some()
    }

    /// An error about the file named at `field`: one that could not be found or read is this
    /// document's error (at the field naming it); a problem inside the file (a bad byte, a
    /// syntax error, a bad value) is that file's own error and is returned as it is.
    pub fn file_error(&self, field: &str, error: Error) -> Error {
        match error {
            Error::Io { .. } => self.error(field, error.to_string()),
            other => other,
        }
    }

    /// Checks that the number at `field` lies in `min..=max` (`unit` is printed after the
    /// numbers). Used for bounds far beyond real hardware that keep every duration derived
    /// from a profile well inside the simulator's u64-nanosecond clock.
    pub fn check_range(&self, field: &str, value: f64, range: (f64, f64), unit: &str) -> Result<()> {
        self.check_within(
            field,
            value,
            range,
            unit,
            "far beyond real hardware either way; the bounds keep every derived duration within the simulator's clock",
        )
    }

    /// Checks that the number at `field` lies in `min..=max`, saying `why` those are the
    /// bounds when it does not.
    pub fn check_within(&self, field: &str, value: f64, (min, max): (f64, f64), unit: &str, why: &str) -> Result<()> {
        if value.is_finite() && (min..=max).contains(&value) {
            return Ok(());
        }
        Err(self.error(
            field,
            format!(
                "expected {}{unit} to {}{unit}, found {}{unit} ({why})",
                number_text(min),
                number_text(max),
                number_text(value)
            ),
        ))
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

/// The line and message of a libyaml syntax error, which reads "PROBLEM at line L column C,
/// CONTEXT at line L2 column C2". An unclosed quote or flow collection is reported where the
/// parser gave up (often the end of the file); the context mark is where it opens, the line to
/// fix, so that line is given. Other contexts (a block mapping) start far above the problem.
fn syntax_error(raw: &str, problem_line: Option<usize>) -> (Option<usize>, String) {
    let message = clean_message(raw);
    let Some((_, context)) = raw.split_once(", while ") else { return (problem_line, message) };
    let opens = context.starts_with("scanning a quoted scalar") || context.starts_with("parsing a flow");
    let context_line = context
        .rsplit_once(" at line ")
        .and_then(|(_, mark)| mark.split(' ').next())
        .and_then(|line| line.parse::<usize>().ok());
    match context_line {
        Some(line) if opens && Some(line) != problem_line => {
            let (problem, _) = raw.split_once(", while ").unwrap_or((raw, ""));
            let what = context.rsplit_once(" at line ").map_or(context, |(what, _)| what);
            (Some(line), format!("{problem}, while {what} that starts on line {line}"))
        }
        _ => (problem_line, message),
    }
}

/// A number for messages: plain when moderate, in exponent form when tiny or huge.
pub fn number_text(value: f64) -> String {
    if value != 0.0 && value.is_finite() && !(1e-3..1e6).contains(&value.abs()) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

/// Formats a list of names for "known ones are: ..." messages.
pub fn known_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_line(text: &str) -> (Option<usize>, String) {
        let source = YamlSource::from_text("s.yaml", PathBuf::new(), text.to_string());
        match source.parse::<YamlValue>() {
            Err(Error::Input { location, message }) => (location.line, message),
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn an_unclosed_quote_or_flow_collection_is_reported_where_it_opens() {
        let (line, message) = error_line("a: 1\nb: \"open\nc: 2\nd: 3\n");
        assert_eq!(line, Some(2), "{message}");
        assert!(message.contains("quoted scalar that starts on line 2"), "{message}");
        let (line, message) = error_line("a: 1\nb: { x: 1\nc: 2\n");
        assert_eq!(line, Some(2), "{message}");
        // A block context starts far above the problem: the problem's line is kept.
        let (line, message) = error_line("a:\n  b: 1\n c: 2\n");
        assert_eq!(line, Some(3), "{message}");
    }

    #[test]
    fn a_second_document_is_reported_at_its_marker() {
        let (line, message) = error_line("a: 1\nb: 2\n---\nc: 3\n");
        assert_eq!(line, Some(3));
        assert!(message.contains("second YAML document"), "{message}");
    }

    #[test]
    fn top_level_keys_are_known_without_expanding_aliases() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, previous) in
            ["b", "c", "d", "e", "f", "g", "h", "i"].iter().zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            text += &format!("{name}: &{name} [{}]\n", vec![format!("*{previous}"); 10].join(", "));
        }
        text += "axes: {}\n";
        let source = YamlSource::from_text("s.yaml", PathBuf::new(), text);
        assert!(source.has_field("axes"));
        assert!(source.has_field("a"));
        assert!(!source.has_field("base"));
    }

    #[test]
    fn numbers_out_of_range_name_the_range() {
        let source = YamlSource::from_text("d.yaml", PathBuf::new(), "x:\n  bw: 1e-300\n".to_string());
        assert!(source.check_range("x.bw", 1.0, (1e-3, 1e6), " GB/s").is_ok());
        let message = source.check_range("x.bw", 1e-300, (1e-3, 1e6), " GB/s").unwrap_err().to_string();
        assert!(
            message.starts_with("d.yaml:2: field `x.bw`: expected 0.001 GB/s to 1e6 GB/s, found 1e-300 GB/s"),
            "{message}"
        );
        assert!(source.check_range("x.bw", f64::NAN, (0.0, 1.0), "").is_err());
    }
}
