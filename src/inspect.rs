//! Looking into snapshots without restoring them: a snapshot's manifest in words (`backup show`),
//! what changed between two snapshots or between a snapshot and the live data (`backup diff`),
//! and what the snapshots take up (`backup stats`).
//!
//! Everything here reads manifests, never whole archives, where it can: a local archive's
//! manifest is its first entry, and a folder remote reads that in place. A remote that keeps no
//! readable manifest (GitHub: its release record lacks the per-table row counts and the files)
//! has its archive downloaded into a temporary file of the local folder, read and removed.
//! The live databases are only read (see `snapshot::read_live_counts`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::{FileEntry, Manifest, manifest::ToolInfo};
use crate::catalog::{self, Chosen, LocalSnapshot, Location};
use crate::checks::Findings;
use crate::config::Config;
use crate::error::{Error, IoContext, RemoteError, RemoteErrorKind, Result};
use crate::fsutil::{self, TempPath};
use crate::progress::Progress;
use crate::remote::{Remote, RemoteSnapshot};
use crate::tag::{Kind, Tag};

/// How many days `backup stats` measures growth over.
pub const GROWTH_DAYS: i64 = 7;

/// What is known of the snapshots, locally and on the remote, before any manifest is read.
struct Known {
    local: Vec<LocalSnapshot>,
    /// The remote's listing; empty when there is no remote or it could not be read.
    remote: Vec<RemoteSnapshot>,
    /// Whether the remote's listing is known: no remote is configured, or it was read.
    remote_known: bool,
    /// Why the remote could not be listed.
    remote_error: Option<Error>,
    /// Local copies a check found damaged (`checked.json`).
    damaged: Vec<Tag>,
}

impl Known {
    fn gather(local_dir: &Path, remote: Option<&Remote>) -> Result<Known> {
        let local = catalog::local_snapshots(local_dir)?;
        let (listed, remote_error) = match remote.map(Remote::list) {
            None => (Vec::new(), None),
            Some(Ok(listed)) => (listed, None),
            Some(Err(e)) => (Vec::new(), Some(e)),
        };
        Ok(Known {
            local,
            remote: listed,
            remote_known: remote_error.is_none(),
            remote_error,
            damaged: crate::integrity::known_damaged(local_dir)
                .into_iter()
                .map(|d| d.tag)
                .collect(),
        })
    }

    fn local(&self, tag: &Tag) -> Option<&LocalSnapshot> {
        self.local.iter().find(|s| &s.tag == tag)
    }

    fn remote(&self, tag: &Tag) -> Option<&RemoteSnapshot> {
        self.remote.iter().find(|s| &s.tag == tag)
    }

    /// The snapshot `text` names (see [`catalog::choose`]), with a note when the remote could
    /// not be listed and it was chosen among the local snapshots.
    fn choose(&self, text: &str, host: Option<&str>) -> Result<Chosen> {
        let tags: Vec<&Tag> = self
            .local
            .iter()
            .map(|s| &s.tag)
            .chain(self.remote.iter().map(|s| &s.tag))
            .collect();
        match (catalog::choose(text, host, &tags), &self.remote_error) {
            (Ok(mut chosen), Some(e)) => {
                chosen.notes.push(format!(
                    "the remote could not be listed ({e}); `{text}` was chosen among the local snapshots"
                ));
                Ok(chosen)
            }
            (Err(Error::NotFound(_)), Some(e)) => Err(RemoteError::new(
                e.remote_kind().unwrap_or(RemoteErrorKind::Failed),
                format!(
                    "`{text}` is not among the local snapshots, and the remote could not be listed: {e}"
                ),
            )
            .into()),
            (result, _) => result,
        }
    }

    fn location(&self, tag: &Tag) -> Option<Location> {
        Location::of(
            self.local(tag).map(|s| s.size),
            self.remote(tag).map(|s| s.size),
            self.remote_known,
        )
    }

