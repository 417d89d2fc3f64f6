//! Ctrl-C (SIGINT) and SIGTERM (what cron and systemd send to stop a job) during `now`/`run`:
//! the snapshot's temporaries (its staging folder and the archive being written, hundreds of MB)
//! go before the process exits, instead of waiting for the next command, and the message says
//! whether the snapshot was taken. A run that stopped before its snapshot was taken is recorded
//! as failed in `last_run.json`, so `backup status` tells a monitor. Exit 128 + the signal's
//! number (130, 143), as shells do.

use std::collections::BTreeSet;
use std::path::Path;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use backup_agent::error::Error;
use backup_agent::last_run::LastRun;
use backup_agent::layout;
use backup_agent::tag::Tag;

/// From now on, SIGINT or SIGTERM removes the temporaries in `local_dir` (only while this process
/// holds the run lock: before that, any there belong to another run) and exits. `command` is
/// the run's name in `last_run.json` (`now` or `run`).
pub fn clean_up_on_signal(local_dir: &Path, command: &'static str) -> Result<(), Error> {
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Error::System(format!("cannot watch for Ctrl-C: {e}")))?;
    let local_dir = local_dir.to_path_buf();
    let before = archive_tags(&local_dir);
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let code = stop(&local_dir, &before, signal, command);
            std::process::exit(code);
        }
    });
    Ok(())
}

/// Removes our temporaries, says what happened, and returns the exit code.
fn stop(local_dir: &Path, before: &BTreeSet<Tag>, signal: i32, command: &str) -> i32 {
    crate::term::clear_progress_line();
    let cause = if signal == SIGINT {
        "interrupted (Ctrl-C)"
    } else {
        "stopped (SIGTERM)"
    };
    let new_archives = || -> Vec<String> {
        archive_tags(local_dir)
            .difference(before)
            .map(ToString::to_string)
            .collect()
    };
    let (cleaned, taken) = backup_agent::lock::while_held(|| {
        let cleaned = match layout::remove_stale_temps(local_dir) {
            Ok(()) => "its temporary files were removed".to_string(),
            Err(e) => format!("{e}; the next command removes them"),
        };
        let taken = new_archives();
        if taken.is_empty() {
            let now = backup_agent::clock::now();
            let record = LastRun {
                command: command.to_string(),
                started_at: now,
                finished_at: now,
                error: Some(format!("{cause}: the snapshot was not taken")),
                ..LastRun::default()
            };
            // The message below matters more than the record; a failed write only loses it.
            let _ = record.write(local_dir);
        }
        (cleaned, taken)
    })
    .unwrap_or_else(|| ("it had written nothing yet".to_string(), new_archives()));
    if taken.is_empty() {
        errln!("backup: error: {cause}: the snapshot was not taken; {cleaned}");
    } else {
        errln!(
            "backup: error: {cause}: snapshot {} is stored locally; if its push did not finish, the next `backup run` pushes it; {cleaned}",
            taken.join(", ")
        );
    }
    128 + signal
}

fn archive_tags(local_dir: &Path) -> BTreeSet<Tag> {
    layout::local_archives(local_dir)
        .unwrap_or_default()
        .into_iter()
        .map(|(tag, _, _)| tag)
        .collect()
}
