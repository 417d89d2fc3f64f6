//! The directory remote: a folder on a NAS, an external disk or a cloud-synced drive.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::RemoteSnapshot;
use crate::error::{Error, Result};
use crate::fsutil::{self, TEMP_PREFIX, TempPath};
use crate::tag::Tag;

#[derive(Debug)]
pub struct DirRemote {
    root: PathBuf,
}

fn remote_error(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Remote(format!("{what} {}: {e}", path.display()))
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
                "folder {} does not exist; mount the drive or create the folder (mkdir -p), then run `backup run` to push what is waiting",
                self.root.display()
            ))),
            Err(e) => Err(remote_error("cannot read", &self.root, e)),
        }
    }

    pub fn list(&self) -> Result<Vec<RemoteSnapshot>> {
        self.check_root()?;
        let entries =
            fs::read_dir(&self.root).map_err(|e| remote_error("cannot list", &self.root, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| remote_error("cannot list", &self.root, e))?;
            let name = entry.file_name();
            let Some(tag) = name.to_str().and_then(Tag::from_archive_name) else {
                continue;
            };
            let meta = entry
                .metadata()
                .map_err(|e| remote_error("cannot read", &entry.path(), e))?;
            if meta.is_file() {
                found.push(RemoteSnapshot {
                    tag,
                    size: meta.len(),
                });
            }
        }
        found.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(found)
    }

    pub fn put(&self, tag: &Tag, archive: &Path, size: u64, sha256: &str) -> Result<()> {
        self.check_root()?;
        let target = self.root.join(tag.archive_name());
        if let Ok((have_size, have_sha)) = fsutil::hash_file(&target)
            && have_size == size
            && have_sha == sha256
        {
            return Ok(()); // An earlier attempt got it there whole.
        }
        fsutil::ensure_space(&self.root, size, "the archive")
            .map_err(|e| Error::Remote(e.to_string()))?;
        let temp = TempPath::new(
            self.root
                .join(format!("{TEMP_PREFIX}{}", tag.archive_name())),
        );
        let _ = fs::remove_file(temp.path()); // A leftover of a killed push.
        let copy = || -> Result<(u64, String)> {
            let mut input = fs::File::open(archive)
                .map_err(|e| Error::io("cannot read local archive", archive, e))?;
            let output = fsutil::create_private(temp.path())?;
            let mut writer = fsutil::HashingWriter::new(output);
            fsutil::copy_large(&mut input, &mut writer)
                .map_err(|e| Error::io("cannot copy to remote", temp.path(), e))?;
            let (file, written, sha) = writer.finish();
            file.sync_all()
                .map_err(|e| Error::io("cannot sync", temp.path(), e))?;
            Ok((written, sha))
        };
        let (written, written_sha) = copy().map_err(|e| Error::Remote(e.to_string()))?;
        if written != size || written_sha != sha256 {
            return Err(Error::Remote(format!(
                "local archive {} changed while it was being pushed (expected {size} bytes, sha256 {sha256}); run `backup run` again",
                archive.display()
            )));
        }
        temp.persist(&target)
            .map_err(|e| Error::Remote(e.to_string()))?;
        fsutil::sync_dir(&self.root).map_err(|e| Error::Remote(e.to_string()))?;
        // Read back what the remote now holds: a flaky share can store something else.
        let (have_size, have_sha) =
            fsutil::hash_file(&target).map_err(|e| Error::Remote(e.to_string()))?;
        if have_size != size || have_sha != sha256 {
            let _ = fs::remove_file(&target);
            return Err(Error::Remote(format!(
                "{} reads back as {have_size} bytes with sha256 {have_sha}, expected {size} bytes with sha256 {sha256}; the remote drive may be failing",
                target.display()
            )));
        }
        Ok(())
    }
}