    /// The manifest of `tag` and where it was read: the local archive (unless a check found it
    /// damaged and the remote holds it), else the remote's in place, else a download.
    fn manifest(
        &self,
        tag: &Tag,
        local_dir: &Path,
        remote: Option<&Remote>,
        progress: &dyn Progress,
    ) -> Result<(Manifest, ManifestSource)> {
        let held = remote.zip(self.remote(tag));
        let damaged = self.damaged.contains(tag);
        let mut local_error = None;
        if let Some(local) = self.local(tag).filter(|_| !damaged || held.is_none()) {
            match crate::archive::read::read_manifest(&local.path) {
                Ok(manifest) => return checked(tag, manifest, ManifestSource::Local),
                Err(e) => local_error = Some(e),
            }
        }
        let Some((remote, held)) = held else {
            return Err(local_error.unwrap_or_else(|| {
                Error::NotFound(format!(
                    "snapshot {tag} is neither here nor on the remote; `backup list` shows the snapshots there are"
                ))
            }));
        };
        if let Some(manifest) = remote.peek_manifest(tag) {
            return checked(tag, manifest, ManifestSource::Remote);
        }
        let manifest = download_manifest(local_dir, remote, held, progress)?;
        checked(tag, manifest, ManifestSource::Download)
    }
}

/// `manifest`, unless it describes another snapshot than `tag` (an archive renamed by hand).
fn checked(
    tag: &Tag,
    manifest: Manifest,
    source: ManifestSource,
) -> Result<(Manifest, ManifestSource)> {
    if &manifest.tag != tag {
        return Err(Error::Damaged(format!(
            "the archive of {tag} holds the manifest of {}: it was renamed; name the snapshot by the tag inside it",
            manifest.tag
        )));
    }
    Ok((manifest, source))
}

/// Downloads the archive of `held` into a temporary file of the local folder, reads its manifest
/// and removes it.
fn download_manifest(
    local_dir: &Path,
    remote: &Remote,
    held: &RemoteSnapshot,
    progress: &dyn Progress,
) -> Result<Manifest> {
    fsutil::create_private_dir_all(local_dir).at("cannot create local folder", local_dir)?;
    fsutil::ensure_space(
        local_dir,
        held.size,
        "the archive downloaded to read its manifest",
    )?;
    let temp = TempPath::new(local_dir.join(crate::layout::inspect_download_name(&held.tag)));
    let (size, sha256) = remote.fetch(&held.tag, temp.path(), progress)?;
    if let Some(want) = &held.sha256
        && (want != &sha256 || size != held.size)
    {
        return Err(RemoteError::new(
            RemoteErrorKind::Corrupt,
            format!(
                "the download of {} has sha256 {sha256} ({size} bytes), but the remote recorded {want} ({} bytes); the remote copy or the transfer is damaged",
                held.tag, held.size
            ),
        )
        .into());
    }
    crate::archive::read::read_manifest(temp.path())
}

/// Where a manifest was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestSource {
    /// The local archive's first entry.
    Local,
    /// The remote's copy, read in place (a folder remote).
    Remote,
    /// The remote's archive, downloaded to a temporary file and removed.
    Download,
}

// ---- backup show ----

/// `backup show`: one snapshot's manifest, and where the snapshot is.
#[derive(Clone, Debug, Serialize)]
pub struct ShowReport {
    pub tag: Tag,
    /// When the snapshot was taken (UTC, to the second).
    pub time: DateTime<Utc>,
    /// The host name as its OS reported it.
    pub host: String,
    /// The host as the tag (and `backup list`) shows it.
    pub host_id: String,
    pub kind: Kind,
    pub note: Option<String>,
    pub tool: ToolInfo,
    pub manifest_version: u32,
    /// The full snapshot this one is a differential of (a restore reads both); `None` for a
    /// full.
    pub base: Option<Tag>,
    #[serde(rename = "where")]
    pub location: Location,
    /// The local copy was found damaged by a run's check or a restore (`checked.json`).
    pub local_damaged: bool,
    /// The local archive's size; `None` when it is not here.
    pub local_size: Option<u64>,
    /// The remote archive's size; `None` when the remote does not hold it (or was not read).
    pub remote_size: Option<u64>,
    pub manifest_from: ManifestSource,
    pub databases: Vec<ShownDatabase>,
    pub files: ShownFiles,
    /// Total check findings when the snapshot was taken (0: every check passed); `None` when it
    /// predates the checks.
    pub findings: Option<u64>,
    /// What the user should know about the choice and the remote (stderr, not JSON).
    #[serde(skip)]
    pub notes: Vec<String>,
    /// Why the remote could not be listed (so `where` is incomplete).
    #[serde(skip)]
    pub remote_error: Option<String>,
}

