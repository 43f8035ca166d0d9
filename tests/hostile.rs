//! The hostile-input corpus: every case under `tests/hostile/cases/` is bad input (a scenario,
//! search spec, trace, hardware profile, model config or command line) that `servesim` must
//! refuse cleanly. Each case runs through the real binary, in a temporary folder holding a copy
//! of the case's files, and each call must
//!
//! - finish within the time bound (default [`DEFAULT_TIME_LIMIT`]; the child is killed after)
//!   and within [`MEMORY_LIMIT_KIB`] of address space,
//! - exit non-zero, neither by a panic (exit code 101) nor by a signal,
//! - print no panic message (`panicked`, `RUST_BACKTRACE`, `thread 'main'`, `stack backtrace`),
//! - print `error:` on stderr,
//! - name the offending file (by the path the case gives), and the field (``field `a.b[0].c` ``),
//!   the line (`FILE:LINE`) or the command-line flag the case expects, and any extra text it
//!   expects.
//!
//! The layout of a case, its `case.yaml` and how to add one are described in
//! `tests/hostile/README.md`. Cases named in `tests/hostile/KNOWN_FAILING` are defects still
//! being fixed: they are expected to fail, and the test fails when one of them passes, so that
//! the list only shrinks. The valid inputs the cases are derived from (`tests/hostile/controls/`)
//! run too and must succeed, so that each case fails because of its one change. All failures are
//! collected and reported together.
//!
//! `HOSTILE_CASE=substring cargo test --test hostile -- --nocapture` runs only the matching
//! cases and prints what each call printed.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The corpus must hold at least this many cases.
const MIN_CASES: usize = 200;

/// How long one call of the binary may run unless the case sets `time_limit_s`.
const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Address-space limit of each call (KiB), so that a case that makes servesim allocate without
/// bound fails alone instead of exhausting the machine.
const MEMORY_LIMIT_KIB: u64 = 512 << 10;

/// Text that only a panic or a crash prints.
const PANIC_MARKERS: [&str; 4] = ["panicked", "RUST_BACKTRACE", "thread 'main'", "stack backtrace"];

/// One `case.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// What is hostile about the input, in one line.
    about: String,
    /// Which commands run by default.
    #[serde(default)]
    kind: Kind,
    /// The input under test, relative to the case folder (it need not exist: a missing file
    /// is a case too). `{file}` in `commands` stands for it.
    #[serde(default)]
    file: Option<String>,
    /// Files or folders of `tests/hostile/fixtures/` copied beside the case's own files.
    #[serde(default)]
    shared: Vec<String>,
    /// The calls to make, as argument lists without the program (default: by `kind`).
    #[serde(default)]
    commands: Option<Vec<Vec<String>>>,
    /// Time bound of each call, s (default [`DEFAULT_TIME_LIMIT`]).
    #[serde(default)]
    time_limit_s: Option<f64>,
    /// What every call's error must say; absent only for controls, which must succeed.
    #[serde(default)]
    expect: Option<Expect>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    /// A scenario: `validate FILE` and `run FILE --out out --quiet`.
    #[default]
    Scenario,
    /// A search spec: `validate FILE` and `search FILE --out out --threads 1`.
    Search,
    /// Command-line flags: `commands` must be given.
    Cli,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The file the error must name (default: the case's `file`), as the path relative to the
    /// case folder, e.g. `device.yaml` or `m/config.json`.
    #[serde(default)]
    file: Option<String>,
    /// The field path the error must name, printed as ``field `PATH` ``.
    #[serde(default)]
    field: Option<String>,
    /// The line of the named file the error must point at, printed as `FILE:LINE`.
    #[serde(default)]
    line: Option<usize>,
    /// A command-line flag (or subcommand) the error must name, e.g. `--shard`.
    #[serde(default)]
    flag: Option<String>,
    /// Further text the error must contain.
    #[serde(default)]
    contains: Vec<String>,
    /// Text stderr must not contain (e.g. `evaluated`, to show a search failed before
    /// simulating).
    #[serde(default)]
    lacks: Vec<String>,
}

/// A case ready to run.
struct Case {
    /// Its folder relative to `tests/hostile/cases/`, e.g. `scenario/replicas-zero`, or
    /// `controls/NAME` for a control.
    name: String,
    /// A control: valid input that must be accepted.
    control: bool,
    dir: PathBuf,
    spec: CaseFile,
    commands: Vec<Vec<String>>,
    time_limit: Duration,
}

