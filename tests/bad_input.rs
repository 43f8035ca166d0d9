//! Bad input gets a clear error, naming the file, field and line, and a non-zero exit; never a
//! panic, never a silently wrong number. Unknown YAML fields are errors.
//!
//! Every test runs the real `servesim` binary on files written into a temporary folder. Each
//! bad case is the minimal valid scenario ([`valid_scenario`]) with one thing changed, so a test
//! reads as: "this change gives that error".

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long one `servesim` call may take before the test fails (a bad input must never hang).
const TIME_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Scenario texts
// ---------------------------------------------------------------------------------------------

/// The deployment part of the minimal valid scenario (everything above `workload:`).
const HEAD: &str = "\
name: tiny
model: llama-3.1-8b
deployment:
  pools:
    - device: h100-sxm
      replicas: 1
      tensor_parallel: 1
      memory_utilization: 0.9
      scheduler:
        policy: fcfs
        max_num_seqs: 16
";

/// The workload of the minimal valid scenario: five short requests.
const SYNTHETIC: &str = "\
workload:
  synthetic:
    requests: 5
    arrival: { poisson: { rate_per_s: 2 } }
    input_tokens: { fixed: { value: 64 } }
    output_tokens: { fixed: { value: 8 } }
";

/// A small valid scenario: Llama-3.1-8B on one H100, five requests.
fn valid_scenario() -> String {
    format!("{HEAD}{SYNTHETIC}")
}

/// The minimal scenario replaying the trace `path` (relative to the scenario) in `format`.
fn trace_scenario(format: &str, path: &str) -> String {
    format!("{HEAD}workload:\n  trace: {{ format: {format}, path: {path} }}\n")
}

/// `text` with the single occurrence of `from` replaced by `to` (fails if `from` is not there
/// exactly once, so a test cannot silently stop testing what it says).
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "test setup: {from:?} should occur exactly once in\n{text}");
    text.replacen(from, to, 1)
}

/// The 1-based line of `text` that contains `needle` (which must occur on exactly one line).
fn line_of(text: &str, needle: &str) -> usize {
    let lines: Vec<usize> =
        text.lines().enumerate().filter(|(_, line)| line.contains(needle)).map(|(index, _)| index + 1).collect();
    assert_eq!(lines.len(), 1, "test setup: {needle:?} should be on exactly one line of\n{text}");
    lines[0]
}

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// A temporary folder holding one test's scenario and trace files.
struct Case {
    dir: TempDir,
}

impl Case {
    fn new() -> Self {
        Case { dir: tempfile::tempdir().expect("create a temporary folder") }
    }

    /// Writes `contents` to `name` in the folder and returns its path.
    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write a test file");
        path
    }

    /// Writes the scenario `scenario.yaml`.
    fn scenario(&self, text: &str) -> PathBuf {
        self.file("scenario.yaml", text)
    }

    /// A path in the folder that does not exist.
    fn missing(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `servesim run SCENARIO --out DIR/out --quiet`.
    fn run(&self, scenario: &Path) -> Outcome {
        let out = self.dir.path().join("out");
        servesim(&["run".as_ref(), scenario.as_os_str(), "--out".as_ref(), out.as_os_str(), "--quiet".as_ref()])
    }
}

