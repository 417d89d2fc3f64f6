//! Restore, verify and rollback: a snapshot comes back only after every check has passed, and
//! the live data moves aside (never deleted) in one journaled swap.
//!
//! The pipeline, nothing of it touching live data before the swap:
//! 1. find the archive (local folder first, else the remote, downloaded into staging) and check
//!    free space;
//! 2. read `MANIFEST.json`, refuse an unknown `manifest_version`;
//! 3. extract only the listed regular files under plain relative paths, each checked for size
//!    and sha256, the archive itself against its recorded sha256 ([`extract`]);
//! 4. per database: newer-schema guard, row counts, migrations forward, `integrity_check`,
//!    `foreign_key_check` ([`stage`]);
//! 5. compare with the live data and check no app has it open ([`live`]);
//! 6. swap under a journal ([`swap`]).

pub mod extract;
pub mod live;
mod prepare;
mod rollback;
pub mod stage;
pub mod swap;

use prepare::{locate, prepare};
pub use rollback::rollback;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, TEMP_PREFIX, TempPath};
use crate::lock::RunLock;
use crate::progress::Progress;
use crate::remote::Remote;
use crate::snapshot::{self, Manifest};
use crate::tag::Tag;
pub use live::LiveDatabase;
pub use stage::{DatabaseReport, TableChange};
pub use swap::{ASIDE_PREFIX, Recovery};

/// Room kept free on top of the computed need.
const SPACE_MARGIN: u64 = 16 << 20;
/// Staging folder prefixes, after [`TEMP_PREFIX`].
pub const RESTORE_STAGING: &str = "restore-";
pub const VERIFY_STAGING: &str = "verify-";

/// Which snapshot to restore.
#[derive(Clone, Debug)]
pub enum Which {
    Latest,
    Tag(Tag),
}

impl Which {
    /// `latest` or a tag.
    ///
    /// # Errors
    /// [`Error::Config`] (a usage error) for anything else.
    pub fn parse(text: &str) -> Result<Which> {
        if text == "latest" {
            return Ok(Which::Latest);
        }
        let text = text.strip_suffix(".tar.gz").unwrap_or(text);
        Tag::parse(text).map(Which::Tag).ok_or_else(|| {
            Error::Config(format!(
                "`{text}` is not a snapshot tag; give `latest` or a tag that `backup list` shows"
            ))
        })
    }
}

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
    /// Included files changed after the snapshot was taken.
    pub files_newer: usize,
}

/// A restore, checked and ready to swap.
#[derive(Debug)]
pub struct RestorePlan {
    pub prepared: Prepared,
    pub live: LiveState,
    /// What the swap would set aside that the snapshot lacks, in words: reasons to ask first.
    pub concerns: Vec<String>,
    /// Why live databases cannot be swapped now (only with `--force`; otherwise refused).
    pub in_use: Vec<String>,
    pub aside_dir: PathBuf,
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
    /// Where the previous live set now is.
    pub aside_dir: PathBuf,
    pub set_aside: usize,
    pub placed: usize,
}

pub(super) fn db_refused(reason: String) -> Error {
    Error::Other(format!("{reason}; the live data was not touched"))
}

/// Takes the run lock, finishes or undoes an interrupted swap, and clears leftovers of killed
/// runs: the start of every restore, verify and rollback.
pub(super) fn begin(config: &Config) -> Result<(RunLock, Option<Recovery>)> {
    let local = &config.local_dir;
    fs::create_dir_all(local).at("cannot create snapshot folder", local)?;
    let lock = RunLock::acquire(local)?;
    let recovery = swap::recover(local)?;
    fsutil::remove_stale_temps(local)?;
    remove_stale_staging(&config.base_dir)?;
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
        fsutil::remove_stale_temps(&config.local_dir),
        remove_stale_staging(&config.base_dir),
    ] {
        if let Err(e) = tidy {
            tracing::warn!("leftover of a killed run not removed: {e}");
        }
    }
    Ok(recovery)
}

/// Whether a killed run left temp files in the snapshot folder or staging beside the live data.
fn has_leftovers(config: &Config) -> bool {
    let any = |dir: &Path, ours: &dyn Fn(&str) -> bool| {
        fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_str().is_some_and(ours))
        })
    };
    any(&config.local_dir, &fsutil::is_our_temp) || any(&config.base_dir, &is_restore_staging)
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

/// The snapshot to restore, found locally or on the remote.
/// A restore drill: the whole pipeline up to the swap, in a temporary folder beside the local
/// snapshots. The live data is never read for writing, and nothing stays behind.
///
/// # Errors
/// The first check that fails, naming it.
pub fn verify(config: &Config, which: &Which, progress: &dyn Progress) -> Result<Prepared> {
    let (_lock, _) = begin(config)?;
    let remote = config.remote.as_ref().map(Remote::from_config);
    let located = locate(config, which, remote.as_ref())?;
    let staging = TempPath::new(
        config
            .local_dir
            .join(format!("{TEMP_PREFIX}{VERIFY_STAGING}{}", located.tag)),
    );
    prepare(config, &located, remote.as_ref(), staging, false, progress)
}

