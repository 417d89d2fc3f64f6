use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;

use crate::support::{
    App, assert_exit_saying, assert_refused_for_space, in_mount_namespace, read_archive,
    row_counts, sha256_hex, stderr, stdout,
};

/// Takes `backup now`, returns the archive entries of the single local snapshot.
fn only_archive(app: &App) -> Vec<(String, Vec<u8>, u32)> {
    let names = app.archives("backups");
    assert_eq!(names.len(), 1, "{names:?}");
    read_archive(&app.path("backups").join(&names[0]))
}

#[test]
fn copy_under_a_busy_writer_is_consistent_and_matches_its_manifest() {
    let app = App::new(20_000);
    let db = app.path("data/tasks.db");
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicU64::new(0));
    let (warmed_up, warm) = std::sync::mpsc::channel();
    let writer = {
        let (stop, inserted, db) = (stop.clone(), inserted.clone(), db.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            while !stop.load(Ordering::Relaxed) {
                // Two tables per transaction: a torn copy would show mismatched counts.
                let tx = conn.unchecked_transaction().unwrap();
                tx.execute("INSERT INTO tasks (title) VALUES ('during backup')", [])
                    .unwrap();
                tx.execute("INSERT INTO notes (text) VALUES ('during backup')", [])
                    .unwrap();
                tx.commit().unwrap();
                if inserted.fetch_add(1, Ordering::Relaxed) == 50 {
                    warmed_up.send(()).unwrap();
                }
            }
        })
    };
    // The writer has committed 50 transactions: it is in full swing.
    warm.recv().unwrap();
    let before = inserted.load(Ordering::Relaxed);
    let out = app.run(&["now"]);
    let after = inserted.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(after > before, "the writer was never blocked by the backup");

    let entries = only_archive(&app);
    assert_eq!(entries[0].0, "MANIFEST.json", "manifest comes first");
    let manifest: Value = serde_json::from_slice(&entries[0].1).unwrap();
    let db_entry = &manifest["databases"][0];
    let (_, copy, mode) = entries
        .iter()
        .find(|(n, _, _)| n == db_entry["archive_path"].as_str().unwrap())
        .unwrap();
    assert_eq!(*mode, 0o600);
    assert_eq!(db_entry["size"], copy.len() as u64);
    assert_eq!(db_entry["sha256"], sha256_hex(copy));

    let restored = app.path("restored.db");
    fs::write(&restored, copy).unwrap();
    let conn = Connection::open(&restored).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let counts = row_counts(&restored);
    let expected: std::collections::BTreeMap<String, u64> =
        serde_json::from_value(db_entry["tables"].clone()).unwrap();
    assert_eq!(counts, expected);
    // One point in time: every writer transaction is either wholly in or wholly out.
    assert_eq!(counts["tasks"] - 20_000, counts["notes"]);
    assert!(counts["notes"] >= 50);
}

