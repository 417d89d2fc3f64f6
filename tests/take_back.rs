use std::fs;
use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

use crate::restore::{add_fixture, hashes, sample_app};
use crate::support::{App, assert_exit_saying, execute_on, stderr, stdout};

fn user_version(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn count(db: &Path, table: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// An app with database `tasks`, a second database `notes` and an include `data/queue`, one
/// snapshot of them taken, local and on the folder remote.
fn two_databases_and_an_include() -> App {
    let app = App::new(30);
    crate::support::make_db(&app.path("data/notes.db"), 5);
    fs::create_dir_all(app.path("data/queue")).unwrap();
    fs::write(app.path("data/queue/a.json"), b"a").unwrap();
    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[database]]\nname = \"notes\"\npath = \"data/notes.db\"\n[[include]]\npath = \"data/queue\"\n[local]\ndir = \"backups\"\n[remote]\ntype = \"dir\"\npath = \"remote\"\n",
    );
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    app
}

#[test]
fn to_a_folder_from_the_remote_alone_leaves_the_live_data_byte_identical() {
    let app = two_databases_and_an_include();
    let tag = app.archives("backups")[0]
        .trim_end_matches(".tar.gz")
        .to_string();
    // The one bad DELETE, and no local copy left: only the remote holds the snapshot.
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id > 20");
    fs::write(app.path("data/queue/b.json"), b"b").unwrap();
    for archive in app.archives("backups") {
        fs::remove_file(app.path(&format!("backups/{archive}"))).unwrap();
    }
    let live_before = hashes(&app.path("data"));
    let old = tempfile::tempdir().unwrap();
    let to = old.path().join("old");

    let out = app.run(&["restore", &tag, "--to", to.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        hashes(&app.path("data")),
        live_before,
        "nothing live changed"
    );
    assert!(app.archives("backups").is_empty(), "nothing stored locally");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["tag"], tag.as_str());
    assert_eq!(report["source"], "remote");
    assert_eq!(report["migrated"], false);
    assert_eq!(report["to"], to.to_str().unwrap());
    assert_eq!(report["databases"][0]["name"], "tasks");
    assert_eq!(report["placed"]["files"], 1);
    let placed = report["placed"]["databases"].as_array().unwrap();
    assert_eq!(placed.len(), 2);
    assert_eq!(placed[0]["name"], "tasks");
    assert_eq!(
        placed[0]["path"],
        to.join("data/tasks.db").to_str().unwrap()
    );
    // The layout is the app folder's: databases and includes at their relative paths.
    let mut found: Vec<String> = hashes(&to).into_keys().collect();
    found.sort();
    assert_eq!(
        found,
        ["data/notes.db", "data/queue/a.json", "data/tasks.db"]
    );

    // README's recipe: the deleted rows come back through ATTACH.
    let live = Connection::open(app.path("data/tasks.db")).unwrap();
    live.execute_batch(&format!(
        "ATTACH '{}' AS old; INSERT INTO tasks SELECT * FROM old.tasks WHERE id NOT IN (SELECT id FROM tasks);",
        to.join("data/tasks.db").display()
    ))
    .unwrap();
    drop(live);
    assert_eq!(count(&app.path("data/tasks.db"), "tasks"), 30);
    app.assert_no_leftovers();
}

#[test]
fn to_without_migrate_keeps_the_snapshot_schema_and_with_it_migrates() {
    let app = sample_app();
    let tag = add_fixture(&app, "good-v1");
    let base = tempfile::tempdir().unwrap();
    let plain = base.path().join("plain");
    let out = app.run(&["restore", &tag, "--to", plain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(user_version(&plain.join("data/tasks.db")), 1);
    assert!(
        stdout(&out).contains("--migrate brings it to 3"),
        "{}",
        stdout(&out)
    );
    let migrated = base.path().join("migrated");
    let out = app.run(&[
        "restore",
        &tag,
        "--to",
        migrated.to_str().unwrap(),
        "--migrate",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(user_version(&migrated.join("data/tasks.db")), 3);
    assert!(!app.path("data/tasks.db").exists(), "nothing restored live");
}

#[test]
fn to_refuses_a_folder_with_something_in_it_or_inside_the_live_data() {
    let app = two_databases_and_an_include();
    let full = tempfile::tempdir().unwrap();
    fs::write(full.path().join("mine.txt"), b"keep").unwrap();
    let out = app.run(&["restore", "latest", "--to", full.path().to_str().unwrap()]);
    assert_exit_saying(&out, 1, "is not empty");
    assert_eq!(fs::read(full.path().join("mine.txt")).unwrap(), b"keep");
    for (dir, why) in [
        (app.path("data/queue/old"), "lies in the live data"),
        (app.path(""), "is the config's folder"),
        (app.path("backups/old"), "local snapshot folder"),
        (app.path("remote/old"), "remote folder"),
    ] {
        let out = app.run(&["restore", "latest", "--to", dir.to_str().unwrap()]);
        assert_exit_saying(&out, 1, why);
        assert!(dir == app.path("") || !dir.exists(), "{why}: nothing made");
    }
    let out = app.run(&["restore", "latest", "--migrate"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--migrate needs --to: {}",
        stderr(&out)
    );
}
