//! Archive extraction of arbitrary bytes: never panics, never writes outside the destination
//! folder, never leaves a link, and accepts only archives whose every file matches its manifest.
//!
//! Input that is not gzip is gzipped first, so the fuzzer can also work on the tar layer.
#![no_main]

use std::fs;
use std::io::Write;
use std::path::Path;

use backup_agent::archive::read::{ArchiveSha, extract};
use backup_agent::progress::Silent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let root = tempfile::tempdir().unwrap();
    let sandbox = root.path().join("sandbox");
    let dest = sandbox.join("dest");
    fs::create_dir_all(&dest).unwrap();
    let archive = root.path().join("input.tar.gz");
    if data.starts_with(&[0x1f, 0x8b]) {
        fs::write(&archive, data).unwrap();
    } else {
        let mut gz = flate2::write::GzEncoder::new(
            fs::File::create(&archive).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(data).unwrap();
        gz.finish().unwrap();
    }
    let result = extract(&archive, &dest, ArchiveSha::Check(None), &Silent);

    // Nothing new around `dest`, two levels up, and nothing but folders and regular files in
    // it (absolute paths are refused before any write, so they never get this far).
    assert_eq!(names(&sandbox), ["dest"], "wrote outside the destination");
    assert_eq!(
        names(root.path()),
        ["input.tar.gz", "sandbox"],
        "wrote outside the destination"
    );
    let mut files = 0;
    walk(&dest, &mut |path, meta| {
        assert!(
            meta.is_dir() || meta.is_file(),
            "{} is neither file nor folder",
            path.display()
        );
        if meta.is_file() {
            files += 1;
        }
    });
    if let Ok(extracted) = result {
        let listed = extracted.manifest.databases.len() + extracted.manifest.files.len();
        assert_eq!(
            files, listed,
            "an accepted archive holds exactly its listed files"
        );
    }
});

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path, &fs::Metadata)) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        visit(&path, &meta);
        if meta.is_dir() {
            walk(&path, visit);
        }
    }
}