#[test]
fn manifest_records_what_a_restore_needs() {
    let app = App::new(100);
    fs::create_dir_all(app.path("data/queue/nested")).unwrap();
    fs::write(app.path("data/queue/a.json"), b"{\"job\":1}").unwrap();
    fs::write(app.path("data/queue/nested/b.txt"), b"second").unwrap();
    fs::set_permissions(
        app.path("data/queue/a.json"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", app.path("data/queue/link")).unwrap();
    app.write_config(
        r#"
[[database]]
name = "tasks"
path = "data/tasks.db"
[[include]]
path = "data/queue"
[local]
dir = "backups"
"#,
    );
    let out = app.run(&["now", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kind"], "manual");
    assert_eq!(report["remote"], Value::Null);

    let entries = only_archive(&app);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "MANIFEST.json",
            "databases/tasks.db",
            "files/data/queue/a.json",
            "files/data/queue/nested/b.txt"
        ],
        "links are not archived"
    );
    let m: Value = serde_json::from_slice(&entries[0].1).unwrap();
    assert_eq!(m["manifest_version"], 1);
    assert_eq!(m["tag"], report["tag"]);
    assert_eq!(m["kind"], "manual");
    assert_eq!(m["tool"]["name"], "backup-agent");
    assert!(m["host"].as_str().is_some_and(|h| !h.is_empty()));
    let created = m["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    let db = &m["databases"][0];
    assert_eq!(db["name"], "tasks");
    assert_eq!(db["path"], "data/tasks.db");
    assert_eq!(db["user_version"], 3);
    assert_eq!(db["page_size"], 4096);
    assert_eq!(db["journal_mode"], "wal");
    assert_eq!(db["tables"]["tasks"], 100);
    assert_eq!(db["tables"]["notes"], 0);
    let file = &m["files"][0];
    assert_eq!(file["path"], "data/queue/a.json");
    assert_eq!(file["archive_path"], "files/data/queue/a.json");
    assert_eq!(file["size"], 9);
    assert_eq!(file["mode"], 0o640);
    assert_eq!(file["sha256"], sha256_hex(b"{\"job\":1}"));
    assert_eq!(entries[2].2, 0o640, "mode kept in the archive");

    let archive = app.path("backups").join(app.archives("backups")[0].clone());
    assert_eq!(
        fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(app.temp_leftovers().is_empty());
}

#[test]
fn now_and_run_mark_their_kind_in_the_tag() {
    let app = App::with_snapshot(10);
    assert_eq!(app.run(&["run"]).status.code(), Some(0));
    let kinds: Vec<String> = app
        .list_json()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["scheduled", "manual"], "newest first");
    let names = app.archives("backups");
    assert!(names[0].contains("-manual-") || names[1].contains("-manual-"));
    assert!(names.iter().any(|n| n.contains("-scheduled-")));
}

#[test]
fn missing_database_fails_clearly_and_leaves_nothing() {
    let app = App::new(10);
    fs::remove_file(app.path("data/tasks.db")).unwrap();
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("backup: error: database `tasks`"), "{err}");
    assert!(
        err.contains("tasks.db") && err.contains("check `path`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(app.archives("backups").is_empty());
    assert!(app.archives("remote").is_empty());
    assert!(app.temp_leftovers().is_empty());
    let last: Value =
        serde_json::from_slice(&fs::read(app.path("backups/last_run.json")).unwrap()).unwrap();
    assert_eq!(last["ok"], false);
    assert!(last["error"].as_str().unwrap().contains("tasks"));
}

#[test]
fn unreadable_database_fails_clearly_and_leaves_nothing() {
    let app = App::new(10);
    let db = app.path("data/tasks.db");
    fs::remove_file(app.path("data/tasks.db-wal")).ok();
    fs::remove_file(app.path("data/tasks.db-shm")).ok();
    fs::write(&db, vec![0x5a; 64 * 1024]).unwrap();
    let before = fs::read(&db).unwrap();
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("database `tasks`"), "{err}");
    assert!(err.contains("not a database"), "{err}");
    assert!(app.archives("backups").is_empty());
    assert!(app.temp_leftovers().is_empty());
    assert_eq!(
        fs::read(&db).unwrap(),
        before,
        "the source is never written"
    );
}

#[test]
fn folder_where_the_database_should_be_is_refused() {
    let app = App::new(10);
    fs::remove_file(app.path("data/tasks.db")).unwrap();
    fs::create_dir(app.path("data/tasks.db")).unwrap();
    let out = app.run(&["now"]);
    assert_exit_saying(&out, 1, "not a file");
    assert!(app.temp_leftovers().is_empty());
}

/// Ctrl-C (SIGINT) or SIGTERM (cron, systemd) during `backup now`: the staging folder and the
/// archive being written are removed before the exit (130 or 143), and the message says the
/// snapshot was not taken.
#[test]
fn an_interrupted_snapshot_removes_its_temporaries_and_says_it_was_not_taken() {
    use rustix::process::{Pid, Signal, kill_process};

    for (signal, code) in [(Signal::INT, 130), (Signal::TERM, 143)] {
        let app = App::new(2_000);
        let (mut child, lines) = app.paused_at_with_stderr(&["now"], "archive-written");
        let temps = app.temp_leftovers();
        assert_eq!(
            temps.len(),
            2,
            "the staging folder and the archive: {temps:?}"
        );

        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
        kill_process(pid, signal).unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{rest:?}");
        let said = rest.join("\n");
        assert!(
            said.contains("the snapshot was not taken; its temporary files were removed"),
            "{said}"
        );
        assert!(
            app.temp_leftovers().is_empty(),
            "{:?}",
            app.temp_leftovers()
        );
        assert!(app.archives("backups").is_empty());
        // A monitor learns of it: the run is recorded as failed.
        let out = app.run(&["status", "--json"]);
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(state["state"], "failed", "{state}");
        assert!(
            state.to_string().contains("the snapshot was not taken"),
            "{state}"
        );
    }
}

/// SQLite opens an empty file as an empty database; a snapshot and `doctor` refuse it instead of
/// storing a database with no tables.
#[test]
fn an_empty_file_is_refused_as_a_database() {
    let app = App::new(10);
    fs::remove_file(app.path("data/tasks.db")).unwrap();
    fs::write(app.path("data/tasks.db"), b"").unwrap();
    let out = app.run(&["now"]);
    assert_exit_saying(&out, 1, "is an empty file (0 bytes), not a database");
    assert!(stderr(&out).contains("check that `path` points at the app's database"));
    assert!(app.archives("backups").is_empty());
    assert!(app.temp_leftovers().is_empty());
    assert_eq!(fs::metadata(app.path("data/tasks.db")).unwrap().len(), 0);

    let out = app.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains("empty file"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.starts_with("FAIL  database"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("0 table"), "{}", stdout(&out));
}

#[test]
fn missing_include_is_an_error_not_an_empty_archive() {
    let app = App::new(10);
    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \"data/queue\"\n[local]\ndir = \"backups\"\n",
    );
    let out = app.run(&["now"]);
    assert_exit_saying(&out, 1, "data/queue");
    assert!(app.archives("backups").is_empty());
}

#[test]
fn several_databases_go_into_one_archive() {
    let app = App::new(10);
    crate::support::make_db(&app.path("data/kb.db"), 3);
    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[database]]\nname = \"kb\"\npath = \"data/kb.db\"\n[local]\ndir = \"backups\"\n",
    );
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 databases"));
    let entries = only_archive(&app);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        ["MANIFEST.json", "databases/tasks.db", "databases/kb.db"]
    );
}