/// One database of a snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct ShownDatabase {
    pub name: String,
    pub path: String,
    /// `PRAGMA user_version`: the app's schema version.
    pub user_version: i64,
    pub page_size: u64,
    pub journal_mode: String,
    pub size: u64,
    pub sha256: String,
    pub copied_at: Option<DateTime<Utc>>,
    /// Row count of every table, by name.
    pub tables: BTreeMap<String, u64>,
    /// All of them together.
    pub rows: u64,
    /// What the checks found when it was copied (empty: they passed); `None` before checks ran.
    pub findings: Option<Findings>,
    /// In a differential, how many pages it stores (changed since the base); `None` when the
    /// archive holds the whole database.
    pub changed_pages: Option<u64>,
}

/// The included files of a snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct ShownFiles {
    pub count: usize,
    /// Their sizes together.
    pub bytes: u64,
    /// Each of them, when asked for (`--files`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<Vec<FileEntry>>,
}

/// The snapshot `which` names (`--host` is `host`) described from its manifest; `list_files`
/// keeps every included file in the report.
///
/// # Errors
/// The selector's error for a snapshot that cannot be named; a manifest that cannot be read.
pub fn show(
    config: &Config,
    remote: Option<&Remote>,
    which: &str,
    host: Option<&str>,
    list_files: bool,
    progress: &dyn Progress,
) -> Result<ShowReport> {
    let known = Known::gather(&config.local_dir, remote)?;
    let chosen = known.choose(which, host)?;
    let tag = chosen.tag;
    let (manifest, source) = known.manifest(&tag, &config.local_dir, remote, progress)?;
    let location = known
        .location(&tag)
        .expect("a chosen snapshot is somewhere");
    let findings = manifest.findings_count();
    let databases = manifest
        .databases
        .iter()
        .map(|d| ShownDatabase {
            name: d.name.clone(),
            path: d.path.clone(),
            user_version: d.user_version,
            page_size: d.page_size,
            journal_mode: d.journal_mode.clone(),
            size: d.size,
            sha256: d.sha256.clone(),
            copied_at: d.copied_at,
            rows: d.tables.values().sum(),
            tables: d.tables.clone(),
            findings: d.findings.clone(),
            changed_pages: d.pages.as_ref().map(|p| p.changed),
        })
        .collect();
    let files = ShownFiles {
        count: manifest.files.len(),
        bytes: manifest
            .files
            .iter()
            .map(|f| f.size)
            .fold(0, u64::saturating_add),
        list: list_files.then(|| manifest.files.clone()),
    };
    Ok(ShowReport {
        time: manifest.created_at,
        host: manifest.host,
        host_id: tag.host().to_string(),
        kind: manifest.kind,
        note: manifest.note,
        tool: manifest.tool,
        manifest_version: manifest.manifest_version,
        base: manifest.base.as_ref().map(|b| b.tag.clone()),
        location,
        local_damaged: known.damaged.contains(&tag),
        local_size: known.local(&tag).map(|s| s.size),
        remote_size: known.remote(&tag).map(|s| s.size),
        manifest_from: source,
        databases,
        files,
        findings,
        notes: chosen.notes,
        remote_error: known.remote_error.map(|e| e.to_string()),
        tag,
    })
}

// ---- backup diff ----

/// `backup diff`: what changed from one snapshot to another, or to the live data.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    pub from: DiffSide,
    pub to: DiffSide,
    /// Every database of either side, by name.
    pub databases: Vec<DatabaseDiff>,
    pub files: FilesDiff,
    /// What the user should know about the choices (stderr, not JSON).
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// One side of a diff: a snapshot, or the live data.
#[derive(Clone, Debug, Serialize)]
pub struct DiffSide {
    /// `None` for the live data.
    pub tag: Option<Tag>,
    /// When the snapshot was taken, or when the live data was read.
    pub time: DateTime<Utc>,
    pub live: bool,
    /// Where the snapshot's manifest was read; `None` for the live data.
    pub manifest_from: Option<ManifestSource>,
}

/// How one database or file changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Unchanged,
    Changed,
    Added,
    Removed,
}

/// One database, old → new.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseDiff {
    pub name: String,
    pub change: Change,
    /// The schema version (`user_version`) on each side; `None` where it is absent.
    pub old_user_version: Option<i64>,
    pub new_user_version: Option<i64>,
    /// Every table of either side, by name.
    pub tables: Vec<TableDiff>,
}

