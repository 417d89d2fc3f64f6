//! A differential comes back whole in staging: what it leaves to its base is extracted from the
//! base's archive (the local copy when it is good, else the remote's), checked like any
//! extraction, and each database's changed pages are laid over the base's copy. The rebuilt file
//! must have the sha256 recorded when the snapshot was taken; only then do the usual checks run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{SPACE_MARGIN, db_refused};
use crate::archive::read::{ArchiveSha, Files, extract_with, read_manifest_as_read};
use crate::archive::{BaseRef, Manifest, pages};
use crate::config::Config;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::layout;
use crate::progress::Progress;
use crate::remote::Remote;

/// Where a rebuild takes its base from, and what it puts where.
pub(super) struct Rebuild<'a> {
    pub config: &'a Config,
    pub remote: Option<&'a Remote>,
    /// The staging folder: a downloaded base goes here, beside `payload`.
    pub staging: &'a Path,
    pub payload: &'a Path,
    /// Included files only checked, never written (a restore drill).
    pub check_only_files: bool,
    /// Archive paths that are not to be written (unchanged live files, what `--only` leaves
    /// out): neither is taken from the base.
    pub skip: &'a HashSet<String>,
    /// The base is taken from the remote even when the local folder holds it (`verify
    /// --remote`: a dead disk leaves only the remote).
    pub remote_only: bool,
}

