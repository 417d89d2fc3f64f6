//! Taking a snapshot: consistent copies of every database and included file into a staging
//! folder, checks on the copies, `MANIFEST.json` computed from the copies, and one
//! `<tag>.tar.gz` (or `.tar.zst`) written durably into the local snapshot folder.

mod differential;
mod hot_copy;
pub(crate) use hot_copy::{probe_database, read_live_counts};

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::SubsecRound;

use crate::archive::pages;
use crate::archive::{
    self, BaseRef, DIFFERENTIAL_MANIFEST_VERSION, DatabaseEntry, FileEntry, MANIFEST_VERSION,
    Manifest, StoredPages, manifest,
};
use crate::config::{Config, DatabaseConfig};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, TempPath};
use crate::layout::{self, STAGING_PREFIX, TEMP_PREFIX};
use crate::progress::Progress;
use crate::tag::{self, Kind, Tag};

/// Room kept free on top of the computed need, for the manifest, tar headers and the file system.
const SPACE_MARGIN: u64 = 16 << 20;

/// A snapshot written to the local folder.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub tag: Tag,
    pub archive: PathBuf,
    /// Archive size in bytes.
    pub size: u64,
    /// sha256 of the archive, hex.
    pub sha256: String,
    pub manifest: Manifest,
    /// Time spent copying and checking the sources.
    pub copy_time: Duration,
    /// Time spent packing and compressing.
    pub pack_time: Duration,
}

/// A plain file found under an `[[include]]`, before copying.
struct IncludedFile {
    source: PathBuf,
    /// As shown to the user and recorded in the manifest.
    display: String,
    archive_path: String,
    size: u64,
}

