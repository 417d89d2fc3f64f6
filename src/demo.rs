//! The embedded default behind `backup demo`: a sample task-tracker app with a WAL database, a
//! queue folder, a config and a directory remote, all inside one folder, so a newcomer can see the
//! whole job work without a GitHub account or data of their own.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use crate::error::{Error, IoContext, Result};
use crate::migrate::Ladder;

const CONFIG: &str = r#"# Sample config written by `backup demo`. Paths are relative to this file's folder.
[[database]]
name = "tasks"
path = ".data/db/tasks.db"
migrations = "migrations/tasks"

[[include]]
path = ".data/queue"

[local]
dir = ".data/backups"

[remote]
type = "dir"
path = "../remote"
"#;

/// Marks a folder as the demo's own: `backup demo` writes only into an empty folder or one that
/// has this file, never over a user's files.
const MARKER: &str = ".backup-demo";

const STATUSES: [&str; 6] = ["todo", "doing", "blocked", "review", "done", "cancelled"];
const WORDS: [&str; 24] = [
    "fix",
    "deploy",
    "review",
    "backup",
    "restore",
    "schema",
    "queue",
    "worker",
    "retry",
    "token",
    "release",
    "index",
    "query",
    "cache",
    "report",
    "agent",
    "sync",
    "config",
    "alert",
    "log",
    "migration",
    "snapshot",
    "task",
    "plan",
];

/// Creates (or refreshes) the demo app under `dir` and returns its config file.
///
/// A first call builds the sample database through the sample app's migration ladder; later calls
/// add a little activity, as a running app would, so each snapshot differs.
///
/// # Errors
/// When the folder or the database cannot be written.
pub fn prepare(dir: &Path) -> Result<PathBuf> {
    let marker = dir.join(MARKER);
    let foreign = dir
        .read_dir()
        .is_ok_and(|mut entries| entries.next().is_some())
        && !marker.exists();
    if foreign {
        return Err(Error::Refused(format!(
            "{} exists and was not made by `backup demo`; nothing was changed: pass --dir with a new folder",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).at("cannot create demo folder", dir)?;
    fs::write(
        &marker,
        "made by `backup demo`; safe to delete with this folder\n",
    )
    .at("cannot write", &marker)?;
    let app = dir.join("app");
    let db_dir = app.join(".data/db");
    let queue = app.join(".data/queue");
    let ladder_dir = app.join("migrations/tasks");
    for folder in [&db_dir, &queue, &ladder_dir, &dir.join("remote")] {
        fs::create_dir_all(folder).at("cannot create demo folder", folder)?;
    }
    let ladder = Ladder::sample_app();
    for step in ladder.steps() {
        let path = ladder_dir.join(&step.name);
        fs::write(&path, &step.sql).at("cannot write", &path)?;
    }
    let config = app.join("backup.toml");
    fs::write(&config, CONFIG).at("cannot write", &config)?;

    let db_path = db_dir.join("tasks.db");
    let fresh = !db_path.exists();
    let mut conn = Connection::open(&db_path).map_err(|e| demo_error(&db_path, e))?;
    conn.pragma_update(None, "journal_mode", "wal")
        .map_err(|e| demo_error(&db_path, e))?;
    ladder.apply(&mut conn)?;
    let (tasks, messages) = if fresh { (300, 900) } else { (5, 15) };
    add_activity(&mut conn, tasks, messages).map_err(|e| demo_error(&db_path, e))?;

    let next: i64 = conn
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .map_err(|e| demo_error(&db_path, e))?;
    let job = queue.join(format!("job-{next:06}.json"));
    fs::write(
        &job,
        format!("{{\"kind\":\"reindex\",\"after_task\":{next}}}\n"),
    )
    .at("cannot write", &job)?;
    Ok(config)
}

fn demo_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Demo(format!("demo database {}: {e}", path.display()))
}

/// Adds `tasks` tasks (with tags and history) and `messages` messages, deterministically from the
/// current row counts.
fn add_activity(conn: &mut Connection, tasks: u64, messages: u64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let base: i64 = tx.query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))?;
    let base = base as u64;
    let mut rng = Lcg(base.wrapping_mul(2654435761).wrapping_add(7));
    for (i, word) in WORDS.iter().enumerate() {
        tx.execute(
            "INSERT OR IGNORE INTO tags (id, name, color, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                i as i64 + 1,
                word,
                format!("#{:06x}", rng.next() & 0xff_ffff),
                "2026-01-01T00:00:00Z"
            ],
        )?;
    }
    for n in base + 1..=base + tasks {
        let when = format!(
            "2026-{:02}-{:02}T{:02}:00:00Z",
            1 + n % 12,
            1 + n % 28,
            n % 24
        );
        tx.execute(
            "INSERT INTO tasks (id, uuid, title, description, status, priority, assignee, created_at, updated_at, metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
            params![
                n as i64,
                format!("{:08x}-{:04x}-4000-8000-{:012x}", rng.next() as u32, n as u16, n),
                format!("{} the {} {}", rng.word(), rng.word(), rng.word()),
                format!("We should {} {} before the {} {}.", rng.word(), rng.word(), rng.word(), rng.word()),
                STATUSES[(rng.next() % 6) as usize],
                (rng.next() % 4) as i64,
                format!("user{}@example.com", rng.next() % 9),
                when,
                format!("{{\"estimate\":{}}}", rng.next() % 13),
            ],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO task_tags (task_id, tag_id) VALUES (?1, ?2)",
            params![n as i64, (rng.next() % WORDS.len() as u64) as i64 + 1],
        )?;
        tx.execute(
            "INSERT INTO task_history (task_id, changed_at, actor, field, old_value, new_value)
             VALUES (?1, ?2, 'agent', 'status', 'todo', 'doing')",
            params![n as i64, when],
        )?;
    }
    let total: u64 = base + tasks;
    for _ in 0..messages {
        tx.execute(
            "INSERT INTO messages (task_id, author, created_at, body) VALUES (?1, ?2, ?3, ?4)",
            params![
                (1 + rng.next() % total) as i64,
                format!("user{}@example.com", rng.next() % 9),
                "2026-06-01T12:00:00Z",
                format!(
                    "Please {} the {} and {} the {} again.",
                    rng.word(),
                    rng.word(),
                    rng.word(),
                    rng.word()
                ),
            ],
        )?;
    }
    tx.commit()
}

/// A tiny deterministic generator: the demo must not depend on randomness to be reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }
}
