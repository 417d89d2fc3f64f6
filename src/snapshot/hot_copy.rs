//! A consistent copy of a live database through SQLite's online backup API, and the facts the
//! manifest records about that copy.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::checks::{self, Findings};
use crate::config::DatabaseConfig;
use crate::error::{Error, Result};

/// How long to keep retrying while the source is busy or locked before giving up.
const BUSY_BUDGET: Duration = Duration::from_secs(120);
const FIRST_BUSY_DELAY: Duration = Duration::from_millis(25);
const MAX_BUSY_DELAY: Duration = Duration::from_secs(2);
/// SQLite's own wait per attempt; longer waits are ours, with backoff, inside [`BUSY_BUDGET`].
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Facts about a copy, read from the copy.
pub(crate) struct CopyFacts {
    pub user_version: i64,
    pub page_size: u64,
    pub tables: BTreeMap<String, u64>,
    /// What the restore checks find in the copy (recorded, not refused: see [`crate::checks`]).
    pub findings: Findings,
}

pub(crate) fn db_error(db: &DatabaseConfig, reason: impl Into<String>) -> Error {
    Error::Database {
        name: db.name.clone(),
        path: db.path.clone(),
        reason: reason.into(),
    }
}

/// The error for a database file that cannot be found or read.
pub(crate) fn unreadable(db: &DatabaseConfig, e: &std::io::Error) -> Error {
    db_error(
        db,
        format!("cannot read it ({e}); check `path` in the config, or remove the entry"),
    )
}

/// Why a busy retry loop ended without a result.
enum Stalled {
    Failed(rusqlite::Error),
    OutOfTime,
}

/// Runs `attempt` until it returns `Some`, retrying with exponential backoff while SQLite says
/// BUSY/LOCKED (an error with that code, or `None`), for at most [`BUSY_BUDGET`].
fn retry_busy<T>(mut attempt: impl FnMut() -> rusqlite::Result<Option<T>>) -> Result<T, Stalled> {
    let started = Instant::now();
    let mut delay = FIRST_BUSY_DELAY;
    loop {
        match attempt() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {}
            Err(e) => return Err(Stalled::Failed(e)),
        }
        crate::failpoint::hit("database-busy");
        if started.elapsed() >= BUSY_BUDGET {
            return Err(Stalled::OutOfTime);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(MAX_BUSY_DELAY);
    }
}

fn stalled(db: &DatabaseConfig, doing: &str, stalled: Stalled) -> Error {
    match stalled {
        Stalled::Failed(e) => db_error(db, format!("{doing}: {e}")),
        Stalled::OutOfTime => db_error(
            db,
            format!(
                "{doing}: it stayed locked by another process for {}s; retry when the app is idle",
                BUSY_BUDGET.as_secs()
            ),
        ),
    }
}

/// Copies the live database `db` to `dest` in one backup step; returns its journal mode and the
/// time the copy was taken (read just before the step that made it).
///
/// One `step(-1)` copies every page inside a single read transaction: WAL writers carry on, and
/// the copy is one point in time. (Small steps restart whenever a writer commits, which under a
/// busy writer never ends.) BUSY/LOCKED are retried with backoff.
///
/// The live file is only read: the connection opens without CREATE and never checkpoints on
/// close (SQLite's default would fold the WAL into the database when ours is the last
/// connection).
pub(crate) fn copy_database(db: &DatabaseConfig, dest: &Path) -> Result<(String, DateTime<Utc>)> {
    let source = open_source(db)?;
    let journal_mode: String = retry_busy(|| {
        source
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .map(Some)
    })
    .map_err(|e| stalled(db, "cannot read it as a SQLite database", e))?;

    let mut copy =
        Connection::open(dest).map_err(|e| db_error(db, format!("cannot create the copy: {e}")))?;
    // The copy only lives until it is packed, and the archive is fsynced: no need to sync it.
    copy.pragma_update(None, "synchronous", "OFF")
        .map_err(|e| db_error(db, e.to_string()))?;
    let mut copied_at = crate::clock::now();
    retry_busy(|| {
        // The step's read transaction starts after this: what was committed before is in the
        // copy. Read again on every attempt, since only the last one counts.
        copied_at = crate::clock::now();
        let backup = Backup::new(&source, &mut copy)?;
        // Busy/Locked, or `More` (not expected with -1): start over within the budget.
        Ok(matches!(backup.step(-1)?, StepResult::Done).then_some(()))
    })
    .map_err(|e| stalled(db, "online backup failed", e))?;
    Ok((journal_mode, copied_at))
}

/// What `backup doctor` needs to know of a live database: its schema version and how many
/// tables it has, read the way a snapshot reads it.
pub(crate) fn probe_database(db: &DatabaseConfig) -> Result<(i64, usize)> {
    let source = open_source(db)?;
    retry_busy(|| {
        let version: i64 = source.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let tables: i64 = source.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        Ok(Some((version, tables as usize)))
    })
    .map_err(|e| stalled(db, "cannot read it as a SQLite database", e))
}