/// What one call did.
struct Outcome {
    argv: Vec<String>,
    timed_out: bool,
    status: Option<ExitStatus>,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn exit(&self) -> String {
        if self.timed_out {
            return format!("killed after {:.1} s", self.elapsed.as_secs_f64());
        }
        match self.status {
            Some(status) => match status.code() {
                Some(code) => format!("exit {code}"),
                None => describe_signal(status),
            },
            None => "not started".to_string(),
        }
    }

    /// The line of stderr that matters (a panic's, else the first `error:`, else the first
    /// that says something), shortened.
    fn first_line(&self) -> String {
        let lines = || self.stderr.lines().map(str::trim).filter(|l| !l.is_empty());
        let line = lines()
            .find(|l| l.contains("panicked") || l.contains("memory allocation"))
            .or_else(|| lines().find(|l| l.contains("error:")))
            .or_else(|| lines().next())
            .unwrap_or("<stderr empty>");
        let line = match line.find("panicked at") {
            // The panic's message is on the next line.
            Some(_) => {
                let next = lines().skip_while(|l| *l != line).nth(1).unwrap_or("");
                format!("{line} {next}")
            }
            None => line.to_string(),
        };
        shorten(&line, 240)
    }
}

#[cfg(unix)]
fn describe_signal(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    format!("killed by signal {}", status.signal().unwrap_or(0))
}

#[cfg(not(unix))]
fn describe_signal(_: ExitStatus) -> String {
    "killed".to_string()
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

fn hostile_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// Case folders (those holding a `case.yaml`) under `root`, sorted, relative names with `/`.
fn case_dirs(root: &Path) -> Vec<(String, PathBuf)> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, PathBuf)>) {
        if dir.join("case.yaml").is_file() {
            let name = dir.strip_prefix(root).expect("under the root");
            let name = name.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            found.push((name, dir.to_path_buf()));
            return;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("folder entry").path())
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for entry in entries {
            walk(root, &entry, found);
        }
    }
    let mut found = Vec::new();
    walk(root, root, &mut found);
    found
}

/// Reads the cases under `root`; problems with the corpus itself go to `problems`.
fn load_cases(root: &Path, controls: bool, problems: &mut Vec<String>) -> Vec<Case> {
    let filter = std::env::var("HOSTILE_CASE").ok();
    let mut cases = Vec::new();
    for (name, dir) in case_dirs(root) {
        let name = if controls { format!("controls/{name}") } else { name };
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("case.yaml")).expect("read case.yaml");
        let spec: CaseFile = match serde_yaml::from_str(&text) {
            Ok(spec) => spec,
            Err(e) => {
                problems.push(format!("{name}: case.yaml is malformed: {e}"));
                continue;
            }
        };
        match check_case_file(&spec, controls) {
            Ok(()) => {}
            Err(e) => {
                problems.push(format!("{name}: case.yaml: {e}"));
                continue;
            }
        }
        let commands = spec.commands.clone().unwrap_or_else(|| match spec.kind {
            Kind::Scenario => vec![
                vec!["validate".into(), "{file}".into()],
                vec!["run".into(), "{file}".into(), "--out".into(), "out".into(), "--quiet".into()],
            ],
            Kind::Search => vec![
                vec!["validate".into(), "{file}".into()],
                vec!["search".into(), "{file}".into(), "--out".into(), "out".into(), "--threads".into(), "1".into()],
            ],
            Kind::Cli => Vec::new(),
        });
        let file = spec.file.clone().unwrap_or_default();
        let commands = commands
            .into_iter()
            .map(|argv| argv.into_iter().map(|arg| arg.replace("{file}", &file)).collect())
            .collect();
        let time_limit = spec.time_limit_s.map_or(DEFAULT_TIME_LIMIT, Duration::from_secs_f64);
        cases.push(Case { name, control: controls, dir, spec, commands, time_limit });
    }
    cases
}

