//! Checks on a staged database: the newer-schema guard, row counts against the manifest,
//! migrations forward, `PRAGMA integrity_check` and `PRAGMA foreign_key_check` (the same checks
//! the snapshot ran on its copy, see [`crate::checks`]): findings the manifest records are
//! accepted, any other refuses. `--force` overrides every check here.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::archive::DatabaseEntry;
use crate::checks::{self, Findings, count_rows};
use crate::error::{Error, Result};
use crate::migrate::Ladder;

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
    /// What the integrity and foreign key checks found, all of it recorded in the manifest (so
    /// accepted) unless [`DatabaseReport::forced`] says otherwise.
    pub findings: Findings,
    /// Checks that failed and were overridden by `--force`, in words.
    pub forced: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TableChange {
    pub table: String,
    pub before: Option<u64>,
    pub after: Option<u64>,
}

fn refuse(name: &str, reason: impl std::fmt::Display) -> Error {
    Error::Check {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// Runs every check on the staged copy at `staged`, migrating it forward with `ladder` when
/// `migrate` (without it the newer-schema guard still runs: the app could not open it).
///
/// # Errors
/// The first finding, naming the database and what was found.
pub fn check_database(
    entry: &DatabaseEntry,
    staged: &Path,
    ladder: Option<&Ladder>,
    migrate: bool,
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
    let mut forced = Vec::new();
    if snapshot_version != entry.user_version {
        let problem = format!(
            "the file is at schema version {snapshot_version} but the manifest says {}; the manifest disagrees with its files",
            entry.user_version
        );
        overridable(name, problem, force, &mut forced)?;
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
    let pending = migrate
        && ladder.is_some_and(|l| !forced_newer_schema && i64::from(l.latest()) > snapshot_version);

    let open = || checks::open_read_only(staged);
    // Findings are compared with the record on the file as it was snapshotted: a migration may
    // rename what a finding names. What a migration adds is then compared with that.
    let (before, found_before) = if pending {
        let counts = count_rows(&conn).map_err(sql)?;
        if let Some(problem) = count_mismatch(&entry.tables, &counts) {
            overridable(name, problem, force, &mut forced)?;
        }
        (Some(counts), Some(checks::run(open)))
    } else {
        (None, None)
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

    // The checks and the counts each read the whole file: side by side.
    let (findings, after) = std::thread::scope(|s| {
        let findings = s.spawn(|| checks::run(open));
        let after = open().and_then(|c| count_rows(&c));
        (findings.join().expect("check thread panicked"), after)
    });
    let recorded = entry.findings.clone().unwrap_or_default();
    let as_snapshotted = found_before.as_ref().unwrap_or(&findings);
    let beyond = as_snapshotted.beyond(&recorded);
    if !beyond.is_empty() {
        let problem = if entry.findings.is_none() {
            format!(
                "the checks found {beyond}; this snapshot was taken before snapshots recorded their check findings, so whether it was like this when it was taken is unknown"
            )
        } else if recorded.is_empty() {
            format!(
                "the checks found {beyond}, but the copy passed them when the snapshot was taken: the archive is damaged"
            )
        } else {
            format!(
                "the checks found {beyond}, beyond what the snapshot recorded ({recorded}): the archive is damaged"
            )
        };
        overridable(name, problem, force, &mut forced)?;
    }
    if let Some(before) = &found_before {
        let added = findings.beyond(before);
        if !added.is_empty() {
            let steps: Vec<String> = migrations_applied
                .iter()
                .map(|v| format!("{v:04}"))
                .collect();
            overridable(
                name,
                format!(
                    "the checks found {added} after {} {}, which the snapshot did not have: a migration breaks it",
                    if steps.len() == 1 {
                        "migration"
                    } else {
                        "migrations"
                    },
                    steps.join(", ")
                ),
                force,
                &mut forced,
            )?;
        }
    }
    let after = after.map_err(sql)?;
    let changed_by_migrations = match &before {
        None => {
            if let Some(problem) = count_mismatch(&entry.tables, &after) {
                overridable(name, problem, force, &mut forced)?;
            }
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
        findings,
        forced,
    })
}

/// A failed check: refused, or with `force` noted in `forced` and let through.
fn overridable(name: &str, problem: String, force: bool, forced: &mut Vec<String>) -> Result<()> {
    if force {
        forced.push(problem);
        Ok(())
    } else {
        Err(refuse(
            name,
            format!("{problem}; `backup restore --force` restores it as it is"),
        ))
    }
}

/// Why `found` disagrees with the manifest's `expected` counts, if it does: every table of the
/// manifest with its exact count, and no table the manifest lacks.
fn count_mismatch(
    expected: &BTreeMap<String, u64>,
    found: &BTreeMap<String, u64>,
) -> Option<String> {
    let change = diff_counts(expected, found).into_iter().next()?;
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
    Some(format!("{text}; the manifest disagrees with its files"))
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