/// What `backup diff --live` compares of a live database: its schema version and the row count
/// of every table, read in one read transaction so the counts agree with each other. `None` when
/// the file does not exist.
///
/// Opened read-only first. SQLite refuses that for a WAL database whose `-shm` file does not
/// exist yet (no app has it open); then it is read the way a snapshot reads it ([`open_source`]:
/// no create, no checkpoint on close), which changes nothing in the database either.
pub(crate) fn read_live_counts(
    db: &DatabaseConfig,
) -> Result<Option<(i64, BTreeMap<String, u64>)>> {
    match std::fs::metadata(&db.path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(db, &e)),
        Ok(meta) if !meta.is_file() => {
            return Err(db_error(db, "is not a file; check `path` in the config"));
        }
        Ok(_) => {}
    }
    let read = |conn: &Connection| {
        retry_busy(|| {
            let tx = conn.unchecked_transaction()?;
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let tables = checks::count_rows(&tx)?;
            tx.finish()?;
            Ok(Some((version, tables)))
        })
    };
    let read_only = Connection::open_with_flags(
        &db.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|conn| conn.busy_timeout(SQLITE_BUSY_TIMEOUT).map(|()| conn));
    if let Ok(conn) = read_only {
        match read(&conn) {
            Ok(found) => return Ok(Some(found)),
            Err(Stalled::OutOfTime) => {
                return Err(stalled(db, "cannot read it", Stalled::OutOfTime));
            }
            Err(Stalled::Failed(_)) => {}
        }
    }
    let source = open_source(db)?;
    read(&source)
        .map(Some)
        .map_err(|e| stalled(db, "cannot read it as a SQLite database", e))
}

/// Opens a live database for reading without ever changing it.
fn open_source(db: &DatabaseConfig) -> Result<Connection> {
    let meta = std::fs::metadata(&db.path).map_err(|e| unreadable(db, &e))?;
    if !meta.is_file() {
        return Err(db_error(db, "is not a file; check `path` in the config"));
    }
    // SQLite opens an empty file as an empty database: a mistyped path or a file the app has not
    // written yet would be stored as a database with no tables. A WAL database whose main file is
    // still empty keeps its pages in the -wal file, so only a lone empty file is refused.
    if meta.len() == 0 && !has_content(&wal_path(&db.path)) {
        return Err(db_error(
            db,
            "is an empty file (0 bytes), not a database: check that `path` points at the app's database, and that the app has written it",
        ));
    }
    // Read-write (without CREATE) lets a WAL database be read even when its -shm file does not
    // exist yet; read-only is the fallback for files we may not write.
    let source = [
        OpenFlags::SQLITE_OPEN_READ_WRITE,
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    ]
    .into_iter()
    .find_map(|mode| {
        Connection::open_with_flags(&db.path, mode | OpenFlags::SQLITE_OPEN_NO_MUTEX).ok()
    })
    .ok_or_else(|| db_error(db, "cannot open it with SQLite; check its permissions"))?;
    source
        .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .and_then(|_| source.busy_timeout(SQLITE_BUSY_TIMEOUT))
        .map_err(|e| db_error(db, e.to_string()))?;
    Ok(source)
}

/// The `-wal` file SQLite keeps beside a database in WAL mode.
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

fn has_content(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// Runs on a copy the checks a restore runs ([`checks::run`]), and reads the facts the manifest
/// records: schema version, page size, row counts; side by side, each on its own connection.
///
/// The copy is opened immutable and read-only, so the checks leave no -wal/-shm files.
pub(crate) fn inspect_copy(db: &DatabaseConfig, copy_path: &Path) -> Result<CopyFacts> {
    let open = || {
        Connection::open_with_flags(
            immutable_uri(copy_path),
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    };
    let fail = |e: rusqlite::Error| db_error(db, format!("checking the copy: {e}"));
    // The restore's own checks (one function for both sides), beside the facts.
    let (findings, facts) = std::thread::scope(|s| {
        let findings = s.spawn(|| checks::run(open));
        let facts = open().and_then(|conn| {
            let user_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let tables = crate::checks::count_rows(&conn)?;
            Ok((user_version, page_size, tables))
        });
        (findings.join().expect("check thread panicked"), facts)
    });
    let (user_version, page_size, tables) = facts.map_err(fail)?;
    Ok(CopyFacts {
        user_version,
        page_size: page_size as u64,
        tables,
        findings,
    })
}

/// `file:<path>?immutable=1`, every byte outside a safe set percent-encoded, so any path (also
/// one that is not UTF-8) reaches SQLite unchanged.
fn immutable_uri(path: &Path) -> OsString {
    let mut uri = b"file:".to_vec();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b);
        } else {
            uri.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    uri.extend_from_slice(b"?immutable=1");
    OsString::from_vec(uri)
}
