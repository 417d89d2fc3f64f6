//! The S3 remote from the command line, against the tests' real Garage server, and through the
//! fault proxy for what a real link meets: a server asking to slow down, a connection reset or
//! gone silent partway through an archive, a session token that expired, a wrong secret, a run
//! killed mid-upload, a stored copy overwritten with garbage, a bucket that is not there. Each
//! test says what the user sees: the exit code, the words on stderr, and what the bucket holds
//! as an outside observer lists it.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fault_proxy::{Fault, FaultProxy};
use crate::support::garage::{Garage, garage};
use crate::support::{
    App, assert_exit_saying, is_archive_name, no_secret_leak, row_counts, s3_config, sha256_hex,
    stderr, stdout, tag_of,
};

/// The archive is bigger than this many bytes when an app carries [`with_blob`]'s blob: more
/// than one 8 MiB part, so it goes up as a multipart upload.
const MULTIPART_BLOB: usize = 12 << 20;

/// An app of 50 rows pushing to a new bucket (created by an administrator, as the key's owner
/// would) on `endpoint` (Garage's, or a proxy's before it); `extra` under `[remote]`.
fn app_on(garage: &Garage, what: &str, endpoint: &str, extra: &str) -> (App, String) {
    let bucket = garage.unique_bucket(what);
    garage.create_bucket(&bucket);
    let app = App::new(50);
    app.write_config(&s3_config(endpoint, &bucket, extra));
    (app, bucket)
}

/// Adds `bytes` random bytes to the app's snapshots as the include `data/blob.bin`: random
/// bytes do not compress, so the archive is a little bigger than that.
fn with_blob(app: &App, bytes: usize) {
    let mut blob = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut blob)
        .unwrap();
    fs::write(app.path("data/blob.bin"), blob).unwrap();
    let config = fs::read_to_string(app.path("backup.toml")).unwrap();
    app.write_config(&format!("{config}[[include]]\npath = \"data/blob.bin\"\n"));
}

