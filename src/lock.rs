//! The run lock: one `backup now`/`run` at a time per local snapshot folder.
//!
//! An OS file lock (`flock`), so a killed run's lock goes with its process: nothing stale to clean.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, IoContext, Result};
use crate::layout::LOCK_FILE;

/// How many run locks this process holds now.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Taken by whoever releases a run lock, and by [`while_held`]: a lock is not released while
/// work that needs it held is under way on another thread.
static RELEASE: Mutex<()> = Mutex::new(());

/// Whether this process holds a run lock now: then the temporaries in its snapshot folder are
/// its own, and an interrupted run may remove them (another process's are never touched).
pub fn held_by_this_process() -> bool {
    HELD.load(Ordering::SeqCst) > 0
}

/// Runs `work` if this process holds a run lock, and keeps it held until `work` is done, even
/// when another thread drops it meanwhile (a signal handler removing this run's temporaries
/// must not remove those of a run that took the lock a moment later). `None` when not held.
pub fn while_held<T>(work: impl FnOnce() -> T) -> Option<T> {
    let _release = RELEASE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    held_by_this_process().then(work)
}

/// Held while a run works; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock in `dir` without waiting.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at("cannot open lock file", &path)?;
        match file.try_lock() {
            Ok(()) => {
                HELD.fetch_add(1, Ordering::SeqCst);
                Ok(RunLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => Err(Error::Locked(path)),
            Err(TryLockError::Error(e)) => Err(Error::io("cannot lock", &path, e)),
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // The file (and with it the OS lock) closes after this body, so once `while_held` has
        // seen the lock held, no other process can take it before its work ends.
        let _release = RELEASE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        HELD.fetch_sub(1, Ordering::SeqCst);
    }
}
