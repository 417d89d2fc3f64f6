//! Writing `<tag>.tar.gz` or `<tag>.tar.zst`: the manifest first, then every staged file,
//! streamed through the parallel gzip encoder or multithreaded zstd into a 0600 temp file that is
//! fsynced before the caller renames it.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;

use super::manifest::{MANIFEST_NAME, Manifest};
use super::pgzip::ParallelGzEncoder;
use super::{Compression as ArchiveCompression, Packing};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, HashingWriter};
use crate::progress::{CountingReader, Progress};

// gzip's default level 5 was measured on a 1 GiB app database (benches/snapshot.sh, zlib-rs):
// 22% less CPU than level 6 for an archive 0.4% larger, about 1.01x the size of `gzip -6`.
// Compression is nearly the whole cost of a snapshot, and the hourly job runs on the user's
// laptop.

/// The archive's compressor over `W`.
enum Encoder<W: Write> {
    Gzip(ParallelGzEncoder<W>),
    /// zstd's own worker threads, one per core.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write + Send + 'static> Encoder<W> {
    fn new(inner: W, packing: &Packing) -> io::Result<Encoder<W>> {
        let level = packing.level();
        Ok(match packing.compression {
            ArchiveCompression::Gzip => Encoder::Gzip(ParallelGzEncoder::new(
                inner,
                Compression::new(level.unsigned_abs()),
                0,
            )?),
            ArchiveCompression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(inner, level)?;
                // At most 4 workers: each holds its own window (tens of MB at high levels), and
                // the hourly run shares the laptop.
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
                encoder.multithread(u32::try_from(threads).unwrap_or(1))?;
                // A damaged frame is found by zstd itself, before the archive's own sha256.
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(gz) => gz.finish(),
            Encoder::Zstd(zstd) => zstd.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(gz) => gz.write(buf),
            Encoder::Zstd(zstd) => zstd.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(gz) => gz.flush(),
            Encoder::Zstd(zstd) => zstd.flush(),
        }
    }
}

/// A staged file and where it goes in the archive: `size` bytes of `source` from `offset` (the
/// included files share one staging file).
pub(crate) struct Member {
    pub archive_path: String,
    pub source: PathBuf,
    pub offset: u64,
    pub size: u64,
    pub mode: u32,
}

/// Writes the archive to `path` (created new, mode 0600) and returns its size and sha256.
pub(crate) fn write_archive(
    path: &Path,
    manifest: &Manifest,
    members: &[Member],
    packing: &Packing,
    progress: &dyn Progress,
) -> Result<(u64, String)> {
    let file = fsutil::create_private(path)?;
    let fail = |e: io::Error| Error::io("cannot write archive", path, e);
    let encoder = Encoder::new(
        HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file)),
        packing,
    )
    .map_err(fail)?;
    let mut tar = tar::Builder::new(encoder);
    let mtime = manifest.created_at.timestamp().max(0) as u64;

    let json = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
    append(
        &mut tar,
        MANIFEST_NAME,
        json.len() as u64,
        0o600,
        mtime,
        &json[..],
    )
    .map_err(fail)?;

    let total: u64 = members.iter().map(|m| m.size).sum();
    progress.phase("compressing", total);
    // The staging file the last member came from: members of one file are read in order.
    let mut open: Option<(&Path, File)> = None;
    for member in members {
        if open.as_ref().is_none_or(|(path, _)| *path != member.source) {
            let file = File::open(&member.source).at("cannot read staged copy", &member.source)?;
            open = Some((&member.source, file));
        }
        let (_, source) = open.as_mut().expect("opened above");
        source
            .seek(io::SeekFrom::Start(member.offset))
            .at("cannot read staged copy", &member.source)?;
        // 1 MiB reads instead of io::copy's 8 KiB: an eighth of the system calls; no more than
        // the member needs.
        let reader = CountingReader::new(
            io::BufReader::with_capacity(crate::fsutil::buffer_for(member.size), &*source),
            progress,
        );
        append(
            &mut tar,
            &member.archive_path,
            member.size,
            member.mode,
            mtime,
            reader,
        )
        .map_err(fail)?;
    }
    let encoder = tar.into_inner().map_err(fail)?;
    let hashing = encoder.finish().map_err(fail)?;
    let (buffered, size, sha256) = hashing.finish();
    let file = buffered.into_inner().map_err(|e| fail(e.into_error()))?;
    file.sync_all().map_err(fail)?;
    progress.done();
    Ok((size, sha256))
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    archive_path: &str,
    size: u64,
    mode: u32,
    mtime: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    // A file that changed size after it was hashed would make tar pad or fail; the staged copies
    // are ours alone, so the size is exact.
    tar.append_data(&mut header, archive_path, data.take(size))
}
