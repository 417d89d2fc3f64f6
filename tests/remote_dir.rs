use std::fs;
use std::process::Output;

use serde_json::Value;

use crate::support::{
    App, assert_exit_saying, is_archive_name, row_counts, sha256_hex, stderr, stdout, tag_of,
    truncate_to_half,
};

#[test]
fn now_pushes_to_the_remote_and_the_copy_is_identical() {
    let app = App::new(50);
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let local = app.archives("backups");
    assert_eq!(local, app.archives("remote"));
    assert_eq!(
        fs::read(app.path("backups").join(&local[0])).unwrap(),
        fs::read(app.path("remote").join(&local[0])).unwrap()
    );
    let listed = app.list_json();
    assert_eq!(listed[0]["where"], "both");
    assert!(app.temp_leftovers().is_empty());
}

#[test]
fn snapshots_that_could_not_be_pushed_wait_locally_and_go_up_with_the_next_run() {
    let app = App::new(50);
    // The remote drive is "unmounted": its folder is gone.
    fs::remove_dir(app.path("remote")).unwrap();
    let out = app.run(&["now"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "push failure has its own exit code"
    );
    let err = stderr(&out);
    assert!(err.contains("safe locally"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !app.path("remote").exists(),
        "a missing remote folder is never created"
    );
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(app.archives("backups").len(), 2);
    let last: Value =
        serde_json::from_slice(&fs::read(app.path("backups/last_run.json")).unwrap()).unwrap();
    assert_eq!(last["snapshot_ok"], true);
    assert_eq!(last["push_ok"], false);
    assert_eq!(last["pending"].as_array().unwrap().len(), 2);

    // The remote comes back: the next run pushes everything that waited.
    fs::create_dir(app.path("remote")).unwrap();
    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pushed"].as_array().unwrap().len(), 3);
    assert_eq!(app.archives("remote"), app.archives("backups"));
    assert!(app.list_json().iter().all(|e| e["where"] == "both"));
}

#[test]
fn a_remote_that_is_a_file_is_reported_and_the_snapshot_is_kept() {
    let app = App::new(10);
    fs::remove_dir(app.path("remote")).unwrap();
    fs::write(app.path("remote"), b"not a folder").unwrap();
    let out = app.run(&["now"]);
    assert_exit_saying(&out, 4, "not a folder");
    assert_eq!(app.archives("backups").len(), 1);
    assert!(app.temp_leftovers().is_empty());
}

#[test]
fn a_truncated_remote_copy_is_listed_as_differ_and_replaced_by_the_next_run() {
    let app = App::with_snapshot(50);
    let name = app.archives("remote")[0].clone();
    let remote_copy = app.path("remote").join(&name);
    let good = truncate_to_half(&remote_copy);
    assert_eq!(
        app.list_json()[0]["where"],
        "differ",
        "a truncated copy is no copy"
    );
    assert_eq!(app.run(&["run"]).status.code(), Some(0));
    assert_eq!(fs::read(&remote_copy).unwrap(), good);
    assert!(app.list_json().iter().all(|e| e["where"] == "both"));
}

#[test]
fn both_sides_record_the_archive_checksum() {
    let app = App::with_snapshot(5);
    let name = app.archives("backups")[0].clone();
    let sha = crate::support::sha256_hex(&fs::read(app.path("backups").join(&name)).unwrap());
    for side in ["backups", "remote"] {
        let record = fs::read_to_string(app.path(side).join(format!("{name}.sha256"))).unwrap();
        assert_eq!(record, format!("{sha}  {name}\n"), "{side}");
    }
}

/// A local archive damaged after it was made is never pushed (it could replace a good copy);
/// the others still go up, and the exit code says something is wrong.
#[test]
fn a_damaged_local_archive_is_not_pushed() {
    let app = App::new(50);
    fs::remove_dir(app.path("remote")).unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(4));
    assert_eq!(app.run(&["now"]).status.code(), Some(4));
    let names = app.archives("backups");
    flip_a_byte(&app.path("backups").join(&names[0]));

    fs::create_dir(app.path("remote")).unwrap();
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("no longer matches") && err.contains("No other copy"),
        "{err}"
    );
    let remote = app.archives("remote");
    assert!(
        !remote.contains(&names[0]),
        "the damaged archive stayed local"
    );
    assert!(remote.contains(&names[1]));
    assert_eq!(remote.len(), 2, "the good older one and the new one");
}

