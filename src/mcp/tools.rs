//! The tools `backup mcp` offers: each one command, called the way its `--json` form is, its
//! structured result what that prints. Inputs are checked as the command line checks its
//! arguments, and every refusal is the command's own one-line message.

use std::path::{Path, PathBuf};

use rmcp::schemars::{self, JsonSchema};
use serde::Deserialize;
use serde_json::{Value, json};

use backup_agent::error::Error;
use backup_agent::progress::Progress;
use backup_agent::restore::{self, Copies, Which};
use backup_agent::tag::Kind;

use super::schema;
use crate::commands;
use crate::exit;

/// What a call answers: the command's JSON (when it got that far), what it would print on stderr
/// besides (`note: …`, `warning: …`, `error: …`), and its exit code (not 0: a tool error).
pub struct Outcome {
    pub value: Value,
    pub lines: Vec<String>,
    pub code: u8,
}

impl Outcome {
    fn ok(value: Value, lines: Vec<String>) -> Outcome {
        Outcome {
            value,
            lines,
            code: exit::OK,
        }
    }
}

/// One tool: its name, what it tells an agent, and its input and output schemas.
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub input: Value,
    pub output: Value,
    /// Whether the call can change live data (the annotations tell clients).
    pub destructive: bool,
    pub read_only: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NowInput {
    /// One line saying what is about to happen ("before migration 0007: add due dates"), kept
    /// with the snapshot and found again by `backup_list` with `note`.
    pub note: Option<String>,
    /// Store only what changed since the last full snapshot (smaller and faster; a restore then
    /// needs that full too). Leave it out for a snapshot that stands alone.
    #[serde(default)]
    pub diff: bool,
}

