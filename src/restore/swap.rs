//! The swap: the live set moves into `pre_restore_<ts>/`, the incoming set moves into place, by
//! renames on one file system, under a journal that lets any later command undo an interrupted
//! swap (or finish a committed one), so a crash leaves the old state or the new one, whole.
//!
//! Order of a swap, and what a crash at each point leaves:
//! 1. the journal is written (state `swapping`) with every planned rename, before any folder is
//!    made, so no aside folder ever exists that recovery does not know about;
//! 2. the aside folder (0700, only when there is live data to set aside) and the folders the
//!    renames need;
//! 3. renames, live files aside first, then incoming files into place;
//! 4. folders are synced, then `RESTORE.json` goes into the aside folder;
//! 5. the journal is rewritten as `committed`: from here on the new state stands;
//! 6. clean-up (staging, a consumed aside folder), `last-swap.json`, then the journal is removed.
//!
//! Recovery of `swapping` undoes every rename that happened, newest first, and removes the aside
//! folder: the old state; but once every rename happened (killed between steps 3 and 5) the new
//! state is whole in place and the app may have written to it, so recovery finishes the swap
//! with the record the journal carries. Recovery of `committed` finishes the clean-up: the new
//! state.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::aside::{
    AsideEntry, KeptFile, RECORD_VERSION, Record, data_note, remove_aside_dir, top_level_entries,
};
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::fsutil;
use crate::layout::{self, ASIDE_PREFIX, JOURNAL_FILE, LAST_SWAP_FILE, SWAP_RECORD_FILE};

/// What [`LAST_SWAP_FILE`] holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct LastSwap {
    /// `restore <tag>` or `rollback of <folder>`.
    pub operation: String,
    /// Where it set the live data aside; `None` when there was none.
    pub aside_dir: Option<PathBuf>,
}

