//! Field path → line lookup for YAML text, built from the parser's marked events.

use std::collections::BTreeMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Maps field paths written like serde_path_to_error's (`a.b[2].c`) to 1-based lines.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    lines: BTreeMap<String, usize>,
    duplicates: Vec<(String, usize)>,
    second_document: Option<usize>,
}

enum Frame {
    Map { path: String, awaiting_value: Option<String> },
    Seq { path: String, next_index: usize },
}

struct Builder {
    stack: Vec<Frame>,
    lines: BTreeMap<String, usize>,
    duplicates: Vec<(String, usize)>,
}

impl Builder {
    /// Path of the node that starts now, consuming the parent's slot for it.
    fn child_path(&mut self, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { awaiting_value, .. }) => awaiting_value.take(),
            Some(Frame::Seq { path, next_index }) => {
                let child = format!("{path}[{next_index}]");
                *next_index += 1;
                self.lines.entry(child.clone()).or_insert(line);
                Some(child)
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { path, awaiting_value }) = self.stack.last_mut() {
                    if awaiting_value.is_none() {
                        let child = if path.is_empty() { value } else { format!("{path}.{value}") };
                        if self.lines.contains_key(&child) {
                            self.duplicates.push((child.clone(), line));
                        } else {
                            self.lines.insert(child.clone(), line);
                        }
                        *awaiting_value = Some(child);
                        return;
                    }
                }
                self.child_path(line);
            }
            Event::Alias(_) => {
                self.child_path(line);
            }
            Event::MappingStart(..) => {
                let path = self.child_path(line).unwrap_or_else(|| "?".to_string());
                self.stack.push(Frame::Map { path, awaiting_value: None });
            }
            Event::SequenceStart(..) => {
                let path = self.child_path(line).unwrap_or_else(|| "?".to_string());
                self.stack.push(Frame::Seq { path, next_index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl LineIndex {
    /// Indexes `text`; on a syntax error the index holds what was read before it.
    pub fn build(text: &str) -> Self {
        let mut builder = Builder { stack: Vec::new(), lines: BTreeMap::new(), duplicates: Vec::new() };
        let mut parser = Parser::new_from_str(text);
        // Only the first document is indexed (servesim reads one); the next event tells
        // whether another one follows.
        let second_document = match parser.load(&mut builder, false).and_then(|()| parser.peek()) {
            Ok((Event::DocumentStart, mark)) => Some(mark.line()),
            _ => None,
        };
        LineIndex { lines: builder.lines, duplicates: builder.duplicates, second_document }
    }

    /// The line where a second document starts, if the text has one.
    pub fn second_document(&self) -> Option<usize> {
        self.second_document
    }

    /// The line of exactly `path`, if the text has it.
    pub fn exact_line(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }

    /// Keys that appear twice in one mapping: (path, line of the repeat).
    pub fn duplicates(&self) -> &[(String, usize)] {
        &self.duplicates
    }

    /// The line of `path`, or of its nearest indexed ancestor.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut current = path;
        loop {
            if let Some(line) = self.lines.get(current) {
                return Some(*line);
            }
            let cut = current.rfind(['.', '['])?;
            current = &current[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_fields_and_sequence_items() {
        let text = "name: x\ndeployment:\n  pools:\n    - device: h100\n      replicas: 2\n    - device: a100\nslo: {ttft_s: 2}\n";
        let index = LineIndex::build(text);
        assert_eq!(index.line_of("name"), Some(1));
        assert_eq!(index.line_of("deployment.pools[0].device"), Some(4));
        assert_eq!(index.line_of("deployment.pools[0].replicas"), Some(5));
        assert_eq!(index.line_of("deployment.pools[1].device"), Some(6));
        assert_eq!(index.line_of("deployment.pools[1].missing"), Some(6));
        assert_eq!(index.line_of("slo.ttft_s"), Some(7));
    }
}
