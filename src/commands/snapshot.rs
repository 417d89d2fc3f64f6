//! `backup now` and `backup run`.

use std::io::IsTerminal;
use std::path::Path;

use serde::Serialize;

use backup_agent::config::Config;
use backup_agent::error::Error;
use backup_agent::integrity::CheckReport;
use backup_agent::progress::Progress;
use backup_agent::run::{self, RunReport};
use backup_agent::tag::{Kind, Tag};
use backup_agent::units::{self, human_bytes};

use crate::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,

    /// Keep a note with the snapshot (one line), shown by `backup list` and found by `list --note`
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// `backup now`: [`Args`], and whether it may store only what changed.
#[derive(Debug, clap::Args)]
pub struct NowArgs {
    #[command(flatten)]
    pub common: Args,

    /// Store only what changed since the last full snapshot (taken within [snapshot] full_every), as `run` does; without it a manual snapshot is a full that stands alone
    #[arg(long)]
    pub diff: bool,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    ok: bool,
    tag: &'a Tag,
    kind: Kind,
    /// The full snapshot this one is a differential of; `null` for a full.
    base: Option<&'a Tag>,
    /// The note given with `--note`.
    note: Option<&'a str>,
    archive: &'a Path,
    size: u64,
    sha256: &'a str,
    source_bytes: u64,
    databases: usize,
    files: usize,
    remote: Option<&'a str>,
    pushed: &'a [Tag],
    pending: &'a [Tag],
    push_error: Option<String>,
    damaged: &'a [String],
    /// The bounded re-check of the local archives and repairs from the remote.
    local_check: &'a CheckReport,
    /// Deleted by retention after the push (`run`).
    pruned: Vec<&'a Tag>,
    prune_error: Option<String>,
    /// What the integrity and foreign key checks found in the snapshot, by database.
    findings: std::collections::BTreeMap<&'a str, &'a backup_agent::checks::Findings>,
}

pub fn run(
    config: Option<&Path>,
    args: &Args,
    manual: bool,
    diff: bool,
    progress: &dyn Progress,
) -> Result<u8, Error> {
    let kind = if manual {
        Kind::Manual
    } else {
        Kind::Scheduled
    };
    // `run` is for cron: silent on success unless someone watches (or asks for JSON).
    let show = manual || std::io::stdout().is_terminal();
    execute(
        config,
        args.json,
        kind,
        args.note.as_deref(),
        // A scheduled run stores what changed when it can; a manual snapshot only when asked.
        !manual || diff,
        show,
        progress,
    )
}

/// Runs the job and renders it; `show` prints the human summary (JSON is always printed).
pub fn execute(
    config: Option<&Path>,
    json: bool,
    kind: Kind,
    note: Option<&str>,
    differential: bool,
    show: bool,
    progress: &dyn Progress,
) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config)?;
    let command = match kind {
        Kind::Manual => "now",
        Kind::Scheduled => "run",
    };
    crate::interrupt::clean_up_on_signal(&config.local_dir, command)?;
    let report = run::snapshot_and_push(&config, kind, note, differential, progress)?;
    if json || show {
        render(&config, &report, json);
    }
    let (lines, code) = messages(&report);
    for line in lines {
        errln!("backup: {line}");
    }
    Ok(code)
}

/// What the run says besides its report (`warning: …`, `error: …`, one line each), and its exit
/// code.
pub fn messages(report: &RunReport) -> (Vec<String>, u8) {
    let mut lines = Vec::new();
    if let Some(line) = findings_warning(&report.snapshot) {
        lines.push(format!("warning: {line}"));
    }
    for warning in &report.warnings {
        lines.push(format!("warning: {warning}"));
    }
    for damaged in &report.damaged {
        lines.push(format!("error: {damaged}"));
    }
    let code = match &report.push_error {
        Some(e) => {
            let reason = match e {
                Error::Remote(e) => e.message.clone(),
                other => other.to_string(),
            };
            lines.push(format!(
                "error: push to {} failed: {reason}; snapshot {} is safe locally, and {} by the next `backup run`",
                report.remote.as_deref().unwrap_or("the remote"),
                report.snapshot.tag,
                units::count(
                    report.pending.len(),
                    "snapshot waiting is pushed",
                    "snapshots waiting are pushed"
                )
            ));
            exit::REMOTE
        }
        None if !report.damaged.is_empty() => exit::FAILED,
        None => match &report.prune_error {
            Some(e) => {
                lines.push(format!(
                    "error: snapshot {} is stored and pushed, but retention stopped: {e}; the next run tries again",
                    report.snapshot.tag
                ));
                exit::of_error(e)
            }
            None => exit::OK,
        },
    };
    (lines, code)
}

