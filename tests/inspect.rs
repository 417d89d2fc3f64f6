//! Looking into snapshots: `backup show` (a manifest in words), `backup diff` (two snapshots, or
//! a snapshot and the live data), `backup stats` (counts and sizes, local and remote).

use std::fs;
use std::process::Output;

use serde_json::Value;

use crate::support::{
    App, GITHUB_REPO, TASKS_CONFIG, archive_path, assert_exit_saying, execute_on,
    fake_with_private_repo, github_config, sha256_hex, stderr, stdout,
};

fn json(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(out), stderr(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

/// Every line of a human output fits 80 columns.
fn fits_80_columns(out: &Output) {
    for line in stdout(out).lines() {
        assert!(line.chars().count() <= 80, "{} columns: {line}", line.len());
    }
}

/// An app whose config also includes the folder `queue`, holding `a.txt` and `b.txt`.
fn app_with_files(rows: usize) -> App {
    let app = App::new(rows);
    fs::create_dir_all(app.path("queue")).unwrap();
    fs::write(app.path("queue/a.txt"), "first").unwrap();
    fs::write(app.path("queue/b.txt"), "second").unwrap();
    app.write_config(&format!(
        "{TASKS_CONFIG}[[include]]\npath = \"queue\"\n[remote]\ntype = \"dir\"\npath = \"remote\"\n"
    ));
    app
}

/// `backup now ARGS --json` at `clock`: the new snapshot's tag.
fn snapshot_at(app: &App, clock: &str, args: &[&str]) -> String {
    let mut args = [&["now", "--json"][..], args].concat();
    args.dedup();
    let out = app.run_at(clock, &args);
    json(&out)["tag"].as_str().unwrap().to_string()
}

#[test]
fn show_says_when_where_what_and_the_note_in_text_and_json() {
    let app = app_with_files(10);
    let tag = snapshot_at(
        &app,
        "2026-11-01T10:00:00.100Z",
        &["--note", "before migration 7"],
    );

    let out = app.run_at("2026-11-02T00:00:00Z", &["show", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fits_80_columns(&out);
    let text = stdout(&out);
    for expected in [
        tag.as_str(),
        "2026-11-01 10:00:00Z",
        "manual",
        "before migration 7",
        "both (local ",
        "checks    ok when it was taken",
        "database tasks (data/tasks.db)",
        "schema 3, page size 4096",
        "10 rows",
        "files: 2, 11 B (`--files` lists them)",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["tasks", "10"]),
        "{text}"
    );
    assert!(!text.contains("queue/a.txt"), "{text}");

    let out = app.run_at("2026-11-02T00:00:00Z", &["show", "latest", "--files"]);
    let text = stdout(&out);
    assert!(
        text.contains("queue/a.txt") && text.contains("queue/b.txt"),
        "{text}"
    );

    let shown = json(&app.run(&["show", &tag, "--json"]));
    assert_eq!(shown["tag"], tag.as_str());
    assert_eq!(shown["time"], "2026-11-01T10:00:00Z");
    assert_eq!(shown["kind"], "manual");
    assert_eq!(shown["note"], "before migration 7");
    assert_eq!(shown["where"], "both");
    assert_eq!(shown["manifest_from"], "local");
    assert_eq!(shown["findings"], 0);
    let db = &shown["databases"][0];
    assert_eq!(db["name"], "tasks");
    assert_eq!(db["user_version"], 3);
    assert_eq!(db["page_size"], 4096);
    assert_eq!(db["tables"]["tasks"], 10);
    assert_eq!(db["tables"]["notes"], 0);
    assert_eq!(db["rows"], 10);
    assert_eq!(db["findings"], serde_json::json!({}));
    assert_eq!(shown["files"]["count"], 2);
    assert_eq!(shown["files"]["bytes"], 11);
    assert!(shown["files"].get("list").is_none(), "{shown}");
    let listed = json(&app.run(&["show", &tag, "--json", "--files"]));
    let files = listed["files"]["list"].as_array().unwrap();
    assert_eq!(files[0]["path"], "queue/a.txt");
    assert_eq!(
        files[0]["sha256"],
        sha256_hex(b"first").as_str(),
        "{listed}"
    );

    // A snapshot without a note says null.
    snapshot_at(&app, "2026-11-01T11:00:00.200Z", &[]);
    let shown = json(&app.run_at("2026-11-02T00:00:00Z", &["show", "latest", "--json"]));
    assert_eq!(shown["note"], Value::Null);
}

#[test]
fn show_lists_the_check_findings_recorded_when_the_snapshot_was_taken() {
    let app = App::new(0);
    // A comment on a task that does not exist, written with foreign keys off as most apps run.
    let conn = rusqlite::Connection::open(app.path("data/tasks.db")).unwrap();
    conn.pragma_update(None, "foreign_keys", false).unwrap();
    conn.execute_batch(
        "CREATE TABLE comments (id INTEGER PRIMARY KEY, task_id INTEGER REFERENCES tasks(id));
         INSERT INTO comments (task_id) VALUES (41);",
    )
    .unwrap();
    drop(conn);
    let tag = snapshot_at(&app, "2026-11-01T10:00:00.100Z", &[]);
    let out = app.run(&["show", &tag]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fits_80_columns(&out);
    let text = stdout(&out);
    assert!(text.contains("1 finding when it was taken"), "{text}");
    assert!(
        text.contains("foreign_key_check: 1 row of `comments`"),
        "{text}"
    );
    let shown = json(&app.run(&["show", &tag, "--json"]));
    assert_eq!(shown["findings"], 1);
    assert_eq!(
        shown["databases"][0]["findings"]["foreign_keys"][0]["table"],
        "comments"
    );
}

#[test]
fn show_reads_a_folder_remotes_manifest_in_place() {
    let app = app_with_files(5);
    let tag = snapshot_at(&app, "2026-11-01T10:00:00.100Z", &["--note", "far away"]);
    let local = archive_path(&app.path("backups"), &tag);
    fs::remove_file(&local).unwrap();
    fs::remove_file(format!("{}.sha256", local.display())).unwrap();
    let before = app.names_in("backups");
    let shown = json(&app.run(&["show", &tag[tag.len() - 6..], "--json"]));
    assert_eq!(shown["where"], "remote");
    assert_eq!(shown["manifest_from"], "remote");
    assert_eq!(shown["note"], "far away");
    assert_eq!(shown["local_size"], Value::Null);
    assert_eq!(shown["databases"][0]["tables"]["tasks"], 5);
    // Nothing was downloaded into the local folder, not even for a moment that left a trace.
    assert_eq!(app.names_in("backups"), before);
    app.assert_no_leftovers();
}

#[test]
fn show_of_a_github_only_snapshot_downloads_its_archive_and_removes_it() {
    let fake = fake_with_private_repo(GITHUB_REPO);
    let app = App::new(7);
    app.write_config(&github_config(&fake.api_url, GITHUB_REPO, ""));
    let out = app.run_github(&["now", "--note", "on github", "--json"]);
    let tag = json(&out)["tag"].as_str().unwrap().to_string();

    let fresh = App::new(0);
    fresh.write_config(&github_config(&fake.api_url, GITHUB_REPO, ""));
    let downloads = || {
        fake.count_requests(|l| {
            l.starts_with("GET ") && (l.contains("/releases/assets/") || l.contains("/objects/"))
        })
    };
    let before = downloads();
    let shown = json(&fresh.run_github(&["show", &tag, "--json"]));
    assert_eq!(shown["where"], "remote");
    assert_eq!(shown["manifest_from"], "download");
    assert_eq!(shown["note"], "on github");
    assert_eq!(shown["databases"][0]["tables"]["tasks"], 7);
    assert!(downloads() > before, "{:?}", fake.log());
    fresh.assert_no_leftovers();
    assert!(fresh.archives("backups").is_empty());
}

#[test]
fn an_unknown_or_ambiguous_snapshot_is_the_selectors_one_line_error() {
    let app = App::new(3);
    let first = snapshot_at(&app, "2026-11-01T10:00:00.100Z", &[]);
    let second = snapshot_at(&app, "2026-11-02T10:00:00.200Z", &[]);
    for args in [
        &["show", "0"][..],
        &["diff", "0", "latest"][..],
        &["diff", "0", "--live"][..],
    ] {
        let out = app.run_at("2026-11-03T00:00:00Z", args);
        assert_exit_saying(&out, 2, "give more of the suffix");
        let message = stderr(&out);
        assert!(
            message.contains(&first) && message.contains(&second),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }
    for args in [&["show", "fff"][..], &["diff", "latest", "fff"][..]] {
        let out = app.run_at("2026-11-03T00:00:00Z", args);
        assert_exit_saying(&out, 1, "has a tag ending in fff");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    let out = app.run(&["show", "yesterday"]);
    assert_exit_saying(&out, 2, "is not a snapshot");
    let out = app.run(&["show", "latest~+1"]);
    assert_exit_saying(&out, 2, "after `latest~` give how many snapshots");
}

/// The table rows of a `diff` database section: (table, old, new, change).
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|cells| cells.len() == 4 && cells[3].parse::<i64>().is_ok())
        .collect()
}

#[test]
fn diff_of_two_snapshots_says_which_rows_and_files_changed() {
    let app = app_with_files(10);
    let old = snapshot_at(&app, "2026-11-01T10:00:00.100Z", &[]);
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id > 6");
    execute_on(app.path("data/tasks.db"), "PRAGMA user_version = 4");
    fs::write(app.path("queue/a.txt"), "first, edited").unwrap();
    fs::remove_file(app.path("queue/b.txt")).unwrap();
    fs::write(app.path("queue/c.txt"), "third").unwrap();
    let new = snapshot_at(&app, "2026-11-02T10:00:00.200Z", &[]);

    let out = app.run_at("2026-11-03T00:00:00Z", &["diff", "latest~1", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fits_80_columns(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("from  {old} (2026-11-01 10:00:00Z)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("to    {new} (2026-11-02 10:00:00Z)")),
        "{text}"
    );
    assert!(
        text.contains("database tasks: changed, schema 3 → 4"),
        "{text}"
    );
    assert_eq!(
        table_rows(&text),
        [["notes", "0", "0", "0"], ["tasks", "10", "6", "-4"]],
        "{text}"
    );
    assert!(
        text.contains("files: 1 added, 1 removed, 1 changed, 0 unchanged"),
        "{text}"
    );
    assert!(text.contains("  + queue/c.txt (5 B)"), "{text}");
    assert!(text.contains("  - queue/b.txt (6 B)"), "{text}");
    assert!(text.contains("  ~ queue/a.txt (5 B → 13 B)"), "{text}");

    let diff = json(&app.run(&["diff", &old, &new, "--json"]));
    assert_eq!(diff["from"]["tag"], old.as_str());
    assert_eq!(diff["to"]["tag"], new.as_str());
    assert_eq!(diff["to"]["live"], false);
    let db = &diff["databases"][0];
    assert_eq!(db["name"], "tasks");
    assert_eq!(db["change"], "changed");
    assert_eq!(db["old_user_version"], 3);
    assert_eq!(db["new_user_version"], 4);
    assert_eq!(
        db["tables"][1],
        serde_json::json!({"table": "tasks", "old": 10, "new": 6, "change": -4})
    );
    assert_eq!(diff["files"]["added"][0]["path"], "queue/c.txt");
    assert_eq!(diff["files"]["removed"][0]["path"], "queue/b.txt");
    assert_eq!(diff["files"]["changed"][0]["path"], "queue/a.txt");
    assert_eq!(
        diff["files"]["changed"][0]["new_sha256"],
        sha256_hex(b"first, edited").as_str()
    );
    assert_eq!(diff["files"]["unchanged"], 0);

    // Newer first reads the other way round.
    let back = json(&app.run(&["diff", &new, &old, "--json"]));
    assert_eq!(back["databases"][0]["tables"][1]["change"], 4);
    assert_eq!(back["files"]["added"][0]["path"], "queue/b.txt");
    // A snapshot against itself: nothing changed.
    let same = json(&app.run(&["diff", &new, &new, "--json"]));
    assert_eq!(same["databases"][0]["change"], "unchanged");
    assert_eq!(same["files"]["unchanged"], 2);

    // The older one only on the folder remote: its manifest is read there, in place.
    fs::remove_file(archive_path(&app.path("backups"), &old)).unwrap();
    let diff = json(&app.run(&["diff", &old, &new, "--json"]));
    assert_eq!(diff["from"]["manifest_from"], "remote");
    assert_eq!(diff["to"]["manifest_from"], "local");
    assert_eq!(diff["databases"][0]["tables"][1]["change"], -4);
    app.assert_no_leftovers();
}

#[test]
fn diff_live_reads_the_live_data_without_writing_it() {
    let app = app_with_files(10);
    let tag = snapshot_at(&app, "2026-11-01T10:00:00.100Z", &[]);
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id <= 3");
    execute_on(
        app.path("data/tasks.db"),
        "INSERT INTO notes (text) VALUES ('n')",
    );
    fs::write(app.path("queue/b.txt"), "changed").unwrap();
    let db_before = fs::read(app.path("data/tasks.db")).unwrap();

    let out = app.run(&["diff", &tag, "--live"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fits_80_columns(&out);
    let text = stdout(&out);
    assert!(text.contains("to    the live data (read "), "{text}");
    assert_eq!(
        table_rows(&text),
        [["notes", "0", "1", "+1"], ["tasks", "10", "7", "-3"]],
        "{text}"
    );
    assert!(text.contains("  ~ queue/b.txt (6 B → 7 B)"), "{text}");
    assert!(
        text.contains("files: 0 added, 0 removed, 1 changed, 1 unchanged"),
        "{text}"
    );
    let diff = json(&app.run(&["diff", "latest", "--live", "--json"]));
    assert_eq!(diff["to"]["live"], true);
    assert_eq!(diff["to"]["tag"], Value::Null);
    assert_eq!(diff["databases"][0]["tables"][1]["new"], 7);
    // The live database was only read.
    assert_eq!(fs::read(app.path("data/tasks.db")).unwrap(), db_before);

    // Neither a second snapshot nor --live: a usage error.
    let out = app.run(&["diff", &tag]);
    assert_exit_saying(&out, 2, "or --live for the live data");
    let out = app.run(&["diff", &tag, &tag, "--live"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// `backup COMMAND --json` as host `host` at `clock`: the tag it made.
fn snapshot_as(app: &App, host: &str, clock: &str, command: &str) -> String {
    let out = app
        .command(&[command, "--json"])
        .env("BACKUP_TEST_HOST", host)
        .env(backup_agent::clock::CLOCK_ENV, clock)
        .output()
        .unwrap();
    json(&out)["tag"].as_str().unwrap().to_string()
}

#[test]
fn stats_counts_local_and_remote_per_host_and_kind_with_growth() {
    let app = App::new(10);
    let old = snapshot_as(&app, "laptop", "2026-11-01T10:00:00Z", "now");
    let recent = snapshot_as(&app, "laptop", "2026-11-18T10:00:00Z", "run");
    let other = snapshot_as(&app, "desktop", "2026-11-19T10:00:00Z", "now");
    // The oldest only on the remote now.
    fs::remove_file(archive_path(&app.path("backups"), &old)).unwrap();
    let size = |tag: &str| {
        fs::metadata(archive_path(&app.path("remote"), tag))
            .unwrap()
            .len()
    };
    let (old_size, recent_size, other_size) = (size(&old), size(&recent), size(&other));
    let tally = |count: usize, bytes: u64| serde_json::json!({"count": count, "bytes": bytes});

    let clock = "2026-11-20T00:00:00Z";
    let stats = json(&app.run_at(clock, &["stats", "--json"]));
    assert_eq!(stats["local"], tally(2, recent_size + other_size));
    assert_eq!(
        stats["remote"],
        tally(3, old_size + recent_size + other_size)
    );
    assert_eq!(
        stats["hosts"],
        serde_json::json!([
            {"name": "desktop", "local": tally(1, other_size), "remote": tally(1, other_size)},
            {"name": "laptop", "local": tally(1, recent_size),
             "remote": tally(2, old_size + recent_size)},
        ])
    );
    assert_eq!(
        stats["kinds"],
        serde_json::json!([
            {"name": "manual", "local": tally(1, other_size),
             "remote": tally(2, old_size + other_size)},
            {"name": "scheduled", "local": tally(1, recent_size), "remote": tally(1, recent_size)},
        ])
    );
    assert_eq!(stats["oldest"]["tag"], old.as_str());
    assert_eq!(stats["oldest"]["time"], "2026-11-01T10:00:00Z");
    assert_eq!(stats["newest"]["tag"], other.as_str());
    // The last 7 days hold two snapshots, each counted once.
    let growth = &stats["growth"];
    assert_eq!(growth["days"], 7);
    assert_eq!(growth["since"], "2026-11-13T00:00:00Z");
    assert_eq!(growth["snapshots"], 2);
    assert_eq!(growth["bytes"], recent_size + other_size);
    assert_eq!(growth["bytes_per_day"], (recent_size + other_size) / 7);

    let out = app.run_at(clock, &["stats"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fits_80_columns(&out);
    let text = stdout(&out);
    let cells = |label: &str| {
        text.lines()
            .find(|l| l.starts_with(label))
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{label} in\n{text}"))
    };
    assert_eq!(cells("all ")[1], "2");
    assert_eq!(cells("all ")[4], "3");
    assert_eq!(cells("host laptop")[2], "1");
    assert_eq!(cells("host laptop")[5], "2");
    assert_eq!(cells("kind scheduled")[2], "1");
    assert!(
        text.contains(&format!("oldest  {old} (2026-11-01 10:00:00Z)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("newest  {other} (2026-11-19 10:00:00Z)")),
        "{text}"
    );
    assert!(
        text.contains("growth  ") && text.contains("2 snapshots"),
        "{text}"
    );

    // The remote gone: the local figures, a note, exit 4.
    fs::remove_dir_all(app.path("remote")).unwrap();
    let out = app.run_at(clock, &["stats", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("only the local snapshots are counted"));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["remote"], Value::Null);
    assert_eq!(stats["local"]["count"], 2);
}

#[test]
fn stats_without_snapshots_says_so() {
    let app = App::new(1);
    let out = app.run(&["stats"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no snapshots yet"),
        "{}",
        stdout(&out)
    );
    let stats = json(&app.run(&["stats", "--json"]));
    assert_eq!(stats["local"]["count"], 0);
    assert_eq!(stats["oldest"], Value::Null);
    assert_eq!(stats["growth"]["bytes_per_day"], 0);
}

#[test]
fn show_from_here_when_the_remote_cannot_be_listed_says_so_with_exit_4() {
    let app = App::with_snapshot(4);
    fs::remove_dir_all(app.path("remote")).unwrap();
    let out = app.run(&["show", "latest", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["where"], "local_remote_unknown");
    assert_eq!(shown["databases"][0]["tables"]["tasks"], 4);
    assert!(
        stderr(&out).contains("chosen among the local snapshots"),
        "{}",
        stderr(&out)
    );
}

/// The name `backup show` gives its download of `tag`'s archive in process `pid`.
fn inspect_download_of(app: &App, pid: u32, tag: &str) -> std::path::PathBuf {
    app.path(&format!("backups/.backup-tmp-inspect-{pid}-{tag}.tar.gz"))
}

#[test]
fn a_download_of_show_in_progress_survives_other_commands_and_a_dead_ones_is_removed() {
    let app = App::with_snapshot(3);
    let tag = "bk-20261122T014207Z-manual-laptop-3f9a1c";
    // A live process stands in for a `backup show` still downloading; an ended one for a killed one.
    let mut downloading = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let mut ended = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    ended.kill().unwrap();
    ended.wait().unwrap();
    let in_progress = inspect_download_of(&app, downloading.id(), tag);
    let left_by_dead = inspect_download_of(&app, ended.id(), tag);

    for command in [&["status"][..], &["now"]] {
        fs::write(&in_progress, "partial download").unwrap();
        fs::write(&left_by_dead, "partial download").unwrap();
        let out = app.run(command);
        assert_eq!(out.status.code(), Some(0), "{command:?}: {}", stderr(&out));
        assert!(
            in_progress.exists(),
            "{command:?} removed a download in progress"
        );
        assert!(
            !left_by_dead.exists(),
            "{command:?} kept a dead process's download"
        );
    }

    downloading.kill().unwrap();
    downloading.wait().unwrap();
    let out = app.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    app.assert_no_leftovers();
}