/// Takes a snapshot of everything `config` names into `config.local_dir`, with the user's
/// `note` (already cleaned by [`crate::archive::manifest::clean_note`]) in its manifest. With
/// `differential`, it stores only what changed since the last full when one may serve as its
/// base (see [`differential::choose_base`]), unless that is more than half of the full.
///
/// The caller holds the run lock. Nothing is left behind on failure: the staging folder and the
/// temporary archive are removed.
///
/// # Errors
/// A missing or unreadable database or include, a copy SQLite cannot read, too little free
/// space (with the numbers), or an I/O failure writing the archive. A copy that fails the
/// integrity or foreign key check is not an error: its findings go into the manifest.
pub fn take(
    config: &Config,
    kind: Kind,
    note: Option<&str>,
    differential: bool,
    progress: &dyn Progress,
) -> Result<Snapshot> {
    let started = Instant::now();
    let host = tag::hostname();
    let taken = crate::clock::now();
    // The tag orders snapshots to the millisecond; the manifest keeps the second it shows.
    let local = &config.local_dir;
    // Never the name of an archive already here (a clock set back, or frozen by a test).
    let tag = std::iter::repeat_with(|| Tag::new(taken, kind, &host))
        .find(|t| {
            t.archive_names()
                .iter()
                .all(|name| fs::symlink_metadata(local.join(name)).is_err())
        })
        .expect("a fresh random suffix is eventually free");
    let created_at = taken.trunc_subsecs(0);

    let mut source_bytes = 0u64;
    for db in &config.databases {
        source_bytes += database_bytes(db)?;
    }
    let files = collect_includes(config)?;
    source_bytes += files.iter().map(|f| f.size).sum::<u64>();
    let mut base = if differential {
        differential::choose_base(config, taken)
            .map_err(|why| tracing::info!("a full snapshot: {why}"))
            .ok()
    } else {
        None
    };
    // A differential's pages stop at half the full's size (then it is a full after all).
    let pages_budget = base.as_ref().map_or(0, |b| b.manifest.payload_bytes() / 2);
    // The copies, their page hashes (32 bytes a page of at least 512), the changed pages, then
    // an archive at most about as large as the copies.
    fsutil::ensure_space(
        local,
        2 * source_bytes + source_bytes / 16 + pages_budget + SPACE_MARGIN,
        "the snapshot in [local] dir (copies of the sources, then the archive)",
    )?;

    let staging = TempPath::new(local.join(format!("{TEMP_PREFIX}{STAGING_PREFIX}{tag}")));
    fsutil::create_private_dir(staging.path())
        .at("cannot create staging folder", staging.path())?;
    let db_dir = staging.path().join("databases");
    fsutil::create_private_dir(&db_dir).at("cannot create staging folder", &db_dir)?;

    // The page hashes of every copy: kept if this snapshot ends up a full.
    let hashes_dir = staging.path().join("page-hashes");
    fsutil::create_private_dir(&hashes_dir).at("cannot create staging folder", &hashes_dir)?;

    let mut databases = Vec::new();
    let mut copies = Vec::new();
    // The estimate is the live files' size; a copy can differ by what the WAL holds.
    let estimate = config
        .databases
        .iter()
        .filter_map(|db| fs::metadata(&db.path).ok())
        .map(|m| m.len())
        .sum();
    progress.phase("copying databases", estimate);
    for db in &config.databases {
        let archive_path = format!("databases/{}.db", db.name);
        let copy_path = staging.path().join(&archive_path);
        // Given back to a restore where no live file exists.
        let mode = fs::metadata(&db.path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777);
        let copy_started = Instant::now();
        let (journal_mode, copied_at) = hot_copy::copy_database(db, &copy_path)?;
        let copied = copy_started.elapsed();
        let pages_path = fsutil::with_suffix(&copy_path, ".pages");
        let base_hashes = |page_size| base.as_ref()?.hashes(&db.name, page_size);
        let budget = pages_budget.saturating_sub(
            databases
                .iter()
                .filter_map(|d: &DatabaseEntry| d.pages.as_ref().map(|p| p.size))
                .sum(),
        );
        // The check and the hash each read the whole copy: run them side by side.
        let (facts, scanned) = std::thread::scope(|s| {
            let hashing = s.spawn(|| {
                let started = Instant::now();
                let scanned = scan_copy(
                    &copy_path,
                    &hashes_dir.join(&db.name),
                    &pages_path,
                    base_hashes,
                    budget,
                );
                (scanned, started.elapsed())
            });
            let started = Instant::now();
            let facts = hot_copy::inspect_copy(db, &copy_path);
            let checked = started.elapsed();
            let (scanned, hashed) = hashing.join().expect("hash thread panicked");
            tracing::debug!(
                "database `{}`: copied in {:.2}s, checked in {:.2}s, hashed in {:.2}s (side by side)",
                db.name,
                copied.as_secs_f64(),
                checked.as_secs_f64(),
                hashed.as_secs_f64()
            );
            (facts, scanned)
        });
        let facts = facts?;
        let (size, sha256, stored_pages) = scanned?;
        let stored_pages = stored_pages.map(|(page_count, written)| StoredPages {
            archive_path: format!("{archive_path}.pages"),
            size: written.size,
            sha256: written.sha256,
            page_count,
            changed: written.changed,
            base_sha256: base
                .as_ref()
                .and_then(|b| b.database(&db.name))
                .map(|d| d.sha256.clone())
                .unwrap_or_default(),
        });
        copies.push((copy_path.clone(), pages_path));
        databases.push(DatabaseEntry {
            name: db.name.clone(),
            path: config.display_path(&db.path),
            archive_path: archive_path.clone(),
            user_version: facts.user_version,
            page_size: facts.page_size,
            journal_mode,
            size,
            sha256,
            tables: facts.tables,
            findings: Some(facts.findings),
            copied_at: Some(copied_at),
            mode,
            pages: stored_pages,
        });
        progress.advance(size);
    }
    progress.done();
    crate::failpoint::hit("snapshot-copied");

    // The included files are copied one after another into one staging file: a queue of
    // 50,000 small files is then one file made and removed, not 50,000 (whose freed inodes a
    // file system such as ext4 makes the next 50,000 creations step around for minutes).
    let mut file_entries = Vec::new();
    let mut file_offsets = Vec::new();
    let blob_path = staging.path().join("files.blob");
    let mut blob = Blob {
        writer: std::io::BufWriter::with_capacity(1 << 20, fsutil::create_private(&blob_path)?),
        offset: 0,
    };
    for file in &files {
        // A queue job consumed since the walk is simply no longer part of the state.
        let Some((offset, size, sha256, mode)) = blob.append(&file.source, &blob_path)? else {
            continue;
        };
        file_entries.push(FileEntry {
            path: file.display.clone(),
            archive_path: file.archive_path.clone(),
            size,
            mode,
            sha256,
            in_base: false,
        });
        file_offsets.push(offset);
    }
    blob.writer
        .flush()
        .at("cannot write staging copy", &blob_path)?;
    drop(blob);
    let copy_time = started.elapsed();

    if let Some(full) = &base {
        let unchanged: HashSet<(&str, u64, &str, u32)> = full
            .manifest
            .files
            .iter()
            .map(|f| (f.archive_path.as_str(), f.size, f.sha256.as_str(), f.mode))
            .collect();
        for file in &mut file_entries {
            file.in_base = unchanged.contains(&(
                file.archive_path.as_str(),
                file.size,
                file.sha256.as_str(),
                file.mode,
            ));
        }
    }
    let changed_bytes: u64 = databases
        .iter()
        .map(|d| d.pages.as_ref().map_or(d.size, |p| p.size))
        .chain(file_entries.iter().filter(|f| !f.in_base).map(|f| f.size))
        .sum();
    if let Some(full) = &base
        && changed_bytes > full.manifest.payload_bytes() / 2
    {
        tracing::info!(
            "a full snapshot: {} changed since {}, more than half of it",
            crate::units::human_bytes(changed_bytes),
            full.tag
        );
        base = None;
    }
    // Nothing left to the full: a full it is, needing nothing else.
    if databases.iter().all(|d| d.pages.is_none()) && file_entries.iter().all(|f| !f.in_base) {
        base = None;
    }
    if base.is_none() {
        for db in &mut databases {
            db.pages = None;
        }
        for file in &mut file_entries {
            file.in_base = false;
        }
    }
    let mut staged = Vec::new();
    for (db, (copy, pages)) in databases.iter().zip(&copies) {
        staged.push(match &db.pages {
            Some(stored) => archive::write::Member {
                archive_path: stored.archive_path.clone(),
                source: pages.clone(),
                offset: 0,
                size: stored.size,
                mode: 0o600,
            },
            None => archive::write::Member {
                archive_path: db.archive_path.clone(),
                source: copy.clone(),
                offset: 0,
                size: db.size,
                mode: 0o600,
            },
        });
    }
    for (file, offset) in file_entries.iter().zip(file_offsets) {
        if !file.in_base {
            staged.push(archive::write::Member {
                archive_path: file.archive_path.clone(),
                source: blob_path.clone(),
                offset,
                size: file.size,
                mode: file.mode,
            });
        }
    }

    let manifest = Manifest {
        manifest_version: if base.is_some() {
            DIFFERENTIAL_MANIFEST_VERSION
        } else {
            MANIFEST_VERSION
        },
        tag: tag.clone(),
        created_at,
        kind,
        tool: manifest::ToolInfo::current(),
        host,
        databases,
        files: file_entries,
        note: note.map(str::to_string),
        base: base.as_ref().map(|b| BaseRef {
            tag: b.tag.clone(),
            sha256: b.sha256.clone(),
        }),
    };
    let pack_started = Instant::now();
    let name = format!("{tag}{}", config.snapshot.compression.extension());
    let archive_path = local.join(&name);
    let temp = TempPath::new(local.join(format!("{TEMP_PREFIX}{name}")));
    let (size, sha256) = archive::write::write_archive(
        temp.path(),
        &manifest,
        &staged,
        &config.snapshot.packing(),
        progress,
    )?;
    crate::failpoint::hit("archive-written");
    // The record first: an archive never exists without it (a record alone is harmless).
    fsutil::write_checksum(&archive_path, &sha256)?;
    if let Err(e) = temp.persist(&archive_path) {
        let _ = fs::remove_file(layout::checksum_path(&archive_path));
        return Err(e);
    }
    crate::failpoint::hit("archive-renamed");
    fsutil::sync_dir(local)?;
    match &base {
        Some(full) => differential::keep_hashes(local, &full.tag, None),
        None => differential::keep_hashes(local, &tag, Some(&hashes_dir)),
    }
    drop(staging);
    Ok(Snapshot {
        tag,
        archive: archive_path,
        size,
        sha256,
        manifest,
        copy_time,
        pack_time: pack_started.elapsed(),
    })
}

