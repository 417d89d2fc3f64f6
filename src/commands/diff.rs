//! `backup diff`.

use std::path::Path;

use backup_agent::error::Error;
use backup_agent::inspect::{self, Change, DiffReport, DiffSide, FileDiff};
use backup_agent::progress::Progress;
use backup_agent::units::human_bytes;

use crate::commands::show::{TIME_FORMAT, fit};
use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The older snapshot: a tag, the start of its suffix, `latest` or `latest~N`
    #[arg(value_name = "SNAPSHOT")]
    pub from: String,

    /// The newer snapshot, in the same forms
    #[arg(value_name = "OTHER")]
    pub to: Option<String>,

    /// Compare with the live databases and files instead (read only, never written)
    #[arg(long, conflicts_with = "to")]
    pub live: bool,

    /// Whose `latest`, or whose suffix: a host name, or the host as `backup list` shows it
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Print the differences as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: Option<&Path>, args: &Args, progress: &dyn Progress) -> Result<u8, Error> {
    if args.to.is_none() && !args.live {
        return Err(Error::Config(format!(
            "`backup diff {}` compares with what? Give a second snapshot (e.g. latest), or --live for the live data",
            args.from
        )));
    }
    let config = crate::load_config_and_recover_restore(config)?;
    let remote = backup_agent::catalog::open_remote(&config);
    let report = inspect::diff(
        &config,
        remote.as_ref(),
        &args.from,
        if args.live { None } else { args.to.as_deref() },
        args.host.as_deref(),
        progress,
    );
    progress.done();
    let report = report?;
    super::print_report(args.json, &report.notes, &report, render);
    Ok(exit::OK)
}

fn side(label: &str, side: &DiffSide) -> String {
    match &side.tag {
        Some(tag) => format!("{label:<5} {tag} ({})", side.time.format(TIME_FORMAT)),
        None => format!(
            "{label:<5} the live data (read {})",
            side.time.format(TIME_FORMAT)
        ),
    }
}

/// A row count change as `+5`, `-40` or `0`.
fn signed(change: i64) -> String {
    if change > 0 {
        format!("+{change}")
    } else {
        change.to_string()
    }
}

fn count(n: Option<u64>) -> String {
    n.map_or("-".to_string(), |n| n.to_string())
}

fn render(report: &DiffReport) {
    outln!("{}", side("from", &report.from));
    outln!("{}", side("to", &report.to));
    for db in &report.databases {
        outln!();
        let version = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        let schema = if db.old_user_version == db.new_user_version {
            format!("schema {}", version(db.new_user_version))
        } else {
            format!(
                "schema {} → {}",
                version(db.old_user_version),
                version(db.new_user_version)
            )
        };
        let change = match db.change {
            Change::Unchanged => "unchanged",
            Change::Changed => "changed",
            Change::Added => "added",
            Change::Removed => "removed",
        };
        outln!("database {}: {change}, {schema}", db.name);
        if db.tables.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = db
            .tables
            .iter()
            .map(|t| {
                vec![
                    format!("  {}", t.table),
                    count(t.old),
                    count(t.new),
                    signed(t.change),
                ]
            })
            .collect();
        out!(
            "{}",
            crate::term::table(&["  TABLE", "OLD", "NEW", "CHANGE"], &rows)
        );
    }
    let files = &report.files;
    outln!();
    outln!(
        "files: {} added, {} removed, {} changed, {} unchanged",
        files.added.len(),
        files.removed.len(),
        files.changed.len(),
        files.unchanged
    );
    let size = |n: Option<u64>| n.map_or("-".to_string(), human_bytes);
    let line = |mark: &str, f: &FileDiff, sizes: String| {
        outln!("  {mark} {}", fit(&format!("{} ({sizes})", f.path), 76));
    };
    for f in &files.added {
        line("+", f, size(f.new_size));
    }
    for f in &files.removed {
        line("-", f, size(f.old_size));
    }
    for f in &files.changed {
        line(
            "~",
            f,
            format!("{} → {}", size(f.old_size), size(f.new_size)),
        );
    }
}
