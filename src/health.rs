//! Is the data safe right now? The verdict behind `backup status`, read from `last_run.json` and
//! the local folder alone, so a monitor can ask every minute without touching the network; and
//! the checks behind `backup doctor`, which do reach the remote (each remote says its own lines,
//! through [`crate::remote::Remote::diagnose`]).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog;
use crate::config::Config;
use crate::error::Result;
use crate::last_run::{LastRun, Milestone};
use crate::remote::{DiagnosedCheck, DiagnosedVerdict};
use crate::schedule::Interval;
use crate::tag::{self, Tag};

/// The verdict, worst first in precedence: a failed last run outranks a stale one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The last run succeeded and the last good snapshot is inside the window.
    Fresh,
    /// No good snapshot inside the window: the job stopped running (or never ran).
    Stale,
    /// The last run failed.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Stale => "stale",
            State::Failed => "failed",
        }
    }
}

/// The most recent run, in short.
#[derive(Clone, Debug, Serialize)]
pub struct RecentRun {
    pub command: String,
    pub finished_at: DateTime<Utc>,
    pub ok: bool,
    pub tag: Option<Tag>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub state: State,
    /// One sentence: why this state.
    pub summary: String,
    pub every: Interval,
    pub grace: Interval,
    /// The newest run that succeeded (snapshot and push).
    pub last_ok: Option<Milestone>,
    /// Seconds since `last_ok` finished.
    pub last_ok_age_secs: Option<u64>,
    pub last_run: Option<RecentRun>,
    /// The newest `backup run`.
    pub last_scheduled: Option<Milestone>,
    /// This machine's newest local snapshot.
    pub newest_local: Option<Tag>,
    /// Local snapshots the remote lacked after the last run (still held locally); `None` when
    /// unknown (no remote, or no run has reached the remote yet).
    pub pending: Option<Vec<Tag>>,
    /// The remote, described; `None` when none is configured.
    pub remote: Option<String>,
    /// What is not right although the state may be fresh (a damaged local copy the remote can
    /// stand in for, check findings, snapshots dated in the future), one sentence each, with
    /// what to do; they do not change the verdict.
    pub warnings: Vec<String>,
}

/// The verdict at time `now`.
///
/// The local differentials whose base the local folder does not hold, each as a warning. Only
/// the local folder is read (`status` asks no remote): `backup list` says whether the remote
/// holds the base.
fn missing_bases(local: &[catalog::LocalSnapshot]) -> Vec<String> {
    let held: std::collections::HashSet<&tag::Tag> = local.iter().map(|s| &s.tag).collect();
    local
        .iter()
        .filter_map(|s| {
            let base = crate::archive::read::read_base(&s.path).ok()??;
            (!held.contains(&base.tag)).then(|| {
                format!(
                    "snapshot {} is a differential of {}, which the local folder does not hold; `backup list` says whether the remote does (if not, it cannot be restored, and the next run takes a full)",
                    s.tag, base.tag
                )
            })
        })
        .collect()
}

