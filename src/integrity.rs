//! Damaged local copies: a local archive that no longer matches the `.sha256` record written when
//! it was made (bit rot, a failing disk, a stray write), while the remote may hold a good copy.
//!
//! Hashing every archive every hour is not free, so each `backup run`/`now`, after its push,
//! re-hashes a bounded share: the archives checked least recently first, until it has hashed about
//! as many bytes as the snapshot it just took (at least one archive). `checked.json` in the local
//! folder records when each archive was last checked and what was found; `backup list` and
//! `backup status` read it (no hashing, no network), restore goes straight to the remote for a
//! copy known to be damaged, and the next run repairs such a copy from the remote.
//!
//! Only the holder of the run lock writes `checked.json` (a run, a restore or a verify).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{self, LocalSnapshot};
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, TEMP_PREFIX, TempPath};
use crate::progress::Progress;
use crate::remote::{Remote, RemoteSnapshot};
use crate::snapshot::Snapshot;
use crate::tag::Tag;

/// File name inside the local snapshot folder. Not a temp name and not an archive name, so no
/// tidying and no retention ever removes it.
pub const CHECKED_FILE: &str = "checked.json";

/// What an archive's bytes say against the record written when it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finding {
    Intact,
    Damaged,
    /// No record to compare with (removed, or the archive was copied in by hand).
    Unrecorded,
}

/// What was found about one archive, and the file it was found about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    checked_at: DateTime<Utc>,
    finding: Finding,
    /// Size and modification time when checked: a finding holds only while the file is unchanged,
    /// so an archive put back by hand is checked again rather than called damaged for ever.
    size: u64,
    modified: Option<DateTime<Utc>>,
    /// For a damaged archive: whether the remote held a copy with this archive's recorded sha256
    /// when last asked (`None`: it could not be asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote_good: Option<bool>,
    /// The remote copy (`sha256:size` as the remote records it) whose download did not match
    /// its record: not downloaded again, nor counted as a good copy, until the remote's record
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bad_remote: Option<String>,
}

/// How a remote copy is told apart from another under the same tag.
fn remote_key(found: &RemoteSnapshot) -> String {
    format!("{}:{}", found.sha256.as_deref().unwrap_or("-"), found.size)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    archives: BTreeMap<Tag, Entry>,
}

/// Size and modification time of a file, as an [`Entry`] records them.
fn file_stamp(path: &Path) -> Option<(u64, Option<DateTime<Utc>>)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok().map(DateTime::<Utc>::from)))
}

impl Entry {
    fn new(path: &Path, finding: Finding, checked_at: DateTime<Utc>) -> Entry {
        let (size, modified) = file_stamp(path).unwrap_or((0, None));
        Entry {
            checked_at,
            finding,
            size,
            modified,
            remote_good: None,
            bad_remote: None,
        }
    }

    /// Whether this entry still describes the file at `path`.
    fn describes(&self, path: &Path) -> bool {
        file_stamp(path) == Some((self.size, self.modified))
    }
}

impl State {
    /// The state in `local_dir`. A missing or unreadable file means nothing was checked yet:
    /// the worst that costs is hashing again.
    fn read(local_dir: &Path) -> State {
        let path = local_dir.join(CHECKED_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::info!(
                    "{} does not parse ({e}); checking again from scratch",
                    path.display()
                );
                State::default()
            }),
            Err(_) => State::default(),
        }
    }

    /// Writes the state, dropping the entries of archives that no longer exist.
    fn write(mut self, local_dir: &Path) -> Result<()> {
        self.archives
            .retain(|tag, _| local_dir.join(tag.archive_name()).is_file());
        let json = serde_json::to_vec_pretty(&self).expect("state serializes");
        fsutil::write_atomic(&local_dir.join(CHECKED_FILE), &json)
    }

    /// Local copies whose recorded finding is damaged and still describes the file.
    fn damaged(&self, local_dir: &Path) -> Vec<DamagedCopy> {
        self.archives
            .iter()
            .filter(|(tag, entry)| {
                entry.finding == Finding::Damaged
                    && entry.describes(&local_dir.join(tag.archive_name()))
            })
            .map(|(tag, entry)| DamagedCopy {
                tag: tag.clone(),
                remote_good: entry.remote_good,
            })
            .collect()
    }
}

/// A local archive known to be damaged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DamagedCopy {
    pub tag: Tag,
    /// Whether the remote holds a copy with the sha256 this archive's record names; `None` when
    /// the remote could not be asked.
    pub remote_good: Option<bool>,
}

impl DamagedCopy {
    /// One sentence for people: what is wrong and what happens next.
    pub fn describe(&self, local_dir: &Path) -> String {
        let path = local_dir.join(self.tag.archive_name());
        let next = match self.remote_good {
            Some(true) => {
                "the remote holds a good copy: restore uses it, and the next `backup run` repairs the local copy from it".to_string()
            }
            Some(false) => {
                "No other copy exists: keep it for a partial restore, and take a new snapshot with `backup now`".to_string()
            }
            None => "the remote could not be asked for a good copy; the next `backup run` asks again".to_string(),
        };
        format!(
            "local archive {} no longer matches the sha256 recorded when it was made (the disk may be failing), so it is never pushed; {next}",
            path.display()
        )
    }
}

/// Local copies known to be damaged, oldest first. Reads only `checked.json` and the archives'
/// metadata: cheap enough for `list` and `status`.
pub fn known_damaged(local_dir: &Path) -> Vec<DamagedCopy> {
    State::read(local_dir).damaged(local_dir)
}

