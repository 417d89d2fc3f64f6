use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rusqlite::Connection;

use crate::fixtures::{self, BAD};
use crate::support::{
    App, assert_exit_saying, assert_refused_for_space, execute_on, in_mount_namespace, make_db,
    row_counts, sha256_hex, stderr, stdout, table_names,
};

/// Every row of every table, in a canonical text form: equal dumps mean equal data.
fn dump(path: &Path) -> String {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut out = String::new();
    for table in table_names(&conn) {
        out.push_str(&format!("table {table}\n"));
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let values: Vec<String> = (0..columns)
                .map(|i| format!("{:?}", row.get::<_, rusqlite::types::Value>(i).unwrap()))
                .collect();
            out.push_str(&values.join("|"));
            out.push('\n');
        }
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    out.push_str(&format!("user_version {version}\n"));
    out
}

/// sha256 of every file under `dir`, by relative path.
pub(crate) fn hashes(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                found.insert(rel, sha256_hex(&fs::read(&path).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut found);
    found
}

fn migrations() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations/tasks")
        .display()
        .to_string()
}

/// An app shaped like the sample app: database `tasks` with the sample migrations, a queue folder.
pub(crate) fn sample_app() -> App {
    let app = App::new(0);
    fs::remove_file(app.path("data/tasks.db")).unwrap();
    app.write_config(&format!(
        r#"
[[database]]
name = "tasks"
path = "data/tasks.db"
migrations = "{}"
[[include]]
path = "data/queue"
[local]
dir = "backups"
[remote]
type = "dir"
path = "remote"
"#,
        migrations()
    ));
    app
}

/// Puts a fixture archive into the app's local snapshot folder; returns its tag.
pub(crate) fn add_fixture(app: &App, name: &str) -> String {
    let tag = fixtures::tag(name);
    fs::create_dir_all(app.path("backups")).unwrap();
    fs::copy(
        fixtures::dir().join(format!("{tag}.tar.gz")),
        app.path(&format!("backups/{tag}.tar.gz")),
    )
    .unwrap();
    tag.to_string()
}

