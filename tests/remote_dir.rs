use std::fs;
use std::process::Output;

use serde_json::Value;

use crate::support::{App, row_counts, sha256_hex, stderr, stdout};

#[test]
fn now_pushes_to_the_remote_and_the_copy_is_identical() {
    let app = App::new(50);
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let local = app.archives("backups");
    assert_eq!(local, app.archives("remote"));
    assert_eq!(
        fs::read(app.path("backups").join(&local[0])).unwrap(),
        fs::read(app.path("remote").join(&local[0])).unwrap()
    );
    let listed = app.list_json();
    assert_eq!(listed[0]["where"], "both");
    assert!(app.temp_leftovers().is_empty());
}

#[test]
fn snapshots_that_could_not_be_pushed_wait_locally_and_go_up_with_the_next_run() {
    let app = App::new(50);
    // The remote drive is "unmounted": its folder is gone.
    fs::remove_dir(app.path("remote")).unwrap();
    let out = app.run(&["now"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "push failure has its own exit code"
    );
    let err = stderr(&out);
    assert!(err.contains("safe locally"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !app.path("remote").exists(),
        "a missing remote folder is never created"
    );
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(app.archives("backups").len(), 2);
    let last: Value =
        serde_json::from_slice(&fs::read(app.path("backups/last_run.json")).unwrap()).unwrap();
    assert_eq!(last["snapshot_ok"], true);
    assert_eq!(last["push_ok"], false);
    assert_eq!(last["pending"].as_array().unwrap().len(), 2);

    // The remote comes back: the next run pushes everything that waited.
    fs::create_dir(app.path("remote")).unwrap();
    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pushed"].as_array().unwrap().len(), 3);
    assert_eq!(app.archives("remote"), app.archives("backups"));
    assert!(app.list_json().iter().all(|e| e["where"] == "both"));
}

#[test]
fn a_remote_that_is_a_file_is_reported_and_the_snapshot_is_kept() {
    let app = App::new(10);
    fs::remove_dir(app.path("remote")).unwrap();
    fs::write(app.path("remote"), b"not a folder").unwrap();
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("not a folder"), "{}", stderr(&out));
    assert_eq!(app.archives("backups").len(), 1);
    assert!(app.temp_leftovers().is_empty());
}

#[test]
fn a_truncated_remote_copy_is_listed_as_differ_and_replaced_by_the_next_run() {
    let app = App::new(50);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let name = app.archives("remote")[0].clone();
    let remote_copy = app.path("remote").join(&name);
    let good = fs::read(&remote_copy).unwrap();
    fs::write(&remote_copy, &good[..good.len() / 2]).unwrap();
    assert_eq!(
        app.list_json()[0]["where"],
        "differ",
        "a truncated copy is no copy"
    );
    assert_eq!(app.run(&["run"]).status.code(), Some(0));
    assert_eq!(fs::read(&remote_copy).unwrap(), good);
    assert!(app.list_json().iter().all(|e| e["where"] == "both"));
}

#[test]
fn both_sides_record_the_archive_checksum() {
    let app = App::new(5);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let name = app.archives("backups")[0].clone();
    let sha = crate::support::sha256_hex(&fs::read(app.path("backups").join(&name)).unwrap());
    for side in ["backups", "remote"] {
        let record = fs::read_to_string(app.path(side).join(format!("{name}.sha256"))).unwrap();
        assert_eq!(record, format!("{sha}  {name}\n"), "{side}");
    }
}

/// A local archive damaged after it was made is never pushed (it could replace a good copy);
/// the others still go up, and the exit code says something is wrong.
#[test]
fn a_damaged_local_archive_is_not_pushed() {
    let app = App::new(50);
    fs::remove_dir(app.path("remote")).unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(4));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(app.run(&["now"]).status.code(), Some(4));
    let names = app.archives("backups");
    flip_a_byte(&app.path("backups").join(&names[0]));

    fs::create_dir(app.path("remote")).unwrap();
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no longer matches") && err.contains("No other copy"),
        "{err}"
    );
    let remote = app.archives("remote");
    assert!(
        !remote.contains(&names[0]),
        "the damaged archive stayed local"
    );
    assert!(remote.contains(&names[1]));
    assert_eq!(remote.len(), 2, "the good older one and the new one");
}