/// The warnings `backup status` shows for damaged local copies.
pub fn status_warnings(local_dir: &Path) -> Vec<String> {
    known_damaged(local_dir)
        .iter()
        .map(|d| d.describe(local_dir))
        .collect()
}

/// Hashes `archive` against its record: whether it is damaged (a record that it fails).
///
/// # Errors
/// When the archive cannot be read.
pub fn is_damaged(archive: &Path) -> Result<bool> {
    let Some(recorded) = fsutil::read_checksum(archive) else {
        return Ok(false);
    };
    let (_, sha256) = fsutil::hash_file(archive)?;
    Ok(sha256 != recorded)
}

/// Records that the local archive of `tag` was found damaged (by a restore or a verify). The
/// caller holds the run lock.
///
/// # Errors
/// When `checked.json` cannot be written.
pub fn mark_damaged(local_dir: &Path, tag: &Tag, remote_good: Option<bool>) -> Result<()> {
    let mut state = State::read(local_dir);
    let mut entry = Entry::new(
        &local_dir.join(tag.archive_name()),
        Finding::Damaged,
        crate::clock::now(),
    );
    entry.remote_good = remote_good;
    state.archives.insert(tag.clone(), entry);
    state.write(local_dir)
}

/// Whether `found` on the remote is a good copy of a local archive whose record is `recorded`.
pub fn remote_matches(found: Option<&RemoteSnapshot>, recorded: Option<&str>) -> bool {
    matches!((found.and_then(|r| r.sha256.as_deref()), recorded), (Some(a), Some(b)) if a == b)
}

/// One archive the bounded check hashed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckedArchive {
    pub tag: Tag,
    pub bytes: u64,
    pub finding: Finding,
}

/// What a run's upkeep of the local copies did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// How many bytes this run's check may hash: the size of the archive it just made (one
    /// archive is always checked, even a larger one).
    pub budget_bytes: u64,
    pub checked_bytes: u64,
    /// Hashed by the check, least recently checked first.
    pub checked: Vec<CheckedArchive>,
    /// Local copies known to be damaged after this run.
    pub damaged: Vec<DamagedCopy>,
    /// Damaged local copies replaced by this run with the remote's good copy.
    pub repaired: Vec<Tag>,
    /// What went wrong in the check or a repair; the run's own snapshot is unaffected.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Damaged copies of which no good copy exists elsewhere: a failure of the run.
    pub fn failures(&self, local_dir: &Path) -> Vec<String> {
        self.damaged
            .iter()
            .filter(|d| d.remote_good == Some(false))
            .map(|d| d.describe(local_dir))
            .collect()
    }

    /// Damaged copies the remote can stand in for (or could not be asked about), and problems:
    /// one warning line each.
    pub fn warnings(&self, local_dir: &Path) -> Vec<String> {
        self.damaged
            .iter()
            .filter(|d| d.remote_good != Some(false))
            .map(|d| d.describe(local_dir))
            .chain(self.problems.iter().cloned())
            .collect()
    }
}

/// The remote's listing, asked for at most once and only when a damaged copy needs it.
struct LazyListing<'a> {
    remote: Option<&'a Remote>,
    listed: Option<std::result::Result<BTreeMap<Tag, RemoteSnapshot>, String>>,
}

impl LazyListing<'_> {
    fn get(&mut self) -> std::result::Result<&BTreeMap<Tag, RemoteSnapshot>, String> {
        let Some(remote) = self.remote else {
            static NONE: BTreeMap<Tag, RemoteSnapshot> = BTreeMap::new();
            return Ok(&NONE);
        };
        self.listed
            .get_or_insert_with(|| {
                remote
                    .list()
                    .map(|found| found.into_iter().map(|s| (s.tag.clone(), s)).collect())
                    .map_err(|e| e.to_string())
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
            remote_matches(copy, recorded.as_deref()) && copy.map(remote_key).as_deref() != bad
        })
    }
}

/// After a run's push: repairs the damaged local copies found by earlier runs from the remote,
/// then re-hashes the least recently checked archives within the budget (the size of `fresh`),
/// and records everything in `checked.json`. The caller holds the run lock.
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
            Entry::new(&local_dir.join(tag.archive_name()), *finding, now),
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
        "checked {} local archive(s) against their records: {} of a {} budget",
        report.checked.len(),
        fsutil::human_bytes(report.checked_bytes),
        fsutil::human_bytes(report.budget_bytes)
    );

    // Every damaged copy now known, with whether the remote can stand in for it.
    for (tag, entry) in state.archives.iter_mut() {
        let path = local_dir.join(tag.archive_name());
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
        Err(e) => return Err(Error::Remote(e)),
    };
    let Some(found) = found
        .filter(|f| remote_matches(Some(f), Some(&recorded)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_holds_only_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        fs::write(&path, b"one").unwrap();
        let entry = Entry::new(&path, Finding::Damaged, Utc::now());
        assert!(entry.describes(&path));
        fs::write(&path, b"three").unwrap();
        assert!(!entry.describes(&path));
        fs::remove_file(&path).unwrap();
        assert!(!entry.describes(&path));
    }

    #[test]
    fn a_remote_copy_is_good_only_with_the_local_record() {
        let tag = Tag::parse("bk-20261122T014207Z-manual-laptop-3f9a1c").unwrap();
        let found = RemoteSnapshot {
            tag,
            size: 1,
            sha256: Some("ab".into()),
            findings: None,
        };
        assert!(remote_matches(Some(&found), Some("ab")));
        assert!(!remote_matches(Some(&found), Some("cd")));
        assert!(!remote_matches(Some(&found), None));
        assert!(!remote_matches(None, Some("ab")));
    }
}
