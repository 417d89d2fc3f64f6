//! The crate's one error type and its mapping to exit codes.
//!
//! Every variant reads as one line: what failed, on what, and what to do next. Context is added
//! where the error is raised, so the CLI prints `Display` once and never walks a chain.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, each with an actionable message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file is missing, unparsable or inconsistent.
    #[error("{0}")]
    Config(String),

    /// Another `backup now`/`run` holds the run lock.
    #[error(
        "another backup is already running (it holds the lock {}); wait for it to finish and try again",
        .0.display()
    )]
    Locked(PathBuf),

    /// A source database could not be copied or failed its checks.
    #[error("database `{name}` ({}): {reason}", .path.display())]
    Database {
        name: String,
        path: PathBuf,
        reason: String,
    },

    /// A folder lacks room for the work about to start.
    #[error(
        "not enough free space in {}: {what} needs {}, only {} is free; free some space or point it at a bigger disk",
        .dir.display(), crate::units::human_bytes(*.needed), crate::units::human_bytes(*.available)
    )]
    NoSpace {
        dir: PathBuf,
        what: String,
        needed: u64,
        available: u64,
    },

    /// The remote refused or failed an operation.
    #[error("remote: {0}")]
    Remote(String),

    /// The remote can never take this one snapshot (GitHub: an immutable release of its tag
    /// without its archive). Later snapshots are pushed past it.
    #[error("remote: {0}")]
    RefusedForGood(String),

    /// A file-system operation failed; `context` names the operation and the path.
    #[error("{context}: {source}{}", io_hint(.source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Other(String),
}

/// What to do next, for the I/O failures users can fix themselves.
fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "; check the owner and permissions of that path",
        io::ErrorKind::StorageFull => "; free some space on that disk",
        io::ErrorKind::ReadOnlyFilesystem => "; that disk is mounted read-only",
        io::ErrorKind::NotFound => "; check that the path exists",
        io::ErrorKind::NotADirectory => "; a part of that path is a file, not a folder",
        _ => "",
    }
}

/// Exit codes, documented in the README.
pub mod exit {
    /// Everything worked.
    pub const OK: u8 = 0;
    /// The command failed; nothing was changed except what the message says.
    pub const FAILED: u8 = 1;
    /// Bad command line or config file.
    pub const USAGE: u8 = 2;
    /// A restore would set aside live data the snapshot lacks, and nobody confirmed it
    /// (no terminal to ask, and no `--yes`).
    pub const UNCONFIRMED: u8 = 3;
    /// The snapshot is safe locally but the remote could not be reached or refused it.
    pub const REMOTE: u8 = 4;
    /// Another run holds the lock.
    pub const LOCKED: u8 = 5;
    /// `backup status`: the last good snapshot is older than the cadence window (or there is
    /// none), and the last run did not fail: the job has stopped running.
    pub const STALE: u8 = 6;
    /// `backup status`: the last run failed (its snapshot or its push).
    pub const LAST_RUN_FAILED: u8 = 7;
}

impl Error {
    /// The process exit code a CLI should use for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => exit::USAGE,
            Error::Locked(_) => exit::LOCKED,
            Error::Remote(_) | Error::RefusedForGood(_) => exit::REMOTE,
            _ => exit::FAILED,
        }
    }

    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(what: &str, path: &Path, source: io::Error) -> Error {
        Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
}

/// Adds `what path` context to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(what, path, e))
    }
}
