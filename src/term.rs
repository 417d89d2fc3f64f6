//! Terminal rendering: progress on a TTY (nothing under cron), times, sizes and tables.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use backup_agent::progress::{Progress, Silent};

/// Progress for this process: a bar with bytes and rate on a terminal, silence otherwise.
pub fn progress(disabled: bool) -> Box<dyn Progress> {
    if disabled || !std::io::stderr().is_terminal() {
        Box::new(Silent)
    } else {
        Box::new(Bars {
            current: Mutex::new(None),
        })
    }
}

/// Whether someone can answer a question: stdin and stderr are both a terminal.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `question` on stderr and reads one line from stdin; only `y`/`yes` is a yes.
pub fn ask(question: &str) -> Result<bool, backup_agent::error::Error> {
    use std::io::BufRead as _;
    write_stderr(format_args!("{question} [y/N] "));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| backup_agent::error::Error::System(format!("cannot read the answer: {e}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Shows a notice (a retry, a wait) on stderr, over any progress line.
pub fn show_notice(line: &str) {
    clear_progress_line();
    write_stderr(format_args!("backup: {line}\n"));
}

/// Erases a progress line before an error is printed, on a terminal only.
pub fn clear_progress_line() {
    if std::io::stderr().is_terminal() {
        write_stderr(format_args!("\r\x1b[2K"));
    }
}

/// One bar per phase (copying, compressing, pushing, downloading, extracting).
struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn bar(&self) -> Option<ProgressBar> {
        self.current.lock().ok().and_then(|b| b.clone())
    }
}

impl Progress for Bars {
    fn phase(&self, name: &str, total: u64) {
        let bar = if total > 0 {
            ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg:>17} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            )
        } else {
            ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} {binary_bytes_per_sec}")
                    .expect("valid template"),
            )
        };
        bar.set_message(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut current) = self.current.lock()
            && let Some(old) = current.replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.bar() {
            bar.inc(bytes);
        }
    }

    fn done(&self) {
        if let Ok(mut current) = self.current.lock()
            && let Some(bar) = current.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// A time as every command shows it to people: UTC to the minute, `2026-12-03 22:10Z`
/// ([`backup_agent::units::human_time`], which the library's messages use too). The tag keeps
/// the second, and `--json` prints RFC 3339.
pub fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    backup_agent::units::human_time(at)
}

/// The width tables are fitted to: a default terminal's, whatever the real one is, so that the
/// output reads the same in a pipe, a log and a narrow window.
pub const TABLE_WIDTH: usize = 80;

/// The narrowest a shrinkable column gets, `…` included.
const SHRUNK_MIN: usize = 8;

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    fitted_table(header, rows, usize::MAX, &[])
}

/// [`table`] narrowed to `max_width` by cutting the cells of the `shrinkable` columns (indexes)
/// with `…`, widest first, never below a few characters; the other columns stay whole, so a line
/// may still pass `max_width` when they alone do.
pub fn fitted_table(
    header: &[&str],
    rows: &[Vec<String>],
    max_width: usize,
    shrinkable: &[usize],
) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let total =
        |widths: &[usize]| widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    while total(&widths) > max_width {
        let Some(&widest) = shrinkable
            .iter()
            .filter(|&&i| widths.get(i).is_some_and(|&w| w > SHRUNK_MIN))
            .max_by_key(|&&i| widths[i])
        else {
            break;
        };
        let over = total(&widths) - max_width;
        widths[widest] = widths[widest].saturating_sub(over).max(SHRUNK_MIN);
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, &w)| cut(cell, w))
                .collect()
        })
        .collect();
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
    let header: Vec<String> = header
        .iter()
        .zip(&widths)
        .map(|(h, &w)| cut(h, w))
        .collect();
    line(header.iter().map(String::as_str).collect());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `text` cut to `width` characters, marked with `…` when it was.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Set once stdout has failed: later writes are skipped, and the failure is told once.
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout without ever panicking. A closed pipe (`backup list | head`, `backup now |
/// true`) is not the command's failure: what it did stands, so the rest of the output is dropped
/// quietly and the command ends with its own exit code. Any other write error is said once on
/// stderr.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    write_with(|out| out.write_fmt(args));
}

/// [`write_stdout`] for bytes rendered elsewhere (completions, the manual page).
pub fn write_stdout_bytes(bytes: &[u8]) {
    write_with(|out| out.write_all(bytes).and_then(|()| out.flush()));
}

fn write_with(write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>) {
    if STDOUT_FAILED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = write(&mut out) {
        STDOUT_FAILED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            write_stderr(format_args!(
                "backup: warning: cannot write the output: {e}\n"
            ));
        }
    }
}

/// Writes to stderr without ever panicking: with no one reading it, a message is dropped.
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}