/// # Errors
/// When the local snapshot folder exists but cannot be read.
pub fn status(config: &Config, now: DateTime<Utc>) -> Result<Status> {
    let record = LastRun::read(&config.local_dir);
    let local = catalog::local_snapshots(&config.local_dir)?;
    let host = tag::this_host();
    let newest_local = local
        .iter()
        .rev()
        .find(|s| s.tag.host() == host && !crate::retention::dated_in_future(&s.tag, now))
        .map(|s| s.tag.clone());
    let last_ok = record.as_ref().and_then(LastRun::last_good);
    // Negative when the record is from the future: this machine's clock went back.
    let last_ok_age = last_ok
        .as_ref()
        .map(|m| (now - m.finished_at).num_seconds());
    let last_ok_age_secs = last_ok_age.map(|secs| secs.max(0) as u64);
    let scheduled_age = record
        .as_ref()
        .and_then(|r| r.last_scheduled.as_ref())
        .map(|m| (now - m.finished_at).num_seconds().max(0) as u64);
    let pending = match (&config.remote, &record) {
        (Some(_), Some(r)) => r.pending.as_ref().map(|tags| {
            tags.iter()
                .filter(|t| local.iter().any(|l| &l.tag == *t))
                .cloned()
                .collect()
        }),
        _ => None,
    };
    let window = config.schedule.window();
    // To the minute: seconds are noise at an hourly cadence.
    let age = |secs: u64| {
        if secs < 60 {
            "under a minute".to_string()
        } else {
            Interval::from_secs(secs - secs % 60).to_string()
        }
    };
    let (state, summary) = match (&record, last_ok_age_secs) {
        (_, Some(_)) if last_ok_age.is_some_and(|secs| secs < -crate::retention::CLOCK_SLACK_SECS) => (
            State::Stale,
            "the last good snapshot is dated in the future: this machine's clock is wrong; fix the clock (e.g. enable NTP) so snapshot times and retention are right".to_string(),
        ),
        (Some(r), _) if !r.ok => (
            State::Failed,
            format!(
                "the last {} ({} ago) failed: {}",
                r.command,
                age((now - r.finished_at).num_seconds().max(0) as u64),
                r.error.as_deref().unwrap_or("no reason recorded")
            ),
        ),
        (_, None) => (
            State::Stale,
            "no successful run is recorded yet; run `backup run`, and `backup schedule install` to repeat it".to_string(),
        ),
        (_, Some(secs)) if secs > window.as_secs() => (
            State::Stale,
            format!(
                "the last good snapshot is {} old, past the {window} window ({} + {} grace); check that the schedule still runs (`backup schedule status`)",
                age(secs),
                config.schedule.every,
                config.schedule.grace
            ),
        ),
        // A job that once ran and stopped is not covered by `backup now` by hand.
        (_, Some(_)) if scheduled_age.is_some_and(|secs| secs > window.as_secs()) => (
            State::Stale,
            format!(
                "the scheduled `backup run` last ran {} ago, past the {window} window (manual snapshots do not replace it); check `backup schedule status`",
                age(scheduled_age.unwrap_or_default())
            ),
        ),
        (_, Some(secs)) => (
            State::Fresh,
            format!(
                "the last good snapshot is {} old, inside the {window} window",
                age(secs)
            ),
        ),
    };
    let mut warnings = crate::integrity::status_warnings(&config.local_dir);
    warnings.extend(future_warning(
        local.iter().map(|s| &s.tag).filter(|t| t.host() == host),
        now,
    ));
    if let Some(r) = &record {
        warnings.extend(r.refused.iter().cloned());
    }
    warnings.extend(missing_bases(&local));
    if let Some(r) = &record
        && !r.findings.is_empty()
    {
        let found: Vec<String> = r
            .findings
            .iter()
            .map(|(name, findings)| format!("`{name}`: {findings}"))
            .collect();
        warnings.push(format!(
            "the last snapshot{} was stored with check findings in the live data ({}); it restores as it is: fix the data in the app (README \"Check findings\")",
            r.tag.as_ref().map(|t| format!(" {t}")).unwrap_or_default(),
            found.join("; ")
        ));
    }
    Ok(Status {
        warnings,
        state,
        summary,
        every: config.schedule.every,
        grace: config.schedule.grace,
        last_ok,
        last_ok_age_secs,
        last_run: record.as_ref().map(|r| RecentRun {
            command: r.command.clone(),
            finished_at: r.finished_at,
            ok: r.ok,
            tag: r.tag.clone(),
            error: r.error.clone(),
        }),
        last_scheduled: record.and_then(|r| r.last_scheduled),
        newest_local,
        pending,
        remote: catalog::open_remote(config).map(|r| r.describe()),
    })
}

/// A warning naming the snapshots among `tags` that are dated in the future (taken under a wrong
/// clock), if there are any.
pub fn future_warning<'a>(
    tags: impl Iterator<Item = &'a Tag>,
    now: DateTime<Utc>,
) -> Option<String> {
    let future: Vec<String> = tags
        .filter(|t| crate::retention::dated_in_future(t, now))
        .map(ToString::to_string)
        .collect();
    (!future.is_empty()).then(|| {
        format!(
            "{} dated in the future, taken under a wrong clock: {}; `latest` skips them and retention keeps them apart: check the clock (e.g. enable NTP), and delete them by hand once you have what you need",
            crate::units::count(future.len(), "snapshot", "snapshots"),
            future.join(", ")
        )
    })
}

