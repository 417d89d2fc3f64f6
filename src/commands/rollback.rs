//! `backup rollback`: put back what the last restore set aside.

use std::path::Path;

use serde::Serialize;

use backup_agent::error::Error;
use backup_agent::restore::{self, SwapReport};
use backup_agent::units::count;

use super::print_json;
use super::restore::where_data_is;
use crate::exit;

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
