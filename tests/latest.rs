//! Which snapshot is `latest`, and which is newest: a wrong clock, two runs in one second,
//! machines sharing a remote, host names that only differ past 32 characters.

use std::fs;
use std::process::Output;

use serde_json::Value;

use crate::support::{App, assert_exit_saying, stderr, stdout};

/// Runs `backup ARGS` as host `host`, at `clock` (RFC 3339) when given.
fn as_host(app: &App, host: &str, clock: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = app.command(args);
    cmd.env("BACKUP_TEST_HOST", host);
    if let Some(clock) = clock {
        cmd.env("BACKUP_TEST_CLOCK", clock);
    }
    cmd.output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

/// The tag a `now --json` or `run --json` reported.
fn tag_of(out: &Output) -> String {
    assert!(
        matches!(out.status.code(), Some(0)),
        "{}{}",
        stdout(out),
        stderr(out)
    );
    json(out)["tag"].as_str().unwrap().to_string()
}

/// `backup <command> --json` (`now` or `run`) as `host` at `clock`: the tag it made.
fn snapshot_at(app: &App, host: &str, clock: &str, command: &str) -> String {
    tag_of(&as_host(app, host, Some(clock), &[command, "--json"]))
}

/// Two app folders sharing the remote folder of the first one.
fn two_machines() -> (App, App) {
    let first = App::new(10);
    let second = App::new(20);
    second.write_config(&crate::support::DIR_REMOTE_CONFIG.replace(
        "path = \"remote\"",
        &format!("path = \"{}\"", first.path("remote").display()),
    ));
    (first, second)
}

#[test]
fn a_snapshot_dated_in_the_future_is_never_latest_silently() {
    let app = App::new(10);
    let wrong = snapshot_at(&app, "laptop", "2099-01-01T00:00:00Z", "run");
    let right = tag_of(&as_host(&app, "laptop", None, &["run", "--json"]));
    assert!(wrong > right, "the 2099 tag sorts after today's");

    // Retention kept it (apart from the tiers), and kept today's run.
    let listed: Vec<String> = app
        .list_json()
        .iter()
        .map(|e| e["tag"].as_str().unwrap().to_string())
        .collect();
    assert!(
        listed.contains(&wrong) && listed.contains(&right),
        "{listed:?}"
    );

    // list flags it, in the table, in JSON and on stderr.
    let out = as_host(&app, "laptop", None, &["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("(future!)"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("dated in the future"),
        "{}",
        stderr(&out)
    );
    let out = as_host(&app, "laptop", None, &["list", "--json"]);
    let rows = json(&out);
    assert_eq!(rows[0]["tag"], wrong.as_str());
    assert_eq!(rows[0]["future"], true);
    assert!(rows[1].get("future").is_none(), "{rows}");

    // status: fresh (today's run is good), with a warning naming it.
    let out = as_host(&app, "laptop", None, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let status = json(&out);
    assert_eq!(status["newest_local"], right.as_str());
    let warnings = status["warnings"].to_string();
    assert!(warnings.contains(&wrong), "{warnings}");

    // doctor warns.
    let out = as_host(&app, "laptop", None, &["doctor", "--json"]);
    let clock = json(&out)["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "clock")
        .cloned()
        .unwrap();
    assert_eq!(clock["verdict"], "warn", "{clock}");

    // latest is today's, with a note; the 2099 one restores by name.
    let out = as_host(&app, "laptop", None, &["verify", "latest", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["tag"], right.as_str());
    assert!(
        stderr(&out).contains("dated in the future"),
        "{}",
        stderr(&out)
    );
    let out = as_host(&app, "laptop", None, &["verify", &wrong]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A clock now set far back: every snapshot is "in the future"; latest is refused.
    let out = as_host(
        &app,
        "laptop",
        Some("2001-01-01T00:00:00Z"),
        &["verify", "latest"],
    );
    assert_exit_saying(&out, 1, "fix the clock");
}

#[test]
fn a_run_never_deletes_its_own_snapshot_and_one_second_orders_by_millisecond() {
    let app = App::new(10);
    // The same frozen millisecond: the two tags order by their random digits, either way.
    for _ in 0..4 {
        let clock = "2026-03-01T10:00:00.250Z";
        let first = snapshot_at(&app, "box", clock, "run");
        let second = snapshot_at(&app, "box", clock, "run");
        let local = app.archive_tags("backups");
        assert!(
            local.contains(&second),
            "the second run deleted its own snapshot: {local:?} (first {first})"
        );
        let out = as_host(&app, "box", Some(clock), &["status", "--json"]);
        let status = json(&out);
        assert_eq!(status["last_ok"]["tag"], second.as_str());
        assert!(local.contains(&status["last_ok"]["tag"].as_str().unwrap().to_string()));
        fs::remove_dir_all(app.path("backups")).unwrap();
        fs::remove_dir_all(app.path("remote")).unwrap();
        fs::create_dir(app.path("remote")).unwrap();
    }
    // One second, two milliseconds: the later run is the newer snapshot, whatever the text.
    let early = snapshot_at(&app, "box", "2026-03-01T11:00:00.900Z", "run");
    let late = snapshot_at(&app, "box", "2026-03-01T11:00:00.901Z", "now");
    let rows = app.list_json();
    assert_eq!(rows[0]["tag"], late.as_str(), "{rows:?}");
    assert_eq!(rows[1]["tag"], early.as_str(), "{rows:?}");
    // As text, `manual` sorts before `scheduled`: the order is the time's, not the text's.
    assert!(late < early);
}

#[test]
fn latest_is_this_hosts_and_a_fresh_machine_among_several_hosts_must_name_one() {
    let (alpha, beta) = two_machines();
    let alpha_tag = snapshot_at(&alpha, "alpha", "2026-03-01T10:00:00Z", "now");
    // beta's own snapshot is older than alpha's.
    let beta_tag = snapshot_at(&beta, "beta", "2026-03-01T09:00:00Z", "now");
    assert!(alpha_tag > beta_tag);

    // On beta, `latest` is beta's own, even though alpha's is newer on the shared remote.
    fs::remove_dir_all(beta.path("backups")).unwrap();
    let out = as_host(
        &beta,
        "beta",
        None,
        &["restore", "latest", "--dry-run", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["tag"], beta_tag.as_str());

    // A fresh machine under a new name: several hosts share the remote, none is its own.
    let fresh = App::new(0);
    fresh.write_config(&crate::support::DIR_REMOTE_CONFIG.replace(
        "path = \"remote\"",
        &format!("path = \"{}\"", alpha.path("remote").display()),
    ));
    fs::remove_file(fresh.path("data/tasks.db")).unwrap();
    let out = as_host(&fresh, "gamma", None, &["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("alpha (1, newest") && err.contains("beta (1"),
        "{err}"
    );
    assert!(err.contains("--host NAME"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!fresh.path("data/tasks.db").exists());

    let out = as_host(
        &fresh,
        "gamma",
        None,
        &["verify", "latest", "--host", "alpha", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["tag"], alpha_tag.as_str());
    let out = as_host(&fresh, "gamma", None, &["list", "--host", "beta", "--json"]);
    let rows = json(&out);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["tag"], beta_tag.as_str());
    let out = as_host(
        &fresh,
        "gamma",
        None,
        &["prune", "--dry-run", "--host", "beta", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let planned = json(&out);
    assert_eq!(
        planned["snapshots"][0]["tag"],
        beta_tag.as_str(),
        "{planned}"
    );
    assert_eq!(planned["other_hosts"], 1);

    // With one host on the remote, a fresh machine takes that host's latest, and says so.
    let lone = App::new(0);
    let out = as_host(&lone, "delta", None, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fs::remove_dir_all(lone.path("backups")).unwrap();
    let out = as_host(&lone, "epsilon", None, &["verify", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no snapshots of its own") && stderr(&out).contains("delta"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn hosts_whose_names_differ_past_32_characters_never_prune_each_other() {
    let (one, two) = two_machines();
    let manual_one = "\n[retention]\nmanual = 1\n";
    one.write_config(&format!(
        "{}{manual_one}",
        crate::support::DIR_REMOTE_CONFIG
    ));
    two.write_config(&format!(
        "{}{manual_one}",
        crate::support::DIR_REMOTE_CONFIG.replace(
            "path = \"remote\"",
            &format!("path = \"{}\"", one.path("remote").display()),
        )
    ));
    let first = "build-agent-production-cluster-01";
    let second = "build-agent-production-cluster-02";
    let two_tag = snapshot_at(&two, second, "2026-03-01T09:00:00Z", "now");
    let one_old = snapshot_at(&one, first, "2026-03-01T10:00:00Z", "now");
    let one_new = snapshot_at(&one, first, "2026-03-01T11:00:00Z", "now");
    let host_of = |tag: &str| {
        backup_agent::tag::Tag::parse(tag)
            .unwrap()
            .host()
            .to_string()
    };
    assert_ne!(host_of(&two_tag), host_of(&one_new));
    assert!(host_of(&one_new).len() <= 32);
    let out = as_host(
        &one,
        first,
        Some("2026-03-01T11:30:00Z"),
        &["prune", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let remote = one.archive_tags("remote");
    assert!(remote.contains(&two_tag), "{remote:?}");
    assert!(remote.contains(&one_new), "{remote:?}");
    assert!(!remote.contains(&one_old), "{remote:?}");
    // `--host` takes the host name as well as the identity the listing shows.
    let out = as_host(&one, first, None, &["list", "--host", second, "--json"]);
    assert_eq!(json(&out)[0]["tag"], two_tag.as_str());
}
