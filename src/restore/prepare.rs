//! Steps 1–4 of a restore: find the archive (local or remote), map its contents to this
//! machine, extract and check everything into a staging folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    Prepared, SPACE_MARGIN, Source, StagedFile, Which, db_refused, is_config_file, live,
    only::Only, stage,
};
use crate::archive::Manifest;
use crate::archive::read::{ArchiveSha, Extracted, Files, extract_with, read_manifest_as_read};
use crate::catalog;
use crate::config::Config;
use crate::error::{Error, IoContext, RemoteError, RemoteErrorKind, Result};
use crate::fsutil::{self, TempPath};
use crate::integrity;
use crate::layout;
use crate::migrate::Ladder;
use crate::progress::Progress;
use crate::remote::{Remote, RemoteSnapshot};
use crate::tag::Tag;

pub(super) struct Located {
    pub(super) tag: Tag,
    local: Option<PathBuf>,
    remote: Option<RemoteSnapshot>,
    /// Why the remote could not be listed, when `latest` fell back to the local snapshots.
    remote_error: Option<String>,
    /// What the user should know about the choice (whose `latest`, snapshots skipped).
    notes: Vec<String>,
    /// The local copy is known to be damaged (`checked.json`): the remote copy is used instead.
    local_damaged: bool,
    /// Only remote copies may be used (`verify --remote`), a differential's base too.
    remote_only: bool,
}

/// Which copies of a snapshot may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copies {
    /// The local copy first, else the remote's.
    Any,
    /// Only the remote's, even when a local copy exists (`verify --remote`: a dead disk leaves
    /// only the remote); `latest` is then the remote's newest.
    RemoteOnly,
}

/// Finds the snapshot `which` names, locally first (see [`catalog::Selector::resolve`]; `latest`
/// is the newest snapshot of `host`, by default this machine's, not dated in the future). When
/// the remote cannot be listed, anything but a whole tag is chosen among the local snapshots.
pub(super) fn locate(
    config: &Config,
    which: &Which,
    remote: Option<&Remote>,
    host: Option<&str>,
    copies: Copies,
) -> Result<Located> {
    let remote_only = copies == Copies::RemoteOnly;
    if remote_only && remote.is_none() {
        return Err(no_remote_configured());
    }
    let local = if remote_only {
        Vec::new()
    } else {
        catalog::local_snapshots(&config.local_dir)?
    };
    let wanted_local = |tag: &Tag| local.iter().find(|s| &s.tag == tag).map(|s| s.path.clone());
    let damaged = if remote_only {
        Vec::new()
    } else {
        integrity::known_damaged(&config.local_dir)
    };
    let known_damaged = |tag: &Tag| damaged.iter().any(|d| &d.tag == tag);
    let mut remote_error = None;
    let listed = match (which, remote) {
        // A local copy needs no remote, unless it is known to be damaged.
        (Which::Tag(tag), _) if wanted_local(tag).is_some() && !known_damaged(tag) => None,
        (_, Some(remote)) => match remote.list() {
            Ok(found) => Some(found),
            Err(e) if matches!(which, Which::Tag(_)) || local.is_empty() => return Err(e),
            Err(e) => {
                // Chosen among the local ones when the remote is down; the user is told.
                remote_error = Some(e.to_string());
                None
            }
        },
        (_, None) => None,
    };
    let remote_list = listed.unwrap_or_default();
    let mut notes: Vec<String> = remote_error
        .iter()
        .map(|e| {
            format!("the remote could not be listed ({e}); `{which}` was chosen among the local snapshots")
        })
        .collect();
    let tags: Vec<&Tag> = local
        .iter()
        .map(|s| &s.tag)
        .chain(remote_list.iter().map(|s| &s.tag))
        .collect();
    // A whole tag that is nowhere is said with the places looked in, which the selector does
    // not know.
    if let Which::Tag(tag) = which
        && !tags.contains(&tag)
    {
        let places = match remote {
            Some(r) if remote_only => r.describe(),
            _ => format!(
                "{}{}",
                config.local_dir.display(),
                remote.map_or(String::new(), |r| format!(" nor on {}", r.describe()))
            ),
        };
        return Err(Error::NotFound(format!(
            "snapshot {tag} is not in {places}; `backup list` shows the snapshots there are"
        )));
    }
    let chosen = which.resolve(&tags, host, crate::clock::now())?;
    notes.extend(chosen.notes);
    let tag = chosen.tag;
    let located = Located {
        local: wanted_local(&tag),
        local_damaged: known_damaged(&tag),
        remote: remote_list.into_iter().find(|s| s.tag == tag),
        tag,
        remote_error,
        notes,
        remote_only,
    };
    Ok(located)
}

