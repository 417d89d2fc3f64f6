//! Checks on a staged database: the newer-schema guard, row counts against the manifest,
//! migrations forward, `PRAGMA integrity_check` and `PRAGMA foreign_key_check`.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::migrate::Ladder;
use crate::snapshot::DatabaseEntry;

/// What the checks found for one database, all of it passed.
#[derive(Clone, Debug, Serialize)]
pub struct DatabaseReport {
    pub name: String,
    /// `user_version` in the snapshot.
    pub snapshot_version: i64,
    /// `user_version` after migrations.
    pub restored_version: i64,
    /// Newest version the configured migration ladder knows (`None`: no ladder configured).
    pub newest_known: Option<u32>,
    /// Migration steps applied during this restore.
    pub migrations_applied: Vec<u32>,
    /// The snapshot is newer than the ladder and `--force` restored it unmigrated.
    pub forced_newer_schema: bool,
    /// Row count of every table after migrations.
    pub tables: BTreeMap<String, u64>,
    /// Tables whose row count a migration of this restore changed (or created, or dropped).
    pub changed_by_migrations: Vec<TableChange>,
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TableChange {
    pub table: String,
    pub before: Option<u64>,
    pub after: Option<u64>,
}

fn refuse(name: &str, reason: impl std::fmt::Display) -> Error {
    Error::Other(format!("database `{name}` in the snapshot: {reason}"))
}

/// Runs every check on the staged copy at `staged`, migrating it forward with `ladder`.
///
/// # Errors
/// The first finding, naming the database and what was found.
pub fn check_database(
    entry: &DatabaseEntry,
    staged: &Path,
    ladder: Option<&Ladder>,
    force: bool,
) -> Result<DatabaseReport> {
    let name = entry.name.as_str();
    let sql = |e: rusqlite::Error| refuse(name, format!("cannot be read by SQLite ({e})"));
    let mut conn = Connection::open_with_flags(
        staged,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    let snapshot_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    if snapshot_version != entry.user_version {
        return Err(refuse(
            name,
            format!(
                "the file is at schema version {snapshot_version} but the manifest says {}; the manifest disagrees with its files",
                entry.user_version
            ),
        ));
    }
    let newest_known = ladder.map(Ladder::latest);
    let mut forced_newer_schema = false;
    if let Some(newest) = newest_known
        && snapshot_version > i64::from(newest)
    {
        if !force {
            return Err(refuse(
                name,
                format!(
                    "its schema version {snapshot_version} is newer than the newest migration known ({newest}); update the app and its migrations first, or pass --force to restore it unmigrated"
                ),
            ));
        }
        forced_newer_schema = true;
    }
    let pending =
        ladder.is_some_and(|l| !forced_newer_schema && i64::from(l.latest()) > snapshot_version);

    let before = if pending {
        let counts = count_rows(&conn).map_err(sql)?;
        compare_counts(name, &entry.tables, &counts)?;
        Some(counts)
    } else {
        None
    };
    let migrations_applied = match ladder {
        Some(ladder) if pending => ladder.apply(&mut conn).map_err(|e| {
            refuse(
                name,
                format!("{e}; the snapshot cannot be brought to the current schema"),
            )
        })?,
        _ => Vec::new(),
    };
    let restored_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql)?;
    drop(conn);

    // The two checks and the counts each read the whole file: run them side by side.
    let (integrity, foreign, after) = std::thread::scope(|s| {
        let integrity = s.spawn(|| single_column(staged, "PRAGMA integrity_check"));
        let foreign = s.spawn(|| foreign_key_findings(staged));
        let after = read_only(staged).and_then(|c| count_rows(&c));
        (
            integrity.join().expect("check thread panicked"),
            foreign.join().expect("check thread panicked"),
            after,
        )
    });
    let integrity = integrity.map_err(sql)?;
    if integrity != ["ok"] {
        return Err(refuse(
            name,
            format!(
                "PRAGMA integrity_check found: {}",
                integrity.into_iter().take(5).collect::<Vec<_>>().join("; ")
            ),
        ));
    }
    let foreign = foreign.map_err(sql)?;
    if !foreign.is_empty() {
        return Err(refuse(
            name,
            format!(
                "PRAGMA foreign_key_check found {} row(s) pointing at missing parents, e.g. {}",
                foreign.len(),
                foreign.into_iter().take(3).collect::<Vec<_>>().join("; ")
            ),
        ));
    }
    let after = after.map_err(sql)?;
    let changed_by_migrations = match &before {
        None => {
            compare_counts(name, &entry.tables, &after)?;
            Vec::new()
        }
        Some(before) => diff_counts(before, &after),
    };
    restore_journal_mode(staged, &entry.journal_mode).map_err(sql)?;
    let size = std::fs::metadata(staged)
        .map_err(|e| Error::io("cannot read", staged, e))?
        .len();
    Ok(DatabaseReport {
        name: name.to_string(),
        snapshot_version,
        restored_version,
        newest_known,
        migrations_applied,
        forced_newer_schema,
        tables: after,
        changed_by_migrations,
        size,
    })
}

fn read_only(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

fn single_column(path: &Path, sql: &str) -> rusqlite::Result<Vec<String>> {
    let conn = read_only(path)?;
    let mut stmt = conn.prepare(sql)?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

fn foreign_key_findings(path: &Path) -> rusqlite::Result<Vec<String>> {
    let conn = read_only(path)?;
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    stmt.query_map([], |r| {
        let table: String = r.get(0)?;
        let rowid: Option<i64> = r.get(1)?;
        let parent: String = r.get(2)?;
        Ok(match rowid {
            Some(id) => format!("{table} row {id} -> {parent}"),
            None => format!("{table} -> {parent}"),
        })
    })?
    .collect()
}

/// Row count of every ordinary table (virtual tables may need modules this build lacks).
pub(crate) fn count_rows(conn: &Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut counts = BTreeMap::new();
    for name in names {
        let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
        let count: i64 = conn.query_row(&sql, [], |r| r.get(0))?;
        counts.insert(name, count as u64);
    }
    Ok(counts)
}

/// Every table of the manifest with its exact count, and no table the manifest lacks.
fn compare_counts(
    name: &str,
    expected: &BTreeMap<String, u64>,
    found: &BTreeMap<String, u64>,
) -> Result<()> {
    let Some(change) = diff_counts(expected, found).into_iter().next() else {
        return Ok(());
    };
    let text = match (change.before, change.after) {
        (Some(want), Some(have)) => format!(
            "table `{}` holds {have} rows but the manifest says {want}",
            change.table
        ),
        (Some(want), None) => format!(
            "table `{}` ({want} rows in the manifest) is missing",
            change.table
        ),
        (None, _) => format!("table `{}` is not in the manifest", change.table),
    };
    Err(refuse(
        name,
        format!("{text}; the manifest disagrees with its files"),
    ))
}

fn diff_counts(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<TableChange> {
    let tables: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    tables
        .into_iter()
        .filter_map(|t| {
            let (b, a) = (before.get(t).copied(), after.get(t).copied());
            (b != a).then(|| TableChange {
                table: t.clone(),
                before: b,
                after: a,
            })
        })
        .collect()
}

/// The live database's journal mode goes back with it (a WAL app expects a WAL file). Closing
/// the last connection checkpoints and removes the -wal file, so none is left beside the copy.
fn restore_journal_mode(path: &Path, journal_mode: &str) -> rusqlite::Result<()> {
    let mode = if journal_mode.eq_ignore_ascii_case("wal") {
        "WAL"
    } else {
        "DELETE"
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |_| Ok(()))?;
    conn.close().map_err(|(_, e)| e)
}
