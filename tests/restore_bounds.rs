//! Where a restore may write, and what its swap leaves: never through a link, never over the
//! config file in use, no `pre_restore_*` without a reason, and folders only this user can enter.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;
use serde_json::Value;

use crate::support::{
    App, assert_exit_saying, execute_on, read_archive, row_counts, sha256_hex, stderr, stdout,
};

/// sha256 of every file under `dir` by relative path (a link as `-> target`), leaving out the
/// top-level entries `skip` names.
fn hashes(dir: &Path, skip: &dyn Fn(&str) -> bool) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                found.insert(rel, format!("-> {}", target.display()));
            } else if meta.is_dir() {
                walk(root, &path, found);
            } else {
                found.insert(rel, sha256_hex(&fs::read(&path).unwrap()));
            }
        }
    }
    let mut found = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if skip(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(dir, &path, &mut found);
        } else {
            found.insert(
                entry.file_name().to_string_lossy().into_owned(),
                sha256_hex(&fs::read(&path).unwrap()),
            );
        }
    }
    found
}

/// The `pre_restore_*` folders in the app folder.
fn aside_dirs(app: &App) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(app.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pre_restore_")
        })
        .collect();
    found.sort();
    found
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Where each rename of a restore of `tag` in a copy of `app` goes, as its swap journal lists
/// them (the copy is killed once the journal is written).
fn planned_renames(app: &App, tag: &str) -> Vec<String> {
    let probe = copy_app(app);
    let out = probe.run_dying_at("swap-journaled", &["restore", tag, "--yes"]);
    assert_eq!(out.status.code(), None, "{}", stderr(&out));
    let journal: Value =
        serde_json::from_slice(&fs::read(probe.path("backups/restore-journal.json")).unwrap())
            .unwrap();
    journal["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap().to_string())
        .collect()
}

/// A copy of `template`, files, links and times as they are.
fn copy_app(template: &App) -> App {
    let app = App {
        dir: tempfile::tempdir().unwrap(),
    };
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", template.dir.path().display()))
        .arg(app.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    app
}

/// `backup ARGS` for `app`, started under `umask 000`.
fn under_umask_000(app: &App, args: &[&str]) -> Command {
    let inner = app.command(args);
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 000; exec \"$@\"", "sh"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(app.dir.path());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

const QUEUE_CONFIG: &str = "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \"data/queue\"\n[local]\ndir = \"backups\"\n[remote]\ntype = \"dir\"\npath = \"remote\"\n";

/// An app of 40 rows that includes its queue folder, holding one job.
fn app_with_one_queued_job() -> App {
    let app = App::new(40);
    app.write_config(QUEUE_CONFIG);
    fs::create_dir_all(app.path("data/queue")).unwrap();
    fs::write(app.path("data/queue/job.json"), b"{}").unwrap();
    app
}

#[test]
fn a_restore_never_writes_through_a_link_below_an_include() {
    let app = App::new(30);
    app.write_config(QUEUE_CONFIG);
    fs::create_dir_all(app.path("data/queue/link")).unwrap();
    fs::write(app.path("data/queue/link/x.json"), b"{\"snapshot\":1}").unwrap();
    fs::write(app.path("data/queue/top.json"), b"{\"top\":1}").unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));

    // The queue's `link` folder becomes a link to a folder outside every include, holding a file
    // of the name the snapshot lists under it.
    fs::remove_dir_all(app.path("data/queue/link")).unwrap();
    fs::create_dir_all(app.path("elsewhere")).unwrap();
    fs::write(app.path("elsewhere/x.json"), b"not the app's").unwrap();
    symlink(app.path("elsewhere"), app.path("data/queue/link")).unwrap();
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id < 10");
    let outside = fs::read(app.path("elsewhere/x.json")).unwrap();
    let not_backups = |name: &str| name == "backups";
    let before = hashes(app.dir.path(), &not_backups);
    for args in [
        &["restore", "latest", "--yes"][..],
        &["restore", "latest", "--yes", "--dry-run"],
    ] {
        let out = app.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!(
                "{} is a symbolic link",
                app.path("data/queue/link").display()
            )) && err.contains("move the link away, or make it a real folder"),
            "{err}"
        );
        assert_eq!(fs::read(app.path("elsewhere/x.json")).unwrap(), outside);
        assert_eq!(hashes(app.dir.path(), &not_backups), before, "{args:?}");
        assert!(aside_dirs(&app).is_empty());
    }

    // Done as the message says; and a file-sized link in the queue (a link the snapshot's walk
    // skipped) is set aside as the link it is: its target is never written.
    fs::remove_file(app.path("data/queue/link")).unwrap();
    fs::create_dir(app.path("data/queue/link")).unwrap();
    fs::remove_file(app.path("data/queue/top.json")).unwrap();
    fs::write(app.path("elsewhere/secret.txt"), b"secret").unwrap();
    symlink(
        app.path("elsewhere/secret.txt"),
        app.path("data/queue/top.json"),
    )
    .unwrap();
    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(
        fs::read(app.path("elsewhere/secret.txt")).unwrap(),
        b"secret"
    );
    assert_eq!(fs::read(app.path("elsewhere/x.json")).unwrap(), outside);
    let top = app.path("data/queue/top.json");
    assert!(fs::symlink_metadata(&top).unwrap().is_file());
    assert_eq!(fs::read(&top).unwrap(), b"{\"top\":1}");
    assert_eq!(
        fs::read(app.path("data/queue/link/x.json")).unwrap(),
        b"{\"snapshot\":1}"
    );
    let aside = Path::new(report["swap"]["aside_dir"].as_str().unwrap());
    assert_eq!(
        fs::read_link(aside.join("data/queue/top.json")).unwrap(),
        app.path("elsewhere/secret.txt")
    );
}