/// The refusal of `--remote` without a remote.
fn no_remote_configured() -> Error {
    Error::Config(
        "--remote needs a remote, and the config has no [remote]; add one, or leave out --remote"
            .into(),
    )
}

/// Every snapshot there is, newest first, each to be taken from its local copy when it has a
/// good one (never with `RemoteOnly`), else from the remote: one listing of each place. When
/// the remote cannot be listed but local snapshots exist, those alone, with why (the second
/// value): a drill of what is here is still worth its answer.
pub(super) fn locate_all(
    config: &Config,
    remote: Option<&Remote>,
    copies: Copies,
) -> Result<(Vec<Located>, Option<String>)> {
    let remote_only = copies == Copies::RemoteOnly;
    if remote_only && remote.is_none() {
        return Err(no_remote_configured());
    }
    let mut found: std::collections::BTreeMap<Tag, Located> = std::collections::BTreeMap::new();
    let blank = |tag: &Tag| Located {
        tag: tag.clone(),
        local: None,
        remote: None,
        remote_error: None,
        notes: Vec::new(),
        local_damaged: false,
        remote_only,
    };
    if !remote_only {
        let damaged = integrity::known_damaged(&config.local_dir);
        for snapshot in catalog::local_snapshots(&config.local_dir)? {
            let located = found
                .entry(snapshot.tag.clone())
                .or_insert_with(|| blank(&snapshot.tag));
            located.local_damaged = damaged.iter().any(|d| d.tag == snapshot.tag);
            located.local = Some(snapshot.path);
        }
    }
    let mut remote_error = None;
    if let Some(remote) = remote {
        match remote.list() {
            Ok(listed) => {
                for snapshot in listed {
                    let tag = snapshot.tag.clone();
                    found.entry(tag).or_insert_with_key(blank).remote = Some(snapshot);
                }
            }
            Err(e) if remote_only || found.is_empty() => return Err(e),
            Err(e) => remote_error = Some(e.to_string()),
        }
    }
    Ok((found.into_values().rev().collect(), remote_error))
}