/// What a pass over a database copy gives: its size and sha256, and with a base, the page count
/// and the pages member written.
type ScannedCopy = (u64, String, Option<(u64, pages::PagesWritten)>);

/// Reads the copy at `copy` once: its sha256, its page hashes into `hashes`, and, when
/// `base_hashes` gives the base's hashes for the copy's page size, the changed pages into `pages`
/// (given up past `budget` bytes: the copy is then stored whole). A copy whose pages cannot be
/// told apart (an unreadable page size, a partial last page) is only hashed, and stored whole.
fn scan_copy(
    copy: &Path,
    hashes: &Path,
    pages_path: &Path,
    base_hashes: impl Fn(u32) -> Option<pages::PageHashes>,
    budget: u64,
) -> Result<ScannedCopy> {
    let Ok(page_size) = pages::page_size_of_file(copy) else {
        let (size, sha256) = fsutil::hash_file(copy)?;
        return Ok((size, sha256, None));
    };
    let mut input = std::io::BufReader::with_capacity(
        1 << 20,
        fs::File::open(copy).at("cannot read staged copy", copy)?,
    );
    let mut base = base_hashes(page_size);
    let mut out = match &base {
        Some(_) => Some(fsutil::create_private(pages_path)?),
        None => None,
    };
    let scanned = pages::scan(
        &mut input,
        page_size,
        hashes,
        base.as_mut()
            .zip(out.as_mut())
            .map(|(h, o)| (h, o as &mut dyn Write, budget)),
    );
    let scanned = match scanned {
        Ok(scanned) => scanned,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            tracing::info!("{}: stored whole: {e}", copy.display());
            let _ = fs::remove_file(hashes);
            let _ = fs::remove_file(pages_path);
            let (size, sha256) = fsutil::hash_file(copy)?;
            return Ok((size, sha256, None));
        }
        Err(e) => return Err(Error::io("cannot hash staged copy", copy, e)),
    };
    if scanned.pages.is_none() {
        let _ = fs::remove_file(pages_path);
    }
    Ok((
        scanned.size,
        scanned.sha256,
        scanned.pages.map(|p| (scanned.page_count, p)),
    ))
}