/// How a snapshot was made.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KindInput {
    /// Taken on request (`backup_now`, `backup now`).
    Manual,
    /// Taken by the schedule (`backup run`).
    Scheduled,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Only this host's snapshots: a host name, or the host as the listing shows it.
    pub host: Option<String>,
    /// Only snapshots of this kind.
    pub kind: Option<KindInput>,
    /// Only snapshots taken at or after: a date (2026-11-30), an RFC 3339 time, or how long ago
    /// (3d, 12h).
    pub since: Option<String>,
    /// Only snapshots taken at or before, in the same forms (a date means its whole day).
    pub until: Option<String>,
    /// Only snapshots whose note holds this text (case-insensitive).
    pub note: Option<String>,
    /// Say why retention keeps each snapshot, or that the next prune deletes it.
    #[serde(default)]
    pub explain: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShowInput {
    /// The snapshot: a tag, the start of its last part (3f9a), `latest` or `latest~N`.
    pub snapshot: String,
    /// Whose `latest`, or whose tag suffix: a host name, or the host as the listing shows it.
    pub host: Option<String>,
    /// List every included file.
    #[serde(default)]
    pub files: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffInput {
    /// The older snapshot: a tag, the start of its last part, `latest` or `latest~N`.
    pub from: String,
    /// The newer snapshot, in the same forms; leave it out with `live`.
    pub to: Option<String>,
    /// Compare with the live databases and files instead (read only).
    #[serde(default)]
    pub live: bool,
    /// Whose `latest`, or whose tag suffix.
    pub host: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyInput {
    /// The snapshot: a tag, the start of its last part, `latest` or `latest~N`; or `all`.
    pub snapshot: Option<String>,
    /// Whose `latest`, or whose tag suffix.
    pub host: Option<String>,
    /// Download the remote copy and verify that, even when a local copy exists.
    #[serde(default)]
    pub remote: bool,
    /// Verify every snapshot, local and remote.
    #[serde(default)]
    pub all: bool,
    /// With `all`: verify only this many, chosen at random.
    #[schemars(range(min = 1))]
    pub sample: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreInput {
    /// The snapshot: a tag, the start of its last part, `latest` or `latest~N`.
    pub snapshot: String,
    /// Whose `latest`, or whose tag suffix.
    pub host: Option<String>,
    /// Extract and check into this folder (absolute; missing or empty) instead: nothing live is
    /// touched, and no `confirm` is needed. Copy rows back from there.
    pub to: Option<PathBuf>,
    /// With `to`: bring the extracted databases to the current schema with the configured
    /// migrations.
    #[serde(default)]
    pub migrate: bool,
    /// Restore only these databases (by name) and includes (by path, as in the config).
    #[serde(default)]
    pub only: Vec<String>,
    /// Replace the live data for real. Without it the call is a dry run. It also needs
    /// `[agent] allow_restore = true` in the config, which a person sets.
    #[serde(default)]
    pub confirm: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    /// Put the set-aside data back for real. Without it the call says what it would do. It also
    /// needs `[agent] allow_restore = true` in the config.
    #[serde(default)]
    pub confirm: bool,
}

fn input_schema<T: JsonSchema + 'static>() -> Value {
    Value::Object((*rmcp::handler::server::tool::schema_for_type::<T>()).clone())
}

/// The tools, in the order they are listed.
pub fn specs() -> Vec<ToolSpec> {
    let verify = schema::of_section("`backup verify latest --json`");
    let verify_all = {
        let failed = json!({
            "type": "object",
            "properties": {
                "ok": { "const": false },
                "tag": { "type": "string" },
                "error": { "type": "string" },
            },
            "required": ["ok", "tag", "error"],
        });
        let items = json!({ "anyOf": [verify.clone(), failed] });
        let mut all = schema::wrapped(
            "snapshots",
            json!({ "type": "array", "items": items }),
            "One element per snapshot verified: what a single verify answers, or {ok: false, tag, error}",
        );
        all["properties"]["ok"] =
            json!({ "type": "boolean", "description": "Whether every one passed" });
        all["required"] = json!(["ok", "snapshots"]);
        all
    };
    vec![
        ToolSpec {
            name: "backup_now",
            title: "Take a snapshot now",
            description: "Take a snapshot of the app's SQLite databases and files now and push it to the remote. \
Call it with a note before any migration, bulk update, delete, cleanup or other risky change to the app's data, \
so the state before it can be found (backup_list with `note`) and restored. Takes seconds to minutes; \
sends progress when asked. Answers with the snapshot's tag.",
            input: input_schema::<NowInput>(),
            output: schema::of_section("`backup now --json`"),
            destructive: false,
            read_only: false,
        },
        ToolSpec {
            name: "backup_list",
            title: "List snapshots",
            description: "List the snapshots, local and remote, newest first, with their time, kind, note and where \
they are. Call it to find the snapshot to inspect or restore, e.g. with `note` or `since`/`until` around the \
time a mistake was made.",
            input: input_schema::<ListInput>(),
            output: schema::wrapped(
                "snapshots",
                json!({
                    "type": "array",
                    "items": { "anyOf": [
                        schema::of_section("`backup list --json`")["items"].clone(),
                        schema::of_section("`backup list --json --explain`")["items"].clone(),
                    ] },
                }),
                "What `backup list --json` prints, newest first (with `explain`, each with `keep` and `reasons`)",
            ),
            destructive: false,
            read_only: true,
        },
        ToolSpec {
            name: "backup_status",
            title: "Is the backup fresh?",
            description: "Whether the last good snapshot is inside the schedule's window: `state` is fresh, \
stale or failed, with the last run and how many snapshots the remote lacks. Call it before relying on \
the backups, or to check the schedule works.",
            input: input_schema::<StatusInput>(),
            output: schema::of_section("`backup status --json`"),
            destructive: false,
            read_only: true,
        },
        ToolSpec {
            name: "backup_show",
            title: "Show a snapshot",
            description: "A snapshot's manifest: its databases with schema version and row counts per table, \
its files, what SQLite's checks found, and where it is stored. Call it to check a snapshot holds what you \
expect before restoring it.",
            input: input_schema::<ShowInput>(),
            output: schema::of_section("`backup show SNAPSHOT --json`"),
            destructive: false,
            read_only: true,
        },
        ToolSpec {
            name: "backup_diff",
            title: "Compare snapshots",
            description: "What changed between two snapshots, or between one and the live data (`live`): rows \
per table, schema versions, files added, removed or changed. Call it to find the last snapshot before a \
mistake, e.g. the newest one whose row count of a table is still whole.",
            input: input_schema::<DiffInput>(),
            output: schema::of_section("`backup diff A B --json`"),
            destructive: false,
            read_only: true,
        },
        ToolSpec {
            name: "backup_verify",
            title: "Verify a snapshot restores",
            description: "Run every restore check on a snapshot (or `all`) in a temporary folder: checksums, \
SQLite's integrity and foreign key checks, migrations, row counts. Live data is untouched. Call it before \
a restore, or to prove the backups restore.",
            input: input_schema::<VerifyInput>(),
            output: schema::one_of(vec![verify, verify_all]),
            destructive: false,
            read_only: true,
        },
        ToolSpec {
            name: "backup_restore",
            title: "Restore a snapshot",
            description: "Restore a snapshot. By default a dry run: every check runs and the answer says what \
would change; nothing is touched. With `to` (an absolute, empty folder) it extracts the snapshot there \
and touches nothing live: the safe way to get rows back after a mistake. Replacing the live data needs \
`confirm: true` and `[agent] allow_restore = true` in the config (set by a person); the live data is then \
set aside, never deleted, and backup_rollback puts it back. Stop the app first.",
            input: input_schema::<RestoreInput>(),
            output: schema::one_of(vec![
                schema::of_section("`backup restore latest --dry-run --json`"),
                schema::of_section("`backup restore latest --to DIR --json`"),
            ]),
            destructive: true,
            read_only: false,
        },
        ToolSpec {
            name: "backup_rollback",
            title: "Undo the last restore",
            description: "Undo the last restore: put back the live data it set aside. By default says what it \
would put back and set aside, changing nothing; `confirm: true` (with `[agent] allow_restore = true`) does \
it.",
            input: input_schema::<RollbackInput>(),
            output: schema::one_of(vec![
                schema::of_section("`backup rollback --json`"),
                schema::of_section("`backup rollback --dry-run --json`"),
            ]),
            destructive: true,
            read_only: false,
        },
    ]
}

/// What a call runs with besides its arguments.
pub struct Call<'a> {
    /// The config file, read again by every call.
    pub config: &'a Path,
    /// `[agent] allow_restore` as the server read it when it started. A restore in place needs
    /// it then and now, so an edit to the config (by whoever can write it) counts only once a
    /// person restarts the server.
    pub allow_restore_at_start: bool,
    /// Whether the client has cancelled the call: looked at before anything live is replaced.
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
    pub progress: &'a dyn Progress,
}

/// Runs tool `name` with `arguments`. Blocking: call it off the server's async threads.
pub fn call(name: &str, arguments: Value, call: &Call) -> Result<Outcome, Error> {
    match name {
        "backup_now" => now(parse(name, arguments)?, call),
        "backup_list" => list(parse(name, arguments)?, call),
        "backup_status" => status(parse(name, arguments)?, call),
        "backup_show" => show(parse(name, arguments)?, call),
        "backup_diff" => diff(parse(name, arguments)?, call),
        "backup_verify" => verify(parse(name, arguments)?, call),
        "backup_restore" => restore(parse(name, arguments)?, call),
        "backup_rollback" => rollback(parse(name, arguments)?, call),
        _ => Err(Error::Config(format!(
            "there is no tool `{name}`; tools/list names them"
        ))),
    }
}

/// The arguments as `T`, or what is wrong with them in one line.
fn parse<T: serde::de::DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, Error> {
    serde_json::from_value(arguments).map_err(|e| {
        Error::Config(format!(
            "{tool}: bad arguments: {e}; its input schema says what it takes"
        ))
    })
}

/// The config, and what finishing or undoing an interrupted restore did to the live data (a
/// caller must hear that it changed, even from a call that only reads).
fn load(call: &Call) -> Result<(backup_agent::config::Config, Vec<String>), Error> {
    crate::load_config_recovering(Some(call.config))
}

fn prefixed(prefix: &str, lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| format!("{prefix}: {l}")).collect()
}