/// Live data for the sample app: the v3 fixture database with extra rows, a queue file.
fn live_data(app: &App) {
    fs::create_dir_all(app.path("data/queue")).unwrap();
    fs::copy(
        fixtures::dir().join("tasks-v3.db"),
        app.path("data/tasks.db"),
    )
    .unwrap();
    let conn = Connection::open(app.path("data/tasks.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.execute(
        "INSERT INTO tasks (uuid, title, status, created_at, updated_at) VALUES ('u9', 'live work', 'todo', 'x', 'x')",
        [],
    )
    .unwrap();
    fs::write(app.path("data/queue/job-7.json"), b"{\"job\":7}").unwrap();
}

#[test]
fn verify_passes_the_good_fixtures_and_refuses_each_bad_one_with_its_reason() {
    let app = sample_app();
    for name in ["good-v1", "good-v3"] {
        let tag = add_fixture(&app, name);
        let out = app.run(&["verify", &tag, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["ok"], true);
        assert_eq!(report["databases"][0]["restored_version"], 3, "{name}");
    }
    for (name, reason) in BAD {
        let tag = add_fixture(&app, name);
        let out = app.run(&["verify", &tag]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(reason), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
        let out = app.run(&["verify", &tag, "--json"]);
        assert_eq!(out.status.code(), Some(1));
        // The error object of every `--json` failure (docs/json.md).
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let error = &report["error"];
        assert!(
            error["message"].as_str().unwrap().contains(reason),
            "{name}"
        );
        assert_eq!(error["exit_code"], 1, "{name}");
        assert!(error["kind"].is_string(), "{name}: {report}");
    }
    app.assert_no_leftovers();
    assert!(
        !app.dir
            .path()
            .parent()
            .unwrap()
            .join("escaped.txt")
            .exists()
    );
    assert!(!app.path("escaped.txt").exists());
    assert!(
        !app.path("data/tasks.db").exists(),
        "verify never creates live data"
    );
}

#[test]
fn every_refusal_leaves_the_live_files_byte_identical() {
    let app = sample_app();
    live_data(&app);
    let before = hashes(&app.path("data"));
    for (name, reason) in BAD {
        let tag = add_fixture(&app, name);
        let out = app.run(&["restore", &tag, "--yes"]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(reason), "{name}: {}", stderr(&out));
        assert_eq!(
            hashes(&app.path("data")),
            before,
            "{name} changed live data"
        );
    }
    // Unconfirmed (no terminal, no --yes): refused with its own exit code, nothing changed.
    let tag = add_fixture(&app, "good-v3");
    let out = app.run(&["restore", &tag]);
    assert_exit_saying(&out, 3, "--yes");
    assert_eq!(hashes(&app.path("data")), before);
    // A dry run checks everything and changes nothing.
    let out = app.run(&["restore", &tag, "--dry-run", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing was changed"));
    assert_eq!(hashes(&app.path("data")), before);
    assert!(app.temp_leftovers().is_empty());
    assert!(fs::read_dir(app.dir.path()).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("pre_restore_")
    }));
}

#[test]
fn an_old_snapshot_is_migrated_forward_and_checked() {
    let app = sample_app();
    let tag = add_fixture(&app, "good-v1");
    // Fresh machine: nothing live, so nothing to confirm.
    let out = app.run(&["restore", &tag]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("schema 1 -> 3 (migrations 0002, 0003)"),
        "{}",
        stdout(&out)
    );
    let db = app.path("data/tasks.db");
    let conn = Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let tasks: i64 = conn
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tasks, 2);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal", "the live journal mode comes back");
    drop(conn);
    let queue = app.path("data/queue/job-1.json");
    assert_eq!(
        fs::metadata(&queue).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn newer_schema_is_refused_naming_both_versions_unless_forced() {
    let app = sample_app();
    let tag = add_fixture(&app, "newer-schema");
    let out = app.run(&["restore", &tag, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("schema version 9") && err.contains("(3)"),
        "{err}"
    );
    assert!(!app.path("data/tasks.db").exists());
    let out = app.run(&["restore", &tag, "--yes", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let version: i64 = Connection::open(app.path("data/tasks.db"))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 9);
}

/// Runs `backup <args>` on a pseudo-terminal (util-linux `script`) with `answer` typed in, and
/// returns what the terminal showed; `None` (reported skipped) without `script`.
fn on_terminal_answering(app: &App, args: &str, answer: &str) -> Option<String> {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::support::skip(
            "script",
            "no `script` program (util-linux) to make a terminal",
        );
        return None;
    }
    let line = format!(
        "'{}' --config '{}' {args}",
        env!("CARGO_BIN_EXE_backup"),
        app.path("backup.toml").display()
    );
    let out = crate::support::output_with_stdin(
        std::process::Command::new("script")
            .args(["-qefc", &line, "/dev/null"])
            .env("TERM", "xterm"),
        answer,
    );
    Some(stdout(&out))
}

#[test]
fn round_trip_restore_then_rollback_then_rollback_again() {
    let app = App::new(200);
    let db = app.path("data/tasks.db");
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let snapshot = dump(&db);
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "DELETE FROM tasks WHERE id % 3 = 0; INSERT INTO notes (text) VALUES ('after');",
        )
        .unwrap();
    }
    let changed = dump(&db);
    assert_ne!(snapshot, changed);

    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    for companion in ["-wal", "-shm"] {
        assert!(
            !app.path(&format!("data/tasks.db{companion}")).exists(),
            "no {companion} beside a restored database"
        );
    }
    assert_eq!(dump(&db), snapshot);
    let aside = Path::new(report["swap"]["aside_dir"].as_str().unwrap()).to_path_buf();
    assert!(aside.join("RESTORE.json").exists());
    assert_eq!(dump(&aside.join("data/tasks.db")), changed);
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(aside.join("RESTORE.json")).unwrap()).unwrap();
    assert_eq!(record["data_in"], serde_json::json!(["data"]), "{record}");

    // Without a terminal and without --yes, a rollback says what it would do and refuses.
    let out = app.run(&["rollback"]);
    assert_exit_saying(&out, 3, "run it again with --yes");
    let err = stderr(&out);
    assert!(
        err.contains("the rollback puts back pre_restore_")
            && err.contains("sets aside the current")
            && err.contains("data/tasks.db"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = app.run(&["rollback", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false, "{doc}");
    assert_eq!(dump(&db), snapshot, "nothing was changed");
    assert!(aside.exists());
    // On a terminal it asks; "n" changes nothing.
    if let Some(asked) = on_terminal_answering(&app, "rollback", "n\n") {
        assert!(
            asked.contains("puts back pre_restore_") && asked.contains("Roll back? [y/N]"),
            "{asked}"
        );
        assert!(asked.contains("nothing was changed"), "{asked}");
        assert_eq!(dump(&db), snapshot);
    }

    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(dump(&db), changed);
    assert!(!aside.exists(), "the emptied folder is removed");
    let out = app.run(&["rollback", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(dump(&db), snapshot);
    assert!(app.temp_leftovers().is_empty());
}

/// Data under a hidden `.data` leaves `ls` of the aside folder showing only RESTORE.json: the
/// record and the restore's message say where the data is.
#[test]
fn a_hidden_data_folder_is_named_where_it_is_set_aside() {
    let app = App::new(50);
    fs::rename(app.path("data"), app.path(".data")).unwrap();
    app.write_config(
        &crate::support::DIR_REMOTE_CONFIG.replace("\"data/tasks.db\"", "\".data/tasks.db\""),
    );
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = stdout(&out);
    let aside = fs::read_dir(app.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("pre_restore_"))
        .expect("an aside folder");
    assert!(
        said.contains(&format!(
            "is in {aside}/.data (a hidden name: `ls -A` shows it)"
        )),
        "{said}"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(app.path(&aside).join("RESTORE.json")).unwrap()).unwrap();
    assert_eq!(record["data_in"], serde_json::json!([".data"]), "{record}");
    let note = record["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("under .data") && note.contains("`ls -A`"),
        "{record}"
    );
}

#[test]
fn a_fresh_machine_restores_from_the_config_and_the_remote_alone() {
    let old = App::new(300);
    assert_eq!(old.run(&["now"]).status.code(), Some(0));
    let expected = dump(&old.path("data/tasks.db"));

    let fresh = tempfile::tempdir().unwrap();
    fs::write(
        fresh.path().join("backup.toml"),
        format!(
            "[[database]]\nname = \"tasks\"\npath = \"app/data/tasks.db\"\n[local]\ndir = \"backups\"\n[remote]\ntype = \"dir\"\npath = \"{}\"\n",
            old.path("remote").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backup"))
        .arg("--config")
        .arg(fresh.path().join("backup.toml"))
        .args(["restore", "latest"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("from the remote copy"),
        "{}",
        stdout(&out)
    );
    assert_eq!(dump(&fresh.path().join("app/data/tasks.db")), expected);
}

#[test]
fn a_database_open_in_another_process_is_refused_unless_forced() {
    let app = App::with_snapshot(50);
    let db = app.path("data/tasks.db");
    execute_on(&db, "DELETE FROM tasks WHERE id < 5");
    let before = dump(&db);
    // The app: a connection left open. (This process must not open the file otherwise while
    // it holds it: closing any descriptor drops a process's POSIX locks on the file.)
    let holder = Connection::open(&db).unwrap();
    let _: i64 = holder
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .unwrap();
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_exit_saying(&out, 1, "open in another process");
    drop(holder);
    assert_eq!(dump(&db), before);
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// kill -9 (an abort at a failpoint) at every step of the swap, then any command: the data is
/// the whole old state or the whole new state, and nothing of the swap is left over.
#[test]
fn a_crash_at_any_step_of_the_swap_leaves_the_old_or_the_new_state_whole() {
    let mut points: Vec<String> = vec!["swap-journaled".into()];
    points.extend((0..12).map(|i| format!("swap-move-{i}")));
    points.extend([
        "swap-moved".into(),
        "swap-recorded".into(),
        "swap-committed".into(),
    ]);
    let mut crashed = 0;
    for point in &points {
        let app = App::new(40);
        fs::create_dir_all(app.path("data/queue")).unwrap();
        fs::write(app.path("data/queue/a.json"), b"a").unwrap();
        fs::write(app.path("data/queue/b.json"), b"b").unwrap();
        app.write_config(
            "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \"data/queue\"\n[local]\ndir = \"backups\"\n",
        );
        assert_eq!(app.run(&["now"]).status.code(), Some(0));
        let db = app.path("data/tasks.db");
        let old_files = hashes(&app.path("data/queue"));
        let snapshot = dump(&db);
        execute_on(&db, "DELETE FROM tasks WHERE id < 10");
        fs::write(app.path("data/queue/c.json"), b"c").unwrap();
        let changed = dump(&db);
        let changed_files = hashes(&app.path("data/queue"));

        let Some(out) = app.swap_killed_at(point, &["restore", "latest", "--yes"]) else {
            // Past the last rename: every step has been crashed at.
            continue;
        };
        crashed += 1;
        let (now_db, now_files) = (dump(&db), hashes(&app.path("data/queue")));
        // Every rename done (`swap-moved`, `swap-recorded`): finished, as a committed one is.
        if ["swap-moved", "swap-recorded", "swap-committed"].contains(&point.as_str()) {
            assert_eq!(now_db, snapshot, "{point}: the new state, whole");
            assert_eq!(now_files, old_files, "{point}");
        } else {
            assert_eq!(now_db, changed, "{point}: the old state, whole");
            assert_eq!(now_files, changed_files, "{point}");
            assert!(stderr(&out).contains("undone"), "{point}: {}", stderr(&out));
        }
        app.assert_swap_settled(point);
    }
    assert!(crashed >= 6, "only {crashed} crash points were reached");
}

/// Killed after its last rename and before the commit, the restore is whole in place, and the
/// app may write to it before the next command runs: that command finishes the restore, so the
/// app's writes stay, and a rollback still puts the old data back.
#[test]
fn a_restore_killed_after_its_last_rename_is_finished_keeping_what_the_app_wrote_since() {
    let app = App::with_snapshot(40);
    let db = app.path("data/tasks.db");
    execute_on(&db, "DELETE FROM tasks WHERE id < 10");
    let out = app.run_dying_at("swap-moved", &["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), None, "killed");
    assert_eq!(
        row_counts(&db)["tasks"],
        40,
        "the restored data is in place"
    );
    execute_on(
        &db,
        "INSERT INTO tasks (title) VALUES ('written after the crash')",
    );

    let out = app.run(&["status"]);
    assert!(stderr(&out).contains("was completed"), "{}", stderr(&out));
    assert_eq!(row_counts(&db)["tasks"], 41, "the app's write is kept");
    app.assert_swap_settled("swap-moved");
    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        row_counts(&db)["tasks"],
        31,
        "the data from before the restore"
    );
}

/// The same, when the app consumed a restored file before the next command (a queue worker):
/// the swap is finished all the same, and the commands after it work.
#[test]
fn a_restore_killed_after_its_last_rename_is_finished_though_the_app_consumed_a_file() {
    let app = App::new(40);
    fs::create_dir_all(app.path("data/queue/sub")).unwrap();
    for name in ["a.json", "b.json", "sub/c.json"] {
        fs::write(app.path(&format!("data/queue/{name}")), name).unwrap();
    }
    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \"data/queue\"\n[local]\ndir = \"backups\"\n",
    );
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id < 10");
    fs::write(app.path("data/queue/a.json"), "changed").unwrap();
    let out = app.run_dying_at("swap-moved", &["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), None, "killed");
    fs::remove_file(app.path("data/queue/a.json")).unwrap();

    for command in ["status", "list"] {
        let out = app.run(&[command]);
        assert_eq!(out.status.code(), Some(0), "{command}: {}", stderr(&out));
    }
    assert_eq!(row_counts(&app.path("data/tasks.db"))["tasks"], 40);
    assert_eq!(fs::read(app.path("data/queue/b.json")).unwrap(), b"b.json");
    app.assert_swap_settled("swap-moved");
}

#[test]
fn a_snapshot_database_the_config_does_not_name_is_refused() {
    let app = App::with_snapshot(10);
    make_db(&app.path("data/other.db"), 1);
    app.write_config(
        "[[database]]\nname = \"other\"\npath = \"data/other.db\"\n[local]\ndir = \"backups\"\n",
    );
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_exit_saying(&out, 1, "does not name");
}

/// A crash while extracting or checking leaves the live data as it was, and the staging folder
/// goes with the next command that takes the run lock.
#[test]
fn a_crash_before_the_swap_changes_nothing_and_leaves_nothing() {
    for point in ["restore-extracted", "restore-checked"] {
        let app = App::with_snapshot(30);
        let db = app.path("data/tasks.db");
        execute_on(&db, "DELETE FROM tasks WHERE id < 10");
        let before = hashes(&app.path("data"));
        let out = app.run_dying_at(point, &["restore", "latest", "--yes"]);
        assert_eq!(out.status.code(), None, "{point}: killed");
        assert_eq!(hashes(&app.path("data")), before, "{point}");
        assert_eq!(app.run(&["run"]).status.code(), Some(0), "{point}");
        assert!(
            app.temp_leftovers().is_empty(),
            "{point}: {:?}",
            app.temp_leftovers()
        );
    }
}

/// A real small file system: the config folder (and so the staging folder) on a 1 MiB tmpfs in a
/// private mount namespace; the snapshot needs more than that.
#[test]
fn too_little_room_for_the_extracted_snapshot_is_refused_up_front() {
    let source = App::new(3_000);
    assert_eq!(source.run(&["now"]).status.code(), Some(0));
    let small = source.path("small");
    fs::create_dir_all(&small).unwrap();
    let config = format!(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[local]\ndir = \"backups\"\n[remote]\ntype = \"dir\"\npath = \"{}\"\n",
        source.path("remote").display()
    );
    let Some(out) = in_mount_namespace(
        r#"mount -t tmpfs -o size=1m tmpfs "$DIR" && printf '%s' "$CONFIG_TEXT" > "$DIR/backup.toml" && exec "$BIN" --config "$DIR/backup.toml" restore latest"#,
        &[("DIR", small.as_os_str()), ("CONFIG_TEXT", config.as_ref())],
    ) else {
        return;
    };
    assert_refused_for_space(&out);
}

/// A live database with a hot rollback journal (its writer was killed mid-transaction): opening
/// it would roll the journal back, so even a dry run must not open it, and the swap waits.
#[test]
fn a_hot_journal_is_never_rolled_back_by_a_refused_restore() {
    let app = App::with_snapshot(400);
    let db = app.path("data/tasks.db");
    let crashed = app.path("crashed");
    fs::create_dir_all(&crashed).unwrap();
    {
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "delete").unwrap();
        conn.pragma_update(None, "cache_size", 1).unwrap();
        conn.execute_batch("BEGIN; UPDATE tasks SET body = 'changed';")
            .unwrap();
        // What the disk holds at this moment is what a killed writer leaves.
        fs::copy(&db, crashed.join("tasks.db")).unwrap();
        fs::copy(
            app.path("data/tasks.db-journal"),
            crashed.join("tasks.db-journal"),
        )
        .unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
    }
    fs::copy(crashed.join("tasks.db"), &db).unwrap();
    fs::copy(
        crashed.join("tasks.db-journal"),
        app.path("data/tasks.db-journal"),
    )
    .unwrap();
    assert!(
        fs::metadata(app.path("data/tasks.db-journal"))
            .unwrap()
            .len()
            > 0
    );
    let before = hashes(&app.path("data"));
    for args in [
        &["restore", "latest", "--dry-run", "--yes"][..],
        &["restore", "latest", "--yes"],
    ] {
        let out = app.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("unfinished transaction"),
            "{}",
            stderr(&out)
        );
        assert_eq!(hashes(&app.path("data")), before, "{args:?}");
    }
    // With --force the live set, journal included, goes aside untouched.
    let out = app.run(&["restore", "latest", "--yes", "--force", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let aside = Path::new(report["swap"]["aside_dir"].as_str().unwrap()).join("data");
    assert_eq!(hashes(&aside), before);
    assert!(!app.path("data/tasks.db-journal").exists());
}

/// Any later command finishes what a killed command started: `now` after a killed restore
/// snapshots the whole old state, and a killed rollback leaves the restored state whole, or,
/// killed past its last rename, the rolled-back one.
#[test]
fn commands_after_a_killed_restore_or_rollback_see_whole_data() {
    let app = App::new(60);
    let out = app.run(&["now", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = first["tag"].as_str().unwrap().to_string();
    let db = app.path("data/tasks.db");
    let snapshot = dump(&db);
    execute_on(&db, "DELETE FROM tasks WHERE id > 30");
    let changed = dump(&db);

    let out = app.run_dying_at("swap-move-1", &["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), None);
    let out = app.run(&["now"]);
    assert_exit_saying(&out, 0, "undone");
    assert_eq!(dump(&db), changed);

    // Not `latest`: the `now` above took a newer snapshot, of the changed state.
    let out = app.run(&["restore", &first, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(dump(&db), snapshot);
    for point in ["swap-move-0", "swap-move-2"] {
        let out = app.run_dying_at(point, &["rollback", "--yes"]);
        assert_eq!(out.status.code(), None, "{point}");
        assert_eq!(app.run(&["list"]).status.code(), Some(0));
        assert_eq!(dump(&db), snapshot, "{point}: the restored state, whole");
    }
    // Killed past its last rename, the rollback is finished: the state before the restore.
    let out = app.run_dying_at("swap-recorded", &["rollback", "--yes"]);
    assert_eq!(out.status.code(), None);
    assert_exit_saying(&app.run(&["list"]), 0, "completed");
    assert_eq!(dump(&db), changed);
    assert!(app.temp_leftovers().is_empty());
}

/// Looking at the set-aside database (which checkpoints away its -wal/-shm) or leaving a note in
/// the set-aside folder does not stop a rollback, and a consumed folder is no rollback target.
#[test]
fn rollback_works_after_the_user_looked_into_the_set_aside_folder() {
    let app = App::with_snapshot(80);
    let db = app.path("data/tasks.db");
    // The live database as a killed app leaves it: changes still in its WAL (made in a scratch
    // folder by a connection that is never closed, then copied into place).
    let scratch = app.path("scratch");
    fs::create_dir_all(&scratch).unwrap();
    fs::copy(&db, scratch.join("tasks.db")).unwrap();
    let writer = Connection::open(scratch.join("tasks.db")).unwrap();
    writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    writer
        .execute("DELETE FROM tasks WHERE id > 40", [])
        .unwrap();
    let changed = dump(&scratch.join("tasks.db"));
    for suffix in ["", "-wal"] {
        fs::copy(
            scratch.join(format!("tasks.db{suffix}")),
            app.path(&format!("data/tasks.db{suffix}")),
        )
        .unwrap();
    }
    std::mem::forget(writer);
    let _ = fs::remove_file(app.path("data/tasks.db-shm"));
    assert!(fs::metadata(app.path("data/tasks.db-wal")).unwrap().len() > 0);
    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let aside = Path::new(report["swap"]["aside_dir"].as_str().unwrap()).to_path_buf();
    assert!(aside.join("data/tasks.db-wal").exists());
    // The user opens the set-aside copy read-write: closing it removes its -wal and -shm.
    assert_eq!(dump(&aside.join("data/tasks.db")), changed);
    Connection::open(aside.join("data/tasks.db")).unwrap();
    fs::write(aside.join("my-notes.txt"), b"checked it").unwrap();

    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(dump(&db), changed);
    assert!(
        aside.join("my-notes.txt").exists(),
        "the user's file is kept"
    );
    assert!(
        !aside.join("RESTORE.json").exists(),
        "a consumed folder is no target"
    );
    let out = app.run(&["rollback", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(
        report["aside_dir"].as_str().unwrap(),
        aside.to_str().unwrap()
    );
}