/// Size of a database with its WAL: the most its copy can take.
fn database_bytes(db: &DatabaseConfig) -> Result<u64> {
    let main = fs::metadata(&db.path).map_err(|e| hot_copy::unreadable(db, &e))?;
    let wal = fs::metadata(fsutil::with_suffix(&db.path, "-wal")).map_or(0, |m| m.len());
    Ok(main.len() + wal)
}

/// What a walk of the includes must not pick up: the snapshot folders (each archive would hold
/// all earlier ones), the databases' own files (copied consistently through SQLite, never raw),
/// and the config file in use (a restore never replaces it, so recovery can always read it).
struct Exclusions {
    folders: Vec<PathBuf>,
    files: HashSet<PathBuf>,
}

impl Exclusions {
    fn new(config: &Config) -> Exclusions {
        let mut folders = vec![fsutil::comparable_path(&config.local_dir)];
        if let Some(folder) = config.remote.as_ref().and_then(|r| r.folder()) {
            folders.push(fsutil::comparable_path(folder));
        }
        let files = config
            .databases
            .iter()
            .flat_map(|db| {
                // A database behind a link keeps its -wal/-shm beside the link's target.
                let db = fsutil::comparable_path(&db.path);
                std::iter::once("")
                    .chain(fsutil::DB_COMPANIONS)
                    .map(move |suffix| fsutil::comparable_path(&fsutil::with_suffix(&db, suffix)))
            })
            .chain(std::iter::once(config.file_resolved.clone()))
            .collect();
        Exclusions { folders, files }
    }
}

/// The included files as they are now, for a restore to set aside: like a snapshot's walk, but a
/// missing include (a fresh machine) holds nothing.
pub(crate) fn live_included_files(config: &Config) -> Result<Vec<PathBuf>> {
    Ok(walk_includes(config, true)?
        .into_iter()
        .map(|f| f.source)
        .collect())
}

/// The included files as a snapshot taken now would record them: (path inside the archive, path
/// as the manifest shows it, the live file). A missing include holds nothing.
pub(crate) fn live_included_entries(config: &Config) -> Result<Vec<(String, String, PathBuf)>> {
    Ok(walk_includes(config, true)?
        .into_iter()
        .map(|f| (f.archive_path, f.display, f.source))
        .collect())
}

/// Every regular file under the configured includes, once each, in a stable order.
fn collect_includes(config: &Config) -> Result<Vec<IncludedFile>> {
    walk_includes(config, false)
}

/// Files found by a walk, each once (an include may be reached twice, through a link or an
/// overlapping include); hashed rather than ordered, for walks of tens of thousands of files.
#[derive(Default)]
struct Found {
    seen: HashSet<PathBuf>,
    files: Vec<IncludedFile>,
}

