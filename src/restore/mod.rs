//! Restore, verify and rollback: a snapshot comes back only after every check has passed, and
//! the live data moves aside (never deleted) in one journaled swap.
//!
//! The pipeline, nothing of it touching live data before the swap:
//! 1. find the archive (local folder first, else the remote, downloaded into staging) and check
//!    free space;
//! 2. read `MANIFEST.json`, refuse an unknown `manifest_version`;
//! 3. extract only the listed regular files under plain relative paths, each checked for size
//!    and sha256, the archive itself against its recorded sha256 ([`crate::archive::read`]);
//! 4. per database: newer-schema guard, row counts, migrations forward, `integrity_check`,
//!    `foreign_key_check` ([`stage`]);
//! 5. compare with the live data and check no app has it open ([`live`]);
//! 6. swap under a journal ([`swap`]), writing only where the rules of `places` allow.
//!
//! `restore --to DIR` ([`restore_to`]) stops after step 4 and moves what it extracted into DIR.

mod aside;
pub mod live;
mod only;
mod places;
mod prepare;
mod rebuild;
mod rollback;
pub mod stage;
pub mod swap;
mod to_folder;

use places::{
    is_config_file, live_database_path, live_included_files_in, live_set, live_set_with, swap_plan,
};
pub use prepare::Copies;
use prepare::{Located, Treatment, locate, locate_all, prepare};
pub use rollback::{RollbackPreview, preview_rollback, rollback};

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::archive::Manifest;
use crate::archive::read::Files;
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, TempPath};
use crate::layout::{self, RESTORE_STAGING, TEMP_PREFIX, VERIFY_STAGING};
use crate::lock::RunLock;
use crate::progress::Progress;
use crate::tag::Tag;
pub use live::{LiveDatabase, TableDifference};
pub use stage::{DatabaseReport, TableChange};
pub use swap::Recovery;
pub use to_folder::{PlacedDatabase, RestoredTo, ToFolder, restore_to};

/// Room kept free on top of the computed need.
const SPACE_MARGIN: u64 = 16 << 20;

/// Which snapshot to restore or verify: parsed and resolved in one place,
/// [`crate::catalog::Selector`], for every command that takes one.
pub use crate::catalog::Selector as Which;

/// Where the archive comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Local,
    Remote,
}

/// An included file as staged.
#[derive(Clone, Debug, Serialize)]
pub struct StagedFile {
    pub live: PathBuf,
    pub size: u64,
    #[serde(skip)]
    sha256: String,
    /// The live file already holds these bytes: it stays in place, nothing is staged for it.
    #[serde(skip)]
    unchanged: Option<live::Stamp>,
    #[serde(skip)]
    staged: PathBuf,
}

/// A snapshot extracted and checked in a staging folder.
#[derive(Debug)]
pub struct Prepared {
    pub tag: Tag,
    pub manifest: Manifest,
    pub source: Source,
    pub archive_size: u64,
    pub archive_sha256: String,
    /// The archive had a recorded sha256 to check against.
    pub archive_sha256_recorded: bool,
    /// The remote could not be listed, so `latest` means the newest local snapshot.
    pub remote_error: Option<String>,
    /// What the user should know about which snapshot this is (whose `latest`, snapshots
    /// skipped because they are dated in the future) and how it maps to this machine (a copy
    /// of the config file it holds, left unplaced).
    pub notes: Vec<String>,
    /// The local copy failed its sha256 record (known from `checked.json`, or found during
    /// extraction), so the archive came from the remote copy.
    pub local_damaged: bool,
    pub databases: Vec<DatabaseReport>,
    pub files: Vec<StagedFile>,
    /// (staged copy, live path) per database, in manifest order.
    db_targets: Vec<(PathBuf, PathBuf)>,
    pub elapsed: Duration,
    staging: TempPath,
}

/// The live databases and files a restore would set aside.
#[derive(Debug, Serialize)]
pub struct LiveState {
    pub databases: Vec<LiveDatabase>,
    /// Included files that exist now.
    pub files: usize,
    /// Included files the snapshot does not hold.
    pub files_not_in_snapshot: usize,
    /// Included files whose content differs from the snapshot's copy.
    pub files_differing: usize,
}