#[test]
fn a_database_behind_a_link_is_restored_into_the_links_target() {
    let app = App::new(50);
    fs::create_dir_all(app.path("srv")).unwrap();
    fs::rename(app.path("data/tasks.db"), app.path("srv/tasks.db")).unwrap();
    symlink(app.path("srv/tasks.db"), app.path("data/tasks.db")).unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let snapshot = row_counts(&app.path("srv/tasks.db"));
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id > 20");
    let changed = row_counts(&app.path("srv/tasks.db"));
    assert_ne!(snapshot, changed);

    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(
        fs::read_link(app.path("data/tasks.db")).unwrap(),
        app.path("srv/tasks.db"),
        "the link stays as it is"
    );
    assert!(
        fs::symlink_metadata(app.path("srv/tasks.db"))
            .unwrap()
            .is_file()
    );
    for companion in ["-wal", "-shm"] {
        assert!(!app.path(&format!("srv/tasks.db{companion}")).exists());
    }
    assert_eq!(row_counts(&app.path("data/tasks.db")), snapshot);
    let aside = Path::new(report["swap"]["aside_dir"].as_str().unwrap());
    assert_eq!(row_counts(&aside.join("srv/tasks.db")), changed);

    // A link to nothing: refused, saying what to do, nothing changed.
    fs::remove_file(app.path("data/tasks.db")).unwrap();
    symlink(app.path("srv/gone.db"), app.path("data/tasks.db")).unwrap();
    let before = hashes(app.dir.path(), &|name| name == "backups");
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("is a symbolic link to") && err.contains("which is missing"),
        "{err}"
    );
    assert!(err.contains("point the link at the database file"), "{err}");
    assert_eq!(hashes(app.dir.path(), &|name| name == "backups"), before);
}

