//! `last_run.json`: what the most recent `now`/`run` did, written atomically after every run so
//! monitoring (and `backup status`) can read it at any moment.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checks::Findings;
use crate::error::Result;
use crate::fsutil;
use crate::layout::LAST_RUN_FILE;
use crate::tag::Tag;

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
    /// The newest run that succeeded (this one when `ok`), carried forward from the previous
    /// record so a failed run does not hide when things last worked.
    #[serde(default)]
    pub last_ok: Option<Milestone>,
    /// The newest `backup run` (the scheduled job), carried forward across `backup now`.
    #[serde(default)]
    pub last_scheduled: Option<Milestone>,
    /// What the integrity and foreign key checks found in this run's snapshot, by database
    /// (only those with findings): the snapshot is stored, and restores, with them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub findings: BTreeMap<String, Findings>,
    /// The bounded re-check of the local archives after the push: what it hashed, the damaged
    /// local copies known, the ones repaired from the remote.
    #[serde(default)]
    pub local_check: Option<crate::integrity::CheckReport>,
    /// Snapshots the remote can never take, with why and what to do: they stay local, and the
    /// run goes on past them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
}

/// One run, in short.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Milestone {
    pub finished_at: DateTime<Utc>,
    pub tag: Option<Tag>,
    pub ok: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    pub copy: u64,
    pub pack: u64,
    pub push: u64,
    pub total: u64,
}

impl LastRun {
    /// Writes the record into `dir` atomically, carrying `last_ok` and `last_scheduled`
    /// forward from the record it replaces.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(mut self, dir: &Path) -> Result<()> {
        let previous = LastRun::read(dir);
        let this = Milestone {
            finished_at: self.finished_at,
            tag: self.tag.clone(),
            ok: self.ok,
        };
        // The last good snapshot is the newest one stored and pushed, even when something after
        // the push failed (retention, a damaged older copy): the older one a run's prune may
        // have deleted must not stand in for it.
        let stored_and_pushed = self.snapshot_ok && self.push_ok != Some(false);
        self.last_ok = if stored_and_pushed {
            Some(Milestone {
                ok: true,
                ..this.clone()
            })
        } else {
            previous.as_ref().and_then(LastRun::last_good)
        };
        self.last_scheduled = if self.command == "run" {
            Some(this)
        } else {
            previous.and_then(|p| p.last_scheduled)
        };
        let json = serde_json::to_vec_pretty(&self).expect("record serializes");
        fsutil::write_atomic(&dir.join(LAST_RUN_FILE), &json)
    }

    /// The newest good run this record knows of; a record written before `last_ok` existed
    /// still says whether its own run was good.
    pub fn last_good(&self) -> Option<Milestone> {
        self.last_ok.clone().or_else(|| {
            self.ok.then(|| Milestone {
                finished_at: self.finished_at,
                tag: self.tag.clone(),
                ok: true,
            })
        })
    }

    /// Reads the record from `dir`, if there is one.
    pub fn read(dir: &Path) -> Option<LastRun> {
        let bytes = std::fs::read(dir.join(LAST_RUN_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
