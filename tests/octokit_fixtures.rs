//! The fake GitHub against answers recorded from api.github.com, vendored from the npm package
//! `@octokit/fixtures` (`fixtures/octokit/`, see its SOURCE.md): each recorded request the fake
//! serves is replayed against it in order, and the fake must answer with the same status and a
//! body of the same shape (every recorded key present, with the same JSON type).

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::fake_github::{FakeGitHub, TOKEN};

/// The recorded exchanges of one scenario, in order.
fn scenario(name: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("fixtures/octokit/{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// One request to the fake over plain HTTP/1.1 (it closes every connection after answering).
fn send(origin: &str, method: &str, target: &str, body: &[u8]) -> (u16, Value) {
    let address = origin.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "{} {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: token {TOKEN}\r\nAccept: application/vnd.github+json\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        method.to_uppercase(),
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Where `ours` lacks a key of `recorded`, or holds another JSON type (null fits any type:
/// GitHub's schema makes those fields nullable).
fn shape_differences(recorded: &Value, ours: &Value, at: &str, found: &mut Vec<String>) {
    match (recorded, ours) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                match have.get(key) {
                    Some(ours) => shape_differences(value, ours, &format!("{at}.{key}"), found),
                    None => found.push(format!("{at}.{key} missing")),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) => {
            if let (Some(w), Some(h)) = (want.first(), have.first()) {
                shape_differences(w, h, &format!("{at}[0]"), found);
            }
        }
        (w, h) if std::mem::discriminant(w) == std::mem::discriminant(h) => {}
        (w, h) => found.push(format!("{at}: recorded {w}, the fake {h}")),
    }
}

/// Replays `exchanges` (index, target on the fake) and checks status and shape of each answer.
fn replay(recorded: &[Value], steps: &[(usize, String, String)], found: &mut Vec<String>) {
    for (index, origin, target) in steps {
        let exchange = &recorded[*index];
        let method = exchange["method"].as_str().unwrap();
        let body = exchange["body"].as_str().unwrap_or_default().as_bytes();
        let (status, answer) = send(origin, method, target, body);
        let want = exchange["status"].as_u64().unwrap() as u16;
        let what = format!("{method} {}", exchange["path"].as_str().unwrap());
        if status != want {
            found.push(format!("{what}: recorded {want}, the fake {status}"));
        }
        shape_differences(&exchange["response"], &answer, &what, found);
    }
}

#[test]
fn the_fake_answers_octokits_recorded_scenarios_with_the_same_status_and_shape() {
    let fake = FakeGitHub::start();
    let api = fake.api_url.clone();
    let mut found = Vec::new();

    // release-assets: find the release by tag, upload, list, read, delete the asset. (The
    // recorded rename of an asset, PATCH, is not something the tool does nor the fake serves.)
    let repo = "octokit-fixture-org/release-assets";
    fake.add_repo(repo, false);
    fake.add_release_without_assets(repo, "v1.0.0");
    let recorded = scenario("release-assets");
    let release = &fake.releases(repo)[0];
    let id = release.id;
    let (_, by_tag) = send(
        &api,
        "get",
        &format!("/repos/{repo}/releases/tags/v1.0.0"),
        b"",
    );
    let uploads = by_tag["upload_url"]
        .as_str()
        .unwrap()
        .split("/repos/")
        .next()
        .unwrap()
        .to_string();
    replay(
        &recorded,
        &[
            (
                0,
                api.clone(),
                format!("/repos/{repo}/releases/tags/v1.0.0"),
            ),
            (
                1,
                uploads.clone(),
                format!("/repos/{repo}/releases/{id}/assets?name=test-upload.txt&label=test"),
            ),
            (
                2,
                api.clone(),
                format!("/repos/{repo}/releases/{id}/assets"),
            ),
        ],
        &mut found,
    );
    let asset = fake.releases(repo)[0].assets[0].id;
    replay(
        &recorded,
        &[
            (
                3,
                api.clone(),
                format!("/repos/{repo}/releases/assets/{asset}"),
            ),
            (
                5,
                api.clone(),
                format!("/repos/{repo}/releases/assets/{asset}"),
            ),
        ],
        &mut found,
    );

    // release-assets-conflict: the name is taken (422 already_exists), the old asset is listed
    // and deleted, the upload goes through.
    let repo = "octokit-fixture-org/release-assets-conflict";
    fake.add_repo(repo, false);
    fake.add_release(repo, "v1.0.0", "test-upload.txt", b"Hello, world!\n");
    let recorded = scenario("release-assets-conflict");
    let release = &fake.releases(repo)[0];
    let (id, asset) = (release.id, release.assets[0].id);
    let upload = format!("/repos/{repo}/releases/{id}/assets?name=test-upload.txt&label=test");
    replay(
        &recorded,
        &[
            (
                0,
                api.clone(),
                format!("/repos/{repo}/releases/tags/v1.0.0"),
            ),
            (1, uploads.clone(), upload.clone()),
            (
                2,
                api.clone(),
                format!("/repos/{repo}/releases/{id}/assets"),
            ),
            (
                3,
                api.clone(),
                format!("/repos/{repo}/releases/assets/{asset}"),
            ),
            (4, uploads.clone(), upload),
        ],
        &mut found,
    );

    // rename-repository: the old name answers 301 for a read and 307 for a write, both to
    // `/repositories/{id}`, which serves the repository. (The renaming PATCH itself is played by
    // `rename_repo`.)
    let repo = "octokit-fixture-org/rename-repository";
    fake.add_repo(repo, false);
    fake.rename_repo(repo, "octokit-fixture-org/rename-repository-newname");
    let id = fake.repo_id("octokit-fixture-org/rename-repository-newname");
    let recorded = scenario("rename-repository");
    replay(
        &recorded,
        &[
            (1, api.clone(), format!("/repos/{repo}")),
            (2, api.clone(), format!("/repositories/{id}")),
            (3, api.clone(), format!("/repos/{repo}")),
        ],
        &mut found,
    );

    // errors: GitHub's 422 validation error (recorded for a label); the fake's own validation
    // errors (a release without `tag_name`) have the same shape.
    let recorded = scenario("errors");
    let (status, answer) = send(
        &api,
        "post",
        "/repos/octokit-fixture-org/release-assets/releases",
        b"{}",
    );
    if status != 422 {
        found.push(format!(
            "a release without tag_name: the fake answered {status}"
        ));
    }
    shape_differences(
        &recorded[0]["response"],
        &answer,
        "POST releases (errors)",
        &mut found,
    );

    assert_eq!(found, Vec::<String>::new());
    assert_eq!(json!(fake.violations()), json!([]));
}
