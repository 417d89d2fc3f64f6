use std::fs;
use std::io::Write;
use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

use crate::restore::{add_fixture, hashes, sample_app};
use crate::support::{
    App, archive_path, assert_exit_saying, execute_on, read_archive, sha256_hex, stderr, stdout,
    tag_of, write_archive,
};

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
    let tag = tag_of(&app.archives("backups")[0]).to_string();
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
        (
            app.path("data/queue/old"),
            "lies in the [[include]] data/queue",
        ),
        (app.path("data/tasks.db"), "lies in database `tasks`"),
        // A folder there would stop the app: SQLite could not make its -wal again.
        (
            app.path("data/tasks.db-wal"),
            "the -wal of database `tasks`",
        ),
        (
            app.path("data/tasks.db-journal/x"),
            "the -journal of database `tasks`",
        ),
        (app.path("data"), "holds the [[include]] data/queue"),
        (app.path(""), "is the config's folder"),
        (app.path("backups/old"), "lies in the local snapshot folder"),
        (app.path("remote/old"), "remote folder"),
    ] {
        let existed = dir.exists();
        let out = app.run(&["restore", "latest", "--to", dir.to_str().unwrap()]);
        assert_exit_saying(&out, 1, why);
        assert!(existed || !dir.exists(), "{why}: nothing made");
    }
    let dangling = full.path().join("link");
    std::os::unix::fs::symlink(full.path().join("nowhere"), &dangling).unwrap();
    let out = app.run(&["restore", "latest", "--to", dangling.to_str().unwrap()]);
    assert_exit_saying(&out, 1, "is a link to nothing");
    let out = app.run(&["restore", "latest", "--migrate"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--migrate needs --to: {}",
        stderr(&out)
    );
}

/// A `--to` that fails takes back what it placed: a folder it made is gone (with the missing
/// parent it made), one that was there empty is empty again, and the same command then works.
#[test]
fn to_that_fails_takes_back_what_it_placed_so_the_same_command_runs_again() {
    let app = two_databases_and_an_include();
    let base = tempfile::tempdir().unwrap();
    let made = base.path().join("new/old");
    let args = ["restore", "latest", "--to", made.to_str().unwrap()];

    // The databases are in place when the included file's staged copy vanishes: its move fails.
    let mut child = app.paused_at(&args, "restore-to-databases-placed");
    assert!(made.join("data/tasks.db").is_file());
    let mut staged = Vec::new();
    crate::support::all_files(&made, &mut staged);
    let queued = staged
        .iter()
        .find(|p| p.ends_with("data/queue/a.json"))
        .unwrap_or_else(|| panic!("no staged a.json among {staged:?}"));
    fs::remove_file(queued).unwrap();
    child.stdin.take().unwrap().write_all(b"go on\n").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert!(
        !base.path().join("new").exists(),
        "the folders it made are gone"
    );

    let out = app.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(made.join("data/queue/a.json")).unwrap(), b"a");
    assert!(made.join("data/notes.db").is_file());

    // A check that fails: a folder made for it is gone, an empty one stays empty.
    break_notes_in_the_local_archive(&app);
    let checked = base.path().join("checked");
    let out = app.run(&["restore", "latest", "--to", checked.to_str().unwrap()]);
    assert_exit_saying(&out, 1, "notes");
    assert!(!checked.exists());
    let empty = tempfile::tempdir().unwrap();
    let out = app.run(&["restore", "latest", "--to", empty.path().to_str().unwrap()]);
    assert_exit_saying(&out, 1, "notes");
    assert_eq!(fs::read_dir(empty.path()).unwrap().count(), 0);
    app.assert_no_leftovers();
}

