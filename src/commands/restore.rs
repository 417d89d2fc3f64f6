//! `backup restore`, `backup verify` and `backup rollback`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use backup_agent::error::Error;
use backup_agent::progress::Progress;
use backup_agent::restore::{
    self, Copies, DatabaseReport, Prepared, Source, SwapReport, TableDifference, Which,
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

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Snapshot: its tag, the start of the tag's last part (`3f9a`), `latest`, or `latest~N`
    /// (N before the latest)
    #[arg(
        value_name = "SNAPSHOT",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub which: Option<String>,
    /// Whose `latest` (and whose tag suffix): a host as `backup list` shows it (default: this
    /// machine)
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub host: Option<String>,
    /// Download the remote copy and verify that, even when a local copy exists
    #[arg(long)]
    pub remote: bool,
    /// Verify every snapshot, local and remote (one line each); exit 1 if any fails
    #[arg(long)]
    pub all: bool,
    /// With --all: verify only N snapshots chosen at random
    #[arg(long, value_name = "N", requires = "all", value_parser = clap::value_parser!(u64).range(1..))]
    pub sample: Option<u64>,
    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Roll back without asking (for scripts; without a terminal it is required)
    #[arg(long)]
    pub yes: bool,
    /// Say what the rollback would put back and set aside, then stop
    #[arg(long, conflicts_with_all = ["yes", "force"])]
    pub dry_run: bool,
    /// Swap even while another process has a live database open
    #[arg(long)]
    pub force: bool,
    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Checked<'a> {
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
    fn of(p: &'a Prepared) -> Checked<'a> {
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
fn note_local_damaged(p: &Prepared, done: &str) {
    if p.local_damaged {
        errln!(
            "backup: note: the local copy of {} is damaged; {done} (the next `backup run` repairs the local copy)",
            p.tag
        );
    }
}

/// What the checks found, for people.
fn describe(p: &Prepared) {
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

pub fn verify(
    config: Option<&Path>,
    args: &VerifyArgs,
    progress: &dyn Progress,
) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config)?;
    let copies = if args.remote {
        Copies::RemoteOnly
    } else {
        Copies::Any
    };
    let Some(which_text) = args.which.as_deref().filter(|_| !args.all) else {
        return verify_all(&config, args, copies, progress);
    };
    let which = Which::parse(which_text)?;
    let outcome = restore::verify(&config, &which, args.host.as_deref(), copies, progress);
    let prepared = match outcome {
        Ok(prepared) => {
            for note in &prepared.notes {
                errln!("backup: note: {note}");
            }
            prepared
        }
        // Under --json the binary prints the error object on stdout.
        Err(e) => return Err(e),
    };
    note_local_damaged(&prepared, "verified the remote copy");
    if args.json {
        print_json(&verified_json(&prepared));
    } else {
        describe(&prepared);
        outln!("verify passed: this snapshot restores");
    }
    crate::ok()
}

/// One snapshot that passed verify, as `--json` prints it.
#[derive(Serialize)]
struct Verified<'a> {
    ok: bool,
    #[serde(flatten)]
    checked: Checked<'a>,
}

/// What `backup verify --json` prints for a snapshot that passed.
pub fn verified_json(prepared: &Prepared) -> serde_json::Value {
    serde_json::to_value(Verified {
        ok: true,
        checked: Checked::of(prepared),
    })
    .expect("serializes")
}

/// One element of `backup verify --all --json`: the drill of a snapshot that passed, or why it
/// failed.
pub fn verify_outcome_json(
    tag: &backup_agent::tag::Tag,
    outcome: &Result<Prepared, Error>,
) -> serde_json::Value {
    match outcome {
        Ok(prepared) => verified_json(prepared),
        Err(e) => {
            serde_json::json!({ "ok": false, "tag": tag.to_string(), "error": e.to_string() })
        }
    }
}

/// `verify --all`'s verdict: which snapshots were checked (for a message), the failure that
/// makes it fail (ending with `why`: where the reasons are), and a note when the remote could
/// not be listed.
pub fn verify_all_verdict(
    done: &restore::VerifiedAll,
    why: &str,
) -> (String, Option<Error>, Option<String>) {
    let which = if done.checked < done.total {
        format!(
            "{} of {}, chosen at random,",
            done.checked,
            count(done.total, "snapshot", "snapshots")
        )
    } else {
        count(done.checked, "snapshot", "snapshots")
    };
    let failed = (!done.failed.is_empty()).then(|| {
        let names: Vec<String> = done.failed.iter().map(ToString::to_string).collect();
        Error::Damaged(format!(
            "{} of {which} failed verify: {}; {why}",
            done.failed.len(),
            names.join(", ")
        ))
    });
    let note = done.remote_error.as_ref().map(|e| {
        format!(
            "note: cannot list the remote, so only the local snapshots were verified, not the copies only the remote holds: {e}"
        )
    });
    (which, failed, note)
}

/// `verify --all [--sample N]`: one line (or one JSON object) per snapshot.
fn verify_all(
    config: &backup_agent::config::Config,
    args: &VerifyArgs,
    copies: Copies,
    progress: &dyn Progress,
) -> Result<u8, Error> {
    let sample = args
        .sample
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut outcomes = Vec::new();
    let mut each = |tag: &backup_agent::tag::Tag, outcome: Result<Prepared, Error>| {
        if !args.json {
            match &outcome {
                Ok(p) => outln!(
                    "ok      {tag} ({} copy, {}, {}, {})",
                    match p.source {
                        Source::Local => "local",
                        Source::Remote => "remote",
                    },
                    human_bytes(p.archive_size),
                    count(p.databases.len(), "database", "databases"),
                    count(p.files.len(), "file", "files")
                ),
                Err(e) => outln!("FAILED  {tag}: {e}"),
            }
        }
        outcomes.push(verify_outcome_json(tag, &outcome));
    };
    let result = restore::verify_all(config, sample, copies, progress, &mut each);
    let done = result?;
    if args.json {
        print_json(&outcomes);
    }
    let (which, failed, note) = verify_all_verdict(&done, "the lines above say why");
    if let Some(note) = note {
        errln!("backup: {note}");
    }
    if let Some(e) = failed {
        if args.json {
            // The array on stdout is the outcome, each failure in it; one JSON document only.
            errln!("backup: error: {e}");
            return Ok(exit::of_error(&e));
        }
        return Err(e);
    }
    if !args.json {
        outln!("verify passed: all {which} restore");
    }
    if done.remote_error.is_some() {
        return Ok(exit::REMOTE);
    }
    crate::ok()
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

pub fn rollback(config: Option<&Path>, args: &RollbackArgs) -> Result<u8, Error> {
    let config = crate::load_config_and_recover_restore(config)?;
    if args.dry_run {
        let preview = restore::preview_rollback(&config)?;
        if args.json {
            print_json(&rollback_preview_json(&preview));
        } else {
            outln!(
                "the rollback {}; dry run: nothing was changed",
                describe_rollback(&config, &preview)
            );
        }
        return crate::ok();
    }
    if !args.yes && !confirm_rollback(&config)? {
        if args.json {
            print_json(&serde_json::json!({
                "ok": false,
                "error": "the rollback needs confirmation: run it again with --yes"
            }));
        }
        return Ok(exit::UNCONFIRMED);
    }
    let report = restore::rollback(&config, args.force)?;
    if args.json {
        print_json(&rolled_back_json(&report));
    } else {
        let before = match &report.aside_dir {
            Some(dir) => format!(
                "the state before the rollback is in {} (`backup rollback` again swaps back)",
                where_data_is(&config, dir, &report.data_in)
            ),
            None => "there was no live data to set aside".to_string(),
        };
        outln!(
            "rolled back the restore of {}: {} put back; {before}",
            report.tag.as_deref().unwrap_or("a snapshot"),
            count(report.placed, "file", "files"),
        );
    }
    crate::ok()
}

/// What `backup rollback --json` prints.
pub fn rolled_back_json(report: &SwapReport) -> serde_json::Value {
    #[derive(Serialize)]
    struct Out<'a> {
        ok: bool,
        #[serde(flatten)]
        report: &'a SwapReport,
    }
    serde_json::to_value(Out { ok: true, report }).expect("serializes")
}

/// What `backup rollback --dry-run --json` prints.
pub fn rollback_preview_json(preview: &restore::RollbackPreview) -> serde_json::Value {
    #[derive(Serialize)]
    struct Out<'a> {
        ok: bool,
        dry_run: bool,
        #[serde(flatten)]
        preview: &'a restore::RollbackPreview,
    }
    serde_json::to_value(Out {
        ok: true,
        dry_run: true,
        preview,
    })
    .expect("serializes")
}