pub fn flip_a_byte(path: &std::path::Path) {
    let mut bytes = fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

/// A local archive without its record cannot prove it is the good copy: an intact remote copy is
/// never replaced by it, even when the local file is truncated.
#[test]
fn an_unrecorded_local_archive_never_replaces_a_remote_copy() {
    let app = App::with_snapshot(50);
    let name = app.archives("backups")[0].clone();
    let local = app.path("backups").join(&name);
    let good = fs::read(&local).unwrap();
    fs::write(&local, &good[..1000]).unwrap();
    fs::remove_file(app.path("backups").join(format!("{name}.sha256"))).unwrap();
    // Even with the remote's record gone too, nothing proves the local copy is the good one.
    fs::remove_file(app.path("remote").join(format!("{name}.sha256"))).unwrap();

    // A warning, every run, not a failure: the remote holds a copy, and the run goes on.
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning:") && stderr(&out).contains("nothing was replaced"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(app.path("remote").join(&name)).unwrap(), good);
}

/// A push killed after the rename but before the record: the next run adds the record.
#[test]
fn a_remote_archive_missing_its_record_gets_it_on_the_next_run() {
    let app = App::with_snapshot(20);
    let name = app.archives("remote")[0].clone();
    let record = app.path("remote").join(format!("{name}.sha256"));
    let expected = fs::read_to_string(&record).unwrap();
    fs::remove_file(&record).unwrap();
    assert_eq!(app.run(&["run"]).status.code(), Some(0));
    assert_eq!(fs::read_to_string(&record).unwrap(), expected);
}

// The marker: a folder remote is used only while it holds the marker this machine knows, so an
// empty mount point (an unmounted NAS) is never mistaken for the remote.

const MARKER: &str = ".backup-agent-remote.json";
const RECORD: &str = "backups/remote-folders.json";

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn marker_id(app: &App) -> String {
    read_json(&app.path("remote").join(MARKER))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Names in a folder, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The NAS is unmounted: its files move aside and an empty folder stays at the mount point.
/// The remote as an earlier version left it: archives and their records, no marker, and no
/// local record of the remote.
fn as_an_earlier_version_left_it(app: &App) {
    fs::remove_file(app.path("remote").join(MARKER)).unwrap();
    fs::remove_file(app.path(RECORD)).unwrap();
}

fn unmount(app: &App) {
    fs::rename(app.path("remote"), app.path("nas-disk")).unwrap();
    fs::create_dir(app.path("remote")).unwrap();
}

fn remount(app: &App) {
    fs::remove_dir(app.path("remote")).unwrap();
    fs::rename(app.path("nas-disk"), app.path("remote")).unwrap();
}

/// `backup doctor --json`'s `remote` check, with a home folder of the app's own.
fn doctor_remote(app: &App) -> Value {
    fs::create_dir_all(app.path("home")).unwrap();
    let out = app
        .command(&["doctor", "--json"])
        .env("HOME", app.path("home"))
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "remote")
        .unwrap()
        .clone();
    let failed = check["verdict"] == "fail";
    assert_eq!(out.status.code(), Some(i32::from(failed)), "{report}");
    check
}

/// `doctor`'s `remote` check, which must give `verdict` and whose `field` (`detail` or `fix`)
/// must say `text`.
fn doctor_remote_says(app: &App, verdict: &str, field: &str, text: &str) -> Value {
    let check = doctor_remote(app);
    assert_eq!(check["verdict"], verdict, "{check}");
    assert!(check[field].as_str().unwrap().contains(text), "{check}");
    check
}

/// The one stderr line of a refused command.
fn one_line(out: &std::process::Output) -> String {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn the_first_push_to_an_empty_folder_marks_it_and_this_machine_remembers_it() {
    let app = App::new(20);
    // What a freshly formatted disk holds by itself does not make it someone else's folder.
    fs::create_dir(app.path("remote/lost+found")).unwrap();
    fs::write(app.path("remote/.DS_Store"), b"finder").unwrap();
    // Reading never marks.
    assert_eq!(app.list_json().len(), 0);
    assert!(!app.path("remote").join(MARKER).exists());
    assert!(!app.path(RECORD).exists());

    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let marker = read_json(&app.path("remote").join(MARKER));
    assert_eq!(marker["version"], 1, "{marker}");
    let id = marker["id"].as_str().unwrap();
    assert_eq!(id.len(), 32, "{marker}");
    assert!(marker["created_at"].is_string(), "{marker}");
    let record = read_json(&app.path(RECORD));
    assert_eq!(record["folders"].as_array().unwrap().len(), 1, "{record}");
    assert_eq!(record["folders"][0]["marker_id"], id, "{record}");
    assert_eq!(
        record["folders"][0]["path"],
        fs::canonicalize(app.path("remote"))
            .unwrap()
            .to_str()
            .unwrap()
    );

    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(marker_id(&app), id, "the marker is written once");
    assert_eq!(app.archives("remote").len(), 2);
    assert!(app.temp_leftovers().is_empty());
}

#[test]
fn an_emptied_mount_point_is_refused_and_the_snapshots_wait_until_the_disk_is_back() {
    let app = App::with_snapshot(50);
    unmount(&app);

    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = one_line(&out);
    assert!(
        err.contains("no backup-agent marker") && err.contains("is the disk mounted?"),
        "{err}"
    );
    assert!(
        err.contains("run `backup init`") && err.contains("safe locally"),
        "{err}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let waiting = report["tag"].as_str().unwrap().to_string();
    assert_eq!(report["pushed"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(
        app.archives("backups").len(),
        2,
        "the new snapshot is local"
    );
    assert!(
        names(&app.path("remote")).is_empty(),
        "nothing is written under the mount point"
    );

    let out = app.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(7), "{}", stdout(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"], "failed", "{status}");
    assert!(
        status["summary"]
            .as_str()
            .unwrap()
            .contains("is the disk mounted?"),
        "{status}"
    );

    // Every operation is refused, and the read-only ones write nothing either.
    let out = app.run(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let err = one_line(&out);
    assert!(
        err.contains("cannot list the remote") && err.contains("is the disk mounted?"),
        "{err}"
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["where"] == "local_remote_unknown"),
        "{listed}"
    );
    let out = app.run(&["prune"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(app.archives("backups").len(), 2, "nothing is pruned");
    assert!(names(&app.path("remote")).is_empty());

    // The disk is back: the next run pushes what waited.
    remount(&app);
    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["pushed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == waiting.as_str()),
        "{report}"
    );
    assert_eq!(app.archives("remote"), app.archives("backups"));
    assert!(app.list_json().iter().all(|e| e["where"] == "both"));
}

/// A machine that pushed with an earlier version has no record; its `last_run.json` says it
/// pushed, so an empty folder is still refused, run after run.
#[test]
fn an_earlier_versions_remote_left_unmounted_is_refused_run_after_run() {
    let app = App::with_snapshot(20);
    as_an_earlier_version_left_it(&app);
    unmount(&app);
    for _ in 0..2 {
        let out = app.run(&["run"]);
        assert_exit_saying(&out, 4, "is the disk mounted?");
        assert!(names(&app.path("remote")).is_empty());
    }
    remount(&app);
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(app.path("remote").join(MARKER).exists());
    assert_eq!(app.archives("remote"), app.archives("backups"));
}

#[test]
fn an_earlier_versions_remote_with_its_archives_is_adopted_silently() {
    let app = App::with_snapshot(20);
    as_an_earlier_version_left_it(&app);

    assert!(app.list_json().iter().all(|e| e["where"] == "both"));
    doctor_remote_says(
        &app,
        "ok",
        "detail",
        "holds snapshots of an earlier version",
    );
    assert!(
        !app.path("remote").join(MARKER).exists(),
        "reading never marks"
    );

    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let id = marker_id(&app);
    assert_eq!(read_json(&app.path(RECORD))["folders"][0]["marker_id"], id);
    assert_eq!(app.archives("remote").len(), 2);
}

#[test]
fn a_first_push_into_a_folder_with_foreign_files_is_refused_and_writes_nothing() {
    let app = App::new(20);
    fs::write(app.path("remote/notes.txt"), b"mine").unwrap();
    fs::create_dir(app.path("remote/photos")).unwrap();
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = one_line(&out);
    assert!(
        err.contains("not backup-agent's (notes.txt, photos)")
            && err.contains("point [remote] path at an empty folder of its own"),
        "{err}"
    );
    assert_eq!(names(&app.path("remote")), ["notes.txt", "photos"]);
    assert_eq!(
        app.archives("backups").len(),
        1,
        "the snapshot is safe locally"
    );
    assert!(!app.path(RECORD).exists());

    doctor_remote_says(&app, "fail", "fix", "an empty folder of its own");
    // `init` does not adopt someone else's folder either.
    let out = app.run(&["init"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(names(&app.path("remote")), ["notes.txt", "photos"]);
}

/// A new, empty disk replaces the old one on purpose: refused until `backup init` adopts it,
/// then the next run pushes everything to it.
#[test]
fn init_adopts_a_new_empty_remote_on_purpose() {
    let app = App::with_snapshot(20);
    let old_id = marker_id(&app);
    unmount(&app);
    assert_eq!(app.run(&["now"]).status.code(), Some(4));

    let out = app.run(&["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("marked it anew"), "{}", stdout(&out));
    let new_id = marker_id(&app);
    assert_ne!(new_id, old_id);
    assert_eq!(
        read_json(&app.path(RECORD))["folders"][0]["marker_id"],
        new_id
    );
    let check = doctor_remote(&app);
    assert_eq!(check["verdict"], "ok", "{check}");

    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(app.archives("remote"), app.archives("backups"));
    assert_eq!(app.archives("remote").len(), 3);
}

/// Another backup-agent disk mounted where this machine's was: refused, with what to do, until
/// `backup init` adopts it.
#[test]
fn another_remotes_disk_at_the_same_place_is_refused_until_init_adopts_it() {
    let app = App::with_snapshot(20);
    let other = App::new(5);
    assert_eq!(other.run(&["now"]).status.code(), Some(0));
    let other_id = marker_id(&other);
    fs::rename(app.path("remote"), app.path("nas-disk")).unwrap();
    fs::rename(other.path("remote"), app.path("remote")).unwrap();
    let theirs = app.archives("remote");

    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = one_line(&out);
    assert!(
        err.contains("the marker of another backup-agent remote")
            && err.contains(&other_id[..8])
            && err.contains("`backup init` to adopt this one"),
        "{err}"
    );
    assert_eq!(app.archives("remote"), theirs, "nothing was written there");
    doctor_remote_says(&app, "fail", "detail", "another disk may be mounted there");

    let out = app.run(&["init", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ready: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        ready["detail"].as_str().unwrap().contains("adopted"),
        "{ready}"
    );
    assert_eq!(marker_id(&app), other_id, "the disk keeps its marker");
    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let remote = app.archives("remote");
    assert!(app.archives("backups").iter().all(|a| remote.contains(a)));
}

#[test]
fn doctor_says_how_the_remote_folder_is_marked() {
    let app = App::new(10);
    doctor_remote_says(&app, "ok", "detail", "will be marked by the first push");
    assert!(
        names(&app.path("remote")).is_empty(),
        "doctor writes nothing"
    );

    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let check = doctor_remote(&app);
    assert_eq!(check["verdict"], "ok", "{check}");
    let id = marker_id(&app);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("marked (id {})", &id[..8])),
        "{check}"
    );

    unmount(&app);
    let check = doctor_remote_says(&app, "fail", "detail", "is the disk mounted?");
    assert!(
        check["fix"].as_str().unwrap().contains("run `backup init`"),
        "{check}"
    );
    assert!(
        names(&app.path("remote")).is_empty(),
        "doctor writes nothing"
    );
}

/// The real thing: snapshots pushed to a tmpfs mounted over the remote folder (in a private
/// mount namespace), the tmpfs unmounted, the next run refused.
#[test]
fn a_really_unmounted_disk_is_refused() {
    let app = App::new(50);
    let script = r#"
        mount -t tmpfs -o size=64m tmpfs "$REMOTE" || exit 90
        "$BIN" --config "$CONFIG" now > /dev/null || exit 91
        ls -A "$REMOTE" > "$APP/on-the-disk.txt"
        umount "$REMOTE" || exit 92
        "$BIN" --config "$CONFIG" run 2> "$APP/run.err"
        echo $? > "$APP/run.code"
    "#;
    let Some(out) = crate::support::in_mount_namespace(
        script,
        &[
            ("REMOTE", app.path("remote").as_os_str()),
            ("CONFIG", app.path("backup.toml").as_os_str()),
            ("APP", app.path("").as_os_str()),
        ],
    ) else {
        return;
    };
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let on_the_disk = fs::read_to_string(app.path("on-the-disk.txt")).unwrap();
    assert!(on_the_disk.contains(MARKER), "{on_the_disk}");
    assert_eq!(
        on_the_disk.lines().filter(|l| is_archive_name(l)).count(),
        1,
        "{on_the_disk}"
    );
    assert_eq!(
        fs::read_to_string(app.path("run.code")).unwrap().trim(),
        "4"
    );
    let err = fs::read_to_string(app.path("run.err")).unwrap();
    assert!(err.contains("is the disk mounted?"), "{err}");
    assert!(
        names(&app.path("remote")).is_empty(),
        "the mount point stays empty"
    );
    assert_eq!(app.archives("backups").len(), 2);
}

/// The row of `tag` in `backup list --json`.
fn listed(rows: &[Value], tag: &str) -> Value {
    rows.iter()
        .find(|r| r["tag"] == tag)
        .unwrap_or_else(|| panic!("{tag} not listed: {rows:?}"))
        .clone()
}

/// `backup list --json`, through `backup`.
fn list_json(backup: &dyn Fn(&[&str]) -> Output) -> Vec<Value> {
    let out = backup(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Adds `n` rows to the app's live database.
fn add_rows(app: &App, n: usize) {
    let conn = rusqlite::Connection::open(app.path("data/tasks.db")).unwrap();
    for i in 0..n {
        conn.execute(
            "INSERT INTO tasks (title) VALUES (?1)",
            [format!("later {i}")],
        )
        .unwrap();
    }
}

/// The life of a damaged local copy whose remote copy is good, through `backup` (which runs the
/// binary with whatever the remote needs); the GitHub remote's tests run it too. A byte flipped
/// in the least recently checked archive (its size kept) is found by the next run's bounded
/// check, shown by `list` and `status`, restored around from the remote, and repaired by the
/// run after.
pub fn a_damaged_local_copy_is_found_shown_restored_around_and_repaired(
    app: &App,
    backup: &dyn Fn(&[&str]) -> Output,
) {
    let out = backup(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows_then = row_counts(&app.path("data/tasks.db"));
    add_rows(app, 20);
    let out = backup(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The first archive was checked by the second `now`, and is the older of the two: the least
    // recently checked.
    let damaged = app.archives("backups")[0].clone();
    let tag = tag_of(&damaged);
    let local_copy = app.path("backups").join(&damaged);
    let size = fs::metadata(&local_copy).unwrap().len();
    flip_a_byte(&local_copy);
    assert_eq!(fs::metadata(&local_copy).unwrap().len(), size);
    let record = fs::read_to_string(app.path("backups").join(format!("{damaged}.sha256")))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    // Found by the next run, within its bound; the remote's good copy makes it a warning.
    let out = backup(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(tag)).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("backup: warning: ")
            && lines[0].contains("no longer matches")
            && lines[0].contains("the remote holds a good copy"),
        "{err}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = &report["local_check"];
    assert_eq!(check["checked"].as_array().unwrap().len(), 1, "{check}");
    assert_eq!(check["checked"][0]["tag"], tag, "{check}");
    assert_eq!(check["checked"][0]["finding"], "damaged", "{check}");
    assert!(
        check["checked_bytes"].as_u64() <= check["budget_bytes"].as_u64(),
        "{check}"
    );
    assert_eq!(
        check["damaged"],
        serde_json::json!([{ "tag": tag, "remote_good": true }])
    );
    let last: Value =
        serde_json::from_slice(&fs::read(app.path("backups/last_run.json")).unwrap()).unwrap();
    assert_eq!(last["ok"], true, "{last}");
    assert_eq!(last["local_check"]["damaged"][0]["tag"], tag, "{last}");

    // Shown by `list` and `status`, which read only local files.
    let rows = list_json(backup);
    assert_eq!(listed(&rows, tag)["where"], "both");
    assert_eq!(listed(&rows, tag)["local_damaged"], true);
    assert!(
        rows.iter()
            .filter(|r| r["tag"] != tag)
            .all(|r| r["local_damaged"] == false),
        "{rows:?}"
    );
    let out = backup(&["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning, not a failure: {}",
        stdout(&out)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = status["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{status}");
    assert!(warnings[0].as_str().unwrap().contains(tag), "{status}");
    let out = backup(&["status"]);
    assert!(
        stdout(&out).contains("  warning    local archive "),
        "{}",
        stdout(&out)
    );

    // The restore takes the remote's copy, and says so.
    let out = backup(&["restore", tag, "--yes"]);
    assert_exit_saying(
        &out,
        0,
        &format!("the local copy of {tag} is damaged; restored from the remote copy"),
    );
    assert_eq!(row_counts(&app.path("data/tasks.db")), rows_then);

    // The next run repairs the local copy from the remote.
    let out = backup(&["run", "--json", "-v"]);
    assert_exit_saying(
        &out,
        0,
        &format!("repaired local copy of {tag} from the remote"),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["local_check"]["repaired"], serde_json::json!([tag]));
    assert_eq!(report["local_check"]["damaged"], serde_json::json!([]));
    assert_eq!(sha256_hex(&fs::read(&local_copy).unwrap()), record);
    let rows = list_json(backup);
    assert_eq!(listed(&rows, tag)["where"], "both");
    assert_eq!(listed(&rows, tag)["local_damaged"], false);
    let out = backup(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["warnings"], serde_json::json!([]), "{status}");
    app.assert_no_leftovers();
}

#[test]
fn a_damaged_local_copy_is_found_restored_around_and_repaired_with_the_folder_remote() {
    let app = App::new(50);
    a_damaged_local_copy_is_found_shown_restored_around_and_repaired(&app, &|args| app.run(args));
}

/// Without a good copy anywhere, a damaged local archive is refused by restore with one clear
/// line, never pushed, and fails every run until it is dealt with.
#[test]
fn a_damaged_local_copy_with_no_remote_copy_is_refused_and_never_pushed() {
    let app = App::new(50);
    fs::remove_dir(app.path("remote")).unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(4));
    let damaged = app.archives("backups")[0].clone();
    let tag = tag_of(&damaged);
    flip_a_byte(&app.path("backups").join(&damaged));
    fs::create_dir(app.path("remote")).unwrap();
    let live_before = fs::read(app.path("data/tasks.db")).unwrap();

    let out = app.run(&["restore", tag, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("backup: error: ")
            && err.contains(&format!("the local copy of {tag} no longer matches"))
            && err.contains("no good copy of this snapshot exists"),
        "{err}"
    );
    assert_eq!(fs::read(app.path("data/tasks.db")).unwrap(), live_before);

    let out = app.run(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{damaged} no longer matches"))
            && stderr(&out).contains("No other copy exists"),
        "{}",
        stderr(&out)
    );
    let remote = app.archives("remote");
    assert_eq!(remote.len(), 1, "only the new snapshot went up: {remote:?}");
    assert!(!remote.contains(&damaged));
    let row = listed(&app.list_json(), tag);
    assert_eq!(
        (row["where"].clone(), row["local_damaged"].clone()),
        ("local".into(), true.into())
    );
    let out = app.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(7), "{}", stdout(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["warnings"][0].as_str().unwrap().contains(tag),
        "{status}"
    );
}

/// Each run re-hashes the least recently checked archives, and no more bytes than the archive
/// it just made (at least one archive).
#[test]
fn the_check_hashes_the_least_recently_checked_archives_within_the_new_snapshots_size() {
    let app = App::new(5);
    for _ in 0..3 {
        assert_eq!(app.run(&["now"]).status.code(), Some(0));
    }
    let small = app.archives("backups");
    // A much larger snapshot: its size lets this run check every small archive.
    add_rows(&app, 3000);
    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let check = serde_json::from_slice::<Value>(&out.stdout).unwrap()["local_check"].clone();
    let checked: Vec<&str> = check["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tag"].as_str().unwrap())
        .collect();
    // The second archive was last checked as new by the second `now`; the first was checked
    // again by the third `now`, as the third was made.
    assert_eq!(
        checked,
        [tag_of(&small[1]), tag_of(&small[0]), tag_of(&small[2])],
        "{check}"
    );
    let bytes: u64 = small
        .iter()
        .map(|n| fs::metadata(app.path("backups").join(n)).unwrap().len())
        .sum();
    assert_eq!(check["checked_bytes"], bytes);
    assert!(bytes <= check["budget_bytes"].as_u64().unwrap(), "{check}");
}

/// A budget smaller than the least recently checked archive still checks that one, and only it.
#[test]
fn the_check_takes_one_archive_even_when_it_exceeds_the_budget() {
    let app = App::new(5);
    add_rows(&app, 3000);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let large = app.archives("backups")[0].clone();
    let conn = rusqlite::Connection::open(app.path("data/tasks.db")).unwrap();
    conn.execute("DELETE FROM tasks WHERE title LIKE 'later%'", [])
        .unwrap();
    conn.execute_batch("VACUUM").unwrap();
    drop(conn);
    let out = app.run(&["now", "--json", "-v"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let check = serde_json::from_slice::<Value>(&out.stdout).unwrap()["local_check"].clone();
    assert_eq!(check["checked"].as_array().unwrap().len(), 1, "{check}");
    assert_eq!(check["checked"][0]["tag"], tag_of(&large), "{check}");
    assert!(
        check["checked_bytes"].as_u64() > check["budget_bytes"].as_u64(),
        "{check}"
    );
    assert!(
        stderr(&out).contains("checked 1 local archive against their records"),
        "{}",
        stderr(&out)
    );
}

/// A truncated local copy lists as `differ`; the push that finds it damaged leaves the remote's
/// good copy alone and warns, and the next run puts that copy back in its place.
#[test]
fn a_truncated_local_copy_is_repaired_from_the_remote_by_the_next_run() {
    let app = App::with_snapshot(50);
    let name = app.archives("backups")[0].clone();
    let local = app.path("backups").join(&name);
    let good = truncate_to_half(&local);
    assert_eq!(app.list_json()[0]["where"], "differ");

    let out = app.run(&["run", "--json"]);
    assert_exit_saying(&out, 0, "the remote holds a good copy");
    assert_eq!(fs::read(app.path("remote").join(&name)).unwrap(), good);
    let out = app.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["local_check"]["repaired"],
        serde_json::json!([tag_of(&name)])
    );
    assert_eq!(report["local_check"]["damaged"], serde_json::json!([]));
    assert_eq!(fs::read(&local).unwrap(), good);
    assert!(
        app.list_json()
            .iter()
            .all(|r| r["where"] == "both" && r["local_damaged"] == false)
    );
}

/// Both copies damaged: the local one fails its record, and the remote's bytes fail the same
/// record although the remote lists it. The repair downloads it once, finds it bad, and says
/// so; the runs after neither download it again nor count it as a good copy.
#[test]
fn a_remote_copy_that_fails_its_record_is_not_downloaded_every_hour() {
    let app = App::with_snapshot(50);
    let name = app.archives("backups")[0].clone();
    flip_a_byte(&app.path("backups").join(&name));
    flip_a_byte(&app.path("remote").join(&name));
    let runs: Vec<Value> = (0..3)
        .map(|_| {
            let out = app.run(&["run", "--json"]);
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect();
    let problems = |run: &Value| run["local_check"]["problems"].to_string();
    // The first run finds the damage; the second tries the remote copy and finds it bad too.
    assert!(
        problems(&runs[1]).contains("the remote copy is damaged"),
        "{}",
        runs[1]
    );
    // The third does not download it again.
    assert!(
        !problems(&runs[2]).contains("the download has"),
        "{}",
        runs[2]
    );
    assert_eq!(
        runs[2]["local_check"]["damaged"][0]["remote_good"], false,
        "{}",
        runs[2]
    );
    let out = app.run(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["warnings"]
            .to_string()
            .contains("No other copy exists"),
        "{status}"
    );
}
