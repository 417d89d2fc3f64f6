//! The run lock: one `backup now`/`run` at a time per local snapshot folder.
//!
//! An OS file lock (`flock`), so a killed run's lock goes with its process: nothing stale to clean.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::layout::LOCK_FILE;

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
            Ok(()) => Ok(RunLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::Locked(path)),
            Err(TryLockError::Error(e)) => Err(Error::io("cannot lock", &path, e)),
        }
    }
}
