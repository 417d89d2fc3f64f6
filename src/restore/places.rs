//! Where a restore may write: the live set a swap sets aside, the places incoming files go, and
//! the rules that keep both inside what the config names: never through a symbolic link below
//! an include (or on the way to a database), never over the config file in use, never across
//! file systems.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{db_refused, swap};
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::snapshot;

/// Where a configured database really is: its path, or, when that is a symbolic link, the file
/// the link leads to. The app's SQLite writes there, and keeps its -wal/-shm/-journal beside it,
/// so a restore replaces that file and leaves the link as it is.
///
/// A folder on the way that is a link is refused (a restore never writes through one) unless
/// `force`: the user's own config put the database behind it, and SQLite reads through it, so
/// `--force` restores into the folder it leads to.
pub(super) fn live_database_path(
    config: &Config,
    configured: &Path,
    force: bool,
) -> Result<PathBuf> {
    // The same rule as for the resolved path in the swap: no link among the folders below the
    // config's folder.
    let guard = configured
        .starts_with(&config.base_dir)
        .then_some(config.base_dir.as_path());
    if let Err(e) = check_folders_above(configured, guard, &mut HashSet::new()) {
        let resolved = configured
            .parent()
            .and_then(|folder| fs::canonicalize(folder).ok())
            .zip(configured.file_name())
            .map(|(folder, name)| folder.join(name));
        return match resolved {
            Some(real) if force => live_database_path(config, &real, false),
            Some(real) => Err(Error::Other(
                format!(
                    "{}; or set `path` of this [[database]] to where it really is ({}), or pass --force to restore it there",
                    e.to_string()
                        .trim_end_matches("; the live data was not touched"),
                    real.display()
                ) + "; the live data was not touched",
            )),
            None => Err(e),
        };
    }
    if !fs::symlink_metadata(configured).is_ok_and(|m| m.file_type().is_symlink()) {
        return Ok(configured.to_path_buf());
    }
    let link_text =
        fs::read_link(configured).map_or(String::new(), |t| format!(" {}", t.display()));
    let what = match fs::canonicalize(configured) {
        Ok(target) if !target.is_dir() => Ok(target),
        Ok(_) => Err("a folder"),
        Err(_) => Err("missing"),
    };
    let target = what.map_err(|what| {
        db_refused(format!(
            "database {} is a symbolic link to{link_text}, which is {what}; point the link at the database file, or remove the link to restore into {} itself",
            configured.display(),
            configured.display()
        ))
    })?;
    // Shown, and set aside, relative to the config's folder when the target lies inside it.
    let base = fs::canonicalize(&config.base_dir).unwrap_or_else(|_| config.base_dir.clone());
    Ok(match target.strip_prefix(&base) {
        Ok(rel) => config.base_dir.join(rel),
        Err(_) => target,
    })
}

/// Everything live a swap must set aside: the databases with their -wal/-shm/-journal files,
/// every file under the includes, and whatever sits where an incoming file goes.
pub(super) fn live_set(
    config: &Config,
    databases: &[PathBuf],
    incoming: &[(PathBuf, PathBuf)],
) -> Result<Vec<PathBuf>> {
    Ok(live_set_with(
        databases,
        snapshot::live_included_files(config)?,
        incoming,
    ))
}

/// [`live_set`] with the included files already walked.
pub(super) fn live_set_with(
    databases: &[PathBuf],
    live_files: Vec<PathBuf>,
    incoming: &[(PathBuf, PathBuf)],
) -> Vec<PathBuf> {
    databases
        .iter()
        .flat_map(|db| {
            std::iter::once(db.clone()).chain(
                fsutil::DB_COMPANIONS
                    .iter()
                    .map(|s| fsutil::with_suffix(db, s)),
            )
        })
        .chain(live_files)
        .chain(incoming.iter().map(|(_, live)| live.clone()))
        .collect()
}

