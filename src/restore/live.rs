//! The live data a restore would set aside: what it holds compared with the snapshot, and whether
//! an app has it open right now.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde::Serialize;

use super::stage::DatabaseReport;
use crate::checks::count_rows;

/// A live database as found before a restore.
#[derive(Clone, Debug, Serialize)]
pub struct LiveDatabase {
    pub name: String,
    pub path: PathBuf,
    pub exists: bool,
    pub user_version: Option<i64>,
    pub tables: BTreeMap<String, u64>,
    /// Newest modification time of the file and of its WAL when the WAL holds frames (an empty
    /// WAL, which any reader may create, and the -shm index say nothing about changes).
    pub modified: Option<DateTime<Utc>>,
    /// Why it could not be read, if it could not.
    pub unreadable: Option<String>,
}

use crate::fsutil::with_suffix;

fn modified(path: &Path) -> Option<DateTime<Utc>> {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(DateTime::<Utc>::from)
}

/// The WAL's modification time, when it holds frames.
fn wal_modified(path: &Path) -> Option<DateTime<Utc>> {
    let wal = fs::metadata(with_suffix(path, "-wal")).ok()?;
    if wal.len() == 0 {
        return None;
    }
    wal.modified().ok().map(DateTime::<Utc>::from)
}

/// Opens a live database so that closing it leaves its files as they were: no CREATE; no
/// checkpoint on close while the WAL holds frames (that would rewrite the database file); and when
/// no app has the WAL index (-shm) open, exclusive locking, which keeps the index in memory
/// instead of creating a -shm file. A -wal file SQLite creates empty is removed again by the
/// checkpoint on close, which has nothing to copy.
fn open_live(path: &Path, exclusive: bool) -> rusqlite::Result<Connection> {
    let wal_has_frames = fs::metadata(with_suffix(path, "-wal")).is_ok_and(|m| m.len() > 0);
    let shm_exists = fs::symlink_metadata(with_suffix(path, "-shm")).is_ok();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, wal_has_frames)?;
    if exclusive || !shm_exists {
        conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))?;
    }
    Ok(conn)
}

const HOT_JOURNAL: &str =
    "it has an unfinished transaction in its -journal file, which opening it would roll back";

/// First bytes of a rollback journal that still holds a transaction (SQLite's file format,
/// "The Rollback Journal"); a finished journal in PERSIST mode has them zeroed.
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// A journal with a transaction in it: any connection would roll it back, rewriting the database.
fn has_hot_journal(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    fs::File::open(with_suffix(path, "-journal"))
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == JOURNAL_MAGIC)
}

/// Reads what the live database holds; never fails (an unreadable file is reported as such).
pub fn inspect(name: &str, path: &Path) -> LiveDatabase {
    let mut live = LiveDatabase {
        name: name.to_string(),
        path: path.to_path_buf(),
        exists: fs::symlink_metadata(path).is_ok(),
        user_version: None,
        tables: BTreeMap::new(),
        modified: [modified(path), wal_modified(path)]
            .into_iter()
            .flatten()
            .max(),
        unreadable: None,
    };
    if !live.exists {
        return live;
    }
    if has_hot_journal(path) {
        live.unreadable = Some(HOT_JOURNAL.to_string());
        return live;
    }
    let read = open_live(path, false).and_then(|conn| {
        conn.pragma_update(None, "query_only", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        Ok((version, count_rows(&conn)?))
    });
    match read {
        Ok((version, tables)) => {
            live.user_version = Some(version);
            live.tables = tables;
        }
        Err(e) => live.unreadable = Some(e.to_string()),
    }
    live
}

/// A table whose row count differs between the live database and the restored copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableDifference {
    pub database: String,
    pub table: String,
    /// Rows in the live table; `None`: the live database has no such table.
    pub live: Option<u64>,
    /// Rows the restore brings back (after migrations); `None`: the snapshot has no such table.
    pub snapshot: Option<u64>,
}

impl TableDifference {
    /// The live table holds rows the snapshot lacks.
    pub fn gained(&self) -> bool {
        self.live.unwrap_or(0) > self.snapshot.unwrap_or(0)
    }
}

/// How a live database compares with the restored copy.
#[derive(Debug, Default)]
pub struct Comparison {
    /// What setting it aside would lose (a newer schema, more rows, changes after the copy was
    /// taken), with the line of every table that differs beside them: reasons to ask first.
    pub concerns: Vec<String>,
    /// The tables line when nothing of this database is a concern (it only lost rows, which the
    /// restore brings back): shown, but no reason to ask.
    pub note: Option<String>,
    /// Every table whose row count differs, gained or lost, created or dropped.
    pub tables: Vec<TableDifference>,
}

