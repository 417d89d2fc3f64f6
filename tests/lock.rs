use std::fs::{self, File, OpenOptions};

use crate::support::{App, assert_exit_saying, stderr};

#[test]
fn a_held_lock_refuses_a_second_run_with_its_own_exit_code() {
    let app = App::new(10);
    fs::create_dir_all(app.path("backups")).unwrap();
    let held = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(app.path("backups/.lock"))
        .unwrap();
    held.try_lock().unwrap();
    let out = app.run(&["now"]);
    assert_exit_saying(&out, 5, "already running");
    assert!(app.archives("backups").is_empty());
    drop(held);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
}

#[test]
fn two_concurrent_runs_one_is_refused_and_a_killed_run_blocks_nothing() {
    let app = App::new(100);
    let mut first = app.paused_at(&["run"], "snapshot-copied");
    let second = app.run(&["now"]);
    assert_eq!(second.status.code(), Some(5), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("already running"),
        "{}",
        stderr(&second)
    );

    // kill -9 mid-run: the OS drops its lock; the next run clears its leftovers.
    first.kill().unwrap();
    assert_eq!(first.wait().unwrap().code(), None, "killed, not exited");
    assert!(
        !app.temp_leftovers().is_empty(),
        "killed with its staging folder"
    );
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    app.assert_no_leftovers();
    assert_eq!(app.archives("backups").len(), 1);
    let _ = File::open(app.path("backups/.lock")).unwrap();
}

/// Every archive under its final name, locally and on the remote, is complete: it decodes to the
/// end and matches its record when it has one.
fn assert_no_partial_archives(app: &App) {
    for side in ["backups", "remote"] {
        for name in app.archives(side) {
            let path = app.path(side).join(&name);
            let entries = crate::support::read_archive(&path);
            assert_eq!(entries[0].0, "MANIFEST.json", "{side}/{name}");
            let record = app.path(side).join(format!("{name}.sha256"));
            if let Ok(text) = fs::read_to_string(&record) {
                let sha = crate::support::sha256_hex(&fs::read(&path).unwrap());
                assert!(
                    text.starts_with(&sha),
                    "{side}/{name} does not match its record"
                );
            }
        }
    }
}

/// The points a run passes, in order: copies made, archive written under its temp name, archive
/// renamed into place, push started, remote temp copy written, remote copy renamed, run record
/// written under its temp name.
const RUN_POINTS: [&str; 7] = [
    "snapshot-copied",
    "archive-written",
    "archive-renamed",
    "push-started",
    "push-copied",
    "push-renamed",
    "temp-written-last_run.json",
];

/// kill -9 at every step of a run (copy, compression, rename, push, record): never a partial
/// archive under a final name, and the next run cleans up and succeeds.
#[test]
fn a_kill_at_any_step_leaves_no_partial_archive_and_the_next_run_recovers() {
    let app = App::new(1_000);
    for point in RUN_POINTS {
        let out = app.run_dying_at(point, &["now"]);
        assert_eq!(
            out.status.code(),
            None,
            "{point}: the run did not die there: {}",
            stderr(&out)
        );
        assert_no_partial_archives(&app);
    }
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    app.assert_no_leftovers();
    assert_no_partial_archives(&app);
    assert_eq!(app.archives("backups"), app.archives("remote"));
}
