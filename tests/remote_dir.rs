use std::fs;

use serde_json::Value;

use crate::support::{App, stderr};

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

fn flip_a_byte(path: &std::path::Path) {
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
