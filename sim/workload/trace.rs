//! Trace readers. Every malformed row is an error naming the file, the line and the column.

use crate::error::{Error, Location, Result};
use crate::scenario::schema::TraceFormat;
use serde::Deserialize;
use std::io::BufRead;
use std::path::Path;

/// One request of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRow {
    /// Arrival in ns on the trace's own clock (only differences matter).
    pub arrival_ns: i64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Priority class (plain CSV only; 0 otherwise).
    pub priority: i32,
    /// Prefix-block hashes (Mooncake only).
    pub prefix_hashes: Vec<u64>,
    /// 1-based line of the row in its file.
    pub line: u64,
}

/// Reads a trace file, streaming: at most `limit` rows are parsed (the rest of the file is
/// not read).
pub fn read_trace(format: TraceFormat, path: &Path, limit: Option<usize>) -> Result<Vec<TraceRow>> {
    let file = path.display().to_string();
    let mut lines = Lines::open(path)?;
    let limit = limit.unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    match format {
        TraceFormat::Azure => read_csv(
            &file,
            &mut lines,
            &["TIMESTAMP", "ContextTokens", "GeneratedTokens"],
            azure_row,
            limit,
            &mut rows,
        )?,
        TraceFormat::Csv => {
            read_csv(&file, &mut lines, &["arrival_s", "input_tokens", "output_tokens"], plain_row, limit, &mut rows)?
        }
        TraceFormat::Mooncake => read_mooncake(&file, &mut lines, limit, &mut rows)?,
    }
    if rows.is_empty() {
        return Err(Error::in_file(file, "the trace has no requests"));
    }
    Ok(rows)
}

/// The lines of a text file with their 1-based numbers, read as needed. Lines end at LF, CRLF
/// or a lone CR. A byte-order mark at the start is dropped; a line that is not UTF-8 is an
/// error naming it.
struct Lines {
    reader: Box<dyn BufRead>,
    path: std::path::PathBuf,
    number: u64,
    buffer: Vec<u8>,
    /// The last line ended with CR: a LF right after it belongs to the same break.
    after_cr: bool,
}

impl Lines {
    fn open(path: &Path) -> Result<Lines> {
        let reader = crate::error::open_text(path)?;
        Ok(Lines { reader, path: path.to_path_buf(), number: 0, buffer: Vec::new(), after_cr: false })
    }

    /// Reads the next line's bytes (without its terminator) into the buffer; false at the end.
    fn read_line(&mut self) -> std::io::Result<bool> {
        self.buffer.clear();
        let mut read_any = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                return Ok(read_any);
            }
            if std::mem::take(&mut self.after_cr) && available[0] == b'\n' {
                self.reader.consume(1);
                continue;
            }
            read_any = true;
            match available.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.after_cr = available[end] == b'\r';
                    self.buffer.extend_from_slice(&available[..end]);
                    self.reader.consume(end + 1);
                    return Ok(true);
                }
                None => {
                    let length = available.len();
                    self.buffer.extend_from_slice(available);
                    self.reader.consume(length);
                }
            }
        }
    }

    /// The next line (without its terminator) and its number, or None at the end.
    fn next_line(&mut self) -> Result<Option<(u64, String)>> {
        if !self.read_line().map_err(|e| Error::io(&self.path, "cannot read file", e))? {
            return Ok(None);
        }
        self.number += 1;
        let mut bytes = self.buffer.as_slice();
        if self.number == 1 {
            bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            crate::error::not_utf8(&self.path.display().to_string(), self.number as usize, bytes, e.valid_up_to())
        })?;
        Ok(Some((self.number, text.to_string())))
    }
}

fn row_error(file: &str, line: u64, field: &str, message: impl Into<String>) -> Error {
    Error::at(Location { file: file.to_string(), line: Some(line as usize), field: Some(field.to_string()) }, message)
}

type RowParser = fn(&str, u64, &[&str], &[String], &[usize]) -> Result<TraceRow>;

/// Splits one CSV line into trimmed fields (quotes as RFC 4180; a quoted field may not span
/// lines).
fn split_csv(line: &str) -> std::result::Result<Vec<String>, String> {
    // Building a reader builds its state machine: do it once per thread.
    thread_local! {
        static READER: std::cell::RefCell<csv_core::Reader> = std::cell::RefCell::new(csv_core::Reader::new());
    }
    READER.with(|reader| split_with(&mut reader.borrow_mut(), line))
}

