//! `backup verify`: the restore drill of one snapshot, or of all of them.

use std::path::Path;

use serde::Serialize;

use backup_agent::error::Error;
use backup_agent::progress::Progress;
use backup_agent::restore::{self, Copies, Prepared, Source, Which};
use backup_agent::units::{count, human_bytes};

use super::print_json;
use super::restore::{Checked, describe, note_local_damaged};
use crate::exit;

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