/// `servesim validate FILE...`.
fn validate(files: &[&Path]) -> Outcome {
    let mut args: Vec<&std::ffi::OsStr> = vec!["validate".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    servesim(&args)
}

/// What one call of the binary did.
struct Outcome {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args`, failing the test if it runs past [`TIME_LIMIT`].
fn servesim(args: &[&std::ffi::OsStr]) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_servesim"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start servesim");
    let mut stdout_pipe = child.stdout.take().expect("stdout is piped");
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let stdout_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut text);
        text
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for servesim") {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("servesim {args:?} ran for more than {TIME_LIMIT:?}; bad input must fail fast");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&stdout_reader.join().expect("read stdout")).into_owned();
    let stderr = String::from_utf8_lossy(&stderr_reader.join().expect("read stderr")).into_owned();
    Outcome { success: status.success(), code: status.code(), stdout, stderr }
}

impl Outcome {
    fn describe(&self) -> String {
        format!("exit code {:?}\n--- stderr ---\n{}\n--- stdout ---\n{}", self.code, self.stderr, self.stdout)
    }

    /// The call failed cleanly: non-zero exit code (not a crash), `error:` on stderr, no panic.
    fn assert_error(&self) -> &Self {
        assert!(!self.stderr.contains("panicked"), "servesim panicked:\n{}", self.describe());
        assert!(!self.success, "expected a non-zero exit:\n{}", self.describe());
        assert_eq!(self.code, Some(1), "expected exit code 1 (a clean error):\n{}", self.describe());
        assert!(self.stderr.contains("error:"), "expected `error:` on stderr:\n{}", self.describe());
        self
    }

    /// The call succeeded without a panic.
    fn assert_success(&self) -> &Self {
        assert!(!self.stderr.contains("panicked"), "servesim panicked:\n{}", self.describe());
        assert!(self.success, "expected success:\n{}", self.describe());
        self
    }

    /// stderr contains every one of `facts`.
    fn says(&self, facts: &[&str]) -> &Self {
        for fact in facts {
            assert!(self.stderr.contains(fact), "stderr lacks {fact:?}:\n{}", self.describe());
        }
        self
    }

    /// stderr names `file` at `line`, as `FILE:LINE:`.
    fn at(&self, file: &Path, line: usize) -> &Self {
        let location = format!("{}:{line}:", file.display());
        assert!(self.stderr.contains(&location), "stderr lacks the location {location:?}:\n{}", self.describe());
        self
    }

    /// stderr names the field path `field`, as ``field `FIELD` ``.
    fn field(&self, field: &str) -> &Self {
        let text = format!("field `{field}`");
        assert!(self.stderr.contains(&text), "stderr lacks {text:?}:\n{}", self.describe());
        self
    }
}

/// Runs `servesim run` on `text` written as `scenario.yaml`; returns the outcome and the path.
fn run_text(case: &Case, text: &str) -> (Outcome, PathBuf) {
    let path = case.scenario(text);
    (case.run(&path), path)
}

// ---------------------------------------------------------------------------------------------
// The baseline
// ---------------------------------------------------------------------------------------------

#[test]
fn minimal_scenario_runs_so_each_failure_below_is_due_to_its_one_change() {
    let case = Case::new();
    let (outcome, _) = run_text(&case, &valid_scenario());
    outcome.assert_success();
    assert!(case.dir.path().join("out/summary.json").is_file(), "{}", outcome.describe());
}

#[test]
fn minimal_trace_scenarios_run() {
    let case = Case::new();
    case.file(
        "azure.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,100,10\n2023-11-16 18:15:47.0000000,200,20\n",
    );
    case.file("plain.csv", "arrival_s,input_tokens,output_tokens\n0.0,100,10\n0.5,200,20\n");
    case.file(
        "mooncake.jsonl",
        "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 10, \"hash_ids\": [1, 2]}\n{\"timestamp\": 500, \"input_length\": 200, \"output_length\": 20}\n",
    );
    for (format, file) in [("azure", "azure.csv"), ("csv", "plain.csv"), ("mooncake", "mooncake.jsonl")] {
        let (outcome, _) = run_text(&case, &trace_scenario(format, file));
        outcome.assert_success();
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Missing files
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_scenario_file_names_the_file() {
    let case = Case::new();
    let path = case.missing("no-such-scenario.yaml");
    case.run(&path).assert_error().says(&[&path.display().to_string(), "file not found"]);
}

#[test]
fn validate_of_missing_file_names_the_file() {
    let case = Case::new();
    let path = case.missing("no-such-scenario.yaml");
    validate(&[&path]).assert_error().says(&[&path.display().to_string(), "file not found"]);
}

#[test]
fn missing_scenario_file_error_says_it_once() {
    let case = Case::new();
    let path = case.missing("no-such-scenario.yaml");
    let outcome = case.run(&path);
    outcome.assert_error();
    assert_eq!(outcome.stderr.matches("os error").count(), 1, "the cause is repeated:\n{}", outcome.describe());
}

#[test]
fn missing_trace_file_names_the_scenario_field_and_the_path() {
    let case = Case::new();
    let text = trace_scenario("csv", "no-such-trace.csv");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "trace:"))
        .field("workload.trace.path")
        .says(&["no-such-trace.csv", "file not found"]);
}

// ---------------------------------------------------------------------------------------------
// 2. YAML syntax errors
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_indentation_names_file_and_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "      replicas: 1", "     replicas: 1");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "replicas:"));
}

#[test]
fn tab_indentation_names_file_line_and_the_tab() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "      replicas: 1", "\treplicas: 1");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "replicas:")).says(&["tab"]);
}

#[test]
fn unclosed_flow_mapping_names_file_and_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "rate_per_s: 2 }", "rate_per_s: 2");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error();
    // The parser notices the missing `}` on the opening line or on the next one.
    let opened = line_of(&text, "arrival:");
    let noticed = [opened, opened + 1];
    assert!(
        noticed.iter().any(|line| outcome.stderr.contains(&format!("{}:{line}:", path.display()))),
        "expected the location {}:{opened} or :{}:\n{}",
        path.display(),
        opened + 1,
        outcome.describe()
    );
    outcome.says(&["'}'"]);
}

#[test]
fn unclosed_flow_sequence_names_file_and_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "  pools:\n", "  pools: [\n");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error();
    let opened = line_of(&text, "pools:");
    assert!(
        [opened, opened + 1].iter().any(|line| outcome.stderr.contains(&format!("{}:{line}:", path.display()))),
        "expected the location {}:{opened} or :{}:\n{}",
        path.display(),
        opened + 1,
        outcome.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Unknown fields
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_top_level_field_names_field_and_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "model: llama-3.1-8b\n", "model: llama-3.1-8b\nmodle: llama-3.1-8b\n");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "modle:"))
        .field("modle")
        .says(&["unknown field `modle`", "`model`"]);
}

#[test]
fn unknown_nested_field_names_field_and_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "max_num_seqs: 16", "max_num_seq: 16");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "max_num_seq:"))
        .field("deployment.pools[0].scheduler.max_num_seq")
        .says(&["unknown field `max_num_seq`", "`max_num_seqs`"]);
}

#[test]
fn unknown_field_in_a_pool_names_field_and_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "      replicas: 1\n", "      replicas: 1\n      replica: 2\n");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "replica:"))
        .field("deployment.pools[0].replica")
        .says(&["unknown field `replica`"]);
}

#[test]
fn unknown_field_inside_arrival_is_rejected_and_named() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "rate_per_s: 2", "rate: 2");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().says(&[
        &path.display().to_string(),
        "workload.synthetic.arrival",
        "unknown field `rate`",
        "`rate_per_s`",
    ]);
}

#[test]
fn unknown_field_inside_arrival_names_field_and_line() {
    let case = Case::new();
    let text = replaced(
        &valid_scenario(),
        "    arrival: { poisson: { rate_per_s: 2 } }\n",
        "    arrival:\n      poisson:\n        rate: 2\n",
    );
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "rate:")).field("workload.synthetic.arrival.poisson.rate");
}

#[test]
fn duplicate_field_points_at_the_repeat() {
    let case = Case::new();
    let text = replaced(
        &valid_scenario(),
        "      tensor_parallel: 1\n",
        "      tensor_parallel: 1\n      memory_utilization: 0.8\n",
    );
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        // The second occurrence in file order is the repeat.
        .at(&path, line_of(&text, "memory_utilization: 0.9"))
        .field("deployment.pools[0].memory_utilization")
        .says(&["duplicate field `memory_utilization`"]);
}

// ---------------------------------------------------------------------------------------------
// 4. Wrong types
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_type_names_field_line_and_value() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "replicas: 1", "replicas: two");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "replicas:"))
        .field("deployment.pools[0].replicas")
        .says(&["invalid type", "\"two\""]);
}

#[test]
fn unknown_variant_lists_the_accepted_ones() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "fixed: { value: 64 }", "fixd: { value: 64 }");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "fixd")).field("workload.synthetic.input_tokens.fixd").says(&[
        "unknown variant `fixd`",
        "`fixed`",
        "`lognormal`",
    ]);
}

#[test]
fn map_where_a_list_is_expected_names_the_field() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "    - device: h100-sxm", "      device: h100-sxm");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "pools:")).field("deployment.pools").says(&["invalid type"]);
}

// ---------------------------------------------------------------------------------------------
// 5. Numbers out of range
// ---------------------------------------------------------------------------------------------

#[test]
fn nan_rate_is_rejected_with_expected_range() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "rate_per_s: 2", "rate_per_s: .nan");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().says(&[
        &path.display().to_string(),
        "field `workload.synthetic.arrival",
        "expected a finite number greater than 0",
        "NaN",
    ]);
}

