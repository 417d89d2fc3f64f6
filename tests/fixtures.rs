//! The restore fixtures in `fixtures/restore/`, by name: what `examples/regenerate_fixtures.rs`
//! writes and the restore tests read.

use std::path::{Path, PathBuf};

/// The folder of the restore fixtures.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/restore")
}

/// Tags of the fixture archives, by name.
pub fn tag(name: &str) -> &'static str {
    match name {
        "good-v1" => "bk-20260101T000000Z-manual-fixture-000001",
        "good-v3" => "bk-20260101T010000Z-manual-fixture-000003",
        "tampered" => "bk-20260102T000000Z-manual-fixture-00000a",
        "truncated" => "bk-20260102T010000Z-manual-fixture-00000b",
        "dotdot" => "bk-20260102T020000Z-manual-fixture-00000c",
        "absolute" => "bk-20260102T030000Z-manual-fixture-00000d",
        "symlink" => "bk-20260102T040000Z-manual-fixture-00000e",
        "newer-schema" => "bk-20260102T050000Z-manual-fixture-00000f",
        "manifest-v3" => "bk-20260102T060000Z-manual-fixture-000010",
        "wrong-counts" => "bk-20260102T070000Z-manual-fixture-000011",
        other => panic!("no fixture {other}"),
    }
}

/// Every bad archive with a phrase its refusal must contain.
pub const BAD: [(&str, &str); 8] = [
    ("tampered", "does not match its manifest"),
    ("truncated", "truncated"),
    ("dotdot", "unsafe path"),
    ("absolute", "unsafe path"),
    ("symlink", "symbolic link"),
    ("newer-schema", "newer than the newest migration known (3)"),
    ("manifest-v3", "manifest_version is 3"),
    ("wrong-counts", "the manifest disagrees with its files"),
];