fn now(input: NowInput, call: &Call) -> Result<Outcome, Error> {
    let (config, mut lines) = load(call)?;
    let report = backup_agent::run::snapshot_and_push(
        &config,
        Kind::Manual,
        input.note.as_deref(),
        input.diff,
        call.progress,
    )?;
    let (said, code) = commands::snapshot::messages(&report);
    lines.extend(said);
    Ok(Outcome {
        value: commands::snapshot::json_report(&report),
        lines,
        code,
    })
}

fn list(input: ListInput, call: &Call) -> Result<Outcome, Error> {
    let args = commands::list::Args {
        json: true,
        explain: input.explain,
        host: input.host,
        kind: input.kind.map(|k| match k {
            KindInput::Manual => commands::list::KindArg::Manual,
            KindInput::Scheduled => commands::list::KindArg::Scheduled,
        }),
        since: input.since,
        until: input.until,
        note: input.note,
        wide: false,
    };
    let filter = commands::list::filter_of(&args)?;
    let (config, mut lines) = load(call)?;
    let listing = commands::list::listing(&config, &args, &filter)?;
    let (said, code) = listing.messages();
    lines.extend(said);
    Ok(Outcome {
        value: json!({ "snapshots": commands::list::json_of(&listing) }),
        lines,
        code,
    })
}

