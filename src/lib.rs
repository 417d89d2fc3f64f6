//! backup-agent keeps the SQLite state of local-first apps safe off the machine.
//!
//! The library does the work and prints nothing; the `backup` binary parses the command line and
//! renders results. One module per concept:
//!
//! - [`config`]: `backup.toml`, resolved once and passed in;
//! - [`snapshot`]: consistent copies, `MANIFEST.json`, `<tag>.tar.gz`;
//! - [`checks`]: the database checks a snapshot and a restore both run, and their findings;
//! - [`remote`]: where snapshots go off the machine: a folder, or GitHub Releases;
//! - [`auth`]: the GitHub token in the OS keyring;
//! - [`job`]: the `now`/`run` job: lock, snapshot, push what the remote lacks, `last_run.json`;
//! - [`catalog`]: what exists locally and remotely (`backup list`);
//! - [`integrity`]: damaged local copies: a bounded re-check per run, repair from the remote;
//! - [`schedule`]: the cadence and the job that runs `backup run` (systemd, cron, launchd);
//! - [`health`]: is the last good snapshot recent enough (`backup status`, `backup doctor`);
//! - [`restore`]: restore, verify and rollback, checked before live data is touched;
//! - [`tag`]: snapshot names that sort by time and never collide;
//! - [`migrate`]: migration ladders; [`demo`]: the embedded sample app.
//!
//! ```no_run
//! use backup_agent::{config::Config, job, progress::Silent, tag::Kind};
//!
//! let config = Config::load("backup.toml".as_ref())?;
//! let report = job::snapshot_and_push(&config, Kind::Manual, &Silent)?;
//! println!("took {} ({} bytes)", report.snapshot.tag, report.snapshot.size);
//! for entry in backup_agent::catalog::list(&config.local_dir, None)?.0 {
//!     println!("{} {}", entry.tag, entry.location.as_str());
//! }
//! # Ok::<(), backup_agent::Error>(())
//! ```

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
pub mod integrity;
pub mod job;
pub mod last_run;
pub mod lock;
pub mod migrate;
pub mod progress;
pub mod remote;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod snapshot;
pub mod tag;

pub use error::{Error, Result};
