//! Where a restore may write: the live set a swap sets aside, the places incoming files go, and
//! the rules that keep both inside what the config names: never through a symbolic link below
//! an include (or on the way to a database), never over the config file in use, never across
//! file systems.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{aside, db_refused, swap};
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
            Some(real) => Err(Error::Refused(
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
/// every file under the includes (only under `includes` when given: a partial restore), and
/// whatever sits where an incoming file goes.
pub(super) fn live_set(
    config: &Config,
    databases: &[PathBuf],
    incoming: &[(PathBuf, PathBuf)],
    includes: Option<&[PathBuf]>,
) -> Result<Vec<PathBuf>> {
    Ok(live_set_with(
        databases,
        live_included_files_in(config, includes)?,
        incoming,
    ))
}

/// The live included files, only those under `includes` when given.
pub(super) fn live_included_files_in(
    config: &Config,
    includes: Option<&[PathBuf]>,
) -> Result<Vec<PathBuf>> {
    let mut files = snapshot::live_included_files(config)?;
    files.retain(|file| in_scope(file, includes));
    Ok(files)
}

/// Whether an included file lies under one of `includes` (every file does when `None`).
pub(super) fn in_scope(file: &Path, includes: Option<&[PathBuf]>) -> bool {
    includes.is_none_or(|roots| roots.iter().any(|root| file.starts_with(root)))
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
    includes: Option<Vec<PathBuf>>,
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
    // Each folder looked at once: on a fresh machine none of 50,000 incoming files is there.
    let mut folder_exists: HashMap<&Path, bool> = HashMap::new();
    for live in touched {
        if !seen.insert(live.clone()) || is_config_file(config, live) {
            continue;
        }
        if let Some(folder) = live.parent()
            && !*folder_exists
                .entry(folder)
                .or_insert_with(|| fs::symlink_metadata(folder).is_ok())
        {
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
        let stored = aside::mirror(base, live);
        if let Some(other) = stored_names.insert(stored.clone(), live.clone()) {
            return Err(db_refused(format!(
                "{} and {} would be set aside under the same name; move one of them",
                other.display(),
                live.display()
            )));
        }
        set_aside.push(aside::AsideEntry {
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
    let whole = whole_folders(
        config, aside_dir, &cleanup, &databases, &set_aside, &incoming,
    );
    let renames = renames(base, aside_dir, &set_aside, &incoming, &whole);
    Ok(swap::SwapPlan {
        operation,
        tag,
        aside_dir: aside_dir.to_path_buf(),
        set_aside,
        incoming,
        databases,
        includes,
        left_in_place: Vec::new(),
        cleanup,
        renames,
        folder_modes: whole.iter().flat_map(|w| w.modes.iter().cloned()).collect(),
        folders_inside: whole.into_iter().flat_map(|w| w.inside).collect(),
    })
}

/// A live folder that changes in one rename instead of file by file: the staged folder that
/// holds exactly its incoming files moves into its place, after the live folder (when there is
/// one, and every file in it goes aside) moved aside whole.
struct WholeFolder {
    live: PathBuf,
    staged: PathBuf,
    /// The live folder exists and moves aside whole first.
    replaces_live: bool,
    /// Modes the staged folders take before they move, so each comes out as the file-by-file
    /// swap leaves it: the live folder's it replaces, else what a new folder gets.
    modes: Vec<(PathBuf, u32)>,
    /// Every folder in the tree, where it ends up: synced after the swap.
    inside: Vec<PathBuf>,
}

/// How many incoming files and set-aside files lie below one live folder, and which staged
/// folder mirrors it.
#[derive(Default)]
struct Candidate<'a> {
    staged: Option<&'a Path>,
    incoming: usize,
    aside: usize,
    /// An incoming file below it does not come from `staged`, or a database is below it.
    mixed: bool,
}

/// The folders below an include that can move whole (see [`WholeFolder`]): a restore of 50,000
/// files into a fresh machine, or over a folder of which every file changed, then costs one
/// rename per folder instead of one per file.
///
/// A folder qualifies only when moving it whole leaves what the file-by-file swap leaves:
/// - its staged counterpart holds exactly the incoming files below it, and nothing else;
/// - the live folder is missing, or holds only regular files and folders (no link, no file the
///   swap would leave in place), every file of it goes aside, every folder of it is in the
///   staged tree too, and its folders are this user's, on its parent's file system, with no
///   extended attributes (an ACL would be lost);
/// - no database is below it (the app keeps its database's folder open), nor the config file, the
///   local snapshot folder, the aside folder or staging.
///
/// The highest qualifying folder wins; the rest move file by file.
fn whole_folders(
    config: &Config,
    aside_dir: &Path,
    cleanup: &[PathBuf],
    databases: &[PathBuf],
    set_aside: &[aside::AsideEntry],
    incoming: &[(PathBuf, PathBuf)],
) -> Vec<WholeFolder> {
    let Some(new_folder_mode) = fsutil::new_folder_mode() else {
        return Vec::new();
    };
    let roots: Vec<(&Path, usize)> = config
        .includes
        .iter()
        .map(|root| (root.as_path(), root.components().count()))
        .collect();
    // Levels from a file up to the deepest include that covers it (inclusive).
    let levels_up_to_root = |live: &Path| -> usize {
        roots
            .iter()
            .filter(|(root, _)| live.starts_with(root))
            .map(|&(_, depth)| depth)
            .max()
            .map_or(0, |depth| live.components().count().saturating_sub(depth))
    };
    let mut candidates: HashMap<&Path, Candidate<'_>> = HashMap::new();
    for (staged, live) in incoming {
        let (mut live_at, mut staged_at) = (live.as_path(), staged.as_path());
        let mut aligned = true;
        for _ in 0..levels_up_to_root(live) {
            aligned &= live_at.file_name() == staged_at.file_name();
            let (Some(live_up), Some(staged_up)) = (live_at.parent(), staged_at.parent()) else {
                break;
            };
            let candidate = candidates.entry(live_up).or_default();
            candidate.incoming += 1;
            match candidate.staged {
                _ if !aligned => candidate.mixed = true,
                None => candidate.staged = Some(staged_up),
                Some(other) if other != staged_up => candidate.mixed = true,
                Some(_) => {}
            }
            (live_at, staged_at) = (live_up, staged_up);
        }
    }
    if candidates.is_empty() {
        return Vec::new();
    }
    for entry in set_aside {
        let mut live_at = entry.live.as_path();
        for _ in 0..levels_up_to_root(&entry.live) {
            let Some(up) = live_at.parent() else { break };
            candidates.entry(up).or_default().aside += 1;
            live_at = up;
        }
    }
    for db in databases {
        for folder in db.ancestors().skip(1) {
            if let Some(candidate) = candidates.get_mut(folder) {
                candidate.mixed = true;
            }
        }
    }
    let base = &config.base_dir;
    let ours_to_keep = |folder: &Path| {
        base.starts_with(folder)
            || config.local_dir.starts_with(folder)
            || aside_dir.starts_with(folder)
            || config.file.starts_with(folder)
            || config.file_resolved.starts_with(folder)
            || cleanup.iter().any(|p| p.starts_with(folder))
    };
    let mut order: Vec<(&Path, &Candidate<'_>)> = candidates
        .iter()
        .filter(|(_, c)| !c.mixed && c.staged.is_some())
        .map(|(folder, c)| (*folder, c))
        .collect();
    order.sort_by_key(|(folder, _)| (folder.components().count(), *folder));
    let mut chosen: Vec<WholeFolder> = Vec::new();
    let mut chosen_folders: HashSet<&Path> = HashSet::new();
    for (folder, candidate) in order {
        if folder
            .ancestors()
            .skip(1)
            .any(|a| chosen_folders.contains(a))
            || ours_to_keep(folder)
        {
            continue;
        }
        let staged = candidate.staged.expect("filtered");
        if let Some(whole) = whole_folder(folder, staged, candidate, new_folder_mode) {
            chosen_folders.insert(folder);
            chosen.push(whole);
        }
    }
    chosen
}

/// One folder's tree: how many regular files, and each folder (relative, "" for the top) with
/// its metadata; `None` when it holds anything else (a link, a device).
fn tree(top: &Path) -> Option<(usize, HashMap<PathBuf, fs::Metadata>)> {
    let mut files = 0;
    let mut folders = HashMap::new();
    let mut pending = vec![PathBuf::new()];
    folders.insert(PathBuf::new(), fs::symlink_metadata(top).ok()?);
    while let Some(rel) = pending.pop() {
        for entry in fs::read_dir(top.join(&rel)).ok()? {
            let entry = entry.ok()?;
            let kind = entry.file_type().ok()?;
            if kind.is_file() {
                files += 1;
            } else if kind.is_dir() {
                let sub = rel.join(entry.file_name());
                folders.insert(sub.clone(), entry.metadata().ok()?);
                pending.push(sub);
            } else {
                return None;
            }
        }
    }
    Some((files, folders))
}

/// Whether `live` can be replaced whole by `staged` (see [`whole_folders`]), and how.
fn whole_folder(
    live: &Path,
    staged: &Path,
    candidate: &Candidate<'_>,
    new_folder_mode: u32,
) -> Option<WholeFolder> {
    let (staged_files, staged_folders) = tree(staged)?;
    if staged_files != candidate.incoming {
        return None;
    }
    let live_folders = match fs::symlink_metadata(live) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && candidate.aside == 0 => {
            HashMap::new()
        }
        Ok(meta) if meta.is_dir() => {
            let parent_dev = fs::metadata(live.parent()?).ok()?.dev();
            let (live_files, live_folders) = tree(live)?;
            let euid = rustix::process::geteuid().as_raw();
            let plain = |rel: &PathBuf, m: &fs::Metadata| {
                m.dev() == parent_dev
                    && m.uid() == euid
                    && staged_folders.contains_key(rel)
                    && !has_own_xattrs(&live.join(rel))
            };
            if live_files != candidate.aside || !live_folders.iter().all(|(r, m)| plain(r, m)) {
                return None;
            }
            live_folders
        }
        _ => return None,
    };
    let modes = staged_folders
        .iter()
        .filter_map(|(rel, staged_meta)| {
            let want = live_folders
                .get(rel)
                .map_or(new_folder_mode, |m| m.mode() & 0o7777);
            (staged_meta.mode() & 0o7777 != want).then(|| (staged.join(rel), want))
        })
        .collect();
    Some(WholeFolder {
        live: live.to_path_buf(),
        staged: staged.to_path_buf(),
        replaces_live: !live_folders.is_empty(),
        modes,
        inside: staged_folders.keys().map(|rel| live.join(rel)).collect(),
    })
}

/// Whether `path` carries extended attributes other than security labels (an ACL, say), which
/// a folder made anew would not have.
fn has_own_xattrs(path: &Path) -> bool {
    let mut names = vec![0u8; 4096];
    match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(len) => names[..len]
            .split(|b| *b == 0)
            .any(|name| !name.is_empty() && !name.starts_with(b"security.")),
        Err(e) => e != rustix::io::Errno::NOTSUP, // a list too long to read counts as some
    }
}

/// The swap's renames, in order: files and whole folders aside, then files and whole folders
/// into place.
fn renames(
    base: &Path,
    aside_dir: &Path,
    set_aside: &[aside::AsideEntry],
    incoming: &[(PathBuf, PathBuf)],
    whole: &[WholeFolder],
) -> Vec<swap::Move> {
    let set_of = |replacing: bool| -> HashSet<&std::ffi::OsStr> {
        whole
            .iter()
            .filter(|w| !replacing || w.replaces_live)
            .map(|w| w.live.as_os_str())
            .collect()
    };
    let (aside_whole, incoming_whole) = (set_of(true), set_of(false));
    let shortest = whole.iter().map(|w| w.live.as_os_str().len()).min();
    // Compared as bytes, shortest folder first out: this runs for every file.
    let below = |live: &Path, folders: &HashSet<&std::ffi::OsStr>| {
        shortest.is_some_and(|shortest| {
            live.ancestors()
                .skip(1)
                .map(Path::as_os_str)
                .take_while(|a| a.len() >= shortest)
                .any(|a| folders.contains(a))
        })
    };
    let mut moves: Vec<swap::Move> = set_aside
        .iter()
        .filter(|e| !below(&e.live, &aside_whole))
        .map(|e| swap::Move {
            from: e.live.clone(),
            to: aside_dir.join(&e.stored),
        })
        .collect();
    moves.extend(
        whole
            .iter()
            .filter(|w| w.replaces_live)
            .map(|w| swap::Move {
                from: w.live.clone(),
                to: aside_dir.join(aside::mirror(base, &w.live)),
            }),
    );
    moves.extend(
        incoming
            .iter()
            .filter(|(_, live)| !below(live, &incoming_whole))
            .map(|(staged, live)| swap::Move {
                from: staged.clone(),
                to: live.clone(),
            }),
    );
    moves.extend(whole.iter().map(|w| swap::Move {
        from: w.staged.clone(),
        to: w.live.clone(),
    }));
    moves
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
            // Missing, and so is every folder below it: the swap makes them all.
            sound.insert((guard_key.clone(), dir.to_path_buf()));
            sound.extend(
                above
                    .into_iter()
                    .map(|d| (guard_key.clone(), d.to_path_buf())),
            );
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
