//! The crate's error type: every failure a user can cause says which file, which field and
//! which line, in one paragraph.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where in an input file something went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The file (as the user named it), or `<bundled NAME>` for embedded files.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Field path such as `deployment.pools[0].device`, when the error concerns a field.
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            if !field.is_empty() {
                write!(f, ": field `{field}`")?;
            }
        }
        Ok(())
    }
}

/// Errors from loading, validating, building or running a scenario.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {message}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done.
        message: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A command-line option is malformed or impossible.
    #[error("{flag}: {message}")]
    Usage {
        /// The option, e.g. `--loads`.
        flag: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// An input file is malformed or names something impossible.
    #[error("{location}: {message}")]
    Input {
        /// Where.
        location: Location,
        /// What is wrong and, where possible, what would be accepted.
        message: String,
    },
}

/// Shorthand result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An input error in `file` with no more precise location.
    pub fn in_file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input { location: Location { file: file.into(), line: None, field: None }, message: message.into() }
    }

    /// An input error at a known location.
    pub fn at(location: Location, message: impl Into<String>) -> Self {
        Error::Input { location, message: message.into() }
    }

    /// A bad command-line option.
    pub fn usage(flag: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Usage { flag: flag.into(), message: message.into() }
    }

    /// A read/write failure.
    pub fn io(path: &Path, message: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), message: message.into(), source }
    }
}

/// Reads a whole text file, naming it in the error. A file whose name ends in `.gz` is
/// decompressed first, so gzipped traces and profiles read like plain ones; a leading UTF-8
/// byte-order mark (as Windows editors save) is dropped. A file that is not UTF-8 is an error
/// at the line of its first bad byte.
pub fn read_text(path: &Path) -> Result<String> {
    let read = || -> std::io::Result<Vec<u8>> {
        if path.extension().is_some_and(|x| x == "gz") {
            let mut bytes = Vec::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(path)?).read_to_end(&mut bytes)?;
            Ok(bytes)
        } else {
            std::fs::read(path)
        }
    };
    let bytes = read().map_err(|source| {
        let message = if source.kind() == std::io::ErrorKind::NotFound {
            "file not found".to_string()
        } else {
            "cannot read file".to_string()
        };
        Error::io(path, message, source)
    })?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(strip_bom(text)),
        Err(error) => {
            let valid_up_to = error.utf8_error().valid_up_to();
            Err(not_utf8(&path.display().to_string(), 1, error.as_bytes(), valid_up_to))
        }
    }
}

/// The error for text that is not UTF-8: `bytes` start on line `first_line` of `file` and
/// are valid up to `valid_up_to`. Lines end at LF, CRLF or a lone CR.
pub fn not_utf8(file: &str, first_line: usize, bytes: &[u8], valid_up_to: usize) -> Error {
    let before = &bytes[..valid_up_to.min(bytes.len())];
    let breaks = before
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count();
    let line_start = before.iter().rposition(|&b| b == b'\n' || b == b'\r').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    let message = if first_line == 1 && (bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff])) {
        "the file is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8".to_string()
    } else {
        let byte = bytes.get(valid_up_to).copied().unwrap_or(0);
        format!("the file is not UTF-8 text: byte 0x{byte:02x} in column {column} is not valid UTF-8; save the file as UTF-8")
    };
    Error::at(Location { file: file.to_string(), line: Some(first_line + breaks), field: None }, message)
}

/// A CSV reader's error in `file` as an input error at its line.
pub fn csv_error(file: &str, error: &csv::Error) -> Error {
    let line = error.position().map(|p| p.line() as usize);
    let message = match error.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("malformed row: {len} fields where the header has {expected_len}")
        }
        _ => {
            let text = error.to_string();
            // The csv crate appends "(line: L, byte: B)"; the line is printed in front.
            match (text.find(" (line: "), text.find("): ")) {
                (Some(start), Some(end)) if start < end => format!("{}{}", &text[..start], &text[end + 1..]),
                _ => text,
            }
        }
    };
    Error::at(Location { file: file.to_string(), line, field: None }, message)
}

/// `text` without a leading byte-order mark.
pub fn strip_bom(text: String) -> String {
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// Opens a text file for reading line by line (decompressing `.gz` files as they are read),
/// naming it in the error.
pub fn open_text(path: &Path) -> Result<Box<dyn std::io::BufRead>> {
    let file = std::fs::File::open(path).map_err(|source| {
        let message = if source.kind() == std::io::ErrorKind::NotFound { "file not found" } else { "cannot read file" };
        Error::io(path, message, source)
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::io(path, "cannot read file", std::io::Error::other("it is a folder")));
    }
    if path.extension().is_some_and(|x| x == "gz") {
        let decoder = flate2::read::MultiGzDecoder::new(file);
        return Ok(Box::new(std::io::BufReader::with_capacity(1 << 16, decoder)));
    }
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 16, file)))
}

/// The file name of `path` without a trailing `.gz` (`mlp.csv.gz` → `mlp.csv`), the name
/// [`read_text`] reads it as; `None` for a path without a UTF-8 file name.
pub fn uncompressed_name(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    Some(name.strip_suffix(".gz").unwrap_or(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(error: Error) -> (Option<usize>, String) {
        match error {
            Error::Input { location, message } => (location.line, message),
            other => panic!("not an input error: {other}"),
        }
    }

    #[test]
    fn text_that_is_not_utf8_is_an_error_at_the_line_of_its_first_bad_byte() {
        let bytes = b"name: a\r\nseed: 1\rmodel: caf\xe9\n";
        let valid = bytes.iter().position(|&b| b == 0xe9).unwrap();
        // LF, CRLF and a lone CR each end a line; the column counts characters.
        let (line, message) = located(not_utf8("s.yaml", 1, bytes, valid));
        assert_eq!(line, Some(3));
        assert!(message.contains("byte 0xe9 in column 11"), "{message}");
        let (line, _) = located(not_utf8("t.csv", 40, b"x\xff", 1));
        assert_eq!(line, Some(40));
        let (line, message) = located(not_utf8("u.yaml", 1, b"\xff\xfen\0", 0));
        assert_eq!(line, Some(1));
        assert!(message.contains("UTF-16"), "{message}");
    }

    #[test]
    fn read_text_reads_gzip_and_names_the_line_of_bad_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.yaml");
        std::fs::write(&plain, b"\xef\xbb\xbfok: 1\nbad: \xc3\x28\n").unwrap();
        let (line, _) = located(read_text(&plain).unwrap_err());
        assert_eq!(line, Some(2));
        let gz = dir.path().join("b.csv.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, "\u{feff}a,b\n1,2\n".as_bytes()).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
        assert_eq!(read_text(&gz).unwrap(), "a,b\n1,2\n");
        assert!(matches!(read_text(&dir.path().join("missing.yaml")), Err(Error::Io { .. })));
    }

    #[test]
    fn csv_errors_carry_their_line() {
        let text = "a,b\n1,2\n3\n";
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let error = reader.records().find_map(|r| r.err()).expect("a short row");
        let (line, message) = located(csv_error("t.csv", &error));
        assert_eq!(line, Some(3));
        assert_eq!(message, "malformed row: 1 fields where the header has 2");
    }
}
