//! Steps 1–4 of a restore: find the archive (local or remote), map its contents to this
//! machine, extract and check everything into a staging folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    Prepared, SPACE_MARGIN, Source, StagedFile, Which, db_refused, extract, is_config_file, stage,
};
use crate::catalog;
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, TempPath};
use crate::migrate::Ladder;
use crate::progress::Progress;
use crate::remote::{Remote, RemoteSnapshot};
use crate::snapshot::Manifest;
use crate::tag::Tag;

pub(super) struct Located {
    pub(super) tag: Tag,
    local: Option<PathBuf>,
    remote: Option<RemoteSnapshot>,
    /// Why the remote could not be listed, when `latest` fell back to the local snapshots.
    remote_error: Option<String>,
    /// What the user should know about the choice (whose `latest`, snapshots skipped).
    notes: Vec<String>,
}

/// Finds the snapshot `which` names, locally first. `latest` is the newest snapshot of `host`
/// (default: this machine; see [`catalog::latest_host`]) that is not dated in the future.
pub(super) fn locate(
    config: &Config,
    which: &Which,
    remote: Option<&Remote>,
    host: Option<&str>,
) -> Result<Located> {
    let local = catalog::local_snapshots(&config.local_dir)?;
    let wanted_local = |tag: &Tag| local.iter().find(|s| &s.tag == tag).map(|s| s.path.clone());
    let mut remote_error = None;
    let listed = match (which, remote) {
        // A local copy needs no remote.
        (Which::Tag(tag), _) if wanted_local(tag).is_some() => None,
        (_, Some(remote)) => match remote.list() {
            Ok(found) => Some(found),
            Err(e) if matches!(which, Which::Tag(_)) || local.is_empty() => return Err(e),
            Err(e) => {
                // `latest` of the local ones, when the remote is down; the user is told.
                remote_error = Some(e.to_string());
                None
            }
        },
        (_, None) => None,
    };
    let remote_list = listed.unwrap_or_default();
    let mut notes = Vec::new();
    let tag = match which {
        Which::Tag(tag) => tag.clone(),
        Which::Latest => {
            let tags: Vec<&Tag> = local
                .iter()
                .map(|s| &s.tag)
                .chain(remote_list.iter().map(|s| &s.tag))
                .collect();
            let (host, whose) = catalog::latest_host(&tags, host)?;
            notes.extend(whose);
            let (latest, skipped) = catalog::latest_of(&tags, &host, crate::failpoint::now())?
                .ok_or_else(|| {
                    Error::Other(format!(
                        "no snapshots of host {host} found in {}{}; nothing to restore{}",
                        config.local_dir.display(),
                        remote.map_or(String::new(), |r| format!(" or on {}", r.describe())),
                        if tags.is_empty() {
                            String::new()
                        } else {
                            "; `backup list` shows the hosts there are (pass --host NAME)".into()
                        }
                    ))
                })?;
            notes.extend(skipped);
            latest.clone()
        }
    };
    let located = Located {
        local: wanted_local(&tag),
        remote: remote_list.into_iter().find(|s| s.tag == tag),
        tag,
        remote_error,
        notes,
    };
    if located.local.is_none() && located.remote.is_none() {
        return Err(Error::Other(format!(
            "snapshot {} is not in {}{}; `backup list` shows the snapshots there are",
            located.tag,
            config.local_dir.display(),
            remote.map_or(String::new(), |r| format!(" nor on {}", r.describe()))
        )));
    }
    Ok(located)
}

