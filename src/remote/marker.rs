//! The folder remote's marker, and this machine's memory of the folders it pushed to.
//!
//! An unmounted NAS leaves its mount point behind as an empty local folder: pushing there would
//! look like a backup while being none. So a folder remote carries a marker file
//! ([`MARKER_FILE`]: a format version, a random id, when and by which host it was made), written
//! by its first push or by `backup init`, as restic marks a repository with its config. The local
//! snapshot folder keeps a record ([`REMOTE_FOLDERS_FILE`]) of the folders this machine pushed to, with
//! their marker ids.
//!
//! A folder the record names that lacks its marker, or holds another one, is refused for every
//! operation until the disk is back or `backup init` adopts the folder on purpose. Machines that
//! pushed with an earlier version have no record: for them a good push in their last run (which
//! the operation reads from `last_run.json` and passes in) and local snapshots stand in for it,
//! and a folder that holds our archives without a marker is that earlier version's remote,
//! adopted by the next push. Reading never writes: only a push and `init` write the marker or the
//! record.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, RemoteError, Result};
use crate::fsutil::{self, TempPath};
use crate::layout::{CHECKSUM_SUFFIX, MARKER_FILE, REMOTE_FOLDERS_FILE, TEMP_PREFIX};
use crate::tag::Tag;

const MARKER_FORMAT: &str = "backup-agent remote folder";
const MARKER_VERSION: u32 = 1;
const RECORD_VERSION: u32 = 1;

/// What file systems and operating systems create by themselves at the root of a volume (ext4,
/// macOS, Windows): a mount point holding only these is still an empty folder.
const SYSTEM_ENTRIES: [&str; 7] = [
    "lost+found",
    ".DS_Store",
    ".Trashes",
    ".Spotlight-V100",
    ".fseventsd",
    "System Volume Information",
    "$RECYCLE.BIN",
];

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    format: String,
    version: u32,
    id: String,
    created_at: DateTime<Utc>,
    created_by: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    version: u32,
    folders: Vec<UsedFolder>,
}

#[derive(Debug, Serialize, Deserialize)]
struct UsedFolder {
    /// The folder, canonical.
    path: PathBuf,
    /// `None`: an earlier version pushed here before folders were marked.
    marker_id: Option<String>,
    since: DateTime<Utc>,
}

/// What a folder remote is to this machine.
#[derive(Debug)]
pub(super) enum State {
    /// It holds a marker; `recorded` when this machine's record already names it with that id.
    Marked {
        id: String,
        recorded: bool,
    },
    /// No marker, and nothing says this machine pushed here: a new folder, or one an earlier
    /// version pushed to (`earlier_archives`). The next push marks it.
    Unmarked {
        earlier_archives: bool,
    },
    Refused(Refusal),
}

/// Why a folder remote is refused.
#[derive(Debug)]
pub(super) enum Refusal {
    /// This machine pushed here and the marker is gone: most likely the disk is not mounted.
    /// `recorded` is false when only an earlier version's last good push says so.
    MarkerMissing {
        recorded: bool,
    },
    /// Another remote's marker: another disk is mounted at the same place.
    OtherMarker {
        found: String,
        expected: String,
    },
    UnreadableMarker(String),
    NewerMarker(u32),
    /// First use of a folder that holds files of something else.
    Foreign(Vec<String>),
}

impl Refusal {
    /// What is wrong, on which folder.
    pub(super) fn problem(&self, root: &Path) -> String {
        let root = root.display();
        match self {
            Refusal::MarkerMissing { .. } => format!(
                "remote folder {root} has no backup-agent marker ({MARKER_FILE}) although snapshots were pushed there: is the disk mounted?"
            ),
            Refusal::OtherMarker { found, expected } => format!(
                "remote folder {root} holds the marker of another backup-agent remote (id {}, this machine pushes to id {}): another disk may be mounted there",
                short(found),
                short(expected)
            ),
            Refusal::UnreadableMarker(reason) => {
                format!("remote folder {root}: its marker {MARKER_FILE} cannot be read ({reason})")
            }
            Refusal::NewerMarker(version) => format!(
                "remote folder {root} was marked by a newer backup-agent (marker version {version})"
            ),
            Refusal::Foreign(names) => format!(
                "remote folder {root} holds files that are not backup-agent's ({}) and no backup-agent marker",
                names.join(", ")
            ),
        }
    }