fn split_with(reader: &mut csv_core::Reader, line: &str) -> std::result::Result<Vec<String>, String> {
    reader.reset();
    let mut input = line.as_bytes();
    let mut fields = Vec::new();
    let mut field = vec![0u8; line.len() + 1];
    let mut length = 0;
    loop {
        // An empty input tells the reader the line is over.
        let (result, read, written) = reader.read_field(input, &mut field[length..]);
        input = &input[read..];
        length += written;
        match result {
            csv_core::ReadFieldResult::Field { record_end } => {
                fields.push(String::from_utf8_lossy(&field[..length]).trim().to_string());
                length = 0;
                if record_end {
                    return Ok(fields);
                }
            }
            csv_core::ReadFieldResult::InputEmpty => {}
            csv_core::ReadFieldResult::OutputFull => return Err("a field is too long".into()),
            csv_core::ReadFieldResult::End => return Ok(fields),
        }
    }
}

#[cfg(test)]
#[test]
fn csv_lines_split_into_trimmed_fields() {
    assert_eq!(split_csv("a, b ,c").unwrap(), vec!["a", "b", "c"]);
    assert_eq!(split_csv("a,\"b,c\",").unwrap(), vec!["a", "b,c", ""]);
    assert_eq!(split_csv("x").unwrap(), vec!["x"]);
}

fn read_csv(
    file: &str,
    lines: &mut Lines,
    required: &[&str],
    parse: RowParser,
    limit: usize,
    rows: &mut Vec<TraceRow>,
) -> Result<()> {
    let header = loop {
        match lines.next_line()? {
            None => {
                return Err(Error::at(
                    Location { file: file.into(), line: Some(1), field: None },
                    format!("the trace is empty: expected a header line with the columns {}", required.join(",")),
                ))
            }
            Some((_, text)) if text.trim().is_empty() => continue,
            Some((number, text)) => {
                let fields = split_csv(&text).map_err(|e| {
                    Error::at(
                        Location { file: file.into(), line: Some(number as usize), field: None },
                        format!("cannot read the header: {e}"),
                    )
                })?;
                break (number, fields);
            }
        }
    };
    let (header_line, headers) = header;
    let mut columns = Vec::new();
    for name in required {
        match headers.iter().position(|h| h == *name) {
            Some(index) => columns.push(index),
            None => {
                return Err(Error::at(
                    Location { file: file.into(), line: Some(header_line as usize), field: None },
                    format!(
                        "the header lacks column `{name}`; expected columns {} (found: {})",
                        required.join(","),
                        headers.join(",")
                    ),
                ))
            }
        }
    }
    if let Some(index) = headers.iter().position(|h| h == "priority") {
        columns.push(index);
    }
    while rows.len() < limit {
        let Some((line, text)) = lines.next_line()? else { break };
        if text.trim().is_empty() {
            continue;
        }
        let record = split_csv(&text).map_err(|e| row_error(file, line, "", format!("malformed row: {e}")))?;
        if record.len() < headers.len() && text.matches('"').count() % 2 == 1 {
            // csv_core read to the end of the line inside the quotes.
            let column = headers.get(record.len().saturating_sub(1)).map_or("", String::as_str);
            return Err(row_error(
                file,
                line,
                column,
                "the quoted value is not closed on this line (servesim reads one row per line, so a value may not span lines)",
            ));
        }
        if record.len() != headers.len() {
            return Err(Error::at(
                Location { file: file.into(), line: Some(line as usize), field: None },
                format!("malformed row: {} fields where the header has {}", record.len(), headers.len()),
            ));
        }
        rows.push(parse(file, line, required, &record, &columns)?);
    }
    Ok(())
}

fn cell<'r>(record: &'r [String], columns: &[usize], index: usize) -> &'r str {
    columns.get(index).and_then(|&c| record.get(c)).map_or("", String::as_str)
}

fn token_count(file: &str, line: u64, field: &str, text: &str) -> Result<u32> {
    match text.parse::<u64>() {
        Ok(value) if (1..=crate::workload::MAX_TOKENS).contains(&value) => Ok(value as u32),
        _ => Err(row_error(file, line, field, format!("expected a whole number of tokens ≥ 1, found {text:?}"))),
    }
}

fn azure_row(file: &str, line: u64, names: &[&str], record: &[String], columns: &[usize]) -> Result<TraceRow> {
    let stamp = cell(record, columns, 0);
    let arrival_ns = parse_timestamp(stamp).ok_or_else(|| {
        row_error(
            file,
            line,
            names[0],
            format!(
                "expected a timestamp like 2023-11-16 18:15:46.6805900 (a real date, years 1970–2200), found {stamp:?}"
            ),
        )
    })?;
    Ok(TraceRow {
        arrival_ns,
        input_tokens: token_count(file, line, names[1], cell(record, columns, 1))?,
        output_tokens: token_count(file, line, names[2], cell(record, columns, 2))?,
        priority: 0,
        prefix_hashes: Vec::new(),
        line,
    })
}