/// A restore, checked and ready to swap.
#[derive(Debug)]
pub struct RestorePlan {
    /// Narrowed to what `--only` named, when it did.
    pub prepared: Prepared,
    /// The databases and includes `--only` named, as given; empty for a whole restore.
    pub only: Vec<String>,
    pub live: LiveState,
    /// What the swap would set aside that the snapshot lacks, in words, with the row counts of
    /// those databases beside them: reasons to ask first.
    pub concerns: Vec<String>,
    /// Row counts of live databases that only lost rows (the restore brings them back): shown,
    /// no reason to ask.
    pub notes: Vec<String>,
    /// Every table whose live row count differs from the restored one.
    pub table_differences: Vec<TableDifference>,
    /// Why live databases cannot be swapped now (only with `--force`; otherwise refused).
    pub in_use: Vec<String>,
    pub aside_dir: PathBuf,
    /// Live included files that already hold the snapshot's bytes: left in place, not moved.
    unchanged: HashMap<PathBuf, live::Stamp>,
    swap: swap::SwapPlan,
    local_dir: PathBuf,
    config: Config,
    force: bool,
    _lock: RunLock,
}

/// A completed restore or rollback.
#[derive(Debug, Serialize)]
pub struct SwapReport {
    pub operation: String,
    pub tag: Option<String>,
    /// Where the previous live set now is; `None` when there was no live data to set aside.
    pub aside_dir: Option<PathBuf>,
    pub set_aside: usize,
    pub placed: usize,
    /// The aside folder's top-level entries holding the data (`.data` is hidden from `ls`).
    pub data_in: Vec<PathBuf>,
}

pub(super) fn db_refused(reason: String) -> Error {
    Error::Refused(format!("{reason}; the live data was not touched"))
}

/// Takes the run lock, finishes or undoes an interrupted swap, and clears leftovers of killed
/// runs: the start of every restore, verify and rollback.
pub(super) fn begin(config: &Config) -> Result<(RunLock, Option<Recovery>)> {
    let local = &config.local_dir;
    fsutil::create_private_dir_all(local).at("cannot create snapshot folder", local)?;
    let lock = RunLock::acquire(local)?;
    let recovery = swap::recover(local)?;
    layout::remove_stale_temps(local)?;
    remove_stale_staging(&config.base_dir)?;
    aside::remove_orphan_aside_dirs(&config.base_dir);
    Ok((lock, recovery))
}

/// Finishes or undoes an interrupted restore, and removes the temp files and staging folders
/// of killed runs, if there are any and no other run is working. Every command calls this
/// first, so nothing a killed command left survives the next one.
///
/// # Errors
/// When an interrupted swap cannot be read or undone, or a leftover cannot be removed.
pub fn recover_interrupted(config: &Config) -> Result<Option<Recovery>> {
    let swap_pending = swap::pending(&config.local_dir);
    // Looked for first: taking the lock on every `backup status` is needless.
    if !swap_pending && !has_leftovers(config) {
        return Ok(None);
    }
    let _lock = match RunLock::acquire(&config.local_dir) {
        Ok(lock) => lock,
        // The restore itself (or another run) is working: its files are not leftovers.
        Err(Error::Locked(_)) => return Ok(None),
        Err(e) if swap_pending => return Err(e),
        // Only tidying was due, and this user cannot take the lock (a monitor reading
        // status): the owner's next run tidies instead.
        Err(_) => return Ok(None),
    };
    let recovery = swap::recover(&config.local_dir)?;
    // Tidying is best effort: a leftover that cannot be removed must not fail `status`.
    for tidy in [
        layout::remove_stale_temps(&config.local_dir),
        remove_stale_staging(&config.base_dir),
    ] {
        if let Err(e) = tidy {
            tracing::warn!("leftover of a killed run not removed: {e}");
        }
    }
    aside::remove_orphan_aside_dirs(&config.base_dir);
    Ok(recovery)
}

