//! `MANIFEST.json`: the first entry of every archive, describing the snapshot well enough that a
//! restore on a fresh machine can check every byte and every row count.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checks::Findings;
use crate::error::{Error, Result};
use crate::tag::{Kind, Tag};

/// The manifest format of a full snapshot; restore refuses versions it does not know. Fulls
/// keep version 1, so every earlier build still restores them.
pub const MANIFEST_VERSION: u32 = 1;
/// The manifest format of a differential snapshot: it names its base, and its databases may be
/// stored as changed pages. A new version, so that builds that know no differentials refuse
/// one rather than restore half of it.
pub const DIFFERENTIAL_MANIFEST_VERSION: u32 = 2;
/// Name of the manifest inside the archive (always the first entry).
pub const MANIFEST_NAME: &str = "MANIFEST.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub tag: Tag,
    /// UTC, to the second (the time in the tag).
    pub created_at: DateTime<Utc>,
    pub kind: Kind,
    pub tool: ToolInfo,
    /// Host name as the OS reports it (the tag carries a slug of it).
    pub host: String,
    pub databases: Vec<DatabaseEntry>,
    pub files: Vec<FileEntry>,
    /// What the user said about the snapshot (`backup now --note`). Absent when none was
    /// given; older builds ignore it (their manifest parsing skips unknown fields), so it needs
    /// no new `manifest_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The full snapshot a differential needs (version 2 only): a restore rebuilds what this
    /// archive does not hold from that one archive, never a chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
}

/// The full snapshot a differential was taken against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRef {
    pub tag: Tag,
    /// sha256 of the base's archive: a rebuild uses only that very archive.
    pub sha256: String,
}

/// How a differential stores a database: the pages that differ from the base's copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPages {
    /// The member that holds the changed pages (see [`crate::archive::pages`]).
    pub archive_path: String,
    pub size: u64,
    pub sha256: String,
    /// Pages of the database as copied.
    pub page_count: u64,
    /// Pages the member holds.
    pub changed: u64,
    /// sha256 of the base's copy of this database, which the pages are laid over.
    pub base_sha256: String,
}

/// The longest note a snapshot keeps, in characters: a line for `backup list`, well inside a
/// GitHub release body.
pub const NOTE_MAX_CHARS: usize = 200;

