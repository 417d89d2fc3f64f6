//! The one clock: every time the tool reads for a snapshot, a listing, a status verdict or a
//! record comes from [`now`], so a debug build's tests can set it (`BACKUP_TEST_CLOCK`) and drive
//! hours or months of runs without waiting. Release builds always read the system clock.

use chrono::{DateTime, Utc};

/// Environment variable that sets the clock of a debug build (RFC 3339).
pub const CLOCK_ENV: &str = "BACKUP_TEST_CLOCK";

/// Now: the system clock, or `BACKUP_TEST_CLOCK` in a debug build.
///
/// # Panics
/// In a debug build, when `BACKUP_TEST_CLOCK` is set but is not RFC 3339: a test that sets the
/// clock wrongly must not silently run on the real one.
pub fn now() -> DateTime<Utc> {
    if cfg!(debug_assertions)
        && let Ok(text) = std::env::var(CLOCK_ENV)
    {
        let set = DateTime::parse_from_rfc3339(&text)
            .unwrap_or_else(|e| panic!("{CLOCK_ENV}={text} is not RFC 3339: {e}"));
        return set.with_timezone(&Utc);
    }
    Utc::now()
}
