//! Reading a snapshot archive without trusting it: the manifest first, then only the regular files
//! it lists, each under a plain relative path, each checked for size and sha256 as it is written.
//!
//! The tar crate's own `unpack` skips `../` entries and still returns Ok, so entries are walked
//! here one by one and anything unexpected refuses the whole archive.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::manifest::{DIFFERENTIAL_MANIFEST_VERSION, MANIFEST_NAME, MANIFEST_VERSION, Manifest};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::HashingReader;
use crate::fsutil::{self, HashingWriter};
use crate::progress::{CountingReader, Progress};
use crate::units;

/// Largest manifest accepted: a manifest lists files and tables, never data.
const MANIFEST_MAX: u64 = 64 << 20;

/// Why an archive was refused. Always phrased as "the archive …" by the caller.
fn bad(archive: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Archive {
        path: archive.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// What extraction produced.
#[derive(Debug)]
pub struct Extracted {
    pub manifest: Manifest,
    /// Bytes of the compressed archive read.
    pub archive_size: u64,
    /// sha256 of the compressed archive.
    pub archive_sha256: String,
}

/// An archive's decompressor, chosen by its first bytes rather than its name: zstd's magic
/// number (`28 b5 2f fd`), else gzip.
enum Decoder<R: io::BufRead> {
    Gzip(Box<MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl<R: io::BufRead> Decoder<R> {
    fn new(mut inner: R) -> io::Result<Decoder<R>> {
        let start = inner.fill_buf()?;
        // A zstd frame, or a skippable frame (`0x184D2A50` to `0x184D2A5F`, little-endian)
        // that tools such as pzstd put first.
        let skippable = start.len() >= 4 && start[1..4] == [0x2a, 0x4d, 0x18] && start[0] >> 4 == 5;
        Ok(if start.starts_with(&ZSTD_MAGIC) || skippable {
            Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(inner)?)
        } else {
            Decoder::Gzip(Box::new(MultiGzDecoder::new(inner)))
        })
    }

    fn into_inner(self) -> R {
        match self {
            Decoder::Gzip(gz) => gz.into_inner(),
            Decoder::Zstd(zstd) => zstd.finish(),
        }
    }
}

impl<R: io::BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(gz) => gz.read(buf),
            Decoder::Zstd(zstd) => zstd.read(buf),
        }
    }
}

/// A plain relative path: `/`-separated, non-empty components, none of them `.` or `..`.
pub fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'))
}

