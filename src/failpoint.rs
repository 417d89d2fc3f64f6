//! Test hooks, in debug builds only (release builds compile them away): crash points, where a
//! build whose `BACKUP_FAILPOINT` names a point dies at once, as a `kill -9` would (no
//! destructors, no clean-up); a settable clock for snapshot times; and a settable host name, so
//! one machine can play several sharing a remote.

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

/// Environment variable that sets the clock of a debug build (RFC 3339), so tests can drive
/// hourly runs across months without waiting.
pub const CLOCK_ENV: &str = "BACKUP_TEST_CLOCK";

/// The time a snapshot is taken at: now, or `BACKUP_TEST_CLOCK` in a debug build.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    if cfg!(debug_assertions)
        && let Ok(text) = std::env::var(CLOCK_ENV)
    {
        // A test that sets the clock wrongly must not silently run on the real one.
        let set = chrono::DateTime::parse_from_rfc3339(&text)
            .unwrap_or_else(|e| panic!("{CLOCK_ENV}={text} is not RFC 3339: {e}"));
        return set.with_timezone(&chrono::Utc);
    }
    chrono::Utc::now()
}

/// Environment variable that sets the host name of a debug build, so tests can play several
/// machines sharing one remote.
pub const HOST_ENV: &str = "BACKUP_TEST_HOST";

/// The host name a debug build was told to use instead of the OS's, if any.
pub fn hostname() -> Option<String> {
    if cfg!(debug_assertions) {
        std::env::var(HOST_ENV).ok().filter(|h| !h.is_empty())
    } else {
        None
    }
}