/// Where each listed item of the snapshot belongs on this machine, decided before extraction.
/// A file with no place (`None`) is extracted and checked, but not put back.
fn targets(config: &Config, manifest: &Manifest) -> Result<Targets> {
    let mut dbs = Vec::new();
    for entry in &manifest.databases {
        let Some(db) = config.databases.iter().find(|d| d.name == entry.name) else {
            return Err(db_refused(format!(
                "the snapshot holds database `{}` ({}), which the config does not name; add a [[database]] with name = \"{}\" saying where it belongs",
                entry.name, entry.path, entry.name
            )));
        };
        dbs.push(db.path.clone());
    }
    let mut files = Vec::new();
    let mut notes = Vec::new();
    // Looked up once per file: a snapshot may hold tens of thousands.
    let mut seen: std::collections::HashSet<PathBuf> = dbs.iter().cloned().collect();
    for entry in &manifest.files {
        let rel = entry
            .archive_path
            .strip_prefix("files/")
            .expect("validated manifest");
        let live = match rel.strip_prefix("_root/") {
            Some(abs) => Path::new("/").join(abs),
            None => config.base_dir.join(rel),
        };
        let inside = config.includes.iter().any(|root| live.starts_with(root));
        let database_file = config.databases.iter().any(|db| {
            std::iter::once(String::new())
                .chain(fsutil::DB_COMPANIONS.iter().map(|s| s.to_string()))
                .any(|suffix| fsutil::with_suffix(&db.path, &suffix) == live)
        });
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
    dbs: Vec<PathBuf>,
    files: Vec<Option<PathBuf>>,
    notes: Vec<String>,
}

/// Gets the archive, extracts and checks everything into `staging`.
pub(super) fn prepare(
    config: &Config,
    located: &Located,
    remote: Option<&Remote>,
    staging: TempPath,
    force: bool,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let started = Instant::now();
    let parent = staging
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    fsutil::create_private_dir(staging.path())
        .at("cannot create staging folder", staging.path())?;
    // The archive's sha256: a local one is hashed during extraction against its record; a
    // download was hashed on its way in and compared with the remote's record.
    let (archive, recorded, downloaded_sha256, source) = match (&located.local, &located.remote) {
        (Some(path), _) => (
            path.clone(),
            fsutil::read_checksum(path),
            None,
            Source::Local,
        ),
        (None, Some(found)) => {
            let remote = remote.expect("a remote listed it");
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
            (path, found.sha256.clone(), Some(sha256), Source::Remote)
        }
        (None, None) => unreachable!("located has a copy"),
    };
    let manifest = extract::read_manifest(&archive)?;
    if manifest.tag != located.tag {
        return Err(db_refused(format!(
            "archive {} holds the manifest of {}, not of {}",
            archive.display(),
            manifest.tag,
            located.tag
        )));
    }
    fsutil::ensure_space(
        &parent,
        manifest.payload_bytes() + SPACE_MARGIN,
        "the extracted snapshot (the live data is set aside by renaming, which takes no room)",
    )?;
    let Targets {
        dbs: db_lives,
        files: file_lives,
        notes,
    } = targets(config, &manifest)?;
    let payload = staging.path().join("payload");
    fsutil::create_private_dir(&payload).at("cannot create staging folder", &payload)?;
    let archive_sha = match &downloaded_sha256 {
        Some(sha256) => extract::ArchiveSha::Known(sha256),
        None => extract::ArchiveSha::Check(recorded.as_deref()),
    };
    let extracted = extract::extract(&archive, &payload, archive_sha, progress)?;
    let manifest = extracted.manifest;
    crate::failpoint::hit("restore-extracted");

    progress.phase(
        "checking databases",
        manifest.databases.iter().map(|d| d.size).sum(),
    );
    let mut databases = Vec::new();
    let mut db_targets = Vec::new();
    for (entry, live) in manifest.databases.iter().zip(db_lives) {
        let db = config
            .databases
            .iter()
            .find(|d| d.name == entry.name)
            .expect("targets matched every database");
        let ladder = db.migrations.as_deref().map(Ladder::from_dir).transpose()?;
        let staged = payload.join(&entry.archive_path);
        let report = stage::check_database(entry, &staged, ladder.as_ref(), force)
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
        manifest,
        databases,
        files,
        notes: located.notes.iter().cloned().chain(notes).collect(),
        db_targets,
        elapsed: started.elapsed(),
        staging,
    })
}
