//! Differential snapshots: a scheduled run stores only the pages (and files) that changed since
//! the last full, restores rebuild it from that full, retention keeps the full, and a missing
//! base is refused by name.

use std::fs;
use std::path::Path;
use std::process::Output;

use rusqlite::Connection;
use serde_json::Value;

use crate::support::{App, DIR_REMOTE_CONFIG, execute_on, json_array, stderr, stdout};

/// An app with `rows` tasks and three queue files, the queue folder included.
fn app_with_queue(rows: usize) -> App {
    let app = App::new(rows);
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[[include]]\npath = \"data/queue\"\n"
    ));
    fs::create_dir_all(app.path("data/queue")).unwrap();
    for i in 1..=3 {
        fs::write(
            app.path(&format!("data/queue/job-{i}.json")),
            format!("{{\"job\":{i}}}"),
        )
        .unwrap();
    }
    app
}

/// What `now --json` or `run --json` printed, after checking it succeeded.
fn report(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(out), stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every row of `tasks`, in order, as one string: equal strings, equal tables.
fn rows(db: &Path) -> String {
    Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT count(*) || ':' || coalesce(group_concat(id || '|' || title || '|' || body, ';'), '') FROM (SELECT * FROM tasks ORDER BY id)",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// The queue folder's files and contents.
fn queue(app: &App) -> Vec<(String, Vec<u8>)> {
    let mut found: Vec<(String, Vec<u8>)> = fs::read_dir(app.path("data/queue"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

/// Changes a few rows spread over the table (one in 400, so a few pages), and the queue: one file changed, one
/// removed, one added.
fn change_a_little(app: &App) {
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = title || ' (edited)' WHERE id % 400 = 7",
    );
    fs::write(
        app.path("data/queue/job-1.json"),
        "{\"job\":1,\"done\":true}",
    )
    .unwrap();
    fs::remove_file(app.path("data/queue/job-2.json")).unwrap();
    fs::write(app.path("data/queue/job-4.json"), "{\"job\":4}").unwrap();
}

/// The archive of `tag` in the app's folder `rel`, whichever compression made it.
fn archive_of(app: &App, rel: &str, tag: &str) -> std::path::PathBuf {
    ["tar.gz", "tar.zst"]
        .iter()
        .map(|ext| app.path(&format!("{rel}/{tag}.{ext}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no archive of {tag} in {rel}"))
}

/// The tags of the archives in the app's folder `rel`, oldest first.
fn tags_in(app: &App, rel: &str) -> Vec<String> {
    app.archives(rel)
        .iter()
        .map(|name| name.split(".tar.").next().unwrap().to_string())
        .collect()
}

fn archive_size(app: &App, tag: &str) -> u64 {
    fs::metadata(archive_of(app, "backups", tag)).unwrap().len()
}

#[test]
fn a_run_after_a_full_stores_what_changed_and_restores_identical_from_the_remote_alone() {
    let app = app_with_queue(4000);
    let full = report(&app.run(&["run", "--json"]));
    assert_eq!(full["base"], Value::Null, "the first snapshot is a full");
    let full_tag = full["tag"].as_str().unwrap().to_string();
    assert!(
        app.path(&format!("backups/page-hashes/{full_tag}/tasks"))
            .is_file(),
        "a full keeps its page hashes"
    );

    change_a_little(&app);
    let diff = report(&app.run(&["run", "--json"]));
    let diff_tag = diff["tag"].as_str().unwrap().to_string();
    assert_eq!(diff["base"], full_tag.as_str(), "{diff}");
    assert_eq!(diff["pushed"], serde_json::json!([diff_tag]));
    let (full_size, diff_size) = (archive_size(&app, &full_tag), archive_size(&app, &diff_tag));
    assert!(
        diff_size * 10 < full_size,
        "the differential ({diff_size} bytes) stores a fraction of the full ({full_size} bytes)"
    );
    let want_rows = rows(&app.path("data/tasks.db"));
    let want_queue = queue(&app);

    // list and show say what it is, from the local copy and from the remote alone.
    let listed = app.list_json();
    assert_eq!(listed[0]["tag"], diff_tag.as_str());
    assert_eq!(listed[0]["base"], full_tag.as_str());
    assert_eq!(listed[1]["base"], Value::Null);
    assert!(listed.iter().all(|e| e.get("base_missing").is_none()));
    let out = app.run(&["show", &diff_tag]);
    assert!(
        stdout(&out).contains(&format!("differential of {full_tag}")),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("changed since the base"),
        "{}",
        stdout(&out)
    );

    // A dead disk: the local folder is gone; the remote holds the full and the differential.
    fs::remove_dir_all(app.path("backups")).unwrap();
    let listed = app.list_json();
    assert_eq!(
        listed[0]["base"],
        full_tag.as_str(),
        "the remote says it too"
    );
    execute_on(
        app.path("data/tasks.db"),
        "DELETE FROM tasks WHERE id > 100",
    );
    fs::write(app.path("data/queue/job-1.json"), "garbage").unwrap();

    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("rebuilt from its base {full_tag} (downloaded)")),
        "{}",
        stderr(&out)
    );
    assert_eq!(rows(&app.path("data/tasks.db")), want_rows);
    assert_eq!(
        queue(&app),
        want_queue,
        "changed, removed and added files as snapshotted"
    );
    app.assert_no_leftovers();

    // Both drills pass: the local copies (none now) and the remote's.
    for args in [
        &["verify", "--remote", &diff_tag][..],
        &["verify", "--all"][..],
    ] {
        let out = app.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    let to = app.path("copy");
    let out = app.run(&["restore", &diff_tag, "--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(rows(&to.join("data/tasks.db")), want_rows);
}

#[test]
fn a_manual_snapshot_stands_alone_unless_asked_and_full_every_bounds_the_base() {
    let app = App::new(500);
    let at = |clock: &str, args: &[&str]| report(&app.run_at(clock, args));
    let first = at("2026-03-01T10:00:00Z", &["run", "--json"]);
    assert_eq!(first["base"], Value::Null);
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = 'x' WHERE id = 3",
    );
    let manual = at("2026-03-01T10:20:00Z", &["now", "--json"]);
    assert_eq!(manual["base"], Value::Null, "`now` takes a full");
    let asked = at("2026-03-01T10:40:00Z", &["now", "--diff", "--json"]);
    assert_eq!(asked["base"], manual["tag"], "the newest full is the base");
    let hourly = at("2026-03-01T11:00:00Z", &["run", "--json"]);
    assert_eq!(hourly["base"], manual["tag"]);
    let next_day = at("2026-03-02T10:30:00Z", &["run", "--json"]);
    assert_eq!(
        next_day["base"],
        Value::Null,
        "older than full_every (1d): a full"
    );
    let after = at("2026-03-02T11:30:00Z", &["run", "--json"]);
    assert_eq!(after["base"], next_day["tag"]);

    // A clock set back before the base: a full, never a base from the future.
    let back = at("2026-03-02T09:00:00Z", &["run", "--json"]);
    assert_eq!(back["base"], Value::Null);

    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[snapshot]\nfull_every = \"0s\"\n"
    ));
    let always = at("2026-03-02T12:30:00Z", &["run", "--json"]);
    assert_eq!(
        always["base"],
        Value::Null,
        "full_every = 0s: every snapshot a full"
    );
}

#[test]
fn a_change_of_more_than_half_makes_a_full() {
    let app = App::new(2000);
    report(&app.run(&["run", "--json"]));
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET body = upper(body) || hex(randomblob(16))",
    );
    let second = report(&app.run(&["run", "--json"]));
    assert_eq!(second["base"], Value::Null, "{second}");
}

#[test]
fn lost_page_hashes_are_made_again_from_the_full_archive() {
    let app = App::new(2000);
    let full = report(&app.run(&["run", "--json"]));
    fs::remove_dir_all(app.path("backups/page-hashes")).unwrap();
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = 'y' WHERE id = 1500",
    );
    let diff = report(&app.run(&["run", "--json"]));
    assert_eq!(diff["base"], full["tag"]);
    let tag = full["tag"].as_str().unwrap();
    assert!(
        app.path(&format!("backups/page-hashes/{tag}/tasks"))
            .is_file()
    );
    let out = app.run(&["verify", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_differential_whose_base_is_gone_is_refused_by_name_and_the_next_run_takes_a_full() {
    let app = App::new(1000);
    let full = report(&app.run(&["run", "--json"]));
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = 'z' WHERE id = 10",
    );
    let diff = report(&app.run(&["run", "--json"]));
    let full_tag = full["tag"].as_str().unwrap();
    assert_eq!(diff["base"], full_tag);
    for place in ["backups", "remote"] {
        let archive = archive_of(&app, place, full_tag);
        fs::remove_file(format!("{}.sha256", archive.display())).unwrap();
        fs::remove_file(archive).unwrap();
    }

    let listed = app.list_json();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["base_missing"], true, "{listed:?}");
    let out = app.run(&["list"]);
    assert!(stdout(&out).contains("(base missing!)"), "{}", stdout(&out));
    let out = app.run(&["status"]);
    assert!(
        stdout(&out).contains(&format!("differential of {full_tag}")),
        "{}",
        stdout(&out)
    );

    let before = fs::read(app.path("data/tasks.db")).unwrap();
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(full_tag) && err.contains("cannot be restored"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        fs::read(app.path("data/tasks.db")).unwrap(),
        before,
        "nothing live touched"
    );
    let out = app.run(&["verify", "--all"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stdout(&out).contains(full_tag) || stderr(&out).contains(full_tag));

    let next = report(&app.run(&["run", "--json"]));
    assert_eq!(
        next["base"],
        Value::Null,
        "the next run starts afresh with a full"
    );
    app.assert_no_leftovers();
}

#[test]
fn retention_keeps_the_base_of_a_kept_differential_and_says_so() {
    let app = App::new(300);
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[retention]\nhourly = 1\ndaily = 0\nweekly = 0\nmonthly = 0\nyearly = 0\nmanual = 0\n"
    ));
    let mut tags = Vec::new();
    for (i, clock) in [
        "2026-03-01T10:00:00Z",
        "2026-03-01T11:00:00Z",
        "2026-03-01T12:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        execute_on(
            app.path("data/tasks.db"),
            &format!("UPDATE tasks SET title = 't{i}' WHERE id = 5"),
        );
        let out = report(&app.run_at(clock, &["run", "--json"]));
        tags.push(out["tag"].as_str().unwrap().to_string());
    }
    // Only the newest hour is kept, and with it its base; the middle differential goes.
    let held = tags_in(&app, "remote");
    assert_eq!(held, [tags[0].clone(), tags[2].clone()]);
    assert_eq!(tags_in(&app, "backups"), held);
    let out = app.run_at("2026-03-01T12:30:00Z", &["prune", "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("base of {}", tags[2])), "{text}");
    let out = app.run_at("2026-03-01T12:30:00Z", &["list", "--explain"]);
    assert!(stdout(&out).contains("base of"), "{}", stdout(&out));
    let out = app.run(&["verify", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_prune_killed_half_way_leaves_no_differential_without_its_base() {
    let app = App::new(300);
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[retention]\nhourly = 2\ndaily = 0\nweekly = 0\nmonthly = 0\nyearly = 0\nmanual = 0\n"
    ));
    let clocks = [
        "2026-03-01T10:00:00Z",
        "2026-03-01T11:00:00Z",
        "2026-03-01T12:00:00Z",
        "2026-03-02T11:00:00Z",
    ];
    for (i, clock) in clocks.iter().enumerate() {
        execute_on(
            app.path("data/tasks.db"),
            &format!("UPDATE tasks SET title = 't{i}' WHERE id = 5"),
        );
        // Each run prunes; the next-to-last run's prune keeps two hours (and their base).
        report(&app.run_at(clock, &["run", "--json"]));
    }
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = 'last' WHERE id = 5",
    );
    let out = app
        .command(&["run"])
        .env(backup_agent::clock::CLOCK_ENV, "2026-03-02T12:00:00Z")
        .env(backup_agent::failpoint::FAILPOINT_ENV, "prune-deleted")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "killed at its first deletion");
    for place in ["backups", "remote"] {
        let listed = tags_in(&app, place);
        for tag in &listed {
            let archive = archive_of(&app, place, tag);
            let manifest = backup_agent::archive::read::read_manifest(&archive).unwrap();
            if let Some(base) = manifest.base {
                assert!(
                    listed.contains(&base.tag.to_string()),
                    "{place}: {tag} without its base {}: {listed:?}",
                    base.tag
                );
            }
        }
    }
    let out = app.run_at("2026-03-02T12:10:00Z", &["verify", "--all"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn a_run_killed_while_taking_a_differential_leaves_nothing_and_the_next_one_works() {
    let app = App::new(1000);
    let full = report(&app.run(&["run", "--json"]));
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = 'k' WHERE id = 7",
    );
    for point in ["snapshot-copied", "archive-written", "archive-renamed"] {
        let out = app.run_dying_at(point, &["run"]);
        assert_ne!(out.status.code(), Some(0), "{point}");
        let out = app.run(&["status"]);
        assert!(out.status.code().is_some(), "{point}");
        app.assert_no_leftovers();
    }
    let next = report(&app.run(&["run", "--json"]));
    assert_eq!(next["base"], full["tag"]);
    let out = app.run(&["verify", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// On any remote, through `run` (the remote's own way of running the binary): a full, then a
/// differential of it; with the local folder gone, `list` names the base from the remote's own
/// record, and `restore latest` rebuilds the data from the two remote archives.
pub fn round_trip_through(app: &App, run: &dyn Fn(&App, &[&str]) -> Output) {
    let full = report(&run(app, &["run", "--json"]));
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = 'remote' WHERE id = 17",
    );
    let diff = report(&run(app, &["run", "--json"]));
    assert_eq!(diff["base"], full["tag"], "{diff}");
    assert_eq!(diff["pushed"], serde_json::json!([diff["tag"]]), "{diff}");
    let want = rows(&app.path("data/tasks.db"));

    fs::remove_dir_all(app.path("backups")).unwrap();
    let listed = json_array(&run(app, &["list", "--json"]));
    assert_eq!(listed[0]["tag"], diff["tag"]);
    assert_eq!(listed[0]["base"], full["tag"], "{listed:?}");
    assert_eq!(listed[0]["where"], "remote");
    fs::remove_dir_all(app.path("data")).unwrap();
    let out = run(app, &["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("(downloaded)"), "{}", stderr(&out));
    assert_eq!(rows(&app.path("data/tasks.db")), want);
    app.assert_no_leftovers();
}

#[test]
fn a_base_damaged_here_since_its_last_check_is_taken_from_the_remote() {
    let app = App::new(1500);
    let full = report(&app.run(&["run", "--json"]));
    execute_on(
        app.path("data/tasks.db"),
        "UPDATE tasks SET title = 'd' WHERE id = 1000",
    );
    report(&app.run(&["run", "--json"]));
    let want = rows(&app.path("data/tasks.db"));
    // Rot in the local full, its record untouched: nothing knows yet.
    let local_full = archive_of(&app, "backups", full["tag"].as_str().unwrap());
    let mut bytes = fs::read(&local_full).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&local_full, bytes).unwrap();

    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks");
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("(downloaded)"), "{}", stderr(&out));
    assert_eq!(rows(&app.path("data/tasks.db")), want);
    let listed = app.list_json();
    assert_eq!(
        listed[1]["local_damaged"], true,
        "found and recorded: {listed:?}"
    );
    app.assert_no_leftovers();
}
