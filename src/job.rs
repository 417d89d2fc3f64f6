//! The snapshot job behind `backup now` and `backup run`: lock, snapshot, push everything the
//! remote lacks, record the outcome in `last_run.json`.

use std::collections::HashMap;
use std::fs;
use std::time::Instant;

use chrono::Utc;

use crate::catalog;
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::last_run::{Durations, LastRun};
use crate::lock::RunLock;
use crate::progress::Progress;
use crate::remote::Remote;
use crate::snapshot::{self, Snapshot};
use crate::tag::{Kind, Tag};

/// What a job did.
#[derive(Debug)]
pub struct JobReport {
    pub snapshot: Snapshot,
    /// Pushed by this job, oldest first.
    pub pushed: Vec<Tag>,
    /// Local snapshots the remote still lacks.
    pub pending: Vec<Tag>,
    /// Why pushing stopped, if it did. The snapshot is safe locally either way.
    pub push_error: Option<Error>,
    /// The remote, described; `None` when none is configured.
    pub remote: Option<String>,
}

/// Takes a snapshot of `kind` and pushes every local snapshot the remote does not have yet.
///
/// # Errors
/// [`Error::Locked`] when another run holds the lock; any snapshot error (then no archive is
/// left behind, and `last_run.json` records the failure). A failed push is not an error here:
/// it is reported in [`JobReport::push_error`], because the snapshot itself is safe.
pub fn snapshot_and_push(
    config: &Config,
    kind: Kind,
    progress: &dyn Progress,
) -> Result<JobReport> {
    let local = &config.local_dir;
    fs::create_dir_all(local).at("cannot create snapshot folder", local)?;
    let _lock = RunLock::acquire(local)?;
    fsutil::remove_stale_temps(local)?;
    let command = match kind {
        Kind::Manual => "now",
        Kind::Scheduled => "run",
    };
    let started_at = Utc::now();
    let started = Instant::now();

    let snapshot = match snapshot::take(config, kind, progress) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            let record = LastRun {
                command: command.into(),
                started_at,
                finished_at: Utc::now(),
                error: Some(e.to_string()),
                durations_ms: Durations {
                    total: started.elapsed().as_millis() as u64,
                    ..Durations::default()
                },
                pending: catalog::local_snapshots(local)
                    .map(|s| s.into_iter().map(|s| s.tag).collect())
                    .unwrap_or_default(),
                ..LastRun::default()
            };
            // The snapshot error is what the user must see; a failure to record it comes second.
            let _ = record.write(local);
            return Err(e);
        }
    };

    let push_started = Instant::now();
    let remote = config.remote.as_ref().map(Remote::from_config);
    let (pushed, pending, push_error) = match &remote {
        Some(remote) => push_pending(config, remote, &snapshot, progress),
        None => (Vec::new(), Vec::new(), None),
    };
    let push_ms = push_started.elapsed().as_millis() as u64;

    let record = LastRun {
        command: command.into(),
        started_at,
        finished_at: Utc::now(),
        ok: push_error.is_none(),
        snapshot_ok: true,
        push_ok: remote.as_ref().map(|_| push_error.is_none()),
        error: push_error.as_ref().map(|e| e.to_string()),
        tag: Some(snapshot.tag.clone()),
        source_bytes: snapshot.manifest.payload_bytes(),
        archive_bytes: snapshot.size,
        durations_ms: Durations {
            copy: snapshot.copy_time.as_millis() as u64,
            pack: snapshot.pack_time.as_millis() as u64,
            push: push_ms,
            total: started.elapsed().as_millis() as u64,
        },
        pushed: pushed.clone(),
        pending: pending.clone(),
    };
    record.write(local)?;
    Ok(JobReport {
        snapshot,
        pushed,
        pending,
        push_error,
        remote: remote.map(|r| r.describe()),
    })
}

/// Pushes, oldest first, every local snapshot the remote lacks; stops at the first failure so a
/// dead remote costs one error, not one per snapshot.
fn push_pending(
    config: &Config,
    remote: &Remote,
    fresh: &Snapshot,
    progress: &dyn Progress,
) -> (Vec<Tag>, Vec<Tag>, Option<Error>) {
    let local = match catalog::local_snapshots(&config.local_dir) {
        Ok(local) => local,
        Err(e) => return (Vec::new(), vec![fresh.tag.clone()], Some(e)),
    };
    let on_remote: HashMap<Tag, u64> = match remote.list() {
        Ok(found) => found.into_iter().map(|s| (s.tag, s.size)).collect(),
        Err(e) => {
            return (
                Vec::new(),
                local.into_iter().map(|s| s.tag).collect(),
                Some(e),
            );
        }
    };
    // Missing, or there with another size (a truncated copy): push (again).
    let mut waiting: Vec<_> = local
        .into_iter()
        .filter(|s| on_remote.get(&s.tag) != Some(&s.size))
        .collect();
    let mut pushed = Vec::new();
    let total = waiting.iter().map(|s| s.size).sum();
    progress.phase("pushing", total);
    while !waiting.is_empty() {
        let snapshot = waiting.remove(0);
        let sha256 = if snapshot.tag == fresh.tag {
            Ok(fresh.sha256.clone())
        } else {
            fsutil::hash_file(&snapshot.path).map(|(_, sha)| sha)
        };
        let result =
            sha256.and_then(|sha| remote.put(&snapshot.tag, &snapshot.path, snapshot.size, &sha));
        match result {
            Ok(()) => {
                progress.advance(snapshot.size);
                pushed.push(snapshot.tag);
            }
            Err(e) => {
                let mut pending = vec![snapshot.tag];
                pending.extend(waiting.into_iter().map(|s| s.tag));
                progress.done();
                return (pushed, pending, Some(e));
            }
        }
    }
    progress.done();
    (pushed, Vec::new(), None)
}
