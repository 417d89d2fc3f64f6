//! Small file-system helpers: durable writes, hashing, free space, lexical path clean-up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::layout::{TEMP_PREFIX, checksum_path};
use crate::units::hex;

/// Suffixes of the files SQLite keeps beside a database.
pub const DB_COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `path` with `suffix` appended to its file name (`tasks.db` → `tasks.db-wal`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes `.` and `..` components without touching the disk (the path may not exist yet).
pub fn clean_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The canonical form of `path` if it exists, else its cleaned absolute form: good enough to
/// compare two configured folders for equality.
pub fn comparable_path(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| clean_path(path))
}

/// Creates a new file only this user can read (mode 0600), failing if it exists.
pub fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .at("cannot create", path)
}

/// Creates a new file with the permission bits `mode` (whatever the umask), failing if it exists.
/// For files inside a folder only this user can enter (staging): the mode is set at creation, and
/// changed again only when the umask took bits from it, which saves a call per file when a
/// restore puts 50,000 of them in place.
pub fn create_with_mode(path: &Path, mode: u32) -> Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .at("cannot create", path)?;
    if mode & process_umask().unwrap_or(0o777) != 0 {
        file.set_permissions(fs::Permissions::from_mode(mode))
            .at("cannot write", path)?;
    }
    Ok(file)
}

/// The permission bits `create_dir_all` gives a new folder under the current umask; `None` where
/// the umask cannot be read.
pub fn new_folder_mode() -> Option<u32> {
    process_umask().map(|umask| 0o777 & !umask)
}

/// The process's umask, read once without changing it (`umask(2)` can only set it, which would
/// race with other threads): from `/proc/self/status` on Linux; `None` where it cannot be read.
fn process_umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
    })
}

/// Creates a folder only this user can enter (mode 0700, whatever the umask), failing if it
/// exists: staging and set-aside folders, where another user must not swap a checked file.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(0o700).create(path)
}

/// Creates `path` mode 0700 if it is missing, with any missing parents as the umask makes them
/// (they are the app's folders, not ours). An existing folder keeps its mode.
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    match create_private_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

/// Makes a completed rename durable by syncing the folder that holds it.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("cannot sync folder", dir)
}

/// Makes the files at `paths` durable. For many files, on Linux, one `syncfs` per file system
/// they are on (a restore's are all on one) instead of a flush per file: a snapshot of 50,000
/// small files would otherwise wait on 50,000 flushes. Each file is synced where `syncfs` cannot be trusted
/// to: before Linux 5.8 it did not report write-back errors, and on FUSE file systems it does
/// not reach the daemon's storage; and elsewhere than Linux.
pub fn sync_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    let paths: Vec<&Path> = paths.into_iter().collect();
    let sync_each = |paths: &[&Path]| -> Result<()> {
        for path in paths {
            File::open(path)
                .and_then(|f| f.sync_all())
                .at("cannot sync", path)?;
        }
        Ok(())
    };
    // A few files are synced one by one: one `syncfs` also waits for everything else dirty on
    // that file system (another program's big write), which only pays off for many files.
    #[cfg(target_os = "linux")]
    if paths.len() > SYNC_ONE_BY_ONE_MAX && syncfs_reports_errors() {
        use std::collections::HashMap;
        use std::os::unix::fs::MetadataExt;
        const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
        // A file is on its folder's file system: one look per folder, one sync per file system.
        let mut folder_is_fuse: HashMap<&Path, bool> = HashMap::new();
        let mut synced = std::collections::HashSet::new();
        let mut one_by_one = Vec::new();
        for path in &paths {
            let folder = path.parent().unwrap_or(path);
            let fuse = match folder_is_fuse.get(folder) {
                Some(&fuse) => fuse,
                None => {
                    let dir = File::open(folder).at("cannot sync", folder)?;
                    let dev = dir.metadata().at("cannot sync", folder)?.dev();
                    let fuse = rustix::fs::fstatfs(&dir)
                        // `f_type`'s integer type differs between architectures.
                        .is_ok_and(|s| {
                            #[allow(clippy::useless_conversion)]
                            let kind = i64::try_from(s.f_type).ok();
                            kind == Some(FUSE_SUPER_MAGIC)
                        });
                    if !fuse && synced.insert(dev) {
                        rustix::fs::syncfs(&dir)
                            .map_err(io::Error::from)
                            .at("cannot sync the file system of", folder)?;
                    }
                    folder_is_fuse.insert(folder, fuse);
                    fuse
                }
            };
            if fuse {
                one_by_one.push(*path);
            }
        }
        return sync_each(&one_by_one);
    }
    sync_each(&paths)
}

/// Up to this many files, [`sync_files`] syncs each one.
#[cfg(target_os = "linux")]
const SYNC_ONE_BY_ONE_MAX: usize = 64;

/// Whether `syncfs` reports write-back errors: Linux 5.8 and later.
#[cfg(target_os = "linux")]
fn syncfs_reports_errors() -> bool {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    version >= (5, 8)
}

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let temp = TempPath::new(dir.join(format!("{TEMP_PREFIX}{name}")));
    let mut file = create_private(temp.path())?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .at("cannot write", temp.path())?;
    if cfg!(debug_assertions) {
        crate::failpoint::hit(&format!("temp-written-{name}"));
    }
    temp.persist(path)?;
    sync_dir(dir)
}

