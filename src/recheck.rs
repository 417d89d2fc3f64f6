//! After each run's push: damaged local copies are repaired from the remote, then a bounded
//! share of the local archives is hashed again (see [`crate::integrity`] for the record this
//! keeps). This is the part that needs the remote and the config, kept apart from the record so
//! that `catalog`, `last_run` and `restore` read the record without reaching the remote through
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::catalog::{self, LocalSnapshot};
use crate::config::Config;
use crate::error::{Error, IoContext, RemoteError, RemoteErrorKind, Result};
use crate::fsutil::{self, TempPath};
use crate::integrity::{CheckReport, CheckedArchive, DamagedCopy, Entry, Finding, State};
use crate::layout::TEMP_PREFIX;
use crate::progress::Progress;
use crate::remote::{Remote, RemoteSnapshot};
use crate::snapshot::Snapshot;
use crate::tag::Tag;
use crate::units;

/// How a remote copy is told apart from another under the same tag.
fn remote_key(found: &RemoteSnapshot) -> String {
    format!("{}:{}", found.sha256.as_deref().unwrap_or("-"), found.size)
}

/// The remote's listing, asked for at most once and only when a damaged copy needs it.
struct LazyListing<'a> {
    remote: Option<&'a Remote>,
    listed: Option<std::result::Result<BTreeMap<Tag, RemoteSnapshot>, RemoteError>>,
}

impl LazyListing<'_> {
    /// The remote's snapshots, listed once; a failed listing is kept as the error every repair
    /// reports, of the failure's kind.
    fn get(&mut self) -> std::result::Result<&BTreeMap<Tag, RemoteSnapshot>, RemoteError> {
        let Some(remote) = self.remote else {
            static NONE: BTreeMap<Tag, RemoteSnapshot> = BTreeMap::new();
            return Ok(&NONE);
        };
        self.listed
            .get_or_insert_with(|| {
                remote
                    .list()
                    .map(|found| found.into_iter().map(|s| (s.tag.clone(), s)).collect())
                    // A remote's own error is kept as it is: wrapping its whole text again would
                    // print "remote: remote: …".
                    .map_err(|e| match e {
                        Error::Remote(remote) => remote,
                        other => RemoteError::new(RemoteErrorKind::Failed, other.to_string()),
                    })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Whether the remote holds a good copy of the local archive `path`: one whose record is the
    /// local record, and not the copy `bad` whose download already failed that record.
    fn holds_good_copy(&mut self, tag: &Tag, path: &Path, bad: Option<&str>) -> Option<bool> {
        let recorded = fsutil::read_checksum(path);
        self.get().ok().map(|found| {
            let copy = found.get(tag);
            copy.is_some_and(|c| c.matches_record(recorded.as_deref()))
                && copy.map(remote_key).as_deref() != bad
        })
    }
}

/// After a run's push: repairs the damaged local copies found by earlier runs from the remote,
/// then re-hashes the least recently checked archives within the budget (the size of `fresh`, or
/// for a differential, of its base: what a full would have cost), and records everything in
/// `checked.json`. The caller holds the run lock.
///
/// `hashed_by_push` are the archives the push already hashed against their records this run.
pub fn after_push(
    config: &Config,
    remote: Option<&Remote>,
    fresh: &Snapshot,
    hashed_by_push: &[(Tag, Finding)],
    progress: &dyn Progress,
) -> CheckReport {
    let local_dir = &config.local_dir;
    let mut report = CheckReport {
        budget_bytes: fresh.size,
        ..CheckReport::default()
    };
    let local = match catalog::local_snapshots(local_dir) {
        Ok(local) => local,
        Err(e) => {
            report
                .problems
                .push(format!("the local archives were not checked: {e}"));
            return report;
        }
    };
    // A differential is small: the check still moves at the pace of the fulls.
    if let Some(base) = &fresh.manifest.base
        && let Some(full) = local.iter().find(|s| s.tag == base.tag)
    {
        report.budget_bytes = report.budget_bytes.max(full.size);
    }
    let mut state = State::read(local_dir);
    let mut listing = LazyListing {
        remote,
        listed: None,
    };
    let now = crate::clock::now();

    // Damaged copies found by earlier runs: the remote's good copy takes their place.
    for damaged in state.damaged(local_dir) {
        let Some(snapshot) = local.iter().find(|s| s.tag == damaged.tag) else {
            continue;
        };
        let bad = state
            .archives
            .get(&snapshot.tag)
            .and_then(|e| e.bad_remote.clone());
        match repair(snapshot, &mut listing, remote, bad.as_deref(), progress) {
            Ok(Repair::Done) => {
                tracing::info!("repaired local copy of {} from the remote", snapshot.tag);
                state.archives.insert(
                    snapshot.tag.clone(),
                    Entry::new(&snapshot.path, Finding::Intact, now),
                );
                report.repaired.push(snapshot.tag.clone());
            }
            Ok(Repair::NoGoodCopy) => {}
            Ok(Repair::RemoteBad { copy, why }) => {
                if let Some(entry) = state.archives.get_mut(&snapshot.tag) {
                    entry.bad_remote = Some(copy);
                }
                report.problems.push(format!(
                    "the local copy of {} was not repaired from the remote: {why}; the remote copy is not tried again until it changes",
                    snapshot.tag
                ));
            }
            Err(e) => report.problems.push(format!(
                "the local copy of {} was not repaired from the remote: {e}",
                snapshot.tag
            )),
        }
    }

    // Hashed already this run: the new archive as it was written, and what the push checked.
    state.archives.insert(
        fresh.tag.clone(),
        Entry::new(&fresh.archive, Finding::Intact, now),
    );
    for (tag, finding) in hashed_by_push {
        // A copy the push found damaged and the repair has since replaced is intact now.
        if report.repaired.contains(tag) {
            continue;
        }
        state.archives.insert(
            tag.clone(),
            Entry::new(&crate::layout::archive_in(local_dir, tag), *finding, now),
        );
    }

    // The bounded check: least recently checked first (never checked before all), older archives
    // first among equals; a damaged copy already known waits for its repair, not for a re-hash.
    let hashed_now: BTreeSet<&Tag> = hashed_by_push
        .iter()
        .map(|(t, _)| t)
        .chain([&fresh.tag])
        .chain(&report.repaired)
        .collect();
    let mut candidates: Vec<(&LocalSnapshot, Option<DateTime<Utc>>)> = local
        .iter()
        .filter(|s| !hashed_now.contains(&s.tag))
        .filter_map(|s| match state.archives.get(&s.tag) {
            Some(e) if e.describes(&s.path) && e.finding == Finding::Damaged => None,
            Some(e) if e.describes(&s.path) => Some((s, Some(e.checked_at))),
            _ => Some((s, None)),
        })
        .collect();
    candidates.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.tag.cmp(&b.0.tag)));
    let mut planned = Vec::new();
    let mut planned_bytes = 0u64;
    for (snapshot, _) in candidates {
        if !planned.is_empty() && planned_bytes + snapshot.size > report.budget_bytes {
            break;
        }
        planned_bytes += snapshot.size;
        planned.push(snapshot);
    }
    progress.phase("checking local archives", planned_bytes);
    for snapshot in planned {
        let finding = match fsutil::hash_file(&snapshot.path) {
            Ok((_, sha256)) => match fsutil::read_checksum(&snapshot.path) {
                Some(recorded) if recorded == sha256 => Finding::Intact,
                Some(_) => Finding::Damaged,
                None => Finding::Unrecorded,
            },
            Err(e) => {
                report
                    .problems
                    .push(format!("a local archive could not be checked: {e}"));
                continue;
            }
        };
        tracing::debug!(
            "checked {} ({} bytes): {finding:?}",
            snapshot.tag,
            snapshot.size
        );
        progress.advance(snapshot.size);
        report.checked_bytes += snapshot.size;
        report.checked.push(CheckedArchive {
            tag: snapshot.tag.clone(),
            bytes: snapshot.size,
            finding,
        });
        state.archives.insert(
            snapshot.tag.clone(),
            Entry::new(&snapshot.path, finding, now),
        );
    }
    progress.done();
    tracing::info!(
        "checked {} against their records: {} of a {} budget",
        units::count(report.checked.len(), "local archive", "local archives"),
        units::human_bytes(report.checked_bytes),
        units::human_bytes(report.budget_bytes)
    );

    // Every damaged copy now known, with whether the remote can stand in for it.
    for (tag, entry) in state.archives.iter_mut() {
        let path = crate::layout::archive_in(local_dir, tag);
        if entry.finding != Finding::Damaged || !entry.describes(&path) {
            continue;
        }
        entry.remote_good = if remote.is_some() {
            listing.holds_good_copy(tag, &path, entry.bad_remote.as_deref())
        } else {
            Some(false)
        };
        report.damaged.push(DamagedCopy {
            tag: tag.clone(),
            remote_good: entry.remote_good,
        });
    }
    if let Err(e) = state.write(local_dir) {
        report
            .problems
            .push(format!("what the check found was not recorded: {e}"));
    }
    report
}

