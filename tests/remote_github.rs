use std::fs;
use std::process::Output;

use serde_json::json;

use crate::fake_github::{FakeGitHub, Fault, Route, TOKEN, archive_media_type};
use crate::openapi;
use crate::support::{
    App, GITHUB_REPO, REFUSING_URL, archive_name, assert_exit_saying, fake_with_private_repo,
    github_config, github_config_with_budget, no_token_leak, output_with_stdin, row_counts, stderr,
    stdout, tag_of,
};

const REPO: &str = GITHUB_REPO;

/// An app whose remote is `repo` on the fake, with retry waits cut to milliseconds.
fn github_app(fake: &FakeGitHub, repo: &str, rows: usize) -> App {
    github_app_with(fake, repo, rows, "")
}

fn github_app_with(fake: &FakeGitHub, repo: &str, rows: usize, extra: &str) -> App {
    let app = App::new(rows);
    app.write_config(&github_config(&fake.api_url, repo, extra));
    app
}

/// A fake GitHub holding [`REPO`], and an app of `rows` rows that has pushed one snapshot there.
fn github_app_with_snapshot(rows: usize) -> (FakeGitHub, App) {
    let fake = fake_with_private_repo(REPO);
    let app = github_app(&fake, REPO, rows);
    assert_eq!(run(&app, &["now"]).status.code(), Some(0));
    (fake, app)
}

