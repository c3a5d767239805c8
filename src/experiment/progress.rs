//! Progress of a long command: a bar on a terminal, a plain line on stderr every few seconds
//! elsewhere (CI logs, Slurm, `nohup`), nothing with `--quiet`.
//!
//! Wall-clock time only decides when a line is printed; it never reaches a result file.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between two plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// One command's progress: `pos` of `len` `unit`s, with a free-text message.
pub struct Progress {
    shown: Shown,
}

enum Shown {
    Hidden,
    Bar(ProgressBar),
    Plain(Mutex<Plain>),
}

struct Plain {
    unit: String,
    len: u64,
    pos: u64,
    msg: String,
    started: Instant,
    last: Instant,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise, nothing when `quiet`.
    pub fn new(quiet: bool, len: u64, unit: &str) -> Progress {
        Self::with_terminal(quiet, std::io::stderr().is_terminal(), len, unit)
    }

    fn with_terminal(quiet: bool, terminal: bool, len: u64, unit: &str) -> Progress {
        let shown = if quiet {
            Shown::Hidden
        } else if terminal {
            let b = ProgressBar::new(len);
            b.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {unit} {{msg}}"
                ))
                .expect("static template"),
            );
            Shown::Bar(b)
        } else {
            let now = Instant::now();
            Shown::Plain(Mutex::new(Plain {
                unit: unit.to_string(),
                len,
                pos: 0,
                msg: String::new(),
                started: now,
                last: now,
            }))
        };
        Progress { shown }
    }

    pub fn set_length(&self, len: u64) {
        match &self.shown {
            Shown::Hidden => {}
            Shown::Bar(b) => b.set_length(len),
            Shown::Plain(p) => p.lock().expect("no panic while held").len = len,
        }
    }

    pub fn set_position(&self, pos: u64) {
        match &self.shown {
            Shown::Hidden => {}
            Shown::Bar(b) => b.set_position(pos),
            Shown::Plain(p) => {
                let mut p = p.lock().expect("no panic while held");
                p.pos = pos;
                let now = Instant::now();
                if now.duration_since(p.last) >= PLAIN_EVERY {
                    p.last = now;
                    eprintln!("{}", p.line());
                }
            }
        }
    }

    /// Whether a message set now could be shown (skip formatting one otherwise).
    pub fn wants_message(&self) -> bool {
        !matches!(self.shown, Shown::Hidden)
    }

    pub fn set_message(&self, msg: String) {
        match &self.shown {
            Shown::Hidden => {}
            Shown::Bar(b) => b.set_message(msg),
            Shown::Plain(p) => p.lock().expect("no panic while held").msg = msg,
        }
    }

    /// Prints an information line above the bar (or as a plain line); nothing with `--quiet`.
    pub fn note(&self, message: &str) {
        match &self.shown {
            Shown::Hidden => {}
            Shown::Bar(b) => b.println(message),
            Shown::Plain(_) => eprintln!("{message}"),
        }
    }

    /// Prints a warning line above the bar (or as a plain line), even with `--quiet`: a warning
    /// is not progress.
    pub fn warn(&self, message: &str) {
        match &self.shown {
            Shown::Bar(b) => b.println(message),
            _ => eprintln!("{message}"),
        }
    }

    /// Clears the bar (a plain line stays: it is a log).
    pub fn finish(&self) {
        if let Shown::Bar(b) = &self.shown {
            b.finish_and_clear();
        }
    }
}

impl Plain {
    fn line(&self) -> String {
        let pct =
            if self.len > 0 { format!(" ({:.0}%)", 100.0 * self.pos as f64 / self.len as f64) } else { String::new() };
        let msg = if self.msg.is_empty() { String::new() } else { format!("; {}", self.msg) };
        format!("[{:.0} s] {}/{} {}{pct}{msg}", self.started.elapsed().as_secs_f64(), self.pos, self.len, self.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_reads_position_length_and_message() {
        let p = Progress::with_terminal(false, false, 900, "sim-s");
        p.set_position(450);
        p.set_message("12 arrived".into());
        let Shown::Plain(m) = &p.shown else { panic!("off a terminal, progress is plain lines") };
        let line = m.lock().unwrap().line();
        assert!(line.ends_with("450/900 sim-s (50%); 12 arrived"), "{line}");
        assert!(matches!(Progress::with_terminal(true, false, 1, "x").shown, Shown::Hidden));
    }
}
