//! `backup status [--json]`: is the last good snapshot inside the cadence window? The exit code
//! says it for monitors: 0 fresh, 6 stale, 7 the last run failed.

use std::path::Path;

use backup_agent::error::Error;
use backup_agent::health::{self, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the status as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(config_path: Option<&Path>, args: &Args) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config_path)?;
    let status = health::status(&config, backup_agent::clock::now())?;
    if args.json {
        super::print_json(&json_of(&status));
    } else {
        print(&status);
    }
    Ok(crate::exit::of_state(status.state))
}

/// What `backup status --json` prints: the status with the exit code it ends with.
pub fn json_of(status: &Status) -> serde_json::Value {
    let mut value = serde_json::to_value(status).expect("serializes");
    value["exit_code"] = crate::exit::of_state(status.state).into();
    value
}

fn print(status: &Status) {
    outln!(
        "{}: {}",
        status.state.as_str().to_uppercase(),
        status.summary
    );
    let when = |m: &backup_agent::last_run::Milestone| {
        format!(
            "{}{}",
            crate::term::time(m.finished_at),
            m.tag
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        )
    };
    let mut rows = vec![(
        "last good",
        status.last_ok.as_ref().map_or("none".into(), when),
    )];
    if let Some(run) = &status.last_run {
        rows.push((
            "last run",
            format!(
                "{} at {}, {}",
                run.command,
                crate::term::time(run.finished_at),
                if run.ok { "ok" } else { "failed" }
            ),
        ));
    }
    rows.push((
        "scheduled",
        status
            .last_scheduled
            .as_ref()
            .map_or("no `backup run` recorded".into(), |m| {
                format!("{}, {}", when(m), if m.ok { "ok" } else { "failed" })
            }),
    ));
    rows.push((
        "window",
        format!("every {} + {} grace", status.every, status.grace),
    ));
    rows.push((
        "remote",
        status
            .remote
            .clone()
            .unwrap_or_else(|| "none configured".into()),
    ));
    if status.remote.is_some() {
        rows.push((
            "pending",
            match &status.pending {
                Some(tags) => format!(
                    "{} the remote lacks",
                    backup_agent::units::count(tags.len(), "local snapshot", "local snapshots")
                ),
                None => "unknown until a run reaches the remote".into(),
            },
        ));
    }
    for warning in &status.warnings {
        rows.push(("warning", warning.clone()));
    }
    for (label, value) in rows {
        outln!("  {label:<10} {value}");
    }
}
