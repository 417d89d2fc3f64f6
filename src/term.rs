//! Terminal rendering: progress on a TTY (nothing under cron), sizes and tables.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backup_agent::fsutil::human_bytes;
use backup_agent::progress::{Progress, Silent};

/// Progress for this process: a one-line meter on a terminal, silence otherwise.
pub fn progress(disabled: bool) -> Box<dyn Progress> {
    if disabled || !std::io::stderr().is_terminal() {
        Box::new(Silent)
    } else {
        Box::new(Meter {
            state: Mutex::new(MeterState {
                name: String::new(),
                total: 0,
                done: 0,
                drawn: None,
            }),
        })
    }
}

/// Erases a progress line before an error is printed, on a terminal only.
pub fn clear_progress_line() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

struct Meter {
    state: Mutex<MeterState>,
}

struct MeterState {
    name: String,
    total: u64,
    done: u64,
    drawn: Option<Instant>,
}

const REDRAW: Duration = Duration::from_millis(100);

impl MeterState {
    fn draw(&mut self) {
        let line = if self.total > 0 {
            let pct = (self.done as f64 / self.total as f64 * 100.0).min(100.0);
            format!(
                "{} {pct:3.0}%  {} / {}",
                self.name,
                human_bytes(self.done),
                human_bytes(self.total)
            )
        } else {
            format!("{}…", self.name)
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = Some(Instant::now());
    }
}

impl Progress for Meter {
    fn phase(&self, name: &str, total: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.name = name.to_string();
            s.total = total;
            s.done = 0;
            s.draw();
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.done += bytes;
            if s.drawn.is_none_or(|t| t.elapsed() >= REDRAW) {
                s.draw();
            }
        }
    }

    fn done(&self) {
        clear_progress_line();
    }
}

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
