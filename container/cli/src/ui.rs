//! What the user sees: failures with exit codes and hints, colour, progress, JSON output.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Exit codes (documented in `--help` and the README).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// An error: bad input, an unknown name, a refused operation. Nothing was changed.
    pub const ERROR: i32 = 1;
    /// The command line itself is wrong.
    pub const USAGE: i32 = 2;
    /// A merge stopped with conflicts to resolve (or `merge --continue` found some left).
    pub const CONFLICT: i32 = 3;
    /// A remote could not be reached, or refused the request.
    pub const REMOTE: i32 = 4;
    /// `fsck` found corrupt or missing elements.
    pub const CORRUPT: i32 = 5;
}

/// A failure to report: what went wrong, what to do, and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: i32,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// Adds what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the exit code.
    pub fn code(mut self, code: i32) -> Failure {
        self.code = code;
        self
    }
}

/// A failure with exit code 1.
pub fn fail(message: impl Into<String>) -> Failure {
    Failure { code: exit::ERROR, message: message.into(), hint: None }
}

/// How output is written.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// Print JSON documents instead of text.
    pub json: bool,
    /// Colour text (stdout is a terminal and `NO_COLOR` is unset).
    pub color: bool,
    /// Draw progress on stderr (a terminal, and not `--json` or `--quiet`).
    pub progress: bool,
    /// Say less.
    pub quiet: bool,
}

impl Ui {
    /// Decides from the flags and the terminals.
    pub fn new(json: bool, quiet: bool, color: Option<bool>) -> Ui {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ui {
            json,
            color: color.unwrap_or(!json && !no_color && std::io::stdout().is_terminal()),
            progress: !json && !quiet && std::io::stderr().is_terminal(),
            quiet,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() }
    }

    /// A key or commit.
    pub fn key(&self, s: &str) -> String {
        self.paint("33", s)
    }

    /// Something added or good.
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }

    /// Something removed or bad.
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }

    /// A branch name.
    pub fn branch(&self, s: &str) -> String {
        self.paint("1;36", s)
    }

    /// Faint text.
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }

    /// A line of text output (not in `--json` mode).
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.json && !self.quiet {
            println!("{}", line.as_ref());
        }
    }

    /// A line of text output that `--quiet` keeps (not in `--json` mode).
    pub fn out(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("{}", line.as_ref());
        }
    }

    /// The JSON document of a command (only in `--json` mode).
    pub fn emit(&self, doc: serde_json::Value) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, &doc);
            let _ = writeln!(out);
        }
    }

    /// Progress of a step, drawn on stderr when it is a terminal.
    pub fn progress(&self, label: &str, total: Option<u64>) -> Progress {
        Progress {
            label: label.to_owned(),
            total,
            done: 0,
            bytes: 0,
            start: Instant::now(),
            last: None,
            draw: self.progress,
        }
    }
}

/// A progress line: `label  done/total (percent)`, redrawn at most ten times a second.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    bytes: u64,
    start: Instant,
    last: Option<Instant>,
    draw: bool,
}

impl Progress {
    /// Counts `n` more.
    pub fn add(&mut self, n: u64) {
        self.add_sized(n, 0);
    }

    /// Counts `n` more objects of `bytes` bytes in all (shown once any bytes were counted).
    pub fn add_sized(&mut self, n: u64, bytes: u64) {
        self.done += n;
        self.bytes += bytes;
        if self.draw && self.last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100)) {
            self.last = Some(Instant::now());
            self.render(false);
        }
    }

    fn render(&self, end: bool) {
        let mut err = std::io::stderr().lock();
        let line = match self.total {
            Some(t) if t > 0 => {
                let width = 30;
                let filled = ((self.done.min(t) * width) / t) as usize;
                format!(
                    "{:<24} [{}{}] {}/{} ({}%)",
                    self.label,
                    "#".repeat(filled),
                    " ".repeat(width as usize - filled),
                    self.done,
                    t,
                    self.done.min(t) * 100 / t
                )
            }
            _ => format!("{:<24} {}", self.label, self.done),
        };
        let line = if self.bytes > 0 { format!("{line} objects, {}", human_bytes(self.bytes)) } else { line };
        let tail = if end { format!(", done in {:.1?}\n", self.start.elapsed()) } else { String::new() };
        let _ = write!(err, "\r\x1b[2K{line}{tail}");
        let _ = err.flush();
    }

    /// Ends the line.
    pub fn finish(self) {
        if self.draw {
            self.render(true);
        }
    }
}

/// A byte count for people: B, KiB, MiB or GiB.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}
