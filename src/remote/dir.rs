//! The directory remote: a folder on a NAS, an external disk or a cloud-synced drive; its
//! `[remote] type = "dir"` settings ([`DirConfig`]) and its `backup doctor` line.
//!
//! The folder is never created by a push, and it must be this machine's remote: marked by its
//! first push or by `backup init`, and holding the marker this machine remembers (see
//! [`super::marker`]). Every operation checks that first, so an empty mount point is refused
//! instead of filling up with what looks like a backup.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::marker::{self, Refusal, State};
use super::{DiagnosedCheck, DiagnosedVerdict, Readiness, RemoteSetup, RemoteSnapshot, Upload};
use crate::error::{Error, RemoteError, RemoteErrorKind, Result};
use crate::fsutil::{self, TempPath};
use crate::layout::{self, TEMP_PREFIX, scan_archives};
use crate::progress::Progress;
use crate::tag::Tag;

/// `[remote] type = "dir"`.
#[derive(Clone, Debug, Serialize)]
pub struct DirConfig {
    /// The folder that receives snapshots, absolute.
    pub path: PathBuf,
}

/// The `[remote]` table as written (besides `type`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DirSettings {
    path: Option<PathBuf>,
}

impl DirConfig {
    /// The settings, `path` resolved by `resolve`.
    ///
    /// # Errors
    /// No `path`, in words.
    pub(super) fn from_settings(
        settings: DirSettings,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> std::result::Result<DirConfig, String> {
        let path = settings.path.ok_or_else(|| {
            "[remote] type = \"dir\" needs `path`, the folder that receives snapshots".to_string()
        })?;
        Ok(DirConfig {
            path: resolve(&path),
        })
    }
}

#[derive(Debug)]
pub struct DirRemote {
    root: PathBuf,
    /// The local snapshot folder, which holds the record of the folders this machine pushed to.
    local_dir: PathBuf,
    /// An earlier version's last run pushed (see [`RemoteSetup::earlier_good_push`]).
    earlier_good_push: bool,
}

/// Any failure while talking to the remote is a remote failure (exit code 4), whatever its cause;
/// its kind comes from what failed.
fn remote<T>(result: Result<T>) -> Result<T> {
    result.map_err(|e| {
        let kind = match &e {
            Error::Remote(_) => return e,
            Error::Io { source, .. } => io_kind(source),
            Error::Damaged(_) => RemoteErrorKind::Corrupt,
            _ => RemoteErrorKind::Failed,
        };
        RemoteError::new(kind, e.to_string()).into()
    })
}

/// The kind of a failed file operation on the remote folder.
fn io_kind(e: &io::Error) -> RemoteErrorKind {
    match e.kind() {
        io::ErrorKind::NotFound => RemoteErrorKind::NotFound,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            RemoteErrorKind::Denied
        }
        _ => RemoteErrorKind::Failed,
    }
}

impl DirRemote {
    /// The folder `config` names, used by the machine `setup` describes.
    pub fn new(config: &DirConfig, setup: &RemoteSetup<'_>) -> DirRemote {
        DirRemote {
            root: config.path.clone(),
            local_dir: setup.local_dir.to_path_buf(),
            earlier_good_push: setup.earlier_good_push,
        }
    }

    /// What the folder is to this machine (see [`marker::inspect`]).
    fn inspect(&self) -> Result<State> {
        marker::inspect(&self.root, &self.local_dir, self.earlier_good_push)
    }

