//! Fuzzing the input edge: whatever the bytes, loading a scenario or reading a trace returns
//! `Ok` or `Err`, never panics.
//!
//! The scenario fuzz mutates the bundled quickstart scenario (byte-range deletions, insertions
//! from a YAML-ish alphabet, duplicated and swapped lines, numbers replaced by random text) and
//! runs `Scenario::from_source` on the result. The trace fuzz feeds random bytes and random
//! plausible rows to `workload::read_trace` in each format.

use proptest::prelude::*;
use proptest::sample::Index;
use servesim::input::YamlSource;
use servesim::scenario::schema::TraceFormat;
use servesim::scenario::{Overrides, Scenario};
use servesim::workload::{from_rows, read_trace};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// Cases per property.
const CASES: u32 = 300;

/// Above this many synthetic requests a case is skipped: generation is O(requests), and a huge
/// count is a known crash of its own (see `absurd_request_count_is_an_error_not_a_crash` in
/// tests/bad_input.rs).
const MAX_REQUESTS: u64 = 100_000;

fn quickstart() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.yaml");
    let text = std::fs::read_to_string(&path).expect("read scenarios/quickstart.yaml");
    assert!(text.contains("requests: 2000"), "quickstart.yaml changed; update the fuzz");
    text.replace("requests: 2000", "requests: 20")
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    /// Delete `len` bytes at `at` (the result is read back lossily as UTF-8).
    DeleteBytes { at: Index, len: usize },
    /// Insert `text` at byte `at`.
    Insert { at: Index, text: String },
    /// Insert raw bytes at byte `at`.
    InsertBytes { at: Index, bytes: Vec<u8> },
    /// Repeat line `line` right after itself.
    DuplicateLine { line: Index },
    /// Exchange two lines.
    SwapLines { a: Index, b: Index },
    /// Replace the `which`-th run of digits with `with`.
    ReplaceNumber { which: Index, with: String },
}

/// Pieces of YAML syntax, special scalars and odd characters.
fn yamlish_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            ":", ": ", "-", "- ", "[", "]", "{", "}", ",", "#", "&a ", "*a", "!", "!!str ", "!!int ", "|", ">", "'",
            "\"", "%", "@", "`", "?", "? ", "\n", "\r\n", "\t", " ", "  ", "    ", "---\n", "...\n", "<<: *a\n", "~",
            "null", "true", "no", ".nan", ".inf", "-.inf", "0x", "0o", "1e999", "-0", "1_000", "\\", "\u{feff}", "é",
            "×", "\u{0}", "\u{85}", "\u{2028}",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,12}",
        "[0-9.eE+-]{1,12}",
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1usize..40).prop_map(|(at, len)| Mutation::DeleteBytes { at, len }),
        (any::<Index>(), prop::collection::vec(yamlish_piece(), 1..6))
            .prop_map(|(at, pieces)| Mutation::Insert { at, text: pieces.concat() }),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::InsertBytes { at, bytes }),
        any::<Index>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        (
            any::<Index>(),
            prop_oneof![
                "-?[0-9]{0,25}",
                "-?[0-9]{1,5}\\.[0-9]{0,5}([eE][+-]?[0-9]{1,4})?",
                prop::sample::select(vec![
                    ".nan",
                    ".inf",
                    "-.inf",
                    "0",
                    "-1",
                    "1e308",
                    "1e-320",
                    "4294967296",
                    "18446744073709551616",
                    "0x7fffffffffffffff",
                    "0o777",
                    "~",
                    "null",
                    "''",
                    "[]",
                    "{}",
                    "true",
                    "",
                ])
                .prop_map(str::to_string),
                "[a-z]{1,6}",
            ]
        )
            .prop_map(|(which, with)| Mutation::ReplaceNumber { which, with }),
    ]
}

fn apply(text: String, mutation: &Mutation) -> String {
    match mutation {
        Mutation::DeleteBytes { at, len } => {
            let mut bytes = text.into_bytes();
            if bytes.is_empty() {
                return String::new();
            }
            let start = at.index(bytes.len());
            let end = (start + len).min(bytes.len());
            bytes.drain(start..end);
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Mutation::Insert { at, text: piece } => {
            let mut bytes = text.into_bytes();
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, piece.bytes());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Mutation::InsertBytes { at, bytes: piece } => {
            let mut bytes = text.into_bytes();
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, piece.iter().copied());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Mutation::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
            if lines.is_empty() {
                return text;
            }
            let i = line.index(lines.len());
            let copy = lines[i];
            lines.insert(i + 1, copy);
            let mut out = lines.concat();
            if !copy.ends_with('\n') {
                // The last line had no newline; keep the copies on separate lines.
                out = out.replacen(&format!("{copy}{copy}"), &format!("{copy}\n{copy}"), 1);
            }
            out
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.is_empty() {
                return text;
            }
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
            lines.join("\n") + "\n"
        }
        Mutation::ReplaceNumber { which, with } => {
            let runs = digit_runs(&text);
            if runs.is_empty() {
                return text;
            }
            let (start, end) = runs[which.index(runs.len())];
            format!("{}{with}{}", &text[..start], &text[end..])
        }
    }
}

