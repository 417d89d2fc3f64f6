//! Running `backup run` unattended: the cadence (`[schedule]`), and the job that runs it — a
//! systemd user timer, a tagged crontab line, or a launchd agent.
//!
//! A job belongs to one config file: its id is derived from the config's absolute path, so two
//! apps on one machine get two jobs, and installing again replaces only that config's job.
//!
//! - [`job`]: what the job is: its id, and its crontab line, systemd units or launchd plist;
//! - [`install`]: putting it in place, finding it again and removing it;
//! - [`daemon`]: whether what runs an installed job is running (cron) or outlives a logout
//!   (systemd lingering).

pub mod daemon;
pub mod install;
pub mod interval;
pub mod job;

use serde::{Deserialize, Serialize};

pub use install::{
    Installed, JobState, Places, WrittenFile, cron_available, default_backend, install, remove,
    state, systemd_available,
};
pub use interval::Interval;
pub use job::{Job, canonical_config, check_period, job_id};

/// `[schedule]`: how often the job runs, and how late a run may be before `backup status` calls
/// the backups stale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cadence {
    pub every: Interval,
    pub grace: Interval,
}

impl Default for Cadence {
    fn default() -> Cadence {
        Cadence {
            every: Interval::from_secs(3_600),
            // Room for the timer's randomized delay, a slow push and its retries.
            grace: Interval::from_secs(30 * 60),
        }
    }
}

impl Cadence {
    /// The age past which the last good snapshot is stale.
    pub fn window(&self) -> Interval {
        Interval::from_secs(self.every.as_secs() + self.grace.as_secs())
    }
}

/// What runs the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A systemd user timer (Persistent, so a run missed while the machine slept happens on wake).
    Systemd,
    /// A line in the user's crontab, tagged with the job id.
    Cron,
    /// A launchd agent in `~/Library/LaunchAgents` (macOS).
    Launchd,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Systemd => "systemd",
            Backend::Cron => "cron",
            Backend::Launchd => "launchd",
        }
    }
}