impl Rebuild<'_> {
    /// Completes the differential `manifest`, already extracted into the payload, from its base;
    /// returns a note for the user saying where the base came from.
    ///
    /// # Errors
    /// No good copy of the base (named, with what to do), a base that is not the one the
    /// differential was taken against, or a rebuilt database whose sha256 is not the one
    /// recorded.
    pub fn complete(&self, manifest: &Manifest, progress: &dyn Progress) -> Result<String> {
        let base = manifest.base.as_ref().expect("a differential");
        let (archive, mut from) = self.base_archive(manifest, base, self.remote_only, progress)?;
        match self.take_from_base(manifest, &archive, from, progress) {
            Ok(()) => {}
            // A local base that rotted since its last check: its remote copy will do.
            Err(e)
                if from == From::Local
                    && crate::integrity::is_damaged(&archive).unwrap_or(true) =>
            {
                tracing::info!("the local copy of {} is damaged: {e}", base.tag);
                if let Err(e) =
                    crate::integrity::mark_damaged(&self.config.local_dir, &base.tag, None)
                {
                    tracing::info!(
                        "the damaged local copy of {} was not recorded: {e}",
                        base.tag
                    );
                }
                self.clear_taken(manifest)?;
                let (archive, remote) = self.base_archive(manifest, base, true, progress)?;
                self.take_from_base(manifest, &archive, remote, progress)?;
                from = remote;
            }
            Err(e) => return Err(e),
        }
        self.lay_pages(manifest, base)?;
        Ok(format!(
            "snapshot {} is a differential: rebuilt from its base {} ({})",
            manifest.tag,
            base.tag,
            match from {
                From::Local => "local copy",
                From::Remote => "downloaded",
            }
        ))
    }

    /// The archive paths this rebuild writes from the base: the base's copy of each database
    /// stored as pages, and each file left in the base; not what `skip` names.
    fn taken_paths<'m>(&self, manifest: &'m Manifest) -> impl Iterator<Item = &'m String> {
        let databases = manifest
            .databases
            .iter()
            .filter(|d| d.pages.is_some())
            .map(|d| &d.archive_path);
        let files = manifest
            .files
            .iter()
            .filter(|f| f.in_base && !self.check_only_files)
            .map(|f| &f.archive_path);
        databases
            .chain(files)
            .filter(|path| !self.skip.contains(*path))
    }

    /// Removes from the payload what an extraction from a base that failed may have written.
    fn clear_taken(&self, manifest: &Manifest) -> Result<()> {
        for path in self.taken_paths(manifest) {
            let path = self.payload.join(path);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot clear staging folder", &path, e)),
            }
        }
        Ok(())
    }

    /// Extracts from the base's `archive` what the differential leaves to it, every member
    /// checked; a downloaded archive is removed after.
    fn take_from_base(
        &self,
        manifest: &Manifest,
        archive: &Path,
        from: From,
        progress: &dyn Progress,
    ) -> Result<()> {
        let base = manifest.base.as_ref().expect("a differential");
        let archive_sha = match from {
            From::Local => ArchiveSha::Check(Some(&base.sha256)),
            From::Remote => ArchiveSha::Known(&base.sha256),
        };
        let extracted = (|| {
            let read = read_manifest_as_read(archive)?;
            let leave = self.check_fit(manifest, &read.manifest)?;
            extract_with(
                archive,
                self.payload,
                archive_sha,
                Files::WriteExcept(&leave),
                Some(read),
                progress,
            )
        })();
        if from == From::Remote {
            let _ = std::fs::remove_file(archive);
        }
        extracted.map(|_| ())
    }

    /// Checks that `full` is the base `manifest` was taken against, member by member; returns the
    /// base's members the rebuild does not take (only checked as they stream past).
    fn check_fit(&self, manifest: &Manifest, full: &Manifest) -> Result<HashSet<String>> {
        let base = manifest.base.as_ref().expect("a differential");
        let another = "restore another snapshot (`backup list`)";
        if full.tag != base.tag || full.base.is_some() {
            return Err(db_refused(format!(
                "snapshot {} names {} as its base, but that archive holds {} {}; {another}",
                manifest.tag,
                base.tag,
                if full.base.is_some() {
                    "a differential of"
                } else {
                    "the manifest of"
                },
                full.tag
            )));
        }
        let mismatch = |what: String| {
            db_refused(format!(
                "snapshot {} does not fit its base {}: {what}; {another}",
                manifest.tag, base.tag
            ))
        };
        for db in &manifest.databases {
            let Some(pages) = &db.pages else { continue };
            let Some(old) = full.databases.iter().find(|d| d.name == db.name) else {
                return Err(mismatch(format!("the base has no database `{}`", db.name)));
            };
            if old.sha256 != pages.base_sha256 || old.archive_path != db.archive_path {
                return Err(mismatch(format!(
                    "the base's copy of `{}` is not the one its pages were taken against",
                    db.name
                )));
            }
        }
        for file in manifest.files.iter().filter(|f| f.in_base) {
            let same = full.files.iter().any(|f| {
                f.archive_path == file.archive_path
                    && f.sha256 == file.sha256
                    && f.size == file.size
                    && f.mode == file.mode
            });
            if !same {
                return Err(mismatch(format!(
                    "the base does not hold {} as it was",
                    file.path
                )));
            }
        }
        let wanted: HashSet<&String> = self.taken_paths(manifest).collect();
        Ok(full
            .members()
            .map(|m| m.archive_path.to_string())
            .filter(|path| !wanted.contains(path))
            .collect())
    }

    /// Lays each database's stored pages over the base's copy in the payload and checks the
    /// result against the sha256 recorded when the snapshot was taken.
    fn lay_pages(&self, manifest: &Manifest, base: &BaseRef) -> Result<()> {
        for db in &manifest.databases {
            let Some(stored) = &db.pages else { continue };
            let pages_path = self.payload.join(&stored.archive_path);
            if !self.skip.contains(&db.archive_path) {
                let target = self.payload.join(&db.archive_path);
                let mut member =
                    std::fs::File::open(&pages_path).at("cannot read staged pages", &pages_path)?;
                let rebuilt = pages::apply(
                    &mut member,
                    &target,
                    db.page_size,
                    stored.page_count,
                    stored.changed,
                )
                .map_err(|e| {
                    let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        "its pages end too soon".to_string()
                    } else {
                        e.to_string()
                    };
                    db_refused(format!(
                        "database `{}` of snapshot {} cannot be rebuilt from its base {}: {why}; restore another snapshot (`backup list`)",
                        db.name, manifest.tag, base.tag
                    ))
                })?;
                if rebuilt != (db.size, db.sha256.clone()) {
                    return Err(db_refused(format!(
                        "database `{}` rebuilt from {} and the pages of {} has sha256 {} ({} bytes), but {} ({} bytes) was recorded when it was taken; restore another snapshot (`backup list`)",
                        db.name, base.tag, manifest.tag, rebuilt.1, rebuilt.0, db.sha256, db.size
                    )));
                }
            }
            std::fs::remove_file(&pages_path).at("cannot remove staged pages", &pages_path)?;
        }
        Ok(())
    }

    /// The base's archive: the local copy when its record is the sha256 the differential names
    /// and it is not known to be damaged, else the remote's copy with that sha256, downloaded.
    fn base_archive(
        &self,
        manifest: &Manifest,
        base: &BaseRef,
        remote_only: bool,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, From)> {
        let local_dir = &self.config.local_dir;
        let local = layout::archive_in(local_dir, &base.tag);
        let damaged = crate::integrity::known_damaged(local_dir)
            .iter()
            .any(|d| d.tag == base.tag);
        if !remote_only
            && !damaged
            && local.is_file()
            && fsutil::read_checksum(&local).as_deref() == Some(base.sha256.as_str())
        {
            return Ok((local, From::Local));
        }
        let missing = |place: String| {
            db_refused(format!(
                "snapshot {} is a differential, and its base {} is {place}: it cannot be restored; restore another snapshot (`backup list` marks those whose base is missing)",
                manifest.tag, base.tag
            ))
        };
        let here = if remote_only && local.is_file() {
            format!(
                "taken from the remote only (--remote), not from {}",
                local_dir.display()
            )
        } else if local.is_file() {
            format!("damaged in {}", local_dir.display())
        } else {
            format!("not in {}", local_dir.display())
        };
        let Some(remote) = self.remote else {
            return Err(missing(format!("{here}, and no remote is configured")));
        };
        let found = remote
            .holding(std::slice::from_ref(&base.tag))?
            .into_iter()
            .find(|s| s.tag == base.tag);
        let Some(found) = found else {
            return Err(missing(format!("{here}, nor on {}", remote.describe())));
        };
        if found.sha256.as_deref() != Some(base.sha256.as_str()) {
            return Err(missing(format!(
                "on {} with another sha256 (damaged or replaced)",
                remote.describe()
            )));
        }
        fsutil::ensure_space(
            self.staging,
            found.size + SPACE_MARGIN,
            "the base archive downloaded for the restore",
        )?;
        let path = self
            .staging
            .join(format!("base-{}", base.tag.archive_name()));
        let (size, sha256) = remote.fetch(&base.tag, &path, progress)?;
        if sha256 != base.sha256 || size != found.size {
            let _ = std::fs::remove_file(&path);
            return Err(Error::Refused(format!(
                "the download of {} (the base of {}) has sha256 {sha256}, but {} was recorded; the remote copy or the transfer is damaged: try again, or restore another snapshot (`backup list`); the live data was not touched",
                base.tag, manifest.tag, base.sha256
            )));
        }
        Ok((path, From::Remote))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum From {
    Local,
    Remote,
}
