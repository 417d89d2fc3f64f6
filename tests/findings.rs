//! Item: every snapshot `now` reports as stored restores. Real app databases fail SQLite's
//! checks in ways the app never notices (foreign keys are off unless the app turns them on):
//! the snapshot records what the checks find, says so everywhere, and a restore accepts what
//! is recorded and refuses only what is new.

use std::fs;
use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

use crate::support::{App, assert_exit_saying, row_counts, stderr, stdout};

/// A database whose checks fail the way real app data does.
#[derive(Clone, Copy, Debug)]
enum Flaw {
    /// A comment whose task was deleted while foreign keys were off.
    OrphanRow,
    /// A foreign key that names a column that is not unique: SQLite accepts the schema, and
    /// `foreign_key_check` errors with "foreign key mismatch".
    ParentKeyNotUnique,
    /// An index that disagrees with its table: `quick_check` passes, `integrity_check` fails.
    StaleIndex,
}

/// An app whose live database `tasks` has `flaw`, with a folder remote.
fn flawed_app(flaw: Flaw) -> App {
    let app = App::new(0);
    let path = app.path("data/tasks.db");
    fs::remove_file(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    // As most apps run: SQLite's own default (this test's SQLite build turns them on).
    conn.pragma_update(None, "foreign_keys", false).unwrap();
    conn.execute_batch(
        "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, owner TEXT);
         CREATE TABLE comments (id INTEGER PRIMARY KEY,
             task_id INTEGER REFERENCES tasks(id), text TEXT);
         CREATE INDEX comments_task ON comments(task_id);
         INSERT INTO tasks (title, owner) VALUES ('a', 'ann'), ('b', 'bob'), ('c', 'cy');
         INSERT INTO comments (task_id, text) VALUES (1, 'x'), (2, 'y'), (3, 'z');
         PRAGMA user_version = 3;",
    )
    .unwrap();
    match flaw {
        Flaw::OrphanRow => conn.execute("DELETE FROM tasks WHERE id = 2", []).map(drop),
        Flaw::ParentKeyNotUnique => conn.execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY,
                 owner TEXT REFERENCES tasks(owner), text TEXT);
             INSERT INTO notes (owner, text) VALUES ('ann', 'n');",
        ),
        Flaw::StaleIndex => {
            // Re-point the index at another column behind SQLite's back: its entries now
            // disagree with the rows, which only integrity_check compares.
            conn.execute_batch(
                "PRAGMA writable_schema = ON;
                 UPDATE sqlite_schema SET sql = 'CREATE INDEX comments_task ON comments(text)'
                     WHERE name = 'comments_task';
                 PRAGMA writable_schema = OFF;",
            )
        }
    }
    .unwrap();
    drop(conn);
    let conn = Connection::open(&path).unwrap();
    let quick: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    if matches!(flaw, Flaw::StaleIndex) {
        assert_eq!(quick, "ok", "the stale index must pass quick_check");
        let full: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_ne!(full, "ok", "the stale index must fail integrity_check");
    }
    app
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

/// The words a finding of `flaw` is reported with.
fn finding_words(flaw: Flaw) -> &'static str {
    match flaw {
        Flaw::OrphanRow => "1 row of `comments` points at missing `tasks` rows",
        Flaw::ParentKeyNotUnique => "foreign key mismatch",
        Flaw::StaleIndex => "integrity_check: ",
    }
}

