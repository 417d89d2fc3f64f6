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
//! folder: the old state. Recovery of `committed` finishes the clean-up: the new state.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
}

/// The newest [`Record`] layout this version reads. Version 2 added `includes` (a partial
/// swap) and `left_in_place`: a version-1 reader would roll such a swap back as a whole one, or
/// set aside the files left in place without bringing them back, so a record carrying either is
/// written as version 2, and a record newer than this is refused rather than misread.
pub const RECORD_VERSION: u32 = 2;

/// What was set aside, written into the aside folder once the swap is complete.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub record_version: u32,
    /// Where in this folder the set-aside data is, for someone who opens it: `ls` shows only
    /// this file when the data sits under a hidden name such as `.data`.
    #[serde(default)]
    pub note: String,
    /// The folder's top-level entries that hold the set-aside data (relative to it).
    #[serde(default)]
    pub data_in: Vec<PathBuf>,
    /// `restore <tag>` or `rollback`.
    pub operation: String,
    pub tag: Option<String>,
    pub swapped_at: DateTime<Utc>,
    /// Live databases the swap concerned (their -wal/-shm files move with them).
    pub databases: Vec<PathBuf>,
    /// Every live path the incoming set put in place.
    pub placed: Vec<PathBuf>,
    /// Every live path set aside, and where inside the aside folder it went.
    pub set_aside: Vec<AsideEntry>,
    /// The includes the swap concerned: absent for every one (a whole restore), else only these
    /// (`restore --only`), so a rollback sets aside no included file beyond them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Vec<PathBuf>>,
    /// Included files the swap neither set aside nor replaced because they already held the
    /// incoming bytes: the state before and after alike, so a rollback leaves them where they
    /// are while they still hold these bytes. Absent in records of older versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_in_place: Vec<KeptFile>,
}

/// An included file a swap left in place, with what it held then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptFile {
    pub live: PathBuf,
    pub size: u64,
    pub sha256: String,
}

