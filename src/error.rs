//! The crate's one error type: one variant per kind of failure, so callers branch on the kind.
//!
//! Every variant reads as one line: what failed, on what, and what to do next. Context is added
//! where the error is raised, so the CLI prints `Display` once and never walks a chain. Which
//! exit code a kind ends the process with is the binary's decision (`src/exit.rs`), not this
//! module's.

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

    /// The remote refused or failed an operation; its [`RemoteErrorKind`] says what a caller
    /// may do about it.
    #[error("remote: {0}")]
    Remote(RemoteError),

    /// A file-system operation failed; `context` names the operation and the path.
    #[error("{context}: {source}{}", io_hint(.source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// A snapshot archive was refused while it was read: damaged, truncated, of an unknown
    /// `manifest_version`, or holding something a restore never writes.
    #[error("snapshot archive {} refused: {reason}; nothing was restored", .path.display())]
    Archive { path: PathBuf, reason: String },

    /// A file the tool wrote or relies on no longer holds what it should: a local archive that
    /// changed while it was pushed, a copy that reads back wrong, an unreadable record or
    /// journal, a set-aside folder changed by hand. The message names the file.
    #[error("{0}")]
    Damaged(String),

    /// A database in a snapshot failed a check before a restore or verify would use it
    /// (unreadable by SQLite, integrity, foreign keys, row counts unlike the manifest's, a schema
    /// newer than the migrations, a migration that failed).
    #[error("database `{name}` in the snapshot: {reason}")]
    Check { name: String, reason: String },

    /// Refused for safety, with nothing changed: live data would be lost or written through a
    /// link, processes hold the data open, it changed while being prepared, or a folder is not
    /// the tool's to write into.
    #[error("{0}")]
    Refused(String),

    /// The journaled swap of a restore or rollback failed; the message says whether the live
    /// data is as it was and what to do.
    #[error("{0}")]
    Swap(String),

    /// Nothing to act on: no such snapshot, no snapshot `latest` can mean, nothing to roll
    /// back.
    #[error("{0}")]
    NotFound(String),

    /// A migration ladder is malformed, a step failed, or a database is newer than the ladder.
    #[error("{0}")]
    Migration(String),

    /// An `[[include]]` entry cannot be taken into a snapshot (missing, neither a file nor a
    /// folder, a name that is not UTF-8).
    #[error("{0}")]
    Include(String),

    /// The job that runs `backup run` could not be installed, found or removed (systemd, cron,
    /// launchd, or what they need).
    #[error("{0}")]
    Schedule(String),

    /// The OS keyring could not be reached or used.
    #[error("{0}")]
    Keyring(String),

    /// `backup demo` could not make or update its sample app.
    #[error("{0}")]
    Demo(String),

    /// The system could not give the tool what it needs to run, unrelated to any one file: a
    /// worker thread, the network runtime, HTTP setup, standard input.
    #[error("{0}")]
    System(String),
}

/// A remote's failure: what kind it is, for callers to branch on, and the one line people read.
///
/// It lives here, below the remotes, because [`Error`] holds it; `crate::remote` re-exports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub kind: RemoteErrorKind,
    /// What failed, on what, and what to do; shown after `remote: `.
    pub message: String,
}

/// What kind of failure a remote reported. Every kind ends the process with the same exit code;
/// the kind is for callers that decide what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteErrorKind {
    /// The remote itself (its folder, its repository) or the snapshot asked for is not there.
    /// A caller may create the remote (`backup init --create`) or look for another snapshot.
    NotFound,
    /// Retrying later may work: the network, a 5xx, a rate limit, the retry budget or the run's
    /// deadline ran out, a file that appeared while it was being written. A caller may keep
    /// what it has locally and try again on the next run.
    Transient,
    /// Credentials or permissions: the token was rejected or lacks a scope, the folder cannot be
    /// written. Nothing changes until the user acts.
    Denied,
    /// The remote will never take this one snapshot (GitHub: an immutable release of its tag
    /// without its archive; a different copy already stored there). Other snapshots still can:
    /// a run pushes past it.
    Refused,
    /// Using the remote would risk the user's data: a public or internal repository, a folder
    /// that is not the one this machine knows (another marker, none where one was, an unmounted
    /// drive). Nothing was written; the user decides.
    Unsafe,
    /// What the remote holds or sent does not match its record: a size or digest mismatch, an
    /// incomplete archive. The copy must not be used as it is.
    Corrupt,
    /// Anything else the remote answered or failed with (an unexpected status, an unreadable
    /// answer, a local file the transfer could not use).
    Failed,
}

impl RemoteError {
    pub fn new(kind: RemoteErrorKind, message: impl Into<String>) -> RemoteError {
        RemoteError {
            kind,
            message: message.into(),
        }
    }

    /// See [`RemoteErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> RemoteError {
        RemoteError::new(RemoteErrorKind::NotFound, message)
    }

    /// See [`RemoteErrorKind::Transient`].
    pub fn transient(message: impl Into<String>) -> RemoteError {
        RemoteError::new(RemoteErrorKind::Transient, message)
    }

    /// See [`RemoteErrorKind::Denied`].
    pub fn denied(message: impl Into<String>) -> RemoteError {
        RemoteError::new(RemoteErrorKind::Denied, message)
    }

    /// See [`RemoteErrorKind::Refused`].
    pub fn refused(message: impl Into<String>) -> RemoteError {
        RemoteError::new(RemoteErrorKind::Refused, message)
    }

    /// See [`RemoteErrorKind::Unsafe`].
    pub fn unsafe_to_use(message: impl Into<String>) -> RemoteError {
        RemoteError::new(RemoteErrorKind::Unsafe, message)
    }

    /// See [`RemoteErrorKind::Corrupt`].
    pub fn corrupt(message: impl Into<String>) -> RemoteError {
        RemoteError::new(RemoteErrorKind::Corrupt, message)
    }

    /// See [`RemoteErrorKind::Failed`].
    pub fn failed(message: impl Into<String>) -> RemoteError {
        RemoteError::new(RemoteErrorKind::Failed, message)
    }
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Error {
        Error::Remote(e)
    }
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

impl Error {
    /// The kind of a remote's failure; `None` for every other error.
    pub fn remote_kind(&self) -> Option<RemoteErrorKind> {
        match self {
            Error::Remote(e) => Some(e.kind),
            _ => None,
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
