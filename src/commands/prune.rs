//! `backup prune [--dry-run] [--json]`: tiered retention, one plan for the local folder and the
//! remote, with the reason each kept snapshot is kept.

use std::path::Path;

use serde::Serialize;

use backup_agent::error::Error;
use backup_agent::lock::RunLock;
use backup_agent::prune::{self, PruneReport, Pruned};
use backup_agent::retention;

use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the plan without deleting anything
    #[arg(long)]
    pub dry_run: bool,

    /// Print the plan and its outcome as JSON
    #[arg(long)]
    pub json: bool,

    /// Apply retention to this host's snapshots instead of this machine's (a retired machine's,
    /// as `backup list` shows its HOST)
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    dry_run: bool,
    snapshots: &'a [Pruned],
    other_hosts: usize,
    /// Leftovers of interrupted pushes deleted from the remote (abandoned GitHub drafts).
    abandoned_deleted: usize,
    error: Option<String>,
}

pub fn run(config_path: Option<&Path>, args: &Args) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config_path)?;
    backup_agent::fsutil::create_private_dir_all(&config.local_dir)
        .map_err(|e| Error::io("cannot create snapshot folder", &config.local_dir, e))?;
    let _lock = RunLock::acquire(&config.local_dir)?;
    let remote = backup_agent::catalog::open_remote(&config);
    let mut scope = retention::Scope::this_host();
    if let Some(name) = &args.host {
        scope.host = backup_agent::tag::host_id(name);
    }
    let report = prune::prune(&config, remote.as_ref(), args.dry_run, &scope)?;
    if args.json {
        let out = JsonReport {
            ok: report.error.is_none(),
            dry_run: report.dry_run,
            snapshots: &report.snapshots,
            other_hosts: report.other_hosts,
            abandoned_deleted: report.abandoned_deleted,
            error: report.error.as_ref().map(ToString::to_string),
        };
        super::print_json(&out);
    } else {
        print_plan(&report);
    }
    Ok(finish(&report))
}

/// The table of a prune, for people: each snapshot by its ID (the tag's suffix, as `backup list`
/// shows it) and time; `--json` has the full tags.
pub fn print_plan(report: &PruneReport) {
    let rows: Vec<Vec<String>> = report
        .snapshots
        .iter()
        .map(|s| {
            let action = match (s.keep, s.deleted, report.dry_run) {
                (true, _, _) => "keep",
                (false, true, _) => "deleted",
                (false, false, true) => "delete",
                (false, false, false) => "delete FAILED",
            };
            let place = match (s.local, s.remote) {
                (true, true) => "both",
                (true, false) => "local",
                (false, true) => "remote",
                (false, false) => "-",
            };
            vec![
                s.tag.suffix().to_string(),
                crate::term::time(s.tag.time()),
                action.to_string(),
                place.to_string(),
                s.reasons.join(", "),
            ]
        })
        .collect();
    out!(
        "{}",
        crate::term::table(&["ID", "TIME", "ACTION", "WHERE", "KEPT BECAUSE"], &rows)
    );
    let deleted = report
        .snapshots
        .iter()
        .filter(|s| !s.keep && (s.deleted || report.dry_run))
        .count();
    for note in report.snapshots.iter().filter_map(|s| s.note.as_deref()) {
        outln!("note: {note}");
    }
    let kept = report.snapshots.iter().filter(|s| s.keep).count();
    outln!(
        "{kept} kept, {deleted} {}{}",
        if report.dry_run {
            "to delete (dry run: nothing deleted)"
        } else {
            "deleted"
        },
        if report.other_hosts > 0 {
            format!(
                "; {} of other hosts left alone",
                backup_agent::units::count(report.other_hosts, "snapshot", "snapshots")
            )
        } else {
            String::new()
        } + &if report.abandoned_deleted > 0 {
            format!(
                "; {} deleted from the remote",
                backup_agent::units::count(
                    report.abandoned_deleted,
                    "abandoned draft release",
                    "abandoned draft releases"
                )
            )
        } else {
            String::new()
        }
    );
}

/// The exit code of a prune, after saying what failed.
pub fn finish(report: &PruneReport) -> u8 {
    match &report.error {
        None => exit::OK,
        Some(e) => {
            errln!(
                "backup: error: pruning stopped: {e}; what was not deleted is tried again by the next prune"
            );
            exit::of_error(e)
        }
    }
}
