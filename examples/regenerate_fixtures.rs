//! Builds `fixtures/restore/`: small databases at known schema versions and snapshot archives,
//! good and deliberately bad, named as `tests/fixtures.rs` lists them. Run
//! `cargo run --example regenerate_fixtures` after changing the manifest format;
//! `fixtures/README.md` describes each file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use backup_agent::archive::{DatabaseEntry, FileEntry, MANIFEST_NAME, Manifest};
use backup_agent::migrate::Ladder;
use backup_agent::tag::{Kind, Tag};
use chrono::TimeZone;
use rusqlite::Connection;

#[allow(dead_code)] // The refusals each bad fixture must meet are the tests' concern.
#[path = "../tests/fixtures.rs"]
mod fixtures;

use fixtures::{dir, tag};

#[path = "../tests/support/inspect.rs"]
mod inspect;

use inspect::{row_counts, sha256_hex};

/// The sample app's database at schema `version`, with a few rows in every table it has.
fn make_app_db(path: &Path, version: u32) {
    let _ = fs::remove_file(path);
    let conn = Connection::open(path).unwrap();
    for step in Ladder::sample_app()
        .steps()
        .iter()
        .take(version.min(3) as usize)
    {
        conn.execute_batch(&step.sql).unwrap();
    }
    conn.execute_batch(
        "INSERT INTO tags (id, name, color, created_at) VALUES (1, 'urgent', 'red', '2026-01-01');
         INSERT INTO tasks (id, uuid, title, status, created_at, updated_at)
           VALUES (1, 'u1', 'write fixtures', 'doing', '2026-01-01', '2026-01-01'),
                  (2, 'u2', 'review fixtures', 'todo', '2026-01-01', '2026-01-01');
         INSERT INTO task_tags VALUES (1, 1);",
    )
    .unwrap();
    if version >= 2 {
        conn.execute_batch(
            "INSERT INTO task_history (task_id, changed_at, actor, field, new_value)
               VALUES (1, '2026-01-01', 'ann', 'status', 'doing');",
        )
        .unwrap();
    }
    if version >= 3 {
        conn.execute_batch(
            "INSERT INTO messages (task_id, author, created_at, body)
               VALUES (1, 'ann', '2026-01-01', 'on it');",
        )
        .unwrap();
    }
    conn.pragma_update(None, "user_version", version).unwrap();
    conn.execute_batch("VACUUM").unwrap();
}

struct Member {
    name: Vec<u8>,
    kind: tar::EntryType,
    data: Vec<u8>,
    link: Option<&'static str>,
}

fn member(name: &str, data: Vec<u8>) -> Member {
    Member {
        name: name.as_bytes().to_vec(),
        kind: tar::EntryType::Regular,
        data,
        link: None,
    }
}

