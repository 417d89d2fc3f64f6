//! The snapshot-and-push run behind `backup now` and `backup run`: lock, snapshot, push everything the
//! remote lacks, record the outcome in `last_run.json`.

use std::collections::HashMap;
use std::time::Instant;

use crate::catalog::{self, LocalSnapshot};
use crate::config::Config;
use crate::error::{Error, IoContext, RemoteErrorKind, Result};
use crate::fsutil;
use crate::integrity::{CheckReport, Finding};
use crate::last_run::{Durations, LastRun};
use crate::layout;
use crate::lock::RunLock;
use crate::progress::Progress;
use crate::prune::PruneReport;
use crate::remote::{Remote, RemoteSnapshot, Upload};
use crate::snapshot::{self, Snapshot};
use crate::tag::{Kind, Tag};
use crate::units;

/// What a job did.
#[derive(Debug)]
pub struct RunReport {
    pub snapshot: Snapshot,
    /// Pushed by this job, oldest first.
    pub pushed: Vec<Tag>,
    /// Local snapshots the remote still lacks.
    pub pending: Vec<Tag>,
    /// Why pushing stopped, if it did. The new snapshot is safe locally either way.
    pub push_error: Option<Error>,
    /// Local archives that no longer match the sha256 recorded when they were made and of which
    /// no good copy exists elsewhere: never pushed, with what to do about each.
    pub damaged: Vec<String>,
    /// The bounded re-check of the local archives after the push, and repairs from the remote.
    pub local_check: CheckReport,
    /// The remote, described; `None` when none is configured.
    pub remote: Option<String>,
    /// Things that went wrong after the snapshot was safely stored.
    pub warnings: Vec<String>,
    /// Retention after the push (`backup run` only, and only when the push went through).
    pub pruned: Option<PruneReport>,
    /// Why retention could not run or stopped; nothing it could not prove safe was deleted.
    pub prune_error: Option<Error>,
}

