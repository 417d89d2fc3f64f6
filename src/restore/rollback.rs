//! `backup rollback`: the newest set-aside live state goes back, the current one aside.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::places::in_scope;
use super::{SwapReport, aside, begin, in_use_error, live, live_set, swap, swap_plan};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::layout::{self, ASIDE_PREFIX};

/// Puts the newest `pre_restore_<ts>` folder back, setting the current state aside the same way.
///
/// # Errors
/// When there is nothing to roll back, a database is open in another process (without `force`),
/// or a rename fails (then everything is put back).
pub fn rollback(config: &Config, force: bool) -> Result<SwapReport> {
    let (_lock, _) = begin(config)?;
    if !force {
        // Before the plan: looking at a set-aside database can checkpoint away its -wal, which
        // the plan must then not list.
        let (old_dir, record) = newest_to_put_back(config)?;
        // Both the live databases and the set-aside copies (someone may be looking at them).
        let busy: Vec<String> = record
            .databases
            .iter()
            .flat_map(|db| {
                [
                    db.clone(),
                    old_dir.join(aside::mirror(&config.base_dir, db)),
                ]
            })
            .filter_map(|p| live::in_use(&p))
            .collect();
        if !busy.is_empty() {
            return Err(in_use_error(&busy));
        }
    }
    let planned = plan_rollback(config)?;
    for stored in &planned.disposable {
        match fs::remove_file(stored) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("cannot remove", stored, e));
            }
            _ => {}
        }
    }
    let done = swap::execute(&config.local_dir, &planned.swap)?;
    Ok(SwapReport {
        operation: done.operation,
        tag: done.tag,
        aside_dir: (!done.set_aside.is_empty()).then(|| planned.swap.aside_dir.clone()),
        set_aside: done.set_aside.len(),
        placed: done.placed.len(),
        data_in: done.data_in,
    })
}

/// A rollback worked out and not yet run: what [`rollback`] runs and [`preview_rollback`] shows.
struct PlannedRollback {
    old_dir: PathBuf,
    record: aside::Record,
    swap: swap::SwapPlan,
    /// Empty -wal and -shm files beside set-aside databases, removed before the swap.
    disposable: Vec<PathBuf>,
    /// Files the swap left in place that changed since: they go aside with the rest.
    changed_since: Vec<PathBuf>,
}

/// Works out the rollback of the newest `pre_restore_<ts>` folder, changing nothing.
fn plan_rollback(config: &Config) -> Result<PlannedRollback> {
    let base = &config.base_dir;
    let (old_dir, record) = newest_to_put_back(config)?;
    let mut incoming = Vec::new();
    let companion_of_kept_db = |live_path: &Path| {
        record.databases.iter().any(|db| {
            fsutil::DB_COMPANIONS
                .iter()
                .any(|s| fsutil::with_suffix(db, s) == live_path)
                && old_dir.join(aside::mirror(base, db)).exists()
        })
    };
    for entry in &record.set_aside {
        check_recorded(config, &old_dir, entry)?;
        let stored = old_dir.join(&entry.stored);
        // Opening the set-aside database once (to look at it) checkpoints and removes its
        // -wal/-shm: the database alone then holds everything.
        if fs::symlink_metadata(&stored).is_err() && companion_of_kept_db(&entry.live) {
            continue;
        }
        if fs::symlink_metadata(&stored).is_err() {
            return Err(Error::Damaged(format!(
                "{} lists {} but it is gone; the folder was changed by hand, so nothing was rolled back",
                old_dir.join(layout::SWAP_RECORD_FILE).display(),
                stored.display()
            )));
        }
        incoming.push((stored, entry.live.clone()));
    }
    // Opening a set-aside database (to look at it before rolling back) leaves -wal/-shm files
    // beside it. A WAL with frames or a rollback journal holds changes and goes back with its
    // database; an empty WAL and the index hold nothing and are removed, once every check passed.
    let recorded: BTreeSet<PathBuf> = record.set_aside.iter().map(|e| e.live.clone()).collect();
    let mut disposable = Vec::new();
    for db in record.databases.iter().filter(|db| recorded.contains(*db)) {
        let stored_db = old_dir.join(aside::mirror(base, db));
        for suffix in fsutil::DB_COMPANIONS {
            let (stored, live_path) = (
                fsutil::with_suffix(&stored_db, suffix),
                fsutil::with_suffix(db, suffix),
            );
            if recorded.contains(&live_path) || !stored.exists() {
                continue;
            }
            let holds_changes =
                suffix != "-shm" && fs::metadata(&stored).is_ok_and(|m| m.len() > 0);
            if holds_changes {
                incoming.push((stored, live_path));
            } else {
                disposable.push(stored);
            }
        }
    }
    // A file the swap left in place held the same bytes before it and after it: while it still
    // does, it is both states and stays. One changed since goes aside like any live file (nothing
    // is lost; a second rollback brings it back); before the restore it held the snapshot's bytes,
    // which are in the snapshot, not in the aside folder. Only files under the includes the swap
    // concerned count: the record is not trusted to name anything else.
    let (kept, changed): (Vec<aside::KeptFile>, Vec<aside::KeptFile>) = record
        .left_in_place
        .iter()
        .filter(|k| {
            in_scope(&k.live, record.includes.as_deref())
                && config.includes.iter().any(|root| k.live.starts_with(root))
        })
        .cloned()
        .partition(aside::KeptFile::unchanged);
    let staying: HashSet<&Path> = kept.iter().map(|k| k.live.as_path()).collect();
    // A partial restore's rollback stays as partial: included files it did not concern stay.
    let touched: Vec<PathBuf> = live_set(
        config,
        &record.databases,
        &incoming,
        record.includes.as_deref(),
    )?
    .into_iter()
    .chain(record.placed.iter().cloned())
    .chain(record.set_aside.iter().map(|e| e.live.clone()))
    .filter(|live| !staying.contains(live.as_path()))
    .collect();
    let aside_dir = aside::new_aside_dir(base, crate::clock::now());
    let mut plan = swap_plan(
        config,
        format!("rollback of {}", old_dir.display()),
        record.tag.clone(),
        &aside_dir,
        &touched,
        incoming,
        record.databases.clone(),
        record.includes.clone(),
        vec![old_dir.clone()],
    )?;
    plan.left_in_place = kept;
    let changed_since = changed
        .into_iter()
        .map(|k| k.live)
        .filter(|live| plan.set_aside.iter().any(|e| &e.live == live))
        .collect();
    Ok(PlannedRollback {
        old_dir,
        record,
        swap: plan,
        disposable,
        changed_since,
    })
}