/// How a `backup doctor` check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Works, but not as a backup should be set up (no remote, no schedule).
    Warn,
    Fail,
}

/// One line of `backup doctor`.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do, when it is not ok.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn not_ok(
        verdict: Verdict,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            verdict,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Checks everything a scheduled run depends on, without changing anything: each database
/// readable, each include present, the local folder writable, the clock, what the remote says
/// of itself (reachable, ready; for GitHub the token's source, never its value, and a private
/// repository), the job installed.
pub fn doctor(config: &Config, places: Option<&crate::schedule::Places>) -> Vec<Check> {
    let mut checks = vec![Check::ok(
        "config",
        format!(
            "{}: {}, {}",
            config.file.display(),
            crate::units::count(config.databases.len(), "database", "databases"),
            crate::units::count(config.includes.len(), "include", "includes")
        ),
    )];
    for db in &config.databases {
        let name = format!("database {}", db.name);
        // A folder on the way that is a link: snapshots read through it, but a restore never
        // writes through one without --force.
        let linked_folder = db
            .path
            .ancestors()
            .skip(1)
            .take_while(|dir| dir.starts_with(&config.base_dir) && *dir != config.base_dir)
            .find(|dir| std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()));
        checks.push(match crate::snapshot::probe_database(db) {
            Ok(_) if linked_folder.is_some() => {
                let link = linked_folder.expect("checked");
                let real = std::fs::canonicalize(&db.path).unwrap_or_else(|_| db.path.clone());
                Check::not_ok(
                    Verdict::Warn,
                    name,
                    format!(
                        "{} is reached through the link {}: a restore refuses to write through it",
                        db.path.display(),
                        link.display()
                    ),
                    format!(
                        "set `path` of this [[database]] to where it really is ({}), or restore with --force",
                        real.display()
                    ),
                )
            }
            Ok((version, tables)) => Check::ok(
                name,
                format!(
                    "{}: {}, user_version {version}",
                    db.path.display(),
                    crate::units::count(tables, "table", "tables")
                ),
            ),
            Err(e) => Check::not_ok(
                Verdict::Fail,
                name,
                e.to_string(),
                "fix `path` under its [[database]] or the file's permissions",
            ),
        });
    }
    for include in &config.includes {
        checks.push(if include.exists() {
            Check::ok("include", include.display().to_string())
        } else {
            Check::not_ok(
                Verdict::Fail,
                "include",
                format!("{} does not exist", include.display()),
                "fix or remove the [[include]] entry",
            )
        });
    }
    checks.push(check_local_folder(&config.local_dir));
    checks.push(check_clock(config));
    checks.extend(check_remote(config));
    if let Some(places) = places {
        checks.extend(check_schedule(config, places));
    }
    checks
}

/// Snapshots of this machine dated in the future: the clock was wrong when they were taken, or
/// is wrong now.
fn check_clock(config: &Config) -> Check {
    let now = crate::clock::now();
    let host = tag::this_host();
    let local = catalog::local_snapshots(&config.local_dir).unwrap_or_default();
    match future_warning(
        local.iter().map(|s| &s.tag).filter(|t| t.host() == host),
        now,
    ) {
        None => Check::ok(
            "clock",
            format!(
                "{}; no snapshot is dated after it",
                crate::units::human_time(now)
            ),
        ),
        Some(warning) => Check::not_ok(
            Verdict::Warn,
            "clock",
            warning,
            "set the clock right (timedatectl set-ntp true), then delete the snapshots dated in the future",
        ),
    }
}

fn check_local_folder(dir: &std::path::Path) -> Check {
    let name = "local folder";
    // A missing folder is made by the first run: its nearest existing parent must be writable.
    let existing = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
    let probe = existing.join(format!("{}doctor-probe", crate::layout::TEMP_PREFIX));
    let written = crate::fsutil::create_private(&probe);
    let _ = std::fs::remove_file(&probe);
    match written {
        Ok(_) => {
            let room = crate::fsutil::available_space(existing)
                .ok()
                .flatten()
                .map(|n| format!(", {} free", crate::units::human_bytes(n)))
                .unwrap_or_default();
            let state = if existing == dir {
                "writable"
            } else {
                "will be created by the first run"
            };
            Check::ok(name, format!("{} {state}{room}", dir.display()))
        }
        Err(e) => Check::not_ok(
            Verdict::Fail,
            name,
            e.to_string(),
            format!(
                "make {} writable, or set [local] dir to a folder you can write",
                existing.display()
            ),
        ),
    }
}