fn check_case_file(spec: &CaseFile, controls: bool) -> Result<(), String> {
    if spec.about.trim().is_empty() {
        return Err("`about` is empty".into());
    }
    match spec.kind {
        Kind::Cli if spec.commands.as_ref().is_none_or(|c| c.is_empty()) => {
            return Err("a `kind: cli` case lists its `commands`".into())
        }
        Kind::Scenario | Kind::Search if spec.file.is_none() => {
            return Err("give the `file` under test (it may be missing on purpose)".into())
        }
        _ => {}
    }
    if spec.commands.as_ref().is_some_and(|c| c.iter().any(Vec::is_empty)) {
        return Err("a command is an empty argument list".into());
    }
    if spec.time_limit_s.is_some_and(|t| !(t > 0.0 && t <= 60.0)) {
        return Err("`time_limit_s` must be in (0, 60]".into());
    }
    match (&spec.expect, controls) {
        (Some(_), true) => Err("a control expects success: drop `expect`".into()),
        (None, false) => Err("say what the error must name under `expect`".into()),
        (None, true) => Ok(()),
        (Some(expect), false) => {
            let located =
                expect.field.is_some() || expect.line.is_some() || expect.flag.is_some() || !expect.contains.is_empty();
            match spec.kind {
                // A command-line case may be about a path argument alone.
                Kind::Cli if !located && expect.file.is_none() => {
                    return Err("`expect` names none of file, field, line, flag, contains".into())
                }
                Kind::Scenario | Kind::Search if !located => {
                    return Err("`expect` names none of field, line, flag, contains".into())
                }
                _ => {}
            }
            if expect.line.is_some() && expect.file.is_none() && spec.file.is_none() {
                return Err("`expect.line` needs a file".into());
            }
            Ok(())
        }
    }
}

/// Copies `from` (a file or a folder) to `to`.
fn copy_into(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create folder");
        for entry in std::fs::read_dir(from).expect("read folder") {
            let entry = entry.expect("folder entry");
            copy_into(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// A temporary folder holding the case's files (without `case.yaml`) and its shared fixtures.
fn stage(case: &Case) -> Result<tempfile::TempDir, String> {
    let work = tempfile::tempdir().expect("create a temporary folder");
    for entry in std::fs::read_dir(&case.dir).expect("read the case folder") {
        let entry = entry.expect("folder entry");
        if entry.file_name() != "case.yaml" {
            copy_into(&entry.path(), &work.path().join(entry.file_name()));
        }
    }
    for name in &case.spec.shared {
        let from = hostile_root().join("fixtures").join(name);
        if !from.exists() {
            return Err(format!("shared fixture {name:?} is not in tests/hostile/fixtures"));
        }
        copy_into(&from, &work.path().join(name));
    }
    Ok(work)
}

/// Runs the binary with `argv` in `dir`, killing it after `limit`.
fn servesim(dir: &Path, argv: &[String], limit: Duration) -> Outcome {
    let binary = env!("CARGO_BIN_EXE_servesim");
    let mut command = if cfg!(unix) && Path::new("/bin/sh").exists() {
        // `exec` keeps the pid, so a kill on timeout reaches servesim itself.
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(format!("ulimit -v {MEMORY_LIMIT_KIB} 2>/dev/null; exec \"$0\" \"$@\""))
            .arg(binary)
            .args(argv);
        command
    } else {
        let mut command = Command::new(binary);
        command.args(argv);
        command
    };
    let mut child = command
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env("RAYON_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start servesim");
    let stdout_pipe = child.stdout.take().expect("stdout is piped");
    let stderr_pipe = child.stderr.take().expect("stderr is piped");
    // Read both pipes to the end (at most 1 MiB kept) so a chatty child never blocks on them.
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buffer = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                if kept.len() < 1 << 20 {
                    kept.extend_from_slice(&buffer[..n]);
                }
            }
            String::from_utf8_lossy(&kept).into_owned()
        })
    };
    let stdout_reader = reader(Box::new(stdout_pipe));
    let stderr_reader = reader(Box::new(stderr_pipe));
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().expect("wait for servesim") {
            Some(status) => break Some(status),
            None if started.elapsed() > limit => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let elapsed = started.elapsed();
    Outcome {
        argv: argv.to_vec(),
        timed_out,
        status,
        elapsed,
        stdout: stdout_reader.join().expect("read stdout"),
        stderr: stderr_reader.join().expect("read stderr"),
    }
}

