//! The aside folders, `pre_restore_<UTC time>/`: where a swap puts the live data it replaces,
//! their names and layout (a live path's place inside one), the record each holds once its swap
//! is complete (`RESTORE.json`, [`Record`]), and how they are found, read and tidied. The swap
//! that fills them is `swap`; the rollback that empties one is `rollback`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::{self, ASIDE_PREFIX, SWAP_RECORD_FILE};

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
pub(super) fn top_level_entries(set_aside: &[AsideEntry]) -> Vec<PathBuf> {
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
pub(super) fn data_note(data_in: &[PathBuf]) -> String {
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

/// Removes an aside folder that holds no files any more (only folders, its record, and our own
/// temp files, such as a record a kill cut short).
pub(super) fn remove_aside_dir(dir: &Path) {
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