/// The last completed swap, if this folder has a readable record of one.
pub fn last_swap(local_dir: &Path) -> Option<LastSwap> {
    let bytes = fs::read(local_dir.join(LAST_SWAP_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Swapping,
    Committed,
}

/// One rename: a file, or a whole folder of them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Move {
    pub from: PathBuf,
    pub to: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    journal_version: u32,
    state: State,
    /// `restore <tag>` or `rollback`, for messages.
    operation: String,
    aside_dir: PathBuf,
    /// Removed once the swap is committed (staging, or the aside folder a rollback emptied).
    cleanup: Vec<PathBuf>,
    moves: Vec<Move>,
    /// The record the swap writes into the aside folder once every rename is done; absent from
    /// journals of earlier versions. With it, recovery of a swap killed after its last rename
    /// finishes it (see [`recover`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<Record>,
}

/// A swap ready to run.
#[derive(Debug)]
pub struct SwapPlan {
    pub operation: String,
    pub tag: Option<String>,
    pub aside_dir: PathBuf,
    /// Live paths that exist and move aside, with their place in the aside folder (relative).
    pub set_aside: Vec<AsideEntry>,
    /// (staged file, live path).
    pub incoming: Vec<(PathBuf, PathBuf)>,
    pub databases: Vec<PathBuf>,
    /// The includes the swap concerns: `None` every one, else only these (see [`Record`]).
    pub includes: Option<Vec<PathBuf>>,
    /// Included files that stay where they are (see [`Record::left_in_place`]).
    pub left_in_place: Vec<KeptFile>,
    pub cleanup: Vec<PathBuf>,
    /// The renames, in order: `set_aside` and `incoming`, where a folder whose every file moves
    /// the same way moves whole, in one rename.
    pub renames: Vec<Move>,
    /// Modes staged folders take before they move into place whole.
    pub folder_modes: Vec<(PathBuf, u32)>,
    /// Folders that moved into place whole, with every folder inside them: synced after the
    /// renames, as the folders of files moved one by one are.
    pub folders_inside: Vec<PathBuf>,
}

fn journal_path(local_dir: &Path) -> PathBuf {
    local_dir.join(JOURNAL_FILE)
}

fn write_journal(local_dir: &Path, journal: &Journal) -> Result<()> {
    let json = serde_json::to_vec_pretty(journal).expect("journal serializes");
    fsutil::write_atomic(&journal_path(local_dir), &json)
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Runs `plan`. On an error before the commit point every rename is undone and the error says
/// nothing changed; the journal makes the same true after a crash.
///
/// # Errors
/// When a rename or sync fails (then the old state is back), or the journal cannot be written.
pub fn execute(local_dir: &Path, plan: &SwapPlan) -> Result<Record> {
    let moves = plan.renames.clone();
    // Incoming data is durable before anything moves (extraction does not sync file by file).
    fsutil::sync_files(plan.incoming.iter().map(|(staged, _)| staged.as_path()))?;
    fsutil::create_private_dir_all(local_dir).at("cannot create snapshot folder", local_dir)?;
    let data_in = top_level_entries(&plan.set_aside);
    // Version 1 when nothing in the record needs the newer reader: older builds read it right.
    let needs_newer_reader = plan.includes.is_some() || !plan.left_in_place.is_empty();
    let record = Record {
        record_version: if needs_newer_reader {
            RECORD_VERSION
        } else {
            1
        },
        note: data_note(&data_in),
        data_in,
        operation: plan.operation.clone(),
        tag: plan.tag.clone(),
        swapped_at: crate::clock::now(),
        databases: plan.databases.clone(),
        placed: plan.incoming.iter().map(|(_, live)| live.clone()).collect(),
        set_aside: plan.set_aside.clone(),
        includes: plan.includes.clone(),
        left_in_place: plan.left_in_place.clone(),
    };
    let mut journal = Journal {
        journal_version: 1,
        state: State::Swapping,
        operation: plan.operation.clone(),
        aside_dir: plan.aside_dir.clone(),
        cleanup: plan.cleanup.clone(),
        moves,
        record: Some(record.clone()),
    };
    // The journal comes before any folder: recovery of a swap killed from here on knows the
    // aside folder and removes it, so no `pre_restore_*` without a record is ever left.
    write_journal(local_dir, &journal)?;
    failpoint::hit("swap-journaled");
    let prepared = create_folders(plan, &journal.moves).and_then(|()| {
        plan.folder_modes.iter().try_for_each(|(folder, mode)| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(folder, fs::Permissions::from_mode(*mode))
                .at("cannot set the mode of", folder)
        })
    });
    if let Err(e) = prepared {
        remove_aside_dir(&plan.aside_dir);
        let _ = fs::remove_file(journal_path(local_dir));
        return Err(e);
    }
    failpoint::hit("swap-folders-created");

    let mut done = 0;
    let mut failure = None;
    for (i, m) in journal.moves.iter().enumerate() {
        failpoint::hit(&format!("swap-move-{i}"));
        // Never over a file: one that appeared since the plan (the app wrote it, or recreated a
        // -wal) would be lost. It fails the swap instead, and everything goes back.
        if let Err(e) = fsutil::rename_no_replace(&m.from, &m.to) {
            failure = Some(if e.kind() == io::ErrorKind::AlreadyExists {
                Error::Refused(format!(
                    "{} appeared while the restore was running (is the app running?)",
                    m.to.display()
                ))
            } else {
                Error::io("cannot move into place", &m.to, e)
            });
            break;
        }
        done += 1;
    }
    if failure.is_none() {
        failpoint::hit("swap-moved");
    }
    let synced = failure.map_or_else(
        || {
            sync_parents(&journal.moves, &plan.aside_dir)?;
            plan.folders_inside
                .iter()
                .try_for_each(|folder| fsutil::sync_dir(folder))
        },
        Err,
    );
    let recorded = synced.and_then(|()| write_record(&plan.aside_dir, &record));
    if let Err(e) = recorded {
        // Put everything back as it was; the journal stays if even that fails, for the next run.
        let undone = undo(&journal.moves[..done], &plan.aside_dir);
        if undone.problems.is_empty() {
            let _ = fs::remove_file(plan.aside_dir.join(SWAP_RECORD_FILE));
            remove_aside_dir(&plan.aside_dir);
            let _ = fs::remove_file(journal_path(local_dir));
        }
        let mut tail: Vec<String> = undone.notes;
        if !undone.problems.is_empty() {
            tail.push(format!(
                "not everything could be put back ({}); the journal {} lists every rename and the next backup command finishes or undoes the swap",
                undone.problems.join("; "),
                journal_path(local_dir).display()
            ));
        }
        return Err(Error::Swap(format!(
            "{e}; the swap was undone and the live data is as it was{}",
            if tail.is_empty() {
                String::new()
            } else {
                format!(", but: {}", tail.join("; "))
            }
        )));
    }
    failpoint::hit("swap-recorded");
    journal.state = State::Committed;
    write_journal(local_dir, &journal).map_err(|e| {
        Error::Swap(format!(
            "every file was moved, but the swap could not be marked complete ({e}); the next backup command finishes it"
        ))
    })?;
    failpoint::hit("swap-committed");
    finish(local_dir, &journal);
    Ok(record)
}

/// The folders the renames need: the aside folder and its subfolders (0700: only this user may
/// look at or swap the set-aside data), and any missing live folder an incoming file goes into.
fn create_folders(plan: &SwapPlan, moves: &[Move]) -> Result<()> {
    if !plan.set_aside.is_empty() {
        fsutil::create_private_dir(&plan.aside_dir).at("cannot create folder", &plan.aside_dir)?;
        failpoint::hit("swap-aside-created");
    }
    // Each folder once: a queue folder holds thousands of files.
    let parents: HashSet<&Path> = moves.iter().filter_map(|m| m.to.parent()).collect();
    for parent in parents {
        let made = if parent.starts_with(&plan.aside_dir) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
        } else {
            fs::create_dir_all(parent)
        };
        made.at("cannot create folder", parent)?;
    }
    Ok(())
}