/// A real small file system: a 1 MiB tmpfs in a private mount namespace (no root needed).
#[test]
fn too_little_free_space_is_refused_up_front_with_the_numbers() {
    let app = App::new(8_000);
    fs::create_dir_all(app.path("backups")).unwrap();
    let Some(out) = in_mount_namespace(
        r#"mount -t tmpfs -o size=1m tmpfs "$LOCAL" && exec "$BIN" --config "$CONFIG" now"#,
        &[
            ("LOCAL", app.path("backups").as_os_str()),
            ("CONFIG", app.path("backup.toml").as_os_str()),
        ],
    ) else {
        return;
    };
    assert_refused_for_space(&out);
    assert!(app.archives("remote").is_empty());
}

/// A writer holding an exclusive lock (rollback journal: readers are blocked) is waited for; the
/// copy then holds the writer's committed rows.
#[test]
fn a_database_locked_by_a_writer_is_waited_for_not_failed() {
    let app = App::new(10);
    let db = app.path("data/tasks.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "delete").unwrap();
    }
    let writer = Connection::open(&db).unwrap();
    writer
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO notes (text) VALUES ('late');")
        .unwrap();
    // The snapshot meets the lock, and waits.
    let mut child = app.paused_at(&["now"], "database-busy");
    writer.execute_batch("COMMIT").unwrap();
    drop(writer);
    child.stdin.take().unwrap().write_all(b"go on\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let entries = only_archive(&app);
    let manifest: Value = serde_json::from_slice(&entries[0].1).unwrap();
    assert_eq!(manifest["databases"][0]["journal_mode"], "delete");
    assert_eq!(manifest["databases"][0]["tables"]["notes"], 1);
}

/// The live database is only read: no checkpoint on close, so the main file and its WAL are
/// byte-identical after a snapshot even when ours was the last connection.
#[test]
fn the_live_database_and_its_wal_are_never_written() {
    let app = App::new(0);
    let db = app.path("data/tasks.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        for i in 0..200 {
            conn.execute("INSERT INTO notes (text) VALUES (?1)", [format!("n{i}")])
                .unwrap();
        }
    }
    let wal = app.path("data/tasks.db-wal");
    assert!(
        fs::metadata(&wal).unwrap().len() > 0,
        "rows wait in the WAL"
    );
    let before = (fs::read(&db).unwrap(), fs::read(&wal).unwrap());
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(&db).unwrap(), before.0, "main file unchanged");
    assert_eq!(fs::read(&wal).unwrap(), before.1, "WAL unchanged");
    let entries = only_archive(&app);
    let manifest: Value = serde_json::from_slice(&entries[0].1).unwrap();
    assert_eq!(
        manifest["databases"][0]["tables"]["notes"], 200,
        "WAL rows are in the copy"
    );
}