/// Where each listed item of the snapshot belongs on this machine, decided before extraction.
/// A file with no place (`None`) is extracted and checked, but not put back.
fn targets(config: &Config, manifest: &Manifest, only: Option<&Only>) -> Result<Targets> {
    let mut dbs = Vec::new();
    for entry in &manifest.databases {
        if only.is_some_and(|only| !only.databases.contains(&entry.name)) {
            dbs.push(None);
            continue;
        }
        let Some(db) = config.databases.iter().find(|d| d.name == entry.name) else {
            return Err(db_refused(format!(
                "the snapshot holds database `{}` ({}), which the config does not name; add a [[database]] with name = \"{}\" saying where it belongs",
                entry.name, entry.path, entry.name
            )));
        };
        dbs.push(Some(db.path.clone()));
    }
    // Databases where they really are (a link followed): their -wal/-shm/-journal are there.
    let real_dbs: Vec<PathBuf> = config
        .databases
        .iter()
        .filter_map(|db| {
            let real = std::fs::canonicalize(&db.path).ok()?;
            (real != db.path).then_some(real)
        })
        .collect();
    let mut files = Vec::new();
    let mut notes = Vec::new();
    // Looked up once per file: a snapshot may hold tens of thousands.
    let mut seen: std::collections::HashSet<PathBuf> = dbs.iter().flatten().cloned().collect();
    for entry in &manifest.files {
        let rel = entry
            .archive_path
            .strip_prefix("files/")
            .expect("validated manifest");
        let live = match rel.strip_prefix("_root/") {
            Some(abs) => Path::new("/").join(abs),
            None => config.base_dir.join(rel),
        };
        if only.is_some_and(|only| !only.covers_file(&live)) {
            files.push(None);
            continue;
        }
        let inside = config.includes.iter().any(|root| live.starts_with(root));
        let database_file = config
            .databases
            .iter()
            .map(|db| db.path.as_path())
            .chain(real_dbs.iter().map(PathBuf::as_path))
            .any(|db| {
                std::iter::once("")
                    .chain(fsutil::DB_COMPANIONS)
                    .any(|suffix| fsutil::with_suffix(db, suffix) == live)
            });
        if let Some(whose) = tool_owned(config, &live) {
            return Err(db_refused(format!(
                "the snapshot holds {}, which lies in {whose}; a snapshot never holds the tool's own files, so this archive was not made by backup-agent as it is",
                live.display()
            )));
        }
        // Older snapshots of `path = "."` hold the config file. The one in use stays: a
        // restore killed midway must find its journal through it.
        if is_config_file(config, &live) {
            notes.push(format!(
                "the snapshot's copy of the config file {} is checked but not put back: the config in use stays as it is",
                config.display_path(&live)
            ));
            files.push(None);
            continue;
        }
        if database_file {
            return Err(db_refused(format!(
                "the snapshot holds {} as a plain file, but the config names it as a database (or its -wal/-shm/-journal); restore such a snapshot with a config that does not list that database",
                live.display()
            )));
        }
        if !seen.insert(live.clone()) {
            return Err(db_refused(format!(
                "the snapshot holds two files for {}",
                live.display()
            )));
        }
        if !inside {
            return Err(db_refused(format!(
                "the snapshot holds file {} which no [[include]] of the config covers; add its folder as an [[include]] to restore it",
                live.display()
            )));
        }
        files.push(Some(live));
    }
    Ok(Targets { dbs, files, notes })
}

/// Live paths of a snapshot's databases and files, in manifest order, and what to tell the user.
struct Targets {
    /// `None` for a database `--only` does not name.
    dbs: Vec<Option<PathBuf>>,
    files: Vec<Option<PathBuf>>,
    notes: Vec<String>,
}

/// Where `live` lies among the places the snapshot walk never takes files from, if it does: the
/// local snapshot folder, the remote folder, a temp name of this tool, or a `pre_restore_*`
/// folder beside the config. An archive that lists such a file was made or changed by hand.
fn tool_owned(config: &Config, live: &Path) -> Option<&'static str> {
    if live.starts_with(&config.local_dir) {
        return Some("the local snapshot folder");
    }
    if let Some(folder) = config.remote.as_ref().and_then(|r| r.folder())
        && live.starts_with(folder)
    {
        return Some("the remote folder");
    }
    let below_base = live.strip_prefix(&config.base_dir).ok();
    if below_base
        .and_then(|rel| rel.components().next())
        .and_then(|first| first.as_os_str().to_str())
        .is_some_and(|first| first.starts_with(layout::ASIDE_PREFIX))
    {
        return Some("a folder where a restore set live data aside");
    }
    let temp = live
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .any(layout::is_our_temp);
    temp.then_some("a temporary file or folder of this tool")
}

/// How [`prepare`] treats what it extracts.
#[derive(Clone, Copy)]
pub(super) struct Treatment<'a> {
    /// Past failed checks (`--force`).
    pub(super) force: bool,
    /// Runs the configured migrations on each database.
    pub(super) migrate: bool,
    pub(super) files: Files<'a>,
    /// `restore --only`: the databases and includes it does not name are neither mapped to this
    /// machine, checked nor written, so one that fails its checks does not block the others.
    pub(super) only: Option<&'a Only>,
}