/// Syncs every folder a rename touched, so the renames survive a power cut, and the folders
/// above them up to the one holding the aside folder: a folder the swap made (the aside folder,
/// its subfolders, new live folders) is only there for good once its own parent is synced.
fn sync_parents(moves: &[Move], aside_dir: &Path) -> Result<()> {
    let top = aside_dir.parent().unwrap_or(aside_dir);
    let mut folders: HashSet<&Path> = HashSet::new();
    for folder in moves
        .iter()
        .flat_map(|m| [m.from.parent(), m.to.parent()])
        .flatten()
    {
        for dir in folder.ancestors() {
            if !folders.insert(dir) || dir == top || !dir.starts_with(top) {
                break;
            }
        }
    }
    for folder in folders {
        if folder.exists() {
            fsutil::sync_dir(folder)?;
        }
    }
    Ok(())
}

/// What an undo did: `problems` could not be put back (the journal must stay); `notes` were
/// handled but the user should know.
#[derive(Default)]
struct Undone {
    problems: Vec<String>,
    notes: Vec<String>,
}

/// Reverses `moves`, newest first.
fn undo(moves: &[Move], aside_dir: &Path) -> Undone {
    let mut undone = Undone::default();
    let problems = &mut undone.problems;
    // A rename happened exactly when its source is gone and its target is there. (Before an
    // incoming file moves in, its target is the old live file, still in place or already aside.)
    for m in moves.iter().rev() {
        match (exists(&m.from), exists(&m.to)) {
            (false, true) => {
                if let Err(e) = fs::rename(&m.to, &m.from) {
                    problems.push(format!(
                        "cannot move {} back to {}: {e}",
                        m.to.display(),
                        m.from.display()
                    ));
                }
            }
            // A live file that was to go aside and is gone from both places: something else (a
            // queue worker) removed it before the swap reached it. Nothing of ours to put back.
            (false, false) if m.to.starts_with(aside_dir) => undone.notes.push(format!(
                "{} was removed by something else while the swap ran; there is nothing to put back",
                m.from.display()
            )),
            // Moved into place, and removed from there since (the app consumed it): the old
            // state never had it, so there is nothing to move back.
            (false, false) if !m.to.starts_with(aside_dir) => undone.notes.push(format!(
                "{} was removed by something else after the swap placed it; there is nothing to move back",
                m.to.display()
            )),
            (false, false) => problems.push(format!(
                "{} is in neither place it could be ({} or {})",
                m.from
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
                m.from.display(),
                m.to.display()
            )),
            // Set aside, and something (the app) has made a new file in its place since: that
            // one is kept beside the set-aside folder's content, and the original goes back.
            (true, true) if m.to.starts_with(aside_dir) => {
                let mut kept = fsutil::with_suffix(&m.to, ".appeared");
                let mut n = 2;
                while exists(&kept) {
                    kept = fsutil::with_suffix(&m.to, &format!(".appeared-{n}"));
                    n += 1;
                }
                match fs::rename(&m.from, &kept).and_then(|()| fs::rename(&m.to, &m.from)) {
                    Ok(()) => undone.notes.push(format!(
                        "{} was created again while the swap ran; that new file is kept as {}",
                        m.from.display(),
                        kept.display()
                    )),
                    Err(e) => problems.push(format!(
                        "cannot move {} back to {}: {e}",
                        m.to.display(),
                        m.from.display()
                    )),
                }
            }
            (true, _) => {} // never moved
        }
    }
    let _ = sync_parents(moves, aside_dir);
    undone
}