/// Checks a manifest on its own: known version, unique plain archive paths, sane names.
pub fn validate_manifest(manifest: &Manifest) -> std::result::Result<(), String> {
    let differential = manifest.manifest_version == DIFFERENTIAL_MANIFEST_VERSION;
    if manifest.manifest_version != MANIFEST_VERSION && !differential {
        return Err(format!(
            "its manifest_version is {}, this build knows {MANIFEST_VERSION} and {DIFFERENTIAL_MANIFEST_VERSION}; restore it with the backup-agent version that wrote it ({}) or newer",
            manifest.manifest_version, manifest.tool.version
        ));
    }
    // Only a version 2 manifest may leave anything to a base: an older build reads a version 1
    // manifest as complete.
    let leaves_to_base = manifest.databases.iter().any(|d| d.pages.is_some())
        || manifest.files.iter().any(|f| f.in_base);
    match (&manifest.base, differential) {
        (None, true) => return Err("it is a differential that names no base".into()),
        (Some(_), false) => {
            return Err(format!(
                "it names a base but its manifest_version is {MANIFEST_VERSION}"
            ));
        }
        (None, false) if leaves_to_base => {
            return Err("it leaves files to a base it does not name".into());
        }
        (Some(base), true) if base.tag == manifest.tag => {
            return Err("it names itself as its base".into());
        }
        (Some(base), true)
            if base.sha256.len() != 64 || !base.sha256.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            return Err("its base's sha256 is not a sha256".into());
        }
        _ => {}
    }
    let mut seen = BTreeSet::new();
    let paths = manifest
        .databases
        .iter()
        .flat_map(|d| {
            std::iter::once(&d.archive_path).chain(d.pages.as_ref().map(|p| &p.archive_path))
        })
        .chain(manifest.files.iter().map(|f| &f.archive_path));
    for path in paths {
        if !is_plain_relative(path) || path == MANIFEST_NAME {
            return Err(format!("the manifest lists an unsafe path `{path}`"));
        }
        if !seen.insert(path.as_str()) {
            return Err(format!("the manifest lists `{path}` twice"));
        }
    }
    let mut names = BTreeSet::new();
    for db in &manifest.databases {
        if !names.insert(db.name.as_str()) {
            return Err(format!("the manifest lists database `{}` twice", db.name));
        }
        if db.pages.is_some()
            && !(db.page_size.is_power_of_two() && (512..=65_536).contains(&db.page_size))
        {
            return Err(format!(
                "database `{}` is stored as pages of {} bytes, not a SQLite page size",
                db.name, db.page_size
            ));
        }
        let pages = db.pages.as_ref().map(|p| &p.archive_path);
        if std::iter::once(&db.archive_path)
            .chain(pages)
            .any(|path| !path.starts_with("databases/"))
        {
            return Err(format!(
                "database `{}` is stored outside databases/",
                db.name
            ));
        }
    }
    for file in &manifest.files {
        if !file.archive_path.starts_with("files/") {
            return Err(format!(
                "file `{}` is stored outside files/",
                file.archive_path
            ));
        }
    }
    // Both sets are disjoint by prefix, but a file must not sit "under" another file either.
    for path in &seen {
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() && seen.contains(prefix.as_str()) {
                return Err(format!(
                    "the manifest lists `{prefix}` both as file and folder"
                ));
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
        }
    }
    Ok(())
}

/// Reads only the manifest (the first entry) of an archive.
///
/// # Errors
/// When the archive cannot be read, does not start with a valid manifest, or has a
/// `manifest_version` this build does not know.
pub fn read_manifest(archive: &Path) -> Result<Manifest> {
    read_manifest_as_read(archive).map(|read| read.manifest)
}

/// A manifest with the bytes it was parsed from: extraction meets the same bytes again, and
/// then need not parse them twice (a manifest may list 50,000 files).
pub struct ReadManifest {
    pub manifest: Manifest,
    json: Vec<u8>,
}

/// [`read_manifest`], keeping the bytes for [`extract_with`].
///
/// # Errors
/// As [`read_manifest`].
pub fn read_manifest_as_read(archive: &Path) -> Result<ReadManifest> {
    with_entries(archive, |entries| first_manifest(archive, entries, None))
}

/// The bytes of `MANIFEST.json`, which must be the archive's first entry.
fn manifest_json<R: Read>(archive: &Path, entries: &mut tar::Entries<'_, R>) -> Result<Vec<u8>> {
    let mut first = match entries.next() {
        Some(entry) => entry.map_err(|e| bad(archive, unreadable(&e)))?,
        None => return Err(bad(archive, "it is empty")),
    };
    let path = first.path_bytes().into_owned();
    if path != MANIFEST_NAME.as_bytes() || first.header().entry_type() != tar::EntryType::Regular {
        return Err(bad(
            archive,
            format!(
                "its first entry is `{}`, not {MANIFEST_NAME}; it was not made by backup-agent",
                String::from_utf8_lossy(&path)
            ),
        ));
    }
    if first.size() > MANIFEST_MAX {
        return Err(bad(archive, "its manifest is implausibly large"));
    }
    let mut json = Vec::new();
    first
        .by_ref()
        .take(MANIFEST_MAX)
        .read_to_end(&mut json)
        .map_err(|e| bad(archive, unreadable(&e)))?;
    Ok(json)
}

