//! `last_run.json`: what the most recent `now`/`run` did, written atomically after every run so
//! monitoring (and `backup status`) can read it at any moment.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fsutil;
use crate::tag::Tag;

/// File name inside the local snapshot folder.
pub const LAST_RUN_FILE: &str = "last_run.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// `now` or `run`.
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The snapshot was taken and every pending push succeeded.
    pub ok: bool,
    /// The snapshot itself was taken and stored locally.
    pub snapshot_ok: bool,
    /// `None` when no remote is configured.
    pub push_ok: Option<bool>,
    pub error: Option<String>,
    pub tag: Option<Tag>,
    /// Bytes of databases and files copied.
    pub source_bytes: u64,
    pub archive_bytes: u64,
    pub durations_ms: Durations,
    /// Snapshots pushed by this run, the new one and older ones that were waiting.
    pub pushed: Vec<Tag>,
    /// Local snapshots the remote still lacks after this run; `None` when the run failed before
    /// it could tell.
    pub pending: Option<Vec<Tag>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    pub copy: u64,
    pub pack: u64,
    pub push: u64,
    pub total: u64,
}

impl LastRun {
    /// Writes the record into `dir` atomically.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("record serializes");
        fsutil::write_atomic(&dir.join(LAST_RUN_FILE), &json)
    }

    /// Reads the record from `dir`, if there is one.
    pub fn read(dir: &Path) -> Option<LastRun> {
        let bytes = std::fs::read(dir.join(LAST_RUN_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