    /// What to do about it.
    pub(super) fn fix(&self) -> &'static str {
        match self {
            Refusal::MarkerMissing { .. } => {
                "mount it and run again; if it is a new, empty remote on purpose, run `backup init`"
            }
            Refusal::OtherMarker { .. } => {
                "mount the disk this machine pushes to, or run `backup init` to adopt this one"
            }
            Refusal::UnreadableMarker(_) => {
                "if this folder is the remote, run `backup init` to mark it again"
            }
            Refusal::NewerMarker(_) => "upgrade backup-agent on this machine",
            Refusal::Foreign(_) => "point [remote] path at an empty folder of its own",
        }
    }

    /// The one-line error: what, where, what to do.
    pub(super) fn into_error(self, root: &Path) -> Error {
        let problem = self.problem(root);
        let joint = if problem.ends_with('?') { " " } else { "; " };
        RemoteError::unsafe_to_use(format!("{problem}{joint}{}", self.fix())).into()
    }
}

/// The first characters of a marker id: enough to tell two apart in a message.
pub(super) fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// What `root` is to this machine, whose local snapshot folder is `local_dir`;
/// `earlier_good_push` when its last run pushed (an earlier version's run left no record).
/// Writes nothing.
///
/// # Errors
/// When the folder, its marker or the record cannot be read.
pub(super) fn inspect(root: &Path, local_dir: &Path, earlier_good_push: bool) -> Result<State> {
    let record = read_record(local_dir)?;
    let here = fsutil::comparable_path(root);
    let remembered = record
        .as_ref()
        .and_then(|r| r.folders.iter().find(|f| f.path == here));
    let remembered_id = remembered.and_then(|f| f.marker_id.as_deref());
    let marker = match read_marker(root)? {
        Some(Ok(marker)) => marker,
        Some(Err(reason)) => return Ok(State::Refused(Refusal::UnreadableMarker(reason))),
        None if remembered_id.is_some() => {
            return Ok(State::Refused(Refusal::MarkerMissing { recorded: true }));
        }
        None => {
            let known = Known {
                has_record: record.is_some(),
                remembered: remembered.is_some(),
                earlier_good_push,
            };
            return unmarked(root, local_dir, &known);
        }
    };
    if marker.version > MARKER_VERSION {
        return Ok(State::Refused(Refusal::NewerMarker(marker.version)));
    }
    Ok(match remembered_id {
        Some(expected) if expected != marker.id => State::Refused(Refusal::OtherMarker {
            found: marker.id,
            expected: expected.to_string(),
        }),
        Some(_) => State::Marked {
            id: marker.id,
            recorded: true,
        },
        None => State::Marked {
            id: marker.id,
            recorded: false,
        },
    })
}

/// What this machine knows of its pushes, for a folder without a marker.
struct Known {
    /// This machine keeps a record of the folders it pushed to.
    has_record: bool,
    /// The record names this folder.
    remembered: bool,
    /// The last run pushed.
    earlier_good_push: bool,
}

/// A folder without a marker that this machine has not marked: an earlier version's remote, a
/// new folder, or the empty mount point of a remote an earlier version pushed to.
fn unmarked(root: &Path, local_dir: &Path, known: &Known) -> Result<State> {
    let contents = scan(root)?;
    if contents.archives {
        return Ok(State::Unmarked {
            earlier_archives: true,
        });
    }
    if known.remembered {
        return Ok(State::Refused(Refusal::MarkerMissing { recorded: true }));
    }
    if !known.has_record
        && known.earlier_good_push
        && !crate::layout::local_archives(local_dir)?.is_empty()
    {
        return Ok(State::Refused(Refusal::MarkerMissing { recorded: false }));
    }
    if !contents.foreign.is_empty() {
        return Ok(State::Refused(Refusal::Foreign(contents.foreign)));
    }
    Ok(State::Unmarked {
        earlier_archives: false,
    })
}

struct Contents {
    /// It holds at least one archive of this tool.
    archives: bool,
    /// The first few names that are neither this tool's nor the file system's.
    foreign: Vec<String>,
}

fn scan(root: &Path) -> Result<Contents> {
    const SHOWN: usize = 3;
    let mut contents = Contents {
        archives: false,
        foreign: Vec::new(),
    };
    for entry in fs::read_dir(root).at("cannot list", root)? {
        let entry = entry.at("cannot list", root)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if Tag::from_archive_name(&name).is_some() {
            contents.archives = true;
        } else if !is_ours(&name)
            && !SYSTEM_ENTRIES.contains(&name.as_str())
            && contents.foreign.len() < SHOWN
        {
            contents.foreign.push(name);
        }
    }
    contents.foreign.sort();
    Ok(contents)
}

/// A name this tool writes into a folder remote besides its archives.
fn is_ours(name: &str) -> bool {
    name == MARKER_FILE
        || name.starts_with(TEMP_PREFIX)
        || name
            .strip_suffix(CHECKSUM_SUFFIX)
            .is_some_and(|archive| Tag::from_archive_name(archive).is_some())
}

