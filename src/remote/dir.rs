//! The directory remote: a folder on a NAS, an external disk or a cloud-synced drive.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{Readiness, RemoteSnapshot, Upload};
use crate::catalog::scan_archives;
use crate::error::{Error, Result};
use crate::fsutil::{self, TEMP_PREFIX, TempPath};
use crate::progress::Progress;
use crate::tag::Tag;

#[derive(Debug)]
pub struct DirRemote {
    root: PathBuf,
}

/// Any failure while talking to the remote is a remote failure (exit code 4), whatever its cause.
fn remote<T>(result: Result<T>) -> Result<T> {
    result.map_err(|e| match e {
        Error::Remote(_) => e,
        other => Error::Remote(other.to_string()),
    })
}

impl DirRemote {
    pub fn new(root: PathBuf) -> DirRemote {
        DirRemote { root }
    }

    pub fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }

    /// The folder must exist already: creating a missing mount point would quietly back up onto
    /// the local disk while the NAS is unmounted.
    fn check_root(&self) -> Result<()> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::Remote(format!(
                "{} is not a folder; fix [remote] path in the config",
                self.root.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::Remote(format!(
                "folder {} does not exist; mount the drive or create the folder",
                self.root.display()
            ))),
            Err(e) => Err(Error::Remote(format!(
                "cannot read {}: {e}",
                self.root.display()
            ))),
        }
    }

    pub fn init(&self, create: bool) -> Result<Readiness> {
        if create && !self.root.exists() {
            fs::create_dir_all(&self.root).map_err(|e| {
                Error::Remote(format!("cannot create {}: {e}", self.root.display()))
            })?;
            self.check_root()?;
            return Ok(Readiness {
                created: true,
                detail: format!("{} was created", self.describe()),
            });
        }
        self.check_root()?;
        let probe = TempPath::new(self.root.join(format!("{TEMP_PREFIX}init-probe")));
        fsutil::create_private(probe.path()).map_err(|e| {
            Error::Remote(format!(
                "{} cannot be written to ({e}); fix its permissions",
                self.describe()
            ))
        })?;
        Ok(Readiness {
            created: false,
            detail: format!("{} is writable", self.describe()),
        })
    }

    pub fn delete(&self, tag: &Tag) -> Result<()> {
        self.check_root()?;
        let archive = self.root.join(tag.archive_name());
        // The archive first: a record left alone lists as nothing, and the next delete
        // removes it.
        for path in [archive.clone(), fsutil::checksum_path(&archive)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Remote(format!(
                        "cannot delete {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        fsutil::sync_dir(&self.root)
    }

    pub fn list(&self) -> Result<Vec<RemoteSnapshot>> {
        self.check_root()?;
        let found = scan_archives(&self.root)
            .map_err(|e| Error::Remote(format!("cannot list {}: {e}", self.root.display())))?;
        Ok(found
            .into_iter()
            .map(|(tag, path, size)| RemoteSnapshot {
                tag,
                size,
                sha256: fsutil::read_checksum(&path),
                findings: None,
            })
            .collect())
    }

    pub fn put(&self, upload: &Upload<'_>) -> Result<()> {
        self.check_root()?;
        remote(self.store(upload))
    }

    fn store(&self, upload: &Upload<'_>) -> Result<()> {
        let Upload {
            tag,
            path: archive,
            size,
            sha256,
            verified,
        } = *upload;
        let target = self.root.join(tag.archive_name());
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
                .join(format!("{TEMP_PREFIX}{}", tag.archive_name())),
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
            return Err(Error::Other(format!(
                "local archive {} changed while it was being pushed (expected {size} bytes, sha256 {sha256})",
                archive.display()
            )));
        }
        temp.persist(&target)?;
        fsutil::sync_dir(&self.root)?;
        // Read back what the remote now holds: a flaky share can store something else.
        let (have_size, have_sha) = fsutil::hash_file(&target)?;
        if have_size != size || have_sha != sha256 {
            let _ = fs::remove_file(&target);
            return Err(Error::Other(format!(
                "{} reads back as {have_size} bytes with sha256 {have_sha}, expected {size} bytes with sha256 {sha256}; the remote drive may be failing",
                target.display()
            )));
        }
        fsutil::write_checksum(&target, sha256)
    }

    /// The manifest of a stored archive, read in place (only its first entry is decompressed).
    pub fn peek_manifest(&self, tag: &Tag) -> Option<crate::snapshot::Manifest> {
        self.check_root().ok()?;
        crate::restore::extract::read_manifest(&self.root.join(tag.archive_name())).ok()
    }

    pub fn fetch(&self, tag: &Tag, dest: &Path, progress: &dyn Progress) -> Result<(u64, String)> {
        self.check_root()?;
        let source = self.root.join(tag.archive_name());
        let mut input = fs::File::open(&source)
            .map_err(|e| Error::Remote(format!("cannot read {}: {e}", source.display())))?;
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
                    return Err(Error::Remote(format!(
                        "cannot read {}: {e}",
                        source.display()
                    )));
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
            return Err(Error::Other(format!(
                "{} is intact (it matches its own .sha256 record) but differs from the local archive; nothing was replaced: check the local archive (`sha256sum -c`) and delete whichever copy is damaged",
                target.display()
            )));
        }
        if !verified {
            return Err(Error::Other(format!(
                "{} differs from the local archive, and the local archive has no .sha256 record to prove it is the good one; nothing was replaced",
                target.display()
            )));
        }
        Ok(())
    }
}