/// `text` as a snapshot keeps it: trimmed, one line of at most [`NOTE_MAX_CHARS`] characters.
///
/// # Errors
/// [`Error::Config`] (a usage error) for an empty note, a control character (a line break), or
/// one too long.
pub fn clean_note(text: &str) -> Result<String> {
    let note = text.trim();
    if note.is_empty() {
        return Err(Error::Config(
            "the note is empty; give a few words, e.g. --note \"before migration 7\"".into(),
        ));
    }
    if note.chars().any(char::is_control) {
        return Err(Error::Config(
            "the note holds a line break or another control character; give it as one line".into(),
        ));
    }
    // Invisible characters and those that turn the text's direction would make the note read
    // differently from what it holds (in a listing, a release body or a terminal).
    if note.chars().any(|c| {
        matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    }) {
        return Err(Error::Config(
            "the note holds an invisible or direction-changing character; give it as plain text"
                .into(),
        ));
    }
    let chars = note.chars().count();
    if chars > NOTE_MAX_CHARS {
        return Err(Error::Config(format!(
            "the note is {chars} characters long; keep it to {NOTE_MAX_CHARS}"
        )));
    }
    Ok(note.to_string())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

impl ToolInfo {
    /// This build.
    pub fn current() -> ToolInfo {
        ToolInfo {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// One database copy, described from the copy itself (not the live file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseEntry {
    /// Logical name from the config.
    pub name: String,
    /// Path as configured: relative to the config file's folder when inside it.
    pub path: String,
    /// Path inside the archive.
    pub archive_path: String,
    pub user_version: i64,
    pub page_size: u64,
    /// Journal mode of the live database (`wal`, `delete`, …).
    pub journal_mode: String,
    pub size: u64,
    pub sha256: String,
    /// Row count of every table, by name.
    pub tables: BTreeMap<String, u64>,
    /// What `integrity_check` and `foreign_key_check` found in the copy (empty: it passed);
    /// `None` in manifests written before snapshots ran the restore's checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Findings>,
    /// When the copy was taken, to the nanosecond (the start of the backup step's read): a live
    /// file modified later may hold changes the copy lacks. Absent in older manifests.
    #[serde(default)]
    pub copied_at: Option<DateTime<Utc>>,
    /// Unix permission bits of the live database, for a restore where none exists. Absent in
    /// older manifests.
    #[serde(default)]
    pub mode: Option<u32>,
    /// In a differential, the pages that changed since the base; then `archive_path`, `size`
    /// and `sha256` describe the database rebuilt from the base's copy and these pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pages: Option<StoredPages>,
}

/// One included plain file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path as configured: relative to the config file's folder when inside it.
    pub path: String,
    pub archive_path: String,
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    pub sha256: String,
    /// In a differential: unchanged since the base, so the base's archive holds it, under the
    /// same path; this archive does not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_base: bool,
}

/// A file an archive holds, with what it must be.
pub struct Member<'a> {
    pub archive_path: &'a str,
    pub size: u64,
    pub sha256: &'a str,
    /// Permission bits to give the extracted file.
    pub mode: u32,
}

impl Manifest {
    /// The databases whose checks found something, with what they found.
    pub fn findings(&self) -> impl Iterator<Item = (&str, &Findings)> {
        self.databases.iter().filter_map(|d| {
            d.findings
                .as_ref()
                .filter(|f| !f.is_empty())
                .map(|f| (d.name.as_str(), f))
        })
    }

    /// Total findings of every database; `None` when the snapshot predates the checks.
    pub fn findings_count(&self) -> Option<u64> {
        self.databases
            .iter()
            .map(|d| d.findings.as_ref().map(Findings::count))
            .sum()
    }

    /// Whether this is a differential (it needs its base to restore).
    pub fn is_differential(&self) -> bool {
        self.base.is_some()
    }

    /// The files this archive itself holds, after the manifest: each database (or its changed
    /// pages) and each included file not left in the base.
    pub fn members(&self) -> impl Iterator<Item = Member<'_>> {
        let databases = self.databases.iter().map(|d| match &d.pages {
            Some(pages) => Member {
                archive_path: &pages.archive_path,
                size: pages.size,
                sha256: &pages.sha256,
                mode: 0o600,
            },
            None => Member {
                archive_path: &d.archive_path,
                size: d.size,
                sha256: &d.sha256,
                mode: 0o600,
            },
        });
        let files = self.files.iter().filter(|f| !f.in_base).map(|f| Member {
            archive_path: &f.archive_path,
            size: f.size,
            sha256: &f.sha256,
            // Never setuid, setgid or sticky bits from an archive.
            mode: f.mode & 0o777,
        });
        databases.chain(files)
    }

    /// Total bytes of the members this archive holds (see [`Manifest::members`]).
    pub fn stored_bytes(&self) -> u64 {
        self.members()
            .map(|m| m.size)
            .fold(0u64, u64::saturating_add)
    }

    /// Total bytes of the files the snapshot restores (a differential's as rebuilt).
    pub fn payload_bytes(&self) -> u64 {
        // Saturating: the sizes come from an archive that may be hostile (found by fuzzing).
        self.databases
            .iter()
            .map(|d| d.size)
            .chain(self.files.iter().map(|f| f.size))
            .fold(0u64, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_one_line_of_plain_visible_text() {
        assert_eq!(
            clean_note("  before migration 7 ").unwrap(),
            "before migration 7"
        );
        for bad in [
            "",
            "two\nlines",
            "tab\there",
            "right-to-left \u{202E}txet",
            "line\u{2028}separator",
            "zero\u{200B}width",
            &"x".repeat(NOTE_MAX_CHARS + 1),
        ] {
            assert!(clean_note(bad).is_err(), "{bad:?}");
        }
    }
}
