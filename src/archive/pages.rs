//! Page-level differentials of SQLite database copies. SQLite's online backup API copies page N
//! of the source to page N of the copy, so two copies of one database compare page by page.
//!
//! - A page-hash file describes one full snapshot's copy of a database: its page size and count,
//!   its sha256, and the sha256 of every page, in page order. It lives in the local snapshot
//!   folder, never in an archive, and can always be made again from the full's archive.
//! - A pages member (`databases/<name>.db.pages` in a differential's archive) holds every page of
//!   a later copy whose hash differs from the full's, with its number.
//! - A rebuild lays those pages over the full's copy and cuts it to the new page count; the
//!   caller then checks the result's sha256 against the one recorded when the copy was taken.
//!
//! Pages are compared by sha256: two different pages with one hash would need a sha256
//! collision.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::fsutil::{self, HashingWriter};

const HASHES_MAGIC: &[u8; 8] = b"BKPGHSH1";
const PAGES_MAGIC: &[u8; 8] = b"BKPAGES1";
/// The page number that ends the pages of a member; the count of pages follows it.
const END_OF_PAGES: u64 = u64::MAX;
const HASH_LEN: usize = 32;
/// Magic, page size, page count, the copy's sha256.
const HASHES_HEADER: u64 = 8 + 4 + 8 + HASH_LEN as u64;
/// Bytes read at a time: a whole number of pages of any size SQLite allows.
const CHUNK: usize = 1 << 20;