/// Opens `archive` and hands its entries, decompressed, to `read`. The read buffer is small: a
/// listing reads only the first entry of every archive.
fn with_entries<T>(
    archive: &Path,
    read: impl FnOnce(&mut tar::Entries<'_, Decoder<io::BufReader<fs::File>>>) -> Result<T>,
) -> Result<T> {
    let file = fs::File::open(archive).at("cannot open archive", archive)?;
    let decoder = Decoder::new(io::BufReader::with_capacity(64 << 10, file))
        .map_err(|e| bad(archive, unreadable(&e)))?;
    let mut tar = tar::Archive::new(decoder);
    let mut entries = tar.entries().map_err(|e| bad(archive, unreadable(&e)))?;
    read(&mut entries)
}

fn first_manifest<R: Read>(
    archive: &Path,
    entries: &mut tar::Entries<'_, R>,
    known: Option<ReadManifest>,
) -> Result<ReadManifest> {
    let json = manifest_json(archive, entries)?;
    if let Some(known) = known.filter(|known| known.json == json) {
        return Ok(known);
    }
    let manifest = parse_manifest(&json).map_err(|reason| bad(archive, reason))?;
    Ok(ReadManifest { manifest, json })
}

/// Parses and validates `MANIFEST.json`: a `manifest_version` this build knows, then the
/// struct, then [`validate_manifest`].
///
/// # Errors
/// Why the manifest is refused, as the end of a sentence about the archive.
pub fn parse_manifest(json: &[u8]) -> std::result::Result<Manifest, String> {
    // The version alone first: a newer manifest may not parse as this build's struct. Only that
    // field is kept (the rest is skipped, not built): a manifest may list 50,000 files.
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        manifest_version: Option<serde_json::Value>,
    }
    let version = serde_json::from_slice::<VersionOnly>(json)
        .ok()
        .and_then(|v| v.manifest_version?.as_u64());
    match version {
        None => return Err("its manifest is not valid JSON with a manifest_version".into()),
        Some(v)
            if v != u64::from(MANIFEST_VERSION)
                && v != u64::from(DIFFERENTIAL_MANIFEST_VERSION) =>
        {
            return Err(format!(
                "its manifest_version is {v}, this build knows only {MANIFEST_VERSION} and {DIFFERENTIAL_MANIFEST_VERSION}; upgrade backup-agent to restore it"
            ));
        }
        Some(_) => {}
    }
    let manifest: Manifest =
        serde_json::from_slice(json).map_err(|e| format!("its manifest does not parse ({e})"))?;
    validate_manifest(&manifest)?;
    Ok(manifest)
}

/// The base an archive's manifest names (`None` for a full), without building the rest of the
/// manifest: retention and listings ask it of every archive, and a manifest may list 50,000
/// files.
///
/// # Errors
/// An archive that cannot be read or does not start with a manifest.
pub fn read_base(archive: &Path) -> Result<Option<super::BaseRef>> {
    #[derive(serde::Deserialize)]
    struct BaseOnly {
        base: Option<super::BaseRef>,
    }
    let json = with_entries(archive, |entries| manifest_json(archive, entries))?;
    serde_json::from_slice::<BaseOnly>(&json)
        .map(|b| b.base)
        .map_err(|e| bad(archive, format!("its manifest does not parse ({e})")))
}

/// Streams the member `path` of `archive` to `visit`, after the archive's manifest has been
/// read and checked; `None` when the archive does not hold it. Nothing is written anywhere: the
/// caller checks what it reads (against the manifest's sha256).
///
/// # Errors
/// An archive that cannot be read or is refused, or what `visit` returns.
pub fn read_member<T>(
    archive: &Path,
    path: &str,
    visit: impl FnOnce(&mut dyn Read) -> io::Result<T>,
) -> Result<Option<T>> {
    with_entries(archive, |entries| {
        first_manifest(archive, entries, None)?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(archive, unreadable(&e)))?;
            if entry.path_bytes().as_ref() == path.as_bytes()
                && entry.header().entry_type() == tar::EntryType::Regular
            {
                return visit(&mut entry)
                    .map(Some)
                    .map_err(|e| bad(archive, unreadable(&e)));
            }
        }
        Ok(None)
    })
}

