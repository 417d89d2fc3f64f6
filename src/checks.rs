//! The database checks a snapshot runs on its copy and a restore runs on what it extracted:
//! `PRAGMA integrity_check` and `PRAGMA foreign_key_check`, and the row counts, the same functions
//! on both sides, so the two never disagree about the same bytes.
//!
//! SQLite leaves foreign keys off unless the app turns them on, and accepts schemas whose foreign
//! keys it cannot check, so real app databases often fail these checks while the app works. A
//! snapshot of such a database is still the best copy of what the app has: it is stored with its
//! findings recorded in the manifest, and a restore refuses only findings the manifest does not
//! record (something the transfer or a migration broke).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

/// Lines `PRAGMA integrity_check` returns at most (SQLite's default limit). A record that
/// reached it may have left findings out, so every integrity finding counts as recorded then.
pub const INTEGRITY_LIMIT: usize = 100;
/// Row ids kept as examples for each foreign key with orphans.
const EXAMPLES: usize = 5;

/// What the checks found in one database; empty when it passed both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// `PRAGMA integrity_check` lines other than `ok` (at most [`INTEGRITY_LIMIT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integrity: Vec<String>,
    /// `PRAGMA foreign_key_check`, one entry per child table and parent table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKeyFinding>,
}

/// Rows of `table` whose foreign key names a `parent` row that does not exist, or a foreign
/// key SQLite cannot check at all (`error`, e.g. "foreign key mismatch": the parent key is
/// not unique).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeyFinding {
    pub table: String,
    pub parent: String,
    /// Rows pointing at missing parents.
    #[serde(default)]
    pub rows: u64,
    /// A few of their row ids (none for WITHOUT ROWID tables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<i64>,
    /// Why SQLite could not check this table's foreign keys at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Findings {
    pub fn is_empty(&self) -> bool {
        self.integrity.is_empty() && self.foreign_keys.is_empty()
    }

    /// How many findings, counting each orphan row: what `list` shows.
    pub fn count(&self) -> u64 {
        self.integrity.len() as u64
            + self
                .foreign_keys
                .iter()
                .map(|f| if f.error.is_some() { 1 } else { f.rows })
                .sum::<u64>()
    }

    /// What `self` (found now) holds beyond `recorded` (found when the snapshot was taken):
    /// integrity lines the record lacks (unless it reached the limit), and foreign keys with
    /// more orphans than recorded, or an error the record lacks.
    pub fn beyond(&self, recorded: &Findings) -> Findings {
        let integrity = if recorded.integrity.len() >= INTEGRITY_LIMIT {
            Vec::new()
        } else {
            self.integrity
                .iter()
                .filter(|line| !recorded.integrity.contains(line))
                .cloned()
                .collect()
        };
        let foreign_keys = self
            .foreign_keys
            .iter()
            .filter(|found| {
                !recorded.foreign_keys.iter().any(|r| {
                    r.table == found.table
                        && r.parent == found.parent
                        && r.rows >= found.rows
                        && (found.error.is_none() || r.error.is_some())
                })
            })
            .cloned()
            .collect();
        Findings {
            integrity,
            foreign_keys,
        }
    }
}