/// Writes a tar.gz with raw header names (the tar crate's own path setters refuse the bad ones).
fn write_archive(path: &Path, members: &[Member]) {
    let file = fs::File::create(path).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::new(6),
    ));
    for m in members {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(m.kind);
        header.set_size(m.data.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(1_767_225_600);
        let name = &mut header.as_old_mut().name;
        name[..m.name.len()].copy_from_slice(&m.name);
        if let Some(link) = m.link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        tar.append(&header, &m.data[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

fn manifest_for(tag: &str, db: &[u8], db_path: &Path, queue: &[u8]) -> Manifest {
    let tag = Tag::parse(tag).unwrap();
    Manifest {
        manifest_version: 1,
        created_at: chrono::Utc.from_utc_datetime(&tag.time().naive_utc()),
        kind: Kind::Manual,
        tool: backup_agent::archive::manifest::ToolInfo {
            name: "backup-agent".into(),
            version: "0.1.0".into(),
        },
        host: "fixture".into(),
        databases: vec![DatabaseEntry {
            name: "tasks".into(),
            path: "data/tasks.db".into(),
            archive_path: "databases/tasks.db".into(),
            user_version: Connection::open(db_path)
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap(),
            page_size: 4096,
            journal_mode: "wal".into(),
            size: db.len() as u64,
            sha256: sha256_hex(db),
            tables: row_counts(db_path),
            // As the manifests of the first version were: no check findings recorded.
            findings: None,
            // Written as manifests were before these fields: restore falls back for both.
            copied_at: None,
            mode: None,
            pages: None,
        }],
        files: vec![FileEntry {
            path: "data/queue/job-1.json".into(),
            archive_path: "files/data/queue/job-1.json".into(),
            size: queue.len() as u64,
            mode: 0o644,
            sha256: sha256_hex(queue),
            in_base: false,
        }],
        // Written as manifests were before notes: none.
        note: None,
        base: None,
        tag,
    }
}

fn json(manifest: &Manifest) -> Vec<u8> {
    serde_json::to_vec_pretty(manifest).unwrap()
}

fn main() {
    let out = dir();
    fs::create_dir_all(&out).unwrap();
    let queue = br#"{"job":1,"task":1,"action":"notify"}"#.to_vec();
    let mut dbs = BTreeMap::new();
    for version in [1, 3, 9] {
        let path = out.join(format!("tasks-v{version}.db"));
        make_app_db(&path, version);
        dbs.insert(version, (fs::read(&path).unwrap(), path));
    }
    let (v1, v1_path) = &dbs[&1];
    let (v3, v3_path) = &dbs[&3];
    let (v9, v9_path) = &dbs[&9];
    let standard = |db: &[u8], manifest: &Manifest| {
        vec![
            member(MANIFEST_NAME, json(manifest)),
            member("databases/tasks.db", db.to_vec()),
            member("files/data/queue/job-1.json", queue.clone()),
        ]
    };
    let archive = |name: &str| out.join(format!("{}.tar.gz", tag(name)));

    for (name, db, db_path) in [("good-v1", v1, v1_path), ("good-v3", v3, v3_path)] {
        let m = manifest_for(tag(name), db, db_path, &queue);
        write_archive(&archive(name), &standard(db, &m));
    }

    // One byte of the database changed after its sha256 was recorded.
    let m = manifest_for(tag("tampered"), v3, v3_path, &queue);
    let mut members = standard(v3, &m);
    members[1].data[200] ^= 0x01;
    write_archive(&archive("tampered"), &members);

    // A good archive cut in half.
    let m = manifest_for(tag("truncated"), v3, v3_path, &queue);
    write_archive(&archive("truncated"), &standard(v3, &m));
    let bytes = fs::read(archive("truncated")).unwrap();
    fs::write(archive("truncated"), &bytes[..bytes.len() / 2]).unwrap();

    // Entries that try to write outside the staging folder.
    for (name, evil) in [
        ("dotdot", "../escaped.txt"),
        ("absolute", "/tmp/escaped.txt"),
    ] {
        let m = manifest_for(tag(name), v3, v3_path, &queue);
        let mut members = standard(v3, &m);
        members.insert(1, member(evil, b"owned\n".to_vec()));
        write_archive(&archive(name), &members);
    }

    // A link pointing out of the folder, where the queue file should be.
    let m = manifest_for(tag("symlink"), v3, v3_path, &queue);
    let mut members = standard(v3, &m);
    members[2] = Member {
        name: b"files/data/queue/job-1.json".to_vec(),
        kind: tar::EntryType::Symlink,
        data: Vec::new(),
        link: Some("../../../../../etc/passwd"),
    };
    write_archive(&archive("symlink"), &members);

    // Schema version 9 while the sample app's migrations end at 3.
    let m = manifest_for(tag("newer-schema"), v9, v9_path, &queue);
    write_archive(&archive("newer-schema"), &standard(v9, &m));

    // A manifest from a future format.
    let m = manifest_for(tag("manifest-v3"), v3, v3_path, &queue);
    let mut value = serde_json::to_value(&m).unwrap();
    value["manifest_version"] = 3.into();
    let mut members = standard(v3, &m);
    members[0].data = serde_json::to_vec_pretty(&value).unwrap();
    write_archive(&archive("manifest-v3"), &members);

    // Right bytes and checksums, wrong row count: the manifest disagrees with its files.
    let mut m = manifest_for(tag("wrong-counts"), v3, v3_path, &queue);
    *m.databases[0].tables.get_mut("tasks").unwrap() += 1;
    write_archive(&archive("wrong-counts"), &standard(v3, &m));
}