/// `[[include]] path = "."` holds the config file. A restore of an older snapshot that still
/// holds one, killed at every step of its swap: the next command reads the config and recovers,
/// and the live files are all old or all new.
#[test]
fn recovery_reads_the_config_whatever_the_swap_moved() {
    let template = App::new(30);
    let config = "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \".\"\n[local]\ndir = \"backups\"\n[remote]\ntype = \"dir\"\npath = \"remote\"\n";
    template.write_config(config);
    for (rel, text) in [
        ("notes/a.txt", "a1"),
        ("notes/b.txt", "b1"),
        ("c.txt", "c1"),
        ("queue/d.json", "d1"),
    ] {
        fs::create_dir_all(template.path(rel).parent().unwrap()).unwrap();
        fs::write(template.path(rel), text).unwrap();
    }
    // The older snapshot, taken as an older version did: with the config file in it (here by
    // running from a second config file, which the walk leaves out instead).
    fs::write(template.path("other.toml"), config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_backup"))
        .arg("--config")
        .arg(template.path("other.toml"))
        .args(["now", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let old_tag = json(&out)["tag"].as_str().unwrap().to_string();
    fs::remove_file(template.path("other.toml")).unwrap();
    let names = |tag: &str| -> Vec<String> {
        read_archive(&crate::support::archive_path(
            &template.path("backups"),
            tag,
        ))
        .into_iter()
        .map(|(name, _, _)| name)
        .collect()
    };
    assert!(names(&old_tag).contains(&"files/backup.toml".to_string()));

    // Then the app moves on, its config too, and a newer snapshot comes without the config.
    template.write_config(&format!("# edited after the old snapshot\n{config}"));
    fs::write(template.path("notes/a.txt"), "a2").unwrap();
    fs::remove_file(template.path("notes/b.txt")).unwrap();
    fs::write(template.path("queue/e.json"), "e2").unwrap();
    execute_on(
        template.path("data/tasks.db"),
        "DELETE FROM tasks WHERE id < 10",
    );
    let out = template.run(&["run", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let new_tag = json(&out)["tag"].as_str().unwrap().to_string();
    assert!(!names(&new_tag).iter().any(|n| n.ends_with("backup.toml")));
    // The app closes its database, as it does on exit: no -wal/-shm files, which restore's own
    // look at the live database would otherwise tidy away before the swap.
    let conn = Connection::open(template.path("data/tasks.db")).unwrap();
    conn.query_row("SELECT count(*) FROM tasks", [], |r| r.get::<_, i64>(0))
        .unwrap();
    drop(conn);
    assert!(!template.path("data/tasks.db-wal").exists());

    // Live files only: not the snapshots, not what a restore set aside.
    let live = |app: &App| {
        hashes(app.dir.path(), &|name| {
            name == "backups" || name.starts_with("pre_restore_")
        })
    };
    let old_state = live(&template);
    let clean = copy_app(&template);
    let out = clean.run(&["restore", &old_tag, "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert!(
        report["notes"][0]
            .as_str()
            .unwrap()
            .contains("backup.toml is checked but not put back"),
        "{report}"
    );
    let new_state = live(&clean);
    assert_ne!(old_state, new_state);
    assert_eq!(
        new_state["backup.toml"], old_state["backup.toml"],
        "the config in use stays"
    );
    assert_eq!(new_state["notes/b.txt"], sha256_hex(b"b1"));
    // The renames the swap makes (a folder whose every file moves goes in one).
    let moves = planned_renames(&template, &old_tag).len();
    assert!(moves > 0);

    let mut points: Vec<String> = [
        "temp-written-restore-journal.json",
        "swap-journaled",
        "swap-aside-created",
        "swap-folders-created",
    ]
    .map(String::from)
    .to_vec();
    points.extend((0..moves).map(|i| format!("swap-move-{i}")));
    points.extend(
        [
            "temp-written-RESTORE.json",
            "swap-recorded",
            "swap-committed",
            "temp-written-last-swap.json",
        ]
        .map(String::from),
    );
    for point in &points {
        let app = copy_app(&template);
        let out = app.run_dying_at(point, &["restore", &old_tag, "--yes"]);
        assert_eq!(out.status.code(), None, "{point}: killed: {}", stderr(&out));
        for command in ["status", "list"] {
            let out = app.run(&[command]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{point}: {command}: {}",
                stderr(&out)
            );
        }
        let now = live(&app);
        // Past the last rename the swap is finished, committed or not.
        let committed = [
            "temp-written-RESTORE.json",
            "swap-recorded",
            "swap-committed",
            "temp-written-last-swap.json",
        ]
        .contains(&point.as_str());
        assert_eq!(
            &now,
            if committed { &new_state } else { &old_state },
            "{point}"
        );
        app.assert_swap_settled(point);
        if !committed {
            assert!(
                aside_dirs(&app).is_empty(),
                "{point}: {:?}",
                aside_dirs(&app)
            );
        }
    }
    // One past the last rename: the swap runs to its end.
    let app = copy_app(&template);
    let out = app.run_dying_at(
        format!("swap-move-{moves}"),
        &["restore", &old_tag, "--yes"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// An aside folder an older build made of `path = "."` lists the config file among what it set
/// aside and placed: a rollback puts everything else back, and the config in use stays.
#[test]
fn a_rollback_never_moves_the_config_file_an_older_aside_folder_lists() {
    let app = App::new(20);
    let config = "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \".\"\n[local]\ndir = \"backups\"\n";
    app.write_config(config);
    fs::write(app.path("notes.txt"), "v1").unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    fs::write(app.path("notes.txt"), "v2").unwrap();
    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let aside = PathBuf::from(json(&out)["swap"]["aside_dir"].as_str().unwrap());
    let record_path = aside.join("RESTORE.json");
    let mut record: Value = serde_json::from_slice(&fs::read(&record_path).unwrap()).unwrap();
    let live_config = app.path("backup.toml").display().to_string();
    record["set_aside"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "stored": "backup.toml", "live": live_config }));
    record["placed"]
        .as_array_mut()
        .unwrap()
        .push(Value::String(live_config));
    fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
    fs::write(
        aside.join("backup.toml"),
        "# the config an older restore set aside\n",
    )
    .unwrap();

    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(app.path("notes.txt")).unwrap(), "v2");
    assert_eq!(fs::read_to_string(app.path("backup.toml")).unwrap(), config);
    let out = app.run(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Leftovers older versions made at the start of a swap: an aside folder with no record, empty
/// or holding only a temp file. The next command removes them, and nothing else.
#[test]
fn an_aside_folder_without_record_or_files_is_removed_by_the_next_command() {
    let app = App::new(10);
    assert_eq!(app.run(&["run"]).status.code(), Some(0));
    fs::create_dir_all(app.path("pre_restore_20260101T000000Z/data")).unwrap();
    fs::create_dir_all(app.path("pre_restore_20260101T000001Z-2")).unwrap();
    fs::write(
        app.path("pre_restore_20260101T000001Z-2/.backup-tmp-RESTORE.json"),
        b"{",
    )
    .unwrap();
    // Not ours to remove: a file the user keeps there, a record, a name we never make.
    fs::create_dir_all(app.path("pre_restore_20260101T000002Z")).unwrap();
    fs::write(app.path("pre_restore_20260101T000002Z/keep.txt"), b"mine").unwrap();
    fs::create_dir_all(app.path("pre_restore_mine")).unwrap();
    let out = app.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: Vec<String> = aside_dirs(&app)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["pre_restore_20260101T000002Z", "pre_restore_mine"]);
}

#[test]
fn a_restore_with_nothing_to_set_aside_makes_no_aside_folder() {
    let app = app_with_one_queued_job();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let snapshot = row_counts(&app.path("data/tasks.db"));

    // Everything lost: the restore fills empty places.
    fs::remove_dir_all(app.path("data")).unwrap();
    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["swap"]["set_aside"], 0);
    assert_eq!(report["swap"]["aside_dir"], Value::Null);
    assert!(aside_dirs(&app).is_empty(), "{:?}", aside_dirs(&app));
    assert_eq!(row_counts(&app.path("data/tasks.db")), snapshot);
    let out = app.run(&["rollback", "--yes"]);
    assert_exit_saying(&out, 1, "nothing to put back");

    // A restore that sets the live data aside, then everything lost again and restored: the
    // rollback has nothing to put back, and leaves the earlier folder alone.
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let earlier = aside_dirs(&app);
    assert_eq!(earlier.len(), 1);
    fs::remove_dir_all(app.path("data")).unwrap();
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no live data to set aside")
            && stdout(&out).contains("nothing to put back"),
        "{}",
        stdout(&out)
    );
    let before = hashes(app.dir.path(), &|name| name == "backups");
    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("nothing to put back"), "{err}");
    assert!(err.contains(&earlier[0].display().to_string()), "{err}");
    assert_eq!(hashes(app.dir.path(), &|name| name == "backups"), before);

    // A restore that sets something aside makes the rollback work again.
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks");
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(row_counts(&app.path("data/tasks.db"))["tasks"], 0);
}

/// Under `umask 000` another user could swap a staged file after its checks; every folder the
/// tool makes for itself is 0700 whatever the umask.
#[test]
fn the_folders_a_snapshot_and_a_restore_make_are_private_under_umask_000() {
    let app = app_with_one_queued_job();
    let killed_at = |args: &[&str], point: &str| {
        let out = under_umask_000(&app, args)
            .env("BACKUP_FAILPOINT", point)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), None, "{point}: killed: {}", stderr(&out));
    };
    let ours = |dir: &Path, prefix: &str| -> PathBuf {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()))
    };

    killed_at(&["now"], "snapshot-copied");
    assert_eq!(mode(&app.path("backups")), 0o700, "the local folder");
    let staging = ours(&app.path("backups"), ".backup-tmp-staging-");
    assert_eq!(mode(&staging), 0o700);
    assert_eq!(mode(&staging.join("databases")), 0o700);
    let out = under_umask_000(&app, &["now"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    killed_at(&["verify", "latest"], "restore-extracted");
    let staging = ours(&app.path("backups"), ".backup-tmp-verify-");
    assert_eq!(mode(&staging), 0o700);
    assert_eq!(mode(&staging.join("payload")), 0o700);

    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id < 10");
    // Changed, so it goes aside (a file that still holds the snapshot's bytes stays in place).
    fs::write(app.path("data/queue/job.json"), b"{\"changed\":1}").unwrap();
    let queue_mode = mode(&app.path("data/queue"));
    killed_at(&["restore", "latest", "--yes"], "restore-extracted");
    let staging = ours(app.dir.path(), ".backup-tmp-restore-");
    assert_eq!(mode(&staging), 0o700);
    assert_eq!(mode(&staging.join("payload")), 0o700);
    let out = under_umask_000(&app, &["restore", "latest", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let aside = ours(app.dir.path(), "pre_restore_");
    assert_eq!(mode(&aside), 0o700);
    assert_eq!(mode(&aside.join("data")), 0o700);
    // The queue folder, every file of which went aside, went whole, with the mode it had live:
    // the app's own folder, not one the restore made; the aside folder above it keeps others out.
    assert_eq!(mode(&aside.join("data/queue")), queue_mode);

    // A fresh machine: the restore makes the local folder.
    fs::remove_dir_all(app.path("backups")).unwrap();
    let out = under_umask_000(&app, &["restore", "latest", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(mode(&app.path("backups")), 0o700, "the local folder");
}

/// Repacks a local archive with `extra` files added to it and to its manifest, and records its
/// new sha256: an archive crafted by someone who can write to the remote.
fn add_to_archive(archive: &Path, extra: &[(&str, &[u8])]) {
    let mut entries = read_archive(archive);
    let mut manifest: Value = serde_json::from_slice(&entries[0].1).unwrap();
    for (path, bytes) in extra {
        let archive_path = format!("files/{path}");
        manifest["files"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "path": path, "archive_path": archive_path, "size": bytes.len(),
                "mode": 0o644, "sha256": sha256_hex(bytes),
            }));
        entries.push((archive_path, bytes.to_vec(), 0o644));
    }
    entries[0].1 = serde_json::to_vec_pretty(&manifest).unwrap();
    crate::support::write_archive(archive, &entries);
}

/// An archive that lists files in the tool's own places (the local snapshot folder, a
/// `pre_restore_*` folder, a temp name) was not made by the snapshot walk, which never takes
/// files from there: refused whole, nothing written. A rollback record that sends a file
/// outside every include is refused the same way.
#[test]
fn an_archive_or_record_naming_the_tools_own_places_is_refused() {
    let app = App::new(20);
    app.write_config(&QUEUE_CONFIG.replace("path = \"data/queue\"", "path = \".\""));
    fs::create_dir_all(app.path("data/queue")).unwrap();
    fs::write(app.path("data/queue/job.json"), b"{}").unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let archive = app.path(&format!("backups/{}", app.archives("backups")[0]));
    let pristine = fs::read(&archive).unwrap();
    let pristine_record = fs::read(format!("{}.sha256", archive.display())).unwrap();
    let not_backups = |name: &str| name == "backups";
    let before = hashes(app.dir.path(), &not_backups);
    for (path, place) in [
        ("backups/last_run.json", "the local snapshot folder"),
        (
            "pre_restore_20990101T000000Z/RESTORE.json",
            "a folder where a restore set live data aside",
        ),
        (
            "data/queue/.backup-tmp-last_run.json",
            "a temporary file or folder",
        ),
    ] {
        fs::write(&archive, &pristine).unwrap();
        fs::write(format!("{}.sha256", archive.display()), &pristine_record).unwrap();
        add_to_archive(&archive, &[(path, b"crafted")]);
        let out = app.run(&["restore", "latest", "--yes"]);
        assert_eq!(out.status.code(), Some(1), "{path}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(place) && err.contains("not made by backup-agent"),
            "{err}"
        );
        assert_eq!(hashes(app.dir.path(), &not_backups), before, "{path}");
        assert!(aside_dirs(&app).is_empty());
    }

    // A record planted in a pre_restore_* folder that would send a file outside the includes.
    let planted = app.path("pre_restore_20990101T000000Z");
    fs::create_dir_all(planted.join("x")).unwrap();
    fs::write(planted.join("x/payload"), b"planted").unwrap();
    let outside = app.dir.path().parent().unwrap().join(format!(
        "outside-{}",
        app.dir.path().file_name().unwrap().to_string_lossy()
    ));
    fs::write(
        planted.join("RESTORE.json"),
        serde_json::to_vec(&serde_json::json!({
            "record_version": 1, "operation": "restore", "tag": null,
            "swapped_at": "2099-01-01T00:00:00Z", "databases": [outside],
            "placed": [], "set_aside": [{ "stored": "x/payload", "live": outside }],
        }))
        .unwrap(),
    )
    .unwrap();
    let out = app.run(&["rollback", "--yes"]);
    assert_exit_saying(&out, 1, "no restore would set aside");
    assert!(!outside.exists(), "nothing written outside the includes");
}

/// `backup.toml` may be a link (to `conf/real.toml`, kept with the app's other settings): the
/// file it leads to is the config in use, never set aside or replaced.
#[test]
fn a_config_file_behind_a_link_is_never_moved() {
    let app = App::new(20);
    fs::create_dir_all(app.path("conf")).unwrap();
    fs::write(
        app.path("conf/real.toml"),
        QUEUE_CONFIG.replace("path = \"data/queue\"", "path = \".\""),
    )
    .unwrap();
    fs::remove_file(app.path("backup.toml")).unwrap();
    symlink(app.path("conf/real.toml"), app.path("backup.toml")).unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    // An older snapshot held the config (as earlier versions took it): put one in.
    let archive = app.path(&format!("backups/{}", app.archives("backups")[0]));
    add_to_archive(&archive, &[("conf/real.toml", b"# an old config\n")]);
    let config_before = fs::read(app.path("conf/real.toml")).unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let config_inode = inode(&app.path("conf/real.toml"));
    execute_on(app.path("data/tasks.db"), "DELETE FROM tasks WHERE id < 5");
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_exit_saying(&out, 0, "config file");
    assert_eq!(fs::read(app.path("conf/real.toml")).unwrap(), config_before);
    assert_eq!(inode(&app.path("conf/real.toml")), config_inode);
    assert!(
        fs::symlink_metadata(app.path("backup.toml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// A database reached through a linked folder (`data -> /fast/disk/data`): snapshots read
/// through the link, `doctor` warns, a restore refuses to write through it unless `--force`,
/// which restores into the folder the link leads to.
#[test]
fn a_database_behind_a_linked_folder_restores_with_force_into_the_real_folder() {
    let app = App::new(30);
    fs::rename(app.path("data"), app.path("real-data")).unwrap();
    symlink(app.path("real-data"), app.path("data")).unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    fs::create_dir_all(app.path("home")).unwrap();
    let out = app
        .command(&["doctor", "--json"])
        .env("HOME", app.path("home"))
        .output()
        .unwrap();
    let doctor = json(&out);
    let db = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "database tasks")
        .unwrap()
        .clone();
    assert_eq!(db["verdict"], "warn", "{db}");
    let expected = row_counts(&app.path("real-data/tasks.db"));
    execute_on(app.path("real-data/tasks.db"), "DELETE FROM tasks");
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("is a symbolic link") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = app.run(&["restore", "latest", "--yes", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        fs::symlink_metadata(app.path("data"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(row_counts(&app.path("real-data/tasks.db")), expected);
}

/// A folder every file of which changed goes aside whole and the snapshot's folder takes its
/// place in one rename; the result is what the file-by-file swap leaves: the folder's mode, a
/// live subfolder the snapshot has no file in, and a link kept where they are (those folders
/// then move file by file), and a rollback brings every old file back.
#[test]
fn a_folder_whose_every_file_changed_is_swapped_whole_with_the_same_result() {
    let app = App::new(5);
    let config = "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \"data/queue\"\n[local]\ndir = \"backups\"\n";
    app.write_config(config);
    for (folder, n) in [("a", 30), ("b", 30), ("c", 3)] {
        fs::create_dir_all(app.path(&format!("data/queue/{folder}"))).unwrap();
        for i in 0..n {
            fs::write(
                app.path(&format!("data/queue/{folder}/job-{i}.json")),
                format!("{folder}{i} v1"),
            )
            .unwrap();
        }
    }
    fs::set_permissions(app.path("data/queue/a"), fs::Permissions::from_mode(0o750)).unwrap();
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let snapshot = hashes(&app.path("data/queue"), &|_| false);

    // Every file changes; b gains an empty subfolder, c a link: they must stay as they are.
    for (folder, n) in [("a", 30), ("b", 30), ("c", 3)] {
        for i in 0..n {
            fs::write(
                app.path(&format!("data/queue/{folder}/job-{i}.json")),
                format!("{folder}{i} v2"),
            )
            .unwrap();
        }
    }
    fs::write(app.path("data/queue/a/new.json"), "not in the snapshot").unwrap();
    fs::create_dir(app.path("data/queue/b/inbox")).unwrap();
    symlink("job-0.json", app.path("data/queue/c/link")).unwrap();
    let changed = hashes(&app.path("data/queue"), &|_| false);

    let renamed = planned_renames(&app, "latest");
    // a whole (aside and back), b and c file by file, and the database with its -wal/-shm.
    assert!(
        renamed.iter().any(|to| to.ends_with("/data/queue/a")),
        "{renamed:?}"
    );
    assert!(
        renamed.len() < 2 * (31 + 30 + 3),
        "{} renames: {renamed:?}",
        renamed.len()
    );

    let out = app.run(&["restore", "latest", "--yes", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(
        report["swap"]["set_aside"].as_u64(),
        Some(64 + 1),
        "{report}"
    );
    let restored = hashes(&app.path("data/queue"), &|_| false);
    let mut expected = snapshot.clone();
    expected.insert("c/link".into(), "-> job-0.json".into());
    assert_eq!(restored, expected);
    assert_eq!(mode(&app.path("data/queue/a")), 0o750);
    assert!(app.path("data/queue/b/inbox").is_dir());

    let out = app.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(hashes(&app.path("data/queue"), &|_| false), changed);
    assert_eq!(mode(&app.path("data/queue/a")), 0o750);
}

/// On a machine without the included folder, it comes in whole, with the modes new folders get.
#[test]
fn a_missing_folder_comes_in_whole_with_the_modes_new_folders_get() {
    let app = App::new(5);
    let config = "[[database]]\nname = \"tasks\"\npath = \"data/tasks.db\"\n[[include]]\npath = \"data/queue\"\n[local]\ndir = \"backups\"\n";
    app.write_config(config);
    fs::create_dir_all(app.path("data/queue/x/y")).unwrap();
    fs::set_permissions(app.path("data/queue/x"), fs::Permissions::from_mode(0o700)).unwrap();
    for i in 0..40 {
        fs::write(app.path(&format!("data/queue/x/y/{i}.json")), i.to_string()).unwrap();
    }
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let snapshot = hashes(&app.path("data/queue"), &|_| false);
    fs::remove_dir_all(app.path("data/queue")).unwrap();

    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(hashes(&app.path("data/queue"), &|_| false), snapshot);
    let made = fs::metadata(app.path("data")).unwrap().permissions().mode() & 0o777;
    for folder in ["data/queue", "data/queue/x", "data/queue/x/y"] {
        assert_eq!(mode(&app.path(folder)), made, "{folder}");
    }
    assert!(
        aside_dirs(&app)
            .iter()
            .all(|d| !d.join("data/queue").exists())
    );
}
