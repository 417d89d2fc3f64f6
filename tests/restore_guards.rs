//! The guards before a restore's swap: a database an app holds open, live data the snapshot lacks
//! (and nothing more: no prompt when nothing would be lost), the rows the restore brings back,
//! and the modes restored files get.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use crate::restore::hashes;
use crate::support::{App, DIR_REMOTE_CONFIG, execute_on, row_counts, stderr, stdout};

/// The app's config with its queue folder included.
fn with_queue(app: &App) {
    fs::create_dir_all(app.path("data/queue")).unwrap();
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[[include]]\npath = \"data/queue\"\n"
    ));
}

/// Sets a file's modification time to 2001, as `cp -p` or `rsync -a` of an old file does.
fn make_old(path: &Path) {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(978_307_200);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// An app idle between transactions holds no lock in rollback-journal mode, so only its open
/// files show it: the restore is refused, naming the process, until the app lets go.
#[test]
fn a_database_an_app_holds_open_is_refused_naming_the_process_in_either_journal_mode() {
    for journal_mode in ["delete", "wal"] {
        let app = App::new(50);
        let db = app.path("data/tasks.db");
        Connection::open(&db)
            .unwrap()
            .pragma_update(None, "journal_mode", journal_mode)
            .unwrap();
        assert_eq!(app.run(&["now"]).status.code(), Some(0));
        execute_on(&db, "DELETE FROM tasks WHERE id <= 4");
        let before = fs::read(&db).unwrap();

        // The app: this test process, its connection open after its last statement. (Nothing
        // else here opens the file while it is held: closing any descriptor of a file drops the
        // process's locks on it.)
        let holder = Connection::open(&db).unwrap();
        let mode: String = holder
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, journal_mode);
        let out = app.run(&["restore", "latest", "--yes"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{journal_mode}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains("open in another process")
                && err.contains(&format!("pid {}", std::process::id())),
            "{journal_mode}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{journal_mode}: {err}");
        drop(holder);
        assert_eq!(fs::read(&db).unwrap(), before, "{journal_mode}");
        assert_eq!(row_counts(&db)["tasks"], 46, "{journal_mode}");

        let out = app.run(&["restore", "latest", "--yes"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{journal_mode}: {}",
            stderr(&out)
        );
        assert_eq!(row_counts(&db)["tasks"], 50, "{journal_mode}");
    }
}

/// `now` leaves an empty -wal (and a -shm) newer than the snapshot's second, and the live file
/// was written in that same second: neither is a change. A real one still asks.
#[test]
fn a_restore_right_after_now_does_not_ask_and_a_real_change_still_does() {
    let app = App::new(100);
    with_queue(&app);
    fs::write(app.path("data/queue/job-1.json"), b"{\"job\":1}").unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let wal = app.path("data/tasks.db-wal");
    assert_eq!(fs::metadata(&wal).map(|m| m.len()).ok(), Some(0), "{wal:?}");

    // No terminal, no --yes: any concern would stop it with exit 3.
    let out = app.run(&["restore", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("note:"), "{}", stdout(&out));

    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = 'edited' WHERE id = 1",
    );
    let out = app.run(&["restore", "latest"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("live `tasks` changed ") && err.contains("after the snapshot's copy"),
        "{err}"
    );
    assert!(!err.contains("rows"), "the row counts are equal: {err}");
}

/// Files copied in with old modification times are still live data the snapshot lacks.
#[test]
fn live_included_files_the_snapshot_lacks_or_holds_otherwise_ask_whatever_their_mtime() {
    let app = App::new(10);
    with_queue(&app);
    let queue = app.path("data/queue");
    fs::write(queue.join("a.json"), b"aaaa").unwrap();
    fs::write(queue.join("b.json"), b"bbbb").unwrap();
    fs::write(queue.join("same.json"), b"same").unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));

    fs::write(queue.join("a.json"), b"AAAA").unwrap(); // same size, other content
    fs::write(queue.join("b.json"), b"bb").unwrap();
    fs::write(queue.join("c.json"), b"cccc").unwrap();
    for name in ["a.json", "b.json", "c.json", "same.json"] {
        make_old(&queue.join(name));
    }
    let before = hashes(&queue);
    let out = app.run(&["restore", "latest"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("1 live included file the snapshot does not hold (data/queue/c.json)"),
        "{err}"
    );
    assert!(
        err.contains(
            "2 live included files differ from the snapshot's copy (data/queue/a.json, data/queue/b.json)"
        ),
        "{err}"
    );
    assert!(
        !err.contains("same.json") && !err.contains("live `tasks`"),
        "{err}"
    );
    assert_eq!(hashes(&queue), before);

    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let same_inode = inode(&queue.join("same.json"));
    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(inode(&queue.join("same.json")), same_inode, "never moved");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let aside = Path::new(report["swap"]["aside_dir"].as_str().unwrap()).join("data/queue");
    // Every live file the restore replaces or removes is kept aside; one that already holds the
    // snapshot's bytes stays where it is, untouched.
    let mut moved = before.clone();
    let same = moved.remove("same.json").expect("the unchanged file");
    assert_eq!(hashes(&aside), moved);
    assert_eq!(hashes(&queue)["same.json"], same);
    assert!(!queue.join("c.json").exists());
    assert_eq!(fs::read(queue.join("a.json")).unwrap(), b"aaaa");
}

/// Rows lost since the snapshot are what a restore brings back: every table that differs is
/// shown with live and snapshot counts, in words and in JSON, whether or not the restore asks.
#[test]
fn every_table_that_differs_is_shown_with_live_and_snapshot_counts() {
    let app = App::new(100);
    let db = app.path("data/tasks.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO notes (text) VALUES ('1'), ('2'), ('3'), ('4'), ('5');
             CREATE TABLE archive (id INTEGER PRIMARY KEY);
             INSERT INTO archive VALUES (1), (2), (3);",
        )
        .unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "DELETE FROM tasks WHERE id <= 10;
             INSERT INTO notes (text) VALUES ('6'), ('7');
             DROP TABLE archive;
             CREATE TABLE tags (name TEXT);
             INSERT INTO tags VALUES ('a'), ('b');",
        )
        .unwrap();

    let out = app.run(&["restore", "latest"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    for shown in [
        "live `tasks`: table `archive` not in the live database, the snapshot 3 rows",
        "table `notes` 7 rows, the snapshot 5",
        "table `tags` 2 rows, not in the snapshot",
        "table `tasks` 90 rows, the snapshot 100",
    ] {
        assert!(err.contains(shown), "{shown}: {err}");
    }
    assert_eq!(err.lines().count(), 1, "{err}");

    let out = app.run(&["restore", "latest", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let difference = |table: &str, live: Option<u64>, snapshot: Option<u64>| serde_json::json!({ "database": "tasks", "table": table, "live": live, "snapshot": snapshot });
    assert_eq!(
        report["table_differences"],
        serde_json::json!([
            difference("archive", None, Some(3)),
            difference("notes", Some(7), Some(5)),
            difference("tags", Some(2), None),
            difference("tasks", Some(90), Some(100)),
        ])
    );

    // Only rows lost, and the live file older than the copy (an old copy put back by hand):
    // nothing of it is missing from the snapshot, so no question, but the counts are shown.
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "DELETE FROM notes WHERE id > 5; DROP TABLE tags;
             CREATE TABLE archive (id INTEGER PRIMARY KEY); INSERT INTO archive VALUES (1), (2), (3);",
        )
        .unwrap();
    make_old(&db);
    let out = app.run(&["restore", "latest", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("note: live `tasks`: table `tasks` 90 rows, the snapshot 100"),
        "{}",
        stdout(&out)
    );
    let out = app.run(&["restore", "latest", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["concerns"], serde_json::json!([]));
    assert_eq!(
        report["table_differences"],
        serde_json::json!([difference("tasks", Some(90), Some(100))])
    );
    assert_eq!(row_counts(&db)["tasks"], 100);
}

/// A restored database or file takes the live file's mode; where there is none (a fresh
/// machine), the mode the manifest recorded.
#[test]
fn restored_files_keep_the_live_mode_or_else_get_the_recorded_one() {
    let app = App::new(20);
    with_queue(&app);
    let (db, script) = (app.path("data/tasks.db"), app.path("data/queue/run.sh"));
    fs::write(&script, b"#!/bin/sh\necho run\n").unwrap();
    set_mode(&script, 0o755);
    set_mode(&db, 0o640);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));

    let fresh = App {
        dir: tempfile::tempdir().unwrap(),
    };
    fresh.write_config(&format!(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \"data/queue\"\n[local]\ndir = \"backups\"\n[remote]\ntype = \"dir\"\npath = \"{}\"\n",
        app.path("remote").display()
    ));
    let out = fresh.run(&["restore", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(mode(&fresh.path("data/tasks.db")), 0o640);
    assert_eq!(mode(&fresh.path("data/queue/run.sh")), 0o755);

    set_mode(&db, 0o600);
    set_mode(&script, 0o700);
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&script), 0o700);
}