#[test]
fn infinite_rate_is_rejected_with_expected_range() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "rate_per_s: 2", "rate_per_s: .inf");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().says(&[
        &path.display().to_string(),
        "field `workload.synthetic.arrival",
        "expected a finite number greater than 0",
        "inf",
    ]);
}

#[test]
fn negative_rate_is_rejected_with_expected_range() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "rate_per_s: 2", "rate_per_s: -1");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().says(&[
        &path.display().to_string(),
        "field `workload.synthetic.arrival",
        "expected a finite number greater than 0",
        "found -1",
    ]);
}

#[test]
fn nan_rate_names_rate_per_s_and_its_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "rate_per_s: 2", "rate_per_s: .nan");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "rate_per_s:"))
        .field("workload.synthetic.arrival.poisson.rate_per_s");
}

#[test]
fn zero_fixed_length_names_value_and_its_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "fixed: { value: 64 }", "fixed: { value: 0 }");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "value: 0"))
        .field("workload.synthetic.input_tokens.fixed.value")
        .says(&["expected an integer of at least 1, found 0"]);
}

#[test]
fn zero_fixed_length_is_rejected_with_expected_range() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "fixed: { value: 64 }", "fixed: { value: 0 }");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().says(&[
        &path.display().to_string(),
        "field `workload.synthetic.input_tokens",
        "expected an integer of at least 1, found 0",
    ]);
}

#[test]
fn zero_memory_utilization_is_rejected_with_expected_range() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "memory_utilization: 0.9", "memory_utilization: 0");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .says(&[&path.display().to_string(), "expected a number in (0, 1], found 0"])
        .field("deployment.pools[0].memory_utilization");
}

#[test]
fn memory_utilization_above_one_is_rejected_with_expected_range() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "memory_utilization: 0.9", "memory_utilization: 1.5");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .says(&[&path.display().to_string(), "expected a number in (0, 1], found 1.5"])
        .field("deployment.pools[0].memory_utilization");
}

#[test]
fn zero_memory_utilization_error_points_at_its_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "memory_utilization: 0.9", "memory_utilization: 0");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "memory_utilization:"))
        .field("deployment.pools[0].memory_utilization");
}

#[test]
fn zero_max_num_seqs_is_rejected_with_expected_range() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "max_num_seqs: 16", "max_num_seqs: 0");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .says(&[&path.display().to_string(), "expected an integer of at least 1, found 0"])
        .field("deployment.pools[0].scheduler.max_num_seqs");
}

#[test]
fn zero_max_num_seqs_error_points_at_its_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "max_num_seqs: 16", "max_num_seqs: 0");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "max_num_seqs:"))
        .field("deployment.pools[0].scheduler.max_num_seqs");
}

#[test]
fn zero_replicas_is_rejected_with_expected_range() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "replicas: 1", "replicas: 0");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .says(&[&path.display().to_string(), "expected an integer of at least 1, found 0"])
        .field("deployment.pools[0].replicas");
}

#[test]
fn negative_count_is_rejected() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "requests: 5", "requests: -5");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "requests:")).field("workload.synthetic.requests").says(&["-5"]);
}

#[test]
fn absurd_request_count_is_an_error_not_a_crash() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "requests: 5", "requests: 18446744073709551615");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "requests:")).field("workload.synthetic.requests");
}

#[test]
fn arrival_rate_too_small_for_the_clock_is_rejected() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "rate_per_s: 2", "rate_per_s: 1e-300");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().says(&[&path.display().to_string(), "rate_per_s"]);
}

// ---------------------------------------------------------------------------------------------
// 6. Unknown names
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_device_lists_known_devices_and_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "device: h100-sxm", "device: h100-sxn");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "device:")).field("deployment.pools[0].device").says(&[
        "unknown device \"h100-sxn\"",
        "h100-sxm",
        "a100-sxm-80gb",
        "l4",
    ]);
}

#[test]
fn unknown_model_lists_known_models_and_line() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "model: llama-3.1-8b", "model: llama-3.1-9b");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "model:")).field("model").says(&[
        "unknown model \"llama-3.1-9b\"",
        "llama-3.1-8b",
        "llama-3.1-70b",
    ]);
}

#[test]
fn unknown_interconnect_lists_known_links_and_line() {
    let case = Case::new();
    let text = replaced(
        &valid_scenario(),
        "      tensor_parallel: 1\n",
        "      tensor_parallel: 2\n      interconnect: nvlink9\n",
    );
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "interconnect:"))
        .field("deployment.pools[0].interconnect")
        .says(&["unknown link \"nvlink9\"", "nvlink4"]);
}

#[test]
fn missing_device_profile_path_names_the_field() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "device: h100-sxm", "device: profiles/mine.yaml");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "device:"))
        .field("deployment.pools[0].device")
        .says(&["mine.yaml", "file not found"]);
}

/// The minimal scenario on the Hugging Face config `contents`, written as `mymodel/config.json`;
/// returns the outcome and the config's path.
fn run_model_config(case: &Case, contents: &str) -> (Outcome, PathBuf) {
    std::fs::create_dir_all(case.dir.path().join("mymodel")).expect("create mymodel/");
    let config = case.file("mymodel/config.json", contents);
    let text = replaced(&valid_scenario(), "model: llama-3.1-8b", "model: mymodel/config.json");
    let (outcome, _) = run_text(case, &text);
    (outcome, config)
}

#[test]
fn malformed_model_config_names_the_config_file_and_line() {
    let case = Case::new();
    let (outcome, config) = run_model_config(
        &case,
        "{\n  \"hidden_size\": 4096,\n  \"num_hidden_layers\": 32,\n  \"num_attention_heads\": \"many\",\n  \"vocab_size\": 32000\n}\n",
    );
    outcome.assert_error().at(&config, 4).says(&["not a valid Hugging Face config.json", "\"many\""]);
}