/// Whether a killed run left temp files in the snapshot folder, or staging or an empty aside
/// folder beside the live data.
fn has_leftovers(config: &Config) -> bool {
    let any = |dir: &Path, ours: &dyn Fn(&Path, &str) -> bool| {
        fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_str().is_some_and(|n| ours(&e.path(), n)))
        })
    };
    any(&config.local_dir, &|_, name| layout::is_stale_temp(name))
        || any(&config.base_dir, &|path, name| {
            is_restore_staging(name) || aside::is_orphan_aside_dir(path)
        })
}

/// A restore staging folder's name (beside the live data; only names this tool makes).
fn is_restore_staging(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|n| n.strip_prefix(RESTORE_STAGING))
        .is_some_and(|tag| Tag::parse(tag).is_some())
}

/// Restore staging folders of killed runs beside the live data (only names this tool makes).
/// Call only while holding the run lock, after [`swap::recover`].
pub(crate) fn remove_stale_staging(base_dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(base_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(is_restore_staging) {
            let path = entry.path();
            fs::remove_dir_all(&path).at("cannot remove leftover staging folder", &path)?;
        }
    }
    Ok(())
}

/// A restore drill: the whole pipeline up to the swap, in a temporary folder beside the local
/// snapshots, from the copies `copies` allows. The live data is never read for writing, and
/// nothing stays behind.
///
/// # Errors
/// The first check that fails, naming it.
pub fn verify(
    config: &Config,
    which: &Which,
    host: Option<&str>,
    copies: Copies,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let (_lock, _) = begin(config)?;
    let remote = crate::catalog::open_remote(config);
    let located = locate(config, which, remote.as_ref(), host, copies)?;
    drill(config, &located, remote.as_ref(), progress)
}

/// What [`verify_all`] did.
#[derive(Debug)]
pub struct VerifiedAll {
    /// Snapshots there are.
    pub total: usize,
    /// Snapshots verified (all of them, or the sample).
    pub checked: usize,
    /// Those that failed, newest first.
    pub failed: Vec<Tag>,
    /// Why the remote could not be listed, when only the local snapshots were verified.
    pub remote_error: Option<String>,
}

/// A restore drill of every snapshot there is (local and remote; only the remote's with
/// `RemoteOnly`), or of `sample` of them chosen at random, newest first, one at a time so that
/// one staging folder exists at once. `each` gets every outcome as it comes.
///
/// When the remote cannot be listed, the local snapshots are drilled and
/// [`VerifiedAll::remote_error`] says why the remote's were not.
///
/// # Errors
/// When the snapshots cannot be listed (the remote, with `RemoteOnly` or no local snapshot), or
/// there are none; a failed drill is an outcome.
pub fn verify_all(
    config: &Config,
    sample: Option<usize>,
    copies: Copies,
    progress: &dyn Progress,
    each: &mut dyn FnMut(&Tag, Result<Prepared>),
) -> Result<VerifiedAll> {
    let (_lock, _) = begin(config)?;
    let remote = crate::catalog::open_remote(config);
    let (mut all, remote_error) = locate_all(config, remote.as_ref(), copies)?;
    if all.is_empty() {
        return Err(Error::NotFound(format!(
            "no snapshots in {}; nothing to verify",
            match (&remote, copies) {
                (Some(r), Copies::RemoteOnly) => r.describe(),
                (Some(r), Copies::Any) =>
                    format!("{} or on {}", config.local_dir.display(), r.describe()),
                (None, _) => config.local_dir.display().to_string(),
            }
        )));
    }
    let total = all.len();
    if let Some(n) = sample {
        keep_random(&mut all, n);
    }
    let mut failed = Vec::new();
    for located in &all {
        let outcome = drill(config, located, remote.as_ref(), progress);
        if outcome.is_err() {
            failed.push(located.tag.clone());
        }
        each(&located.tag, outcome);
    }
    Ok(VerifiedAll {
        total,
        checked: all.len(),
        failed,
        remote_error,
    })
}

