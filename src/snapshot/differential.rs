//! Choosing the full snapshot a differential is taken against, and keeping the page hashes of
//! fulls in the local folder (`page-hashes/<tag>/<database>`), made again from the full's own
//! archive when they are lost.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::archive::pages::{self, PageHashes};
use crate::archive::{DatabaseEntry, Manifest};
use crate::catalog;
use crate::config::Config;
use crate::fsutil::{self, TempPath};
use crate::layout::{PAGE_HASHES_DIR, TEMP_PREFIX};
use crate::tag::Tag;

/// The full snapshot a differential is taken against.
pub(super) struct Base {
    pub tag: Tag,
    /// sha256 of its archive, as recorded when it was made.
    pub sha256: String,
    pub manifest: Manifest,
    /// The page-hash file of each of its databases that has one.
    hashes: BTreeMap<String, PathBuf>,
}

impl Base {
    /// The page hashes of the base's copy of database `name`, if they are at hand and of
    /// `page_size`.
    pub fn hashes(&self, name: &str, page_size: u32) -> Option<PageHashes> {
        let hashes = PageHashes::open(self.hashes.get(name)?).ok()?;
        (hashes.page_size == page_size).then_some(hashes)
    }

    /// The base's entry for database `name`.
    pub fn database(&self, name: &str) -> Option<&DatabaseEntry> {
        self.manifest.databases.iter().find(|d| d.name == name)
    }
}

/// The full a scheduled snapshot taken at `now` may store only its changes against: this
/// machine's newest full in the local folder, younger than `[snapshot] full_every`, not dated
/// after `now`, with its checksum record and not known to be damaged. `Err` says why a full is
/// taken instead.
pub(super) fn choose_base(config: &Config, now: DateTime<Utc>) -> Result<Base, String> {
    let full_every = config.snapshot.full_every.as_secs();
    if full_every == 0 {
        return Err("[snapshot] full_every = \"0s\"".into());
    }
    let host = crate::tag::this_host();
    let local = catalog::local_snapshots(&config.local_dir).map_err(|e| e.to_string())?;
    let mut newest_first = local.iter().rev().filter(|s| s.tag.host() == host);
    // The bases the differentials since the newest full were taken against.
    let mut bases_since = Vec::new();
    let (snapshot, manifest) = loop {
        let Some(snapshot) = newest_first.next() else {
            return Err("no full snapshot of this machine in the local folder".into());
        };
        match crate::archive::read::read_base(&snapshot.path) {
            Ok(Some(base)) => bases_since.push(base.tag),
            Ok(None) => match crate::archive::read::read_manifest(&snapshot.path) {
                Ok(manifest) => break (snapshot, manifest),
                Err(e) => tracing::debug!("{}: {e}", snapshot.path.display()),
            },
            Err(e) => tracing::debug!("{}: {e}", snapshot.path.display()),
        }
    };
    let tag = snapshot.tag.clone();
    // A later differential that names another base found its base missing: start afresh.
    if let Some(missing) = bases_since.iter().find(|b| **b != tag) {
        return Err(format!(
            "the base of the last differential, {missing}, is not in the local folder"
        ));
    }
    let taken = tag.taken_at();
    if taken >= now {
        return Err(format!(
            "the last full, {tag}, is dated after now (a wrong clock)"
        ));
    }
    if (now - taken).num_seconds() >= i64::try_from(full_every).unwrap_or(i64::MAX) {
        return Err(format!(
            "the last full, {tag}, is older than [snapshot] full_every ({})",
            config.snapshot.full_every
        ));
    }
    if crate::integrity::known_damaged(&config.local_dir)
        .iter()
        .any(|d| d.tag == tag)
    {
        return Err(format!("the last full, {tag}, is damaged"));
    }
    let Some(sha256) = fsutil::read_checksum(&snapshot.path) else {
        return Err(format!("the last full, {tag}, has no checksum record"));
    };
    let folder = hashes_folder(&config.local_dir, &tag);
    // What a run killed while making them again left (the caller holds the run lock).
    for entry in fs::read_dir(&folder).into_iter().flatten().flatten() {
        if crate::layout::is_our_temp(&entry.file_name().to_string_lossy()) {
            let _ = fs::remove_file(entry.path());
        }
    }
    let mut hashes = BTreeMap::new();
    for entry in &manifest.databases {
        match hashes_of(&folder, &snapshot.path, entry) {
            Ok(path) => {
                hashes.insert(entry.name.clone(), path);
            }
            Err(e) => tracing::info!(
                "database `{}` is stored whole: the page hashes of {tag} could not be read or made again ({e})",
                entry.name
            ),
        }
    }
    Ok(Base {
        tag,
        sha256,
        manifest,
        hashes,
    })
}

/// Where the page hashes of full `tag` are kept.
fn hashes_folder(local_dir: &Path, tag: &Tag) -> PathBuf {
    local_dir.join(PAGE_HASHES_DIR).join(tag.as_str())
}

/// The page-hash file of the full's copy `entry`: the one kept in `folder` when it describes that
/// very copy, else made again from the full's `archive` (its sha256 checked on the way).
fn hashes_of(folder: &Path, archive: &Path, entry: &DatabaseEntry) -> Result<PathBuf, String> {
    // The name becomes a file name: only a plain one (as the config allows) is trusted.
    if !crate::archive::read::is_plain_relative(&entry.name)
        || entry.name.contains('/')
        || entry.name.starts_with('.')
    {
        return Err(format!("`{}` is not a plain name", entry.name));
    }
    let path = folder.join(&entry.name);
    if PageHashes::open(&path).is_ok_and(|h| h.sha256 == entry.sha256) {
        return Ok(path);
    }
    let page_size = u32::try_from(entry.page_size).map_err(|e| e.to_string())?;
    fsutil::create_private_dir_all(folder).map_err(|e| e.to_string())?;
    let temp = TempPath::new(folder.join(format!("{TEMP_PREFIX}{}", entry.name)));
    let _ = fs::remove_file(temp.path());
    let scanned = crate::archive::read::read_member(archive, &entry.archive_path, |reader| {
        pages::scan(reader, page_size, temp.path(), None)
    })
    .map_err(|e| e.to_string())?
    .ok_or("the archive does not hold the database")?;
    if scanned.sha256 != entry.sha256 {
        return Err("the archive's copy does not match its manifest".into());
    }
    temp.persist(&path).map_err(|e| e.to_string())?;
    tracing::info!(
        "made the page hashes of {} again from its archive",
        entry.name
    );
    Ok(path)
}

/// Keeps the page hashes of `tag` alone (a later differential is only ever taken against the
/// newest full): those in `made` (a new full's, from its staging folder) are moved into place.
/// Best effort: hashes that are missing are made again from the archive when next needed.
pub(super) fn keep_hashes(local_dir: &Path, tag: &Tag, made: Option<&Path>) {
    let root = local_dir.join(PAGE_HASHES_DIR);
    if let Some(made) = made {
        let target = hashes_folder(local_dir, tag);
        let moved = fsutil::create_private_dir_all(&root)
            .and_then(|()| fs::rename(made, &target))
            .and_then(|()| fs::File::open(&root)?.sync_all());
        if let Err(e) = moved {
            tracing::info!(
                "the page hashes of {tag} were not kept ({e}); they will be made again from its archive"
            );
        }
    }
    let Ok(entries) = fs::read_dir(&root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_str() != Some(tag.as_str()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
