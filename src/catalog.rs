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
    /// On both sides, with different sizes: one copy is damaged (`backup run` repairs a damaged
    /// remote copy from a good local one, and says so when the local one is the damaged one).
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
    /// How many findings SQLite's integrity and foreign key checks made when the snapshot was
    /// taken (0: it passed); `None` when unknown (taken before snapshots ran those checks, or
    /// only on a remote whose record does not say).
    pub findings: Option<u64>,
}

/// What the listing knows of one snapshot while it is merged.
struct Row {
    size: u64,
    location: Location,
    findings: Option<u64>,
}

/// The merged listing, newest first, plus the remote's error if it could not be read (the local
/// rows are still worth showing then).
///
/// # Errors
/// When the local folder cannot be read.
pub fn list(local_dir: &Path, remote: Option<&Remote>) -> Result<(Vec<ListEntry>, Option<Error>)> {
    let mut rows: BTreeMap<Tag, Row> = BTreeMap::new();
    for snapshot in local_snapshots(local_dir)? {
        // Only the manifest is decompressed: the first entry of the archive.
        let findings = crate::restore::extract::read_manifest(&snapshot.path)
            .ok()
            .and_then(|m| m.findings_count());
        rows.insert(
            snapshot.tag,
            Row {
                size: snapshot.size,
                location: Location::Local,
                findings,
            },
        );
    }
    let mut remote_error = None;
    if let Some(remote) = remote {
        match remote.list() {
            Ok(found) => {
                for snapshot in found {
                    let row = rows.entry(snapshot.tag.clone()).or_insert_with(|| Row {
                        size: snapshot.size,
                        location: Location::Remote,
                        findings: snapshot.findings.or_else(|| {
                            remote
                                .peek_manifest(&snapshot.tag)
                                .and_then(|m| m.findings_count())
                        }),
                    });
                    if row.location == Location::Local {
                        row.location = if row.size == snapshot.size {
                            Location::Both
                        } else {
                            Location::Differ
                        };
                    }
                }
            }
            Err(e) => remote_error = Some(e),
        }
    }
    let entries = rows
        .into_iter()
        .rev()
        .map(|(tag, row)| ListEntry {
            time: tag.time(),
            kind: tag.kind(),
            host: tag.host().to_string(),
            tag,
            size: row.size,
            location: row.location,
            findings: row.findings,
        })
        .collect();
    Ok((entries, remote_error))
}