/// What is wrong with one call's outcome, against the case's expectations (empty: it passed).
fn problems_with(outcome: &Outcome, case: &Case, expect: &Expect) -> Vec<String> {
    let mut problems = Vec::new();
    if outcome.timed_out {
        problems.push(format!("did not finish within {:.0} s", case.time_limit.as_secs_f64()));
        return problems;
    }
    match outcome.status.map(|s| s.code()) {
        Some(Some(0)) => problems.push("exit code 0 (accepted the input)".into()),
        Some(Some(101)) => problems.push("exit code 101 (a panic)".into()),
        Some(Some(_)) => {}
        Some(None) => problems.push(outcome.exit()),
        None => problems.push("could not be waited for".into()),
    }
    let stderr = &outcome.stderr;
    if let Some(marker) = PANIC_MARKERS.iter().find(|m| stderr.contains(**m)) {
        problems.push(format!("stderr shows a panic ({marker:?})"));
    }
    if !stderr.contains("error:") {
        problems.push("no `error:` on stderr".into());
    }
    let file = expect.file.as_ref().or(case.spec.file.as_ref());
    if let Some(file) = file {
        if !stderr.contains(file.as_str()) {
            problems.push(format!("does not name the file {file:?}"));
        }
    }
    if let Some(field) = &expect.field {
        let wanted = format!("field `{field}`");
        if !stderr.contains(&wanted) {
            problems.push(format!("does not name the field: lacks {wanted:?}"));
        }
    }
    if let (Some(line), Some(file)) = (expect.line, file) {
        let wanted = format!("{file}:{line}");
        let found = stderr.match_indices(&wanted).any(|(at, _)| {
            let after = stderr[at + wanted.len()..].chars().next();
            let before = stderr[..at].chars().next_back();
            !after.is_some_and(|c| c.is_ascii_digit())
                && !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
        });
        if !found {
            problems.push(format!("does not point at the line: lacks {wanted:?}"));
        }
    }
    if let Some(flag) = &expect.flag {
        if !stderr.contains(flag.as_str()) {
            problems.push(format!("does not name {flag:?}"));
        }
    }
    for text in &expect.contains {
        if !stderr.contains(text.as_str()) {
            problems.push(format!("lacks {text:?}"));
        }
    }
    for text in &expect.lacks {
        if stderr.contains(text.as_str()) {
            problems.push(format!("says {text:?}"));
        }
    }
    problems
}

/// The result of running one case: for each call, its outcome and problems.
struct Report {
    name: String,
    calls: Vec<(Outcome, Vec<String>)>,
    setup_problem: Option<String>,
}

impl Report {
    fn passed(&self) -> bool {
        self.setup_problem.is_none() && self.calls.iter().all(|(_, p)| p.is_empty())
    }

    /// One line per failing call: the command, what is wrong, the exit and stderr's first line.
    fn describe(&self) -> String {
        if let Some(problem) = &self.setup_problem {
            return format!("  {}: {problem}", self.name);
        }
        let mut text = String::new();
        for (outcome, problems) in self.calls.iter().filter(|(_, p)| !p.is_empty()) {
            text += &format!(
                "  {} [servesim {}]: {}\n      {}: {}\n",
                self.name,
                outcome.argv.join(" "),
                problems.join("; "),
                outcome.exit(),
                outcome.first_line()
            );
        }
        text.trim_end().to_string()
    }
}

/// Runs every case on a few threads; reports come back in case order.
fn run_all(cases: &[Case]) -> Vec<Report> {
    let verbose = std::env::var("HOSTILE_CASE").is_ok();
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(index) else { break };
                let report = run_case(case, verbose);
                reports.lock().unwrap().push((index, report));
            });
        }
    });
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by_key(|(index, _)| *index);
    reports.into_iter().map(|(_, report)| report).collect()
}