/// Keeps `n` of `items` chosen at random, in their order.
fn keep_random<T>(items: &mut Vec<T>, n: usize) {
    use std::hash::{BuildHasher, Hasher};
    // The standard library's per-process random keys: enough to pick which snapshots to drill.
    let random = std::collections::hash_map::RandomState::new();
    let mut keyed: Vec<(u64, usize)> = (0..items.len())
        .map(|i| {
            let mut hasher = random.build_hasher();
            hasher.write_usize(i);
            (hasher.finish(), i)
        })
        .collect();
    keyed.sort_unstable();
    let mut chosen: Vec<usize> = keyed.into_iter().take(n).map(|(_, i)| i).collect();
    chosen.sort_unstable();
    let mut index = 0;
    items.retain(|_| {
        let keep = chosen.binary_search(&index).is_ok();
        index += 1;
        keep
    });
}

/// Extracts and checks `located` in a verify staging folder, as a restore would.
fn drill(
    config: &Config,
    located: &Located,
    remote: Option<&crate::remote::Remote>,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let staging = TempPath::new(
        config
            .local_dir
            .join(format!("{TEMP_PREFIX}{VERIFY_STAGING}{}", located.tag)),
    );
    // A drill writes the databases (SQLite checks them in place) but only checks the included
    // files as they stream past.
    let treatment = Treatment {
        force: false,
        migrate: true,
        files: Files::CheckOnly,
        only: None,
    };
    prepare(config, located, remote, staging, treatment, progress)
}

