//! Config parsing: never panics; an error names the file; an accepted config has absolute paths
//! and at least one database.
#![no_main]

use std::path::Path;

use backup_agent::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match Config::parse(text, Path::new("/srv/app/backup.toml")) {
        Ok(config) => {
            assert!(!config.databases.is_empty());
            assert!(config.databases.iter().all(|d| d.path.is_absolute()));
            assert!(config.local_dir.is_absolute());
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("/srv/app/backup.toml"), "{message}");
        }
    }
});