/// Including the whole app folder picks up neither the snapshot folders (archives would nest and
/// double every run), the databases' raw files, nor the config file in use (#13).
#[test]
fn an_include_of_the_whole_app_skips_snapshots_and_live_database_files() {
    let app = App::new(10);
    fs::write(app.path("notes.md"), b"keep me").unwrap();
    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \".\"\n[[include]]\npath = \"notes.md\"\n[local]\ndir = \"backups\"\n[remote]\ntype = \"dir\"\npath = \"remote\"\n",
    );
    for _ in 0..2 {
        let out = app.run(&["now"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    for name in app.archives("backups") {
        let entries = read_archive(&app.path("backups").join(name));
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["MANIFEST.json", "databases/tasks.db", "files/notes.md"],
            "overlapping includes are stored once"
        );
    }
}

#[test]
fn a_table_name_with_quotes_and_an_empty_database_are_handled() {
    let app = App::new(1);
    {
        let conn = Connection::open(app.path("data/tasks.db")).unwrap();
        conn.execute_batch("CREATE TABLE \"we\"\"ird\" (x); INSERT INTO \"we\"\"ird\" VALUES (1);")
            .unwrap();
    }
    // A database with no tables (a 0-byte file is refused: `an_empty_file_is_refused_as_a_database`).
    Connection::open(app.path("data/empty.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x); DROP TABLE t;")
        .unwrap();
    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[database]]\nname = \"empty\"\npath = \"data/empty.db\"\n[local]\ndir = \"backups\"\n",
    );
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let entries = only_archive(&app);
    let manifest: Value = serde_json::from_slice(&entries[0].1).unwrap();
    assert_eq!(manifest["databases"][0]["tables"]["we\"ird"], 1);
    assert_eq!(manifest["databases"][1]["tables"], serde_json::json!({}));
}

#[test]
fn run_is_silent_on_success_and_records_the_outcome() {
    let app = App::new(10);
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "cron mails any output"
    );
    let last: Value =
        serde_json::from_slice(&fs::read(app.path("backups/last_run.json")).unwrap()).unwrap();
    assert_eq!(last["command"], "run");
    assert_eq!(last["ok"], true);
    assert_eq!(last["snapshot_ok"], true);
    assert_eq!(last["push_ok"], true);
    assert_eq!(last["error"], Value::Null);
    let tag = last["tag"].as_str().unwrap();
    assert_eq!(app.archive_tags("backups"), [tag]);
    assert_eq!(last["pushed"], serde_json::json!([tag]));
    assert_eq!(last["pending"], serde_json::json!([]));
    assert!(last["source_bytes"].as_u64().unwrap() > 0);
    assert!(last["archive_bytes"].as_u64().unwrap() > 0);
    assert!(last["durations_ms"]["total"].as_u64().is_some());
    assert!(last["started_at"].as_str() <= last["finished_at"].as_str());
}

/// A run killed between writing an archive's record and renaming the archive leaves a record
/// alone; the next run removes it (and never touches other files).
#[test]
fn leftovers_of_a_killed_run_are_cleaned_and_nothing_else() {
    let app = App::new(5);
    fs::create_dir_all(app.path("backups/.backup-tmp-staging-bk-20260101T000000Z-manual-x-abcdef"))
        .unwrap();
    let orphan = "bk-20260101T000000Z-manual-x-abcdef.tar.gz.sha256";
    fs::write(app.path("backups").join(orphan), "0".repeat(64)).unwrap();
    fs::write(app.path("backups/.tmp-mine"), b"user file").unwrap();
    fs::write(app.path("backups/notes.txt"), b"user file").unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    assert!(app.temp_leftovers().is_empty());
    assert!(!app.path("backups").join(orphan).exists());
    assert!(app.path("backups/.tmp-mine").exists());
    assert!(app.path("backups/notes.txt").exists());
}