/// One table's row count, old → new.
#[derive(Clone, Debug, Serialize)]
pub struct TableDiff {
    pub table: String,
    /// `None` where the table does not exist.
    pub old: Option<u64>,
    pub new: Option<u64>,
    /// `new - old`, an absent table counting as 0 rows.
    pub change: i64,
}

/// The included files, old → new, compared by sha256.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FilesDiff {
    pub added: Vec<FileDiff>,
    pub removed: Vec<FileDiff>,
    pub changed: Vec<FileDiff>,
    pub unchanged: usize,
}

/// One included file that differs.
#[derive(Clone, Debug, Serialize)]
pub struct FileDiff {
    /// As the manifest shows it: relative to the config file's folder when inside it.
    pub path: String,
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
    pub old_sha256: Option<String>,
    pub new_sha256: Option<String>,
}

/// What a diff compares of one side.
struct Facts {
    /// Database name → (user_version, row count per table).
    databases: BTreeMap<String, (i64, BTreeMap<String, u64>)>,
    /// Path inside the archive → (path as shown, size, sha256).
    files: BTreeMap<String, (String, u64, String)>,
}

impl Facts {
    fn of_manifest(manifest: &Manifest) -> Facts {
        Facts {
            databases: manifest
                .databases
                .iter()
                .map(|d| (d.name.clone(), (d.user_version, d.tables.clone())))
                .collect(),
            files: manifest
                .files
                .iter()
                .map(|f| {
                    (
                        f.archive_path.clone(),
                        (f.path.clone(), f.size, f.sha256.clone()),
                    )
                })
                .collect(),
        }
    }