/// What `backup rollback` would do, read before it asks: the folder that goes back, and the live
/// files it sets aside, listed as the rollback itself lists them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RollbackPreview {
    /// The `pre_restore_<time>` folder that goes back.
    pub folder: PathBuf,
    /// The swap that filled it: `restore <tag>` or `rollback of <folder>`.
    pub operation: String,
    /// Every live file set aside into a new folder.
    pub live: Vec<PathBuf>,
    /// Among `live`: included files that swap did not put there (made since it, or, with a
    /// record of an older version, left in place by it).
    pub not_placed: Vec<PathBuf>,
    /// Among `live`: files that swap left in place which changed since.
    pub changed_since: Vec<PathBuf>,
    /// Files that swap left in place, unchanged since: they stay.
    pub left_in_place: Vec<PathBuf>,
}

/// What a rollback would put back, set aside and leave, without taking the lock or changing
/// anything.
///
/// # Errors
/// As [`rollback`] when there is nothing to roll back, or its record cannot be acted on.
pub fn preview_rollback(config: &Config) -> Result<RollbackPreview> {
    let planned = plan_rollback(config)?;
    let record = &planned.record;
    let database_file = |live: &Path| {
        record.databases.iter().any(|db| {
            std::iter::once("")
                .chain(fsutil::DB_COMPANIONS)
                .any(|suffix| fsutil::with_suffix(db, suffix) == live)
        })
    };
    let live: BTreeSet<PathBuf> = planned
        .swap
        .set_aside
        .iter()
        .map(|e| e.live.clone())
        .collect();
    let not_placed = live
        .iter()
        .filter(|l| {
            !database_file(l) && !record.placed.contains(l) && !planned.changed_since.contains(l)
        })
        .cloned()
        .collect();
    Ok(RollbackPreview {
        folder: planned.old_dir,
        operation: planned.record.operation.clone(),
        live: live.into_iter().collect(),
        not_placed,
        changed_since: planned.changed_since,
        left_in_place: planned
            .swap
            .left_in_place
            .iter()
            .map(|k| k.live.clone())
            .collect(),
    })
}

/// The newest set-aside folder, unless the last swap set nothing aside (undoing it puts nothing
/// back, and an older folder belongs to an older restore).
fn newest_to_put_back(config: &Config) -> Result<(PathBuf, aside::Record)> {
    let base = &config.base_dir;
    let newest = aside::aside_dirs(base)?.into_iter().next();
    if let Some(last) = swap::last_swap(&config.local_dir)
        && last.aside_dir.is_none()
    {
        return Err(Error::NotFound(format!(
            "the last {} found no live data to set aside, so there is nothing to put back{}",
            last.operation,
            newest.map_or(String::new(), |(dir, record)| format!(
                "; {} holds what the earlier {} set aside: move its files back by hand if you need them",
                dir.display(),
                record.operation
            ))
        )));
    }
    let Some((old_dir, record)) = newest else {
        return Err(Error::NotFound(format!(
            "no {ASIDE_PREFIX}* folder with a {} in {}; there is no restore to undo, nothing was changed",
            layout::SWAP_RECORD_FILE,
            base.display()
        )));
    };
    Ok((old_dir, record))
}

/// A record entry a rollback may act on: stored at a plain path inside its folder, and going
/// back to a database the swap concerned (or its -wal/-shm/-journal) or under an `[[include]]`.
/// Anything else was not written by a restore: the folder was changed by hand, or crafted.
fn check_recorded(config: &Config, old_dir: &Path, entry: &aside::AsideEntry) -> Result<()> {
    let plain = entry
        .stored
        .to_str()
        .is_some_and(crate::archive::read::is_plain_relative);
    // The config's databases, as configured and where a link leads (never the record's own
    // list, which could name anything).
    let databases: Vec<PathBuf> = config
        .databases
        .iter()
        .flat_map(|d| [Some(d.path.clone()), fs::canonicalize(&d.path).ok()])
        .flatten()
        .collect();
    let database_file = databases.iter().any(|db| {
        std::iter::once("")
            .chain(fsutil::DB_COMPANIONS)
            .any(|suffix| fsutil::with_suffix(db, suffix) == entry.live)
    });
    let included = config
        .includes
        .iter()
        .any(|root| entry.live.starts_with(root));
    if plain && entry.live.is_absolute() && (database_file || included) {
        return Ok(());
    }
    Err(Error::Damaged(format!(
        "{} lists {} -> {}, which no restore would set aside (outside every [[include]] and database of the config); the folder was changed by hand, so nothing was rolled back",
        old_dir.join(layout::SWAP_RECORD_FILE).display(),
        entry.stored.display(),
        entry.live.display()
    )))
}