fn invalid(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

/// The page size a SQLite database file declares in its first 100 bytes, if `header` is one.
pub fn page_size_of(header: &[u8]) -> Option<u32> {
    if header.len() < 100 || !header.starts_with(b"SQLite format 3\0") {
        return None;
    }
    let raw = u32::from(u16::from_be_bytes([header[16], header[17]]));
    let size = if raw == 1 { 65_536 } else { raw };
    (size.is_power_of_two() && (512..=65_536).contains(&size)).then_some(size)
}

/// The page size of the database file at `path`.
///
/// # Errors
/// A file that cannot be read, or is not a SQLite database.
pub fn page_size_of_file(path: &Path) -> io::Result<u32> {
    let mut header = [0u8; 100];
    File::open(path)?.read_exact(&mut header)?;
    page_size_of(&header).ok_or_else(|| invalid("not a SQLite database"))
}

/// A page-hash file, open for reading in page order.
pub struct PageHashes {
    reader: BufReader<File>,
    pub page_size: u32,
    pub page_count: u64,
    /// sha256 of the copy these hashes describe, hex.
    pub sha256: String,
    read: u64,
}

impl PageHashes {
    /// Opens the file at `path`, checking its header and length.
    ///
    /// # Errors
    /// A file that cannot be read, or is not a whole page-hash file.
    pub fn open(path: &Path) -> io::Result<PageHashes> {
        let file = File::open(path)?;
        let length = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut header = [0u8; HASHES_HEADER as usize];
        reader.read_exact(&mut header)?;
        if &header[..8] != HASHES_MAGIC {
            return Err(invalid("not a page-hash file"));
        }
        let page_size = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        let page_count = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
        let whole = page_count
            .checked_mul(HASH_LEN as u64)
            .and_then(|n| n.checked_add(HASHES_HEADER));
        if whole != Some(length) || !page_size.is_power_of_two() {
            return Err(invalid("the page-hash file is cut short or damaged"));
        }
        Ok(PageHashes {
            reader,
            page_size,
            page_count,
            sha256: crate::units::hex(&header[20..]),
            read: 0,
        })
    }

    /// The next page's hash; `None` past the last page.
    fn next_hash(&mut self) -> io::Result<Option<[u8; HASH_LEN]>> {
        if self.read == self.page_count {
            return Ok(None);
        }
        let mut hash = [0u8; HASH_LEN];
        self.reader.read_exact(&mut hash)?;
        self.read += 1;
        Ok(Some(hash))
    }
}

/// What [`scan`] read.
#[derive(Debug)]
pub struct Scanned {
    pub size: u64,
    /// sha256 of the whole copy, hex.
    pub sha256: String,
    pub page_count: u64,
    /// The pages member written, when a base was given.
    pub pages: Option<PagesWritten>,
}

/// A pages member as written.
#[derive(Debug)]
pub struct PagesWritten {
    pub changed: u64,
    pub size: u64,
    pub sha256: String,
}

/// Reads a database copy once, in pages of `page_size`: its sha256, the sha256 of each page into
/// a new page-hash file at `hashes`, and, given a base's hashes, every page that differs from the
/// base's (or that the base lacks) into `pages` as a pages member, unless that passes `budget`
/// bytes (then no member: [`Scanned::pages`] is `None`). The whole-file hash runs on a thread of
/// its own.
///
/// # Errors
/// A read or write failure; `InvalidData` for a copy that is not a whole number of pages or base
/// hashes of another page size.
pub fn scan(
    copy: &mut dyn Read,
    page_size: u32,
    hashes: &Path,
    base: Option<(&mut PageHashes, &mut dyn Write, u64)>,
) -> io::Result<Scanned> {
    let page = page_size as usize;
    if !page_size.is_power_of_two() || page > CHUNK {
        return Err(invalid(format!("{page_size} is not a page size")));
    }
    let mut base = match base {
        Some((hashes, _, _)) if hashes.page_size != page_size => {
            return Err(invalid("the base's copy has another page size"));
        }
        Some((hashes, out, budget)) => {
            let mut out = HashingWriter::new(BufWriter::with_capacity(CHUNK, out));
            out.write_all(PAGES_MAGIC)?;
            out.write_all(&page_size.to_le_bytes())?;
            // The page count is only known at the end: it follows the end marker instead.
            Some((hashes, out, 0u64, budget))
        }
        None => None,
    };
    // Past the budget the member is given up: the copy will be stored whole.
    let mut over_budget = false;
    let mut hash_file = BufWriter::with_capacity(
        1 << 16,
        fsutil::create_private(hashes).map_err(io::Error::other)?,
    );
    hash_file.write_all(&[0u8; HASHES_HEADER as usize])?;

    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let (size, page_count, whole) = std::thread::scope(|s| -> io::Result<(u64, u64, String)> {
        let whole = s.spawn(move || {
            let mut hasher = Sha256::new();
            for chunk in receiver {
                hasher.update(&chunk);
            }
            crate::units::hex(&hasher.finalize())
        });
        let mut size = 0u64;
        let mut page_no = 0u64;
        let result = (|| -> io::Result<()> {
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let filled = read_full(copy, &mut chunk)?;
                if filled == 0 {
                    return Ok(());
                }
                chunk.truncate(filled);
                if filled % page != 0 {
                    return Err(invalid("the copy is not a whole number of pages"));
                }
                for bytes in chunk.chunks(page) {
                    let hash: [u8; HASH_LEN] = Sha256::digest(bytes).into();
                    hash_file.write_all(&hash)?;
                    if let Some((base_hashes, out, changed, budget)) = base.as_mut()
                        && !over_budget
                        && base_hashes.next_hash()? != Some(hash)
                    {
                        if (*changed + 1) * (8 + page as u64) > *budget {
                            over_budget = true;
                        } else {
                            out.write_all(&page_no.to_le_bytes())?;
                            out.write_all(bytes)?;
                            *changed += 1;
                        }
                    }
                    page_no += 1;
                }
                size += filled as u64;
                if sender.send(chunk).is_err() {
                    return Err(io::Error::other("the hashing thread stopped"));
                }
                if filled < CHUNK {
                    return Ok(());
                }
            }
        })();
        drop(sender);
        let whole = whole.join().expect("hash thread panicked");
        result.map(|()| (size, page_no, whole))
    })?;

    let mut hash_file = hash_file
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    let mut header = Vec::with_capacity(HASHES_HEADER as usize);
    header.extend_from_slice(HASHES_MAGIC);
    header.extend_from_slice(&page_size.to_le_bytes());
    header.extend_from_slice(&page_count.to_le_bytes());
    header.extend_from_slice(&hex_bytes(&whole));
    hash_file.seek(SeekFrom::Start(0))?;
    hash_file.write_all(&header)?;
    hash_file.sync_all()?;

    let pages = match base {
        Some(_) if over_budget => None,
        Some((_, mut out, changed, _)) => {
            out.write_all(&END_OF_PAGES.to_le_bytes())?;
            out.write_all(&page_count.to_le_bytes())?;
            out.write_all(&changed.to_le_bytes())?;
            let (buffered, size, sha256) = out.finish();
            buffered
                .into_inner()
                .map_err(io::IntoInnerError::into_error)?
                .flush()?;
            Some(PagesWritten {
                changed,
                size,
                sha256,
            })
        }
        None => None,
    };
    Ok(Scanned {
        size,
        sha256: whole,
        page_count,
        pages,
    })
}