fn status(_: StatusInput, call: &Call) -> Result<Outcome, Error> {
    let (config, mut lines) = load(call)?;
    let status = backup_agent::health::status(&config, backup_agent::clock::now())?;
    lines.extend(prefixed("warning", &status.warnings));
    // Stale or failed is what the caller asked about, not a failure of the call.
    Ok(Outcome::ok(commands::status::json_of(&status), lines))
}

fn show(input: ShowInput, call: &Call) -> Result<Outcome, Error> {
    let (config, mut lines) = load(call)?;
    let remote = backup_agent::catalog::open_remote(&config);
    let report = backup_agent::inspect::show(
        &config,
        remote.as_ref(),
        &input.snapshot,
        input.host.as_deref(),
        input.files,
        call.progress,
    )?;
    lines.extend(prefixed("note", &report.notes));
    if let Some(e) = &report.remote_error {
        lines.push(format!(
            "note: cannot list the remote, so whether it holds this snapshot too is unknown: {e}"
        ));
    }
    let code = if report.remote_error.is_some() {
        exit::REMOTE
    } else {
        exit::OK
    };
    Ok(Outcome {
        value: serde_json::to_value(&report).expect("serializes"),
        lines,
        code,
    })
}

fn diff(input: DiffInput, call: &Call) -> Result<Outcome, Error> {
    match (&input.to, input.live) {
        (None, false) => {
            return Err(Error::Config(format!(
                "backup_diff from `{}` to what? Give `to` (another snapshot, e.g. latest) or `live: true` for the live data",
                input.from
            )));
        }
        (Some(_), true) => {
            return Err(Error::Config(
                "backup_diff takes `to` or `live`, not both".to_string(),
            ));
        }
        _ => {}
    }
    let (config, mut lines) = load(call)?;
    let remote = backup_agent::catalog::open_remote(&config);
    let report = backup_agent::inspect::diff(
        &config,
        remote.as_ref(),
        &input.from,
        input.to.as_deref(),
        input.host.as_deref(),
        call.progress,
    )?;
    lines.extend(prefixed("note", &report.notes));
    Ok(Outcome::ok(
        serde_json::to_value(&report).expect("serializes"),
        lines,
    ))
}