/// Byte ranges of the maximal runs of ASCII digits.
fn digit_runs(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// Whether the scenario could ask for more than [`MAX_REQUESTS`] synthetic requests.
fn asks_for_many_requests(text: &str) -> bool {
    // As YAML: the value actually deserialized (anchors and aliases resolved).
    if let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) {
        let requests = value.get("workload").and_then(|w| w.get("synthetic")).and_then(|s| s.get("requests"));
        if let Some(requests) = requests {
            if requests.as_u64().is_some_and(|n| n > MAX_REQUESTS) {
                return true;
            }
        }
    }
    // As text, in case the two parsers disagree: any long number, hex or octal near the key.
    text.match_indices("requests").any(|(at, _)| {
        let rest: String = text[at..].chars().take(80).collect();
        rest.contains("0x") || rest.contains("0o") || digit_runs(&rest).iter().any(|(s, e)| e - s > 5)
    })
}

/// Loads `text` as a scenario, catching panics: `Ok(None)` if it loaded, `Ok(Some(error))` if
/// it was rejected, `Err(message)` if it panicked.
fn load_catching_panics(text: String) -> Result<Option<String>, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let source = YamlSource::from_text("fuzz.yaml", std::env::temp_dir(), text);
        Scenario::from_source(&source, &Overrides::default()).err().map(|e| e.to_string())
    }));
    outcome.map_err(|payload| panic_message(&payload))
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

#[test]
fn unmutated_quickstart_loads() {
    let source = YamlSource::from_text("fuzz.yaml", std::env::temp_dir(), quickstart());
    let scenario = Scenario::from_source(&source, &Overrides::default()).expect("quickstart is valid");
    assert_eq!(scenario.requests.len(), 20);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn mutated_scenarios_never_panic_and_errors_name_the_file(mutations in prop::collection::vec(mutation(), 1..5)) {
        let text = mutations.iter().fold(quickstart(), apply);
        prop_assume!(!asks_for_many_requests(&text));
        // Ok or Err are both fine; a panic is not, nor an error that does not name the file.
        match load_catching_panics(text.clone()) {
            Ok(None) => {}
            Ok(Some(error)) => prop_assert!(
                error.starts_with("fuzz.yaml"),
                "the error does not start with the file name: {error}\n--- text ---\n{text}"
            ),
            Err(message) => prop_assert!(false, "Scenario::from_source panicked: {message}\n--- text ---\n{text}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------------------------

const FORMATS: [TraceFormat; 3] = [TraceFormat::Azure, TraceFormat::Mooncake, TraceFormat::Csv];

/// Writes `bytes` to a temporary file and reads it as a `format` trace, catching panics; rows
/// read successfully are also turned into requests.
fn read_catching_panics(format: TraceFormat, bytes: &[u8], time_scale: f64) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("trace");
    std::fs::write(&path, bytes).expect("write trace");
    catch_unwind(AssertUnwindSafe(|| {
        if let Ok(rows) = read_trace(format, &path, None) {
            assert!(!rows.is_empty(), "read_trace returned Ok with no rows");
            let _ = from_rows(rows, time_scale);
        }
    }))
    .map_err(|payload| panic_message(&payload))
}

/// A cell that a trace might plausibly hold, valid or not.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,22}",
        "-?[0-9]{1,6}\\.[0-9]{0,8}([eE][+-]?[0-9]{1,3})?",
        prop::sample::select(vec![
            "",
            " ",
            "0",
            "1",
            "-1",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "1e300",
            "4294967295",
            "4294967296",
            "\"1\"",
            "\"",
            "x",
            "1,2",
            "\"a,b\"",
            "18446744073709551616",
        ])
        .prop_map(str::to_string),
        // Timestamps: years are kept within 1970..=2100 because later ones are a known panic
        // (see `azure_timestamp_beyond_the_clock_range_is_an_error_not_a_panic` and
        // `azure_trace_spanning_centuries_is_an_error_not_a_panic` in tests/bad_input.rs).
        (1970i32..=2100, 0u32..=13, 0u32..=32, 0u32..=24, 0u32..=60, 0u32..=61, "[0-9]{0,12}").prop_map(
            |(y, mo, d, h, mi, s, frac)| {
                if frac.is_empty() {
                    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
                } else {
                    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{frac}")
                }
            }
        ),
    ]
}

/// A CSV trace of plausible rows under `header`.
fn csv_trace(header: &'static str, columns: usize) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop::collection::vec(cell(), columns - 1..=columns + 1), 0..8),
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
    )
        .prop_map(move |(rows, newline, blank_line)| {
            let mut text = format!("{header}{newline}");
            for (i, row) in rows.iter().enumerate() {
                text.push_str(&row.join(","));
                text.push_str(newline);
                if blank_line && i == 0 {
                    text.push_str(newline);
                }
            }
            text.into_bytes()
        })
}