#[test]
fn zero_head_dim_in_model_config_names_file_and_field() {
    let case = Case::new();
    let (outcome, config) = run_model_config(
        &case,
        r#"{"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 32000, "head_dim": 0}"#,
    );
    outcome.assert_error().says(&[&config.display().to_string(), "outside the supported range 1..="]).field("head_dim");
}

#[test]
fn absurd_hidden_size_in_model_config_is_an_error_not_a_panic() {
    let case = Case::new();
    let (outcome, config) = run_model_config(
        &case,
        r#"{"hidden_size": 4611686018427387904, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 10}"#,
    );
    outcome.assert_error().says(&[&config.display().to_string()]).field("hidden_size");
}

#[test]
fn absurd_layer_count_in_model_config_is_an_error_not_a_panic() {
    let case = Case::new();
    let (outcome, config) = run_model_config(
        &case,
        r#"{"hidden_size": 4096, "num_hidden_layers": 100000000000, "num_attention_heads": 32, "vocab_size": 10}"#,
    );
    outcome.assert_error().says(&[&config.display().to_string()]).field("num_hidden_layers");
}

// ---------------------------------------------------------------------------------------------
// 7. Memory
// ---------------------------------------------------------------------------------------------

/// The number of GiB after `needle` in `text`.
fn gib_after(text: &str, needle: &str) -> f64 {
    let start = text.find(needle).unwrap_or_else(|| panic!("{needle:?} not in {text}")) + needle.len();
    let number: String = text[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    assert!(text[start + number.len()..].starts_with(" GiB"), "no GiB after {needle:?} in {text}");
    number.parse().unwrap_or_else(|_| panic!("no number after {needle:?} in {text}"))
}

#[test]
fn model_that_does_not_fit_says_needed_and_available_gib() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "model: llama-3.1-8b", "model: llama-3.1-70b");
    let text = replaced(&text, "device: h100-sxm", "device: l4");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "device:")).field("deployment.pools[0].device").says(&[
        "llama-3.1-70b",
        "does not fit on l4",
        "tensor_parallel 1",
        "usable",
        "memory_utilization 0.9",
    ]);
    let needed = gib_after(&outcome.stderr, "needs ");
    let weights = gib_after(&outcome.stderr, "weights ");
    let usable = gib_after(&outcome.stderr, "but has ");
    // 70.6 B parameters in bf16 are 131 GiB; an L4 has 24 GiB, 90% of it usable.
    assert!((125.0..140.0).contains(&weights), "weights {weights} GiB:\n{}", outcome.describe());
    assert!(needed >= weights, "needs {needed} GiB < weights {weights} GiB:\n{}", outcome.describe());
    assert!((usable - 21.6).abs() < 0.05, "usable {usable} GiB:\n{}", outcome.describe());
}

// ---------------------------------------------------------------------------------------------
// 8. Malformed traces
// ---------------------------------------------------------------------------------------------

const AZURE_HEADER: &str = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
const PLAIN_HEADER: &str = "arrival_s,input_tokens,output_tokens\n";

/// Runs the minimal scenario on the trace `contents` written as `file`; returns the outcome
/// and the trace's path.
fn run_trace(case: &Case, format: &str, file: &str, contents: &str) -> (Outcome, PathBuf) {
    let trace = case.file(file, contents);
    let (outcome, _) = run_text(case, &trace_scenario(format, file));
    (outcome, trace)
}

#[test]
fn azure_bad_token_count_names_trace_file_and_line() {
    let case = Case::new();
    let trace = format!(
        "{AZURE_HEADER}2023-11-16 18:15:46.6805900,100,10\n2023-11-16 18:15:47.1000000,200,20\n2023-11-16 18:15:48.0000000,abc,30\n"
    );
    let (outcome, path) = run_trace(&case, "azure", "azure.csv", &trace);
    outcome
        .assert_error()
        .at(&path, 4)
        .field("ContextTokens")
        .says(&["expected a whole number of tokens ≥ 1", "\"abc\""]);
}

#[test]
fn azure_negative_token_count_names_trace_file_and_line() {
    let case = Case::new();
    let trace = format!("{AZURE_HEADER}2023-11-16 18:15:46.6805900,100,10\n2023-11-16 18:15:47.1000000,200,-20\n");
    let (outcome, path) = run_trace(&case, "azure", "azure.csv", &trace);
    outcome.assert_error().at(&path, 3).field("GeneratedTokens").says(&["\"-20\""]);
}

#[test]
fn azure_bad_timestamp_names_trace_file_and_line() {
    let case = Case::new();
    let trace = format!("{AZURE_HEADER}2023-11-16 18:15:46.6805900,100,10\nyesterday,200,20\n");
    let (outcome, path) = run_trace(&case, "azure", "azure.csv", &trace);
    outcome.assert_error().at(&path, 3).field("TIMESTAMP").says(&["expected a timestamp", "\"yesterday\""]);
}

#[test]
fn azure_timestamp_beyond_the_clock_range_is_an_error_not_a_panic() {
    let case = Case::new();
    let trace = format!("{AZURE_HEADER}2023-11-16 18:15:46.6805900,100,10\n2300-01-01 00:00:00,200,20\n");
    let (outcome, path) = run_trace(&case, "azure", "azure.csv", &trace);
    outcome.assert_error().at(&path, 3).field("TIMESTAMP");
}

#[test]
fn azure_trace_spanning_centuries_is_an_error_not_a_panic() {
    let case = Case::new();
    let trace = format!("{AZURE_HEADER}1900-01-01 00:00:00,100,10\n2200-01-01 00:00:00,200,20\n");
    let (outcome, path) = run_trace(&case, "azure", "azure.csv", &trace);
    outcome.assert_error().says(&[&path.display().to_string()]);
}

#[test]
fn azure_impossible_date_names_trace_file_and_line() {
    let case = Case::new();
    let trace = format!("{AZURE_HEADER}2023-02-27 00:00:00,100,10\n2023-02-31 00:00:00,200,20\n");
    let (outcome, path) = run_trace(&case, "azure", "azure.csv", &trace);
    outcome.assert_error().at(&path, 3).field("TIMESTAMP");
}