/// Compares `live` with the restored `report`. `changed_after`: the moment the snapshot's copy
/// was taken; a live file modified later holds changes the snapshot may lack.
pub fn compare(
    live: &LiveDatabase,
    report: &DatabaseReport,
    changed_after: DateTime<Utc>,
) -> Comparison {
    let mut out = Comparison::default();
    if !live.exists {
        return out;
    }
    if let Some(reason) = &live.unreadable {
        out.concerns.push(format!(
            "live `{}` cannot be read ({reason}); it will be set aside as it is",
            live.name
        ));
        return out;
    }
    out.tables = table_differences(live, report);
    let mut asks = false;
    if let Some(version) = live.user_version
        && version > report.restored_version
    {
        asks = true;
        out.concerns.push(format!(
            "live `{}` is at schema version {version}, the restored copy at {}",
            live.name, report.restored_version
        ));
    }
    let tables_line = (!out.tables.is_empty()).then(|| describe_tables(&live.name, &out.tables));
    asks |= out.tables.iter().any(TableDifference::gained);
    let changed = live.modified.filter(|&t| t > changed_after);
    asks |= changed.is_some();
    match tables_line {
        Some(line) if asks => out.concerns.push(line),
        line => out.note = line,
    }
    if let Some(changed) = changed {
        // A change within the same minute is common, so the gap is said, not a second time.
        let later = (changed - changed_after).to_std().unwrap_or_default();
        let gap = if later.as_secs() < 60 {
            format!("{:.1}s", later.as_secs_f64())
        } else {
            crate::schedule::Interval::from_secs(later.as_secs()).to_string()
        };
        out.concerns.push(format!(
            "live `{}` changed {gap} after the snapshot's copy was taken ({})",
            live.name,
            crate::units::human_time(changed_after)
        ));
    }
    out
}

fn table_differences(live: &LiveDatabase, report: &DatabaseReport) -> Vec<TableDifference> {
    let names: std::collections::BTreeSet<&String> =
        live.tables.keys().chain(report.tables.keys()).collect();
    names
        .into_iter()
        .filter_map(|table| {
            let (live_rows, snapshot_rows) = (
                live.tables.get(table).copied(),
                report.tables.get(table).copied(),
            );
            (live_rows != snapshot_rows).then(|| TableDifference {
                database: live.name.clone(),
                table: table.clone(),
                live: live_rows,
                snapshot: snapshot_rows,
            })
        })
        .collect()
}

/// One line for people: "live `tasks`: table `tasks` 90 rows, the snapshot 100; table `notes`
/// 7 rows, not in the snapshot".
fn describe_tables(name: &str, tables: &[TableDifference]) -> String {
    let parts: Vec<String> = tables
        .iter()
        .map(|t| match (t.live, t.snapshot) {
            (Some(live), Some(snapshot)) => {
                format!("table `{}` {live} rows, the snapshot {snapshot}", t.table)
            }
            (Some(live), None) => format!("table `{}` {live} rows, not in the snapshot", t.table),
            (None, Some(snapshot)) => format!(
                "table `{}` not in the live database, the snapshot {snapshot} rows",
                t.table
            ),
            (None, None) => unreachable!("a difference has a table on one side"),
        })
        .collect();
    format!("live `{name}`: {}", parts.join("; "))
}

/// What a live file looked like when it was found to hold a snapshot's bytes: a restore that
/// leaves it in place checks, just before its swap, that it still looks so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Stamp {
    pub len: u64,
    #[serde(skip)]
    pub modified: Option<std::time::SystemTime>,
    #[serde(skip)]
    pub inode: u64,
}

impl Stamp {
    /// The stamp of the regular file at `path` now (a link is never a live copy of a file).
    pub fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        })
    }
}

/// Whether the regular file at `path` holds exactly `size` bytes with this `sha256`: its stamp
/// when it does.
pub fn same_content(path: &Path, size: u64, sha256: &str) -> Option<Stamp> {
    let stamp = Stamp::of(path).filter(|s| s.len == size)?;
    // A small buffer: included files are often many and small.
    let mut hasher = crate::fsutil::HashingWriter::new(std::io::sink());
    let same = fs::File::open(path)
        .and_then(|mut file| std::io::copy(&mut file, &mut hasher))
        .is_ok_and(|_| hasher.finish().2 == sha256);
    // Unchanged while it was read, too.
    (same && Stamp::of(path) == Some(stamp)).then_some(stamp)
}

