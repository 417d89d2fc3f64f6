//! Progress reporting: the library says what it is doing; the CLI decides whether and how to show
//! it (a bar on a terminal, nothing under cron).

/// Receives progress from long operations. Implementations must be cheap: `advance` is called
/// for every megabyte moved.
pub trait Progress: Sync {
    /// A new phase starts; `total` bytes are expected (0 when unknown).
    fn phase(&self, name: &str, total: u64);
    /// `bytes` more of the current phase are done.
    fn advance(&self, bytes: u64);
    /// The current phase is over.
    fn done(&self) {}
}

/// Reports nothing: for cron, tests and library users who do not care.
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// A reader that reports every byte read through it as progress of the current phase.
pub struct CountingReader<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<'a, R> CountingReader<'a, R> {
    pub fn new(inner: R, progress: &'a dyn Progress) -> Self {
        CountingReader { inner, progress }
    }
}

impl<R: std::io::Read> std::io::Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Where [`notice`] lines go; unset (the default) drops them.
static NOTICES: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Shows [`notice`] lines through `show`: the CLI sets this when someone watches a terminal,
/// and leaves it unset under cron, which mails any output.
pub fn show_notices_with(show: fn(&str)) {
    let _ = NOTICES.set(show);
}

/// One line for a person watching a long operation (a retry and its wait), shown only where
/// [`show_notices_with`] says.
pub fn notice(line: &str) {
    if let Some(show) = NOTICES.get() {
        show(line);
    }
}