fn plain_row(file: &str, line: u64, names: &[&str], record: &[String], columns: &[usize]) -> Result<TraceRow> {
    let arrival_text = cell(record, columns, 0);
    let arrival_s: f64 = match arrival_text.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=crate::workload::MAX_ARRIVAL_S).contains(&v) => v,
        _ => {
            return Err(row_error(
                file,
                line,
                names[0],
                format!("expected seconds in 0..={:.0e}, found {arrival_text:?}", crate::workload::MAX_ARRIVAL_S),
            ))
        }
    };
    let priority = match columns.get(3) {
        Some(_) => {
            let text = cell(record, columns, 3);
            text.parse::<i32>()
                .map_err(|_| row_error(file, line, "priority", format!("expected an integer, found {text:?}")))?
        }
        None => 0,
    };
    Ok(TraceRow {
        arrival_ns: (arrival_s * 1e9).round() as i64,
        input_tokens: token_count(file, line, names[1], cell(record, columns, 1))?,
        output_tokens: token_count(file, line, names[2], cell(record, columns, 2))?,
        priority,
        prefix_hashes: Vec::new(),
        line,
    })
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` (UTC) to ns since the Unix epoch.
fn parse_timestamp(text: &str) -> Option<i64> {
    let (date, time) = text.trim().split_once([' ', 'T'])?;
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.split(':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: i64 = clock_parts.next()?.parse().ok()?;
    // Years are bounded so that any two timestamps differ by less than i64 nanoseconds.
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1970..=2200).contains(&year) || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if !(1..=month_days[(month - 1) as usize]).contains(&day) {
        return None;
    }
    let digits: String = fraction.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000_000 + second * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[derive(Deserialize)]
struct MooncakeRow {
    timestamp: f64,
    input_length: u64,
    output_length: u64,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

fn read_mooncake(file: &str, lines: &mut Lines, limit: usize, rows: &mut Vec<TraceRow>) -> Result<()> {
    while rows.len() < limit {
        let Some((line, line_text)) = lines.next_line()? else { break };
        if line_text.trim().is_empty() {
            continue;
        }
        if !line_text.trim_start().starts_with('{') {
            return Err(row_error(
                file,
                line,
                "",
                "not a Mooncake trace record: expected a JSON object such as {\"timestamp\": 0, \"input_length\": 100, \"output_length\": 10}",
            ));
        }
        let row: MooncakeRow = serde_json::from_str(&line_text).map_err(|e| {
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            row_error(file, line, "", format!("not a Mooncake trace record: {message} (column {})", e.column()))
        })?;
        if !row.timestamp.is_finite() || row.timestamp < 0.0 || row.timestamp > crate::workload::MAX_ARRIVAL_S * 1e3 {
            return Err(row_error(
                file,
                line,
                "timestamp",
                format!(
                    "expected milliseconds in 0..={:.0e}, found {}",
                    crate::workload::MAX_ARRIVAL_S * 1e3,
                    row.timestamp
                ),
            ));
        }
        let count = |field: &str, value: u64| token_count(file, line, field, &value.to_string());
        rows.push(TraceRow {
            arrival_ns: (row.timestamp * 1e6).round() as i64,
            input_tokens: count("input_length", row.input_length)?,
            output_tokens: count("output_length", row.output_length)?,
            priority: 0,
            prefix_hashes: row.hash_ids,
            line,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(bytes: &[u8]) -> Vec<(u64, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, bytes).unwrap();
        let mut lines = Lines::open(&path).unwrap();
        std::iter::from_fn(|| lines.next_line().unwrap()).collect()
    }

    #[test]
    fn lines_end_at_lf_crlf_or_a_lone_cr() {
        let expected: Vec<(u64, String)> =
            [(1, "a"), (2, "b"), (3, ""), (4, "c"), (5, "d")].iter().map(|&(n, t)| (n, t.to_string())).collect();
        assert_eq!(lines_of(b"a\nb\r\n\rc\rd"), expected);
        assert_eq!(lines_of(b"\xef\xbb\xbfa\rb\r\r\nc\nd\n"), expected);
        assert!(lines_of(b"").is_empty());
        assert_eq!(lines_of(b"\r\n"), vec![(1, String::new())]);
    }

    #[test]
    fn azure_timestamps_parse_to_nanoseconds() {
        let a = parse_timestamp("2023-11-16 18:15:46.6805900").unwrap();
        let b = parse_timestamp("2023-11-16 18:15:50.9951690").unwrap();
        assert_eq!(b - a, 4_314_579_000);
        assert_eq!(parse_timestamp("1970-01-01 00:00:01"), Some(1_000_000_000));
        assert_eq!(
            parse_timestamp("2024-03-01 00:00:00").unwrap() - parse_timestamp("2024-02-28 00:00:00").unwrap(),
            2 * 86_400_000_000_000
        );
        assert!(parse_timestamp("yesterday").is_none());
        assert!(parse_timestamp("2023-13-01 00:00:00").is_none());
        assert!(parse_timestamp("2023-02-29 00:00:00").is_none());
        assert!(parse_timestamp("2024-02-29 00:00:00").is_some());
        assert!(parse_timestamp("2300-01-01 00:00:00").is_none());
    }
}
