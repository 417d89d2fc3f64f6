//! `backup stats`.

use std::path::Path;

use backup_agent::error::Error;
use backup_agent::inspect::{self, StatsReport, Tally};
use backup_agent::units::{count, human_bytes};

use crate::commands::show::TIME_FORMAT;
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the figures as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: Option<&Path>, args: &Args) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config)?;
    let remote = backup_agent::catalog::open_remote(&config);
    if let Some(remote) = &remote {
        remote.answer_quickly();
    }
    let report = inspect::stats(&config, remote.as_ref())?;
    super::print_report(args.json, &[], &report, render);
    match &report.remote_error {
        None => Ok(exit::OK),
        Some(e) => {
            errln!(
                "backup: note: cannot list the remote, so only the local snapshots are counted: {e}"
            );
            Ok(exit::REMOTE)
        }
    }
}

fn render(report: &StatsReport) {
    if report.oldest.is_none() {
        outln!("no snapshots yet; take one with `backup now`");
        return;
    }
    let cells = |tally: Option<Tally>| match tally {
        Some(t) => vec![t.count.to_string(), human_bytes(t.bytes)],
        None => vec!["-".to_string(), "-".to_string()],
    };
    let mut rows = Vec::new();
    let mut row = |label: String, local: Tally, remote: Option<Tally>| {
        let mut cells_of_row = vec![label];
        cells_of_row.extend(cells(Some(local)));
        cells_of_row.extend(cells(remote));
        rows.push(cells_of_row);
    };
    row("all".to_string(), report.local, report.remote);
    for host in &report.hosts {
        row(format!("host {}", host.name), host.local, host.remote);
    }
    for kind in &report.kinds {
        row(format!("kind {}", kind.name), kind.local, kind.remote);
    }
    out!(
        "{}",
        crate::term::table(&["SNAPSHOTS", "LOCAL", "SIZE", "REMOTE", "SIZE"], &rows)
    );
    outln!();
    for (label, dated) in [("oldest", &report.oldest), ("newest", &report.newest)] {
        if let Some(d) = dated {
            outln!("{label}  {} ({})", d.tag, d.time.format(TIME_FORMAT));
        }
    }
    let growth = &report.growth;
    outln!(
        "growth  {}/day: {}, {} taken in the last {} days",
        human_bytes(growth.bytes_per_day),
        count(growth.snapshots, "snapshot", "snapshots"),
        human_bytes(growth.bytes),
        growth.days
    );
}