impl KeptFile {
    /// Whether the live file still holds the bytes it held when the swap left it in place.
    pub fn unchanged(&self) -> bool {
        crate::restore::live::same_content(&self.live, self.size, &self.sha256).is_some()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AsideEntry {
    /// Relative to the aside folder.
    pub stored: PathBuf,
    pub live: PathBuf,
}

/// The distinct first components of where the set-aside entries are stored, in order.
fn top_level_entries(set_aside: &[AsideEntry]) -> Vec<PathBuf> {
    let tops: std::collections::BTreeSet<PathBuf> = set_aside
        .iter()
        .filter_map(|e| e.stored.components().next())
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    tops.into_iter().collect()
}

/// Whether a name is hidden from a plain `ls`.
fn is_hidden(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().starts_with(b".")
}

/// The record's sentence saying where the data is, and that `ls -A` shows a hidden name.
fn data_note(data_in: &[PathBuf]) -> String {
    let names: Vec<String> = data_in.iter().map(|p| p.display().to_string()).collect();
    let hidden = data_in.iter().any(|p| is_hidden(p));
    format!(
        "the set-aside data is under {} in this folder{}; `backup rollback` puts it back",
        names.join(", "),
        if hidden {
            " (a name starting with a dot: `ls -A` shows it)"
        } else {
            ""
        }
    )
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

/// Where a live path goes inside an aside folder: relative to the config's folder when inside it,
/// else under `_root/`.
pub fn mirror(base_dir: &Path, live: &Path) -> PathBuf {
    match live.strip_prefix(base_dir) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => Path::new("_root").join(live.strip_prefix("/").unwrap_or(live)),
    }
}

/// A new `pre_restore_<UTC time>` folder name under `base_dir` (suffixed when taken).
pub fn new_aside_dir(base_dir: &Path, now: DateTime<Utc>) -> PathBuf {
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let mut candidate = base_dir.join(format!("{ASIDE_PREFIX}{stamp}"));
    let mut n = 2;
    while fs::symlink_metadata(&candidate).is_ok() {
        candidate = base_dir.join(format!("{ASIDE_PREFIX}{stamp}-{n}"));
        n += 1;
    }
    candidate
}

/// `pre_restore_*` folders under `base_dir` that hold a complete record, newest first.
///
/// # Errors
/// When the folder cannot be read, or the newest record was written by a newer version (its
/// fields could mean what this version would misread).
pub fn aside_dirs(base_dir: &Path) -> Result<Vec<(PathBuf, Record)>> {
    /// What every record version has, read before the rest.
    #[derive(Deserialize)]
    struct Header {
        record_version: u32,
        swapped_at: DateTime<Utc>,
    }
    let mut found = Vec::new();
    let mut newest_too_new: Option<(PathBuf, Header)> = None;
    let entries = match fs::read_dir(base_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(Error::io("cannot read folder", base_dir, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(ASIDE_PREFIX)) {
            continue;
        }
        let Ok(bytes) = fs::read(entry.path().join(SWAP_RECORD_FILE)) else {
            continue;
        };
        let Ok(header) = serde_json::from_slice::<Header>(&bytes) else {
            continue;
        };
        if header.record_version > RECORD_VERSION {
            if newest_too_new
                .as_ref()
                .is_none_or(|(_, h)| h.swapped_at < header.swapped_at)
            {
                newest_too_new = Some((entry.path(), header));
            }
            continue;
        }
        if let Ok(record) = serde_json::from_slice::<Record>(&bytes) {
            found.push((entry.path(), record));
        }
    }
    // Newest swap first (names alone would sort `-10` before `-9`).
    found.sort_by(|a, b| (b.1.swapped_at, &b.0).cmp(&(a.1.swapped_at, &a.0)));
    if let Some((dir, header)) = newest_too_new
        && found
            .first()
            .is_none_or(|(_, newest)| newest.swapped_at <= header.swapped_at)
    {
        return Err(Error::Refused(format!(
            "{} is record_version {}, newer than this backup reads ({RECORD_VERSION}); roll back with the newer backup that wrote it, nothing was changed",
            dir.join(SWAP_RECORD_FILE).display(),
            header.record_version
        )));
    }
    Ok(found)
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
    let mut journal = Journal {
        journal_version: 1,
        state: State::Swapping,
        operation: plan.operation.clone(),
        aside_dir: plan.aside_dir.clone(),
        cleanup: plan.cleanup.clone(),
        moves,
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
    let synced = failure.map_or_else(
        || {
            sync_parents(&journal.moves, &plan.aside_dir)?;
            plan.folders_inside
                .iter()
                .try_for_each(|folder| fsutil::sync_dir(folder))
        },
        Err,
    );
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
    let recorded = synced.and_then(|()| {
        if plan.set_aside.is_empty() {
            return Ok(()); // no aside folder: nothing for a rollback to put back
        }
        let json = serde_json::to_vec_pretty(&record).expect("record serializes");
        fsutil::write_atomic(&plan.aside_dir.join(SWAP_RECORD_FILE), &json)
    });
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
                "not everything could be put back ({}); the journal {} lists every rename and the next backup command tries again",
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
            "every file was moved, but the swap could not be marked complete ({e}); the next backup command undoes it, leaving the live data as it was"
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

/// Removes an aside folder that holds no files any more (only folders, its record, and our own
/// temp files, such as a record a kill cut short).
fn remove_aside_dir(dir: &Path) {
    if holds_only_folders(dir, dir) {
        let _ = fs::remove_dir_all(dir);
    }
}

fn holds_only_folders(root: &Path, dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|entry| {
        let path = entry.path();
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => holds_only_folders(root, &path),
            Ok(_) => {
                let name = entry.file_name();
                (dir == root && name == SWAP_RECORD_FILE)
                    || name.to_str().is_some_and(layout::is_our_temp)
            }
            Err(_) => false,
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

/// Removes `pre_restore_<time>` folders that hold no record and no files besides our temps: what
/// a swap killed at its start by an older version left. Call only while holding the run lock,
/// with no journal pending (then no swap is using one).
pub fn remove_orphan_aside_dirs(base_dir: &Path) {
    let Ok(entries) = fs::read_dir(base_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if is_orphan_aside_dir(&path) {
            remove_aside_dir(&path);
        }
    }
}

/// A folder named as this tool names aside folders, without a record, holding no files.
pub fn is_orphan_aside_dir(path: &Path) -> bool {
    let ours = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(ASIDE_PREFIX))
        .is_some_and(|stamp| {
            let time = stamp.split_once('-').map_or(stamp, |(time, _)| time);
            chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%SZ").is_ok()
        });
    ours && fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && !path.join(SWAP_RECORD_FILE).exists()
        && holds_only_folders(path, path)
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
