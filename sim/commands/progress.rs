//! Progress on long work: a bar on a terminal, or a plain line every few seconds when stderr
//! is a log (CI), so a long search shows it is alive either way.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, lines every few seconds otherwise.
    BarOrLines,
    /// A bar on a terminal, nothing otherwise (short commands that print their own results).
    BarOnly,
    /// Nothing.
    Hidden,
}

/// Time between progress lines when stderr is not a terminal: 5 s, or
/// `SERVESIM_PROGRESS_INTERVAL_S` seconds when that is set (tests set 0).
fn line_interval() -> Duration {
    std::env::var("SERVESIM_PROGRESS_INTERVAL_S")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map_or(Duration::from_secs(5), Duration::from_secs_f64)
}

/// Progress of `len` units of work.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: Option<Mutex<Instant>>,
    interval: Duration,
    label: String,
    len: u64,
    started: Instant,
    position: Mutex<(u64, String)>,
}

impl Progress {
    /// Progress over `len` units named by `label` (e.g. "plans").
    pub fn new(label: &str, len: u64, mode: ProgressMode) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = (mode != ProgressMode::Hidden && terminal).then(|| {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{bar:40}} {{pos}}/{{len}} {label}, {{elapsed}} elapsed, ETA {{eta}} {{msg}}"
                ))
                .expect("valid template"),
            );
            bar
        });
        let lines = (mode == ProgressMode::BarOrLines && !terminal).then(|| Mutex::new(Instant::now()));
        Progress {
            bar,
            lines,
            interval: line_interval(),
            label: label.to_string(),
            len,
            started: Instant::now(),
            position: Mutex::new((0, String::new())),
        }
    }

    /// Advances by `units`.
    pub fn inc(&self, units: u64) {
        let position = {
            let mut state = self.position.lock().expect("progress lock");
            state.0 += units;
            state.0
        };
        if let Some(bar) = &self.bar {
            bar.inc(units);
        }
        self.maybe_line(position, "");
    }

    /// Moves to `position` with a note (e.g. the simulated time).
    pub fn set(&self, position: u64, note: String) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(note.clone());
        }
        self.maybe_line(position, &note);
        *self.position.lock().expect("progress lock") = (position, note);
    }

    fn maybe_line(&self, position: u64, note: &str) {
        let Some(last) = &self.lines else { return };
        let mut last = last.lock().expect("progress lock");
        if last.elapsed() < self.interval {
            return;
        }
        *last = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if position > 0 && position < self.len {
            format!(", ETA {:.0} s", elapsed / position as f64 * (self.len - position) as f64)
        } else {
            String::new()
        };
        eprintln!(
            "{position}/{} {} ({:.0}%), {elapsed:.0} s elapsed{eta}{}{note}",
            self.len,
            self.label,
            position as f64 * 100.0 / self.len.max(1) as f64,
            if note.is_empty() { "" } else { "; " }
        );
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