/// Prepares a restore: every check, the comparison with the live data, and the swap plan.
/// With `only` (database names, include paths as the config gives them) just those are
/// compared, set aside and replaced; the rest of the live data stays as it is.
/// Nothing live is changed until [`RestorePlan::commit`].
///
/// # Errors
/// A name of `only` the config does not give, a failed check, a live database in use (without
/// `force`), too little space, or a live path on another file system than the config's folder.
pub fn plan_restore(
    config: &Config,
    which: &Which,
    host: Option<&str>,
    force: bool,
    only: &[String],
    progress: &dyn Progress,
) -> Result<RestorePlan> {
    let only = only::select(config, only)?;
    let (lock, _) = begin(config)?;
    let remote = crate::catalog::open_remote(config);
    let located = locate(config, which, remote.as_ref(), host, Copies::Any)?;
    let base = &config.base_dir;
    let staging =
        TempPath::new(base.join(format!("{TEMP_PREFIX}{RESTORE_STAGING}{}", located.tag)));
    let treatment = Treatment {
        force,
        migrate: true,
        files: Files::Write,
        only: only.as_ref(),
    };
    let mut prepared = prepare(
        config,
        &located,
        remote.as_ref(),
        staging,
        treatment,
        progress,
    )?;
    if let Some(only) = &only {
        only::narrow(&mut prepared, only)?;
    }
    let scope = only.as_ref().map(|o| o.includes.clone());
    for (_, live_path) in &mut prepared.db_targets {
        *live_path = live_database_path(config, live_path, force)?;
    }

    // Live databases the snapshot brings back, with their -wal/-shm files.
    let mut live_dbs = Vec::new();
    let mut concerns = Vec::new();
    let mut notes = Vec::new();
    let mut table_differences = Vec::new();
    let mut in_use = Vec::new();
    for (report, (staged, live_path)) in prepared.databases.iter().zip(&prepared.db_targets) {
        let entry = prepared
            .manifest
            .databases
            .iter()
            .find(|e| e.name == report.name)
            .expect("every report is of a manifest database");
        // Older manifests know only the whole second the snapshot started in; the copy was taken
        // within it.
        let changed_after = entry
            .copied_at
            .unwrap_or(prepared.manifest.created_at + chrono::TimeDelta::seconds(1));
        let live = live::inspect(&report.name, live_path);
        let comparison = live::compare(&live, report, changed_after);
        concerns.extend(comparison.concerns);
        notes.extend(comparison.note);
        table_differences.extend(comparison.tables);
        if let Some(reason) = live::in_use(live_path) {
            in_use.push(reason);
        }
        // The recorded mode for a database with no live file to take it from (commit gives a
        // replaced one the live file's); never setuid, setgid or sticky bits from an archive.
        if let Some(mode) = entry.mode {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(staged, fs::Permissions::from_mode(mode & 0o777))
                .at("cannot set the mode of", staged)?;
        }
        live_dbs.push(live);
    }
    if !in_use.is_empty() && !force {
        return Err(in_use_error(&in_use));
    }
    let db_paths: Vec<PathBuf> = prepared.db_targets.iter().map(|(_, l)| l.clone()).collect();
    // Every live included file goes aside: one the snapshot lacks, or holds otherwise, is lost
    // from its place whatever its modification time says (`cp -p` and `rsync -a` keep old ones).
    let live_files = live_included_files_in(config, scope.as_deref())?;
    let in_snapshot: HashMap<&Path, &StagedFile> = prepared
        .files
        .iter()
        .map(|staged| (staged.live.as_path(), staged))
        .collect();
    let (mut not_in_snapshot, mut differing) = (Vec::new(), Vec::new());
    for file in &live_files {
        match in_snapshot.get(file.as_path()) {
            None => not_in_snapshot.push(file),
            // Found the same as the snapshot's copy while extracting: it stays in place.
            Some(staged) if staged.unchanged.is_some() => {}
            Some(_) => differing.push(file),
        }
    }
    let a_few = |files: &[&PathBuf]| {
        let mut named: Vec<String> = files
            .iter()
            .take(3)
            .map(|f| config.display_path(f))
            .collect();
        if files.len() > named.len() {
            named.push("…".into());
        }
        named.join(", ")
    };
    if !not_in_snapshot.is_empty() {
        concerns.push(format!(
            "{} the snapshot does not hold ({})",
            crate::units::count(
                not_in_snapshot.len(),
                "live included file",
                "live included files"
            ),
            a_few(&not_in_snapshot)
        ));
    }
    if !differing.is_empty() {
        concerns.push(format!(
            "{} from the snapshot's copy ({})",
            crate::units::count(
                differing.len(),
                "live included file differs",
                "live included files differ"
            ),
            a_few(&differing)
        ));
    }
    let incoming: Vec<(PathBuf, PathBuf)> = prepared
        .db_targets
        .iter()
        .cloned()
        .chain(
            prepared
                .files
                .iter()
                .filter(|f| f.unchanged.is_none())
                .map(|f| (f.staged.clone(), f.live.clone())),
        )
        .collect();
    let unchanged: HashMap<PathBuf, live::Stamp> = prepared
        .files
        .iter()
        .filter_map(|f| Some((f.live.clone(), f.unchanged?)))
        .collect();
    let touched: Vec<PathBuf> = live_set_with(&db_paths, live_files.clone(), &incoming)
        .into_iter()
        .filter(|live| !unchanged.contains_key(live))
        .collect();
    let aside_dir = aside::new_aside_dir(base, crate::clock::now());
    let operation = match &only {
        Some(only) => format!("restore {} (only {})", prepared.tag, only.names.join(", ")),
        None => format!("restore {}", prepared.tag),
    };
    let mut plan = swap_plan(
        config,
        operation,
        Some(prepared.tag.to_string()),
        &aside_dir,
        &touched,
        incoming,
        db_paths,
        scope,
        vec![prepared.staging.path().to_path_buf()],
    )?;
    // Recorded, so a rollback leaves them in place too instead of setting them aside for good.
    plan.left_in_place = prepared
        .files
        .iter()
        .filter(|f| f.unchanged.is_some())
        .map(|f| aside::KeptFile {
            live: f.live.clone(),
            size: f.size,
            sha256: f.sha256.clone(),
        })
        .collect();
    let live = LiveState {
        databases: live_dbs,
        files: live_files.len(),
        files_not_in_snapshot: not_in_snapshot.len(),
        files_differing: differing.len(),
    };
    Ok(RestorePlan {
        prepared,
        only: only.map(|o| o.names).unwrap_or_default(),
        live,
        concerns,
        notes,
        table_differences,
        in_use,
        aside_dir,
        unchanged,
        swap: plan,
        local_dir: config.local_dir.clone(),
        config: config.clone(),
        force,
        _lock: lock,
    })
}