/// A Mooncake JSONL trace of plausible (and broken) records.
fn mooncake_trace() -> impl Strategy<Value = Vec<u8>> {
    let number = prop_oneof![
        "-?[0-9]{1,22}",
        "-?[0-9]{1,6}\\.[0-9]{0,6}([eE][+-]?[0-9]{1,3})?",
        prop::sample::select(vec!["0", "1", "-1", "1e400", "NaN", "null", "\"5\"", "[]", "{}", "true"])
            .prop_map(str::to_string),
    ];
    let record = (
        number.clone(),
        number.clone(),
        number.clone(),
        prop::collection::vec(number, 0..4),
        any::<bool>(),
        0usize..80,
    )
        .prop_map(|(t, i, o, hashes, truncate, cut)| {
            let line = format!(
                "{{\"timestamp\": {t}, \"input_length\": {i}, \"output_length\": {o}, \"hash_ids\": [{}]}}",
                hashes.join(", ")
            );
            if truncate {
                line.chars().take(cut).collect()
            } else {
                line
            }
        });
    prop::collection::vec(record, 0..8).prop_map(|lines| (lines.join("\n") + "\n").into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn trace_readers_never_panic_on_random_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        header in any::<bool>(),
    ) {
        for format in FORMATS {
            let mut input = Vec::new();
            if header {
                input.extend_from_slice(match format {
                    TraceFormat::Azure => b"TIMESTAMP,ContextTokens,GeneratedTokens\n".as_slice(),
                    TraceFormat::Csv => b"arrival_s,input_tokens,output_tokens\n".as_slice(),
                    TraceFormat::Mooncake => b"".as_slice(),
                });
            }
            input.extend_from_slice(&bytes);
            if let Err(message) = read_catching_panics(format, &input, 1.0) {
                prop_assert!(false, "{format:?} reader panicked: {message}\n--- input ---\n{}", String::from_utf8_lossy(&input));
            }
        }
    }

    #[test]
    fn azure_reader_never_panics_on_plausible_rows(
        trace in csv_trace("TIMESTAMP,ContextTokens,GeneratedTokens", 3),
        time_scale in prop_oneof![Just(1.0), 1e-9f64..1e9],
    ) {
        if let Err(message) = read_catching_panics(TraceFormat::Azure, &trace, time_scale) {
            prop_assert!(false, "Azure reader panicked: {message}\n--- input ---\n{}", String::from_utf8_lossy(&trace));
        }
    }

    #[test]
    fn plain_csv_reader_never_panics_on_plausible_rows(
        trace in prop_oneof![
            csv_trace("arrival_s,input_tokens,output_tokens", 3),
            csv_trace("arrival_s,input_tokens,output_tokens,priority", 4),
            csv_trace("priority,output_tokens,arrival_s,input_tokens", 4),
        ],
        time_scale in prop_oneof![Just(1.0), 1e-9f64..1e9],
    ) {
        if let Err(message) = read_catching_panics(TraceFormat::Csv, &trace, time_scale) {
            prop_assert!(false, "CSV reader panicked: {message}\n--- input ---\n{}", String::from_utf8_lossy(&trace));
        }
    }

    #[test]
    fn mooncake_reader_never_panics_on_plausible_records(
        trace in mooncake_trace(),
        time_scale in prop_oneof![Just(1.0), 1e-9f64..1e9],
    ) {
        if let Err(message) = read_catching_panics(TraceFormat::Mooncake, &trace, time_scale) {
            prop_assert!(false, "Mooncake reader panicked: {message}\n--- input ---\n{}", String::from_utf8_lossy(&trace));
        }
    }
}