fn check_remote(config: &Config) -> Vec<Check> {
    let Some(remote) = catalog::open_remote(config) else {
        return vec![Check::not_ok(
            Verdict::Warn,
            "remote",
            "none configured: snapshots stay on this machine",
            "add a [remote] (see README \"Configuration\") so a dead disk does not take the backups with it",
        )];
    };
    remote.diagnose().into_iter().map(Check::from).collect()
}

impl From<DiagnosedCheck> for Check {
    fn from(check: DiagnosedCheck) -> Check {
        Check {
            name: check.name,
            verdict: match check.verdict {
                DiagnosedVerdict::Ok => Verdict::Ok,
                DiagnosedVerdict::Warn => Verdict::Warn,
                DiagnosedVerdict::Fail => Verdict::Fail,
            },
            detail: check.detail,
            fix: check.fix,
        }
    }
}

/// The job's line, then, for an installed job, whether what runs it is running.
fn check_schedule(config: &Config, places: &crate::schedule::Places) -> Vec<Check> {
    let id = crate::schedule::job_id(&crate::schedule::canonical_config(&config.file));
    let state = crate::schedule::state(&id, places);
    let mut checks = vec![check_job(&id, &state, places)];
    if let Ok(state) = &state {
        if state.cron.is_some() {
            checks.extend(check_cron_daemon());
        }
        if state.systemd.is_some() {
            checks.extend(check_linger());
        }
    }
    checks
}

/// A crontab line runs only while a cron daemon does; `None` where `/proc` cannot tell.
fn check_cron_daemon() -> Option<Check> {
    use crate::schedule::daemon;
    let proc_root = std::path::Path::new("/proc");
    if !daemon::proc_available(proc_root) {
        return None;
    }
    Some(match daemon::find_cron_daemon(proc_root) {
        Some(found) => Check::ok(
            "cron daemon",
            format!("{} (pid {}) runs the crontab", found.name, found.pid),
        ),
        None => Check::not_ok(
            Verdict::Fail,
            "cron daemon",
            "no cron daemon is running: the job's crontab line never runs",
            "start cron and enable it at boot: `sudo systemctl enable --now cron` (`crond` or `cronie` on Fedora and Arch; on Alpine `sudo rc-update add crond && sudo rc-service crond start`)",
        ),
    })
}

/// A user timer runs while the user's systemd manager does: without lingering that is only
/// while they are logged in. `None` where `loginctl` cannot say.
fn check_linger() -> Option<Check> {
    Some(match crate::schedule::daemon::linger_enabled()? {
        true => Check::ok("linger", "on: the user timer runs while you are logged out"),
        false => Check::not_ok(
            Verdict::Warn,
            "linger",
            "lingering is off: the user timer stops when you log out, so on a server nobody stays logged in to it never runs",
            "sudo loginctl enable-linger $USER",
        ),
    })
}

fn check_job(
    id: &str,
    state: &Result<crate::schedule::JobState>,
    places: &crate::schedule::Places,
) -> Check {
    match state {
        Ok(state) if state.is_installed() => {
            let names: Vec<&str> = state.backends().iter().map(|b| b.as_str()).collect();
            match state.programs(places).into_iter().find(|p| !p.is_file()) {
                Some(gone) => Check::not_ok(
                    Verdict::Fail,
                    "schedule",
                    format!(
                        "job {id} ({}) runs {}, which does not exist (moved, upgraded elsewhere or cleaned away)",
                        names.join(", "),
                        gone.display()
                    ),
                    "run `backup schedule install` again with the binary you keep",
                ),
                None => Check::ok("schedule", format!("job {id} ({})", names.join(", "))),
            }
        }
        Ok(_) => Check::not_ok(
            Verdict::Warn,
            "schedule",
            "no job runs `backup run` for this config",
            "run `backup schedule install`",
        ),
        Err(e) => Check::not_ok(
            Verdict::Warn,
            "schedule",
            e.to_string(),
            "run `backup schedule status` to see what the scheduler says",
        ),
    }
}