/// Writes `record` into the aside folder, where a rollback finds it; nothing when nothing was
/// set aside (no aside folder: nothing for a rollback to put back).
fn write_record(aside_dir: &Path, record: &Record) -> Result<()> {
    if record.set_aside.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec_pretty(record).expect("record serializes");
    fsutil::write_atomic(&aside_dir.join(SWAP_RECORD_FILE), &json)
}

/// Whether every rename of `moves` happened. A file set aside is there in the (new) aside folder
/// only by its rename, whatever is at its live path since (the incoming copy, or a `-wal` the app
/// made); an incoming file has left staging (or the aside folder a rollback empties), which only
/// the rename does, though the app may have removed it from its place since (a queue worker).
fn all_moved(moves: &[Move], aside_dir: &Path) -> bool {
    !moves.is_empty()
        && moves.iter().all(|m| {
            if m.to.starts_with(aside_dir) {
                exists(&m.to)
            } else {
                !exists(&m.from)
            }
        })
}

/// Clean-up after the commit point: staging and emptied aside folders, then the journal.
fn finish(local_dir: &Path, journal: &Journal) {
    for path in &journal.cleanup {
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(ASIDE_PREFIX))
        {
            // Consumed by a rollback: without its record it is no longer a rollback candidate,
            // even when files the user put there keep the folder.
            let _ = fs::remove_file(path.join(SWAP_RECORD_FILE));
            remove_aside_dir(path);
        } else if exists(path) {
            let _ = fs::remove_dir_all(path);
        }
    }
    let set_aside = journal
        .moves
        .iter()
        .any(|m| m.to.starts_with(&journal.aside_dir));
    let last = LastSwap {
        operation: journal.operation.clone(),
        aside_dir: set_aside.then(|| journal.aside_dir.clone()),
    };
    // Before the journal goes: a kill in between writes it again on recovery.
    let json = serde_json::to_vec_pretty(&last).expect("record serializes");
    if let Err(e) = fsutil::write_atomic(&local_dir.join(LAST_SWAP_FILE), &json) {
        tracing::warn!("the record of the last swap was not written: {e}");
    }
    let _ = fs::remove_file(journal_path(local_dir));
    let _ = fsutil::sync_dir(local_dir);
}

/// What recovery did.
#[derive(Debug, Serialize)]
pub struct Recovery {
    pub operation: String,
    /// `true`: the interrupted swap was undone (old state); `false`: it was finished (new state).
    pub undone: bool,
    /// What the user should know (a file the app recreated meanwhile, and where it is kept).
    pub problems: Vec<String>,
}

