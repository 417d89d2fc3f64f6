//! `backup restore` (in place, `--to`, `--only`), and what `verify` shares with it: the checks
//! in words and as JSON.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use backup_agent::error::Error;
use backup_agent::progress::Progress;
use backup_agent::restore::{
    self, DatabaseReport, Prepared, Source, SwapReport, TableDifference, Which,
};
use backup_agent::units::{count, human_bytes};

use crate::exit;

use super::print_json;

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Snapshot: its tag, the start of the tag's last part (`3f9a`), `latest`, or `latest~N`
    /// (N before the latest)
    #[arg(value_name = "SNAPSHOT")]
    pub which: String,
    /// Set aside live data the snapshot lacks without asking (for scripts)
    #[arg(long)]
    pub yes: bool,
    /// Whose `latest` (and whose tag suffix): a host as `backup list` shows it (default: this
    /// machine)
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Check everything and show what would happen, then stop
    #[arg(long)]
    pub dry_run: bool,
    /// Restore past every failed check but the archive's sha256 (a schema newer than the known
    /// migrations comes back unmigrated; new check findings, row counts), and swap even while
    /// another process has a live database open
    #[arg(long)]
    pub force: bool,
    /// Extract and check into DIR (missing or empty) instead: no swap, nothing live touched
    #[arg(long, value_name = "DIR", conflicts_with = "dry_run")]
    pub to: Option<PathBuf>,
    /// With --to: bring the extracted databases to the current schema with the configured migrations
    #[arg(long, requires = "to")]
    pub migrate: bool,
    /// Restore only these databases (`name`) and includes (`path`, as in the config); the rest of the live data stays as it is
    #[arg(long, value_name = "NAME", num_args = 1.., conflicts_with = "to")]
    pub only: Vec<String>,
    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub(super) struct Checked<'a> {
    tag: String,
    source: Source,
    created_at: chrono::DateTime<chrono::Utc>,
    host: &'a str,
    archive_size: u64,
    archive_sha256: &'a str,
    archive_sha256_recorded: bool,
    /// The local copy failed its sha256 record, so the remote copy was used.
    local_damaged: bool,
    databases: &'a [DatabaseReport],
    files: usize,
    seconds: f64,
    /// Why this snapshot (whose `latest`; snapshots skipped as dated in the future), and how it
    /// maps to this machine.
    notes: &'a [String],
}

