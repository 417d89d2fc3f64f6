//! backup-agent keeps the SQLite state of local-first apps safe off the machine.
//!
//! The library does the work and prints nothing; the `backup` binary parses the command line and
//! renders results. One module per concept:
//!
//! - [`config`]: `backup.toml`, resolved once and passed in;
//! - [`archive`]: the `<tag>.tar.gz`/`.tar.zst` format: `MANIFEST.json`, writer, reader,
//!   parallel gzip, zstd;
//! - [`snapshot`]: consistent copies of the databases and files, written as one archive;
//! - [`checks`]: the database checks a snapshot and a restore both run, and their findings;
//! - [`remote`]: where snapshots go off the machine: a folder, or GitHub Releases;
//! - [`auth`]: GitHub tokens: where one is found, and the OS keyring;
//! - [`run`]: the `now`/`run` run: lock, snapshot, push what the remote lacks, `last_run.json`;
//! - [`catalog`]: what exists locally and remotely (`backup list`);
//! - [`inspect`]: a snapshot's manifest, two snapshots compared, their sizes (`show`, `diff`, `stats`);
//! - [`integrity`]: the record of damaged local copies (`checked.json`);
//! - [`recheck`]: after each run, a bounded re-check of local copies and repair from the remote;
//! - [`schedule`]: the cadence and the job that runs `backup run` (systemd, cron, launchd);
//! - [`health`]: is the last good snapshot recent enough (`backup status`, `backup doctor`);
//! - [`restore`]: restore, verify and rollback, checked before live data is touched;
//! - [`retention`]: which snapshots to keep, and why (pure); [`prune`]: carrying that out;
//! - [`tag`]: snapshot names that sort by time and never collide;
//! - [`layout`]: every name the tool gives a file or folder, the archive scan, the leftovers;
//! - [`units`]: byte counts and digests written out; [`fsutil`]: durable writes and hashing;
//! - [`migrate`]: migration ladders; [`demo`]: the embedded sample app.
//!
//! ```no_run
//! use backup_agent::{config::Config, progress::Silent, run, tag::Kind};
//!
//! let config = Config::load("backup.toml".as_ref())?;
//! let report = run::snapshot_and_push(&config, Kind::Manual, None, false, &Silent)?;
//! println!("took {} ({} bytes)", report.snapshot.tag, report.snapshot.size);
//! for entry in backup_agent::catalog::list(&config.local_dir, None)?.0 {
//!     println!("{} {}", entry.tag, entry.location.as_str());
//! }
//! # Ok::<(), backup_agent::Error>(())
//! ```

pub mod archive;
pub mod auth;
pub mod catalog;
pub mod checks;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod failpoint;
pub mod fsutil;
pub mod health;
pub mod inspect;
pub mod integrity;
pub mod last_run;
pub mod layout;
pub mod lock;
pub mod migrate;
pub mod progress;
pub mod prune;
pub mod recheck;
pub mod remote;
pub mod restore;
pub mod retention;
pub mod run;
pub mod schedule;
pub mod snapshot;
pub mod tag;
pub mod units;

pub use error::{Error, RemoteError, RemoteErrorKind, Result};