/// The marker, `Some(Err(why))` when it is there but not one this tool can read, `None` when
/// there is none.
fn read_marker(root: &Path) -> Result<Option<std::result::Result<Marker, String>>> {
    let path = root.join(MARKER_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", &path, e)),
    };
    Ok(Some(
        serde_json::from_slice::<Marker>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.format == MARKER_FORMAT {
                    Ok(m)
                } else {
                    Err(format!("its format is `{}`", m.format))
                }
            }),
    ))
}

/// Marks `root` with a new marker and returns its id. A marker another machine wrote meanwhile
/// is kept and its id returned (two machines starting on one shared folder agree on one id);
/// `replace` overwrites an unreadable one.
///
/// # Errors
/// When the folder cannot be written.
pub(super) fn write_marker(root: &Path, replace: bool) -> Result<String> {
    let marker = Marker {
        format: MARKER_FORMAT.into(),
        version: MARKER_VERSION,
        id: new_marker_id(),
        created_at: crate::clock::now(),
        created_by: crate::tag::this_host(),
    };
    let mut json = serde_json::to_vec_pretty(&marker).expect("marker serializes");
    json.push(b'\n');
    let path = root.join(MARKER_FILE);
    if replace {
        fsutil::write_atomic(&path, &json)?;
        return Ok(marker.id);
    }
    // Nothing tidies a remote folder: a killed write's temp is removed here.
    let temp = TempPath::new(root.join(format!("{TEMP_PREFIX}{MARKER_FILE}")));
    let _ = fs::remove_file(temp.path());
    {
        use std::io::Write;
        let mut file = fsutil::create_private(temp.path())?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .at("cannot write", temp.path())?;
    }
    match fsutil::rename_no_replace(temp.path(), &path) {
        Ok(()) => {
            let _ = temp.keep();
            fsutil::sync_dir(root)?;
            Ok(marker.id)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read_marker(root)? {
            Some(Ok(theirs)) => Ok(theirs.id),
            _ => Err(RemoteError::transient(format!(
                "{} appeared while it was being written and cannot be read; run again",
                path.display()
            ))
            .into()),
        },
        Err(e) => Err(Error::io("cannot rename into", &path, e)),
    }
}

/// 128 bits from the OS-seeded hasher keys, the time and the process: the id only has to tell
/// one marked folder from another, not resist guessing.
fn new_marker_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    (0u8..2)
        .map(|half| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u8(half);
            hasher.write_u128(nanos);
            hasher.write_u32(std::process::id());
            format!("{:016x}", hasher.finish())
        })
        .collect()
}

/// The record, if this machine has one.
fn read_record(local_dir: &Path) -> Result<Option<Record>> {
    let path = local_dir.join(REMOTE_FOLDERS_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Damaged(format!(
                "cannot read {} ({e}); run `backup init` to write it again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", &path, e)),
    }
}

/// Records that this machine pushes to `root`, whose marker is `marker_id` (`None`: an earlier
/// version pushed there before folders were marked).
///
/// # Errors
/// When the local snapshot folder cannot be written.
pub(super) fn remember(root: &Path, local_dir: &Path, marker_id: Option<&str>) -> Result<()> {
    // An unreadable record is replaced: `init` is how the user asks for that.
    let mut record = read_record(local_dir).ok().flatten().unwrap_or_default();
    record.version = RECORD_VERSION;
    let here = fsutil::comparable_path(root);
    let marker_id = marker_id.map(str::to_string);
    match record.folders.iter_mut().find(|f| f.path == here) {
        Some(folder) => folder.marker_id = marker_id,
        None => record.folders.push(UsedFolder {
            path: here,
            marker_id,
            since: crate::clock::now(),
        }),
    }
    fs::create_dir_all(local_dir).at("cannot create snapshot folder", local_dir)?;
    let json = serde_json::to_vec_pretty(&record).expect("record serializes");
    fsutil::write_atomic(&local_dir.join(REMOTE_FOLDERS_FILE), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tools_own_names_and_the_file_systems_are_not_foreign() {
        let dir = tempfile::tempdir().unwrap();
        let tag = "bk-20261122T014207Z-manual-laptop-3f9a1c";
        for name in [
            format!("{tag}.tar.gz.sha256"),
            format!("{TEMP_PREFIX}{tag}.tar.gz"),
            ".DS_Store".into(),
            "lost+found".into(),
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let contents = scan(dir.path()).unwrap();
        assert!(!contents.archives);
        assert!(contents.foreign.is_empty(), "{:?}", contents.foreign);
        fs::write(dir.path().join("notes.txt"), b"").unwrap();
        fs::write(dir.path().join(format!("{tag}.tar.gz")), b"").unwrap();
        let contents = scan(dir.path()).unwrap();
        assert!(contents.archives);
        assert_eq!(contents.foreign, ["notes.txt"]);
    }

    #[test]
    fn marker_ids_differ() {
        assert_ne!(new_marker_id(), new_marker_id());
        assert_eq!(new_marker_id().len(), 32);
    }
}