#[test]
fn plain_csv_negative_arrival_names_trace_file_and_line() {
    let case = Case::new();
    let trace = format!("{PLAIN_HEADER}0.0,100,10\n0.5,200,20\n-1.5,300,30\n");
    let (outcome, path) = run_trace(&case, "csv", "plain.csv", &trace);
    outcome.assert_error().at(&path, 4).field("arrival_s").says(&["expected seconds in 0..=", "\"-1.5\""]);
}

#[test]
fn plain_csv_nan_arrival_names_trace_file_and_line() {
    let case = Case::new();
    let trace = format!("{PLAIN_HEADER}0.0,100,10\nNaN,200,20\n");
    let (outcome, path) = run_trace(&case, "csv", "plain.csv", &trace);
    outcome.assert_error().at(&path, 3).field("arrival_s").says(&["expected seconds in 0..="]);
}

#[test]
fn plain_csv_arrival_beyond_the_clock_range_names_trace_file_and_line() {
    let case = Case::new();
    let trace = format!("{PLAIN_HEADER}0.0,100,10\n1e300,200,20\n");
    let (outcome, path) = run_trace(&case, "csv", "plain.csv", &trace);
    outcome.assert_error().at(&path, 3).field("arrival_s");
}

#[test]
fn plain_csv_bad_priority_names_trace_file_and_line() {
    let case = Case::new();
    let trace = "arrival_s,input_tokens,output_tokens,priority\n0.0,100,10,1\n0.5,200,20,high\n";
    let (outcome, path) = run_trace(&case, "csv", "plain.csv", trace);
    outcome.assert_error().at(&path, 3).field("priority").says(&["expected an integer", "\"high\""]);
}

#[test]
fn plain_csv_short_row_names_trace_file_and_line() {
    let case = Case::new();
    let trace = format!("{PLAIN_HEADER}0.0,100,10\n0.5,200\n");
    let (outcome, path) = run_trace(&case, "csv", "plain.csv", &trace);
    outcome.assert_error().at(&path, 3).says(&["malformed row", "2 fields"]);
}

#[test]
fn csv_missing_required_column_names_the_column() {
    let case = Case::new();
    let trace = "arrival_s,input_tokens\n0.0,100\n";
    let (outcome, path) = run_trace(&case, "csv", "plain.csv", trace);
    outcome.assert_error().at(&path, 1).says(&["lacks column `output_tokens`", "arrival_s,input_tokens,output_tokens"]);
}

#[test]
fn azure_trace_with_plain_csv_header_names_the_missing_column() {
    let case = Case::new();
    let trace = format!("{PLAIN_HEADER}0.0,100,10\n");
    let (outcome, path) = run_trace(&case, "azure", "plain.csv", &trace);
    outcome.assert_error().at(&path, 1).says(&["lacks column `TIMESTAMP`"]);
}

#[test]
fn trace_line_numbers_count_blank_lines() {
    let case = Case::new();
    let trace = format!("{PLAIN_HEADER}0.0,100,10\n0.5,200,20\n\n\n1.0,-1,30\n");
    let (outcome, path) = run_trace(&case, "csv", "plain.csv", &trace);
    outcome.assert_error().at(&path, 6).field("input_tokens");
}

#[test]
fn trace_line_numbers_with_crlf_line_endings() {
    let case = Case::new();
    let trace = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n2023-11-16 18:15:46.6805900,100,10\r\n2023-11-16 18:15:47.1000000,200,20\r\n2023-11-16 18:15:48.0000000,abc,30\r\n";
    let (outcome, path) = run_trace(&case, "azure", "azure.csv", trace);
    outcome.assert_error().at(&path, 4).field("ContextTokens");
}

#[test]
fn mooncake_broken_json_names_trace_file_and_line() {
    let case = Case::new();
    let trace = "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 10}\n{\"timestamp\": 10, \"input_length\": 200, \"output_length\": 20}\n{\"timestamp\": 20, \"input_length\": 300\n";
    let (outcome, path) = run_trace(&case, "mooncake", "trace.jsonl", trace);
    outcome.assert_error().at(&path, 3).says(&["not a Mooncake trace record"]);
}

#[test]
fn mooncake_broken_json_message_does_not_contradict_its_line() {
    let case = Case::new();
    let trace = "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 10}\n{\"timestamp\": 10, \"input_length\": 200, \"output_length\": 20}\n{\"timestamp\": 20, \"input_length\": 300\n";
    let (outcome, path) = run_trace(&case, "mooncake", "trace.jsonl", trace);
    outcome.assert_error().at(&path, 3);
    assert!(!outcome.stderr.contains("at line 1"), "the message names another line:\n{}", outcome.describe());
}

#[test]
fn mooncake_missing_field_names_trace_file_line_and_field() {
    let case = Case::new();
    let trace = "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 10}\n{\"timestamp\": 10, \"input_length\": 200}\n";
    let (outcome, path) = run_trace(&case, "mooncake", "trace.jsonl", trace);
    outcome.assert_error().at(&path, 2).says(&["output_length"]);
}

#[test]
fn mooncake_negative_timestamp_names_trace_file_and_line() {
    let case = Case::new();
    let trace = "{\"timestamp\": 0, \"input_length\": 100, \"output_length\": 10}\n{\"timestamp\": -5, \"input_length\": 200, \"output_length\": 20}\n";
    let (outcome, path) = run_trace(&case, "mooncake", "trace.jsonl", trace);
    outcome.assert_error().at(&path, 2).field("timestamp").says(&["expected milliseconds in 0..=", "-5"]);
}

#[test]
fn mooncake_zero_length_names_trace_file_and_line() {
    let case = Case::new();
    let trace = "{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 10}\n";
    let (outcome, path) = run_trace(&case, "mooncake", "trace.jsonl", trace);
    outcome.assert_error().at(&path, 1).field("input_length").says(&["expected a whole number of tokens ≥ 1"]);
}