pub fn flip_a_byte(path: &std::path::Path) {
    let mut bytes = fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

/// A local archive without its record cannot prove it is the good copy: an intact remote copy is
/// never replaced by it, even when the local file is truncated.
#[test]
fn an_unrecorded_local_archive_never_replaces_a_remote_copy() {
    let app = App::new(50);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let name = app.archives("backups")[0].clone();
    let local = app.path("backups").join(&name);
    let good = fs::read(&local).unwrap();
    fs::write(&local, &good[..1000]).unwrap();
    fs::remove_file(app.path("backups").join(format!("{name}.sha256"))).unwrap();
    // Even with the remote's record gone too, nothing proves the local copy is the good one.
    fs::remove_file(app.path("remote").join(format!("{name}.sha256"))).unwrap();

    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was replaced"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(app.path("remote").join(&name)).unwrap(), good);
}

/// A push killed after the rename but before the record: the next run adds the record.
#[test]
fn a_remote_archive_missing_its_record_gets_it_on_the_next_run() {
    let app = App::new(20);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let name = app.archives("remote")[0].clone();
    let record = app.path("remote").join(format!("{name}.sha256"));
    let expected = fs::read_to_string(&record).unwrap();
    fs::remove_file(&record).unwrap();
    assert_eq!(app.run(&["run"]).status.code(), Some(0));
    assert_eq!(fs::read_to_string(&record).unwrap(), expected);
}

/// The archive name's tag.
fn tag_of(archive: &str) -> &str {
    archive.strip_suffix(".tar.gz").unwrap()
}

/// The row of `tag` in `backup list --json`.
fn listed(rows: &[Value], tag: &str) -> Value {
    rows.iter()
        .find(|r| r["tag"] == tag)
        .unwrap_or_else(|| panic!("{tag} not listed: {rows:?}"))
        .clone()
}

/// `backup list --json`, through `backup`.
fn list_json(backup: &dyn Fn(&[&str]) -> Output) -> Vec<Value> {
    let out = backup(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Adds `n` rows to the app's live database.
fn add_rows(app: &App, n: usize) {
    let conn = rusqlite::Connection::open(app.path("data/tasks.db")).unwrap();
    for i in 0..n {
        conn.execute(
            "INSERT INTO tasks (title) VALUES (?1)",
            [format!("later {i}")],
        )
        .unwrap();
    }
}

/// Snapshot tags are to the second: runs a second apart never share one.
pub fn next_second() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// The life of a damaged local copy whose remote copy is good, through `backup` (which runs the
/// binary with whatever the remote needs); the GitHub remote's tests run it too. A byte flipped
/// in the least recently checked archive (its size kept) is found by the next run's bounded
/// check, shown by `list` and `status`, restored around from the remote, and repaired by the
/// run after.
pub fn a_damaged_local_copy_is_found_shown_restored_around_and_repaired(
    app: &App,
    backup: &dyn Fn(&[&str]) -> Output,
) {
    let out = backup(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows_then = row_counts(&app.path("data/tasks.db"));
    add_rows(app, 20);
    next_second();
    let out = backup(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The first archive was checked by the second `now`, and is the older of the two: the least
    // recently checked.
    let damaged = app.archives("backups")[0].clone();
    let tag = tag_of(&damaged);
    let local_copy = app.path("backups").join(&damaged);
    let size = fs::metadata(&local_copy).unwrap().len();
    flip_a_byte(&local_copy);
    assert_eq!(fs::metadata(&local_copy).unwrap().len(), size);
    let record = fs::read_to_string(app.path("backups").join(format!("{damaged}.sha256")))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    // Found by the next run, within its bound; the remote's good copy makes it a warning.
    next_second();
    let out = backup(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(tag)).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("backup: warning: ")
            && lines[0].contains("no longer matches")
            && lines[0].contains("the remote holds a good copy"),
        "{err}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = &report["local_check"];
    assert_eq!(check["checked"].as_array().unwrap().len(), 1, "{check}");
    assert_eq!(check["checked"][0]["tag"], tag, "{check}");
    assert_eq!(check["checked"][0]["finding"], "damaged", "{check}");
    assert!(
        check["checked_bytes"].as_u64() <= check["budget_bytes"].as_u64(),
        "{check}"
    );
    assert_eq!(
        check["damaged"],
        serde_json::json!([{ "tag": tag, "remote_good": true }])
    );
    let last: Value =
        serde_json::from_slice(&fs::read(app.path("backups/last_run.json")).unwrap()).unwrap();
    assert_eq!(last["ok"], true, "{last}");
    assert_eq!(last["local_check"]["damaged"][0]["tag"], tag, "{last}");

    // Shown by `list` and `status`, which read only local files.
    let rows = list_json(backup);
    assert_eq!(listed(&rows, tag)["where"], "both");
    assert_eq!(listed(&rows, tag)["local_damaged"], true);
    assert!(
        rows.iter()
            .filter(|r| r["tag"] != tag)
            .all(|r| r["local_damaged"] == false),
        "{rows:?}"
    );
    let out = backup(&["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning, not a failure: {}",
        stdout(&out)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = status["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{status}");
    assert!(warnings[0].as_str().unwrap().contains(tag), "{status}");
    let out = backup(&["status"]);
    assert!(
        stdout(&out).contains("  warning    local archive "),
        "{}",
        stdout(&out)
    );

    // The restore takes the remote's copy, and says so.
    let out = backup(&["restore", tag, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "the local copy of {tag} is damaged; restored from the remote copy"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(row_counts(&app.path("data/tasks.db")), rows_then);

    // The next run repairs the local copy from the remote.
    next_second();
    let out = backup(&["run", "--json", "-v"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("repaired local copy of {tag} from the remote")),
        "{}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["local_check"]["repaired"], serde_json::json!([tag]));
    assert_eq!(report["local_check"]["damaged"], serde_json::json!([]));
    assert_eq!(sha256_hex(&fs::read(&local_copy).unwrap()), record);
    let rows = list_json(backup);
    assert_eq!(listed(&rows, tag)["where"], "both");
    assert_eq!(listed(&rows, tag)["local_damaged"], false);
    let out = backup(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["warnings"], serde_json::json!([]), "{status}");
    assert!(
        app.temp_leftovers().is_empty(),
        "{:?}",
        app.temp_leftovers()
    );
}

#[test]
fn a_damaged_local_copy_is_found_restored_around_and_repaired_with_the_folder_remote() {
    let app = App::new(50);
    a_damaged_local_copy_is_found_shown_restored_around_and_repaired(&app, &|args| app.run(args));
}

/// Without a good copy anywhere, a damaged local archive is refused by restore with one clear
/// line, never pushed, and fails every run until it is dealt with.
#[test]
fn a_damaged_local_copy_with_no_remote_copy_is_refused_and_never_pushed() {
    let app = App::new(50);
    fs::remove_dir(app.path("remote")).unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(4));
    let damaged = app.archives("backups")[0].clone();
    let tag = tag_of(&damaged);
    flip_a_byte(&app.path("backups").join(&damaged));
    fs::create_dir(app.path("remote")).unwrap();
    let live_before = fs::read(app.path("data/tasks.db")).unwrap();

    let out = app.run(&["restore", tag, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("backup: error: ")
            && err.contains(&format!("the local copy of {tag} no longer matches"))
            && err.contains("no good copy of this snapshot exists"),
        "{err}"
    );
    assert_eq!(fs::read(app.path("data/tasks.db")).unwrap(), live_before);

    next_second();
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{damaged} no longer matches"))
            && stderr(&out).contains("No other copy exists"),
        "{}",
        stderr(&out)
    );
    let remote = app.archives("remote");
    assert_eq!(remote.len(), 1, "only the new snapshot went up: {remote:?}");
    assert!(!remote.contains(&damaged));
    let row = listed(&app.list_json(), tag);
    assert_eq!(
        (row["where"].clone(), row["local_damaged"].clone()),
        ("local".into(), true.into())
    );
    let out = app.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(7), "{}", stdout(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["warnings"][0].as_str().unwrap().contains(tag),
        "{status}"
    );
}

/// Each run re-hashes the least recently checked archives, and no more bytes than the archive
/// it just made (at least one archive).
#[test]
fn the_check_hashes_the_least_recently_checked_archives_within_the_new_snapshots_size() {
    let app = App::new(5);
    for _ in 0..3 {
        assert_eq!(app.run(&["now"]).status.code(), Some(0));
        next_second();
    }
    let small = app.archives("backups");
    // A much larger snapshot: its size lets this run check every small archive.
    add_rows(&app, 3000);
    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let check = serde_json::from_slice::<Value>(&out.stdout).unwrap()["local_check"].clone();
    let checked: Vec<&str> = check["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tag"].as_str().unwrap())
        .collect();
    // The second archive was last checked as new by the second `now`; the first was checked
    // again by the third `now`, as the third was made.
    assert_eq!(
        checked,
        [tag_of(&small[1]), tag_of(&small[0]), tag_of(&small[2])],
        "{check}"
    );
    let bytes: u64 = small
        .iter()
        .map(|n| fs::metadata(app.path("backups").join(n)).unwrap().len())
        .sum();
    assert_eq!(check["checked_bytes"], bytes);
    assert!(bytes <= check["budget_bytes"].as_u64().unwrap(), "{check}");
}

/// A budget smaller than the least recently checked archive still checks that one, and only it.
#[test]
fn the_check_takes_one_archive_even_when_it_exceeds_the_budget() {
    let app = App::new(5);
    add_rows(&app, 3000);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let large = app.archives("backups")[0].clone();
    let conn = rusqlite::Connection::open(app.path("data/tasks.db")).unwrap();
    conn.execute("DELETE FROM tasks WHERE title LIKE 'later%'", [])
        .unwrap();
    conn.execute_batch("VACUUM").unwrap();
    drop(conn);
    next_second();
    let out = app.run(&["now", "--json", "-v"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let check = serde_json::from_slice::<Value>(&out.stdout).unwrap()["local_check"].clone();
    assert_eq!(check["checked"].as_array().unwrap().len(), 1, "{check}");
    assert_eq!(check["checked"][0]["tag"], tag_of(&large), "{check}");
    assert!(
        check["checked_bytes"].as_u64() > check["budget_bytes"].as_u64(),
        "{check}"
    );
    assert!(
        stderr(&out).contains("checked 1 local archive(s) against their records"),
        "{}",
        stderr(&out)
    );
}

/// A truncated local copy lists as `differ`; the push that finds it damaged leaves the remote's
/// good copy alone and warns, and the next run puts that copy back in its place.
#[test]
fn a_truncated_local_copy_is_repaired_from_the_remote_by_the_next_run() {
    let app = App::new(50);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let name = app.archives("backups")[0].clone();
    let local = app.path("backups").join(&name);
    let good = fs::read(&local).unwrap();
    fs::write(&local, &good[..good.len() / 2]).unwrap();
    assert_eq!(app.list_json()[0]["where"], "differ");

    next_second();
    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the remote holds a good copy"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(app.path("remote").join(&name)).unwrap(), good);
    next_second();
    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["local_check"]["repaired"],
        serde_json::json!([tag_of(&name)])
    );
    assert_eq!(report["local_check"]["damaged"], serde_json::json!([]));
    assert_eq!(fs::read(&local).unwrap(), good);
    assert!(
        app.list_json()
            .iter()
            .all(|r| r["where"] == "both" && r["local_damaged"] == false)
    );
}