fn verify(input: VerifyInput, call: &Call) -> Result<Outcome, Error> {
    let copies = if input.remote {
        Copies::RemoteOnly
    } else {
        Copies::Any
    };
    match (&input.snapshot, input.all) {
        (Some(_), true) => {
            return Err(Error::Config(
                "backup_verify takes `snapshot` or `all`, not both".to_string(),
            ));
        }
        (None, false) => {
            return Err(Error::Config(
                "backup_verify needs `snapshot` (e.g. latest) or `all: true`".to_string(),
            ));
        }
        _ => {}
    }
    if input.sample.is_some() && !input.all {
        return Err(Error::Config(
            "backup_verify: `sample` goes with `all: true`".to_string(),
        ));
    }
    if input.sample == Some(0) {
        return Err(Error::Config(
            "backup_verify: `sample` is at least 1".to_string(),
        ));
    }
    if input.all && input.host.is_some() {
        return Err(Error::Config(
            "backup_verify: `host` names whose `latest`; `all` verifies every host's".to_string(),
        ));
    }
    let (config, mut lines) = load(call)?;
    let Some(snapshot) = input.snapshot else {
        let sample = input
            .sample
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let mut outcomes = Vec::new();
        let done = restore::verify_all(
            &config,
            sample,
            copies,
            call.progress,
            &mut |tag, outcome| {
                outcomes.push(commands::verify::verify_outcome_json(tag, &outcome));
            },
        )?;
        let (_, failed, note) = commands::verify::verify_all_verdict(
            &done,
            "each one's `error` in `snapshots` says why",
        );
        lines.extend(note);
        let code = match &failed {
            Some(e) => {
                lines.push(format!("error: {e}"));
                exit::of_error(e)
            }
            None if done.remote_error.is_some() => exit::REMOTE,
            None => exit::OK,
        };
        return Ok(Outcome {
            value: json!({ "ok": failed.is_none(), "snapshots": outcomes }),
            lines,
            code,
        });
    };
    let which = Which::parse(&snapshot)?;
    let prepared = restore::verify(
        &config,
        &which,
        input.host.as_deref(),
        copies,
        call.progress,
    )?;
    lines.extend(prefixed("note", &prepared.notes));
    if prepared.local_damaged {
        lines.push(format!(
            "note: the local copy of {} is damaged; verified the remote copy (the next `backup run` repairs the local copy)",
            prepared.tag
        ));
    }
    Ok(Outcome::ok(
        commands::verify::verified_json(&prepared),
        lines,
    ))
}

/// Refuses a restore or rollback that would replace live data unless a person allowed it, both
/// when the server started and now.
fn check_allowed(
    config: &backup_agent::config::Config,
    call: &Call,
    what: &str,
) -> Result<(), Error> {
    if call.allow_restore_at_start && config.agent.allow_restore {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "{what} that replaces live data is not allowed to agents here, and nothing was changed: the user allows it with [agent] allow_restore = true in the config, which counts once the MCP server restarts; meanwhile call it without `confirm` to see what it would do{}",
        if what == "a restore" {
            ", or with `to` to restore into a folder of your own"
        } else {
            ""
        }
    )))
}

/// Refuses to go on once the call is cancelled, by its client or by the server stopping (stdin
/// closed, SIGTERM): nothing live was touched yet. Said on stderr too, since nobody may be left to
/// read the answer.
fn check_not_cancelled(call: &Call, what: &str) -> Result<(), Error> {
    if (call.cancelled)() {
        let e = Error::Refused(format!(
            "{what} was stopped before its swap (the client cancelled it, or the MCP server is stopping); nothing was changed"
        ));
        errln!("backup: note: {e}");
        return Err(e);
    }
    Ok(())
}