/// Builds a swap: every existing path of `touched` moves aside, `incoming` moves into place.
#[allow(clippy::too_many_arguments)]
pub(super) fn swap_plan(
    config: &Config,
    operation: String,
    tag: Option<String>,
    aside_dir: &Path,
    touched: &[PathBuf],
    incoming: Vec<(PathBuf, PathBuf)>,
    databases: Vec<PathBuf>,
    cleanup: Vec<PathBuf>,
) -> Result<swap::SwapPlan> {
    let base = &config.base_dir;
    let base_dev = fs::metadata(base).at("cannot read", base)?.dev();
    // The config file in use never moves, whatever an aside folder of an older build lists:
    // the next command must be able to read it to recover an interrupted swap.
    let incoming: Vec<(PathBuf, PathBuf)> = incoming
        .into_iter()
        .filter(|(_, live)| !is_config_file(config, live))
        .collect();
    // Two incoming files for one place: the second rename would fail half way through.
    let mut placed = HashSet::new();
    if let Some((_, twice)) = incoming.iter().find(|(_, live)| !placed.insert(live)) {
        return Err(db_refused(format!(
            "the snapshot brings two files to {}; nothing was restored",
            twice.display()
        )));
    }
    // Hashed, not ordered: a snapshot may hold tens of thousands of files.
    let mut seen = HashSet::new();
    let mut stored_names = HashMap::new();
    let mut set_aside = Vec::new();
    for live in touched {
        if !seen.insert(live.clone()) || is_config_file(config, live) {
            continue;
        }
        // Only files move: a folder in a file's place is not ours to move.
        let Ok(meta) = fs::symlink_metadata(live) else {
            continue;
        };
        if meta.is_dir() {
            return Err(db_refused(format!(
                "{} is a folder where the snapshot has a file; move it away first",
                live.display()
            )));
        }
        let stored = swap::mirror(base, live);
        if let Some(other) = stored_names.insert(stored.clone(), live.clone()) {
            return Err(db_refused(format!(
                "{} and {} would be set aside under the same name; move one of them",
                other.display(),
                live.display()
            )));
        }
        set_aside.push(swap::AsideEntry {
            stored,
            live: live.clone(),
        });
    }
    // Every incoming file needs real folders above it (a file in the way is not ours to move),
    // and no path the swap moves may lead through a link below its root.
    let mut sound = HashSet::new();
    let moved = incoming
        .iter()
        .map(|(_, live)| live)
        .chain(set_aside.iter().map(|e| &e.live));
    for live in moved {
        let guard = link_free_below(config, &databases, live);
        check_folders_above(live, guard, &mut sound)?;
    }
    // Renames must stay on one file system to be atomic. A file (or a link: where it sits counts,
    // not where it leads) is on its folder's file system, so each folder is looked at once.
    let aside_sources = set_aside.iter().map(|e| &e.live);
    let mut folder_devs: HashMap<PathBuf, u64> = HashMap::new();
    for live in incoming.iter().map(|(_, live)| live).chain(aside_sources) {
        let folder = live.parent().unwrap_or(Path::new("/"));
        let dev = match folder_devs.get(folder) {
            Some(&dev) => dev,
            None => {
                let mut probe = folder;
                let dev = loop {
                    match fs::metadata(probe) {
                        Ok(meta) => break meta.dev(),
                        Err(_) => probe = probe.parent().unwrap_or(Path::new("/")),
                    }
                };
                folder_devs.insert(folder.to_path_buf(), dev);
                dev
            }
        };
        if dev != base_dev {
            return Err(db_refused(format!(
                "{} is on another file system than the config's folder {}, so it cannot be swapped atomically; keep the app's data on the same disk as backup.toml",
                live.display(),
                base.display()
            )));
        }
    }
    Ok(swap::SwapPlan {
        operation,
        tag,
        aside_dir: aside_dir.to_path_buf(),
        set_aside,
        incoming,
        databases,
        cleanup,
    })
}

/// Whether `path` is the config file in use, or what it links to (names compared first: this
/// runs once per file).
pub(super) fn is_config_file(config: &Config, path: &Path) -> bool {
    let name = path.file_name();
    (name == config.file.file_name() || name == config.file_resolved.file_name())
        && fsutil::comparable_path(path) == config.file_resolved
}

/// The folder below which no folder of `live` may be a symbolic link: for a database and its
/// -wal/-shm/-journal, the config's folder when it is inside it; for an included file, the deepest
/// `[[include]]` that covers it. The include itself may be a link, as the snapshot's walk follows
/// it, but never one below it, which the walk skips.
fn link_free_below<'a>(config: &'a Config, databases: &[PathBuf], live: &Path) -> Option<&'a Path> {
    let database_file = databases.iter().any(|db| {
        live == db
            || fsutil::DB_COMPANIONS
                .iter()
                .any(|s| fsutil::with_suffix(db, s) == live)
    });
    if database_file {
        return live
            .starts_with(&config.base_dir)
            .then_some(config.base_dir.as_path());
    }
    config
        .includes
        .iter()
        .filter(|root| live.starts_with(root))
        .max_by_key(|root| root.components().count())
        .map(PathBuf::as_path)
}

/// Refuses when a folder above `live` is a file (the snapshot needs a folder there) or, below
/// `guard`, a symbolic link: a restore never writes through a link, as a snapshot never reads
/// through one. `sound` caches the folders found fine, per guard, so 50,000 files in a few
/// folders cost a few checks.
fn check_folders_above(
    live: &Path,
    guard: Option<&Path>,
    sound: &mut HashSet<(Option<PathBuf>, PathBuf)>,
) -> Result<()> {
    let guard_key = guard.map(Path::to_path_buf);
    let mut above: Vec<&Path> = live
        .ancestors()
        .skip(1)
        .take_while(|dir| !sound.contains(&(guard_key.clone(), dir.to_path_buf())))
        .collect();
    // Top down: the first missing folder ends the check, as the swap makes real ones from there.
    while let Some(dir) = above.pop() {
        let Ok(meta) = fs::symlink_metadata(dir) else {
            return Ok(());
        };
        let link = meta.file_type().is_symlink();
        if link && guard.is_some_and(|g| dir.starts_with(g) && dir != g) {
            let target =
                fs::read_link(dir).map_or(String::new(), |t| format!(" (to {})", t.display()));
            return Err(db_refused(format!(
                "{} is a symbolic link{target} where the snapshot has a folder (for {}); a restore never writes through a link: move the link away, or make it a real folder",
                dir.display(),
                live.display()
            )));
        }
        if !(meta.is_dir() || link && dir.is_dir()) {
            return Err(db_refused(format!(
                "{} is a file where the snapshot needs a folder (for {}); move it away first",
                dir.display(),
                live.display()
            )));
        }
        sound.insert((guard_key.clone(), dir.to_path_buf()));
    }
    Ok(())
}