/// Finishes or undoes an interrupted swap whose journal is in `local_dir`. The caller holds the
/// run lock.
///
/// # Errors
/// When the journal exists but cannot be read.
pub fn recover(local_dir: &Path) -> Result<Option<Recovery>> {
    let path = journal_path(local_dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read restore journal", &path, e)),
    };
    let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Damaged(format!(
            "restore journal {} is unreadable ({e}); an interrupted restore needs a look: its renames are listed there, move the files back by hand, then delete the journal",
            path.display()
        ))
    })?;
    let outcome = match journal.state {
        // Killed after its last rename, before the commit: the new state is whole in place, and
        // the app may have written to it since. Undoing would throw those writes away with the
        // staging folder, so the swap is finished instead, record and all.
        State::Swapping
            if all_moved(&journal.moves, &journal.aside_dir) && journal.record.is_some() =>
        {
            let mut journal = journal;
            // Durable before the record says the swap happened, as `execute` does.
            sync_parents(&journal.moves, &journal.aside_dir)?;
            // A record half written when the swap was killed.
            let stale = journal
                .aside_dir
                .join(format!("{}{SWAP_RECORD_FILE}", layout::TEMP_PREFIX));
            let _ = fs::remove_file(stale);
            // A failure keeps the journal for the next command: undoing now would throw away
            // what the app wrote since.
            if let Some(record) = &journal.record {
                write_record(&journal.aside_dir, record)?;
            }
            journal.state = State::Committed;
            write_journal(local_dir, &journal)?;
            finish(local_dir, &journal);
            Recovery {
                operation: journal.operation,
                undone: false,
                problems: Vec::new(),
            }
        }
        State::Committed => {
            finish(local_dir, &journal);
            Recovery {
                operation: journal.operation,
                undone: false,
                problems: Vec::new(),
            }
        }
        State::Swapping => {
            let Undone { problems, notes } = undo(&journal.moves, &journal.aside_dir);
            if !problems.is_empty() {
                return Err(Error::Swap(format!(
                    "an interrupted {} could not be undone completely: {}; the journal {} lists every rename",
                    journal.operation,
                    problems.join("; "),
                    path.display()
                )));
            }
            let _ = fs::remove_file(journal.aside_dir.join(SWAP_RECORD_FILE));
            remove_aside_dir(&journal.aside_dir);
            for staging in journal.cleanup.iter().filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(layout::is_our_temp)
            }) {
                let _ = fs::remove_dir_all(staging);
            }
            let _ = fs::remove_file(&path);
            let _ = fsutil::sync_dir(local_dir);
            Recovery {
                operation: journal.operation,
                undone: true,
                problems: notes,
            }
        }
    };
    Ok(Some(outcome))
}

