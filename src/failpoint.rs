//! Crash points for tests: a debug build whose `BACKUP_FAILPOINT` names a point dies there at
//! once, as a `kill -9` would (no destructors, no clean-up). Release builds compile this away.

/// Environment variable naming the point to die at.
pub const FAILPOINT_ENV: &str = "BACKUP_FAILPOINT";

/// Aborts the process when `BACKUP_FAILPOINT` equals `name` (debug builds only).
#[inline]
pub fn hit(name: &str) {
    if cfg!(debug_assertions)
        && std::env::var_os(FAILPOINT_ENV).is_some_and(|wanted| wanted == name)
    {
        std::process::abort();
    }
}