/// The app loses its data and its local snapshots: `restore latest` brings the data back from
/// GitHub alone.
fn restores_from_github_alone(app: &App) {
    let expected = row_counts(&app.path("data/tasks.db"));
    fs::remove_dir_all(app.path("backups")).unwrap();
    fs::remove_dir_all(app.path("data")).unwrap();
    let out = run(app, &["restore", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(row_counts(&app.path("data/tasks.db")), expected);
}

fn run(app: &App, args: &[&str]) -> Output {
    app.run_github(args)
}

/// Runs the binary with no token in the environment and `stdin` as its input.
fn run_with_stdin(app: &App, args: &[&str], stdin: &str) -> Output {
    no_token_leak(output_with_stdin(&mut app.command(args), stdin))
}

/// One release, holding one complete asset: the app's local archive, under its own name and
/// with its compressor's media type.
fn assert_one_complete_release(fake: &FakeGitHub, app: &App) {
    let releases = fake.releases(REPO);
    assert_eq!(releases.len(), 1, "{releases:?}");
    let assets = &releases[0].assets;
    assert_eq!(assets.len(), 1, "{assets:?}");
    assert_eq!(assets[0].state, "uploaded");
    assert_eq!(
        assets[0].name,
        archive_name(&app.path("backups"), &releases[0].tag)
    );
    assert_eq!(assets[0].content_type, archive_media_type(&assets[0].name));
}

#[test]
fn push_list_and_restore_through_the_fake_github() {
    let fake = fake_with_private_repo(REPO);
    let app = github_app(&fake, REPO, 500);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_one_complete_release(&fake, &app);
    let release = &fake.releases(REPO)[0];
    assert!(
        release.body.contains("<!-- backup-agent "),
        "{}",
        release.body
    );
    assert!(
        release.body.contains("tasks at schema 3"),
        "{}",
        release.body
    );

    let out = run(&app, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["where"], "both");

    // A lost machine: no local snapshots, no live data.
    let expected = row_counts(&app.path("data/tasks.db"));
    fs::remove_dir_all(app.path("backups")).unwrap();
    fs::remove_dir_all(app.path("data")).unwrap();
    let out = run(&app, &["restore", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("from the remote copy"),
        "{}",
        stdout(&out)
    );
    assert_eq!(row_counts(&app.path("data/tasks.db")), expected);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// A snapshot that waited locally goes up described by its manifest (which the run reads), and
/// an archive whose manifest cannot be read goes up as it is, with a warning, described by less.
#[test]
fn waiting_snapshots_go_up_described_by_their_manifests() {
    let fake = fake_with_private_repo(REPO);
    let app = github_app(&fake, REPO, 50);
    // No token: the snapshot waits locally.
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let unreadable = "bk-20200101T000000Z-manual-laptop-0a0a0a";
    let path = app.path("backups").join(format!("{unreadable}.tar.gz"));
    fs::write(&path, b"not an archive").unwrap();
    backup_agent::fsutil::write_checksum(&path, &crate::support::sha256_hex(b"not an archive"))
        .unwrap();

    let out = run(&app, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "snapshot {unreadable}: its manifest cannot be read (a damaged archive, or a newer version's); it is pushed as it is, and `backup verify {unreadable}` says why"
        )),
        "{}",
        stderr(&out)
    );
    let releases = fake.releases(REPO);
    assert_eq!(releases.len(), 3, "{releases:?}");
    for release in &releases {
        if release.tag == unreadable {
            assert!(
                release
                    .body
                    .starts_with("Snapshot taken 2020-01-01 00:00:00 UTC; archive"),
                "{}",
                release.body
            );
        } else {
            assert!(
                release.body.contains("tasks at schema 3"),
                "{}",
                release.body
            );
        }
    }
}

#[test]
fn transient_faults_are_retried_and_converge_on_one_release() {
    let fake = fake_with_private_repo(REPO);
    fake.inject(Route::CreateRelease, Fault::server_error());
    fake.inject(Route::CreateRelease, Fault::secondary_limit(60));
    fake.inject(Route::ListAssets, Fault::primary_limit(3600));
    // The upload is stored but the answer is lost: the retry meets the asset.
    fake.inject(Route::Upload, Fault::ResetAfterStore);
    let app = github_app(&fake, REPO, 300);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_one_complete_release(&fake, &app);
    let log = fake.log().join("\n");
    for seen in [
        "POST /repos/alice/app-backups/releases -> 502",
        "POST /repos/alice/app-backups/releases -> 403",
        "POST /repos/alice/app-backups/releases -> 201",
        "/assets -> 403",
    ] {
        assert!(log.contains(seen), "{seen} not in\n{log}");
    }
    // The stored-then-reset upload was found by the retry, not uploaded twice.
    assert_eq!(
        log.matches("POST /repos/alice/app-backups/releases/")
            .count(),
        0,
        "{log}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn partial_uploads_are_replaced_not_looped_on() {
    for fault in [Fault::ResetMidUpload, Fault::StarterLeftover] {
        let fake = fake_with_private_repo(REPO);
        fake.inject(Route::Upload, fault.clone());
        let app = github_app(&fake, REPO, 300);
        let out = run(&app, &["now"]);
        assert_eq!(out.status.code(), Some(0), "{fault:?}: {}", stderr(&out));
        assert_one_complete_release(&fake, &app);
        assert_eq!(fake.violations(), Vec::<String>::new());
    }
}

#[test]
fn a_public_repository_is_refused_and_nothing_is_uploaded() {
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, false);
    let app = github_app(&fake, REPO, 10);
    let out = run(&app, &["now"]);
    assert_exit_saying(&out, 4, "is public");
    assert!(fake.releases(REPO).is_empty());
    assert_eq!(app.archives("backups").len(), 1, "the snapshot stays local");
}

/// An internal repository reports `private: true`, yet its whole enterprise can read it: refused
/// like a public one, by pushes, `auth status` and `doctor`.
#[test]
fn an_internal_repository_is_refused_like_a_public_one() {
    let fake = FakeGitHub::start();
    fake.add_internal_repo(REPO);
    let app = github_app(&fake, REPO, 10);
    let out = run(&app, &["now"]);
    assert_exit_saying(
        &out,
        4,
        "is internal: everyone in its enterprise can read it",
    );
    assert!(fake.releases(REPO).is_empty());
    assert_eq!(app.archives("backups").len(), 1, "the snapshot stays local");

    let out = run(&app, &["auth", "status", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["repo_state"], "internal", "{status}");
    let out = run(&app, &["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("INTERNAL"), "{}", stdout(&out));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn bad_credentials_and_an_empty_repository_fail_at_once_with_what_to_do() {
    let fake = fake_with_private_repo(REPO);
    fake.inject(Route::GetRepo, Fault::bad_credentials());
    let app = github_app(&fake, REPO, 10);
    let out = run(&app, &["now"]);
    assert_exit_saying(&out, 4, "401");
    let repo_reads = fake.count_requests(|l| l.starts_with(&format!("GET /repos/{REPO} ")));
    assert_eq!(repo_reads, 1, "no retry after a 401: {:?}", fake.log());

    let empty = "alice/empty";
    fake.add_empty_repo(empty);
    let app = github_app(&fake, empty, 10);
    let out = run(&app, &["now"]);
    assert_exit_saying(&out, 4, "is empty");
    assert!(stderr(&out).contains("first commit"), "{}", stderr(&out));
}

#[test]
fn a_damaged_remote_copy_is_refused_on_restore() {
    let (fake, app) = github_app_with_snapshot(100);
    let tag = fake.releases(REPO)[0].tag.clone();
    fake.corrupt_asset(REPO, &archive_name(&app.path("backups"), &tag));
    fs::remove_dir_all(app.path("backups")).unwrap();
    let out = run(&app, &["verify", "latest"]);
    assert_exit_saying(&out, 1, "damaged");
}

#[test]
fn the_fakes_answers_are_checked_against_githubs_description() {
    // The checker itself: a wrong body is caught, a right one passes.
    let wrong = json!({"id": "not a number", "tag_name": 1});
    assert!(openapi::check_response("GET", "/repos/o/r/releases/tags/v1", 200, &wrong).is_err());
    let example = openapi::spec()["components"]["examples"]["release"]["value"].clone();
    openapi::check_response("GET", "/repos/o/r/releases/tags/v1", 200, &example).unwrap();
    let asset = openapi::spec()["components"]["examples"]["release-asset"]["value"].clone();
    openapi::check_response("GET", "/repos/o/r/releases/assets/7", 200, &asset).unwrap();
    assert!(
        openapi::check_response(
            "GET",
            "/repos/o/r/releases/assets/7",
            200,
            &json!({"id": 7})
        )
        .is_err()
    );
}

#[test]
fn an_archive_over_the_asset_limit_goes_up_in_parts_and_comes_back_whole() {
    let fake = fake_with_private_repo(REPO);
    fake.set_max_asset(4096);
    let app = github_app_with(&fake, REPO, 2_000, "max_asset_bytes = 4096");
    // Some incompressible content, so the archive needs several parts.
    let noise: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    rusqlite::Connection::open(app.path("data/tasks.db"))
        .unwrap()
        .execute("INSERT INTO notes (text) VALUES (?1)", [hex(&noise)])
        .unwrap();
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let releases = fake.releases(REPO);
    let parts = &releases[0].assets;
    assert!(parts.len() >= 3, "{} parts", parts.len());
    assert!(
        parts
            .iter()
            .all(|p| p.data.len() <= 4096 && p.state == "uploaded")
    );
    assert!(
        parts[0]
            .name
            .ends_with(&format!(".part-001-of-{:03}", parts.len()))
    );

    let local = app.archives("backups");
    let out = run(&app, &["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["where"], "both", "{rows}");
    restores_from_github_alone(&app);
    assert_eq!(local.len(), 1);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Another machine's 150 releases share the repository: the listing walks every page, and
/// this machine's push leaves them alone.
#[test]
fn every_page_is_listed_and_another_hosts_releases_are_left_alone() {
    let fake = fake_with_private_repo(REPO);
    for i in 0..150 {
        let tag = format!(
            "bk-20260301T{:02}{:02}00Z-scheduled-other-laptop-{i:06x}",
            i / 60,
            i % 60
        );
        fake.add_snapshot_release(REPO, &tag, b"another machine's archive");
    }
    fake.add_release(REPO, "v1.0.0", "app.zip", b"not ours");
    let app = github_app(&fake, REPO, 20);
    let out = run(&app, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&app, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows.len(),
        151,
        "150 of the other host and ours; not v1.0.0"
    );
    assert_eq!(
        rows.iter().filter(|r| r["host"] == "other-laptop").count(),
        150
    );
    let releases = fake.releases(REPO);
    assert_eq!(releases.len(), 152);
    assert!(
        releases
            .iter()
            .filter(|r| r.tag.contains("other-laptop"))
            .all(|r| r.assets.len() == 1 && *r.assets[0].data == b"another machine's archive")
    );
    assert!(fake.log().iter().any(|l| l.contains("/releases -> 200")));
}

/// The repository does not exist: pushes say how to make it, `init --create` makes it private
/// with a first commit, and the next push goes through.
#[test]
fn init_create_makes_a_private_repository_that_takes_snapshots() {
    let fake = FakeGitHub::start();
    let repo = "octo-user/app-backups";
    let app = github_app(&fake, repo, 50);
    let out = run(&app, &["now"]);
    assert_exit_saying(&out, 4, "backup init --create");
    let out = run(&app, &["init"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(fake.repo_private(repo), None, "init alone creates nothing");

    let out = run(&app, &["init", "--create", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ready: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ready["created"], true, "{ready}");
    assert_eq!(fake.repo_private(repo), Some(true));
    let out = run(&app, &["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("is private"), "{}", stdout(&out));
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        fake.releases(repo).len(),
        2,
        "the snapshot that waited locally, and the new one"
    );

    // Repositories are made under the token's account: another owner is refused clearly.
    let app = github_app(&fake, "some-org/backups", 5);
    let out = run(&app, &["init", "--create"]);
    assert_exit_saying(&out, 4, "repo = \"octo-user/backups\"");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// The repository was renamed on GitHub after the config was written: GitHub redirects the
/// old name (301 for reads, 307 for writes), and push, list and restore follow.
#[test]
fn a_renamed_repository_is_followed_for_push_list_and_restore() {
    let (fake, app) = github_app_with_snapshot(200);
    fake.rename_repo(REPO, "alice/renamed-backups");
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.releases("alice/renamed-backups").len(), 2);
    let out = run(&app, &["list", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows.iter().all(|r| r["where"] == "both"), "{rows:?}");

    restores_from_github_alone(&app);
    let log = fake.log().join("\n");
    assert!(
        log.contains(&format!("POST /repos/{REPO}/releases -> 307")),
        "{log}"
    );
    assert!(
        log.contains("/releases/assets/") && log.contains("-> 301"),
        "{log}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// GitHub may stream an asset directly (200) instead of redirecting to storage.
#[test]
fn an_asset_streamed_directly_by_the_api_restores_too() {
    let fake = fake_with_private_repo(REPO);
    fake.set_direct_downloads(true);
    // A 429 with retry-after on the way: waited for, then the call goes through.
    fake.inject(
        Route::GetRepo,
        Fault::Status(
            429,
            json!({"message": "Too Many Requests"}),
            vec![("retry-after".into(), "1".into())],
        ),
    );
    let app = github_app(&fake, REPO, 120);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = row_counts(&app.path("data/tasks.db"));
    fs::remove_dir_all(app.path("backups")).unwrap();
    let out = run(&app, &["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(row_counts(&app.path("data/tasks.db")), expected);
    let log = fake.log().join("\n");
    assert!(log.contains(&format!("GET /repos/{REPO} -> 429")), "{log}");
    assert!(
        !log.contains("/objects/"),
        "no storage host involved: {log}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// `auth login` reads the token from stdin, checks it, and keeps it in the OS keyring (the
/// kernel keyutils store here); pushes then need no token in the environment.
#[test]
fn auth_login_keeps_the_token_in_the_keyring_and_logout_removes_it() {
    let fake = fake_with_private_repo(REPO);
    let app = github_app(&fake, REPO, 30);

    let out = run_with_stdin(&app, &["auth", "login"], "ghp_wrongtoken\n");
    assert_exit_saying(&out, 4, "401");
    let out = run_with_stdin(&app, &["auth", "status", "--json"], "");
    assert!(
        !stdout(&out).contains("\"keyring\""),
        "a rejected token is not kept"
    );

    let out = run_with_stdin(&app, &["auth", "login"], &format!("{TOKEN}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("is private"), "{}", stdout(&out));
    let out = run_with_stdin(&app, &["auth", "status", "--json"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["source"], "keyring", "{status}");
    assert_eq!(status["repo_state"], "private", "{status}");

    let out = run_with_stdin(&app, &["now"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fake.releases(REPO).len(), 1);

    let out = run_with_stdin(&app, &["auth", "logout"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run_with_stdin(&app, &["auth", "status", "--json"], "");
    assert!(!stdout(&out).contains("\"keyring\""), "{}", stdout(&out));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Retention on GitHub: this machine's surplus releases go with their tags; another host's
/// releases stay, whatever their age.
#[test]
fn prune_deletes_surplus_releases_and_their_tags_and_only_this_hosts() {
    let fake = fake_with_private_repo(REPO);
    let host = backup_agent::tag::this_host();
    let mut mine = Vec::new();
    for (i, minute) in [0, 10, 20, 30].into_iter().enumerate() {
        for h in ["", "other-laptop"] {
            let who = if h.is_empty() { host.as_str() } else { h };
            let tag = format!("bk-20260301T10{minute:02}00Z-scheduled-{who}-{i:06x}");
            fake.add_snapshot_release(REPO, &tag, b"an archive");
            if h.is_empty() {
                mine.push(tag);
            }
        }
    }
    let app = github_app(&fake, REPO, 5);
    let out = run(&app, &["prune", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["other_hosts"], 4, "{report:#}");
    let left: Vec<String> = fake.releases(REPO).into_iter().map(|r| r.tag).collect();
    assert_eq!(left.len(), 5, "{left:?}");
    assert!(left.contains(&mine[3]), "the newest of the hour stays");
    for gone in &mine[..3] {
        assert!(!left.contains(gone));
        assert!(
            !fake.tags(REPO).contains(gone),
            "{gone}: its tag is deleted too"
        );
    }
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// A server whose asset limit is below the configured one (an old GitHub Enterprise Server)
/// refuses the upload with 422: it fails at once and says which setting to change.
#[test]
fn an_asset_over_the_servers_limit_is_refused_with_what_to_set() {
    let fake = fake_with_private_repo(REPO);
    fake.set_max_asset(4096);
    let app = github_app(&fake, REPO, 2_000);
    let out = run(&app, &["now"]);
    assert_exit_saying(&out, 4, "max_asset_bytes");
    let uploads = fake.count_requests(|l| l.starts_with("POST /repos/alice/app-backups/releases/"));
    assert_eq!(uploads, 1, "no retry of a 422: {:?}", fake.log());
    assert!(fake.releases(REPO)[0].assets.is_empty());
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// GitHub cannot be reached at all: the snapshot stays local, and the error is one line.
#[test]
fn an_unreachable_github_fails_with_one_line_and_keeps_the_snapshot() {
    let api_url = REFUSING_URL;
    let app = App::new(10);
    app.write_config(&github_config_with_budget(api_url, REPO, 1, ""));
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("network") && err.contains("safe locally"),
        "{err}"
    );
    assert_eq!(app.archives("backups").len(), 1);
}

/// `doctor` against GitHub names the token's source but never its value, and a public
/// repository fails its own line.
#[test]
fn doctor_checks_the_token_source_and_the_repository_privacy() {
    let fake = fake_with_private_repo(REPO);
    let app = github_app(&fake, REPO, 10);
    let out = run(&app, &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {report}"))
            .clone()
    };
    // Found, but only in this shell: the scheduled job would not see it.
    assert_eq!(check("token")["verdict"], "warn");
    assert!(
        check("token")["fix"]
            .as_str()
            .unwrap()
            .contains("backup auth login")
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings do not fail: {}",
        stdout(&out)
    );
    assert!(
        check("token")["detail"]
            .as_str()
            .unwrap()
            .contains("GH_ENTERPRISE_TOKEN")
    );
    assert_eq!(check("remote")["verdict"], "ok", "{report}");
    assert_eq!(check("repo private")["verdict"], "ok", "{report}");

    fake.add_repo("alice/open", false);
    let app = github_app(&fake, "alice/open", 10);
    let out = run(&app, &["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains("repo private"))
        .unwrap()
        .to_string();
    assert!(
        line.starts_with("FAIL") && line.contains("PUBLIC"),
        "{line}"
    );
    assert!(fake.releases("alice/open").is_empty());
}

/// At every log level, including everything the HTTP stack says, the token never shows; and
/// a retried fault is logged as it happens.
#[test]
fn logs_at_every_level_never_show_the_token() {
    let fake = fake_with_private_repo(REPO);
    fake.inject(Route::CreateRelease, Fault::server_error());
    let app = github_app(&fake, REPO, 10);
    for level in [&["-v"][..], &["-vvv"][..]] {
        let mut args = vec!["now"];
        args.extend_from_slice(level);
        let out = run(&app, &args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = no_token_leak(
        app.command(&["now"])
            .env("GH_ENTERPRISE_TOKEN", TOKEN)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("TRACE") || stderr(&out).contains("DEBUG"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_damaged_local_copy_is_found_restored_around_and_repaired_with_github() {
    let fake = fake_with_private_repo(REPO);
    let app = github_app(&fake, REPO, 50);
    crate::remote_dir::a_damaged_local_copy_is_found_shown_restored_around_and_repaired(
        &app,
        &|args| run(&app, args),
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// A damaged local copy no check has found yet: `verify` finds it while extracting, confirms it
/// against its record, and checks GitHub's copy instead; the next `now` repairs it.
#[test]
fn a_damaged_local_copy_found_while_extracting_is_replaced_by_githubs_copy() {
    let (fake, app) = github_app_with_snapshot(50);
    let name = app.archives("backups")[0].clone();
    let tag = tag_of(&name);
    let local = app.path("backups").join(&name);
    let good = fs::read(&local).unwrap();
    crate::remote_dir::flip_a_byte(&local);

    let out = run(&app, &["verify", tag]);
    assert_exit_saying(
        &out,
        0,
        &format!("the local copy of {tag} is damaged; verified the remote copy"),
    );
    assert!(
        stdout(&out).contains("from the remote copy"),
        "{}",
        stdout(&out)
    );
    let out = run(&app, &["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["local_damaged"], true, "{rows}");

    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("repaired local copy of {tag} from the remote")),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read(&local).unwrap(), good);
    app.assert_no_leftovers();
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Immutable releases take no assets once published: the release is made as a draft (no tag
/// yet), the archive uploaded into it (a reset upload retried there) and checked, then published
/// without taking the repository's Latest release.
#[test]
fn with_immutable_releases_a_snapshot_is_uploaded_to_a_draft_then_published() {
    let fake = fake_with_private_repo(REPO);
    fake.set_immutable_releases(REPO, false);
    fake.inject(Route::Upload, Fault::ResetMidUpload);
    let app = github_app(&fake, REPO, 200);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_one_complete_release(&fake, &app);
    let release = &fake.releases(REPO)[0];
    assert!(!release.draft && release.immutable, "{release:?}");
    assert_eq!(release.make_latest.as_deref(), Some("false"));
    assert_eq!(fake.tags(REPO), vec![release.tag.clone()]);
    let log = fake.log();
    let created = log
        .iter()
        .position(|l| l.starts_with(&format!("POST /repos/{REPO}/releases -> 201")))
        .expect("created");
    let published = log
        .iter()
        .position(|l| l.starts_with("PATCH ") && l.ends_with("-> 200"))
        .expect("published");
    let uploaded = log
        .iter()
        .rposition(|l| l.contains("/assets -> 201"))
        .expect("uploaded");
    assert!(created < uploaded && uploaded < published, "{log:#?}");

    // Restored from the immutable release like any other.
    let expected = row_counts(&app.path("data/tasks.db"));
    fs::remove_dir_all(app.path("backups")).unwrap();
    let out = run(&app, &["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(row_counts(&app.path("data/tasks.db")), expected);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// A run stopped before publishing leaves a draft holding the archive: the next run reuses it
/// (no second upload), deletes another draft of the same tag, and publishes.
#[test]
fn a_draft_left_by_an_earlier_attempt_is_reused_and_extra_drafts_deleted() {
    let fake = fake_with_private_repo(REPO);
    fake.set_immutable_releases(REPO, false);
    fake.inject(
        Route::UpdateRelease,
        Fault::Status(
            403,
            json!({"message": "Resource not accessible by personal access token"}),
            vec![],
        ),
    );
    let app = github_app(&fake, REPO, 100);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let left = fake.releases(REPO);
    assert_eq!(left.len(), 1);
    assert!(left[0].draft && left[0].assets.len() == 1, "{left:?}");
    assert!(fake.tags(REPO).is_empty(), "a draft has no tag");
    let tag = left[0].tag.clone();
    fake.add_draft(REPO, &tag);

    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let releases = fake.releases(REPO);
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert!(releases.iter().all(|r| !r.draft && r.assets.len() == 1));
    assert_eq!(releases.iter().filter(|r| r.tag == tag).count(), 1);
    let uploads = fake.count_requests(|l| l.starts_with("POST") && l.contains("/assets "));
    assert_eq!(uploads, 2, "one per snapshot: {:#?}", fake.log());
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Another attempt published the tag while this one uploaded: the publish meets 422
/// `already_exists`, and GitHub does not show the release by its tag at once (404), which is
/// retried; the other release is kept and this draft deleted.
#[test]
fn a_404_by_tag_after_already_exists_is_retried_and_converges() {
    let fake = fake_with_private_repo(REPO);
    fake.inject(Route::UpdateRelease, Fault::PublishedMeanwhile);
    // The two lookups before the draft (the push's, then the upload's) find nothing anyway;
    // the third, after the conflict, is GitHub's lag.
    for _ in 0..3 {
        fake.inject(
            Route::GetReleaseByTag,
            Fault::Status(404, json!({"message": "Not Found"}), vec![]),
        );
    }
    let app = github_app(&fake, REPO, 100);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_one_complete_release(&fake, &app);
    assert!(!fake.releases(REPO)[0].draft);
    let log = fake.log();
    let conflict = log
        .iter()
        .position(|l| l.starts_with("PATCH ") && l.ends_with("-> 422"))
        .expect("the publish met the other release");
    let lookups: Vec<&String> = log[conflict..]
        .iter()
        .filter(|l| l.contains("/releases/tags/"))
        .collect();
    assert!(
        lookups.len() == 2 && lookups[0].ends_with("-> 404") && lookups[1].ends_with("-> 200"),
        "{log:#?}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Retention in a repository whose tags GitHub will not delete (immutable releases under a tag
/// ruleset): the releases go, the tags stay, and the prune says so and succeeds.
#[test]
fn prune_treats_an_undeletable_tag_as_done_with_a_note() {
    let fake = fake_with_private_repo(REPO);
    let host = backup_agent::tag::this_host();
    for (i, minute) in [0, 10, 20, 30].into_iter().enumerate() {
        let tag = format!("bk-20260301T10{minute:02}00Z-scheduled-{host}-{i:06x}");
        fake.add_snapshot_release(REPO, &tag, b"an archive");
    }
    fake.set_immutable_releases(REPO, true);
    let app = github_app(&fake, REPO, 5);
    let out = run(&app, &["prune", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes: Vec<&str> = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["note"].as_str())
        .collect();
    assert_eq!(notes.len(), 3, "{report:#}");
    assert!(notes[0].contains("keeps its git tag"), "{}", notes[0]);
    assert_eq!(fake.releases(REPO).len(), 1);
    assert_eq!(fake.tags(REPO).len(), 4, "the tags stay");

    // The next prune has nothing left to do: the snapshots are gone.
    let out = run(&app, &["prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("note:"), "{}", stdout(&out));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// 5,000 releases, this machine's behind the newer ones of other hosts: GitHub's release list
/// stops at 1,000 results (422 past it), yet `list`, `restore`, a push and `prune` all work, and
/// a push reads only what it needs.
#[test]
fn five_thousand_releases_past_the_1000_result_cap_stay_reachable() {
    let fake = fake_with_private_repo(REPO);
    let host = backup_agent::tag::this_host();
    // Three old snapshots of this machine in one hour: retention keeps only the newest.
    let old: Vec<String> = (0..3)
        .map(|i| format!("bk-20260101T10{:02}00Z-scheduled-{host}-{i:06x}", i * 10))
        .collect();
    for tag in &old {
        fake.add_snapshot_release(REPO, tag, b"an old archive");
    }
    let app = github_app(&fake, REPO, 100);
    assert_eq!(run(&app, &["now"]).status.code(), Some(0));
    let pushed = fake.releases(REPO).last().unwrap().tag.clone();
    for i in 0..5_000 {
        let tag = format!(
            "bk-202603{:02}T{:02}{:02}00Z-scheduled-host-{}-{i:06x}",
            1 + i / 1440 % 28,
            i / 60 % 24,
            i % 60,
            i % 15
        );
        fake.add_snapshot_release(REPO, &tag, b"another host's archive");
    }

    // A lost machine: nothing local; its snapshot is 5,001st in GitHub's newest-first list.
    let expected = row_counts(&app.path("data/tasks.db"));
    fs::remove_dir_all(app.path("backups")).unwrap();
    fs::remove_dir_all(app.path("data")).unwrap();
    let out = run(&app, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 5_004);
    assert!(rows.iter().any(|r| r["tag"] == pushed.as_str()), "{pushed}");
    let out = run(&app, &["restore", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(row_counts(&app.path("data/tasks.db")), expected);

    // The capped REST list answers as GitHub does; a push walks it only as far as it must and
    // never lists everything.
    let before = fake.log().len();
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = fake.log()[before..].to_vec();
    assert!(
        log.iter()
            .any(|l| l == &format!("GET /repos/{REPO}/releases -> 422")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("/graphql")), "{log:#?}");
    let pages = log
        .iter()
        .filter(|l| l.starts_with(&format!("GET /repos/{REPO}/releases ->")))
        .count();
    assert!(pages <= 2 * 11, "{pages} pages");
    assert_eq!(fake.releases(REPO).len(), 5_005);

    let out = run(&app, &["prune", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let left: Vec<String> = fake.releases(REPO).into_iter().map(|r| r.tag).collect();
    assert!(!left.contains(&old[0]) && !left.contains(&old[1]), "pruned");
    assert!(left.contains(&old[2]), "the newest of its hour stays");
    assert_eq!(left.len(), 5_003);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Tokens are per host, as gh has them: the fake is a server other than github.com, so a
/// github.com token in GH_TOKEN or GITHUB_TOKEN is never sent to it; GH_ENTERPRISE_TOKEN (before
/// GITHUB_ENTERPRISE_TOKEN) is; and gh is asked for this host's token with `--hostname`.
#[test]
fn tokens_follow_ghs_per_host_conventions() {
    let fake = fake_with_private_repo(REPO);
    let app = github_app(&fake, REPO, 5);
    let host = fake.api_url.trim_start_matches("http://").to_string();
    let out = no_token_leak(
        app.command(&["auth", "status"])
            .env("GITHUB_TOKEN", TOKEN)
            .env("GH_TOKEN", TOKEN)
            .env("PATH", "/nonexistent")
            .output()
            .unwrap(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("no GitHub token found for {host}"))
            && err.contains("set GH_ENTERPRISE_TOKEN")
            && err.contains("GH_TOKEN and GITHUB_TOKEN are for github.com only"),
        "{err}"
    );
    assert!(fake.log().is_empty(), "nothing was sent: {:?}", fake.log());

    let status = |cmd: &mut std::process::Command| -> serde_json::Value {
        let out = no_token_leak(cmd.output().unwrap());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let found = status(
        app.command(&["auth", "status", "--json"])
            .env("GH_ENTERPRISE_TOKEN", TOKEN)
            .env("GITHUB_ENTERPRISE_TOKEN", "ghp_notthisone"),
    );
    assert_eq!(found["source"], "env_gh_enterprise_token", "{found}");
    let found = status(
        app.command(&["auth", "status", "--json"])
            .env("GITHUB_ENTERPRISE_TOKEN", TOKEN),
    );
    assert_eq!(found["source"], "env_github_enterprise_token", "{found}");

    // gh answers with github.com's token unless asked for this host.
    let bin = tempfile::tempdir().unwrap();
    let gh = bin.path().join("gh");
    fs::write(
        &gh,
        format!(
            "#!/bin/sh\nif [ \"$*\" = \"auth token --hostname {host}\" ]; then echo {TOKEN}; else echo ghp_githubcomtoken; fi\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&gh, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let found = status(app.command(&["auth", "status", "--json"]).env("PATH", path));
    assert_eq!(found["source"], "gh_cli", "{found}");
    assert_eq!(found["repo_state"], "private", "{found}");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// GraphQL answers its rate limit with a 200 whose `errors` say so: waited for and tried again.
#[test]
fn a_graphql_rate_limit_is_waited_for() {
    let (fake, app) = github_app_with_snapshot(10);
    fake.inject(
        Route::GraphQl,
        Fault::Status(
            200,
            json!({"errors": [{"type": "RATE_LIMIT", "code": "graphql_rate_limit", "message": "API rate limit already exceeded for user ID 1."}]}),
            vec![],
        ),
    );
    let out = run(&app, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["where"], "both");
    let queries = fake.count_requests(|l| l.contains("/graphql"));
    assert_eq!(queries, 2, "{:#?}", fake.log());
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// An older version published first and uploaded after: in a repository with immutable
/// releases that left a published release without its archive, which GitHub never completes.
/// The push fails at once (no retries), saying the snapshot cannot go to GitHub and what to do.
#[test]
fn an_immutable_release_without_its_archive_is_refused_with_what_to_do_and_passed_over() {
    let fake = fake_with_private_repo(REPO);
    fake.inject(
        Route::CreateRelease,
        Fault::Status(403, json!({"message": "Resource not accessible"}), vec![]),
    );
    let app = github_app(&fake, REPO, 10);
    assert_eq!(run(&app, &["now"]).status.code(), Some(4));
    let tag = tag_of(&app.archives("backups")[0]).to_string();
    fake.set_immutable_releases(REPO, false);
    fake.add_release_without_assets(REPO, &tag);
    // The new snapshot goes up; the one GitHub can never take is a warning, every run, and in
    // `status`, not a failure that would stop retention.
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: snapshot")
            && stderr(&out).contains("can never go to GitHub")
            && stderr(&out).contains("delete its local archive"),
        "{}",
        stderr(&out)
    );
    let status = run(&app, &["status", "--json"]);
    let warnings = serde_json::from_slice::<serde_json::Value>(&status.stdout).unwrap()["warnings"]
        .to_string();
    assert!(warnings.contains("can never go to GitHub"), "{warnings}");
    let refused = fake.count_requests(|l| l.ends_with("/assets -> 422"));
    assert_eq!(refused, 1, "no retry: {:#?}", fake.log());
    // The snapshot behind it is pushed past it, not held back.
    let releases = fake.releases(REPO);
    let stuck = releases.iter().find(|r| r.tag == tag).unwrap();
    assert!(stuck.assets.is_empty());
    let newer = tag_of(&app.archives("backups")[1]).to_string();
    let pushed = releases.iter().find(|r| r.tag == newer && !r.draft);
    assert!(
        pushed.is_some_and(|r| !r.assets.is_empty()),
        "{releases:#?}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// Drafts no push will finish (a second draft of a published tag, left by a retried create; a
/// draft of a snapshot whose local archive is gone) are deleted by `prune` once they are hours
/// old; a fresh draft (a push may be under way) and other hosts' drafts are left alone.
#[test]
fn prune_deletes_this_hosts_abandoned_drafts_once_they_are_old() {
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, true);
    let app = github_app(&fake, REPO, 10);
    assert_eq!(run(&app, &["now"]).status.code(), Some(0));
    let published = tag_of(&app.archives("backups")[0]).to_string();
    // bk-<time>-<kind>-<host>-<suffix>: the same host, another time, no local archive.
    let mut parts: Vec<&str> = published.split('-').collect();
    parts[1] = "20260101T000000Z";
    let gone = parts.join("-");
    let other_host = "bk-20260101T000000Z-manual-elsewhere-abc123";
    for tag in [published.as_str(), gone.as_str(), other_host] {
        fake.add_draft(REPO, tag);
    }
    let drafts = |fake: &FakeGitHub| -> Vec<String> {
        let mut d: Vec<String> = fake
            .releases(REPO)
            .into_iter()
            .filter(|r| r.draft)
            .map(|r| r.tag)
            .collect();
        d.sort();
        d
    };
    let prune_at = |clock: Option<String>| {
        let mut cmd = app.command(&["prune", "--json"]);
        cmd.env("GH_ENTERPRISE_TOKEN", TOKEN);
        if let Some(clock) = clock {
            cmd.env("BACKUP_TEST_CLOCK", clock);
        }
        cmd.output().unwrap()
    };

    let out = prune_at(None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(drafts(&fake).len(), 3, "fresh drafts stay");

    let later = (chrono::Utc::now() + chrono::TimeDelta::hours(7))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let out = prune_at(Some(later));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["abandoned_deleted"], 2, "{report}");
    assert_eq!(drafts(&fake), [other_host.to_string()]);
    assert!(
        fake.releases(REPO)
            .iter()
            .any(|r| r.tag == published && !r.draft && !r.assets.is_empty())
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// A differential goes up after its base, its release body names the base, and a machine with
/// only GitHub rebuilds it.
#[test]
fn a_differential_restores_from_github_alone() {
    let fake = fake_with_private_repo(REPO);
    let app = github_app(&fake, REPO, 800);
    crate::differential::round_trip_through(&app, &|app, args| run(app, args));
    let releases = fake.releases(REPO);
    assert_eq!(releases.len(), 2, "{releases:?}");
    assert!(
        releases.iter().any(|r| r.body.contains("\"base\":\"bk-")),
        "{releases:?}"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}