/// Says what a rollback puts back and what it sets aside, and asks; without a terminal, refuses
/// with what to do (a rollback replaces live data, so a script says `--yes`).
fn confirm_rollback(config: &backup_agent::config::Config) -> Result<bool, Error> {
    let preview = restore::preview_rollback(config)?;
    let what = describe_rollback(config, &preview);
    if !crate::term::can_ask() {
        errln!(
            "backup: error: the rollback {what}; nothing was changed: run it again with --yes to go ahead"
        );
        return Ok(false);
    }
    errln!("backup: the rollback {what}");
    let yes = crate::term::ask("Roll back?")?;
    if !yes {
        errln!("backup: nothing was changed");
    }
    Ok(yes)
}

/// What a rollback puts back and sets aside, in words: "puts back … and sets aside …".
fn describe_rollback(
    config: &backup_agent::config::Config,
    preview: &restore::RollbackPreview,
) -> String {
    // Up to three paths by name, then how many more.
    let a_few = |paths: &[std::path::PathBuf]| {
        let shown: Vec<String> = paths
            .iter()
            .take(3)
            .map(|p| config.display_path(p))
            .collect();
        let more = paths.len().saturating_sub(shown.len());
        format!(
            "{}{}",
            shown.join(", "),
            if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            }
        )
    };
    let mut set_aside = if preview.live.is_empty() {
        "sets nothing aside (no live file is there now)".to_string()
    } else {
        format!(
            "sets aside the current {} ({}) into a new {}<time> folder",
            count(preview.live.len(), "live file", "live files"),
            a_few(&preview.live),
            backup_agent::layout::ASIDE_PREFIX
        )
    };
    if !preview.not_placed.is_empty() {
        set_aside += &format!(
            ", among them {} `{}` did not put there ({})",
            preview.not_placed.len(),
            preview.operation,
            a_few(&preview.not_placed)
        );
    }
    if !preview.changed_since.is_empty() {
        set_aside += &format!(
            ", and {} it left in place that changed since ({}), which before it held the snapshot's copy",
            count(preview.changed_since.len(), "file", "files"),
            a_few(&preview.changed_since)
        );
    }
    if !preview.left_in_place.is_empty() {
        set_aside += &format!(
            "; it leaves {} in place (the same before and after `{}`)",
            count(
                preview.left_in_place.len(),
                "unchanged file",
                "unchanged files"
            ),
            preview.operation
        );
    }
    format!(
        "puts back {} (what `{}` set aside) and {set_aside}",
        config.display_path(&preview.folder),
        preview.operation
    )
}

/// The aside folder as a message names it: with the hidden entry that holds the data (`.data`),
/// since `ls` of the folder shows only its RESTORE.json.
fn where_data_is(
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