/// Every key in `bucket`, as an outside observer lists it (`ListObjectsV2`, no delimiter).
fn keys_in(garage: &Garage, bucket: &str) -> Vec<String> {
    let (status, body) = garage.request("GET", &format!("/{bucket}?list-type=2"), b"");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    let mut keys: Vec<String> = body
        .split("<Key>")
        .skip(1)
        .map(|rest| rest.split("</Key>").next().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

/// How many multipart uploads are unfinished in `bucket` (`ListMultipartUploads`).
fn unfinished_uploads(garage: &Garage, bucket: &str) -> usize {
    let (status, body) = garage.request("GET", &format!("/{bucket}?uploads"), b"");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    body.matches("<Upload>").count()
}

/// The object `key` of `bucket`, read by an outside observer.
fn object(garage: &Garage, bucket: &str, key: &str) -> Vec<u8> {
    let (status, body) = garage.request("GET", &format!("/{bucket}/{key}"), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    body
}

/// The only local archive's file name.
fn only_archive(app: &App) -> String {
    let archives = app.archives("backups");
    assert_eq!(archives.len(), 1, "{archives:?}");
    archives[0].clone()
}

/// `backup now` with the test keys, which must succeed.
fn now_ok(app: &App, garage: &Garage) -> Output {
    let out = app.run_s3(garage, &["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    out
}

/// `backup list --json` with the test keys, which must succeed.
fn list_json(app: &App, garage: &Garage) -> Vec<Value> {
    crate::support::json_array(&app.run_s3(garage, &["list", "--json"]))
}

/// `verify TAG --remote`, which must pass: the bucket's copy restores.
fn assert_remote_copy_restores(app: &App, garage: &Garage, tag: &str) {
    let out = app.run_s3(garage, &["verify", tag, "--remote"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_snapshot_goes_up_with_its_note_and_a_fresh_machine_restores_it_from_the_bucket() {
    let Some(garage) = garage() else { return };
    let bucket = garage.unique_bucket("round trip");
    let config = s3_config(&garage.endpoint, &bucket, "");
    let app = App::new(120);
    app.write_config(&config);

    let out = app.run_s3(garage, &["init", "--create"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("created"), "{}", stdout(&out));
    let out = app.run_s3(garage, &["now", "--note", "before migration"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = list_json(&app, garage);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["note"], "before migration", "{listed:?}");
    assert_eq!(listed[0]["where"], "both", "{listed:?}");

    // Another machine, nothing local: the same bucket.
    let fresh = App::new(0);
    for file in ["data/tasks.db", "data/tasks.db-wal", "data/tasks.db-shm"] {
        let _ = fs::remove_file(fresh.path(file));
    }
    fresh.write_config(&config);
    let listed = list_json(&fresh, garage);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["where"], "remote", "{listed:?}");
    assert_eq!(listed[0]["note"], "before migration", "{listed:?}");
    let out = fresh.run_s3(garage, &["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        row_counts(&fresh.path("data/tasks.db")),
        row_counts(&app.path("data/tasks.db"))
    );
    assert_remote_copy_restores(&fresh, garage, "latest");
}

#[test]
fn a_server_asking_to_slow_down_is_waited_out_and_the_snapshot_goes_up() {
    let Some(garage) = garage() else { return };
    let proxy = FaultProxy::start(&garage.endpoint);
    let (app, bucket) = app_on(garage, "slow down", &proxy.url(), "");
    proxy.set(Fault::Respond {
        status: 503,
        code: "SlowDown",
        times: 2,
    });
    now_ok(&app, garage);
    assert_eq!(proxy.injected(), 2);
    let archive = only_archive(&app);
    assert!(keys_in(garage, &bucket).contains(&archive));
    assert_eq!(list_json(&app, garage)[0]["where"], "both");
}

#[test]
fn a_connection_reset_mid_upload_is_retried_and_leaves_no_unfinished_upload() {
    let Some(garage) = garage() else { return };
    let proxy = FaultProxy::start(&garage.endpoint);
    let (app, bucket) = app_on(garage, "reset mid upload", &proxy.url(), "");
    with_blob(&app, MULTIPART_BLOB);
    proxy.set(Fault::ResetAfter {
        bytes: 4 << 20,
        times: 1,
    });
    now_ok(&app, garage);
    assert_eq!(proxy.injected(), 1, "the reset happened");
    let archive = only_archive(&app);
    assert_eq!(
        sha256_hex(&object(garage, &bucket, &archive)),
        sha256_hex(&fs::read(app.path("backups").join(&archive)).unwrap())
    );
    assert_eq!(unfinished_uploads(garage, &bucket), 0);
    assert_remote_copy_restores(&app, garage, tag_of(&archive));
}

#[test]
fn an_upload_that_stops_moving_is_retried_within_seconds() {
    let Some(garage) = garage() else { return };
    let proxy = FaultProxy::start(&garage.endpoint);
    // The kernel's socket buffers may take the rest of a part before the link goes silent:
    // then it is the answer the tool waits for, and `answer_timeout_secs` that trips, not
    // `stall_secs`. Either way a few seconds here.
    let (app, bucket) = app_on(
        garage,
        "stall mid upload",
        &proxy.url(),
        "answer_timeout_secs = 4",
    );
    with_blob(&app, MULTIPART_BLOB);
    proxy.set(Fault::StallAfter {
        bytes: 1 << 20,
        times: 1,
    });
    let started = Instant::now();
    now_ok(&app, garage);
    let took = started.elapsed();
    assert_eq!(proxy.injected(), 1, "the link went silent");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let archive = only_archive(&app);
    assert_eq!(
        sha256_hex(&object(garage, &bucket, &archive)),
        sha256_hex(&fs::read(app.path("backups").join(&archive)).unwrap())
    );
    assert_eq!(unfinished_uploads(garage, &bucket), 0);
}

#[test]
fn an_expired_session_token_is_said_as_such_and_not_retried() {
    let Some(garage) = garage() else { return };
    let proxy = FaultProxy::start(&garage.endpoint);
    let (app, _) = app_on(garage, "expired token", &proxy.url(), "");
    proxy.set(Fault::Respond {
        status: 400,
        code: "ExpiredToken",
        times: 5,
    });
    let out = app.run_s3(garage, &["now"]);
    assert_exit_saying(&out, 4, "session token");
    let err = stderr(&out);
    assert!(err.contains("expired"), "{err}");
    assert!(err.contains("AWS_SESSION_TOKEN"), "what to do: {err}");
    assert!(err.contains("safe locally"), "{err}");
    // The first request, a HEAD, has no body to say why, so the same request as a GET asks;
    // nothing more: a retry would be two more.
    assert_eq!(proxy.injected(), 2, "not retried");
    assert_eq!(app.archives("backups").len(), 1);
}

#[test]
fn a_wrong_secret_is_refused_naming_only_the_start_of_the_key_id() {
    let Some(garage) = garage() else { return };
    let (app, _) = app_on(garage, "wrong secret", &garage.endpoint, "");
    let wrong: String = garage.secret.chars().rev().collect();
    let out = app
        .command(&["now"])
        .env("AWS_ACCESS_KEY_ID", &garage.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &wrong)
        .output()
        .unwrap();
    assert_exit_saying(&out, 4, "refused");
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains(&format!("{}…", &garage.key_id[..4])), "{all}");
    assert!(!all.contains(&garage.key_id), "the whole key id: {all}");
    assert!(!all.contains(&wrong), "the secret: {all}");
    assert!(!all.contains(&garage.secret), "the real secret: {all}");
    assert_eq!(app.archives("backups").len(), 1, "safe locally");
}

#[test]
fn a_run_killed_mid_upload_leaves_an_upload_doctor_reports_and_the_next_run_aborts() {
    let Some(garage) = garage() else { return };
    let (app, bucket) = app_on(garage, "killed mid upload", &garage.endpoint, "");
    with_blob(&app, MULTIPART_BLOB);
    let out = app
        .s3_command(garage, &["now"])
        .env(backup_agent::failpoint::FAILPOINT_ENV, "s3-part-uploaded")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "killed: {}", stderr(&out));
    assert_eq!(unfinished_uploads(garage, &bucket), 1);

    let out = app.run_s3(garage, &["doctor"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    let line = said
        .lines()
        .find(|l| l.contains("unfinished uploads"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(line.contains("1 upload"), "{line}");

    let out = app.run_s3(garage, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(unfinished_uploads(garage, &bucket), 0);
    assert!(list_json(&app, garage).iter().all(|s| s["where"] == "both"));
}

/// A snapshot pushed, then its archive in the bucket overwritten by an outside writer with a
/// few bytes of garbage that carry the original's sha256 in their metadata (so the stored copy
/// fails its own record); the app, the bucket and the archive's name.
fn clobbered(garage: &Garage, what: &str) -> (App, String, String) {
    let (app, bucket) = app_on(garage, what, &garage.endpoint, "");
    now_ok(&app, garage);
    let archive = only_archive(&app);
    let original = sha256_hex(&fs::read(app.path("backups").join(&archive)).unwrap());
    let (status, body) = garage.request_with(
        "PUT",
        &format!("/{bucket}/{archive}"),
        &[("x-amz-meta-sha256", &original)],
        b"not an archive at all",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    (app, bucket, archive)
}

#[test]
fn a_damaged_copy_in_the_bucket_is_replaced_from_the_checked_local_one() {
    let Some(garage) = garage() else { return };
    let (app, bucket, archive) = clobbered(garage, "clobbered repaired");
    let out = app.run_s3(garage, &["verify", tag_of(&archive), "--remote"]);
    assert_ne!(out.status.code(), Some(0), "the garbage does not restore");

    let out = app.run_s3(garage, &["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        sha256_hex(&object(garage, &bucket, &archive)),
        sha256_hex(&fs::read(app.path("backups").join(&archive)).unwrap())
    );
    assert_remote_copy_restores(&app, garage, tag_of(&archive));
    assert!(
        keys_in(garage, &bucket)
            .iter()
            .all(|k| !k.starts_with(".incoming/")),
        "the copy written aside is gone"
    );
}

#[test]
fn a_damaged_copy_in_the_bucket_is_not_replaced_by_a_local_one_without_its_record() {
    let Some(garage) = garage() else { return };
    let (app, bucket, archive) = clobbered(garage, "clobbered unproven");
    fs::remove_file(app.path(&format!("backups/{archive}.sha256"))).unwrap();

    // A warning, not a failure, as on every remote: the run goes on.
    let out = app.run_s3(garage, &["run"]);
    assert_exit_saying(&out, 0, "nothing was replaced");
    assert!(stderr(&out).contains("warning:"), "{}", stderr(&out));
    assert_eq!(object(garage, &bucket, &archive), b"not an archive at all");
}

#[test]
fn keys_come_from_a_profile_in_the_shared_file_or_a_private_credentials_file() {
    let Some(garage) = garage() else { return };
    let (app, _) = app_on(garage, "keys from files", &garage.endpoint, "");
    let keys = format!(
        "aws_access_key_id = {}\naws_secret_access_key = {}\n",
        garage.key_id, garage.secret
    );
    let home = tempfile::tempdir().unwrap();
    fs::create_dir(home.path().join(".aws")).unwrap();
    fs::write(
        home.path().join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = GKnotthisone\naws_secret_access_key = no\n[nas]\n{keys}"
        ),
    )
    .unwrap();
    let out = app
        .command(&["auth", "status"])
        .env("HOME", home.path())
        .env("AWS_PROFILE", "nas")
        .output()
        .unwrap();
    let out = no_secret_leak(garage, out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("profile `nas`"), "{}", stdout(&out));

    // No shared files: the config's own file, which only its owner may read.
    let empty_home = tempfile::tempdir().unwrap();
    let file = app.path("s3-keys");
    fs::write(&file, format!("[default]\n{keys}")).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let config = fs::read_to_string(app.path("backup.toml")).unwrap();
    app.write_config(&format!("{config}credentials_file = \"s3-keys\"\n"));
    let status = || {
        let mut cmd = app.command(&["auth", "status"]);
        no_secret_leak(garage, cmd.env("HOME", empty_home.path()).output().unwrap())
    };
    assert_exit_saying(&status(), 2, "chmod 600");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let out = status();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("credentials file"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn prune_deletes_an_archive_and_its_record_from_the_bucket() {
    let Some(garage) = garage() else { return };
    let (app, bucket) = app_on(garage, "prune", &garage.endpoint, "");
    let config = fs::read_to_string(app.path("backup.toml")).unwrap();
    app.write_config(&format!("{config}[retention]\nmanual = 1\n"));
    now_ok(&app, garage);
    now_ok(&app, garage);
    assert_eq!(
        keys_in(garage, &bucket).len(),
        5,
        "two snapshots and the marker"
    );

    let out = app.run_s3(garage, &["prune"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let kept = only_archive(&app);
    let tag = tag_of(&kept);
    assert_eq!(
        keys_in(garage, &bucket),
        [
            ".backup-agent-remote.json".to_string(),
            format!("{tag}.json"),
            kept.clone()
        ]
    );
}

#[test]
fn doctor_on_garage_warns_of_overwrites_and_of_no_protection_and_names_the_keys() {
    let Some(garage) = garage() else { return };
    let (app, _) = app_on(garage, "doctor", &garage.endpoint, "");
    let out = app.run_s3(garage, &["doctor"]);
    let said = stdout(&out);
    let line_of = |check: &str| {
        said.lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("no {check} line: {said}{}", stderr(&out)))
            .to_string()
    };
    let conditional = line_of("conditional writes");
    assert!(
        conditional.contains("ignores If-None-Match"),
        "{conditional}"
    );
    let protection = line_of("protection");
    assert!(protection.contains("versioning off"), "{protection}");
    let keys = line_of("S3 keys");
    assert!(keys.contains("AWS_ACCESS_KEY_ID"), "{keys}");
    for line in [conditional, protection, keys] {
        assert!(line.to_lowercase().contains("warn"), "{line}");
    }
}

#[test]
fn a_bucket_that_is_not_there_is_said_with_how_to_make_it() {
    let Some(garage) = garage() else { return };
    let bucket = garage.unique_bucket("missing");
    let app = App::new(10);
    app.write_config(&s3_config(&garage.endpoint, &bucket, ""));
    let out = app.run_s3(garage, &["now"]);
    assert_exit_saying(&out, 4, "backup init --create");
    assert!(stderr(&out).contains(&bucket), "{}", stderr(&out));
    assert_eq!(app.archives("backups").len(), 1, "safe locally");
}

/// A machine whose clock is months off still pushes: the server's refusal of the request's time
/// teaches the tool the difference, it signs on the server's time, warns, and the snapshot keeps
/// the machine's own time in its tag.
#[test]
fn a_machine_whose_clock_is_months_off_still_pushes_and_is_told() {
    let Some(garage) = garage() else { return };
    let (app, bucket) = app_on(garage, "clock", &garage.endpoint, "");
    let out = app
        .s3_command(garage, &["-v", "now"])
        .env(backup_agent::clock::CLOCK_ENV, "2026-03-01T10:00:00Z")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("clock is") && err.contains("behind the server's"),
        "{err}"
    );
    let keys = keys_in(garage, &bucket);
    assert!(
        keys.iter()
            .any(|k| k.starts_with("bk-20260301T100000Z") && is_archive_name(k)),
        "{keys:?}"
    );
}

/// A bucket holding more than one listing page (1,000 keys) lists whole: the listing follows
/// continuation tokens to the end.
#[test]
fn a_bucket_of_more_than_a_thousand_snapshots_lists_whole() {
    let Some(garage) = garage() else { return };
    let bucket = garage.unique_bucket("paging");
    garage.create_bucket(&bucket);
    // Written as an outside observer would: 1,003 small archives, no records.
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
    for i in 0..1003i64 {
        let at = (start + chrono::Duration::hours(i)).format("%Y%m%dT%H%M%SZ");
        let key = format!("bk-{at}-scheduled-laptop-{i:06x}.tar.gz");
        let (status, body) = garage.request("PUT", &format!("/{bucket}/{key}"), b"x");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let app = App::new(5);
    app.write_config(&s3_config(&garage.endpoint, &bucket, ""));
    let out = app.run_s3(garage, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 1003);
}

/// A differential goes up after its base, its record names the base, and a fresh machine
/// rebuilds it from the bucket alone.
#[test]
fn a_differential_restores_from_the_bucket_alone() {
    let Some(garage) = garage() else { return };
    let (app, bucket) = app_on(garage, "differential", &garage.endpoint, "");
    crate::differential::round_trip_through(&app, &|app, args| app.run_s3(garage, args));
    let keys = keys_in(garage, &bucket);
    assert_eq!(
        keys.iter()
            .filter(|k| k.ends_with(".json") && k.starts_with("bk-"))
            .count(),
        2,
        "{keys:?}"
    );
}