/// Gets the archive, extracts and checks everything into `staging`.
pub(super) fn prepare(
    config: &Config,
    located: &Located,
    remote: Option<&Remote>,
    staging: TempPath,
    treatment: Treatment<'_>,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let Treatment {
        force,
        migrate,
        files,
        only,
    } = treatment;
    let started = Instant::now();
    let parent = staging
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    fsutil::create_private_dir(staging.path())
        .at("cannot create staging folder", staging.path())?;
    let payload = staging.path().join("payload");
    let into = Destination {
        payload: &payload,
        staging: staging.path(),
        parent: &parent,
        files,
        only,
        remote,
        remote_only: located.remote_only,
    };
    let local_record = located.local.as_deref().and_then(fsutil::read_checksum);
    let mut local_damaged = located.local_damaged;
    let mut from_local = None;
    if let Some(path) = located.local.as_ref().filter(|_| !local_damaged) {
        // Hashed during extraction against its record.
        let archive_sha = ArchiveSha::Check(local_record.as_deref());
        match unpack(config, &located.tag, path, archive_sha, &into, progress) {
            Ok(unpacked) => from_local = Some(unpacked),
            // Damage can show as any refusal (a garbled manifest, a bad member, a bad sha256):
            // the whole file against its record tells whether the local copy is to blame. A
            // file that cannot even be read through (a failing disk) is to blame too.
            Err(e) if !integrity::is_damaged(path).unwrap_or(true) => return Err(e),
            Err(e) => {
                tracing::info!("the local copy of {} is damaged: {e}", located.tag);
                local_damaged = true;
                if payload.exists() {
                    std::fs::remove_dir_all(&payload)
                        .at("cannot clear staging folder", &payload)?;
                }
            }
        }
    }
    let (unpacked, recorded, source) = match from_local {
        Some(unpacked) => (unpacked, local_record, Source::Local),
        None => {
            let found = remote_copy(config, located, remote, local_damaged, local_record)?;
            let remote = remote.expect("a remote copy was found");
            fsutil::ensure_space(
                &parent,
                found.size + SPACE_MARGIN,
                "the archive downloaded for the restore",
            )?;
            let path = staging.path().join(located.tag.archive_name());
            let (size, sha256) = remote.fetch(&located.tag, &path, progress)?;
            if let Some(want) = &found.sha256
                && (want != &sha256 || size != found.size)
            {
                return Err(db_refused(format!(
                    "the download of {} has sha256 {sha256} ({size} bytes), but the remote recorded {want} ({} bytes); the remote copy or the transfer is damaged",
                    located.tag, found.size
                )));
            }
            // Hashed on its way in and compared with the remote's record: not hashed again.
            let archive_sha = ArchiveSha::Known(&sha256);
            let unpacked = unpack(config, &located.tag, &path, archive_sha, &into, progress)?;
            (unpacked, found.sha256, Source::Remote)
        }
    };
    let Unpacked {
        extracted,
        db_lives,
        file_lives,
        notes,
        unchanged,
    } = unpacked;
    let manifest = extracted.manifest;
    crate::failpoint::hit("restore-extracted");

    progress.phase(
        "checking databases",
        manifest
            .databases
            .iter()
            .zip(&db_lives)
            .filter(|(_, live)| live.is_some())
            .map(|(d, _)| d.size)
            .sum(),
    );
    let mut databases = Vec::new();
    let mut db_targets = Vec::new();
    for (entry, live) in manifest.databases.iter().zip(db_lives) {
        let Some(live) = live else {
            continue; // not named by `--only`
        };
        let db = config
            .databases
            .iter()
            .find(|d| d.name == entry.name)
            .expect("targets matched every database");
        let ladder = db.migrations.as_deref().map(Ladder::from_dir).transpose()?;
        let staged = payload.join(&entry.archive_path);
        let report = stage::check_database(entry, &staged, ladder.as_ref(), migrate, force)
            .map_err(|e| db_refused(e.to_string()))?;
        databases.push(report);
        db_targets.push((staged, live));
        progress.advance(entry.size);
    }
    crate::failpoint::hit("restore-checked");
    progress.done();
    let files = manifest
        .files
        .iter()
        .zip(file_lives)
        .filter_map(|(entry, live)| {
            Some(StagedFile {
                live: live?,
                size: entry.size,
                sha256: entry.sha256.clone(),
                unchanged: unchanged.get(&entry.archive_path).copied(),
                staged: payload.join(&entry.archive_path),
            })
        })
        .collect();
    Ok(Prepared {
        tag: located.tag.clone(),
        source,
        archive_size: extracted.archive_size,
        archive_sha256: extracted.archive_sha256,
        archive_sha256_recorded: recorded.is_some(),
        remote_error: located.remote_error.clone(),
        local_damaged,
        manifest,
        databases,
        files,
        notes: located.notes.iter().cloned().chain(notes).collect(),
        db_targets,
        elapsed: started.elapsed(),
        staging,
    })
}