/// The refusal when live databases are in use, with what to do.
pub(super) fn in_use_error(reasons: &[String]) -> Error {
    Error::Refused(format!(
        "{}; then run it again, or pass --force; the live data was not touched",
        reasons.join("; ")
    ))
}

impl RestorePlan {
    /// Number of live files the swap sets aside.
    pub fn set_aside_count(&self) -> usize {
        self.swap.set_aside.len()
    }

    /// Runs the swap. The live set moves to [`RestorePlan::aside_dir`]; `backup rollback` puts
    /// it back.
    ///
    /// # Errors
    /// A database opened by another process since the plan (without `force`), or a failed
    /// rename (then everything is put back).
    pub fn commit(self) -> Result<SwapReport> {
        if !self.force {
            let busy: Vec<String> = self
                .swap
                .databases
                .iter()
                .filter_map(|p| live::in_use(p))
                .collect();
            if !busy.is_empty() {
                return Err(in_use_error(&busy));
            }
        }
        // Files left in place because they held the snapshot's bytes must still hold them.
        if let Some(changed) = self
            .unchanged
            .iter()
            .find(|(path, stamp)| live::Stamp::of(path).as_ref() != Some(*stamp))
        {
            return Err(Error::Refused(format!(
                "{} changed while the restore was being prepared (is the app running?); nothing was changed: run the restore again",
                changed.0.display()
            )));
        }
        // The live set again, now: files the app wrote, or a -wal it left, while the user was
        // being asked must be set aside too, never overwritten.
        let touched: Vec<PathBuf> = live_set(
            &self.config,
            &self.swap.databases,
            &self.swap.incoming,
            self.swap.includes.as_deref(),
        )?
        .into_iter()
        .filter(|live| !self.unchanged.contains_key(live))
        .collect();
        let mut swap = swap_plan(
            &self.config,
            self.swap.operation.clone(),
            self.swap.tag.clone(),
            &self.swap.aside_dir,
            &touched,
            self.swap.incoming.clone(),
            self.swap.databases.clone(),
            self.swap.includes.clone(),
            self.swap.cleanup.clone(),
        )?;
        swap.left_in_place = self.swap.left_in_place.clone();
        // A restored file keeps the owner and mode of the live file it replaces, so an app that
        // runs as another user can still open it. Only a regular file's: a link in its place is
        // set aside as a link, and what it points to is not ours to read.
        let ours = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        for (staged, live_path) in &swap.incoming {
            if let Ok(meta) = fs::symlink_metadata(live_path)
                && meta.is_file()
            {
                use std::os::unix::fs::PermissionsExt;
                if (meta.uid(), meta.gid()) != ours {
                    let _ = std::os::unix::fs::chown(staged, Some(meta.uid()), Some(meta.gid()));
                }
                let mode = meta.permissions().mode() & 0o7777;
                // Usually the mode it was staged with already: a look costs less than a change.
                if fs::symlink_metadata(staged)
                    .map_or(true, |m| m.permissions().mode() & 0o7777 != mode)
                {
                    let _ = fs::set_permissions(staged, fs::Permissions::from_mode(mode));
                }
            }
        }
        let record = match swap::execute(&self.local_dir, &swap) {
            Ok(record) => record,
            Err(e) => {
                // An interrupted swap still needs its staged files for the next command.
                if swap::pending(&self.local_dir) {
                    self.prepared.staging.keep();
                }
                return Err(e);
            }
        };
        Ok(SwapReport {
            operation: record.operation,
            tag: record.tag,
            aside_dir: (!record.set_aside.is_empty()).then(|| swap.aside_dir.clone()),
            set_aside: record.set_aside.len(),
            placed: record.placed.len(),
            data_in: record.data_in,
        })
    }
}