/// Whether an interrupted swap's journal is waiting in `local_dir`.
pub fn pending(local_dir: &Path) -> bool {
    journal_path(local_dir).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::aside::{aside_dirs, is_orphan_aside_dir, mirror, new_aside_dir};

    /// A base folder with a live file `app.db` ("old") and a staged `app.db` ("new"), and the
    /// journal of a restore that swaps them: the live file aside, then the staged one in place.
    struct Setup {
        _dir: tempfile::TempDir,
        base: PathBuf,
        local: PathBuf,
        live: PathBuf,
        staging: PathBuf,
        aside_dir: PathBuf,
        journal: Journal,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_path_buf();
        let local = base.join("backups");
        let live = base.join("app.db");
        // Named as restore names its staging folder, which is what recovery may remove.
        let staging = local.join(format!(
            "{}restore-bk-20260101T000000Z-manual-fixture-000001",
            crate::layout::TEMP_PREFIX
        ));
        fs::create_dir_all(&staging).unwrap();
        fs::write(&live, "old").unwrap();
        fs::write(staging.join("app.db"), "new").unwrap();
        let aside_dir = new_aside_dir(&base, "2026-03-01T10:00:00Z".parse().unwrap());
        let journal = Journal {
            journal_version: 1,
            state: State::Swapping,
            operation: "restore bk-test".into(),
            aside_dir: aside_dir.clone(),
            cleanup: vec![staging.clone()],
            moves: vec![
                Move {
                    from: live.clone(),
                    to: aside_dir.join(mirror(&base, &live)),
                },
                Move {
                    from: staging.join("app.db"),
                    to: live.clone(),
                },
            ],
            // As a journal of an earlier version: recovery can only undo it.
            record: None,
        };
        Setup {
            _dir: dir,
            base,
            local,
            live,
            staging,
            aside_dir,
            journal,
        }
    }

    /// Runs the first `n` renames of the journal, as a swap killed after them would have.
    fn killed_after(s: &Setup, n: usize) {
        write_journal(&s.local, &s.journal).unwrap();
        fs::create_dir_all(&s.aside_dir).unwrap();
        for m in &s.journal.moves[..n] {
            fs::rename(&m.from, &m.to).unwrap();
        }
    }

    #[test]
    fn a_swap_killed_at_any_rename_is_undone_to_the_old_state() {
        for n in 0..=2 {
            let s = setup();
            killed_after(&s, n);
            assert!(pending(&s.local));
            let recovery = recover(&s.local).unwrap().unwrap();
            assert!(recovery.undone, "after {n} renames");
            assert!(recovery.problems.is_empty(), "{:?}", recovery.problems);
            assert_eq!(fs::read_to_string(&s.live).unwrap(), "old", "after {n}");
            assert!(!s.aside_dir.exists(), "the empty aside folder goes");
            assert!(!s.staging.exists(), "so does staging");
            assert!(!pending(&s.local));
            assert!(recover(&s.local).unwrap().is_none(), "nothing left to do");
        }
    }

    #[test]
    fn a_committed_swap_is_finished_not_undone() {
        let mut s = setup();
        killed_after(&s, 2);
        s.journal.state = State::Committed;
        write_journal(&s.local, &s.journal).unwrap();
        let recovery = recover(&s.local).unwrap().unwrap();
        assert!(!recovery.undone);
        assert_eq!(fs::read_to_string(&s.live).unwrap(), "new");
        assert_eq!(
            fs::read_to_string(s.aside_dir.join("app.db")).unwrap(),
            "old",
            "the old file stays aside"
        );
        assert!(!s.staging.exists());
        assert!(!pending(&s.local));
        let last = last_swap(&s.local).unwrap();
        assert_eq!(last.operation, "restore bk-test");
        assert_eq!(last.aside_dir.as_deref(), Some(s.aside_dir.as_path()));
    }

    #[test]
    fn a_file_the_app_made_again_meanwhile_is_kept_beside_the_old_one() {
        let s = setup();
        killed_after(&s, 1);
        fs::write(&s.live, "made by the app").unwrap();
        let recovery = recover(&s.local).unwrap().unwrap();
        assert!(recovery.undone);
        assert_eq!(fs::read_to_string(&s.live).unwrap(), "old");
        assert_eq!(recovery.problems.len(), 1, "{:?}", recovery.problems);
        let kept = fsutil::with_suffix(&s.aside_dir.join("app.db"), ".appeared");
        assert!(
            recovery.problems[0].contains(&kept.display().to_string()),
            "{:?}",
            recovery.problems
        );
        assert_eq!(fs::read_to_string(&kept).unwrap(), "made by the app");
    }

    #[test]
    fn an_unreadable_journal_is_an_error_that_says_what_to_do() {
        let s = setup();
        fs::create_dir_all(&s.local).unwrap();
        fs::write(s.local.join(JOURNAL_FILE), "{ cut sh").unwrap();
        let e = recover(&s.local).unwrap_err().to_string();
        assert!(e.contains("unreadable") && e.contains("by hand"), "{e}");
        assert!(pending(&s.local), "the journal stays for a person to read");
    }

    #[test]
    fn a_whole_swap_sets_the_old_file_aside_with_a_record_and_leaves_no_journal() {
        let s = setup();
        let plan = SwapPlan {
            operation: s.journal.operation.clone(),
            tag: Some("bk-test".into()),
            aside_dir: s.aside_dir.clone(),
            set_aside: vec![AsideEntry {
                stored: mirror(&s.base, &s.live),
                live: s.live.clone(),
            }],
            incoming: vec![(s.staging.join("app.db"), s.live.clone())],
            databases: vec![s.live.clone()],
            includes: None,
            left_in_place: Vec::new(),
            cleanup: vec![s.staging.clone()],
            renames: s.journal.moves.clone(),
            folder_modes: Vec::new(),
            folders_inside: Vec::new(),
        };
        let record = execute(&s.local, &plan).unwrap();
        assert_eq!(fs::read_to_string(&s.live).unwrap(), "new");
        assert!(!pending(&s.local));
        let found = aside_dirs(&s.base).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, s.aside_dir);
        assert_eq!(found[0].1.placed, record.placed);
        assert_eq!(found[0].1.tag.as_deref(), Some("bk-test"));
        assert!(!is_orphan_aside_dir(&s.aside_dir), "it has its record");
    }
}