impl fmt::Display for ForeignKeyFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(error) if self.table.is_empty() => f.write_str(error),
            Some(error) => write!(
                f,
                "the foreign key of `{}` on `{}` cannot be checked ({error})",
                self.table, self.parent
            ),
            None => {
                write!(
                    f,
                    "{} {} of `{}` {} at missing `{}` rows",
                    self.rows,
                    // Spelled out here: this module imports nothing from the crate.
                    if self.rows == 1 { "row" } else { "rows" },
                    self.table,
                    if self.rows == 1 { "points" } else { "point" },
                    self.parent
                )?;
                if !self.examples.is_empty() {
                    let ids: Vec<String> = self.examples.iter().map(i64::to_string).collect();
                    write!(f, " (rowid {})", ids.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Findings {
    /// One line: the first few findings of each check.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.integrity.is_empty() {
            let shown: Vec<&str> = self.integrity.iter().take(3).map(String::as_str).collect();
            let more = self.integrity.len() - shown.len();
            parts.push(format!(
                "integrity_check: {}{}",
                shown.join("; "),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            ));
        }
        if !self.foreign_keys.is_empty() {
            let shown: Vec<String> = self
                .foreign_keys
                .iter()
                .take(3)
                .map(ToString::to_string)
                .collect();
            let more = self.foreign_keys.len() - shown.len();
            parts.push(format!(
                "foreign_key_check: {}{}",
                shown.join("; "),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Opens a database file read-only, for checking.
///
/// # Errors
/// When SQLite cannot open it.
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// `PRAGMA integrity_check`: the lines other than `ok`.
///
/// # Errors
/// When SQLite cannot read the file at all.
pub fn integrity(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    // A row may hold several lines (the b-tree checks report under a "*** in database main ***"
    // heading): one finding per line, so every message stays on one line.
    Ok(rows
        .iter()
        .flat_map(|row| row.lines())
        .map(str::trim)
        .filter(|line| !line.is_empty() && *line != "ok" && !line.starts_with("*** in database"))
        .map(str::to_string)
        .collect())
}

/// `PRAGMA foreign_key_check` on the file at `path`, table by table, so a foreign key SQLite
/// cannot check (it errors the whole pragma) is one finding and the other tables are still
/// checked.
///
/// # Errors
/// When SQLite cannot read the schema.
pub fn foreign_keys(conn: &Connection) -> rusqlite::Result<Vec<ForeignKeyFinding>> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT DISTINCT m.name FROM sqlite_schema AS m, pragma_foreign_key_list(m.name) AS f \
             WHERE m.type = 'table' ORDER BY m.name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut found: BTreeMap<(String, String), ForeignKeyFinding> = BTreeMap::new();
    for table in tables {
        let sql = format!(
            "PRAGMA foreign_key_check(\"{}\")",
            table.replace('"', "\"\"")
        );
        let checked = conn.prepare(&sql).and_then(|mut stmt| {
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let rowid: Option<i64> = row.get(1)?;
                let parent: String = row.get(2)?;
                let entry = found
                    .entry((table.clone(), parent.clone()))
                    .or_insert_with(|| ForeignKeyFinding {
                        table: table.clone(),
                        parent,
                        rows: 0,
                        examples: Vec::new(),
                        error: None,
                    });
                entry.rows += 1;
                if let Some(id) = rowid
                    && entry.examples.len() < EXAMPLES
                {
                    entry.examples.push(id);
                }
            }
            Ok(())
        });
        if let Err(e) = checked {
            // "foreign key mismatch - "child" referencing "parent"": the schema names a parent
            // key SQLite cannot look rows up by. Corruption errors are the integrity check's.
            let message = e.to_string();
            if !message.contains("foreign key mismatch") {
                return Err(e);
            }
            let parent = parent_named_in(&message).unwrap_or_else(|| "?".to_string());
            found.insert(
                (table.clone(), parent.clone()),
                ForeignKeyFinding {
                    table: table.clone(),
                    parent,
                    rows: 0,
                    examples: Vec::new(),
                    error: Some(message),
                },
            );
        }
    }
    Ok(found.into_values().collect())
}

/// The parent table in SQLite's `foreign key mismatch - "child" referencing "parent"`.
fn parent_named_in(message: &str) -> Option<String> {
    let rest = message.split(" referencing ").nth(1)?;
    Some(rest.trim().trim_matches('"').to_string())
}

/// Both checks, side by side on connections from `open` (each reads the whole file): what a
/// snapshot runs on its copy and a restore on what it extracted. A check SQLite cannot finish
/// (a file too damaged to read through) is a finding too, the same on both sides.
pub fn run(open: impl Fn() -> rusqlite::Result<Connection> + Sync) -> Findings {
    let (integrity, foreign_keys) = std::thread::scope(|s| {
        let integrity = s.spawn(|| integrity(&open()?));
        let foreign_keys = open().and_then(|conn| foreign_keys(&conn));
        (
            integrity.join().expect("check thread panicked"),
            foreign_keys,
        )
    });
    Findings {
        integrity: integrity.unwrap_or_else(|e| vec![format!("integrity_check stopped: {e}")]),
        foreign_keys: foreign_keys.unwrap_or_else(|e| {
            vec![ForeignKeyFinding {
                table: String::new(),
                parent: String::new(),
                rows: 0,
                examples: Vec::new(),
                error: Some(format!("foreign_key_check stopped: {e}")),
            }]
        }),
    }
}

/// Row count of every ordinary table (virtual tables may need modules this build lacks).
pub fn count_rows(conn: &Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn orphans(rows: u64) -> ForeignKeyFinding {
        ForeignKeyFinding {
            table: "comments".into(),
            parent: "tasks".into(),
            rows,
            examples: vec![7],
            error: None,
        }
    }

    #[test]
    fn only_what_the_record_lacks_is_beyond_it() {
        let recorded = Findings {
            integrity: vec!["row 3 missing from index i".into()],
            foreign_keys: vec![orphans(2)],
        };
        assert!(recorded.beyond(&recorded).is_empty());
        let fewer = Findings {
            integrity: Vec::new(),
            foreign_keys: vec![orphans(1)],
        };
        assert!(fewer.beyond(&recorded).is_empty());
        let more = Findings {
            integrity: vec![
                "row 3 missing from index i".into(),
                "row 9 missing from index i".into(),
            ],
            foreign_keys: vec![orphans(3)],
        };
        let beyond = more.beyond(&recorded);
        assert_eq!(beyond.integrity, vec!["row 9 missing from index i"]);
        assert_eq!(beyond.foreign_keys, vec![orphans(3)]);
        // Nothing recorded (an older manifest, or a clean snapshot): everything is beyond.
        assert_eq!(more.beyond(&Findings::default()), more);
    }

    #[test]
    fn a_record_at_the_limit_covers_every_integrity_line() {
        let recorded = Findings {
            integrity: (0..INTEGRITY_LIMIT).map(|i| format!("line {i}")).collect(),
            foreign_keys: Vec::new(),
        };
        let found = Findings {
            integrity: vec!["line 500".into()],
            foreign_keys: Vec::new(),
        };
        assert!(found.beyond(&recorded).is_empty());
    }

    #[test]
    fn the_parent_is_read_from_sqlites_mismatch_message() {
        assert_eq!(
            parent_named_in("foreign key mismatch - \"comments\" referencing \"tasks\"").as_deref(),
            Some("tasks")
        );
    }
}
