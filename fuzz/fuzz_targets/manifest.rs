//! MANIFEST.json parsing and validation: never panics, and whatever it accepts lists only safe
//! relative paths under `databases/` and `files/`, each once.
#![no_main]

use std::collections::BTreeSet;

use backup_agent::archive::read::parse_manifest;
use libfuzzer_sys::fuzz_target;

/// Checked apart from the parser's own path check, so a bug there shows here.
fn safe(path: &str) -> bool {
    !path.starts_with('/')
        && !path.contains('\0')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

fuzz_target!(|json: &[u8]| {
    let Ok(manifest) = parse_manifest(json) else {
        return;
    };
    let mut seen = BTreeSet::new();
    for db in &manifest.databases {
        assert!(safe(&db.archive_path), "{}", db.archive_path);
        assert!(db.archive_path.starts_with("databases/"));
        assert!(seen.insert(db.archive_path.clone()));
    }
    for file in &manifest.files {
        assert!(safe(&file.archive_path), "{}", file.archive_path);
        assert!(file.archive_path.starts_with("files/"));
        assert!(seen.insert(file.archive_path.clone()));
    }
    // Sizes from a hostile manifest must not overflow what is computed from them.
    let _ = manifest.payload_bytes();
});
