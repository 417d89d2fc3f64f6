//! Test hooks, in debug builds only (release builds compile them away): crash points, where a
//! build whose `BACKUP_FAILPOINT` names a point dies at once, as a `kill -9` would (no
//! destructors, no clean-up), or pauses there until the test kills it; and a settable host name,
//! so one machine can play several sharing a remote. (The settable clock is [`crate::clock`].)

/// Environment variable naming the point to die at: `<point>`, `<point>:pause`, or
/// `<point>:sleep-<ms>`.
pub const FAILPOINT_ENV: &str = "BACKUP_FAILPOINT";

/// Aborts the process when `BACKUP_FAILPOINT` equals `name` (debug builds only).
///
/// With `BACKUP_FAILPOINT=<name>:pause` the process prints `FAILPOINT <name> paused` to stderr
/// and waits there, holding whatever it holds (the run lock), until a line or the end comes on
/// its stdin; then it goes on. A test can act while a run is known to be at that point, then
/// let it go on or kill it there. With `BACKUP_FAILPOINT=<name>:sleep-<ms>` it waits that long
/// there instead, for a process whose stdin is not the test's to use (`backup mcp`).
#[inline]
pub fn hit(name: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Some(wanted) = std::env::var_os(FAILPOINT_ENV) else {
        return;
    };
    if wanted == name {
        std::process::abort();
    }
    if wanted.to_str().and_then(|w| w.strip_suffix(":pause")) == Some(name) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "FAILPOINT {name} paused");
        let _ = std::io::stdin().read_line(&mut String::new());
    }
    let sleep = wanted
        .to_str()
        .and_then(|w| w.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix(":sleep-"))
        .and_then(|ms| ms.parse().ok());
    if let Some(ms) = sleep {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
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