/// Where an archive is unpacked, and whether its included files are written or only checked.
#[derive(Clone, Copy)]
struct Destination<'a> {
    payload: &'a Path,
    /// The staging folder that holds `payload`; a differential's base is downloaded here.
    staging: &'a Path,
    /// The folder that holds the staging folder, for the free-space check.
    parent: &'a Path,
    files: Files<'a>,
    only: Option<&'a Only>,
    /// Where a differential's base is found when the local folder has no good copy.
    remote: Option<&'a Remote>,
    /// A differential's base is taken from the remote even when a local copy exists.
    remote_only: bool,
}

/// A snapshot's archive extracted into the staging payload, with where its contents belong.
struct Unpacked {
    extracted: Extracted,
    /// Where each database goes; `None` for one `--only` does not name.
    db_lives: Vec<Option<PathBuf>>,
    /// Where each listed file goes; `None` for one that stays unplaced (the config file, or one
    /// `--only` does not name).
    file_lives: Vec<Option<PathBuf>>,
    /// How the snapshot maps to this machine, for the user.
    notes: Vec<String>,
    /// Archive paths of the files whose live copy already holds the same bytes, with what the
    /// live file looked like then.
    unchanged: HashMap<String, live::Stamp>,
}

/// Reads the manifest of `archive`, maps it to this machine, and extracts it into `payload`,
/// checking everything on the way.
fn unpack(
    config: &Config,
    tag: &Tag,
    archive: &Path,
    archive_sha: ArchiveSha<'_>,
    into: &Destination<'_>,
    progress: &dyn Progress,
) -> Result<Unpacked> {
    let Destination {
        payload,
        staging,
        parent,
        files,
        only,
        remote,
        remote_only,
    } = *into;
    let read = read_manifest_as_read(archive)?;
    let manifest = &read.manifest;
    if manifest.tag != *tag {
        return Err(db_refused(format!(
            "archive {} holds the manifest of {}, not of {tag}",
            archive.display(),
            manifest.tag,
        )));
    }
    fsutil::ensure_space(
        parent,
        manifest.payload_bytes() + SPACE_MARGIN,
        "the extracted snapshot (the live data is set aside by renaming, which takes no room)",
    )?;
    let Targets {
        dbs: db_lives,
        files: file_lives,
        mut notes,
    } = targets(config, manifest, only)?;
    // A restore leaves a live file that is already the snapshot's copy where it is: nothing
    // to stage, set aside or move (most of a queue folder, after one bad DELETE).
    let mut unchanged = HashMap::new();
    if let Files::Write = files {
        // Each folder looked at once: on a fresh machine none of 50,000 files is there.
        let mut folder_exists: HashMap<&Path, bool> = HashMap::new();
        for (entry, live) in manifest.files.iter().zip(&file_lives) {
            if let Some(live) = live
                && live.parent().is_none_or(|folder| {
                    *folder_exists
                        .entry(folder)
                        .or_insert_with(|| folder.is_dir())
                })
                && let Some(stamp) = live::same_content(live, entry.size, &entry.sha256)
            {
                unchanged.insert(entry.archive_path.clone(), stamp);
            }
        }
    }
    let mut skip: std::collections::HashSet<String> = unchanged.keys().cloned().collect();
    // What goes nowhere is only hashed as it streams past: never written to the staging folder.
    let unplaced_dbs = manifest.databases.iter().zip(&db_lives);
    let unplaced_files = manifest.files.iter().zip(&file_lives);
    skip.extend(
        unplaced_dbs
            .filter(|(_, live)| live.is_none())
            .map(|(entry, _)| entry.archive_path.clone())
            .chain(
                unplaced_files
                    .filter(|(_, live)| live.is_none())
                    .map(|(entry, _)| entry.archive_path.clone()),
            ),
    );
    let check_only_files = matches!(files, Files::CheckOnly);
    let files = match files {
        Files::Write => Files::WriteExcept(&skip),
        other => other,
    };
    fsutil::create_private_dir(payload).at("cannot create staging folder", payload)?;
    let extracted = extract_with(archive, payload, archive_sha, files, Some(read), progress)?;
    if extracted.manifest.is_differential() {
        let rebuild = super::rebuild::Rebuild {
            config,
            remote,
            staging,
            payload,
            check_only_files,
            skip: &skip,
            remote_only,
        };
        notes.push(rebuild.complete(&extracted.manifest, progress)?);
    }
    Ok(Unpacked {
        extracted,
        db_lives,
        file_lives,
        notes,
        unchanged,
    })
}

