//! `[snapshot] compression`: zstd archives (`<tag>.tar.zst`) made, pushed, listed, verified and
//! restored like gzip ones, read by GNU tar for someone restoring by hand, side by side with the
//! gzip snapshots taken before the switch; zstd is the default and `compression = "gzip"` keeps
//! the old archives; a level the compressor lacks is refused.

use std::fs;
use std::process::Command;

use crate::support::{App, DIR_REMOTE_CONFIG, assert_exit_saying, row_counts, stderr};

/// An app whose config asks for `compression` (and `level`, when given).
fn app_compressing(compression: &str, level: Option<i32>) -> App {
    let app = App::new(200);
    let level = level.map(|l| format!("level = {l}\n")).unwrap_or_default();
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[snapshot]\ncompression = \"{compression}\"\n{level}"
    ));
    app
}

/// The app's only local zstd archive.
fn zstd_archive(app: &App) -> std::path::PathBuf {
    fs::read_dir(app.path("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.zst"))
        .unwrap()
}

#[test]
fn a_zstd_snapshot_is_a_tar_zst_everywhere_and_restores_from_the_remote() {
    let app = app_compressing("zstd", None);
    let out = app.run(&["now"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let local: Vec<String> = fs::read_dir(app.path("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bk-"))
        .collect();
    assert!(
        local.iter().any(|n| n.ends_with(".tar.zst"))
            && !local.iter().any(|n| n.ends_with(".tar.gz")),
        "{local:?}"
    );
    let archive = local.iter().find(|n| n.ends_with(".tar.zst")).unwrap();
    assert!(app.path("remote").join(archive).is_file());
    // Someone restoring by hand: GNU tar 1.31 or newer with the zstd program.
    if let Ok(listed) = Command::new("tar")
        .args(["--zstd", "-tf"])
        .arg(app.path("backups").join(archive))
        .output()
        && listed.status.success()
    {
        let names = String::from_utf8_lossy(&listed.stdout);
        assert!(
            names.contains("MANIFEST.json") && names.contains("databases/tasks.db"),
            "{names}"
        );
    }
    let before = row_counts(&app.path("data/tasks.db"));
    assert_eq!(app.run(&["verify", "latest"]).status.code(), Some(0));
    fs::remove_dir_all(app.path("backups")).unwrap();
    fs::remove_file(app.path("data/tasks.db")).unwrap();
    let out = app.run(&["restore", "latest", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(row_counts(&app.path("data/tasks.db")), before);
}

#[test]
fn gzip_snapshots_taken_before_a_switch_to_zstd_stay_listed_and_restorable() {
    let app = app_compressing("gzip", None);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    app.write_config(&format!(
        "{DIR_REMOTE_CONFIG}[snapshot]\ncompression = \"zstd\"\nlevel = 9\n"
    ));
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let listed = app.list_json();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let names = app.archives("backups");
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].ends_with(".tar.gz") && names[1].ends_with(".tar.zst"),
        "{names:?}"
    );
    for item in &listed {
        let tag = item["tag"].as_str().unwrap();
        let out = app.run(&["verify", tag]);
        assert_eq!(out.status.code(), Some(0), "{tag}: {}", stderr(&out));
    }
}

/// Without a `[snapshot]` table a snapshot is zstd at level 3; `compression = "gzip"` still
/// makes a `.tar.gz` at level 5, one plain gzip stream.
#[test]
fn zstd_is_the_default_and_gzip_is_kept_on_request() {
    let app = App::with_snapshot(50);
    let names = app.archives("backups");
    assert!(
        names.len() == 1 && names[0].ends_with(".tar.zst"),
        "{names:?}"
    );
    let archive = app.path("backups").join(&names[0]);
    assert_eq!(fs::read(&archive).unwrap()[..4], crate::support::ZSTD_MAGIC);
    assert_eq!(crate::support::read_archive(&archive)[0].0, "MANIFEST.json");
    let config = crate::support::stdout(&app.run(&["config", "--json"]));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["snapshot"]["compression"], "zstd", "{config}");
    assert_eq!(config["snapshot"]["level"], 3, "{config}");

    let app = app_compressing("gzip", None);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let names = app.archives("backups");
    assert!(
        names.len() == 1 && names[0].ends_with(".tar.gz"),
        "{names:?}"
    );
    let archive = app.path("backups").join(&names[0]);
    assert_eq!(fs::read(&archive).unwrap()[..2], [0x1f, 0x8b]);
    // Read by a single-member gzip decoder: one plain gzip stream.
    assert_eq!(crate::support::read_archive(&archive)[0].0, "MANIFEST.json");
    let config = crate::support::stdout(&app.run(&["config", "--json"]));
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["snapshot"]["compression"], "gzip", "{config}");
    assert_eq!(config["snapshot"]["level"], 5, "{config}");
}

#[test]
fn a_level_the_compressor_lacks_is_refused_with_the_range() {
    let app = app_compressing("zstd", Some(22));
    assert_exit_saying(
        &app.run(&["now"]),
        2,
        "[snapshot] level = 22 is not a zstd level: use 1 to 19",
    );
    let app = app_compressing("gzip", Some(0));
    assert_exit_saying(&app.run(&["now"]), 2, "use 1 to 9");
    let app = app_compressing("lz4", None);
    assert_exit_saying(&app.run(&["now"]), 2, "lz4");
}

#[test]
fn a_damaged_zstd_archive_is_said_to_be_damaged_not_a_disk_fault() {
    let app = app_compressing("zstd", None);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let archive = zstd_archive(&app);
    // Without its record, only the archive's own bytes can tell.
    fs::remove_file(format!("{}.sha256", archive.display())).unwrap();
    let mut bytes = fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5a;
    }
    fs::write(&archive, bytes).unwrap();
    fs::remove_dir_all(app.path("remote")).unwrap();
    let out = app.run(&["verify", "latest"]);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    // Caught by zstd itself or by the member's sha256 against the manifest: either way the
    // archive is blamed, never the disk.
    assert!(
        (err.contains("damaged") || err.contains("does not match its manifest"))
            && !err.contains("cannot write"),
        "{err}"
    );
}

#[test]
fn a_zstd_archive_that_starts_with_a_skippable_frame_still_reads() {
    let app = app_compressing("zstd", None);
    assert_eq!(app.run(&["now"]).status.code(), Some(0));
    let archive = zstd_archive(&app);
    // As pzstd writes it: a skippable frame (magic 0x184D2A50, 4-byte length) first.
    let mut bytes = vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
    bytes.extend(fs::read(&archive).unwrap());
    fs::write(&archive, bytes).unwrap();
    fs::remove_file(format!("{}.sha256", archive.display())).unwrap();
    fs::remove_dir_all(app.path("remote")).unwrap();
    let out = app.run(&["verify", "latest"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
