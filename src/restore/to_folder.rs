//! `backup restore <tag> --to DIR`: a snapshot extracted and checked into a folder of the
//! user's choosing, with no swap: nothing live is read for writing or compared. The databases
//! and included files land at their paths relative to the config's folder (`_root/…` for one
//! outside it), the layout of a `pre_restore_*` folder, so copying rows back is predictable.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::prepare::{Copies, Located, Treatment, locate, prepare};
use super::{Prepared, Which, aside, begin};
use crate::archive::read::Files;
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, TempPath};
use crate::layout::{self, ASIDE_PREFIX, RESTORE_STAGING, TEMP_PREFIX};
use crate::progress::Progress;
use crate::remote::Remote;

/// What `--to` was asked to do.
#[derive(Clone, Copy, Debug)]
pub struct ToFolder<'a> {
    pub dir: &'a Path,
    /// Run the configured migrations on the extracted databases.
    pub migrate: bool,
    /// Past failed checks, as a restore's `--force`.
    pub force: bool,
}

/// A database placed in the folder.
#[derive(Clone, Debug, Serialize)]
pub struct PlacedDatabase {
    pub name: String,
    pub path: PathBuf,
}

/// A snapshot extracted, checked and placed into a folder.
#[derive(Debug)]
pub struct RestoredTo {
    pub prepared: Prepared,
    /// The folder, absolute.
    pub dir: PathBuf,
    pub databases: Vec<PlacedDatabase>,
    /// Included files placed.
    pub files: usize,
}

/// Extracts and checks the snapshot `which` names into `to.dir`, which must be missing or
/// empty and lie outside the live data and the tool's own folders.
///
/// # Errors
/// A refused folder (before anything is fetched), or the first check that fails.
pub fn restore_to(
    config: &Config,
    which: &Which,
    host: Option<&str>,
    to: ToFolder<'_>,
    progress: &dyn Progress,
) -> Result<RestoredTo> {
    let dir = check_folder(config, to.dir)?;
    let (_lock, _) = begin(config)?;
    let remote = crate::catalog::open_remote(config);
    let located = locate(config, which, remote.as_ref(), host, Copies::Any)?;
    let mut placed = Placed::default();
    placed.create_folder(&dir)?;
    // On a failure the staging folder is gone by the time `fill` returns; what was placed goes
    // too, so the folder is as before (or gone, if made here) and the same command can run again.
    let filled = fill(
        config,
        &located,
        remote.as_ref(),
        to,
        &dir,
        &mut placed,
        progress,
    );
    if filled.is_err() {
        placed.undo();
    }
    let (prepared, databases) = filled?;
    Ok(RestoredTo {
        files: prepared.files.len(),
        prepared,
        dir,
        databases,
    })
}

/// Extracts, checks and places the snapshot into `dir`, recording in `placed` what it puts there.
fn fill(
    config: &Config,
    located: &Located,
    remote: Option<&Remote>,
    to: ToFolder<'_>,
    dir: &Path,
    placed: &mut Placed,
    progress: &dyn Progress,
) -> Result<(Prepared, Vec<PlacedDatabase>)> {
    // Staged inside the folder itself, so every file reaches its place by a rename.
    let staging = TempPath::new(dir.join(format!("{TEMP_PREFIX}{RESTORE_STAGING}{}", located.tag)));
    // Every file is written: nothing live is compared, not even to skip an unchanged one.
    let write_all = std::collections::HashSet::new();
    let treatment = Treatment {
        force: to.force,
        migrate: to.migrate,
        files: Files::WriteExcept(&write_all),
        only: None,
    };
    let prepared = prepare(config, located, remote, staging, treatment, progress)?;
    let mut databases = Vec::new();
    let entries = prepared.manifest.databases.iter();
    for ((staged, live), entry) in prepared.db_targets.iter().zip(entries) {
        let path = dir.join(aside::mirror(&config.base_dir, live));
        if let Some(mode) = entry.mode {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(staged, fs::Permissions::from_mode(mode & 0o777))
                .at("cannot set the mode of", staged)?;
        }
        placed.place(staged, &path)?;
        databases.push(PlacedDatabase {
            name: entry.name.clone(),
            path,
        });
    }
    crate::failpoint::hit("restore-to-databases-placed");
    for file in &prepared.files {
        placed.place(
            &file.staged,
            &dir.join(aside::mirror(&config.base_dir, &file.live)),
        )?;
    }
    // What stays unplaced (a copy of the config file) goes with the staging folder.
    let staging = prepared.staging.path();
    fs::remove_dir_all(staging).at("cannot remove staging folder", staging)?;
    Ok((prepared, databases))
}

/// What `--to` made in the folder, so a failure can take exactly that back.
#[derive(Default)]
struct Placed {
    /// Folders it created (the folder itself when it was missing, and any missing parent), in
    /// the order made.
    folders: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl Placed {
    /// Creates `dir` and its missing parents, private, recording those it made.
    fn create_folder(&mut self, dir: &Path) -> Result<()> {
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|folder| fs::symlink_metadata(folder).is_err())
            .map(Path::to_path_buf)
            .collect();
        fsutil::create_private_dir_all(dir).at("cannot create folder", dir)?;
        missing.reverse();
        self.folders.extend(missing);
        Ok(())
    }