/// Fills `buf` as far as the reader goes; the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from units::hex"))
        .collect()
}

/// Lays the pages of a pages member over `target`, the base's copy of the database (already
/// checked against its sha256), cuts it to the member's page count, and returns the rebuilt
/// file's size and sha256. `page_size`, `page_count` and `changed` are what the manifest says;
/// the member must say the same.
///
/// # Errors
/// A member that is not what the manifest says (refused before anything past its header is
/// believed), or a failure to read or write.
pub fn apply(
    pages: &mut dyn Read,
    target: &Path,
    page_size: u64,
    page_count: u64,
    changed: u64,
) -> io::Result<(u64, String)> {
    let mut pages = BufReader::with_capacity(CHUNK, pages);
    let mut header = [0u8; 12];
    pages.read_exact(&mut header)?;
    if &header[..8] != PAGES_MAGIC
        || u64::from(u32::from_le_bytes(
            header[8..12].try_into().expect("4 bytes"),
        )) != page_size
    {
        return Err(invalid(
            "the pages member does not start as one, or has another page size",
        ));
    }
    let size = page_count
        .checked_mul(page_size)
        .ok_or_else(|| invalid("the page count is implausible"))?;
    let file = OpenOptions::new().read(true).write(true).open(target)?;
    let mut page = vec![0u8; usize::try_from(page_size).map_err(io::Error::other)?];
    let mut count = 0u64;
    let mut last: Option<u64> = None;
    loop {
        let mut number = [0u8; 8];
        pages.read_exact(&mut number)?;
        let number = u64::from_le_bytes(number);
        if number == END_OF_PAGES {
            break;
        }
        if number >= page_count || last.is_some_and(|l| number <= l) || count == changed {
            return Err(invalid(format!(
                "the pages member holds page {number} out of order or past the end"
            )));
        }
        pages.read_exact(&mut page)?;
        file.write_all_at(&page, number * page_size)?;
        last = Some(number);
        count += 1;
    }
    let mut trailer = [0u8; 16];
    pages.read_exact(&mut trailer)?;
    let said_count = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
    let said_changed = u64::from_le_bytes(trailer[8..].try_into().expect("8 bytes"));
    if said_count != page_count || said_changed != changed || count != changed {
        return Err(invalid(
            "the pages member's count does not match the manifest",
        ));
    }
    if pages.read(&mut [0u8; 1])? != 0 {
        return Err(invalid("the pages member goes on past its end"));
    }
    file.set_len(size)?;
    drop(file);
    let (size, sha256) = fsutil::hash_file(target).map_err(io::Error::other)?;
    Ok((size, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(pages: &[u8], page_size: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (i, fill) in pages.iter().enumerate() {
            let mut page = vec![*fill; page_size];
            if i == 0 {
                page[..16].copy_from_slice(b"SQLite format 3\0");
                page[16..18].copy_from_slice(&(page_size as u16).to_be_bytes());
            }
            bytes.extend_from_slice(&page);
        }
        bytes
    }

    fn hashes_of(dir: &Path, name: &str, bytes: &[u8]) -> PageHashes {
        let path = dir.join(name);
        scan(&mut &bytes[..], 512, &path, None).unwrap();
        PageHashes::open(&path).unwrap()
    }

    #[test]
    fn changed_pages_rebuild_the_new_copy_from_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let old = database(&[1, 2, 3, 4, 5], 512);
        for new in [
            database(&[1, 2, 9, 4, 5], 512),       // one page changed
            database(&[1, 2, 3, 4, 5, 6, 7], 512), // grown
            database(&[1, 8, 3], 512),             // shrunk, one changed
            database(&[1, 2, 3, 4, 5], 512),       // the same
        ] {
            let _ = std::fs::remove_file(dir.path().join("new"));
            let (scanned, member) = scan_against(dir.path(), &old, &new, u64::MAX);
            let written = scanned.pages.unwrap();
            assert_eq!(written.size, member.len() as u64);
            let target = dir.path().join("db");
            std::fs::write(&target, &old).unwrap();
            let (size, sha256) = apply(
                &mut &member[..],
                &target,
                512,
                scanned.page_count,
                written.changed,
            )
            .unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), new);
            assert_eq!((size, sha256), (new.len() as u64, scanned.sha256.clone()));
            std::fs::remove_file(dir.path().join("old")).unwrap();
        }
    }

    /// `new` scanned against the hashes of `old` within `budget`: what was read, and the
    /// pages member. The new copy's hashes go to `new` in `dir`.
    fn scan_against(dir: &Path, old: &[u8], new: &[u8], budget: u64) -> (Scanned, Vec<u8>) {
        let mut base = hashes_of(dir, "old", old);
        let mut member = Vec::new();
        let scanned = scan(
            &mut &new[..],
            512,
            &dir.join("new"),
            Some((&mut base, &mut member, budget)),
        )
        .unwrap();
        (scanned, member)
    }

    #[test]
    fn a_member_that_says_otherwise_than_the_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let old = database(&[1, 2, 3], 512);
        let new = database(&[1, 7, 3], 512);
        let (scanned, member) = scan_against(dir.path(), &old, &new, u64::MAX);
        let target = dir.path().join("db");
        std::fs::write(&target, &old).unwrap();
        assert!(apply(&mut &member[..], &target, 512, 3, 2).is_err());
        assert!(apply(&mut &member[..], &target, 1024, 3, 1).is_err());
        assert!(apply(&mut &member[..member.len() - 1], &target, 512, 3, 1).is_err());
        let mut longer = member.clone();
        longer.push(0);
        assert!(apply(&mut &longer[..], &target, 512, 3, 1).is_err());
        assert_eq!(scanned.page_count, 3);
    }

    #[test]
    fn past_its_budget_the_member_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let old = database(&[1, 2, 3, 4], 512);
        let new = database(&[1, 5, 6, 7], 512);
        let (scanned, _) = scan_against(dir.path(), &old, &new, 2 * (8 + 512));
        assert!(
            scanned.pages.is_none(),
            "three changed pages do not fit two"
        );
        assert_eq!(scanned.page_count, 4);
        assert_eq!(
            PageHashes::open(&dir.path().join("new")).unwrap().sha256,
            scanned.sha256
        );
    }

    #[test]
    fn page_sizes_come_from_the_header() {
        assert_eq!(page_size_of(&database(&[0], 4096)[..100]), Some(4096));
        let mut big = database(&[0], 512);
        big[16..18].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(page_size_of(&big[..100]), Some(65_536));
        assert_eq!(page_size_of(&[0u8; 100]), None);
    }
}
