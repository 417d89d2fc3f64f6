//! Every name this tool gives a file or folder in the local snapshot folder and beside the live
//! data: temporaries and staging folders, the restore journal and its records, the folders live
//! data is set aside in, `last_run.json`, `checked.json`, the lock, the checksum sidecars. Here
//! too is what reads those names back: the archive scan and the leftovers predicate. One home, so
//! a name is never spelled twice and tidying up knows every temporary the tool makes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::tag::Tag;

/// Prefix of every temporary file or folder this tool creates. A run that holds the lock removes
/// leftovers of a killed run, but only names this tool makes (see [`is_our_temp`]): the snapshot
/// folder may be shared with other files.
pub const TEMP_PREFIX: &str = ".backup-tmp-";
/// Prefix of a staging folder, after [`TEMP_PREFIX`].
pub const STAGING_PREFIX: &str = "staging-";
/// Suffix of the checksum file written beside every archive: `<sha256>  <name>`, as `sha256sum`.
pub const CHECKSUM_SUFFIX: &str = ".sha256";

/// Staging folder of a restore, after [`TEMP_PREFIX`].
pub const RESTORE_STAGING: &str = "restore-";
/// Staging folder of a verify, after [`TEMP_PREFIX`].
pub const VERIFY_STAGING: &str = "verify-";

/// An archive downloaded only to read its manifest (`backup show`/`diff` of a snapshot the
/// remote keeps no readable manifest of), after [`TEMP_PREFIX`]: `inspect-<pid>-<archive>`, the
/// process id keeping two such commands apart. Removed once read; it is a leftover only once that
/// process has ended (see [`is_stale_temp`]), since the command holds no run lock while it downloads.
pub const INSPECT_DOWNLOAD: &str = "inspect-";

/// The name of that download for `tag` in this process (see [`INSPECT_DOWNLOAD`]).
pub fn inspect_download_name(tag: &Tag) -> String {
    format!(
        "{TEMP_PREFIX}{INSPECT_DOWNLOAD}{}-{}",
        std::process::id(),
        tag.archive_name()
    )
}

/// Journal of a swap in progress, in the local snapshot folder.
pub const JOURNAL_FILE: &str = "restore-journal.json";
/// Record inside every `pre_restore_<ts>` folder: what was set aside and from where.
pub const SWAP_RECORD_FILE: &str = "RESTORE.json";
/// Prefix of the folders that hold a set-aside live set.
pub const ASIDE_PREFIX: &str = "pre_restore_";
/// The last completed swap, in the local snapshot folder: how `backup rollback` tells a last
/// restore that set nothing aside (nothing to put back) from an older one that did.
pub const LAST_SWAP_FILE: &str = "last-swap.json";

/// Folder in the local snapshot folder holding the page hashes of the newest full snapshot, one
/// file per database, for the next differential (see [`crate::archive::pages`]).
pub const PAGE_HASHES_DIR: &str = "page-hashes";

/// The last run's outcome, in the local snapshot folder.
pub const LAST_RUN_FILE: &str = "last_run.json";
/// The local copies' check record, in the local snapshot folder. Not a temp name and not an
/// archive name, so no tidying and no retention ever removes it.
pub const CHECKED_FILE: &str = "checked.json";
/// The record, in the local snapshot folder, of the remote folders this machine pushed to.
pub const REMOTE_FOLDERS_FILE: &str = "remote-folders.json";
/// The marker file in a folder remote.
pub const MARKER_FILE: &str = ".backup-agent-remote.json";
/// Name of the lock file inside the local snapshot folder.
pub const LOCK_FILE: &str = ".lock";

/// The archive of `tag` in `dir`: whichever of its names exists (`<tag>.tar.gz`,
/// `<tag>.tar.zst`), else the first, for a caller that finds nothing there.
pub fn archive_in(dir: &Path, tag: &Tag) -> PathBuf {
    let names = tag.archive_names();
    names
        .iter()
        .map(|name| dir.join(name))
        .find(|path| fs::symlink_metadata(path).is_ok())
        .unwrap_or_else(|| dir.join(&names[0]))
}

/// Archives (`<tag>.tar.gz` with a tag this tool makes) in a folder, oldest first, as (tag, path,
/// size). Shared by the local folder and the directory remote.
pub fn scan_archives(dir: &Path) -> io::Result<Vec<(Tag, PathBuf, u64)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(tag) = entry.file_name().to_str().and_then(Tag::from_archive_name) else {
            continue;
        };
        let meta = entry.metadata()?;
        if meta.is_file() {
            found.push((tag, entry.path(), meta.len()));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// [`scan_archives`] of the local snapshot folder. A missing folder holds none.
///
/// # Errors
/// When the folder exists but cannot be read.
pub fn local_archives(dir: &Path) -> Result<Vec<(Tag, PathBuf, u64)>> {
    match scan_archives(dir) {
        Ok(found) => Ok(found),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("cannot read snapshot folder", dir, e)),
    }
}

/// Removes temp files and folders left by a killed run (see [`is_stale_temp`]). Call only while
/// holding the run lock.
pub fn remove_stale_temps(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot read folder", dir, e)),
    };
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(is_stale_temp) {
            let path = entry.path();
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.at("cannot remove leftover temporary", &path)?;
        }
    }
    remove_orphan_checksums(dir)
}