    fn place(&mut self, staged: &Path, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            let missing: Vec<PathBuf> = parent
                .ancestors()
                .take_while(|folder| fs::symlink_metadata(folder).is_err())
                .map(Path::to_path_buf)
                .collect();
            fs::create_dir_all(parent).at("cannot create folder", parent)?;
            self.folders.extend(missing.into_iter().rev());
        }
        fs::rename(staged, path).at("cannot move into place", path)?;
        self.files.push(path.to_path_buf());
        Ok(())
    }

    /// Removes the files placed and the folders made, newest first. A folder is removed only
    /// when empty, so nothing put there by someone else goes with it.
    fn undo(self) {
        for file in self.files.iter().rev() {
            let _ = fs::remove_file(file);
        }
        for folder in self.folders.iter().rev() {
            let _ = fs::remove_dir(folder);
        }
    }
}

/// The folder `--to` may fill, absolute: missing, or an empty folder (leftovers of a killed
/// `--to` aside), neither the config's folder nor inside or around an include, a database's
/// place (its `-wal`, `-shm` and `-journal` included), the local snapshot folder or the remote
/// folder, nor inside a `pre_restore_*` folder.
fn check_folder(config: &Config, dir: &Path) -> Result<PathBuf> {
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .at("cannot read the current folder", Path::new("."))?
            .join(dir)
    };
    let dir = fsutil::clean_path(&absolute);
    let real = real_path(&dir);
    let refuse = |why: String| {
        Err(Error::Refused(format!(
            "--to {} {why}; choose a new folder (such as /tmp/old), nothing was changed",
            dir.display()
        )))
    };
    if real == real_path(&config.base_dir) {
        return refuse("is the config's folder, where the live data is".into());
    }
    // Neither inside a place the tool or the app owns, nor around one (even a missing one: a
    // database restored later, or the snapshot folder `begin` makes, would land among ours).
    let mut places: Vec<(&Path, String)> = config
        .includes
        .iter()
        .map(|root| {
            let what = format!("the [[include]] {}", config.display_path(root));
            (root.as_path(), what)
        })
        .collect();
    // A database's sidecars too: a folder named like its -wal is a file SQLite can never make
    // again, and the app stops.
    // (Named after the link's target, when the database's path is a link.)
    let sidecars: Vec<(PathBuf, String)> = config
        .databases
        .iter()
        .flat_map(|db| {
            let named = [db.path.clone(), real_path(&db.path)];
            named.into_iter().flat_map(move |path| {
                ["-wal", "-shm", "-journal"].map(|suffix| {
                    (
                        fsutil::with_suffix(&path, suffix),
                        format!("the {suffix} of database `{}`", db.name),
                    )
                })
            })
        })
        .collect();
    for db in &config.databases {
        places.push((db.path.as_path(), format!("database `{}`", db.name)));
    }
    for (path, what) in &sidecars {
        places.push((path.as_path(), what.clone()));
    }
    places.push((&config.local_dir, "the local snapshot folder".into()));
    if let Some(folder) = config.remote.as_ref().and_then(|r| r.folder()) {
        places.push((folder, "the remote folder".into()));
    }
    for (place, what) in places {
        let place = real_path(place);
        if real.starts_with(&place) {
            return refuse(format!("lies in {what}"));
        }
        if place.starts_with(&real) {
            return refuse(format!("holds {what}"));
        }
    }
    let first_below_base = real
        .strip_prefix(real_path(&config.base_dir))
        .ok()
        .and_then(|rel| rel.components().next())
        .and_then(|first| first.as_os_str().to_str().map(str::to_owned));
    if first_below_base.is_some_and(|first| first.starts_with(ASIDE_PREFIX)) {
        return refuse("lies in a folder where a restore set live data aside".into());
    }
    match fs::metadata(&dir) {
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && fs::symlink_metadata(&dir).is_ok_and(|m| m.is_symlink()) =>
        {
            return refuse("is a link to nothing".into());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(dir),
        Err(e) => return Err(Error::io("cannot read", &dir, e)),
        Ok(meta) if !meta.is_dir() => return refuse("is a file".into()),
        Ok(_) => {}
    }
    let mut leftovers = Vec::new();
    for entry in fs::read_dir(&dir).at("cannot read folder", &dir)? {
        let entry = entry.at("cannot read folder", &dir)?;
        if entry.file_name().to_str().is_some_and(layout::is_our_temp) {
            leftovers.push(entry.path());
        } else {
            return refuse(
                "is not empty (a folder another --to filled is not reused either: remove it first)"
                    .into(),
            );
        }
    }
    // Only the staging of a killed `--to`: nothing of the user's.
    for leftover in leftovers {
        let removed = if leftover.is_dir() {
            fs::remove_dir_all(&leftover)
        } else {
            fs::remove_file(&leftover)
        };
        removed.at("cannot remove leftover of a killed --to", &leftover)?;
    }
    Ok(dir)
}

/// `path` with links resolved as far as it exists (the rest appended as it is): two spellings
/// of one place compare equal.
fn real_path(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = fs::canonicalize(existing) {
            return missing.iter().rev().fold(real, |p, name| p.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return fsutil::clean_path(path),
        }
    }
}
