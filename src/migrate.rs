//! Migration ladders: folders of `NNNN_description.sql` files, applied forward one transaction per
//! step, each step setting `PRAGMA user_version` to its number.

use std::path::Path;

use rusqlite::Connection;

use crate::error::{Error, Result};

/// One step of a ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: String,
    pub sql: String,
}

/// A complete ladder, steps `1..=latest` in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ladder {
    steps: Vec<Migration>,
}

/// The sample app's ladder, built into the binary so `backup demo` works from any folder.
const SAMPLE_APP: [(&str, &str); 3] = [
    (
        "0001_create_tasks_and_tags.sql",
        include_str!("../migrations/tasks/0001_create_tasks_and_tags.sql"),
    ),
    (
        "0002_add_task_history.sql",
        include_str!("../migrations/tasks/0002_add_task_history.sql"),
    ),
    (
        "0003_add_messages.sql",
        include_str!("../migrations/tasks/0003_add_messages.sql"),
    ),
];

impl Ladder {
    /// Reads a ladder folder.
    ///
    /// # Errors
    /// When the folder cannot be read, a `.sql` file is misnamed, or the numbers have gaps.
    pub fn from_dir(dir: &Path) -> Result<Ladder> {
        let bad = |msg: String| Error::Migration(format!("migrations {}: {msg}", dir.display()));
        let entries = std::fs::read_dir(dir).map_err(|e| bad(format!("cannot read ({e})")))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| bad(e.to_string()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".sql") {
                let sql = std::fs::read_to_string(entry.path())
                    .map_err(|e| bad(format!("cannot read {name} ({e})")))?;
                files.push((name, sql));
            }
        }
        Ladder::from_files(files).map_err(bad)
    }

    /// The sample task-tracker app's ladder (`migrations/tasks`).
    pub fn sample_app() -> Ladder {
        Ladder::from_files(
            SAMPLE_APP
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
        )
        .expect("the built-in ladder is well formed")
    }

    fn from_files(files: Vec<(String, String)>) -> std::result::Result<Ladder, String> {
        let mut steps = Vec::new();
        for (name, sql) in files {
            let version = name
                .split_once('_')
                .filter(|(digits, _)| digits.len() == 4)
                .and_then(|(digits, _)| digits.parse::<u32>().ok())
                .ok_or_else(|| format!("{name} is not named NNNN_description.sql"))?;
            steps.push(Migration { version, name, sql });
        }
        steps.sort_by_key(|m| m.version);
        for (i, step) in steps.iter().enumerate() {
            if step.version != i as u32 + 1 {
                return Err(format!(
                    "expected step {:04} but found {}; steps are numbered from 0001 without gaps or repeats",
                    i + 1,
                    step.name
                ));
            }
        }
        Ok(Ladder { steps })
    }

    /// The version the last step reaches (0 for an empty ladder).
    pub fn latest(&self) -> u32 {
        self.steps.last().map_or(0, |m| m.version)
    }

    pub fn steps(&self) -> &[Migration] {
        &self.steps
    }

    /// Applies every step above the database's `user_version`, each in its own transaction;
    /// returns the versions applied.
    ///
    /// # Errors
    /// When a step fails (that step is rolled back; earlier ones stay), or when the database is
    /// already newer than this ladder.
    pub fn apply(&self, conn: &mut Connection) -> Result<Vec<u32>> {
        let sql_error = |step: &Migration, e: rusqlite::Error| {
            Error::Migration(format!("migration {} failed: {e}", step.name))
        };
        let current: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| Error::Migration(format!("cannot read user_version: {e}")))?;
        if current > self.latest() {
            return Err(Error::Migration(format!(
                "database is at schema version {current}, newer than the newest migration known ({})",
                self.latest()
            )));
        }
        let mut applied = Vec::new();
        for step in self.steps.iter().filter(|m| m.version > current) {
            let tx = conn.transaction().map_err(|e| sql_error(step, e))?;
            tx.execute_batch(&step.sql)
                .map_err(|e| sql_error(step, e))?;
            tx.pragma_update(None, "user_version", step.version)
                .map_err(|e| sql_error(step, e))?;
            tx.commit().map_err(|e| sql_error(step, e))?;
            applied.push(step.version);
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_ladder_builds_the_schema_step_by_step() {
        let ladder = Ladder::sample_app();
        assert_eq!(ladder.latest(), 3);
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(ladder.apply(&mut conn).unwrap(), vec![1, 2, 3]);
        assert!(ladder.apply(&mut conn).unwrap().is_empty());
        let tables: u32 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 5);
    }

    #[test]
    fn gaps_and_bad_names_are_refused() {
        let gap = vec![
            ("0001_a.sql".into(), String::new()),
            ("0003_c.sql".into(), String::new()),
        ];
        assert!(Ladder::from_files(gap).unwrap_err().contains("0002"));
        let bad = vec![("1_a.sql".into(), String::new())];
        assert!(Ladder::from_files(bad).is_err());
    }
}