fn walk_includes(config: &Config, missing_ok: bool) -> Result<Vec<IncludedFile>> {
    let exclusions = Exclusions::new(config);
    let mut files = Found::default();
    for root in &config.includes {
        if missing_ok && fs::symlink_metadata(root).is_err() {
            continue;
        }
        // The root itself may be a link (a queue folder kept elsewhere); links inside are not.
        let meta = fs::metadata(root).map_err(|e| {
            Error::Include(format!(
                "include {}: cannot read it ({e}); create it or remove the [[include]] entry",
                root.display()
            ))
        })?;
        // Resolved once here; below it the walk follows no links, so a path's resolved form is
        // its folder's plus its name (resolving each of 50,000 files cost 350,000 readlinks).
        let resolved = fsutil::comparable_path(root);
        if meta.is_dir() {
            walk(config, &exclusions, root, &resolved, &mut files)?;
        } else if meta.is_file() {
            add_file(config, &exclusions, root, resolved, meta.len(), &mut files)?;
        } else {
            return Err(Error::Include(format!(
                "include {} is neither a file nor a folder; list plain files or folders only",
                root.display()
            )));
        }
    }
    // A stable order, whatever order the includes were listed or reached in.
    let mut files = files.files;
    files.sort_unstable_by(|a, b| a.archive_path.cmp(&b.archive_path));
    Ok(files)
}

/// Walks the folder `dir`, whose resolved path (links and `..` resolved) is `resolved`.
fn walk(
    config: &Config,
    exclusions: &Exclusions,
    dir: &Path,
    resolved: &Path,
    files: &mut Found,
) -> Result<()> {
    if exclusions.folders.iter().any(|f| f == resolved) {
        return Ok(());
    }
    let entries =
        fs::read_dir(dir).and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>());
    let mut entries = match entries {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()), // removed meanwhile
        Err(e) => return Err(Error::io("cannot read include folder", dir, e)),
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // Our own staging and the live sets earlier restores set aside are not app data.
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if layout::is_our_temp(&name)
            || (dir == config.base_dir && name.starts_with(layout::ASIDE_PREFIX))
        {
            continue;
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        let resolved = resolved.join(entry.file_name());
        if meta.is_dir() {
            walk(config, exclusions, &path, &resolved, files)?;
        } else if meta.is_file() {
            add_file(config, exclusions, &path, resolved, meta.len(), files)?;
        }
        // Links, sockets and devices are not data a restore can put back safely: skipped.
    }
    Ok(())
}

/// Adds the file at `source`, whose resolved path is `key` (an include may be reached twice).
fn add_file(
    config: &Config,
    exclusions: &Exclusions,
    source: &Path,
    key: PathBuf,
    size: u64,
    files: &mut Found,
) -> Result<()> {
    if exclusions.files.contains(&key) || files.seen.contains(&key) {
        return Ok(());
    }
    // Inside the config folder: the relative path; elsewhere: the absolute path under `_root/`.
    // Both are cleaned, so no `..` reaches the archive.
    let relative = match source.strip_prefix(&config.base_dir) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => Path::new("_root").join(source.strip_prefix("/").unwrap_or(source)),
    };
    let Some(relative) = relative.to_str() else {
        return Err(Error::Include(format!(
            "include: the name of {} is not valid UTF-8 and could not be restored as is; rename it, or move it out of the included folder",
            source.display()
        )));
    };
    files.seen.insert(key);
    files.files.push(IncludedFile {
        display: config.display_path(source),
        source: source.to_path_buf(),
        archive_path: format!("files/{relative}"),
        size,
    });
    Ok(())
}
/// The staging file the included files are copied into, one after another.
struct Blob {
    writer: std::io::BufWriter<fs::File>,
    /// Where the next file starts.
    offset: u64,
}

impl Blob {
    /// Appends the included file at `source`, hashing it on the way; returns where it starts,
    /// its size, sha256 and mode, or `None` when the file no longer exists.
    fn append(
        &mut self,
        source: &Path,
        blob_path: &Path,
    ) -> Result<Option<(u64, u64, String, u32)>> {
        let mut input = match fs::File::open(source) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read include", source, e)),
        };
        let mode = input
            .metadata()
            .at("cannot read include", source)?
            .permissions()
            .mode()
            & 0o7777;
        let mut writer = fsutil::HashingWriter::new(&mut self.writer);
        fsutil::copy_large(&mut input, &mut writer).map_err(|e| {
            // A read error names the include; a write error, the staging copy.
            if e.kind() == std::io::ErrorKind::StorageFull {
                Error::io("cannot write staging copy", blob_path, e)
            } else {
                Error::io("cannot copy include", source, e)
            }
        })?;
        let (_, size, sha256) = writer.finish();
        let offset = self.offset;
        self.offset += size;
        Ok(Some((offset, size, sha256, mode)))
    }
}
