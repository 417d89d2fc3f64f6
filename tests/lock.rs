use std::fs::{self, File, OpenOptions};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{App, stderr};

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
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    assert!(app.archives("backups").is_empty());
    drop(held);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
}

/// Waits until a run has started work (its staging folder exists).
fn wait_for_staging(app: &App) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(dir) = fs::read_dir(app.path("backups"))
            && dir.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".backup-tmp-staging")
            })
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

#[test]
fn two_concurrent_runs_one_is_refused_and_a_killed_run_blocks_nothing() {
    let app = App::new(400_000);
    let mut first = app
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for_staging(&app), "first run never started");
    let second = app.run(&["now"]);
    assert_eq!(second.status.code(), Some(5), "{}", stderr(&second));

    // kill -9 mid-run: the OS drops its lock; the next run clears its leftovers.
    first.kill().unwrap();
    first.wait().unwrap();
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        app.temp_leftovers().is_empty(),
        "{:?}",
        app.temp_leftovers()
    );
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

/// kill -9 at moments spread over a whole run (copy, compression, rename, push): never a partial
/// archive under a final name, and the next run cleans up and succeeds.
#[test]
fn a_kill_at_any_moment_leaves_no_partial_archive_and_the_next_run_recovers() {
    let app = App::new(1_000);
    {
        // Incompressible rows: the run then spends real time compressing and pushing.
        let conn = rusqlite::Connection::open(app.path("data/tasks.db")).unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) \
             INSERT INTO notes (text) SELECT hex(randomblob(4000)) FROM n",
            [],
        )
        .unwrap();
    }
    let started = Instant::now();
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let full_run = started.elapsed();
    for step in 1..=8u32 {
        let mut child = app
            .command(&["now"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full_run * step / 8);
        let _ = child.kill();
        child.wait().unwrap();
        assert_no_partial_archives(&app);
    }
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        app.temp_leftovers().is_empty(),
        "{:?}",
        app.temp_leftovers()
    );
    assert_no_partial_archives(&app);
    assert_eq!(app.archives("backups"), app.archives("remote"));
}
