//! Choosing a snapshot: the short forms every command that takes one accepts (the start of a
//! tag's suffix, `latest~N`), `backup list`'s filters, and notes (`backup now --note`).

use std::process::Output;

use serde_json::Value;

use crate::support::{App, assert_exit_saying, stderr, stdout};

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

/// `backup ARGS --json` at `clock`, which must succeed: its JSON.
fn json_at(app: &App, clock: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = app.run_at(clock, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    json(&out)
}

/// Three manual snapshots a day apart in November 2026, oldest first. Their suffixes start with
/// the millisecond they were taken at: `064`, `0c8` and `12c`.
fn three_snapshots(app: &App) -> Vec<String> {
    [
        "2026-11-01T10:00:00.100Z",
        "2026-11-02T10:00:00.200Z",
        "2026-11-03T10:00:00.300Z",
    ]
    .iter()
    .map(|clock| {
        json_at(app, clock, &["now"])["tag"]
            .as_str()
            .unwrap()
            .to_string()
    })
    .collect()
}

const AFTER: &str = "2026-11-04T00:00:00Z";

/// The tag `verify SNAPSHOT --json` checked.
fn verified(app: &App, snapshot: &str) -> String {
    json_at(app, AFTER, &["verify", snapshot])["tag"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_start_of_a_suffix_names_a_snapshot_when_it_is_unique() {
    let app = App::new(10);
    let tags = three_snapshots(&app);
    let suffix = |tag: &str| tag.rsplit_once('-').unwrap().1.to_string();
    assert!(suffix(&tags[1]).starts_with("0c8"), "{tags:?}");
    assert_eq!(verified(&app, "0c8"), tags[1]);
    assert_eq!(verified(&app, &suffix(&tags[0])), tags[0]);
    assert_eq!(verified(&app, &suffix(&tags[2]).to_uppercase()), tags[2]);
    // restore takes it too.
    let out = app.run_at(AFTER, &["restore", "12c", "--dry-run", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["tag"], tags[2].as_str());

    // `0` starts two suffixes: refused as a usage error, both listed, the third not.
    let out = app.run_at(AFTER, &["verify", "0"]);
    assert_exit_saying(&out, 2, "give more of the suffix");
    let message = stderr(&out);
    assert!(
        message.contains(&tags[0]) && message.contains(&tags[1]),
        "{message}"
    );
    assert!(!message.contains(&tags[2]), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");

    // None starts with `fff`.
    let out = app.run_at(AFTER, &["verify", "fff"]);
    assert_exit_saying(&out, 1, "has a tag ending in fff");
    // Not a snapshot at all.
    let out = app.run_at(AFTER, &["restore", "yesterday"]);
    assert_exit_saying(&out, 2, "is not a snapshot");
}

#[test]
fn latest_n_counts_back_from_the_latest() {
    let app = App::new(10);
    let tags = three_snapshots(&app);
    assert_eq!(verified(&app, "latest"), tags[2]);
    assert_eq!(verified(&app, "latest~0"), tags[2]);
    assert_eq!(verified(&app, "latest~1"), tags[1]);
    assert_eq!(verified(&app, "latest~2"), tags[0]);
    let out = app.run_at(AFTER, &["verify", "latest~3"]);
    assert_exit_saying(&out, 1, "only 2 older");
    assert!(stderr(&out).contains(&tags[2]), "{}", stderr(&out));
    // A snapshot only on the remote counts: it is one of this host's.
    std::fs::remove_file(app.path("backups").join(format!("{}.tar.gz", tags[0]))).unwrap();
    assert_eq!(verified(&app, "latest~2"), tags[0]);
}
