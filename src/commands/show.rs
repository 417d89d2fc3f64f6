//! `backup show`.

use std::path::Path;

use backup_agent::error::Error;
use backup_agent::inspect::{self, ManifestSource, ShowReport};
use backup_agent::progress::Progress;
use backup_agent::units::{count, human_bytes};

use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot: a tag, the start of its suffix, `latest` or `latest~N`
    #[arg(value_name = "SNAPSHOT")]
    pub which: String,

    /// Whose `latest`, or whose suffix: a host name, or the host as `backup list` shows it
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// List every included file
    #[arg(long)]
    pub files: bool,

    /// Print the snapshot as JSON
    #[arg(long)]
    pub json: bool,
}

/// Times as `backup list` shows them.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%SZ";

pub fn run(config: Option<&Path>, args: &Args, progress: &dyn Progress) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config)?;
    let remote = backup_agent::catalog::open_remote(&config);
    let report = inspect::show(
        &config,
        remote.as_ref(),
        &args.which,
        args.host.as_deref(),
        args.files,
        progress,
    );
    progress.done();
    let report = report?;
    super::print_report(args.json, &report.notes, &report, render);
    match &report.remote_error {
        None => Ok(exit::OK),
        Some(e) => {
            errln!(
                "backup: note: cannot list the remote, so whether it holds this snapshot too is unknown: {e}"
            );
            Ok(exit::REMOTE)
        }
    }
}

fn render(report: &ShowReport) {
    let mut lines = vec![
        ("snapshot", report.tag.to_string()),
        ("time", report.time.format(TIME_FORMAT).to_string()),
        (
            "host",
            if report.host == report.host_id {
                report.host.clone()
            } else {
                format!("{} (listed as {})", report.host, report.host_id)
            },
        ),
        ("kind", report.kind.to_string()),
    ];
    if let Some(note) = &report.note {
        lines.push(("note", note.clone()));
    }
    lines.push((
        "form",
        match &report.base {
            None => "full".to_string(),
            Some(base) => format!("differential of {base} (a restore reads that full too)"),
        },
    ));
    lines.push(("where", where_line(report)));
    lines.push((
        "checks",
        match report.findings {
            Some(0) => "ok when it was taken".to_string(),
            Some(n) => format!(
                "{} when it was taken (see below)",
                count(n, "finding", "findings")
            ),
            None => "not recorded (taken before snapshots ran checks)".to_string(),
        },
    ));
    lines.push((
        "made by",
        format!(
            "{} {}, manifest version {}",
            report.tool.name, report.tool.version, report.manifest_version
        ),
    ));
    for (label, value) in lines {
        outln!("{label:<9} {value}");
    }
    for db in &report.databases {
        outln!();
        outln!("database {} ({})", db.name, db.path);
        outln!(
            "  schema {}, page size {}, {}, journal {}, {}",
            db.user_version,
            db.page_size,
            human_bytes(db.size),
            db.journal_mode,
            count(db.rows, "row", "rows")
        );
        if let Some(changed) = db.changed_pages {
            outln!(
                "  stored as {} changed since the base",
                count(changed, "page", "pages")
            );
        }
        match &db.findings {
            Some(f) if !f.is_empty() => {
                for line in &f.integrity {
                    outln!("  {}", fit(&format!("integrity_check: {line}"), 78));
                }
                for fk in &f.foreign_keys {
                    outln!("  {}", fit(&format!("foreign_key_check: {fk}"), 78));
                }
            }
            _ => {}
        }
        if !db.tables.is_empty() {
            let rows: Vec<Vec<String>> = db
                .tables
                .iter()
                .map(|(table, n)| vec![format!("  {table}"), n.to_string()])
                .collect();
            out!("{}", crate::term::table(&["  TABLE", "ROWS"], &rows));
        }
    }
    outln!();
    let files = &report.files;
    match &files.list {
        None if files.count > 0 => outln!(
            "files: {}, {} (`--files` lists them)",
            files.count,
            human_bytes(files.bytes)
        ),
        _ => outln!("files: {}, {}", files.count, human_bytes(files.bytes)),
    }
    if let Some(list) = files.list.as_ref().filter(|l| !l.is_empty()) {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|f| vec![format!("  {}", f.path), human_bytes(f.size)])
            .collect();
        out!("{}", crate::term::table(&["  PATH", "SIZE"], &rows));
    }
}

/// Where the snapshot is, with the sizes of its copies, and how its manifest was read.
fn where_line(report: &ShowReport) -> String {
    let mut copies = Vec::new();
    if let Some(size) = report.local_size {
        copies.push(format!(
            "local {}{}",
            human_bytes(size),
            if report.local_damaged {
                ", damaged"
            } else {
                ""
            }
        ));
    }
    if let Some(size) = report.remote_size {
        copies.push(format!("remote {}", human_bytes(size)));
    }
    let read = match report.manifest_from {
        ManifestSource::Local => "",
        ManifestSource::Remote => "; read on the remote",
        ManifestSource::Download => "; downloaded to read",
    };
    format!("{} ({}){read}", report.location.as_str(), copies.join(", "))
}

/// `text` cut to `width` characters, marked with `…` when it was.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}