/// The remote's copy to restore from. With a damaged local copy, only a remote copy whose
/// recorded sha256 is the local record will do (anything else is another archive); that finding
/// is recorded for `list`, `status` and the next run's repair.
fn remote_copy(
    config: &Config,
    located: &Located,
    remote: Option<&Remote>,
    local_damaged: bool,
    local_record: Option<String>,
) -> Result<RemoteSnapshot> {
    if !local_damaged {
        return Ok(located.remote.clone().expect("located has a copy"));
    }
    let damaged = format!(
        "the local copy of {} no longer matches the sha256 recorded when it was made (it is damaged)",
        located.tag
    );
    let Some(remote) = remote else {
        return Err(db_refused(format!(
            "{damaged}, and no remote is configured: no good copy of this snapshot exists; restore another snapshot (`backup list`)"
        )));
    };
    let found = match &located.remote {
        Some(found) => Some(found.clone()),
        // Not listed yet: a local copy needed no remote until it failed.
        None => match remote.list() {
            Ok(listed) => listed.into_iter().find(|s| s.tag == located.tag),
            Err(e) => {
                let kind = e.remote_kind().unwrap_or(RemoteErrorKind::Failed);
                return Err(RemoteError::new(
                    kind,
                    format!(
                        "{damaged}, and the remote could not be listed for a good copy: {e}; the live data was not touched"
                    ),
                )
                .into());
            }
        },
    };
    let good = found
        .as_ref()
        .is_some_and(|f| f.matches_record(local_record.as_deref()));
    if let Err(e) = integrity::mark_damaged(&config.local_dir, &located.tag, Some(good)) {
        tracing::info!(
            "the damaged local copy of {} was not recorded: {e}",
            located.tag
        );
    }
    match found {
        Some(found) if good => Ok(found),
        Some(_) => Err(db_refused(format!(
            "{damaged}, and the copy on {} has another sha256: no good copy of this snapshot exists; restore another snapshot (`backup list`)",
            remote.describe()
        ))),
        None => Err(db_refused(format!(
            "{damaged}, and {} does not hold it: no good copy of this snapshot exists; restore another snapshot (`backup list`)",
            remote.describe()
        ))),
    }
}