/// Prepares a restore: every check, the comparison with the live data, and the swap plan.
/// Nothing live is changed until [`RestorePlan::commit`].
///
/// # Errors
/// A failed check, a live database in use (without `force`), too little space, or a live path on
/// another file system than the config's folder.
pub fn plan_restore(
    config: &Config,
    which: &Which,
    force: bool,
    progress: &dyn Progress,
) -> Result<RestorePlan> {
    let (lock, _) = begin(config)?;
    let remote = config.remote.as_ref().map(Remote::from_config);
    let located = locate(config, which, remote.as_ref())?;
    let base = &config.base_dir;
    let staging =
        TempPath::new(base.join(format!("{TEMP_PREFIX}{RESTORE_STAGING}{}", located.tag)));
    let prepared = prepare(config, &located, remote.as_ref(), staging, force, progress)?;
    let snapshot_time = prepared.manifest.created_at;

    // Live databases the snapshot brings back, with their -wal/-shm files.
    let mut live_dbs = Vec::new();
    let mut concerns = Vec::new();
    let mut in_use = Vec::new();
    for (report, (_, live_path)) in prepared.databases.iter().zip(&prepared.db_targets) {
        let live = live::inspect(&report.name, live_path);
        concerns.extend(live::concerns(&live, report, snapshot_time));
        if let Some(reason) = live::in_use(live_path) {
            in_use.push(reason);
        }
        live_dbs.push(live);
    }
    if !in_use.is_empty() && !force {
        return Err(in_use_error(&in_use));
    }
    let db_paths: Vec<PathBuf> = prepared.db_targets.iter().map(|(_, l)| l.clone()).collect();
    let live_files = snapshot::live_included_files(config)?;
    let files_newer = live_files
        .iter()
        .filter(|f| {
            fs::metadata(f)
                .and_then(|m| m.modified())
                .is_ok_and(|t| chrono::DateTime::<Utc>::from(t) > snapshot_time)
        })
        .count();
    if files_newer > 0 {
        concerns.push(format!(
            "{files_newer} included file(s) changed after the snapshot was taken"
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
                .map(|f| (f.staged.clone(), f.live.clone())),
        )
        .collect();
    let touched = live_set(config, &db_paths, &incoming)?;
    let aside_dir = swap::new_aside_dir(base, Utc::now());
    let plan = swap_plan(
        config,
        format!("restore {}", prepared.tag),
        Some(prepared.tag.to_string()),
        &aside_dir,
        &touched,
        incoming,
        db_paths,
        vec![prepared.staging.path().to_path_buf()],
    )?;
    let live = LiveState {
        databases: live_dbs,
        files: live_files.len(),
        files_newer,
    };
    Ok(RestorePlan {
        prepared,
        live,
        concerns,
        in_use,
        aside_dir,
        swap: plan,
        local_dir: config.local_dir.clone(),
        config: config.clone(),
        force,
        _lock: lock,
    })
}

/// Everything live a swap must set aside: the databases with their -wal/-shm/-journal files,
/// every file under the includes, and whatever sits where an incoming file goes.
pub(super) fn live_set(
    config: &Config,
    databases: &[PathBuf],
    incoming: &[(PathBuf, PathBuf)],
) -> Result<Vec<PathBuf>> {
    Ok(databases
        .iter()
        .flat_map(|db| {
            std::iter::once(db.clone()).chain(
                fsutil::DB_COMPANIONS
                    .iter()
                    .map(|s| fsutil::with_suffix(db, s)),
            )
        })
        .chain(snapshot::live_included_files(config)?)
        .chain(incoming.iter().map(|(_, live)| live.clone()))
        .collect())
}

pub(super) fn in_use_error(reasons: &[String]) -> Error {
    Error::Other(format!(
        "{}; then run it again, or pass --force; the live data was not touched",
        reasons.join("; ")
    ))
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
    let mut seen = BTreeSet::new();
    let mut stored_names = BTreeMap::new();
    let mut set_aside = Vec::new();
    for live in touched {
        if !seen.insert(live.clone()) {
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
    // Every incoming file needs folders above it; a file in the way is not ours to move.
    for (_, live) in &incoming {
        let mut ancestor = live.parent();
        while let Some(dir) = ancestor {
            match fs::symlink_metadata(dir) {
                Ok(meta) if meta.is_dir() || meta.file_type().is_symlink() && dir.is_dir() => break,
                Ok(_) => {
                    return Err(db_refused(format!(
                        "{} is a file where the snapshot needs a folder (for {}); move it away first",
                        dir.display(),
                        live.display()
                    )));
                }
                Err(_) => ancestor = dir.parent(),
            }
        }
    }
    // Renames must stay on one file system to be atomic.
    let aside_sources = set_aside.iter().map(|e| &e.live);
    for live in incoming.iter().map(|(_, live)| live).chain(aside_sources) {
        let mut probe = live.as_path();
        let dev = loop {
            match fs::metadata(probe) {
                Ok(meta) => break meta.dev(),
                Err(_) => probe = probe.parent().unwrap_or(Path::new("/")),
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
        // The live set again, now: files the app wrote, or a -wal it left, while the user was
        // being asked must be set aside too, never overwritten.
        let swap = swap_plan(
            &self.config,
            self.swap.operation.clone(),
            self.swap.tag.clone(),
            &self.swap.aside_dir,
            &live_set(&self.config, &self.swap.databases, &self.swap.incoming)?,
            self.swap.incoming.clone(),
            self.swap.databases.clone(),
            self.swap.cleanup.clone(),
        )?;
        // A restored file keeps the owner and mode of the live file it replaces, so an app that
        // runs as another user can still open it.
        for (staged, live_path) in &swap.incoming {
            if let Ok(meta) = fs::metadata(live_path) {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::os::unix::fs::chown(staged, Some(meta.uid()), Some(meta.gid()));
                let _ = fs::set_permissions(
                    staged,
                    fs::Permissions::from_mode(meta.permissions().mode() & 0o7777),
                );
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
            aside_dir: swap.aside_dir.clone(),
            set_aside: record.set_aside.len(),
            placed: record.placed.len(),
        })
    }
}
