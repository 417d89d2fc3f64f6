//! One ordinary test per invariant of docs/invariants.md (the soak checks them all together).

use std::fs;
use std::process::Output;

use crate::fake_github::{FakeGitHub, Fault, Route, TOKEN};
use crate::support::{App, all_files, sha256_hex, stderr, stdout};

const REPO: &str = "inv/app-backups";

fn github_config(fake: &FakeGitHub) -> String {
    crate::support::github_config(&fake.api_url, REPO, "")
}

fn run_at(app: &App, hour: u32, args: &[&str]) -> Output {
    let out = app
        .command(args)
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .env("BACKUP_TEST_CLOCK", format!("2026-03-01T{hour:02}:05:00Z"))
        .output()
        .unwrap();
    crate::support::no_token_leak(out)
}

fn listed(app: &App) -> Vec<(String, String)> {
    let out = run_at(app, 23, &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["tag"].as_str().unwrap().into(),
                e["where"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Invariant 1: Every snapshot `list` shows on the remote restores, checked from a machine that has no
/// local copy, after pushes that met resets, leftovers and a server error.
#[test]
fn invariant_1_what_the_remote_lists_restores() {
    let fake = crate::support::fake_with_private_repo(REPO);
    let app = App::new(50);
    app.write_config(&github_config(&fake));
    fake.inject(Route::Upload, Fault::ResetAfterStore);
    fake.inject(Route::Upload, Fault::StarterLeftover);
    fake.inject(Route::CreateRelease, Fault::server_error());
    for hour in 1..=4 {
        let out = run_at(&app, hour, &["run"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(fake.clear_faults(), 0, "every injected fault was met");
    let fresh = App::new(0);
    fs::remove_file(fresh.path("data/tasks.db")).unwrap();
    fresh.write_config(&github_config(&fake));
    let on_remote: Vec<String> = listed(&app)
        .into_iter()
        .filter(|(_, w)| w == "both" || w == "remote")
        .map(|(t, _)| t)
        .collect();
    assert!(!on_remote.is_empty());
    for tag in on_remote {
        let out = run_at(&fresh, 23, &["verify", &tag]);
        assert!(out.status.success(), "{tag}: {}", stderr(&out));
    }
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Invariant 2: A run killed at any of its steps leaves the live database byte for byte as it was (the
/// restore side, a swap killed at every step, is `restore::a_crash_at_any_step_of_the_swap_leaves_the_old_or_the_new_state_whole`).
#[test]
fn invariant_2_a_killed_run_never_changes_live_data() {
    let app = App::new(200);
    // The data: the database file and its WAL (absent and empty alike hold no frames). The
    // `-shm` index SQLite may create on open is not data (README "Rules that protect you").
    let live = || {
        ["", "-wal"].map(|suffix| {
            sha256_hex(&fs::read(app.path(&format!("data/tasks.db{suffix}"))).unwrap_or_default())
        })
    };
    let before = live();
    for point in ["snapshot-copied", "push-started"] {
        let out = app.run_dying_at(point, &["run"]);
        assert!(
            out.status.code().is_none(),
            "{point}: the failpoint did not fire"
        );
        assert_eq!(live(), before, "{point}");
    }
}

/// Invariant 3: What a killed command leaves (staging folders, temp files) does not survive the next
/// command, whichever it is, even one that only reads.
#[test]
fn invariant_3_no_leftovers_survive_the_next_command() {
    let app = App::new(100);
    let out = app.run(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (point, args, next) in [
        ("snapshot-copied", &["now"][..], &["status"][..]),
        (
            "restore-extracted",
            &["verify", "latest"][..],
            &["list"][..],
        ),
        (
            "restore-checked",
            &["restore", "latest", "--yes"][..],
            &["config"][..],
        ),
    ] {
        let out = app.run_dying_at(point, args);
        assert!(!out.status.success(), "{point}: the failpoint did not fire");
        assert!(
            !app.temp_leftovers().is_empty(),
            "{point}: the kill left nothing to clean"
        );
        let _ = app.run(next);
        assert_eq!(
            app.temp_leftovers(),
            Vec::<std::path::PathBuf>::new(),
            "{point} then {next:?}"
        );
    }
}

/// Invariant 4: After runs with a reachable remote, local and remote hold the same retained set, even
/// when earlier runs were killed mid-push or met faults.
#[test]
fn invariant_4_local_and_remote_converge() {
    let fake = crate::support::fake_with_private_repo(REPO);
    let app = App::new(50);
    app.write_config(&github_config(&fake));
    for hour in 0..6 {
        if hour % 2 == 1 {
            let out = app
                .command(&["run"])
                .env("GH_ENTERPRISE_TOKEN", TOKEN)
                .env("BACKUP_TEST_CLOCK", format!("2026-03-01T{hour:02}:05:00Z"))
                .env("BACKUP_FAILPOINT", "push-started")
                .output()
                .unwrap();
            assert!(!out.status.success());
        } else {
            fake.inject(Route::Upload, Fault::ResetMidUpload);
            let out = run_at(&app, hour, &["run"]);
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
    let out = run_at(&app, 7, &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fake.clear_faults(), 0, "every injected fault was met");
    let entries = listed(&app);
    assert_eq!(
        entries.len(),
        7,
        "hourly tier keeps every hour: {entries:?}"
    );
    assert!(entries.iter().all(|(_, w)| w == "both"), "{entries:?}");
    assert_eq!(fake.releases(REPO).len(), 7);
}

/// Invariant 5: The token is in no output (checked on every command above), no log at any level, no
/// file the tool writes, and no release body.
#[test]
fn invariant_5_the_token_is_nowhere() {
    let fake = crate::support::fake_with_private_repo(REPO);
    let app = App::new(20);
    app.write_config(&github_config(&fake));
    fake.inject(Route::CreateRelease, Fault::server_error());
    let out = run_at(&app, 1, &["now", "-vvv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = app
        .command(&["run", "--json"])
        .env("GH_ENTERPRISE_TOKEN", TOKEN)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(TOKEN) && !stderr(&out).contains(TOKEN));
    for args in [
        &["status", "--json"][..],
        &["doctor", "--json"][..],
        &["config", "--json"][..],
        &["auth", "status"][..],
    ] {
        let _ = run_at(&app, 2, args);
    }
    let mut files = Vec::new();
    all_files(app.dir.path(), &mut files);
    assert!(files.len() > 3);
    for file in files {
        let bytes = fs::read(&file).unwrap();
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the token is in {}",
            file.display()
        );
    }
    for release in fake.releases(REPO) {
        assert!(!release.body.contains(TOKEN));
    }
    // Nor was it sent where it does not belong (the storage host of downloads).
    assert_eq!(fake.violations(), Vec::<String>::new());
}
