//! `backup schedule install|remove|status`: the job that runs `backup run` for this config.

use std::path::Path;

use serde::Serialize;

use backup_agent::error::Error;
use backup_agent::last_run::LastRun;
use backup_agent::schedule::{self, Backend, Installed, Interval, Job, JobState, Places};

use crate::exit;

use super::print_json;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Install the job (a systemd user timer, else a crontab line); again replaces it
    Install(InstallArgs),
    /// Remove this config's job; other crontab lines and timers stay
    Remove(JsonArg),
    /// Show where this config's job is installed and when it last ran
    Status(JsonArg),
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// How often: a period that divides an hour or a day [default: [schedule] every, else 1h]
    #[arg(long, value_name = "PERIOD")]
    every: Option<Interval>,

    /// Print the unit files or crontab line without installing anything
    #[arg(long)]
    dry_run: bool,

    /// Use a systemd user timer
    #[arg(long, conflicts_with_all = ["cron", "launchd"])]
    systemd: bool,

    /// Use a line in the user's crontab
    #[arg(long, conflicts_with_all = ["launchd"])]
    cron: bool,

    /// Write a launchd agent (macOS) to ~/Library/LaunchAgents
    #[arg(long)]
    launchd: bool,

    /// Print the outcome as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct JsonArg {
    /// Print the outcome as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(config_path: Option<&Path>, command: &Command) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config_path)?;
    let places = Places::from_env()?;
    let config_file = schedule::canonical_config(&config.file);
    let id = schedule::job_id(&config_file);
    match command {
        Command::Install(args) => {
            let every = args.every.unwrap_or(config.schedule.every);
            let program = std::env::current_exe().map_err(|e| {
                Error::Schedule(format!(
                    "cannot find this program's path ({e}); run it by its full path"
                ))
            })?;
            let job = Job::new(&program, &config_file, every)?;
            let backend = if args.systemd {
                Backend::Systemd
            } else if args.cron {
                Backend::Cron
            } else if args.launchd {
                Backend::Launchd
            } else {
                schedule::default_backend()?
            };
            let installed = schedule::install(&job, backend, &places, args.dry_run)?;
            if args.json {
                print_json(&installed);
            } else {
                print_installed(&installed);
            }
            if every != config.schedule.every {
                errln!(
                    "backup: note: `backup status` judges freshness by [schedule] every = \"{}\"; set every = \"{every}\" in {} to match",
                    config.schedule.every,
                    config.file.display()
                );
            }
            Ok(exit::OK)
        }
        Command::Remove(args) => {
            let removed = schedule::remove(&id, &places)?;
            if args.json {
                print_json(&Removed {
                    id: &id,
                    removed: removed.backends(),
                });
            } else if removed.is_installed() {
                let names: Vec<&str> = removed.backends().iter().map(|b| b.as_str()).collect();
                outln!("removed job {id} ({})", names.join(", "));
            } else {
                outln!("no job for {} was installed", config.file.display());
            }
            Ok(exit::OK)
        }
        Command::Status(args) => {
            let state = schedule::state(&id, &places)?;
            let last = LastRun::read(&config.local_dir).and_then(|r| r.last_scheduled);
            if args.json {
                print_json(&StatusJson {
                    installed: state.is_installed(),
                    state: &state,
                    last_scheduled: last.as_ref(),
                });
            } else {
                print_state(&state, last.as_ref(), &config.file);
            }
            // Not installed is not an error here: `backup doctor` and `backup status` judge.
            Ok(exit::OK)
        }
    }
}

#[derive(Serialize)]
struct Removed<'a> {
    id: &'a str,
    removed: Vec<Backend>,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    installed: bool,
    #[serde(flatten)]
    state: &'a JobState,
    last_scheduled: Option<&'a backup_agent::last_run::Milestone>,
}

fn print_installed(installed: &Installed) {
    let verb = match (installed.dry_run, installed.replaced) {
        (true, _) => "would install",
        (false, true) => "replaced",
        (false, false) => "installed",
    };
    outln!(
        "{verb} job {} ({}, every {})",
        installed.id,
        installed.backend.as_str(),
        installed.every
    );
    if let Some(line) = &installed.crontab_line {
        if installed.dry_run {
            outln!("crontab line:\n{line}");
        } else {
            outln!("  {line}");
        }
    }
    for file in &installed.files {
        if installed.dry_run {
            outln!("--- {}\n{}", file.path.display(), file.text);
        } else {
            outln!("  {}", file.path.display());
        }
    }
    if let Some(step) = &installed.next_step {
        outln!("next: {step}");
    }
}

fn print_state(state: &JobState, last: Option<&backup_agent::last_run::Milestone>, config: &Path) {
    if !state.is_installed() {
        outln!(
            "no job installed for {}; run `backup schedule install`",
            config.display()
        );
    }
    if let Some(line) = &state.cron {
        outln!("cron:     {line}");
    }
    if let Some(timer) = &state.systemd {
        outln!("systemd:  {}", timer.display());
    }
    if let Some(plist) = &state.launchd {
        outln!("launchd:  {}", plist.display());
    }
    match last {
        Some(m) => outln!(
            "last ran: {}, {}",
            crate::term::time(m.finished_at),
            if m.ok { "ok" } else { "failed" }
        ),
        None => outln!("last ran: never (no `backup run` recorded)"),
    }
}