impl<'a> Checked<'a> {
    pub(super) fn of(p: &'a Prepared) -> Checked<'a> {
        Checked {
            tag: p.tag.to_string(),
            source: p.source,
            created_at: p.manifest.created_at,
            host: &p.manifest.host,
            archive_size: p.archive_size,
            archive_sha256: &p.archive_sha256,
            archive_sha256_recorded: p.archive_sha256_recorded,
            local_damaged: p.local_damaged,
            databases: &p.databases,
            files: p.files.len(),
            seconds: p.elapsed.as_secs_f64(),
            notes: &p.notes,
        }
    }
}

/// Says on stderr that the remote copy stood in for a damaged local one; `done` ends the sentence.
pub(super) fn note_local_damaged(p: &Prepared, done: &str) {
    if p.local_damaged {
        errln!(
            "backup: note: the local copy of {} is damaged; {done} (the next `backup run` repairs the local copy)",
            p.tag
        );
    }
}

/// What the checks found, for people.
pub(super) fn describe(p: &Prepared) {
    outln!(
        "snapshot {} (taken {} on {}, {} from the {} copy)",
        p.tag,
        crate::term::time(p.manifest.created_at),
        p.manifest.host,
        human_bytes(p.archive_size),
        match p.source {
            Source::Local => "local",
            Source::Remote => "remote",
        }
    );
    outln!(
        "  archive sha256 {}; {} and {} match the manifest",
        if p.archive_sha256_recorded {
            "matches its record"
        } else {
            "not recorded (each file is still checked)"
        },
        count(p.files.len(), "file", "files"),
        count(p.databases.len(), "database", "databases")
    );
    for db in &p.databases {
        let schema = if db.migrations_applied.is_empty() {
            format!("schema {}", db.restored_version)
        } else {
            format!(
                "schema {} -> {} (migrations {})",
                db.snapshot_version,
                db.restored_version,
                db.migrations_applied
                    .iter()
                    .map(|v| format!("{v:04}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let rows: u64 = db.tables.values().sum();
        let checks = match (db.findings.is_empty(), db.forced.is_empty()) {
            (true, _) => "integrity ok, foreign keys ok",
            (false, true) => "checks found what the snapshot recorded (below)",
            (false, false) => "checks found problems (below)",
        };
        let counts = if db.forced.is_empty() {
            "as recorded"
        } else {
            "(checks forced, below)"
        };
        outln!(
            "  {}: {schema}, {checks}, {} tables, {rows} rows {counts}{}",
            db.name,
            db.tables.len(),
            if db.forced_newer_schema {
                " (newer than the known migrations: restored unmigrated, --force)"
            } else {
                ""
            }
        );
        if !db.findings.is_empty() && db.forced.is_empty() {
            outln!(
                "    note: {}; the live database had this when the snapshot was taken, so it comes back as it was: fix it in the app (README \"Check findings\")",
                db.findings
            );
        }
        for problem in &db.forced {
            outln!("    forced (--force): {problem}");
        }
        for change in &db.changed_by_migrations {
            outln!(
                "    table {}: {} -> {} rows (changed by a migration)",
                change.table,
                change.before.map_or("none".into(), |n| n.to_string()),
                change.after.map_or("none".into(), |n| n.to_string())
            );
        }
    }
}

/// What `backup restore --dry-run --json` prints for `plan`; a restore that went ahead prints
/// the same with `dry_run` false and its `swap`.
pub fn planned_json(plan: &restore::RestorePlan) -> serde_json::Value {
    serde_json::to_value(RestoreOut {
        ok: true,
        dry_run: true,
        only: &plan.only,
        checked: Checked::of(&plan.prepared),
        concerns: &plan.concerns,
        table_differences: &plan.table_differences,
        in_use: &plan.in_use,
        swap: None,
    })
    .expect("serializes")
}

/// [`planned_json`] once the swap is done.
pub fn restored_json(mut planned: serde_json::Value, swap: &SwapReport) -> serde_json::Value {
    planned["dry_run"] = false.into();
    planned["swap"] = serde_json::to_value(swap).expect("serializes");
    planned
}

#[derive(Serialize)]
struct RestoreOut<'a> {
    ok: bool,
    dry_run: bool,
    /// What `--only` named; empty for a whole restore.
    only: &'a [String],
    #[serde(flatten)]
    checked: Checked<'a>,
    concerns: &'a [String],
    table_differences: &'a [TableDifference],
    in_use: &'a [String],
    swap: Option<&'a SwapReport>,
}

pub fn restore(
    config: Option<&Path>,
    args: &RestoreArgs,
    progress: &dyn Progress,
) -> Result<u8, Error> {
    let result = restore_inner(config, args, progress);
    // Scripts read the outcome from stdout whatever happened; an error is printed by the binary.
    if args.json && matches!(result, Ok(exit::UNCONFIRMED)) {
        crate::json_error::print(
            "the restore needs confirmation: run it again with --yes",
            crate::json_error::UNCONFIRMED_KIND,
            exit::UNCONFIRMED,
        );
    }
    result
}

fn restore_inner(
    config: Option<&Path>,
    args: &RestoreArgs,
    progress: &dyn Progress,
) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config)?;
    let which = Which::parse(&args.which)?;
    if let Some(dir) = &args.to {
        return restore_to(&config, &which, args, dir, progress);
    }
    let plan = restore::plan_restore(
        &config,
        &which,
        args.host.as_deref(),
        args.force,
        &args.only,
        progress,
    )?;
    for note in &plan.prepared.notes {
        errln!("backup: note: {note}");
    }
    if !args.json {
        describe(&plan.prepared);
        if !plan.only.is_empty() {
            outln!(
                "  only {}: the rest of the live data stays as it is",
                plan.only.join(", ")
            );
        }
        if plan.set_aside_count() == 0 {
            outln!("  no live data to set aside: the restored files go into empty places");
        } else {
            outln!(
                "  sets aside {} (databases with their -wal/-shm, included files) into {}",
                count(plan.set_aside_count(), "live file", "live files"),
                config.display_path(&plan.aside_dir)
            );
        }
        for line in plan.concerns.iter().chain(&plan.notes) {
            outln!("  note: {line}");
        }
        for reason in &plan.in_use {
            outln!(
                "  note: {reason} (--force: swapping anyway; restart the app afterwards, until then it keeps writing to the set-aside copy)"
            );
        }
    }
    if args.dry_run {
        note_local_damaged(&plan.prepared, "the dry run checked the remote copy");
        if args.json {
            print_json(&planned_json(&plan));
        } else {
            let forced = plan
                .prepared
                .databases
                .iter()
                .any(|db| !db.forced.is_empty() || db.forced_newer_schema);
            if forced {
                outln!(
                    "dry run: every check passed or was overridden by --force (above); nothing was changed"
                );
            } else {
                outln!("dry run: every check passed; nothing was changed");
            }
        }
        return crate::ok();
    }
    if !plan.concerns.is_empty() && !args.yes && !confirm(&plan.concerns, &plan.notes, args.json)? {
        return Ok(exit::UNCONFIRMED);
    }
    // Said once the restore is done: the plan is consumed by the swap.
    let damaged_note = plan
        .prepared
        .local_damaged
        .then(|| plan.prepared.tag.clone());
    let planned = args.json.then(|| planned_json(&plan));
    let report = plan.commit()?;
    if let Some(tag) = damaged_note {
        errln!(
            "backup: note: the local copy of {tag} is damaged; restored from the remote copy (the next `backup run` repairs the local copy)"
        );
    }
    if let Some(planned) = planned {
        print_json(&restored_json(planned, &report));
    } else if let Some(aside_dir) = &report.aside_dir {
        outln!(
            "restored {}; the previous live data ({}) is in {} (`backup rollback` puts it back)",
            report.tag.as_deref().unwrap_or("the snapshot"),
            count(report.set_aside, "file", "files"),
            where_data_is(&config, aside_dir, &report.data_in)
        );
    } else {
        outln!(
            "restored {}; there was no live data to set aside, so no {}* folder was made and `backup rollback` has nothing to put back",
            report.tag.as_deref().unwrap_or("the snapshot"),
            backup_agent::layout::ASIDE_PREFIX
        );
    }
    crate::ok()
}

/// `restore --to DIR`: extracted and checked into DIR, nothing live touched.
fn restore_to(
    config: &backup_agent::config::Config,
    which: &Which,
    args: &RestoreArgs,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<u8, Error> {
    let to = restore::ToFolder {
        dir,
        migrate: args.migrate,
        force: args.force,
    };
    let done = restore::restore_to(config, which, args.host.as_deref(), to, progress)?;
    for note in &done.prepared.notes {
        errln!("backup: note: {note}");
    }
    note_local_damaged(&done.prepared, "extracted the remote copy");
    if args.json {
        print_json(&restored_to_json(&done, args.migrate));
        return crate::ok();
    }
    describe(&done.prepared);
    outln!(
        "extracted into {} (nothing live was touched):",
        done.dir.display()
    );
    for (db, report) in done.databases.iter().zip(&done.prepared.databases) {
        let unmigrated = match report.newest_known {
            Some(newest) if !args.migrate && i64::from(newest) > report.restored_version => {
                format!(
                    " (schema {}; --migrate brings it to {newest})",
                    report.restored_version
                )
            }
            _ => String::new(),
        };
        outln!("  {}: {}{unmigrated}", db.name, db.path.display());
    }
    if done.files > 0 {
        outln!(
            "  {} below it",
            count(done.files, "included file", "included files")
        );
    }
    if let Some(db) = done.databases.first() {
        outln!(
            "copy rows back with sqlite3, e.g.: ATTACH '{}' AS old; INSERT INTO <table> SELECT * FROM old.<table> WHERE …",
            db.path.display()
        );
    }
    crate::ok()
}

/// What `backup restore --to DIR --json` prints.
pub fn restored_to_json(done: &restore::RestoredTo, migrated: bool) -> serde_json::Value {
    #[derive(Serialize)]
    struct Placed<'a> {
        databases: &'a [restore::PlacedDatabase],
        files: usize,
    }
    #[derive(Serialize)]
    struct Out<'a> {
        ok: bool,
        to: &'a Path,
        migrated: bool,
        #[serde(flatten)]
        checked: Checked<'a>,
        placed: Placed<'a>,
    }
    serde_json::to_value(Out {
        ok: true,
        to: &done.dir,
        migrated,
        checked: Checked::of(&done.prepared),
        placed: Placed {
            databases: &done.databases,
            files: done.files,
        },
    })
    .expect("serializes")
}

/// Asks on the terminal; without one, refuses with what to do. `notes` (rows the restore brings
/// back) are shown with the concerns.
fn confirm(concerns: &[String], notes: &[String], json: bool) -> Result<bool, Error> {
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if !interactive {
        errln!(
            "backup: error: the restore would set aside live data the snapshot lacks ({}); nothing was changed: run it again with --yes to go ahead, or --dry-run to look first",
            concerns
                .iter()
                .chain(notes)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        return Ok(false);
    }
    if json {
        for line in concerns.iter().chain(notes) {
            errln!("note: {line}");
        }
    }
    err!("Set the live data aside and restore? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::System(format!("cannot read the answer: {e}")))?;
    let yes = matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes");
    if !yes {
        errln!("backup: nothing was changed");
    }
    Ok(yes)
}

/// The aside folder as a message names it: with the hidden entry that holds the data (`.data`),
/// since `ls` of the folder shows only its RESTORE.json.
pub(super) fn where_data_is(
    config: &backup_agent::config::Config,
    aside_dir: &Path,
    data_in: &[std::path::PathBuf],
) -> String {
    let hidden: Vec<String> = data_in
        .iter()
        .filter(|p| p.as_os_str().as_encoded_bytes().starts_with(b"."))
        .map(|p| config.display_path(&aside_dir.join(p)))
        .collect();
    if hidden.is_empty() {
        config.display_path(aside_dir)
    } else {
        format!("{} (a hidden name: `ls -A` shows it)", hidden.join(", "))
    }
}