fn deleted_by_prune(report: &RunReport) -> Vec<&Tag> {
    report
        .pruned
        .iter()
        .flat_map(|p| &p.snapshots)
        .filter(|s| s.deleted)
        .map(|s| &s.tag)
        .collect()
}

/// What `backup now --json` prints.
pub fn json_report(report: &RunReport) -> serde_json::Value {
    let snapshot = &report.snapshot;
    let manifest = &snapshot.manifest;
    let out = JsonReport {
        ok: report.push_error.is_none() && report.damaged.is_empty(),
        tag: &snapshot.tag,
        kind: snapshot.tag.kind(),
        base: manifest.base.as_ref().map(|b| &b.tag),
        note: manifest.note.as_deref(),
        archive: &snapshot.archive,
        size: snapshot.size,
        sha256: &snapshot.sha256,
        source_bytes: manifest.payload_bytes(),
        databases: manifest.databases.len(),
        files: manifest.files.len(),
        remote: report.remote.as_deref(),
        pushed: &report.pushed,
        pending: &report.pending,
        push_error: report.push_error.as_ref().map(ToString::to_string),
        damaged: &report.damaged,
        local_check: &report.local_check,
        pruned: deleted_by_prune(report),
        prune_error: report.prune_error.as_ref().map(ToString::to_string),
        findings: manifest.findings().collect(),
    };
    serde_json::to_value(out).expect("serializes")
}

fn render(config: &Config, report: &RunReport, json: bool) {
    let snapshot = &report.snapshot;
    let manifest = &snapshot.manifest;
    if json {
        super::print_json(&json_report(report));
        return;
    }

    outln!(
        "snapshot {}: {}, {}, {} -> {} in {:.1}s",
        snapshot.tag,
        units::count(manifest.databases.len(), "database", "databases"),
        units::count(manifest.files.len(), "file", "files"),
        human_bytes(manifest.payload_bytes()),
        human_bytes(snapshot.size),
        (snapshot.copy_time + snapshot.pack_time).as_secs_f64()
    );
    if let Some(base) = &manifest.base {
        outln!(
            "  differential of {}: {} changed, the rest stays in that full",
            base.tag,
            human_bytes(manifest.stored_bytes())
        );
    }
    outln!("  saved as {}", config.display_path(&snapshot.archive));
    match &report.remote {
        None => outln!(
            "  no [remote] configured: this snapshot is on this machine only; add one to keep a copy elsewhere"
        ),
        Some(remote) if !report.pushed.is_empty() => {
            outln!(
                "  pushed {} to {remote}",
                units::count(report.pushed.len(), "snapshot", "snapshots")
            )
        }
        Some(_) => {}
    }
    for tag in &report.local_check.repaired {
        outln!("  repaired local copy of {tag} from the remote");
    }
    let pruned = deleted_by_prune(report);
    if !pruned.is_empty() {
        outln!(
            "  retention deleted {} (`backup prune --dry-run` shows why each kept one is kept)",
            units::count(pruned.len(), "older snapshot", "older snapshots")
        );
    }
}

/// One line saying the snapshot is stored although SQLite's checks fail on what it copied.
fn findings_warning(snapshot: &backup_agent::snapshot::Snapshot) -> Option<String> {
    let found: Vec<String> = snapshot
        .manifest
        .findings()
        .map(|(name, findings)| format!("database `{name}`: {findings}"))
        .collect();
    (!found.is_empty()).then(|| {
        format!(
            "snapshot {} is stored, but the live data it copied fails SQLite's checks ({}); the findings are recorded, and a restore brings the data back as it is: fix it in the app (README \"Check findings\")",
            snapshot.tag,
            found.join("; ")
        )
    })
}
