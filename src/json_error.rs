//! With `--json`, a failure is JSON on stdout too, so a script reads every outcome from one
//! place: `{"error": {"message": "...", "kind": "...", "exit_code": N}}` (docs/json.md). Stderr
//! keeps its one human line either way, for people and cron mail.

use clap::ArgMatches;
use serde::Serialize;

use backup_agent::error::{Error, RemoteErrorKind};

use crate::exit;

/// The `kind` of a command line the parser refused.
pub const USAGE_KIND: &str = "usage";
/// The `kind` of a restore that needed a confirmation nobody gave.
pub const UNCONFIRMED_KIND: &str = "unconfirmed";

#[derive(Serialize)]
struct Failure<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    message: &'a str,
    kind: &'a str,
    exit_code: u8,
}

/// Prints the error object on stdout.
pub fn print(message: &str, kind: &str, exit_code: u8) {
    let failure = Failure {
        error: Detail {
            message,
            kind,
            exit_code,
        },
    };
    outln!(
        "{}",
        serde_json::to_string_pretty(&failure).expect("serializes")
    );
}

/// Prints `e` as the error object.
pub fn print_error(e: &Error) {
    print(&e.to_string(), kind(e), exit::of_error(e));
}

/// Whether the command line asked for JSON: a `--json` flag on the command or any subcommand.
pub fn requested(matches: &ArgMatches) -> bool {
    matches!(matches.try_get_one::<bool>("json"), Ok(Some(true)))
        || matches.subcommand().is_some_and(|(_, sub)| requested(sub))
}

/// For a command line clap refused, so there are no matches to ask: prints the error object
/// when the words hold `--json` and the refusal is a real mistake (help and version print as
/// they are).
pub fn print_usage_error(e: &clap::Error) {
    use clap::error::ErrorKind;
    let asked = std::env::args_os().skip(1).any(|a| a == "--json");
    if !asked
        || matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        return;
    }
    // clap's own paragraph, without its "Usage:" and "For more information" lines.
    let rendered = e.render().to_string();
    let message = rendered
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("error: ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    print(&message, USAGE_KIND, exit::USAGE);
}

/// The `kind` of `e`: the `Error` variant in snake case, and for a remote's failure
/// `remote_` and its `RemoteErrorKind`. Every kind is named, so a new one needs a decision here.
pub fn kind(e: &Error) -> &'static str {
    match e {
        Error::Config(_) => "config",
        Error::Locked(_) => "locked",
        Error::Database { .. } => "database",
        Error::NoSpace { .. } => "no_space",
        Error::Remote(remote) => match remote.kind {
            RemoteErrorKind::NotFound => "remote_not_found",
            RemoteErrorKind::Transient => "remote_transient",
            RemoteErrorKind::Denied => "remote_denied",
            RemoteErrorKind::Refused => "remote_refused",
            RemoteErrorKind::Unsafe => "remote_unsafe",
            RemoteErrorKind::Corrupt => "remote_corrupt",
            RemoteErrorKind::Failed => "remote_failed",
        },
        Error::Io { .. } => "io",
        Error::Archive { .. } => "archive",
        Error::Damaged(_) => "damaged",
        Error::Check { .. } => "check",
        Error::Refused(_) => "refused",
        Error::Swap(_) => "swap",
        Error::NotFound(_) => "not_found",
        Error::Migration(_) => "migration",
        Error::Include(_) => "include",
        Error::Schedule(_) => "schedule",
        Error::Keyring(_) => "keyring",
        Error::Demo(_) => "demo",
        Error::System(_) => "system",
    }
}
