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
        let (archive, from) = self.base_archive(manifest, base, progress)?;
        let archive_sha = match from {
            From::Local => ArchiveSha::Check(Some(&base.sha256)),
            From::Remote => ArchiveSha::Known(&base.sha256),
        };
        let read = read_manifest_as_read(&archive)?;
        let full = &read.manifest;
        if full.tag != base.tag || full.base.is_some() {
            return Err(db_refused(format!(
                "snapshot {} names {} as its base, but that archive holds {} {}",
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
                "snapshot {} does not fit its base {}: {what}",
                manifest.tag, base.tag
            ))
        };
        // What this rebuild takes from the base; everything else there is only checked.
        let mut wanted = HashSet::new();
        for db in &manifest.databases {
            let Some(pages) = &db.pages else { continue };
            if self.skip.contains(&db.archive_path) {
                continue;
            }
            let Some(old) = full.databases.iter().find(|d| d.name == db.name) else {
                return Err(mismatch(format!("the base has no database `{}`", db.name)));
            };
            if old.sha256 != pages.base_sha256 || old.archive_path != db.archive_path {
                return Err(mismatch(format!(
                    "the base's copy of `{}` is not the one its pages were taken against",
                    db.name
                )));
            }
            wanted.insert(old.archive_path.clone());
        }
        for file in manifest.files.iter().filter(|f| f.in_base) {
            if self.skip.contains(&file.archive_path) || self.check_only_files {
                continue;
            }
            let same = full.files.iter().any(|f| {
                f.archive_path == file.archive_path
                    && f.sha256 == file.sha256
                    && f.size == file.size
            });
            if !same {
                return Err(mismatch(format!(
                    "the base does not hold {} as it was",
                    file.path
                )));
            }
            wanted.insert(file.archive_path.clone());
        }
        let leave: HashSet<String> = full
            .members()
            .map(|m| m.archive_path.to_string())
            .filter(|path| !wanted.contains(path))
            .collect();
        let extracted = extract_with(
            &archive,
            self.payload,
            archive_sha,
            Files::WriteExcept(&leave),
            Some(read),
            progress,
        );
        if from == From::Remote {
            let _ = std::fs::remove_file(&archive);
        }
        extracted?;

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
                    db_refused(format!(
                        "database `{}` of snapshot {} cannot be rebuilt from its base {}: {e}",
                        db.name, manifest.tag, base.tag
                    ))
                })?;
                if rebuilt != (db.size, db.sha256.clone()) {
                    return Err(db_refused(format!(
                        "database `{}` rebuilt from {} and the pages of {} has sha256 {} ({} bytes), but {} ({} bytes) was recorded when it was taken",
                        db.name, base.tag, manifest.tag, rebuilt.1, rebuilt.0, db.sha256, db.size
                    )));
                }
            }
            std::fs::remove_file(&pages_path).at("cannot remove staged pages", &pages_path)?;
        }
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

    /// The base's archive: the local copy when its record is the sha256 the differential names
    /// and it is not known to be damaged, else the remote's copy with that sha256, downloaded.
    fn base_archive(
        &self,
        manifest: &Manifest,
        base: &BaseRef,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, From)> {
        let local_dir = &self.config.local_dir;
        let local = layout::archive_in(local_dir, &base.tag);
        let damaged = crate::integrity::known_damaged(local_dir)
            .iter()
            .any(|d| d.tag == base.tag);
        if !self.remote_only
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
        let Some(remote) = self.remote else {
            return Err(missing(format!(
                "not in {} and no remote is configured",
                local_dir.display()
            )));
        };
        let found = remote
            .holding(std::slice::from_ref(&base.tag))?
            .into_iter()
            .find(|s| s.tag == base.tag);
        let Some(found) = found else {
            return Err(missing(format!(
                "in neither {} nor {}",
                local_dir.display(),
                remote.describe()
            )));
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
                "the download of {} (the base of {}) has sha256 {sha256}, but {} was recorded; the remote copy or the transfer is damaged; the live data was not touched",
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