#[test]
fn trace_that_is_not_utf8_names_the_file() {
    let case = Case::new();
    let trace = case.file("trace.jsonl", [0xff, 0xfe, b'\n', 0x80]);
    let text = trace_scenario("mooncake", "trace.jsonl");
    let (outcome, _) = run_text(&case, &text);
    // Traces are read line by line: the error names the trace file and its first bad line.
    outcome.assert_error().at(&trace, 1).says(&["UTF-8"]);
}

#[test]
fn gzipped_trace_that_is_not_gzip_names_the_file() {
    let case = Case::new();
    case.file("trace.csv.gz", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,100,10\n");
    let text = trace_scenario("azure", "trace.csv.gz");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "trace:"))
        .field("workload.trace.path")
        .says(&["trace.csv.gz", "cannot read file"]);
}

// ---------------------------------------------------------------------------------------------
// 9. Empty files
// ---------------------------------------------------------------------------------------------

#[test]
fn header_only_azure_trace_is_rejected() {
    let case = Case::new();
    let (outcome, path) = run_trace(&case, "azure", "azure.csv", AZURE_HEADER);
    outcome.assert_error().says(&[&path.display().to_string(), "the trace has no requests"]);
}

#[test]
fn header_only_plain_csv_trace_is_rejected() {
    let case = Case::new();
    let (outcome, path) = run_trace(&case, "csv", "plain.csv", PLAIN_HEADER);
    outcome.assert_error().says(&[&path.display().to_string(), "the trace has no requests"]);
}

#[test]
fn empty_mooncake_trace_is_rejected() {
    let case = Case::new();
    let (outcome, path) = run_trace(&case, "mooncake", "trace.jsonl", "\n\n");
    outcome.assert_error().says(&[&path.display().to_string(), "the trace has no requests"]);
}

#[test]
fn empty_scenario_file_is_rejected() {
    let case = Case::new();
    let (outcome, path) = run_text(&case, "");
    outcome.assert_error().says(&[&path.display().to_string(), "the file is empty"]);
}

#[test]
fn blank_scenario_file_is_rejected() {
    let case = Case::new();
    let (outcome, path) = run_text(&case, "\n   \n\t\n");
    outcome.assert_error().says(&[&path.display().to_string(), "the file is empty"]);
}

#[test]
fn scenario_without_model_names_the_missing_field() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "model: llama-3.1-8b\n", "");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().says(&[&path.display().to_string(), "missing field `model`"]);
}

#[test]
fn empty_pool_list_is_rejected() {
    let case = Case::new();
    let text = format!("name: tiny\nmodel: llama-3.1-8b\ndeployment:\n  pools: []\n{SYNTHETIC}");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "pools:")).field("deployment.pools").says(&["at least one pool"]);
}

// ---------------------------------------------------------------------------------------------
// 10. Tensor parallelism
// ---------------------------------------------------------------------------------------------

#[test]
fn tensor_parallel_must_divide_the_attention_heads() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "tensor_parallel: 1\n", "tensor_parallel: 3\n      interconnect: nvlink4\n");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "tensor_parallel:"))
        .field("deployment.pools[0].tensor_parallel")
        .says(&["tensor_parallel 3 does not divide", "32 attention heads", "llama-3.1-8b"]);
}

#[test]
fn tensor_parallel_without_interconnect_asks_for_one() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "tensor_parallel: 1", "tensor_parallel: 2");
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().field("deployment.pools[0].interconnect").says(&[
        "tensor_parallel 2",
        "interconnect:",
        "nvlink4",
    ]);
    // `interconnect:` is absent, so the error points at the pool or at its tensor_parallel.
    let pool = line_of(&text, "device:");
    let tp = line_of(&text, "tensor_parallel:");
    assert!(
        [pool, tp].iter().any(|line| outcome.stderr.contains(&format!("{}:{line}:", path.display()))),
        "expected the location {}:{pool} or :{tp}:\n{}",
        path.display(),
        outcome.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Workload: exactly one of synthetic / trace
// ---------------------------------------------------------------------------------------------

#[test]
fn workload_with_both_synthetic_and_trace_is_rejected() {
    let case = Case::new();
    case.file("plain.csv", format!("{PLAIN_HEADER}0.0,100,10\n"));
    let text = replaced(&valid_scenario(), "workload:\n", "workload:\n  trace: { format: csv, path: plain.csv }\n");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "trace:"))
        .field("workload.trace")
        .says(&["either `synthetic:` or `trace:`, not both"]);
}

#[test]
fn workload_with_neither_synthetic_nor_trace_is_rejected() {
    let case = Case::new();
    let text = format!("{HEAD}workload: {{}}\n");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "workload:"))
        .field("workload")
        .says(&["give either `synthetic:` or `trace:`"]);
}

#[test]
fn missing_workload_names_the_missing_field() {
    let case = Case::new();
    let (outcome, path) = run_text(&case, HEAD);
    outcome.assert_error().says(&[&path.display().to_string(), "missing field `workload`"]);
}

// ---------------------------------------------------------------------------------------------
// 12. `servesim validate`
// ---------------------------------------------------------------------------------------------

#[test]
fn validate_accepts_a_good_file() {
    let case = Case::new();
    let path = case.scenario(&valid_scenario());
    let outcome = validate(&[&path]);
    outcome.assert_success();
    let expected = format!("ok: {}", path.display());
    assert!(outcome.stdout.contains(&expected), "stdout lacks {expected:?}:\n{}", outcome.describe());
    assert!(outcome.stdout.contains("5 requests"), "{}", outcome.describe());
}

#[test]
fn validate_reports_each_bad_file_and_fails() {
    let case = Case::new();
    let good_a = case.file("good-a.yaml", valid_scenario());
    let bad_text = replaced(&valid_scenario(), "max_num_seqs: 16", "max_num_seq: 16");
    let bad = case.file("bad.yaml", &bad_text);
    let good_b = case.file("good-b.yaml", valid_scenario());
    let missing = case.missing("missing.yaml");
    let outcome = validate(&[&good_a, &bad, &good_b, &missing]);
    outcome
        .assert_error()
        .at(&bad, line_of(&bad_text, "max_num_seq:"))
        .field("deployment.pools[0].scheduler.max_num_seq")
        .says(&[&missing.display().to_string(), "2 of 4 files failed validation"]);
    for good in [&good_a, &good_b] {
        let expected = format!("ok: {}", good.display());
        assert!(outcome.stdout.contains(&expected), "stdout lacks {expected:?}:\n{}", outcome.describe());
    }
    assert!(!outcome.stdout.contains(&format!("ok: {}", bad.display())), "{}", outcome.describe());
}

