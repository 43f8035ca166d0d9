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
/// byte-order mark (as Windows editors save) is dropped.
pub fn read_text(path: &Path) -> Result<String> {
    let read = || -> std::io::Result<String> {
        if path.extension().is_some_and(|x| x == "gz") {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
            Ok(text)
        } else {
            std::fs::read_to_string(path)
        }
    };
    read().map(strip_bom).map_err(|source| {
        let message = if source.kind() == std::io::ErrorKind::NotFound {
            "file not found".to_string()
        } else {
            "cannot read file".to_string()
        };
        Error::io(path, message, source)
    })
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