/// What a repair from the remote came to.
enum Repair {
    Done,
    /// The remote holds no copy with the local record's sha256 (yet), or only the one whose
    /// download failed before.
    NoGoodCopy,
    /// The remote's copy claims the local record, but its bytes do not match it.
    RemoteBad {
        copy: String,
        why: String,
    },
}

/// Replaces a damaged local archive with the remote's copy, when the remote holds one whose
/// sha256 is the local record (and is not `bad`, the copy whose download already failed).
fn repair(
    snapshot: &LocalSnapshot,
    listing: &mut LazyListing<'_>,
    remote: Option<&Remote>,
    bad: Option<&str>,
    progress: &dyn Progress,
) -> Result<Repair> {
    let (Some(remote), Some(recorded)) = (remote, fsutil::read_checksum(&snapshot.path)) else {
        return Ok(Repair::NoGoodCopy);
    };
    let found = match listing.get() {
        Ok(found) => found.get(&snapshot.tag).cloned(),
        Err(e) => return Err(Error::Remote(e.clone())),
    };
    let Some(found) = found
        .filter(|f| f.matches_record(Some(&recorded)))
        .filter(|f| Some(remote_key(f).as_str()) != bad)
    else {
        return Ok(Repair::NoGoodCopy);
    };
    let dir = snapshot.path.parent().unwrap_or(Path::new("."));
    fsutil::ensure_space(dir, found.size, "the repaired archive")?;
    // A temp name the next run tidies if this one is killed.
    let temp = TempPath::new(dir.join(format!("{TEMP_PREFIX}{}", snapshot.tag.archive_name())));
    let _ = fs::remove_file(temp.path());
    let (size, sha256) = remote.fetch(&snapshot.tag, temp.path(), progress)?;
    if sha256 != recorded || size != found.size {
        return Ok(Repair::RemoteBad {
            copy: remote_key(&found),
            why: format!(
                "the download has sha256 {sha256} ({size} bytes), but {recorded} ({} bytes) was recorded; the remote copy is damaged",
                found.size
            ),
        });
    }
    fs::File::open(temp.path())
        .and_then(|f| f.sync_all())
        .at("cannot sync", temp.path())?;
    temp.persist(&snapshot.path)?;
    fsutil::sync_dir(dir)?;
    Ok(Repair::Done)
}