/// Describes a read failure of the compressed stream.
fn unreadable(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "it is truncated".to_string(),
        _ => format!("it is damaged or not a snapshot archive ({e})"),
    }
}

/// What one listed file must be.
struct Expected {
    size: u64,
    sha256: String,
    /// Permission bits to give the extracted file (databases: 0600).
    mode: u32,
}

/// How the archive's own sha256 is checked during extraction.
#[derive(Clone, Copy, Debug)]
pub enum ArchiveSha<'a> {
    /// Hash it while reading; it must equal the record written when the archive was made, if
    /// there is one.
    Check(Option<&'a str>),
    /// Already hashed on its way here (a download checked against the remote's record): not
    /// hashed a second time.
    Known(&'a str),
}

/// Extracts `archive` into the empty folder `dest`, checking everything on the way.
///
/// The archive's sha256 is checked as `archive_sha` says. Every listed file must be present exactly once with its listed size and
/// sha256; any other entry (a link, a device, an unlisted or unsafe path) refuses the archive.
///
/// # Errors
/// A refusal naming the reason; `dest` may hold partial files then (the caller owns it).
pub fn extract(
    archive: &Path,
    dest: &Path,
    archive_sha: ArchiveSha<'_>,
    progress: &dyn Progress,
) -> Result<Extracted> {
    extract_with(archive, dest, archive_sha, Files::Write, None, progress)
}

/// What extraction does with the included files (the databases are always written: SQLite
/// checks them in place).
#[derive(Clone, Copy, Debug)]
pub enum Files<'a> {
    /// Written under `dest`, for a restore to put in place.
    Write,
    /// Checked for size and sha256 as they stream past, never written: a restore drill of
    /// 50,000 small files then costs their decompression, not 50,000 files created and removed.
    CheckOnly,
    /// Written, except those whose archive path is in the set, which are only checked: their
    /// live copy is already the same, and stays where it is.
    WriteExcept(&'a std::collections::HashSet<String>),
}

/// [`extract`], with the included files written or only checked as `files` says. `known` is the
/// manifest as read before, if it was: the archive's own is still read and compared.
///
/// # Errors
/// As [`extract`].
pub fn extract_with(
    archive: &Path,
    dest: &Path,
    archive_sha: ArchiveSha<'_>,
    files: Files<'_>,
    known: Option<ReadManifest>,
    progress: &dyn Progress,
) -> Result<Extracted> {
    let file = fs::File::open(archive).at("cannot open archive", archive)?;
    let hashing = match archive_sha {
        ArchiveSha::Check(_) => HashingReader::new(file),
        ArchiveSha::Known(_) => HashingReader::counting(file),
    };
    let decoder = Decoder::new(io::BufReader::with_capacity(1 << 20, hashing))
        .map_err(|e| bad(archive, unreadable(&e)))?;
    let mut tar = tar::Archive::new(decoder);
    let mut entries = tar.entries().map_err(|e| bad(archive, unreadable(&e)))?;
    let manifest = first_manifest(archive, &mut entries, known)?.manifest;

    // What this archive holds itself: a differential leaves the rest to its base.
    let expected: BTreeMap<String, Expected> = manifest
        .members()
        .map(|m| {
            (
                m.archive_path.to_string(),
                Expected {
                    size: m.size,
                    sha256: m.sha256.to_string(),
                    mode: m.mode,
                },
            )
        })
        .collect();
    // Folders an entry may legitimately name: every proper prefix of a listed path.
    let folders: BTreeSet<String> = expected
        .keys()
        .flat_map(|p| {
            p.match_indices('/')
                .map(|(i, _)| p[..i].to_string())
                .collect::<Vec<_>>()
        })
        .collect();

    progress.phase("extracting", manifest.stored_bytes());
    let mut done = BTreeSet::new();
    let mut writer = BackgroundWriter::start();
    // Files of one folder come one after another: its folder is made once.
    let mut made_folder: Option<std::path::PathBuf> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(archive, unreadable(&e)))?;
        let raw = entry.path_bytes().into_owned();
        let Some(path) = std::str::from_utf8(&raw)
            .ok()
            .map(|p| p.strip_suffix('/').unwrap_or(p))
            .filter(|p| is_plain_relative(p))
            .map(str::to_string)
        else {
            return Err(bad(
                archive,
                format!(
                    "it holds an unsafe path `{}` (absolute, `..` or not UTF-8)",
                    String::from_utf8_lossy(&raw)
                ),
            ));
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if folders.contains(&path) {
                continue;
            }
            return Err(bad(
                archive,
                format!("it holds an unlisted folder `{path}`"),
            ));
        }
        if kind != tar::EntryType::Regular && kind != tar::EntryType::Continuous {
            return Err(bad(
                archive,
                format!(
                    "entry `{path}` is a {}, and snapshots hold only regular files",
                    describe_kind(kind)
                ),
            ));
        }
        let Some(want) = expected.get(&path) else {
            return Err(bad(
                archive,
                format!("it holds `{path}`, which its manifest does not list"),
            ));
        };
        if !done.insert(path.clone()) {
            return Err(bad(archive, format!("it holds `{path}` twice")));
        }
        if entry.size() != want.size {
            return Err(bad(
                archive,
                format!(
                    "`{path}` is {} bytes in the archive but {} in the manifest",
                    entry.size(),
                    want.size
                ),
            ));
        }
        let check_only = match files {
            Files::Write => false,
            Files::CheckOnly => path.starts_with("files/"),
            Files::WriteExcept(unchanged) => unchanged.contains(&path),
        };
        if check_only {
            let mut sink = HashingWriter::new(io::sink());
            let mut counted = CountingReader::new(&mut entry, progress);
            fsutil::copy_large(&mut counted, &mut sink)
                .map_err(|e| bad(archive, unreadable(&e)))?;
            let (_, size, sha256) = sink.finish();
            matches_manifest(archive, &path, want, size, &sha256)?;
            continue;
        }
        let target = dest.join(&path);
        if let Some(parent) = target.parent()
            && made_folder.as_deref() != Some(parent)
        {
            fs::create_dir_all(parent).at("cannot create staging folder", parent)?;
            made_folder = Some(parent.to_path_buf());
        }
        if want.size <= BackgroundWriter::MAX_SIZE && path.starts_with("files/") {
            let mut bytes = Vec::with_capacity(usize::try_from(want.size).unwrap_or(0));
            CountingReader::new(&mut entry, progress)
                .read_to_end(&mut bytes)
                .map_err(|e| bad(archive, unreadable(&e)))?;
            let sha256 = units::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            matches_manifest(archive, &path, want, bytes.len() as u64, &sha256)?;
            writer.write(target, bytes, want.mode)?;
            continue;
        }
        // With its final mode: staging is a folder only this user can enter.
        let out = fsutil::create_with_mode(&target, want.mode)?;
        let mut writer = HashingWriter::new(io::BufWriter::with_capacity(
            fsutil::buffer_for(want.size),
            out,
        ));
        let mut counted = CountingReader::new(&mut entry, progress);
        fsutil::copy_large(&mut counted, &mut writer).map_err(|e| {
            // zstd says a damaged frame as `Other`; a full or failing disk has kinds of its own.
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::Other
            ) {
                bad(archive, unreadable(&e))
            } else {
                Error::io("cannot write", &target, e)
            }
        })?;
        let (buffered, size, sha256) = writer.finish();
        let out = buffered
            .into_inner()
            .map_err(|e| Error::io("cannot write", &target, e.into_error()))?;
        matches_manifest(archive, &path, want, size, &sha256)?;
        // Not synced here: a verify needs no durability, and a restore syncs the whole staging
        // once before its swap (one flush instead of one per file).
        drop(out);
    }
    writer.finish()?;
    progress.done();
    if let Some(missing) = expected.keys().find(|p| !done.contains(*p)) {
        return Err(bad(
            archive,
            format!("`{missing}` is listed in its manifest but missing (truncated?)"),
        ));
    }
    // Hash what follows the tar end marker too: the record covers the whole file.
    let mut rest = tar.into_inner().into_inner().into_inner();
    io::copy(&mut rest, &mut io::sink()).at("cannot read archive", archive)?;
    let (archive_size, hashed) = rest.finish();
    let archive_sha256 = match archive_sha {
        ArchiveSha::Known(sha256) => sha256.to_string(),
        ArchiveSha::Check(_) => hashed.expect("hashed while read"),
    };
    if let ArchiveSha::Check(Some(want)) = archive_sha
        && want != archive_sha256
    {
        return Err(bad(
            archive,
            format!(
                "its sha256 is {archive_sha256} but {want} was recorded when it was made; the copy is damaged"
            ),
        ));
    }
    Ok(Extracted {
        manifest,
        archive_size,
        archive_sha256,
    })
}

