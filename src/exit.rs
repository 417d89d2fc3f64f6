//! The process exit codes, and which one each error kind and `backup status` verdict ends with.
//! The binary alone decides them; README "Exit codes" documents every one.

use backup_agent::error::Error;
use backup_agent::health::State;

/// Everything worked.
pub const OK: u8 = 0;
/// The command failed; nothing was changed except what the message says.
pub const FAILED: u8 = 1;
/// Bad command line or config file.
pub const USAGE: u8 = 2;
/// A restore would set aside live data the snapshot lacks, or a rollback would run, and nobody
/// confirmed it (no terminal to ask and no `--yes`, or the answer was no).
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

/// The code a command that failed with `e` ends with. Every kind is named, so a new kind needs
/// a decision here.
pub fn of_error(e: &Error) -> u8 {
    match e {
        Error::Config(_) => USAGE,
        Error::Locked(_) => LOCKED,
        Error::Remote(_) => REMOTE,
        Error::Database { .. }
        | Error::NoSpace { .. }
        | Error::Io { .. }
        | Error::Archive { .. }
        | Error::Damaged(_)
        | Error::Check { .. }
        | Error::Refused(_)
        | Error::Swap(_)
        | Error::NotFound(_)
        | Error::Migration(_)
        | Error::Include(_)
        | Error::Schedule(_)
        | Error::Keyring(_)
        | Error::Demo(_)
        | Error::System(_) => FAILED,
    }
}

/// The code `backup status` ends with for its verdict.
pub fn of_state(state: State) -> u8 {
    match state {
        State::Fresh => OK,
        State::Stale => STALE,
        State::Failed => LAST_RUN_FAILED,
    }
}