// ---------------------------------------------------------------------------------------------
// 13. Absurd cluster sizes: refused before anything of that size is allocated
// ---------------------------------------------------------------------------------------------

/// `servesim validate` fails on `text` at the line holding `needle`, naming `field` and saying
/// every one of `facts`.
fn validate_fails_at(case: &Case, text: &str, needle: &str, field: &str, facts: &[&str]) {
    let path = case.scenario(text);
    validate(&[&path]).assert_error().at(&path, line_of(text, needle)).field(field).says(facts);
}

/// The minimal scenario on a cluster of `count` × `node`.
fn cluster_scenario(node: &str, count: &str) -> String {
    replaced(
        &valid_scenario(),
        "deployment:",
        &format!("cluster:\n  nodes:\n    - node: {node}\n      count: {count}\ndeployment:"),
    )
}

#[test]
fn a_billion_replicas_is_an_error_naming_the_field_and_the_limit() {
    let case = Case::new();
    let text = replaced(&valid_scenario(), "replicas: 1", "replicas: 1000000000");
    validate_fails_at(
        &case,
        &text,
        "replicas:",
        "deployment.pools[0].replicas",
        &["1000000000 replicas", "at most 1048576 devices"],
    );
}

#[test]
fn replicas_times_tensor_parallel_beyond_the_device_limit_is_an_error() {
    let case = Case::new();
    let text = replaced(
        &valid_scenario(),
        "replicas: 1\n      tensor_parallel: 1\n",
        "replicas: 1000000\n      tensor_parallel: 8\n      interconnect: nvlink4\n",
    );
    validate_fails_at(
        &case,
        &text,
        "replicas:",
        "deployment.pools[0].replicas",
        &["1000000 replicas × tensor_parallel 8", "(1048576)"],
    );
}

#[test]
fn a_billion_nodes_is_an_error_naming_the_field_and_the_limit() {
    let case = Case::new();
    let text = cluster_scenario("dgx-h100", "1000000000");
    validate_fails_at(
        &case,
        &text,
        "count:",
        "cluster.nodes[0].count",
        &["1000000000 nodes", "at most 1048576 nodes, 1048576 devices"],
    );
}

#[test]
fn nodes_whose_devices_exceed_the_limit_are_an_error_naming_the_count() {
    let case = Case::new();
    // 200,000 nodes is under the node limit, but 2,000,000 devices are not.
    let text = cluster_scenario("dgx-h100", "200000");
    validate_fails_at(
        &case,
        &text,
        "count:",
        "cluster.nodes[0].count",
        &["200000 × dgx-h100 of 10 devices each", "1048576 devices"],
    );
}

#[test]
fn a_node_whose_mesh_has_too_many_links_is_an_error_naming_the_node() {
    let case = Case::new();
    // 100,000 devices are allowed, but not the five billion links of a mesh joining them all.
    case.file(
        "huge-mesh.yaml",
        "name: huge-mesh\ndisplay_name: every GPU wired to every other\ndevices:\n  - { group: gpu, device: h100-sxm, count: 100000 }\ninterconnects:\n  - { link: nvlink4, members: [gpu], topology: mesh }\nsources: { devices: test }\n",
    );
    let text = cluster_scenario("./huge-mesh.yaml", "1");
    validate_fails_at(
        &case,
        &text,
        "node:",
        "cluster.nodes[0].node",
        &["huge-mesh has 4999950000 links", "8388608 links"],
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 10: weight and KV dtypes, engine profiles, prefix caches
// ---------------------------------------------------------------------------------------------

/// The minimal scenario with `line` (indented as a pool field) added to its pool.
fn with_pool_field(line: &str) -> String {
    replaced(&valid_scenario(), "      scheduler:\n", &format!("      {line}\n      scheduler:\n"))
}

#[test]
fn a_dtype_the_device_cannot_run_names_the_dtype_the_field_and_what_the_device_runs() {
    let case = Case::new();
    // H100 has FP8 tensor cores but none for FP4.
    let text = with_pool_field("dtype: nvfp4");
    validate_fails_at(
        &case,
        &text,
        "dtype: nvfp4",
        "deployment.pools[0].dtype",
        &["h100-sxm cannot run nvfp4 weights", "it runs fp32, tf32, fp16, bf16, fp8, int8"],
    );
    // A100 has no FP8 tensor cores; `run` refuses it as `validate` does.
    let text = replaced(&with_pool_field("dtype: fp8"), "device: h100-sxm", "device: a100-sxm-80gb");
    validate_fails_at(
        &case,
        &text,
        "dtype: fp8",
        "deployment.pools[0].dtype",
        &["a100-sxm-80gb cannot run fp8 weights", "it runs fp32, tf32, fp16, bf16, int8, int4"],
    );
    let (outcome, path) = run_text(&case, &text);
    outcome.assert_error().at(&path, line_of(&text, "dtype: fp8")).field("deployment.pools[0].dtype").says(&["fp8"]);
}

/// The bundled vLLM V1 engine profile, renamed `test-engine`.
fn engine_profile() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware-profiles/engines/vllm-v1.yaml");
    let text = std::fs::read_to_string(&path).expect("read the bundled vllm-v1 engine profile");
    replaced(&text, "name: vllm-v1\n", "name: test-engine\n")
}

#[test]
fn an_engine_knob_out_of_range_names_the_file_the_field_and_the_line() {
    // In an engine profile: the error is the profile's, at its own line.
    for (from, to, field, facts) in [
        ("max_num_seqs: 256", "max_num_seqs: 1000000000000", "defaults.max_num_seqs", &["at most"][..]),
        ("memory_utilization: 0.9", "memory_utilization: 2", "defaults.memory_utilization", &["2"][..]),
        ("kernel_launch_us: 6", "kernel_launch_us: -6", "graphs.kernel_launch_us", &["-6"][..]),
    ] {
        let case = Case::new();
        let profile = replaced(&engine_profile(), from, to);
        let engine = case.file("engine.yaml", &profile);
        let text = with_pool_field("engine: engine.yaml");
        let path = case.scenario(&text);
        for outcome in [validate(&[&path]), case.run(&path)] {
            outcome.assert_error().at(&engine, line_of(&profile, to)).field(field).says(facts);
        }
    }
    // A kernel-time factor beyond 10× either way.
    let case = Case::new();
    let profile = replaced(&engine_profile(), "defaults:\n", "kernel_scale:\n  gemm: 100\ndefaults:\n");
    let engine = case.file("engine.yaml", &profile);
    let path = case.scenario(&with_pool_field("engine: engine.yaml"));
    validate(&[&path])
        .assert_error()
        .at(&engine, line_of(&profile, "gemm: 100"))
        .field("kernel_scale.gemm")
        .says(&["100"]);
    // The same knob overridden by a pool: the error is the scenario's, naming the engine.
    let case = Case::new();
    let text = replaced(&valid_scenario(), "max_num_seqs: 16", "max_num_seqs: 1000000000000");
    validate_fails_at(
        &case,
        &text,
        "max_num_seqs:",
        "deployment.pools[0].scheduler.max_num_seqs",
        &["1000000000000 is out of range for vllm-v1", "at most"],
    );
}

#[test]
fn a_prefix_cache_larger_than_the_kv_pool_names_the_field_and_both_sizes() {
    let case = Case::new();
    let text = with_pool_field("prefix_cache: { capacity_tokens: 100000000 }");
    let path = case.scenario(&text);
    let outcome = validate(&[&path]);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "capacity_tokens"))
        .field("deployment.pools[0].prefix_cache.capacity_tokens")
        .says(&["a prefix cache of 100000000 tokens is larger than the KV pool", "tokens:", "blocks of 16"]);
    // The KV pool's size, as the error states it, is a number below the cache's.
    let pool_tokens: u64 = outcome
        .stderr
        .split("the KV pool it lives in (")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the error states the KV pool's size in tokens:\n{}", outcome.describe()));
    assert!(pool_tokens > 0 && pool_tokens < 100_000_000, "KV pool of {pool_tokens} tokens:\n{}", outcome.describe());
    // A cache exactly that size is accepted.
    let text = with_pool_field(&format!("prefix_cache: {{ capacity_tokens: {pool_tokens} }}"));
    validate(&[&case.scenario(&text)]).assert_success();
}

