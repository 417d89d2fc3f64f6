//! A consistent copy of a live database through SQLite's online backup API, and the facts the
//! manifest records about that copy.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};

/// How long to keep retrying while the source is busy or locked before giving up.
const BUSY_BUDGET: Duration = Duration::from_secs(120);
const FIRST_BUSY_DELAY: Duration = Duration::from_millis(25);
const MAX_BUSY_DELAY: Duration = Duration::from_secs(2);

/// Facts about a copy, read from the copy.
pub(crate) struct CopyFacts {
    pub user_version: i64,
    pub page_size: u64,
    pub tables: BTreeMap<String, u64>,
}

fn db_error(db: &DatabaseConfig, reason: impl Into<String>) -> Error {
    Error::Database {
        name: db.name.clone(),
        path: db.path.clone(),
        reason: reason.into(),
    }
}

/// Copies the live database `db` to `dest` in one backup step and returns its journal mode.
///
/// One `step(-1)` copies every page inside a single read transaction: WAL writers carry on, and
/// the copy is one point in time. (Small steps restart whenever a writer commits, which under a
/// busy writer never ends.) BUSY/LOCKED are retried with backoff.
pub(crate) fn copy_database(db: &DatabaseConfig, dest: &Path) -> Result<String> {
    let meta = std::fs::metadata(&db.path).map_err(|e| {
        db_error(
            db,
            format!("cannot read it ({e}); check `path` in the config, or remove the entry"),
        )
    })?;
    if !meta.is_file() {
        return Err(db_error(db, "is not a file; check `path` in the config"));
    }
    // Read-write without CREATE: a missing file is never created, and a WAL database can be read
    // even when its -shm file does not exist yet. Nothing is written.
    let source = Connection::open_with_flags(
        &db.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .or_else(|_| {
        Connection::open_with_flags(
            &db.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    })
    .map_err(|e| db_error(db, format!("cannot open it: {e}")))?;
    source
        .busy_timeout(Duration::from_secs(5))
        .map_err(|e| db_error(db, e.to_string()))?;
    let journal_mode: String =
        with_busy_retry(|| source.query_row("PRAGMA journal_mode", [], |row| row.get(0)))
            .map_err(|e| db_error(db, format!("cannot read it as a SQLite database: {e}")))?;

    let mut copy =
        Connection::open(dest).map_err(|e| db_error(db, format!("cannot create the copy: {e}")))?;
    // The copy only lives until it is packed, and the archive is fsynced: no need to sync it.
    copy.pragma_update(None, "synchronous", "OFF")
        .map_err(|e| db_error(db, e.to_string()))?;
    let started = Instant::now();
    let mut delay = FIRST_BUSY_DELAY;
    loop {
        let backup = Backup::new(&source, &mut copy)
            .map_err(|e| db_error(db, format!("cannot start the online backup: {e}")))?;
        let step = backup.step(-1);
        drop(backup);
        match step {
            Ok(StepResult::Done) => break,
            Ok(StepResult::Busy | StepResult::Locked) if started.elapsed() < BUSY_BUDGET => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(MAX_BUSY_DELAY);
            }
            Ok(StepResult::Busy | StepResult::Locked) => {
                return Err(db_error(
                    db,
                    format!(
                        "stayed locked by another process for {}s; retry when the app is idle",
                        BUSY_BUDGET.as_secs()
                    ),
                ));
            }
            Ok(other) => {
                return Err(db_error(
                    db,
                    format!("online backup stopped early ({other:?})"),
                ));
            }
            Err(e) => {
                return Err(db_error(db, format!("online backup failed: {e}")));
            }
        }
    }
    Ok(journal_mode)
}

/// Runs a statement, retrying while SQLite answers BUSY/LOCKED, within the busy budget.
fn with_busy_retry<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = Instant::now();
    let mut delay = FIRST_BUSY_DELAY;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && started.elapsed() < BUSY_BUDGET =>
            {
                std::thread::sleep(delay);
                delay = (delay * 2).min(MAX_BUSY_DELAY);
            }
            other => return other,
        }
    }
}

/// Checks a copy with `PRAGMA quick_check` and reads the facts the manifest records.
///
/// The copy is opened immutable and read-only, so the check leaves no -wal/-shm files.
pub(crate) fn inspect_copy(db: &DatabaseConfig, copy_path: &Path) -> Result<CopyFacts> {
    let uri = format!(
        "file:{}?immutable=1",
        uri_escape(&copy_path.to_string_lossy())
    );
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| db_error(db, format!("cannot open the copy: {e}")))?;
    let fail = |e: rusqlite::Error| db_error(db, format!("checking the copy: {e}"));

    let mut findings = Vec::new();
    {
        let mut stmt = conn.prepare("PRAGMA quick_check").map_err(fail)?;
        let mut rows = stmt.query([]).map_err(fail)?;
        while let Some(row) = rows.next().map_err(fail)? {
            findings.push(row.get::<_, String>(0).map_err(fail)?);
        }
    }
    if findings != ["ok"] {
        return Err(db_error(
            db,
            format!(
                "the copy fails PRAGMA quick_check ({}); the live database may be damaged, run `sqlite3 {} 'PRAGMA integrity_check'`",
                findings.join("; "),
                db.path.display()
            ),
        ));
    }
    let user_version = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail)?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(fail)?;
    let page_size = page_size as u64;
    let names: Vec<String> = {
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_schema WHERE type = 'table' \
                 AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
            )
            .map_err(fail)?;
        stmt.query_map([], |r| r.get(0))
            .map_err(fail)?
            .collect::<rusqlite::Result<_>>()
            .map_err(fail)?
    };
    let mut tables = BTreeMap::new();
    for name in names {
        let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
        let count: i64 = conn.query_row(&sql, [], |r| r.get(0)).map_err(fail)?;
        tables.insert(name, count as u64);
    }
    Ok(CopyFacts {
        user_version,
        page_size,
        tables,
    })
}

/// Escapes the characters that end or alter a path inside a SQLite URI.
fn uri_escape(path: &str) -> String {
    path.replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23")
}
