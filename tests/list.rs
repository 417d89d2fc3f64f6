use std::fs;

use serde_json::Value;

use crate::support::{App, assert_exit_saying, stderr, stdout};

#[test]
fn list_json_has_a_stable_shape_newest_first() {
    let app = App::new(10);
    assert!(app.list_json().is_empty());
    // Tags order to the millisecond: two runs in one second list in the order they ran.
    let out = app.run_at("2026-03-01T10:00:00.200Z", &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = app.run_at("2026-03-01T10:00:00.700Z", &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = app.list_json();
    assert_eq!(listed.len(), 2);
    for entry in &listed {
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "base",
                "findings",
                "host",
                "kind",
                "local_damaged",
                "note",
                "size",
                "tag",
                "time",
                "where"
            ]
        );
        assert_eq!(entry["findings"], 0, "clean data: {entry}");
        assert!(entry["size"].as_u64().unwrap() > 0);
        let tag = entry["tag"].as_str().unwrap();
        let time = entry["time"].as_str().unwrap();
        // The tag carries the UTC time to the second.
        assert_eq!(&tag[3..11], time[..10].replace('-', ""));
    }
    // Newest first, by when they were taken (as text, `manual` would sort before `scheduled`).
    assert!(listed[0]["time"].as_str() >= listed[1]["time"].as_str());
    assert_eq!(listed[0]["kind"], "manual");

    let human = stdout(&app.run(&["list"]));
    assert!(human.starts_with("ID"), "{human}");
    assert_eq!(human.lines().count(), 3);
}

#[test]
fn list_shows_local_snapshots_when_the_remote_is_unreachable() {
    let app = App::with_snapshot(10);
    fs::remove_dir_all(app.path("remote")).unwrap();
    let out = app.run(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("cannot list the remote"));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Not "local only": what the remote holds is unknown.
    assert_eq!(listed[0]["where"], "local_remote_unknown");
}

#[test]
fn demo_runs_the_whole_job_on_the_embedded_sample_app() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_backup"))
            .args(["demo", "--dir", "sample"])
            .current_dir(dir.path())
            .env_remove("BACKUP_CONFIG")
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("pushed 1 snapshot to"),
        "{}",
        stdout(&out)
    );
    // Run again: the app gains rows and a second snapshot appears beside the first, as the
    // README says; nothing is deleted.
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("retention"), "{}", stdout(&out));
    let remote: Vec<_> = fs::read_dir(dir.path().join("sample/remote"))
        .unwrap()
        .filter(|e| {
            crate::support::is_archive_name(&e.as_ref().unwrap().file_name().to_string_lossy())
        })
        .collect();
    assert_eq!(remote.len(), 2);
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_backup"))
        .args(["--config", "sample/app/backup.toml", "list", "--json"])
        .current_dir(dir.path())
        .env_remove("BACKUP_CONFIG")
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    // The listing the demo printed shows both.
    let rows = stdout(&out).lines().filter(|l| l.contains("bk-")).count();
    assert!(rows >= 2, "{}", stdout(&out));
}

#[test]
fn demo_json_is_one_document_with_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backup"))
        .args(["demo", "--dir", "d", "--json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["snapshots"][0]["tag"], doc["tag"]);
    assert_eq!(doc["snapshots"][0]["where"], "both");
}

#[test]
fn demo_refuses_a_folder_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("mine/app")).unwrap();
    fs::write(dir.path().join("mine/app/backup.toml"), b"# my own config").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backup"))
        .args(["demo", "--dir", "mine"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_exit_saying(&out, 1, "not made by `backup demo`");
    assert_eq!(
        fs::read(dir.path().join("mine/app/backup.toml")).unwrap(),
        b"# my own config"
    );
}

/// The table fits an 80-column terminal whatever the host names and notes, times read as every
/// command shows them, and `--wide` has every cell whole.
#[test]
fn list_fits_80_columns_and_wide_shows_everything_whole() {
    let app = App::new(5);
    let long_host = "a-rather-long-workstation-name-in-the-office";
    let long_note = "before upgrading the app to the version that changes the schema";
    let out = app
        .command(&["now", "--note", long_note])
        .env("BACKUP_TEST_HOST", long_host)
        .env("BACKUP_TEST_CLOCK", "2026-03-01T10:00:00Z")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = app.run_at("2026-03-01T11:00:00Z", &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = app.list_json();
    let tags: Vec<&str> = listed.iter().map(|e| e["tag"].as_str().unwrap()).collect();

    for args in [&["list"][..], &["list", "--explain"]] {
        let out = app.run(args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let table = stdout(&out);
        for line in table.lines() {
            assert!(line.chars().count() <= 80, "{args:?}: {line:?}\n{table}");
        }
        // Another machine's snapshot is listed, so HOST shows; each row names its ID.
        assert!(table.lines().next().unwrap().contains("HOST"), "{table}");
        for tag in &tags {
            assert!(table.contains(&tag[tag.len() - 6..]), "{tag}: {table}");
        }
        assert!(table.contains("2026-03-01 11:00Z"), "{table}");
        assert!(table.contains('…'), "the long cells are cut: {table}");
    }

    let wide = stdout(&app.run(&["list", "--wide"]));
    assert!(wide.starts_with("TAG"), "{wide}");
    let host = listed[1]["host"].as_str().unwrap();
    for text in [tags[0], tags[1], host, long_note] {
        assert!(wide.contains(text), "{text}: {wide}");
    }
    assert!(!wide.contains('…'), "{wide}");

    // Only this machine's snapshots: no HOST column.
    let own = App::with_snapshot(5);
    let table = stdout(&own.run(&["list"]));
    assert!(!table.contains("HOST"), "{table}");
}
