use std::fs;
use std::process::Output;

use serde_json::json;

use crate::fake_github::{FakeGitHub, Fault, Route, TOKEN};
use crate::openapi;
use crate::support::{App, row_counts, stderr, stdout};

const REPO: &str = "alice/app-backups";

/// An app whose remote is `repo` on the fake, with retry waits cut to milliseconds.
fn github_app(fake: &FakeGitHub, repo: &str, rows: usize) -> App {
    github_app_with(fake, repo, rows, "")
}

fn github_app_with(fake: &FakeGitHub, repo: &str, rows: usize, extra: &str) -> App {
    let app = App::new(rows);
    app.write_config(&format!(
        r#"
[[database]]
name = "tasks"
path = "data/tasks.db"
[local]
dir = "backups"
[remote]
type = "github"
repo = "{repo}"
api_url = "{}"
retry_budget_secs = 5
retry_max_delay_ms = 20
{extra}
"#,
        fake.api_url
    ));
    app
}

fn run(app: &App, args: &[&str]) -> Output {
    let out = app
        .command(args)
        .env("GITHUB_TOKEN", TOKEN)
        .env_remove("GH_TOKEN")
        .output()
        .unwrap();
    for text in [stdout(&out), stderr(&out)] {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
    out
}

fn assert_one_complete_release(fake: &FakeGitHub) {
    let releases = fake.releases(REPO);
    assert_eq!(releases.len(), 1, "{releases:?}");
    let assets = &releases[0].assets;
    assert_eq!(assets.len(), 1, "{assets:?}");
    assert_eq!(assets[0].state, "uploaded");
    assert_eq!(assets[0].name, format!("{}.tar.gz", releases[0].tag));
}

#[test]
fn push_list_and_restore_through_the_fake_github() {
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, true);
    let app = github_app(&fake, REPO, 500);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_one_complete_release(&fake);
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

#[test]
fn transient_faults_are_retried_and_converge_on_one_release() {
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, true);
    fake.inject(Route::CreateRelease, Fault::server_error());
    fake.inject(Route::CreateRelease, Fault::secondary_limit(60));
    fake.inject(Route::ListAssets, Fault::primary_limit(3600));
    // The upload is stored but the answer is lost: the retry meets the asset.
    fake.inject(Route::Upload, Fault::ResetAfterStore);
    let app = github_app(&fake, REPO, 300);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_one_complete_release(&fake);
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
        let fake = FakeGitHub::start();
        fake.add_repo(REPO, true);
        fake.inject(Route::Upload, fault.clone());
        let app = github_app(&fake, REPO, 300);
        let out = run(&app, &["now"]);
        assert_eq!(out.status.code(), Some(0), "{fault:?}: {}", stderr(&out));
        assert_one_complete_release(&fake);
        assert_eq!(fake.violations(), Vec::<String>::new());
    }
}

#[test]
fn a_public_repository_is_refused_and_nothing_is_uploaded() {
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, false);
    let app = github_app(&fake, REPO, 10);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("is public"), "{}", stderr(&out));
    assert!(fake.releases(REPO).is_empty());
    assert_eq!(app.archives("backups").len(), 1, "the snapshot stays local");
}

#[test]
fn bad_credentials_and_an_empty_repository_fail_at_once_with_what_to_do() {
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, true);
    fake.inject(Route::GetRepo, Fault::bad_credentials());
    let app = github_app(&fake, REPO, 10);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    let repo_reads = fake
        .log()
        .iter()
        .filter(|l| l.starts_with(&format!("GET /repos/{REPO} ")))
        .count();
    assert_eq!(repo_reads, 1, "no retry after a 401: {:?}", fake.log());

    let empty = "alice/empty";
    fake.add_empty_repo(empty);
    let app = github_app(&fake, empty, 10);
    let out = run(&app, &["now"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
    assert!(stderr(&out).contains("first commit"), "{}", stderr(&out));
}

#[test]
fn a_damaged_remote_copy_is_refused_on_restore() {
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, true);
    let app = github_app(&fake, REPO, 100);
    assert_eq!(run(&app, &["now"]).status.code(), Some(0));
    let tag = fake.releases(REPO)[0].tag.clone();
    fake.corrupt_asset(REPO, &format!("{tag}.tar.gz"));
    fs::remove_dir_all(app.path("backups")).unwrap();
    let out = run(&app, &["verify", "latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("damaged"), "{}", stderr(&out));
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
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, true);
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
    let expected = row_counts(&app.path("data/tasks.db"));
    fs::remove_dir_all(app.path("backups")).unwrap();
    fs::remove_dir_all(app.path("data")).unwrap();
    let out = run(&app, &["restore", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(row_counts(&app.path("data/tasks.db")), expected);
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
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, true);
    for i in 0..150 {
        let tag = format!(
            "bk-20260301T{:02}{:02}00Z-scheduled-other-laptop-{i:06x}",
            i / 60,
            i % 60
        );
        fake.add_release(
            REPO,
            &tag,
            &format!("{tag}.tar.gz"),
            b"another machine's archive",
        );
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
            .all(|r| r.assets.len() == 1 && r.assets[0].data == b"another machine's archive")
    );
    assert!(fake.log().iter().any(|l| l.contains("/releases -> 200")));
}

/// For `benches/github.sh`: serves a fake GitHub with one private repository until stdin closes.
/// Run with `cargo test --release --test cli -- --ignored --nocapture serve_fake_github`.
#[test]
#[ignore = "a server for the benchmark script, not a test"]
fn serve_fake_github() {
    let fake = FakeGitHub::start();
    fake.add_repo(REPO, true);
    println!("FAKE_GITHUB {} {REPO} {TOKEN}", fake.api_url);
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
}
