//! Choosing a snapshot: the short forms every command that takes one accepts (the start of a
//! tag's suffix, `latest~N`), `backup list`'s filters, and notes (`backup now --note`).

use std::process::Output;

use serde_json::Value;

use crate::support::{App, archive_path, assert_exit_saying, stderr, stdout};

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
    std::fs::remove_file(archive_path(&app.path("backups"), &tags[0])).unwrap();
    assert_eq!(verified(&app, "latest~2"), tags[0]);

    // The remote gone: short forms are chosen among the local snapshots, with a note.
    std::fs::remove_dir_all(app.path("remote")).unwrap();
    for (snapshot, expected) in [("latest~1", &tags[1]), ("0c8", &tags[1])] {
        let out = app.run_at(AFTER, &["verify", snapshot, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(json(&out)["tag"], expected.as_str());
        assert!(
            stderr(&out).contains(&format!(
                "`{snapshot}` was chosen among the local snapshots"
            )),
            "{}",
            stderr(&out)
        );
    }
    let out = app.run_at(AFTER, &["verify", "latest~2"]);
    assert_exit_saying(&out, 1, "only 1 older");
}

/// Snapshots of November 2026: a manual one with a note, a scheduled one, a manual one with
/// another note; oldest first.
fn a_month_of_snapshots(app: &App) -> Vec<String> {
    [
        ("2026-11-01T10:00:00Z", "now", Some("Before migration 7")),
        ("2026-11-02T10:00:00Z", "run", None),
        ("2026-11-03T10:00:00Z", "now", Some("upgrade to v2")),
    ]
    .iter()
    .map(|(clock, command, note)| {
        let mut args = vec![*command];
        if let Some(note) = note {
            args.extend(["--note", note]);
        }
        let report = json_at(app, clock, &args);
        assert_eq!(report["note"].as_str(), *note, "{report}");
        report["tag"].as_str().unwrap().to_string()
    })
    .collect()
}

/// The tags `list --json ARGS` shows at [`AFTER`], newest first.
fn listed(app: &App, args: &[&str]) -> Vec<String> {
    let mut args = args.to_vec();
    args.insert(0, "list");
    json_at(app, AFTER, &args)
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["tag"].as_str().unwrap().to_string())
        .collect()
}