/// Takes a snapshot of `kind`, with the user's `note` in its manifest (a differential when
/// `differential` and a base allows, see [`snapshot::take`]), and pushes every local snapshot the
/// remote does not have yet.
///
/// # Errors
/// [`Error::Config`] for a note that is not one short line; [`Error::Locked`] when another run
/// holds the lock; any snapshot error (then no archive is
/// left behind, and `last_run.json` records the failure). A failed push is not an error here:
/// it is reported in [`RunReport::push_error`], because the snapshot itself is safe.
pub fn snapshot_and_push(
    config: &Config,
    kind: Kind,
    note: Option<&str>,
    differential: bool,
    progress: &dyn Progress,
) -> Result<RunReport> {
    let note = note.map(crate::archive::manifest::clean_note).transpose()?;
    let local = &config.local_dir;
    fsutil::create_private_dir_all(local).at("cannot create snapshot folder", local)?;
    let _lock = RunLock::acquire(local)?;
    // An interrupted restore is undone (or finished) before anything else: a snapshot of a
    // half-swapped state, or removing the staging folder it still needs, would be worse.
    crate::restore::swap::recover(local)?;
    layout::remove_stale_temps(local)?;
    crate::restore::remove_stale_staging(&config.base_dir)?;
    let command = match kind {
        Kind::Manual => "now",
        Kind::Scheduled => "run",
    };
    let started_at = crate::clock::now();
    let started = Instant::now();

    let snapshot = match snapshot::take(config, kind, note.as_deref(), differential, progress) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            let record = LastRun {
                command: command.into(),
                started_at,
                finished_at: crate::clock::now(),
                error: Some(e.to_string()),
                durations_ms: Durations {
                    total: started.elapsed().as_millis() as u64,
                    ..Durations::default()
                },
                ..LastRun::default()
            };
            // The snapshot error is what the user must see; a failure to record it comes second.
            let _ = record.write(local);
            return Err(e);
        }
    };

    for (name, found) in snapshot.manifest.findings() {
        tracing::info!("database `{name}`: the copy's checks found {found}");
    }
    tracing::info!(
        "snapshot {} taken: {}, {}, {} into {} (copy {:.1}s, compress {:.1}s)",
        snapshot.tag,
        units::count(snapshot.manifest.databases.len(), "database", "databases"),
        units::count(snapshot.manifest.files.len(), "file", "files"),
        units::human_bytes(snapshot.manifest.payload_bytes()),
        units::human_bytes(snapshot.size),
        snapshot.copy_time.as_secs_f64(),
        snapshot.pack_time.as_secs_f64()
    );
    let push_started = Instant::now();
    let remote = crate::catalog::open_remote(config);
    if let Some(remote) = &remote {
        remote.start_run_deadline();
        crate::progress::notice(&format!(
            "snapshot {} is safe locally; pushing it to {}",
            snapshot.tag,
            remote.describe()
        ));
    }
    let push = match &remote {
        Some(remote) => push_pending(config, remote, &snapshot, progress),
        None => PushOutcome::default(),
    };
    let push_ms = push_started.elapsed().as_millis() as u64;
    if let Some(remote) = &remote {
        match &push.error {
            None => tracing::info!(
                "pushed {} to {} in {:.1}s; {} waiting",
                units::count(push.pushed.len(), "snapshot", "snapshots"),
                remote.describe(),
                push_ms as f64 / 1000.0,
                push.pending.len()
            ),
            Some(e) => tracing::info!(
                "push to {} stopped after {}: {e}",
                remote.describe(),
                units::count(push.pushed.len(), "snapshot", "snapshots")
            ),
        }
    }

    // Retention after a good push: what the remote lacks is known, and kept.
    let (pruned, prune_error) = if kind == Kind::Scheduled && push.error.is_none() {
        let scope = crate::retention::Scope {
            protect: Some(snapshot.tag.clone()),
            ..crate::retention::Scope::this_host()
        };
        match crate::prune::prune(config, remote.as_ref(), false, &scope) {
            Ok(mut report) => {
                let error = report.error.take();
                (Some(report), error)
            }
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    if let Some(report) = &pruned {
        let deleted = report.snapshots.iter().filter(|s| s.deleted).count();
        tracing::info!(
            "retention: kept {}, deleted {deleted}",
            units::count(
                report.snapshots.iter().filter(|s| s.keep).count(),
                "snapshot",
                "snapshots"
            )
        );
        // `backup prune` prints these; a run logs them (an undeletable tag, say).
        for note in report.snapshots.iter().filter_map(|s| s.note.as_deref()) {
            tracing::info!("retention: {note}");
        }
    }

    let local_check =
        crate::recheck::after_push(config, remote.as_ref(), &snapshot, &push.hashed, progress);
    let damaged = local_check.failures(local);

    let record = LastRun {
        command: command.into(),
        started_at,
        finished_at: crate::clock::now(),
        ok: push.error.is_none() && damaged.is_empty() && prune_error.is_none(),
        snapshot_ok: true,
        push_ok: remote.as_ref().map(|_| push.error.is_none()),
        error: push
            .error
            .as_ref()
            .map(|e| e.to_string())
            .or_else(|| damaged.first().cloned())
            .or_else(|| prune_error.as_ref().map(|e| format!("retention: {e}"))),
        tag: Some(snapshot.tag.clone()),
        source_bytes: snapshot.manifest.payload_bytes(),
        archive_bytes: snapshot.size,
        durations_ms: Durations {
            copy: snapshot.copy_time.as_millis() as u64,
            pack: snapshot.pack_time.as_millis() as u64,
            push: push_ms,
            total: started.elapsed().as_millis() as u64,
        },
        pushed: push.pushed.clone(),
        pending: Some(push.pending.clone()),
        findings: snapshot
            .manifest
            .findings()
            .map(|(name, found)| (name.to_string(), found.clone()))
            .collect(),
        local_check: Some(local_check.clone()),
        refused: push.refused.clone(),
        ..LastRun::default()
    };
    let mut warnings = local_check.warnings(local);
    warnings.extend(push.refused.iter().cloned());
    if let Err(e) = record.write(local) {
        warnings.push(format!("the snapshot is stored, but {e}"));
    }
    Ok(RunReport {
        snapshot,
        pushed: push.pushed,
        pending: push.pending,
        push_error: push.error,
        damaged,
        local_check,
        remote: remote.map(|r| r.describe()),
        warnings,
        pruned,
        prune_error,
    })
}

#[derive(Default)]
struct PushOutcome {
    pushed: Vec<Tag>,
    pending: Vec<Tag>,
    error: Option<Error>,
    /// Archives hashed against their records on the way (not the new one).
    hashed: Vec<(Tag, Finding)>,
    /// Snapshots the remote can never take, each with why: passed over, not an error of the
    /// run (retention still runs; they stay local, unpushed, so it keeps them).
    refused: Vec<String>,
}

/// Pushes, oldest first, every local snapshot the remote lacks (or holds with another size).
///
/// A local archive that no longer matches the checksum recorded when it was made is skipped, so
/// a damaged file never replaces a good remote copy ([`crate::recheck::after_push`] reports
/// it). The first remote failure stops the pushes: a dead remote costs one error, not one per
/// snapshot; a snapshot the remote can never take (a [`RemoteErrorKind::Refused`] error) is passed over.
fn push_pending(
    config: &Config,
    remote: &Remote,
    fresh: &Snapshot,
    progress: &dyn Progress,
) -> PushOutcome {
    let mut outcome = PushOutcome::default();
    let local = match catalog::local_snapshots(&config.local_dir) {
        Ok(local) => local,
        Err(e) => {
            outcome.pending.push(fresh.tag.clone());
            outcome.error = Some(e);
            return outcome;
        }
    };
    // A folder remote that is not this machine's (an empty mount point) is refused before
    // anything is written, and a new one is marked.
    // The base each local differential names: asked of the remote too, since a differential
    // goes up only beside the very base it was taken against.
    let bases: HashMap<Tag, crate::archive::BaseRef> = local
        .iter()
        .filter_map(|s| {
            let base = if s.tag == fresh.tag {
                fresh.manifest.base.clone()
            } else {
                crate::archive::read::read_base(&s.path).ok()?
            };
            Some((s.tag.clone(), base?))
        })
        .collect();
    let mut local_tags: Vec<Tag> = local.iter().map(|s| s.tag.clone()).collect();
    for base in bases.values() {
        if !local_tags.contains(&base.tag) {
            local_tags.push(base.tag.clone());
        }
    }
    let listed = remote
        .ready_for_push()
        .and_then(|()| remote.holding(&local_tags));
    let on_remote: HashMap<Tag, RemoteSnapshot> = match listed {
        Ok(found) => found.into_iter().map(|s| (s.tag.clone(), s)).collect(),
        Err(e) => {
            outcome.pending = local.into_iter().map(|s| s.tag).collect();
            outcome.error = Some(e);
            return outcome;
        }
    };
    // Missing, there with another size (truncated), or there without its record (a push killed
    // before the record was written): push again; `put` converges on what is already right.
    let waiting: Vec<LocalSnapshot> = local
        .into_iter()
        .filter(|s| {
            on_remote
                .get(&s.tag)
                .is_none_or(|r| r.size != s.size || r.sha256.is_none())
        })
        .collect();
    progress.phase("pushing", waiting.iter().map(|s| s.size).sum());
    // Copies an earlier check found damaged (and unchanged since) are not hashed again every
    // push: they wait, counted, until the repair or the user deals with them.
    let known_damaged: std::collections::HashSet<Tag> =
        crate::integrity::known_damaged(&config.local_dir)
            .into_iter()
            .map(|d| d.tag)
            .collect();
    let mut waiting = waiting.into_iter();
    while let Some(snapshot) = waiting.next() {
        if known_damaged.contains(&snapshot.tag) {
            outcome.pending.push(snapshot.tag);
            continue;
        }
        let checked = if snapshot.tag == fresh.tag {
            Ok(Checked::Verified(fresh.sha256.clone()))
        } else {
            let checked = check_local(&snapshot);
            if let Ok(found) = &checked {
                outcome.hashed.push((snapshot.tag.clone(), found.finding()));
            }
            checked
        };
        let (sha256, verified) = match checked {
            Ok(Checked::Verified(sha)) => (sha, true),
            Ok(Checked::Unrecorded(sha)) => (sha, false),
            Ok(Checked::Damaged) => {
                outcome.pending.push(snapshot.tag);
                continue;
            }
            Err(e) => {
                outcome.pending.push(snapshot.tag);
                outcome.error.get_or_insert(e);
                continue;
            }
        };
        // This run's manifest is in memory; an older archive's is read once, here. One that
        // cannot be read (a newer version's, or damaged where the checksum does not look) is
        // still pushed, as it is, with a warning: it would not restore, and a remote that keeps a
        // record of each snapshot (GitHub's release body) records this one without its summary.
        let read;
        let manifest = if snapshot.tag == fresh.tag {
            Some(&fresh.manifest)
        } else {
            read = crate::archive::read::read_manifest(&snapshot.path);
            match &read {
                Ok(manifest) => Some(manifest),
                Err(e) => {
                    // The reader's message speaks of a restore; the reason goes to the log.
                    tracing::debug!("manifest of {}: {e}", snapshot.path.display());
                    tracing::warn!(
                        "snapshot {}: its manifest cannot be read (a damaged archive, or a newer version's); it is pushed as it is, and `backup verify {}` says why",
                        snapshot.tag,
                        snapshot.tag
                    );
                    None
                }
            }
        };
        // A differential goes up only after its very base: the remote never holds one it
        // cannot restore.
        if let Some(base) = bases.get(&snapshot.tag)
            && !outcome.pushed.contains(&base.tag)
            && on_remote
                .get(&base.tag)
                .is_none_or(|r| r.sha256.as_deref() != Some(base.sha256.as_str()))
        {
            outcome.refused.push(format!(
                "snapshot {} waits for its base {} to reach the remote (a differential goes up only after it); if the base cannot go up (`backup list`), the next run takes a full",
                snapshot.tag, base.tag
            ));
            outcome.pending.push(snapshot.tag);
            continue;
        }
        let upload = Upload {
            tag: &snapshot.tag,
            path: &snapshot.path,
            size: snapshot.size,
            sha256: &sha256,
            manifest,
            verified,
        };
        tracing::debug!("pushing {} ({} bytes)", snapshot.tag, snapshot.size);
        crate::failpoint::hit("push-started");
        match remote.put(&upload) {
            Ok(()) => {
                progress.advance(snapshot.size);
                outcome.pushed.push(snapshot.tag);
            }
            // That one snapshot can never go there: the rest still can.
            Err(Error::Remote(why)) if why.kind == RemoteErrorKind::Refused => {
                outcome
                    .refused
                    .push(format!("snapshot {}: {why}", snapshot.tag));
                outcome.pending.push(snapshot.tag);
            }
            Err(e) => {
                outcome.pending.push(snapshot.tag);
                outcome.pending.extend(waiting.map(|s| s.tag));
                outcome.error.get_or_insert(e);
                break;
            }
        }
    }
    progress.done();
    outcome
}

/// What a local archive's bytes say against the record written when it was made.
enum Checked {
    Verified(String),
    /// No record (the user removed it, or copied the archive in by hand).
    Unrecorded(String),
    Damaged,
}

impl Checked {
    fn finding(&self) -> Finding {
        match self {
            Checked::Verified(_) => Finding::Intact,
            Checked::Unrecorded(_) => Finding::Unrecorded,
            Checked::Damaged => Finding::Damaged,
        }
    }
}

fn check_local(snapshot: &LocalSnapshot) -> Result<Checked> {
    let (_, sha256) = fsutil::hash_file(&snapshot.path)?;
    Ok(match fsutil::read_checksum(&snapshot.path) {
        Some(recorded) if recorded == sha256 => Checked::Verified(sha256),
        Some(_) => Checked::Damaged,
        None => Checked::Unrecorded(sha256),
    })
}