fn run_case(case: &Case, verbose: bool) -> Report {
    let work = match stage(case) {
        Ok(work) => work,
        Err(problem) => return Report { name: case.name.clone(), calls: Vec::new(), setup_problem: Some(problem) },
    };
    let mut calls: Vec<(Outcome, Vec<String>)> = Vec::new();
    for argv in &case.commands {
        if calls.iter().any(|(outcome, _)| outcome.timed_out) {
            // A case that hangs once costs its time bound once; the rest is reported unrun.
            let skipped = Outcome {
                argv: argv.clone(),
                timed_out: false,
                status: None,
                elapsed: Duration::ZERO,
                stdout: String::new(),
                stderr: String::new(),
            };
            calls.push((skipped, vec!["not run: an earlier call of this case hung".into()]));
            continue;
        }
        let outcome = servesim(work.path(), argv, case.time_limit);
        let problems = match (&case.spec.expect, case.control) {
            (Some(expect), false) => problems_with(&outcome, case, expect),
            _ if outcome.timed_out => vec![format!("did not finish within {:.0} s", case.time_limit.as_secs_f64())],
            _ if outcome.status.is_some_and(|s| s.success()) => Vec::new(),
            _ => vec![format!("the control failed ({})", outcome.exit())],
        };
        if verbose {
            println!(
                "--- {} [servesim {}] {} in {:.2} s\n{}{}{}",
                case.name,
                argv.join(" "),
                outcome.exit(),
                outcome.elapsed.as_secs_f64(),
                shorten(&outcome.stdout, 1000),
                shorten(&outcome.stderr, 4000),
                if problems.is_empty() { String::new() } else { format!("PROBLEMS: {}\n", problems.join("; ")) }
            );
        }
        calls.push((outcome, problems));
    }
    Report { name: case.name.clone(), calls, setup_problem: None }
}

/// `KNOWN_FAILING`: case name → reason.
fn known_failing(problems: &mut Vec<String>) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(hostile_root().join("KNOWN_FAILING")).unwrap_or_default();
    let mut known = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if reason.trim().is_empty() {
            problems.push(format!("KNOWN_FAILING:{}: {name} has no reason", index + 1));
        }
        if known.insert(name.to_string(), reason.trim().to_string()).is_some() {
            problems.push(format!("KNOWN_FAILING:{}: {name} is listed twice", index + 1));
        }
    }
    known
}

#[test]
fn every_hostile_case_fails_cleanly_naming_file_and_place() {
    let started = Instant::now();
    let mut corpus_problems = Vec::new();
    let mut cases = load_cases(&hostile_root().join("cases"), false, &mut corpus_problems);
    let hostile = cases.len();
    cases.extend(load_cases(&hostile_root().join("controls"), true, &mut corpus_problems));
    let known = known_failing(&mut corpus_problems);
    let filtered = std::env::var("HOSTILE_CASE").is_ok();
    if !filtered {
        let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        for name in known.keys() {
            if !names.contains(name.as_str()) {
                corpus_problems.push(format!("KNOWN_FAILING names {name}, which is not a case"));
            }
        }
        if hostile < MIN_CASES {
            corpus_problems.push(format!("the corpus has {hostile} cases, fewer than {MIN_CASES}"));
        }
    }
    let reports = run_all(&cases);

    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    let mut still_failing = Vec::new();
    for report in &reports {
        match (report.passed(), known.get(&report.name)) {
            (true, Some(_)) => now_passing.push(format!("  {}", report.name)),
            (true, None) => {}
            (false, Some(reason)) => still_failing.push(format!("{}\n      known: {reason}", report.describe())),
            (false, None) => unexpected.push(report.describe()),
        }
    }
    let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
    for case in cases.iter().filter(|c| !c.control) {
        *by_category.entry(case.name.split('/').next().unwrap_or("")).or_default() += 1;
    }
    let commands: usize = reports.iter().map(|r| r.calls.len()).sum();
    if !still_failing.is_empty() {
        println!("known failing (tests/hostile/KNOWN_FAILING):\n{}", still_failing.join("\n"));
    }
    println!(
        "hostile corpus: {hostile} cases ({}) and {} controls, {commands} commands, {} known failing, {:.1} s",
        by_category.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
        cases.len() - hostile,
        still_failing.len(),
        started.elapsed().as_secs_f64()
    );

    let mut message = String::new();
    if !corpus_problems.is_empty() {
        message += &format!("the corpus itself is broken:\n  {}\n", corpus_problems.join("\n  "));
    }
    if !unexpected.is_empty() {
        message += &format!(
            "{} case(s) failed (fix servesim, or if the defect is known add the case to tests/hostile/KNOWN_FAILING with a reason):\n{}\n",
            unexpected.len(),
            unexpected.join("\n")
        );
    }
    if !now_passing.is_empty() {
        message += &format!(
            "{} case(s) listed in tests/hostile/KNOWN_FAILING pass now; remove them from the list:\n{}\n",
            now_passing.len(),
            now_passing.join("\n")
        );
    }
    assert!(message.is_empty(), "{message}");
}
