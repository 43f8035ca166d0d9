//! Reading AIConfigurator's Parquet tables into typed columns, with errors that name the file
//! and the column.
//!
//! For `servesim calibrate --aiconfigurator` only: the tables are read once, whole, at
//! conversion time (a few hundred thousand rows). Nothing here runs during a simulation, and
//! this is not a general Parquet reader: it knows the three column kinds the tables use
//! (integers, floats, strings).

use crate::error::{Error, Location, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use std::path::Path;

/// One column's values.
#[derive(Debug, Clone, PartialEq)]
enum Column {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Str(Vec<String>),
    /// A column of a type the tables never use (kept so that its name is known).
    Other(&'static str),
}

/// A table read whole from a Parquet file.
#[derive(Debug, Clone)]
pub struct ParquetTable {
    /// The file, for messages.
    pub file: String,
    rows: usize,
    columns: Vec<(String, Column)>,
}

fn field_kind(field: &Field) -> &'static str {
    match field {
        Field::Null => "null",
        Field::Bool(_) => "boolean",
        Field::Byte(_) | Field::Short(_) | Field::Int(_) | Field::Long(_) => "integer",
        Field::UByte(_) | Field::UShort(_) | Field::UInt(_) | Field::ULong(_) => "integer",
        Field::Float16(_) | Field::Float(_) | Field::Double(_) => "float",
        Field::Str(_) => "string",
        _ => "other",
    }
}

fn as_int(field: &Field) -> Option<i64> {
    match *field {
        Field::Byte(v) => Some(v.into()),
        Field::Short(v) => Some(v.into()),
        Field::Int(v) => Some(v.into()),
        Field::Long(v) => Some(v),
        Field::UByte(v) => Some(v.into()),
        Field::UShort(v) => Some(v.into()),
        Field::UInt(v) => Some(v.into()),
        Field::ULong(v) => i64::try_from(v).ok(),
        _ => None,
    }
}

fn as_float(field: &Field) -> Option<f64> {
    match *field {
        Field::Float16(v) => Some(v.into()),
        Field::Float(v) => Some(v.into()),
        Field::Double(v) => Some(v),
        _ => None,
    }
}

impl ParquetTable {
    /// Reads every row of `path`.
    pub fn read(path: &Path) -> Result<ParquetTable> {
        let file_name = path.display().to_string();
        let bad = |message: String| Error::in_file(&file_name, message);
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open the Parquet file", e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
        let names: Vec<String> =
            reader.metadata().file_metadata().schema_descr().columns().iter().map(|c| c.name().to_string()).collect();
        let mut columns: Vec<(String, Option<Column>)> = names.into_iter().map(|n| (n, None)).collect();
        let mut rows = 0;
        let iter = reader.get_row_iter(None).map_err(|e| bad(format!("cannot read the rows: {e}")))?;
        for row in iter {
            let row = row.map_err(|e| bad(format!("row {}: cannot be decoded: {e}", rows + 1)))?;
            for (index, (name, field)) in row.get_column_iter().enumerate() {
                let Some((_, column)) = columns.get_mut(index) else {
                    return Err(bad(format!("row {} has more columns than the schema", rows + 1)));
                };
                let at = |message: String| {
                    Error::at(Location { file: file_name.clone(), line: None, field: Some(name.clone()) }, message)
                };
                let column = column.get_or_insert_with(|| match field_kind(field) {
                    "integer" => Column::Int(Vec::new()),
                    "float" => Column::Float(Vec::new()),
                    "string" => Column::Str(Vec::new()),
                    other => Column::Other(other),
                });
                match column {
                    Column::Int(values) => values.push(
                        as_int(field)
                            .ok_or_else(|| at(format!("row {}: expected an integer, found {field}", rows + 1)))?,
                    ),
                    Column::Float(values) => values.push(
                        as_float(field)
                            .ok_or_else(|| at(format!("row {}: expected a float, found {field}", rows + 1)))?,
                    ),
                    Column::Str(values) => match field {
                        Field::Str(text) => values.push(text.clone()),
                        other => return Err(at(format!("row {}: expected a string, found {other}", rows + 1))),
                    },
                    Column::Other(_) => {}
                }
            }
            rows += 1;
        }
        let columns =
            columns.into_iter().map(|(name, column)| (name, column.unwrap_or(Column::Other("empty")))).collect();
        Ok(ParquetTable { file: file_name, rows, columns })
    }

    /// Rows in the table.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn error(&self, column: &str, message: impl Into<String>) -> Error {
        Error::at(Location { file: self.file.clone(), line: None, field: Some(column.to_string()) }, message)
    }

    fn column(&self, name: &str) -> Result<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c).ok_or_else(|| {
            let known: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
            self.error(name, format!("column missing (the table has: {})", known.join(", ")))
        })
    }

    /// Whether the table has a column `name`.
    pub fn has(&self, name: &str) -> bool {
        self.columns.iter().any(|(n, _)| n == name)
    }

    fn type_error(&self, name: &str, expected: &str, column: &Column) -> Error {
        let found = match column {
            Column::Int(_) => "integers",
            Column::Float(_) => "floats",
            Column::Str(_) => "strings",
            Column::Other(kind) => kind,
        };
        self.error(name, format!("expected a column of {expected}, found {found}"))
    }

    /// A column of whole numbers, each in `min..=max`.
    pub fn ints(&self, name: &str, (min, max): (i64, i64)) -> Result<&[i64]> {
        match self.column(name)? {
            Column::Int(values) => {
                if let Some((row, value)) = values.iter().enumerate().find(|(_, v)| !(min..=max).contains(*v)) {
                    return Err(self.error(name, format!("row {}: {value} is outside {min}..={max}", row + 1)));
                }
                Ok(values)
            }
            // An empty table has no values to give the column a type.
            Column::Other("empty") => Ok(&[]),
            other => Err(self.type_error(name, "integers", other)),
        }
    }

    /// A column of finite numbers above zero (latencies).
    pub fn positive_floats(&self, name: &str) -> Result<&[f64]> {
        match self.column(name)? {
            Column::Float(values) => {
                if let Some((row, value)) = values.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
                    return Err(self.error(name, format!("row {}: {value} is not a finite positive number", row + 1)));
                }
                Ok(values)
            }
            Column::Other("empty") => Ok(&[]),
            other => Err(self.type_error(name, "floats", other)),
        }
    }

    /// A column of strings.
    pub fn strings(&self, name: &str) -> Result<&[String]> {
        match self.column(name)? {
            Column::Str(values) => Ok(values),
            Column::Other("empty") => Ok(&[]),
            other => Err(self.type_error(name, "strings", other)),
        }
    }

    /// A string column when present, else `default` for every row.
    pub fn strings_or(&self, name: &str, default: &str) -> Result<Vec<String>> {
        if self.has(name) {
            Ok(self.strings(name)?.to_vec())
        } else {
            Ok(vec![default.to_string(); self.rows])
        }
    }

    /// An integer column when present, else `default` for every row.
    pub fn ints_or(&self, name: &str, range: (i64, i64), default: i64) -> Result<Vec<i64>> {
        if self.has(name) {
            Ok(self.ints(name, range)?.to_vec())
        } else {
            Ok(vec![default; self.rows])
        }
    }
}