/// An app with three snapshots an hour apart, local and on the folder remote; their tags,
/// newest first.
fn three_snapshots() -> (App, Vec<String>) {
    let app = App::new(20);
    for hour in 1..=3 {
        let clock = format!("2026-03-01T0{hour}:00:00Z");
        let out = app.run_at(&clock, &["now"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let mut tags = app.archive_tags("backups");
    tags.reverse();
    (app, tags)
}

const CLOCK: &str = "2026-03-01T12:00:00Z";

#[test]
fn verify_remote_checks_the_remote_copy_even_with_a_local_one() {
    let (app, tags) = three_snapshots();
    let local = archive_path(&app.path("backups"), &tags[0]);
    let local_before = fs::read(&local).unwrap();
    let out = app.run_at(CLOCK, &["verify", &tags[0], "--remote", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["source"], "remote",
        "downloaded, though a local copy exists"
    );
    assert_eq!(report["local_damaged"], false);
    assert_eq!(
        fs::read(&local).unwrap(),
        local_before,
        "the local copy untouched"
    );
    // `latest` means the remote's newest.
    let out = app.run_at(CLOCK, &["verify", "latest", "--remote", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tag"], tags[0].as_str());

    // The remote copy gone (the dead disk's only backup): the local copy is no stand-in.
    fs::remove_file(archive_path(&app.path("remote"), &tags[0])).unwrap();
    let out = app.run_at(CLOCK, &["verify", &tags[0]]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = app.run_at(CLOCK, &["verify", &tags[0], "--remote"]);
    assert_exit_saying(&out, 1, &format!("{} is not in folder", tags[0]));
    app.assert_no_leftovers();
}

#[test]
fn verify_all_checks_every_snapshot_and_names_the_ones_that_fail() {
    let (app, tags) = three_snapshots();
    let out = app.run_at(CLOCK, &["verify", "--all", "--sample", "2", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checked = report.as_array().unwrap();
    assert_eq!(checked.len(), 2, "{report}");
    for one in checked {
        assert_eq!(one["ok"], true);
        assert!(tags.contains(&one["tag"].as_str().unwrap().to_string()));
        assert_eq!(one["source"], "local");
        assert_eq!(one["databases"][0]["name"], "tasks");
    }
    assert_ne!(checked[0]["tag"], checked[1]["tag"]);

    // The middle one only on the remote, and damaged there: no good copy of it exists.
    let middle = &tags[1];
    let local = archive_path(&app.path("backups"), middle);
    fs::remove_file(&local).unwrap();
    fs::remove_file(format!("{}.sha256", local.display())).unwrap();
    crate::support::truncate_to_half(&archive_path(&app.path("remote"), middle));
    let out = app.run_at(CLOCK, &["verify", "--all"]);
    assert_exit_saying(
        &out,
        1,
        &format!("1 of 3 snapshots failed verify: {middle}"),
    );
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "one line per snapshot: {lines:?}");
    assert!(
        lines[0].starts_with(&format!("ok      {}", tags[0])),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("FAILED  {middle}")),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with(&format!("ok      {}", tags[2])),
        "{lines:?}"
    );

    let out = app.run_at(CLOCK, &["verify", "--all", "--remote", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sources: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|one| one["source"].as_str().unwrap_or("failed"))
        .collect();
    assert_eq!(sources, ["remote", "failed", "remote"]);
    assert_eq!(report[1]["tag"], middle.as_str());
    assert!(report[1]["error"].as_str().unwrap().len() > 10);
    app.assert_no_leftovers();
}

/// With the remote folder gone (an unmounted disk), `verify --all` drills the local snapshots,
/// says the remote could not be listed, and exits 4 when they all pass, 1 when one fails;
/// `--remote` has nothing to drill and fails as before.
#[test]
fn verify_all_drills_the_local_snapshots_when_the_remote_cannot_be_listed() {
    let (app, tags) = three_snapshots();
    fs::rename(app.path("remote"), app.path("unmounted")).unwrap();

    let out = app.run_at(CLOCK, &["verify", "--all"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("verify passed: all 3 snapshots restore"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("cannot list the remote"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let out = app.run_at(CLOCK, &["verify", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.as_array().unwrap().len(), 3, "{report}");

    // A damaged local copy needs the remote's, which cannot be had: that drill fails.
    crate::support::truncate_to_half(&archive_path(&app.path("backups"), &tags[1]));
    let out = app.run_at(CLOCK, &["verify", "--all"]);
    assert_exit_saying(
        &out,
        1,
        &format!("1 of 3 snapshots failed verify: {}", tags[1]),
    );
    assert!(stderr(&out).contains("cannot list the remote"));

    let out = app.run_at(CLOCK, &["verify", "--all", "--remote"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    app.assert_no_leftovers();
}

/// sha256 of every live file but the `tasks` database (with its -wal/-shm).
fn all_but_tasks(app: &App) -> std::collections::BTreeMap<String, String> {
    let mut found = hashes(&app.path("data"));
    found.retain(|path, _| !path.starts_with("tasks.db"));
    found
}

/// The `tasks` table's rows, in order.
fn tasks_rows(app: &App) -> Vec<(i64, String)> {
    let conn = Connection::open(app.path("data/tasks.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, title FROM tasks ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// After the snapshot: rows gone from `tasks`, a row more in `notes`, a queue file changed and
/// one added.
fn change_everything(app: &App) {
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id > 20");
    execute_on(
        app.path("data/notes.db"),
        "INSERT INTO notes (text) VALUES ('later')",
    );
    fs::write(app.path("data/queue/a.json"), b"a, changed").unwrap();
    fs::write(app.path("data/queue/b.json"), b"b").unwrap();
}

#[test]
fn only_one_database_comes_back_and_rollback_undoes_exactly_that() {
    let app = two_databases_and_an_include();
    let snapshot = tasks_rows(&app);
    change_everything(&app);
    let changed = tasks_rows(&app);
    let others = all_but_tasks(&app);

    let out = app.run(&["restore", "latest", "--only", "tasks", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["only"], serde_json::json!(["tasks"]));
    let names: Vec<&str> = report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|db| db["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tasks"], "only the named database is reported");
    assert_eq!(report["files"], 0);
    assert_eq!(tasks_rows(&app), snapshot);
    assert_eq!(
        all_but_tasks(&app),
        others,
        "the other database and the includes stay"
    );
    let aside = Path::new(report["swap"]["aside_dir"].as_str().unwrap()).to_path_buf();
    let set_aside: Vec<String> = hashes(&aside)
        .into_keys()
        .filter(|p| p != "RESTORE.json")
        .collect();
    assert_eq!(
        set_aside,
        ["data/tasks.db"],
        "only the named database went aside"
    );

    let out = app.run(&["rollback", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        tasks_rows(&app),
        changed,
        "rollback puts back what was set aside"
    );
    assert_eq!(all_but_tasks(&app), others, "and nothing else moves");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["placed"], 1);
    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        tasks_rows(&app),
        snapshot,
        "a second rollback redoes it, as partial"
    );
    assert_eq!(all_but_tasks(&app), others);
    app.assert_no_leftovers();
}

#[test]
fn only_an_include_comes_back_and_the_databases_stay() {
    let app = two_databases_and_an_include();
    change_everything(&app);
    let tasks_before = fs::read(app.path("data/tasks.db")).unwrap();
    let notes_before = fs::read(app.path("data/notes.db")).unwrap();
    let out = app.run(&["restore", "latest", "--only", "data/queue", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("only data/queue"), "{}", stdout(&out));
    assert_eq!(fs::read(app.path("data/queue/a.json")).unwrap(), b"a");
    assert!(
        !app.path("data/queue/b.json").exists(),
        "set aside: not in the snapshot"
    );
    assert_eq!(fs::read(app.path("data/tasks.db")).unwrap(), tasks_before);
    assert_eq!(fs::read(app.path("data/notes.db")).unwrap(), notes_before);
}

#[test]
fn only_an_unknown_name_is_refused_listing_the_valid_ones() {
    let app = two_databases_and_an_include();
    change_everything(&app);
    let before = hashes(&app.path("data"));
    let out = app.run(&["restore", "latest", "--only", "tasks", "queue", "--yes"]);
    assert_exit_saying(
        &out,
        2,
        "--only `queue` is neither a database nor an include",
    );
    let err = stderr(&out);
    assert!(
        err.contains("tasks (database), notes (database), data/queue (include)"),
        "{err}"
    );
    assert_eq!(hashes(&app.path("data")), before);
}

/// Repacks the local archive with its copy of `notes` broken behind SQLite's back (an index
/// re-pointed at another column, so `integrity_check` fails where the snapshot found nothing),
/// its manifest size and sha256 made to match: damage the archive's own checks cannot see.
fn break_notes_in_the_local_archive(app: &App) {
    let archive = app.path(&format!("backups/{}", app.archives("backups")[0]));
    let mut entries = read_archive(&archive);
    let mut manifest: Value = serde_json::from_slice(&entries[0].1).unwrap();
    let notes = manifest["databases"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|db| db["name"] == "notes")
        .unwrap();
    let archive_path = notes["archive_path"].as_str().unwrap().to_string();
    let copy = &mut entries.iter_mut().find(|e| e.0 == archive_path).unwrap().1;
    let scratch = tempfile::tempdir().unwrap();
    let scratch_db = scratch.path().join("notes.db");
    fs::write(&scratch_db, &copy).unwrap();
    Connection::open(&scratch_db)
        .unwrap()
        .execute_batch(
            "CREATE INDEX tasks_title ON tasks(title);
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX tasks_title ON tasks(body)'
                 WHERE name = 'tasks_title';
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
    *copy = fs::read(&scratch_db).unwrap();
    notes["size"] = copy.len().into();
    notes["sha256"] = sha256_hex(copy).into();
    entries[0].1 = serde_json::to_vec_pretty(&manifest).unwrap();
    write_archive(&archive, &entries);
}

#[test]
fn only_restores_a_database_past_another_that_fails_its_checks_or_the_config_drops() {
    let app = two_databases_and_an_include();
    let snapshot = tasks_rows(&app);
    break_notes_in_the_local_archive(&app);
    change_everything(&app);
    let others = all_but_tasks(&app);

    let out = app.run(&["restore", "latest", "--yes"]);
    assert_exit_saying(&out, 1, "notes");
    assert_eq!(all_but_tasks(&app), others);

    let out = app.run(&["restore", "latest", "--only", "tasks", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(tasks_rows(&app), snapshot);
    assert_eq!(all_but_tasks(&app), others, "notes and the includes stay");

    // A config that no longer names `notes` restores `tasks` from the same snapshot.
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id > 20");
    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[local]\ndir = \"backups\"\n[remote]\ntype = \"dir\"\npath = \"remote\"\n",
    );
    let out = app.run(&["restore", "latest", "--only", "tasks", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(tasks_rows(&app), snapshot);
    app.assert_no_leftovers();
}

/// kill -9 at every step of a partial swap, then any command: the named database is whole in
/// its old or its new state, and what `--only` did not name never moved.
#[test]
fn a_crash_at_any_step_of_a_partial_swap_leaves_the_old_or_the_new_state_whole() {
    let mut points: Vec<String> = vec!["swap-journaled".into()];
    points.extend((0..6).map(|i| format!("swap-move-{i}")));
    points.extend(["swap-recorded".into(), "swap-committed".into()]);
    let mut crashed = 0;
    for point in &points {
        let app = two_databases_and_an_include();
        let snapshot = tasks_rows(&app);
        change_everything(&app);
        // The app still running, a -wal beside the named database (hence --force): the swap
        // sets aside three files before it moves one in.
        let app_connection = Connection::open(app.path("data/tasks.db")).unwrap();
        app_connection
            .execute("INSERT INTO notes (text) VALUES ('in the wal')", [])
            .unwrap();
        assert!(app.path("data/tasks.db-wal").exists());
        let changed = tasks_rows(&app);
        let others = all_but_tasks(&app);

        let args = ["restore", "latest", "--only", "tasks", "--yes", "--force"];
        let Some(out) = app.swap_killed_at(point, &args) else {
            continue;
        };
        crashed += 1;
        // Past the last rename the swap is finished, committed or not.
        if ["swap-recorded", "swap-committed"].contains(&point.as_str()) {
            assert_eq!(tasks_rows(&app), snapshot, "{point}: the new state, whole");
        } else {
            assert_eq!(tasks_rows(&app), changed, "{point}: the old state, whole");
            assert!(stderr(&out).contains("undone"), "{point}: {}", stderr(&out));
        }
        assert_eq!(all_but_tasks(&app), others, "{point}: the rest never moved");
        app.assert_swap_settled(point);
        drop(app_connection);
    }
    assert!(crashed >= 7, "only {crashed} crash points were reached");
}

#[test]
fn verify_remote_downloads_from_github_even_with_a_local_copy() {
    let fake = crate::support::fake_with_private_repo(crate::support::GITHUB_REPO);
    let app = App::new(20);
    app.write_config(&crate::support::github_config(
        &fake.api_url,
        crate::support::GITHUB_REPO,
        "",
    ));
    assert_eq!(app.run_github(&["now"]).status.code(), Some(0));
    let downloads = || fake.count_requests(|l| l.starts_with("GET") && l.contains("assets/"));
    let out = app.run_github(&["verify", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        downloads(),
        0,
        "the local copy needs no download: {:?}",
        fake.log()
    );
    let out = app.run_github(&["verify", "latest", "--remote", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(downloads() >= 1, "{:?}", fake.log());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["source"], "remote");
}

/// An app with database `tasks`, an include `data/queue` holding `files`, one snapshot taken.
fn a_queue_of(files: &[(&str, &[u8])]) -> App {
    let app = App::new(10);
    fs::create_dir_all(app.path("data/queue")).unwrap();
    for (name, bytes) in files {
        fs::write(app.path(&format!("data/queue/{name}")), bytes).unwrap();
    }
    app.write_config(
        "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \"data/queue\"\n[local]\ndir = \"backups\"\n",
    );
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    app
}

/// The queue's files and their contents.
fn queue(app: &App) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = fs::read_dir(app.path("data/queue"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

fn owned(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(n, c)| ((*n).to_string(), (*c).to_string()))
        .collect()
}

/// The record of the swap that `--json` output `out` reports.
fn swap_record(out: &std::process::Output) -> Value {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let aside = Path::new(report["swap"]["aside_dir"].as_str().unwrap()).join("RESTORE.json");
    serde_json::from_slice(&fs::read(aside).unwrap()).unwrap()
}

#[test]
fn rollback_leaves_a_file_the_restore_left_in_place_and_sets_aside_one_made_since() {
    let app = a_queue_of(&[("a.json", b"a")]);
    fs::write(app.path("data/queue/b.json"), b"b").unwrap();

    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(queue(&app), owned(&[("a.json", "a")]));
    let record = swap_record(&out);
    assert_eq!(record["record_version"], 2, "{record}");
    assert_eq!(
        record["left_in_place"][0]["live"],
        app.path("data/queue/a.json").to_str().unwrap(),
        "{record}"
    );
    fs::write(app.path("data/queue/c.json"), b"c").unwrap();

    // The prompt names what moves and what stays, as the rollback will do it.
    let out = app.run(&["rollback"]);
    assert_exit_saying(&out, 3, "run it again with --yes");
    let err = stderr(&out);
    assert!(
        err.contains("among them 1 `restore ")
            && err.contains("did not put there (data/queue/c.json)"),
        "{err}"
    );
    assert!(err.contains("leaves 1 unchanged file in place"), "{err}");
    assert!(!err.contains("a.json"), "a.json does not move: {err}");

    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        queue(&app),
        owned(&[("a.json", "a"), ("b.json", "b")]),
        "the state before the restore, a.json included"
    );
    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        queue(&app),
        owned(&[("a.json", "a"), ("c.json", "c")]),
        "a second rollback redoes the restore, with the file made since"
    );
    app.assert_no_leftovers();
}

#[test]
fn a_partial_rollback_leaves_the_unchanged_file_and_undoes_the_rest() {
    let app = a_queue_of(&[("a.json", b"a"), ("c.json", b"c")]);
    fs::write(app.path("data/queue/c.json"), b"c, changed").unwrap();
    fs::write(app.path("data/queue/b.json"), b"b").unwrap();
    let tasks = fs::read(app.path("data/tasks.db")).unwrap();

    let out = app.run(&[
        "restore",
        "latest",
        "--only",
        "data/queue",
        "--yes",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(queue(&app), owned(&[("a.json", "a"), ("c.json", "c")]));
    let record = swap_record(&out);
    assert_eq!(record["record_version"], 2, "{record}");
    assert_eq!(record["left_in_place"].as_array().unwrap().len(), 1);
    assert!(record["includes"].is_array(), "{record}");
    fs::write(app.path("data/queue/d.json"), b"d").unwrap();

    let out = app.run(&["rollback"]);
    let err = stderr(&out);
    assert!(
        err.contains("did not put there (data/queue/d.json)")
            && err.contains("data/queue/c.json")
            && err.contains("leaves 1 unchanged file in place")
            && !err.contains("tasks.db"),
        "{err}"
    );
    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        queue(&app),
        owned(&[("a.json", "a"), ("b.json", "b"), ("c.json", "c, changed")])
    );
    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        queue(&app),
        owned(&[("a.json", "a"), ("c.json", "c"), ("d.json", "d")])
    );
    assert_eq!(
        fs::read(app.path("data/tasks.db")).unwrap(),
        tasks,
        "the database --only did not name never moved"
    );
    app.assert_no_leftovers();
}

#[test]
fn a_file_left_in_place_that_changed_since_goes_aside_and_comes_back_on_a_second_rollback() {
    let app = a_queue_of(&[("a.json", b"a")]);
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fs::write(app.path("data/queue/a.json"), b"a, edited").unwrap();

    let out = app.run(&["rollback"]);
    let err = stderr(&out);
    assert!(
        err.contains("1 file it left in place that changed since (data/queue/a.json)"),
        "{err}"
    );
    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(queue(&app), owned(&[]), "set aside, never overwritten");
    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(queue(&app), owned(&[("a.json", "a, edited")]));
}

#[test]
fn a_swap_record_of_a_newer_version_is_refused_not_misread() {
    let app = a_queue_of(&[("a.json", b"a")]);
    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut record = swap_record(&out);
    record["record_version"] = 3.into();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = Path::new(report["swap"]["aside_dir"].as_str().unwrap()).join("RESTORE.json");
    fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    let before = hashes(&app.path("data"));
    let out = app.run(&["rollback", "--yes"]);
    let err = stderr(&out);
    assert!(
        err.contains("record_version 3, newer than this backup reads (2)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(hashes(&app.path("data")), before, "nothing was changed");
}