/// The tags in `list ARGS`'s table at [`AFTER`].
fn listed_text(app: &App, args: &[&str]) -> Vec<String> {
    let mut args = args.to_vec();
    args.splice(0..0, ["list", "--wide"]);
    let out = app.run_at(AFTER, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .filter(|l| l.starts_with("bk-"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn list_filters_by_kind_time_note_and_host_in_text_and_json() {
    let app = App::new(10);
    let tags = a_month_of_snapshots(&app);
    let (first, second, third) = (tags[0].as_str(), tags[1].as_str(), tags[2].as_str());
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec![], vec![third, second, first]),
        (vec!["--kind", "manual"], vec![third, first]),
        (vec!["--kind", "scheduled"], vec![second]),
        (vec!["--since", "2026-11-02"], vec![third, second]),
        // A date alone for --until is its whole day.
        (vec!["--until", "2026-11-02"], vec![second, first]),
        (
            vec!["--since", "2026-11-02", "--until", "2026-11-02"],
            vec![second],
        ),
        (vec!["--since", "2026-11-02T10:00:01Z"], vec![third]),
        (vec!["--until", "2026-11-01T12:00:00+02:00"], vec![first]),
        // How long before the clock (2026-11-04T00:00Z): 36 hours is 2026-11-02T12:00Z.
        (vec!["--since", "36h"], vec![third]),
        (vec!["--until", "2d"], vec![first]),
        (vec!["--note", "MIGRATION"], vec![first]),
        (vec!["--note", "v2", "--kind", "manual"], vec![third]),
        (vec!["--note", "v2", "--kind", "scheduled"], vec![]),
        (vec!["--host", "elsewhere"], vec![]),
    ];
    for (args, expected) in cases {
        assert_eq!(listed(&app, &args), expected, "list --json {args:?}");
        assert_eq!(listed_text(&app, &args), expected, "list {args:?}");
    }

    // Nothing matches: said so, not "no snapshots yet".
    let out = app.run_at(AFTER, &["list", "--kind", "scheduled", "--note", "v2"]);
    assert!(
        stdout(&out).contains("none of the 3 snapshots match"),
        "{}",
        stdout(&out)
    );
    for (args, saying) in [
        (&["--since", "yesterday"][..], "is not a time"),
        (&["--until", "2026-11-31"][..], "is not a time"),
        (&["--kind", "weekly"][..], "invalid value 'weekly'"),
        (
            &["--since", "2026-11-03", "--until", "2026-11-01"][..],
            "is after --until",
        ),
    ] {
        let mut args = args.to_vec();
        args.insert(0, "list");
        assert_exit_saying(&app.run_at(AFTER, &args), 2, saying);
    }
}

#[test]
fn a_note_is_kept_in_the_manifest_and_shown_by_list_local_or_only_on_the_folder_remote() {
    let app = App::new(10);
    let tags = a_month_of_snapshots(&app);
    let archive = archive_path(&app.path("backups"), &tags[0]);
    let manifest: Value = crate::support::read_archive(&archive)
        .into_iter()
        .find(|(name, _, _)| name == "MANIFEST.json")
        .map(|(_, bytes, _)| serde_json::from_slice(&bytes).unwrap())
        .unwrap();
    assert_eq!(manifest["note"], "Before migration 7");
    assert_eq!(manifest["manifest_version"], 1);

    let rows = json_at(&app, AFTER, &["list"]);
    assert_eq!(rows[0]["note"], "upgrade to v2");
    assert_eq!(rows[1]["note"], Value::Null);
    assert_eq!(rows[2]["note"], "Before migration 7");
    let out = app.run_at(AFTER, &["list"]);
    let table = stdout(&out);
    assert!(table.lines().next().unwrap().ends_with("NOTE"), "{table}");
    assert!(table.contains("Before migration 7"), "{table}");

    // Only on the folder remote: read from the manifest there, still found by --note.
    std::fs::remove_file(&archive).unwrap();
    let rows = json_at(&app, AFTER, &["list", "--note", "migration"]);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["where"], "remote");
    assert_eq!(rows[0]["note"], "Before migration 7");

    // A note is one short line.
    for (note, saying) in [
        ("two\nlines", "one line"),
        ("  ", "the note is empty"),
        (&"x".repeat(201)[..], "keep it to 200"),
    ] {
        let out = app.run(&["now", "--note", note]);
        assert_exit_saying(&out, 2, saying);
    }
    assert_eq!(app.archives("backups").len(), 2, "nothing taken");
}

/// `--note` on GitHub: the release body says it and its record carries it, so a fresh machine
/// with only the remote lists and finds the note without downloading anything.
#[test]
fn a_note_goes_up_in_the_release_body_and_lists_from_github_without_a_download() {
    use crate::support::{GITHUB_REPO, fake_with_private_repo, github_config};
    let fake = fake_with_private_repo(GITHUB_REPO);
    let app = App::new(10);
    app.write_config(&github_config(&fake.api_url, GITHUB_REPO, ""));
    let out = app.run_github(&["now", "--note", "before migration 7 -->", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tag = json(&out)["tag"].as_str().unwrap().to_string();
    let out = app.run_github(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let releases = fake.releases(GITHUB_REPO);
    let body = &releases.iter().find(|r| r.tag == tag).unwrap().body;
    assert!(body.contains("Note: before migration 7 --&gt;"), "{body}");

    let fresh = App::new(10);
    fresh.write_config(&github_config(&fake.api_url, GITHUB_REPO, ""));
    let downloads = || {
        fake.count_requests(|l| {
            l.starts_with("GET ") && (l.contains("/releases/assets/") || l.contains("/objects/"))
        })
    };
    let before = downloads();
    let out = fresh.run_github(&["list", "--json", "--note", "MIGRATION"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = json(&out);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["tag"], tag.as_str());
    assert_eq!(rows[0]["where"], "remote");
    assert_eq!(rows[0]["note"], "before migration 7 -->");
    let out = fresh.run_github(&["list"]);
    assert!(
        stdout(&out).contains("before migration 7 -->"),
        "{}",
        stdout(&out)
    );
    assert_eq!(downloads(), before, "{:?}", fake.log());
    // The fresh machine names it by a short form and brings it back.
    let suffix = &tag[tag.len() - 6..];
    let out = fresh.run_github(&["verify", suffix, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["tag"], tag.as_str());
    assert!(
        downloads() > before,
        "a download is counted: {:?}",
        fake.log()
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}