/// A temporary path that is removed on drop unless [`TempPath::persist`] renamed it into place.
/// This is how a failed run leaves no temp files behind.
#[derive(Debug)]
pub struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    /// Takes charge of `path` (a file or a folder) from now on.
    pub fn new(path: PathBuf) -> TempPath {
        TempPath { path: Some(path) }
    }

    /// The path being guarded.
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("path present until persisted")
    }

    /// Ends the guard without removing the path (something else still needs it).
    pub fn keep(mut self) -> PathBuf {
        self.path.take().expect("path present until persisted")
    }

    /// Renames the temporary path to `target`, ending the guard.
    pub fn persist(mut self, target: &Path) -> Result<()> {
        let path = self.path.take().expect("path present until persisted");
        if let Err(e) = fs::rename(&path, target) {
            self.path = Some(path);
            return Err(Error::io("cannot rename into", target, e));
        }
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            if path.is_dir() {
                let _ = fs::remove_dir_all(&path);
            } else {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

/// Renames `from` to `to`, failing with `AlreadyExists` instead of replacing an existing `to`.
/// File systems without `RENAME_NOREPLACE` get a check just before the rename.
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the target exists",
                ));
            }
            fs::rename(from, to)
        }
        Err(e) => Err(e.into()),
    }
}

/// Records the sha256 of `archive` beside it, atomically.
pub fn write_checksum(archive: &Path, sha256: &str) -> Result<()> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_atomic(
        &checksum_path(archive),
        format!("{sha256}  {name}\n").as_bytes(),
    )
}

/// The sha256 recorded beside `archive`, if there is a readable record.
pub fn read_checksum(archive: &Path) -> Option<String> {
    let text = fs::read_to_string(checksum_path(archive)).ok()?;
    let sha = text.split_whitespace().next()?;
    (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sha.to_lowercase())
}

/// A writer that counts and hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Returns the inner writer, the byte count and the lowercase hex sha256.
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.written, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that counts and hashes what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    read: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Some(Sha256::new()),
            read: 0,
        }
    }

    /// Counts only: for bytes whose sha256 is already known.
    pub fn counting(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: None,
            read: 0,
        }
    }

    /// The byte count and the lowercase hex sha256 of what was read (`None` when counting only).
    pub fn finish(self) -> (u64, Option<String>) {
        (self.read, self.hasher.map(|h| hex(&h.finalize())))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Size and sha256 of a file, read once.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).at("cannot open", path)?;
    let mut sink = HashingWriter::new(io::sink());
    copy_large(&mut file, &mut sink).at("cannot read", path)?;
    let (_, size, sha) = sink.finish();
    Ok((size, sha))
}

/// `io::copy` with a 1 MiB buffer: fewer syscalls and hash calls on big files. The buffer is
/// kept per thread: a fresh zeroed megabyte per call cost more than copying 50,000 small files.
pub fn copy_large(reader: &mut impl Read, writer: &mut impl Write) -> io::Result<u64> {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with_borrow_mut(|buf| {
        if buf.is_empty() {
            buf.resize(1 << 20, 0);
        }
        let mut total = 0u64;
        loop {
            let n = match reader.read(buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            writer.write_all(&buf[..n])?;
            total += n as u64;
        }
    })
}

/// A buffer size for reading or writing a file of `size` bytes: up to 1 MiB, but no more than
/// the file needs (a megabyte per small file is a megabyte allocated and faulted in for nothing).
pub fn buffer_for(size: u64) -> usize {
    usize::try_from(size)
        .unwrap_or(usize::MAX)
        .clamp(8 << 10, 1 << 20)
}

/// Bytes available to this user on the file system that holds `dir`; `None` when the file system
/// reports no size at all (procfs, some FUSE and cloud-sync mounts), so nothing can be told.
pub fn available_space(dir: &Path) -> Result<Option<u64>> {
    let stat = rustix::fs::statvfs(dir)
        .map_err(io::Error::from)
        .at("cannot read free space of", dir)?;
    Ok((stat.f_blocks > 0).then(|| stat.f_bavail.saturating_mul(stat.f_frsize)))
}

/// Refuses with the numbers when `dir` has less than `needed` bytes free. A file system that
/// reports no size is let through: the write itself will say if it is full.
pub fn ensure_space(dir: &Path, needed: u64, what: &str) -> Result<()> {
    let Some(available) = available_space(dir)? else {
        return Ok(());
    };
    if available < needed {
        return Err(Error::NoSpace {
            dir: dir.to_path_buf(),
            what: what.to_string(),
            needed,
            available,
        });
    }
    Ok(())
}

/// The text of a secret's file named by the config key `key` (`token_file`, `credentials_file`),
/// refused unless only its owner can read it; `missing_hint` follows the message when it cannot
/// be read at all.
///
/// # Errors
/// [`Error::Config`] naming the key and the file: unreadable, or readable by other users (with
/// the `chmod` that fixes it).
pub fn read_private_file(path: &Path, key: &str, missing_hint: &str) -> Result<String> {
    let unreadable = |e: io::Error, hint: &str| {
        Error::Config(format!(
            "{key} {}: cannot read it ({e}){hint}",
            path.display()
        ))
    };
    let meta = fs::metadata(path).map_err(|e| unreadable(e, missing_hint))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "{key} {} can be read by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    fs::read_to_string(path).map_err(|e| unreadable(e, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_removes_dots_lexically() {
        assert_eq!(clean_path(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(clean_path(Path::new("a/../../b")), PathBuf::from("../b"));
    }

    #[test]
    fn rename_no_replace_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"b");
        fs::remove_file(&b).unwrap();
        rename_no_replace(&a, &b).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"a");
    }
}