    pub fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }

    /// The folder must exist already: creating a missing mount point would quietly back up onto
    /// the local disk while the NAS is unmounted.
    fn check_root(&self) -> Result<()> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(RemoteError::not_found(format!(
                "{} is not a folder; fix [remote] path in the config",
                self.root.display()
            ))
            .into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(RemoteError::not_found(format!(
                "folder {} does not exist; mount the drive or create the folder",
                self.root.display()
            ))
            .into()),
            Err(e) => Err(RemoteError::new(
                io_kind(&e),
                format!("cannot read {}: {e}", self.root.display()),
            )
            .into()),
        }
    }

    /// Makes the folder when asked, checks it is writable, and marks it as this machine's
    /// remote. Run on purpose, it adopts a folder whose marker is missing (a new, empty disk) or
    /// is another remote's.
    pub fn init(&self, create: bool) -> Result<Readiness> {
        let created = create && !self.root.exists();
        if created {
            fs::create_dir_all(&self.root).map_err(|e| {
                RemoteError::new(
                    io_kind(&e),
                    format!("cannot create {}: {e}", self.root.display()),
                )
            })?;
        }
        self.check_writable()?;
        let marked = remote(self.adopt())?;
        Ok(Readiness {
            created,
            detail: if created {
                format!("{} was created; {marked}", self.describe())
            } else {
                format!("{} is writable; {marked}", self.describe())
            },
        })
    }

    fn check_writable(&self) -> Result<()> {
        self.check_root()?;
        let probe = TempPath::new(self.root.join(format!("{TEMP_PREFIX}init-probe")));
        fsutil::create_private(probe.path()).map_err(|e| {
            RemoteError::denied(format!(
                "{} cannot be written to ({e}); fix its permissions",
                self.describe()
            ))
        })?;
        Ok(())
    }

    /// `init`'s marking: what it found or did, in words.
    fn adopt(&self) -> Result<String> {
        let (root, local) = (&self.root, &self.local_dir);
        let mark = |replace| -> Result<String> {
            let id = marker::write_marker(root, replace)?;
            marker::remember(root, local, Some(&id))?;
            Ok(id)
        };
        Ok(match self.inspect()? {
            State::Marked { id, recorded: true } => {
                format!(
                    "marked as this machine's remote (id {})",
                    marker::short(&id)
                )
            }
            State::Marked {
                id,
                recorded: false,
            } => {
                marker::remember(root, local, Some(&id))?;
                format!(
                    "marked as a backup-agent remote (id {}); this machine now pushes to it",
                    marker::short(&id)
                )
            }
            State::Unmarked { .. } => format!(
                "marked it as this machine's remote (id {})",
                marker::short(&mark(false)?)
            ),
            State::Refused(Refusal::MarkerMissing { .. }) => format!(
                "it had no marker although this machine pushed there; marked it anew as you asked (id {}): the next run pushes every local snapshot to it",
                marker::short(&mark(false)?)
            ),
            State::Refused(Refusal::OtherMarker { found, expected }) => {
                marker::remember(root, local, Some(&found))?;
                format!(
                    "adopted the marker found there (id {}) in place of id {}: the next run pushes every local snapshot it lacks",
                    marker::short(&found),
                    marker::short(&expected)
                )
            }
            State::Refused(Refusal::UnreadableMarker(_)) => format!(
                "its marker was unreadable; wrote a new one (id {})",
                marker::short(&mark(true)?)
            ),
            State::Refused(refusal) => return Err(refusal.into_error(root)),
        })
    }

    /// Refuses a folder that is not this machine's remote. Writes nothing.
    fn check_marked(&self) -> Result<()> {
        self.check_root()?;
        match remote(self.inspect())? {
            State::Refused(refusal) => Err(refusal.into_error(&self.root)),
            State::Marked { .. } | State::Unmarked { .. } => Ok(()),
        }
    }

    /// Before anything is written: refuses a folder that is not this machine's remote, marks a
    /// new one, and records the folder as this machine's.
    pub fn ready_for_push(&self) -> Result<()> {
        self.check_root()?;
        remote(self.mark_for_push())
    }

    fn mark_for_push(&self) -> Result<()> {
        let (root, local) = (&self.root, &self.local_dir);
        match self.inspect()? {
            State::Marked { recorded: true, .. } => Ok(()),
            State::Marked { id, .. } => marker::remember(root, local, Some(&id)),
            State::Unmarked { .. } => {
                let id = marker::write_marker(root, false)?;
                marker::remember(root, local, Some(&id))
            }
            State::Refused(refusal) => {
                // Only an earlier version's `last_run.json` said this machine pushed here; the
                // failed run replaces it, so the record keeps the refusal for the next run.
                if let Refusal::MarkerMissing { recorded: false } = refusal {
                    marker::remember(root, local, None)?;
                }
                Err(refusal.into_error(root))
            }
        }
    }

    /// `backup doctor`'s line: ready and how it is marked, or what is wrong and what to do.
    /// Writes nothing but a probe file it removes.
    pub fn diagnose(&self) -> Vec<DiagnosedCheck> {
        vec![match self.readiness() {
            Ok(detail) => DiagnosedCheck::ok("remote", detail),
            Err((problem, fix)) => {
                DiagnosedCheck::not_ok(DiagnosedVerdict::Fail, "remote", problem, fix)
            }
        }]
    }

    /// Ready, and how it is marked; or what is wrong and what to do.
    fn readiness(&self) -> std::result::Result<String, (String, String)> {
        let refused = |e: Error, fix: &str| {
            let problem = match e {
                Error::Remote(e) => e.message,
                other => other.to_string(),
            };
            (problem, fix.to_string())
        };
        if let Err(e) = self.check_root() {
            return Err(refused(
                e,
                "mount the drive or fix [remote] path; `backup init --create` makes a missing folder",
            ));
        }
        let describe = self.describe();
        let state = self.inspect();
        // Nothing is written into a folder that is refused (an empty mount point), not even a
        // probe: the write probe comes after the marker says the folder is ours.
        if !matches!(state, Ok(State::Refused(_)) | Err(_))
            && let Err(e) = self.check_writable()
        {
            return Err(refused(e, "fix the folder's permissions"));
        }
        match state {
            Ok(State::Marked { id, recorded }) => Ok(format!(
                "{describe} is writable and marked (id {}){}",
                marker::short(&id),
                if recorded {
                    ""
                } else {
                    "; this machine has not pushed to it yet"
                }
            )),
            Ok(State::Unmarked {
                earlier_archives: true,
            }) => Ok(format!(
                "{describe} is writable; it holds snapshots of an earlier version and will be marked by the next push"
            )),
            Ok(State::Unmarked {
                earlier_archives: false,
            }) => Ok(format!(
                "{describe} is writable; it will be marked by the first push"
            )),
            Ok(State::Refused(refusal)) => {
                Err((refusal.problem(&self.root), refusal.fix().to_string()))
            }
            Err(e) => Err(refused(e, "check the folder's permissions")),
        }
    }

    pub fn delete(&self, tag: &Tag) -> Result<()> {
        self.check_marked()?;
        // Each archive name the tag may have (a copy made by hand may sit beside the other),
        // the archive first: a record left alone lists as nothing, and the next delete removes
        // it.
        let archives = tag.archive_names().map(|name| self.root.join(name));
        for path in archives
            .iter()
            .flat_map(|archive| [archive.clone(), layout::checksum_path(archive)])
        {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(RemoteError::new(
                        io_kind(&e),
                        format!("cannot delete {}: {e}", path.display()),
                    )
                    .into());
                }
            }
        }
        fsutil::sync_dir(&self.root)
    }

    pub fn list(&self) -> Result<Vec<RemoteSnapshot>> {
        self.check_marked()?;
        let found = scan_archives(&self.root).map_err(|e| {
            RemoteError::new(
                io_kind(&e),
                format!("cannot list {}: {e}", self.root.display()),
            )
        })?;
        Ok(found
            .into_iter()
            .map(|(tag, path, size)| RemoteSnapshot {
                tag,
                size,
                sha256: fsutil::read_checksum(&path),
                findings: None,
                note: None,
                // The folder keeps no record of its own: the archive's manifest names the base
                // (only its first entry is decompressed, and only `base` is parsed).
                base: crate::archive::read::read_base(&path)
                    .ok()
                    .flatten()
                    .map(|b| b.tag),
            })
            .collect())
    }

    pub fn put(&self, upload: &Upload<'_>) -> Result<()> {
        self.ready_for_push()?;
        remote(self.store(upload))
    }

    fn store(&self, upload: &Upload<'_>) -> Result<()> {
        let Upload {
            tag: _,
            path: archive,
            size,
            sha256,
            verified,
            manifest: _,
        } = *upload;
        let target = self.root.join(upload.archive_name());
        match fsutil::hash_file(&target) {
            Ok((have_size, have_sha)) if have_size == size && have_sha == sha256 => {
                // An earlier attempt got it there whole; make sure its record is there too.
                return fsutil::write_checksum(&target, sha256);
            }
            Ok((_, have_sha)) => self.check_replaceable(&target, &have_sha, verified)?,
            Err(_) if !target.exists() => {}
            Err(e) => return Err(e),
        }
        let temp = TempPath::new(
            self.root
                .join(format!("{TEMP_PREFIX}{}", upload.archive_name())),
        );
        let _ = fs::remove_file(temp.path()); // A leftover of a killed push: its room counts too.
        fsutil::ensure_space(&self.root, size, "the archive")?;
        let mut input = fs::File::open(archive)
            .map_err(|e| Error::io("cannot read local archive", archive, e))?;
        let mut writer = fsutil::HashingWriter::new(fsutil::create_private(temp.path())?);
        fsutil::copy_large(&mut input, &mut writer)
            .map_err(|e| Error::io("cannot copy to", temp.path(), e))?;
        let (file, written, written_sha) = writer.finish();
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", temp.path(), e))?;
        if written != size || written_sha != sha256 {
            return Err(Error::Damaged(format!(
                "local archive {} changed while it was being pushed (expected {size} bytes, sha256 {sha256})",
                archive.display()
            )));
        }
        crate::failpoint::hit("push-copied");
        temp.persist(&target)?;
        fsutil::sync_dir(&self.root)?;
        crate::failpoint::hit("push-renamed");
        // Read back what the remote now holds: a flaky share can store something else.
        let (have_size, have_sha) = fsutil::hash_file(&target)?;
        if have_size != size || have_sha != sha256 {
            let _ = fs::remove_file(&target);
            return Err(Error::Damaged(format!(
                "{} reads back as {have_size} bytes with sha256 {have_sha}, expected {size} bytes with sha256 {sha256}; the remote drive may be failing",
                target.display()
            )));
        }
        fsutil::write_checksum(&target, sha256)
    }

    /// The manifest of a stored archive, read in place (only its first entry is decompressed).
    pub fn peek_manifest(&self, tag: &Tag) -> Option<crate::archive::Manifest> {
        self.check_root().ok()?;
        crate::archive::read::read_manifest(&crate::layout::archive_in(&self.root, tag)).ok()
    }

    pub fn fetch(&self, tag: &Tag, dest: &Path, progress: &dyn Progress) -> Result<(u64, String)> {
        self.check_marked()?;
        let source = crate::layout::archive_in(&self.root, tag);
        let mut input = fs::File::open(&source).map_err(|e| {
            RemoteError::new(
                io_kind(&e),
                format!("cannot read {}: {e}", source.display()),
            )
        })?;
        let total = input.metadata().map(|m| m.len()).unwrap_or(0);
        progress.phase("downloading", total);
        let mut writer = fsutil::HashingWriter::new(fsutil::create_private(dest)?);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(RemoteError::failed(format!(
                        "cannot read {}: {e}",
                        source.display()
                    ))
                    .into());
                }
            };
            writer
                .write_all(&buf[..n])
                .map_err(|e| Error::io("cannot write", dest, e))?;
            progress.advance(n as u64);
        }
        let (file, size, sha256) = writer.finish();
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", dest, e))?;
        progress.done();
        Ok((size, sha256))
    }

    /// A different archive already holds this tag's name: it may be replaced only when it is
    /// damaged and ours is proven good.
    fn check_replaceable(&self, target: &Path, have_sha: &str, verified: bool) -> Result<()> {
        if fsutil::read_checksum(target).as_deref() == Some(have_sha) {
            return Err(RemoteError::refused(format!(
                "{} is intact (it matches its own .sha256 record) but differs from the local archive; nothing was replaced: check the local archive (`sha256sum -c`) and delete whichever copy is damaged",
                target.display()
            ))
            .into());
        }
        if !verified {
            return Err(RemoteError::refused(format!(
                "{} differs from the local archive, and the local archive has no .sha256 record to prove it is the good one; nothing was replaced",
                target.display()
            ))
            .into());
        }
        Ok(())
    }
}