// ---------------------------------------------------------------------------------------------
// Speculative decoding (issue 11)
// ---------------------------------------------------------------------------------------------

/// The minimal scenario with `speculation` (lines indented under the pool's `speculation:`).
fn speculating(model: &str, speculation: &str) -> String {
    let speculation: String = speculation.lines().map(|line| format!("        {line}\n")).collect();
    let head = replaced(HEAD, "model: llama-3.1-8b", &format!("model: {model}"));
    format!("{head}      speculation:\n{speculation}{SYNTHETIC}")
}

#[test]
fn speculation_minimal_draft_model_scenario_runs() {
    let case = Case::new();
    let text = speculating(
        "llama-3.1-8b",
        "method: draft_model\nk: 4\ndraft: { model: llama-3.2-1b }\nacceptance: { rate: 0.7 }",
    );
    run_text(&case, &text).0.assert_success();
}

#[test]
fn speculation_draft_with_another_vocabulary_names_both_vocabularies() {
    let case = Case::new();
    // Llama-2-7B's tokenizer has 32000 tokens, Llama-3.2-1B's 128256.
    let text = speculating(
        "llama-2-7b",
        "method: draft_model\nk: 4\ndraft: { model: llama-3.2-1b }\nacceptance: { rate: 0.7 }",
    );
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "draft:"))
        .field("deployment.pools[0].speculation.draft.model")
        .says(&["128256", "32000", "tokenizer"]);
}

#[test]
fn speculation_k_zero_and_acceptance_rates_outside_zero_one_name_their_fields() {
    let case = Case::new();
    let text = speculating("llama-3.1-8b", "method: ngram\nk: 0\nacceptance: { rate: 0.7 }");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "k: 0"))
        .field("deployment.pools[0].speculation.k")
        .says(&["at least 1"]);
    for rate in ["1.5", "-0.1", ".nan"] {
        let text = speculating("llama-3.1-8b", &format!("method: ngram\nk: 4\nacceptance:\n  rate: {rate}"));
        let (outcome, path) = run_text(&case, &text);
        outcome
            .assert_error()
            .at(&path, line_of(&text, "rate:"))
            .field("deployment.pools[0].speculation.acceptance.rate")
            .says(&["[0, 1]"]);
    }
}

#[test]
fn speculation_per_position_list_longer_than_k_names_both_lengths() {
    let case = Case::new();
    let text = speculating("llama-3.1-8b", "method: eagle\nk: 2\nacceptance:\n  per_position: [0.8, 0.7, 0.6]");
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "per_position:"))
        .field("deployment.pools[0].speculation.acceptance.per_position")
        .says(&["3 rates", "k = 2"]);
}

#[test]
fn speculation_draft_that_does_not_fit_its_device_or_beside_the_target_names_the_device() {
    let case = Case::new();
    // Llama-3.1-70B (131 GiB of BF16 weights) on an RTX 4070 (12 GiB) of its own.
    let text = speculating(
        "llama-3.1-8b",
        "method: draft_model\nk: 4\ndraft:\n  model: llama-3.1-70b\n  device: rtx-4070\n  link: pcie-gen4-x16\nacceptance: { rate: 0.7 }",
    );
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "device: rtx-4070"))
        .field("deployment.pools[0].speculation.draft.device")
        .says(&["does not fit on rtx-4070"]);
    // The same draft beside the 8B target on its H100.
    let text = speculating(
        "llama-3.1-8b",
        "method: draft_model\nk: 4\ndraft:\n  model: llama-3.1-70b\nacceptance: { rate: 0.7 }",
    );
    let (outcome, path) = run_text(&case, &text);
    outcome
        .assert_error()
        .at(&path, line_of(&text, "model: llama-3.1-70b"))
        .field("deployment.pools[0].speculation.draft.model")
        .says(&["no room beside the target on h100-sxm"]);
}
