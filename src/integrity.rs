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
//!
//! This module is the record and what reads it; the re-check and repair after each run, which
//! need the remote, are [`crate::recheck`].

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fsutil;
use crate::layout::CHECKED_FILE;
use crate::tag::Tag;

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
pub(crate) struct Entry {
    pub(crate) checked_at: DateTime<Utc>,
    pub(crate) finding: Finding,
    /// Size and modification time when checked: a finding holds only while the file is unchanged,
    /// so an archive put back by hand is checked again rather than called damaged for ever.
    pub(crate) size: u64,
    pub(crate) modified: Option<DateTime<Utc>>,
    /// For a damaged archive: whether the remote held a copy with this archive's recorded sha256
    /// when last asked (`None`: it could not be asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote_good: Option<bool>,
    /// The remote copy (`sha256:size` as the remote records it) whose download did not match
    /// its record: not downloaded again, nor counted as a good copy, until the remote's record
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bad_remote: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) archives: BTreeMap<Tag, Entry>,
}

/// Size and modification time of a file, as an [`Entry`] records them.
fn file_stamp(path: &Path) -> Option<(u64, Option<DateTime<Utc>>)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok().map(DateTime::<Utc>::from)))
}

impl Entry {
    pub(crate) fn new(path: &Path, finding: Finding, checked_at: DateTime<Utc>) -> Entry {
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
    pub(crate) fn describes(&self, path: &Path) -> bool {
        file_stamp(path) == Some((self.size, self.modified))
    }
}

impl State {
    /// The state in `local_dir`. A missing or unreadable file means nothing was checked yet:
    /// the worst that costs is hashing again.
    pub(crate) fn read(local_dir: &Path) -> State {
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
    pub(crate) fn write(mut self, local_dir: &Path) -> Result<()> {
        self.archives
            .retain(|tag, _| crate::layout::archive_in(local_dir, tag).is_file());
        let json = serde_json::to_vec_pretty(&self).expect("state serializes");
        fsutil::write_atomic(&local_dir.join(CHECKED_FILE), &json)
    }

    /// Local copies whose recorded finding is damaged and still describes the file.
    pub(crate) fn damaged(&self, local_dir: &Path) -> Vec<DamagedCopy> {
        self.archives
            .iter()
            .filter(|(tag, entry)| {
                entry.finding == Finding::Damaged
                    && entry.describes(&crate::layout::archive_in(local_dir, tag))
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
        let path = crate::layout::archive_in(local_dir, &self.tag);
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
        &crate::layout::archive_in(local_dir, tag),
        Finding::Damaged,
        crate::clock::now(),
    );
    entry.remote_good = remote_good;
    state.archives.insert(tag.clone(), entry);
    state.write(local_dir)
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
}
