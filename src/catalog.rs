//! What snapshots exist, locally and on the remote: the data behind `backup list`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::remote::Remote;
use crate::tag::{Kind, Tag};

/// A snapshot archive in the local folder.
#[derive(Clone, Debug)]
pub struct LocalSnapshot {
    pub tag: Tag,
    pub path: PathBuf,
    pub size: u64,
}

/// Archives (`<tag>.tar.gz` with a tag this tool makes) in a folder, oldest first, as (tag, path,
/// size). Shared by the local folder and the directory remote.
pub(crate) fn scan_archives(dir: &Path) -> io::Result<Vec<(Tag, PathBuf, u64)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(tag) = entry.file_name().to_str().and_then(Tag::from_archive_name) else {
            continue;
        };
        let meta = entry.metadata()?;
        if meta.is_file() {
            found.push((tag, entry.path(), meta.len()));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Snapshots in the local folder, oldest first. A missing folder holds none.
///
/// # Errors
/// When the folder exists but cannot be read.
pub fn local_snapshots(dir: &Path) -> Result<Vec<LocalSnapshot>> {
    match scan_archives(dir) {
        Ok(found) => Ok(found
            .into_iter()
            .map(|(tag, path, size)| LocalSnapshot { tag, path, size })
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("cannot read snapshot folder", dir, e)),
    }
}

/// Where a snapshot is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Local,
    Remote,
    Both,
    /// On both sides, with different sizes: one copy is damaged (`backup run` repairs either one
    /// from the other, whichever still matches its record).
    Differ,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Local => "local",
            Location::Remote => "remote",
            Location::Both => "both",
            Location::Differ => "differ",
        }
    }
}

/// One row of `backup list`.
#[derive(Clone, Debug, Serialize)]
pub struct ListEntry {
    pub tag: Tag,
    pub time: DateTime<Utc>,
    pub kind: Kind,
    pub host: String,
    /// Archive size in bytes.
    pub size: u64,
    #[serde(rename = "where")]
    pub location: Location,
    /// The local copy was found damaged by a run's check or a restore (`checked.json`).
    pub local_damaged: bool,
}

/// The merged listing, newest first, plus the remote's error if it could not be read (the local
/// rows are still worth showing then).
///
/// # Errors
/// When the local folder cannot be read.
pub fn list(local_dir: &Path, remote: Option<&Remote>) -> Result<(Vec<ListEntry>, Option<Error>)> {
    let mut rows: BTreeMap<Tag, (u64, Location)> = BTreeMap::new();
    for snapshot in local_snapshots(local_dir)? {
        rows.insert(snapshot.tag, (snapshot.size, Location::Local));
    }
    let damaged: Vec<Tag> = crate::integrity::known_damaged(local_dir)
        .into_iter()
        .map(|d| d.tag)
        .collect();
    let mut remote_error = None;
    if let Some(remote) = remote {
        match remote.list() {
            Ok(found) => {
                for snapshot in found {
                    rows.entry(snapshot.tag)
                        .and_modify(|(size, location)| {
                            *location = if *size == snapshot.size {
                                Location::Both
                            } else {
                                Location::Differ
                            };
                        })
                        .or_insert((snapshot.size, Location::Remote));
                }
            }
            Err(e) => remote_error = Some(e),
        }
    }
    let entries = rows
        .into_iter()
        .rev()
        .map(|(tag, (size, location))| ListEntry {
            time: tag.time(),
            kind: tag.kind(),
            host: tag.host().to_string(),
            local_damaged: damaged.contains(&tag),
            tag,
            size,
            location,
        })
        .collect();
    Ok((entries, remote_error))
}