/// Why the database cannot be swapped now, if it cannot: it has a hot journal that only opening
/// it (and so changing it) would resolve; another process has it (or its -wal/-shm/-journal)
/// open, found by its open files (`holders`), since an app idle in rollback-journal mode holds
/// no lock; or it is locked, tried without waiting (an exclusive lock is refused while any other
/// connection holds the WAL index or a lock), which also covers an opener the scan cannot see.
pub fn in_use(path: &Path) -> Option<String> {
    if !path.exists() {
        return None;
    }
    if has_hot_journal(path) {
        return Some(format!(
            "{} has an unfinished transaction (its -journal file): start and stop the app once, or open it with sqlite3, so SQLite rolls it back",
            path.display()
        ));
    }
    let holders = holders(path);
    if !holders.is_empty() {
        let named: Vec<String> = holders
            .iter()
            .take(3)
            .map(|h| match h.command.as_str() {
                "" => format!("pid {}", h.pid),
                command => format!("pid {} `{command}`", h.pid),
            })
            .collect();
        let more = holders.len().saturating_sub(named.len());
        return Some(format!(
            "{} is open in another process ({}{}): stop it",
            path.display(),
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    let probe = || -> rusqlite::Result<()> {
        let conn = open_live(path, true)?;
        conn.busy_timeout(std::time::Duration::ZERO)?;
        conn.execute_batch("BEGIN EXCLUSIVE; SELECT count(*) FROM sqlite_schema; ROLLBACK;")?;
        Ok(())
    };
    match probe() {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
        {
            Some(format!(
                "{} is open in another process (the app?): stop it",
                path.display()
            ))
        }
        _ => None,
    }
}

/// A process that has a file open.
#[derive(Debug, PartialEq, Eq)]
struct Holder {
    pid: u32,
    /// Its command name (`/proc/<pid>/comm`), empty when unknown.
    command: String,
}

/// The other processes that have the database or one of its -wal/-shm/-journal files open: read
/// from `/proc/<pid>/fd` where there is a `/proc` (Linux), else asked of `lsof` when it is
/// installed. Processes this user may not look into are not seen.
fn holders(path: &Path) -> Vec<Holder> {
    let files: Vec<PathBuf> = std::iter::once(path.to_path_buf())
        .chain(
            crate::fsutil::DB_COMPANIONS
                .iter()
                .map(|s| with_suffix(path, s)),
        )
        .filter(|f| f.exists())
        .collect();
    if Path::new("/proc/self/fd").is_dir() {
        proc_holders(&files)
    } else {
        lsof_holders(&files)
    }
}

fn proc_holders(files: &[PathBuf]) -> Vec<Holder> {
    let mut inodes = HashSet::new();
    let mut names: HashSet<OsString> = HashSet::new();
    for file in files {
        if let Ok(meta) = fs::metadata(file) {
            inodes.insert((meta.dev(), meta.ino()));
        }
        // The name a descriptor's link shows is the resolved one (a linked database shows its
        // target's).
        if let Some(name) = fs::canonicalize(file)
            .ok()
            .and_then(|p| p.file_name().map(OsString::from))
        {
            names.insert(name);
        }
    }
    let me = std::process::id();
    let Ok(processes) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Another user's process, or one that just ended.
        let Ok(descriptors) = fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = descriptors.flatten().any(|fd| {
            let link = fd.path();
            // Only a descriptor named like one of the files is looked at closer: a stat of every
            // descriptor could hang on a dead network mount. Then (device, inode), which a
            // rename or another path to the same file does not change.
            fs::read_link(&link)
                .is_ok_and(|target| target.file_name().is_some_and(|n| names.contains(n)))
                && fs::metadata(&link).is_ok_and(|m| inodes.contains(&(m.dev(), m.ino())))
        });
        if holds {
            let command = fs::read_to_string(process.path().join("comm"))
                .map(|c| c.trim_end().to_string())
                .unwrap_or_default();
            found.push(Holder { pid, command });
        }
    }
    found
}

/// `lsof -F pc`, where there is no `/proc`: nothing is known when lsof is not installed.
fn lsof_holders(files: &[PathBuf]) -> Vec<Holder> {
    if files.is_empty() {
        return Vec::new();
    }
    let Ok(out) = std::process::Command::new("lsof")
        .args(["-F", "pc", "--"])
        .args(files)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    parse_lsof(&String::from_utf8_lossy(&out.stdout), std::process::id())
}

/// lsof's field output: a `p<pid>` line starts each process, `c<command>` names it; other
/// fields (the files) are ignored.
fn parse_lsof(text: &str, me: u32) -> Vec<Holder> {
    let mut found: Vec<Holder> = Vec::new();
    for line in text.lines() {
        if let Some(pid) = line.strip_prefix('p').and_then(|p| p.parse().ok()) {
            found.push(Holder {
                pid,
                command: String::new(),
            });
        } else if let (Some(command), Some(last)) = (line.strip_prefix('c'), found.last_mut()) {
            last.command = command.to_string();
        }
    }
    found.retain(|h| h.pid != me);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsof_field_output_names_each_other_process() {
        let text = "p4242\ncpython3\nf5\nf7\np77\ncbackup\nf3\np9\n";
        assert_eq!(
            parse_lsof(text, 77),
            vec![
                Holder {
                    pid: 4242,
                    command: "python3".into()
                },
                Holder {
                    pid: 9,
                    command: String::new()
                }
            ]
        );
    }
}