/// Writes small files on a helper thread while the archive is read on: for a folder of 50,000
/// small files, creating them costs the kernel more than reading them from the archive, and the
/// two then overlap. Files arrive checked; the thread only creates and writes them.
struct BackgroundWriter {
    sender: Option<std::sync::mpsc::SyncSender<(PathBuf, Vec<u8>, u32)>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl BackgroundWriter {
    /// Larger files are written as they stream, never held whole in memory.
    const MAX_SIZE: u64 = 64 << 10;
    /// Files waiting for the thread: at most 256 x 64 KiB in memory.
    const QUEUE: usize = 256;

    fn start() -> BackgroundWriter {
        let (sender, receiver) =
            std::sync::mpsc::sync_channel::<(PathBuf, Vec<u8>, u32)>(Self::QUEUE);
        // One thread: a second measured no faster, as creating files in one folder is serial.
        let thread = std::thread::spawn(move || -> Result<()> {
            for (path, bytes, mode) in receiver {
                // With its final mode: staging is a folder only this user can enter.
                fsutil::create_with_mode(&path, mode)?
                    .write_all(&bytes)
                    .at("cannot write", &path)?;
            }
            Ok(())
        });
        BackgroundWriter {
            sender: Some(sender),
            thread: Some(thread),
        }
    }

    fn write(&mut self, path: PathBuf, bytes: Vec<u8>, mode: u32) -> Result<()> {
        let sender = self.sender.as_ref().expect("not finished");
        if sender.send((path, bytes, mode)).is_err() {
            // The thread stopped on an error: that error is the answer.
            return self.finish();
        }
        Ok(())
    }

    /// Waits until every file is written; the first error, if any.
    fn finish(&mut self) -> Result<()> {
        self.sender = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(written)) => written,
            Some(Err(_)) => Err(Error::System("the file writer thread failed".into())),
            None => Ok(()),
        }
    }
}

impl Drop for BackgroundWriter {
    /// A refused archive ends extraction early: nothing may go on writing into staging after.
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Whether the `size` bytes with this `sha256` read for `path` are what the manifest lists.
fn matches_manifest(
    archive: &Path,
    path: &str,
    want: &Expected,
    size: u64,
    sha256: &str,
) -> Result<()> {
    if size == want.size && sha256 == want.sha256 {
        return Ok(());
    }
    Err(bad(
        archive,
        format!(
            "`{path}` does not match its manifest (sha256 {sha256}, expected {})",
            want.sha256
        ),
    ))
}

fn describe_kind(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "named pipe",
        tar::EntryType::GNUSparse => "sparse file",
        _ => "special entry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        for ok in ["a", "databases/tasks.db", "files/_root/etc/x"] {
            assert!(is_plain_relative(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
        ] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }
}
