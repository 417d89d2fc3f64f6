//! The live data a restore would set aside: what it holds compared with the snapshot, and whether
//! an app has it open right now.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde::Serialize;

use super::stage::{DatabaseReport, count_rows};

/// A live database as found before a restore.
#[derive(Clone, Debug, Serialize)]
pub struct LiveDatabase {
    pub name: String,
    pub path: PathBuf,
    pub exists: bool,
    pub user_version: Option<i64>,
    pub tables: BTreeMap<String, u64>,
    /// Newest modification time of the file and its WAL.
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
        modified: [modified(path), modified(&with_suffix(path, "-wal"))]
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

/// What setting `live` aside would lose compared with the restored `report`, in words; empty when
/// the live database holds nothing the snapshot lacks.
pub fn concerns(
    live: &LiveDatabase,
    report: &DatabaseReport,
    snapshot_time: DateTime<Utc>,
) -> Vec<String> {
    let mut out = Vec::new();
    if !live.exists {
        return out;
    }
    if let Some(reason) = &live.unreadable {
        out.push(format!(
            "live `{}` cannot be read ({reason}); it will be set aside as it is",
            live.name
        ));
        return out;
    }
    if let Some(version) = live.user_version
        && version > report.restored_version
    {
        out.push(format!(
            "live `{}` is at schema version {version}, the restored copy at {}",
            live.name, report.restored_version
        ));
    }
    for (table, &rows) in &live.tables {
        let restored = report.tables.get(table).copied().unwrap_or(0);
        if rows > restored {
            out.push(format!(
                "live `{}` table `{table}` has {rows} rows, the snapshot {restored}",
                live.name
            ));
        }
    }
    if let Some(changed) = live.modified
        && changed > snapshot_time
    {
        out.push(format!(
            "live `{}` changed at {}, after the snapshot was taken ({})",
            live.name,
            changed.format("%Y-%m-%d %H:%M:%SZ"),
            snapshot_time.format("%Y-%m-%d %H:%M:%SZ")
        ));
    }
    out
}

/// Why the database cannot be swapped now, if it cannot: another process has it open (WAL
/// mode) or locked, tried without waiting (an exclusive lock is refused while any other
/// connection holds the WAL index or a lock); or it has a hot journal that only opening it (and
/// so changing it) would resolve.
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