    /// The live databases and included files as they are now, read without changing them.
    fn of_live(config: &Config) -> Result<Facts> {
        let mut databases = BTreeMap::new();
        for db in &config.databases {
            if let Some(found) = crate::snapshot::read_live_counts(db)? {
                databases.insert(db.name.clone(), found);
            }
        }
        let mut files = BTreeMap::new();
        for (archive_path, shown, source) in crate::snapshot::live_included_entries(config)? {
            match fsutil::hash_file(&source) {
                Ok((size, sha256)) => {
                    files.insert(archive_path, (shown, size, sha256));
                }
                // Removed since the walk saw it: it is not there.
                Err(Error::Io { source: e, .. }) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Facts { databases, files })
    }
}

/// The snapshot `from` compared with the snapshot `to`, or with the live data when `to` is
/// `None`; `host` is `--host` for both. Two snapshots are compared by their manifests alone.
///
/// # Errors
/// The selector's error for a snapshot that cannot be named; a manifest that cannot be read; a
/// live database or included file that cannot be read.
pub fn diff(
    config: &Config,
    remote: Option<&Remote>,
    from: &str,
    to: Option<&str>,
    host: Option<&str>,
    progress: &dyn Progress,
) -> Result<DiffReport> {
    let known = Known::gather(&config.local_dir, remote)?;
    let mut notes = Vec::new();
    let mut side = |which: &str| -> Result<(DiffSide, Facts)> {
        let chosen = known.choose(which, host)?;
        notes.extend(chosen.notes);
        let (manifest, source) =
            known.manifest(&chosen.tag, &config.local_dir, remote, progress)?;
        let facts = Facts::of_manifest(&manifest);
        Ok((
            DiffSide {
                tag: Some(chosen.tag),
                time: manifest.created_at,
                live: false,
                manifest_from: Some(source),
            },
            facts,
        ))
    };
    let (old_side, old) = side(from)?;
    let (new_side, new) = match to {
        Some(to) => side(to)?,
        None => (
            DiffSide {
                tag: None,
                time: crate::clock::now(),
                live: true,
                manifest_from: None,
            },
            Facts::of_live(config)?,
        ),
    };
    notes.dedup();
    Ok(DiffReport {
        from: old_side,
        to: new_side,
        databases: compare_databases(&old, &new),
        files: compare_files(&old, &new),
        notes,
    })
}

fn compare_databases(old: &Facts, new: &Facts) -> Vec<DatabaseDiff> {
    let names: BTreeSet<&String> = old.databases.keys().chain(new.databases.keys()).collect();
    names
        .into_iter()
        .map(|name| {
            let before = old.databases.get(name);
            let after = new.databases.get(name);
            let empty = BTreeMap::new();
            let old_tables = before.map_or(&empty, |(_, t)| t);
            let new_tables = after.map_or(&empty, |(_, t)| t);
            let table_names: BTreeSet<&String> =
                old_tables.keys().chain(new_tables.keys()).collect();
            let tables: Vec<TableDiff> = table_names
                .into_iter()
                .map(|table| {
                    let old = old_tables.get(table).copied();
                    let new = new_tables.get(table).copied();
                    let count = |n: Option<u64>| i64::try_from(n.unwrap_or(0)).unwrap_or(i64::MAX);
                    TableDiff {
                        table: table.clone(),
                        old,
                        new,
                        change: count(new).saturating_sub(count(old)),
                    }
                })
                .collect();
            let change = match (before, after) {
                (None, _) => Change::Added,
                (_, None) => Change::Removed,
                (Some(b), Some(a)) if b == a => Change::Unchanged,
                _ => Change::Changed,
            };
            DatabaseDiff {
                name: name.clone(),
                change,
                old_user_version: before.map(|(v, _)| *v),
                new_user_version: after.map(|(v, _)| *v),
                tables,
            }
        })
        .collect()
}

fn compare_files(old: &Facts, new: &Facts) -> FilesDiff {
    let mut diff = FilesDiff::default();
    let keys: BTreeSet<&String> = old.files.keys().chain(new.files.keys()).collect();
    for key in keys {
        let before = old.files.get(key);
        let after = new.files.get(key);
        let entry = || FileDiff {
            path: after
                .or(before)
                .map(|(p, _, _)| p.clone())
                .unwrap_or_default(),
            old_size: before.map(|(_, s, _)| *s),
            new_size: after.map(|(_, s, _)| *s),
            old_sha256: before.map(|(_, _, h)| h.clone()),
            new_sha256: after.map(|(_, _, h)| h.clone()),
        };
        match (before, after) {
            (None, Some(_)) => diff.added.push(entry()),
            (Some(_), None) => diff.removed.push(entry()),
            (Some((_, _, a)), Some((_, _, b))) if a == b => diff.unchanged += 1,
            _ => diff.changed.push(entry()),
        }
    }
    diff
}

// ---- backup stats ----

/// `backup stats`: how many snapshots there are and what they take up, locally and remotely.
#[derive(Clone, Debug, Serialize)]
pub struct StatsReport {
    pub local: Tally,
    /// `None` when there is no remote, or it could not be listed.
    pub remote: Option<Tally>,
    /// Per host (as the tag shows it), by name.
    pub hosts: Vec<GroupStats>,
    /// Per kind: manual, scheduled.
    pub kinds: Vec<GroupStats>,
    /// The oldest and newest snapshot anywhere.
    pub oldest: Option<Dated>,
    pub newest: Option<Dated>,
    pub growth: Growth,
    /// Why the remote could not be listed (stderr, not JSON).
    #[serde(skip)]
    pub remote_error: Option<String>,
}

/// A count of snapshots and their archives' bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub count: usize,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// The snapshots of one host or one kind.
#[derive(Clone, Debug, Serialize)]
pub struct GroupStats {
    pub name: String,
    pub local: Tally,
    pub remote: Option<Tally>,
}

/// A snapshot and when it was taken.
#[derive(Clone, Debug, Serialize)]
pub struct Dated {
    pub tag: Tag,
    pub time: DateTime<Utc>,
}

/// Growth per day: the archive bytes of the snapshots taken in the last [`GROWTH_DAYS`] days
/// (every host's, each snapshot counted once wherever it is kept), divided by that many days.
/// What new snapshots add before retention deletes older ones.
#[derive(Clone, Debug, Serialize)]
pub struct Growth {
    pub days: i64,
    /// The start of the window; it ends now.
    pub since: DateTime<Utc>,
    pub snapshots: usize,
    pub bytes: u64,
    pub bytes_per_day: u64,
}

/// Counts and sizes of every snapshot, locally and on the remote (from its listing: nothing is
/// downloaded).
///
/// # Errors
/// When the local folder cannot be read. A remote that cannot be listed is in
/// [`StatsReport::remote_error`].
pub fn stats(config: &Config, remote: Option<&Remote>) -> Result<StatsReport> {
    let known = Known::gather(&config.local_dir, remote)?;
    let has_remote = remote.is_some() && known.remote_known;
    let mut local = Tally::default();
    let mut remote_tally = Tally::default();
    let mut hosts: BTreeMap<String, (Tally, Tally)> = BTreeMap::new();
    let mut kinds: BTreeMap<String, (Tally, Tally)> = BTreeMap::new();
    /// The local (first) or remote (second) tally of a pair.
    fn side(pair: &mut (Tally, Tally), on_remote: bool) -> &mut Tally {
        if on_remote { &mut pair.1 } else { &mut pair.0 }
    }
    let local_copies = known.local.iter().map(|s| (false, &s.tag, s.size));
    let remote_copies = known.remote.iter().map(|s| (true, &s.tag, s.size));
    for (on_remote, tag, size) in local_copies.chain(remote_copies) {
        let all = if on_remote {
            &mut remote_tally
        } else {
            &mut local
        };
        all.add(size);
        side(hosts.entry(tag.host().to_string()).or_default(), on_remote).add(size);
        side(kinds.entry(tag.kind().to_string()).or_default(), on_remote).add(size);
    }
    let group = |(name, (here, there)): (String, (Tally, Tally))| GroupStats {
        name,
        local: here,
        remote: has_remote.then_some(there),
    };
    // Each snapshot once: its local size, else the remote's.
    let mut unique: BTreeMap<&Tag, u64> = BTreeMap::new();
    for s in &known.remote {
        unique.insert(&s.tag, s.size);
    }
    for s in &known.local {
        unique.insert(&s.tag, s.size);
    }
    let dated = |tag: &Tag| Dated {
        tag: tag.clone(),
        time: tag.time(),
    };
    let now = crate::clock::now();
    let since = now - chrono::Duration::days(GROWTH_DAYS);
    let (snapshots, bytes) = unique
        .iter()
        .filter(|(tag, _)| tag.time() > since && tag.time() <= now)
        .fold((0, 0u64), |(n, total), (_, size)| {
            (n + 1, total.saturating_add(*size))
        });
    Ok(StatsReport {
        local,
        remote: has_remote.then_some(remote_tally),
        hosts: hosts.into_iter().map(group).collect(),
        kinds: kinds.into_iter().map(group).collect(),
        oldest: unique.keys().next().map(|t| dated(t)),
        newest: unique.keys().next_back().map(|t| dated(t)),
        growth: Growth {
            days: GROWTH_DAYS,
            since,
            snapshots,
            bytes,
            bytes_per_day: bytes / GROWTH_DAYS as u64,
        },
        remote_error: known.remote_error.map(|e| e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(tables: &[(&str, u64)], files: &[(&str, &str)]) -> Facts {
        Facts {
            databases: [(
                "tasks".to_string(),
                (3, tables.iter().map(|(t, n)| (t.to_string(), *n)).collect()),
            )]
            .into_iter()
            .collect(),
            files: files
                .iter()
                .map(|(p, h)| (format!("files/{p}"), (p.to_string(), 1, h.to_string())))
                .collect(),
        }
    }

    #[test]
    fn rows_and_files_are_compared_old_to_new() {
        let old = facts(
            &[("tasks", 10), ("gone", 2)],
            &[("a", "1"), ("b", "2"), ("c", "3")],
        );
        let new = facts(
            &[("tasks", 4), ("fresh", 1)],
            &[("a", "1"), ("b", "9"), ("d", "4")],
        );
        let dbs = compare_databases(&old, &new);
        assert_eq!(dbs.len(), 1);
        assert_eq!(dbs[0].change, Change::Changed);
        let changes: Vec<(&str, Option<u64>, Option<u64>, i64)> = dbs[0]
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t.old, t.new, t.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("fresh", None, Some(1), 1),
                ("gone", Some(2), None, -2),
                ("tasks", Some(10), Some(4), -6)
            ]
        );
        let files = compare_files(&old, &new);
        let paths = |list: &[FileDiff]| list.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&files.added), ["d"]);
        assert_eq!(paths(&files.removed), ["c"]);
        assert_eq!(paths(&files.changed), ["b"]);
        assert_eq!(files.unchanged, 1);
        assert_eq!(compare_databases(&old, &old)[0].change, Change::Unchanged);
    }
}