fn restore(input: RestoreInput, call: &Call) -> Result<Outcome, Error> {
    if input.migrate && input.to.is_none() {
        return Err(Error::Config(
            "backup_restore: `migrate` goes with `to`; a restore in place always migrates"
                .to_string(),
        ));
    }
    if input.to.is_some() && !input.only.is_empty() {
        return Err(Error::Config(
            "backup_restore: `only` and `to` do not go together; `to` extracts the whole snapshot"
                .to_string(),
        ));
    }
    if input.to.is_some() && input.confirm {
        return Err(Error::Config(
            "backup_restore: `to` touches nothing live and needs no `confirm`; leave one out"
                .to_string(),
        ));
    }
    if let Some(dir) = &input.to
        && !dir.is_absolute()
    {
        return Err(Error::Config(format!(
            "backup_restore: `to` must be an absolute path, not {}",
            dir.display()
        )));
    }
    let (config, mut lines) = load(call)?;
    let which = Which::parse(&input.snapshot)?;
    if let Some(dir) = &input.to {
        let to = restore::ToFolder {
            dir,
            migrate: input.migrate,
            force: false,
        };
        let done = restore::restore_to(&config, &which, input.host.as_deref(), to, call.progress)?;
        lines.extend(prefixed("note", &done.prepared.notes));
        if done.prepared.local_damaged {
            lines.push(format!(
                "note: the local copy of {} is damaged; extracted the remote copy",
                done.prepared.tag
            ));
        }
        return Ok(Outcome::ok(
            commands::restore::restored_to_json(&done, input.migrate),
            lines,
        ));
    }
    if input.confirm {
        check_allowed(&config, call, "a restore")?;
    }
    let plan = restore::plan_restore(
        &config,
        &which,
        input.host.as_deref(),
        false,
        &input.only,
        call.progress,
    )?;
    lines.extend(prefixed("note", &plan.prepared.notes));
    lines.extend(prefixed("note", &plan.notes));
    let planned = commands::restore::planned_json(&plan);
    if !input.confirm {
        lines.push(
            "note: dry run: every check passed and nothing was changed; `confirm: true` restores (it needs [agent] allow_restore = true), `to` extracts into a folder instead"
                .to_string(),
        );
        return Ok(Outcome::ok(planned, lines));
    }
    if plan.prepared.local_damaged {
        lines.push(format!(
            "note: the local copy of {} is damaged; restored from the remote copy (the next `backup run` repairs the local copy)",
            plan.prepared.tag
        ));
    }
    check_not_cancelled(call, "the restore")?;
    let swap = plan.commit()?;
    Ok(Outcome::ok(
        commands::restore::restored_json(planned, &swap),
        lines,
    ))
}

fn rollback(input: RollbackInput, call: &Call) -> Result<Outcome, Error> {
    let (config, mut lines) = load(call)?;
    if !input.confirm {
        let preview = restore::preview_rollback(&config)?;
        lines.push(
            "note: nothing was changed; `confirm: true` rolls back (it needs [agent] allow_restore = true)"
                .to_string(),
        );
        return Ok(Outcome::ok(
            commands::rollback::rollback_preview_json(&preview),
            lines,
        ));
    }
    check_allowed(&config, call, "a rollback")?;
    check_not_cancelled(call, "the rollback")?;
    let report = restore::rollback(&config, false)?;
    Ok(Outcome::ok(
        commands::rollback::rolled_back_json(&report),
        lines,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_object_schemas_and_says_when_to_call_it() {
        let specs = specs();
        assert_eq!(specs.len(), 8);
        for spec in &specs {
            assert_eq!(spec.input["type"], "object", "{}", spec.name);
            assert_eq!(spec.output["type"], "object", "{}", spec.name);
            assert!(
                spec.description.contains("Call it") || spec.description.contains("By default"),
                "{}",
                spec.name
            );
        }
    }
}