/// Removes `<tag>.tar.gz.sha256` records whose archive does not exist: the record is written
/// just before the archive is renamed into place, so a run killed in between leaves one.
fn remove_orphan_checksums(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).at("cannot read folder", dir)?.flatten() {
        let name = entry.file_name();
        let Some(archive) = name
            .to_str()
            .and_then(|n| n.strip_suffix(CHECKSUM_SUFFIX))
            .filter(|a| Tag::from_archive_name(a).is_some())
        else {
            continue;
        };
        if !dir.join(archive).exists() {
            let path = entry.path();
            fs::remove_file(&path).at("cannot remove orphan checksum record", &path)?;
        }
    }
    Ok(())
}

/// Whether `name` is a temporary this tool creates: a staging folder, an archive or checksum on
/// its way into place, or `last_run.json`, `checked.json`, the remote folders record or the
/// restore journal being replaced.
pub fn is_our_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
        return false;
    };
    // A restore journal killed while being written: the swap it was to describe never began.
    // A record of a swap (in an aside folder, or of the last swap) cut short the same way.
    if [JOURNAL_FILE, SWAP_RECORD_FILE, LAST_SWAP_FILE].contains(&rest) {
        return true;
    }
    if let Some(download) = rest.strip_prefix(INSPECT_DOWNLOAD) {
        return download.split_once('-').is_some_and(|(pid, archive)| {
            !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && Tag::from_archive_name(archive).is_some()
        });
    }
    for staging in [STAGING_PREFIX, RESTORE_STAGING, VERIFY_STAGING] {
        if let Some(tag) = rest.strip_prefix(staging) {
            return Tag::parse(tag).is_some();
        }
    }
    let rest = rest.strip_suffix(CHECKSUM_SUFFIX).unwrap_or(rest);
    rest == LAST_RUN_FILE
        || rest == REMOTE_FOLDERS_FILE
        || rest == CHECKED_FILE
        || Tag::from_archive_name(rest).is_some()
}

/// Whether `name` is a temporary of this tool that no running process is still writing: every
/// one but a download of `backup show`/`diff` whose process is alive. Those commands work without
/// the run lock, so a run or another command's tidying may start while one downloads.
pub fn is_stale_temp(name: &str) -> bool {
    is_our_temp(name) && !inspect_download_owner(name).is_some_and(process_is_alive)
}

/// The process id in the name of a `backup show`/`diff` download (see [`INSPECT_DOWNLOAD`]).
fn inspect_download_owner(name: &str) -> Option<i32> {
    let rest = name
        .strip_prefix(TEMP_PREFIX)?
        .strip_prefix(INSPECT_DOWNLOAD)?;
    let (pid, _archive) = rest.split_once('-')?;
    pid.parse()
        .ok()
        .filter(|_| pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a process with id `pid` exists. `kill(pid, 0)` says so on Linux and macOS alike; a
/// process of another user (EPERM) exists too. A pid reused since only delays the tidying.
fn process_is_alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// The checksum file of an archive.
pub fn checksum_path(archive: &Path) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(CHECKSUM_SUFFIX);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_temporaries_count_as_leftovers() {
        let tag = "bk-20261122T014207Z-manual-laptop-3f9a1c";
        for ours in [
            format!("{TEMP_PREFIX}{STAGING_PREFIX}{tag}"),
            format!("{TEMP_PREFIX}restore-{tag}"),
            format!("{TEMP_PREFIX}verify-{tag}"),
            format!("{TEMP_PREFIX}inspect-4242-{tag}.tar.gz"),
            format!("{TEMP_PREFIX}{tag}.tar.gz"),
            format!("{TEMP_PREFIX}{tag}.tar.gz.sha256"),
            format!("{TEMP_PREFIX}last_run.json"),
            format!("{TEMP_PREFIX}remote-folders.json"),
            format!("{TEMP_PREFIX}RESTORE.json"),
            format!("{TEMP_PREFIX}last-swap.json"),
            format!("{TEMP_PREFIX}checked.json"),
        ] {
            assert!(is_our_temp(&ours), "{ours}");
        }
        for theirs in [
            ".tmp-notes",
            ".backup-tmp-",
            ".backup-tmp-my-work",
            ".backup-tmp-inspect-notes.tar.gz",
            "last_run.json",
            "remote-folders.json",
            "checked.json",
        ] {
            assert!(!is_our_temp(theirs), "{theirs}");
        }
    }

    #[test]
    fn a_download_is_stale_only_once_its_process_has_ended() {
        let tag = "bk-20261122T014207Z-manual-laptop-3f9a1c";
        let mine = format!(
            "{TEMP_PREFIX}{INSPECT_DOWNLOAD}{}-{tag}.tar.gz",
            std::process::id()
        );
        assert!(is_our_temp(&mine));
        assert!(!is_stale_temp(&mine));
        // Above any pid_max (Linux 2^22, macOS 99998): no process has it.
        let ended = format!("{TEMP_PREFIX}{INSPECT_DOWNLOAD}2147483646-{tag}.tar.gz");
        assert!(is_stale_temp(&ended));
        assert!(is_stale_temp(&format!("{TEMP_PREFIX}{tag}.tar.gz")));
    }
}
