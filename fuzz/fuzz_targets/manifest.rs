//! MANIFEST.json parsing and validation: never panics, and whatever it accepts lists only plain
//! relative paths under `databases/` and `files/`, each once.
#![no_main]

use std::collections::BTreeSet;

use backup_agent::restore::extract::{is_plain_relative, parse_manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &[u8]| {
    let Ok(manifest) = parse_manifest(json) else {
        return;
    };
    let mut seen = BTreeSet::new();
    for db in &manifest.databases {
        assert!(is_plain_relative(&db.archive_path), "{}", db.archive_path);
        assert!(db.archive_path.starts_with("databases/"));
        assert!(seen.insert(db.archive_path.clone()));
    }
    for file in &manifest.files {
        assert!(
            is_plain_relative(&file.archive_path),
            "{}",
            file.archive_path
        );
        assert!(file.archive_path.starts_with("files/"));
        assert!(seen.insert(file.archive_path.clone()));
    }
});