#[test]
fn a_snapshot_of_flawed_data_is_stored_says_so_everywhere_and_restores() {
    for flaw in [Flaw::OrphanRow, Flaw::ParentKeyNotUnique, Flaw::StaleIndex] {
        let app = flawed_app(flaw);
        let live_rows = row_counts(&app.path("data/tasks.db"));

        // `now`: stored and pushed (exit 0), one warning line on stderr naming the finding.
        let out = app.run(&["now", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{flaw:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{flaw:?}: {err}");
        assert!(err.starts_with("backup: warning: snapshot "), "{err}");
        assert!(err.contains(finding_words(flaw)), "{flaw:?}: {err}");
        let report = json(&out);
        let tag = report["tag"].as_str().unwrap().to_string();
        assert!(
            report["findings"]["tasks"].is_object(),
            "{flaw:?}: {report}"
        );
        assert_eq!(app.archives("remote").len(), 1);

        // last_run.json records them; status warns but stays fresh.
        let record: Value =
            serde_json::from_slice(&fs::read(app.path("backups/last_run.json")).unwrap()).unwrap();
        assert!(record["findings"]["tasks"].is_object(), "{record}");
        assert_eq!(record["ok"], true);
        let out = app.run(&["status"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).contains("warning"), "{}", stdout(&out));
        assert!(stdout(&out).contains("check findings"), "{}", stdout(&out));
        let out = app.run(&["status", "--json"]);
        let status = json(&out);
        assert_eq!(status["warnings"].as_array().unwrap().len(), 1, "{status}");

        // list shows them, in the table and in JSON.
        let listed = app.list_json();
        assert!(listed[0]["findings"].as_u64().unwrap() >= 1, "{listed:?}");
        let out = app.run(&["list"]);
        assert!(stdout(&out).contains(" finding"), "{}", stdout(&out));

        // verify and restore accept what the manifest records, with a note.
        let out = app.run(&["verify", "latest"]);
        assert_eq!(out.status.code(), Some(0), "{flaw:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("note:"), "{}", stdout(&out));
        // A restore on a fresh machine: only the config and the remote.
        fs::remove_dir_all(app.path("backups")).unwrap();
        fs::remove_file(app.path("data/tasks.db")).unwrap();
        for companion in ["-wal", "-shm"] {
            let _ = fs::remove_file(app.path(&format!("data/tasks.db{companion}")));
        }
        let out = app.run(&["restore", &tag, "--yes", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{flaw:?}: {}", stderr(&out));
        let restored = json(&out);
        assert!(
            !restored["databases"][0]["findings"]
                .as_object()
                .unwrap()
                .is_empty(),
            "{restored}"
        );
        assert_eq!(
            row_counts(&app.path("data/tasks.db")),
            live_rows,
            "{flaw:?}"
        );
    }
}

/// Rewrites the manifest of a local archive with `edit`, repacks it and records its new
/// sha256, as if an earlier version had written it that way.
fn rewrite_manifest(archive: &Path, edit: impl Fn(&mut Value)) {
    let mut entries = crate::support::read_archive(archive);
    let mut manifest: Value = serde_json::from_slice(&entries[0].1).unwrap();
    edit(&mut manifest);
    entries[0].1 = serde_json::to_vec_pretty(&manifest).unwrap();
    crate::support::write_archive(archive, &entries);
}

#[test]
fn findings_the_manifest_does_not_record_are_refused_and_force_restores_them() {
    let app = flawed_app(Flaw::OrphanRow);
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let archive = app.path(&format!("backups/{}", app.archives("backups")[0]));
    let live_before = fs::read(app.path("data/tasks.db")).unwrap();

    // As an earlier version wrote it: no findings recorded, so whether the orphan was there
    // when the snapshot was taken is unknown.
    rewrite_manifest(&archive, |m| {
        m["databases"][0]
            .as_object_mut()
            .unwrap()
            .remove("findings");
    });
    let out = app.run(&["verify", "latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("before snapshots recorded"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Recorded as clean, yet the orphan is there: the archive or a migration broke it.
    rewrite_manifest(&archive, |m| {
        m["databases"][0]["findings"] = serde_json::json!({});
    });
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_exit_saying(&out, 1, "passed them when the snapshot was taken");
    assert_eq!(fs::read(app.path("data/tasks.db")).unwrap(), live_before);

    // A row count that disagrees with the manifest too; --force overrides both, not the
    // archive's own sha256.
    rewrite_manifest(&archive, |m| {
        m["databases"][0]["tables"]["comments"] = serde_json::json!(99);
    });
    let out = app.run(&["restore", "latest", "--yes", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.matches("forced (--force)").count(), 2, "{text}");

    let mut bytes = fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&archive, &bytes).unwrap();
    let out = app.run(&["verify", "latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = app.run(&["restore", "latest", "--yes", "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn a_migration_that_breaks_a_foreign_key_is_refused_unless_forced() {
    let app = flawed_app(Flaw::OrphanRow);
    // Clean data first: the orphan's parent comes back.
    let conn = Connection::open(app.path("data/tasks.db")).unwrap();
    conn.execute("INSERT INTO tasks (id, title) VALUES (2, 'b')", [])
        .unwrap();
    drop(conn);
    let ladder = app.path("migrations");
    fs::create_dir_all(&ladder).unwrap();
    for (name, sql) in [
        ("0001_start.sql", "SELECT 1;"),
        ("0002_nothing.sql", "SELECT 1;"),
        ("0003_nothing.sql", "SELECT 1;"),
        // A foreign key onto a column that is not unique: it cannot be checked.
        (
            "0004_add_notes.sql",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, owner TEXT REFERENCES tasks(owner));",
        ),
    ] {
        fs::write(ladder.join(name), sql).unwrap();
    }
    app.write_config(&crate::support::DIR_REMOTE_CONFIG.replace(
        "path = \"data/tasks.db\"\n",
        "path = \"data/tasks.db\"\nmigrations = \"migrations\"\n",
    ));
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "clean data: {}", stderr(&out));
    let out = app.run(&["verify", "latest"]);
    assert_exit_saying(&out, 1, "a migration breaks it");
    let out = app.run(&["restore", "latest", "--yes", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_github_release_carries_the_findings_so_list_needs_no_download() {
    use crate::fake_github::TOKEN;
    let fake = crate::support::fake_with_private_repo("alice/flawed");
    let app = flawed_app(Flaw::OrphanRow);
    app.write_config(&crate::support::github_config(
        &fake.api_url,
        "alice/flawed",
        "",
    ));
    let out = app
        .command(&["now"])
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let body = &fake.releases("alice/flawed")[0].body;
    assert!(body.contains("\"findings\":1"), "{body}");
    assert!(body.contains("integrity or foreign key checks"), "{body}");
    // A machine without the local copy: the listing comes from the release alone.
    fs::remove_dir_all(app.path("backups")).unwrap();
    let out = app
        .command(&["list", "--json"])
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = json(&out);
    assert_eq!(rows[0]["where"], "remote");
    assert_eq!(rows[0]["findings"], 1, "{rows}");
    let downloads: Vec<String> = fake
        .log()
        .into_iter()
        .filter(|line| line.starts_with("GET") && line.contains("/releases/assets/"))
        .collect();
    assert!(downloads.is_empty(), "list downloaded: {downloads:?}");
}
